"""The group-policy family as pure functions: advantages, reward shaping and losses
(chapter 04: RLOO and GRPO; chapter 09: the GRPO variants of 2025).

Every method here samples several responses per prompt (a *group*, adjacent rows of the
batch) and needs no critic. They differ in three places, which is what chapter 09's table
compares:

1. **The advantage** of a response: RLOO's leave-one-out baseline (`rloo_advantages`);
   GRPO's group z-score, or its mean-centred form without the std (Dr. GRPO) or with the
   batch's std (`group_advantages`, TRL's `scale_rewards`); REINFORCE++'s group-centred
   token-level return normalised over the whole batch (`reinforce_pp_advantages`).
2. **The importance weight and its clip**: per token (GRPO, DAPO's clip-higher with
   epsilon_high > epsilon), per sequence as a geometric mean (GSPO), or clipped and
   detached as a weight on log pi (CISPO) (`group_policy_loss`).
3. **How token losses are averaged** (`group_policy_loss`'s `loss_type`): over each
   response's tokens then over responses (GRPO), over all the batch's tokens (BNPO, DAPO,
   CISPO), or divided by a constant (Dr. GRPO).

Reward shaping that some recipes add: DAPO's soft overlong penalty (`overlong_penalty`),
Kimi k1.5's length reward (`kimi_length_reward`) and DAPO's dynamic sampling, which keeps
only groups whose rewards differ (`informative_groups`).

The masked mean and whitening over a batch's response tokens (`masked_mean`,
`masked_whiten`) live here too, shared with PPO (`survey_lib.ppo`).

The names of the settings are TRL's (`GRPOConfig`: loss_type, epsilon, epsilon_high,
importance_sampling_level, scale_rewards, beta), and tests check `group_policy_loss` against
TRL's `GRPOTrainer._compute_loss` on the same batch for every loss type and level.
"""
from __future__ import annotations

import torch

from ._checks import check_choice

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo")
"""`group_policy_loss`'s aggregations, named as TRL's `GRPOConfig.loss_type`."""
SCALE_REWARDS = ("group", "batch", "none")
"""`group_advantages`' divisors, named as TRL's `GRPOConfig.scale_rewards`."""
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
"""Where the ratio pi / pi_old is taken, as TRL's `GRPOConfig.importance_sampling_level`."""


def _groups(x: torch.Tensor, k: int) -> torch.Tensor:
    if x.dim() != 1 or x.numel() % k:
        raise ValueError(f"expected one value per response in groups of k={k} adjacent rows, got shape {tuple(x.shape)}")
    return x.view(-1, k)


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


# ------------------------------------------------------------------ advantages


