"""One training loop for every loss in `preference_losses`: the entry point of chapters 07-08.

Defined for chapter 07 (DPO and its variants) and used by chapters 04 (RRHF, PRO), 05
(self-rewarding DPO) and 08 (analysis of DPO). It reads TRL's dataset formats (listed in
`survey_lib.preference_config`, validated by `preference_data.prepare_rows`), so the same
rows feed TRL's trainers.

Conversational rows go through the tokenizer's chat template (TRL's
`maybe_apply_chat_template`). A sequence is encoded as TRL's `DPOTrainer` builds it
(`survey_lib.sequences`); log pi(y|x) sums the completion's tokens. The reference policy is the model as it was at the start: a frozen copy, or,
under LoRA/QLoRA, the same model with its adapters disabled (as in TRL). Its
log-probabilities are computed once (TRL's `precompute_ref_log_probs`), except for
token-level losses, which need its logits at every step.

sDPO (Kim et al. 2024, arXiv 2403.19270) is a schedule, not a loss: with
`reference_stages` = k the data is cut into k consecutive chunks and, at the start of
each chunk, the reference becomes the policy trained so far.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import preference_losses as pl
from .checkpoints import TrainingLoop, epoch_batch
from .generation import sample_completions
from .models import frozen_reference, keep_4bit_weights_differentiable, load_model
from .preference_config import LOSSES, Batch, LossSpec, PreferenceConfig
from .preference_data import PreferenceDataError, prepare_rows
from .sequences import completion_logprobs, encode_truncated, model_max_length, pad, rows_per_pass

REFERENCE_BATCH = 256
"""Sequences per no-grad forward pass when caching reference log-probabilities."""


@dataclass
class TrainingResult:
    """What `train_preference` returns: the trained model (changed in place), its tokenizer,
    one history record per step, and for DRO the learnt value V(x) of each prompt."""

    model: nn.Module
    tokenizer: object
    history: list[dict]
    values: dict[str, float] | None = None


@dataclass
class EncodedRows:
    """Every sequence a loss reads, encoded once, by name: "main" (the chosen response of a
    pair, the one completion of other formats, or a ranking's k responses flattened row by
    row), "rejected" (pairs), "kl" (KTO's mismatched pairs), "samples" (D2O's reference
    samples, `per_row` of them per row); plus the rows' rewards and labels as tensors."""

    sequences: dict[str, list[tuple[list[int], int]]]
    per_row: dict[str, int]
    """Sequences per row under each name: k for "ranked" and "samples", else 1."""
    rewards: torch.Tensor | None = None
    """"rewarded": r(x, y) per row; "ranked": (rows, k)."""
    labels: torch.Tensor | None = None
    """"unpaired": True for a desirable completion."""

    def flat(self, name: str, index: list[int]) -> list[int]:
        """Positions in `sequences[name]` of the rows `index`."""
        k = self.per_row[name]
        return [i * k + j for i in index for j in range(k)]


