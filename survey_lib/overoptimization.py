"""Best-of-n sampling and reward-model over-optimisation (chapter 04).

Survey section 4.2; Gao, Schulman and Hilton 2023, "Scaling laws for reward model
overoptimization" (arXiv 2210.10760). Optimising a proxy reward model harder (more RL
steps, a weaker KL penalty, a larger n for best-of-n) raises the proxy reward without
end, while the gold reward, what the proxy was trained to imitate, first rises, then
falls. Gao et al. measure optimisation by d = sqrt(KL(pi || pi_ref)) and find the gold
reward gain over the initial policy follows

    best-of-n:  R_bon(d) = d (alpha - beta d)
    RL:         R_RL(d)  = d (alpha - beta log d)

Both are linear in (alpha, beta), so `fit_gao` solves a least-squares problem exactly.

Best-of-n draws n responses from the policy and keeps the one the proxy scores highest.
Its KL from the policy is log n - (n - 1) / n (Stiennon et al. 2020, arXiv 2009.01325,
appendix): exact for a continuous distribution of rewards, an upper bound when responses
can repeat (Beirami et al. 2024, arXiv 2401.01879), which is the usual convention.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import check_choice, check_type
from .generation import sample_completions
from .online_rl import RewardFunction, score_rollouts


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || pi) = log n - (n - 1) / n (chapter 04)."""
    check_type("n", n, int)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def best_of_n_sweep(policy, tokenizer, prompts: list[str], proxy: RewardFunction, gold: RewardFunction,
                    ns: list[int], *, seed: int = 0, completions: list[str] | None = None,
                    progress: bool = False) -> list[dict]:
    """Best-of-n for every n in `ns` from one pool of max(ns) samples per prompt (chapter 04).

    The pool of each prompt is cut into max(ns) / n disjoint groups of n; each group keeps
    its highest-proxy response, and the gold and proxy rewards are averaged over all
    prompts and groups. Returns one {"n", "kl", "proxy", "gold"} per n, with the analytic KL.
    `completions`, if given, is that pool already drawn (prompt by prompt, max(ns) each), so
    that several proxies can be compared on the same samples.
    """
    check_type("ns", ns, list)
    largest = max(ns)
    for n in ns:
        if not isinstance(n, int) or n < 1 or largest % n:
            raise ValueError(f"every n in ns must be a positive divisor of max(ns) = {largest}, got {n!r}")
    repeated = [p for p in prompts for _ in range(largest)]
    if completions is None:
        completions = sample_completions(policy, tokenizer, repeated, seed=seed, progress=progress)
    elif len(completions) != len(repeated):
        raise ValueError(f"completions must hold max(ns) = {largest} samples per prompt ({len(repeated)}), got {len(completions)}")
    proxy_scores = score_rollouts(proxy, repeated, completions).reshape(len(prompts), largest)
    gold_scores = score_rollouts(gold, repeated, completions).reshape(len(prompts), largest)
    points = []
    for n in ns:
        groups_proxy = proxy_scores.reshape(len(prompts), largest // n, n)
        pick = groups_proxy.argmax(-1)[..., None]
        points.append({
            "n": n,
            "kl": best_of_n_kl(n),
            "proxy": float(np.take_along_axis(groups_proxy, pick, -1).mean()),
            "gold": float(np.take_along_axis(gold_scores.reshape(groups_proxy.shape), pick, -1).mean()),
        })
    return points


def fit_gao(kl, gain, form: str) -> dict:
    """Least-squares fit of Gao et al.'s form to gold-reward gains (chapter 04).

    Args:
        kl: KL(pi || pi_ref) of each policy (negative sampling noise is clipped to 0).
        gain: its gold reward minus the initial policy's.
        form: "bon" for d (alpha - beta d), "rl" for d (alpha - beta log d), d = sqrt(kl).

    Returns {"alpha", "beta", "r2", "d_peak"}: the coefficients, the fit's R^2 and the d
    at which the fitted gold reward peaks (alpha / 2 beta, or exp(alpha / beta - 1)).
    """
    check_choice("form", form, ("bon", "rl"))
    d = np.sqrt(np.clip(np.asarray(kl, dtype=np.float64), 0, None))
    gain = np.asarray(gain, dtype=np.float64)
    if d.shape != gain.shape or d.ndim != 1 or len(d) < 3:
        raise ValueError(f"kl and gain must be 1-D of the same length >= 3, got shapes {d.shape} and {gain.shape}")
    second = d**2 if form == "bon" else d * np.log(np.where(d > 0, d, 1.0))
    design = np.stack([d, -second], 1)
    (alpha, beta), *_ = np.linalg.lstsq(design, gain, rcond=None)
    residual = gain - design @ np.array([alpha, beta])
    total = ((gain - gain.mean()) ** 2).sum()
    r2 = 1 - (residual**2).sum() / total if total > 0 else float("nan")
    if beta <= 0:
        peak = float("inf")
    else:
        peak = alpha / (2 * beta) if form == "bon" else math.exp(alpha / beta - 1)
    return {"alpha": float(alpha), "beta": float(beta), "r2": float(r2), "d_peak": float(peak)}


def gao_curve(d: np.ndarray, alpha: float, beta: float, form: str) -> np.ndarray:
    """The fitted gain at each d (for plotting)."""
    d = np.asarray(d, dtype=np.float64)
    return d * (alpha - beta * (d if form == "bon" else np.log(np.where(d > 0, d, 1.0))))


def best_of_n_at_most(points: list[dict], n: int) -> dict:
    """The point of a `best_of_n_sweep` with the largest n not above `n` (chapter 04 puts
    best-of-16 on its frontier, or the nearest smaller n its `bon_ns` sweep measured).
    Raises ValueError if the sweep has no n that small."""
    check_type("n", n, int)
    candidates = [p for p in points if p["n"] <= n]
    if not candidates:
        raise ValueError(f"the best-of-n sweep measured n = {[p['n'] for p in points]}, none <= {n}; "
                         f"include an n <= {n} in bon_ns")
    return max(candidates, key=lambda p: p["n"])
