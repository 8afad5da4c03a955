"""The small profile's measured effects on the real model (issue 14), at test sizes.

SmolLM2-135M-Instruct answers review requests, scored by the review world's gold (VADER
sentiment, length, termination, guards). Training pairs are the best and the worst by the
gold of four SFT answers to each of 64 training prompts (the DPO paper's IMDb setup labels
its pairs with the ground-truth classifier, 2305.18290 section 6.1). On 96 held-out prompts,
each with four fresh SFT answers:

- a reward model (LoRA on the last 8 blocks, a scalar head; two epochs at lr 1.5e-3) fitted to
  the 64 training pairs orders the held-out best-and-worst pairs as the gold does, above chance
  at 95% (a bootstrap interval over the pairs). Measured: 0.64 [0.53, 0.73] on seed 0; on seeds
  not looked at before, 0.67 [0.57, 0.76] on seed 47 and 0.71 [0.61, 0.80] on seed 61; three epochs at lr 1e-3 had read 0.64 [0.54,
  0.73] on seed 0. On 64
  held-out prompts instead of 96 it read 0.61 [0.50, 0.73] on seed 0 (two or three epochs
  alike): too few pairs to show it. While choosing the protocol, on other draws of seed 0's
  samples, 0.77 on 64 held-out best-and-worst pairs and 0.64 on all 384 within-prompt pairs;
  a linear probe on the frozen model's last hidden state reaches 0.62-0.70, so the model's
  features, not the training, bound it;
- DPO on the same pairs, two epochs (16 steps of 8 at lr 1e-3, beta 0.1), raises the gold of
  fresh samples over the SFT policy's, at 95% (a bootstrap interval over the prompts of the
  difference to the mean gold of the prompt's SFT answers). Measured: +0.51 [0.37, 0.65] on seed
  0; on seeds not looked at before, +0.39 [0.27, 0.51] on seed 47 and +0.55 [0.43, 0.67] on seed 61; +0.52 [0.36, 0.68] on seed 0 with 64
  held-out prompts while choosing these sizes, where
  four epochs at lr 5e-4 read +0.78 [0.62, 0.95]. Two epochs at lr 5e-4 were not enough:
  +0.06 [-0.07, 0.20] on seed 0, +0.08 [-0.05, 0.21] on seed 7, +0.20 [0.06, 0.33] on seed 11;
- an online method, ten RLOO steps of 16 responses with the gold as its reward, on QLoRA (a
  4-bit NF4 base, frozen, and LoRA adapters, the only trainable weights), does too. Measured:
  +0.56 [0.39, 0.71] on seed 0; on seeds not looked at before, +0.45 [0.33, 0.58] on seed
  47 and +0.30 [0.18, 0.43] on seed 61; +0.61 [0.45, 0.78] on seed 0 with 64
  held-out prompts, and +0.29 [0.14, 0.44] there after six steps. Ten steps of 32 responses
  had read +0.62 [0.48, 0.76] on seed 0 and +0.62 [0.48, 0.74] on seed 31; on the fp32 base
  +0.66 [0.53, 0.79] on seed 0; mostly by learning to end a review within the limit.

Sampling (0.3-0.45 s an answer on 2 cores, whatever the batch) and the three trainings
(0.5 s a sequence for a LoRA step) are the time: the module took 11 min 24 s on seed 0 and 11 min 53 s
on seed 47 (held-out and training samples 200 s, RLOO 245-276 s, DPO 156-162 s, the reward
model 67-74 s), down
from about 16 at the earlier sizes (four DPO epochs, three RM epochs, RLOO steps of 32). The
issue's budget for all small tests is 6 minutes: these three claims, at 95%, do not fit it
on this machine.

What these sizes do not show, and this suite therefore does not claim:

- A reward model fitted to 96 random pairs labelled by the simulated annotators (lr 3e-3) did
  not reliably rank held-out random pairs as the gold does: 0.64 [0.55, 0.73] and 0.63 [0.53,
  0.72] on two draws, 0.48 [0.39, 0.58] on a third, 0.54 [0.45, 0.65] with 192 pairs. At lr
  1e-4 even the gold-labelled pairs above were not fitted (training accuracy 0.67).
- DPO on 96 annotator-labelled pairs (QLoRA, two epochs, 400 s) fits them (loss 0.69 -> 0.34) but its
  implicit reward, beta * log pi / pi_ref, orders held-out pairs no better than chance (0.52
  [0.39, 0.63] on seed 0), and DPO on 32 pairs did not raise the sampled gold beyond noise
  (+0.11 [-0.07, 0.30]); five RLOO steps did not either (+0.06 [-0.13, 0.25]).

The training machinery on SmolLM2 (LoRA and QLoRA, adapters only) is covered by
`test_small_profile`. `SURVEY_SMALL_SEED` picks the seed (default 0), to check the bands on
seeds not looked at.
"""
import os

import bitsandbytes as bnb
import numpy as np
import pytest
import torch

from survey_lib.generation import sample_completions
from survey_lib.online_rl import GroupConfig, train_group_policy
from survey_lib.preference_config import PreferenceConfig
from survey_lib.preference_data import preference_row, sample_candidates
from survey_lib.preference_training import train_preference
from survey_lib.profiles import get_profile
from survey_lib.reward_models import RewardConfig, train_reward_model
from survey_lib.stats import difference_interval, mean_interval

from smollm2_guard import require_converted_smollm2

