"""The small profile's measured effects on the real model (issue 14), at test sizes.

SmolLM2-135M-Instruct answers review requests, scored by the review world's gold (VADER
sentiment, length, termination, guards). On held-out prompts:

- DPO on 64 pairs, the best and the worst by the gold of four SFT answers to each training
  prompt (the DPO paper's IMDb setup labels its pairs with the ground-truth classifier,
  2305.18290 section 6.1), raises the gold of fresh samples over the SFT policy's, at 95% (as
  below). Measured: +0.30 [0.12, 0.46] on seed 0 and +0.24 [0.09, 0.37] on seed 7 (a first
  version of this test), +0.31 [0.18, 0.44] in this test on seed 0;
- an online method, ten RLOO steps of 32 responses with the gold as its reward, raises the
  gold of fresh samples over the SFT policy's, at 95% (a bootstrap interval over the prompts
  of the paired difference). Measured: +0.38 [0.24, 0.52] on seed 0 and +0.38 [0.22, 0.52]
  on seed 7 (bf16 autocast, 96 prompts, sampled separately from this test), and +0.69
  [0.52, 0.85] and +0.82 [0.67, 0.97] in two runs of this test on seed 0 (sampling on a CPU
  is not bitwise repeatable across runs); mostly by learning to end a review within the limit.

What these sizes do not show, and this suite therefore does not claim:

- A reward model (LoRA on the last 8 blocks, a scalar head) fitted to 96 pairs labelled by
  the simulated annotators did not reliably rank 96 held-out pairs as the gold does: 0.64
  [0.55, 0.73] and 0.63 [0.53, 0.72] on two draws of float32 samples, but 0.48 [0.39, 0.58]
  on seed 0's bf16 samples (the same with a float32 reward model on those pairs), and 0.54
  [0.45, 0.65] with 192 training pairs.
- DPO on 96 annotator-labelled pairs (QLoRA, two epochs, 400 s) fits them (loss 0.69 -> 0.34) but its
  implicit reward, beta * log pi / pi_ref, orders held-out pairs no better than chance (0.52
  [0.39, 0.63] on seed 0), and DPO on 32 pairs did not raise the sampled gold beyond noise
  (+0.11 [-0.07, 0.30]); five RLOO steps did not either (+0.06 [-0.13, 0.25]).

The training machinery on SmolLM2 (LoRA and QLoRA, adapters only) is covered by
`test_small_profile`. `SURVEY_SMALL_SEED` picks the seed (default 0), to check the bands on
seeds not looked at.
"""
import os

import numpy as np
import pytest

from survey_lib.generation import sample_completions
from survey_lib.online_rl import GroupConfig, train_group_policy
from survey_lib.preference_config import PreferenceConfig
from survey_lib.preference_data import candidate_pairs, candidate_rows, sample_candidates
from survey_lib.preference_training import train_preference
from survey_lib.profiles import get_profile
from survey_lib.stats import difference_interval

from smollm2_guard import require_converted_smollm2

SMALL = get_profile("small")
SEED = int(os.environ.get("SURVEY_SMALL_SEED", "0"))
HELD_OUT_PROMPTS = 96
DPO_PROMPTS, CANDIDATES = 64, 4

require_converted_smollm2()

pytestmark = pytest.mark.small


def held_out_gold(world, policy, tokenizer):
    """(held-out prompts, the gold of one fresh answer to each), sampled with seed + 1."""
    prompts = [world.eval_prompts[i % len(world.eval_prompts)] for i in range(HELD_OUT_PROMPTS)]
    return prompts, world.gold_reward(prompts, sample_completions(policy, tokenizer, prompts, seed=SEED + 1))


@pytest.fixture(scope="module")
def sft_gold():
    """The held-out prompts and the gold of the SFT policy's answers to them."""
    policy, tokenizer = SMALL.load("text")
    return held_out_gold(SMALL.world(SEED), policy, tokenizer)


def gain_over_sft(world, policy, tokenizer, sft_gold, method: str) -> dict:
    prompts, before = sft_gold
    _, after = held_out_gold(world, policy, tokenizer)
    gain = difference_interval(after, before, paired=True)
    print(f"\nsmall, seed {SEED}: gold of {method} minus SFT on {len(prompts)} held-out prompts {gain}")
    return gain


def test_dpo_on_best_and_worst_of_four_raises_the_gold_of_fresh_samples_over_the_sft_policy(sft_gold):
    world = SMALL.world(SEED)
    policy, tokenizer = SMALL.load("text")
    rng = np.random.default_rng(SEED)
    prompts = [world.prompts[i] for i in rng.choice(len(world.prompts), DPO_PROMPTS, replace=False)]
    candidates = sample_candidates(policy, tokenizer, prompts, CANDIDATES, seed=SEED)
    scored = candidate_rows(prompts, candidates, world.gold_reward([p for p in prompts for _ in range(CANDIDATES)], candidates))
    pairs = candidate_pairs(scored, [(int(np.argmax(r["rewards"])), int(np.argmin(r["rewards"]))) for r in scored])
    pairs = pairs.select(np.flatnonzero(pairs.gold_gap(world)))
    rows, _ = pairs.gold_rows(world)
    config = PreferenceConfig(loss="dpo", beta=0.1, learning_rate=5e-4, epochs=2, batch_size=8, seed=SEED)
    train_preference(policy, config, rows, tokenizer=tokenizer)
    assert gain_over_sft(world, policy, tokenizer, sft_gold, "DPO")["low"] > 0


def test_rloo_on_the_gold_raises_the_gold_of_fresh_samples_over_the_sft_policy(sft_gold):
    world = SMALL.world(SEED)
    policy, tokenizer = SMALL.load("text")
    config = GroupConfig(learning_rate=3e-3, steps=10, batch_size=32, num_generations=4, beta=0.05, seed=SEED)
    train_group_policy(policy, config, list(world.prompts), tokenizer=tokenizer, reward=world.gold_reward, method="rloo")
    assert gain_over_sft(world, policy, tokenizer, sft_gold, "RLOO")["low"] > 0
