"""Signals that carry no information must not crash a chapter (issue 13): a reward that scores
every response the same, annotators whose labels are coin flips, a best-of-n pool where every
candidate ties. Each trainer or evaluator meets them with finite numbers, and where the signal
says nothing, it learns nothing."""
import math

import numpy as np
import pytest
import torch

from survey_lib.models import load_model
from survey_lib.online_rl import GroupConfig, train_group_policy
from survey_lib.overoptimization import best_of_n_sweep
from survey_lib.ppo import PPOConfig, train_ppo
from survey_lib.preference_data import sample_response_pairs
from survey_lib.reward_bench import pair_confidence
from survey_lib.reward_models import RewardConfig, train_reward_model
from survey_lib.world.annotators import AnnotatorConfig, SimulatedAnnotators

pytestmark = pytest.mark.usefixtures("one_thread")


def constant(prompts, completions):
    return np.full(len(completions), 0.7)


def parameters(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("method", ["rloo", "grpo"])
def test_a_constant_reward_gives_zero_advantages_and_leaves_the_policy_alone(world, tok, method):
    """Every response scores the same: RLOO's leave-one-out baseline and GRPO's group mean both
    equal the reward, so every advantage is 0 (GRPO's std of 0 is guarded, not divided by).
    With beta = 0 there is nothing else in the loss, and the policy does not move."""
    model = load_model("tiny-text-lm")[0]
    before = parameters(model)
    config = GroupConfig(steps=2, batch_size=8, num_generations=4, max_new_tokens=8, beta=0.0)
    history = train_group_policy(model, config, list(world.prompts), tokenizer=tok, reward=constant, method=method).history
    assert all(math.isfinite(h[k]) for h in history for k in ("score", "loss", "kl"))
    assert all(h["loss"] == 0.0 for h in history)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_ppo_on_a_constant_reward_trains_with_finite_losses(world, tok):
    """PPO's per-token KL penalty still varies when the score does not, and whitening a batch
    of equal advantages divides by a guarded std: every logged number stays finite."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        critic = load_model("tiny-text-lm", head="value")[0]
    config = PPOConfig(steps=2, batch_size=8, num_mini_batches=2, max_new_tokens=8, whiten_rewards=True)
    history = train_ppo(load_model("tiny-text-lm")[0], config, list(world.prompts), tokenizer=tok, reward=constant,
                        critic=critic).history
    assert all(math.isfinite(h[k]) for h in history for k in ("pg_loss", "vf_loss", "kl", "score"))


def test_annotators_who_agree_on_nothing_give_a_reward_model_at_chance(world, tok):
    """flip_rate = 0.5: every label is a coin flip, whatever the responses. The labels are
    still valid rows, the reward model trains on them with finite losses, and its accuracy
    against gold on held-out pairs is chance, within the evaluation's noise (600 pairs: the
    standard error of a coin's accuracy is 0.02)."""
    model, _ = load_model("tiny-text-lm")
    pairs = sample_response_pairs(model, tok, world, 400, seed=0)
    held_out = sample_response_pairs(model, tok, world, 600, seed=1)
    coin = SimulatedAnnotators(world, AnnotatorConfig(flip_rate=0.5, seed=0))
    rows = pairs.label(coin)
    torch.manual_seed(0)
    rm_model, rm_tok = load_model("tiny-text-lm", head="reward")
    rm = train_reward_model(rm_model, RewardConfig(min_steps=50), rows, tokenizer=rm_tok)
    assert all(math.isfinite(h["loss"]) for h in rm.history)
    gold_rows, _ = held_out.select(np.flatnonzero(held_out.gold_gap(world) != 0)).gold_rows(world)
    accuracy = pair_confidence(rm, gold_rows)[1].mean()
    assert abs(accuracy - 0.5) < 0.1


def test_best_of_n_with_a_constant_proxy_runs_on_ties(world, tok):
    """A proxy that scores every candidate the same leaves best-of-n a choice among ties: it
    still returns a point per n, with the proxy's value and a finite gold reward."""
    model, _ = load_model("tiny-text-lm")
    points = best_of_n_sweep(model, tok, list(world.prompts)[:8], constant, world.gold_reward, [1, 2, 4], seed=0)
    assert [p["n"] for p in points] == [1, 2, 4]
    assert all(p["proxy"] == pytest.approx(0.7) and math.isfinite(p["gold"]) for p in points)
