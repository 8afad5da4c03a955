"""AI feedback: LLM-as-judge, generative verifiers and rule-based rewards (chapter 05).

Survey section 5. One interface, `Judge`, for every kind of AI feedback, usable both ways
RLAIF uses it:

- as a **labeler**, `judge.compare(prompts, first, second)` gives P(first is better) and
  `judge.label(pairs)` turns unlabelled response pairs into TRL preference rows, which a
  reward model distils (section 5.1, UltraFeedback 2310.01377, RLAIF vs RLHF 2309.00267);
- as a **reward**, `judge(prompts, completions)` scores each response, so it plugs into
  the online trainers of chapter 04 wherever a reward model does (section 5.2, "direct"
  RLAIF of 2309.00267; generative verifiers 2408.15240).

Three kinds:

- `LLMJudge`: a causal LM prompted with a pairwise or a pointwise template; the verdict
  is read from its next-token probabilities (e.g. "A" against "B", "Yes" against "No"),
  never from free text. Pairwise verdicts are debiased for position by judging both
  orders and averaging (Zheng et al. 2023, MT-Bench, arXiv 2306.05685). A judgement whose
  most likely next token is not a verdict cannot be parsed: it is counted and returned as
  NaN, never guessed.
- A generative verifier (Zhang et al. 2024, GenRM, arXiv 2408.15240) is an `LLMJudge`
  whose model was fine-tuned to emit the verdict token (`train_verifier`); its reward is
  P(Yes).
- `Rubric`: rule-based rewards (Mu et al. 2024, RBR, arXiv 2411.01111): programmatic
  rules, each a proposition scored in [0, 1], combined linearly, with each rule's
  contribution inspectable and the weights fitted to comparisons (`Rubric.fit`).
"""
from __future__ import annotations

import json
import math
import os
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ._checks import check_range, check_type
from .checkpoints import TrainingLoop, epoch_batch
from .models import ModelSettings, load_model, resolve_model_path
from .preference_data import PreferenceDataError, ResponsePairs, preference_row, validate_preference_rows

TEMPLATES_FILE = "judge.json"
PLACEHOLDERS = {"pairwise": ("prompt", "first", "second"), "pointwise": ("prompt", "response")}


