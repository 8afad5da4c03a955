"""Pins the math of `survey_lib.preference_losses`: each loss against its closed form on
hand-picked inputs (expectations computed with math/numpy, never with our own functions),
the direction of its gradient, and, where TRL's `DPOTrainer` has the same loss, TRL's value."""
import math

import numpy as np
import pytest
import torch

from survey_lib import preference_losses as pl

# One batch of three pairs, every quantity hand-computed:
#   a = chosen - ref_chosen       = [0.5, -0.5, -1.0]
#   b = rejected - ref_rejected   = [-0.5, 1.0, -0.5]
#   h = a - b                     = [1.0, -1.5, -0.5]
CHOSEN, REJECTED = [-1.0, -2.0, -3.0], [-2.0, -1.0, -3.5]
REF_CHOSEN, REF_REJECTED = [-1.5, -1.5, -2.0], [-1.5, -2.0, -3.0]
A, B = np.array([0.5, -0.5, -1.0]), np.array([-0.5, 1.0, -0.5])
H = A - B


def log_sigmoid(x):
    return -np.logaddexp(0.0, -np.asarray(x, dtype=float))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def t(values, grad=False):
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


def pair(grad=False):
    """(chosen, rejected, ref_chosen, ref_rejected) of the hand-computed batch."""
    return t(CHOSEN, grad), t(REJECTED, grad), t(REF_CHOSEN), t(REF_REJECTED)


def close(actual, expected, **kw):
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    torch.testing.assert_close(actual.detach().double(), torch.as_tensor(np.asarray(expected, dtype=float)), **kw)


def grads(loss, *tensors):
    return torch.autograd.grad(loss.sum(), tensors)


# ------------------------------------------------------------------ closed forms, section 7


def test_dpo_is_minus_log_sigmoid_of_beta_times_the_margin():
    """DPO = -log s(beta h)."""
    close(pl.dpo_loss(*pair(), beta=0.5), -log_sigmoid(0.5 * H))


def test_cdpo_mixes_both_labels_and_is_minimised_at_a_finite_margin():
    """cDPO = -(1-eps) log s(beta h) - eps log s(-beta h); its gradient vanishes where
    s(beta h) = 1 - eps, so the margin stops at h* = logit(1-eps)/beta instead of growing forever."""
    eps, beta = 0.2, 0.5
    close(pl.dpo_loss(*pair(), beta=beta, label_smoothing=eps),
          -(1 - eps) * log_sigmoid(beta * H) - eps * log_sigmoid(-beta * H))
    h_star = math.log((1 - eps) / eps) / beta
    chosen = t([h_star], grad=True)
    (g,) = grads(pl.dpo_loss(chosen, t([0.0]), t([0.0]), t([0.0]), beta=beta, label_smoothing=eps), chosen)
    assert abs(g.item()) < 1e-12


def test_robust_dpo_closed_form_and_unbiased_under_label_noise():
    """Robust DPO = [(1-eps) l(h) - eps l(-h)]/(1-2eps); averaged over labels flipped with
    rate eps (flipping swaps chosen and rejected) it equals the clean DPO loss."""
    eps, beta = 0.1, 0.5
    l = lambda h: -log_sigmoid(beta * h)  # noqa: E731
    close(pl.robust_dpo_loss(*pair(), beta=beta, label_smoothing=eps), ((1 - eps) * l(H) - eps * l(-H)) / (1 - 2 * eps))
    c, r, rc, rr = pair()
    noisy = (1 - eps) * pl.robust_dpo_loss(c, r, rc, rr, beta=beta, label_smoothing=eps) \
        + eps * pl.robust_dpo_loss(r, c, rr, rc, beta=beta, label_smoothing=eps)
    close(noisy, -log_sigmoid(beta * H))


def test_ipo_regresses_the_margin_onto_one_over_two_beta():
    """IPO = (h - 1/(2 beta))^2; its gradient in the chosen log-prob is 2 (h - 1/(2 beta)),
    zero at the target, negative below it and positive above (it does not push past it)."""
    beta = 0.5
    close(pl.ipo_loss(*pair(), beta=beta), (H - 1.0) ** 2)
    for h, sign in ((1 / (2 * beta), 0), (0.3, -1), (2.0, 1)):
        chosen, rejected = t([h], grad=True), t([0.0], grad=True)
        g_c, g_r = grads(pl.ipo_loss(chosen, rejected, t([0.0]), t([0.0]), beta=beta), chosen, rejected)
        assert g_c.item() == pytest.approx(2 * (h - 1 / (2 * beta)), abs=1e-12)
        assert np.sign(round(g_c.item(), 12)) == sign and g_r.item() == pytest.approx(-g_c.item())


def test_slic_hf_hinge_plus_regulariser():
    """SLiC-HF = max(0, delta - c + r) - lambda target, target defaulting to the chosen log-prob;
    past the margin only the regulariser is left."""
    c, r = t([-1.0, -1.0, -5.0]), t([-1.5, -4.0, -2.0])
    # hinge: max(0, 1 - c + r) = [0.5, 0, 4]
    close(pl.slic_hf_loss(c, r, delta=1.0, regularizer_weight=0.1), np.array([0.5, 0.0, 4.0]) + 0.1 * np.array([1.0, 1.0, 5.0]))
    target = t([-2.0, -3.0, -4.0])
    close(pl.slic_hf_loss(c, r, delta=2.0, regularizer_weight=0.5, target_logps=target),
          np.array([1.5, 0.0, 5.0]) + 0.5 * np.array([2.0, 3.0, 4.0]))


