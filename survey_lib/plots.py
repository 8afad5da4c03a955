"""Plotting helpers: the figures that more than one chapter draws, or that take more than a
few lines to draw.

Used by chapter 04 (policy optimisation: PPO's training curves, the frontier, the
over-optimisation fits) and chapter 07 (the frontier of the DPO variants). Each helper
draws on matplotlib axes that the chapter made and leaves the layout, saving and showing
to the chapter (`Chapter.show`).
"""
from __future__ import annotations

import numpy as np

from ._checks import check_choice
from .overoptimization import gao_curve

GAO_FORMS = {"bon": "d(α − βd)", "rl": "d(α − β log d)"}


def frontier_scatter(ax, points: dict[str, dict], y: str, *, x: str = "kl", size: float = 40, fontsize: float = 8) -> None:
    """One labelled point per method on a reward-vs-KL plane (chapters 04 and 07).

    `points` maps a method's name to its measurements; point i is drawn at
    (`points[name][x]`, `points[name][y]`) in colour Ci, above any curve already drawn,
    and labelled with the name.
    """
    for i, (name, point) in enumerate(points.items()):
        ax.scatter(point[x], point[y], s=size, color=f"C{i}", zorder=3)
        ax.annotate(name, (point[x], point[y]), fontsize=fontsize, xytext=(4, 3), textcoords="offset points")


def ppo_training_curves(axes, history: list[dict], kl_target: float | None) -> None:
    """PPO's training history on three axes (chapter 04): the rollouts' proxy score; the KL
    to the reference with the adaptive controller's target and coefficient β_KL; the value
    loss and the fraction of clipped ratios. `history` is `train_ppo(...).history`."""
    reward_ax, kl_ax, critic_ax = axes
    steps = [h["step"] + 1 for h in history]
    reward_ax.plot(steps, [h["score"] for h in history])
    reward_ax.set(xlabel="iteration", ylabel="proxy score of the rollouts", title="Reward")
    kl_ax.plot(steps, [h["kl"] for h in history], label="KL(π_old || π_ref) per response")
    if kl_target is not None:  # None: a fixed coefficient, no target to track
        kl_ax.axhline(kl_target, color="grey", ls="--", lw=0.8, label="KL target")
    coef_ax = kl_ax.twinx()
    coef_ax.plot(steps, [h["kl_coef"] for h in history], color="C1", lw=0.8)
    coef_ax.set_ylabel("β_KL (adaptive)", color="C1")
    kl_ax.set(xlabel="iteration", ylabel="nats", title="KL and its controller")
    kl_ax.legend(fontsize=7)
    critic_ax.plot(steps, [h["vf_loss"] for h in history], label="value loss")
    critic_ax.plot(steps, [h["clipfrac"] for h in history], label="fraction of ratios clipped")
    critic_ax.set(xlabel="iteration", title="Critic and clipping")
    critic_ax.legend(fontsize=7)


def overoptimization_panel(ax, points: list[dict], fit: dict, form: str, title: str) -> None:
    """Proxy and gold reward gains against d = sqrt(KL), with Gao et al.'s fitted curve
    (chapter 04).

    `points` are {"kl", "gold", "proxy"} along an optimisation, the first one the starting
    policy that the gains are measured from; `fit` is `fit_gao`'s result for `form` ("rl"
    or "bon"). The curve covers the measured range, and goes on to its fitted peak when that
    lies within three times the range.
    """
    check_choice("form", form, GAO_FORMS)
    d = np.sqrt(np.clip([p["kl"] for p in points], 0, None))
    start = points[0]
    ax.plot(d, [p["proxy"] - start["proxy"] for p in points], "C1o-", label="proxy gain")
    ax.plot(d, [p["gold"] - start["gold"] for p in points], "C0o", label="gold gain")
    grid = np.linspace(0, max(d.max(), min(fit["d_peak"], 3 * d.max())), 100)
    ax.plot(grid, gao_curve(grid, fit["alpha"], fit["beta"], form), "C0-",
            label=f"fit {GAO_FORMS[form]}: α={fit['alpha']:.2f}, β={fit['beta']:.2f}")
    ax.set(xlabel="d = sqrt(KL)", title=title)
    ax.legend(fontsize=7)
