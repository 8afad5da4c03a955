"""survey_lib.online_rl, the ranking losses and survey_lib.overoptimization (chapter 04):
RLOO's and GRPO's advantages by hand, their configs, both trainers on the zoo (and a reward
they must learn), rollouts and their log-probabilities, RRHF and PRO (closed forms, and
end to end on ranked rows), best-of-n's KL and sweep, and Gao et al.'s fits."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from survey_lib import preference_losses as pl
from survey_lib.generation import generate_rollouts, sample_completions
from survey_lib.models import load_model
from survey_lib import checkpoints
from survey_lib.group_losses import group_advantages, group_policy_loss, rloo_advantages, rloo_loss
from survey_lib.online_rl import GroupConfig, token_logprobs, train_group_policy
from survey_lib.overoptimization import best_of_n_kl, best_of_n_sweep, fit_gao, gao_curve
from survey_lib.preference_data import PreferenceDataError
from survey_lib.preference_config import PreferenceConfig
from survey_lib.preference_training import train_preference
from survey_lib.sequences import encode_completion, sequence_logprobs
from survey_lib.world.text import TextWorld

WORLD = TextWorld(seed=0)
PROMPTS = list(WORLD.prompts)
# prompts of 2 to 4 tokens: generation pads them on the left, so positions must be counted per row
MIXED = ["the movie", "i think the plot", "the acting", "this film was"] * 2
TINY = GroupConfig(steps=3, batch_size=8, num_generations=4, max_new_tokens=8)


pytestmark = pytest.mark.usefixtures("one_thread")


def policy():
    return load_model("tiny-text-lm")[0]


def words(prompts, completions):
    return np.array([len(c.split()) for c in completions], dtype=float)


def brevity(prompts, completions):
    """Minus the number of words: the zoo model answers in 5 to 15, and can learn to stop early."""
    return -words(prompts, completions)


def t(values):
    return torch.tensor(values, dtype=torch.float64)


# ------------------------------------------------------------------ RLOO and GRPO advantages


def test_rloo_advantage_is_the_reward_minus_the_mean_of_the_others():
    """k=3: group [1, 2, 6] has baselines [(2+6)/2, (1+6)/2, (1+2)/2] = [4, 3.5, 1.5]."""
    adv = rloo_advantages(t([1.0, 2.0, 6.0, 0.0, 0.0, 3.0]), 3)
    torch.testing.assert_close(adv, t([-3.0, -1.5, 4.5, -1.5, -1.5, 3.0]))
    torch.testing.assert_close(adv.view(2, 3).sum(1), t([0.0, 0.0]))
    # k/(k-1) times the plain mean-baselined advantage (Kool et al. 2019)
    r = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(rloo_advantages(r.view(-1), 4).view(5, 4), (r - r.mean(1, keepdim=True)) * 4 / 3)


def test_grpo_advantage_is_the_group_z_score_with_bessels_std():
    r = np.array([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])
    groups = r.reshape(2, 3)
    expected = (groups - groups.mean(1, keepdims=True)) / (groups.std(1, ddof=1, keepdims=True) + 1e-4)
    torch.testing.assert_close(group_advantages(t(r), 3), t(expected.reshape(-1)))
    assert group_advantages(t(r), 3)[0].item() == pytest.approx(-2 / (math.sqrt(7) + 1e-4))
    torch.testing.assert_close(group_advantages(t(r), 3, scale="none"), t([-2.0, -1.0, 3.0, -1.0, -1.0, 2.0]))
    assert (group_advantages(t([5.0, 5.0, 5.0]), 3) == 0).all()  # a tied group teaches nothing, and no NaN


@pytest.mark.parametrize("changes", [{"batch_size": 10, "num_generations": 4}, {"num_generations": 1}])
def test_bad_group_sizes_are_rejected_by_name(changes):
    with pytest.raises(ValueError, match="num_generations"):
        GroupConfig(**changes)


def test_an_unknown_method_lists_the_choices(tok):
    with pytest.raises(ValueError, match="'rloo', 'grpo'"):
        train_group_policy(policy(), TINY, PROMPTS, tokenizer=tok, reward=words, method="ppo")


# ------------------------------------------------------------------ the trainers on the zoo


@pytest.mark.parametrize("method", ["rloo", "grpo"])
def test_a_tiny_run_records_every_step_and_moves_the_policy(tok, method):
    model = policy()
    before = [p.detach().clone() for p in model.parameters()]
    history = train_group_policy(model, TINY, PROMPTS, tokenizer=tok, reward=words, method=method).history
    assert [h["step"] for h in history] == [0, 1, 2]
    assert all(math.isfinite(h[k]) for h in history for k in ("score", "kl", "loss", "response_length", "ended"))
    assert history[0]["kl"] == 0.0  # the reference is the policy before training
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_rloo_loss_clips_the_sequence_ratio_by_hand():
    """Row 0: ratio e^0.2 = 1.221 with A = 1 is clipped to 1.2; row 1: the masked token's
    -3 is ignored, ratio e^-0.5 = 0.607 with A = -2 is clipped to 0.8 (the pessimistic side).
    Row 2: ratio 1, inside the clip. Loss = -mean(1.2, -1.6, 0.5)."""
    new = torch.tensor([[-1.0, -0.5], [-2.0, 0.0], [-1.0, -1.0]])
    old = torch.tensor([[-1.2, -0.5], [-1.5, -3.0], [-1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    loss, clipfrac = rloo_loss(new, old, torch.tensor([1.0, -2.0, 0.5]), mask, 0.2)
    assert loss.item() == pytest.approx(-(1.2 - 1.6 + 0.5) / 3)
    assert clipfrac.item() == pytest.approx(2 / 3)


def test_grpo_loss_clips_per_token_and_adds_k3_by_hand():
    """Row 0 (A = 1): token ratios 1 and 1.5 (clipped to 1.2); pi_ref/pi = 2 on the first
    token, so k3 = 2 - log 2 - 1 there and 0 on the second. Row 1 (A = -1): ratio 1 on its
    one real token, k3 = 0; its padded token is ignored. Each row averages its own tokens."""
    new = torch.tensor([[-1.0, -1.0 + math.log(1.5)], [-1.0, 5.0]])
    old = torch.tensor([[-1.0, -1.0], [-1.0, -1.0]])
    ref = torch.tensor([[-1.0 + math.log(2.0), -1.0 + math.log(1.5)], [-1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss, clipfrac = group_policy_loss(new, old, ref, torch.tensor([1.0, -1.0]), mask, epsilon=0.2, beta=0.1)
    row0 = (-1.0 + 0.1 * (1 - math.log(2.0)) - 1.2) / 2
    assert loss.item() == pytest.approx((row0 + 1.0) / 2)
    assert clipfrac.item() == pytest.approx(1 / 3)


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_several_iterations_per_batch_take_that_many_clipped_updates(tok, method, monkeypatch):
    """num_iterations = 3 takes three optimiser steps per batch of rollouts, and the later
    ones see a ratio pi / pi_old away from 1, so some get clipped; with one update per batch
    (no dropout) the ratio is exactly 1 and nothing is clipped."""
    updates = []
    update = checkpoints.TrainingLoop.update
    monkeypatch.setattr(checkpoints.TrainingLoop, "update", lambda self, *a, **k: updates.append(1) or update(self, *a, **k))
    config = replace(TINY, steps=2, learning_rate=1e-2)
    once = train_group_policy(policy(), config, PROMPTS, tokenizer=tok, reward=words, method=method).history
    assert len(updates) == 2 and all(h["clipfrac"] == 0.0 for h in once)
    thrice = train_group_policy(policy(), replace(config, num_iterations=3), PROMPTS, tokenizer=tok, reward=words,
                                method=method).history
    assert len(updates) == 2 + 2 * 3
    assert len(thrice) == 2 and max(h["clipfrac"] for h in thrice) > 0


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("method", ["rloo", "grpo"])
def test_the_reward_goes_up(tok, method, seed):
    """Reward = minus the number of words: 15 steps of 16 rollouts (4 prompts x 4) shorten the
    responses by well over a word (about 3.5 on both seeds when this test was written)."""
    config = GroupConfig(steps=15, batch_size=16, num_generations=4, max_new_tokens=8, learning_rate=1e-3, seed=seed)
    scores = [h["score"] for h in train_group_policy(policy(), config, PROMPTS, tokenizer=tok, reward=brevity, method=method).history]
    assert np.mean(scores[-3:]) > scores[0] + 1.5


# ------------------------------------------------------------------ rollouts and their log-probabilities


def test_generate_rollouts_masks_and_pads_after_the_first_eos(tok):
    """response_mask is 1 up to and including the first EOS, 0 after; tokens after it are the
    pad id; `ended` says whether there was one; prompts are left-padded; the text is what
    sample_completions returns for the same seed."""
    torch.manual_seed(1)
    rollouts = generate_rollouts(policy(), tok, MIXED, max_new_tokens=8)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    assert 0 < rollouts.ended.sum() < len(MIXED)
    assert any(r.ended and r.response_mask.sum() < 8 for r in (rollouts.select([i]) for i in range(8)))  # padded tails exist
    for i, row in enumerate(rollouts.responses.tolist()):
        first = row.index(eos) if eos in row else None
        length = len(row) if first is None else first + 1
        assert rollouts.response_mask[i].tolist() == [1] * length + [0] * (len(row) - length)
        assert row[length:] == [pad] * (len(row) - length)
        assert bool(rollouts.ended[i]) == (first is not None)
    assert torch.equal(rollouts.attention_mask[:, rollouts.prompt_length:], rollouts.response_mask)
    prompt_ids = [tok(p)["input_ids"] for p in MIXED]
    for i, ids in enumerate(prompt_ids):
        left = rollouts.prompt_length - len(ids)
        assert rollouts.sequences[i, :rollouts.prompt_length].tolist() == [pad] * left + ids
        assert rollouts.attention_mask[i, :rollouts.prompt_length].tolist() == [0] * left + [1] * len(ids)
    assert rollouts.completions == sample_completions(policy(), tok, MIXED, max_new_tokens=8, seed=1)


def test_token_logprobs_sum_to_the_right_padded_sequence_logprob(tok):
    """Left-padded rollouts, positions counted per row: the masked sum of token_logprobs at
    T=1 equals sequence_logprobs of the decoded text (prompt and completion re-tokenised,
    EOS appended), for every response that ended; the zoo's word-level tokenizer round-trips."""
    model = policy().eval()
    torch.manual_seed(0)
    rollouts = generate_rollouts(model, tok, MIXED * 2, max_new_tokens=24)
    ended = rollouts.ended.nonzero().view(-1).tolist()
    assert len(ended) >= 12
    with torch.no_grad():
        sums = (token_logprobs(model, rollouts, 1.0) * rollouts.response_mask).sum(-1)
    prompts, completions = [rollouts.prompts[i] for i in ended], [rollouts.completions[i] for i in ended]
    for i, p, c in zip(ended, prompts, completions):  # the round trip
        ids, n = encode_completion(tok, p, c)
        assert ids[n:] == rollouts.responses[i, : int(rollouts.response_mask[i].sum())].tolist()
    torch.testing.assert_close(sums[ended], sequence_logprobs(model, tok, prompts, completions), rtol=0, atol=1e-4)


