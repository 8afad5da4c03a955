"""Preference losses: DPO and its variants, each a pure function of log-probabilities.

Defined for chapters 07 (DPO and its variants, survey section 7) and 08 (analysis of DPO,
section 8). Every function takes sequence log-probabilities, log pi(y|x) summed over the
response's tokens (token-level ones where the method needs them), and returns the loss
of each example, shape (batch,); callers average. Notation, for a prompt x with a chosen
response y_w and a rejected y_l:

    a = log pi(y_w|x) - log pi_ref(y_w|x)        (the chosen log-ratio)
    b = log pi(y_l|x) - log pi_ref(y_l|x)        (the rejected log-ratio)
    h = a - b                                    (the implicit reward margin, over beta)

DPO's insight (Rafailov et al. 2023, arXiv 2305.18290): the KL-regularised objective
max E[r] - beta KL(pi || pi_ref) has the optimum pi* = pi_ref exp(r / beta) / Z, so
r = beta log(pi*/pi_ref) + beta log Z, and a Bradley-Terry likelihood on preferences
becomes a likelihood on the policy: -log sigmoid(beta h). The variants change the link
(GPO), the target (IPO, SPPO), the data (RSO, KTO, NPO, D2O, DRO), the reference (SimPO,
ORPO, sDPO) or add a term (DPOP, TDPO). `tests/test_preference_losses.py` pins each one
to its closed form and, where TRL's `DPOTrainer` has the same loss, to TRL's value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._checks import check_choice, check_range


def _check(beta: float | None = None, **tensors: torch.Tensor) -> None:
    """Reject beta <= 0 and tensors whose shapes differ, naming the parameter."""
    if beta is not None:
        check_range("beta", beta, 0, low_open=True)
    shapes = {name: tuple(t.shape) for name, t in tensors.items() if t is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"tensor shapes differ: {', '.join(f'{n}={s}' for n, s in shapes.items())}")


def _margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    _check(beta, chosen_logps=chosen_logps, rejected_logps=rejected_logps,
           ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    return (chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps)


# ------------------------------------------------------------------ section 7: DPO and its variants


def dpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *, beta: float = 0.1,
             label_smoothing: float = 0.0) -> torch.Tensor:
    """DPO, -log sigmoid(beta h) (Rafailov et al. 2023, arXiv 2305.18290, eq. 7). Chapter 07.

    `label_smoothing` = epsilon gives conservative DPO (cDPO, Mitchell 2023): labels are
    taken as flipped with probability epsilon, -(1-eps) log s(beta h) - eps log s(-beta h),
    which stops the margin growing without bound. TRL: loss_type="sigmoid".
    """
    check_range("label_smoothing", label_smoothing, 0, 0.5, high_open=True)
    h = _margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)


def robust_dpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *, beta: float = 0.1,
                    label_smoothing: float = 0.1) -> torch.Tensor:
    """Robust DPO (Chowdhury et al. 2024, arXiv 2403.00409): an unbiased loss under
    labels flipped with known rate eps, [(1-eps) l(h) - eps l(-h)] / (1 - 2 eps) with
    l(h) = -log sigmoid(beta h). Unlike cDPO its expectation under noise equals the clean
    DPO loss. Chapter 07. TRL: loss_type="robust"."""
    check_range("label_smoothing", label_smoothing, 0, 0.5, high_open=True)
    h = _margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    eps = label_smoothing
    return (-(1 - eps) * F.logsigmoid(beta * h) + eps * F.logsigmoid(-beta * h)) / (1 - 2 * eps)


def ipo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *, beta: float = 0.1) -> torch.Tensor:
    """IPO, (h - 1/(2 beta))^2 (Azar et al. 2023, arXiv 2310.12036, eq. 17; beta is their tau).

    A squared loss regresses the margin onto a finite target, so deterministic preferences
    cannot drive pi(y_l) to zero as DPO's logistic loss does (chapter 08, experiment a).
    TRL (loss_type="ipo") feeds it per-token averages of a and b, which the IPO authors
    confirmed; `train_preference` does the same, the chapters' enumerable task uses sums.
    """
    h = _margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return (h - 1 / (2 * beta)) ** 2


def slic_hf_loss(chosen_logps, rejected_logps, *, delta: float = 1.0, regularizer_weight: float = 0.1,
                 target_logps: torch.Tensor | None = None) -> torch.Tensor:
    """SLiC-HF (Zhao et al. 2023, arXiv 2305.10425, section 2): a rank-calibration hinge plus a
    regulariser toward a target sequence, without a reference model:

        max(0, delta - log pi(y_w|x) + log pi(y_l|x)) - lambda log pi(y_ref|x).

    y_ref is the SFT target; with no separate target, the chosen response serves
    (`target_logps` defaults to `chosen_logps`). Chapter 07.
    """
    _check(chosen_logps=chosen_logps, rejected_logps=rejected_logps, target_logps=target_logps)
    check_range("delta", delta, 0, low_open=True)
    check_range("regularizer_weight", regularizer_weight, 0)
    target = chosen_logps if target_logps is None else target_logps
    return torch.relu(delta - chosen_logps + rejected_logps) - regularizer_weight * target


GPO_FUNCTIONS = {
    # f(rho) of Tang et al. 2024 (arXiv 2402.05749), section 2; rho = beta h
    "logistic": lambda rho: -F.logsigmoid(rho),  # DPO
    "hinge": lambda rho: torch.relu(1 - rho),  # SLiC
    "squared": lambda rho: (rho - 1) ** 2,  # IPO
    "exponential": lambda rho: torch.exp(-rho),
    "truncated_quadratic": lambda rho: torch.relu(1 - rho) ** 2,
    "savage": lambda rho: torch.sigmoid(-rho) ** 2,  # 1 / (1 + e^rho)^2
}


def gpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *, beta: float = 0.1,
             kind: str = "logistic") -> torch.Tensor:
    """Generalised preference optimisation, f(beta h) for a convex f (Tang et al. 2024,
    arXiv 2402.05749, section 2): logistic is DPO, hinge is SLiC with a reference
    (TRL's loss_type="hinge"), squared is IPO up to scale. Every f with f'(0) < 0 is a
    valid offline preference loss; how fast f decays for large rho decides how strongly
    the policy is held near pi_ref. Chapter 07."""
    check_choice("kind", kind, GPO_FUNCTIONS)
    h = _margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return GPO_FUNCTIONS[kind](beta * h)


@dataclass
class BetaDPOState:
    """Running mean M_0 and spread sigma of the reward discrepancy h, for `beta_dpo_loss`:
    exponential moving averages of each batch's mean and standard deviation, both
    starting at 0 (as in the authors' code)."""

    momentum: float = 0.9
    mean: float = 0.0
    std: float = 0.0
    beta: float | None = None
    """The beta of the last batch (for logging)."""
    kept: torch.Tensor | None = None
    """The rows of the last batch that the filter kept, in the order of the losses returned."""

    def update(self, discrepancy: torch.Tensor) -> None:
        m = self.momentum
        self.mean = m * self.mean + (1 - m) * discrepancy.mean().item()
        self.std = m * self.std + (1 - m) * (discrepancy.std().item() if discrepancy.numel() > 1 else 0.0)


def beta_dpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *, beta: float = 0.1,
                  alpha: float = 0.6, keep: float = 0.8, state: BetaDPOState, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, float]:
    """beta-DPO (Wu et al. 2024, arXiv 2407.08639): a batch-level beta and a data filter,
    both driven by each pair's reward discrepancy M_i = h_i (no beta):

    1. update the running M_0 and sigma with the batch (`state`);
    2. keep int(keep * batch) pairs, drawn without replacement with weights
       exp(-((M_i - M_0) / sigma)^2 / 2): outliers (pairs far too easy or too hard) drop out;
    3. beta_batch = beta (1 + alpha (mean of the kept M_i - M_0)), at least 1e-3 and
       without gradient: informative (high-gap) batches get a larger beta, i.e. stay
       closer to the reference;
    4. the DPO loss with beta_batch on the kept pairs.

    Returns (the kept pairs' losses, beta_batch) and records in `state.kept` which rows
    they are: the draw puts them in random order, even with keep = 1. The authors' code
    averages the kept losses; a caller weighting rows must index its weights by `state.kept`.

    The weights are floored at 1e-12, which the authors' code does not do: torch.multinomial
    without replacement needs at least int(keep * batch) nonzero weights, and a pair more
    than about 14 sigma from M_0 has a weight below float32's smallest (about 1.4e-45),
    exactly 0. The floor lets such pairs fill the draw when too few others remain; otherwise
    they are practically never drawn.
    Chapter 07.
    """
    check_range("alpha", alpha, 0)
    check_range("keep", keep, 0, 1, low_open=True)
    h = _margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    discrepancy = h.detach()
    state.update(discrepancy)
    weights = torch.exp(-0.5 * ((discrepancy - state.mean) / max(state.std, 1e-8)) ** 2).clamp_min(1e-12)
    kept = torch.multinomial(weights.float().cpu(), max(int(keep * len(h)), 1), replacement=False, generator=generator)
    state.kept = kept = kept.to(h.device)
    beta_batch = max(beta * (1 + alpha * (discrepancy[kept].mean().item() - state.mean)), 1e-3)
    return -F.logsigmoid(beta_batch * h[kept]), beta_batch


def rejection_sample(rewards: torch.Tensor, num_samples: int, *, beta: float = 0.5,
                     generator: torch.Generator | None = None) -> list[int]:
    """RSO's statistical rejection sampling (Liu et al. 2023, arXiv 2309.06657, appendix A.1,
    algorithm 1): from candidates drawn from the SFT policy with rewards r, draw
    `num_samples` distinct ones approximately from pi* ∝ pi_sft exp(r / beta). Sweep the
    remaining candidates, accepting each with probability exp((r - r_max) / beta), r_max
    the best remaining reward; repeat until enough are accepted. beta -> 0: the top
    candidates; beta -> inf: uniform draws from pi_sft. Returns indices into `rewards`.
    Chapter 07 (the pairs are then labelled and trained with a DPO-family loss)."""
    check_range("beta", beta, 0, low_open=True)
    check_range("num_samples", num_samples, 1, len(rewards))
    remaining, accepted = list(range(len(rewards))), []
    while len(accepted) < num_samples:
        best = max(rewards[i].item() for i in remaining)
        for i in list(remaining):
            if torch.rand((), generator=generator).item() < math.exp((rewards[i].item() - best) / beta):
                accepted.append(i)
                remaining.remove(i)
                if len(accepted) == num_samples:
                    break
    return accepted


def dro_loss(logps, ref_logps, rewards, values, *, tau: float = 1.0) -> torch.Tensor:
    """Direct reward optimisation (Richemond et al. 2024, arXiv 2405.19107), from single
    trajectories (x, y, r) with no preference pairs:

        1/2 (r(x, y) - V(x) - tau log(pi(y|x)/pi_ref(y|x)))^2,

    minimised jointly over the policy and a value V(x). At the optimum
    pi = pi_ref exp(r/tau) / Z and V(x) = tau log Z(x): the KL-regularised optimum with
    beta = tau. Backpropagating the square into both gives the paper's gradients.
    Chapter 07."""
    check_range("tau", tau, 0, low_open=True)
    _check(logps=logps, ref_logps=ref_logps, rewards=rewards, values=values)
    return 0.5 * (rewards - values - tau * (logps - ref_logps)) ** 2


def kto_loss(logps, ref_logps, desirable: torch.Tensor, kl: torch.Tensor | float, *, beta: float = 0.1,
             desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> torch.Tensor:
    """KTO, prospect-theoretic and unpaired (Ethayarajh et al. 2024, arXiv 2402.01306, section 4):

        r = log pi(y|x)/pi_ref(y|x),   z_ref = max(0, KL(pi || pi_ref)) (no gradient),
        loss = lambda_D (1 - sigmoid(beta (r - z_ref)))  for a desirable y,
               lambda_U (1 - sigmoid(beta (z_ref - r)))  for an undesirable y.

    Each example needs only a thumbs-up or -down (`desirable`, bool). `kl` is the batch's
    estimate of the KL term (KTO pairs each x with another example's y); it is detached
    and clamped at 0 here. Chapter 07; TRL: `KTOTrainer`.
    """
    _check(beta, logps=logps, ref_logps=ref_logps, desirable=desirable)
    check_range("desirable_weight", desirable_weight, 0, low_open=True)
    check_range("undesirable_weight", undesirable_weight, 0, low_open=True)
    z_ref = torch.as_tensor(kl, dtype=logps.dtype, device=logps.device).detach().clamp_min(0)
    r = logps - ref_logps
    return torch.where(
        desirable.bool(),
        desirable_weight * (1 - torch.sigmoid(beta * (r - z_ref))),
        undesirable_weight * (1 - torch.sigmoid(beta * (z_ref - r))),
    )


def orpo_loss(chosen_logps, rejected_logps, chosen_lengths, rejected_lengths, *, lam: float = 0.1) -> torch.Tensor:
    """ORPO, odds-ratio preference optimisation without a reference (Hong et al. 2024,
    arXiv 2403.07691): with P(y|x) = exp(mean token log-prob),

        loss = -mean log pi(y_w|x) - lambda log sigmoid(log odds(y_w) - log odds(y_l)),
        odds(y) = P / (1 - P).

    SFT and alignment in one stage: the first term is the chosen response's NLL. Chapter 07.
    """
    _check(chosen_logps=chosen_logps, rejected_logps=rejected_logps, chosen_lengths=chosen_lengths,
           rejected_lengths=rejected_lengths)
    check_range("lam", lam, 0)
    mean_w, mean_l = chosen_logps / chosen_lengths, rejected_logps / rejected_lengths
    # log odds = log P - log(1 - P); log1p(-exp(x)) is accurate for x < 0
    log_odds = (mean_w - torch.log1p(-mean_w.exp().clamp_max(1 - 1e-7))) - (
        mean_l - torch.log1p(-mean_l.exp().clamp_max(1 - 1e-7)))
    return -mean_w - lam * F.logsigmoid(log_odds)


def simpo_loss(chosen_logps, rejected_logps, chosen_lengths, rejected_lengths, *, beta: float = 2.0,
               gamma: float = 0.5) -> torch.Tensor:
    """SimPO (Meng et al. 2024, arXiv 2405.14734): DPO with the length-normalised
    log-likelihood as the implicit reward and a target margin gamma, no reference:

            -log sigmoid(beta/|y_w| log pi(y_w|x) - beta/|y_l| log pi(y_l|x) - gamma).

    The paper's defaults: beta = 2, gamma = beta / 4. Chapter 07."""
    _check(beta, chosen_logps=chosen_logps, rejected_logps=rejected_logps, chosen_lengths=chosen_lengths,
           rejected_lengths=rejected_lengths)
    return -F.logsigmoid(beta * (chosen_logps / chosen_lengths - rejected_logps / rejected_lengths) - gamma)


def nca_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *, beta: float = 0.1) -> torch.Tensor:
    """NCA for pairs (Chen et al. 2024, arXiv 2402.05369): absolute, not relative,
    likelihoods: -log s(beta a) - 1/2 log s(-beta a) - 1/2 log s(-beta b), so the chosen
    log-ratio is pushed up, not only the margin. Chapter 08. TRL: loss_type="nca_pair"."""
    _check(beta, chosen_logps=chosen_logps, rejected_logps=rejected_logps,
           ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    a, b = beta * (chosen_logps - ref_chosen_logps), beta * (rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(a) - 0.5 * F.logsigmoid(-a) - 0.5 * F.logsigmoid(-b)


def bco_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *, beta: float = 0.1,
             shift: float = 0.0) -> torch.Tensor:
    """Binary classifier optimisation for pairs (Jung et al. 2024, arXiv 2404.04656):
    chosen and rejected are classified separately, -log s(beta a - d) - log s(-(beta b - d)),
    with d the running mean reward (0 in TRL's loss_type="bco_pair"). Chapter 07."""
    _check(beta, chosen_logps=chosen_logps, rejected_logps=rejected_logps,
           ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    a, b = beta * (chosen_logps - ref_chosen_logps), beta * (rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(a - shift) - F.logsigmoid(-(b - shift))


def exo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *, beta: float = 0.1,
             label_smoothing: float = 1e-3) -> torch.Tensor:
    """EXO for pairs (Ji et al. 2024, arXiv 2402.00856, eq. 16): the reverse KL from the
    policy's pair distribution q = softmax(beta [a, b]) to the label distribution
    p = [1 - eps, eps], mode-seeking where DPO's forward KL is mass-covering. eps > 0.
    Chapter 07. TRL: loss_type="exo_pair"."""
    check_range("label_smoothing", label_smoothing, 0, 0.5, low_open=True, high_open=True)
    z = beta * _margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    eps = label_smoothing
    return torch.sigmoid(z) * (F.logsigmoid(z) - math.log1p(-eps)) + torch.sigmoid(-z) * (F.logsigmoid(-z) - math.log(eps))


def aot_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *, beta: float = 0.1,
             label_smoothing: float = 0.0, paired: bool = True) -> torch.Tensor:
    """Alignment via optimal transport (Melnyk et al. 2024, arXiv 2404.05692): first-order
    stochastic dominance of chosen over rejected *distributions*, enforced on the sorted
    batch (the 1-D optimal-transport plan). Paired: sort(log pi_w - log pi_l) against
    sort(log ref_w - log ref_l); unpaired: sort(a) against sort(b); then the cDPO loss.
    Chapter 07. TRL: loss_type="aot" / "aot_unpaired"."""
    _check(beta, chosen_logps=chosen_logps, rejected_logps=rejected_logps,
           ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    if paired:
        delta = torch.sort(chosen_logps - rejected_logps, dim=0)[0] - torch.sort(ref_chosen_logps - ref_rejected_logps, dim=0)[0]
    else:
        delta = torch.sort(chosen_logps - ref_chosen_logps, dim=0)[0] - torch.sort(rejected_logps - ref_rejected_logps, dim=0)[0]
    return -(1 - label_smoothing) * F.logsigmoid(beta * delta) - label_smoothing * F.logsigmoid(-beta * delta)


def apo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *, beta: float = 0.1,
             variant: str = "zero") -> torch.Tensor:
    """Anchored preference optimisation (D'Oosterlinck et al. 2024, arXiv 2408.06266, eqs. 7-8).
    "zero": the chosen outputs beat the model's own, so push a up and b down,
    (1 - s(beta a)) + s(beta b); "down": both are worse, so push a down and b further,
    s(beta a) + (1 - s(beta (a - b))). Chapter 07. TRL: loss_type="apo_zero" / "apo_down"."""
    check_choice("variant", variant, ("zero", "down"))
    h = _margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    a, b = chosen_logps - ref_chosen_logps, rejected_logps - ref_rejected_logps
    if variant == "zero":
        return (1 - torch.sigmoid(beta * a)) + torch.sigmoid(beta * b)
    return torch.sigmoid(beta * a) + (1 - torch.sigmoid(beta * h))


# ------------------------------------------------------------------ section 8: analysis of DPO


def dpop_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, *, beta: float = 0.1,
              lam: float = 50.0) -> torch.Tensor:
    """DPO-Positive (Smaug; Pal et al. 2024, arXiv 2402.13228, section 4): DPO whose margin is
    penalised whenever the chosen response falls below its reference likelihood,

        -log sigmoid(beta (h - lambda max(0, log pi_ref(y_w|x) - log pi(y_w|x)))).

    DPO can lower log pi(y_w) as long as log pi(y_l) falls faster; DPOP forbids it
    (chapter 08, experiment b)."""
    check_range("lam", lam, 0)
    h = _margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return -F.logsigmoid(beta * (h - lam * torch.relu(ref_chosen_logps - chosen_logps)))


def npo_loss(logps, ref_logps, *, beta: float = 0.1) -> torch.Tensor:
    """Negative preference optimisation (Zhang et al. 2024, arXiv 2404.05868), from
    negatives alone: (2/beta) log(1 + (pi(y|x)/pi_ref(y|x))^beta) = -(2/beta) log s(-beta b).

    DPO without the chosen term. Its gradient is gradient ascent's, -grad log pi, weighted
    by 2 s(beta b) -> 0 as pi(y) falls below pi_ref(y), so unlearning slows down instead of
    diverging. Chapter 08, experiment e."""
    _check(beta, logps=logps, ref_logps=ref_logps)
    return -(2 / beta) * F.logsigmoid(-beta * (logps - ref_logps))


def sppo_loss(logps, ref_logps, win_prob, *, eta: float = 10.0) -> torch.Tensor:
    """Self-play preference optimisation (Wu et al. 2024, arXiv 2405.00675, eq. 4.7):

        (log pi(y|x)/pi_t(y|x) - eta (P(y > pi_t | x) - 1/2))^2

    for a response y of the current policy pi_t (the reference) and its win probability
    against pi_t. Its minimiser is the multiplicative-weights step
    pi_{t+1} ∝ pi_t exp(eta P(y > pi_t)), which reaches the Nash equilibrium of a general,
    even intransitive, preference (chapter 08, experiment d). With P = 1 for the chosen
    and 0 for the rejected, and eta = 1/beta, the pair's sum is TRL's loss_type="sppo_hard".
    """
    _check(logps=logps, ref_logps=ref_logps)
    check_range("eta", eta, 0, low_open=True)
    return (logps - ref_logps - eta * (torch.as_tensor(win_prob, dtype=logps.dtype) - 0.5)) ** 2


def d2o_loss(rejected_logps, ref_rejected_logps, sample_logps, ref_sample_logps, *, beta: float = 0.1,
             alpha: float = 0.1) -> torch.Tensor:
    """Distributional dispreference optimisation (Duan et al. 2024, arXiv 2403.03419), from
    negatives alone: K responses y_1..y_K sampled from the reference stand in for the
    missing positives, and the negative y_l is pushed below their *distribution*:

        -log sigmoid(beta/K sum_i log(pi(y_i|x)/pi_ref(y_i|x)) - alpha log(pi(y_l|x)/pi_ref(y_l|x))).

    `sample_logps` and `ref_sample_logps` have shape (batch, K). Chapter 08, experiment e."""
    _check(beta, rejected_logps=rejected_logps, ref_rejected_logps=ref_rejected_logps)
    _check(sample_logps=sample_logps, ref_sample_logps=ref_sample_logps)
    check_range("alpha", alpha, 0, low_open=True)
    if sample_logps.shape[:1] != rejected_logps.shape:
        raise ValueError(f"sample_logps must have shape (batch, K) with batch = {len(rejected_logps)}, got {tuple(sample_logps.shape)}")
    positives = beta * (sample_logps - ref_sample_logps).mean(-1)
    return -F.logsigmoid(positives - alpha * (rejected_logps - ref_rejected_logps))


def sequential_kl(ref_logits: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """TDPO's sequential KL, sum_t KL(pi_ref(.|x, y_<t) || pi(.|x, y_<t)) over the response's
    positions (Zeng et al. 2024, arXiv 2404.11999). Logits (batch, T, V), mask (batch, T).
    Chapter 08."""
    _check(ref_logits=ref_logits, logits=logits)
    ref_logp, logp = torch.log_softmax(ref_logits.float(), -1), torch.log_softmax(logits.float(), -1)
    per_token = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (per_token * mask).sum(-1)


def tdpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_seq_kl, rejected_seq_kl, *,
              beta: float = 0.1, alpha: float = 0.5, variant: int = 2) -> torch.Tensor:
    """Token-level DPO (Zeng et al. 2024, arXiv 2404.11999). With u = beta h and
    the sequential KLs D_w, D_l of `sequential_kl`,

        TDPO1: -log sigmoid(u - beta (D_l - D_w))
        TDPO2: -log sigmoid(u - alpha beta (D_l - sg(D_w)))      (sg: stop-gradient)

    The KL terms control each token's divergence from the reference, which DPO leaves to
    the sequence-level ratio; TDPO2's stop-gradient lets the chosen side's KL grow less
    than the rejected side's. Chapter 08."""
    check_choice("variant", variant, (1, 2))
    check_range("alpha", alpha, 0)
    _check(chosen_seq_kl=chosen_seq_kl, rejected_seq_kl=rejected_seq_kl, chosen_logps=chosen_logps)
    u = beta * _margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    if variant == 1:
        return -F.logsigmoid(u - beta * (rejected_seq_kl - chosen_seq_kl))
    return -F.logsigmoid(u - alpha * beta * (rejected_seq_kl - chosen_seq_kl.detach()))


# ------------------------------------------------------------------ ranking losses over k responses (chapter 04)


def _check_ranked(logps: torch.Tensor, rewards: torch.Tensor) -> None:
    if logps.dim() != 2 or logps.shape[1] < 2:
        raise ValueError(f"logps must have shape (batch, k) with k >= 2, got {tuple(logps.shape)}")
    _check(logps=logps, rewards=rewards)


def rrhf_loss(logps: torch.Tensor, rewards: torch.Tensor, *, sft_weight: float = 1.0) -> torch.Tensor:
    """RRHF (Yuan et al. 2023, arXiv 2304.05302): k responses per prompt, each scored by a
    reward model, and p_i = log pi(y_i|x) / |y_i| (length-normalised, `logps`, (batch, k)).

        L = sum over pairs with r_i < r_j of max(0, p_i - p_j)  -  sft_weight * p_best

    The hinge ranks the likelihoods like the rewards; the second term is fine-tuning on the
    best response (eq. 3-4). No reference model, no sampling during training. Chapter 04."""
    _check_ranked(logps, rewards)
    check_range("sft_weight", sft_weight, 0)
    worse = (rewards[:, :, None] < rewards[:, None, :]).float()  # [b, i, j]: r_i < r_j
    rank = ((logps[:, :, None] - logps[:, None, :]).clamp_min(0) * worse).sum((1, 2))
    best = logps.gather(1, rewards.argmax(1, keepdim=True)).squeeze(1)
    return rank - sft_weight * best


def pro_loss(logps: torch.Tensor, rewards: torch.Tensor, *, sft_weight: float = 0.05,
             dynamic_temperature: bool = True) -> torch.Tensor:
    """PRO, preference ranking optimisation (Song et al. 2023, arXiv 2306.17492): the
    Plackett-Luce likelihood of the reward ranking y^1 > ... > y^k, one softmax per position,
    on p_i = log pi(y_i|x) / |y_i| (`logps`, (batch, k)):

        L = -sum_{j<k} log [exp(p_j / T_j^j) / sum_{i>=j} exp(p_i / T_j^i)]  -  sft_weight * p_1

    With `dynamic_temperature`, 1 / T_j^i = r_j - r_i for i > j and 1 / T_j^j = max_{i>j}
    (r_j - r_i): a candidate far below y^j in reward is pushed down harder (the paper's
    section 3.3); otherwise every T is 1. Chapter 04."""
    _check_ranked(logps, rewards)
    check_range("sft_weight", sft_weight, 0)
    order = rewards.argsort(1, descending=True)
    p, r = logps.gather(1, order), rewards.gather(1, order)
    loss = -sft_weight * p[:, 0]
    for j in range(p.shape[1] - 1):
        if dynamic_temperature:
            gaps = r[:, j : j + 1] - r[:, j + 1 :]  # >= 0: sorted
            logits = torch.cat([p[:, j : j + 1] * gaps.max(1, keepdim=True).values, p[:, j + 1 :] * gaps], 1)
        else:
            logits = p[:, j:]
        loss = loss - torch.log_softmax(logits, 1)[:, 0]
    return loss
