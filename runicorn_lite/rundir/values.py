"""Normalising values read from files written by any SDK: numbers that fit the index, strings
that say something, tag lists without duplicates."""

from __future__ import annotations

import math

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return None


def as_int(value: object) -> int | None:
    """An integer that fits SQLite's int64 (whole floats included), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            return None
        value = int(value)
    if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return value
    return None


def str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def float_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def tag_list(value: object) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    seen: dict[str, None] = {}
    for tag in value:
        if isinstance(tag, str) and tag.strip():
            seen.setdefault(tag.strip(), None)
    return list(seen)
