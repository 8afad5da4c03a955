"""Online RL for language models: what PPO, RLOO and GRPO share, and RLOO and GRPO (chapter 04).

Survey section 4.2. Each step samples a batch of responses from the current policy (the
rollouts, `generation.generate_rollouts`), scores them with a reward, and takes gradient
steps on them. The three methods differ in how a response's advantage is estimated:

- PPO (`survey_lib.ppo`): a learnt critic and GAE over the token-level MDP;
- RLOO (Ahmadian et al. 2024, arXiv 2402.14740; Kool et al. 2019): k responses per prompt,
  each baselined by the mean reward of the other k - 1, the KL penalty inside the reward;
- GRPO (Shao et al. 2024, DeepSeekMath, arXiv 2402.03300): G responses per prompt,
  advantage (r - mean) / std over the group, the KL to the reference in the loss.

**One reward interface** for every method: any callable `reward(prompts, completions)`
returning one finite number per completion: a `RewardModel` or `RewardEnsemble` (chapter
03), the text world's `gold_reward`, or a plain Python function such as a verifier.

TRL ships `RLOOTrainer` and `GRPOTrainer`; ours share PPO's rollout code and reward
interface, and follow TRL's conventions (names of the settings, the leave-one-out and
group baselines, the k1 KL in RLOO's reward and the k3 KL in GRPO's loss, a clipped
ratio when a batch is reused) so that moving between the two is easy. A response that
hits `max_new_tokens` without an end-of-sequence token is kept and scored as it stands;
`missing_eos_penalty` (a detail from Huang et al. 2024, arXiv 2403.17031) subtracts a
fixed amount from its score.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._checks import check_range, check_type
from .checkpoints import TrainingLoop
from .generation import Rollouts, generate_rollouts
from .models import frozen_reference, keep_4bit_weights_differentiable

RewardFunction = Callable[[list, list], "np.ndarray"]


@dataclass(frozen=True)
class OnlineConfig:
    """Settings every online method shares (chapter 04)."""

    learning_rate: float = 3e-4
    """AdamW step size; ~3e-4 suits the zoo's full fine-tuning, ~1e-5 to 1e-4 LoRA adapters."""
    steps: int = 40
    """Iterations of: sample `batch_size` rollouts, update the policy on them."""
    batch_size: int = 64
    """Rollouts per step (prompts x generations per prompt)."""
    max_new_tokens: int | None = None
    """Length limit of a response; one that reaches it without end-of-sequence is kept. None:
    the policy's own (`generation.response_limit`)."""
    temperature: float = 1.0
    """Sampling temperature; the same temperature divides the logits of every log-probability
    the loss uses (policy, old policy, reference), so they are those of the sampler."""
    missing_eos_penalty: float | None = None
    """Subtracted from the score of a response that never produced end-of-sequence; None: none."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm."""
    disable_dropout: bool = True
    """Run every forward pass in eval mode, so dropout cannot make the ratio pi / pi_old of the
    first update differ from 1 (Huang et al. 2024, 2403.17031, detail "disable dropout")."""
    seed: int = 0
    """Fixes the prompts drawn at each step and the sampling."""
    output_dir: str | None = None
    """Where checkpoints go; a run whose directory holds one resumes from it. None: no checkpoints."""
    save_steps: int = 20
    """Write a checkpoint every this many steps (and at the end)."""

    def __post_init__(self):
        for name in ("steps", "batch_size", "seed", "save_steps"):
            check_type(name, getattr(self, name), int)
        check_range("learning_rate", self.learning_rate, 0, low_open=True)
        check_range("steps", self.steps, 1)
        check_range("batch_size", self.batch_size, 1)
        if self.max_new_tokens is not None:
            check_type("max_new_tokens", self.max_new_tokens, int)
            check_range("max_new_tokens", self.max_new_tokens, 1)
        check_range("temperature", self.temperature, 0, low_open=True)
        check_range("max_grad_norm", self.max_grad_norm, 0, low_open=True)
        check_range("save_steps", self.save_steps, 1)
        if self.missing_eos_penalty is not None:
            check_range("missing_eos_penalty", self.missing_eos_penalty, 0)


