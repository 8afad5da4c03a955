"""How far a tuned policy moved and how much better it got: the reward-vs-KL frontier.

Defined for chapter 07 (every DPO variant on one frontier) and used by chapters 04, 05
and 08. A point of the frontier is measured on fresh samples of the tuned policy pi:

    KL(pi || pi_ref) ~ mean over y ~ pi of log pi(y|x) - log pi_ref(y|x)   (per prompt)
    gold reward      = mean gold(x, y) over the same samples
    win rate         = P(gold(x, y) > gold(x, y_ref)), y_ref ~ pi_ref, ties counted half

as in the DPO paper's IMDb frontier (Rafailov et al. 2023, arXiv 2305.18290, figure 2).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_range
from .generation import sample_completions
from .online_rl import score_rollouts
from .sequences import sequence_logprobs
from .world.text import TextWorld


@dataclass
class Baseline:
    """The reference policy's samples on the evaluation prompts, scored once."""

    prompts: list[str]
    completions: list[str]
    gold: np.ndarray


def evaluation_prompts(world: TextWorld, n: int) -> list[str]:
    """n prompts cycling through the world's prompts: every prompt equally often."""
    return [world.prompts[i % len(world.prompts)] for i in range(n)]


def reference_baseline(reference, tokenizer, world: TextWorld, n: int = 512, *, seed: int = 0) -> Baseline:
    prompts = evaluation_prompts(world, n)
    completions = sample_completions(reference, tokenizer, prompts, seed=seed)
    return Baseline(prompts, completions, world.gold_reward(prompts, completions))


SHOWN_SAMPLES = 6
"""Samples per policy kept to read (`evaluate_policy`'s "shown")."""


def evaluate_policy(policy, reference, tokenizer, world: TextWorld, baseline: Baseline, *, seed: int = 1,
                    proxy=None) -> dict:
    """{"kl", "gold", "win_rate", "completions", "samples", "shown"} for `policy` against the
    reference's `baseline` samples (see the module docstring), and "proxy", the mean score
    under a `proxy` reward when one is given (chapter 04's over-optimisation). "samples"
    holds the per-sample values behind the means, {"gold", "kl"} (the log-ratio of each
    sample), in the order of `baseline.prompts`, for intervals (`survey_lib.stats`);
    "shown", the first `SHOWN_SAMPLES` (prompt, completion, gold) to read, as
    `widgets.frontier_explorer` shows them. Chapters 04-08."""
    completions = sample_completions(policy, tokenizer, baseline.prompts, seed=seed)
    gold = world.gold_reward(baseline.prompts, completions)
    log_ratio = (sequence_logprobs(policy, tokenizer, baseline.prompts, completions)
                 - sequence_logprobs(reference, tokenizer, baseline.prompts, completions))
    wins = (gold > baseline.gold).mean() + 0.5 * (gold == baseline.gold).mean()
    point = {"kl": log_ratio.mean().item(), "gold": float(gold.mean()), "win_rate": float(wins), "completions": completions,
             "samples": {"gold": gold, "kl": log_ratio.numpy().astype(np.float64)},
             "shown": list(zip(baseline.prompts[:SHOWN_SAMPLES], completions[:SHOWN_SAMPLES], gold[:SHOWN_SAMPLES].tolist()))}
    if proxy is not None:
        point["proxy"] = float(score_rollouts(proxy, baseline.prompts, completions).mean())
    return point


def evaluation_callback(reference, tokenizer, world: TextWorld, baseline: Baseline, *, every, proxy=None, seed: int = 1):
    """(callback, points) for the online trainers (chapter 04): the callback evaluates the
    policy with `evaluate_policy` and appends {"step", "kl", "gold", "win_rate"[, "proxy"]} to
    `points`, tracing the policy's path along the frontier. `every` is an int (evaluate every
    that many steps) or a sequence of step counts to evaluate after (e.g. dense at the start,
    where an aggressive run moves fastest, and sparse later)."""
    if isinstance(every, int) and not isinstance(every, bool):
        check_range("every", every, 1)
        due = lambda n: n % every == 0  # noqa: E731
    else:
        at = sorted(set(every)) if isinstance(every, (list, tuple, range)) else []
        if not at or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in at):
            raise ValueError(f"every must be a positive int or a non-empty sequence of positive ints, got {every!r}")
        due = at.__contains__
    points: list[dict] = []

    def callback(step: int, policy) -> None:
        if due(step + 1):
            point = evaluate_policy(policy, reference, tokenizer, world, baseline, seed=seed, proxy=proxy)
            points.append({"step": step + 1, **{k: v for k, v in point.items() if k not in ("completions", "samples", "shown")}})

    return callback, points
