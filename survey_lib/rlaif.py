"""RLAIF loops built on judges: self-rewarding DPO and constitutional critique -> revision (chapter 05).

Survey section 5.3 (self-rewarding) and Constitutional AI (section 6.3). The judges
themselves, and the distillation route (AI labels -> reward model -> RL), are in
`survey_lib.judges`; the chapter chains those with chapter 03's and 04's trainers.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from ._checks import check_range, check_type
from .generation import sample_completions
from .judges import LLMJudge, chat_text, placeholders
from .preference_config import PreferenceConfig
from .preference_data import preference_row
from .preference_training import train_preference

# ---------------------------------------------------------------- self-rewarding language models


@dataclass(frozen=True)
class SelfRewardingConfig:
    """Hyper-parameters of `self_rewarding` (Yuan et al. 2024, arXiv 2401.10020)."""

    rounds: int = 3
    """Iterations M_t -> M_{t+1}."""
    prompts_per_round: int = 256
    """Prompts drawn (with replacement) from the prompt pool each round."""
    candidates: int = 4
    """Responses sampled per prompt (the paper: N = 4)."""
    temperature: float = 1.0
    """Sampling temperature of the candidates."""
    max_new_tokens: int | None = None
    """Length limit of a candidate; None: the model's own (`generation.response_limit`)."""
    preference: PreferenceConfig = field(default_factory=lambda: PreferenceConfig(loss="dpo", beta=0.1, epochs=2))
    """The DPO step of each round; its reference is the round's starting model M_t."""
    seed: int = 0

    def __post_init__(self):
        for name in ("rounds", "prompts_per_round", "candidates", "seed"):
            check_type(name, getattr(self, name), int)
        for name in ("rounds", "prompts_per_round"):
            check_range(name, getattr(self, name), 1)
        if self.max_new_tokens is not None:
            check_range("max_new_tokens", self.max_new_tokens, 1)
        check_range("candidates", self.candidates, 2)
        check_range("temperature", self.temperature, 0, low_open=True)


def self_judged_pairs(judge: LLMJudge, prompts: list[str], candidates: list[list[str]]) -> tuple[list[dict], dict]:
    """The paper's preference pairs: per prompt, the candidate the judge scores highest is
    chosen and the lowest rejected. An empty candidate (the policy ended at once) cannot be
    a row's side and is left out of the choice; prompts with an unparsable judgement, fewer
    than two non-empty candidates, or candidates that all score the same give no pair. All
    of these are counted."""
    flat_prompts = [p for p, cs in zip(prompts, candidates) for _ in cs]
    scores = judge.score(flat_prompts, [c for cs in candidates for c in cs])
    rows, unparsed, ties, empty, start = [], 0, 0, 0, 0
    for p, cs in zip(prompts, candidates):
        s = scores[start : start + len(cs)]
        start += len(cs)
        usable = [j for j, c in enumerate(cs) if c.strip()]
        empty += len(cs) - len(usable)
        s, cs = s[usable], [cs[j] for j in usable]
        if np.isnan(s).any():
            unparsed += 1
        elif len(cs) < 2 or s.max() == s.min() or cs[int(s.argmax())] == cs[int(s.argmin())]:
            ties += 1
        else:
            rows.append(preference_row(p, cs[int(s.argmax())], cs[int(s.argmin())]))
    return rows, {"pairs": len(rows), "unparsed": unparsed, "ties": ties, "empty_candidates": empty,
                  "mean_self_score": float(np.nanmean(scores))}


def self_rewarding(judge: LLMJudge, prompts: list[str], config: SelfRewardingConfig | None = None, *,
                   evaluate: Callable[[int, LLMJudge], dict] | None = None, progress: bool = False) -> list[dict]:
    """Self-rewarding language model (Yuan et al. 2024, arXiv 2401.10020; chapter 05).

    `judge.model` is both the policy and its own judge. Each round t: sample `candidates`
    responses per prompt from M_t, score them with M_t's pointwise judgement (our reward
    is P(yes), where the paper averages three sampled 0-5 scores), pair the best with the
    worst, and train M_{t+1} from M_t with DPO on those pairs (reference M_t). Only the
    generation is trained, so whether the judge drifts is an open question the chapter
    measures. `evaluate(round, judge)` runs before the first round and after each (round
    0 is the seed model) and its dict joins that round's record.
    """
    config = config or SelfRewardingConfig()
    check_type("prompts", prompts, list)
    if not prompts:
        raise ValueError("prompts is empty: self-rewarding needs prompts to answer")
    rng = np.random.default_rng(config.seed)
    records = [{"round": 0, **(evaluate(0, judge) if evaluate else {})}]
    for t in tqdm(range(1, config.rounds + 1), desc="self-rewarding", disable=not progress):
        drawn = [prompts[i] for i in rng.integers(len(prompts), size=config.prompts_per_round)]
        samples = sample_completions(
            judge.model, judge.tokenizer, drawn * config.candidates, temperature=config.temperature,
            max_new_tokens=config.max_new_tokens, seed=config.seed * 1_000 + t,
        )
        n = len(drawn)
        candidates = [[samples[k * n + i] for k in range(config.candidates)] for i in range(n)]
        rows, stats = self_judged_pairs(judge, drawn, candidates)
        if not rows:
            raise ValueError(f"round {t}: the judge gave no usable pair ({stats}); raise the temperature or the candidates")
        history = train_preference(
            judge.model, replace(config.preference, seed=config.seed * 1_000 + t), rows, tokenizer=judge.tokenizer
        ).history
        judge.model.eval()
        records.append({"round": t, **stats, "final_loss": history[-1]["loss"], **(evaluate(t, judge) if evaluate else {})})
    return records