@dataclass(frozen=True)
class GroupConfig(OnlineConfig):
    """RLOO and GRPO: several responses per prompt, a baseline from the group (chapter 04)."""

    num_generations: int = 4
    """Responses per prompt (k in RLOO, G in GRPO); `batch_size` must be a multiple of it."""
    beta: float = 0.05
    """KL coefficient: in the reward for RLOO (k1 estimator), in the loss for GRPO (k3)."""
    epsilon: float = 0.2
    """Clip range of the probability ratio; only active when `num_iterations` > 1."""
    num_iterations: int = 1
    """Gradient steps per batch of rollouts (mu in GRPO); 1 is plain on-policy REINFORCE."""
    scale_rewards: bool = True
    """GRPO divides advantages by the group's standard deviation; RLOO ignores it."""

    def __post_init__(self):
        super().__post_init__()
        check_type("num_generations", self.num_generations, int)
        check_type("num_iterations", self.num_iterations, int)
        check_range("num_generations", self.num_generations, 2)
        check_range("num_iterations", self.num_iterations, 1)
        check_range("beta", self.beta, 0)
        check_range("epsilon", self.epsilon, 0, low_open=True)
        if self.batch_size % self.num_generations:
            raise ValueError(
                f"batch_size={self.batch_size} must be divisible by num_generations={self.num_generations} "
                "(each prompt gets num_generations responses)"
            )


# ------------------------------------------------------------------ shared pieces


def score_rollouts(reward: RewardFunction, prompts: list[str], completions: list[str]) -> np.ndarray:
    """Call `reward` and check what it returns: one finite number per completion. A NaN or
    inf raises naming the first such sample, so a broken reward cannot train silently."""
    if not callable(reward):
        raise TypeError(f"reward must be callable as reward(prompts, completions), got {type(reward).__name__}")
    scores = np.asarray(reward(prompts, completions), dtype=np.float64).reshape(-1)
    if scores.shape != (len(completions),):
        raise ValueError(f"reward returned {scores.size} values for {len(completions)} completions")
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        i = int(bad[0])
        raise FloatingPointError(
            f"reward returned {scores[i]} for sample {i} (prompt {prompts[i]!r}, completion {completions[i]!r}); "
            f"{bad.size} of {len(scores)} scores are not finite"
        )
    return scores


def response_outputs(model, rollouts: Rollouts) -> torch.Tensor:
    """The model's outputs at the positions that predict each response token: [B, T, out].
    Positions count from each row's first real token, as generation counted them."""
    positions = (rollouts.attention_mask.cumsum(-1) - 1).clamp_min(0)
    out = model(input_ids=rollouts.sequences, attention_mask=rollouts.attention_mask, position_ids=positions)
    return out.logits[:, rollouts.prompt_length - 1 : -1].float()