SMALL = get_profile("small")
SEED = int(os.environ.get("SURVEY_SMALL_SEED", "0"))
HELD_OUT_PROMPTS, TRAINING_PROMPTS, ANSWERS = 96, 64, 4

require_converted_smollm2()

pytestmark = pytest.mark.small


def answers_and_gold(world, policy, tokenizer, prompts: list, k: int, seed: int, *, redraw_empty: bool = False):
    """k answers to each prompt (prompt after prompt) and their gold, shape (len(prompts), k).
    Measured answers are sampled as the policy samples, empty ones included; training pairs
    redraw empty answers (`sample_candidates`), since a preference row cannot hold one."""
    repeated = [p for p in prompts for _ in range(k)]
    answers = (sample_candidates(policy, tokenizer, prompts, k, seed=seed) if redraw_empty
               else sample_completions(policy, tokenizer, repeated, seed=seed))
    return answers, world.gold_reward(repeated, answers).reshape(len(prompts), k)


def best_and_worst(prompts: list, answers: list[str], gold: np.ndarray) -> tuple[list, list, list]:
    """(prompts, best answers, worst answers) by the gold; prompts whose answers all tie, or
    whose best or worst is empty, are left out."""
    k = gold.shape[1]
    best = [answers[i * k + int(gold[i].argmax())] for i in range(len(prompts))]
    worst = [answers[i * k + int(gold[i].argmin())] for i in range(len(prompts))]
    keep = [i for i in range(len(prompts)) if gold[i].max() > gold[i].min() and best[i].strip() and worst[i].strip()]
    return [prompts[i] for i in keep], [best[i] for i in keep], [worst[i] for i in keep]


@pytest.fixture(scope="module")
def held_out():
    """Held-out prompts, four SFT answers to each, sampled with seed + 1, and their gold."""
    world = SMALL.world(SEED)
    policy, tokenizer = SMALL.load("text")
    prompts = [world.eval_prompts[i % len(world.eval_prompts)] for i in range(HELD_OUT_PROMPTS)]
    return (prompts, *answers_and_gold(world, policy, tokenizer, prompts, ANSWERS, SEED + 1))


@pytest.fixture(scope="module")
def training_rows():
    """Preference rows: the gold's best over its worst of four SFT answers to each training prompt."""
    world = SMALL.world(SEED)
    policy, tokenizer = SMALL.load("text")
    rng = np.random.default_rng(SEED)
    prompts = [world.prompts[i] for i in rng.choice(len(world.prompts), TRAINING_PROMPTS, replace=False)]
    return [preference_row(*row) for row in zip(*best_and_worst(prompts, *answers_and_gold(world, policy, tokenizer, prompts, ANSWERS, SEED, redraw_empty=True)))]


def gain_over_sft(world, policy, tokenizer, held_out, method: str) -> dict:
    """The gold of one fresh answer per held-out prompt minus the mean gold of its SFT answers."""
    prompts, _, sft_gold = held_out
    _, after = answers_and_gold(world, policy, tokenizer, prompts, 1, SEED + 2)
    gain = difference_interval(after[:, 0], sft_gold.mean(1), paired=True)
    print(f"\nsmall, seed {SEED}: gold of {method} minus SFT on {len(prompts)} held-out prompts {gain}")
    return gain


def test_a_reward_model_on_gold_labelled_pairs_orders_held_out_pairs_as_the_gold_does(training_rows, held_out):
    torch.manual_seed(SEED)
    model, tokenizer = SMALL.load("text", head="reward")
    config = RewardConfig(learning_rate=1.5e-3, epochs=2, batch_size=16, seed=SEED)
    reward_model = train_reward_model(model, config, training_rows, tokenizer=tokenizer)
    prompts, best, worst = best_and_worst(*held_out)
    agree = reward_model.score(prompts, best) > reward_model.score(prompts, worst)
    accuracy = mean_interval(agree.astype(float))
    print(f"\nsmall, seed {SEED}: reward-model accuracy on {len(prompts)} held-out best-and-worst pairs {accuracy}")
    assert accuracy["low"] > 0.5


def test_dpo_on_best_and_worst_of_four_raises_the_gold_of_fresh_samples_over_the_sft_policy(training_rows, held_out):
    world = SMALL.world(SEED)
    policy, tokenizer = SMALL.load("text")
    config = PreferenceConfig(loss="dpo", beta=0.1, learning_rate=1e-3, epochs=2, batch_size=8, seed=SEED)
    train_preference(policy, config, training_rows, tokenizer=tokenizer)
    assert gain_over_sft(world, policy, tokenizer, held_out, "DPO")["low"] > 0


def test_rloo_with_qlora_on_the_gold_trains_only_adapters_and_raises_the_gold_of_fresh_samples(held_out):
    world = SMALL.world(SEED)
    policy, tokenizer = SMALL.load("text", quantization="nf4")
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}
    assert all("lora_" in n for n, p in policy.named_parameters() if p.requires_grad)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in policy.modules())  # a 4-bit NF4 base
    config = GroupConfig(learning_rate=3e-3, steps=10, batch_size=16, num_generations=4, beta=0.05, seed=SEED)
    train_group_policy(policy, config, list(world.prompts), tokenizer=tokenizer, reward=world.gold_reward, method="rloo")
    assert all(torch.equal(frozen[n], p) for n, p in policy.named_parameters() if n in frozen)
    assert gain_over_sft(world, policy, tokenizer, held_out, "RLOO (QLoRA)")["low"] > 0
