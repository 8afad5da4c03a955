"""The `small` profile's gold reward: a movie review, scored for sentiment in real English.

Defined for the `small` profile (issue 14), whose world is a `ChatWorld` over the prompts in
`data/review_prompts.jsonl` (320 review requests about made-up films, written for this
project) scored by `ReviewGold`. It is the DPO paper's IMDb task (Rafailov et al. 2023,
arXiv 2305.18290, section 6.1: steer generations towards positive sentiment) for an
instruct model, with a gold reward that no model here was trained on:

    gold = clean * (sentiment * s + length * l) - repetition * p - termination * (1 - ended)

- sentiment: VADER's compound score of the response (Hutto & Gilbert 2014; the lexicon ships
  with the `vaderSentiment` package), in [-1, 1];
- length: exp(-((n_words - target_words) / length_width)^2 / 2), a preference for reviews of
  about `target_words` words;
- clean: the fraction of whitespace-separated tokens that look like words, a gate that makes
  symbol or emoji spam worth nothing however positive VADER finds it;
- repetition: the fraction of word trigrams that repeat an earlier one ("great great great");
- ended: 1 when the response ends a sentence (".", "!", "?", optionally closed by a quote or
  bracket), so a review cut off by the token limit is penalised.

As in the tiny world, the parts that punish hacks (repetition, the gate) are exactly what a
reward model fitted to a few thousand labels of fluent SFT samples rarely sees vary.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from .._checks import check_range
from . import gated_gold

REVIEW_PROMPTS = Path(__file__).parent / "data" / "review_prompts.jsonl"
WORD = re.compile(r"""^["'(\[]*[A-Za-z][A-Za-z'\-]*[.,!?;:"')\]]*$""")
SENTENCE_END = re.compile(r"""[.!?]["')\]]*$""")


@dataclass(frozen=True)
class ReviewWeights:
    """Weights of `ReviewGold`'s parts (simulated annotators perturb each)."""

    sentiment: float = 1.0
    """Weight of VADER's compound score, in [-1, 1]."""
    length: float = 0.5
    """Weight of the length preference, in (0, 1]."""
    repetition: float = 1.0
    """Penalty per unit of the repeated-trigram fraction, in [0, 1]."""
    termination: float = 1.0
    """Penalty for a response that does not end a sentence."""


@cache
def _vader():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError("the review world's gold reward needs VADER: pip install vaderSentiment") from err
    return SentimentIntensityAnalyzer()


@dataclass(frozen=True)
class ReviewGold:
    """A Python gold scorer for review requests: `gold(prompts, completions, weights=None)`."""

    target_words: float = 40.0
    """Preferred review length in words."""
    length_width: float = 15.0
    """How fast the length preference decays (words)."""
    weights: ReviewWeights = field(default_factory=ReviewWeights)

    def __post_init__(self):
        check_range("target_words", self.target_words, 1)
        check_range("length_width", self.length_width, 0, low_open=True)

    @staticmethod
    def sentiment(completion: str) -> float:
        """VADER's compound score of a completion, in [-1, 1] (chapter 08 screens negative
        reviews with it)."""
        return _vader().polarity_scores(completion)["compound"]

    @staticmethod
    def repetition(words: list[str]) -> float:
        trigrams = [tuple(w.lower().strip(".,!?;:\"'()") for w in words[i : i + 3]) for i in range(len(words) - 2)]
        return 0.0 if not trigrams else 1 - len(set(trigrams)) / len(trigrams)

    def components(self, prompts: list, completions: list[str]) -> dict[str, np.ndarray]:
        """Each part of the gold reward for a batch (the prompts are not scored)."""
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
        rows = []
        for i, c in enumerate(completions):
            if not isinstance(c, str):
                raise TypeError(f"completion {i} must be str, got {type(c).__name__}")
            words = c.split()
            rows.append((
                self.sentiment(c),
                float(np.exp(-0.5 * ((len(words) - self.target_words) / self.length_width) ** 2)),
                sum(bool(WORD.match(w)) for w in words) / len(words) if words else 0.0,
                self.repetition(words),
                float(bool(SENTENCE_END.search(c.rstrip()))),
                float(len(words)),
            ))
        names = ("sentiment", "length", "clean", "repetition", "ended", "n_words")
        return dict(zip(names, np.array(rows, dtype=np.float64).reshape(-1, len(names)).T))

    def __call__(self, prompts: list, completions: list[str], weights: ReviewWeights | None = None) -> np.ndarray:
        c, w = self.components(prompts, completions), weights or self.weights
        return gated_gold(c["clean"], c, w)
