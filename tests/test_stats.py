"""survey_lib.stats: bootstrap intervals cover what they claim, pair when asked, fail loudly."""
import numpy as np
import pytest

from survey_lib.stats import difference_interval, mean_interval


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
