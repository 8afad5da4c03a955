"""Online RL for language models: what PPO, RLOO and GRPO share, and RLOO and GRPO (chapter 04).

Survey section 4.2. Each step samples a batch of responses from the current policy (the
rollouts, `generation.generate_rollouts`), scores them with a reward, and takes gradient
steps on them. The three methods differ in how a response's advantage is estimated:

- PPO (`survey_lib.ppo`): a learnt critic and GAE over the token-level MDP;
- RLOO (Ahmadian et al. 2024, arXiv 2402.14740; Kool et al. 2019): k responses per prompt,
  each baselined by the mean reward of the other k - 1, the KL penalty inside the reward;
- GRPO (Shao et al. 2024, DeepSeekMath, arXiv 2402.03300): G responses per prompt,
  advantage (r - mean) / std over the group, the KL to the reference in the loss; and its
  2025 variants (Dr. GRPO, DAPO, GSPO, CISPO) and REINFORCE++ as settings of `GroupConfig`
  (chapter 09; the math in `survey_lib.group_losses`, each paper's settings in
  `GROUP_RECIPES`).

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

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._checks import check_choice, check_range, check_type
from .checkpoints import TrainingLoop
from .generation import Rollouts, generate_rollouts, response_limit
from .group_losses import (IMPORTANCE_SAMPLING_LEVELS, LOSS_TYPES, SCALE_REWARDS, group_advantages, group_policy_loss,
                           informative_groups, kimi_length_reward, masked_mean, overlong_penalty,
                           reinforce_pp_advantages, rloo_advantages, rloo_loss)
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
    """The group-policy family (chapters 04 and 09): several responses per prompt, a baseline
    from the group, no critic. Names and defaults of the GRPO settings follow TRL's
    `GRPOConfig`; `group_losses` holds the math and `GROUP_RECIPES` the papers' settings."""

    num_generations: int = 4
    """Responses per prompt (k in RLOO, G in GRPO); `batch_size` must be a multiple of it."""
    beta: float = 0.05
    """KL coefficient: in the reward for RLOO and REINFORCE++ (k1 estimator), in the loss for
    GRPO (k3). 0 drops the reference model's term (Dr. GRPO, DAPO, GSPO, CISPO train without)."""
    epsilon: float = 0.2
    """Clip range of the importance weight: [1 - epsilon, 1 + epsilon_high]. Only active when a
    batch is reused (`num_iterations` > 1): the first update is on-policy, where the weight is 1."""
    epsilon_high: float | None = None
    """Upper clip: None is `epsilon`; DAPO's clip-higher uses 0.28 with epsilon = 0.2. With
    loss_type="cispo" it is the cap of the detached weight itself (e.g. 5.0), as in TRL."""
    num_iterations: int = 1
    """Gradient steps per batch of rollouts (mu in GRPO); 1 is plain on-policy REINFORCE."""
    loss_type: str = "grpo"
    """How token losses are averaged and clipped (`group_losses.LOSS_TYPES`): "grpo" (per
    response, then over responses), "bnpo"/"dapo" (over the batch's tokens), "dr_grpo" (a
    constant divisor), "cispo" (clipped, detached weight on log pi). RLOO ignores it."""
    importance_sampling_level: str = "token"
    """"token" (GRPO) or "sequence" (GSPO: one length-normalised weight per response)."""
    scale_rewards: str = "group"
    """GRPO's advantage divisor: the group's std ("group"), the batch's ("batch") or none
    ("none", Dr. GRPO). RLOO and REINFORCE++ ignore it."""
    dynamic_sampling: bool = False
    """DAPO: drop the groups whose rewards are all equal (no gradient) and sample more prompts
    until `batch_size` rollouts remain; the history counts every generation."""
    max_sampling_rounds: int = 8
    """With dynamic sampling, batches sampled at most per step; the step trains on the groups it
    found, and a step that found none raises."""
    overlong_buffer_len: int | None = None
    """DAPO's soft overlong punishment: the last this many tokens before the response limit
    cost up to 1 reward (`group_losses.overlong_penalty`); None: off."""
    length_reward_coef: float = 0.0
    """Kimi k1.5's length reward (`group_losses.kimi_length_reward`) times this, added to the
    score: within a group, short right answers gain and long ones lose. A response counts as
    right when the reward scored it above 0 (a verifiable reward of 1 or 0). 0: off."""

    def __post_init__(self):
        super().__post_init__()
        for name in ("num_generations", "num_iterations", "max_sampling_rounds"):
            check_type(name, getattr(self, name), int)
        check_range("num_generations", self.num_generations, 2)
        check_range("num_iterations", self.num_iterations, 1)
        check_range("max_sampling_rounds", self.max_sampling_rounds, 1)
        check_range("beta", self.beta, 0)
        check_range("epsilon", self.epsilon, 0, low_open=True)
        check_range("length_reward_coef", self.length_reward_coef, 0)
        check_choice("loss_type", self.loss_type, LOSS_TYPES)
        check_choice("importance_sampling_level", self.importance_sampling_level, IMPORTANCE_SAMPLING_LEVELS)
        check_choice("scale_rewards", self.scale_rewards, SCALE_REWARDS)
        if self.epsilon_high is not None:
            if self.loss_type == "cispo":
                check_range("epsilon_high", self.epsilon_high, 1, low_open=True)
            elif self.epsilon_high < self.epsilon:
                raise ValueError(f"epsilon_high={self.epsilon_high} must be at least epsilon={self.epsilon} "
                                 "(clip-higher widens the upper side of the clip only)")
        elif self.loss_type == "cispo":
            raise ValueError("loss_type='cispo' needs epsilon_high, the cap of its importance weight (e.g. 5.0)")
        if self.overlong_buffer_len is not None:
            check_type("overlong_buffer_len", self.overlong_buffer_len, int)
            check_range("overlong_buffer_len", self.overlong_buffer_len, 1)
            if self.max_new_tokens is not None and self.overlong_buffer_len > self.max_new_tokens:
                raise ValueError(f"overlong_buffer_len={self.overlong_buffer_len} must not exceed "
                                 f"max_new_tokens={self.max_new_tokens}")
        if self.batch_size % self.num_generations:
            raise ValueError(
                f"batch_size={self.batch_size} must be divisible by num_generations={self.num_generations} "
                "(each prompt gets num_generations responses)"
            )


