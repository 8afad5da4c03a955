"""A world over real prompts, scored by a gold reward the policy never sees: `ChatWorld`.

Defined for the real-model profiles (issue 14): `small` (SmolLM2 on review requests scored by
`reviews.ReviewGold`), `colab` and `gpu` (Hub prompt sets scored by a Hub reward model).

This is Gao et al.'s synthetic-gold setup (arXiv 2210.10760, section 2): a fixed gold reward
stands in for humans; the policy and the proxy reward model see it only through labels that
simulated annotators (`annotators.py`) draw from it. A world offers what every chapter reads:

- `prompts` and `eval_prompts`: TRL's prompt formats, a plain string or a conversation (a
  list of {"role", "content"} messages ending with a user turn);
- `gold_reward(prompts, completions, weights=None)`: one score per (prompt, completion);
- `weights`: the gold's weights (a frozen dataclass of floats), which each simulated
  annotator perturbs.
- `sentiment(completion)`, where the gold has one (the review worlds): chapter 08's negatives.

`TextWorld` (the tiny profile) offers the same, so chapters read any world from their profile.
This module imports only NumPy; a gold reward model loads transformers when it is built.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .._checks import check_range, check_type

ROLES = ("system", "user", "assistant")


class PromptDataError(ValueError):
    """A prompt is malformed; the message names its row."""


@dataclass(frozen=True)
class RewardScale:
    """The one weight of a gold that is a single score (a reward model, a Python function):
    annotators with `disagreement` each see it at their own scale."""

    reward: float = 1.0


def check_prompts(prompts, what: str = "prompts") -> tuple:
    """The prompts as a tuple, each a non-empty string or a conversation ending with a user
    turn; raises `PromptDataError` naming the first bad row."""
    prompts = tuple(prompts)
    if not prompts:
        raise PromptDataError(f"{what} is empty")
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            if not p.strip():
                raise PromptDataError(f"{what} row {i}: the prompt is empty")
            continue
        if not isinstance(p, (list, tuple)) or not p:
            raise PromptDataError(f"{what} row {i}: a prompt must be a string or a list of messages, got {type(p).__name__}")
        for j, m in enumerate(p):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise PromptDataError(f"{what} row {i}, message {j}: expected {{'role': one of {ROLES}, 'content': str}}, got {m!r}")
            if not m["content"].strip():
                raise PromptDataError(f"{what} row {i}, message {j}: the content is empty")
        if p[-1]["role"] != "user":
            raise PromptDataError(f"{what} row {i}: a conversational prompt must end with a user turn, not {p[-1]['role']!r}")
    return tuple(p if isinstance(p, str) else [dict(m) for m in p] for p in prompts)


def load_prompts(source, *, split: str = "train", limit: int | None = None, column: str = "prompt") -> tuple:
    """Prompts from a list, a local .jsonl/.json/.parquet/.csv file, a `save_to_disk`
    directory or a Hub dataset id (e.g. "trl-lib/ultrafeedback-prompt"), in TRL's prompt
    formats; validated row by row (`check_prompts`)."""
    if isinstance(source, (list, tuple)):
        return check_prompts(source[:limit] if limit else source)
    check_type("prompts", source, (str, os.PathLike))
    from ..data_files import load_rows

    rows = load_rows(source, split, limit, offline_hint="pass a local .jsonl of prompts or use the tiny or small profile")
    if rows and column not in rows[0]:
        raise PromptDataError(f"{os.fspath(source)!r} has no {column!r} column; its columns: {sorted(rows[0])}")
    return check_prompts([r[column] for r in rows], what=os.fspath(source))


def as_messages(prompt, completion: str) -> list[dict]:
    """The conversation of a (prompt, completion): a plain prompt becomes the user turn."""
    head = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return head + [{"role": "assistant", "content": completion}]


class ScaledGold:
    """A Python function `f(prompts, completions) -> scores` as a gold with one weight."""

    def __init__(self, function: Callable):
        self.function, self.weights = function, RewardScale()

    def __call__(self, prompts, completions, weights: RewardScale | None = None) -> np.ndarray:
        return (weights or self.weights).reward * np.asarray(self.function(prompts, completions), dtype=np.float64)


class RewardModelGold:
    """The gold reward from a reward model: a sequence classifier with one label (a Hub id
    such as "Skywork/Skywork-Reward-V2-Qwen3-0.6B", or a local directory), frozen, scoring each
    (prompt, completion) as a conversation rendered by its own chat template.

    Args:
        name_or_path: the reward model.
        settings: a `models.ModelSettings` (precision, quantisation, device); adapters are
            never added to a gold model.
        batch_size: conversations scored per forward pass.
    """

    def __init__(self, name_or_path, settings=None, *, batch_size: int = 8):
        from dataclasses import replace

        from transformers import AutoConfig

        from ..models import ModelSettings, load_model, resolve_model_path

        check_type("batch_size", batch_size, int)
        check_range("batch_size", batch_size, 1)
        path = resolve_model_path(name_or_path)
        config = AutoConfig.from_pretrained(path)
        architectures = config.architectures or []
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            raise ValueError(f"gold model {os.fspath(name_or_path)!r} is not a sequence classifier (its architectures: "
                             f"{architectures}); a gold reward model needs a one-label classification head")
        if config.num_labels != 1:
            raise ValueError(f"gold model {os.fspath(name_or_path)!r} has {config.num_labels} labels; a reward model has one")
        self.model, self.tokenizer = load_model(path, replace(settings or ModelSettings(), lora=None), head="reward")
        if not self.tokenizer.chat_template:
            raise ValueError(f"gold model {os.fspath(name_or_path)!r} has no chat template to render conversations with")
        self.model.eval().requires_grad_(False)
        self.batch_size, self.weights = batch_size, RewardScale()

    def __call__(self, prompts, completions, weights: RewardScale | None = None) -> np.ndarray:
        import torch

        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
        texts = [self.tokenizer.apply_chat_template(as_messages(p, c), tokenize=False) for p, c in zip(prompts, completions)]
        scores = []
        padding_side, self.tokenizer.padding_side = self.tokenizer.padding_side, "right"
        try:
            with torch.no_grad():
                for i in range(0, len(texts), self.batch_size):
                    batch = self.tokenizer(texts[i : i + self.batch_size], return_tensors="pt", padding=True,
                                           add_special_tokens=False).to(self.model.device)
                    scores.append(self.model(**batch).logits[:, 0].float().cpu())
        finally:
            self.tokenizer.padding_side = padding_side
        return (weights or self.weights).reward * torch.cat(scores).numpy().astype(np.float64)


def make_gold(gold, settings=None):
    """A gold scorer from a scorer (anything with `weights` and a `weights` argument), a plain
    function of (prompts, completions), or a reward model's Hub id or directory."""
    if isinstance(gold, (str, os.PathLike)):
        return RewardModelGold(gold, settings)
    if not callable(gold):
        raise TypeError(f"gold must be a reward model's id or path, or a function of (prompts, completions); got {type(gold).__name__}")
    return gold if hasattr(gold, "weights") else ScaledGold(gold)


