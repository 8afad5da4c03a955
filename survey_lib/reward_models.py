"""Bradley-Terry reward models: training, scoring, ensembles.

Defined for chapter 03 (RLHF I: reward models from human feedback, survey section 4.1);
chapters 04-06 use `RewardModel` and `RewardEnsemble` as their proxy reward.

A reward model r_phi(x, y) is the policy's trunk with a scalar head on the last token
(InstructGPT, Ouyang et al. 2022, arXiv 2203.02155, section 3.5). Given a prompt x and a
preferred response y_c over y_r, the Bradley-Terry model says
P(y_c > y_r | x) = sigmoid(r(x, y_c) - r(x, y_r)), and the reward model minimises

    L(phi) = -E[ log sigmoid( r_phi(x, y_c) - r_phi(x, y_r) - m ) ]

where m = 0, or Llama 2's margin m(rating) that asks for a larger gap between responses
the annotator rated as clearly different (Touvron et al. 2023, arXiv 2307.09288, eq. 2).
This is TRL's `RewardTrainer` loss; `tests/test_reward_models.py` checks both agree.

Sequences follow `survey_lib.sequences`: a plain-text prompt and completion are tokenized
separately and joined, with the end-of-sequence token appended (as the policy generated
them, and as TRL's trainers do); a conversation goes through the tokenizer's chat
template. A sequence longer than
`max_length` keeps its last `max_length` tokens, where the score is read (the start of
the prompt is cut); such rows are counted and named in a warning, never dropped.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_choice, check_range, check_type
from .checkpoints import TrainingLoop, epoch_batch
from .models import load_model
from .preference_data import PreferenceDataError, prepare_rows, validate_preference_rows
from .sequences import encode_completions, encode_prompts, model_max_length, pad, truncate_left


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """-mean log sigmoid(r_chosen - r_rejected - margin): InstructGPT's reward-model loss
    (2203.02155, eq. 1), with Llama 2's margin (2307.09288, eq. 2). Chapter 03."""
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen and rejected rewards differ in shape: {tuple(chosen.shape)} vs {tuple(rejected.shape)}")
    gap = chosen - rejected
    if margin is not None:
        gap = gap - margin
    return -F.logsigmoid(gap).mean()


@dataclass(frozen=True)
class RewardConfig:
    """Hyper-parameters of `train_reward_model` (names follow TRL's `RewardConfig`)."""

    learning_rate: float = 1e-3
    """AdamW step size; 1e-3 suits the zoo's full fine-tuning, ~1e-4 QLoRA adapters."""
    epochs: int = 2
    """Passes over the comparisons (InstructGPT trains its RM for a single epoch, to avoid over-fitting)."""
    min_steps: int = 0
    """Train at least this many steps, repeating the data: small data sets converge too."""
    batch_size: int = 32
    """Comparisons per step (each step scores 2 x batch_size sequences)."""
    max_length: int = 1024
    """Longest sequence in tokens (capped by the model's positions); longer ones keep their end."""
    center_rewards_coefficient: float = 0.0
    """Weight of mean((r_c + r_r)^2), which centres rewards near 0 (Eisenstein et al. 2023, 2312.09244)."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    max_grad_norm: float | None = 1.0
    """Clip the gradient's global norm to this (TRL's default); None: no clipping. Without it,
    about one run in ten on chapter 03's noisy labels at lr 1e-3 collapsed to chance accuracy."""
    seed: int = 0
    """Fixes the data order (the head's initial weights come from the caller's seed)."""
    output_dir: str | None = None
    """Where checkpoints go; a run whose directory holds one resumes from it. None: no checkpoints."""
    save_steps: int = 200
    """Write a checkpoint every this many steps (and at the end)."""

    def __post_init__(self):
        check_range("learning_rate", self.learning_rate, 0, low_open=True)
        for name in ("epochs", "min_steps", "batch_size", "max_length", "save_steps", "seed"):
            check_type(name, getattr(self, name), int)
        check_range("epochs", self.epochs, 1)
        check_range("min_steps", self.min_steps, 0)
        check_range("batch_size", self.batch_size, 1)
        check_range("max_length", self.max_length, 2)
        check_range("save_steps", self.save_steps, 1)
        check_range("center_rewards_coefficient", self.center_rewards_coefficient, 0)
        check_range("weight_decay", self.weight_decay, 0)
        if self.max_grad_norm is not None:
            check_range("max_grad_norm", self.max_grad_norm, 0, low_open=True)