GPO_EXPECTED = {  # f(rho), written independently of GPO_FUNCTIONS
    "logistic": lambda p: math.log1p(math.exp(-p)),
    "hinge": lambda p: max(0.0, 1 - p),
    "squared": lambda p: (p - 1) ** 2,
    "exponential": lambda p: math.exp(-p),
    "truncated_quadratic": lambda p: max(0.0, 1 - p) ** 2,
    "savage": lambda p: 1 / (1 + math.exp(p)) ** 2,
}
GPO_AT_ZERO = {"logistic": math.log(2), "hinge": 1.0, "squared": 1.0, "exponential": 1.0,
               "truncated_quadratic": 1.0, "savage": 0.25}


def test_gpo_has_exactly_the_six_tested_kinds():
    """A new kind in GPO_FUNCTIONS must come with its closed form here."""
    assert set(pl.GPO_FUNCTIONS) == set(GPO_EXPECTED) == set(GPO_AT_ZERO)


@pytest.mark.parametrize("kind", sorted(GPO_EXPECTED))
def test_gpo_kind_closed_form_and_decreasing_at_zero(kind):
    """gpo_loss = f(beta h) with f(0) as tabulated, f at non-zero points (rho = beta h =
    0.5, -0.75, -0.25, and 3.0 where hinge-like kinds are flat), and f'(0) < 0, which makes
    every kind a valid preference loss."""
    zero = pl.gpo_loss(t([0.0]), t([0.0]), t([0.0]), t([0.0]), beta=0.5, kind=kind)
    assert zero.item() == pytest.approx(GPO_AT_ZERO[kind], rel=1e-12)
    close(pl.gpo_loss(*pair(), beta=0.5, kind=kind), [GPO_EXPECTED[kind](0.5 * h) for h in H])
    far = pl.gpo_loss(t([6.0]), t([0.0]), t([0.0]), t([0.0]), beta=0.5, kind=kind)
    assert far.item() == pytest.approx(GPO_EXPECTED[kind](3.0), abs=1e-12)
    chosen = t([0.0], grad=True)
    (g,) = grads(pl.gpo_loss(chosen, t([0.0]), t([0.0]), t([0.0]), beta=0.5, kind=kind), chosen)
    assert g.item() < 0


def test_kto_desirable_and_undesirable_closed_forms():
    """KTO = lambda_D (1 - s(beta (r - z))) for desirable, lambda_U (1 - s(beta (z - r)))
    for undesirable examples, r = logp - ref_logp, z = max(0, kl)."""
    logps, ref = t([-1.0, -2.0, -3.0, -4.0]), t([-2.0, -1.0, -3.5, -3.0])
    r = np.array([1.0, -1.0, 0.5, -1.0])
    desirable = torch.tensor([True, True, False, False])
    beta, z = 0.5, 0.3
    expected = np.where([1, 1, 0, 0], 2.0 * (1 - sigmoid(beta * (r - z))), 0.5 * (1 - sigmoid(beta * (z - r))))
    close(pl.kto_loss(logps, ref, desirable, z, beta=beta, desirable_weight=2.0, undesirable_weight=0.5), expected)


def test_kto_kl_is_clamped_at_zero_and_detached():
    """A negative KL estimate counts as 0, and no gradient flows into the KL term (the
    policy's log-probs still get one: up for desirable, down for undesirable)."""
    logps, ref, desirable = t([-1.0, -2.0], grad=True), t([-1.5, -1.5]), torch.tensor([True, False])
    clamped = pl.kto_loss(logps, ref, desirable, torch.tensor(-0.7, dtype=torch.float64), beta=0.5)
    close(clamped, pl.kto_loss(logps, ref, desirable, 0.0, beta=0.5))
    close(clamped, [1 - sigmoid(0.25), 1 - sigmoid(0.25)])
    kl = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    g_logps, g_kl = torch.autograd.grad(pl.kto_loss(logps, ref, desirable, kl, beta=0.5).sum(), (logps, kl), allow_unused=True)
    assert g_kl is None
    assert g_logps[0] < 0 < g_logps[1]


def test_orpo_nll_plus_log_odds_ratio():
    """ORPO = -mean_w - lambda log s(log odds(P_w) - log odds(P_l)), P = exp(mean token log-prob)."""
    c, r, lc, lr = t([-2.0, -6.0]), t([-3.0, -2.0]), t([4.0, 3.0]), t([2.0, 1.0])
    mean_w, mean_l = np.array([-0.5, -2.0]), np.array([-1.5, -2.0])
    odds = lambda m: np.log(np.exp(m) / (1 - np.exp(m)))  # noqa: E731
    expected = -mean_w - 0.25 * log_sigmoid(odds(mean_w) - odds(mean_l))
    close(pl.orpo_loss(c, r, lc, lr, lam=0.25), expected)


def test_simpo_length_normalised_margin_with_target_gamma():
    """SimPO = -log s(beta (c/|c| - r/|r|) - gamma), no reference; pushes c up and r down."""
    c, r = t([-2.0, -6.0], grad=True), t([-3.0, -2.0], grad=True)
    lc, lr = t([4.0, 3.0]), t([2.0, 1.0])
    loss = pl.simpo_loss(c, r, lc, lr, beta=2.0, gamma=0.5)
    close(loss, -log_sigmoid(2.0 * (np.array([-0.5, -2.0]) - np.array([-1.5, -2.0])) - 0.5))
    g_c, g_r = grads(loss, c, r)
    assert (g_c < 0).all() and (g_r > 0).all()


