"""PPO for causal language models, as InstructGPT ran it (chapter 04).

Survey section 4.2; Ouyang et al. 2022 (InstructGPT, arXiv 2203.02155); Schulman et al.
2017 (PPO, arXiv 1707.06347); Ziegler et al. 2019 (arXiv 1909.08593) for the per-token
KL penalty and the adaptive KL controller; Huang et al. 2024, "The N+ implementation
details of RLHF with PPO" (arXiv 2403.17031) for the details. TRL removed its PPO
trainer, so this one is ours.

The token-level MDP: the state is the prompt and the response so far, an action is a
token, the episode ends at end-of-sequence. The reward of token t is

    r_t = -kl_coef * (log pi_old(y_t) - log pi_ref(y_t))  [+ score(x, y) at the last token]

Value model: a **separate critic** (a token-classification head, one scalar per position,
on its own trunk), which InstructGPT initialises from the reward model; `load_model(path,
head="value")` on a saved reward model does exactly that. A separate trunk keeps the value
loss from pulling on the policy's features; under QLoRA it is a second 4-bit base with its
own adapters. The reference policy is a frozen copy of the starting policy, or, under
PEFT, the policy with its adapters disabled (no second copy).

Each implementation detail is a switch of `PPOConfig`, tested in tests/test_ppo.py:
temperature applied to every log-probability; tokens after end-of-sequence masked out;
`missing_eos_penalty`; `whiten_rewards`; `whiten_advantages`; `cliprange_value` (value
clipping); `kl_target` (adaptive KL); `disable_dropout`. The clipped objective and GAE are
`ppo_policy_loss` and `gae` below, a few lines each.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ._checks import check_range, check_type
from .group_losses import masked_mean, masked_whiten
from .online_rl import OnlineConfig, OnlineResult, OnlineRun, RewardFunction, response_outputs, token_logprobs


@dataclass(frozen=True)
class PPOConfig(OnlineConfig):
    """PPO's hyper-parameters (names follow TRL's former `PPOConfig`)."""

    num_ppo_epochs: int = 4
    """Passes over each batch of rollouts."""
    num_mini_batches: int = 2
    """Minibatches per pass; `batch_size` must be divisible by it."""
    cliprange: float = 0.2
    """epsilon of the clipped surrogate: the ratio pi / pi_old is clipped to [1 - eps, 1 + eps]."""
    cliprange_value: float | None = 0.2
    """Value clipping: the new value may move at most this far from the old one in the loss
    (the larger of the clipped and unclipped squared errors is used). None: plain squared error."""
    vf_coef: float = 0.1
    """Weight of the value loss in the total loss."""
    gamma: float = 1.0
    """Discount; 1 because an episode is one short response."""
    lam: float = 0.95
    """GAE's lambda: 1 is the Monte-Carlo return, 0 the one-step TD error."""
    kl_coef: float = 0.05
    """Initial coefficient of the per-token KL penalty in the reward."""
    kl_target: float | None = None
    """Adaptive KL controller (Ziegler et al. 2019): move kl_coef so that the sequence KL
    tracks this target. None: a fixed kl_coef."""
    kl_horizon: int = 10_000
    """The controller's horizon: each step changes kl_coef by at most 20% x batch_size / horizon."""
    whiten_rewards: bool = False
    """Whiten the per-token rewards over the batch (variance only, the mean is kept)."""
    whiten_advantages: bool = True
    """Whiten the advantages over the batch's tokens before the policy loss."""

    def __post_init__(self):
        super().__post_init__()
        for name in ("num_ppo_epochs", "num_mini_batches", "kl_horizon"):
            check_type(name, getattr(self, name), int)
            check_range(name, getattr(self, name), 1)
        check_range("cliprange", self.cliprange, 0, low_open=True)
        if self.cliprange_value is not None:
            check_range("cliprange_value", self.cliprange_value, 0, low_open=True)
        check_range("vf_coef", self.vf_coef, 0)
        check_range("gamma", self.gamma, 0, 1)
        check_range("lam", self.lam, 0, 1)
        check_range("kl_coef", self.kl_coef, 0)
        if self.kl_target is not None:
            check_range("kl_target", self.kl_target, 0, low_open=True)
        if self.batch_size % self.num_mini_batches:
            raise ValueError(f"batch_size={self.batch_size} must be divisible by num_mini_batches={self.num_mini_batches}")