def rloo_advantages(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """Leave-one-out advantages: r_i - mean of the other k - 1 rewards of the same prompt
    (Ahmadian et al. 2024, arXiv 2402.14740, eq. 6)."""
    grouped = _groups(rewards, k)
    baseline = (grouped.sum(1, keepdim=True) - grouped) / (k - 1)
    return (grouped - baseline).view(-1)


def group_advantages(rewards: torch.Tensor, k: int, *, scale: str = "group") -> torch.Tensor:
    """Group-relative advantages r_i - mean of the group, divided by (std + 1e-4) where std
    is the group's (`scale="group"`: GRPO, Shao et al. 2024, arXiv 2402.03300, section
    4.1.2), the whole batch's rewards' (`"batch"`), or not divided (`"none"`: Dr. GRPO, Liu
    et al. 2025, arXiv 2503.20783, which drops the std because it up-weights prompts that
    are nearly always right or nearly always wrong). Stds with Bessel's correction, as TRL."""
    check_choice("scale_rewards", scale, SCALE_REWARDS)
    grouped = _groups(rewards, k)
    centred = grouped - grouped.mean(1, keepdim=True)
    if scale == "group":
        centred = centred / (grouped.std(1, keepdim=True) + 1e-4)
    elif scale == "batch":
        centred = centred / (rewards.std() + 1e-4)
    return centred.view(-1)


def reinforce_pp_advantages(rewards: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, k: int,
                            beta: float) -> torch.Tensor:
    """REINFORCE++ with a baseline (Hu et al. 2025, arXiv 2501.03262): per token t of response
    i, the return A_it = (r_i - mean of its group) - beta * sum_{s >= t} kl_is with the k1
    estimate kl_is = log pi_old - log pi_ref in the reward, then normalised to zero mean and
    unit std over every response token of the batch (the "global" normalisation the paper
    argues for, in place of GRPO's per-group std). Returns [B, T], zero on padding.

    With k = 1 there is no group to centre on and it is plain REINFORCE++ (the reward itself)."""
    grouped = _groups(rewards, k)
    centred = (grouped - grouped.mean(1, keepdim=True)).view(-1) if k > 1 else rewards
    penalty = (beta * kl * mask).flip(-1).cumsum(-1).flip(-1)  # sum over s >= t
    return masked_whiten((centred[:, None] - penalty) * mask, mask)


# ------------------------------------------------------------------ reward shaping


def overlong_penalty(lengths: torch.Tensor, max_length: int, buffer: int) -> torch.Tensor:
    """DAPO's soft overlong punishment (Yu et al. 2025, arXiv 2503.14476, eq. 13), added to
    the reward: 0 up to max_length - buffer tokens, then falling linearly to -1 at
    max_length, and -1 beyond it. As TRL's `rewards.get_soft_overlong_punishment`."""
    if not 0 < buffer <= max_length:
        raise ValueError(f"overlong buffer={buffer} must lie in (0, max_length={max_length}]")
    lengths = lengths.float()
    soft = ((max_length - buffer) - lengths) / buffer
    return torch.where(lengths <= max_length - buffer, torch.zeros_like(lengths),
                       torch.where(lengths <= max_length, soft, -torch.ones_like(lengths)))


def kimi_length_reward(correct: torch.Tensor, lengths: torch.Tensor, k: int) -> torch.Tensor:
    """Kimi k1.5's length reward (Kimi Team 2025, arXiv 2501.12599, section 2.3.3): within
    each group, lambda_i = 0.5 - (len_i - min_len) / (max_len - min_len); a correct response
    gets lambda_i, a wrong one min(0, lambda_i), so short right answers gain and long wrong
    ones lose. A group whose responses all have one length gets 0."""
    length = _groups(lengths.float(), k)
    shortest, longest = length.min(1, keepdim=True).values, length.max(1, keepdim=True).values
    spread = longest - shortest
    lam = torch.where(spread > 0, 0.5 - (length - shortest) / spread.clamp_min(1e-12), torch.zeros_like(length))
    right = _groups(correct.bool(), k)
    return torch.where(right, lam, lam.clamp(max=0.0)).view(-1)


def informative_groups(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """Which groups have rewards that are not all equal: [B / k] booleans. A group whose
    responses are all right or all wrong has zero advantage everywhere and so no gradient;
    DAPO's dynamic sampling (arXiv 2503.14476, section 3.2) drops such groups and samples
    more until the batch is full."""
    grouped = _groups(rewards, k)
    return (grouped.max(1).values - grouped.min(1).values) > 0


# ------------------------------------------------------------------ losses


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


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per token, pi_ref/pi - log(pi_ref/pi) - 1: Schulman's k3 estimate of KL(pi || pi_ref),
    unbiased, never negative (GRPO's KL term, Shao et al. 2024)."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1


def group_policy_loss(logprobs, old_logprobs, ref_logprobs, advantages, mask, *, loss_type: str = "grpo",
                      epsilon: float = 0.2, epsilon_high: float | None = None,
                      importance_sampling_level: str = "token", beta: float = 0.0,
                      max_completion_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The policy loss of the GRPO family; returns (loss, fraction of clipped weights).

    Inputs are [B, T] log-probabilities of the response tokens under the policy (with
    gradients), the old policy and the reference (`ref_logprobs` may be None when beta = 0),
    the advantages ([B], or [B, T] for REINFORCE++) and the response mask.

    1. The weight: w = pi / pi_old per token, or per sequence (`importance_sampling_level=
       "sequence"`) the geometric mean exp(mean_t log(pi / pi_old)) over the response's
       tokens (GSPO, Zheng et al. 2025, arXiv 2507.18071), shared by its tokens.
    2. The surrogate per token: -min(w A, clip(w, 1 - epsilon, 1 + epsilon_high) A), PPO's
       clip, asymmetric when epsilon_high > epsilon (DAPO's clip-higher, which lets
       unlikely tokens with A > 0 grow further). For `"cispo"` instead -sg(min(w,
       epsilon_high)) A log pi (MiniMax-M1, arXiv 2506.13585, section 3.1): the weight is
       clipped and detached, so every token keeps a gradient; here epsilon_high is the cap
       itself, as in TRL (ScaleRL's epsilon_max; 5.0 is TRL's suggestion).
    3. Plus beta times the k3 KL to the reference per token, when beta > 0.
    4. The average (`loss_type`): "grpo", over each response's tokens, then over responses
       (Shao et al. 2024: a long response's tokens weigh less each); "bnpo", "dapo" and
       "cispo", over all tokens of the batch (DAPO's token-level loss); "dr_grpo",
       the sum over tokens divided by B * max_completion_length, a constant, so that
       neither a response's length nor the batch's changes a token's weight (Liu et al.
       2025, arXiv 2503.20783, section 3.2).

    TRL's "bnpo" and "dapo" differ only in which tokens they count when a batch is cut into
    micro-batches; on one batch, as here, they are equal.
    """
    check_choice("loss_type", loss_type, LOSS_TYPES)
    check_choice("importance_sampling_level", importance_sampling_level, IMPORTANCE_SAMPLING_LEVELS)
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    # 1. the importance weight
    log_ratio = logprobs - old_logprobs
    if importance_sampling_level == "sequence":
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0))[:, None]
    weight = torch.exp(log_ratio)
    # 2. the surrogate
    if loss_type == "cispo":
        per_token = -weight.clamp(max=epsilon_high).detach() * advantages * logprobs
        clipped = (weight > epsilon_high) & (advantages > 0)
    else:
        per_token = -torch.min(weight * advantages, weight.clamp(1 - epsilon, 1 + epsilon_high) * advantages)
        clipped = ((weight < 1 - epsilon) & (advantages < 0)) | ((weight > 1 + epsilon_high) & (advantages > 0))
    # 3. the KL to the reference
    if beta != 0.0:
        per_token = per_token + beta * k3_kl(logprobs, ref_logprobs)
    # 4. the average
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "dr_grpo":
        if max_completion_length is None:
            raise ValueError("loss_type='dr_grpo' divides by max_completion_length: pass the response limit")
        loss = (per_token * mask).sum() / (per_token.shape[0] * max_completion_length)
    else:
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    if clipped.shape[1] == 1:  # one weight per sequence
        return loss, clipped.float().mean()
    return loss, (clipped.float() * mask).sum() / mask.sum().clamp(min=1.0)
