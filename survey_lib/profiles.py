"""Profiles: one chapter, three scales; its code is the same on each, only its `profile`
parameter changes.

Defined for the foundation; every chapter's parameters cell names a profile and reads its
models from it:

| profile | where            | models (policy; judge)                      | precision                |
|---------|------------------|---------------------------------------------|--------------------------|
| tiny    | CPU, Binder, CI  | the zoo (`survey_lib.zoo`)                  | fp32, full fine-tuning   |
| colab   | a T4 (16 GB)     | Qwen2.5-0.5B-Instruct; Qwen2.5-1.5B-Instruct | QLoRA, fp16 compute      |
| gpu     | an A100 / H100   | Qwen2.5-7B-Instruct (both)                  | QLoRA, bf16 compute      |

(A T4 has no bf16, hence fp16 compute on `colab`.)
"""
from __future__ import annotations

from dataclasses import dataclass

from ._checks import check_choice
from .judges import LLMJudge
from .models import LoraSettings, ModelSettings, load_model


@dataclass(frozen=True)
class Profile:
    """Which models a chapter loads, and how."""

    name: str
    text_model: str
    """The policy for the text world: a zoo name or a Hub id."""
    arithmetic_model: str
    """The policy for the verifiable-reward task."""
    settings: ModelSettings
    """Precision, quantisation and adapters."""
    description: str
    judge_model: str = "tiny-judge-lm"
    """The AI labeler of chapter 05: the zoo judge, or a Hub instruct model."""

    def load(self, which: str = "text", **changes):
        """(model, tokenizer) for the "text" or "arithmetic" policy, or the "judge", under this profile."""
        models = {"text": self.text_model, "arithmetic": self.arithmetic_model, "judge": self.judge_model}
        check_choice("which", which, models)
        return load_model(models[which], self.settings, **changes)

    def load_judge(self, **changes):
        """The judge model as an `LLMJudge` (chapter 05), with its own templates if it ships them."""
        return LLMJudge.from_pretrained(self.judge_model, self.settings, **changes)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "tiny",
            "tiny-text-lm",
            "tiny-arith-lm",
            ModelSettings(quantization="none", dtype="float32", device="cpu"),
            "CPU, offline: the embedded world and the tiny zoo, fp32 (the default)",
        ),
        Profile(
            "colab",
            "Qwen/Qwen2.5-0.5B-Instruct",
            "Qwen/Qwen2.5-0.5B-Instruct",
            ModelSettings(quantization="nf4", dtype="float16", lora=LoraSettings(), gradient_checkpointing=True, device="cuda"),
            "a Colab T4: QLoRA (NF4 base, LoRA adapters) with fp16 compute",
            "Qwen/Qwen2.5-1.5B-Instruct",
        ),
        Profile(
            "gpu",
            "Qwen/Qwen2.5-7B-Instruct",
            "Qwen/Qwen2.5-7B-Instruct",
            ModelSettings(quantization="nf4", dtype="bfloat16", lora=LoraSettings(), gradient_checkpointing=True, device="cuda"),
            "an A100/H100: QLoRA (NF4 base, LoRA adapters) with bf16 compute",
            "Qwen/Qwen2.5-7B-Instruct",
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called `name`; an unknown name lists the valid ones."""
    check_choice("profile", name, PROFILES)
    return PROFILES[name]
