"""SQL over the index for experiment lists, details and deletions' lookups.

Every value is a bound parameter; the only identifiers ever formatted into SQL come from
``SORT_COLUMNS`` and ``EXPERIMENT_COLUMNS``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import orjson

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.rows import compose
from runicorn_lite.db.schema import NULLABLE_SORT_COLUMNS, SORT_COLUMNS
from runicorn_lite.db.where import Where, placeholders
from runicorn_lite.queries.cache import QueryCache as QueryCache  # re-exported: its users import it from here
from runicorn_lite.queries.field_pages import field_order, field_source, kept_field_page
from runicorn_lite.queries.filter_sets import SetEvaluator, expression_where
from runicorn_lite.queries.filters import Expr, Field
from runicorn_lite.queries.runsets import RunSet
from runicorn_lite.queries.search import search_clause
from runicorn_lite.queries.set_pages import set_page

# What an experiment object is built from (see db/rows.py).
EXPERIMENT_COLUMNS = "run_dir, deleted_at, row_json"
_E_COLUMNS = "e.run_dir, e.deleted_at, e.row_json"
# Searches with at most this many matches keep their ordered ids between pages (8 bytes each).
SEARCH_ORDER_CACHE_MAX = 20_000


class RunRef(NamedTuple):
    """Where a run is and what a delete or restore needs to know of it."""

    rel_dir: str  # relative to the data root
    status: str
    deleted_at: float | None
    path: str


@dataclass(frozen=True)
class ExperimentFilter:
    """The V2 list filters; every one applies to the rows and to ``total``."""

    project: str | None = None
    name: str | None = None
    statuses: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    search: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    best_metric_min: float | None = None
    best_metric_max: float | None = None
    include_deleted: bool | Literal["only"] = False  # "only": the recycle bin
    # A ``filter=`` expression (params, metric summaries, attributes, tags).
    expression: Expr | None = None


# The condition of a live (not deleted) run.
LIVE = "likely(deleted_at IS NULL)"


def _row_filters(f: ExperimentFilter) -> bool:
    """Whether ``f`` has filters other than project, status, deletion and ``filter=``."""
    return not (f.name is None and not f.tags and not f.search and f.created_after is None
                and f.created_before is None and f.best_metric_min is None and f.best_metric_max is None)


def only_kept_filters(f: ExperimentFilter) -> bool:
    """Whether ``f`` filters by nothing but project, status and deletion: what exp_counts
    counts."""
    return f.expression is None and not _row_filters(f)


def kept_count(conn: sqlite3.Connection, f: ExperimentFilter, cache: QueryCache | None = None,
               generation: int = 0) -> int:
    """How many runs match a filter of project / statuses / deletion alone, from the counts
    the index keeps by trigger (db/schema.py, 0011_live_counts): a few rows, whatever the
    number of runs; with ``cache``, read once per index generation (a round trip on
    PostgreSQL)."""
    key = ("kept-count", f.project, f.statuses, f.include_deleted)
    kept: int | None = cache.get(key, generation) if cache is not None else None
    if kept is None:
        kept = _kept_count(conn, f)
        if cache is not None:
            cache.put(key, generation, kept)
    return kept


def kept_where(f: ExperimentFilter) -> Where:
    """The rows of a table kept per (live, project, status) that a filter of project /
    statuses / deletion alone (:func:`only_kept_filters`) selects."""
    where = Where() if f.include_deleted is True else Where().and_(f"live = {int(not f.include_deleted)}")
    return scoped_where(where, f)


def scoped_where(where: Where, f: ExperimentFilter, hint: str = "") -> Where:
    """``where`` and ``f``'s project and statuses (``hint``: "+" keeps SQLite off their indexes)."""
    if f.project is not None:
        where = where.and_(f"{hint}project = ?", f.project)
    if f.statuses:
        where = where.and_in(f"{hint}status", f.statuses)
    return where


def _kept_count(conn: sqlite3.Connection, f: ExperimentFilter) -> int:
    where = kept_where(f)
    return int(conn.execute(f"SELECT coalesce(sum(n), 0) FROM exp_counts WHERE {where.sql}", where.args).fetchone()[0])