def test_nca_closed_form():
    """NCA = -log s(beta a) - 1/2 log s(-beta a) - 1/2 log s(-beta b) (absolute log-ratios)."""
    beta = 0.5
    close(pl.nca_loss(*pair(), beta=beta),
          -log_sigmoid(beta * A) - 0.5 * log_sigmoid(-beta * A) - 0.5 * log_sigmoid(-beta * B))


def test_bco_closed_form_with_and_without_shift():
    """BCO = -log s(beta a - d) - log s(-(beta b - d)); d = 0 is TRL's bco_pair."""
    beta = 0.5
    close(pl.bco_loss(*pair(), beta=beta), -log_sigmoid(beta * A) - log_sigmoid(-beta * B))
    close(pl.bco_loss(*pair(), beta=beta, shift=0.3), -log_sigmoid(beta * A - 0.3) - log_sigmoid(-(beta * B - 0.3)))


def test_exo_is_the_reverse_kl_to_the_smoothed_labels():
    """EXO = KL(q || p) with q = softmax(beta [a, b]) and p = [1 - eps, eps], summed by hand."""
    beta, eps = 0.5, 0.05
    logits = beta * np.stack([A, B], 1)
    q = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p = np.array([1 - eps, eps])
    close(pl.exo_loss(*pair(), beta=beta, label_smoothing=eps), (q * np.log(q / p)).sum(1))


def test_aot_paired_and_unpaired_sort_the_batch():
    """AOT compares sorted quantities: paired, sort(c - r) against sort(ref_c - ref_r);
    unpaired, sort(a) against sort(b); then the (label-smoothed) DPO loss of the differences."""
    beta, eps = 0.5, 0.1
    # c - r = [1, -1, 0.5] -> [-1, 0.5, 1]; ref_c - ref_r = [0, 0.5, 1] -> [0, 0.5, 1]
    delta = np.array([-1.0, 0.0, 0.0])
    close(pl.aot_loss(*pair(), beta=beta, paired=True), -log_sigmoid(beta * delta))
    close(pl.aot_loss(*pair(), beta=beta, paired=True, label_smoothing=eps),
          -(1 - eps) * log_sigmoid(beta * delta) - eps * log_sigmoid(-beta * delta))
    # a sorted = [-1, -0.5, 0.5]; b sorted = [-0.5, -0.5, 1]
    close(pl.aot_loss(*pair(), beta=beta, paired=False), -log_sigmoid(beta * np.array([-0.5, 0.0, -0.5])))


def test_aot_of_one_pair_is_dpo_and_ignores_the_batch_order():
    """With one pair there is nothing to sort: AOT is DPO. Permuting the pairs leaves the losses unchanged."""
    c, r, rc, rr = pair()
    for i in range(3):
        close(pl.aot_loss(c[i:i + 1], r[i:i + 1], rc[i:i + 1], rr[i:i + 1], beta=0.5), -log_sigmoid(0.5 * H[i:i + 1]))
    perm = torch.tensor([2, 0, 1])
    close(pl.aot_loss(c[perm], r[perm], rc[perm], rr[perm], beta=0.5), pl.aot_loss(c, r, rc, rr, beta=0.5))


def test_apo_zero_and_down_closed_forms_and_directions():
    """APO-zero = (1 - s(beta a)) + s(beta b): a up, b down. APO-down = s(beta a) + (1 - s(beta h)):
    a down, b down faster."""
    beta = 0.5
    close(pl.apo_loss(*pair(), beta=beta, variant="zero"), (1 - sigmoid(beta * A)) + sigmoid(beta * B))
    close(pl.apo_loss(*pair(), beta=beta, variant="down"), sigmoid(beta * A) + (1 - sigmoid(beta * H)))
    c, r, rc, rr = pair(grad=True)
    g_c, g_r = grads(pl.apo_loss(c, r, rc, rr, beta=beta, variant="zero"), c, r)
    assert (g_c < 0).all() and (g_r > 0).all()
    # down: d/dc = beta s'(beta a) - beta s'(beta h) (either sign), d/dr = beta s'(beta h) > 0, s' = s(x) s(-x)
    g_c, g_r = grads(pl.apo_loss(c, r, rc, rr, beta=beta, variant="down"), c, r)
    d = lambda x: beta * sigmoid(beta * x) * sigmoid(-beta * x)  # noqa: E731
    close(g_c, d(A) - d(H))
    close(g_r, d(H))


# ------------------------------------------------------------------ closed forms, section 8


def test_dpop_penalty_only_when_chosen_falls_below_reference():
    """DPOP = -log s(beta (h - lambda max(0, ref_c - c))): DPO while c >= ref_c; below it the
    chosen log-prob's gradient grows by the factor (1 + lambda)."""
    beta, lam = 0.5, 2.0
    c, r, rc, rr = pair(grad=True)
    loss = pl.dpop_loss(c, r, rc, rr, beta=beta, lam=lam)
    penalty = np.maximum(0.0, -A)  # [0, 0.5, 1]: pairs 1 and 2 are below the reference
    close(loss, -log_sigmoid(beta * (H - lam * penalty)))
    close(loss[:1], pl.dpo_loss(c, r, rc, rr, beta=beta)[:1])
    g_c, g_r = grads(loss, c, r)
    u = beta * (H - lam * penalty)
    close(g_c, -beta * sigmoid(-u) * np.where(penalty > 0, 1 + lam, 1.0))
    close(g_r, beta * sigmoid(-u))


