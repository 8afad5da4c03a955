"""The world interface of the real-model profiles (issue 14): `ChatWorld` with prompts from
local stand-ins of Hub datasets and a gold from a Python scorer or a saved reward model,
`ReviewGold` (the small profile's gold) by hand, simulated annotators labelling any world,
and each profile's world."""
import json
import math

import datasets
import numpy as np
import pytest
import torch

from survey_lib import smollm2
from survey_lib.data_files import HubUnavailableError
from survey_lib.models import load_model, resolve_model_path
from survey_lib.profiles import get_profile
from survey_lib.world.annotators import AnnotatorConfig, SimulatedAnnotators, gold_agreement
from survey_lib.world.chat import ChatWorld, PromptDataError, RewardModelGold, ScaledGold, as_messages, load_prompts
from survey_lib.world.reviews import REVIEW_PROMPTS, ReviewGold, ReviewWeights
from survey_lib.world.text import TextWorld

GOOD = "A wonderful, moving film with a brilliant cast. I loved every minute of it and would happily watch it again."
BAD = "A dull, clumsy film with a weak cast. I hated every minute of it and would never watch it again."
CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


# ------------------------------------------------------------------ ReviewGold


def test_review_gold_prefers_positive_finished_unrepetitive_clean_text():
    gold = ReviewGold()
    prompts = ["Review it."] * 5
    scores = gold(prompts, [GOOD, BAD, "great " * 30, "!!! :) :) ### " * 5 + "great.", GOOD[:-1] + " and"])
    good, bad, repeated, symbols, unfinished = scores
    assert good > bad + 1  # VADER: strongly positive against strongly negative
    assert good > repeated + 1  # "great great ...": positive to VADER, but every trigram repeats
    assert good > symbols + 0.5  # mostly non-words: the gate takes the sentiment away
    assert good - unfinished == pytest.approx(1.0, abs=0.15)  # the termination penalty, nearly all of the gap


def test_review_gold_components_by_hand():
    c = ReviewGold(target_words=4, length_width=2).components(["p", "p"], ["It was great fun. It was great fun.", ""])
    # 8 words: length exp(-0.5 * (4/2)^2); trigrams: 6, of which "it was great" and "was great fun" repeat
    assert c["length"][0] == pytest.approx(np.exp(-2))
    assert c["repetition"][0] == pytest.approx(2 / 6)
    assert c["clean"][0] == 1 and c["ended"][0] == 1 and c["n_words"][0] == 8
    assert c["clean"][1] == 0 and c["ended"][1] == 0  # the empty response is worth nothing and not finished
    weights = ReviewWeights(sentiment=0, length=1, repetition=0, termination=0)
    assert ReviewGold(target_words=4, length_width=2)(["p"], ["It was great fun. It was great fun."], weights)[0] == pytest.approx(np.exp(-2))


def test_review_gold_rejects_non_strings_and_mismatched_batches():
    with pytest.raises(TypeError, match="completion 1"):
        ReviewGold()(["p", "p"], ["fine.", None])
    with pytest.raises(ValueError, match="2 prompts but 1"):
        ReviewGold()(["p", "p"], ["fine."])


# ------------------------------------------------------------------ prompts from datasets


def test_the_shipped_review_prompts_are_conversations():
    prompts = load_prompts(REVIEW_PROMPTS)
    assert len(prompts) == 320 and len(set(map(json.dumps, prompts))) == 320
    assert all(len(p) == 1 and p[0]["role"] == "user" for p in prompts)


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "save_to_disk"])
def test_prompts_load_from_local_stand_ins_of_hub_datasets(tmp_path, kind):
    rows = [{"prompt": "Write a haiku."}, {"prompt": [{"role": "user", "content": "Hello?"}]}]
    dataset = datasets.Dataset.from_list([{"prompt": json.dumps(r["prompt"])} for r in rows])  # one column type
    if kind == "jsonl":
        path = tmp_path / "prompts.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        assert load_prompts(path) == ("Write a haiku.", [{"role": "user", "content": "Hello?"}])
        return
    if kind == "parquet":
        path = tmp_path / "prompts.parquet"
        dataset.to_parquet(str(path))
    else:
        path = tmp_path / "prompts"
        dataset.save_to_disk(str(path))
    assert load_prompts(path) == tuple(json.dumps(r["prompt"]) for r in rows)


