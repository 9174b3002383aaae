"""A ``filter=`` expression as sets of runs: each clause one indexed SQL statement, combined
by union (``or``), intersection (``and``) and difference (``not``: all runs but these).

A clause's set (a bitmap: queries/runsets.py) is kept
(:class:`~runicorn_lite.queries.cache.QueryCache`) while the table it reads keeps its version
(db/schema.py, 0012_table_versions): an edit or a delete leave the params' and summaries' sets
good, so an expression after a change of the index is a few set operations, not a read of every
run's params. When the version moves on (a new run, a live run's points), the runs it moved for
(db/set_changes.py) are tested again and the set is brought up to date, not read whole. Sets
over the experiments' own columns and tags are kept for one index generation.

Every clause is false for a run that lacks its field (``!=``, ``not in``, ``not like`` too);
a value of the other kind (a string against a number) is false as well.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from runicorn_lite.db.dialect import on_postgres, pg_number
from runicorn_lite.db.schema import METRIC_AGGREGATES
from runicorn_lite.db.set_changes import LOGGED, changes_since, read_versions
from runicorn_lite.db.where import placeholders
from runicorn_lite.queries.cache import QueryCache
from runicorn_lite.queries.filters import (
    ATTRIBUTES,
    LIST_OPS,
    OPERATORS,
    And,
    Clause,
    Expr,
    Field,
    Not,
    Or,
    clauses_of,
)
from runicorn_lite.queries.runsets import RunSet, union

# An attribute's SQL over an experiments row (``duration_s``: null while the run has no end).
ATTRIBUTE_SQL = {name: name for name in ATTRIBUTES} | {"duration_s": "(ended_at - created_at)"}


class ClauseSQL:
    """The runs a clause is true for: ``select`` (one SQL statement of ``exp_pk``s or
    ``pk``s), or every run but those when ``complement``; ``table`` keys the kept set."""

    __slots__ = ("complement", "params", "select", "table")

    def __init__(self, select: str, params: list[Any], table: str, complement: bool = False) -> None:
        self.select = select
        self.params = params
        self.table = table
        self.complement = complement


def like_to_glob(pattern: str) -> str:
    """A LIKE pattern (``%``, ``_``, ``\\`` escaping the next character) as a case-sensitive
    GLOB pattern."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            c = pattern[i + 1]
            out.append(f"[{c}]" if c in "*?[" else c)
            i += 2
            continue
        out.append("*" if c == "%" else "?" if c == "_" else f"[{c}]" if c in "*?[" else c)
        i += 1
    return "".join(out)


def _pattern_test(column: str, op: str, pattern: str) -> tuple[str, list[Any]]:
    negate = op.startswith("not ")
    if on_postgres():  # its LIKE is case-sensitive and ILIKE folds case: the pattern as it is
        verb = "ILIKE" if op.endswith("ilike") else "LIKE"
        test, params = f"{column} {verb} ? ESCAPE '\\'", [pattern]
    elif op.endswith("ilike"):  # SQLite's LIKE folds ASCII case
        test, params = f"{column} LIKE ? ESCAPE '\\'", [pattern]
    else:
        test, params = f"{column} GLOB ?", [like_to_glob(pattern)]
    return (f"NOT ({test})" if negate else test), params


def _list_test(column: str, op: str, values: tuple[Any, ...]) -> tuple[str, list[Any]]:
    marks = ",".join("?" * len(values))
    return f"{column} {'NOT IN' if op == 'not in' else 'IN'} ({marks})", list(values)


def _kind_range(value: Any) -> str:
    """Numbers sort below every string in SQLite: ``v < ''`` keeps numbers, ``v >= ''``
    strings, so a value never matches one of the other kind (and a range stays one walk of
    the (key, v) index)."""
    if isinstance(value, tuple):
        kinds = {isinstance(v, str) for v in value}
        if len(kinds) == 2:
            return "TRUE"
        value = value[0]
    return "v >= ''" if isinstance(value, str) else "v < ''"