def where_clause(f: ExperimentFilter, walk: str | None = None) -> tuple[str, list[Any]]:
    """WHERE text (with ``?`` placeholders) and its parameters.

    ``walk`` names the sort column when the rows should come from walking its index: every
    other column then gets a unary ``+``, which keeps SQLite from driving the query from a
    filter index (and sorting all it finds). The rows are the same either way.
    """
    where = Where()

    def col(name: str) -> str:
        return name if walk is None or walk == name else f"+{name}"

    if not f.include_deleted or f.include_deleted == "only":
        # LIVE, likely(): almost every row is live. Without the hint the planner (no ANALYZE stats)
        # takes idx_experiments_deleted_at as selective and sorts every live row for each page,
        # instead of walking the partial idx_sort_live_* index in ORDER BY order.
        where = where.and_("deleted_at IS NOT NULL" if f.include_deleted else LIVE)
    for column, value in (("project", f.project), ("name", f.name)):
        if value is not None:
            where = where.and_(f"{col(column)} = ?", value)
    if f.statuses:
        where = where.and_in(col("status"), f.statuses)
    if f.tags:
        tagged = f"SELECT exp_pk FROM exp_tags WHERE tag IN ({placeholders(len(f.tags))})"
        where = where.and_(f"{col('pk')} IN ({tagged})", *f.tags)
    for column, op, bound in (
        ("created_at", ">=", f.created_after),
        ("created_at", "<=", f.created_before),
        ("best_metric_value", ">=", f.best_metric_min),
        ("best_metric_value", "<=", f.best_metric_max),
    ):
        if bound is not None:
            where = where.and_(f"{col(column)} {op} ?", bound)
    if f.search:
        sql, search_params = search_clause(f.search)
        where = where.and_(sql if walk is None else f"+{sql}", *search_params)
    if f.expression is not None:
        sql, expression_params = expression_where(f.expression, pk="pk" if walk is None else "+pk")
        where = where.and_(sql, *expression_params)
    return where.parts()


def expression_count(conn: sqlite3.Connection, f: ExperimentFilter, cache: QueryCache, generation: int) -> int:
    """How many runs match a filter of a ``filter=`` expression alone (and deletion): the size
    of its set of runs, combined from each clause's kept set (queries/filter_sets.py).

    SQLite's count of the same (``pk IN (...)`` per clause) builds every set again after any
    change of the index: 9 ms for three clauses at 10k runs, 112 ms at 100k, about once a
    second while a run trains.
    """
    assert f.expression is not None
    sets = SetEvaluator(conn, cache, generation)
    runs = sets.evaluate(f.expression)
    if f.include_deleted is True:
        return len(runs)
    live = sets.live_count(runs, sets.deleted())
    return len(runs) - live if f.include_deleted == "only" else live


def _only_clauses(f: ExperimentFilter) -> bool:
    """Whether ``f`` filters by a ``filter=`` expression and deletion alone."""
    return f.expression is not None and f.project is None and not f.statuses and not _row_filters(f)


def order_clause(order_by: str, desc: bool) -> str:
    """ORDER BY text: NULLs last in both directions, ties broken by id (same direction)."""
    col = SORT_COLUMNS[order_by]  # KeyError for anything not whitelisted
    if desc:
        # NULL sorts lowest in SQLite, so a descending walk puts NULLs last by itself.
        return f"{col} DESC, id DESC"
    if col in NULLABLE_SORT_COLUMNS:
        return f"{col} IS NULL, {col}, id"
    return f"{col}, id"


def experiment_json(
    row: tuple[Any, ...], root: Path, include_deleted: bool, extra: bytes = b""
) -> orjson.Fragment:
    """A list/detail experiment object, as JSON ready to go into an answer, from a row of
    EXPERIMENT_COLUMNS (``extra``: more ``,"key":value`` pairs)."""
    rel_dir, deleted_at, row_json = row
    return orjson.Fragment(compose(root, rel_dir, deleted_at, row_json, include_deleted, extra))


def experiment_row(row: tuple[Any, ...], root: Path, include_deleted: bool) -> dict[str, Any]:
    """The same object as a dict."""
    rel_dir, deleted_at, row_json = row
    obj: dict[str, Any] = orjson.loads(compose(root, rel_dir, deleted_at, row_json, include_deleted))
    return obj


Order = str | Field  # a column of SORT_COLUMNS, or a param / a metric aggregate


