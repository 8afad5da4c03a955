import numpy as np
import pytest
import torch

from survey_lib.rl_basics import (
    Bandit,
    PolicyGradientConfig,
    clipped_surrogate,
    exact_gradient_variance,
    gradient_variance,
    reinforce_gradients,
    softmax,
    surrogate_ratio_trace,
    train_towards_optimum,
)
from survey_lib.world.enumerable import EnumerableTask


def exact_bandit_gradient(bandit, logits):
    pi = softmax(logits)
    value = pi @ bandit.means
    return pi * (bandit.means - value)  # d/dlogits sum_k pi_k mu_k


@pytest.mark.parametrize("baseline", [False, True])
def test_reinforce_is_unbiased(baseline):
    bandit = Bandit(n_arms=5, reward_offset=3.0)
    logits = np.array([0.5, -0.2, 0.0, 1.0, -1.0])
    grads = reinforce_gradients(bandit, logits, 400_000, baseline, np.random.default_rng(0))
    assert np.allclose(grads.mean(0), exact_bandit_gradient(bandit, logits), atol=0.02)


@pytest.mark.parametrize("baseline", [False, True])
def test_variance_matches_its_closed_form(baseline):
    bandit = Bandit(n_arms=4, reward_offset=2.0, reward_noise=0.5, seed=3)
    logits = np.array([0.3, -0.4, 1.0, 0.0])
    mc = gradient_variance(reinforce_gradients(bandit, logits, 400_000, baseline, np.random.default_rng(1)))
    assert mc == pytest.approx(exact_gradient_variance(bandit, logits, baseline), rel=0.02)


def test_baseline_reduces_variance_more_as_offset_grows():
    ratios = []
    for offset in (0.0, 5.0):
        b = Bandit(reward_offset=offset)
        plain = gradient_variance(reinforce_gradients(b, np.zeros(10), 20000, False, np.random.default_rng(0)))
        base = gradient_variance(reinforce_gradients(b, np.zeros(10), 20000, True, np.random.default_rng(0)))
        ratios.append(plain / base)
    assert ratios[1] > 5 * ratios[0] and ratios[1] > 10


def test_clipped_surrogate_closed_form():
    logp_old = torch.log(torch.tensor([0.5, 0.5, 0.5, 0.5]))
    ratio = torch.tensor([1.5, 0.5, 1.1, 0.7])
    adv = torch.tensor([1.0, -1.0, 2.0, 1.0])
    loss = clipped_surrogate(logp_old + ratio.log(), logp_old, adv, 0.2)
    # min(rho A, clip(rho) A): 1.2*1, max-clipped: min(-0.5, -0.8) = -0.8, 1.1*2, 0.7*1
    assert loss.item() == pytest.approx(-(1.2 - 0.8 + 2.2 + 0.7) / 4)


def test_clipped_surrogate_has_no_gradient_outside_the_trust_region():
    logp_old = torch.zeros(2)
    logp = torch.log(torch.tensor([1.5, 0.5])).requires_grad_()
    clipped_surrogate(logp, logp_old, torch.tensor([1.0, -1.0]), 0.2).backward()
    assert torch.equal(logp.grad, torch.zeros(2))


def test_clip_bounds_the_ratio_and_no_clip_does_not():
    clipped = surrogate_ratio_trace(0.2, advantages=(1.0, 0.0, 0.0))
    plain = surrogate_ratio_trace(None, advantages=(1.0, 0.0, 0.0))
    assert clipped[:, 0].max() < 1.35 and plain[-1, 0] > 2.0


@pytest.mark.parametrize("method, steps", [("reinforce", 150), ("ppo", 40)])
def test_policy_gradient_converges_towards_pi_star(method, steps):
    task = EnumerableTask(vocab_size=3, length=3)
    out = train_towards_optimum(task, PolicyGradientConfig(method=method, steps=steps), progress=False)
    kl = out["kl_to_optimum"]
    assert kl[-1] < kl[0] / 10
    # the exact objective rises towards beta log Z
    assert out["objective"][-1] > out["objective"][0]
    assert out["objective"][-1] <= 0.5 * task.log_partition(0.5).item() + 1e-6


@pytest.mark.parametrize(
    "kwargs, match",
    [({"method": "a2c"}, "'reinforce', 'ppo'"), ({"beta": 0.0}, "beta"), ({"clip_range": -0.1}, "clip_range"), ({"batch_size": 10, "ppo_minibatches": 4}, "divisible")],
)
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolicyGradientConfig(**kwargs)
    with pytest.raises(ValueError, match="n_arms"):
        Bandit(n_arms=1)