def clause_sql(clause: Clause) -> ClauseSQL:
    """The SQL of the runs one clause is true for."""
    field, op, value = clause.field, clause.op, clause.value
    if field.kind == "params":
        return _param_sql(field, op, value)
    if field.kind == "metrics":
        col = aggregate_column(field)
        head = f"SELECT exp_pk FROM metric_summaries WHERE metric = ? AND {col}"
        if op == "is null":
            return ClauseSQL(f"{head} IS NOT NULL", [field.name], "metric_summaries", True)
        if op == "is not null":
            return ClauseSQL(f"{head} IS NOT NULL", [field.name], "metric_summaries")
        if op in LIST_OPS:
            assert isinstance(value, tuple)
            test, params = _list_test(col, op, value)
            return ClauseSQL(f"{head} IS NOT NULL AND {test}", [field.name, *params], "metric_summaries")
        return ClauseSQL(f"{head} {_op(op)} ?", [field.name, value], "metric_summaries")
    if field.kind == "tags":
        return _tags_sql(op, value)
    column = ATTRIBUTE_SQL[field.name]
    head = "SELECT pk FROM experiments WHERE"
    if op in ("is null", "is not null"):
        return ClauseSQL(f"{head} {column} {op.upper()}", [], "experiments")
    if op in LIST_OPS:
        assert isinstance(value, tuple)
        test, params = _list_test(column, op, value)
        return ClauseSQL(f"{head} {column} IS NOT NULL AND {test}", params, "experiments")
    if op in OPERATORS:
        return ClauseSQL(f"{head} {column} {_op(op)} ?", [value], "experiments")
    assert isinstance(value, str)
    test, params = _pattern_test(column, op, value)
    return ClauseSQL(f"{head} {column} IS NOT NULL AND {test}", params, "experiments")


def _param_sql(field: Field, op: str, value: Any) -> ClauseSQL:
    head = "SELECT exp_pk FROM exp_params WHERE key = ?"
    if op == "is null":  # a null param has no row (db/schema.py): lacking it is being null
        return ClauseSQL(head, [field.name], "exp_params", True)
    if op == "is not null":
        return ClauseSQL(head, [field.name], "exp_params")
    if on_postgres():
        test, params = _pg_param_test(op, value)
        return ClauseSQL(f"{head} AND {test}", [field.name, *params], "exp_params")
    if op in LIST_OPS:
        test, params = _list_test("v", op, value)
        return ClauseSQL(f"{head} AND {test} AND {_kind_range(value)}", [field.name, *params], "exp_params")
    if op in OPERATORS:
        return ClauseSQL(f"{head} AND v {_op(op)} ? AND {_kind_range(value)}", [field.name, value], "exp_params")
    test, params = _pattern_test("v", op, value)
    return ClauseSQL(f"{head} AND v >= '' AND {test}", [field.name, *params], "exp_params")


def _pg_param_test(op: str, value: Any) -> tuple[str, list[Any]]:
    """PostgreSQL's typed param columns (db/pg_schema.py): a number is compared with ``vn``, a
    string with ``vs``, so a value never matches one of the other kind, as on SQLite."""
    if op in LIST_OPS:
        numbers = [pg_number(v) for v in value if not isinstance(v, str)]
        strings = [v for v in value if isinstance(v, str)]
        parts = []
        for column, values in (("vn", numbers), ("vs", strings)):
            if values:
                marks = ",".join("?" * len(values))
                parts.append(f"{column} IN ({marks})" if op == "in"
                             else f"({column} IS NOT NULL AND {column} NOT IN ({marks}))")
        return "(" + " OR ".join(parts) + ")", [*numbers, *strings]
    if op in OPERATORS:
        if isinstance(value, str):
            return f"vs {_op(op)} ?", [value]
        return f"vn {_op(op)} ?", [pg_number(value)]
    test, params = _pattern_test("vs", op, value)
    return f"vs IS NOT NULL AND {test}", params


