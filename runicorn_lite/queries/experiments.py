"""SQL over the index for experiment lists, details and deletions' lookups.

Every value is a bound parameter; the only identifiers ever formatted into SQL come from
``SORT_COLUMNS`` and ``EXPERIMENT_COLUMNS``.
"""

from __future__ import annotations

import itertools
import sqlite3
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import orjson

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.rows import compose
from runicorn_lite.db.schema import NULLABLE_SORT_COLUMNS, SORT_COLUMNS
from runicorn_lite.queries.filter_sets import SetEvaluator, aggregate_column, expression_where, set_page
from runicorn_lite.queries.filters import Expr, Field

# What an experiment object is built from (see db/rows.py).
EXPERIMENT_COLUMNS = "run_dir, deleted_at, row_json"
_E_COLUMNS = "e.run_dir, e.deleted_at, e.row_json"
MIN_TRIGRAM = 3
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


def _only_kept_filters(f: ExperimentFilter) -> bool:
    """Whether ``f`` filters by nothing but project, status and deletion: what exp_counts
    counts."""
    return f.expression is None and not _row_filters(f)


def kept_count(conn: sqlite3.Connection, f: ExperimentFilter) -> int:
    """How many runs match a filter of project / statuses / deletion alone, from the counts
    the index keeps by trigger (db/schema.py, 0011_live_counts): a few rows, whatever the
    number of runs."""
    terms, params = [] if f.include_deleted is True else [f"live = {int(not f.include_deleted)}"], []
    if f.project is not None:
        terms.append("project = ?")
        params.append(f.project)
    if f.statuses:
        terms.append(f"status IN ({','.join('?' * len(f.statuses))})")
        params.extend(f.statuses)
    where = " AND ".join(terms) if terms else "TRUE"
    return int(conn.execute(f"SELECT coalesce(sum(n), 0) FROM exp_counts WHERE {where}", params).fetchone()[0])


def where_clause(f: ExperimentFilter, walk: str | None = None) -> tuple[str, list[Any]]:
    """WHERE text (with ``?`` placeholders) and its parameters.

    ``walk`` names the sort column when the rows should come from walking its index: every
    other column then gets a unary ``+``, which keeps SQLite from driving the query from a
    filter index (and sorting all it finds). The rows are the same either way.
    """
    terms: list[str] = []
    params: list[Any] = []

    def col(name: str) -> str:
        return name if walk is None or walk == name else f"+{name}"

    if not f.include_deleted or f.include_deleted == "only":
        # LIVE, likely(): almost every row is live. Without the hint the planner (no ANALYZE stats)
        # takes idx_experiments_deleted_at as selective and sorts every live row for each page,
        # instead of walking the partial idx_sort_live_* index in ORDER BY order.
        terms.append("deleted_at IS NOT NULL" if f.include_deleted else LIVE)
    if f.project is not None:
        terms.append(f"{col('project')} = ?")
        params.append(f.project)
    if f.name is not None:
        terms.append(f"{col('name')} = ?")
        params.append(f.name)
    if f.statuses:
        terms.append(f"{col('status')} IN ({','.join('?' * len(f.statuses))})")
        params.extend(f.statuses)
    if f.tags:
        terms.append(f"{col('pk')} IN (SELECT exp_pk FROM exp_tags WHERE tag IN ({','.join('?' * len(f.tags))}))")
        params.extend(f.tags)
    if f.created_after is not None:
        terms.append(f"{col('created_at')} >= ?")
        params.append(f.created_after)
    if f.created_before is not None:
        terms.append(f"{col('created_at')} <= ?")
        params.append(f.created_before)
    if f.best_metric_min is not None:
        terms.append(f"{col('best_metric_value')} >= ?")
        params.append(f.best_metric_min)
    if f.best_metric_max is not None:
        terms.append(f"{col('best_metric_value')} <= ?")
        params.append(f.best_metric_max)
    if f.search:
        sql, search_params = search_clause(f.search)
        terms.append(sql if walk is None else f"+{sql}")
        params.extend(search_params)
    if f.expression is not None:
        sql, expression_params = expression_where(f.expression)
        terms.append(sql)
        params.extend(expression_params)
    return (" AND ".join(terms) if terms else "TRUE"), params


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