def placeholders(template: str) -> set[str]:
    """The names of a `str.format` template's fields ("{prompt}" -> "prompt"); raises
    ValueError for a malformed template (chapter 05's judge and constitution templates)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


@dataclass(frozen=True)
class JudgeTemplates:
    """The judge's prompts and verdict words (chapter 05).

    Each template is a `str.format` string with exactly its placeholders: pairwise
    {prompt} {first} {second}, pointwise {prompt} {response}. The rendered text becomes the
    user turn of the tokenizer's chat template, and the verdict is the assistant's first
    token, so each verdict word must be a single token of the judge's tokenizer. The
    defaults are English, for the Hub instruct models of the `colab` and `gpu` profiles;
    the zoo judge ships its own in its `judge.json`.
    """

    pairwise: str = (
        "Compare two responses to the same prompt. The better response is more helpful, "
        "fluent, well-formed and not repetitive.\n\nPrompt: {prompt}\n\nResponse A: {first}\n\n"
        "Response B: {second}\n\nWhich response is better? Answer with one letter, A or B."
    )
    pointwise: str = (
        "Rate a response to a prompt. A good response is helpful, fluent, well-formed and "
        "not repetitive.\n\nPrompt: {prompt}\n\nResponse: {response}\n\nIs it a good response? "
        "Answer with one word, Yes or No."
    )
    first_verdict: str = "A"
    second_verdict: str = "B"
    yes_verdict: str = "Yes"
    no_verdict: str = "No"

    def __post_init__(self):
        for kind, needed in PLACEHOLDERS.items():
            template = getattr(self, kind)
            check_type(f"{kind} template", template, str)
            try:
                found = placeholders(template)
            except ValueError as err:
                raise ValueError(f"the {kind} template is not a valid format string: {err}") from err
            missing, unknown = set(needed) - found, found - set(needed)
            if missing or unknown:
                raise ValueError(
                    f"the {kind} template must contain exactly the placeholders "
                    f"{', '.join('{' + n + '}' for n in needed)}; "
                    + (f"missing {sorted(missing)}" if missing else "")
                    + ("; " if missing and unknown else "")
                    + (f"unknown {sorted(unknown)}" if unknown else "")
                )
        words = (self.first_verdict, self.second_verdict, self.yes_verdict, self.no_verdict)
        if self.first_verdict == self.second_verdict or self.yes_verdict == self.no_verdict:
            raise ValueError(f"the two verdicts of a template must differ, got {words}")

    def pairwise_text(self, prompt: str, first: str, second: str) -> str:
        return self.pairwise.format(prompt=prompt, first=first, second=second)

    def pointwise_text(self, prompt: str, response: str) -> str:
        return self.pointwise.format(prompt=prompt, response=response)

    def save(self, directory: str | os.PathLike) -> None:
        """Write the templates beside a model, where `LLMJudge.from_pretrained` finds them."""
        (Path(directory) / TEMPLATES_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> JudgeTemplates:
        """The templates saved in `directory`, or the English defaults when there are none."""
        path = Path(directory) / TEMPLATES_FILE
        return cls(**json.loads(path.read_text())) if path.exists() else cls()


def _check_texts(name: str, texts, n: int | None = None) -> list[str]:
    check_type(name, texts, (list, tuple))
    if n is not None and len(texts) != n:
        raise ValueError(f"{name} has {len(texts)} items, expected {n} (one per prompt)")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be str, got {type(t).__name__}")
    return list(texts)


def _check_pairs(prompts, first, second) -> tuple[list[str], list[str], list[str]]:
    prompts = _check_texts("prompts", prompts)
    return prompts, _check_texts("first", first, len(prompts)), _check_texts("second", second, len(prompts))


@dataclass
class AILabels:
    """What a judge made of a batch of response pairs (`Judge.label`)."""

    probability_first: np.ndarray
    """P(first is better) per pair; NaN where the judgement could not be parsed."""
    rows: list[dict]
    """TRL preference rows (prompt / chosen / rejected) for the pairs that got a label."""
    labelled: np.ndarray
    """Indices of those pairs, in the order of `rows`."""
    unparsed: int
    """Pairs whose judgement could not be parsed (no label, counted here)."""
    ties: int
    """Pairs judged exactly even (P = 1/2): no preference, no label."""

    @property
    def first_preferred(self) -> np.ndarray:
        """For the labelled pairs, whether the first response won."""
        return self.probability_first[self.labelled] > 0.5


class Judge:
    """A source of AI feedback: compares pairs (a labeler) and scores responses (a reward).

    Subclasses implement `compare` and `score`; `label` and the reward call come with them.
    """

    def compare(self, prompts: list[str], first: list[str], second: list[str]) -> np.ndarray:
        """P(first is better than second) for each prompt; NaN where no verdict was parsed."""
        raise NotImplementedError

    def score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """A scalar reward per response; NaN where no verdict was parsed."""
        raise NotImplementedError

    def __call__(self, prompts: list[str], completions: list[str]) -> np.ndarray:
        """The reward interface of chapter 04's trainers; they reject a NaN, naming the sample."""
        return self.score(prompts, completions)

    def label(self, pairs: ResponsePairs, probability_first: np.ndarray | None = None) -> AILabels:
        """AI preference labels for unlabelled pairs: the judge's verdict, argmax (RLAIF,
        2309.00267). Unparsed and exactly tied judgements get no label and are counted.
        `probability_first`, if given, is `compare`'s result already computed for `pairs`."""
        if len(pairs) == 0:
            raise ValueError("no pairs to label: the candidate list is empty")
        if probability_first is None:
            probability_first = self.compare(pairs.prompts, pairs.first, pairs.second)
        p = np.asarray(probability_first, dtype=np.float64)
        if p.shape != (len(pairs),):
            raise ValueError(f"probability_first has shape {p.shape}, expected ({len(pairs)},)")
        unparsed = np.isnan(p)
        tie = p == 0.5
        labelled = np.flatnonzero(~unparsed & ~tie)
        rows = [preference_row(pairs.prompts[i], pairs.first[i], pairs.second[i]) if p[i] > 0.5
                else preference_row(pairs.prompts[i], pairs.second[i], pairs.first[i]) for i in labelled]
        return AILabels(p, rows, labelled, int(unparsed.sum()), int(tie.sum()))


# ---------------------------------------------------------------- LLM-as-judge


def chat_text(tokenizer, text: str) -> str:
    """`text` as the user turn of the tokenizer's chat template, with the assistant's turn
    opened: what the judge continues with its verdict."""
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)


def _judge_inputs(tokenizer, texts: list[str], max_positions: int | None) -> list[list[int]]:
    """Each text as the user turn of a chat, followed by the assistant's turn opening."""
    chats = [chat_text(tokenizer, t) for t in texts]
    ids = tokenizer(chats, add_special_tokens=False)["input_ids"]
    if max_positions:
        long = [i for i, x in enumerate(ids) if len(x) >= max_positions]
        if long:
            raise ValueError(
                f"{len(long)} judge inputs do not fit the judge's {max_positions} positions with room for the "
                f"verdict (first: input {long[0]}, {len(ids[long[0]])} tokens); shorten the responses or the template"
            )
    return ids


