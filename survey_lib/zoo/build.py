"""Pre-training the zoo (`survey_lib.zoo`): the corpora, the judge's curriculum, the build.

Defined for the foundation (`tiny-text-lm`, `tiny-arith-lm`) and chapter 05
(`tiny-judge-lm`); run it with `python -m survey_lib.zoo build [NAME ...]`.

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
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from .._checks import check_choice
from ..generation import sample_completions
from ..judges import JudgeTemplates, LLMJudge, chat_text
from ..preference_data import sample_response_pairs
from ..sequences import language_modeling_batch
from ..tokenization import build_tokenizer
from ..world.annotators import AnnotatorConfig, SimulatedAnnotators
from ..world.arithmetic import ArithmeticTask
from ..world.column_addition import ColumnAdditionTask
from ..world.text import TextWorld
from . import ARTIFACTS, ZOO, ZooSpec, zoo_path


def _world(spec: ZooSpec):
    if spec.world == "judge":
        return JudgeCurriculum(seed=spec.seed)
    if spec.world == "columns":
        return ColumnAdditionTask()
    if spec.world == "columns-base":
        return ColumnAdditionTask(trace_rate=BASE_TRACE_RATE)
    return TextWorld(seed=spec.seed) if spec.world == "text" else ArithmeticTask()


BASE_TRACE_RATE = 0.03
"""How often `tiny-columns-base-lm`'s corpus shows written work (chapter 09's R1-Zero): rarely,
as a web-trained base has seen worked solutions; never would leave RL nothing to find."""


JUDGE_WORDS = ("compare", "A", "B", ":", "better", "?", "rate", "yes", "no")
"""Words the zoo judge needs beyond the text world's vocabulary."""
JUDGE_TEACHER = dict(n_annotators=1, temperature=0.3, position_bias=0.6, length_bias=0.03, seed=7)
"""The annotator whose labels the zoo judge learns from (`AnnotatorConfig` fields): noisier
than chapter 03's annotators, partial to the response shown first and to longer ones, as
LLM judges are (Zheng et al. 2023, arXiv 2306.05685), so chapter 05 can measure both."""


