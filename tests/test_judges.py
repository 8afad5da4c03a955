"""Judges (chapter 05): templates, verdicts read from next-token probabilities, position-swap
debiasing, unparsable judgements, the generative verifier and rule-based rewards."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from survey_lib import judges
from survey_lib.judges import AILabels, JudgeTemplates, LLMJudge, Rubric, Rule, VerifierConfig, train_verifier
from survey_lib.preference_data import PreferenceDataError, ResponsePairs
from survey_lib.tokenization import build_tokenizer
from survey_lib.world.text import NEGATIVE, POSITIVE, TextWorld
from survey_lib.zoo import zoo_path
from survey_lib.zoo.build import JUDGE_WORDS

from conftest import crash_at

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = JudgeTemplates.load(zoo_path("tiny-judge-lm"))  # the zoo judge's own templates


@pytest.fixture(scope="module")
def judge_tok():
    world = TextWorld()
    return build_tokenizer(world.vocabulary + list(JUDGE_WORDS), "word")


class FixedVerdictLM(torch.nn.Module):
    """A stand-in judge whose next-token logits are fixed: it ignores what it reads."""

    def __init__(self, vocab_size: int, favourite: dict[int, float]):
        super().__init__()
        self.config = SimpleNamespace(max_position_embeddings=128)
        self.logits = torch.full((vocab_size,), -10.0)
        for token, value in favourite.items():
            self.logits[token] = value

    @property
    def device(self):
        return torch.device("cpu")

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        return SimpleNamespace(logits=self.logits.expand(*input_ids.shape, -1))


def random_judge_lm(tok, seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )
    return LlamaForCausalLM(config)


PAIRS = ResponsePairs(["the movie", "the plot"], ["was great .", "was dull ."], ["was dull .", "was fun ."])


def test_templates_reject_missing_or_unknown_placeholders_and_equal_verdicts():
    with pytest.raises(ValueError, match=r"pairwise template must contain exactly.*missing \['second'\]"):
        JudgeTemplates(pairwise="{prompt} {first}")
    with pytest.raises(ValueError, match=r"pointwise template.*unknown \['answer'\]"):
        JudgeTemplates(pointwise="{prompt} {response} {answer}")
    with pytest.raises(ValueError, match="must differ"):
        JudgeTemplates(yes_verdict="Yes", no_verdict="Yes")
    assert TINY.pairwise_text("p", "a", "b") == "compare p A : a B : b better ?"


def test_templates_round_trip_through_the_model_directory(tmp_path):
    TINY.save(tmp_path)
    assert JudgeTemplates.load(tmp_path) == TINY
    assert JudgeTemplates.load(tmp_path / "elsewhere") == JudgeTemplates()  # none saved: the English defaults


def test_verdict_words_must_be_single_known_tokens(judge_tok):
    model = FixedVerdictLM(len(judge_tok), {})
    with pytest.raises(ValueError, match="verdict 'Yes' is not a single known token"):
        LLMJudge(model, judge_tok, JudgeTemplates(pairwise=TINY.pairwise, pointwise=TINY.pointwise))


def test_position_swap_debiasing_cancels_a_pure_position_preference(judge_tok):
    a, b = judge_tok.convert_tokens_to_ids(["A", "B"])
    model = FixedVerdictLM(len(judge_tok), {a: math.log(0.8), b: math.log(0.2)})  # always "A", with P = 0.8
    judge = LLMJudge(model, judge_tok, TINY)
    shown = judge.compare(PAIRS.prompts, PAIRS.first, PAIRS.second, debias=False)
    np.testing.assert_allclose(shown, 0.8, rtol=1e-6)
    debiased = judge.compare(PAIRS.prompts, PAIRS.first, PAIRS.second)
    np.testing.assert_allclose(debiased, (0.8 + 1 - 0.8) / 2, rtol=1e-6)
    labels = judge.label(PAIRS)
    assert labels.ties == 2 and labels.rows == [] and labels.unparsed == 0
    assert judge.counts == {"judged": 2 + 4 + 4, "unparsed": 0}  # shown order, then both orders twice


def test_an_unparsable_judgement_is_counted_never_guessed(judge_tok):
    a, b, dot = judge_tok.convert_tokens_to_ids(["A", "B", "."])
    model = FixedVerdictLM(len(judge_tok), {dot: 5.0, a: 1.0, b: 0.0})  # its next token would be "."
    judge = LLMJudge(model, judge_tok, TINY)
    labels = judge.label(PAIRS)
    assert np.isnan(labels.probability_first).all()
    assert labels.unparsed == 2 and labels.rows == [] and labels.labelled.size == 0
    assert judge.counts["unparsed"] == 4  # both orders of both pairs
    assert np.isnan(judge.score(["the movie"], ["was great ."])).all()
    with pytest.raises(ValueError, match="candidate list is empty"):
        judge.label(ResponsePairs([], [], []))


def test_labels_are_trl_rows_in_the_judges_direction(judge_tok):
    yes = judge_tok.convert_tokens_to_ids("A")
    judge = LLMJudge(FixedVerdictLM(len(judge_tok), {yes: 3.0}), judge_tok, TINY, debias=False)
    labels = judge.label(PAIRS)
    assert isinstance(labels, AILabels)
    assert labels.rows == [
        {"prompt": "the movie", "chosen": " was great .", "rejected": " was dull ."},
        {"prompt": "the plot", "chosen": " was dull .", "rejected": " was fun ."},
    ]
    assert labels.first_preferred.all()


def test_next_token_logits_ignore_left_padding(judge_tok):
    model = random_judge_lm(judge_tok).eval()
    texts = ["rate the movie : was great . good ?", "rate the movie : was not very good and the plot was dull . good ?"]
    with torch.no_grad():
        together = judges.next_token_logits(model, judge_tok, texts)
        alone = judges.next_token_logits(model, judge_tok, texts[:1])
    torch.testing.assert_close(together[0], alone[0], atol=1e-4, rtol=1e-4)


def test_a_judge_input_longer_than_the_model_is_rejected(judge_tok):
    model = random_judge_lm(judge_tok)
    judge = LLMJudge(model, judge_tok, TINY)
    with pytest.raises(ValueError, match="do not fit the judge's 128 positions"):
        judge.score(["the movie"], [" ".join(["good"] * 200)])
    with pytest.raises(ValueError, match="second has 1 items, expected 2"):
        judge.compare(["a", "b"], ["x", "y"], ["z"])


def verifier_rows():
    return [
        {"prompt": p, "chosen": f" was {good} .", "rejected": f" was {bad} ."}
        for p in ("the movie", "the plot", "the music", "this film")
        for good, bad in zip(POSITIVE, NEGATIVE)
    ]


def test_verifier_examples_from_pairs_and_from_unpaired_rows():
    rows = verifier_rows()[:1]
    assert judges.verifier_examples(rows) == [("the movie", "was good .", True), ("the movie", "was bad .", False)]
    unpaired = [{"prompt": "the movie", "completion": " was fun .", "label": False}]
    assert judges.verifier_examples(unpaired) == [("the movie", "was fun .", False)]
    with pytest.raises(PreferenceDataError, match="row 0: 'label' must be a bool"):
        judges.verifier_examples([{"prompt": "x", "completion": "y", "label": "yes"}])
    with pytest.raises(PreferenceDataError, match="row 0"):
        judges.verifier_examples([{"prompt": "x", "chosen": " y"}])


def test_train_verifier_learns_the_verdict_and_resumes(judge_tok, tmp_path, monkeypatch):
    rows = verifier_rows()
    config = VerifierConfig(epochs=30, batch_size=16, learning_rate=3e-3, output_dir=str(tmp_path), save_steps=10)
    judge = LLMJudge(random_judge_lm(judge_tok), judge_tok, TINY)
    assert judge.history == []  # declared by the judge, filled by train_verifier
    assert train_verifier(judge, config, rows) is judge
    prompts = ["the acting", "the ending"]
    good, bad = judge.score(prompts, ["was lovely .", "was brilliant ."]), judge.score(prompts, ["was awful .", "was poor ."])
    assert (good > 0.8).all() and (bad < 0.2).all(), (good, bad)  # unseen prompts: it learnt the words
    assert judge.history[-1]["loss"] < 0.1

    # a crash half-way, then a resume, reaches the same weights as the uninterrupted run
    crash_at(monkeypatch, 40)
    again = LLMJudge(random_judge_lm(judge_tok), judge_tok, TINY)
    resumed_dir = str(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        train_verifier(again, VerifierConfig(**{**config.__dict__, "output_dir": resumed_dir}), rows)
    monkeypatch.undo()
    train_verifier(again, VerifierConfig(**{**config.__dict__, "output_dir": resumed_dir}), rows)
    for p, q in zip(judge.model.parameters(), again.model.parameters()):
        torch.testing.assert_close(p, q)


def ends(prompt, response):
    return float(response.split()[-1:] in ([".",], ["!"]))


def praise(prompt, response):
    return float(any(w in POSITIVE for w in response.split()))


def test_rubric_contributions_add_up_to_the_reward():
    rubric = Rubric([Rule("ends", ends, 0.5), Rule("praise", praise, 2.0)], bias=-1.0)
    prompts, responses = ["the movie"] * 3, ["was great .", "was dull .", "was great and"]
    c = rubric.contributions(prompts, responses)
    np.testing.assert_allclose(c["ends"], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(c["praise"], [2.0, 0.0, 2.0])
    np.testing.assert_allclose(rubric(prompts, responses), -1.0 + c["ends"] + c["praise"])
    np.testing.assert_allclose(rubric.compare(prompts[:1], responses[:1], responses[1:2]), 1 / (1 + math.exp(-2.0)))


def test_rubric_rejects_rules_that_raise_or_return_nan():
    def broken(prompt, response):
        return 1 / (len(response.split()) - 2)

    rubric = Rubric([Rule("ends", ends), Rule("broken", broken)])
    with pytest.raises(ValueError, match=r"rule 'broken' raised ZeroDivisionError.*row 1"):
        rubric(["p", "p"], ["was great .", "was great"])
    with pytest.raises(ValueError, match=r"rule 'nan' returned nan on row 0"):
        Rubric([Rule("nan", lambda p, r: float("nan"))])(["p"], ["x"])
    with pytest.raises(ValueError, match="unique"):
        Rubric([Rule("a", ends), Rule("a", praise)])
    with pytest.raises(ValueError, match="at least one rule"):
        Rubric([])


def test_rubric_fit_recovers_the_weights_that_generated_the_labels():
    # labels drawn from Bradley-Terry on a known linear rubric: the fit finds its weights
    rng = np.random.default_rng(0)
    words = lambda: " ".join(rng.choice(list(POSITIVE[:4] + NEGATIVE[:4]), size=rng.integers(1, 4))) + rng.choice([" .", ""])
    truth = {"ends": 1.5, "praise": -0.7}
    rubric = Rubric([Rule("ends", ends, 0.0), Rule("praise", praise, 0.0)])
    rows = []
    while len(rows) < 4000:
        a, b = words(), words()
        if a == b:
            continue
        diff = sum(truth[r.name] * (r.check("", a) - r.check("", b)) for r in rubric.rules)
        won = rng.random() < 1 / (1 + math.exp(-diff))
        rows.append({"prompt": "the movie", "chosen": " " + (a if won else b), "rejected": " " + (b if won else a)})
    fitted = rubric.fit(rows, l2=0.0)
    np.testing.assert_allclose(fitted.weights, [truth["ends"], truth["praise"]], atol=0.15)
    # on top of a base reward that already captures "ends", only "praise" is left to fit
    base = lambda prompts, responses: truth["ends"] * np.array([ends("", r) for r in responses])  # noqa: E731
    on_top = rubric.fit(rows, base_reward=base, l2=0.0)
    assert abs(on_top.weights[0]) < 0.15 and on_top.weights[1] == pytest.approx(truth["praise"], abs=0.15)


def test_a_local_model_without_templates_gets_the_english_ones(tmp_path):
    # the Hub route of the colab/gpu profiles, offline: a saved model with no judge.json
    tok = build_tokenizer(TextWorld().vocabulary + ["A", "B", "Yes", "No"], "word")
    random_judge_lm(tok).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    judge = LLMJudge.from_pretrained(tmp_path)
    assert judge.templates == JudgeTemplates()
    p = judge.compare(PAIRS.prompts, PAIRS.first, PAIRS.second, debias=False)
    s = judge.score(PAIRS.prompts, PAIRS.first)
    # an untrained model rarely puts a verdict first: each judgement is a probability or counted
    assert np.all(np.isnan(p) | ((p >= 0) & (p <= 1))) and np.all(np.isnan(s) | ((s >= 0) & (s <= 1)))
    assert judge.counts == {"judged": 4, "unparsed": int(np.isnan(p).sum() + np.isnan(s).sum())}
