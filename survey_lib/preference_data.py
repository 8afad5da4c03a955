"""Preference data: pairs sampled from a policy, labelled, validated, loaded from the Hub.

Defined for chapter 03 (RLHF I: reward models from human feedback) and used by every
chapter that learns from preferences (04, 05, 07, 08).

Rows follow TRL's preference formats, so the same rows feed `survey_lib` and TRL's
trainers:

    {"prompt": "the movie", "chosen": " was great .", "rejected": " was dull ."}       # plain
    {"prompt": [{"role": "user", "content": ...}],
     "chosen": [{"role": "assistant", "content": ...}], "rejected": [...]}             # conversational

The prompt may also be implicit (only "chosen" and "rejected", sharing a prefix), as in
HH-RLHF; TRL's `maybe_extract_prompt` splits it off. An optional "margin" (Llama 2) is a
finite number. `validate_preference_rows` checks all of it and names the offending row.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass

import numpy as np
from trl.data_utils import maybe_apply_chat_template, maybe_extract_prompt

from ._checks import check_choice, check_range, check_type
from .data_files import load_rows
from .generation import sample_completions
from .preference_config import DATA_FORMATS
from .world.annotators import LLAMA2_MARGIN, PreferenceLabels, SimulatedAnnotators
from .world.text import COPULAS, END, NEGATIVE, TextWorld

ROLES = ("system", "user", "assistant", "tool")


class PreferenceDataError(ValueError):
    """A preference row is malformed; the message names the row and the field."""


def response_field(prompt, response: str):
    """A sampled response as a row's "chosen", "rejected" or "completion" field (TRL's
    formats): after a plain-text prompt it gets a leading space, so that `prompt + response`
    is the full text, as TRL's trainers join them; after a conversational prompt it is the
    assistant's turn."""
    return [{"role": "assistant", "content": response}] if isinstance(prompt, list) else " " + response


def preference_row(prompt, winner: str, loser: str) -> dict:
    """A row in TRL's preference format, each response formatted by `response_field`."""
    return {"prompt": prompt, "chosen": response_field(prompt, winner), "rejected": response_field(prompt, loser)}


def labelled_rows(labels: PreferenceLabels, prompts, first, second, *, margin: bool = False) -> list[dict]:
    """Rows for pairs (first, second) labelled by simulated annotators (`labels`), each with
    the annotator's index; with `margin`, Llama 2's margin for the rating (2307.09288,
    section 3.2.2), which TRL's `RewardTrainer` and `survey_lib.reward_models` subtract."""
    rows = []
    for p, a, b, won, j, rating in zip(prompts, first, second, labels.first_preferred, labels.annotator, labels.rating):
        row = {**(preference_row(p, a, b) if won else preference_row(p, b, a)), "annotator": int(j)}
        if margin:
            row["margin"] = LLAMA2_MARGIN[rating]
        rows.append(row)
    return rows


def _check_side(i: int, field: str, value, conversational: bool) -> None:
    if conversational:
        if not isinstance(value, list) or not value:
            raise PreferenceDataError(f"row {i}: {field!r} must be a non-empty list of messages, got {value!r}")
        for k, message in enumerate(value):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise PreferenceDataError(f"row {i}: {field}[{k}] must be a dict with 'role' and 'content', got {message!r}")
            if message["role"] not in ROLES:
                raise PreferenceDataError(f"row {i}: {field}[{k}] has unknown role {message['role']!r}; valid roles: {ROLES}")
            if not isinstance(message["content"], str):
                raise PreferenceDataError(
                    f"row {i}: {field}[{k}]['content'] must be a string, got {type(message['content']).__name__}"
                )
            if not message["content"].strip():
                raise PreferenceDataError(f"row {i}: {field}[{k}]['content'] is empty")
    elif not isinstance(value, str):
        raise PreferenceDataError(f"row {i}: {field!r} must be a string or a list of messages, got {type(value).__name__}")
    elif not value.strip():
        raise PreferenceDataError(f"row {i}: {field!r} is empty")


