"""Token sequences for training and scoring: encoding, padding, truncation, log-probabilities.

Defined for the foundation's zoo and chapter 03; every trainer and evaluation that reads a
(prompt, completion) pair as tokens goes through this module: the zoo's pre-training, the
reward model (chapter 03), the preference losses (chapters 07-08), the policy evaluation
(chapters 04-08).

**One end-of-sequence rule.** A plain-text pair is the prompt's tokens (with the
tokenizer's own special tokens, e.g. a BOS), then the completion's, then exactly one
end-of-sequence token: appended, unless the completion already ends with one. This is how
the policy generated it and how TRL's `DPOTrainer` and `RewardTrainer` build a row. A
conversation (lists of {"role", "content"} messages) is rendered by the tokenizer's chat
template, which marks the end of the turn itself; nothing is appended, and whatever the
template writes after the last end-of-sequence token (ChatML's newline) is cut, as the
policy stops there when it samples. A plain-string completion of a conversational prompt
(a sampled response) is the assistant's turn.

Sequences are right-padded: a reward head reads the last non-padding token, and positions
start at 0. A sequence longer than the model keeps its last tokens (where a reward is read
and a completion ends), with a warning naming the rows; nothing is dropped.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch


def encode_prompt(tokenizer, prompt) -> list[int]:
    """The token ids a policy continues: a string as the tokenizer encodes it, a conversation
    through the chat template up to the assistant's turn."""
    if isinstance(prompt, list):
        return list(tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"])
    return tokenizer(prompt)["input_ids"]


def encode_prompts(tokenizer, prompts: list) -> list[list[int]]:
    """`encode_prompt` of each prompt; plain strings in one batched tokenizer call."""
    if prompts and all(isinstance(p, str) for p in prompts):
        return tokenizer(prompts)["input_ids"]
    return [encode_prompt(tokenizer, p) for p in prompts]


def encode_completion(tokenizer, prompt, completion) -> tuple[list[int], int]:
    """(token ids of prompt + completion, number of prompt tokens) under the module's
    end-of-sequence rule; `prompt` and `completion` are both strings, or the prompt is a
    conversation and the completion a conversation or the assistant's reply as a string."""
    if isinstance(prompt, list):
        if isinstance(completion, str):
            completion = [{"role": "assistant", "content": completion}]
        ids = list(tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)["input_ids"])
        if tokenizer.eos_token_id in ids:
            ids = ids[: len(ids) - ids[::-1].index(tokenizer.eos_token_id)]
        return ids, len(encode_prompt(tokenizer, prompt))
    return _ending_once(encode_prompt(tokenizer, prompt), tokenizer(completion, add_special_tokens=False)["input_ids"],
                        tokenizer.eos_token_id)


def _ending_once(prompt_ids: list[int], completion_ids: list[int], eos: int | None) -> tuple[list[int], int]:
    """A plain-text pair under the end-of-sequence rule: EOS appended unless already last."""
    if eos is not None and completion_ids[-1:] != [eos]:
        completion_ids = completion_ids + [eos]
    return prompt_ids + completion_ids, len(prompt_ids)


def encode_completions(tokenizer, prompts: list, completions: list) -> list[tuple[list[int], int]]:
    """`encode_completion` of each (prompt, completion), the same ids; plain-text pairs are
    encoded in two batched tokenizer calls (a call per string cost chapter 03 a tenth of its
    time: it encodes the same comparisons for each of its 28 reward models)."""
    if len(prompts) != len(completions):
        raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
    if not all(isinstance(x, str) for x in (*prompts, *completions)) or not prompts:
        return [encode_completion(tokenizer, p, c) for p, c in zip(prompts, completions)]
    return [_ending_once(prompt_ids, completion_ids, tokenizer.eos_token_id)
            for prompt_ids, completion_ids in zip(encode_prompts(tokenizer, prompts),
                                                  tokenizer(completions, add_special_tokens=False)["input_ids"])]


def model_max_length(model, max_length: int) -> int:
    """`max_length`, capped by the model's position embeddings."""
    positions = getattr(model.config, "max_position_embeddings", None)
    return min(max_length, positions) if positions else max_length


def truncate_left(sequences: list[list[int]], max_length: int, what: str) -> list[list[int]]:
    """Keep each sequence's last `max_length` tokens, warning with the count and the rows."""
    long = [i for i, s in enumerate(sequences) if len(s) > max_length]
    if long:
        warnings.warn(
            f"{len(long)} {what} longer than {max_length} tokens keep their last {max_length} tokens "
            f"(rows {long[:10]}{' ...' if len(long) > 10 else ''})",
            stacklevel=3,
        )
    return [s[-max_length:] for s in sequences]


