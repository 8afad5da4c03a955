import json
import math

import datasets
import numpy as np
import pytest

from survey_lib.models import HubUnavailableError, load_model
from survey_lib.preference_data import (
    PreferenceDataError,
    ResponsePairs,
    load_preference_dataset,
    offset_bias_rows,
    sample_response_pairs,
    validate_preference_rows,
)

PLAIN = [
    {"prompt": "the movie", "chosen": " was great .", "rejected": " was dull ."},
    {"prompt": "the plot", "chosen": " felt moving !", "rejected": " was slow ."},
]


def chat(user, assistant):
    return [{"role": "user", "content": user}], [{"role": "assistant", "content": assistant}]


CONVERSATIONAL = [
    {"prompt": chat("the movie", "")[0], "chosen": chat("", "was great .")[1], "rejected": chat("", "was dull .")[1]},
]


def test_valid_rows_pass_unchanged():
    assert validate_preference_rows(PLAIN) == PLAIN
    assert validate_preference_rows(CONVERSATIONAL) == CONVERSATIONAL


def test_implicit_prompts_are_split_off_as_trl_does():
    plain = validate_preference_rows([{"chosen": "the movie was great .", "rejected": "the movie was dull ."}])[0]
    assert (plain["prompt"], plain["chosen"], plain["rejected"]) == ("the movie was", " great .", " dull .")
    user = {"role": "user", "content": "the movie"}
    row = {"chosen": [user, {"role": "assistant", "content": "was great ."}], "rejected": [user, {"role": "assistant", "content": "was dull ."}]}
    out = validate_preference_rows([row])[0]
    assert out["prompt"] == [user] and out["chosen"] == [{"role": "assistant", "content": "was great ."}]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": "x", "chosen": "a"}, r"row 2 has no 'rejected'"),
        ({"prompt": "x", "chosen": "a", "rejected": None}, r"row 2 has no 'rejected'"),
        ({"prompt": "x", "chosen": "same", "rejected": "same"}, r"row 2: 'chosen' and 'rejected' are identical"),
        ({"prompt": "x", "chosen": "  ", "rejected": "b"}, r"row 2: 'chosen' is empty"),
        ({"prompt": "", "chosen": "a", "rejected": "b"}, r"row 2"),
        ({"prompt": "x", "chosen": 3, "rejected": "b"}, r"row 2: 'chosen' must be a string"),
        ({"prompt": "x", "chosen": "a", "rejected": "b", "margin": math.nan}, r"row 2: 'margin' must be a finite number"),
        ({"prompt": "x", "chosen": "a", "rejected": "b", "margin": "big"}, r"row 2: 'margin'"),
        ("not a dict", r"row 2 must be a dict"),
    ],
)
def test_bad_rows_are_named(row, message):
    with pytest.raises(PreferenceDataError, match=message):
        validate_preference_rows(PLAIN + [row])


@pytest.mark.parametrize(
    "chosen, message",
    [
        ([], r"row 1: 'chosen' must be a non-empty list"),
        ([{"role": "assistant"}], r"row 1: chosen\[0\] must be a dict with 'role' and 'content'"),
        ([{"role": "robot", "content": "hi"}], r"row 1: chosen\[0\] has unknown role 'robot'"),
        ([{"role": "assistant", "content": 7}], r"row 1: chosen\[0\]\['content'\] must be a string"),
        ([{"role": "assistant", "content": " "}], r"row 1: chosen\[0\]\['content'\] is empty"),
    ],
)
def test_bad_conversations_are_named(chosen, message):
    row = {**CONVERSATIONAL[0], "chosen": chosen}
    with pytest.raises(PreferenceDataError, match=message):
        validate_preference_rows(CONVERSATIONAL + [row])


def test_mixed_formats_and_empty_data_are_rejected():
    with pytest.raises(PreferenceDataError, match="row 1 is conversational but row 0 is not"):
        validate_preference_rows(PLAIN[:1] + CONVERSATIONAL)
    with pytest.raises(PreferenceDataError, match="no preference rows"):
        validate_preference_rows([])


@pytest.mark.parametrize("rows", [PLAIN, CONVERSATIONAL], ids=["plain", "conversational"])
def test_local_files_and_saved_datasets_load(rows, tmp_path):
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_preference_dataset(jsonl) == rows
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "pairs.parquet"))
    assert load_preference_dataset(tmp_path / "pairs.parquet") == rows
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "saved"))
    assert load_preference_dataset(tmp_path / "saved", split="test", limit=1) == rows[:1]


def test_a_bad_row_in_a_file_is_named(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(PLAIN[0]) + "\n" + json.dumps({"prompt": "x", "chosen": "a", "rejected": ""}) + "\n")
    with pytest.raises(PreferenceDataError, match="row 1: 'rejected' is empty"):
        load_preference_dataset(path)


def test_hub_dataset_offline_says_so():
    with pytest.raises(HubUnavailableError, match="offline"):
        load_preference_dataset("some-org/no-such-preference-data")


@pytest.fixture(scope="module")
def policy():
    return load_model("tiny-text-lm")


def test_sampled_pairs_differ_and_are_reproducible(world, policy):
    model, tok = policy
    pairs = sample_response_pairs(model, tok, world, 300, seed=3)
    assert len(pairs) == 300 and all(a != b for a, b in zip(pairs.first, pairs.second))
    assert set(pairs.prompts) <= set(world.prompts)
    again = sample_response_pairs(model, tok, world, 300, seed=3)
    assert again.first == pairs.first and again.second == pairs.second


