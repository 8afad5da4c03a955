"""The small profile end to end on the real model (issue 14): SmolLM2-135M-Instruct, converted
from its PyPI GGUF by `make small-model`, answers the review world's conversational prompts
in English, and the reward-model and preference trainers take LoRA and QLoRA steps on it
through the chat template, and the chapters sized for `small` run within their bands.

The measured effects at test sizes are in `test_small_effects.py`.
"""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from survey_lib import smollm2
from survey_lib.generation import sample_completions
from survey_lib.models import load_model
from survey_lib.preference_config import PreferenceConfig
from survey_lib.preference_data import ResponsePairs
from survey_lib.preference_training import train_preference
from survey_lib.profiles import get_profile
from survey_lib.reward_models import RewardConfig, train_reward_model
from survey_lib.sizes import chapters_on
from survey_lib.sequences import encode_completion
from survey_lib.world.annotators import AnnotatorConfig, SimulatedAnnotators

from smollm2_guard import require_converted_smollm2
from test_chapters import CHECKS, run_chapter

SMALL = get_profile("small")

require_converted_smollm2()

pytestmark = pytest.mark.small


@pytest.fixture(scope="module")
def world():
    return SMALL.world(0)


@pytest.fixture(scope="module")
def samples(world):
    """Two answers to each of four evaluation prompts, sampled from the instruct model."""
    model, tokenizer = SMALL.load("text")
    prompts = [p for p in world.eval_prompts[:4] for _ in range(2)]
    completions = sample_completions(model, tokenizer, prompts, max_new_tokens=48, seed=0)
    return prompts, completions


def trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_smollm2_answers_review_requests_in_english(world, samples):
    prompts, completions = samples
    parts = world.gold.components(prompts, completions)
    assert parts["clean"].mean() > 0.85, completions  # words, not symbols
    assert parts["n_words"].min() >= 5, completions
    assert np.isfinite(world.gold_reward(prompts, completions)).all()


def test_a_sampled_answer_is_the_assistants_turn_ending_at_its_end_of_sequence(world, samples):
    _, tokenizer = SMALL.load("text")
    prompt, completion = world.eval_prompts[0], samples[1][0]
    ids, n_prompt = encode_completion(tokenizer, prompt, completion)
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.eos_token_id not in ids[n_prompt:-1]
    assert tokenizer.decode(ids[n_prompt:], skip_special_tokens=True).strip() == completion.strip()


@pytest.mark.parametrize("quantization", ["none", "nf4"])
def test_reward_model_and_dpo_take_lora_steps_through_the_chat_template(world, samples, quantization):
    prompts, completions = samples
    pairs = ResponsePairs(prompts[::2], completions[::2], completions[1::2])
    rows = pairs.label(SimulatedAnnotators(world, AnnotatorConfig(seed=0)))
    assert isinstance(rows[0]["chosen"], list) and rows[0]["chosen"][0]["role"] == "assistant"
    settings = replace(SMALL.settings, quantization=quantization)

    torch.manual_seed(0)
    rm_model, rm_tokenizer = load_model(smollm2.NAME, settings, head="reward")
    before = trainable(rm_model)
    assert before and all("lora_" in n or "score" in n for n in before)  # adapters and the head only
    reward = train_reward_model(rm_model, RewardConfig(epochs=1, batch_size=2, learning_rate=1e-3), rows, tokenizer=rm_tokenizer)
    assert all(math.isfinite(h["loss"]) for h in reward.history)
    assert any(not torch.equal(before[n], p) for n, p in trainable(rm_model).items())

    policy, tokenizer = load_model(smollm2.NAME, settings)
    history = train_preference(policy, PreferenceConfig(loss="dpo", epochs=1, batch_size=2, learning_rate=1e-4), rows,
                               tokenizer=tokenizer).history
    assert history and all(math.isfinite(h["loss"]) for h in history)
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)  # the policy starts as its own reference


@pytest.mark.parametrize("slug", chapters_on("small", sorted(CHECKS)))
def test_chapters_sized_for_small_run_on_smollm2_within_their_bands_and_budget(slug, tmp_path):
    """Issue 14's budget for a chapter on small: 10 minutes, 4 GB peak RSS; its tiny bands
    hold wherever its headline does not depend on the world (chapter 01's exact parts)."""
    record, _ = run_chapter(slug, tmp_path, "profile=small")  # run_chapter's timeout is the 10 minutes
    assert record["parameters"]["profile"] == "small"
    CHECKS[slug][0](record["headline"])
    assert record["peak_rss_mb"] <= 4096, f"{slug} peaked at {record['peak_rss_mb']} MB on small"
