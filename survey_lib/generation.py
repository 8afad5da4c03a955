"""Sampling completions from a causal LM: the policy's rollouts.

Defined for the foundation (the zoo's evaluation, chapter 01's LLM-as-policy section) and
used by every chapter that samples from a policy.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ._checks import check_range, check_type


@torch.no_grad()
def sample_completions(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    greedy: bool = False,
    batch_size: int = 256,
    seed: int | None = None,
    progress: bool = False,
) -> list[str]:
    """Continue each prompt; returns the decoded completions without special tokens.

    Sampling uses `temperature` (ignored when `greedy`); a completion that reaches
    `max_new_tokens` without an end-of-sequence token is returned as it stands, so the
    caller's reward sees that it never ended.
    """
    check_type("prompts", prompts, list)
    check_range("max_new_tokens", max_new_tokens, 1)
    check_range("temperature", temperature, 0, low_open=True)
    check_range("batch_size", batch_size, 1)
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"prompt {i} must be a non-empty string, got {p!r}")
    if seed is not None:
        torch.manual_seed(seed)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # decoder-only models pad left
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(starts, desc="sampling", disable=not progress):
            batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True)
            batch = batch.to(model.device)
            generated = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=not greedy,
                temperature=None if greedy else temperature,
                top_k=None,
                top_p=None,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new = generated[:, batch["input_ids"].shape[1] :]
            out += [s.strip() for s in tokenizer.batch_decode(new, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out