def encode_rows(model, tokenizer, rows: list[dict], config: PreferenceConfig) -> EncodedRows:
    """Tokenize what `config.loss` reads from the validated `rows` (cut to the model's
    length); for D2O, also sample the reference's responses, once."""
    spec, n = LOSSES[config.loss], len(rows)
    max_length = model_max_length(model, config.max_length)
    prompts = [r["prompt"] for r in rows]
    encode = lambda pairs, what: encode_truncated(tokenizer, pairs, max_length, what)  # noqa: E731
    device = model.device
    if spec.data == "ranked":
        k = len(rows[0]["completions"])
        for i, r in enumerate(rows):
            if len(r["completions"]) != k:
                raise PreferenceDataError(f"row {i} has {len(r['completions'])} completions, row 0 has {k}: "
                                          f"{config.loss!r} needs the same number in every row")
        out = EncodedRows({"main": encode([(r["prompt"], c) for r in rows for c in r["completions"]], "ranked completions")},
                          {"main": k}, rewards=torch.tensor([r["rewards"] for r in rows], dtype=torch.float32, device=device))
        return out
    main = {"pairs": "chosen", "unpaired": "completion", "negatives": "rejected", "rewarded": "completion"}[spec.data]
    out = EncodedRows({"main": encode([(r["prompt"], r[main]) for r in rows], f"{main} sequences")}, {"main": 1})
    if spec.data == "pairs":
        out.sequences["rejected"] = encode([(r["prompt"], r["rejected"]) for r in rows], "rejected sequences")
    if spec.data == "unpaired":  # KTO's KL term: each prompt with another row's completion
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed)).tolist()
        partner = dict(zip(perm, perm[1:] + perm[:1]))
        out.sequences["kl"] = encode([(prompts[i], rows[partner[i]]["completion"]) for i in range(n)], "KL sequences")
        out.labels = torch.tensor([r["label"] for r in rows], device=device)
    if spec.data == "rewarded":
        out.rewards = torch.tensor([float(r["reward"]) for r in rows], device=device)
    if config.loss == "d2o":  # the reference's own samples, drawn once
        repeated = [p for p in prompts for _ in range(config.d2o_samples)]
        samples = sample_completions(model, tokenizer, repeated, seed=config.seed)
        out.sequences["samples"] = encode(list(zip(repeated, samples)), "D2O samples")
    out.per_row.update({name: 1 for name in out.sequences if name not in ("main", "samples")})
    out.per_row["samples"] = config.d2o_samples
    return out


@torch.no_grad()
def cache_reference(model, data: EncodedRows, cache: dict[str, torch.Tensor], index: list[int], pad_id: int) -> None:
    """Write log pi(y|x) of the rows `index`, under the model as it is now, into `cache`
    (CPU tensors by sequence name): at the start, the reference; under sDPO, at each
    chunk's start, the policy so far becomes the new reference of that chunk."""
    was_training = model.training
    model.eval()
    for name, sequences in data.sequences.items():
        positions = data.flat(name, index)
        batch = rows_per_pass([sequences[i] for i in positions], model.config.vocab_size, REFERENCE_BATCH)
        for s in range(0, len(positions), batch):
            part = positions[s : s + batch]
            cache[name][part] = completion_logprobs(model, [sequences[i] for i in part], pad_id)[0].cpu()
    model.train(was_training)


# ------------------------------------------------------------------ one step's Batch, per data format


def _logps(model, data: EncodedRows, name: str, index: list[int], pad_id: int, *, with_logits: bool = False):
    return completion_logprobs(model, [data.sequences[name][i] for i in data.flat(name, index)], pad_id, with_logits=with_logits)


def _pairs_batch(model, data, ref, index, pad_id, spec: LossSpec, reference) -> Batch:
    """Chosen and rejected in one forward pass; TDPO also needs the reference's logits;
    IPO reads per-token averages (TRL's IPO)."""
    together = [data.sequences["main"][i] for i in index] + [data.sequences["rejected"][i] for i in index]
    out = completion_logprobs(model, together, pad_id, with_logits=spec.token_level)
    batch = Batch(ref_chosen=ref["main"][index], ref_rejected=ref["rejected"][index])
    batch.chosen, batch.rejected = out[0].chunk(2)
    batch.chosen_lengths, batch.rejected_lengths = out[1].chunk(2)
    if spec.token_level:
        context, frozen = reference
        with torch.no_grad(), (context() if context else contextlib.nullcontext()):
            ref_logits = frozen(**pad([s for s, _ in together], pad_id, model.device)).logits[:, :-1]
        batch.chosen_seq_kl, batch.rejected_seq_kl = pl.sequential_kl(ref_logits, out[2], out[3]).chunk(2)
    if spec.length_normalized:
        for side in ("chosen", "rejected"):
            lengths = getattr(batch, f"{side}_lengths").clamp_min(1)
            setattr(batch, side, getattr(batch, side) / lengths)
            setattr(batch, f"ref_{side}", getattr(batch, f"ref_{side}") / lengths)
    return batch


def _ranked_batch(model, data, ref, index, pad_id, spec, reference) -> Batch:
    """The k responses' length-normalised log pi, (rows, k), and their rewards."""
    sums, lengths = _logps(model, data, "main", index, pad_id)
    return Batch(ranked=(sums / lengths.clamp_min(1)).view(len(index), -1), rewards=data.rewards[index])