def test_npo_closed_form_and_its_vanishing_gradient():
    """NPO = (2/beta) log(1 + (pi/pi_ref)^beta); d/d logp = 2 s(beta b) > 0, shrinking as logp
    falls below the reference (unlearning slows down instead of diverging)."""
    beta = 0.5
    b = np.array([1.0, 0.0, -2.0, -10.0])
    logps = t(list(b - 3.0), grad=True)
    loss = pl.npo_loss(logps, t([-3.0] * 4), beta=beta)
    close(loss, (2 / beta) * np.log1p(np.exp(beta * b)))
    (g,) = grads(loss, logps)
    close(g, 2 * sigmoid(beta * b))
    assert (g > 0).all() and (g[1:] < g[:-1]).all() and g[-1] < 0.02


def test_sppo_squared_error_to_the_win_probability_target():
    """SPPO = (logp - ref - eta (P - 1/2))^2, minimised (zero loss, zero gradient) at log ratio eta (P - 1/2)."""
    eta = 4.0
    logps, ref, p = t([-1.0, -2.0, 0.0]), t([-2.0, -1.0, 0.0]), t([0.9, 0.1, 0.5])
    close(pl.sppo_loss(logps, ref, p, eta=eta), (np.array([1.0, -1.0, 0.0]) - eta * (np.array([0.9, 0.1, 0.5]) - 0.5)) ** 2)
    at_target = t([eta * 0.4, -eta * 0.4], grad=True)
    loss = pl.sppo_loss(at_target, t([0.0, 0.0]), t([0.9, 0.1]), eta=eta)
    (g,) = grads(loss, at_target)
    assert loss.abs().max() < 1e-12 and g.abs().max() < 1e-12


def test_d2o_pushes_the_negative_below_the_reference_samples():
    """D2O = -log s(beta mean_i log(pi/pi_ref)(y_i) - alpha log(pi/pi_ref)(y_l)); samples go up, the negative down."""
    beta, alpha = 0.5, 0.2
    rejected, ref_rejected = t([-2.0, -1.0], grad=True), t([-1.0, -1.5])  # log ratios [-1, 0.5]
    samples = t([[-1.0, -3.0], [-2.0, -2.0]], grad=True)
    ref_samples = t([[-2.0, -2.0], [-1.0, -2.0]])  # log ratios [[1, -1], [-1, 0]] -> means [0, -0.5]
    loss = pl.d2o_loss(rejected, ref_rejected, samples, ref_samples, beta=beta, alpha=alpha)
    close(loss, -log_sigmoid(beta * np.array([0.0, -0.5]) - alpha * np.array([-1.0, 0.5])))
    g_rej, g_samples = grads(loss, rejected, samples)
    assert (g_rej > 0).all() and (g_samples < 0).all()


def test_dro_closed_form_and_its_optimum():
    """DRO = 1/2 (r - V - tau log(pi/pi_ref))^2; zero, with zero gradients, when V + tau log ratio = r."""
    tau = 2.0
    logps, ref, rewards, values = t([-1.0, -2.0]), t([-2.0, -1.0]), t([1.0, 0.5]), t([0.5, 0.0])
    close(pl.dro_loss(logps, ref, rewards, values, tau=tau), 0.5 * (np.array([1.0, 0.5]) - np.array([0.5, 0.0]) - tau * np.array([1.0, -1.0])) ** 2)
    # log ratios [0.5, 0.5], so tau * ratio = [1, 1]; V = [0, 1] and r = V + 1
    logps, values = t([-1.5, -0.5], grad=True), t([0.0, 1.0], grad=True)
    loss = pl.dro_loss(logps, t([-2.0, -1.0]), t([1.0, 2.0]), values, tau=tau)
    g_logps, g_values = grads(loss, logps, values)
    assert loss.abs().max() < 1e-12 and g_logps.abs().max() < 1e-12 and g_values.abs().max() < 1e-12


def test_sequential_kl_matches_a_manual_kl():
    """sequential_kl = sum over unmasked positions of KL(pi_ref(.|t) || pi(.|t)), summed by hand with numpy."""
    gen = torch.Generator().manual_seed(0)
    ref_logits, logits = torch.randn(2, 3, 4, generator=gen), torch.randn(2, 3, 4, generator=gen)
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    p = np.exp(ref_logits.numpy().astype(float))
    p /= p.sum(-1, keepdims=True)
    q = np.exp(logits.numpy().astype(float))
    q /= q.sum(-1, keepdims=True)
    expected = [sum(float((p[i, j] * np.log(p[i, j] / q[i, j])).sum()) for j in range(3) if mask[i, j]) for i in range(2)]
    close(pl.sequential_kl(ref_logits, logits, mask), expected, rtol=1e-5, atol=1e-6)
    assert pl.sequential_kl(logits, logits, mask).abs().max() < 1e-6


