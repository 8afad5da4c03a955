"""The worlds chapters measure in: prompts, a gold reward, and simulated people who judge by it.

A world is whatever offers `World`'s members: `text.TextWorld` (the tiny profile's grammar
world) and `chat.ChatWorld` (real prompts for the small, colab and gpu profiles). A chapter
gets its world from its profile (`chapter.profile.world(seed)`), and `annotators` label any
world through this interface.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np


class World(Protocol):
    prompts: Sequence
    """Training prompts: strings, or conversations (TRL's prompt formats)."""
    eval_prompts: Sequence
    """Held-out prompts for evaluation."""
    weights: object
    """The gold reward's weights, a frozen dataclass of floats; annotators perturb each."""

    def gold_reward(self, prompts, completions, weights=None) -> np.ndarray:
        """One gold score per (prompt, completion), under `weights` (default: the world's)."""


def gated_gold(gate: np.ndarray, parts: dict[str, np.ndarray], weights) -> np.ndarray:
    """gate * (sentiment * s + length * l) - repetition * p - termination * (1 - ended): the
    gold of both review worlds (`text.TextWorld`, gated by fluency; `reviews.ReviewGold`, by
    clean text), so that text the gate rejects earns nothing however positive its words."""
    return (
        gate * (weights.sentiment * parts["sentiment"] + weights.length * parts["length"])
        - weights.repetition * parts["repetition"]
        - weights.termination * (1 - parts["ended"])
    )