def search_clause(text: str) -> tuple[str, list[Any]]:
    """Every word must occur (case-insensitively) somewhere in the searchable text.

    Words of three characters or more go through the FTS5 trigram index (which folds case,
    Unicode included); shorter words cannot use trigrams and are checked on the rows the longer
    words left (or on all rows when the query has only short words). SQLite's ``lower()`` folds
    ASCII only, so a short word is matched as any of its case variants instead.
    """
    words = list(dict.fromkeys(w for w in text.split() if w))
    if on_postgres():
        return _pg_search_clause(words)
    long_words = [w for w in words if len(w) >= MIN_TRIGRAM]
    short_words = [w for w in words if len(w) < MIN_TRIGRAM]
    inner: list[str] = []
    params: list[Any] = []
    if long_words:
        inner.append("experiments_fts MATCH ?")
        params.append(" AND ".join('"' + w.replace('"', '""') + '"' for w in long_words))
    for word in short_words:
        variants = case_variants(word)
        inner.append("(" + " OR ".join(["instr(body, ?) > 0"] * len(variants)) + ")")
        params.extend(variants)
    return f"pk IN (SELECT rowid FROM experiments_fts WHERE {' AND '.join(inner)})", params


def _pg_search_clause(words: list[str]) -> tuple[str, list[Any]]:
    """PostgreSQL: the searchable text is kept lowercased (by Python, as FTS5 folds case) under a
    pg_trgm index, and each word is a LIKE on it (words of three characters or more use the
    index; shorter ones are checked on the rows the others left, as on SQLite)."""
    inner = ["body LIKE ? ESCAPE '\\'"] * len(words)
    params = ["%" + w.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words]
    return f"pk IN (SELECT rowid FROM experiments_fts WHERE {' AND '.join(inner)})", params


def case_variants(word: str) -> list[str]:
    """Every spelling of a short ``word`` that differs only in letter case ("ü" → "ü", "Ü")."""
    choices = [sorted({v for v in (c, c.lower(), c.upper()) if len(v) == 1}) for c in word]
    return ["".join(p) for p in itertools.product(*choices)]


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


# What the query cache may hold, about (numpy arrays of params and metric summaries, sorted
# sets of runs, answers): at 100k runs one param's array of pks and codes is 1.6 MB, so this
# keeps the columns of importance over about 80 params there (its default weighs at most 200).
QUERY_CACHE_BYTES = 128 << 20
_SAMPLE = 16  # items of a long container measured; the rest are taken to be alike
_SCALARS = (int, float, str, bytes, type(None))


def approx_nbytes(value: Any, depth: int = 0) -> int:
    """About how many bytes ``value`` holds: numpy arrays by their buffers, a dict (an API
    answer) by its JSON text (Python's objects of it take a few times that), tuples and lists
    by their items (a long one by a sample of its first items: a put stays cheap), and
    anything else by ``sys.getsizeof``."""
    if isinstance(value, _SCALARS):
        return sys.getsizeof(value)
    buffer = getattr(value, "nbytes", None)  # a numpy array (not imported here for this)
    if isinstance(buffer, int):
        return buffer + 112
    if isinstance(value, dict):
        try:
            return 4 * len(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS))
        except TypeError:
            return sys.getsizeof(value)
    if depth >= 3 or not isinstance(value, (tuple, list)):
        return sys.getsizeof(value)
    sample = value[:_SAMPLE]
    if not sample:
        return sys.getsizeof(value)
    measured = sum(sys.getsizeof(item) if isinstance(item, _SCALARS) else approx_nbytes(item, depth + 1)
                   for item in sample)
    return sys.getsizeof(value) + measured * len(value) // len(sample)