def next_token_logits(model, tokenizer, texts: list[str]) -> torch.Tensor:
    """Logits of the token that follows each chat-formatted text: [n, vocab] (chapter 05).
    Left-padded, with positions counted from each row's first real token."""
    ids = _judge_inputs(tokenizer, texts, getattr(model.config, "max_position_embeddings", None))
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=model.device)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=model.device)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    return model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits[:, -1].float()


def verdict_token_id(tokenizer, word: str) -> int:
    """The single token id of a verdict word; a word of several tokens is rejected."""
    ids = tokenizer.encode(word, add_special_tokens=False)
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ValueError(
            f"verdict {word!r} is not a single known token of this tokenizer (it encodes to {ids}); "
            "choose verdict words that are, e.g. 'A'/'B' or 'Yes'/'No'"
        )
    return ids[0]


class LLMJudge(Judge):
    """A language model as judge: the verdict read from its next-token probabilities (chapter 05).

    Args:
        model, tokenizer: a causal LM and its tokenizer (a zoo judge or a Hub instruct model).
        templates: the prompts and verdict words; `from_pretrained` reads them from the
            model's directory when it ships a `judge.json`.
        debias: judge each pair in both orders and average P(first) over the two
            (position-swap debiasing); False judges the given order only.
        batch_size: judgements per forward pass.

    `counts` accumulates how many judgements were made and how many could not be parsed;
    after `train_verifier`, `history` holds its steps' losses.
    """

    def __init__(self, model, tokenizer, templates: JudgeTemplates | None = None, *, debias: bool = True, batch_size: int = 256):
        check_range("batch_size", batch_size, 1)
        self.model, self.tokenizer = model, tokenizer
        self.templates = templates or JudgeTemplates()
        self.debias, self.batch_size = debias, batch_size
        t = self.templates
        self.pairwise_ids = (verdict_token_id(tokenizer, t.first_verdict), verdict_token_id(tokenizer, t.second_verdict))
        self.pointwise_ids = (verdict_token_id(tokenizer, t.yes_verdict), verdict_token_id(tokenizer, t.no_verdict))
        self.counts: Counter = Counter()
        self.history: list[dict] = []

    @classmethod
    def from_pretrained(cls, name_or_path, settings: ModelSettings | None = None, *, debias: bool = True, **changes) -> LLMJudge:
        """Load a judge: a zoo name ("tiny-judge-lm"), a local directory or a Hub id, with
        the templates saved beside it (or the English defaults)."""
        model, tokenizer = load_model(name_or_path, settings, **changes)
        path = resolve_model_path(name_or_path)
        templates = JudgeTemplates.load(path) if Path(path).is_dir() else JudgeTemplates()
        return cls(model.eval(), tokenizer, templates, debias=debias)

    @torch.no_grad()
    def verdict_probability(self, texts: list[str], verdict_ids: tuple[int, int]) -> np.ndarray:
        """P(first verdict) renormalised over the two verdict tokens, per judge text; NaN
        where the most likely next token is neither verdict (an unparsable judgement)."""
        was_training = self.model.training
        self.model.eval()
        p = np.full(len(texts), np.nan)
        # batches of similar length waste little compute on padding
        order = np.argsort([len(t) for t in texts], kind="stable")
        try:
            for start in range(0, len(texts), self.batch_size):
                index = order[start : start + self.batch_size]
                logits = next_token_logits(self.model, self.tokenizer, [texts[i] for i in index])
                pair = torch.softmax(logits[:, list(verdict_ids)], -1)[:, 0]
                parsed = torch.isin(logits.argmax(-1), torch.tensor(verdict_ids, device=logits.device))
                p[index] = torch.where(parsed, pair, torch.nan).double().cpu().numpy()
        finally:
            self.model.train(was_training)
        self.counts["judged"] += len(p)
        self.counts["unparsed"] += int(np.isnan(p).sum())
        return p

    def _shown_first(self, prompts, first, second) -> np.ndarray:
        """P(first wins) with `first` shown in position A, on inputs already checked."""
        texts = [self.templates.pairwise_text(*x) for x in zip(prompts, first, second)]
        return self.verdict_probability(texts, self.pairwise_ids)

    def compare_orders(self, prompts, first, second) -> tuple[np.ndarray, np.ndarray]:
        """(P(first wins | shown first), P(first wins | shown second)): the two judgements
        that position-swap debiasing averages; they differ by the judge's position bias."""
        prompts, first, second = _check_pairs(prompts, first, second)
        return self._shown_first(prompts, first, second), 1 - self._shown_first(prompts, second, first)

    def compare(self, prompts, first, second, *, debias: bool | None = None) -> np.ndarray:
        """P(first is better); with debiasing, the mean of the two orders' judgements
        (`compare_orders`). A pair is unparsed if either order is."""
        if self.debias if debias is None else debias:
            return np.mean(self.compare_orders(prompts, first, second), axis=0)
        return self._shown_first(*_check_pairs(prompts, first, second))

    def score(self, prompts, responses) -> np.ndarray:
        """P(Yes) under the pointwise template: the generative verifier's reward."""
        prompts = _check_texts("prompts", prompts)
        responses = _check_texts("responses", responses, len(prompts))
        texts = [self.templates.pointwise_text(p, r) for p, r in zip(prompts, responses)]
        return self.verdict_probability(texts, self.pointwise_ids)


