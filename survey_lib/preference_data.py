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
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from trl.data_utils import maybe_extract_prompt

from ._checks import check_range, check_type
from .generation import sample_completions
from .world.annotators import SimulatedAnnotators
from .world.text import COPULAS, END, NEGATIVE, TextWorld

ROLES = ("system", "user", "assistant", "tool")
DATA_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


class PreferenceDataError(ValueError):
    """A preference row is malformed; the message names the row and the field."""


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
            m = row["margin"]
            if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m):
                raise PreferenceDataError(f"row {i}: 'margin' must be a finite number, got {m!r}")
        out.append(row)
    if not out:
        raise PreferenceDataError("no preference rows")
    return out


def load_preference_dataset(name_or_path: str | os.PathLike, split: str = "train", limit: int | None = None) -> list[dict]:
    """Load and validate preference rows from a local file or directory, or the Hub.

    Args:
        name_or_path: a .json/.jsonl/.parquet/.csv file, a directory written by
            `datasets.Dataset.save_to_disk`, or a Hub dataset id such as
            "trl-lib/ultrafeedback_binarized" or "Anthropic/hh-rlhf" (GPU profiles).
        split: the split to read (files have a single "train" split).
        limit: keep the first `limit` rows.
    """
    import datasets

    path = Path(os.fspath(name_or_path))
    if path.is_file():
        check_type("split", split, str)
        builder = DATA_FILE_BUILDERS.get(path.suffix)
        if builder is None:
            raise ValueError(f"unsupported file type {path.suffix!r} for {path}; use one of {sorted(DATA_FILE_BUILDERS)}")
        dataset = datasets.load_dataset(builder, data_files=str(path), split="train")
    elif path.is_dir():
        dataset = datasets.load_from_disk(str(path))
        if isinstance(dataset, datasets.DatasetDict):
            dataset = dataset[split]
    else:
        try:
            dataset = datasets.load_dataset(os.fspath(name_or_path), split=split)
        except (OSError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as err:
            from .models import HubUnavailableError

            raise HubUnavailableError(
                f"could not load dataset {os.fspath(name_or_path)!r} from the Hub or its cache ({err.__class__.__name__}); "
                "offline, pass a local file or use the tiny profile's text-world pairs"
            ) from err
    if limit is not None:
        check_range("limit", limit, 1)
        dataset = dataset.select(range(min(limit, len(dataset))))
    return validate_preference_rows(list(dataset))


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

    def without_empty(self) -> ResponsePairs:
        """The pairs whose two responses both have text (a response that is only the
        end-of-sequence token cannot be a preference row's side)."""
        return self.select([i for i, (a, b) in enumerate(zip(self.first, self.second)) if a.strip() and b.strip()])

    def label(self, annotators: SimulatedAnnotators, *, margin: bool = False, rng: np.random.Generator | None = None) -> list[dict]:
        """Rows labelled by simulated annotators (chapter 03's "human" feedback)."""
        labels = annotators.label(self.prompts, self.first, self.second, rng)
        return labels.to_rows(self.prompts, self.first, self.second, margin=margin)

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
        rows = [
            {"prompt": p, "chosen": " " + (a if d > 0 else b), "rejected": " " + (b if d > 0 else a)}
            for p, a, b, d in zip(self.prompts, self.first, self.second, gap)
        ]
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
    policy, as InstructGPT's comparisons were (2203.02155). When both answers coincide
    the second is sampled again (up to `max_resamples` rounds), since a pair of identical
    responses carries no preference."""
    check_range("n_pairs", n_pairs, 1)
    rng = np.random.default_rng(seed)
    prompts = [world.prompts[i] for i in rng.integers(len(world.prompts), size=n_pairs)]
    completions = sample_completions(model, tokenizer, prompts * 2, temperature=temperature, seed=seed, progress=progress)
    first, second = completions[:n_pairs], completions[n_pairs:]
    check_range("max_resamples", max_resamples, 0)
    for round_ in range(max_resamples + 1):  # check after every resample, the last one included
        same = [i for i in range(n_pairs) if first[i] == second[i]]
        if not same:
            return ResponsePairs(prompts, first, second)
        if round_ < max_resamples:
            again = sample_completions(model, tokenizer, [prompts[i] for i in same], temperature=temperature)
            for i, c in zip(same, again):
                second[i] = c
    raise ValueError(
        f"{len(same)} pairs still have identical responses after {max_resamples} resamples; "
        "the policy is nearly deterministic on these prompts (raise the temperature)"
    )


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
        rows.append({"prompt": prompt, "chosen": " " + " ".join(words), "rejected": " " + " ".join(worse + ["."])})
    return rows