def test_token_logprobs_at_a_temperature_match_an_unpadded_forward(tok):
    """Sampled at T=0.7, each real token's log-prob is log_softmax(logits / 0.7) of a
    forward pass over that row alone, without padding."""
    model = policy().eval()
    torch.manual_seed(2)
    rollouts = generate_rollouts(model, tok, MIXED, max_new_tokens=8, temperature=0.7)
    with torch.no_grad():
        batched = token_logprobs(model, rollouts, 0.7)
        for i in range(len(MIXED)):
            prompt = tok(MIXED[i])["input_ids"]
            response = rollouts.responses[i, : int(rollouts.response_mask[i].sum())].tolist()
            logits = model(torch.tensor([prompt + response])).logits[0, len(prompt) - 1 : -1] / 0.7
            alone = torch.log_softmax(logits, -1).gather(-1, torch.tensor(response)[:, None]).squeeze(-1)
            torch.testing.assert_close(batched[i, : len(response)], alone, rtol=0, atol=1e-4)


# ------------------------------------------------------------------ RRHF and PRO


# one prompt, three responses: length-normalised log-probs p and rewards r
P, R = [[-1.0, -2.0, -0.5]], [[1.0, 3.0, 2.0]]


def test_rrhf_hand_computed():
    """Pairs with r_i < r_j: (0,1): max(0, -1+2) = 1; (0,2): max(0, -1+0.5) = 0; (2,1):
    max(0, -0.5+2) = 1.5. Rank term 2.5; the best response (r=3) has p=-2, so L = 2.5 + 2 w."""
    assert pl.rrhf_loss(t(P), t(R), sft_weight=1.0).item() == pytest.approx(4.5)
    assert pl.rrhf_loss(t(P), t(R), sft_weight=0.0).item() == pytest.approx(2.5)


