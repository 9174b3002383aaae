"""A run's params: its ``assets.json`` config flattened into one flat object of dotted keys.

``config.args`` is flattened with dotted keys (``{"optim": {"lr": 0.01}}`` → ``optim.lr``),
then ``config.extra`` under the prefix ``extra.``. Numbers stay numbers, booleans booleans,
strings strings, null null; a list or any other value is kept as its compact JSON text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson

ParamValue = bool | int | float | str | None

MAX_PARAMS = 1000
MAX_KEY_LENGTH = 256
# Longer string values are cut here: params are for reading and comparing, not for storage.
MAX_TEXT_LENGTH = 4096
_INT64 = (-(1 << 63), (1 << 63) - 1)


def flatten_config(config: object) -> tuple[dict[str, ParamValue], list[str]]:
    """(params, problems): the flat params of a ``config`` object and what was dropped or cut."""
    params: dict[str, ParamValue] = {}
    problems: list[str] = []
    if config is None:
        return params, problems
    if not isinstance(config, dict):
        return params, [f"config is a {type(config).__name__}, not an object"]
    dropped = 0
    for section, prefix in (("args", ""), ("extra", "extra.")):
        value = config.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(f"config.{section} is a {type(value).__name__}, not an object")
            continue
        for key, leaf in _walk(value, prefix):
            if len(params) >= MAX_PARAMS:
                dropped += 1
                continue
            if not key or len(key) > MAX_KEY_LENGTH or _has_control(key):
                problems.append(
                    f"param key {key[:40]!r}… dropped (empty, over {MAX_KEY_LENGTH} characters"
                    " or with control characters)"
                )
                continue
            converted = _value(leaf)
            if isinstance(converted, _Dropped):
                problems.append(f"param {key[:80]}: {converted.why}")
                continue
            params[key], problem = converted
            if problem:
                problems.append(f"param {key[:80]}: {problem}")
    if dropped:
        problems.append(f"{dropped} params over the limit of {MAX_PARAMS} dropped")
    return params, problems


def _walk(obj: dict[Any, Any], prefix: str) -> list[tuple[str, Any]]:
    """(dotted key, leaf value) pairs in file order; iterative, so that a deeply nested config
    cannot exhaust the stack."""
    out: list[tuple[str, Any]] = []
    stack: list[tuple[str, Iterator[tuple[Any, Any]]]] = [(prefix, iter(obj.items()))]
    while stack:
        base, items = stack[-1]
        for raw_key, value in items:
            key = f"{base}{raw_key}"
            if isinstance(value, dict) and value:
                stack.append((f"{key}.", iter(value.items())))
                break
            out.append((key, value))
        else:
            stack.pop()
    return out


class _Dropped(NamedTuple):
    """A value that is not kept as a param, and why."""

    why: str


def _value(value: object) -> tuple[ParamValue, str | None] | _Dropped:
    """(the param's value, what was changed to keep it) or why it was dropped."""
    if value is None or isinstance(value, bool):
        return value, None
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return value, None
        return float(value), None
    if isinstance(value, float):
        return (value, None) if math.isfinite(value) else (None, None)
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value).decode()
        except (TypeError, orjson.JSONEncodeError):
            return _Dropped("not JSON")
    if "\x00" in text:
        return _Dropped("a NUL character in its value; dropped")
    if len(text) > MAX_TEXT_LENGTH:
        return text[:MAX_TEXT_LENGTH], f"value cut to {MAX_TEXT_LENGTH} characters"
    return text, None


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None  # (a character loop: 8% of a cold index's time)


def index_value(value: ParamValue) -> int | float | str | None:
    """The value a param has in the index: booleans as 1 and 0, null as no row (None)."""
    if isinstance(value, bool):
        return int(value)
    return value
