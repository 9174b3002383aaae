"""Validation of query strings and JSON bodies, with zod-like messages.

Every problem is collected (not just the first) into an :class:`Issues`, then raised as one 400.
Booleans are never numbers, null is never an object, non-finite numbers never pass, unknown
fields are ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from runicorn_lite.http.errors import HTTPProblem
from runicorn_lite.http.text import control_character
from runicorn_lite.optimization.errors import INVALID_BODY, INVALID_QUERY, Issues, invalid
from runicorn_lite.optimization.model import (
    DIRECTIONS,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    LIMIT_MIN,
    MAX_BATCH,
    MAX_ERROR_MESSAGE,
    MAX_INT,
    MAX_PROJECT_ID,
    MAX_RUN_NAME,
    OPTIMIZER_TYPES,
    ORDER_BY,
    ORDERS,
    STATUSES,
    UUID_PATTERN,
    ListQuery,
    StatsQuery,
)
from runicorn_lite.timeutil import format_iso, parse_iso

MAX_DEPTH = 254  # orjson writes no deeper than this
_UUID = re.compile(UUID_PATTERN)
_MISSING = object()


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _enum_message(allowed: tuple[str, ...], value: Any) -> str:
    expected = " | ".join(f"'{a}'" for a in allowed)
    if isinstance(value, str):
        return f"Invalid enum value. Expected {expected}, received '{value}'"
    return f"Expected {expected}, received {type_name(value)}"


# ---- JSON bodies -------------------------------------------------------------------------------


def load_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400."""
    if not raw.strip():
        raise invalid(INVALID_BODY, form="Request body must be a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid(INVALID_BODY, form="Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid(INVALID_BODY, form=f"Expected object, received {type_name(body)}")
    return body


class _Body:
    """Field readers over one JSON object; each records its problem under the field's path."""

    def __init__(self, data: Mapping[str, Any], issues: Issues, prefix: str = "") -> None:
        self.data = data
        self.issues = issues
        self.prefix = prefix

    def _fail(self, name: str, message: str) -> None:
        self.issues.add(self.prefix + name, message)

    def get(self, name: str, *, required: bool) -> Any:
        value = self.data.get(name, _MISSING)
        if value is _MISSING and required:
            self._fail(name, "Required")
        return value

    def string(self, name: str, *, required: bool = False, max_len: int, multiline: bool = False) -> Any:
        value = self.get(name, required=required)
        if value is _MISSING:
            return value
        if not isinstance(value, str):
            self._fail(name, f"Expected string, received {type_name(value)}")
            return _MISSING
        if len(value) > max_len:
            self._fail(name, f"String must contain at most {max_len} character(s)")
            return _MISSING
        at = control_character(value, multiline=multiline)
        if at is not None:  # NUL and escapes make runs unsearchable and break what displays them
            self._fail(name, f"String must not contain control characters (U+{ord(value[at]):04X} at {at})")
            return _MISSING
        return value

    def enum(self, name: str, allowed: tuple[str, ...], *, required: bool = False) -> Any:
        value = self.get(name, required=required)
        if value is _MISSING:
            return value
        if value not in allowed or not isinstance(value, str):
            self._fail(name, _enum_message(allowed, value))
            return _MISSING
        return value

    def obj(self, name: str, *, required: bool = False) -> Any:
        """A JSON object, returned as its compact JSON text (what the store keeps)."""
        value = self.get(name, required=required)
        if value is _MISSING:
            return value
        if not isinstance(value, dict):
            self._fail(name, f"Expected object, received {type_name(value)}")
            return _MISSING
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError:
            # The parser takes deeper documents than the encoder writes back.
            self._fail(name, f"Object must be nested at most {MAX_DEPTH} levels deep")
            return _MISSING

    def number(self, name: str, *, required: bool = False) -> Any:
        value = self.get(name, required=required)
        if value is _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._fail(name, f"Expected number, received {type_name(value)}")
            return _MISSING
        value = float(value)
        if not math.isfinite(value):
            self._fail(name, "Number must be finite")
            return _MISSING
        return value

    def integer(self, name: str, *, required: bool = False, minimum: int = 0) -> Any:
        value = self.get(name, required=required)
        if value is _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._fail(name, f"Expected integer, received {type_name(value)}")
            return _MISSING
        if isinstance(value, float):
            # JSON has one number type; 50.0 is the integer 50 to a JavaScript client.
            if not math.isfinite(value) or not value.is_integer():
                self._fail(name, "Expected integer, received float")
                return _MISSING
            value = int(value)
        if value < minimum:
            self._fail(name, f"Number must be greater than or equal to {minimum}")
            return _MISSING
        if value > MAX_INT:
            self._fail(name, f"Number must be less than or equal to {MAX_INT}")
            return _MISSING
        return value

    def timestamp(self, name: str) -> Any:
        value = self.get(name, required=False)
        if value is _MISSING:
            return value
        if not isinstance(value, str):
            self._fail(name, f"Expected string, received {type_name(value)}")
            return _MISSING
        moment = parse_iso(value)
        if moment is None:
            self._fail(name, "Invalid datetime (expected ISO-8601)")
            return _MISSING
        return format_iso(moment)


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not _MISSING}


