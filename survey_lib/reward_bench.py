"""A RewardBench-style evaluation suite for reward models on the text world.

Defined for chapter 03 (survey section 6.4: RewardBench, Lambert et al. 2024, arXiv
2403.13787); chapters 05 and 06 evaluate their judges and reward models with it.

Held-out pairs are labelled by the gold reward (never by annotators) and grouped:

- held_out: pairs of the policy that wrote the training data, as they come;
- easy: pairs whose gold rewards differ by at least `easy_gap`;
- hard: near-ties, gold rewards within `hard_gap`;
- length_adversarial: the longer response (by at least `length_gap` words) is the worse;
- ood: pairs from another policy (e.g. the same model sampled hotter), far from the data.

A reward (any function of prompts and completions: a `RewardModel`, an ensemble, a judge)
is scored per category by its accuracy and by the expected calibration error (Guo et al.
2017) of its probability P(y_a > y_b) = sigmoid(r_a - r_b): the confidence in the pair's
predicted winner, binned, against how often that winner is the gold one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_range
from .preference_data import ResponsePairs
from .world.text import TextWorld

CATEGORIES = ("held_out", "easy", "hard", "length_adversarial", "ood")


@dataclass
class EvalSuite:
    """Gold-labelled rows per category, with each pair's gold gap."""

    rows: dict[str, list[dict]]
    gold_gap: dict[str, np.ndarray]

    def sizes(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.rows.items()}


def build_eval_suite(
    world: TextWorld,
    held_out: ResponsePairs,
    ood: ResponsePairs,
    *,
    per_category: int = 500,
    easy_gap: float = 0.5,
    hard_gap: float = 0.1,
    length_gap: int = 3,
    seed: int = 0,
) -> EvalSuite:
    """Split gold-labelled pairs into the categories of the module docstring, at most
    `per_category` each (exact gold ties are left out: they have no right answer)."""
    check_range("per_category", per_category, 1)
    check_range("hard_gap", hard_gap, 0, easy_gap, low_open=True)
    rng = np.random.default_rng(seed)

    gold, gold_ood = held_out.gold_gap(world), ood.gold_gap(world)
    words = np.array([len(a.split()) - len(b.split()) for a, b in zip(held_out.first, held_out.second)])
    masks = {
        "held_out": gold != 0,
        "easy": np.abs(gold) >= easy_gap,
        "hard": (gold != 0) & (np.abs(gold) < hard_gap),
        "length_adversarial": (np.abs(words) >= length_gap) & (np.sign(words) == -np.sign(gold)),
    }
    suite = EvalSuite({}, {})
    categories = {**{k: (held_out, gold, m) for k, m in masks.items()}, "ood": (ood, gold_ood, gold_ood != 0)}
    for name, (pairs, gap, mask) in categories.items():
        index = np.flatnonzero(mask)
        if index.size == 0:
            raise ValueError(f"no pairs fall in category {name!r}; sample more pairs")
        index = np.sort(rng.choice(index, size=min(per_category, index.size), replace=False))
        suite.rows[name], suite.gold_gap[name] = pairs.select(index).gold_rows(world, gap[index])
    return suite


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10):
    """Bin confidences in [0.5, 1] into `n_bins` equal bins: (mean confidence, accuracy,
    count) per non-empty bin: the points of a reliability diagram."""
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    out = [(confidence[which == b].mean(), correct[which == b].mean(), int((which == b).sum())) for b in range(n_bins) if (which == b).any()]
    return tuple(np.array(col) for col in zip(*out))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """sum_b (n_b / n) |accuracy_b - confidence_b| over the bins of `reliability_bins`."""
    mean_confidence, accuracy, count = reliability_bins(np.asarray(confidence, float), np.asarray(correct, float), n_bins)
    return float((count * np.abs(accuracy - mean_confidence)).sum() / count.sum())


def evaluate_reward(reward, suite: EvalSuite) -> dict[str, dict[str, float]]:
    """Accuracy and ECE of `reward(prompts, completions) -> scores` per category.

    A tie in reward counts as half right. `suite_points` gives the points behind each
    number (e.g. for a reliability diagram); `summarize_points` turns them into these.
    """
    return summarize_points(suite_points(reward, suite))


def suite_points(reward, suite: EvalSuite) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`pair_confidence` on each category: score once, read the summary and the points."""
    return {name: pair_confidence(reward, rows) for name, rows in suite.rows.items()}


def summarize_points(points: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Accuracy, ECE and pair count per category of `suite_points`."""
    return {
        name: {"accuracy": float(correct.mean()), "ece": expected_calibration_error(confidence, correct), "n": len(correct)}
        for name, (confidence, correct) in points.items()
    }


def pair_confidence(reward, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(confidence in the predicted winner, 1/0 whether it is the gold winner, 0.5 on a tie)."""
    prompts = [r["prompt"] for r in rows]
    gap = np.asarray(reward(prompts, [r["chosen"] for r in rows]), float) - np.asarray(reward(prompts, [r["rejected"] for r in rows]), float)
    confidence = 1 / (1 + np.exp(-np.abs(gap)))
    correct = np.where(gap == 0, 0.5, (gap > 0).astype(float))
    return confidence, correct