def test_a_policy_that_repeats_itself_is_reported_not_looped_on(world, policy):
    model, tok = policy
    # near-zero temperature: both answers to a prompt coincide, and no resample can help
    with pytest.raises(ValueError, match="two identical responses after 0 resamples"):
        sample_response_pairs(model, tok, world, 20, temperature=1e-4, max_resamples=0)


def test_empty_responses_are_sampled_again(world, policy, monkeypatch):
    """A response that is only end-of-sequence cannot be a row's side: the first sampling
    returns some, on either side, and the resample replaces exactly those."""
    from survey_lib import preference_data

    model, tok = policy
    calls = []

    def sampler(model, tokenizer, prompts, **kwargs):
        calls.append(len(prompts))
        if len(calls) == 1:  # 4 pairs: first answers "", "a", "b", ""; second "c", "", "d", "e"
            return ["", "was a .", "was b .", "", "was c .", "", "was d .", "was e ."]
        return [f"was again {i} ." for i in range(len(prompts))]

    monkeypatch.setattr(preference_data, "sample_completions", sampler)
    pairs = sample_response_pairs(model, tok, world, 4, seed=0)
    assert calls == [8, 3]
    assert pairs.first == ["was again 0 .", "was a .", "was b .", "was again 1 ."]
    assert pairs.second == ["was c .", "was again 2 .", "was d .", "was e ."]


@pytest.mark.parametrize("size", [1000, 5000])
def test_no_seed_breaks_the_chapters_preference_data(world, policy, size):
    """The data path of chapters 03, 04, 05, 07 and 08 on many seeds, at their sizes: sample
    pairs from the SFT model, label them (annotators and gold), and validate them in every
    row format a trainer reads. Seed 3 once produced an empty response at 1,000 pairs."""
    from survey_lib.preference_data import candidate_rows, prepare_rows, sample_candidates
    from survey_lib.world.annotators import AnnotatorConfig, SimulatedAnnotators

    model, tok = policy
    for seed in range(12 if size == 1000 else 3):
        pairs = sample_response_pairs(model, tok, world, size, seed=seed)
        rows = pairs.label(SimulatedAnnotators(world, AnnotatorConfig(temperature=0.2, disagreement=0.3, seed=seed)))
        gap = pairs.gold_gap(world)
        gold, _ = pairs.select(np.flatnonzero(gap != 0)).gold_rows(world)
        for data in ("pairs", "unpaired", "negatives", "ranked"):
            assert len(prepare_rows(rows, data)) >= len(rows)
            prepare_rows(gold, data)
    # the candidate pools of chapters 04 (RRHF, PRO) and 07 (RSO): k responses per prompt, ranked
    for seed in range(6):
        prompts = list(world.prompts) * 2
        candidates = sample_candidates(model, tok, prompts, 4, seed=seed)
        prepare_rows(candidate_rows(prompts, candidates, np.zeros(len(candidates))), "ranked")


def test_gold_rows_put_the_better_response_first(world):
    pairs = ResponsePairs(["the movie", "the plot"], ["was great .", "was awful ."], ["was awful .", "was great ."])
    rows, gap = pairs.gold_rows(world)
    assert [r["chosen"] for r in rows] == [" was great .", " was great ."]
    assert np.all(gap > 0)
    with pytest.raises(ValueError, match="gold ties"):
        ResponsePairs(["the movie"], ["was great ."], ["was great ."]).gold_rows(world)


def test_offset_bias_rows_are_longer_and_mostly_worse(world):
    rng = np.random.default_rng(0)
    corpus = world.sample_corpus(1000, rng)
    rows = offset_bias_rows([p for p, _ in corpus], [c for _, c in corpus], rng)
    assert all(len(r["rejected"].split()) > len(r["chosen"].split()) for r in rows)
    prompts = [r["prompt"] for r in rows]
    worse = world.gold_reward(prompts, [r["rejected"] for r in rows]) < world.gold_reward(prompts, [r["chosen"] for r in rows])
    assert worse.mean() > 0.85
    validate_preference_rows(rows)


def test_single_response_rows_with_a_conversational_prompt_render_as_the_pairs_do(policy):
    import copy

    from survey_lib.preference_data import prepare_rows

    tok = copy.deepcopy(policy[1])
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    prompt = [{"role": "user", "content": "the movie"}]
    pair = prepare_rows([{"prompt": prompt, "chosen": [{"role": "assistant", "content": "was great ."}],
                          "rejected": [{"role": "assistant", "content": "was dull ."}]}], "pairs", tok)[0]
    negative = prepare_rows([{"prompt": prompt, "rejected": [{"role": "assistant", "content": "was dull ."}]}], "negatives", tok)[0]
    assert negative == {"prompt": pair["prompt"], "rejected": pair["rejected"]}
    assert pair["prompt"] == "user: the movie\nassistant: "
    ranked = prepare_rows([{"prompt": prompt, "completions": ["was great .", "was dull ."], "rewards": [1.0, 0.0]}], "ranked", tok)[0]
    assert ranked["completions"][1] == pair["rejected"] and ranked["prompt"] == pair["prompt"]
    with pytest.raises(PreferenceDataError, match="'prompt' is a conversation; pass the tokenizer"):
        prepare_rows([{"prompt": prompt, "rejected": "was dull ."}], "negatives")
