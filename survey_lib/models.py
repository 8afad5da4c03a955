"""Loading a causal LM for training: a zoo name, a local path or a Hub id, optionally QLoRA.

Defined for the foundation; every chapter loads its models through `load_model`, usually
via its profile (`survey_lib.profiles`).

QLoRA (Dettmers et al. 2023, arXiv 2305.14314) freezes a base model quantised to 4-bit
NormalFloat (NF4, with double quantisation of the quantisation constants) and trains
low-rank adapters (LoRA, Hu et al. 2021, arXiv 2106.09685) in the compute dtype. The
returned model and tokenizer plug into TRL's trainers unchanged; under PEFT the reference
policy of DPO/KTO/GRPO is the same model with its adapter disabled.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MethodType

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BitsAndBytesConfig,
)
from transformers.utils import logging as hf_logging

from . import smollm2
from ._checks import check_choice, check_range, check_type
from .data_files import HubUnavailableError
from .zoo import ZOO, zoo_path

QUANTIZATIONS = ("none", "nf4")
HEADS = {
    "causal-lm": (AutoModelForCausalLM, "CAUSAL_LM"),
    "reward": (AutoModelForSequenceClassification, "SEQ_CLS"),
    "value": (AutoModelForTokenClassification, "TOKEN_CLS"),
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
MIXED_PRECISIONS = {"no": None, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapter settings (passed to `peft.LoraConfig`)."""

    r: int = 16
    """Rank of each adapter's update B @ A."""
    alpha: int = 32
    """Scale: the update is multiplied by alpha / r."""
    dropout: float = 0.05
    """Dropout on the adapter's input."""
    target_modules: str | tuple[str, ...] = "all-linear"
    """Which linear layers get adapters; "all-linear" is QLoRA's recommendation."""
    last_layers: int | None = None
    """Adapt only the last this many transformer blocks (None: all). Backpropagation then
    stops at the lowest adapted block, which on a CPU halves a step's cost for a few layers."""

    def __post_init__(self):
        check_type("r", self.r, int)
        check_range("r", self.r, 1)
        if self.last_layers is not None:
            check_type("last_layers", self.last_layers, int)
            check_range("last_layers", self.last_layers, 1)
        check_range("alpha", self.alpha, 0, low_open=True)
        check_range("dropout", self.dropout, 0, 1, high_open=True)


@dataclass(frozen=True)
class ModelSettings:
    """How to load a model: precision, quantisation, adapters, device."""

    quantization: str = "none"
    """"none" (plain weights) or "nf4" (4-bit NormalFloat base, double quantisation)."""
    dtype: str = "float32"
    """Weights dtype when not quantised; the compute dtype when quantised."""
    lora: LoraSettings | None = None
    """Adapters to add; None trains (or freezes) the full model."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on large models (used with k-bit training)."""
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")
    """"cpu" or "cuda"."""
    mixed_precision: str = "no"
    """"bf16": every forward pass (training, scoring, generation) runs under `torch.autocast`
    in bfloat16, as accelerate's `mixed_precision="bf16"` does, while weights, adapters and
    optimiser state stay in `dtype`; the output layer (logits, a scalar head) runs in float32,
    so log-probabilities keep their precision. On this 2-core CPU with AVX512-BF16 it makes
    SmolLM2's LoRA step about 1.4x and a forward pass about 1.6x faster. "no": plain `dtype` throughout."""

    def __post_init__(self):
        check_choice("quantization", self.quantization, QUANTIZATIONS)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISIONS)
        check_choice("device", self.device, ("cpu", "cuda"))


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """A zoo name becomes its artifact directory, "smollm2-135m-instruct" its converted
    checkpoint (`survey_lib.smollm2`); a local directory stays; "org/model" is a Hub id.
    Anything else is rejected with the names we know."""
    check_type("name_or_path", name_or_path, (str, os.PathLike))
    name = os.fspath(name_or_path)
    if name in ZOO:
        return str(zoo_path(name))
    if name == smollm2.NAME:
        return str(smollm2.converted_path())
    if Path(name).is_dir():
        return name
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name
    raise ValueError(
        f"unknown model {name!r}: not a zoo name, a local directory or a Hub id ('org/model'); "
        f"valid names: {', '.join(map(repr, [*ZOO, smollm2.NAME]))}"
    )


