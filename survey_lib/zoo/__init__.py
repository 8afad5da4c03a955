"""The tiny model zoo: small causal LMs pre-trained on the embedded world.

Defined for the foundation; the `tiny` profile of every chapter loads these models.

Each model is a Llama-architecture causal LM (the same code path, module names and LoRA
targets as the Hub models of the `colab` and `gpu` profiles, only smaller) with a
tokenizer built locally (`survey_lib.tokenization`). Not Qwen2: transformers 5 replaces a
qwen2 checkpoint's tokenizer with Qwen's byte-level one under `AutoTokenizer`, which
would garble our word-level vocabulary wherever TRL loads the tokenizer by path. The weights are committed under `zoo/artifacts/<name>/`
(a few hundred KB each), so a chapter loads them in well under a second.

This module is the registry (`ZooSpec`, `ZOO`, `zoo_path`) and imports neither torch nor
transformers; how a model is pre-trained lives in `survey_lib.zoo.build`. Rebuild with

    python -m survey_lib.zoo build            # every model
    python -m survey_lib.zoo build tiny-text-lm

The build is deterministic for a seed on one torch build: it runs single-threaded with
fixed seeds, and `manifest.json` records the weights' SHA-256 so a rebuild can be checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._checks import check_choice

ARTIFACTS = Path(__file__).parent / "artifacts"


@dataclass(frozen=True)
class ZooSpec:
    """Shape and pre-training recipe of one zoo model."""

    name: str
    world: str
    """"text" (movie-review continuations), "arithmetic" (a+b=), "judge" (reviews and
    judgements of them, `zoo.build.JudgeCurriculum`), "columns" (a+b= with written work,
    `world.column_addition`) or "columns-base" (the same, work shown rarely)."""
    description: str
    tokenizer_level: str = "word"
    """"word" or "char" (`survey_lib.tokenization`)."""
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 192
    max_positions: int = 64
    steps: int = 1500
    """Optimiser steps of pre-training."""
    batch_size: int = 64
    learning_rate: float = 3e-3
    completion_only: bool = False
    """Train on the completion tokens only (the prompt is given, not modelled)."""
    seed: int = 0


_CHARACTER_ADDER = dict(tokenizer_level="char", hidden_size=128, num_layers=3, intermediate_size=384, steps=2500,
                        batch_size=128, learning_rate=2e-3, completion_only=True)
"""The shape and recipe of the three adders (`tiny-arith-lm`, `tiny-columns-lm`, `tiny-columns-base-lm`)."""

ZOO: dict[str, ZooSpec] = {
    s.name: s
    for s in (
        ZooSpec(
            "tiny-text-lm",
            "text",
            "word-level LM of the text world's review grammar: the SFT policy of chapters 01-08",
        ),
        ZooSpec(
            "tiny-arith-lm",
            "arithmetic",
            "character-level LM of a+b= with carries forgotten half the time: partly right, for RL",
            **_CHARACTER_ADDER,
        ),
        ZooSpec(
            "tiny-judge-lm",
            "judge",
            "word-level LM that writes reviews and judges them (pairwise A/B, pointwise yes/no): chapter 05's AI labeler",
            hidden_size=96,
            num_layers=3,
            intermediate_size=288,
            max_positions=128,
            steps=2000,
            batch_size=96,
            learning_rate=2e-3,
            completion_only=True,
        ),
        ZooSpec(
            "tiny-columns-lm",
            "columns",
            "character-level LM that adds with written work, column by column, with a pupil's planted errors: "
            "chapter 09's reasoning policy",
            max_positions=96,  # written work is up to 59 characters
            **_CHARACTER_ADDER,
        ),
        ZooSpec(
            "tiny-columns-base-lm",
            "columns-base",
            "the same task, written work in 3% of its corpus: chapter 09's base model for R1-Zero",
            max_positions=96,  # written work is up to 59 characters
            **_CHARACTER_ADDER,
        ),
    )
}


def zoo_path(name: str) -> Path:
    """Directory of a zoo model, loadable with `from_pretrained`."""
    check_choice("zoo model", name, ZOO)
    path = ARTIFACTS / name
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"zoo model {name!r} is missing at {path}; rebuild it: python -m survey_lib.zoo build {name}")
    return path