@dataclass
class ChatWorld:
    """Prompts and a gold reward (see the module docstring). Build one with `from_sources`."""

    prompts: tuple
    eval_prompts: tuple
    gold: Callable = field(repr=False)

    @classmethod
    def from_sources(cls, prompts, gold, *, eval_prompts=None, eval_fraction: float = 0.2, seed: int = 0,
                     split: str = "train", limit: int | None = None, settings=None) -> ChatWorld:
        """A world from a prompt source (see `load_prompts`) and a gold (see `make_gold`).
        Without `eval_prompts`, a seeded `eval_fraction` of the prompts is held out."""
        loaded = load_prompts(prompts, split=split, limit=limit)
        if eval_prompts is not None:
            train, held_out = loaded, load_prompts(eval_prompts, split=split, limit=limit)
        else:
            check_range("eval_fraction", eval_fraction, 0, 1, low_open=True, high_open=True)
            if len(loaded) < 2:
                raise PromptDataError(f"{len(loaded)} prompt cannot be split into training and evaluation prompts")
            order = np.random.default_rng(seed).permutation(len(loaded))
            n_eval = min(len(loaded) - 1, max(1, math.ceil(eval_fraction * len(loaded))))
            train = tuple(loaded[i] for i in sorted(order[n_eval:]))
            held_out = tuple(loaded[i] for i in sorted(order[:n_eval]))
        return cls(train, held_out, make_gold(gold, settings))

    @property
    def weights(self):
        return self.gold.weights

    def sentiment(self, completion: str) -> float:
        """The gold's sentiment score of one completion, in [-1, 1], where the gold has one
        (`ReviewGold`: VADER); chapter 08's negatives are the completions scored below 0."""
        if not hasattr(self.gold, "sentiment"):
            raise AttributeError(f"this world's gold ({type(self.gold).__name__}) scores no sentiment; chapter 08's "
                                 "negatives need one (the tiny and small profiles' worlds have it)")
        return self.gold.sentiment(completion)

    def gold_reward(self, prompts, completions, weights=None) -> np.ndarray:
        scores = np.asarray(self.gold(list(prompts), list(completions), weights), dtype=np.float64)
        if scores.shape != (len(completions),):
            raise ValueError(f"the gold returned shape {scores.shape} for {len(completions)} completions")
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            raise FloatingPointError(f"the gold reward is not finite for rows {bad[:10].tolist()}")
        return scores
