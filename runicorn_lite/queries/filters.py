"""The ``filter=`` language and the ``order_by`` fields over params and metric summaries.

    expression := clause ( "and" clause )*
    clause     := field op value
    field      := "params." key | "metrics." name [ "." aggregate ]
    op         := "=" | "!=" | "<" | "<=" | ">" | ">="
    value      := number | 'single-quoted' | "double-quoted"
    key, name  := [A-Za-z0-9_.\\-/]+ or any text in backticks (a backtick doubled inside)

The parser turns user text into :class:`Clause` values and nothing else: keys, names and values
travel to SQL only as bound parameters, aggregates only as names from :data:`AGGREGATES`.
Errors are :class:`FilterError` with a message that says what is wrong and the position (counted
from 0, as Python's ``re`` does) where it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

AGGREGATES = ("last", "min", "max", "first", "count")
DEFAULT_AGGREGATE = "last"
OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
MAX_KEY_LENGTH = 256
MAX_CLAUSES = 32
MAX_STRING_LENGTH = 1000

_BARE_KEY = re.compile(r"[A-Za-z0-9_.\-/]+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_]+")
_SPACE = re.compile(r"\s*")


class FilterError(ValueError):
    """A malformed expression: ``message`` says what is wrong, ``position`` where (0-based)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Field:
    """A param (``kind == "params"``, ``agg`` None) or one aggregate of a metric's summary."""

    kind: str  # "params" | "metrics"
    name: str
    agg: str | None = None

    def label(self) -> str:
        if self.kind == "params":
            return f"params.{self.name}"
        return f"metrics.{self.name}.{self.agg}"


@dataclass(frozen=True)
class Clause:
    """``field op value``; ``value`` is a float or a str (strings only with = and !=)."""

    field: Field
    op: str
    value: float | str


MetricNames = Callable[[str], bool]


def _never(_name: str) -> bool:
    return False