def test_rrhf_rank_term_vanishes_when_likelihoods_are_ordered_like_rewards():
    ordered = t([[-3.0, -1.0, -2.0]])  # p_1 > p_2 > p_0, as r_1 > r_2 > r_0
    assert pl.rrhf_loss(ordered, t(R), sft_weight=0.0).item() == 0.0
    assert pl.rrhf_loss(ordered, t(R), sft_weight=0.5).item() == pytest.approx(0.5)
    logps = ordered.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(pl.rrhf_loss(logps, t(R), sft_weight=0.5).sum(), logps)
    torch.testing.assert_close(grad, t([[0.0, -0.5, 0.0]]))  # only the fine-tuning term pulls, on the best


def plackett_luce_nll(p, r):
    """-log P(ranking by r | scores p) = -sum_j log softmax(p_sorted[j:])[0], numpy, by hand."""
    order = np.argsort(-np.asarray(r))
    s = np.asarray(p)[order]
    return -sum(s[j] - np.log(np.exp(s[j:]).sum()) for j in range(len(s) - 1))


def test_pro_without_dynamic_temperature_is_the_plackett_luce_nll():
    """Order by reward: p = [-2, -0.5, -1]; L = -log(e^-2 / (e^-2 + e^-.5 + e^-1)) - log(e^-.5 / (e^-.5 + e^-1)) + 2 w."""
    by_hand = -(-2 - math.log(math.exp(-2) + math.exp(-0.5) + math.exp(-1))) - (-0.5 - math.log(math.exp(-0.5) + math.exp(-1)))
    assert plackett_luce_nll(P[0], R[0]) == pytest.approx(by_hand)
    loss = pl.pro_loss(t(P), t(R), sft_weight=0.1, dynamic_temperature=False)
    assert loss.item() == pytest.approx(by_hand + 0.1 * 2.0)
    gen = np.random.default_rng(0)
    p, r = gen.normal(size=(4, 5)), gen.normal(size=(4, 5))
    torch.testing.assert_close(pl.pro_loss(t(p), t(r), sft_weight=0.0, dynamic_temperature=False),
                               t([plackett_luce_nll(a, b) for a, b in zip(p, r)]))