def token_logprobs(model, rollouts: Rollouts, temperature: float) -> torch.Tensor:
    """log pi(y_t | x, y_<t) of each response token at the sampling temperature: [B, T]."""
    logits = response_outputs(model, rollouts) / temperature
    return torch.log_softmax(logits, -1).gather(-1, rollouts.responses.unsqueeze(-1)).squeeze(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    return (x * mask).sum(dim) / mask.sum(dim).clamp_min(1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the unmasked entries; with shift_mean=False the mean is put back
    (reward whitening keeps the rewards' sign, Huang et al. 2024, 2403.17031).

    The variance is the population one, divided by the number n of unmasked entries, as in
    Huang et al.'s code (summarize_from_feedback_details: a variance with unbiased=False).
    TRL's `masked_whiten` divides by n - 1, so its (x - mean) / std is sqrt((n - 1) / n) times
    ours, smaller by 1 - sqrt(1 - 1/n) ~ 1/(2n): 5.0e-4 relative for a batch of n = 1,000
    tokens, less for larger ones. Negligible, and changing it would move every PPO number of
    chapter 04."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    white = (x - mean) * torch.rsqrt(var + 1e-8)
    return (white if shift_mean else white + mean) * mask


class OnlineRun:
    """The bookkeeping of an online run, so that each algorithm's loop shows only its math:
    checks, the optimiser, the frozen reference, drawing prompts, sampling and scoring,
    and through `checkpoints.TrainingLoop` the history, checkpoints and resuming."""

    def __init__(self, policy, config: OnlineConfig, prompts, *, tokenizer, reward,
                 extra_modules: dict[str, nn.Module] | None = None, group: int = 1):
        check_type("prompts", prompts, list)
        if not prompts:
            raise ValueError("prompts must not be empty")
        if not callable(reward):
            raise TypeError(f"reward must be callable as reward(prompts, completions), got {type(reward).__name__}")
        if tokenizer is None:
            raise ValueError("pass tokenizer= with a model object")
        keep_4bit_weights_differentiable(policy)
        self.policy, self.tokenizer, self.prompts, self.reward, self.config = policy, tokenizer, prompts, reward, config
        self.group = group
        self.modules = nn.ModuleDict({"policy": policy, **(extra_modules or {})})
        self.modules.train(not config.disable_dropout)
        params = [p for p in self.modules.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
        self.reference_context, self.reference = frozen_reference(policy)
        self.loop = TrainingLoop(self.modules, self.optimizer, config, prompts)
        self.history, self.state = self.loop.history, self.loop.extra
        self.generator = torch.Generator().manual_seed(config.seed)
        if "generator" in self.state:
            self.generator.set_state(self.state["generator"])
            torch.set_rng_state(self.state["torch_rng"])
        else:
            torch.manual_seed(config.seed)

    def steps(self, desc: str, progress: bool):
        return self.loop.steps(self.config.steps, desc, progress)

    def rollout(self) -> tuple[Rollouts, torch.Tensor]:
        """Sample batch_size / group prompts, `group` responses each (adjacent rows), and
        their scores (after the missing-EOS penalty)."""
        n = self.config.batch_size // self.group
        index = torch.randint(len(self.prompts), (n,), generator=self.generator).repeat_interleave(self.group)
        prompts = [self.prompts[i] for i in index.tolist()]
        rollouts = generate_rollouts(self.policy, self.tokenizer, prompts, max_new_tokens=self.config.max_new_tokens,
                                     temperature=self.config.temperature)
        scores = torch.tensor(score_rollouts(self.reward, rollouts.prompts, rollouts.completions), dtype=torch.float32)
        if self.config.missing_eos_penalty is not None:
            scores = scores - self.config.missing_eos_penalty * (~rollouts.ended).float().cpu()
        return rollouts, scores.to(rollouts.sequences.device)

    def old_and_reference_logprobs(self, rollouts: Rollouts, current: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi_old and log pi_ref per response token, without gradients. `current`: the
        policy's log-probabilities already computed for the first update; on-policy, pi_old is
        that policy, so they serve as pi_old (detached) and one forward pass is saved, as
        TRL's GRPOTrainer does."""
        t = self.config.temperature
        with torch.no_grad():
            old = token_logprobs(self.policy, rollouts, t) if current is None else current.detach()
            if self.reference_context is None:
                ref = token_logprobs(self.reference, rollouts, t)
            else:
                with self.reference_context():
                    ref = token_logprobs(self.reference, rollouts, t)
        return old, ref

    def step(self, loss: torch.Tensor) -> None:
        """One optimiser step on `loss`, the gradient clipped to `max_grad_norm`."""
        self.loop.update(loss, len(self.history), max_grad_norm=self.config.max_grad_norm)

    def record(self, step: int, rollouts: Rollouts, scores: torch.Tensor, kl: torch.Tensor, **values) -> dict:
        """Append the step's statistics; write a checkpoint when it is due."""
        return self.loop.record(step, {
            "step": step,
            "score": scores.mean().item(),
            "kl": kl.mean().item(),
            "response_length": rollouts.response_mask.sum(-1).float().mean().item(),
            "ended": rollouts.ended.float().mean().item(),
            **{k: float(v) for k, v in values.items()},
        }, state=lambda: {"generator": self.generator.get_state(), "torch_rng": torch.get_rng_state()})


@dataclass
class OnlineResult:
    """What the online trainers return: the policy (trained in place), one history record
    per step, and for PPO the critic."""

    model: nn.Module
    history: list[dict]
    critic: nn.Module | None = None


# ------------------------------------------------------------------ RLOO and GRPO


def rloo_advantages(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """Leave-one-out advantages: r_i - mean of the other k - 1 rewards of the same prompt
    (Ahmadian et al. 2024, eq. 6). `rewards` holds groups of k adjacent rows."""
    grouped = rewards.view(-1, k)
    baseline = (grouped.sum(1, keepdim=True) - grouped) / (k - 1)
    return (grouped - baseline).view(-1)


def grpo_advantages(rewards: torch.Tensor, k: int, *, scale: bool = True) -> torch.Tensor:
    """Group-relative advantages: (r_i - mean of the group) / (std of the group + 1e-4)
    (Shao et al. 2024, section 4.1.2; std with Bessel's correction, as TRL)."""
    grouped = rewards.view(-1, k)
    centred = grouped - grouped.mean(1, keepdim=True)
    return (centred / (grouped.std(1, keepdim=True) + 1e-4) if scale else centred).view(-1)


def rloo_loss(logprobs, old_logprobs, advantages, mask, epsilon: float):
    """RLOO's loss with a sequence-level ratio: rho_i = exp(sum_t (log pi - log pi_old)),
    -mean_i min(rho_i A_i, clip(rho_i, 1 - eps, 1 + eps) A_i) (as TRL's `RLOOTrainer`;
    with one update per batch rho = 1 and it is REINFORCE with the leave-one-out baseline
    of Ahmadian et al. 2024). Also the fraction of sequences whose ratio lies outside
    [1 - eps, 1 + eps]."""
    ratio = torch.exp(((logprobs - old_logprobs) * mask).sum(-1))
    clipped = ratio.clamp(1 - epsilon, 1 + epsilon)
    loss = -torch.min(ratio * advantages, clipped * advantages).mean()
    return loss, ((ratio - 1).abs() > epsilon).float().mean()


def grpo_loss(logprobs, old_logprobs, ref_logprobs, advantages, mask, epsilon: float, beta: float):
    """GRPO's loss (Shao et al. 2024, DeepSeekMath): per token -min(rho_t A, clip(rho_t, 1 +- eps) A)
    + beta k3_t with rho_t = pi / pi_old and the k3 estimator k3_t = pi_ref/pi - log(pi_ref/pi)
    - 1 (Schulman 2020), averaged over each response's tokens, then over responses. Also
    the fraction of tokens whose ratio lies outside [1 - eps, 1 + eps]."""
    ratio = torch.exp(logprobs - old_logprobs)
    clipped = ratio.clamp(1 - epsilon, 1 + epsilon)
    per_token = -torch.min(ratio * advantages[:, None], clipped * advantages[:, None])
    k3 = torch.exp(ref_logprobs - logprobs) - (ref_logprobs - logprobs) - 1
    loss = masked_mean(per_token + beta * k3, mask, dim=-1).mean()
    return loss, masked_mean(((ratio - 1).abs() > epsilon).float(), mask)


def train_group_policy(policy, config: GroupConfig | None, prompts: list[str], *, tokenizer, reward: RewardFunction,
                       method: str = "rloo", callback: Callable[[int, nn.Module], None] | None = None,
                       progress: bool = False) -> OnlineResult:
    """Train `policy` with RLOO (method="rloo") or GRPO (method="grpo") on `reward` (chapter 04).

    Each step: 1. sample `num_generations` responses per prompt and score them; 2. the
    advantages: RLOO's leave-one-out on R_i = score_i - beta * sum_t (log pi_old - log pi_ref)
    (`rloo_advantages`), GRPO's group-normalised score (`grpo_advantages`); 3.
    `num_iterations` gradient steps on `rloo_loss` or `grpo_loss`.

    `callback(step, policy)` runs after each step (chapter 04 evaluates the policy there).
    Each history record holds the score, the sequence KL to the reference, the response
    length, the fraction of responses that ended, the loss and the fraction of clipped
    ratios (of the batch's last update).
    """
    if method not in ("rloo", "grpo"):
        raise ValueError(f"unknown method {method!r}; valid choices: 'rloo', 'grpo'")
    config = config or GroupConfig()
    k = config.num_generations
    run = OnlineRun(policy, config, prompts, tokenizer=tokenizer, reward=reward, group=k)
    for step in run.steps(method.upper(), progress):
        # 1. rollouts and what the updates compare against
        rollouts, scores = run.rollout()
        mask = rollouts.response_mask.float()
        first = token_logprobs(policy, rollouts, config.temperature)  # the first update's, with gradients
        old, ref = run.old_and_reference_logprobs(rollouts, current=first)
        kl = ((old - ref) * mask).sum(-1)
        # 2. advantages from the group
        if method == "rloo":
            advantages = rloo_advantages(scores - config.beta * kl, k)
        else:
            advantages = grpo_advantages(scores, k, scale=config.scale_rewards)
        # 3. clipped updates on the same rollouts
        for iteration in range(config.num_iterations):
            new = first if iteration == 0 else token_logprobs(policy, rollouts, config.temperature)
            if method == "rloo":
                loss, clipfrac = rloo_loss(new, old, advantages, mask, config.epsilon)
            else:
                loss, clipfrac = grpo_loss(new, old, ref, advantages, mask, config.epsilon, config.beta)
            run.step(loss)
        run.record(step, rollouts, scores, kl, loss=loss.item(), clipfrac=clipfrac.item())
        if callback is not None:
            callback(step, policy)
    policy.eval()
    return OnlineResult(policy, run.history)
