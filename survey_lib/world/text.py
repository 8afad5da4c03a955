"""The text world: short movie-review continuations with a programmatic gold reward.

Defined for chapter 01 (the LLM as a token-level policy) and the world of chapters 03-08:
a policy continues a prompt such as "the movie", a gold reward scores the continuation,
simulated annotators (`annotators.py`) turn the gold reward into noisy preferences, and a
proxy reward model learns from them imperfectly, so over-optimisation is visible.

Text is lower-case words separated by single spaces; "." and "!" are words too. A
stochastic grammar writes the pre-training corpus. The gold reward combines:

- sentiment: polarity of each adjective, flipped by "not", stronger after an intensifier,
  squashed by tanh so that piling up praise has diminishing returns;
- fluency: mean log-probability per token under a fixed trigram model of the grammar's
  corpus, mapped to a gate in (0, 1) that multiplies the rewarded parts, so that word
  salad earns nothing however positive its words;
- length: a preference for continuations near `target_length` words;
- repetition: the fraction of content words (adjectives, adverbs, nouns) already used;
- termination: a continuation must end with "." or "!".

A reward model trained on preferences sees all of this only through labelled pairs from
the policy's own samples, where fluency rarely varies, so it learns the gate poorly:
optimising it hard finds text it over-rates (chapter 04).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .._checks import check_range, check_type
from . import gated_gold

POSITIVE = ("good", "great", "wonderful", "excellent", "lovely", "fun", "moving", "brilliant")
NEGATIVE = ("bad", "awful", "boring", "dull", "terrible", "weak", "slow", "poor")
NEUTRAL = ("long", "short", "simple", "loud", "quiet", "strange", "familiar")
INTENSIFIERS = ("very", "really", "so", "truly")
SOFTENERS = ("quite", "rather")
COPULAS = ("was", "is", "felt", "seemed")
NOUNS = ("movie", "film", "plot", "story", "acting", "music", "ending", "cast", "script", "pacing")
PROMPTS = tuple(f"the {n}" for n in NOUNS) + ("this movie", "this film")
END = (".", "!")
FUNCTION_WORDS = ("the", "this", "it", "a", "and", "but", "not", "had", "i", "think")
CONTENT_WORDS = frozenset(POSITIVE + NEGATIVE + NEUTRAL + INTENSIFIERS + SOFTENERS + NOUNS)
POLARITY = {**{w: 1.0 for w in POSITIVE}, **{w: -1.0 for w in NEGATIVE}}


@dataclass(frozen=True)
class GoldWeights:
    """Weights of the gold reward's parts (chapter 03's annotators perturb them).

    gold = gate(fluency) * (sentiment * s + length * l) - repetition * p - termination * (1 - ended)
    """

    sentiment: float = 1.0
    """Weight of tanh(polarity sum / 2), in [-1, 1]."""
    length: float = 0.5
    """Weight of exp(-((n_words - target) / width)^2 / 2), in (0, 1]."""
    repetition: float = 1.0
    """Penalty per unit of the repeated-content-word fraction, in [0, 1]."""
    termination: float = 1.0
    """Penalty for a continuation that does not end with '.' or '!'."""


@dataclass
class TextWorld:
    """Prompts, a corpus grammar, a trigram fluency model and the gold reward.

    Args:
        seed: fixes the corpus that the fluency model is estimated from.
        target_length: preferred continuation length in words.
        length_width: how fast the length preference decays (words).
        fluency_midpoint: mean log-prob per token at which the fluency gate is 0.5.
        fluency_scale: width of the gate's sigmoid (nats per token).
        weights: the gold reward's weights.
        ngram_corpus_size: sentences used to estimate the trigram fluency model.
    """

    seed: int = 0
    target_length: float = 9.0
    length_width: float = 3.0
    fluency_midpoint: float = -3.0
    fluency_scale: float = 0.4
    weights: GoldWeights = field(default_factory=GoldWeights)
    ngram_corpus_size: int = 20000

    def __post_init__(self):
        check_type("seed", self.seed, int)
        check_range("target_length", self.target_length, 1)
        check_range("length_width", self.length_width, 0, low_open=True)
        check_range("fluency_scale", self.fluency_scale, 0, low_open=True)
        check_range("ngram_corpus_size", self.ngram_corpus_size, 100)

    # ----- vocabulary and grammar -------------------------------------------------------
    @property
    def prompts(self) -> tuple[str, ...]:
        return PROMPTS

    @property
    def eval_prompts(self) -> tuple[str, ...]:
        """The grammar has twelve openings; evaluation samples fresh continuations of the same."""
        return PROMPTS

    @property
    def vocabulary(self) -> list[str]:
        """Every word the grammar can write, sorted (the tokenizer adds special tokens)."""
        words = set(POSITIVE + NEGATIVE + NEUTRAL + INTENSIFIERS + SOFTENERS + COPULAS + NOUNS)
        return sorted(words | set(END) | set(FUNCTION_WORDS))

    def sample_continuation(self, rng: np.random.Generator) -> str:
        """One continuation from the corpus grammar: 1-3 clauses, then '.' or '!'.

        Sentiment is balanced overall; "but" tends to flip the next clause's polarity and
        "and" to keep it, as in real reviews.
        """
        words: list[str] = []
        polarity = int(rng.choice([1, -1, 0], p=[0.4, 0.4, 0.2]))
        n_clauses = int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))
        for i in range(n_clauses):
            if i:
                conj = "but" if rng.random() < 0.5 else "and"
                if polarity and rng.random() < 0.8:
                    polarity = -polarity if conj == "but" else polarity
                else:
                    polarity = int(rng.choice([1, -1, 0]))
                subject = ["it"] if rng.random() < 0.4 else ["the", str(rng.choice(NOUNS))]
                words += [conj, *subject]
            words += self._clause(polarity, rng)
        words.append("!" if polarity > 0 and rng.random() < 0.3 else ".")
        return " ".join(words)

    def _clause(self, polarity: int, rng: np.random.Generator) -> list[str]:
        negate = polarity != 0 and rng.random() < 0.15  # "not bad" carries positive polarity
        pool = NEUTRAL if polarity == 0 else (POSITIVE if (polarity > 0) != negate else NEGATIVE)
        adjective = str(rng.choice(pool))
        if rng.random() < 0.25:
            return ["had", "a", adjective, str(rng.choice(NOUNS))]
        words = [str(rng.choice(COPULAS))] + (["not"] if negate else [])
        r = rng.random()
        if r < 0.3:
            words.append(str(rng.choice(INTENSIFIERS)))
        elif r < 0.4:
            words.append(str(rng.choice(SOFTENERS)))
        return words + [adjective]

    def sample_corpus(self, n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
        """n (prompt, continuation) pairs from the grammar, prompts uniform."""
        prompts = rng.choice(len(PROMPTS), size=n)
        return [(PROMPTS[i], self.sample_continuation(rng)) for i in prompts]

    # ----- the fixed fluency model ------------------------------------------------------
    @cached_property
    def _trigram(self) -> tuple[Counter, Counter, int]:
        rng = np.random.default_rng(10_000 + self.seed)
        tri, bi = Counter(), Counter()
        for prompt, cont in self.sample_corpus(self.ngram_corpus_size, rng):
            words = ["<s>", "<s>", *prompt.split(), *cont.split(), "</s>"]
            for a, b, c in zip(words, words[1:], words[2:]):
                tri[a, b, c] += 1
                bi[a, b] += 1
        return tri, bi, len(self.vocabulary) + 1

    def fluency_logprob(self, prompt: str, continuation: str) -> float:
        """Mean log p(w_t | w_{t-2}, w_{t-1}) over the continuation and its end marker,
        under the add-0.01-smoothed trigram model of the grammar's corpus."""
        tri, bi, vocab = self._trigram
        context = ["<s>", "<s>", *prompt.split()]
        words = continuation.split() + ["</s>"]
        total = 0.0
        for w in words:
            a, b = context[-2], context[-1]
            total += math.log((tri[a, b, w] + 0.01) / (bi[a, b] + 0.01 * vocab))
            context.append(w)
        return total / len(words)

    # ----- the gold reward ----------------------------------------------------------------
    @staticmethod
    def sentiment(continuation: str) -> float:
        """tanh(sum of adjective polarities / 2); "not" flips, intensifiers scale by 1.5."""
        words = continuation.split()
        score = 0.0
        for i, w in enumerate(words):
            if w in POLARITY:
                prev = words[max(0, i - 2) : i]
                sign = -1.0 if "not" in prev else 1.0
                scale = 1.5 if any(p in INTENSIFIERS for p in prev) else 1.0
                score += sign * scale * POLARITY[w]
        return math.tanh(score / 2)

    @staticmethod
    def repetition(continuation: str) -> float:
        """Fraction of content words that repeat an earlier content word."""
        content = [w for w in continuation.split() if w in CONTENT_WORDS]
        return 0.0 if not content else 1 - len(set(content)) / len(content)

    def components(self, prompts: list[str], continuations: list[str]) -> dict[str, np.ndarray]:
        """Each part of the gold reward for a batch: the features annotators weigh."""
        if len(prompts) != len(continuations):
            raise ValueError(f"got {len(prompts)} prompts but {len(continuations)} continuations")
        rows = []
        for i, (p, c) in enumerate(zip(prompts, continuations)):
            if not isinstance(c, str):
                raise TypeError(f"continuation {i} must be str, got {type(c).__name__}")
            words = c.split()
            lp = self.fluency_logprob(p, c)
            rows.append(
                (
                    self.sentiment(c),
                    1 / (1 + math.exp(-(lp - self.fluency_midpoint) / self.fluency_scale)),
                    math.exp(-0.5 * ((len(words) - self.target_length) / self.length_width) ** 2),
                    self.repetition(c),
                    float(bool(words) and words[-1] in END),
                    lp,
                    float(len(words)),
                )
            )
        names = ("sentiment", "fluency", "length", "repetition", "ended", "fluency_logprob", "n_words")
        return dict(zip(names, np.array(rows, dtype=np.float64).reshape(-1, len(names)).T))

    def gold_reward(
        self, prompts: list[str], continuations: list[str], weights: GoldWeights | None = None
    ) -> np.ndarray:
        """The gold reward of each (prompt, continuation); see `GoldWeights` for the formula."""
        c, w = self.components(prompts, continuations), weights or self.weights
        return gated_gold(c["fluency"], c, w)