def _single_batch(model, data, ref, index, pad_id, spec, reference) -> Batch:
    """One completion per row (unpaired, negatives, rewarded), with what each format adds:
    KTO's labels and KL estimate, D2O's reference samples, DRO's rewards."""
    batch = Batch(ref_completion=ref["main"][index])
    batch.completion, batch.completion_lengths = _logps(model, data, "main", index, pad_id)
    if "kl" in data.sequences:
        batch.labels = data.labels[index]
        with torch.no_grad():
            batch.kl = (_logps(model, data, "kl", index, pad_id)[0] - ref["kl"][index]).mean()
    if "samples" in data.sequences:
        flat = data.flat("samples", index)
        batch.samples = _logps(model, data, "samples", index, pad_id)[0].view(len(index), -1)
        batch.ref_samples = ref["samples"][flat].view(len(index), -1)
    if data.rewards is not None:
        batch.rewards = data.rewards[index]
    return batch


BATCHES = {"pairs": _pairs_batch, "ranked": _ranked_batch, "unpaired": _single_batch, "negatives": _single_batch,
           "rewarded": _single_batch}
"""How a step's `Batch` is assembled, by the loss's data format."""


def plan_steps(n: int, config: PreferenceConfig) -> list[tuple[int, list[int]]]:
    """(stage, row indices) for every step: seeded epochs over each sDPO chunk, at least
    `min_steps` in all."""
    plan = []
    for stage, chunk in enumerate(torch.arange(n).tensor_split(config.reference_stages)):
        batch = min(config.batch_size, len(chunk))
        steps = max(config.epochs * math.ceil(len(chunk) / batch), math.ceil(config.min_steps / config.reference_stages))
        plan += [(stage, chunk[epoch_batch(t, len(chunk), batch, config.seed, stream=stage)].tolist()) for t in range(steps)]
    return plan


class PromptValues:
    """DRO's value V(x): one trainable scalar per distinct prompt, starting at 0."""

    def __init__(self, prompts: list[str], device):
        self.ids = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
        self.values = nn.Parameter(torch.zeros(len(self.ids), device=device))
        self.row_index = torch.tensor([self.ids[p] for p in prompts], device=device)

    def of(self, rows: list[int]) -> torch.Tensor:
        """V(x) of each of `rows`' prompts."""
        return self.values[self.row_index[rows]]

    def by_prompt(self) -> dict[str, float]:
        return {p: self.values[i].item() for p, i in self.ids.items()}


def _restore_loop_state(extra: dict, config: PreferenceConfig, values: PromptValues | None):
    """beta-DPO's running statistics and its filter's generator, and DRO's V(x): fresh, or
    where the checkpoint in `extra` left them."""
    beta_dpo = pl.BetaDPOState(**extra.get("beta_dpo", {"momentum": config.beta_dpo_momentum, "beta": config.beta}))
    generator = torch.Generator().manual_seed(config.seed + 1)
    if "generator" in extra:
        generator.set_state(extra["generator"])
    if values is not None and "values" in extra:
        with torch.no_grad():
            values.values.copy_(extra["values"])
    return beta_dpo, generator


def _record(loss: torch.Tensor, batch: Batch, spec: LossSpec, share: float) -> dict:
    """One micro-batch's part of its step's record, its means weighted by `share` (its
    fraction of the step's rows; `loss` is weighted already): the loss; for pairs, the mean
    chosen and rejected log-ratios and the fraction of pairs with a positive margin."""
    record = {"loss": loss.item()}
    if spec.data == "pairs" and spec.needs_reference:
        a, b = (batch.chosen - batch.ref_chosen).detach(), (batch.rejected - batch.ref_rejected).detach()
        record.update(chosen_logratio=share * a.mean().item(), rejected_logratio=share * b.mean().item(),
                      accuracy=share * (a > b).float().mean().item())
    return record


def _step_record(step: int, beta: float, parts: list[dict]) -> dict:
    """The step's record: its micro-batches' weighted parts summed, and the beta it used."""
    total = {key: sum(part[key] for part in parts) for key in parts[0]}
    return {"step": step, "loss": total.pop("loss"), "beta": beta, **total}