def test_pro_dynamic_temperature_scales_by_the_reward_gaps():
    """Sorted r = [3, 2, 1], p = [-2, -0.5, -1]. Position 0: gaps [1, 2], so the logits are
    [-2 x max gap 2, -0.5 x 1, -1 x 2]; position 1: gap [1], logits [-0.5 x 1, -1 x 1]."""
    first = -4 - math.log(math.exp(-4) + math.exp(-0.5) + math.exp(-2))
    second = -0.5 - math.log(math.exp(-0.5) + math.exp(-1))
    assert pl.pro_loss(t(P), t(R), sft_weight=0.0).item() == pytest.approx(-first - second)


@pytest.mark.parametrize("rewards", [[[1.0, 1.0, 2.0]], [[2.0, 2.0, 1.0]], [[1.0, 1.0, 1.0]]])
def test_tied_rewards_give_finite_losses_and_gradients(rewards):
    logps = t(P).requires_grad_(True)
    for loss in (pl.rrhf_loss(logps, t(rewards)), pl.pro_loss(logps, t(rewards)),
                 pl.pro_loss(logps, t(rewards), dynamic_temperature=False)):
        (grad,) = torch.autograd.grad(loss.sum(), logps)
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    # a tie is not a preference: RRHF's hinge ignores the tied pair (0, 1)
    if rewards == [[1.0, 1.0, 2.0]]:
        assert pl.rrhf_loss(t(P), t(rewards), sft_weight=0.0).item() == pytest.approx(0.0)  # -1 < -0.5, -2 < -0.5


