"""The light half of the preference library: its config, its batch and its loss registry.

Defined for chapter 07 and used wherever a preference loss is trained: on a language model
by `survey_lib.preference_training` (chapters 04, 05, 07, 08) and exactly on the enumerable
task by `survey_lib.enumerable_preferences` (chapters 07-08). It imports only torch, so the
exact code never pulls in transformers.

`LOSSES` maps a loss name (TRL's `loss_type` where TRL has the loss) to a `LossSpec`: the
data format the loss reads and how it computes per-example losses from a `Batch` of
log-probabilities and a `PreferenceConfig`. The formats, as TRL names their rows:

    pairs      {"prompt", "chosen", "rejected"}        DPO and most variants
    unpaired   {"prompt", "completion", "label"}       KTO (pairs are split, as TRL does)
    negatives  {"prompt", "rejected"}                  NPO, D2O (pairs: the chosen is ignored)
    rewarded   {"prompt", "completion", "reward"}      DRO (single trajectories)
    ranked     {"prompt", "completions", "rewards"}    RRHF, PRO (k scored responses; a pair
                                                       is a ranking of two)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import preference_losses as pl
from ._checks import check_choice, check_range, check_type

DATA_FORMATS = ("pairs", "unpaired", "negatives", "rewarded", "ranked")


@dataclass(frozen=True)
class PreferenceConfig:
    """Hyper-parameters of `train_preference` (names follow TRL's `DPOConfig` where it has them)."""

    loss: str = "dpo"
    """A name from `LOSSES`."""
    beta: float = 0.1
    """KL strength: the implicit reward is beta log(pi/pi_ref) (SimPO: its reward scale)."""
    learning_rate: float = 1e-3
    """AdamW step size; 1e-3 suits the zoo's full fine-tuning, ~5e-6 to 5e-5 QLoRA adapters."""
    epochs: int = 2
    """Passes over the data."""
    min_steps: int = 0
    """Train at least this many steps, repeating the data."""
    batch_size: int = 32
    """Rows per step."""
    gradient_accumulation_steps: int = 1
    """Micro-batches each step's rows are cut into, each with its own forward and backward
    pass, their gradients summed before the one optimiser step (TRL's name): the same update
    in a fraction of the memory. Not for the losses that couple a step's rows (`LossSpec.couples_rows`)."""
    max_length: int = 1024
    """Longest sequence in tokens (capped by the model's positions); longer ones keep their end."""
    label_smoothing: float = 0.0
    """Assumed label-flip rate: cDPO ("cdpo"), robust DPO, EXO, AOT."""
    gpo_kind: str = "logistic"
    """"gpo" only: the convex function f, a key of `preference_losses.GPO_FUNCTIONS`."""
    slic_delta: float = 1.0
    """"slic_hf": the hinge's margin delta (in nats of log-likelihood)."""
    slic_regularizer_weight: float = 0.1
    """"slic_hf": lambda, the weight of the chosen response's log-likelihood."""
    orpo_lambda: float = 0.1
    """"orpo": weight of the odds-ratio term next to the NLL."""
    simpo_gamma: float = 0.5
    """"simpo": the target reward margin gamma."""
    dpop_lambda: float = 50.0
    """"dpop": weight of the penalty on the chosen response falling below the reference."""
    tdpo_alpha: float = 0.5
    """"tdpo2": weight of the sequential-KL term."""
    kto_desirable_weight: float = 1.0
    """"kto": lambda_D."""
    kto_undesirable_weight: float = 1.0
    """"kto": lambda_U."""
    sppo_eta: float | None = None
    """"sppo_hard": eta; None uses 1/beta, as TRL does."""
    beta_dpo_alpha: float = 0.6
    """"beta_dpo": how strongly beta follows the batch's reward discrepancy."""
    beta_dpo_keep: float = 0.8
    """"beta_dpo": fraction of each batch kept by the data filter."""
    beta_dpo_momentum: float = 0.9
    """"beta_dpo": momentum of the running mean and spread of the discrepancy."""
    d2o_alpha: float = 0.1
    """"d2o": weight of the negative's log-ratio against the samples'."""
    d2o_samples: int = 4
    """"d2o": responses sampled from the reference per prompt (its "positives")."""
    dro_value_learning_rate: float = 0.05
    """"dro": step size of the per-prompt value V(x)."""
    rrhf_sft_weight: float = 1.0
    """"rrhf": weight of fine-tuning on the best response next to the ranking hinge."""
    pro_sft_weight: float = 0.05
    """"pro": weight of fine-tuning on the best response next to the ranking likelihood."""
    pro_dynamic_temperature: bool = True
    """"pro": scale each candidate by its reward gap (PRO's dynamic temperature)."""
    reference_stages: int = 1
    """sDPO: > 1 cuts the data into this many chunks and refreshes the reference before each."""
    weight_decay: float = 0.0
    seed: int = 0
    """Fixes the data order and the filters' draws."""
    output_dir: str | None = None
    """Where checkpoints go; a run whose directory holds one resumes from it."""
    save_steps: int = 200
    """Write a checkpoint every this many steps (and at the end)."""

    def __post_init__(self):
        check_choice("loss", self.loss, LOSSES)
        check_range("beta", self.beta, 0, low_open=True)
        check_range("learning_rate", self.learning_rate, 0, low_open=True)
        for name in ("epochs", "min_steps", "batch_size", "gradient_accumulation_steps", "max_length", "save_steps", "seed",
                     "reference_stages", "d2o_samples"):
            check_type(name, getattr(self, name), int)
        for name in ("epochs", "batch_size", "gradient_accumulation_steps", "save_steps", "reference_stages", "d2o_samples"):
            check_range(name, getattr(self, name), 1)
        check_range("max_length", self.max_length, 2)
        check_range("label_smoothing", self.label_smoothing, 0, 0.5, high_open=True)
        check_range("rrhf_sft_weight", self.rrhf_sft_weight, 0)
        check_range("pro_sft_weight", self.pro_sft_weight, 0)
        check_choice("gpo_kind", self.gpo_kind, pl.GPO_FUNCTIONS)
        check_range("beta_dpo_keep", self.beta_dpo_keep, 0, 1, low_open=True)
        check_range("beta_dpo_momentum", self.beta_dpo_momentum, 0, 1, high_open=True)
        if self.reference_stages > 1 and LOSSES[self.loss].token_level:
            raise ValueError(f"reference_stages > 1 (sDPO) is not supported with the token-level loss {self.loss!r}")
        if self.reference_stages > 1 and not LOSSES[self.loss].needs_reference:
            raise ValueError(f"reference_stages > 1 (sDPO) has no reference to refresh for the loss {self.loss!r}")
        if self.gradient_accumulation_steps > 1 and LOSSES[self.loss].couples_rows:
            raise ValueError(f"the loss {self.loss!r} couples the rows of a step, so a step cannot be cut into micro-batches: "
                             "use gradient_accumulation_steps=1 (a smaller batch_size saves memory instead)")


@dataclass
class Batch:
    """Log-probabilities of one step's sequences; a loss reads the fields it needs."""

    chosen: torch.Tensor | None = None
    """"pairs": log pi(y_chosen|x) summed over the completion's tokens."""
    ref_chosen: torch.Tensor | None = None
    chosen_lengths: torch.Tensor | None = None
    rejected: torch.Tensor | None = None
    ref_rejected: torch.Tensor | None = None
    rejected_lengths: torch.Tensor | None = None
    chosen_seq_kl: torch.Tensor | None = None
    rejected_seq_kl: torch.Tensor | None = None
    completion: torch.Tensor | None = None
    """"unpaired", "negatives", "rewarded": log pi(y|x) of the row's one completion (for
    "negatives" that is the rejected response)."""
    ref_completion: torch.Tensor | None = None
    completion_lengths: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    """"unpaired": True for a desirable completion."""
    kl: torch.Tensor | None = None
    """"unpaired": KTO's estimate of KL(pi || pi_ref) from mismatched pairs."""
    samples: torch.Tensor | None = None
    """"d2o": log pi of the reference's samples, (batch, K)."""
    ref_samples: torch.Tensor | None = None
    rewards: torch.Tensor | None = None
    """"rewarded": r(x, y); "ranked": (batch, k) rewards."""
    ranked: torch.Tensor | None = None
    """"ranked": (batch, k) length-normalised log pi of the k responses."""
    values: torch.Tensor | None = None
    """"rewarded": V(x), trainable."""
    beta_dpo: pl.BetaDPOState | None = None
    """"beta_dpo": the running statistics (the loss records the beta it used here)."""
    generator: torch.Generator | None = None
    """"beta_dpo": draws its data filter."""


@dataclass(frozen=True)
class LossSpec:
    """How `train_preference` feeds one loss: its data format and what it computes."""

    data: str
    """One of `DATA_FORMATS` (see the module docstring)."""
    compute: Callable[[Batch, PreferenceConfig], torch.Tensor]
    """(Batch, PreferenceConfig) -> per-example losses."""
    needs_reference: bool = True
    token_level: bool = False
    length_normalized: bool = False
    """Feed per-token averages of the log-ratios (TRL's IPO)."""
    couples_rows: bool = False
    """The loss of a row depends on the step's other rows (KTO's KL estimate, beta-DPO's
    batch statistics, AOT's sort over the batch), so a step cannot be cut into micro-batches."""


def _pair(fn, **fixed):
    return lambda b, c: fn(b.chosen, b.rejected, b.ref_chosen, b.ref_rejected, beta=c.beta, **{k: v(c) for k, v in fixed.items()})


def _sppo_hard(b, c):
    eta = c.sppo_eta or 1 / c.beta
    return pl.sppo_loss(b.chosen, b.ref_chosen, 1.0, eta=eta) + pl.sppo_loss(b.rejected, b.ref_rejected, 0.0, eta=eta)


def _beta_dpo(b, c):
    losses, b.beta_dpo.beta = pl.beta_dpo_loss(b.chosen, b.rejected, b.ref_chosen, b.ref_rejected, beta=c.beta,
                                               alpha=c.beta_dpo_alpha, keep=c.beta_dpo_keep, state=b.beta_dpo,
                                               generator=b.generator)
    return losses


LOSSES: dict[str, LossSpec] = {
    "dpo": LossSpec("pairs", _pair(pl.dpo_loss)),
    "cdpo": LossSpec("pairs", _pair(pl.dpo_loss, label_smoothing=lambda c: c.label_smoothing)),
    "robust": LossSpec("pairs", _pair(pl.robust_dpo_loss, label_smoothing=lambda c: c.label_smoothing)),
    "ipo": LossSpec("pairs", _pair(pl.ipo_loss), length_normalized=True),
    "slic_hf": LossSpec(
        "pairs",
        lambda b, c: pl.slic_hf_loss(b.chosen, b.rejected, delta=c.slic_delta, regularizer_weight=c.slic_regularizer_weight),
        needs_reference=False,
    ),
    "gpo": LossSpec("pairs", _pair(pl.gpo_loss, kind=lambda c: c.gpo_kind)),
    "beta_dpo": LossSpec("pairs", lambda b, c: _beta_dpo(b, c), couples_rows=True),
    "kto": LossSpec(
        "unpaired",
        lambda b, c: pl.kto_loss(b.completion, b.ref_completion, b.labels, b.kl, beta=c.beta,
                                 desirable_weight=c.kto_desirable_weight, undesirable_weight=c.kto_undesirable_weight),
        couples_rows=True,
    ),
    "orpo": LossSpec(
        "pairs",
        lambda b, c: pl.orpo_loss(b.chosen, b.rejected, b.chosen_lengths, b.rejected_lengths, lam=c.orpo_lambda),
        needs_reference=False,
    ),
    "simpo": LossSpec(
        "pairs",
        lambda b, c: pl.simpo_loss(b.chosen, b.rejected, b.chosen_lengths, b.rejected_lengths, beta=c.beta, gamma=c.simpo_gamma),
        needs_reference=False,
    ),
    "dpop": LossSpec("pairs", _pair(pl.dpop_loss, lam=lambda c: c.dpop_lambda)),
    "tdpo1": LossSpec(
        "pairs",
        lambda b, c: pl.tdpo_loss(b.chosen, b.rejected, b.ref_chosen, b.ref_rejected, b.chosen_seq_kl, b.rejected_seq_kl,
                                  beta=c.beta, variant=1),
        token_level=True,
    ),
    "tdpo2": LossSpec(
        "pairs",
        lambda b, c: pl.tdpo_loss(b.chosen, b.rejected, b.ref_chosen, b.ref_rejected, b.chosen_seq_kl, b.rejected_seq_kl,
                                  beta=c.beta, alpha=c.tdpo_alpha, variant=2),
        token_level=True,
    ),
    "nca": LossSpec("pairs", _pair(pl.nca_loss)),
    "bco": LossSpec("pairs", _pair(pl.bco_loss)),
    "exo": LossSpec("pairs", _pair(pl.exo_loss, label_smoothing=lambda c: c.label_smoothing or 1e-3)),
    "aot": LossSpec("pairs", _pair(pl.aot_loss, label_smoothing=lambda c: c.label_smoothing), couples_rows=True),
    "apo_zero": LossSpec("pairs", _pair(pl.apo_loss, variant=lambda c: "zero")),
    "apo_down": LossSpec("pairs", _pair(pl.apo_loss, variant=lambda c: "down")),
    "sppo_hard": LossSpec("pairs", _sppo_hard),
    "npo": LossSpec("negatives", lambda b, c: pl.npo_loss(b.completion, b.ref_completion, beta=c.beta)),
    "d2o": LossSpec(
        "negatives",
        lambda b, c: pl.d2o_loss(b.completion, b.ref_completion, b.samples, b.ref_samples, beta=c.beta, alpha=c.d2o_alpha),
    ),
    "dro": LossSpec("rewarded", lambda b, c: pl.dro_loss(b.completion, b.ref_completion, b.rewards, b.values, tau=c.beta)),
    "rrhf": LossSpec("ranked", lambda b, c: pl.rrhf_loss(b.ranked, b.rewards, sft_weight=c.rrhf_sft_weight),
                     needs_reference=False),
    "pro": LossSpec("ranked", lambda b, c: pl.pro_loss(b.ranked, b.rewards, sft_weight=c.pro_sft_weight,
                                                       dynamic_temperature=c.pro_dynamic_temperature),
                    needs_reference=False),
}