def train_preference(model, config: PreferenceConfig | None, rows, *, tokenizer=None, progress: bool = False) -> TrainingResult:
    """Train a causal LM with any loss of `LOSSES` (chapters 04, 05, 07, 08).

    Args:
        model: a causal LM object (full fine-tuning, or LoRA/QLoRA from
            `load_model(..., settings)`), or a zoo name, directory or Hub id to load.
        config: a `PreferenceConfig` (None: the defaults); `config.loss` picks the loss.
        rows: rows in the loss's data format (`survey_lib.preference_config`); pairs
            convert to the unpaired, negatives and ranked formats.
        tokenizer: the model's tokenizer (loaded with the model when `model` is a name).

    Returns a `TrainingResult`; each history record holds the step's loss and, for pairs,
    the mean chosen and rejected log-ratios and the fraction with a positive margin.
    """
    config = config or PreferenceConfig()
    if isinstance(model, str):
        model, tokenizer = load_model(model)
    if tokenizer is None:
        raise ValueError("pass tokenizer= with a model object")
    keep_4bit_weights_differentiable(model)
    spec, pad_id = LOSSES[config.loss], tokenizer.pad_token_id
    rows = prepare_rows(rows, spec.data, tokenizer)
    n, prompts = len(rows), [r["prompt"] for r in rows]
    if config.reference_stages > n:
        raise ValueError(f"reference_stages={config.reference_stages} needs at least as many rows, got {n}")
    # 1. encode every sequence once; plan the steps (epochs, sDPO's chunks)
    data = encode_rows(model, tokenizer, rows, config)
    plan = plan_steps(n, config)
    # 2. the optimiser; DRO also learns V(x), one scalar per distinct prompt
    values = PromptValues(prompts, model.device) if spec.data == "rewarded" else None
    groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    if values is not None:
        groups.append({"params": [values.values], "lr": config.dro_value_learning_rate, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    # the token-level reference is the model as passed in: taken before a checkpoint overwrites it
    reference = frozen_reference(model) if spec.token_level else None
    loop = TrainingLoop(model, optimizer, config, data.sequences, [r.get("reward", r.get("rewards")) for r in rows])
    # 3. the reference's log-probabilities, cached (or restored with the checkpoint)
    extra = loop.extra
    if not extra:
        extra["ref"] = {name: torch.zeros(len(s)) for name, s in data.sequences.items()}
        if spec.needs_reference:
            cache_reference(model, data, extra["ref"], list(range(n)), pad_id)
    beta_dpo, generator = _restore_loop_state(extra, config, values)
    # 4. the steps
    model.train()
    for step in loop.steps(len(plan), config.loss, progress):
        stage, index = plan[step]
        if stage > 0 and plan[step - 1][0] != stage:  # sDPO: the policy so far is the new reference
            cache_reference(model, data, extra["ref"], torch.arange(n).tensor_split(config.reference_stages)[stage].tolist(), pad_id)
        ref = {name: extra["ref"][name].to(model.device) for name in data.sequences}
        parts = [p.tolist() for p in torch.tensor(index).tensor_split(config.gradient_accumulation_steps) if len(p)]
        records = []
        for i, part in enumerate(parts):  # micro-batches: each part's mean loss weighted by its share of the rows
            batch = BATCHES[spec.data](model, data, ref, part, pad_id, spec, reference)
            batch.values = None if values is None else values.of(part)
            batch.beta_dpo, batch.generator = beta_dpo, generator
            loss = spec.compute(batch, config).mean() * (len(part) / len(index))
            (loop.update if i == len(parts) - 1 else loop.accumulate)(loss, step, rows=part)
            records.append(_record(loss, batch, spec, len(part) / len(index)))
        beta_used = beta_dpo.beta if config.loss == "beta_dpo" else config.beta
        loop.record(step, _step_record(step, beta_used, records), state=lambda: {
            "beta_dpo": asdict(beta_dpo), "generator": generator.get_state(),
            **({} if values is None else {"values": values.values.detach().cpu().clone()})})
    model.eval()
    return TrainingResult(model, tokenizer, loop.history, None if values is None else values.by_prompt())