GROUP_RECIPES: dict[str, tuple[str, dict]] = {
    "RLOO": ("rloo", {}),
    "GRPO": ("grpo", {"loss_type": "grpo", "scale_rewards": "group", "beta": 0.04}),
    "Dr. GRPO": ("grpo", {"loss_type": "dr_grpo", "scale_rewards": "none", "beta": 0.0}),
    "DAPO": ("grpo", {"loss_type": "dapo", "epsilon": 0.2, "epsilon_high": 0.28, "dynamic_sampling": True, "beta": 0.0}),
    "GSPO": ("grpo", {"importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4, "beta": 0.0}),
    "CISPO": ("grpo", {"loss_type": "cispo", "epsilon_high": 5.0, "beta": 0.0}),
    "REINFORCE++": ("reinforce_pp", {"loss_type": "bnpo"}),
}
"""Each paper's method as `train_group_policy`'s `method` and the `GroupConfig` settings that
make it (chapter 09's table): GRPO's beta 0.04 (DeepSeekMath); Dr. GRPO without length or std
normalisation; DAPO's clip-higher 0.2/0.28, token-level loss and dynamic sampling (its
overlong penalty depends on the response limit: set `overlong_buffer_len`); GSPO's sequence
weight with its clip range 3e-4/4e-4; CISPO's cap 5.0 (TRL's suggestion); REINFORCE++'s
token-level loss. Use `group_recipe`."""


def group_recipe(name: str, **settings) -> tuple[str, GroupConfig]:
    """`(method, config)` for a paper's method from `GROUP_RECIPES`, with `settings` (steps,
    batch_size, ...) on top: `method, config = group_recipe("DAPO", steps=40)`."""
    check_choice("recipe", name, GROUP_RECIPES)
    method, recipe = GROUP_RECIPES[name]
    return method, GroupConfig(**{**recipe, **settings})


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


def token_logprobs(model, rollouts: Rollouts, temperature: float, *, with_entropy: bool = False):
    """log pi(y_t | x, y_<t) of each response token at the sampling temperature: [B, T].
    With `with_entropy`, also the policy's entropy at each position, [B, T], without
    gradients (computed a row at a time, so a large vocabulary costs no second [B, T, V])."""
    logprobs = torch.log_softmax(response_outputs(model, rollouts) / temperature, -1)
    chosen = logprobs.gather(-1, rollouts.responses.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return chosen
    with torch.no_grad():
        entropy = torch.stack([-(row.exp() * row).sum(-1) for row in logprobs.detach()])
    return chosen, entropy


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


# ------------------------------------------------------------------ the group-policy family

GROUP_METHODS = ("rloo", "grpo", "reinforce_pp")
"""`train_group_policy`'s advantage estimators."""


def _group_rollout(run: OnlineRun, config: GroupConfig, step: int) -> tuple[Rollouts, torch.Tensor, int]:
    """One step's rollouts and scores, with DAPO's overlong penalty, Kimi's length reward and
    DAPO's dynamic sampling when they are on; also how many responses were generated."""
    k, limit = config.num_generations, response_limit(run.policy, config.max_new_tokens)
    parts, found, generated = [], 0, 0
    for _ in range(config.max_sampling_rounds if config.dynamic_sampling else 1):
        rollouts, scores = run.rollout()
        generated += len(scores)
        lengths = rollouts.response_mask.sum(-1).to(scores.device)
        shaped = scores
        if config.overlong_buffer_len is not None:
            shaped = shaped + overlong_penalty(lengths, limit, config.overlong_buffer_len)
        if config.length_reward_coef:
            shaped = shaped + config.length_reward_coef * kimi_length_reward(scores > 0, lengths, k)
        scores = shaped
        if not config.dynamic_sampling:
            return rollouts, scores, generated
        keep = informative_groups(scores, k)
        if not keep.any():
            warnings.warn(f"step {step}: every group of {k} responses had equal rewards (no gradient in "
                          f"{keep.numel()} groups); sampling again", stacklevel=3)
            continue
        rows = (torch.nonzero(keep).view(-1, 1) * k + torch.arange(k)).view(-1).tolist()
        parts.append((rollouts.select(rows), scores[rows]))
        found += int(keep.sum())
        if found * k >= config.batch_size:
            break
    if not parts:
        raise RuntimeError(
            f"dynamic sampling found no group with unequal rewards in {config.max_sampling_rounds} rounds of "
            f"{config.batch_size} responses at step {step}: the reward gives every response to these prompts the "
            "same score (all right or all wrong). Use easier or harder prompts, or dynamic_sampling=False")
    rollouts = Rollouts.concatenate([r for r, _ in parts], run.tokenizer.pad_token_id).select(range(min(found * k, config.batch_size)))
    scores = torch.cat([s for _, s in parts])[: len(rollouts.completions)]
    return rollouts, scores, generated


def train_group_policy(policy, config: GroupConfig | None, prompts: list[str], *, tokenizer, reward: RewardFunction,
                       method: str = "rloo", callback: Callable[[int, nn.Module], None] | None = None,
                       progress: bool = False) -> OnlineResult:
    """Train `policy` on `reward` with a critic-free group method (chapters 04 and 09).

    `method` is the advantage estimator: "rloo" (Ahmadian et al. 2024), "grpo" (Shao et al.
    2024, with its 2025 variants through the config: Dr. GRPO, DAPO, GSPO, CISPO; see
    `GROUP_RECIPES`) or "reinforce_pp" (REINFORCE++ with its group baseline, Hu et al. 2025).

    Each step: 1. sample `num_generations` responses per prompt and score them (DAPO's
    overlong penalty, Kimi's length reward and DAPO's dynamic sampling when on); 2. the advantages: RLOO's leave-one-out
    on R_i = score_i - beta * sum_t (log pi_old - log pi_ref) (`group_losses.rloo_advantages`),
    GRPO's group-normalised score (`group_advantages`), or REINFORCE++'s token-level return
    with the KL in it, normalised over the batch (`reinforce_pp_advantages`); 3.
    `num_iterations` gradient steps on `rloo_loss` (RLOO) or `group_policy_loss` (the others,
    with beta's k3 term only for GRPO, whose KL is not in its reward).

    `callback(step, policy)` runs after each step (chapter 04 evaluates the policy there).
    Each history record holds the score, the sequence KL to the reference, the response
    length, the fraction of responses that ended, the policy's mean token entropy on its
    responses, the responses generated for the step (more than `batch_size` under dynamic
    sampling), the loss and the fraction of clipped weights (of the batch's last update).
    """
    check_choice("method", method, GROUP_METHODS)
    config = config or GroupConfig()
    k = config.num_generations
    run = OnlineRun(policy, config, prompts, tokenizer=tokenizer, reward=reward, group=k)
    limit = response_limit(policy, config.max_new_tokens)
    for step in run.steps(method.upper(), progress):
        # 1. rollouts and what the updates compare against
        rollouts, scores, generated = _group_rollout(run, config, step)
        mask = rollouts.response_mask.float()
        first, entropy = token_logprobs(policy, rollouts, config.temperature, with_entropy=True)
        old, ref = run.old_and_reference_logprobs(rollouts, current=first)
        kl = ((old - ref) * mask).sum(-1)
        # 2. advantages
        if method == "rloo":
            advantages = rloo_advantages(scores - config.beta * kl, k)
        elif method == "grpo":
            advantages = group_advantages(scores, k, scale=config.scale_rewards)
        else:
            advantages = reinforce_pp_advantages(scores, old - ref, mask, k, config.beta)
        # 3. clipped updates on the same rollouts
        for iteration in range(config.num_iterations):
            new = first if iteration == 0 else token_logprobs(policy, rollouts, config.temperature)
            if method == "rloo":
                loss, clipfrac = rloo_loss(new, old, advantages, mask, config.epsilon)
            else:
                loss, clipfrac = group_policy_loss(
                    new, old, ref, advantages, mask, loss_type=config.loss_type, epsilon=config.epsilon,
                    epsilon_high=config.epsilon_high, importance_sampling_level=config.importance_sampling_level,
                    beta=config.beta if method == "grpo" else 0.0, max_completion_length=limit)
            run.step(loss)
        run.record(step, rollouts, scores, kl, loss=loss.item(), clipfrac=clipfrac.item(),
                   entropy=masked_mean(entropy, mask).item(), generations=generated)
        if callback is not None:
            callback(step, policy)
    policy.eval()
    return OnlineResult(policy, run.history)