@pytest.mark.parametrize("logps, rewards", [
    ([-1.0, -2.0], [1.0, 2.0]),  # not (batch, k)
    ([[-1.0]], [[1.0]]),  # k = 1
    ([[-1.0, -2.0, -3.0]], [[1.0, 2.0]]),  # shapes differ
])
@pytest.mark.parametrize("loss", [pl.rrhf_loss, pl.pro_loss])
def test_ranking_losses_reject_bad_shapes(loss, logps, rewards):
    with pytest.raises(ValueError):
        loss(t(logps), t(rewards))


@pytest.fixture(scope="module")
def ranked_rows(tok):
    """8 prompts, 3 zoo completions each, scored by their number of words."""
    completions = sample_completions(policy(), tok, [p for p in PROMPTS[:8] for _ in range(3)], max_new_tokens=12, seed=0)
    rows = []
    for i, prompt in enumerate(PROMPTS[:8]):
        some = completions[3 * i : 3 * i + 3]
        rows.append({"prompt": prompt, "completions": some, "rewards": [float(len(c.split())) for c in some]})
    return rows


@pytest.mark.parametrize("loss", ["rrhf", "pro"])
def test_ranking_losses_train_on_ranked_rows(tok, ranked_rows, loss):
    """The same 8 rows each step: the loss falls."""
    config = PreferenceConfig(loss=loss, batch_size=8, epochs=1, min_steps=8, learning_rate=1e-3)
    history = train_preference(policy(), config, ranked_rows, tokenizer=tok).history
    assert len(history) == 8 and all(math.isfinite(h["loss"]) for h in history)
    assert history[-1]["loss"] < history[0]["loss"]


@pytest.mark.parametrize("change, message", [
    ({"completions": ["was good ."], "rewards": [1.0]}, "row 1: 'completions' must be a list of at least 2"),
    ({"rewards": [1.0, float("nan"), 2.0]}, "row 1: reward 1 must be a finite number"),
    ({"rewards": [1.0, 2.0]}, "row 1: 'rewards' must be a list with one number per completion"),
    ({"completions": ["was good .", " ", "was bad ."]}, "row 1: completion 1 must be a non-empty string"),
])
def test_a_bad_ranked_row_is_named(tok, ranked_rows, change, message):
    rows = [ranked_rows[0], {**ranked_rows[1], **change}, ranked_rows[2]]
    with pytest.raises(PreferenceDataError, match=message):
        train_preference(policy(), PreferenceConfig(loss="rrhf", batch_size=4), rows, tokenizer=tok)


def test_ranked_rows_must_share_their_number_of_completions(tok, ranked_rows):
    rows = [ranked_rows[0], {**ranked_rows[1], "completions": ["was good .", "was bad ."], "rewards": [1.0, 0.0]}]
    with pytest.raises(PreferenceDataError, match="row 1 has 2 completions, row 0 has 3"):
        train_preference(policy(), PreferenceConfig(loss="pro", batch_size=4), rows, tokenizer=tok)


# ------------------------------------------------------------------ best-of-n and over-optimisation


def test_best_of_n_kl_closed_form():
    assert best_of_n_kl(1) == 0.0
    for n in (2, 4, 16, 64):
        assert best_of_n_kl(n) == pytest.approx(math.log(n) - (n - 1) / n)
    with pytest.raises(ValueError, match="n must be >= 1"):
        best_of_n_kl(0)