def validate_preference_rows(rows) -> list[dict]:
    """Check preference rows and return them with an explicit prompt (TRL's format).

    Every row must have "chosen" and "rejected", both plain strings or both lists of
    {"role", "content"} messages, all rows in the same format, nothing empty, chosen and
    rejected different, and "margin", where present, a finite number. A row without a
    "prompt" has it split off as the shared prefix (TRL's `maybe_extract_prompt`). Other
    fields are kept. Raises `PreferenceDataError` naming the first bad row; nothing is
    dropped.
    """
    out, first_format = [], None
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise PreferenceDataError(f"row {i} must be a dict with 'chosen' and 'rejected', got {type(row).__name__}")
        missing = [f for f in ("chosen", "rejected") if row.get(f) is None]
        if missing:
            raise PreferenceDataError(f"row {i} has no {' or '.join(map(repr, missing))} (fields: {sorted(row)})")
        conversational = isinstance(row["chosen"], list)
        first_format = conversational if first_format is None else first_format
        if conversational != first_format:
            raise PreferenceDataError(
                f"row {i} is {'conversational' if conversational else 'plain text'} but row 0 is not; use one format"
            )
        for field in ("chosen", "rejected"):
            _check_side(i, field, row[field], conversational)
        if row["chosen"] == row["rejected"]:
            raise PreferenceDataError(f"row {i}: 'chosen' and 'rejected' are identical")
        row = {**row, **maybe_extract_prompt({k: row[k] for k in ("prompt", "chosen", "rejected") if row.get(k) is not None})}
        if "prompt" not in row or not row["prompt"]:
            raise PreferenceDataError(f"row {i} has no prompt, and 'chosen' and 'rejected' share no prefix to take as one")
        for field in ("prompt", "chosen", "rejected"):
            _check_side(i, field, row[field], conversational)
        if "margin" in row:
            _check_number(i, row["margin"], "'margin'")
        out.append(row)
    if not out:
        raise PreferenceDataError("no preference rows")
    return out