class JudgeCurriculum:
    """Pre-training data of `tiny-judge-lm` (chapter 05): a stream mixing three tasks.

    - writing: review continuations from the text world's grammar (as `tiny-text-lm`
      learnt), so the judge is also a policy (self-rewarding, 2401.10020);
    - pairwise judging: "compare <prompt> A : <a> B : <b> better ?" -> "A" or "B";
    - pointwise judging: "rate <prompt> : <y> good ?" -> "yes" or "no".

    The judged responses are `tiny-text-lm`'s samples at temperatures from 0.6 to 2.0 (so
    that the judge has seen word salad and the drift of an RL-trained policy), and the
    verdicts come from one simulated annotator (`JUDGE_TEACHER`): a pairwise verdict is
    its Bradley-Terry draw for the order shown, a pointwise one "yes" with probability
    sigmoid((u(y) - 0.3) / temperature). The judge learns these labels only as well as its
    capacity allows, so its agreement with gold is below the teacher's.
    """

    MIX = (0.4, 0.3, 0.3)
    """Shares of writing, pairwise and pointwise examples."""
    POOL_SIZE = 24_000
    THRESHOLD = 0.3

    def __init__(self, seed: int = 0):
        self.world = TextWorld(seed=seed)
        self.teacher = SimulatedAnnotators(self.world, AnnotatorConfig(**JUDGE_TEACHER))
        self.templates = JudgeTemplates(
            pairwise="compare {prompt} A : {first} B : {second} better ?",
            pointwise="rate {prompt} : {response} good ?",
            first_verdict="A",
            second_verdict="B",
            yes_verdict="yes",
            no_verdict="no",
        )
        tokenizer = build_tokenizer(self.vocabulary, "word")
        self._chat = lambda text: chat_text(tokenizer, text)
        writer_path = zoo_path("tiny-text-lm")
        self.writer = AutoModelForCausalLM.from_pretrained(writer_path)
        self.writer_tokenizer = AutoTokenizer.from_pretrained(writer_path)
        rng = np.random.default_rng(seed)
        temperatures = (0.6, 1.0, 1.4, 2.0)
        self.pool: dict[str, list[str]] = {p: [] for p in self.world.prompts}
        per = self.POOL_SIZE // len(temperatures)
        for i, t in enumerate(temperatures):
            prompts = [self.world.prompts[j] for j in rng.integers(len(self.world.prompts), size=per)]
            for p, c in zip(prompts, sample_completions(self.writer, self.writer_tokenizer, prompts, temperature=t, seed=seed * 10 + i)):
                if c.strip():
                    self.pool[p].append(c)

    @property
    def vocabulary(self) -> list[str]:
        return self.world.vocabulary + [w for w in JUDGE_WORDS if w not in self.world.vocabulary]

    def _pick(self, prompt: str, rng) -> str:
        responses = self.pool[prompt]
        return responses[rng.integers(len(responses))]

    def corpus(self, n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
        """n (input, target) rows: the target is what the loss trains (completion only)."""
        kinds = rng.choice(3, size=n, p=self.MIX)
        rows = self.world.sample_corpus(int((kinds == 0).sum()), rng)
        pairwise = int((kinds == 1).sum())
        prompts = [self.world.prompts[j] for j in rng.integers(len(self.world.prompts), size=pairwise)]
        first, second = [self._pick(p, rng) for p in prompts], [self._pick(p, rng) for p in prompts]
        labels = self.teacher.label(prompts, first, second, rng).first_preferred
        t = self.templates
        rows += [
            (self._chat(t.pairwise_text(p, a, b)), t.first_verdict if won else t.second_verdict)
            for p, a, b, won in zip(prompts, first, second, labels)
        ]
        pointwise = n - len(rows)
        prompts = [self.world.prompts[j] for j in rng.integers(len(self.world.prompts), size=pointwise)]
        responses = [self._pick(p, rng) for p in prompts]
        utility = self.teacher.utility(prompts, responses, 0)
        good = rng.random(pointwise) < 1 / (1 + np.exp(-(utility - self.THRESHOLD) / self.teacher.config.temperature))
        rows += [
            (self._chat(t.pointwise_text(p, r)), t.yes_verdict if g else t.no_verdict)
            for p, r, g in zip(prompts, responses, good)
        ]
        order = rng.permutation(n)
        return [rows[i] for i in order]


def evaluate(spec: ZooSpec, model, tokenizer, n: int = 512, seed: int = 1, world=None) -> dict[str, float]:
    """Quality of a zoo model on held-out prompts of its world (`world`: the one built for
    training, if at hand)."""
    rng = np.random.default_rng(10_000 + seed)
    world = world or _world(spec)
    if spec.world == "judge":
        return _evaluate_judge(world, model, tokenizer, n, seed)
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
    if spec.world.startswith("columns"):
        limit = world.max_response_length
        sampled = sample_completions(model, tokenizer, prompts, max_new_tokens=limit, seed=seed)
        greedy = sample_completions(model, tokenizer, prompts, max_new_tokens=limit, greedy=True)
        corpus = world.corpus(n, rng)
        return {
            "accuracy_sampled": float(world.verify(prompts, sampled).mean()),
            "accuracy_greedy": float(world.verify(prompts, greedy).mean()),
            "worked_sampled": float(world.well_formed(sampled).mean()),
            "mean_length_sampled": float(np.mean([len(c) for c in sampled])),
            "corpus_accuracy": float(world.verify([p for p, _ in corpus], [c for _, c in corpus]).mean()),
        }
    return {
        "accuracy_sampled": float(world.verify(prompts, sample_completions(model, tokenizer, prompts, max_new_tokens=5, seed=seed)).mean()),
        "accuracy_greedy": float(world.verify(prompts, sample_completions(model, tokenizer, prompts, max_new_tokens=5, greedy=True)).mean()),
    }


def _evaluate_judge(curriculum: JudgeCurriculum, model, tokenizer, n: int, seed: int) -> dict[str, float]:
    """Agreement with gold on held-out pairs of `tiny-text-lm`'s samples (chapter 05's
    labelling task), against the teacher's; the judge's own writing."""
    world = curriculum.world
    pairs = sample_response_pairs(curriculum.writer, curriculum.writer_tokenizer, world, 2 * n, seed=10_000 + seed)
    gap = pairs.gold_gap(world)
    pairs = pairs.select(np.flatnonzero(gap != 0)[:n])
    gold_first = pairs.gold_gap(world) > 0
    judge = LLMJudge(model.eval(), tokenizer, curriculum.templates)
    shown, swapped = judge.compare_orders(pairs.prompts, pairs.first, pairs.second)
    debiased = (shown + swapped) / 2
    pointwise = judge.score(pairs.prompts, pairs.first) - judge.score(pairs.prompts, pairs.second)
    teacher = curriculum.teacher.label(pairs.prompts, pairs.first, pairs.second, np.random.default_rng(seed)).first_preferred
    prompts = [world.prompts[i] for i in np.random.default_rng(seed).integers(len(world.prompts), size=n)]
    samples = sample_completions(model, tokenizer, prompts, max_new_tokens=24, seed=seed)
    return {
        "agreement_shown_order": float(((shown > 0.5) == gold_first).mean()),
        "agreement_debiased": float(((debiased > 0.5) == gold_first).mean()),
        "agreement_pointwise": float(((pointwise > 0) == gold_first).mean()),
        "teacher_agreement": float((teacher == gold_first).mean()),
        "position_consistency": float(((shown > 0.5) == (swapped > 0.5)).mean()),
        "first_chosen_rate": float((shown > 0.5).mean()),
        "unparsed": int(judge.counts["unparsed"]),
        "gold_reward": float(world.gold_reward(prompts, samples).mean()),
    }


def _llama_config(spec: ZooSpec, tokenizer) -> LlamaConfig:
    """The spec's shape as a Llama config: tied embeddings, no biases, no BOS token."""
    return LlamaConfig(
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


def _pretrain(model, tokenizer, world, spec: ZooSpec, steps: int, progress: bool) -> list[float]:
    """Next-token prediction on fresh corpus batches, AdamW with a linear warm-up and a
    cosine decay; returns the losses."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    rng = np.random.default_rng(spec.seed)
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc=f"pre-training {spec.name}", disable=not progress):
        rows = world.sample_corpus(spec.batch_size, rng) if spec.world == "text" else world.corpus(spec.batch_size, rng)
        loss = model(**language_modeling_batch(tokenizer, rows, completion_only=spec.completion_only)).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


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
        tokenizer = build_tokenizer(world.vocabulary, spec.tokenizer_level)
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(_llama_config(spec, tokenizer))
        losses = _pretrain(model, tokenizer, world, spec, steps, progress)
    finally:
        torch.set_num_threads(threads)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    if hasattr(world, "max_response_length"):  # written work is longer than the default limit
        model.generation_config.max_new_tokens = world.max_response_length + 1
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:  # same filesystem: rename works
        # write into a temporary directory, then swap it in: a crash never leaves half a model
        tmp = Path(tmp) / name
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if spec.world == "judge":
            world.templates.save(tmp)
        # judge the artifact as users will load it, not the objects in memory
        quality = evaluate(spec, AutoModelForCausalLM.from_pretrained(tmp), AutoTokenizer.from_pretrained(tmp), world=world)
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