def parse_create_run(raw: bytes) -> dict[str, Any]:
    """Fields of a new run (JSON objects as text); a 400 listing every problem otherwise."""
    data = load_object(raw)
    issues = Issues()
    b = _Body(data, issues)
    fields = {
        # Not stored from here (the key decides the project): checked by the caller.
        "project_id": b.string("project_id", max_len=MAX_PROJECT_ID),
        "run_name": b.string("run_name", max_len=MAX_RUN_NAME),
        "optimizer_type": b.enum("optimizer_type", OPTIMIZER_TYPES, required=True),
        "config": b.obj("config", required=True),
        "search_space": b.obj("search_space"),
        "metadata": b.obj("metadata"),
        "direction": b.enum("direction", DIRECTIONS),
    }
    issues.raise_if_any(INVALID_BODY)
    return _present(fields)


def parse_patch_run(raw: bytes) -> dict[str, Any]:
    """The fields a PATCH sets (only those given)."""
    data = load_object(raw)
    issues = Issues()
    b = _Body(data, issues)
    fields = {
        "status": b.enum("status", STATUSES),
        "final_score": b.number("final_score"),
        "best_params": b.obj("best_params"),
        "iterations_count": b.integer("iterations_count"),
        "duration_ms": b.integer("duration_ms"),
        "completed_at": b.timestamp("completed_at"),
        "error_message": b.string("error_message", max_len=MAX_ERROR_MESSAGE, multiline=True),
        "metadata": b.obj("metadata"),
        "run_name": b.string("run_name", max_len=MAX_RUN_NAME),
    }
    issues.raise_if_any(INVALID_BODY)
    return _present(fields)


def _iteration_fields(b: _Body) -> dict[str, Any]:
    return {
        "iteration_number": b.integer("iteration_number", required=True),
        "params": b.obj("params", required=True),
        "score": b.number("score", required=True),
        "metrics": b.obj("metrics"),
        "metadata": b.obj("metadata"),
        "duration_ms": b.integer("duration_ms"),
    }


def parse_iteration(raw: bytes) -> dict[str, Any]:
    data = load_object(raw)
    issues = Issues()
    fields = _iteration_fields(_Body(data, issues))
    issues.raise_if_any(INVALID_BODY)
    return _present(fields)


def parse_iteration_batch(raw: bytes) -> list[dict[str, Any]]:
    """``{"iterations": [...]}``: 1 to 1000 iterations, each validated like a single one."""
    data = load_object(raw)
    issues = Issues()
    items = data.get("iterations", _MISSING)
    if items is _MISSING:
        issues.add("iterations", "Required")
    elif not isinstance(items, list):
        issues.add("iterations", f"Expected array, received {type_name(items)}")
    elif not items:
        issues.add("iterations", "Array must contain at least 1 element(s)")
    elif len(items) > MAX_BATCH:
        issues.add("iterations", f"Array must contain at most {MAX_BATCH} element(s)")
    issues.raise_if_any(INVALID_BODY)
    parsed = []
    for index, item in enumerate(items):
        path = f"iterations.{index}"
        if not isinstance(item, dict):
            issues.add(path, f"Expected object, received {type_name(item)}")
            continue
        parsed.append(_present(_iteration_fields(_Body(item, issues, prefix=path + "."))))
    issues.raise_if_any(INVALID_BODY)
    return parsed


# ---- path and query ------------------------------------------------------------------------------


