"""Query-string and body parsing with one kind of error: 400 naming the parameter and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request

from runicorn_lite.api.errors import bad_request
from runicorn_lite.http.body import read_body
from runicorn_lite.http.text import control_character

MAX_PARAM_LEN = 2000
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _raw(params: QueryParams, name: str) -> str | None:
    """A stripped parameter value ("" when given empty); None when absent."""
    values = params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise bad_request(f"Parameter '{name}' was given {len(values)} times; give it once")
    value = values[0].strip()
    if len(value) > MAX_PARAM_LEN:
        raise bad_request(f"Parameter '{name}' is too long (at most {MAX_PARAM_LEN} characters)")
    if "\x00" in value:
        raise bad_request(f"Parameter '{name}' contains a NUL character")
    return value


def _typed(params: QueryParams, name: str, expected: str) -> str | None:
    """The value of a typed parameter: None when absent, a 400 when given empty (``flag=`` is
    neither true nor false)."""
    raw = _raw(params, name)
    if raw == "":
        raise bad_request(f"Parameter '{name}' is empty: give {expected}, or leave it out")
    return raw


def get_str(params: QueryParams, name: str) -> str | None:
    """A stripped string parameter; None when absent or empty."""
    return _raw(params, name) or None


def get_int(params: QueryParams, name: str, default: int, lo: int, hi: int) -> int:
    """An integer in [lo, hi]."""
    raw = _typed(params, name, f"an integer between {lo} and {hi}")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"Parameter '{name}' must be an integer between {lo} and {hi}, got '{raw}'") from None
    if not lo <= value <= hi:
        raise bad_request(f"Parameter '{name}' must be between {lo} and {hi}, got {value}")
    return value


def get_float(params: QueryParams, name: str) -> float | None:
    """A finite number, or None when absent."""
    raw = _typed(params, name, "a number")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(f"Parameter '{name}' must be a number, got '{raw}'") from None
    if not math.isfinite(value):
        raise bad_request(f"Parameter '{name}' must be a finite number, got '{raw}'")
    return value


def get_bool(params: QueryParams, name: str, default: bool) -> bool:
    """true/false (also 1/0, yes/no, on/off)."""
    raw = _typed(params, name, "true or false")
    if raw is None:
        return default
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise bad_request(f"Parameter '{name}' must be true or false, got '{raw}'")


def get_choice(params: QueryParams, name: str, default: str, allowed: Collection[str]) -> str:
    """One of ``allowed``."""
    raw = _typed(params, name, f"one of {', '.join(allowed)}")
    if raw is None:
        return default
    if raw not in allowed:
        raise bad_request(f"Parameter '{name}' must be one of {', '.join(allowed)}; got '{raw}'")
    return raw


def get_csv(params: QueryParams, name: str, max_items: int = 100) -> list[str] | None:
    """A comma list (duplicates and empty items dropped); None when absent."""
    raw = get_str(params, name)
    if raw is None:
        return None
    items = list(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    if not items:
        return None
    if len(items) > max_items:
        raise bad_request(f"Parameter '{name}' takes at most {max_items} comma-separated values")
    return items


async def json_object(request: Request, max_bytes: int = 1 << 20) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says why not; a body over ``max_bytes``
    is refused with 413 while it arrives (:class:`BodyTooLarge`), never read whole."""
    body = await read_body(request, max_bytes)
    if not body.strip():
        raise bad_request("Request body is required: a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("Request body must be a JSON object")
    return data


def check_text(value: str, name: str, *, multiline: bool = False) -> str:
    """``value`` unchanged, or a 400 naming field ``name`` when it holds a control character
    (NUL included; tab and line breaks are allowed in ``multiline`` fields). Such characters
    make runs unsearchable and break the files and terminals that show them."""
    at = control_character(value, multiline=multiline)
    if at is not None:
        raise bad_request(f"Field '{name}' contains a control character (U+{ord(value[at]):04X}) at position {at}")
    return value