def list_experiments(
    conn: sqlite3.Connection,
    root: Path,
    f: ExperimentFilter,
    order_by: Order,
    desc: bool,
    page: int,
    per_page: int,
    counts: QueryCache | None = None,
    generation: int = 0,
    include: frozenset[str] = frozenset(),
) -> tuple[list[orjson.Fragment], int]:
    """One page of experiments (as JSON fragments) and the total that match (a few indexed
    statements).

    ``include`` may hold "params" and "metrics": each row then carries its flat params and its
    metrics' ``{"last", "min", "max"}``.
    """
    where, params = where_clause(f)

    def count(sql: str, args: list[Any], source: str = "experiments") -> int:
        key = (source, sql, *args)
        total = counts.get(key, generation) if counts is not None else None
        if total is None:
            total = conn.execute(f"SELECT count(*) FROM {source} WHERE {sql}", args).fetchone()[0]
            if counts is not None:
                counts.put(key, generation, total)
        return int(total)

    # A search's matches in their order, kept per index generation (None when more than
    # SEARCH_ORDER_CACHE_MAX): its total is their number, so the match runs once, not twice.
    searched = (_search_order(conn, where, params, order_by, desc, counts, generation)
                if f.search and counts is not None and isinstance(order_by, str) else None)
    total = len(searched) if searched is not None else _total(conn, f, where, params, counts, generation)
    if total is None:
        total = count(where, params)
    offset = (page - 1) * per_page
    page_key = ("page", where, *params, repr(order_by), desc, offset, per_page)
    known_page = counts.get(page_key, generation) if counts is not None else None
    if known_page is not None:
        # The same page of an unchanged index: its rows as read then (no statement at all, so
        # no round trip to PostgreSQL; a few KB a page in the bounded cache).
        rows = list(known_page)
    elif counts is not None and _only_clauses(f) and (
            pks := _kept_sets_page(conn, f, order_by, desc, offset, per_page, total, counts, generation)) is not None:
        # filter= alone: the page from the kept sets too (filter_sets.set_page, field_pages),
        # not from SQL that would build every clause's set again after any change.
        rows = _rows_by_pk(conn, pks)
    elif isinstance(order_by, Field):
        walk_where = None
        if where != LIVE and total:
            everything = kept_count(conn, ExperimentFilter(include_deleted=f.include_deleted), counts, generation)
            if (offset + per_page) * everything < total * total:
                walk_where = where_clause(f, walk="field")
        rows = _field_page(conn, where, params, order_by, desc, offset, per_page, total, count, walk_where)
    elif searched is not None:
        rows = _rows_by_pk(conn, searched[offset : offset + per_page])
    else:
        rows = _column_page(conn, f, where, params, order_by, desc, offset, per_page, total, counts, generation)
    if counts is not None and known_page is None:
        counts.put(page_key, generation, tuple(rows))
    extras = list_extras(conn, [r[0] for r in rows], include) if include and rows else {}
    return [experiment_json(r[1:], root, bool(f.include_deleted), extras.get(r[0], b"")) for r in rows], total



def _total(
    conn: sqlite3.Connection, f: ExperimentFilter, where: str, params: list[Any], counts: QueryCache | None,
    generation: int,
) -> int | None:
    """The number of matches when what the index keeps answers it: a sum of the kept counts
    (project, status, deletion), or the kept clause sets (``filter=`` alone); else None."""
    if only_kept_filters(f):
        return kept_count(conn, f, counts, generation)
    if counts is None or not _only_clauses(f):
        return None
    total: int | None = counts.get(("experiments", where, *params), generation)
    if total is None:
        total = expression_count(conn, f, counts, generation)
        counts.put(("experiments", where, *params), generation, total)
    return total


def _kept_sets_page(
    conn: sqlite3.Connection,
    f: ExperimentFilter,
    order_by: Order,
    desc: bool,
    offset: int,
    per_page: int,
    total: int,
    counts: QueryCache,
    generation: int,
) -> list[int] | None:
    """The pks of a page of a ``filter=`` expression alone from the kept sets of its clauses;
    by a param or metric, None when SQL finds it cheaper (field_pages.kept_field_page)."""
    runs, deleted, condition, everything = _kept_runs(conn, f, counts, generation)
    if isinstance(order_by, Field):
        return kept_field_page(conn, runs, deleted, everything, order_by, desc, offset, per_page, total)
    return set_page(conn, runs, SORT_COLUMNS[order_by], order_clause(order_by, desc), offset, per_page, everything,
                    condition, total, deleted)


