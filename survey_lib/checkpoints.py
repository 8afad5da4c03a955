"""Atomic training checkpoints that a later run resumes from (DESIGN section 5).

Defined for chapter 03's reward-model trainer; every survey_lib training loop uses it.

A checkpoint holds the trainable parameters (all of them for full fine-tuning, only the
adapters and heads under QLoRA), the optimiser's state, the step and the run's history,
plus a fingerprint of the data and settings: resuming with different ones is refused
rather than silently mixing two runs.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

FILENAME = "checkpoint.pt"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    directory: str | os.PathLike, model, optimizer, step: int, history: list, fingerprint: str, extra: dict | None = None
) -> Path:
    """Write `directory/checkpoint.pt` atomically: a crash leaves the previous one intact.
    `extra` holds a loop's own state (running statistics, cached reference log-probs)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "model": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "history": history,
        "fingerprint": fingerprint,
        "extra": extra or {},
    }
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".checkpoint-")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, directory / FILENAME)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return directory / FILENAME


def resume_checkpoint(directory: str | os.PathLike | None, model, optimizer, fingerprint: str) -> tuple[int, list, dict]:
    """Load the checkpoint in `directory` into model and optimiser; returns (step, history,
    extra), or (0, [], {}) when there is none."""
    if directory is None or not (Path(directory) / FILENAME).exists():
        return 0, [], {}
    state = torch.load(Path(directory) / FILENAME, weights_only=False)
    if state["fingerprint"] != fingerprint:
        raise ValueError(
            f"the checkpoint in {directory} was written for other data or settings "
            f"({state['fingerprint']} != {fingerprint}); delete it or choose another output_dir"
        )
    missing = set(trainable_state(model)) - set(state["model"])
    if missing:
        raise ValueError(f"the checkpoint in {directory} lacks parameters {sorted(missing)[:5]}; it is from another model")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in state["model"]:
                p.copy_(state["model"][name])
    optimizer.load_state_dict(state["optimizer"])
    return state["step"], state["history"], state["extra"]
