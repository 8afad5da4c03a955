import numpy as np
import pytest

from survey_lib.preference_data import ResponsePairs
from survey_lib.reward_bench import CATEGORIES, build_eval_suite, evaluate_reward, expected_calibration_error, reliability_bins


def test_ece_closed_form():
    # two bins: confidence 0.6 with 1 of 2 right, confidence 0.9 with 2 of 2 right
    confidence = np.array([0.6, 0.6, 0.9, 0.9])
    correct = np.array([1.0, 0.0, 1.0, 1.0])
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.5 * 0.1 + 0.5 * 0.1)
    mean_confidence, accuracy, count = reliability_bins(confidence, correct)
    assert np.allclose(mean_confidence, [0.6, 0.9]) and np.allclose(accuracy, [0.5, 1.0]) and count.tolist() == [2, 2]


def test_a_calibrated_predictor_has_near_zero_ece():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 200_000)
    correct = (rng.random(confidence.size) < confidence).astype(float)
    assert expected_calibration_error(confidence, correct) < 0.01


def corpus_pairs(world, n, seed):
    rng = np.random.default_rng(seed)
    a, b = world.sample_corpus(n, rng), world.sample_corpus(n, rng)
    keep = [i for i in range(n) if a[i][1] != b[i][1]]
    return ResponsePairs([a[i][0] for i in keep], [a[i][1] for i in keep], [b[i][1] for i in keep])


@pytest.fixture(scope="module")
def suite(world):
    return build_eval_suite(world, corpus_pairs(world, 3000, 0), corpus_pairs(world, 600, 1), per_category=300)


def test_categories_hold_what_they_claim(world, suite):
    assert list(suite.rows) == list(CATEGORIES)
    for name, rows in suite.rows.items():
        prompts = [r["prompt"] for r in rows]
        gap = world.gold_reward(prompts, [r["chosen"] for r in rows]) - world.gold_reward(prompts, [r["rejected"] for r in rows])
        assert np.all(gap > 0) and np.allclose(gap, suite.gold_gap[name]), name
    assert suite.gold_gap["easy"].min() >= 0.5 and suite.gold_gap["hard"].max() < 0.1
    assert all(len(r["rejected"].split()) >= len(r["chosen"].split()) + 3 for r in suite.rows["length_adversarial"])


def test_the_gold_reward_is_perfect_and_its_negation_always_wrong(world, suite):
    right = evaluate_reward(world.gold_reward, suite)
    wrong = evaluate_reward(lambda p, c: -world.gold_reward(p, c), suite)
    assert all(r["accuracy"] == 1.0 for r in right.values())
    assert all(r["accuracy"] == 0.0 for r in wrong.values())
    constant = evaluate_reward(lambda p, c: np.zeros(len(c)), suite)
    assert all(r["accuracy"] == 0.5 for r in constant.values())  # a tie counts half


def test_an_empty_category_says_to_sample_more(world):
    tiny = corpus_pairs(world, 5, 0)
    with pytest.raises(ValueError, match="sample more pairs"):
        build_eval_suite(world, tiny, tiny, hard_gap=1e-9)