class QueryCache:
    """Totals, plan facts, search orders, arrays and answers of recent queries, each valid
    while its version stands (the index's generation, or a table's version).

    Paging through a result asks for the same total again and again; at 100k experiments a
    count is several milliseconds, a page of rows a fraction of one. At most ``size`` entries
    of about ``max_bytes`` in all (:func:`approx_nbytes`): the oldest go first, and an entry
    larger than the whole bound is not kept.
    """

    def __init__(self, size: int = 256, set_members: int = 400_000, max_bytes: int = QUERY_CACHE_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._entries: dict[tuple[Any, ...], tuple[Any, Any, int]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        # Sets of runs (filter_sets) are kept apart, within a number of members in all
        # (about 50 bytes each: 400,000 are ~20 MB).
        self.set_members = set_members
        self._sets: dict[tuple[Any, ...], tuple[Any, frozenset[int]]] = {}
        self._members = 0

    @property
    def nbytes(self) -> int:
        """About how many bytes the kept entries hold (sets of runs apart)."""
        return self._bytes

    def get(self, key: tuple[Any, ...], generation: Any) -> Any:
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] == generation else None

    def get_set(self, key: tuple[Any, ...], version: Any) -> frozenset[int] | None:
        """A set of runs kept by :meth:`put_set` for this version of its table, else None."""
        hit = self._sets.get(key)
        return hit[1] if hit is not None and hit[0] == version else None

    def put(self, key: tuple[Any, ...], generation: Any, value: Any) -> None:
        """Keep ``value`` for this generation (or version), dropping the oldest entries while
        there would be more than ``size`` of them or more than ``max_bytes``."""
        nbytes = approx_nbytes(key) + approx_nbytes(value)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            if nbytes > self.max_bytes:
                return
            while self._entries and (len(self._entries) >= self.size or self._bytes + nbytes > self.max_bytes):
                self._bytes -= self._entries.pop(next(iter(self._entries)))[2]
            self._entries[key] = (generation, value, nbytes)
            self._bytes += nbytes

    def put_set(self, key: tuple[Any, ...], version: Any, runs: frozenset[int]) -> None:
        """Keep a set of runs, dropping the oldest sets while the members would be too many."""
        if len(runs) > self.set_members:
            return
        with self._lock:
            old = self._sets.pop(key, None)
            if old is not None:
                self._members -= len(old[1])
            while self._sets and self._members + len(runs) > self.set_members:
                self._members -= len(self._sets.pop(next(iter(self._sets)))[1])
            self._sets[key] = (version, runs)
            self._members += len(runs)


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

    if _only_kept_filters(f):  # project, status, deletion: a sum of the counts the index keeps
        total = kept_count(conn, f)
    elif counts is not None and _only_clauses(f):  # filter= alone: from the kept clause sets
        total = counts.get(("experiments", where, *params), generation)
        if total is None:
            total = expression_count(conn, f, counts, generation)
            counts.put(("experiments", where, *params), generation, total)
    else:
        total = count(where, params)
    offset = (page - 1) * per_page
    page_key = ("page", where, *params, repr(order_by), desc, offset, per_page)
    known_page = counts.get(page_key, generation) if counts is not None else None
    if known_page is not None:
        # The same page of an unchanged index: its rows by primary key, in the order found.
        rows = _rows_by_pk(conn, known_page)
    elif counts is not None and _only_clauses(f) and isinstance(order_by, str):
        # filter= alone, by a column: the page from the kept sets too (filter_sets.set_page),
        # not from SQL that would build every clause's set again after any change.
        assert f.expression is not None
        sets = SetEvaluator(conn, counts, generation)
        runs = sets.evaluate(f.expression)
        deleted = frozenset() if f.include_deleted is True else frozenset(sets.deleted())
        condition = "TRUE" if f.include_deleted is True else LIVE
        if f.include_deleted == "only":  # the recycle bin: the deleted runs among them
            runs, deleted, condition = runs & deleted, frozenset(), "deleted_at IS NOT NULL"
        everything = kept_count(conn, ExperimentFilter(include_deleted=f.include_deleted))
        rows = _rows_by_pk(conn, set_page(conn, runs, SORT_COLUMNS[order_by], order_clause(order_by, desc), offset,
                                          per_page, everything, condition, total, deleted))
    elif isinstance(order_by, Field):
        walk_where = None
        if where != LIVE and total:
            everything = kept_count(conn, ExperimentFilter(include_deleted=f.include_deleted))
            if (offset + per_page) * everything < total * total:
                walk_where = where_clause(f, walk="field")
        rows = _field_page(conn, where, params, order_by, desc, offset, per_page, total, count, walk_where)
    elif f.search and counts is not None and total <= SEARCH_ORDER_CACHE_MAX:
        rows, total = _search_page(conn, where, params, order_by, desc, offset, per_page, counts, generation)
    else:
        rows = _column_page(conn, f, where, params, order_by, desc, offset, per_page, total, counts, generation)
    if counts is not None and known_page is None:
        counts.put(page_key, generation, tuple(r[0] for r in rows))
    extras = list_extras(conn, [r[0] for r in rows], include) if include and rows else {}
    return [experiment_json(r[1:], root, bool(f.include_deleted), extras.get(r[0], b"")) for r in rows], total


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
        live = kept_count(conn, ExperimentFilter())
        if (offset + per_page) * live < total * total:
            walk_where, walk_params = where_clause(f, walk=SORT_COLUMNS[order_by])
            sql = (f"SELECT pk, {EXPERIMENT_COLUMNS} FROM experiments WHERE {walk_where}"
                   f" ORDER BY {order_clause(order_by, desc)} LIMIT ? OFFSET ?")
            args = (*walk_params, per_page, offset)
    return conn.execute(sql, args).fetchall()


def field_order(field: Field, direction: str) -> str:
    """ORDER BY terms of a field's value (``s.``: its params or summaries row) in ``direction``:
    numbers before strings for params on both backends."""
    if field.kind != "params":
        return f"s.{aggregate_column(field)} {direction}"
    if on_postgres():
        return f"(s.vn IS NULL) {direction}, s.vn {direction}, s.vs {direction}"
    return f"s.v {direction}"


def _field_source(field: Field) -> tuple[str, str, list[Any]]:
    """(table, condition, params) of the rows that give runs a value for ``field``; the value
    is column ``s.v`` (params) or the aggregate's column (metrics)."""
    if field.kind == "params":
        return "exp_params", "s.key = ?", [field.name]
    col = aggregate_column(field)
    return "metric_summaries", f"s.metric = ? AND s.{col} IS NOT NULL", [field.name]


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
    table, has, has_params = _field_source(field)
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


def _search_page(
    conn: sqlite3.Connection,
    where: str,
    params: list[Any],
    order_by: str,
    desc: bool,
    offset: int,
    per_page: int,
    cache: QueryCache,
    generation: int,
) -> tuple[list[tuple[Any, ...]], int]:
    """A search page (and the number of matches) from the ordered ids of every match, kept per index generation.

    The trigram MATCH and the sort of its matches are most of a search's cost and the same for
    every page (and every repeat); pages are then slices, and the total is the list's length.
    """
    key = ("search-order", where, *params, order_by, desc)
    pks = cache.get(key, generation)
    if pks is None:
        pks = tuple(r[0] for r in conn.execute(
            f"SELECT pk FROM experiments WHERE {where} ORDER BY {order_clause(order_by, desc)}", params
        ))
        cache.put(key, generation, pks)
    wanted = pks[offset : offset + per_page]
    if not wanted:
        return [], len(pks)
    return _rows_by_pk(conn, wanted), len(pks)


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


def experiment_detail(conn: sqlite3.Connection, root: Path, exp_id: str) -> dict[str, Any] | None:
    """The detail of one experiment (deleted ones included), None if unknown: the experiment
    object with its params and whole metric summaries, the V2 document's ``metrics_summary``,
    and what the run recorded (config, environment, images). Four indexed statements."""
    row = conn.execute(
        f"SELECT pk, environment_available, params_json, {EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?",
        (exp_id,),
    ).fetchone()
    if row is None:
        return None
    pk, environment_available, params_json = row[:3]
    experiment = experiment_row(row[3:], root, True)
    summaries = conn.execute(
        "SELECT metric, first, last, min, max, count, last_step, points, min_step, max_step FROM metric_summaries"
        " WHERE exp_pk = ? ORDER BY metric",
        (pk,),
    ).fetchall()
    experiment["params"] = orjson.loads(params_json) if params_json else {}
    experiment["metrics"] = {
        r[0]: {"first": r[1], "last": r[2], "min": r[3], "max": r[4], "count": r[5], "last_step": r[6]}
        for r in summaries
    }
    config, environment = conn.execute(
        "SELECT config, environment FROM exp_docs WHERE exp_pk = ?", (pk,)
    ).fetchone() or (None, None)
    images = conn.execute("SELECT count(*) FROM exp_images WHERE exp_pk = ?", (pk,)).fetchone()[0]
    return {
        "experiment": experiment,
        "metrics_summary": {
            "total_data_points": sum(r[7] for r in summaries),
            "available_metrics": [r[0] for r in summaries],
            "step_range": {"min": min(r[8] for r in summaries), "max": max(r[9] for r in summaries)}
            if summaries else None,
        },
        "environment_available": bool(environment_available),
        "params": experiment["params"],
        "metrics": experiment["metrics"],
        "config": None if config is None else orjson.loads(config),
        "environment": None if environment is None else orjson.loads(environment),
        "images_count": images,
    }


def find_for_write(conn: sqlite3.Connection, ids: list[str]) -> dict[str, RunRef]:
    """id → RunRef for the ids the index knows."""
    out: dict[str, RunRef] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        sql = f"SELECT id, run_dir, status, deleted_at, path FROM experiments WHERE id IN ({','.join('?' * len(part))})"
        out.update((row[0], RunRef(*row[1:])) for row in conn.execute(sql, part))
    return out
