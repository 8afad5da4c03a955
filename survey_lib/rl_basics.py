"""RL basics (survey section 2): REINFORCE, baselines, PPO's clipped surrogate.

Defined for chapter 01. Three experiments, each readable top to bottom:

1. A multi-armed bandit: the REINFORCE estimate of the policy gradient (Williams 1992),
   g = (r - b) * grad log pi(a), with and without a baseline b, and its variance.
2. PPO's clipped surrogate (Schulman et al. 2017, arXiv 1707.06347, eq. 7)

       L(theta) = E[min(rho * A, clip(rho, 1 - eps, 1 + eps) * A)],  rho = pi_theta / pi_old

   optimised repeatedly on one batch, where clipping visibly bounds the update.
3. A token-level policy on the enumerable task trained towards the optimum of the
   KL-regularised objective, pi* ∝ pi_ref exp(r / beta), with REINFORCE and with PPO.
   Both use the KL-shaped sequence return R(y) = r(y) - beta * log(pi(y) / pi_ref(y)),
   whose policy gradient is exactly grad J (because E[grad log pi] = 0), so
   KL(pi || pi*) -> 0 is the test of convergence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ._checks import check_choice, check_range, check_type
from .dashboard import live_curves
from .world.enumerable import EnumerableTask

# ---------------------------------------------------------------- 1. the bandit


@dataclass(frozen=True)
class Bandit:
    """K arms with Gaussian rewards r ~ N(mean_k, noise^2), means ~ offset + N(0, 1)."""

    n_arms: int = 10
    """Number of arms (actions)."""
    reward_offset: float = 5.0
    """Added to every arm's mean: irrelevant to the best arm, harmful to the variance
    of REINFORCE without a baseline."""
    reward_noise: float = 1.0
    """Std of a pull's reward around its arm's mean."""
    seed: int = 0

    def __post_init__(self):
        check_type("n_arms", self.n_arms, int)
        check_range("n_arms", self.n_arms, 2)
        check_range("reward_noise", self.reward_noise, 0)

    @property
    def means(self) -> np.ndarray:
        return self.reward_offset + np.random.default_rng(self.seed).standard_normal(self.n_arms)

    def pull(self, arms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.means[arms] + self.reward_noise * rng.standard_normal(len(arms))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


def reinforce_gradients(
    bandit: Bandit, logits: np.ndarray, n: int, baseline: bool, rng: np.random.Generator
) -> np.ndarray:
    """n single-pull REINFORCE estimates of grad_logits E[r], shape (n, K).

    grad log softmax(logits)[a] = onehot(a) - pi. The baseline is the policy's value
    V = sum_k pi_k mean_k: it leaves the expectation unchanged and shrinks the variance.
    """
    pi = softmax(logits)
    arms = rng.choice(bandit.n_arms, size=n, p=pi)
    rewards = bandit.pull(arms, rng)
    b = pi @ bandit.means if baseline else 0.0
    return (rewards - b)[:, None] * (np.eye(bandit.n_arms)[arms] - pi)


def gradient_variance(grads: np.ndarray) -> float:
    """Total variance of a gradient estimator: trace of its covariance."""
    return float(grads.var(axis=0).sum())


def exact_gradient_variance(bandit: Bandit, logits: np.ndarray, baseline: bool) -> float:
    """The total variance of `reinforce_gradients`' single-pull estimate, in closed form.

    With g = (r - b)(e_a - pi): E||g||^2 = sum_a pi_a ((mu_a - b)^2 + sigma^2) ||e_a - pi||^2,
    where ||e_a - pi||^2 = 1 - 2 pi_a + sum_k pi_k^2, and E[g] = pi * (mu - V).
    """
    pi, mu = softmax(logits), bandit.means
    b = pi @ mu if baseline else 0.0
    second_moment = pi @ (((mu - b) ** 2 + bandit.reward_noise**2) * (1 - 2 * pi + pi @ pi))
    return float(second_moment - np.sum((pi * (mu - pi @ mu)) ** 2))


def train_bandit(
    bandit: Bandit, baseline: bool, steps: int, lr: float, batch: int, rng: np.random.Generator
) -> np.ndarray:
    """Stochastic gradient ascent with REINFORCE from uniform logits; returns expected
    reward per step. The baseline here is learned (a running mean of rewards), as in practice."""
    logits, running, curve = np.zeros(bandit.n_arms), 0.0, []
    for _ in range(steps):
        pi = softmax(logits)
        arms = rng.choice(bandit.n_arms, size=batch, p=pi)
        rewards = bandit.pull(arms, rng)
        b = running if baseline else 0.0
        logits += lr * ((rewards - b)[:, None] * (np.eye(bandit.n_arms)[arms] - pi)).mean(0)
        running = 0.9 * running + 0.1 * rewards.mean()
        curve.append(pi @ bandit.means)
    return np.array(curve)


# ---------------------------------------------------------------- 2. PPO's clipped surrogate


def clipped_surrogate(
    logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> torch.Tensor:
    """PPO's clipped objective as a loss to minimise: -mean(min(rho A, clip(rho) A))."""
    check_range("clip_range", clip_range, 0, low_open=True)
    ratio = torch.exp(logp - logp_old)
    clipped = torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    return -torch.min(ratio * advantages, clipped * advantages).mean()