def _kept_runs(
    conn: sqlite3.Connection, f: ExperimentFilter, counts: QueryCache, generation: int
) -> tuple[RunSet, frozenset[int], str, int]:
    """A ``filter=`` expression's kept set of runs; the members a page leaves out (deleted
    runs, unless wanted); the condition of the runs a walk of the list may meet, and how many
    there are."""
    assert f.expression is not None
    sets = SetEvaluator(conn, counts, generation)
    runs = sets.evaluate(f.expression)
    deleted = frozenset() if f.include_deleted is True else frozenset(sets.deleted())
    condition = "TRUE" if f.include_deleted is True else LIVE
    if f.include_deleted == "only":  # the recycle bin: the deleted runs among them
        runs, condition = RunSet.of([pk for pk in deleted if pk in runs]), "deleted_at IS NOT NULL"
        deleted = frozenset()
    everything = kept_count(conn, ExperimentFilter(include_deleted=f.include_deleted), counts, generation)
    return runs, deleted, condition, everything


def _column_page(
    conn: sqlite3.Connection,
    f: ExperimentFilter,
    where: str,
    params: list[Any],
    order_by: str,
    desc: bool,
    offset: int,
    per_page: int,
    total: int,
    counts: QueryCache | None,
    generation: int,
) -> list[tuple[Any, ...]]:
    sql = (f"SELECT pk, {EXPERIMENT_COLUMNS} FROM experiments WHERE {where}"
           f" ORDER BY {order_clause(order_by, desc)} LIMIT ? OFFSET ?")
    args = (*params, per_page, offset)
    if total and not f.include_deleted and _planner_sorts(conn, sql, args, counts, generation):
        # SQLite drives this query from a filter index and sorts every match. It has no
        # estimate for ranges (created_after, ...), so it cannot see when walking the sort
        # index and filtering as it goes is cheaper: about needed / fraction rows read,
        # against all matches. We can, from the counts we have anyway (a 4-filter page at
        # 100k runs: 17 ms -> 2 ms).
        live = kept_count(conn, ExperimentFilter(), counts, generation)
        if (offset + per_page) * live < total * total:
            walk_where, walk_params = where_clause(f, walk=SORT_COLUMNS[order_by])
            sql = (f"SELECT pk, {EXPERIMENT_COLUMNS} FROM experiments WHERE {walk_where}"
                   f" ORDER BY {order_clause(order_by, desc)} LIMIT ? OFFSET ?")
            args = (*walk_params, per_page, offset)
    return conn.execute(sql, args).fetchall()


def _field_page(
    conn: sqlite3.Connection,
    where: str,
    params: list[Any],
    field: Field,
    desc: bool,
    offset: int,
    per_page: int,
    total: int,
    count: Any,
    walk_where: tuple[str, list[Any]] | None = None,
) -> list[tuple[Any, ...]]:
    """A page ordered by a param or a metric aggregate: the runs that have it, in value order
    (walking the (key, value, id) index), then the runs that lack it, by id; ties by id, in
    the direction asked, so pages never overlap or skip.

    Two statements rather than one ``ORDER BY value IS NULL``: that would sort every match,
    where these walk indexes and stop at the page.
    """
    table, has, has_params = field_source(field)
    direction = "DESC" if desc else ""
    if walk_where is not None:
        # Filtering as the walk goes is cheaper than building every match first (see
        # _column_page): the page's rows come from the walk, counts still from ``where``.
        where, params = walk_where
    rows = conn.execute(
        f"SELECT e.pk, {_E_COLUMNS} FROM {table} s JOIN experiments e ON e.pk = s.exp_pk"
        f" WHERE {has} AND {where} ORDER BY {field_order(field, direction)}, s.exp_id {direction} LIMIT ? OFFSET ?",
        (*has_params, *params, per_page, offset),
    ).fetchall()
    if len(rows) == per_page or offset + len(rows) >= total:
        return rows
    # The page reaches past the runs that have the field: go on with those that lack it.
    if rows:
        with_field = offset + len(rows)
    else:
        source = f"{table} s JOIN experiments e ON e.pk = s.exp_pk"
        with_field = count(f"{has} AND {where}", [*has_params, *params], source)
    lacking = conn.execute(
        f"SELECT pk, {EXPERIMENT_COLUMNS} FROM experiments WHERE {where} AND NOT EXISTS"
        f" (SELECT 1 FROM {table} s WHERE s.exp_pk = experiments.pk AND {has})"
        f" ORDER BY id {direction} LIMIT ? OFFSET ?",
        (*params, *has_params, per_page - len(rows), max(0, offset + len(rows) - with_field)),
    ).fetchall()
    return rows + lacking