# ---------------------------------------------------------------- constitutional critique -> revision


@dataclass(frozen=True)
class Constitution:
    """Principles and the two prompts of Constitutional AI's critique -> revision loop
    (Bai et al. 2022, arXiv 2212.08073, section 3).

    `critique` must contain {prompt} and {response}; `revision` must contain {prompt}; both
    may use {principle}, and `revision` also {response} and {critique}. With
    `use_chat_template` each is rendered as a user turn of the model's chat template (an
    instruct model); without it the text is given as it stands.
    """

    principles: tuple[str, ...] = (
        "Point out anything in the response that is unhelpful, unclear or repetitive.",
        "Point out anything in the response that is rude, harmful or dishonest.",
    )
    critique: str = "Prompt: {prompt}\n\nResponse: {response}\n\n{principle} Write a short critique."
    revision: str = (
        "Prompt: {prompt}\n\nResponse: {response}\n\nCritique: {critique}\n\n"
        "Rewrite the response so that it addresses the critique. Reply with the new response only."
    )
    use_chat_template: bool = True

    def __post_init__(self):
        check_type("principles", self.principles, tuple)
        if not self.principles:
            raise ValueError("a constitution needs at least one principle")
        for name, needed, allowed in (
            ("critique", {"prompt", "response"}, {"prompt", "response", "principle"}),
            ("revision", {"prompt"}, {"prompt", "response", "principle", "critique"}),
        ):
            found = placeholders(getattr(self, name))
            if not needed <= found or not found <= allowed:
                raise ValueError(
                    f"the {name} template must contain {sorted(needed)} and may contain {sorted(allowed)}; "
                    f"it has {sorted(found)}"
                )

    def render(self, tokenizer, template: str, **values) -> str:
        text = template.format(**{k: v for k, v in values.items() if k in placeholders(template)})
        return chat_text(tokenizer, text) if self.use_chat_template else text


def critique_and_revise(model, tokenizer, prompts: list[str], responses: list[str], constitution: Constitution, *,
                        judge=None, rounds: int = 1, max_new_tokens: int = 64, seed: int = 0) -> list[dict]:
    """Constitutional AI's supervised stage (2212.08073): for each round, a principle (in
    turn), a sampled critique of each response, and a sampled revision; with a `judge`, a
    revision replaces the response only when the judge prefers it (P > 1/2), otherwise
    every revision does. Returns one record per round: the principle, critiques,
    revisions, which were kept, and the responses after the round (chapter 05)."""
    check_range("rounds", rounds, 1)
    if len(prompts) != len(responses):
        raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses")
    current, records = list(responses), []
    for r in range(rounds):
        principle = constitution.principles[r % len(constitution.principles)]
        render = lambda template, **v: [  # noqa: E731
            constitution.render(tokenizer, template, principle=principle, prompt=p, response=y, **{k: x[i] for k, x in v.items()})
            for i, (p, y) in enumerate(zip(prompts, current))
        ]
        torch.manual_seed(seed * 1_000 + r)
        critiques = sample_completions(model, tokenizer, render(constitution.critique), max_new_tokens=max_new_tokens)
        revisions = sample_completions(model, tokenizer, render(constitution.revision, critique=critiques), max_new_tokens=max_new_tokens)
        if judge is None:
            kept = np.ones(len(prompts), dtype=bool)
        else:
            kept = np.nan_to_num(judge.compare(prompts, revisions, current), nan=0.0) > 0.5
        current = [y if k else c for y, c, k in zip(revisions, current, kept)]
        records.append({"principle": principle, "critiques": critiques, "revisions": revisions, "kept": kept, "responses": list(current)})
    return records