@pytest.mark.parametrize("rows, message", [
    ([{"text": "hi"}], "no 'prompt' column; its columns: \\['text'\\]"),
    ([{"prompt": "fine"}, {"prompt": "  "}], "row 1: the prompt is empty"),
    ([{"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}], "must end with a user turn"),
    ([{"prompt": [{"role": "robot", "content": "hi"}]}], "row 0, message 0"),
])
def test_bad_prompt_sets_are_named(tmp_path, rows, message):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(PromptDataError, match=message):
        load_prompts(path)


def test_a_hub_prompt_set_offline_says_what_to_do():
    with pytest.raises(HubUnavailableError, match="local .jsonl of prompts or use the tiny or small profile"):
        load_prompts("trl-lib/ultrafeedback-prompt")


def test_chat_world_holds_out_a_seeded_fraction_of_the_prompts():
    prompts = [f"prompt {i}" for i in range(50)]
    world = ChatWorld.from_sources(prompts, lambda p, c: np.zeros(len(c)), seed=3)
    assert len(world.prompts) == 40 and len(world.eval_prompts) == 10
    assert set(world.prompts) | set(world.eval_prompts) == set(prompts) and not set(world.prompts) & set(world.eval_prompts)
    assert ChatWorld.from_sources(prompts, ReviewGold(), seed=3).eval_prompts == world.eval_prompts
    assert ChatWorld.from_sources(prompts, ReviewGold(), seed=4).eval_prompts != world.eval_prompts


def test_a_python_function_is_a_gold_with_one_weight():
    world = ChatWorld.from_sources(["a", "b"], lambda p, c: np.array([float(len(x)) for x in c]))
    assert isinstance(world.gold, ScaledGold)
    assert world.gold_reward(["a", "b"], ["xy", "xyz"]).tolist() == [2.0, 3.0]
    assert world.gold_reward(["a"], ["xy"], type(world.weights)(reward=0.5)).tolist() == [1.0]
    with pytest.raises(FloatingPointError, match="rows \\[1\\]"):
        ChatWorld.from_sources(["a", "b"], lambda p, c: np.array([0.0, np.nan])).gold_reward(["a", "b"], ["x", "y"])


# ------------------------------------------------------------------ a reward model as the gold


@pytest.fixture(scope="module")
def saved_reward_model(tmp_path_factory):
    """The zoo model with a fresh scalar head and a chat template, saved: it plays a Hub gold RM."""
    path = tmp_path_factory.mktemp("gold-rm")
    torch.manual_seed(0)
    model, tokenizer = load_model("tiny-text-lm", head="reward")
    tokenizer.chat_template = CHAT_TEMPLATE
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_a_saved_reward_model_scores_through_its_chat_template(saved_reward_model):
    gold = RewardModelGold(saved_reward_model, batch_size=2)
    prompts, completions = ["the movie", [{"role": "user", "content": "the plot"}], "the film"], ["was great .", "was bad .", "was dull ."]
    scores = gold(prompts, completions)
    for p, c, s in zip(prompts, completions, scores):  # one at a time, no padding: the same score
        text = gold.tokenizer.apply_chat_template(as_messages(p, c), tokenize=False)
        ids = gold.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        assert s == pytest.approx(gold.model(**ids).logits[0, 0].item(), abs=1e-5)
    assert not any(p.requires_grad for p in gold.model.parameters())


def test_the_gold_model_must_be_a_one_label_classifier_with_a_chat_template(tmp_path, saved_reward_model):
    with pytest.raises(ValueError, match="not a sequence classifier"):
        RewardModelGold("tiny-text-lm")
    model, tokenizer = load_model(saved_reward_model, head="reward")
    model.config.num_labels = 2
    model.save_pretrained(tmp_path / "two")
    tokenizer.save_pretrained(tmp_path / "two")
    with pytest.raises(ValueError, match="has 2 labels"):
        RewardModelGold(tmp_path / "two")
    model.config.num_labels = 1
    tokenizer.chat_template = None
    model.save_pretrained(tmp_path / "plain")
    tokenizer.save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="no chat template"):
        RewardModelGold(tmp_path / "plain")


def test_annotators_label_a_chat_world_scored_by_a_saved_reward_model(saved_reward_model):
    world = ChatWorld.from_sources(["the movie", "the plot", "the film", "the cast"], str(saved_reward_model))
    annotators = SimulatedAnnotators(world, AnnotatorConfig(temperature=0.01, disagreement=0.0, seed=0))
    first, second = ["was great ."] * 4, ["was awful and bad"] * 4
    labels = annotators.label(list(world.prompts) * 0 + ["the movie"] * 4, first, second)
    diff = world.gold_reward(["the movie"] * 4, first) - world.gold_reward(["the movie"] * 4, second)
    assert (labels.first_preferred == (diff > 0)).all()  # temperature 0.01: the annotators follow the gold


# ------------------------------------------------------------------ annotators on any world


def test_annotators_perturb_every_gold_weight_of_the_world():
    world = ChatWorld.from_sources(load_prompts(REVIEW_PROMPTS), ReviewGold())
    annotators = SimulatedAnnotators(world, AnnotatorConfig(disagreement=0.3, seed=0))
    assert all(isinstance(w, ReviewWeights) for w in annotators.weights)
    for name in ("sentiment", "length", "repetition", "termination"):
        assert len({getattr(w, name) for w in annotators.weights}) == len(annotators.weights)


def test_annotators_of_the_review_world_agree_with_its_gold():
    world = ChatWorld.from_sources(load_prompts(REVIEW_PROMPTS), ReviewGold())
    prompts = list(world.prompts[:40])
    first = [GOOD if i % 2 else BAD for i in range(40)]
    second = [BAD if i % 2 else GOOD + " Truly great." for i in range(40)]
    annotators = SimulatedAnnotators(world, AnnotatorConfig(temperature=0.2, disagreement=0.3, seed=0))
    assert gold_agreement(world, prompts, first, second, annotators.label(prompts, first, second)) > 0.9


def test_the_tiny_world_keeps_its_annotators_weights():
    """Generalising the annotators to any world's weights draws the same perturbations for the
    grammar world's four weights, in the same order: the tiny numbers are unchanged."""
    world = TextWorld(seed=0)
    annotators = SimulatedAnnotators(world, AnnotatorConfig(disagreement=0.3, seed=7))
    rng = np.random.default_rng(7)
    expected = [[getattr(world.weights, n) * math.exp(0.3 * rng.standard_normal()) for n in ("sentiment", "length", "repetition", "termination")]
                for _ in range(5)]
    got = [[w.sentiment, w.length, w.repetition, w.termination] for w in annotators.weights]
    assert got == expected


# ------------------------------------------------------------------ profiles and SmolLM2


def test_each_profile_has_a_world():
    assert isinstance(get_profile("tiny").world(0), TextWorld)
    small = get_profile("small").world(0)
    assert isinstance(small, ChatWorld) and isinstance(small.gold, ReviewGold)
    assert len(small.prompts) == 256 and len(small.eval_prompts) == 64
    for name in ("colab", "gpu"):  # their worlds are Hub datasets: offline, a clear error
        with pytest.raises(HubUnavailableError, match="small profile"):
            get_profile(name).world(0)


def test_smollm2_missing_says_how_to_install_and_convert(tmp_path, monkeypatch):
    monkeypatch.setenv("SURVEY_LIB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="python -m survey_lib.smollm2.*profile='tiny'"):
        resolve_model_path(smollm2.NAME)


def test_sampling_checks_its_prompts_like_a_world_does(tok):
    from survey_lib.generation import sample_completions

    model, _ = load_model("tiny-text-lm")
    with pytest.raises(PromptDataError, match="row 1: the prompt is empty"):
        sample_completions(model, tok, ["the movie", " "])
    with pytest.raises(PromptDataError, match="must end with a user turn"):
        sample_completions(model, tok, [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]])


def test_a_review_world_scores_sentiment_and_another_world_says_it_has_none():
    prompts = load_prompts(REVIEW_PROMPTS)
    world = ChatWorld.from_sources(prompts, ReviewGold())
    assert world.sentiment(GOOD) > 0.5 > -0.5 > world.sentiment(BAD)
    with pytest.raises(AttributeError, match="scores no sentiment; chapter 08"):
        ChatWorld.from_sources(prompts, lambda p, c: [0.0] * len(c)).sentiment(GOOD)
