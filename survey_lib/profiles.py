"""Profiles: one chapter, four scales; its code is the same on each, only its `profile`
parameter changes.

Defined for the foundation; every chapter's parameters cell names a profile and reads its
models and its world from it:

| profile | where            | models (policy; judge)                       | precision                    | world (prompts; gold)                                   | verifiable task | response limit |
|---------|------------------|----------------------------------------------|------------------------------|---------------------------------------------------------|-----------------|----------------|
| tiny    | CPU, Binder, CI  | the zoo (`survey_lib.zoo`)                   | fp32, full fine-tuning       | the review grammar; its programmatic gold (`TextWorld`)  | additions, worked | 24 tokens    |
| small   | any CPU, offline | SmolLM2-135M-Instruct (`survey_lib.smollm2`) | fp32 (bf16 autocast where the CPU has it), LoRA on the last 8 blocks | 320 review requests; VADER sentiment with guards      | none yet        | 48 tokens      |
| colab   | a T4 (16 GB)     | Qwen2.5-0.5B-Instruct; Qwen2.5-1.5B-Instruct | QLoRA, fp16 compute          | UltraFeedback prompts; Skywork-Reward-V2-Qwen3-0.6B     | GSM8K           | 256 tokens     |
| gpu     | an A100 / H100   | Qwen2.5-7B-Instruct (both)                   | QLoRA, bf16 compute          | UltraFeedback prompts; Skywork-Reward-V2-Llama-3.1-8B   | GSM8K           | 512 tokens     |

(A T4 has no bf16, hence fp16 compute on `colab`.) The gold of the Hub profiles is a reward
model the policy never sees, as in Gao et al.'s synthetic-gold setup (arXiv 2210.10760).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import smollm2
from ._checks import check_choice
from .generation import DEFAULT_MAX_NEW_TOKENS
from .judges import LLMJudge
from .models import LoraSettings, ModelSettings, cpu_has_fast_bf16, load_model
from .world.column_addition import ColumnAdditionTask
from .world.chat import ChatWorld
from .world.gsm8k import GSM8K, GSM8KTask
from .world.reviews import REVIEW_PROMPTS, ReviewGold
from .world.text import TextWorld

ULTRAFEEDBACK_PROMPTS = "trl-lib/ultrafeedback-prompt"


@dataclass(frozen=True)
class Profile:
    """Which models a chapter loads, and how."""

    name: str
    text_model: str
    """The policy for the text world: a zoo name or a Hub id."""
    reasoning_model: str
    """The policy for the verifiable task (chapter 09): tiny's writes its work column by column."""
    settings: ModelSettings
    """Precision, quantisation and adapters."""
    description: str
    judge_model: str = "tiny-judge-lm"
    """The AI labeler of chapter 05: the zoo judge, or a Hub instruct model."""
    prompts: str | None = None
    """The world's prompt set (see `world.chat.load_prompts`); None: the tiny grammar world."""
    gold: str | None = None
    """The world's gold reward model (a Hub id or directory); None with `prompts`: `ReviewGold`."""
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    """The response limit of the policies this profile loads (their `generation_config`)."""
    verifiable: str | None = "columns"
    """The verifiable task: "columns" (additions with written work, `world.column_addition`),
    a GSM8K source (`world.gsm8k`), or None."""
    reasoning_base_model: str | None = "tiny-columns-base-lm"
    """A base model never fine-tuned on the task's format, for R1-Zero (chapter 09); None: none."""
    reasoning_max_new_tokens: int | None = None
    """The reasoning policies' response limit; None: the model's own (the zoo's written work
    needs up to 59 characters, more than the text world's 24 tokens)."""

    def world(self, seed: int = 0):
        """The world this profile's chapters measure in (`survey_lib.world.World`): the tiny
        grammar world, or a `ChatWorld` of real prompts scored by a gold reward."""
        if self.prompts is None:
            return TextWorld(seed=seed)
        gold = ReviewGold() if self.gold is None else self.gold
        return ChatWorld.from_sources(self.prompts, gold, seed=seed, settings=self.settings)

    def verifiable_task(self, split: str = "test"):
        """The task with an exact checker (`verify(prompts, completions)`) for RL with
        verifiable rewards: the tiny profile's written additions, or GSM8K on the Hub profiles."""
        if self.verifiable is None:
            raise ValueError(f"the {self.name} profile has no verifiable task yet; use the tiny profile's "
                             "written additions or a Hub profile's GSM8K")
        if self.verifiable == "columns":
            return ColumnAdditionTask()
        return GSM8KTask.from_source(self.verifiable, split=split)

    def load(self, which: str = "text", **changes):
        """(model, tokenizer) for the "text" or "reasoning" policy, the "reasoning-base" model
        (R1-Zero's start) or the "judge", under this profile."""
        models = {"text": self.text_model, "reasoning": self.reasoning_model,
                  "reasoning-base": self.reasoning_base_model, "judge": self.judge_model}
        check_choice("which", which, models)
        if models[which] is None:
            raise ValueError(f"the {self.name} profile has no {which} model")
        model, tokenizer = load_model(models[which], self.settings, **changes)
        if changes.get("head", "causal-lm") == "causal-lm":
            if not which.startswith("reasoning"):
                model.generation_config.max_new_tokens = self.max_new_tokens
            elif self.reasoning_max_new_tokens is not None:
                model.generation_config.max_new_tokens = self.reasoning_max_new_tokens
        return model, tokenizer

    def load_judge(self, **changes):
        """The judge model as an `LLMJudge` (chapter 05), with its own templates if it ships them."""
        return LLMJudge.from_pretrained(self.judge_model, self.settings, **changes)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "tiny",
            "tiny-text-lm",
            "tiny-columns-lm",
            ModelSettings(quantization="none", dtype="float32", device="cpu"),
            "CPU, offline: the embedded world and the tiny zoo, fp32 (the default)",
        ),
        Profile(
            "small",
            smollm2.NAME,
            smollm2.NAME,
            # adapters on the last 8 of 30 blocks: backpropagation stops there, half a step's cost;
            # bf16 autocast where the CPU has native bf16 (1.4x a training step, 1.6x a forward pass here)
            ModelSettings(quantization="none", dtype="float32", lora=LoraSettings(last_layers=8), device="cpu",
                          mixed_precision="bf16" if cpu_has_fast_bf16() else "no"),
            "any CPU, offline: SmolLM2-135M-Instruct with LoRA adapters, fp32, on review requests",
            smollm2.NAME,
            prompts=str(REVIEW_PROMPTS),
            max_new_tokens=48,
            verifiable=None,
            reasoning_base_model=None,
        ),
        Profile(
            "colab",
            "Qwen/Qwen2.5-0.5B-Instruct",
            "Qwen/Qwen2.5-0.5B-Instruct",
            ModelSettings(quantization="nf4", dtype="float16", lora=LoraSettings(), gradient_checkpointing=True, device="cuda"),
            "a Colab T4: QLoRA (NF4 base, LoRA adapters) with fp16 compute",
            "Qwen/Qwen2.5-1.5B-Instruct",
            prompts=ULTRAFEEDBACK_PROMPTS,
            gold="Skywork/Skywork-Reward-V2-Qwen3-0.6B",
            max_new_tokens=256,
            verifiable=GSM8K,
            reasoning_base_model="Qwen/Qwen2.5-0.5B",
            reasoning_max_new_tokens=256,
        ),
        Profile(
            "gpu",
            "Qwen/Qwen2.5-7B-Instruct",
            "Qwen/Qwen2.5-7B-Instruct",
            ModelSettings(quantization="nf4", dtype="bfloat16", lora=LoraSettings(), gradient_checkpointing=True, device="cuda"),
            "an A100/H100: QLoRA (NF4 base, LoRA adapters) with bf16 compute",
            "Qwen/Qwen2.5-7B-Instruct",
            prompts=ULTRAFEEDBACK_PROMPTS,
            gold="Skywork/Skywork-Reward-V2-Llama-3.1-8B",
            max_new_tokens=512,
            verifiable=GSM8K,
            reasoning_base_model="Qwen/Qwen2.5-7B",
            reasoning_max_new_tokens=512,
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called `name`; an unknown name lists the valid ones."""
    check_choice("profile", name, PROFILES)
    return PROFILES[name]
