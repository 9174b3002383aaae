"""The ``filter=`` language and the ``order_by`` fields over params and metric summaries.

    expression := or_expr
    or_expr    := and_expr ( "or" and_expr )*
    and_expr   := not_expr ( "and" not_expr )*
    not_expr   := "not" not_expr | "(" expression ")" | clause
    clause     := field op value
                | field [ "not" ] "in" "(" value ( "," value )* ")"
                | field [ "not" ] ( "like" | "ilike" ) quoted-string
                | field "is" [ "not" ] "null"
    field      := "params." key | "metrics." name [ "." aggregate ]
                | "attributes." attribute | "tags"
    op         := "=" | "!=" | "<" | "<=" | ">" | ">="
    value      := number | 'single-quoted' | "double-quoted" | true | false
    key, name  := [A-Za-z0-9_.\\-/]+ or any text in backticks (a backtick doubled inside)

Keywords in any case; ``and`` binds tighter than ``or``. The parser turns user text into
:class:`Clause`, :class:`And`, :class:`Or` and :class:`Not` values and nothing else: keys, names
and values travel to SQL only as bound parameters, aggregates and attributes only as names from
:data:`AGGREGATES` and :data:`ATTRIBUTES`. Errors are :class:`FilterError` with a message that
says what is wrong and the position (counted from 0, as Python's ``re`` does) where it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from runicorn_lite import rundir
from runicorn_lite.db.schema import METRIC_AGGREGATES
from runicorn_lite.timeutil import parse_iso

AGGREGATES = METRIC_AGGREGATES  # a metric field names one of these: they are its columns
DEFAULT_AGGREGATE = "last"
OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
# attribute -> whether its values are strings (else numbers: times are Unix seconds).
ATTRIBUTES = {
    "status": True, "project": True, "name": True, "alias": True,
    "created_at": False, "ended_at": False, "duration_s": False, "best_metric_value": False,
}
TIME_ATTRIBUTES = ("created_at", "ended_at")
MAX_KEY_LENGTH = 256
MAX_CLAUSES = 64
MAX_DEPTH = 16
MAX_IN_VALUES = 1000
MAX_STRING_LENGTH = 1000
MAX_FILTER_LENGTH = 16_000
# The operators of a clause beyond OPERATORS: set membership, patterns, presence.
LIST_OPS = ("in", "not in")
PATTERN_OPS = ("like", "not like", "ilike", "not ilike")
NULL_OPS = ("is null", "is not null")

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
    """A param (``kind == "params"``, ``agg`` None), one aggregate of a metric's summary, an
    attribute of the run (``kind == "attributes"``) or its tags (``kind == "tags"``)."""

    kind: str  # "params" | "metrics" | "attributes" | "tags"
    name: str
    agg: str | None = None

    def label(self) -> str:
        if self.kind == "metrics":
            return f"metrics.{self.name}.{self.agg}"
        if self.kind == "tags":
            return "tags"
        return f"{self.kind}.{self.name}"


Value = float | str


@dataclass(frozen=True)
class Clause:
    """``field op value``. ``op`` is one of OPERATORS (``value`` a float or a str), LIST_OPS
    (a tuple of them), PATTERN_OPS (a str pattern) or NULL_OPS (``value`` None)."""

    field: Field
    op: str
    value: Value | tuple[Value, ...] | None


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Clause | And | Or | Not


def clauses_of(expr: Expr) -> Iterator[Clause]:
    """Every clause of an expression, in text order."""
    if isinstance(expr, Clause):
        yield expr
    elif isinstance(expr, Not):
        yield from clauses_of(expr.item)
    else:
        for item in expr.items:
            yield from clauses_of(item)


MetricNames = Callable[[str], bool]


def _never(_name: str) -> bool:
    return False


class _Parser:
    def __init__(self, text: str, is_metric: MetricNames) -> None:
        self.text = text
        self.pos = 0
        self.is_metric = is_metric
        self.clauses = 0
        self.depth = 0

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

    def keyword(self, *words: str) -> str | None:
        """Take the next word when it is one of ``words`` (any case); its lower case, else None."""
        self.skip_space()
        word = _WORD.match(self.text, self.pos)
        if word is None or word.group().lower() not in words:
            return None
        self.pos = word.end()
        return word.group().lower()

    # -- grammar --------------------------------------------------------------------------

    def expression(self) -> Expr:
        if self.at_end():
            raise self.fail("Empty filter: write clauses like params.lr < 0.01 and metrics.accuracy.max > 0.9")
        if len(self.text) > MAX_FILTER_LENGTH:
            raise self.fail(f"Filter too long: at most {MAX_FILTER_LENGTH:,} characters", MAX_FILTER_LENGTH)
        expr = self.or_expr()
        if not self.at_end():
            start = self.pos
            if self.peek() == ")":
                raise self.fail("Unbalanced ')': no '(' to close")
            raise self.fail(f"Expected 'and', 'or' or the end of the filter, found {self._excerpt(start)}")
        return expr

    def or_expr(self) -> Expr:
        items = [self.and_expr()]
        while self.keyword("or"):
            self._expect_operand("or")
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Expr:
        items = [self.not_expr()]
        while self.keyword("and"):
            self._expect_operand("and")
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _expect_operand(self, word: str) -> None:
        if self.at_end():
            raise self.fail(f"Expected a clause after '{word}'")

    def not_expr(self) -> Expr:
        self.skip_space()
        start = self.pos
        if self.keyword("not"):
            if self.at_end():
                raise self.fail("Expected a clause after 'not'")
            return Not(self.not_expr())
        if self.peek() == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"Too many levels of parentheses: at most {MAX_DEPTH}", start)
            self.pos += 1
            if self.at_end():
                raise self.fail("Expected a clause after '('")
            if self.peek() == ")":
                raise self.fail("Empty parentheses")
            expr = self.or_expr()
            self.skip_space()
            if self.peek() != ")":
                if self.at_end():
                    raise self.fail(f"Unclosed '(' (opened at position {start})")
                raise self.fail(f"Expected 'and', 'or' or ')', found {self._excerpt(self.pos)}")
            self.pos += 1
            self.depth -= 1
            return expr
        if self.peek() == ")":
            raise self.fail("Unexpected ')': expected a clause")
        return self.clause()

    def clause(self) -> Clause:
        self.skip_space()
        start = self.pos
        if self.clauses >= MAX_CLAUSES:
            raise self.fail(f"Too many clauses: at most {MAX_CLAUSES}", start)
        self.clauses += 1
        field = self.field()
        self.skip_space()
        op_pos = self.pos
        negated = bool(self.keyword("not"))
        word = self.keyword("in", "like", "ilike", "is")
        if word == "is":
            if negated:
                raise self.fail("Write 'is not null', not 'not is'", op_pos)
            is_not = bool(self.keyword("not"))
            if not self.keyword("null"):
                raise self.fail(f"Expected 'null' after 'is', found {self._excerpt(self.pos)}")
            return Clause(field, "is not null" if is_not else "is null", None)
        if word == "in":
            return Clause(field, "not in" if negated else "in", self.in_values(field))
        if word is not None:  # like / ilike
            self.skip_space()
            if field.kind == "metrics" or (field.kind == "attributes" and not ATTRIBUTES[field.name]):
                raise self.fail(f"{field.label()} is a number: '{word}' takes strings only", op_pos)
            if self.peek() not in ("'", '"'):
                raise self.fail(f"'{word}' takes a quoted pattern, found {self._excerpt(self.pos)}")
            pattern = self.string(self.peek(), pattern=True)
            return Clause(field, f"not {word}" if negated else word, pattern)
        if negated:
            raise self.fail("Expected 'in', 'like' or 'ilike' after 'not' (or write != for 'not equal')", self.pos)
        op = self.operator()
        self.skip_space()
        value_pos = self.pos
        value = self.typed(field, self.value(), value_pos)
        if isinstance(value, str) and op not in ("=", "!="):
            raise self.fail(f"Strings compare with = and != only, not {op}", op_pos)
        return Clause(field, op, value)

    def in_values(self, field: Field) -> tuple[Value, ...]:
        self.skip_space()
        if self.peek() != "(":
            raise self.fail(f"Expected '(' and a list of values after 'in', found {self._excerpt(self.pos)}")
        self.pos += 1
        values: list[Value] = []
        while True:
            self.skip_space()
            value_pos = self.pos
            if len(values) >= MAX_IN_VALUES:
                raise self.fail(f"Too many values in 'in': at most {MAX_IN_VALUES:,}")
            values.append(self.typed(field, self.value(), value_pos))
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
                continue
            if self.peek() == ")":
                self.pos += 1
                return tuple(values)
            raise self.fail(f"Expected ',' or ')' in the list of values, found {self._excerpt(self.pos)}")

    def typed(self, field: Field, value: Value, position: int) -> Value:
        """The value as the field compares it; FilterError where the field never can."""
        if field.kind == "tags":
            if not isinstance(value, str):
                raise self.fail("Tags are strings: compare them with a quoted string", position)
            return value
        if field.kind == "attributes":
            if field.name in TIME_ATTRIBUTES and isinstance(value, str):
                moment = parse_iso(value)
                if moment is None:
                    raise self.fail(f"{field.label()} takes an ISO-8601 time or a Unix time, not {value!r}", position)
                return moment.timestamp()
            if ATTRIBUTES[field.name] and not isinstance(value, str):
                raise self.fail(f"{field.label()} is a string: compare it with a quoted string", position)
            if field.name == "status" and value not in rundir.STATUSES:
                raise self.fail(f"Unknown status {value!r}: use one of {', '.join(rundir.STATUSES)}", position)
        numeric = field.kind == "metrics" or (field.kind == "attributes" and not ATTRIBUTES[field.name])
        if isinstance(value, str) and numeric:
            raise self.fail(f"{field.label()} is a number: compare it with a number, not a string", position)
        return value

    def field(self) -> Field:
        start = self.pos
        word = _WORD.match(self.text, self.pos)
        kind = word.group() if word else ""
        if kind == "tags":
            self.pos = word.end() if word else self.pos
            return Field("tags", "tags")
        dot = self.pos + len(kind)
        if kind not in ("params", "metrics", "attributes") or self.text[dot : dot + 1] != ".":
            raise self.fail(
                "Expected a field (params.<key>, metrics.<name>[.<aggregate>], attributes.<name> or tags),"
                f" found {self._excerpt(start)}"
            )
        self.pos += len(kind) + 1
        if kind == "params":
            key, _quoted = self.name("key")
            return Field("params", key)
        if kind == "attributes":
            name_pos = self.pos
            attr = _WORD.match(self.text, self.pos)
            if attr is None or attr.group() not in ATTRIBUTES:
                raise self.fail(f"Unknown attribute: use one of {', '.join(ATTRIBUTES)}", name_pos)
            self.pos = attr.end()
            return Field("attributes", attr.group())
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
        raise self.fail(
            f"Expected an operator ({', '.join(OPERATORS)}, in, like, ilike, is null), found {self._excerpt(start)}"
        )

    def value(self) -> Value:
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

    def string(self, quote: str, *, pattern: bool = False) -> str:
        """A quoted string; a backslash makes the next character plain text (the quote
        included). A ``pattern`` keeps each backslash with its character, for
        :func:`like_to_glob` and LIKE's ESCAPE to read (``'5\\%'`` matches the text ``5%``)."""
        start = self.pos
        i = self.pos + 1
        out = []
        while i < len(self.text):
            c = self.text[i]
            if c == "\\" and i + 1 < len(self.text):
                out.append(c + self.text[i + 1] if pattern else self.text[i + 1])
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


def parse_filter(text: str, is_metric: MetricNames = _never) -> Expr:
    """Parse a ``filter=`` expression. ``is_metric`` says whether a dotted bare name is a known
    metric name (``metrics.train.loss``), which decides how its last segment is read."""
    return _Parser(text, is_metric).expression()


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
