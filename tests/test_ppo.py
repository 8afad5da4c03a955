"""survey_lib.ppo (chapter 04): GAE, the clipped policy and value losses, the per-token
KL reward, the adaptive KL controller and whitening against hand-computed values; the
config checks; each implementation detail's switch end to end on the zoo; a bad reward;
resuming; QLoRA on CPU; and the critic initialised from a reward model."""
import math
from dataclasses import replace

import bitsandbytes as bnb
import numpy as np
import pytest
import torch

from survey_lib import online_rl
from survey_lib.generation import generate_rollouts
from survey_lib.models import LoraSettings, ModelSettings, load_model
from survey_lib.group_losses import masked_whiten
from survey_lib.online_rl import token_logprobs
from survey_lib.ppo import (
    AdaptiveKLController,
    PPOConfig,
    gae,
    per_token_rewards,
    ppo_policy_loss,
    ppo_value_loss,
    train_ppo,
)
from survey_lib.reward_models import RewardModel
from survey_lib.world.text import TextWorld

PROMPTS = list(TextWorld(seed=0).prompts)
TINY = PPOConfig(steps=2, batch_size=8, num_mini_batches=2, max_new_tokens=8)
QLORA = ModelSettings(quantization="nf4", dtype="float32", lora=LoraSettings(r=4, alpha=8, dropout=0.0), device="cpu")


from conftest import crash_at  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def words(prompts, completions):
    """A reward any test can check by eye: the number of words of the completion."""
    return np.array([len(c.split()) for c in completions], dtype=float)


def policy():
    return load_model("tiny-text-lm")[0]