def test_tdpo_variants_closed_forms_and_stop_gradient():
    """TDPO1 = -log s(beta h - beta (D_l - D_w)); TDPO2 = -log s(beta h - alpha beta (D_l - sg(D_w))):
    in TDPO2 no gradient reaches the chosen side's sequential KL, the rejected side's is pushed down."""
    beta, alpha = 0.5, 0.4
    d_w, d_l = np.array([0.2, 1.0, 0.0]), np.array([0.5, 0.1, 2.0])
    kl_w, kl_l = t(list(d_w), grad=True), t(list(d_l), grad=True)
    v1 = pl.tdpo_loss(*pair(), kl_w, kl_l, beta=beta, variant=1)
    close(v1, -log_sigmoid(beta * H - beta * (d_l - d_w)))
    g_w, g_l = grads(v1, kl_w, kl_l)
    assert (g_w < 0).all() and (g_l > 0).all()
    v2 = pl.tdpo_loss(*pair(), kl_w, kl_l, beta=beta, alpha=alpha, variant=2)
    close(v2, -log_sigmoid(beta * H - alpha * beta * (d_l - d_w)))
    g_w, g_l = torch.autograd.grad(v2.sum(), (kl_w, kl_l), allow_unused=True)
    assert g_w is None
    close(g_l, alpha * beta * sigmoid(-(beta * H - alpha * beta * (d_l - d_w))))


# ------------------------------------------------------------------ beta-DPO and RSO


def test_beta_dpo_state_is_an_ema_from_zero():
    """BetaDPOState: mean and std (unbiased) of each batch, averaged with momentum m from 0."""
    state, m = pl.BetaDPOState(momentum=0.8), 0.8
    x1, x2 = np.array([1.0, 2.0, 6.0]), np.array([-1.0, 3.0])
    state.update(torch.tensor(x1))
    assert state.mean == pytest.approx((1 - m) * x1.mean()) and state.std == pytest.approx((1 - m) * x1.std(ddof=1))
    state.update(torch.tensor(x2))
    assert state.mean == pytest.approx(m * (1 - m) * x1.mean() + (1 - m) * x2.mean())
    assert state.std == pytest.approx(m * (1 - m) * x1.std(ddof=1) + (1 - m) * x2.std(ddof=1))


def test_beta_dpo_keeping_everything_is_dpo_with_the_batch_beta():
    """keep = 1 keeps every pair; beta_batch = beta (1 + alpha (mean h - M_0)), here M_0 = (1-m) mean h
    after the first update, so beta_batch = beta (1 + alpha m mean h)."""
    beta, alpha, m = 0.5, 0.6, 0.9
    losses, beta_batch = pl.beta_dpo_loss(*pair(), beta=beta, alpha=alpha, keep=1.0, state=pl.BetaDPOState(m),
                                          generator=torch.Generator().manual_seed(0))
    assert beta_batch == pytest.approx(beta * (1 + alpha * m * H.mean()))
    assert len(losses) == 3
    close(losses.sort().values, np.sort(-log_sigmoid(beta_batch * H)))


def test_beta_dpo_keeps_a_fraction_and_drops_outliers():
    """int(keep * n) pairs are kept, drawn with Gaussian weights around M_0: a pair 100 nats
    away from the rest is never kept, and beta_batch uses the kept pairs' mean; it is floored at 1e-3."""
    n = 10
    h = [0.0] * (n - 1) + [100.0]
    zeros = t([0.0] * n)
    for seed in range(5):
        losses, beta_batch = pl.beta_dpo_loss(t(h), zeros, zeros, zeros, beta=0.5, alpha=0.6, keep=0.8,
                                              state=pl.BetaDPOState(0.9), generator=torch.Generator().manual_seed(seed))
        assert len(losses) == 8
        close(losses, [math.log(2)] * 8)  # only h = 0 pairs: -log s(0)
        assert beta_batch == pytest.approx(0.5 * (1 + 0.6 * (0.0 - 0.1 * np.mean(h))))  # M_0 = (1 - 0.9) mean h
    losses, _ = pl.beta_dpo_loss(t(h), zeros, zeros, zeros, beta=0.5, keep=0.35, state=pl.BetaDPOState(0.9))
    assert len(losses) == 3
    _, beta_batch = pl.beta_dpo_loss(t([-100.0, -101.0]), t([0.0, 0.0]), t([0.0, 0.0]), t([0.0, 0.0]), beta=0.5,
                                     alpha=1.0, keep=1.0, state=pl.BetaDPOState(0.9))
    assert beta_batch == 1e-3  # 0.5 (1 + (-100.5 + 10.05)) < 0


def test_rejection_sample_small_beta_takes_the_best_in_order():
    """beta -> 0: only the best remaining candidate can be accepted, so the draws are the
    top-reward indices, best first, all distinct."""
    rewards = torch.tensor([0.3, 2.0, -1.0, 1.5, 0.9])
    picked = pl.rejection_sample(rewards, 4, beta=1e-6, generator=torch.Generator().manual_seed(0))
    assert picked == [1, 3, 4, 0]
    everything = pl.rejection_sample(rewards, 5, beta=0.7, generator=torch.Generator().manual_seed(1))
    assert sorted(everything) == list(range(5))


def test_rejection_sample_large_beta_accepts_every_candidate():
    """beta -> inf: exp((r - r_max)/beta) -> 1, so every candidate is accepted on the first sweep,
    whatever its reward: the draws are the SFT samples themselves (uniform over candidates)."""
    rewards = torch.tensor([-5.0, 3.0, 0.0, 10.0, -2.0])
    for seed in range(5):
        assert pl.rejection_sample(rewards, 3, beta=1e9, generator=torch.Generator().manual_seed(seed)) == [0, 1, 2]