def _tags_sql(op: str, value: Any) -> ClauseSQL:
    tagged = "SELECT DISTINCT exp_pk FROM exp_tags"
    if op == "is null":
        return ClauseSQL(tagged, [], "exp_tags", True)
    if op == "is not null":
        return ClauseSQL(tagged, [], "exp_tags")
    if op in ("=", "in"):
        values = value if isinstance(value, tuple) else (value,)
        return ClauseSQL(f"{tagged} WHERE tag IN ({','.join('?' * len(values))})", list(values), "exp_tags")
    if op in ("!=", "not in"):  # has tags, none of them these
        values = value if isinstance(value, tuple) else (value,)
        return ClauseSQL(
            f"{tagged} WHERE exp_pk NOT IN (SELECT exp_pk FROM exp_tags WHERE tag IN ({','.join('?' * len(values))}))",
            list(values), "exp_tags",
        )
    if op in ("like", "ilike"):  # has a tag that matches
        test, params = _pattern_test("tag", op, value)
        return ClauseSQL(f"{tagged} WHERE {test}", params, "exp_tags")
    if op in ("not like", "not ilike"):  # has tags, none that matches
        test, params = _pattern_test("tag", op.removeprefix("not "), value)
        return ClauseSQL(f"{tagged} WHERE exp_pk NOT IN (SELECT exp_pk FROM exp_tags WHERE {test})", params, "exp_tags")
    raise ValueError(f"tags take =, !=, in, like and is null, not {op}")  # the parser refuses it first


_SQL_OPERATORS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _op(op: str) -> str:
    return _SQL_OPERATORS[op]  # KeyError for anything the parser would not produce


def aggregate_column(field: Field) -> str:
    if field.agg not in METRIC_AGGREGATES:
        raise ValueError(f"unknown aggregate {field.agg!r}")
    return field.agg


def expression_where(expr: Expr, pk: str = "pk") -> tuple[str, list[Any]]:
    """The expression as one SQL condition on experiments rows (``pk`` the row's): each clause
    a ``pk IN (…)`` SQLite builds once per statement from its index. ``pk="+pk"`` keeps SQLite
    from driving the statement from those sets (and sorting all they hold) where it should walk
    a sort index and test each row (see queries/experiments.py, ``where_clause``)."""
    if pk not in ("pk", "+pk"):
        raise ValueError(f"not a pk column: {pk!r}")
    if isinstance(expr, Clause):
        sql = clause_sql(expr)
        return f"{'NOT ' if sql.complement else ''}{pk} IN ({sql.select})", list(sql.params)
    if isinstance(expr, Not):
        inner, params = expression_where(expr.item, pk)
        return f"NOT ({inner})", params
    parts = [expression_where(item, pk) for item in expr.items]
    joiner = " AND " if isinstance(expr, And) else " OR "
    return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]