def encode_truncated(tokenizer, pairs, max_length: int, what: str) -> list[tuple[list[int], int]]:
    """`encode_completion` for each (prompt, completion), cut to `max_length` by
    `truncate_left`; the prompt length shrinks with what was cut from the front."""
    prompts, completions = zip(*pairs) if pairs else ((), ())
    encoded = encode_completions(tokenizer, list(prompts), list(completions))
    kept = truncate_left([ids for ids, _ in encoded], max_length, what)
    return [(k, max(n - (len(ids) - len(k)), 0)) for (ids, n), k in zip(encoded, kept)]


def pad(sequences: list[list[int]], pad_id: int, device, *, side: str = "right") -> dict[str, torch.Tensor]:
    """input_ids and attention_mask, padded to the longest sequence on the right (training,
    scoring) or on the left (prompts a decoder-only model continues)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max(map(len, sequences))
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)  # numpy: a tensor per row cost more than the copy
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for i, s in enumerate(sequences):
        where = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[i, where] = s
        mask[i, where] = 1
    return {"input_ids": torch.from_numpy(ids).to(device), "attention_mask": torch.from_numpy(mask).to(device)}


def language_modeling_batch(tokenizer, rows: list[tuple[str, str]], *, completion_only: bool) -> dict[str, torch.Tensor]:
    """A causal-LM training batch of (prompt, completion) rows: right-padded ids and labels
    that mask the padding and, with `completion_only`, the prompt (the zoo's pre-training)."""
    encoded = encode_completions(tokenizer, [p for p, _ in rows], [c for _, c in rows])
    batch = pad([ids for ids, _ in encoded], tokenizer.pad_token_id, "cpu")
    labels = torch.full_like(batch["input_ids"], -100)
    for i, (ids, n_prompt) in enumerate(encoded):
        start = n_prompt if completion_only else 0
        labels[i, start : len(ids)] = torch.tensor(ids[start:])
    return {**batch, "labels": labels}


LOGITS_BUDGET = 2**26
"""Logit entries (rows x positions x vocabulary) one no-grad forward pass may hold: 256 MB in
fp32. A 49k-token vocabulary at 256 rows of 100 tokens would otherwise hold 5 GB at once."""


def rows_per_pass(sequences: list, vocab_size: int, most: int) -> int:
    """How many of `sequences` (token-id lists, or (ids, prompt length) pairs) one no-grad
    forward pass takes: at most `most`, fewer where the logits would pass `LOGITS_BUDGET`."""
    width = max((len(s[0]) if isinstance(s, tuple) else len(s) for s in sequences), default=1)
    return max(1, min(most, LOGITS_BUDGET // (width * vocab_size)))


def completion_logprobs(model, sequences: list[tuple[list[int], int]], pad_id: int, *, with_logits: bool = False):
    """log pi(y|x) summed over each completion's tokens (end-of-sequence included) of
    encoded (ids, prompt length) pairs, and the completion lengths; with `with_logits`
    also the logits and mask at the completion's positions (TDPO, chapter 08)."""
    batch = pad([ids for ids, _ in sequences], pad_id, model.device)
    logits = model(**batch).logits[:, :-1]
    targets = batch["input_ids"][:, 1:]
    position = torch.arange(targets.shape[1], device=targets.device)
    starts = torch.tensor([max(n, 1) - 1 for _, n in sequences], device=targets.device)
    mask = ((position >= starts[:, None]) & (batch["attention_mask"][:, 1:] == 1)).float()
    # the vocabulary-wide softmax only where some row has a completion token: a chat prompt is
    # often longer than its answer, and these (rows, positions, vocabulary) float32 tensors are
    # a step's largest (SmolLM2: 49k words); zeros elsewhere keep the sums bit for bit
    first = int(starts.min())
    completion = torch.log_softmax(logits[:, first:].float(), -1).gather(-1, targets[:, first:].unsqueeze(-1)).squeeze(-1)
    token_logps = torch.cat([completion.new_zeros(len(sequences), first), completion], 1)
    sums, lengths = (token_logps * mask).sum(-1), mask.sum(-1)
    return (sums, lengths, logits.float(), mask) if with_logits else (sums, lengths)


@torch.no_grad()
def sequence_logprobs(model, tokenizer, prompts: list[str], completions: list[str], *, batch_size: int = 256) -> torch.Tensor:
    """log pi(y|x) for each (prompt, completion), end-of-sequence included: how chapters
    04-08 estimate KL(pi || pi_ref) on samples and follow a response's likelihood."""
    if len(prompts) != len(completions):
        raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
    was_training = model.training
    model.eval()
    try:
        sequences = encode_completions(tokenizer, prompts, completions)
        batch_size = rows_per_pass(sequences, model.config.vocab_size, batch_size)
        return torch.cat([
            completion_logprobs(model, sequences[i : i + batch_size], tokenizer.pad_token_id)[0].cpu()
            for i in range(0, len(sequences), batch_size)
        ])
    finally:
        model.train(was_training)
