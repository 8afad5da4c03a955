"""Rows of a dataset, from a local file, a `save_to_disk` directory or the Hugging Face Hub.

Defined for chapter 03 (preference datasets, `preference_data.load_preference_dataset`) and
the worlds of the real-model profiles (prompt sets, `world.chat.load_prompts`): one loader,
so that every dataset the book reads is found the same way and fails the same way offline.
"""
from __future__ import annotations

import os
from pathlib import Path

from ._checks import check_range, check_type

DATA_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


class HubUnavailableError(OSError):
    """A Hub model or dataset could not be loaded: no network and not in the local cache."""


def load_rows(name_or_path: str | os.PathLike, split: str = "train", limit: int | None = None, *,
              subset: str | None = None, offline_hint: str = "pass a local file or use the tiny profile") -> list[dict]:
    """The rows of a dataset as plain dicts.

    Args:
        name_or_path: a .json/.jsonl/.parquet/.csv file, a directory written by
            `datasets.Dataset.save_to_disk`, or a Hub dataset id ("org/name").
        split: the split to read (a file has a single "train" split).
        limit: keep the first `limit` rows.
        subset: a Hub dataset's configuration, where it has several ("main" for GSM8K).
        offline_hint: what the error suggests when a Hub id cannot be loaded.
    """
    import datasets

    check_type("split", split, str)
    path = Path(os.fspath(name_or_path))
    if path.is_file():
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
            dataset = datasets.load_dataset(os.fspath(name_or_path), subset, split=split)
        except (OSError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as err:
            raise HubUnavailableError(
                f"could not load dataset {os.fspath(name_or_path)!r} from the Hub or its cache ({err.__class__.__name__}); "
                f"offline, {offline_hint}"
            ) from err
    if limit is not None:
        check_range("limit", limit, 1)
        dataset = dataset.select(range(min(limit, len(dataset))))
    return list(dataset)