# ---------------------------------------------------------------- generative verifier (GenRM)


@dataclass(frozen=True)
class VerifierConfig:
    """Hyper-parameters of `train_verifier` (GenRM's supervised fine-tuning)."""

    learning_rate: float = 1e-3
    """AdamW step size; 1e-3 suits the zoo's full fine-tuning, ~1e-4 LoRA adapters."""
    epochs: int = 2
    """Passes over the examples."""
    batch_size: int = 64
    """Examples per step."""
    seed: int = 0
    """Fixes the data order."""
    output_dir: str | None = None
    """Where checkpoints go; a run whose directory holds one resumes from it."""
    save_steps: int = 200
    """Write a checkpoint every this many steps (and at the end)."""

    def __post_init__(self):
        check_range("learning_rate", self.learning_rate, 0, low_open=True)
        for name in ("epochs", "batch_size", "save_steps"):
            check_type(name, getattr(self, name), int)
            check_range(name, getattr(self, name), 1)


def verifier_examples(rows: list[dict]) -> list[tuple[str, str, bool]]:
    """(prompt, response, is_good) from preference rows: a pair's chosen response is a
    positive and its rejected one a negative; unpaired rows ({"prompt", "completion",
    "label"}, TRL's KTO format) keep their label."""
    check_type("rows", rows, list)
    if not rows:
        raise ValueError("no rows to train a verifier on")
    if all("completion" in r and "label" in r for r in rows):
        out = []
        for i, r in enumerate(rows):
            if not isinstance(r["label"], (bool, np.bool_)):
                raise PreferenceDataError(f"row {i}: 'label' must be a bool, got {r['label']!r}")
            out.append((r["prompt"], r["completion"].strip(), bool(r["label"])))
        return out
    rows = validate_preference_rows(rows)
    return [x for r in rows for x in ((r["prompt"], r["chosen"].strip(), True), (r["prompt"], r["rejected"].strip(), False))]


def train_verifier(judge: LLMJudge, config: VerifierConfig | None, rows: list[dict], *, progress: bool = False) -> LLMJudge:
    """Fine-tune a judge's model to emit the verdict token: a generative verifier (GenRM,
    Zhang et al. 2024, arXiv 2408.15240; chapter 05).

    Next-token prediction on "pointwise template -> Yes" for good responses and "-> No" for
    bad ones, the cross-entropy over the whole vocabulary as in SFT; afterwards P(Yes) is
    the reward. Rows are preference pairs or unpaired labelled rows (`verifier_examples`).
    Trains `judge.model` in place (its adapters only, under QLoRA; the judge carries its
    tokenizer) and returns the judge, its `history` holding each step's loss.
    """
    config = config or VerifierConfig()
    examples = verifier_examples(rows)
    texts = [judge.templates.pointwise_text(p, r) for p, r, _ in examples]
    targets = torch.tensor([judge.pointwise_ids[0] if good else judge.pointwise_ids[1] for *_, good in examples])
    model = judge.model
    n, batch = len(texts), min(config.batch_size, len(texts))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate, weight_decay=0.0)
    loop = TrainingLoop(model, optimizer, config, texts, targets.tolist())
    model.train()
    for step in loop.steps(config.epochs * math.ceil(n / batch), "verifier", progress):
        index = epoch_batch(step, n, batch, config.seed)
        logits = next_token_logits(model, judge.tokenizer, [texts[i] for i in index])
        loss = torch.nn.functional.cross_entropy(logits, targets[index].to(logits.device))
        loop.update(loss, step, rows=index)
        loop.record(step, {"step": step, "loss": loss.item()})
    model.eval()
    judge.history = loop.history
    return judge


