"""The tiny model zoo: small causal LMs pre-trained on the embedded world.

Defined for the foundation; the `tiny` profile of every chapter loads these models.

Each model is a Llama-architecture causal LM (the same code path, module names and LoRA
targets as the Hub models of the `colab` and `gpu` profiles, only smaller) with a
tokenizer built locally (`survey_lib.tokenization`). Not Qwen2: transformers 5 replaces a
qwen2 checkpoint's tokenizer with Qwen's byte-level one under `AutoTokenizer`, which
would garble our word-level vocabulary wherever TRL loads the tokenizer by path. The weights are committed under `zoo/artifacts/<name>/`
(a few hundred KB each), so a chapter loads them in well under a second. Rebuild with

    python -m survey_lib.zoo build            # every model
    python -m survey_lib.zoo build tiny-text-lm

The build is deterministic for a seed on one torch build: it runs single-threaded with
fixed seeds, and `manifest.json` records the weights' SHA-256 so a rebuild can be checked.
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from .._checks import check_choice
from ..generation import sample_completions
from ..tokenization import build_tokenizer
from ..world.arithmetic import ArithmeticTask
from ..world.text import TextWorld

ARTIFACTS = Path(__file__).parent / "artifacts"


@dataclass(frozen=True)
class ZooSpec:
    """Shape and pre-training recipe of one zoo model."""

    name: str
    world: str
    """"text" (movie-review continuations) or "arithmetic" (a+b=)."""
    description: str
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 192
    max_positions: int = 64
    steps: int = 1500
    """Optimiser steps of pre-training."""
    batch_size: int = 64
    learning_rate: float = 3e-3
    completion_only: bool = False
    """Train on the completion tokens only (the prompt is given, not modelled)."""
    seed: int = 0


ZOO: dict[str, ZooSpec] = {
    s.name: s
    for s in (
        ZooSpec(
            "tiny-text-lm",
            "text",
            "word-level LM of the text world's review grammar: the SFT policy of chapters 01-08",
        ),
        ZooSpec(
            "tiny-arith-lm",
            "arithmetic",
            "character-level LM of a+b= with carries forgotten half the time: partly right, for RL",
            hidden_size=128,
            num_layers=3,
            intermediate_size=384,
            steps=2500,
            batch_size=128,
            learning_rate=2e-3,
            completion_only=True,
        ),
    )
}


def zoo_path(name: str) -> Path:
    """Directory of a zoo model, loadable with `from_pretrained`."""
    check_choice("zoo model", name, ZOO)
    path = ARTIFACTS / name
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"zoo model {name!r} is missing at {path}; rebuild it: python -m survey_lib.zoo build {name}")
    return path


def _world(spec: ZooSpec):
    return TextWorld(seed=spec.seed) if spec.world == "text" else ArithmeticTask()


def _encode(tokenizer, rows: list[tuple[str, str]], completion_only: bool) -> dict[str, torch.Tensor]:
    """prompt ids + completion ids + eos, right-padded; labels mask padding (and the prompt)."""
    prompts = tokenizer([p for p, _ in rows], add_special_tokens=False)["input_ids"]
    completions = tokenizer([c for _, c in rows], add_special_tokens=False)["input_ids"]
    seqs = [p + c + [tokenizer.eos_token_id] for p, c in zip(prompts, completions)]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id)
    labels = torch.full((len(seqs), width), -100)
    for i, (p, s) in enumerate(zip(prompts, seqs)):
        ids[i, : len(s)] = torch.tensor(s)
        start = len(p) if completion_only else 0
        labels[i, start : len(s)] = torch.tensor(s[start:])
    return {"input_ids": ids, "attention_mask": ids != tokenizer.pad_token_id, "labels": labels}


def evaluate(spec: ZooSpec, model, tokenizer, n: int = 512, seed: int = 1) -> dict[str, float]:
    """Quality of a zoo model on held-out prompts of its world."""
    rng = np.random.default_rng(10_000 + seed)
    world = _world(spec)
    if spec.world == "text":
        prompts = [world.prompts[i] for i in rng.integers(len(world.prompts), size=n)]
        samples = sample_completions(model, tokenizer, prompts, max_new_tokens=24, seed=seed)
        corpus = [c for _, c in world.sample_corpus(n, rng)]
        c = world.components(prompts, samples)
        return {
            "gold_reward": float(world.gold_reward(prompts, samples).mean()),
            "corpus_gold_reward": float(world.gold_reward(prompts, corpus).mean()),
            "fluency": float(c["fluency"].mean()),
            "ended": float(c["ended"].mean()),
            "mean_words": float(c["n_words"].mean()),
        }
    prompts = [world.prompt(a, b) for a, b in world.sample_problems(n, rng)]
    return {
        "accuracy_sampled": float(world.verify(prompts, sample_completions(model, tokenizer, prompts, max_new_tokens=5, seed=seed)).mean()),
        "accuracy_greedy": float(world.verify(prompts, sample_completions(model, tokenizer, prompts, max_new_tokens=5, greedy=True)).mean()),
    }


def build(name: str, out_dir: Path | None = None, steps: int | None = None, progress: bool = True) -> dict:
    """Pre-train a zoo model from scratch and save it with its tokenizer and manifest.

    Args:
        name: a key of `ZOO`.
        out_dir: where to save; defaults to the package's artifact directory.
        steps: override the spec's number of steps (tests use a few to check determinism).
    """
    check_choice("zoo model", name, ZOO)
    spec = ZOO[name]
    steps = spec.steps if steps is None else steps
    out_dir = Path(out_dir) if out_dir else ARTIFACTS / name
    started = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: bitwise-reproducible sums, whatever the core count
    try:
        world = _world(spec)
        tokenizer = build_tokenizer(world.vocabulary, "word" if spec.world == "text" else "char")
        torch.manual_seed(spec.seed)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=spec.hidden_size,
            intermediate_size=spec.intermediate_size,
            num_hidden_layers=spec.num_layers,
            num_attention_heads=spec.num_heads,
            num_key_value_heads=spec.num_heads,
            max_position_embeddings=spec.max_positions,
            tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=None,
            attention_bias=False,
        )
        model = LlamaForCausalLM(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01)
        warmup = max(1, steps // 20)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        )
        rng = np.random.default_rng(spec.seed)
        model.train()
        losses = []
        for _ in tqdm(range(steps), desc=f"pre-training {name}", disable=not progress):
            rows = world.sample_corpus(spec.batch_size, rng) if spec.world == "text" else world.corpus(spec.batch_size, rng)
            loss = model(**_encode(tokenizer, rows, spec.completion_only)).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:  # same filesystem: rename works
        # write into a temporary directory, then swap it in: a crash never leaves half a model
        tmp = Path(tmp) / name
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # judge the artifact as users will load it, not the objects in memory
        quality = evaluate(spec, AutoModelForCausalLM.from_pretrained(tmp), AutoTokenizer.from_pretrained(tmp))
        manifest = {
            "spec": asdict(spec),
            "steps": steps,
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": float(np.mean(losses[-50:])) if losses else None,
            "quality": quality,
            "weights_sha256": hashlib.sha256((tmp / "model.safetensors").read_bytes()).hexdigest(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "build_seconds": round(time.time() - started, 1),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    return manifest
