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
