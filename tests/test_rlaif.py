"""Self-rewarding DPO and the critique -> revision loop (chapter 05), and the zoo judge."""
import copy

import numpy as np
import torch
import pytest
from transformers import AutoModelForCausalLM

from survey_lib.judges import Judge, LLMJudge
from survey_lib.preference_data import sample_response_pairs
from survey_lib.preference_config import PreferenceConfig
from survey_lib.profiles import get_profile
from survey_lib.rlaif import Constitution, SelfRewardingConfig, critique_and_revise, self_judged_pairs, self_rewarding
from survey_lib.zoo.build import build

pytestmark = pytest.mark.usefixtures("one_thread")


class LengthJudge(Judge):
    """Prefers longer responses; a response containing "?" cannot be parsed."""

    def score(self, prompts, responses):
        return np.array([np.nan if "?" in r else float(len(r.split())) for r in responses])

    def compare(self, prompts, first, second):
        a, b = self.score(prompts, first), self.score(prompts, second)
        return np.where(a == b, 0.5, (a > b).astype(float))


@pytest.fixture(scope="module")
def zoo_judge():
    return get_profile("tiny").load_judge()


def test_self_judged_pairs_take_best_and_worst_and_count_the_rest():
    rows, stats = self_judged_pairs(
        LengthJudge(),
        ["p1", "p2", "p3"],
        [["a b c", "a", "a b"], ["x y", "z w"], ["what ?", "fine ."]],
    )
    assert rows == [{"prompt": "p1", "chosen": " a b c", "rejected": " a"}]
    assert stats["pairs"] == 1 and stats["ties"] == 1 and stats["unparsed"] == 1


def test_an_empty_candidate_is_never_a_side_of_a_self_judged_pair():
    """An empty response scores lowest under the length judge, yet a row's side cannot be
    empty (seed 12 of chapter 05 once crashed on it): the worst non-empty one is rejected, and
    a prompt left with one candidate gives no pair. Empty candidates are counted."""
    rows, stats = self_judged_pairs(LengthJudge(), ["p1", "p2"], [["a b c", "", "a"], ["", "x y"]])
    assert rows == [{"prompt": "p1", "chosen": " a b c", "rejected": " a"}]
    assert stats["pairs"] == 1 and stats["empty_candidates"] == 2 and stats["ties"] == 1


def test_self_rewarding_runs_rounds_and_trains_the_judges_own_model(zoo_judge):
    judge = LLMJudge(copy.deepcopy(zoo_judge.model), zoo_judge.tokenizer, zoo_judge.templates)
    before = [p.detach().clone() for p in judge.model.parameters()]
    seen = []
    config = SelfRewardingConfig(rounds=2, prompts_per_round=16, candidates=3,
                                 preference=PreferenceConfig(loss="dpo", epochs=1, batch_size=8, learning_rate=1e-4))
    records = self_rewarding(judge, ["the movie", "the plot"], config, evaluate=lambda t, j: seen.append(t) or {"t": t})
    assert seen == [0, 1, 2] and [r["round"] for r in records] == [0, 1, 2]
    assert all(r["pairs"] > 0 and r["unparsed"] == 0 for r in records[1:])
    assert any(not torch.equal(a, b) for a, b in zip(before, judge.model.parameters()))
    with pytest.raises(ValueError, match="prompts is empty"):
        self_rewarding(judge, [], config)


def test_constitution_templates_are_checked():
    with pytest.raises(ValueError, match=r"critique template must contain \['prompt', 'response'\]"):
        Constitution(critique="{prompt} only")
    with pytest.raises(ValueError, match="revision template.*has \\['prompt', 'typo'\\]"):
        Constitution(revision="{prompt} {typo}")
    with pytest.raises(ValueError, match="at least one principle"):
        Constitution(principles=())


def test_critique_and_revise_keeps_only_what_the_judge_prefers(zoo_judge):
    policy, tok = get_profile("tiny").load("text")
    constitution = Constitution(principles=("x",), critique=zoo_judge.templates.pointwise, revision="{prompt}")
    prompts, responses = ["the movie"] * 8, ["was good and it was not very fun and the plot was long ."] * 8
    records = critique_and_revise(policy, tok, prompts, responses, constitution, judge=LengthJudge(), rounds=2)
    for r in records:  # a kept revision is longer than what it replaced, a rejected one never lands
        assert len(r["revisions"]) == 8 and r["kept"].dtype == bool
    final = records[-1]["responses"]
    assert all(len(f.split()) >= len(responses[0].split()) for f in final)
    with pytest.raises(ValueError, match="got 1 prompts but 2 responses"):
        critique_and_revise(policy, tok, ["p"], ["a", "b"], constitution)


def test_the_zoo_judge_agrees_with_gold_imperfectly(zoo_judge, world):
    policy, tok = get_profile("tiny").load("text")
    pairs = sample_response_pairs(policy, tok, world, 400, seed=5)
    gap = pairs.gold_gap(world)
    shown, swapped = zoo_judge.compare_orders(pairs.prompts, pairs.first, pairs.second)
    agree = lambda p: ((p > 0.5) == (gap > 0))[gap != 0].mean()  # noqa: E731
    assert 0.7 < agree(shown) and agree((shown + swapped) / 2) < 0.9  # a real labeler, measurably wrong
    assert ((shown > 0.5) != (swapped > 0.5)).mean() > 0.1  # order changes some verdicts: position bias
    assert zoo_judge.counts["unparsed"] == 0


def test_judge_build_saves_a_loadable_judge_with_its_templates(tmp_path):
    manifest = build("tiny-judge-lm", tmp_path / "judge", steps=2, progress=False)
    judge = LLMJudge.from_pretrained(tmp_path / "judge")
    assert judge.templates.first_verdict == "A" and judge.templates.yes_verdict == "yes"
    assert set(manifest["quality"]) >= {"agreement_debiased", "position_consistency", "unparsed"}
    AutoModelForCausalLM.from_pretrained(tmp_path / "judge")