def test_rejection_sample_acceptance_probability_is_exp_reward_gap_over_beta():
    """For one sample, candidate i is returned with probability p_i prod_{j<i}(1 - p_j) / (1 - prod_j (1 - p_j)),
    p_i = exp((r_i - r_max)/beta) (sweeps repeat until one is accepted); checked by Monte Carlo."""
    rewards, beta = torch.tensor([0.0, 0.5, 1.0]), 1.0  # the best last, so that every candidate can be drawn
    p = np.exp((rewards.numpy() - 1.0) / beta)
    first = p * np.concatenate([[1.0], np.cumprod(1 - p)[:-1]])
    expected = first / (1 - np.prod(1 - p))
    gen, n = torch.Generator().manual_seed(0), 4000
    counts = np.bincount([pl.rejection_sample(rewards, 1, beta=beta, generator=gen)[0] for _ in range(n)], minlength=3)
    assert np.abs(counts / n - expected).max() < 0.03  # ~4 standard errors


# ------------------------------------------------------------------ gradient directions


GRADIENT_SIGNED = {  # loss(c, r, rc, rr) with d/dc < 0 and d/dr > 0 on the hand batch (beta 0.1: beta h < 1)
    "dpo": lambda *x: pl.dpo_loss(*x, beta=0.1),
    "cdpo": lambda *x: pl.dpo_loss(*x, beta=0.1, label_smoothing=0.1),
    "robust": lambda *x: pl.robust_dpo_loss(*x, beta=0.1),
    "ipo": lambda *x: pl.ipo_loss(*x, beta=0.1),  # h < 1/(2 beta) = 5
    "dpop": lambda *x: pl.dpop_loss(*x, beta=0.1),
    "slic_hf": lambda c, r, rc, rr: pl.slic_hf_loss(c, r, delta=5.0),
    **{f"gpo_{kind}": (lambda kind: lambda *x: pl.gpo_loss(*x, beta=0.1, kind=kind))(kind) for kind in pl.GPO_FUNCTIONS},
    "bco": lambda *x: pl.bco_loss(*x, beta=0.1),
    "exo": lambda *x: pl.exo_loss(*x, beta=0.1),
    "apo_zero": lambda *x: pl.apo_loss(*x, beta=0.1, variant="zero"),
    "tdpo1": lambda *x: pl.tdpo_loss(*x, t([0.1, 0.2, 0.3]), t([0.3, 0.0, 0.1]), beta=0.1, variant=1),
    "tdpo2": lambda *x: pl.tdpo_loss(*x, t([0.1, 0.2, 0.3]), t([0.3, 0.0, 0.1]), beta=0.1, variant=2),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_SIGNED))
def test_loss_raises_chosen_and_lowers_rejected(name):
    """Gradient descent on a pairwise loss raises log pi(y_w) and lowers log pi(y_l)."""
    c, r, rc, rr = pair(grad=True)
    g_c, g_r = grads(GRADIENT_SIGNED[name](c, r, rc, rr), c, r)
    assert (g_c < 0).all() and (g_r > 0).all(), (g_c, g_r)


def test_dpo_gradient_is_beta_sigmoid_of_minus_beta_h():
    """d DPO / d chosen = -beta s(-beta h) = -d DPO / d rejected (weight largest on pairs ranked wrongly)."""
    c, r, rc, rr = pair(grad=True)
    g_c, g_r = grads(pl.dpo_loss(c, r, rc, rr, beta=0.5), c, r)
    close(g_c, -0.5 * sigmoid(-0.5 * H))
    close(g_r, 0.5 * sigmoid(-0.5 * H))


# ------------------------------------------------------------------ TRL's DPOTrainer

BATCH = 6