def _check_number(i: int, value, what: str) -> None:
    """A finite real number; a bool is a flag passed by mistake, not a number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise PreferenceDataError(f"row {i}: {what} must be a finite number, got {value!r}")


def _check_text(i: int, row: dict, field: str) -> None:
    value = row.get(field)
    if isinstance(value, list):
        raise PreferenceDataError(f"row {i}: {field!r} is a conversation; pass the tokenizer, whose chat template "
                                  "renders it (`prepare_rows(rows, data, tokenizer)`, as `train_preference` does)")
    if not isinstance(value, str) or not value.strip():
        raise PreferenceDataError(f"row {i}: {field!r} must be a non-empty string, got {value!r} (fields: {sorted(row)})")


def _check_ranked_row(i: int, row: dict) -> None:
    completions, rewards = row.get("completions"), row.get("rewards")
    if not isinstance(completions, list) or len(completions) < 2:
        raise PreferenceDataError(f"row {i}: 'completions' must be a list of at least 2 responses, got {completions!r}")
    for j, c in enumerate(completions):
        if not isinstance(c, str) or not c.strip():
            raise PreferenceDataError(f"row {i}: completion {j} must be a non-empty string, got {c!r}")
    if not isinstance(rewards, list) or len(rewards) != len(completions):
        raise PreferenceDataError(f"row {i}: 'rewards' must be a list with one number per completion, got {rewards!r}")
    for j, r in enumerate(rewards):
        _check_number(i, r, f"reward {j}")


def render_conversation(row, tokenizer):
    """A row of a single-response format (unpaired, negatives, rewarded, ranked) with a
    conversational prompt, rendered to text as TRL renders a prompt-completion row: the
    prompt with the generation prompt, each response (text or the assistant's messages) as
    the rest of the conversation. Other rows are returned as they are."""
    if not isinstance(row, dict) or not isinstance(row.get("prompt"), list):
        return row

    def render(response) -> dict:
        messages = response_field(row["prompt"], response) if isinstance(response, str) else response
        return maybe_apply_chat_template({"prompt": row["prompt"], "completion": messages}, tokenizer)

    rendered = dict(row)
    for field in ("completion", "rejected"):
        if isinstance(row.get(field), (str, list)):
            text = render(row[field])
            rendered["prompt"], rendered[field] = text["prompt"], text["completion"]
    if isinstance(row.get("completions"), list) and row["completions"]:
        texts = [render(c) for c in row["completions"]]
        rendered["prompt"], rendered["completions"] = texts[0]["prompt"], [t["completion"] for t in texts]
    return rendered


def prepare_rows(rows, data: str, tokenizer=None) -> list[dict]:
    """Validate rows for a loss's data format and convert pairs where the format allows
    (see the module docstring); conversations are rendered with the chat template.
    Raises `PreferenceDataError` naming the first bad row."""
    check_choice("data", data, DATA_FORMATS)
    rows = list(rows)
    if not rows:
        raise PreferenceDataError("no rows to train on")
    if any(isinstance(r, dict) and "chosen" in r for r in rows) and data in ("pairs", "unpaired", "negatives", "ranked"):
        rows = validate_preference_rows(rows)  # raises, naming the first row that is not a pair
        if tokenizer is not None:
            rows = [{**r, **maybe_apply_chat_template(r, tokenizer)} for r in rows]
        if data == "unpaired":  # TRL's unpair_preference_dataset
            return [{"prompt": r["prompt"], "completion": r[f], "label": f == "chosen"} for r in rows for f in ("chosen", "rejected")]
        if data == "ranked":  # a pair is a ranking of two
            return [{"prompt": r["prompt"], "completions": [r["chosen"], r["rejected"]], "rewards": [1.0, 0.0]} for r in rows]
        return [{"prompt": r["prompt"], "rejected": r["rejected"]} for r in rows] if data == "negatives" else rows
    if data == "pairs":
        return validate_preference_rows(rows)  # raises, naming the row without "chosen"
    fields = {"unpaired": ("completion", "label"), "negatives": ("rejected",), "rewarded": ("completion", "reward"),
              "ranked": ("completions",)}[data]
    rows = [render_conversation(row, tokenizer) for row in rows] if tokenizer is not None else rows
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise PreferenceDataError(f"row {i} must be a dict, got {type(row).__name__}")
        _check_text(i, row, "prompt")
        for field in fields:
            if field == "label":
                if not isinstance(row.get("label"), bool):
                    raise PreferenceDataError(f"row {i}: 'label' must be True (desirable) or False, got {row.get('label')!r}")
            elif field == "completions":
                _check_ranked_row(i, row)
            elif field == "reward":
                _check_number(i, row.get("reward"), "'reward'")
            else:
                _check_text(i, row, field)
    return rows


def load_preference_dataset(name_or_path: str | os.PathLike, split: str = "train", limit: int | None = None) -> list[dict]:
    """Load and validate preference rows from a local file or directory, or the Hub.

    Args:
        name_or_path: a .json/.jsonl/.parquet/.csv file, a directory written by
            `datasets.Dataset.save_to_disk`, or a Hub dataset id such as
            "trl-lib/ultrafeedback_binarized" or "Anthropic/hh-rlhf" (GPU profiles).
        split: the split to read (files have a single "train" split).
        limit: keep the first `limit` rows.
    """
    rows = load_rows(name_or_path, split, limit, offline_hint="pass a local file or use the tiny profile's text-world pairs")
    return validate_preference_rows(rows)


@dataclass
class ResponsePairs:
    """Two responses to each prompt, not yet labelled."""

    prompts: list[str]
    first: list[str]
    second: list[str]

    def __len__(self) -> int:
        return len(self.prompts)

    def select(self, index) -> ResponsePairs:
        return ResponsePairs(*([xs[i] for i in index] for xs in (self.prompts, self.first, self.second)))

    def label(self, annotators: SimulatedAnnotators, *, margin: bool = False, rng: np.random.Generator | None = None) -> list[dict]:
        """Rows labelled by simulated annotators (chapter 03's "human" feedback)."""
        labels = annotators.label(self.prompts, self.first, self.second, rng)
        return labelled_rows(labels, self.prompts, self.first, self.second, margin=margin)

    def gold_gap(self, world: TextWorld) -> np.ndarray:
        """gold(first) - gold(second) for each pair."""
        return world.gold_reward(self.prompts, self.first) - world.gold_reward(self.prompts, self.second)

    def gold_rows(self, world: TextWorld, gap: np.ndarray | None = None) -> tuple[list[dict], np.ndarray]:
        """Rows labelled by the gold reward, with each pair's gold margin |gold(a) - gold(b)|
        (`gap`, if given, is `gold_gap(world)` already computed). Exact gold ties have no
        correct label: pass pairs without ties."""
        gap = self.gold_gap(world) if gap is None else np.asarray(gap)
        ties = np.flatnonzero(gap == 0)
        if ties.size:
            raise ValueError(f"pairs {ties[:10].tolist()} are gold ties; select pairs with a nonzero gold gap first")
        rows = [preference_row(p, a, b) if d > 0 else preference_row(p, b, a)
                for p, a, b, d in zip(self.prompts, self.first, self.second, gap)]
        return rows, np.abs(gap)


def sample_response_pairs(
    model,
    tokenizer,
    world: TextWorld,
    n_pairs: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    max_resamples: int = 10,
    progress: bool = False,
) -> ResponsePairs:
    """`n_pairs` prompts drawn uniformly from the text world, each answered twice by the
    policy, as InstructGPT's comparisons were (2203.02155).

    A pair must be able to carry a preference: when its two answers coincide, or one is
    empty (the policy ended at once: a preference row's side cannot be empty), the
    offending answers are sampled again, up to `max_resamples` rounds; pairs still unusable
    then raise an error that names the count and the parameters to change. Resampling only
    happens for such pairs, so the other pairs are what the policy first sampled.
    """
    check_range("n_pairs", n_pairs, 1)
    check_range("max_resamples", max_resamples, 0)
    rng = np.random.default_rng(seed)
    prompts = [world.prompts[i] for i in rng.integers(len(world.prompts), size=n_pairs)]
    completions = sample_completions(model, tokenizer, prompts * 2, temperature=temperature, seed=seed, progress=progress)
    first, second = completions[:n_pairs], completions[n_pairs:]
    for round_ in range(max_resamples + 1):  # check after every resample, the last one included
        empty_first = [i for i in range(n_pairs) if not first[i].strip()]
        bad_second = [i for i in range(n_pairs) if not second[i].strip() or first[i] == second[i]]
        if not empty_first and not bad_second:
            return ResponsePairs(prompts, first, second)
        if round_ < max_resamples:
            redo = [(first, i) for i in empty_first] + [(second, i) for i in bad_second]
            again = sample_completions(model, tokenizer, [prompts[i] for _, i in redo], temperature=temperature)
            for (side, i), c in zip(redo, again):
                side[i] = c
    raise ValueError(
        f"{len(set(empty_first) | set(bad_second))} pairs still have an empty or two identical responses after "
        f"{max_resamples} resamples; the policy is nearly deterministic or ends at once on these prompts "
        "(raise the temperature or max_resamples)"
    )


def sample_candidates(model, tokenizer, prompts: list[str], k: int, *, temperature: float = 1.0, seed: int = 0,
                      max_resamples: int = 10) -> list[str]:
    """k responses to each prompt, prompt after prompt (the flat order `candidate_rows`
    groups), none empty: a response that is only end-of-sequence cannot be ranked or paired,
    so it is sampled again, up to `max_resamples` rounds (an error names the count and the
    parameters to change after that). RRHF's and PRO's ranked rows (chapter 04) and RSO's
    candidate pool (chapter 07) are drawn this way."""
    check_range("k", k, 1)
    check_range("max_resamples", max_resamples, 0)
    repeated = [p for p in prompts for _ in range(k)]
    candidates = sample_completions(model, tokenizer, repeated, temperature=temperature, seed=seed)
    for round_ in range(max_resamples + 1):
        empty = [i for i, c in enumerate(candidates) if not c.strip()]
        if not empty:
            return candidates
        if round_ < max_resamples:
            for i, c in zip(empty, sample_completions(model, tokenizer, [repeated[i] for i in empty], temperature=temperature)):
                candidates[i] = c
    raise ValueError(f"{len(empty)} candidates are still empty after {max_resamples} resamples; the policy ends at "
                     "once on these prompts (raise the temperature or max_resamples)")


def offset_bias_rows(prompts: list[str], responses: list[str], rng: np.random.Generator) -> list[dict]:
    """OffsetBias pairs (Park et al. 2024, arXiv 2407.06551, section 4) for the text world.

    OffsetBias offsets a judge's bias with pairs whose rejected response has the feature
    the judge wrongly likes (here: length) and a critical error. Each response y is paired
    with a longer y' that carries one of two errors, chosen at random: a negative clause
    ("y but it was dull .") or a repetition of itself ("y and it y ."). The label comes from
    the construction, never from an annotator; in the text world it agrees with the gold
    reward for about 90% of policy samples (chapter 03 measures it).
    """
    rows = []
    for i, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        words = response.split()
        if not words:
            raise ValueError(f"response {i} is empty")
        body = words[:-1] if words[-1] in END else words
        if rng.random() < 0.5:
            worse = body + ["but", "it", str(rng.choice(COPULAS)), str(rng.choice(NEGATIVE))]
        else:
            worse = body + ["and", "it"] + body
        rows.append(preference_row(prompt, " ".join(words), " ".join(worse + ["."])))
    return rows


def candidate_rows(prompts: list[str], candidates: list[str], rewards) -> list[dict]:
    """Scored candidates grouped per prompt, in the "ranked" format:
    {"prompt", "completions", "rewards"}.

    `candidates` holds the same number k of responses for each prompt, prompt after prompt
    (as sampled for `[p for p in prompts for _ in range(k)]`), and `rewards` one score per
    candidate in the same order. Chapter 04 trains RRHF and PRO on these rows; chapter 07
    draws RSO's pairs from them (`candidate_pairs`).
    """
    check_type("prompts", prompts, list)
    k, extra = divmod(len(candidates), len(prompts)) if prompts else (0, 0)
    if not k or extra or len(rewards) != len(candidates):
        raise ValueError(f"need the same number of candidates for each of {len(prompts)} prompts and one reward per "
                         f"candidate, got {len(candidates)} candidates and {len(rewards)} rewards")
    rewards = np.asarray(rewards, dtype=np.float64)
    return [{"prompt": p, "completions": candidates[i * k : (i + 1) * k], "rewards": rewards[i * k : (i + 1) * k].tolist()}
            for i, p in enumerate(prompts)]


def candidate_pairs(rows: list[dict], picks) -> ResponsePairs:
    """One pair per candidate row (`candidate_rows`): the two completions at `picks[i]` of
    row i. A pair whose two responses are the same text carries no preference and is
    dropped. Chapter 07 picks RSO's pairs by rejection sampling
    (`preference_losses.rejection_sample`), then labels them (`ResponsePairs.label`)."""
    if len(picks) != len(rows):
        raise ValueError(f"need one pick per row, got {len(picks)} picks for {len(rows)} rows")
    pairs = [(row["prompt"], row["completions"][a], row["completions"][b]) for row, (a, b) in zip(rows, picks)]
    distinct = [pair for pair in pairs if pair[1] != pair[2]]
    return ResponsePairs(*(list(xs) for xs in zip(*distinct))) if distinct else ResponsePairs([], [], [])