class _Parser:
    def __init__(self, text: str, is_metric: MetricNames) -> None:
        self.text = text
        self.pos = 0
        self.is_metric = is_metric

    # -- tokens ---------------------------------------------------------------------------

    def skip_space(self) -> None:
        match = _SPACE.match(self.text, self.pos)
        assert match is not None
        self.pos = match.end()

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, message: str, position: int | None = None) -> FilterError:
        return FilterError(message, self.pos if position is None else position)

    def _refuse_unsupported(self) -> None:
        """Give the precise message for what the language deliberately lacks."""
        ch = self.peek()
        if ch in "()":
            raise self.fail("Parentheses are not supported: clauses combine with 'and' only")
        word = _WORD.match(self.text, self.pos)
        if word and word.group().lower() == "or":
            raise self.fail("'or' is not supported: clauses combine with 'and' only")
        if word and word.group().lower() == "not":
            raise self.fail("'not' is not supported: use != in a clause")

    # -- grammar --------------------------------------------------------------------------

    def expression(self) -> list[Clause]:
        if self.at_end():
            raise self.fail("Empty filter: write clauses like params.lr < 0.01 and metrics.accuracy.max > 0.9")
        clauses = [self.clause()]
        while not self.at_end():
            start = self.pos
            word = _WORD.match(self.text, self.pos)
            if word is None or word.group().lower() != "and":
                self._refuse_unsupported()
                raise self.fail(f"Expected 'and' or the end of the filter, found {self._excerpt(start)}")
            self.pos = word.end()
            if self.at_end():
                raise self.fail("Expected a clause after 'and'")
            if len(clauses) >= MAX_CLAUSES:
                raise self.fail(f"Too many clauses: at most {MAX_CLAUSES}", start)
            clauses.append(self.clause())
        return clauses

    def clause(self) -> Clause:
        self.skip_space()
        self._refuse_unsupported()
        field = self.field()
        self.skip_space()
        op_pos = self.pos
        op = self.operator()
        self.skip_space()
        value_pos = self.pos
        value = self.value()
        if isinstance(value, str):
            if field.kind == "metrics":
                raise self.fail(f"{field.label()} is a number: compare it with a number, not a string", value_pos)
            if op not in ("=", "!="):
                raise self.fail(f"Strings compare with = and != only, not {op}", op_pos)
        return Clause(field, op, value)

    def field(self) -> Field:
        start = self.pos
        word = _WORD.match(self.text, self.pos)
        if word is None or word.group() not in ("params", "metrics") or self.text[word.end() : word.end() + 1] != ".":
            raise self.fail(
                f"Expected a field (params.<key> or metrics.<name>[.<aggregate>]), found {self._excerpt(start)}"
            )
        self.pos = word.end() + 1
        if word.group() == "params":
            key, _quoted = self.name("key")
            return Field("params", key)
        return self.metric_field()

    def metric_field(self) -> Field:
        name_pos = self.pos
        name, quoted = self.name("metric name")
        if quoted:
            agg = DEFAULT_AGGREGATE
            if self.peek() == ".":
                self.pos += 1
                agg_pos = self.pos
                word = _WORD.match(self.text, self.pos)
                agg = word.group() if word else ""
                self.pos = word.end() if word else self.pos
                self._check_aggregate(agg, agg_pos)
            return Field("metrics", name, agg)
        # A bare name may itself hold dots ("train.loss"). It is taken whole when a run has a
        # metric of that name; otherwise its last segment must be an aggregate.
        if "." not in name or self.is_metric(name):
            return Field("metrics", name, DEFAULT_AGGREGATE)
        head, _, tail = name.rpartition(".")
        if tail in AGGREGATES and head:
            return Field("metrics", head, tail)
        self._check_aggregate(tail, name_pos + len(head) + 1, hint=name)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_aggregate(self, agg: str, position: int, hint: str | None = None) -> None:
        if agg in AGGREGATES:
            return
        message = f"Unknown aggregate '{agg}': use one of {', '.join(AGGREGATES)}"
        if hint is not None:
            message += f" (a metric name with dots goes in backticks: metrics.`{hint}`)"
        raise self.fail(message, position)

    def name(self, what: str) -> tuple[str, bool]:
        """A bare key/name, or one in backticks; (text, whether it was quoted)."""
        start = self.pos
        if self.peek() == "`":
            out = []
            i = self.pos + 1
            while True:
                end = self.text.find("`", i)
                if end < 0:
                    raise self.fail("Unclosed backtick", start)
                out.append(self.text[i:end])
                if self.text[end + 1 : end + 2] == "`":  # a doubled backtick is one backtick
                    out.append("`")
                    i = end + 2
                    continue
                self.pos = end + 1
                break
            text = "".join(out)
            quoted = True
        else:
            match = _BARE_KEY.match(self.text, self.pos)
            if match is None:
                raise self.fail(
                    f"Expected a {what} (letters, digits, _ . - / or text in backticks), found {self._excerpt(start)}"
                )
            text = match.group()
            self.pos = match.end()
            quoted = False
        if not text:
            raise self.fail(f"Empty {what}", start)
        if len(text) > MAX_KEY_LENGTH:
            raise self.fail(f"The {what} is too long (at most {MAX_KEY_LENGTH} characters)", start)
        if any(ord(c) < 32 for c in text):
            raise self.fail(f"The {what} contains a control character", start)
        return text, quoted

    def operator(self) -> str:
        start = self.pos
        for op in ("!=", "<=", ">=", "==", "=", "<", ">"):
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return "=" if op == "==" else op
        raise self.fail(f"Expected an operator ({', '.join(OPERATORS)}), found {self._excerpt(start)}")

    def value(self) -> float | str:
        start = self.pos
        ch = self.peek()
        if ch in ("'", '"'):
            return self.string(ch)
        match = _NUMBER.match(self.text, self.pos)
        if match is not None:
            end = match.end()
            # "0.5abc" or "1.2.3" is a malformed number, not a number followed by garbage.
            if end < len(self.text) and (self.text[end].isalnum() or self.text[end] in "._"):
                raise self.fail(f"Malformed number {self._excerpt(start)}")
            number = float(match.group())
            if not math.isfinite(number):
                raise self.fail(f"Number out of range: {match.group()}", start)
            self.pos = end
            return number
        word = _WORD.match(self.text, self.pos)
        if word is not None and word.group().lower() in ("true", "false"):
            self.pos = word.end()
            return 1.0 if word.group().lower() == "true" else 0.0  # booleans compare as 1 and 0
        if ch == "":
            raise self.fail("Expected a value (a number or a quoted string) at the end of the filter")
        if word is not None or ch in "+-.":
            raise self.fail(f"Malformed number {self._excerpt(start)}: strings need quotes")
        raise self.fail(f"Expected a value (a number or a quoted string), found {self._excerpt(start)}")

    def string(self, quote: str) -> str:
        start = self.pos
        i = self.pos + 1
        out = []
        while i < len(self.text):
            c = self.text[i]
            if c == "\\" and i + 1 < len(self.text):
                out.append(self.text[i + 1])
                i += 2
                continue
            if c == quote:
                self.pos = i + 1
                text = "".join(out)
                if len(text) > MAX_STRING_LENGTH:
                    raise self.fail(f"String too long (at most {MAX_STRING_LENGTH} characters)", start)
                return text
            out.append(c)
            i += 1
        raise self.fail("Unclosed quote", start)

    def _excerpt(self, start: int) -> str:
        if start >= len(self.text):
            return "the end of the filter"
        piece = self.text[start : start + 20]
        return repr(piece if len(self.text) - start <= 20 else piece + "…")


def parse_filter(text: str, is_metric: MetricNames = _never) -> tuple[Clause, ...]:
    """Parse a ``filter=`` expression. ``is_metric`` says whether a dotted bare name is a known
    metric name (``metrics.train.loss``), which decides how its last segment is read."""
    return tuple(_Parser(text, is_metric).expression())


def parse_sort_field(text: str, is_metric: MetricNames = _never) -> Field | None:
    """``params.<key>`` or ``metrics.<name>.<agg>`` as a :class:`Field`; None for anything else
    (a plain column name). FilterError when it starts like one but is malformed."""
    if not text.startswith(("params.", "metrics.")):
        return None
    parser = _Parser(text, is_metric)
    field = parser.field()
    if not parser.at_end():
        raise parser.fail(f"Unexpected text after the field: {parser._excerpt(parser.pos)}")
    return field
