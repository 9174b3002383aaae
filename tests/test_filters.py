"""The filter language: what it accepts, and for what it refuses, the message and the position."""

from __future__ import annotations

import pytest

from runicorn_lite.queries.filters import (
    MAX_CLAUSES,
    MAX_KEY_LENGTH,
    Clause,
    Field,
    FilterError,
    parse_filter,
    parse_sort_field,
)


def P(name: str) -> Field:
    return Field("params", name)


def M(name: str, agg: str = "last") -> Field:
    return Field("metrics", name, agg)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.lr < 0.01", [Clause(P("lr"), "<", 0.01)]),
        ("params.lr<0.01", [Clause(P("lr"), "<", 0.01)]),
        ("  params.optim.lr <= 1e-3  ", [Clause(P("optim.lr"), "<=", 0.001)]),
        ("params.batch_size = 32", [Clause(P("batch_size"), "=", 32.0)]),
        ("params.x == -.5", [Clause(P("x"), "=", -0.5)]),
        ("params.x != +2", [Clause(P("x"), "!=", 2.0)]),
        ("params.x > 1E3", [Clause(P("x"), ">", 1000.0)]),
        ("params.x >= 3.", [Clause(P("x"), ">=", 3.0)]),
        ("params.optim.name = 'adam'", [Clause(P("optim.name"), "=", "adam")]),
        ('params.optim.name != "sgd"', [Clause(P("optim.name"), "!=", "sgd")]),
        ("params.note = 'it\\'s'", [Clause(P("note"), "=", "it's")]),
        ("params.note = ''", [Clause(P("note"), "=", "")]),
        ("params.data/set-name = 'c'", [Clause(P("data/set-name"), "=", "c")]),
        ("params.`odd key (1)` = 1", [Clause(P("odd key (1)"), "=", 1.0)]),
        ("params.`back``tick` = 1", [Clause(P("back`tick"), "=", 1.0)]),
        (
            "params.augment = true and params.shuffle = FALSE",
            [Clause(P("augment"), "=", 1.0), Clause(P("shuffle"), "=", 0.0)],
        ),
        ("metrics.accuracy > 0.9", [Clause(M("accuracy"), ">", 0.9)]),
        ("metrics.accuracy.max > 0.9", [Clause(M("accuracy", "max"), ">", 0.9)]),
        (
            "metrics.loss.min<1 AND metrics.loss.first>2 And metrics.loss.count>=10",
            [
                Clause(M("loss", "min"), "<", 1.0),
                Clause(M("loss", "first"), ">", 2.0),
                Clause(M("loss", "count"), ">=", 10.0),
            ],
        ),
        ("metrics.`train.loss`.min < 1", [Clause(M("train.loss", "min"), "<", 1.0)]),
        ("metrics.`train.loss` < 1", [Clause(M("train.loss"), "<", 1.0)]),
        ("metrics.val/acc.last > 0", [Clause(M("val/acc"), ">", 0.0)]),
    ],
)
def test_accepted(text: str, expected: list[Clause]) -> None:
    assert list(parse_filter(text)) == expected


def test_a_dotted_bare_metric_name_is_whole_when_the_index_knows_it() -> None:
    known = {"train.loss"}.__contains__
    assert parse_filter("metrics.train.loss < 1", known) == (Clause(M("train.loss"), "<", 1.0),)
    assert parse_filter("metrics.train.loss.max < 1", known) == (Clause(M("train.loss", "max"), "<", 1.0),)
    # Unknown: the last segment is read as an aggregate.
    assert parse_filter("metrics.train.max < 1") == (Clause(M("train", "max"), "<", 1.0),)


@pytest.mark.parametrize(
    ("text", "words", "position"),
    [
        ("", "Empty filter", 0),
        ("   ", "Empty filter", 3),
        ("params.a = 1 or params.b = 2", "'or' is not supported", 13),
        ("params.a = 1 OR params.b = 2", "'or' is not supported", 13),
        ("(params.a = 1)", "Parentheses are not supported", 0),
        ("params.a = 1 and (params.b = 2)", "Parentheses are not supported", 17),
        ("not params.a = 1", "'not' is not supported", 0),
        ("metrics.acc.mean > 1", "Unknown aggregate 'mean'", 12),
        ("metrics.`acc`.avg > 1", "Unknown aggregate 'avg'", 14),
        ("params.name < 'x'", "Strings compare with = and != only, not <", 12),
        ('params.name >= "x"', "Strings compare with = and != only, not >=", 12),
        ("metrics.loss = 'low'", "compare it with a number", 15),
        ("params.a = 1.2.3", "Malformed number '1.2.3'", 11),
        ("params.a = 12abc", "Malformed number", 11),
        ("params.a = 1e999", "Number out of range", 11),
        ("params.a = abc", "strings need quotes", 11),
        ("params.a = -", "Malformed number", 11),
        ("params.a = 'abc", "Unclosed quote", 11),
        ('params.a = "abc', "Unclosed quote", 11),
        ("params.`abc = 1", "Unclosed backtick", 7),
        ("params.`` = 1", "Empty key", 7),
        ("params.a =", "Expected a value", 10),
        ("params.a", "Expected an operator", 8),
        ("params.a ~ 1", "Expected an operator", 9),
        ("params.a 5", "Expected an operator", 9),
        ("params. = 1", "Expected a key", 7),
        ("lr < 1", "Expected a field", 0),
        ("param.lr < 1", "Expected a field", 0),
        ("params.a = 1 params.b = 2", "Expected 'and' or the end of the filter", 13),
        ("params.a = 1 and", "Expected a clause after 'and'", 16),
        ("params.a = 1 and and params.b = 1", "Expected a field", 17),
        ("params.a = 1 = 2", "Expected 'and' or the end of the filter", 13),
        ("params.`a\tb` = 1", "control character", 7),
    ],
)
def test_refused_with_message_and_position(text: str, words: str, position: int) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    assert words in info.value.message, info.value.message
    assert info.value.position == position, (info.value.position, info.value.message)
    assert str(info.value).endswith(f"at position {position}")


def test_over_long_key_and_too_many_clauses() -> None:
    with pytest.raises(FilterError, match="too long") as info:
        parse_filter("params." + "k" * (MAX_KEY_LENGTH + 1) + " = 1")
    assert info.value.position == 7
    parse_filter("params." + "k" * MAX_KEY_LENGTH + " = 1")
    many = " and ".join(f"params.p{i} = {i}" for i in range(MAX_CLAUSES))
    assert len(parse_filter(many)) == MAX_CLAUSES
    with pytest.raises(FilterError, match="Too many clauses"):
        parse_filter(many + " and params.x = 1")


def test_dotted_name_hint_mentions_backticks() -> None:
    with pytest.raises(FilterError) as info:
        parse_filter("metrics.train.loss < 1")
    assert "metrics.`train.loss`" in info.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("created_at", None),
        ("params.lr", P("lr")),
        ("params.optim.lr", P("optim.lr")),
        ("metrics.accuracy.max", M("accuracy", "max")),
        ("metrics.loss", M("loss")),
        ("metrics.`a.b`.count", M("a.b", "count")),
    ],
)
def test_sort_fields(text: str, expected: Field | None) -> None:
    assert parse_sort_field(text) == expected


@pytest.mark.parametrize("text", ["metrics.acc.mean", "params.a b", "params.", "metrics.`x"])
def test_malformed_sort_fields(text: str) -> None:
    with pytest.raises(FilterError):
        parse_sort_field(text)