class RewardModel:
    """A scalar reward r(x, y) from a model with a sequence-classification head (chapter 03).

    Call it like a reward function: `reward_model(prompts, completions)` returns a NumPy
    array, one score per pair, for plain strings or conversations. After
    `train_reward_model`, `history` holds one record per step: loss and accuracy (the
    fraction of the batch's chosen responses scored above the rejected).
    """

    def __init__(self, model, tokenizer, *, max_length: int = 1024, history: list | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.max_length = model_max_length(model, max_length)
        self.history = history or []

    @classmethod
    def from_pretrained(cls, name_or_path, settings=None, **changes) -> RewardModel:
        """Load a reward model (a zoo LM gets a fresh head; a Hub id loads in 4-bit with
        LoRA under the GPU profiles' `settings`)."""
        model, tokenizer = load_model(name_or_path, settings, head="reward", **changes)
        return cls(model, tokenizer)

    def forward(self, sequences: list[list[int]]) -> torch.Tensor:
        """Scores of already-encoded sequences, with gradients if enabled."""
        return self.model(**pad(sequences, self.tokenizer.pad_token_id, self.model.device)).logits[:, 0]

    @torch.no_grad()
    def score(self, prompts: list, completions: list, *, batch_size: int = 256) -> np.ndarray:
        """r(x, y) for each (prompt, completion); raises naming the rows whose score is NaN or inf."""
        check_type("prompts", prompts, list)
        check_type("completions", completions, list)
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
        for i, c in enumerate(completions):
            if not isinstance(c, (str, list)):
                raise TypeError(f"completion {i} must be a string or a list of messages, got {type(c).__name__}")
        sequences = truncate_left([ids for ids, _ in encode_completions(self.tokenizer, prompts, completions)],
                                  self.max_length, "sequences")
        was_training = self.model.training
        self.model.eval()
        try:
            scores = torch.cat([self.forward(sequences[i : i + batch_size]).float() for i in range(0, len(sequences), batch_size)])
        finally:
            self.model.train(was_training)
        scores = scores.cpu().numpy().astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            raise FloatingPointError(
                f"the reward model returned non-finite scores for rows {bad[:10].tolist()} (of {len(scores)}); "
                "check its weights, or use a wider dtype than float16"
            )
        return scores

    __call__ = score

    def score_rows(self, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(r(x, chosen), r(x, rejected)) for preference rows."""
        rows = validate_preference_rows(rows)
        prompts = [r["prompt"] for r in rows]
        return self.score(prompts, [r["chosen"] for r in rows]), self.score(prompts, [r["rejected"] for r in rows])

    def save_pretrained(self, path: str | os.PathLike) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)


class RewardEnsemble:
    """K reward models scored together: the mean is the reward, the spread its uncertainty
    (Coste et al. 2023, arXiv 2310.02743; Eisenstein et al. 2023, arXiv 2312.09244).
    Chapter 03 measures the spread in and out of distribution; chapter 06 builds on it."""

    def __init__(self, members: list):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)

    def member_scores(self, prompts: list, completions: list) -> np.ndarray:
        """Shape (K, n): every member's scores."""
        return np.stack([m(prompts, completions) for m in self.members])

    def mean_and_std(self, prompts: list, completions: list) -> tuple[np.ndarray, np.ndarray]:
        scores = self.member_scores(prompts, completions)
        return scores.mean(0), scores.std(0)

    def score(self, prompts: list, completions: list) -> np.ndarray:
        return self.member_scores(prompts, completions).mean(0)

    __call__ = score


def _margins(rows: list[dict]) -> torch.Tensor | None:
    has = ["margin" in r for r in rows]
    if not any(has):
        return None
    if not all(has):
        raise PreferenceDataError(f"row {has.index(False)} has no 'margin' but row {has.index(True)} has one; give all or none")
    return torch.tensor([float(r["margin"]) for r in rows])


def pointwise_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-mean[y log sigmoid(r) + (1 - y) log sigmoid(-r)]: a reward model read as the
    probability that a response is good (right), fitted to labelled single responses, as the
    outcome verifiers of Cobbe et al. (2021, arXiv 2110.14168) and the per-step classifiers
    of process reward models (Lightman et al. 2023, arXiv 2305.20050). Chapter 09."""
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in shape: {tuple(scores.shape)} vs {tuple(labels.shape)}")
    return F.binary_cross_entropy_with_logits(scores, labels.float())


def train_reward_model(model, config: RewardConfig | None, rows: list[dict], *, tokenizer, progress: bool = False) -> RewardModel:
    """Fit a reward model on preference rows (chapter 03), or on labelled single responses
    (chapter 09's outcome and process reward models).

    Args:
        model: a sequence-classification model with one label, e.g. from
            `load_model(name, head="reward")` (on a GPU profile: a 4-bit base with LoRA).
        config: a `RewardConfig` (None: the defaults).
        rows: TRL-format preference rows (see `survey_lib.preference_data`), fitted with the
            Bradley-Terry loss; with a "margin" field on every row, Llama 2's margin loss is
            used, as TRL does. Or rows in TRL's unpaired format, {"prompt", "completion",
            "label"} with a bool label, fitted with `pointwise_loss`.
        tokenizer: the model's tokenizer.

    Returns a `RewardModel` whose `history` holds each step's loss and accuracy (pairs
    ordered right, or labels predicted right).
    """
    config = config or RewardConfig()
    pointwise = bool(rows) and all(isinstance(r, dict) and "label" in r and "chosen" not in r for r in rows)
    rows = prepare_rows(rows, "unpaired", tokenizer) if pointwise else validate_preference_rows(rows)
    max_length = model_max_length(model, config.max_length)
    prompts = [r["prompt"] for r in rows]
    encode = lambda side: truncate_left([ids for ids, _ in encode_completions(tokenizer, prompts, [r[side] for r in rows])],  # noqa: E731
                                        max_length, f"{side} sequences")
    reward_model = RewardModel(model, tokenizer, max_length=max_length)
    if pointwise:
        sequences, labels = encode("completion"), torch.tensor([r["label"] for r in rows])
        data = (sequences, labels)
    else:
        chosen, rejected, margins = encode("chosen"), encode("rejected"), _margins(rows)
        data = (chosen, rejected, margins)

    def step_loss(index) -> tuple[torch.Tensor, float]:
        """The batch's loss and accuracy."""
        if pointwise:
            scores = reward_model.forward([sequences[i] for i in index]).float()
            target = labels[index].to(scores.device)
            return pointwise_loss(scores, target), ((scores > 0) == target).float().mean().item()
        scores = reward_model.forward([chosen[i] for i in index] + [rejected[i] for i in index]).float()
        r_chosen, r_rejected = scores[: len(index)], scores[len(index) :]
        loss = bradley_terry_loss(r_chosen, r_rejected, None if margins is None else margins[index].to(scores.device))
        if config.center_rewards_coefficient:
            loss = loss + config.center_rewards_coefficient * ((r_chosen + r_rejected) ** 2).mean()
        return loss, (r_chosen > r_rejected).float().mean().item()

    n, batch = len(rows), min(config.batch_size, len(rows))
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loop = TrainingLoop(model, optimizer, config, *data)
    model.train()
    for step in loop.steps(max(config.epochs * math.ceil(n / batch), config.min_steps), "reward model", progress):
        index = epoch_batch(step, n, batch, config.seed)
        loss, accuracy = step_loss(index)
        loop.update(loss, step, rows=index, max_grad_norm=config.max_grad_norm)
        loop.record(step, {"step": step, "loss": loss.item(), "accuracy": accuracy})
    model.eval()
    reward_model.history = loop.history
    return reward_model


class ProcessRewardModel:
    """A process reward model (chapter 09): the probability that each step of a solution is
    right, read at the step's last token from one forward pass over the whole solution
    (Lightman et al. 2023, arXiv 2305.20050; the layout of TRL's `PRMTrainer`: each step
    tokenized on its own, the steps concatenated after the prompt).

    `steps` are the solution cut into its steps, whose concatenation is the solution. A
    solution's score is the log-probability that its weakest step is right (`aggregate=
    "min"`) or that every step is (`"product"`, Lightman et al.'s); one with no step scores -inf.
    """

    def __init__(self, model, tokenizer, *, history: list | None = None):
        self.model, self.tokenizer, self.history = model, tokenizer, history or []

    def encode(self, prompts: list, steps: list[list[str]]) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of each prompt and its steps, and the position of each step's last token."""
        if len(prompts) != len(steps):
            raise ValueError(f"got {len(prompts)} prompts but {len(steps)} step lists")
        sequences, ends = [], []
        for prompt_ids, parts in zip(encode_prompts(self.tokenizer, prompts), steps):
            ids, where = list(prompt_ids), []
            for part in parts:
                ids += self.tokenizer(part, add_special_tokens=False)["input_ids"]
                where.append(len(ids) - 1)
            sequences.append(ids)
            ends.append(where)
        return sequences, ends

    def position_scores(self, sequences: list[list[int]]) -> torch.Tensor:
        """The head's score at every position: [B, T], with gradients if enabled."""
        batch = pad(sequences, self.tokenizer.pad_token_id, self.model.device)
        hidden = self.model.model(**batch).last_hidden_state
        return self.model.score(hidden).squeeze(-1)

    @torch.no_grad()
    def step_scores(self, prompts: list, steps: list[list[str]], *, batch_size: int = 256) -> list[np.ndarray]:
        """The logit that each step is right, per solution."""
        sequences, ends = self.encode(prompts, steps)
        self.model.eval()
        out = []
        for start in range(0, len(sequences), batch_size):
            scores = self.position_scores(sequences[start : start + batch_size]).float().cpu()
            out += [scores[row, ends[start + row]].numpy().astype(np.float64) for row in range(scores.shape[0])]
        return out

    def score(self, prompts: list, steps: list[list[str]], *, aggregate: str = "min") -> np.ndarray:
        """Each solution's log-probability that its weakest step (or every step) is right."""
        check_choice("aggregate", aggregate, ("min", "product"))
        logs = [-np.logaddexp(0, -s) for s in self.step_scores(prompts, steps)]
        reduce = np.min if aggregate == "min" else np.sum
        return np.array([reduce(x) if len(x) else -np.inf for x in logs])


def train_process_reward_model(model, config: RewardConfig | None, rows: list[dict], *, tokenizer,
                               progress: bool = False) -> ProcessRewardModel:
    """Fit a process reward model on TRL's stepwise-supervision rows, {"prompt", "completions":
    the steps, "labels": one bool per step}, with `pointwise_loss` at each step's last token
    (chapter 09). `model` has a one-label scoring head, as `load_model(name, head="reward")`."""
    config = config or RewardConfig()
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("completions"), list) or \
                not isinstance(row.get("labels"), list) or len(row["labels"]) != len(row["completions"]):
            raise PreferenceDataError(f"row {i}: a stepwise row needs 'completions' (the steps) and one bool in "
                                      f"'labels' per step, got {row!r}")
    prm = ProcessRewardModel(model, tokenizer)
    sequences, ends = prm.encode([r["prompt"] for r in rows], [r["completions"] for r in rows])
    labels = [torch.tensor(r["labels"], dtype=torch.float32) for r in rows]
    n, batch = len(rows), min(config.batch_size, len(rows))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    loop = TrainingLoop(model, optimizer, config, sequences, ends)
    model.train()
    for step in loop.steps(max(config.epochs * math.ceil(n / batch), config.min_steps), "process reward model", progress):
        index = epoch_batch(step, n, batch, config.seed)
        scores = prm.position_scores([sequences[i] for i in index]).float()
        rows_at = torch.tensor([r for r, i in enumerate(index) for _ in ends[i]], dtype=torch.long)
        cols_at = torch.tensor([e for i in index for e in ends[i]], dtype=torch.long)
        picked = scores[rows_at.to(scores.device), cols_at.to(scores.device)]
        target = torch.cat([labels[i] for i in index]).to(scores.device)
        loss = pointwise_loss(picked, target)
        loop.update(loss, step, rows=index, max_grad_norm=config.max_grad_norm)
        loop.record(step, {"step": step, "loss": loss.item(), "accuracy": ((picked > 0) == target.bool()).float().mean().item()})
    model.eval()
    prm.history = loop.history
    return prm
