"""survey_lib.stats: bootstrap intervals cover what they claim, pair when asked, fail loudly; pass@k
against counting every subset."""
import numpy as np
import pytest

from survey_lib.stats import best_of_n_accuracy, difference_interval, mean_interval, pass_at_k


def test_a_95_percent_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = [(lambda ci: ci["low"] < 1.0 < ci["high"])(mean_interval(rng.normal(1.0, 2.0, 200), resamples=500, seed=k))
               for k in range(300)]
    assert 0.91 < np.mean(covered) < 0.98


def test_the_interval_matches_the_normal_approximation_for_a_large_sample():
    values = np.random.default_rng(1).normal(0.0, 1.0, 4000)
    ci = mean_interval(values)
    half = 1.96 * values.std() / np.sqrt(len(values))
    assert ci["estimate"] == pytest.approx(values.mean())
    assert ci["high"] - ci["low"] == pytest.approx(2 * half, rel=0.1)


def test_pairing_removes_the_noise_two_measurements_share():
    """Two reward models scored on the same pairs: the items' difficulty is shared noise, so
    the paired interval of the difference is far narrower than the unpaired one."""
    rng = np.random.default_rng(2)
    difficulty = rng.normal(0, 1, 1000)
    a, b = difficulty + 0.1 + rng.normal(0, 0.1, 1000), difficulty + rng.normal(0, 0.1, 1000)
    paired, unpaired = difference_interval(a, b, paired=True), difference_interval(a, b, paired=False)
    assert paired["estimate"] == pytest.approx(unpaired["estimate"]) == pytest.approx(a.mean() - b.mean())
    assert paired["low"] > 0 > unpaired["low"]
    assert (paired["high"] - paired["low"]) < (unpaired["high"] - unpaired["low"]) / 5


def test_intervals_are_reproducible_and_bad_input_is_named():
    values = np.arange(10.0)
    assert mean_interval(values, seed=3) == mean_interval(values, seed=3)
    with pytest.raises(ValueError, match="values is empty"):
        mean_interval([])
    with pytest.raises(ValueError, match="non-finite"):
        mean_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="equal lengths"):
        difference_interval([1.0, 2.0], [1.0], paired=True)
    with pytest.raises(ValueError, match="confidence"):
        mean_interval(values, confidence=1.0)


def test_pass_at_k_is_the_chance_that_k_of_the_n_samples_include_a_right_one():
    """Against the count over every k-subset of the n samples, and its two ends: pass@1 is
    the share right, pass@n is whether any is."""
    from itertools import combinations

    rng = np.random.default_rng(0)
    correct = rng.random((20, 7)) < rng.random((20, 1))
    for k in range(1, 8):
        brute = [np.mean([row[list(s)].any() for s in combinations(range(7), k)]) for row in correct]
        np.testing.assert_allclose(pass_at_k(correct, k), brute, atol=1e-12)
    np.testing.assert_allclose(pass_at_k(correct, 1), correct.mean(1))
    np.testing.assert_array_equal(pass_at_k(correct, 7), correct.any(1))
    with pytest.raises(ValueError, match="k must satisfy"):
        pass_at_k(correct, 8)


def test_best_of_n_picks_the_top_score_in_each_group_of_n():
    correct = np.array([[1, 0, 0, 1], [0, 0, 1, 0]])
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 1.0, 2.0, 0.0]])
    np.testing.assert_allclose(best_of_n_accuracy(correct, scores, 1), correct.mean(1))
    np.testing.assert_allclose(best_of_n_accuracy(correct, scores, 2), [0.5, 0.5])  # picks (1, 3) and (0, 2)
    np.testing.assert_allclose(best_of_n_accuracy(correct, scores, 4), [0.0, 0.0])
    with pytest.raises(ValueError, match="multiple of n=3"):
        best_of_n_accuracy(correct, scores, 3)
