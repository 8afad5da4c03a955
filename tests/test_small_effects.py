"""The small profile's measured effects on the real model (issue 14), at test sizes.

SmolLM2-135M-Instruct answers review requests; simulated annotators label pairs of its
answers by the review world's gold (VADER sentiment, length, termination, guards). On pairs
held out from training, scored by the gold itself:

a reward model (LoRA on the last blocks, a scalar head) fitted to the annotators' labels
ranks the pairs as the gold does, above chance at 95% (a bootstrap interval over the pairs).

What these sizes do not show, and this suite therefore does not claim: DPO on the same 96
pairs (QLoRA, two epochs, 400 s) fits them (loss 0.69 -> 0.34) but its implicit reward,
beta * log pi / pi_ref, orders held-out pairs no better than chance (0.52 [0.39, 0.63] on
seed 0), and neither DPO on 32 pairs nor five RLOO steps on the gold itself raised the
sampled gold beyond noise (+0.11 [-0.07, 0.30] and +0.06 [-0.13, 0.25]). The training
machinery on SmolLM2 (LoRA and QLoRA, adapters only) is covered by `test_small_profile`.

`SURVEY_SMALL_SEED` picks the seed (default 0), to check the bands on seeds not looked at.
"""
import os

import numpy as np
import pytest
import torch

from survey_lib.generation import sample_completions
from survey_lib.preference_data import sample_response_pairs
from survey_lib.profiles import get_profile
from survey_lib.reward_models import RewardConfig, train_reward_model
from survey_lib.stats import mean_interval
from survey_lib.world.annotators import AnnotatorConfig, SimulatedAnnotators

from smollm2_guard import require_converted_smollm2

SMALL = get_profile("small")
SEED = int(os.environ.get("SURVEY_SMALL_SEED", "0"))
TRAIN_PAIRS = 96
HELD_OUT_PROMPTS = 96

require_converted_smollm2()

pytestmark = pytest.mark.small


@pytest.fixture(scope="module")
def data():
    """Annotator-labelled training pairs from the SFT policy, and held-out pairs on the
    evaluation prompts with the gold's verdict (pairs the gold scores equal are dropped)."""
    world = SMALL.world(SEED)
    sft, tokenizer = SMALL.load("text")
    pairs = sample_response_pairs(sft, tokenizer, world, TRAIN_PAIRS, seed=SEED)
    rows = pairs.label(SimulatedAnnotators(world, AnnotatorConfig(seed=SEED)))
    prompts = [world.eval_prompts[i % len(world.eval_prompts)] for i in range(HELD_OUT_PROMPTS)]
    answers = sample_completions(sft, tokenizer, prompts * 2, seed=SEED + 1)
    first, second = answers[:HELD_OUT_PROMPTS], answers[HELD_OUT_PROMPTS:]
    gold_first, gold_second = world.gold_reward(prompts, first), world.gold_reward(prompts, second)
    keep = np.flatnonzero(gold_first != gold_second)
    held_out = {"prompts": [prompts[i] for i in keep], "first": [first[i] for i in keep],
                "second": [second[i] for i in keep], "first_wins": gold_first[keep] > gold_second[keep]}
    return rows, held_out


def agreement(scores_first, scores_second, held_out) -> dict:
    """The fraction of held-out pairs a score orders as the gold does, with its interval."""
    agree = (np.asarray(scores_first) > np.asarray(scores_second)) == held_out["first_wins"]
    return mean_interval(agree.astype(float))


def test_a_reward_model_on_annotator_labels_ranks_held_out_pairs_as_the_gold_does(data):
    rows, held_out = data
    torch.manual_seed(SEED)
    model, tokenizer = SMALL.load("text", head="reward")
    reward = train_reward_model(model, RewardConfig(epochs=2, batch_size=8, learning_rate=3e-3, seed=SEED), rows,
                                tokenizer=tokenizer)
    accuracy = agreement(reward.score(held_out["prompts"], held_out["first"]),
                         reward.score(held_out["prompts"], held_out["second"]), held_out)
    print(f"\nsmall, seed {SEED}: reward-model accuracy on {len(held_out['prompts'])} held-out gold pairs {accuracy}")
    assert accuracy["low"] > 0.5