def surrogate_ratio_trace(
    clip_range: float | None, advantages: tuple[float, ...] = (1.0, -0.5, -0.5), steps: int = 50, lr: float = 0.5
) -> np.ndarray:
    """Take `steps` gradient steps on one batch (every action once, with fixed advantages)
    from a uniform policy; return pi/pi_old per step and action, shape (steps + 1, K).

    With clip_range=None the surrogate is the plain importance-weighted objective
    mean(rho * A), which keeps pushing; with clipping the gradient vanishes once each
    ratio leaves [1 - eps, 1 + eps] in the direction its advantage favours.
    """
    adv = torch.tensor(advantages)
    logits = torch.zeros(len(adv), requires_grad=True)
    logp_old = torch.log_softmax(logits, -1).detach()
    opt = torch.optim.SGD([logits], lr=lr)
    trace = [np.ones(len(adv))]
    for _ in range(steps):
        logp = torch.log_softmax(logits, -1)
        if clip_range is None:
            loss = -(torch.exp(logp - logp_old) * adv).mean()
        else:
            loss = clipped_surrogate(logp, logp_old, adv, clip_range)
        opt.zero_grad()
        loss.backward()
        opt.step()
        trace.append(torch.exp(torch.log_softmax(logits, -1) - logp_old).detach().numpy())
    return np.array(trace)


# ---------------------------------------------------------------- 3. towards pi* on the enumerable task


@dataclass(frozen=True)
class PolicyGradientConfig:
    """Hyper-parameters of chapter 01's token-level policy gradient."""

    method: str = "reinforce"
    """"reinforce" (one step per batch) or "ppo" (several clipped epochs per batch)."""
    beta: float = 0.5
    """KL coefficient of the objective E[r] - beta KL(pi || pi_ref)."""
    steps: int = 300
    """Batches of samples (policy rollouts)."""
    batch_size: int = 256
    """Sequences sampled per batch."""
    learning_rate: float = 0.05
    """Adam's step size on the logit table."""
    ppo_epochs: int = 4
    """PPO only: passes over each batch."""
    ppo_minibatches: int = 4
    """PPO only: minibatches per pass."""
    clip_range: float = 0.2
    """PPO only: epsilon of the clipped surrogate."""
    init: str = "reference"
    """Start from pi_ref ("reference") or from uniform ("uniform")."""
    seed: int = 0

    def __post_init__(self):
        check_choice("method", self.method, ("reinforce", "ppo"))
        check_range("beta", self.beta, 0, low_open=True)
        for name in ("steps", "batch_size", "ppo_epochs", "ppo_minibatches"):
            check_type(name, getattr(self, name), int)
            check_range(name, getattr(self, name), 1)
        check_range("learning_rate", self.learning_rate, 0, low_open=True)
        check_range("clip_range", self.clip_range, 0, low_open=True)
        if self.batch_size % self.ppo_minibatches:
            raise ValueError(f"batch_size ({self.batch_size}) must be divisible by ppo_minibatches ({self.ppo_minibatches})")


def train_towards_optimum(task: EnumerableTask, config: PolicyGradientConfig, progress: bool = True) -> dict:
    """Train a token-level tabular policy on `task`; returns the policy and, per step,
    the exact KL(pi || pi*) and objective J(pi)."""
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    policy = task.new_policy(config.init)
    opt = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    kl, objective = [task.kl_to_optimum(policy, config.beta)], [task.objective(policy, config.beta).item()]
    curves, history = live_curves(config.method), []  # the live dashboard, in a notebook
    for _ in tqdm(range(config.steps), desc=config.method, disable=not progress):
        seqs = policy.sample(config.batch_size, gen)
        with torch.no_grad():
            token_logp_old = policy.token_logprobs(seqs)
            returns = task.reward_of(seqs) - config.beta * (
                token_logp_old.sum(-1) - task.reference.sequence_logprobs(seqs)
            )
            advantages = returns - returns.mean()  # the batch mean as baseline
        if config.method == "reinforce":
            loss = -(advantages * policy.sequence_logprobs(seqs)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            # every token of a sequence shares its sequence's advantage (a bandit over sequences)
            token_adv = advantages[:, None].expand_as(token_logp_old)
            size = config.batch_size // config.ppo_minibatches
            for _ in range(config.ppo_epochs):
                for idx in torch.randperm(config.batch_size, generator=gen).split(size):
                    loss = clipped_surrogate(
                        policy.token_logprobs(seqs[idx]), token_logp_old[idx], token_adv[idx], config.clip_range
                    )
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        kl.append(task.kl_to_optimum(policy, config.beta))
        objective.append(task.objective(policy, config.beta).item())
        if curves is not None:
            history.append({"KL(π ‖ π*)": kl[-1], "J(π)": objective[-1]})
            curves.update(history, config.steps)
    return {"policy": policy, "kl_to_optimum": np.array(kl), "objective": np.array(objective)}