class _TooManyToKeep:
    """What the cache keeps for a search with more matches than SEARCH_ORDER_CACHE_MAX."""


_TOO_MANY = _TooManyToKeep()


def _search_order(
    conn: sqlite3.Connection,
    where: str,
    params: list[Any],
    order_by: str,
    desc: bool,
    cache: QueryCache,
    generation: int,
) -> tuple[int, ...] | None:
    """The ordered pks of every match of a search, kept per index generation; None when there
    are more than SEARCH_ORDER_CACHE_MAX (their pages then come from SQL, page by page).

    The trigram match and the sort of its matches are most of a search's cost and the same for
    every page (and every repeat); pages are then slices, and the total is the list's length.
    """
    key = ("search-order", where, *params, order_by, desc)
    pks = cache.get(key, generation)
    if pks is None:
        pks = tuple(r[0] for r in conn.execute(
            f"SELECT pk FROM experiments WHERE {where} ORDER BY {order_clause(order_by, desc)} LIMIT ?",
            [*params, SEARCH_ORDER_CACHE_MAX + 1],
        ))
        if len(pks) > SEARCH_ORDER_CACHE_MAX:
            pks = _TOO_MANY
        cache.put(key, generation, pks)
    return None if pks is _TOO_MANY else pks


def _rows_by_pk(conn: sqlite3.Connection, pks: Sequence[int]) -> list[tuple[Any, ...]]:
    """Rows (pk first) of the given pks, in their order."""
    if not pks:
        return []
    rows = {r[0]: r for r in conn.execute(
        f"SELECT pk, {EXPERIMENT_COLUMNS} FROM experiments WHERE pk IN ({','.join('?' * len(pks))})", pks
    )}
    return [rows[pk] for pk in pks if pk in rows]


def list_extras(conn: sqlite3.Connection, pks: list[int], include: frozenset[str]) -> dict[int, bytes]:
    """pk → ``,"params":{...},"metrics":{...}`` (as asked) for list rows: the JSON the index
    keeps in their rows, copied, never parsed; each metric shows ``{"last", "min", "max"}``."""
    want_params, want_metrics = "params" in include, "metrics" in include
    out = {}
    for pk, params, metrics in conn.execute(
        f"SELECT pk, params_json, metrics_json FROM experiments WHERE pk IN ({','.join('?' * len(pks))})", pks
    ):
        extra = b""
        if want_params:
            extra += b',"params":' + (params or b"{}")
        if want_metrics:
            extra += b',"metrics":' + (metrics or b"{}")
        out[pk] = extra
    return out


def _planner_sorts(
    conn: sqlite3.Connection, sql: str, args: tuple[Any, ...], cache: QueryCache | None, generation: int
) -> bool:
    """Whether SQLite's plan for ``sql`` sorts its rows (EXPLAIN QUERY PLAN, cached)."""
    if on_postgres():  # its planner has statistics of ranges: nothing to correct
        return False
    key = ("plan", sql)
    known = cache.get(key, generation) if cache is not None else None
    if known is None:
        plan = conn.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall()
        known = int(any("FOR ORDER BY" in row[3] for row in plan))
        if cache is not None:
            cache.put(key, generation, known)
    return bool(known)


def find_for_write(conn: sqlite3.Connection, ids: list[str]) -> dict[str, RunRef]:
    """id → RunRef for the ids the index knows."""
    out: dict[str, RunRef] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        sql = f"SELECT id, run_dir, status, deleted_at, path FROM experiments WHERE id IN ({','.join('?' * len(part))})"
        out.update((row[0], RunRef(*row[1:])) for row in conn.execute(sql, part))
    return out