class SetEvaluator:
    """Evaluates expressions into sets of run pks (:class:`RunSet`, deleted runs included) on
    one read snapshot, keeping each clause's set (and the set of all runs) in ``cache``."""

    def __init__(self, conn: sqlite3.Connection, cache: QueryCache, generation: int) -> None:
        self.conn = conn
        self.cache = cache
        self.generation = generation
        # Read once per index generation (every write moves it on), not per request: a page of
        # a filter asks for them twice, and on PostgreSQL each is a round trip.
        versions: dict[str, Any] | None = cache.get(("table-versions",), generation)
        if versions is None:
            versions = read_versions(conn)
            cache.put(("table-versions",), generation, versions)
        self.versions = versions

    def version(self, table: str) -> Any:
        """What an answer read from ``table`` stays good for (``all_runs``: the set of runs)."""
        if table in self.versions:
            return (self.versions["epoch"], self.versions[table])
        return ("generation", self.generation)  # tags and the experiments' own columns

    def _kept(self, key: tuple[Any, ...], table: str, sql: str, params: list[Any]) -> RunSet:
        version = (self.version(table),)
        runs = self.cache.get_set(key, version)
        if runs is None:
            column = "pk" if table == "all_runs" else "exp_pk"
            runs = self._brought_up(key, (table,), lambda within: self._select(sql, params, column, within))
            if runs is None:
                runs = RunSet.of(r[0] for r in self.conn.execute(sql, params))
            self.cache.put_set(key, version, runs)
        return runs

    def _select(self, sql: str, params: list[Any], column: str, within: frozenset[int]) -> frozenset[int]:
        """The runs of ``within`` that ``sql`` (one of a logged table's, its rows' run in
        ``column``) selects, a few hundred at a time by the run's key."""
        joiner = " AND " if " WHERE " in sql else " WHERE "
        members = sorted(within)
        found: list[int] = []
        for start in range(0, len(members), 500):
            part = members[start : start + 500]
            found.extend(r[0] for r in self.conn.execute(
                f"{sql}{joiner}{column} IN ({placeholders(len(part))})", [*params, *part]
            ))
        return frozenset(found)

    def _changed(self, tables: tuple[str, ...], old: tuple[Any, ...]) -> frozenset[int] | None:
        """The runs changed in ``tables`` since versions ``old`` (one per table), up to this read's
        versions; None when the log cannot say (db/set_changes.py)."""
        if len(old) != len(tables):
            return None
        changed: set[int] = set()
        for table, before in zip(tables, old, strict=True):
            now = self.version(table)
            if table not in LOGGED or not isinstance(before, tuple) or before[0] != now[0]:
                return None
            found = changes_since(self.conn, table, before[1], now[1])
            if found is None:
                return None
            changed |= found
        return frozenset(changed)

    def _brought_up(
        self, key: tuple[Any, ...], tables: tuple[str, ...], test: Callable[[frozenset[int]], frozenset[int]],
    ) -> RunSet | None:
        """The set kept under ``key`` for older versions of ``tables`` (one each), brought up to
        this read's by testing again only the runs changed since (``test``: which of them are
        members now): the same set object when none joined or left (a live run's points), a
        copy when they did; None when there is none to bring up or the log cannot say."""
        stale = self.cache.set_entry(key)
        if stale is None:
            return None
        before, runs = stale
        changed = self._changed(tables, before)
        if changed is None:
            return None
        if not changed:
            return runs
        found = test(changed)
        left = [pk for pk in changed if pk in runs and pk not in found]
        joined = [pk for pk in found if pk not in runs]
        return runs.changed(left, joined) if left or joined else runs

    def everything(self) -> RunSet:
        """Every run of the index, deleted ones included (the set ``not`` takes from)."""
        return self._kept(("all-runs",), "all_runs", "SELECT pk FROM experiments", [])

    def _clause_kept(self, clause: Clause) -> tuple[RunSet, bool]:
        """The kept set of a clause's SQL, and whether the clause is true for every run but those."""
        sql = clause_sql(clause)
        return self._kept(("clause-set", sql.select, *sql.params), sql.table, sql.select, sql.params), sql.complement

    def clause(self, clause: Clause) -> RunSet:
        runs, complement = self._clause_kept(clause)
        return self.everything() - runs if complement else runs

    def evaluate(self, expr: Expr) -> RunSet:
        """The runs ``expr`` is true for, kept as a whole too while every table it reads keeps
        its version (a delete or a restore leaves it good), and brought up to date from the runs
        changed since when one moves on (a new run; a live run's points, for its metrics)."""
        tables = self._expression_tables(expr)
        version = tuple(self.version(t) for t in tables)
        key = ("expression-set", repr(expr))
        runs = self.cache.get_set(key, version)
        if runs is None:
            runs = self._brought_up(key, tables, lambda within: self._members(expr, within))
            if runs is None:
                runs = self._evaluate(expr)
            self.cache.put_set(key, version, runs)
        return runs

    def _members(self, expr: Expr, within: frozenset[int]) -> frozenset[int]:
        """Which runs of ``within`` ``expr`` is true for, tested one by one against the kept sets
        of its clauses (each brought up to date itself)."""
        clauses = {repr(c): self._clause_kept(c) for c in clauses_of(expr)}
        negated = any(c[1] for c in clauses.values()) or any(isinstance(e, Not) for e in _nodes(expr))
        # a run exists (for 'not'): those of ``within`` still in the index, not the set of all
        everything = self._select("SELECT pk FROM experiments", [], "pk", within) if negated else frozenset()

        def member(e: Expr, pk: int) -> bool:
            if isinstance(e, Clause):
                kept, complement = clauses[repr(e)]
                return (pk in everything and pk not in kept) if complement else pk in kept
            if isinstance(e, Not):
                return pk in everything and not member(e.item, pk)
            if isinstance(e, Or):
                return any(member(item, pk) for item in e.items)
            return all(member(item, pk) for item in e.items)

        return frozenset(pk for pk in within if member(expr, pk))

    def _expression_tables(self, expr: Expr) -> tuple[str, ...]:
        tables = {clause_sql(c).table for c in clauses_of(expr)}
        if any(isinstance(e, Not) for e in _nodes(expr)) or any(clause_sql(c).complement for c in clauses_of(expr)):
            tables.add("all_runs")
        return tuple(sorted(tables))

    def _expression_version(self, expr: Expr) -> tuple[Any, ...]:
        return tuple(self.version(t) for t in self._expression_tables(expr))

    def sorted_runs(self, expr: Expr | None) -> np.ndarray:
        """The runs ``expr`` is true for (every run when None, deleted ones included) as a
        sorted array of pks (what numpy groups by), kept beside the set while it is good."""
        key: tuple[Any, ...] = ("all-runs-array",) if expr is None else ("expression-array", repr(expr))
        version = self._expression_version(expr) if expr is not None else (self.version("all_runs"),)
        found: np.ndarray | None = self.cache.get(key, version)
        if found is None:
            found = (self.everything() if expr is None else self.evaluate(expr)).sorted()
            found.flags.writeable = False  # shared by every request that reads it
            self.cache.put(key, version, found)
        return found

    def _evaluate(self, expr: Expr) -> RunSet:
        if isinstance(expr, Clause):
            return self.clause(expr)
        if isinstance(expr, Not):
            return self.everything() - self._evaluate(expr.item)
        if isinstance(expr, Or):
            return union(self._evaluate(item) for item in expr.items)
        # and: the positive items intersected, the negated ones taken away (never a complement
        # of all runs built only to be intersected)
        positive: list[RunSet] = []
        negative: list[RunSet] = []
        for item in expr.items:
            if isinstance(item, Not):
                negative.append(self._evaluate(item.item))
            elif isinstance(item, Clause) and clause_sql(item).complement:
                negative.append(self._clause_kept(item)[0])
            else:
                positive.append(self._evaluate(item))
        if not positive:
            positive.append(self.everything())
        positive.sort(key=len)
        out = positive[0]
        for other in positive[1:]:
            if not out:
                return out
            out = out & other
        for other in negative:
            if not out:
                break
            out = out - other
        return out

    def deleted(self) -> tuple[int, ...]:
        """The soft-deleted runs (a walk of the few deleted rows' index, once per generation;
        a tuple: every request of the generation shares it)."""
        found: tuple[int, ...] | None = self.cache.get(("deleted-runs",), self.generation)
        if found is None:
            found = tuple(pk for (pk,) in self.conn.execute("SELECT pk FROM experiments WHERE deleted_at IS NOT NULL"))
            self.cache.put(("deleted-runs",), self.generation, found)
        return found

    def live_count(self, runs: RunSet, deleted: tuple[int, ...]) -> int:
        """How many of ``runs`` are not soft-deleted (no copy of the set)."""
        return len(runs) - sum(1 for pk in deleted if pk in runs)


def _nodes(expr: Expr) -> Iterator[Expr]:
    yield expr
    if isinstance(expr, Not):
        yield from _nodes(expr.item)
    elif not isinstance(expr, Clause):
        for item in expr.items:
            yield from _nodes(item)
