"""Query parameters declared once per endpoint: the declaration parses the request and writes the
endpoint's parameters in /openapi.json, so the two cannot disagree.

A :class:`Param` says a parameter's name, type, default, allowed values and limits; a
:class:`Query` holds an endpoint's parameters and parses a request's query string into their
values, refusing with 400 what it does not declare (a misspelled ``staus=finished`` would
otherwise be ignored and answer everything). Names that start with ``_`` are let through for
cache-busting. Every refusal names the parameter and says what is allowed.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from starlette.datastructures import QueryParams

from runicorn_lite.http.errors import HTTPProblem

MAX_PARAM_LEN = 2000
TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})
Kind = Literal["string", "integer", "number", "boolean", "list"]


def _bad(detail: str) -> HTTPProblem:
    return HTTPProblem(400, detail)


def _num(value: float) -> str:
    """1000000, not 1e+06."""
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Param:
    """One query parameter.

    ``list`` is a comma list (``status=running,failed``); its ``enum`` holds the allowed items.
    ``pattern`` admits values besides ``enum`` (``order_by=params.lr``). ``raw`` keeps a string
    as sent, spaces included (positions in its error messages count in it). A string given
    empty is absent; a typed value given empty (``page=``) is refused.
    """

    name: str
    kind: Kind
    description: str
    default: Any = None
    enum: Sequence[str] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_items: int | None = None
    max_length: int = MAX_PARAM_LEN
    required: bool = False
    unique: bool = True  # list items: repeats dropped (after max_items, which counts them)
    raw: bool = False
    expected: str | None = None  # how a refusal says what is allowed, when the enum does not

    def _allowed(self) -> str:
        if self.expected is not None:
            return self.expected
        if self.kind == "boolean":  # its enum: words it takes besides the booleans
            words = ["true", "false", *(self.enum or ())]
            return ", ".join(words[:-1]) + " or " + words[-1]
        if self.enum is not None:
            return "one of " + ", ".join(self.enum)
        if self.kind == "integer":
            lo = "" if self.minimum is None else f" from {_num(self.minimum)}"
            hi = "" if self.maximum is None else f" to {_num(self.maximum)}"
            return f"an integer{lo}{hi}"
        if self.kind == "number":
            return "a number"
        return "a value"

    def parse(self, params: QueryParams) -> Any:
        """This parameter's value in ``params`` (its default when absent)."""
        values = params.getlist(self.name)
        if not values:
            if self.required:
                raise _bad(f"Parameter '{self.name}' is required: {self._allowed()}")
            return self.default
        if len(values) > 1:
            raise _bad(f"Parameter '{self.name}' was given {len(values)} times; give it once")
        sent = values[0]
        if len(sent) > self.max_length:
            raise _bad(f"Parameter '{self.name}' is too long (at most {self.max_length} characters)")
        if "\x00" in sent:
            raise _bad(f"Parameter '{self.name}' contains a NUL character")
        text = sent.strip()
        if not text:
            if self.kind in ("string", "list") and not self.required:
                return self.default
            raise _bad(f"Parameter '{self.name}' is empty: give {self._allowed()}, or leave it out")
        return getattr(self, f"_{self.kind}")(sent if self.raw else text)

    def _string(self, text: str) -> str:
        if self.enum is not None and text not in self.enum and not (
            self.pattern is not None and re.match(self.pattern, text)
        ):
            raise _bad(f"Parameter '{self.name}' must be {self._allowed()}; got '{text[:200]}'")
        return text

    def _integer(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise _bad(f"Parameter '{self.name}' must be {self._allowed()}, got '{text[:200]}'") from None
        lo = -math.inf if self.minimum is None else self.minimum
        hi = math.inf if self.maximum is None else self.maximum
        if not lo <= value <= hi:
            raise _bad(f"Parameter '{self.name}' must be between {_num(lo)} and {_num(hi)}, got {value}")
        return value

    def _number(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _bad(f"Parameter '{self.name}' must be a number, got '{text[:200]}'") from None
        if not math.isfinite(value):
            raise _bad(f"Parameter '{self.name}' must be a finite number, got '{text[:200]}'")
        return value

    def _boolean(self, text: str) -> bool | str:
        low = text.lower()
        if low in TRUE:
            return True
        if low in FALSE:
            return False
        if self.enum is not None and low in self.enum:
            return low
        raise _bad(f"Parameter '{self.name}' must be {self._allowed()}, got '{text[:200]}'")

    def _list(self, text: str) -> list[str] | None:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if self.max_items is not None and len(items) > self.max_items:
            if self.expected is not None:
                raise _bad(f"Parameter '{self.name}' takes {self.expected}, got {len(items)}")
            raise _bad(f"Parameter '{self.name}' takes at most {self.max_items} comma-separated values")
        if self.unique:
            items = list(dict.fromkeys(items))
        if self.enum is not None:
            bad = [item for item in items if item not in self.enum]
            if bad:
                raise _bad(
                    f"Parameter '{self.name}' has unknown value(s) {', '.join(b[:100] for b in bad[:20])};"
                    f" allowed: {', '.join(self.enum)}"
                )
        if not items:
            if self.required:
                raise _bad(f"Parameter '{self.name}' is required: {self._allowed()}")
            default: list[str] | None = self.default
            return default
        return items

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the value, as /openapi.json shows it."""
        if self.kind == "list":
            return self._list_schema()
        schema: dict[str, Any] = {"type": self.kind}
        if self.kind == "boolean" and self.enum is not None:
            schema = {"anyOf": [{"type": "boolean"}, {"type": "string", "enum": list(self.enum)}]}
        if self.kind == "string":
            self._add_string_schema(schema)
        if self.minimum is not None:
            schema["minimum"] = int(self.minimum) if self.kind == "integer" else self.minimum
        if self.maximum is not None:
            schema["maximum"] = int(self.maximum) if self.kind == "integer" else self.maximum
        if self.default is not None:
            schema["default"] = self.default
        return schema

    def _list_schema(self) -> dict[str, Any]:
        items: dict[str, Any] = {"type": "string"}
        if self.enum is not None:
            items["enum"] = list(self.enum)
        schema: dict[str, Any] = {"type": "array", "items": items}
        if self.required:
            schema["minItems"] = 1
        if self.max_items is not None:
            schema["maxItems"] = self.max_items
        return schema

    def _add_string_schema(self, schema: dict[str, Any]) -> None:
        if self.enum is not None and self.pattern is not None:
            schema["anyOf"] = [{"enum": list(self.enum)}, {"pattern": self.pattern}]
        elif self.enum is not None:
            schema["enum"] = list(self.enum)
        elif self.pattern is not None:
            schema["pattern"] = self.pattern
        if self.max_length != MAX_PARAM_LEN or self.raw:
            schema["maxLength"] = self.max_length

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        out: dict[str, Any] = {"name": self.name, "in": "query", "required": self.required,
                               "schema": self.schema(), "description": self.description}
        if self.kind == "list":
            out["style"], out["explode"] = "form", False  # one comma-separated value
        return out


class Values(Mapping[str, Any]):
    """The parsed values of a request, by parameter name."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class Query:
    """The query parameters of one endpoint. ``strict`` refuses names it does not declare."""

    params: tuple[Param, ...]
    strict: bool = True
    _by_name: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})
        assert len(self._by_name) == len(self.params), "a parameter declared twice"

    @classmethod
    def of(cls, *params: Param, strict: bool = True) -> Query:
        return cls(tuple(params), strict)

    def with_(self, *params: Param) -> Query:
        """These parameters and more (a later one replaces one of the same name)."""
        names = {p.name for p in params}
        return replace(self, params=(*(p for p in self.params if p.name not in names), *params))

    def without(self, *names: str) -> Query:
        return replace(self, params=tuple(p for p in self.params if p.name not in names))

    def __getitem__(self, name: str) -> Param:
        return self._by_name[name]

    def parse(self, params: QueryParams) -> Values:
        """Every declared parameter's value; 400 for a malformed one or an unknown name."""
        if self.strict:
            unknown = [name for name in dict.fromkeys(params.keys()) if name not in self._by_name
                       and not name.startswith("_")]
            if unknown:
                raise self.unknown(unknown[0])
        return Values({p.name: p.parse(params) for p in self.params})

    def unknown(self, name: str) -> HTTPProblem:
        allowed = sorted(self._by_name)
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        listed = ", ".join(allowed) if allowed else "none"
        return _bad(
            f"Unknown parameter '{name[:100]}'{hint}; this endpoint takes: {listed}"
            " (names starting with _ are ignored, for cache-busting)"
        )

    def openapi(self) -> list[dict[str, Any]]:
        """The OpenAPI parameter objects of the endpoint."""
        return [p.openapi() for p in self.params]