@pytest.fixture(scope="module")
def trl_setup(tmp_path_factory):
    """A real DPOTrainer on CPU around the tiny zoo model, with precomputed reference log-probs
    so that `_compute_loss` reads `ref_chosen_logps` / `ref_rejected_logps` from its inputs; one
    batch of random token ids (random prompt and completion lengths) through TRL's own collator;
    our policy log-probs of the same sequences from `completion_logprobs`."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from survey_lib.models import load_model
    from survey_lib.sequences import completion_logprobs

    torch.manual_seed(0)
    model, tok = load_model("tiny-text-lm")
    args = DPOConfig(output_dir=str(tmp_path_factory.mktemp("dpo")), use_cpu=True, report_to="none",
                     precompute_ref_log_probs=True, per_device_train_batch_size=2)
    rows = [{"prompt": "the movie", "chosen": " was good .", "rejected": " was bad ."}] * 2
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    model.eval()

    gen = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(0, model.config.vocab_size, (n,), generator=gen).tolist()  # noqa: E731
    examples = []
    for _ in range(BATCH):
        n_prompt, n_chosen, n_rejected = torch.randint(1, 7, (3,), generator=gen).tolist()
        examples.append({"prompt_ids": ids(n_prompt), "chosen_ids": ids(n_chosen), "rejected_ids": ids(n_rejected),
                         # of the policy's scale (it gives random tokens about -7 nats each), but not tied to
                         # the lengths, so that sorting (AOT) reorders the pairs
                         "ref_chosen_logps": -5 - 35 * torch.rand((), generator=gen).item(),
                         "ref_rejected_logps": -5 - 35 * torch.rand((), generator=gen).item()})
    inputs = trainer.data_collator(examples)
    sequences = [(e["prompt_ids"] + e[k], len(e["prompt_ids"])) for k in ("chosen_ids", "rejected_ids") for e in examples]
    with torch.no_grad():
        logps, lengths = completion_logprobs(model, sequences, tok.pad_token_id)
        labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
        kwargs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        trl_logps = model(**kwargs, labels=labels, fused_lm_head=True, use_cache=False).log_probs.sum(1)
    ours = {"chosen": logps[:BATCH].double(), "rejected": logps[BATCH:].double(),
            "ref_chosen": inputs["ref_chosen_logps"].double(), "ref_rejected": inputs["ref_rejected_logps"].double(),
            "chosen_lengths": lengths[:BATCH].double(), "rejected_lengths": lengths[BATCH:].double()}
    return trainer, model, inputs, ours, trl_logps, [len(e["chosen_ids"]) for e in examples]


def test_completion_logprobs_match_trl(trl_setup):
    """Our log pi(y|x) (summed over the completion) and completion lengths are TRL's: the
    per-token log-probs of TRL's fused head on the collated batch."""
    _, _, _, ours, trl_logps, chosen_lengths = trl_setup
    torch.testing.assert_close(torch.cat([ours["chosen"], ours["rejected"]]).float(), trl_logps, rtol=1e-5, atol=1e-5)
    assert ours["chosen_lengths"].tolist() == chosen_lengths


BETA = 0.1


def _ipo_per_token(o):
    # TRL's IPO divides each log-ratio by its completion length before taking the margin
    return pl.ipo_loss(o["chosen"] / o["chosen_lengths"], o["rejected"] / o["rejected_lengths"],
                       o["ref_chosen"] / o["chosen_lengths"], o["ref_rejected"] / o["rejected_lengths"], beta=BETA)


def _sppo_hard(o):
    return (pl.sppo_loss(o["chosen"], o["ref_chosen"], 1.0, eta=1 / BETA)
            + pl.sppo_loss(o["rejected"], o["ref_rejected"], 0.0, eta=1 / BETA))


def _pair_of(fn, **kw):
    return lambda o: fn(o["chosen"], o["rejected"], o["ref_chosen"], o["ref_rejected"], beta=BETA, **kw)


TRL_EQUIVALENTS = {  # TRL loss_type: (label_smoothing TRL is given, our per-example losses)
    # TRL 1.16's "sigmoid" ignores label_smoothing (no cDPO), so it is compared with eps = 0 only
    "sigmoid": (0.0, _pair_of(pl.dpo_loss)),
    "hinge": (0.0, _pair_of(pl.gpo_loss, kind="hinge")),
    "ipo": (0.0, _ipo_per_token),
    "robust": (0.1, _pair_of(pl.robust_dpo_loss, label_smoothing=0.1)),
    "sppo_hard": (0.0, _sppo_hard),
    "nca_pair": (0.0, _pair_of(pl.nca_loss)),
    "bco_pair": (0.0, _pair_of(pl.bco_loss)),
    "exo_pair": (1e-3, _pair_of(pl.exo_loss, label_smoothing=1e-3)),
    "aot": (0.1, _pair_of(pl.aot_loss, label_smoothing=0.1, paired=True)),
    "aot_unpaired": (0.1, _pair_of(pl.aot_loss, label_smoothing=0.1, paired=False)),
    "apo_zero": (0.0, _pair_of(pl.apo_loss, variant="zero")),
    "apo_down": (0.0, _pair_of(pl.apo_loss, variant="down")),
}


@pytest.mark.parametrize("loss_type", list(TRL_EQUIVALENTS))
def test_loss_matches_trl_dpo_trainer(trl_setup, loss_type):
    """TRL's DPOTrainer._compute_loss (its inline loss code, fed the same batch and reference
    log-probs) returns the batch mean of our per-example losses on our log-probs, to 1e-5."""
    trainer, model, inputs, ours, _, _ = trl_setup
    label_smoothing, ours_fn = TRL_EQUIVALENTS[loss_type]
    # the trainer reads these attributes on every call; setting them avoids one trainer per type
    trainer.loss_types, trainer.loss_weights = [loss_type], [1.0]
    trainer.beta, trainer.label_smoothing = BETA, label_smoothing
    with torch.no_grad():
        trl_loss = trainer._compute_loss(model, dict(inputs), return_outputs=False)
    expected = ours_fn(ours)
    assert expected.shape == (BATCH,)
    assert expected.mean().item() == pytest.approx(trl_loss.item(), rel=1e-5, abs=1e-5)
    if loss_type.startswith("aot"):  # the batch is one where sorting matters: unsorted pairs would give another value
        unsorted = _pair_of(pl.dpo_loss, label_smoothing=label_smoothing)(ours)
        assert abs(unsorted.mean().item() - trl_loss.item()) > 1e-3


# ------------------------------------------------------------------ bad input


def _zeros(n=3):
    return torch.zeros(n)


