"""Simulated human annotators: preference labels drawn from the gold reward.

Defined for the foundation (chapter 01 introduces the world) and used by chapter 03
(reward models from human feedback) and every chapter that learns from preferences.

They label any world (`survey_lib.world.World`): the tiny grammar world or a `ChatWorld`.
Each annotator j has their own weights w_j on the gold reward's parts (log-normal
perturbations of each of the world's gold weights: `disagreement`), and judges a pair (a shown first, b
second) by the Bradley-Terry model (Bradley & Terry 1952; as in InstructGPT, 2203.02155):

    u_j(y) = gold(y; w_j) + length_bias * n_words(y)
    P(a > b) = sigmoid((u_j(a) - u_j(b)) / temperature + position_bias)

and with probability `flip_rate` the click lands on the other response (careless labels).

Like Llama 2's annotators (2307.09288, section 3.2.1) each also rates how much better the
winner is, on four levels read from their own confidence |P(a > b) - 1/2| before any
flip; `preference_data.labelled_rows(..., margin=True)` turns the rating into Llama 2's
margin m(r) for the reward model's loss -log sigmoid(r_chosen - r_rejected - m(r)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from .._checks import check_range, check_type
from . import World


@dataclass(frozen=True)
class AnnotatorConfig:
    """How a pool of simulated annotators labels pairs."""

    n_annotators: int = 5
    """Size of the pool; each pair goes to one annotator drawn uniformly."""
    temperature: float = 0.2
    """Bradley-Terry scale: smaller means sharper, more consistent judgements."""
    flip_rate: float = 0.0
    """Probability that a label is flipped after the judgement (label noise), in [0, 0.5]."""
    disagreement: float = 0.0
    """Std of each annotator's log-normal perturbation of the gold weights."""
    length_bias: float = 0.0
    """Extra utility per word: > 0 means annotators favour longer responses."""
    position_bias: float = 0.0
    """Log-odds added in favour of the response shown first."""
    seed: int = 0
    """Fixes the annotators' weights and, unless an rng is passed, their labels."""

    def __post_init__(self):
        check_type("n_annotators", self.n_annotators, int)
        check_range("n_annotators", self.n_annotators, 1)
        check_range("temperature", self.temperature, 0, low_open=True)
        check_range("flip_rate", self.flip_rate, 0, 0.5)
        check_range("disagreement", self.disagreement, 0)
        check_range("length_bias", self.length_bias)
        check_range("position_bias", self.position_bias)


RATINGS = ("negligibly better", "slightly better", "better", "significantly better")
RATING_CONFIDENCE = (0.1, 0.25, 0.4)
"""Lower edges of |P(a > b) - 1/2| for the 2nd, 3rd and 4th rating."""
LLAMA2_MARGIN = (0.0, 1 / 3, 2 / 3, 1.0)
"""Llama 2's small-margin variant, per rating (2307.09288, section 3.2.2)."""


@dataclass
class PreferenceLabels:
    """Labels for pairs (a, b): `first_preferred[i]` is True when a_i won; `rating[i]`
    indexes `RATINGS`."""

    first_preferred: np.ndarray
    annotator: np.ndarray
    probability_first: np.ndarray
    rating: np.ndarray


class SimulatedAnnotators:
    """A pool of annotators judging a world's responses; see the module docstring."""

    def __init__(self, world: World, config: AnnotatorConfig | None = None):
        self.world, self.config = world, config or AnnotatorConfig()
        rng = np.random.default_rng(self.config.seed)
        base = world.weights
        self.weights = [  # one perturbed copy of the world's gold weights per annotator
            replace(
                base,
                **{
                    f.name: getattr(base, f.name) * math.exp(self.config.disagreement * rng.standard_normal())
                    for f in fields(base)
                },
            )
            for _ in range(self.config.n_annotators)
        ]
        self._rng = np.random.default_rng(self.config.seed + 1)

    def utility(self, prompts, continuations, annotator: int) -> np.ndarray:
        """u_j(y): the annotator's gold reward plus their length bias."""
        reward = self.world.gold_reward(prompts, continuations, self.weights[annotator])
        lengths = np.array([len(c.split()) for c in continuations], dtype=np.float64)
        return reward + self.config.length_bias * lengths

    def probability_first(self, prompts, first, second, annotators: np.ndarray, *, careless: bool = True) -> np.ndarray:
        """P(first preferred) for each pair under the given annotators (with `careless`,
        including the flip rate)."""
        cfg = self.config
        p = np.empty(len(prompts))
        for j in np.unique(annotators):
            idx = np.flatnonzero(annotators == j)
            sub = lambda xs: [xs[i] for i in idx]  # noqa: E731
            diff = self.utility(sub(prompts), sub(first), j) - self.utility(sub(prompts), sub(second), j)
            p[idx] = 1 / (1 + np.exp(-(diff / cfg.temperature + cfg.position_bias)))
        return (1 - cfg.flip_rate) * p + cfg.flip_rate * (1 - p) if careless else p

    def label(self, prompts, first, second, rng: np.random.Generator | None = None) -> PreferenceLabels:
        """Draw one label per pair, each from an annotator chosen uniformly from the pool."""
        if not (len(prompts) == len(first) == len(second)):
            raise ValueError(f"prompts, first and second differ in length: {len(prompts)}, {len(first)}, {len(second)}")
        rng = rng or self._rng
        annotators = rng.integers(self.config.n_annotators, size=len(prompts))
        judged = self.probability_first(prompts, first, second, annotators, careless=False)
        flip = self.config.flip_rate
        p = (1 - flip) * judged + flip * (1 - judged)
        rating = np.searchsorted(RATING_CONFIDENCE, np.abs(judged - 0.5), side="right")
        return PreferenceLabels(rng.random(len(prompts)) < p, annotators, p, rating)


def gold_agreement(world: World, prompts, first, second, labels: PreferenceLabels) -> float:
    """Fraction of labels that pick the response with the higher gold reward (ties skipped)."""
    diff = world.gold_reward(prompts, first) - world.gold_reward(prompts, second)
    decided = diff != 0
    if not decided.any():
        raise ValueError("every pair is a gold tie; agreement is undefined")
    return float(((diff > 0) == labels.first_preferred)[decided].mean())
