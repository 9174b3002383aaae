"""The filter language: what it accepts, and for what it refuses, the message and the position."""

from __future__ import annotations

import pytest

from runicorn_lite.queries.filters import (
    MAX_CLAUSES,
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_IN_VALUES,
    MAX_KEY_LENGTH,
    And,
    Clause,
    Field,
    FilterError,
    Not,
    Or,
    clauses_of,
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
    parsed = parse_filter(text)
    assert list(clauses_of(parsed)) == expected
    assert isinstance(parsed, And) if len(expected) > 1 else parsed == expected[0]


def test_a_dotted_bare_metric_name_is_whole_when_the_index_knows_it() -> None:
    known = {"train.loss"}.__contains__
    assert parse_filter("metrics.train.loss < 1", known) == Clause(M("train.loss"), "<", 1.0)
    assert parse_filter("metrics.train.loss.max < 1", known) == Clause(M("train.loss", "max"), "<", 1.0)
    # Unknown: the last segment is read as an aggregate.
    assert parse_filter("metrics.train.max < 1") == Clause(M("train", "max"), "<", 1.0)


@pytest.mark.parametrize(
    ("text", "words", "position"),
    [
        ("", "Empty filter", 0),
        ("   ", "Empty filter", 3),
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
        ("params.a = 1 params.b = 2", "Expected 'and', 'or' or the end of the filter", 13),
        ("params.a = 1 and", "Expected a clause after 'and'", 16),
        ("params.a = 1 and and params.b = 1", "Expected a field", 17),
        ("params.a = 1 = 2", "Expected 'and', 'or' or the end of the filter", 13),
        ("params.`a\tb` = 1", "control character", 7),
        ("params.a = 1 or", "Expected a clause after 'or'", 15),
        ("not", "Expected a clause after 'not'", 3),
        ("params.a = 1 and not", "Expected a clause after 'not'", 20),
        ("(params.a = 1", "Unclosed '(' (opened at position 0)", 13),
        ("((params.a = 1) or params.b = 2", "Unclosed '(' (opened at position 0)", 31),
        ("params.a = 1)", "Unbalanced ')'", 12),
        ("()", "Empty parentheses", 1),
        ("params.a = 1 and ()", "Empty parentheses", 18),
        ("(params.a = 1 params.b = 2)", "Expected 'and', 'or' or ')'", 14),
        ("params.a in 1", "Expected '(' and a list of values after 'in'", 12),
        ("params.a in ()", "Expected a value", 13),
        ("params.a in (1, 2", "Expected ',' or ')'", 17),
        ("params.a in (1 2)", "Expected ',' or ')'", 15),
        ("params.a not = 1", "Expected 'in', 'like' or 'ilike' after 'not'", 13),
        ("params.a like 5", "'like' takes a quoted pattern", 14),
        ("metrics.acc like 'a%'", "is a number: 'like' takes strings only", 12),
        ("attributes.created_at ilike 'a%'", "is a number: 'ilike' takes strings only", 22),
        ("params.a is 1", "Expected 'null' after 'is'", 12),
        ("params.a not is null", "Write 'is not null'", 9),
        ("attributes.colour = 'x'", "Unknown attribute", 11),
        ("attributes.status = 'done'", "Unknown status 'done'", 20),
        ("attributes.status = 1", "is a string: compare it with a quoted string", 20),
        ("attributes.created_at > 'yesterday'", "takes an ISO-8601 time", 24),
        ("attributes.duration_s > '5'", "is a number", 24),
        ("tags = 1", "Tags are strings", 7),
        ("tags < 'a'", "Strings compare with = and != only, not <", 5),
        ("metrics.acc in (1, 'a')", "compare it with a number", 19),
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
    assert len(list(clauses_of(parse_filter(many)))) == MAX_CLAUSES
    with pytest.raises(FilterError, match="Too many clauses"):
        parse_filter(many + " or params.x = 1")


def test_limits_of_depth_length_and_lists() -> None:
    deep = "(" * MAX_DEPTH + "params.a = 1" + ")" * MAX_DEPTH
    assert parse_filter(deep) == Clause(P("a"), "=", 1.0)
    with pytest.raises(FilterError, match=f"Too many levels of parentheses: at most {MAX_DEPTH}") as info:
        parse_filter("(" + deep + ")")
    assert info.value.position == MAX_DEPTH
    values = ", ".join(f"'value-{i}'" for i in range(MAX_IN_VALUES))
    text = f"params.name in ({values})"
    assert len(text) <= MAX_FILTER_LENGTH
    parsed = parse_filter(text)
    assert isinstance(parsed, Clause) and len(parsed.value) == MAX_IN_VALUES  # type: ignore[arg-type]
    with pytest.raises(FilterError, match="Too many values in 'in'"):
        parse_filter(f"params.name in ({values}, 'one more')")
    with pytest.raises(FilterError, match="Filter too long") as info:
        parse_filter("params.a = 1 or " * 1100 + "params.a = 1")
    assert info.value.position == MAX_FILTER_LENGTH


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # and binds tighter than or
        ("params.a = 1 or params.b = 2 and params.c = 3",
         Or((Clause(P("a"), "=", 1.0), And((Clause(P("b"), "=", 2.0), Clause(P("c"), "=", 3.0)))))),
        ("(params.a = 1 OR params.b = 2) AND params.c = 3",
         And((Or((Clause(P("a"), "=", 1.0), Clause(P("b"), "=", 2.0))), Clause(P("c"), "=", 3.0)))),
        ("NOT params.a = 1 and not not params.b = 2",
         And((Not(Clause(P("a"), "=", 1.0)), Not(Not(Clause(P("b"), "=", 2.0)))))),
        ("not(params.a=1)", Not(Clause(P("a"), "=", 1.0))),
        ("params.opt IN ('adam', 'sgd')", Clause(P("opt"), "in", ("adam", "sgd"))),
        ("params.lr not in (0.1,1e-3, true)", Clause(P("lr"), "not in", (0.1, 0.001, 1.0))),
        ("params.name LIKE 'res%'", Clause(P("name"), "like", "res%")),
        ("params.name not ilike '5\\%'", Clause(P("name"), "not ilike", "5\\%")),
        ("params.name like 'it\\'s'", Clause(P("name"), "like", "it\\'s")),
        ("params.x is null", Clause(P("x"), "is null", None)),
        ("params.x IS NOT NULL", Clause(P("x"), "is not null", None)),
        ("metrics.acc.max is null", Clause(M("acc", "max"), "is null", None)),
        ("attributes.status in ('finished', 'failed')",
         Clause(Field("attributes", "status"), "in", ("finished", "failed"))),
        ("attributes.created_at >= '2024-01-01'", Clause(Field("attributes", "created_at"), ">=", 1704067200.0)),
        ("attributes.ended_at < 1704067200", Clause(Field("attributes", "ended_at"), "<", 1704067200.0)),
        ("attributes.alias like 'base%'", Clause(Field("attributes", "alias"), "like", "base%")),
        ("tags = 'best'", Clause(Field("tags", "tags"), "=", "best")),
        ("tags not in ('a', 'b')", Clause(Field("tags", "tags"), "not in", ("a", "b"))),
        ("tags is null", Clause(Field("tags", "tags"), "is null", None)),
    ],
)
def test_the_whole_grammar(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


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
