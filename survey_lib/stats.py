"""How sure a measured effect is: percentile-bootstrap intervals over evaluation samples.

Defined for the chapters' headline comparisons (chapters 03, 05 and 08 state their claims
with these intervals, and the tests in `tests/test_chapters.py` assert the claims at that
confidence rather than at a threshold copied from one run).

An interval here covers the noise of the *evaluation*: which prompts and samples a number
was measured on. It does not cover the noise of training (another seed trains another
model); where that matters the chapters say so, or repeat the training where it is cheap.
The percentile bootstrap (Efron & Tibshirani 1993) resamples the samples with
replacement and reads the interval off the quantiles of the resampled statistic.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_range

RESAMPLES = 2_000
CONFIDENCE = 0.95


def _resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    index = rng.integers(len(values), size=(resamples, len(values)))
    return values[index].mean(axis=1)


def _interval(estimate: float, resampled: np.ndarray, confidence: float) -> dict[str, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return {"estimate": float(estimate), "low": float(low), "high": float(high)}


def mean_interval(values, *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, float]:
    """{"estimate", "low", "high"}: the mean of `values` and its percentile-bootstrap
    interval at `confidence`."""
    values = _check_values("values", values)
    check_range("confidence", confidence, 0, 1, low_open=True, high_open=True)
    check_range("resamples", resamples, 1)
    rng = np.random.default_rng(seed)
    return _interval(values.mean(), _resampled_means(values, resamples, rng), confidence)


def difference_interval(a, b, *, paired: bool, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                        seed: int = 0) -> dict[str, float]:
    """{"estimate", "low", "high"} for mean(a) - mean(b).

    `paired`: a[i] and b[i] were measured on the same item (the same evaluation pair scored
    by two reward models), so the items are resampled together; otherwise the two samples
    are resampled independently (two policies' samples on the evaluation prompts).
    """
    a, b = _check_values("a", a), _check_values("b", b)
    check_range("confidence", confidence, 0, 1, low_open=True, high_open=True)
    check_range("resamples", resamples, 1)
    rng = np.random.default_rng(seed)
    if paired:
        if len(a) != len(b):
            raise ValueError(f"paired samples must have equal lengths, got {len(a)} and {len(b)}")
        return _interval(a.mean() - b.mean(), _resampled_means(a - b, resamples, rng), confidence)
    resampled = _resampled_means(a, resamples, rng) - _resampled_means(b, resamples, rng)
    return _interval(a.mean() - b.mean(), resampled, confidence)


def pass_at_k(correct, k: int) -> np.ndarray:
    """The unbiased estimate of pass@k per problem (Chen et al. 2021, arXiv 2107.03374,
    section 2.1): from n samples of which c are right, 1 - C(n - c, k) / C(n, k), the chance
    that k samples drawn without replacement from the n include a right one (chapter 09).

    `correct` is [problems, n] booleans; k <= n. Computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i),
    which never forms the large binomials."""
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2:
        raise ValueError(f"correct must be [problems, samples], got shape {correct.shape}")
    n = correct.shape[1]
    check_range("k", k, 1, n)
    c = correct.sum(1)
    out = np.ones(len(c))
    for row, right in enumerate(c):
        if n - right >= k:  # otherwise every draw of k holds a right sample
            out[row] = 1.0 - np.prod(1.0 - k / np.arange(n - right + 1, n + 1))
    return out


def best_of_n_accuracy(correct, scores, n: int) -> np.ndarray:
    """Per problem, how often the highest-scored of n samples is right: the samples ([problems,
    N], N a multiple of n) are cut into N / n disjoint groups of n and the groups averaged, so
    that every sample is used (chapter 09's process vs outcome reward models)."""
    correct, scores = np.asarray(correct, dtype=float), np.asarray(scores, dtype=float)
    if correct.shape != scores.shape or correct.ndim != 2 or correct.shape[1] % n:
        raise ValueError(f"correct {correct.shape} and scores {scores.shape} must be [problems, N] with N a multiple of n={n}")
    groups = correct.shape[1] // n
    pick = scores.reshape(len(scores), groups, n).argmax(-1)
    return np.take_along_axis(correct.reshape(len(correct), groups, n), pick[..., None], -1)[..., 0].mean(1)


def _check_values(name: str, values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError(f"{name} is empty: an interval needs at least one sample")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(values)).sum())} non-finite values")
    return values