def critic():
    """A fresh critic whose new value head is the same in every call (its initialisation
    draws from the global RNG), so that two runs differ only in what a test switches."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return load_model("tiny-text-lm", head="value")[0]


def ppo(tok, config=TINY, *, model=None, value=None, reward=words, **changes):
    return train_ppo(model or policy(), replace(config, **changes), PROMPTS, tokenizer=tok, reward=reward, critic=value or critic())


def t(values):
    return torch.tensor(values, dtype=torch.float64)


# ------------------------------------------------------------------ GAE


@pytest.mark.parametrize("padded_reward", [0.0, 5.0])
def test_gae_hand_computed_with_a_padded_tail(padded_reward):
    """gamma=0.9, lam=0.8; row 2 has two real tokens: its padded position gets advantage 0
    and return 0 whatever its value (9.0) and its reward (a reward there must not leak into
    the real tokens' advantages), and its last real token bootstraps from 0."""
    rewards = t([[1.0, 2.0, 3.0], [0.5, 1.5, padded_reward]])
    values = t([[0.1, 0.2, 0.3], [0.4, 0.6, 9.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # row 1: delta = [1 + .9*.2 - .1, 2 + .9*.3 - .2, 3 - .3] = [1.08, 2.07, 2.7]
    #        A_2 = 2.7, A_1 = 2.07 + .72*2.7 = 4.014, A_0 = 1.08 + .72*4.014 = 3.97008
    # row 2: delta = [.5 + .9*.6 - .4, 1.5 + 0 - .6] = [.64, .9]; A_1 = .9, A_0 = .64 + .72*.9 = 1.288
    expected = t([[3.97008, 4.014, 2.7], [1.288, 0.9, 0.0]])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected + values * mask)


def random_episodes(seed=0):
    """Three rows of lengths 5, 3 and 1; rewards are 0 on padding, as per_token_rewards makes them."""
    gen = torch.Generator().manual_seed(seed)
    mask = t([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    rewards = torch.randn(3, 5, generator=gen, dtype=torch.float64) * mask
    values = torch.randn(3, 5, generator=gen, dtype=torch.float64)  # padding values must not matter
    return rewards, values, mask


def test_gae_with_lambda_one_is_reward_to_go_minus_value():
    """lam=1, gamma=1: A_t = sum_{s>=t} r_s - V_t, the Monte-Carlo advantage; returns are the reward-to-go."""
    rewards, values, mask = random_episodes()
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    to_go = rewards.flip(-1).cumsum(-1).flip(-1) * mask
    torch.testing.assert_close(advantages, (to_go - values) * mask)
    torch.testing.assert_close(returns, to_go)


def test_gae_with_lambda_zero_is_the_one_step_td_error():
    """lam=0: A_t = r_t + gamma V_{t+1} - V_t, with V = 0 past each row's last real token."""
    rewards, values, mask = random_episodes(1)
    advantages, _ = gae(rewards, values, mask, gamma=0.9, lam=0.0)
    next_values = torch.cat([(values * mask)[:, 1:], torch.zeros(3, 1, dtype=torch.float64)], 1)
    torch.testing.assert_close(advantages, (rewards + 0.9 * next_values - values) * mask)
    assert advantages[1, 2] == pytest.approx((rewards[1, 2] - values[1, 2]).item())  # last real token: no bootstrap


# ------------------------------------------------------------------ the clipped policy and value losses


def test_policy_loss_inside_the_clip_range_is_minus_advantage_times_ratio():
    """Every ratio within [0.8, 1.2]: loss = mean(-A rho), nothing clipped."""
    ratio, adv = t([1.05, 0.9, 1.1]), t([1.0, -2.0, 0.5])
    loss, clipfrac = ppo_policy_loss(ratio.log(), torch.zeros(3, dtype=torch.float64), adv, torch.ones(3), 0.2)
    assert loss.item() == pytest.approx(-(1.05 - 1.8 + 0.55) / 3)
    assert clipfrac.item() == 0.0


def test_policy_loss_clips_the_gradient_only_where_the_ratio_moved_in_the_advantages_direction():
    """eps=0.2. A>0 with rho=1.5 and A<0 with rho=0.5: the clipped term wins, the gradient is 0.
    A>0 with rho=0.5 and A<0 with rho=1.5: the pessimistic max keeps the unclipped term, and
    d(-A rho)/d log pi = -A rho. A masked fifth token with absurd values changes nothing."""
    ratio = t([1.5, 0.5, 0.5, 1.5, math.exp(10.0)])
    adv = t([1.0, -1.0, 1.0, -1.0, 100.0])
    mask = t([1, 1, 1, 1, 0])
    logprobs = ratio.log().requires_grad_(True)
    loss, clipfrac = ppo_policy_loss(logprobs, torch.zeros(5, dtype=torch.float64), adv, mask, 0.2)
    # per token: max(-1.5, -1.2) = -1.2; max(0.5, 0.8) = 0.8; max(-0.5, -0.8) = -0.5; max(1.5, 1.2) = 1.5
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 0.5 + 1.5) / 4)
    (grad,) = torch.autograd.grad(loss, logprobs)
    torch.testing.assert_close(grad, t([0.0, 0.0, -0.5 / 4, 1.5 / 4, 0.0]))
    # clipfrac counts the tokens whose ratio left [1 - eps, 1 + eps]: all four real ones
    # (TRL's former PPOTrainer counted only those where the clipped term was the larger: 2 of 4)
    assert clipfrac.item() == 1.0
    unmasked = ppo_policy_loss(ratio[:4].log(), torch.zeros(4, dtype=torch.float64), adv[:4], torch.ones(4), 0.2)
    assert loss.item() == pytest.approx(unmasked[0].item()) and clipfrac.item() == unmasked[1].item()


def test_clipfrac_is_the_fraction_of_real_tokens_outside_the_range():
    """2 of the 4 real tokens leave [0.9, 1.1]; the padded one (ratio 3) is not counted."""
    ratio = t([1.0, 1.2, 0.95, 0.5, 3.0])
    _, clipfrac = ppo_policy_loss(ratio.log(), torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64),
                                  t([1, 1, 1, 1, 0]), 0.1)
    assert clipfrac.item() == pytest.approx(0.5)


def test_value_loss_without_clipping_is_half_the_masked_mean_squared_error():
    values, returns, mask = t([1.0, 0.1, -1.0, 7.0]), t([0.5, 1.0, -2.0, 0.0]), t([1, 1, 1, 0])
    loss = ppo_value_loss(values, t([5.0, 5.0, 5.0, 5.0]), returns, mask, None)  # old values unused
    assert loss.item() == pytest.approx(0.5 * (0.25 + 0.81 + 1.0) / 3)


def test_value_loss_with_clipping_takes_the_larger_squared_error():
    """Old values 0, clip 0.2: V_clip = [0.2, 0.1, -0.2]; errors max((V-R)^2, (V_clip-R)^2) =
    [max(.25, .09), .81, max(1, 3.24)], so clipping can only raise the loss."""
    values, old, returns, mask = t([1.0, 0.1, -1.0, 7.0]), t([0.0, 0.0, 0.0, 0.0]), t([0.5, 1.0, -2.0, 0.0]), t([1, 1, 1, 0])
    assert ppo_value_loss(values, old, returns, mask, 0.2).item() == pytest.approx(0.5 * (0.25 + 0.81 + 3.24) / 3)


def test_per_token_rewards_kl_on_every_token_score_at_the_last_real_one():
    """r_t = -kl_coef (log pi_old - log pi_ref) on real tokens, + score at index mask.sum - 1, 0 on padding."""
    logp = t([[-1.0, -2.0, -0.5, -9.0], [-0.2, -5.0, -5.0, -5.0], [-1.0, -1.0, -1.0, -1.0]])
    ref = t([[-1.5, -1.0, -0.5, 0.0], [-0.7, 0.0, 0.0, 0.0], [-2.0, -0.5, -1.0, -3.0]])
    mask = t([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    rewards = per_token_rewards(t([1.0, 2.0, 3.0]), logp, ref, mask, kl_coef=0.1)
    expected = t([[-0.05, 0.1, 1.0, 0.0],
                  [2.0 - 0.05, 0.0, 0.0, 0.0],
                  [-0.1, 0.05, 0.0, 3.0 - 0.2]])
    torch.testing.assert_close(rewards, expected)


# ------------------------------------------------------------------ adaptive KL, whitening


def test_adaptive_kl_controller_moves_the_coefficient_by_the_clipped_error():
    """beta *= 1 + clip(KL/target - 1, -0.2, 0.2) n / horizon."""
    up = AdaptiveKLController(0.1, target=2.0, horizon=100)
    assert up.update(10.0, n=8) == pytest.approx(0.1 * (1 + 0.2 * 8 / 100))  # error 4 clipped to 0.2
    down = AdaptiveKLController(0.1, target=2.0, horizon=100)
    assert down.update(0.0, n=8) == pytest.approx(0.1 * (1 - 0.2 * 8 / 100))
    small = AdaptiveKLController(0.1, target=2.0, horizon=100)
    assert small.update(2.2, n=8) == pytest.approx(0.1 * (1 + 0.1 * 8 / 100))  # inside the clip
    same = AdaptiveKLController(0.1, target=2.0, horizon=100)
    assert same.update(2.0, n=8) == 0.1 and same.value == 0.1


def test_masked_whiten_over_the_mask_only():
    """Mean 0 and (population) std 1 over the real entries, padding 0; shift_mean=False keeps the mean."""
    gen = torch.Generator().manual_seed(0)
    x = 3.0 + 2.0 * torch.randn(4, 6, generator=gen, dtype=torch.float64)
    mask = (torch.arange(6) < torch.tensor([[6], [4], [2], [5]])).double()
    x_padded = x + 100 * (1 - mask)  # padding must not shift the statistics
    real = x[mask.bool()]
    white = masked_whiten(x_padded, mask)
    assert white[mask.bool()].mean().item() == pytest.approx(0.0, abs=1e-9)
    assert white[mask.bool()].std(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)
    assert (white[~mask.bool()] == 0).all()
    kept = masked_whiten(x_padded, mask, shift_mean=False)
    assert kept[mask.bool()].mean().item() == pytest.approx(real.mean().item())
    torch.testing.assert_close(kept[mask.bool()], (real - real.mean()) / real.std(unbiased=False) + real.mean(),
                               rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ config checks


@pytest.mark.parametrize("changes, name", [
    ({"cliprange": 0}, "cliprange"),
    ({"kl_target": 0}, "kl_target"),
    ({"kl_target": -1}, "kl_target"),
    ({"batch_size": 10, "num_mini_batches": 3}, "num_mini_batches"),
    ({"cliprange_value": 0.0}, "cliprange_value"),
    ({"lam": 1.5}, "lam"),
])
def test_bad_ppo_settings_are_rejected_by_name(changes, name):
    with pytest.raises(ValueError, match=name):
        PPOConfig(**changes)


# ------------------------------------------------------------------ each detail's switch, end to end


def test_missing_eos_penalty_is_subtracted_from_unfinished_responses(tok):
    """Same seed, same first rollouts: with max_new_tokens=5 most responses are cut, and the
    penalised score is the raw score minus 1.0 x the fraction that never ended."""
    raw = ppo(tok, steps=1, max_new_tokens=5).history[0]
    penalised = ppo(tok, steps=1, max_new_tokens=5, missing_eos_penalty=1.0).history[0]
    assert penalised["ended"] == raw["ended"] < 1
    assert penalised["score"] == pytest.approx(raw["score"] - (1 - raw["ended"]) * 1.0, abs=1e-6)


def test_online_run_rollout_penalises_exactly_the_rows_that_did_not_end(tok):
    """OnlineRun.rollout: score = reward - penalty where `ended` is False, the reward itself where True."""
    config = online_rl.OnlineConfig(batch_size=8, max_new_tokens=5, missing_eos_penalty=0.5)
    rollouts, scores = online_rl.OnlineRun(policy(), config, PROMPTS, tokenizer=tok, reward=words).rollout()
    assert 0 < rollouts.ended.sum() < 8
    expected = words(rollouts.prompts, rollouts.completions) - 0.5 * (~rollouts.ended).numpy()
    np.testing.assert_allclose(scores.numpy(), expected, rtol=0, atol=1e-6)


def test_kl_target_adapts_the_coefficient_and_none_keeps_it(tok):
    """At step 0 the policy is its reference (KL exactly 0), so the controller lowers the
    coefficient by the clipped factor 1 - 0.2 x 8 / 10; without a target it never moves."""
    adaptive = ppo(tok, steps=3, kl_target=1.0, kl_horizon=10).history
    assert adaptive[0]["kl"] == 0.0 and adaptive[0]["kl_coef"] == TINY.kl_coef
    assert adaptive[1]["kl_coef"] == pytest.approx(TINY.kl_coef * (1 - 0.2 * 8 / 10))
    assert len({h["kl_coef"] for h in adaptive}) == 3
    fixed = ppo(tok, steps=3, kl_horizon=10).history
    assert {h["kl_coef"] for h in fixed} == {TINY.kl_coef}


def dropout_policy():
    """LoRA with adapter dropout 0.5 and non-zero lora_B (it starts at 0, which would make the
    adapter, and so its dropout, invisible at the first step)."""
    model = load_model("tiny-text-lm", lora=LoraSettings(r=4, dropout=0.5))[0]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize("disable", [True, False])
def test_disable_dropout_makes_the_first_ratio_exactly_one(tok, disable):
    """One epoch, one minibatch: the only update compares pi with pi_old on the same weights.
    In eval mode the ratio is 1 (nothing outside a 1e-6 clip range); with dropout on, the two
    forward passes drop different units and the ratio moves."""
    config = replace(TINY, steps=1, num_ppo_epochs=1, num_mini_batches=1, cliprange=1e-6, disable_dropout=disable)
    first = ppo(tok, config, model=dropout_policy()).history[0]
    if disable:
        assert first["clipfrac"] == 0.0
    else:
        assert first["clipfrac"] > 0.5


@pytest.mark.parametrize("changes", [
    {"whiten_advantages": False},
    {"whiten_rewards": True},
    {"cliprange_value": None},
    {"whiten_rewards": True, "whiten_advantages": False, "cliprange_value": 0.05},
])
def test_every_switch_combination_trains_with_finite_losses(tok, changes):
    history = ppo(tok, **changes).history
    assert len(history) == 2
    assert all(math.isfinite(h[k]) for h in history for k in ("pg_loss", "vf_loss", "clipfrac", "kl", "score"))


def test_the_switches_change_the_losses_of_the_same_seed(tok):
    """Same seed, same critic: the rollouts of step 0 are identical, so a difference in the
    losses is the switch's. Whitened advantages have mean 0 over the batch, so the policy loss
    (-A x ratio, ratio near 1) is near 0; raw advantages (scores ~7 words) make it large.
    Value clipping binds from the second minibatch on, where V has moved from V_old."""
    base = ppo(tok, steps=1).history[0]
    raw = ppo(tok, steps=1, whiten_advantages=False).history[0]
    unclipped = ppo(tok, steps=1, cliprange_value=None).history[0]
    whitened_rewards = ppo(tok, steps=1, whiten_rewards=True).history[0]
    assert base["score"] == raw["score"] == unclipped["score"] == whitened_rewards["score"]
    assert abs(base["pg_loss"]) < 0.5 < abs(raw["pg_loss"])
    assert unclipped["vf_loss"] != pytest.approx(base["vf_loss"], rel=1e-4)
    assert whitened_rewards["vf_loss"] != pytest.approx(base["vf_loss"], rel=1e-2)


# ------------------------------------------------------------------ bad reward


def test_a_nan_reward_names_the_sample(tok):
    def broken(prompts, completions):
        scores = words(prompts, completions)
        scores[3] = np.nan
        return scores

    with pytest.raises(FloatingPointError, match="sample 3"):
        ppo(tok, reward=broken)


def test_a_reward_of_the_wrong_length_is_rejected(tok):
    with pytest.raises(ValueError, match="7 values for 8 completions"):
        ppo(tok, reward=lambda p, c: words(p, c)[:7])


# ------------------------------------------------------------------ checkpoints


def perturbed(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def test_an_interrupted_run_resumes_bit_for_bit(tok, tmp_path, monkeypatch):
    """3 steps with a checkpoint after each, interrupted at step 2: the rerun loads the
    policy, critic, optimiser, RNG and kl_coef from the checkpoint (a perturbed critic must
    not matter), runs only step 2, and matches an uninterrupted run; its first two records are
    the interrupted run's. A finished run does no step."""
    config = replace(TINY, steps=3, save_steps=1, kl_target=1.0, kl_horizon=10, output_dir=str(tmp_path))
    straight = ppo(tok, config, output_dir=None)
    crash_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        ppo(tok, config)
    monkeypatch.undo()
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["step"] == 2 and len(saved["history"]) == 2
    resumed = ppo(tok, config, value=perturbed(critic()))
    assert len(resumed.history) == 3
    assert resumed.history[:2] == saved["history"]
    assert resumed.history == straight.history
    for (name, a), b in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name
    for (name, a), b in zip(straight.critic.named_parameters(), resumed.critic.parameters()):
        assert torch.equal(a, b), name
    crash_at(monkeypatch, 0)  # any step would raise
    assert ppo(tok, config).history == straight.history


def test_resuming_with_other_settings_is_refused(tok, tmp_path):
    """The fingerprint covers every setting but output_dir and save_steps, `steps` included:
    a finished 2-step run cannot be extended to 3 steps in the same directory."""
    config = replace(TINY, save_steps=1, output_dir=str(tmp_path))
    ppo(tok, config)
    assert len(ppo(tok, config, save_steps=5).history) == 2  # save_steps is not part of the fingerprint
    with pytest.raises(ValueError, match="other data or settings"):
        ppo(tok, config, steps=3)


# ------------------------------------------------------------------ QLoRA on CPU, the critic


def dequantized(model):
    return {n: bnb.functional.dequantize_4bit(m.weight.data, m.weight.quant_state)
            for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}


def test_qlora_policy_moves_only_its_adapters_and_the_reference_is_the_disabled_adapter(tok):
    """NF4 + LoRA policy on CPU (with a full-precision critic; the QLoRA critic is tested below): two PPO
    steps move every lora_ tensor and nothing else, the 4-bit base stays bit-identical, the
    KL to the reference is exactly 0 at step 0 (lora_B = 0), and afterwards the reference
    (adapters disabled) scores the rollouts differently from the trained policy."""
    model = load_model("tiny-text-lm", QLORA)[0]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    base = dequantized(model)
    result = ppo(tok, model=model, num_ppo_epochs=1, learning_rate=1e-2)
    assert result.history[0]["kl"] == 0.0
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {n for n in before if "lora_" in n}
    assert all(torch.equal(w, base[n]) for n, w in dequantized(model).items())
    torch.manual_seed(0)
    rollouts = generate_rollouts(model, tok, PROMPTS[:8], max_new_tokens=8)
    mask = rollouts.response_mask.float()
    with torch.no_grad():
        trained = (token_logprobs(model, rollouts, 1.0) * mask).sum(-1)
        with model.disable_adapter():
            reference = (token_logprobs(model, rollouts, 1.0) * mask).sum(-1)
    assert (trained - reference).abs().max() > 1e-3


@pytest.mark.parametrize("settings", [ModelSettings(lora=LoraSettings(r=4, alpha=8, dropout=0.0), device="cpu"), QLORA],
                         ids=["lora", "qlora"])
def test_a_lora_or_qlora_critic_loads_and_gives_one_value_per_token(tok, settings):
    """ppo.py's docstring: "under QLoRA [the critic] is a second 4-bit base with its own adapters"."""
    value = load_model("tiny-text-lm", settings, head="value")[0]
    out = value(**tok(["the movie was"], return_tensors="pt")).logits
    assert out.shape == (1, 3, 1)
    assert any(p.requires_grad for n, p in value.named_parameters() if "score" in n)


def test_the_critic_loaded_from_a_saved_reward_model_keeps_its_head(tmp_path):
    """InstructGPT initialises the value model from the reward model: load_model(rm_dir,
    head="value") keeps the trained `score` weights (and the trunk); a zoo LM gets a fresh head."""
    with torch.random.fork_rng():
        torch.manual_seed(3)
        rm = RewardModel.from_pretrained("tiny-text-lm")
    with torch.no_grad():
        rm.model.score.weight.add_(1.0)  # not what a fresh head could be
    rm.save_pretrained(tmp_path)
    value = load_model(tmp_path, head="value")[0]
    assert torch.equal(value.score.weight, rm.model.score.weight)
    assert torch.equal(value.model.layers[0].mlp.up_proj.weight, rm.model.model.layers[0].mlp.up_proj.weight)
    assert not torch.equal(critic().score.weight, rm.model.score.weight)