# ---------------------------------------------------------------- rule-based rewards


@dataclass(frozen=True)
class Rule:
    """One proposition of a rubric: `check(prompt, response)` in [0, 1] (1: it holds)."""

    name: str
    check: Callable[[str, str], float]
    weight: float = 1.0
    """Its contribution when it holds; negative for an undesired property."""
    description: str = ""


@dataclass
class Rubric(Judge):
    """Rule-based rewards (Mu et al. 2024, RBR, arXiv 2411.01111; chapter 05).

    reward(x, y) = bias + sum_i weight_i * rule_i(x, y). Each rule is a proposition about
    the response, scored programmatically (or by a judge's P(Yes)); `contributions` shows
    what each added. As in RBR, the weights can be fitted (`fit`) so that the reward ranks
    preferred responses above rejected ones, on top of an existing reward model's score.
    A rule that raises or returns a non-finite value is reported by name and row.
    """

    rules: list[Rule]
    bias: float = 0.0

    def __post_init__(self):
        check_type("rules", self.rules, list)
        if not self.rules:
            raise ValueError("a rubric needs at least one rule")
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique, got {names}")
        for r in self.rules:
            if not callable(r.check):
                raise TypeError(f"rule {r.name!r}: check must be callable as check(prompt, response)")
            check_range(f"weight of rule {r.name!r}", r.weight)

    @property
    def weights(self) -> np.ndarray:
        return np.array([r.weight for r in self.rules], dtype=np.float64)

    def features(self, prompts, responses) -> np.ndarray:
        """Each rule's value on each response: [n, rules]."""
        prompts = _check_texts("prompts", prompts)
        responses = _check_texts("responses", responses, len(prompts))
        out = np.empty((len(prompts), len(self.rules)))
        for j, rule in enumerate(self.rules):
            for i, (p, r) in enumerate(zip(prompts, responses)):
                try:
                    value = float(rule.check(p, r))
                except Exception as err:
                    raise ValueError(f"rule {rule.name!r} raised {type(err).__name__}: {err} on row {i} ({r!r})") from err
                if not math.isfinite(value):
                    raise ValueError(f"rule {rule.name!r} returned {value} on row {i} ({r!r}); rules must return finite numbers")
                out[i, j] = value
        return out

    def contributions(self, prompts, responses) -> dict[str, np.ndarray]:
        """What each rule adds to each response's reward (weight x value), by rule name."""
        f = self.features(prompts, responses) * self.weights
        return {r.name: f[:, j] for j, r in enumerate(self.rules)}

    def score(self, prompts, responses) -> np.ndarray:
        return self.bias + self.features(prompts, responses) @ self.weights

    def compare(self, prompts, first, second) -> np.ndarray:
        """Bradley-Terry on the rubric's rewards: sigmoid(r(first) - r(second))."""
        return 1 / (1 + np.exp(-(self.score(prompts, first) - self.score(prompts, second))))

    def fit(self, rows: list[dict], *, base_reward=None, l2: float = 1e-2, steps: int = 300) -> Rubric:
        """A copy with weights fitted to preference rows (RBR's weight fitting).

        Minimises -log sigmoid(base(chosen) - base(rejected) + w . (f(chosen) - f(rejected)))
        + l2 |w|^2 over the rule weights w, where `base_reward` (e.g. a reward model;
        None: zero) is the score the rubric is added to, as RBR adds it to a
        helpful-only reward model. The bias cancels in a comparison and is kept."""
        rows = validate_preference_rows(rows)
        check_range("l2", l2, 0)
        prompts = [r["prompt"] for r in rows]
        chosen, rejected = [r["chosen"].strip() for r in rows], [r["rejected"].strip() for r in rows]
        diff = torch.tensor(self.features(prompts, chosen) - self.features(prompts, rejected))
        offset = torch.zeros(len(rows), dtype=torch.float64)
        if base_reward is not None:
            offset = torch.tensor(np.asarray(base_reward(prompts, chosen)) - np.asarray(base_reward(prompts, rejected)), dtype=torch.float64)
        w = torch.tensor(self.weights, requires_grad=True)
        optimizer = torch.optim.LBFGS([w], max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = -torch.nn.functional.logsigmoid(offset + diff @ w).mean() + l2 * (w**2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return Rubric([replace(r, weight=float(v)) for r, v in zip(self.rules, w.detach().tolist())], self.bias)