def parse_run_id(value: str) -> str:
    """A canonical (lower-case, hyphenated) UUID, or a 400."""
    if not _UUID.fullmatch(value):
        raise HTTPProblem(
            400,
            "Invalid run ID format",
            hint="Run IDs are UUIDs, e.g. 550e8400-e29b-41d4-a716-446655440000",
        )
    return value.lower()


def _query_enum(
    params: Mapping[str, str], name: str, allowed: tuple[str, ...], issues: Issues
) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if value not in allowed:
        issues.add(name, _enum_message(allowed, value))
        return None
    return value


_QUERY_INT = re.compile(r"[+-]?[0-9]{1,30}")
# Only to word the error like zod does ("received float" for limit=1.5).
_QUERY_FLOAT = re.compile(
    r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?[0-9]+[eE][+-]?[0-9]+"
)


def _query_int(params: Mapping[str, str], name: str, default: int, issues: Issues) -> int | None:
    """An integer query parameter in plain decimal (no ``1_0``, no Unicode digits)."""
    raw = params.get(name)
    if raw is None:
        return default
    if not _QUERY_INT.fullmatch(raw.strip()):
        received = "float" if _QUERY_FLOAT.fullmatch(raw.strip()) else "string"
        issues.add(name, f"Expected integer, received {received}")
        return None
    return int(raw.strip())


def parse_list_query(params: Mapping[str, str]) -> ListQuery:
    issues = Issues()
    status = _query_enum(params, "status", STATUSES, issues)
    optimizer_type = _query_enum(params, "optimizer_type", OPTIMIZER_TYPES, issues)
    order_by = _query_enum(params, "order_by", ORDER_BY, issues) or "created_at"
    order = _query_enum(params, "order", ORDERS, issues) or "desc"

    limit = _query_int(params, "limit", LIMIT_DEFAULT, issues)
    if limit is not None and not LIMIT_MIN <= limit <= LIMIT_MAX:
        issues.add("limit", f"Must be between {LIMIT_MIN} and {LIMIT_MAX}")
    offset = _query_int(params, "offset", 0, issues)
    if offset is not None and not 0 <= offset <= MAX_INT:
        issues.add("offset", f"Must be between 0 and {MAX_INT}")

    issues.raise_if_any(INVALID_QUERY)
    assert limit is not None and offset is not None
    return ListQuery(status, optimizer_type, limit, offset, order_by, order)


_DECODED_PLUS = re.compile(r"^(.+T[0-9:.,]+) ([0-9]{2}(?::?[0-9]{2})?)$")


def parse_stats_query(params: Mapping[str, str]) -> StatsQuery:
    issues = Issues()
    status = _query_enum(params, "status", STATUSES, issues)
    optimizer_type = _query_enum(params, "optimizer_type", OPTIMIZER_TYPES, issues)
    dates: dict[str, str | None] = {"start_date": None, "end_date": None}
    for name in dates:
        raw = params.get(name)
        if raw is None:
            continue
        # An unencoded "+02:00" in a URL arrives as " 02:00" (form decoding): put the + back.
        raw = _DECODED_PLUS.sub(r"\1+\2", raw.strip())
        moment = parse_iso(raw, end_of_day=name == "end_date")
        if moment is None:
            issues.add(name, "Invalid datetime (expected ISO-8601, e.g. 2025-11-23T10:00:00Z)")
        else:
            dates[name] = format_iso(moment)
    start, end = dates["start_date"], dates["end_date"]
    if start is not None and end is not None and start > end:
        issues.add("end_date", "Must not be before start_date")
    issues.raise_if_any(INVALID_QUERY)
    return StatsQuery(status, optimizer_type, start, end)


def check_project_param(params: Mapping[str, str], project_id: str) -> None:
    """A ``project_id`` parameter may only name the key's own project (else 403)."""
    for requested in _all_values(params, "project_id"):
        check_project(requested, project_id)


def _all_values(params: Mapping[str, str], name: str) -> list[str]:
    getlist = getattr(params, "getlist", None)
    if getlist is not None:
        return list(getlist(name))
    value = params.get(name)
    return [] if value is None else [value]


def check_project(requested: str | None, project_id: str) -> None:
    """``requested`` (a project_id given by the client, or None) must be the key's project."""
    if requested is not None and requested != project_id:
        raise HTTPProblem(
            403,
            "Forbidden",
            hint="This API key can only access its own project's runs",
        )