def load_model(
    name_or_path: str | os.PathLike, settings: ModelSettings | None = None, *, head: str = "causal-lm", **changes
):
    """Load (model, tokenizer), ready for TRL trainers or survey_lib's own loops.

    Args:
        name_or_path: a zoo name (e.g. "tiny-text-lm"), a directory saved with
            `save_pretrained`, or a Hugging Face Hub id (e.g. "Qwen/Qwen2.5-0.5B-Instruct").
        settings: a `ModelSettings`; keyword `changes` override its fields.
        head: "causal-lm" (a policy), "reward" (the same trunk with a scalar head read at
            the last token, as TRL's `RewardTrainer` builds it; chapter 03) or "value" (a
            scalar at every token: PPO's critic, chapter 04). A checkpoint of another kind
            gets a freshly initialised head, except that a saved reward model loaded as
            "value" keeps its head (both are a linear layer called `score`), which is how
            InstructGPT initialises the critic from the reward model.

    With quantization="nf4" the linear layers become bitsandbytes `Linear4bit`, the model
    is prepared for k-bit training, and with `lora` set only the adapters are trainable
    (plus, for the reward head, the head itself).
    """
    check_choice("head", head, HEADS)
    auto_class = HEADS[head][0]
    settings = replace(settings or ModelSettings(), **changes)
    path = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        if head != "causal-lm":  # the report that the new head is "missing" is expected
            hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # a bar per load clutters chapters that load many small models
        try:
            model = auto_class.from_pretrained(path, **_from_pretrained_kwargs(settings, head))
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
    except OSError as err:
        if Path(path).is_dir():
            raise
        raise HubUnavailableError(
            f"could not load {path!r} from the Hugging Face Hub or its local cache ({err.__class__.__name__}: "
            f"{str(err).splitlines()[0]}). Without network access, use the 'tiny' profile, which runs on the "
            "embedded zoo (profile = 'tiny'), or pass a local directory saved with save_pretrained."
        ) from err
    if settings.quantization == "none":
        model.to(settings.device)
    if tokenizer.pad_token is None:  # e.g. Llama: padding reuses end-of-sequence
        tokenizer.pad_token = tokenizer.eos_token
    if head != "causal-lm":  # the reward head reads the last non-padding token
        model.config.pad_token_id = tokenizer.pad_token_id
    if settings.quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.gradient_checkpointing)
        keep_4bit_weights_differentiable(model)
    elif settings.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if settings.mixed_precision != "no":
        autocast_forward(model, MIXED_PRECISIONS[settings.mixed_precision])
    if settings.lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(settings.lora, head, model))
    return model, tokenizer


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (AVX512-BF16 or AMX, as oneDNN
    reports it); elsewhere bf16 autocast on a CPU is slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_forward(model, dtype: torch.dtype) -> None:
    """Run `model`'s forward under `torch.autocast(dtype)`, and its output layer outside it,
    in float32 (`ModelSettings.mixed_precision`). Wrapping the transformers model itself,
    before PEFT wraps it, covers `generate` too, which calls this forward. The wrappers are
    methods bound to their module, so a deep copy (PEFT's copy of a trained head, a frozen
    reference) runs its own weights."""
    model._autocast_dtype = dtype
    model.forward = MethodType(_autocast_forward, model)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head = head if head is not None else getattr(model, "score", None)
    if head is not None:
        head.forward = MethodType(_float32_forward, head)


def _autocast_forward(self, *args, **kwargs):
    with torch.autocast(self.device.type, dtype=self._autocast_dtype):
        return type(self).forward(self, *args, **kwargs)


def _float32_forward(self, *args, **kwargs):
    device_type = next(self.parameters()).device.type
    with torch.autocast(device_type, enabled=False):
        return type(self).forward(self, *(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args),
                                  **kwargs)


def _from_pretrained_kwargs(settings: ModelSettings, head: str) -> dict:
    """dtype, a one-label head, and for "nf4" the 4-bit quantisation and device map."""
    kwargs: dict = {"dtype": DTYPES[settings.dtype]}
    if head != "causal-lm":
        kwargs["num_labels"] = 1
    if settings.quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=DTYPES[settings.dtype],
            # a scalar head stays in full precision (transformers only skips the module that owns
            # the model's last parameter, which for the value head is its bias, not the head)
            llm_int8_skip_modules=None if head == "causal-lm" else ["score"],
        )
        kwargs["device_map"] = {"": 0} if settings.device == "cuda" else "cpu"
    return kwargs


def _lora_config(lora: LoraSettings, head: str, model):
    """`peft.LoraConfig` for `lora` on `model`, which has `head`."""
    from peft import LoraConfig

    targets, layers = lora.target_modules, None
    if lora.last_layers is not None:
        n_layers = model.config.num_hidden_layers
        if lora.last_layers > n_layers:
            raise ValueError(f"last_layers={lora.last_layers} but the model has {n_layers} transformer blocks")
        layers = list(range(n_layers - lora.last_layers, n_layers))
        if targets == "all-linear":  # peft takes a layer subset only with named modules
            targets = tuple(sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                                    if ".layers." in name and isinstance(module, torch.nn.Linear)}))

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(targets) if isinstance(targets, tuple) else targets,
        # the head is trained in full (modules_to_save), never given an adapter too
        exclude_modules=None if head == "causal-lm" else ["score"],
        layers_to_transform=layers,
        task_type=HEADS[head][1],
    )


def keep_4bit_weights_differentiable(model) -> None:
    """bitsandbytes (0.50) repacks a 4-bit weight for a faster CPU kernel on an eval-mode,
    no-grad forward (a reference pass, sampling), and that kernel passes no gradient to the
    layer's input: QLoRA training afterwards would silently lose every gradient through the
    quantized layers. Turn the repacking off and undo any already done. `load_model` calls
    it; the trainers call it again for models loaded some other way."""
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
        weight = getattr(module, "weight", None)
        if getattr(getattr(weight, "quant_state", None), "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, weight.quant_state)


def trainable_copy(model):
    """A copy of `model` to train from where it is now (chapters 04-08: each method starts
    from the same SFT policy). Trainable weights are copied; frozen ones, a LoRA or QLoRA
    run's base, are shared with `model`, so a copy costs its adapters, not another base
    (SmolLM2: 538 MB). With every weight trainable (the tiny profile) it is a deep copy.
    Do not unfreeze a copy's base: the weights are `model`'s too."""
    shared = {id(p): p for p in model.parameters() if not p.requires_grad}
    return copy.deepcopy(model, shared)


def frozen_reference(model):
    """(context, reference): the frozen reference policy of KL-regularised training
    (chapters 04, 07-08). Under PEFT it is the model itself with its adapters disabled
    (`context` is `model.disable_adapter`, to enter around each reference forward), so a
    QLoRA run holds one copy of the base; otherwise a frozen copy of the model as it is
    now, and `context` is None."""
    if hasattr(model, "disable_adapter"):
        return model.disable_adapter, model
    return None, copy.deepcopy(model).eval().requires_grad_(False)
