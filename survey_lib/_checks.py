"""Argument checks shared by every public entry point: errors name the parameter."""
from __future__ import annotations

import math
from collections.abc import Iterable


def check_choice(name: str, value, choices: Iterable) -> None:
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(map(repr, choices))}")


def check_type(name: str, value, types) -> None:
    # bool is an int subclass; a flag passed as a size is a mistake worth catching.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise TypeError(f"{name} must be {_type_names(types)}, got bool {value!r}")
    if not isinstance(value, types):
        raise TypeError(f"{name} must be {_type_names(types)}, got {type(value).__name__} {value!r}")


def check_range(name: str, value, low=None, high=None, *, low_open=False, high_open=False) -> None:
    """Check `low <= value <= high` (or strict where `*_open`); also rejects NaN."""
    check_type(name, value, (int, float))
    bad = isinstance(value, float) and math.isnan(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "" if low is None else f"{low} {'<' if low_open else '<='} "
        hi = "" if high is None else f" {'<' if high_open else '<='} {high}"
        raise ValueError(f"{name} must satisfy {lo}{name}{hi}, got {value!r}")


def _type_names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in types)