class AdaptiveKLController:
    """beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon) after each batch of
    n rollouts with mean sequence KL `KL` (Ziegler et al. 2019, section 2.2)."""

    def __init__(self, init: float, target: float, horizon: int):
        self.value, self.target, self.horizon = init, target, horizon

    def update(self, kl: float, n: int) -> float:
        error = min(max(kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n / self.horizon
        return self.value


def per_token_rewards(score: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor,
                      kl_coef: float) -> torch.Tensor:
    """r_t = -kl_coef * (log pi_old - log pi_ref) at every response token, plus the score at
    the last one (the end-of-sequence token, or the last token of a truncated response)."""
    rewards = -kl_coef * (logprobs - ref_logprobs) * mask
    last = mask.sum(-1).long().clamp_min(1) - 1
    rewards[torch.arange(len(score)), last] += score
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimation (Schulman et al. 2016, arXiv 1506.02438):
    delta_t = r_t + gamma V_{t+1} - V_t,  A_t = delta_t + gamma lam A_{t+1}; returns (A, A + V).
    Rewards and values where mask is 0 count as 0: padding adds nothing to the real tokens'
    advantages, and the last real token bootstraps from a terminal state."""
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else 0.0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages * mask, (advantages + values) * mask


def ppo_policy_loss(logprobs, old_logprobs, advantages, mask, cliprange: float):
    """The clipped surrogate, per token: max(-A rho, -A clip(rho, 1 - eps, 1 + eps)) with
    rho = pi / pi_old, averaged over the batch's tokens; also the fraction of tokens whose
    ratio lies outside [1 - eps, 1 + eps] (TRL's former trainer counted only those where the
    clipped term was the larger loss)."""
    ratio = torch.exp(logprobs - old_logprobs)
    losses = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - cliprange, 1 + cliprange))
    clipped = ((ratio - 1).abs() > cliprange).float()
    return masked_mean(losses, mask), masked_mean(clipped, mask)


def ppo_value_loss(values, old_values, returns, mask, cliprange_value: float | None):
    """0.5 (V - R)^2, or with value clipping 0.5 max((V - R)^2, (V_clip - R)^2) where V_clip
    stays within cliprange_value of the old value; averaged over the batch's tokens."""
    losses = (values - returns) ** 2
    if cliprange_value is not None:
        clipped = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
        losses = torch.max(losses, (clipped - returns) ** 2)
    return 0.5 * masked_mean(losses, mask)


def critic_values(critic, rollouts) -> torch.Tensor:
    """V(s_t) for each response position t: the critic's scalar at the token before it."""
    return response_outputs(critic, rollouts)[..., 0]


def train_ppo(policy, config: PPOConfig | None, prompts: list[str], *, tokenizer, reward: RewardFunction, critic,
              callback: Callable[[int, nn.Module], None] | None = None, progress: bool = False) -> OnlineResult:
    """Train `policy` with PPO on `reward` (chapter 04).

    Args:
        policy: a causal LM (full fine-tuning, or LoRA/QLoRA from `load_model`).
        config: a `PPOConfig` (None: the defaults).
        prompts: the prompt pool; each step draws `batch_size` of them.
        tokenizer: the policy's tokenizer.
        reward: `reward(prompts, completions) -> array` (see `survey_lib.online_rl`).
        critic: a token-classification model, e.g. `load_model(rm_dir, head="value")`.
        callback: `callback(step, policy)` after each step (chapter 04 evaluates there).

    Each history record holds the score, the sequence KL to the reference, kl_coef, the
    response length, the fraction of responses that ended, the policy and value losses
    and the fraction of clipped ratios.
    """
    config = config or PPOConfig()
    run = OnlineRun(policy, config, prompts, tokenizer=tokenizer, reward=reward, extra_modules={"critic": critic})
    controller = AdaptiveKLController(config.kl_coef, config.kl_target or 1.0, config.kl_horizon)
    controller.value = run.state.get("kl_coef", config.kl_coef)
    minibatch = config.batch_size // config.num_mini_batches
    for step in run.steps("PPO", progress):
        # 1. rollouts, scores, and what the update compares against
        rollouts, scores = run.rollout()
        mask = rollouts.response_mask.float()
        old, ref = run.old_and_reference_logprobs(rollouts)
        with torch.no_grad():
            old_values = critic_values(critic, rollouts) * mask
        # 2. per-token rewards, GAE
        kl_coef = controller.value
        rewards = per_token_rewards(scores, old, ref, mask, kl_coef)
        if config.whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, old_values, mask, config.gamma, config.lam)
        if config.whiten_advantages:
            advantages = masked_whiten(advantages, mask)
        # 3. several epochs of clipped updates on minibatches
        stats = []
        for _ in range(config.num_ppo_epochs):
            for index in torch.randperm(config.batch_size, generator=run.generator).split(minibatch):
                batch = rollouts.select(index)
                m = mask[index]
                pg_loss, clipfrac = ppo_policy_loss(token_logprobs(policy, batch, config.temperature), old[index],
                                                    advantages[index], m, config.cliprange)
                vf_loss = ppo_value_loss(critic_values(critic, batch), old_values[index], returns[index], m,
                                         config.cliprange_value)
                run.step(pg_loss + config.vf_coef * vf_loss)
                stats.append((pg_loss.item(), vf_loss.item(), clipfrac.item()))
        kl = ((old - ref) * mask).sum(-1)
        if config.kl_target is not None:
            controller.update(kl.mean().item(), config.batch_size)
            run.state["kl_coef"] = controller.value
        pg, vf, cf = torch.tensor(stats).mean(0).tolist()
        run.record(step, rollouts, scores, kl, kl_coef=kl_coef, pg_loss=pg, vf_loss=vf, clipfrac=cf)
        if callback is not None:
            callback(step, policy)
    policy.eval()
    critic.eval()
    return OnlineResult(policy, run.history, critic)