@pytest.mark.parametrize("n", [2, 4, 16])
def test_best_of_n_kl_is_the_exact_kl_over_many_distinct_responses(n):
    """Best-of-n over M equally likely responses with distinct scores picks the one of rank i
    with probability (i/M)^n - ((i-1)/M)^n. Its exact KL to the uniform base approaches
    log n - (n-1)/n from below as M grows (within 1e-3 at M = 10000)."""
    previous = -np.inf
    for m in (100, 1000, 10_000):
        i = np.arange(1, m + 1)
        pmf = (i / m) ** n - ((i - 1) / m) ** n
        assert pmf.sum() == pytest.approx(1.0)
        exact = float(np.sum(pmf * np.log(pmf * m)))
        assert previous < exact <= best_of_n_kl(n) + 1e-12
        previous = exact
    assert exact == pytest.approx(best_of_n_kl(n), abs=1e-3)


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_fit_gao_recovers_noiseless_coefficients(form):
    kl = np.linspace(0.05, 12.0, 25)
    gain = gao_curve(np.sqrt(kl), 1.3, 0.4, form)
    fit = fit_gao(kl, gain, form)
    assert fit["alpha"] == pytest.approx(1.3, abs=1e-9) and fit["beta"] == pytest.approx(0.4, abs=1e-9)
    assert fit["r2"] == pytest.approx(1.0, abs=1e-12)
    assert fit["d_peak"] == pytest.approx(1.3 / (2 * 0.4) if form == "bon" else math.exp(1.3 / 0.4 - 1))
    d = np.linspace(0.01, 3 * fit["d_peak"], 2001)  # the peak is the curve's maximum
    assert d[np.argmax(gao_curve(d, fit["alpha"], fit["beta"], form))] == pytest.approx(fit["d_peak"], rel=1e-2)


def test_fit_gao_without_a_peak_and_bad_input():
    """A gain that only grows fits beta <= 0: the peak is at infinity."""
    kl = np.linspace(0.1, 4.0, 10)
    assert fit_gao(kl, 0.5 * np.sqrt(kl), "bon")["d_peak"] == math.inf
    with pytest.raises(ValueError, match="form"):
        fit_gao(kl, kl, "ppo")
    with pytest.raises(ValueError, match="same length"):
        fit_gao(kl, kl[:-1], "bon")


def test_best_of_n_sweep_on_the_zoo(tok):
    """8 prompts x 4 samples. The groups of n are nested halves of the groups of 2n, so the
    mean best proxy score cannot fall as n grows; n=1 is the plain mean; every point is the
    argmax-by-proxy of its group, recomputed here from the same seed's samples."""
    prompts = PROMPTS[:8]
    model = policy()
    points = best_of_n_sweep(model, tok, prompts, words, WORLD.gold_reward, [1, 2, 4], seed=0)
    assert [p["n"] for p in points] == [1, 2, 4]
    assert [p["kl"] for p in points] == [best_of_n_kl(n) for n in (1, 2, 4)]
    proxy = [p["proxy"] for p in points]
    assert proxy[0] <= proxy[1] <= proxy[2]
    completions = sample_completions(model, tok, [p for p in prompts for _ in range(4)], seed=0)
    scores = words(None, completions).reshape(8, 4)
    gold = WORLD.gold_reward([p for p in prompts for _ in range(4)], completions).reshape(8, 4)
    assert proxy[0] == pytest.approx(scores.mean()) and points[0]["gold"] == pytest.approx(gold.mean())
    pick = scores.argmax(1)
    assert proxy[2] == pytest.approx(scores.max(1).mean())
    assert points[2]["gold"] == pytest.approx(gold[np.arange(8), pick].mean())


@pytest.mark.parametrize("ns", [[1, 3, 4], [0, 2], [1, 2.0]])
def test_best_of_n_sweep_needs_divisors_of_the_largest_n(tok, ns):
    with pytest.raises(ValueError, match="divisor"):
        best_of_n_sweep(policy(), tok, PROMPTS[:2], words, words, ns)


def test_masked_whiten_divides_by_the_population_std():
    """Real entries [1, 2, 3, 6]: mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5 (not the
    unbiased 14 / 3); the padded 100 is ignored and comes back 0."""
    from survey_lib.group_losses import masked_whiten

    x, mask = torch.tensor([[1.0, 2.0, 3.0], [6.0, 100.0, 100.0]]), torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    white = (torch.tensor([[-2.0, -1.0, 0.0], [3.0, 0.0, 0.0]]) / math.sqrt(3.5 + 1e-8)) * mask
    torch.testing.assert_close(masked_whiten(x, mask), white)
    torch.testing.assert_close(masked_whiten(x, mask, shift_mean=False), (white + 3.0) * mask)
