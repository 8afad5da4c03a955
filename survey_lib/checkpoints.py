"""Atomic training checkpoints that a later run resumes from, so that an interrupted run
(a closed notebook, an ended Colab session) continues where it stopped.

Defined for chapter 03's reward-model trainer; every survey_lib training loop uses it.

A checkpoint holds the trainable parameters (all of them for full fine-tuning, only the
adapters and heads under QLoRA), the optimiser's state, the step and the run's history,
plus a fingerprint of the data and settings: resuming with different ones is refused
rather than silently mixing two runs. Resuming unpickles tensors and plain Python types
only (`torch.load(weights_only=True)`): a checkpoint directory from elsewhere cannot run code.
"""
from __future__ import annotations

import hashlib
import math
import os
import pickle
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .dashboard import live_curves

FILENAME = "checkpoint.pt"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    directory: str | os.PathLike, model, optimizer, step: int, history: list, fingerprint: str, extra: dict | None = None
) -> Path:
    """Write `directory/checkpoint.pt` atomically: a crash leaves the previous one intact.
    `extra` holds a loop's own state (running statistics, cached reference log-probs, a
    generator's state) as tensors and plain Python types, the only ones a resume loads."""
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
    extra), or (0, [], {}) when there is none. A file holding anything but tensors and plain
    Python types is refused before that is built: unpickling it could run any code."""
    if directory is None or not (path := Path(directory) / FILENAME).exists():
        return 0, [], {}
    try:
        state = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds objects other than tensors and plain Python types, so it was not written by "
            "survey_lib or is unsafe to load; delete it or choose another output_dir"
        ) from error
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


# ---------------------------------------------------------------- what every training loop shares


def settings_fingerprint(config, *data) -> str:
    """16 hex digits identifying a run: the config's type and every setting except where and
    how often checkpoints are written, and the data (anything with a stable `repr`)."""
    settings = {k: v for k, v in asdict(config).items() if k not in ("output_dir", "save_steps")}
    return hashlib.sha256(repr((type(config).__name__, settings, data)).encode()).hexdigest()[:16]


def epoch_batch(step: int, n: int, batch: int, seed: int, *, stream: int = 0) -> list[int]:
    """Row indices of optimiser step `step` over `n` rows: each epoch a fresh seeded shuffle,
    cut into batches of `batch` (the last one may be short). Deterministic in (step, seed,
    stream), so a resumed run sees the batches the interrupted one would have; `stream`
    separates independent orders of one run (sDPO's chunks, chapter 07)."""
    epoch, k = divmod(step, math.ceil(n / batch))
    generator = torch.Generator().manual_seed(seed * 100_003 + stream * 1_009 + epoch)
    order = torch.randperm(n, generator=generator)
    return order[k * batch : (k + 1) * batch].tolist()


class TrainingLoop:
    """The bookkeeping around a training loop's math, so that each trainer shows only its
    loss (every trainer of survey_lib: reward models, verifiers, preference losses, and
    through `online_rl.OnlineRun` PPO, RLOO and GRPO).

    On creation it resumes from `config.output_dir` when that holds a checkpoint of the
    same run (`settings_fingerprint` of `config` and `data`); `start`, `history` and
    `extra` (the loop's own state) are then the checkpoint's. `update` takes one
    optimiser step on a loss, refusing a non-finite one (`accumulate` adds micro-batches'
    gradients to it first); `record` appends a step's
    statistics and writes a checkpoint every `config.save_steps` steps and at the last.
    `config` needs `output_dir` (None: no checkpoints) and `save_steps`.
    """

    def __init__(self, model: torch.nn.Module, optimizer, config, *data):
        self.model, self.optimizer, self.config = model, optimizer, config
        self.fingerprint = settings_fingerprint(config, *data)
        self.start, self.history, self.extra = resume_checkpoint(config.output_dir, model, optimizer, self.fingerprint)
        self.total, self.dashboard = None, None  # set by `steps`
        self._new_step = True  # the next backward starts a fresh gradient

    def steps(self, total: int, desc: str, progress: bool):
        """Steps `start` .. `total` - 1, with a progress bar when `progress`; in a notebook,
        `record` also draws the run's live curves (`dashboard.live_curves`)."""
        self.total, self.dashboard = total, live_curves(desc)
        return tqdm(range(self.start, total), desc=desc, disable=not progress, initial=self.start, total=total)

    def accumulate(self, loss: torch.Tensor, step: int, *, rows=None) -> None:
        """Add `loss`'s gradient to the step's, without stepping: one micro-batch of a step
        cut into several (gradient accumulation); `update` takes the step with the last one.
        A NaN or inf loss raises naming the step and `rows`, the batch's first row indices."""
        if not torch.isfinite(loss):
            where = "" if rows is None else f" on rows {list(rows)[:10]}"
            raise FloatingPointError(f"non-finite loss at step {step}{where}; lower learning_rate")
        if self._new_step:
            self.optimizer.zero_grad()
            self._new_step = False
        loss.backward()

    def update(self, loss: torch.Tensor, step: int, *, rows=None, max_grad_norm: float | None = None) -> None:
        """Backward `loss` (after any `accumulate`d since the last step), clip the gradient
        norm when `max_grad_norm` is set, and take the optimiser step."""
        self.accumulate(loss, step, rows=rows)
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], max_grad_norm)
        self.optimizer.step()
        self._new_step = True

    def record(self, step: int, record: dict, state=None) -> dict:
        """Append the step's record; when a checkpoint is due, write it with `extra`, first
        updated by `state()` (the loop's state as tensors and plain types: only gathered then)."""
        self.history.append(record)
        if self.dashboard is not None:
            self.dashboard.update(self.history, self.total)
        config = self.config
        if config.output_dir and ((step + 1) % config.save_steps == 0 or step + 1 == self.total):
            if state is not None:
                self.extra.update(state())
            save_checkpoint(config.output_dir, self.model, self.optimizer, step + 1, self.history, self.fingerprint, self.extra)
        return record