BETA_TAKERS = {
    "dpo": lambda beta: pl.dpo_loss(*[_zeros()] * 4, beta=beta),
    "robust": lambda beta: pl.robust_dpo_loss(*[_zeros()] * 4, beta=beta),
    "ipo": lambda beta: pl.ipo_loss(*[_zeros()] * 4, beta=beta),
    "gpo": lambda beta: pl.gpo_loss(*[_zeros()] * 4, beta=beta),
    "beta_dpo": lambda beta: pl.beta_dpo_loss(*[_zeros()] * 4, beta=beta, state=pl.BetaDPOState()),
    "kto": lambda beta: pl.kto_loss(_zeros(), _zeros(), torch.ones(3, dtype=torch.bool), 0.0, beta=beta),
    "simpo": lambda beta: pl.simpo_loss(_zeros(), _zeros(), torch.ones(3), torch.ones(3), beta=beta),
    "nca": lambda beta: pl.nca_loss(*[_zeros()] * 4, beta=beta),
    "bco": lambda beta: pl.bco_loss(*[_zeros()] * 4, beta=beta),
    "exo": lambda beta: pl.exo_loss(*[_zeros()] * 4, beta=beta),
    "aot": lambda beta: pl.aot_loss(*[_zeros()] * 4, beta=beta),
    "apo": lambda beta: pl.apo_loss(*[_zeros()] * 4, beta=beta),
    "dpop": lambda beta: pl.dpop_loss(*[_zeros()] * 4, beta=beta),
    "npo": lambda beta: pl.npo_loss(_zeros(), _zeros(), beta=beta),
    "d2o": lambda beta: pl.d2o_loss(_zeros(), _zeros(), torch.zeros(3, 2), torch.zeros(3, 2), beta=beta),
    "tdpo": lambda beta: pl.tdpo_loss(*[_zeros()] * 6, beta=beta),
    "rejection_sample": lambda beta: pl.rejection_sample(_zeros(), 1, beta=beta),
}


@pytest.mark.parametrize("name", sorted(BETA_TAKERS))
def test_non_positive_beta_is_rejected_by_name(name):
    """beta <= 0 raises ValueError naming beta (beta = 0 would make every loss flat)."""
    BETA_TAKERS[name](0.1)  # valid
    for beta in (0.0, -0.5):
        with pytest.raises(ValueError, match="beta"):
            BETA_TAKERS[name](beta)


MISMATCHED = {  # call, the names the error must contain
    "dpo": (lambda: pl.dpo_loss(_zeros(), _zeros(2), _zeros(), _zeros()), ["chosen_logps=(3,)", "rejected_logps=(2,)"]),
    "slic_hf": (lambda: pl.slic_hf_loss(_zeros(), _zeros(), target_logps=_zeros(4)), ["target_logps=(4,)"]),
    "kto": (lambda: pl.kto_loss(_zeros(), _zeros(2), torch.ones(3, dtype=torch.bool), 0.0), ["ref_logps=(2,)"]),
    "orpo": (lambda: pl.orpo_loss(_zeros(), _zeros(), torch.ones(2), torch.ones(3)), ["chosen_lengths=(2,)"]),
    "npo": (lambda: pl.npo_loss(_zeros(), _zeros(2)), ["logps=(3,)", "ref_logps=(2,)"]),
    "sppo": (lambda: pl.sppo_loss(_zeros(2), _zeros(), 1.0), ["logps=(2,)"]),
    "dro": (lambda: pl.dro_loss(_zeros(), _zeros(), _zeros(), _zeros(2)), ["values=(2,)"]),
    "d2o": (lambda: pl.d2o_loss(_zeros(), _zeros(), torch.zeros(2, 4), torch.zeros(2, 4)), ["sample_logps", "(2, 4)"]),
    "sequential_kl": (lambda: pl.sequential_kl(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), torch.ones(1, 2)),
                      ["ref_logits=(1, 2, 3)", "logits=(1, 2, 4)"]),
    "tdpo": (lambda: pl.tdpo_loss(*[_zeros()] * 5, _zeros(2)), ["rejected_seq_kl=(2,)"]),
}


@pytest.mark.parametrize("name", sorted(MISMATCHED))
def test_mismatched_shapes_name_the_tensors(name):
    """Tensors of different shapes would broadcast silently; the error names them and their shapes."""
    call, names = MISMATCHED[name]
    with pytest.raises(ValueError) as info:
        call()
    for fragment in names:
        assert fragment in str(info.value)


def test_unknown_gpo_kind_lists_the_valid_kinds():
    """An unknown GPO kind names itself and every valid kind."""
    with pytest.raises(ValueError, match="kind") as info:
        pl.gpo_loss(*[_zeros()] * 4, kind="cubic")
    assert "'cubic'" in str(info.value) and all(repr(kind) in str(info.value) for kind in pl.GPO_FUNCTIONS)


@pytest.mark.parametrize("keep", [1.0, 0.5])
def test_beta_dpo_records_which_rows_it_kept(keep):
    """state.kept lists the kept rows in the order of the returned losses (the draw permutes
    them even when keep = 1), so a caller can pair each loss with its own row."""
    n = 8
    h = np.linspace(-1.0, 1.0, n)
    zeros = t([0.0] * n)
    state = pl.BetaDPOState(0.9)
    losses, beta_batch = pl.beta_dpo_loss(t(h), zeros, zeros, zeros, beta=0.5, keep=keep, state=state,
                                          generator=torch.Generator().manual_seed(0))
    kept = state.kept.numpy()
    assert len(kept) == len(losses) == int(keep * n) and len(set(kept)) == len(kept)
    close(losses, -log_sigmoid(beta_batch * h[kept]))
