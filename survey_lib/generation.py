"""Sampling from a causal LM: the policy's rollouts.

Defined for the foundation (the zoo's evaluation, chapter 01's LLM-as-policy section) and
used by every chapter that samples from a policy. Chapter 04's online RL (PPO, RLOO, GRPO)
keeps the token ids of each rollout (`generate_rollouts`); everything else needs only the
text (`sample_completions`).

The token-level MDP of RLHF (chapter 04): the state is the prompt plus the tokens so far,
an action is the next token, and an episode ends at the end-of-sequence token or at
`max_new_tokens`. Tokens after the first end-of-sequence are padding, masked out of every
log-probability, value and loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ._checks import check_range, check_type
from .sequences import encode_prompts, pad
from .world.chat import check_prompts


@dataclass
class Rollouts:
    """A batch of sampled responses, as token ids and as text.

    `sequences` is [B, P + T]: the prompts left-padded to P tokens, then T response
    positions. `response_mask` [B, T] is 1 on each response's tokens up to and including
    its end-of-sequence token; `ended` [B] says whether there was one (False: the response
    hit `max_new_tokens`, the length limit).
    """

    prompts: list
    completions: list[str]
    sequences: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    ended: torch.Tensor

    @property
    def prompt_length(self) -> int:
        return self.sequences.shape[1] - self.response_mask.shape[1]

    @property
    def responses(self) -> torch.Tensor:
        return self.sequences[:, self.prompt_length :]

    def select(self, index) -> Rollouts:
        """The rollouts at `index` (a list or tensor of rows): a minibatch."""
        index = torch.as_tensor(index, dtype=torch.long)
        return Rollouts(
            [self.prompts[i] for i in index.tolist()],
            [self.completions[i] for i in index.tolist()],
            self.sequences[index],
            self.attention_mask[index],
            self.response_mask[index],
            self.ended[index],
        )

    @classmethod
    def concatenate(cls, parts: list[Rollouts], pad_token_id: int) -> Rollouts:
        """Stack batches sampled separately (DAPO's dynamic sampling, chapter 09): prompts are
        left-padded and responses right-padded to the longest of any part, as one batch
        would have been."""
        prompt_length = max(p.prompt_length for p in parts)
        response_length = max(p.response_mask.shape[1] for p in parts)

        def widen(x: torch.Tensor, left: int, right: int, value: int) -> torch.Tensor:
            return torch.nn.functional.pad(x, (left, right), value=value)

        pieces = [(prompt_length - p.prompt_length, response_length - p.response_mask.shape[1]) for p in parts]
        return cls(
            [x for p in parts for x in p.prompts],
            [x for p in parts for x in p.completions],
            torch.cat([widen(p.sequences, left, right, pad_token_id) for p, (left, right) in zip(parts, pieces)]),
            torch.cat([widen(p.attention_mask, left, right, 0) for p, (left, right) in zip(parts, pieces)]),
            torch.cat([widen(p.response_mask, 0, right, 0) for p, (_, right) in zip(parts, pieces)]),
            torch.cat([p.ended for p in parts]),
        )


DEFAULT_MAX_NEW_TOKENS = 24
"""The response limit of a model that sets none: the tiny world's reviews fit in 24 tokens."""


def response_limit(model, max_new_tokens: int | None = None) -> int:
    """`max_new_tokens`, or else the model's own (`generation_config.max_new_tokens`, which a
    profile sets when it loads a policy, `Profile.load`), or else `DEFAULT_MAX_NEW_TOKENS`."""
    if max_new_tokens is None:
        max_new_tokens = getattr(model.generation_config, "max_new_tokens", None) or DEFAULT_MAX_NEW_TOKENS
    check_type("max_new_tokens", max_new_tokens, int)
    check_range("max_new_tokens", max_new_tokens, 1)
    return max_new_tokens


def _check_prompts(prompts) -> None:
    check_type("prompts", prompts, list)
    check_prompts(prompts)


@torch.no_grad()
def generate_rollouts(
    model, tokenizer, prompts: list, *, max_new_tokens: int | None = None, temperature: float = 1.0, greedy: bool = False
) -> Rollouts:
    """Sample one response per prompt (one batch), keeping the token ids (chapter 04).
    A prompt is a string, or a conversation that the chat template opens for the assistant.

    Sampling is plain ancestral sampling at `temperature` (no top-k, no top-p), so the
    log-probabilities that RL computes at the same temperature are those of the sampler.
    """
    _check_prompts(prompts)
    max_new_tokens = response_limit(model, max_new_tokens)
    check_range("temperature", temperature, 0, low_open=True)
    was_training = model.training
    model.eval()
    try:  # decoder-only models continue left-padded prompts
        batch = pad(encode_prompts(tokenizer, prompts), tokenizer.pad_token_id, model.device, side="left")
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
    finally:
        model.train(was_training)
    responses = generated[:, batch["input_ids"].shape[1] :]
    # generate stops when every row has ended, so T can be below max_new_tokens
    is_eos = responses == tokenizer.eos_token_id
    after_eos = (is_eos.cumsum(-1) - is_eos.long()) > 0  # strictly after the first end-of-sequence
    response_mask = (~after_eos).long()
    responses = responses.masked_fill(after_eos, tokenizer.pad_token_id)
    ended = is_eos.any(-1)
    texts = [s.strip() for s in tokenizer.batch_decode(responses, skip_special_tokens=True)]
    return Rollouts(
        list(prompts),
        texts,
        torch.cat([batch["input_ids"], responses], 1),
        torch.cat([batch["attention_mask"], response_mask], 1),
        response_mask,
        ended,
    )


def sample_completions(
    model,
    tokenizer,
    prompts: list,
    *,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    greedy: bool = False,
    batch_size: int = 256,
    seed: int | None = None,
    progress: bool = False,
) -> list[str]:
    """Continue each prompt; returns the decoded completions without special tokens.

    Sampling uses `temperature` (ignored when `greedy`); `max_new_tokens` defaults to the
    model's (`response_limit`). A completion that reaches it without an end-of-sequence
    token is returned as it stands, so the caller's reward sees that it never ended.
    """
    _check_prompts(prompts)
    check_range("batch_size", batch_size, 1)
    if seed is not None:
        torch.manual_seed(seed)
    out: list[str] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="sampling", disable=not progress):
        out += generate_rollouts(
            model, tokenizer, prompts[start : start + batch_size], max_new_tokens=max_new_tokens,
            temperature=temperature, greedy=greedy,
        ).completions
    return out
