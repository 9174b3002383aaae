"""Runs grouped by params or attributes, with each group's metric statistics (analysis.md §2).

The matching runs are the sorted pks of the filter's kept set of runs (filter_sets.py) less the
soft-deleted ones; each grouped param's values and each metric aggregate's are arrays kept by
the version of their table (one walk of its index when they are built). After a change of the
index (a delete, a restore, a live run's points) an answer is then a read of the few deleted
runs and some numpy: no read of every matching run's row. Each group's run ids come in the
list's order from the list order of every run (:class:`ListOrder`), kept while the set of runs
stands; grouping by an attribute reads the matching rows.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.set_changes import read_versions
from runicorn_lite.queries.experiments import (
    ExperimentFilter,
    QueryCache,
    _row_filters,
    order_clause,
    where_clause,
)
from runicorn_lite.queries.filter_sets import SetEvaluator, aggregate_column
from runicorn_lite.queries.filters import DEFAULT_AGGREGATE, Field, FilterError, MetricNames, _Parser

GROUP_ATTRIBUTES = ("status", "project", "name")
MAX_GROUP_FIELDS = 5
MAX_GROUP_METRICS = 10
MAX_GROUPS = 1000


def parse_group_field(text: str) -> Field:
    """``params.<key>`` or ``attributes.status|project|name``; FilterError otherwise."""
    if text.startswith("attributes."):
        name = text.removeprefix("attributes.")
        if name not in GROUP_ATTRIBUTES:
            raise FilterError(f"Runs group by attributes.{'|'.join(GROUP_ATTRIBUTES)} only", len("attributes."))
        return Field("attributes", name)
    if not text.startswith("params."):
        raise FilterError("Expected params.<key> or attributes.status|project|name", 0)
    parser = _Parser(text, lambda _name: False)
    field = parser.field()
    if not parser.at_end():
        raise parser.fail(f"Unexpected text after the field: {parser._excerpt(parser.pos)}")
    return field


def parse_metric_aggregate(text: str, is_metric: MetricNames) -> Field:
    """``name[.aggregate]`` (default ``last``), read as ``metrics.<text>`` is in a filter."""
    parser = _Parser("metrics." + text, is_metric)
    parser.pos = len("metrics.")
    try:
        field = parser.metric_field()
        if not parser.at_end():
            raise parser.fail(f"Unexpected text after the metric: {parser._excerpt(parser.pos)}")
    except FilterError as exc:  # positions count in ``text`` as sent
        raise FilterError(exc.message, max(0, exc.position - len("metrics."))) from None
    return field


def metric_label(field: Field) -> str:
    return f"{field.name}.{field.agg or DEFAULT_AGGREGATE}"


def _key_order(value: Any) -> tuple[int, Any]:
    """Null first, then numbers, then strings (as the index orders them)."""
    if value is None:
        return (0, 0)
    if isinstance(value, str):
        return (2, value)
    return (1, value)


class Columns:
    """Params and metric aggregates as arrays over the runs that have them (pks sorted, each
    from one walk of its index), kept in ``cache`` while its table's version stands (a delete
    or an edit leaves them good); a run's value is then found by a binary search."""

    def __init__(self, conn: sqlite3.Connection, cache: QueryCache | None = None) -> None:
        self.conn = conn
        self.cache = cache
        self.versions = read_versions(conn)

    def _kept(self, key: tuple[Any, ...], table: str, build: Any) -> Any:
        version = (self.versions["epoch"], self.versions[table])
        found = self.cache.get(key, version) if self.cache is not None else None
        if found is None:
            found = build()
            for item in found if isinstance(found, tuple) else ():
                if isinstance(item, np.ndarray):  # shared by every request (and _lookup hands it out)
                    item.flags.writeable = False
            if self.cache is not None:
                self.cache.put(key, version, found)
        return found

    def param(self, key: str) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """(sorted pks, their value codes, the values by code) of the runs that have the param
        (booleans as 1 and 0)."""

        def build() -> tuple[np.ndarray, np.ndarray, list[Any]]:
            if on_postgres():  # typed columns there (db/pg_schema.py): the value is whichever is set
                sql = "SELECT exp_pk, vs, vn FROM exp_params WHERE key = ? ORDER BY exp_pk"
                rows = [(pk, vs if vs is not None else vn) for pk, vs, vn in self.conn.execute(sql, (key,))]
            else:
                sql = "SELECT exp_pk, v FROM exp_params WHERE key = ? ORDER BY exp_pk"
                rows = self.conn.execute(sql, (key,)).fetchall()
            codes: dict[Any, int] = {}
            code = [codes.setdefault((isinstance(v, str), v), len(codes)) for _pk, v in rows]
            return (np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                    np.asarray(code, dtype=np.int64), [v for _kind, v in codes])

        found: tuple[np.ndarray, np.ndarray, list[Any]] = self._kept(("param-values", key), "exp_params", build)
        return found

    def key_counts(self) -> list[tuple[str, int]]:
        """(key, how many runs have it) of every param key."""

        def build() -> list[tuple[str, int]]:
            return [(k, int(c)) for k, c in self.conn.execute("SELECT key, count(*) FROM exp_params GROUP BY key")]

        found: list[tuple[str, int]] = self._kept(("param-keys",), "exp_params", build)
        return found

    def metric(self, field: Field) -> tuple[np.ndarray, np.ndarray]:
        """(sorted pks, values) of the runs that have the metric aggregate."""
        col = aggregate_column(field)

        def build() -> tuple[np.ndarray, np.ndarray]:
            rows = self.conn.execute(
                f"SELECT exp_pk, {col} FROM metric_summaries WHERE metric = ? AND {col} IS NOT NULL ORDER BY exp_pk",
                (field.name,)).fetchall()
            return (np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                    np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows)))

        found: tuple[np.ndarray, np.ndarray] = self._kept(("metric-values", field.name, col), "metric_summaries", build)
        return found


def _lookup(keys: np.ndarray, values: np.ndarray, pks: np.ndarray, missing: Any) -> np.ndarray:
    """``values`` at each of ``pks`` in the sorted ``keys``; ``missing`` where a pk is absent
    (``values`` itself when ``pks`` are ``keys``: read it, never write it)."""
    if not keys.size:
        return np.full(pks.size, missing, dtype=values.dtype)
    if keys.size == pks.size and np.array_equal(keys, pks):  # every run has it: no search
        return values
    at = np.minimum(np.searchsorted(keys, pks), keys.size - 1)
    out: np.ndarray = np.where(keys[at] == pks, values[at], missing)
    return out


def _distinct_rows(codes: list[np.ndarray], sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of the code columns (sorted) and each run's row among them: one 1-d
    ``unique`` of the codes packed into one integer (numpy's row-wise unique sorts records,
    several times slower), unless the packing would overflow."""
    combinations = math.prod(max(1, n) for n in sizes)
    if combinations < 1 << 62:
        packed = np.zeros(codes[0].size, dtype=np.int64)
        for column, n in zip(codes, sizes, strict=True):
            packed = packed * max(1, n) + column
        if combinations <= 4 * packed.size + 1024:  # few combinations: counted, not sorted
            keys = np.flatnonzero(np.bincount(packed, minlength=combinations))
            rank = np.zeros(combinations, dtype=np.int64)
            rank[keys] = np.arange(keys.size)
            which = rank[packed]
        else:
            keys, which = np.unique(packed, return_inverse=True)
        distinct = np.empty((keys.size, len(codes)), dtype=np.int64)
        for j in range(len(codes) - 1, -1, -1):
            keys, distinct[:, j] = np.divmod(keys, max(1, sizes[j]))
        return distinct, which.reshape(-1)
    distinct, which = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    return distinct, which.reshape(-1)


class GroupStats:
    """One metric's statistics of every group at once (arrays indexed by group): a few
    ``bincount``s over the runs that have the metric instead of numpy calls per group."""

    def __init__(self, which: np.ndarray, n_groups: int, column: np.ndarray) -> None:
        has = ~np.isnan(column)
        group, values = (which, column) if has.all() else (which[has], column[has])
        self.count = np.bincount(group, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(group, weights=values, minlength=n_groups) / self.count
            # Two passes, as numpy's own mean and std are about as exact: the mean corrected
            # by the mean of the residuals, the variance from the residuals themselves.
            mean += np.bincount(group, weights=values - mean[group], minlength=n_groups) / self.count
            residual = values - mean[group]
            self.std = np.sqrt(np.bincount(group, weights=residual * residual, minlength=n_groups) / (self.count - 1))
        self.mean = mean
        self.min = np.full(n_groups, math.inf)
        self.max = np.full(n_groups, -math.inf)
        np.minimum.at(self.min, group, values)  # no sort of the runs by group (a stable one is slow)
        np.maximum.at(self.max, group, values)

    def json(self, group: int) -> dict[str, Any]:
        """Mean, sample standard deviation (n - 1; None under 2 values), min, max and count."""
        n = int(self.count[group])
        if n == 0:
            return {"mean": None, "std": None, "min": None, "max": None, "count": 0}
        return {"mean": float(self.mean[group]), "std": float(self.std[group]) if n > 1 else None,
                "min": float(self.min[group]), "max": float(self.max[group]), "count": n}


def matching_pks(
    conn: sqlite3.Connection, f: ExperimentFilter, cache: QueryCache | None = None, generation: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """The runs the list filter matches: sorted pks, and which of them match (None: all).

    A ``filter=`` expression (or none) with deletion is served from the set of runs kept by
    table version (the mask leaves out, or keeps only, the few soft-deleted runs): after a
    change of the index nothing but those is read, and a param's array looked up at the same
    pks as it has itself needs no search. Other filters are one SQL statement."""
    if cache is not None and f.project is None and not f.statuses and not _row_filters(f):
        sets = SetEvaluator(conn, cache, generation)
        runs = sets.sorted_runs(f.expression)
        if f.include_deleted is True:
            return runs, None
        deleted = np.asarray(sets.deleted(), dtype=np.int64)
        at = np.minimum(np.searchsorted(runs, deleted), max(0, runs.size - 1))
        among = at[runs[at] == deleted] if runs.size else at[:0]
        if f.include_deleted == "only":
            mask = np.zeros(runs.size, dtype=bool)
            mask[among] = True
            return runs, mask
        if not among.size:
            return runs, None
        mask = np.ones(runs.size, dtype=bool)
        mask[among] = False
        return runs, mask
    where, params = where_clause(f)
    found = np.fromiter((pk for (pk,) in conn.execute(f"SELECT pk FROM experiments WHERE {where}", params)),
                        dtype=np.int64)
    found.sort()
    return found, None


def matching_runs(
    conn: sqlite3.Connection, f: ExperimentFilter, attributes: Sequence[str] = (), ordered: bool = True
) -> list[tuple[Any, ...]]:
    """(pk, id, *attributes) of every run the list filter matches, in the list's default order
    (in no particular order unless ``ordered``)."""
    where, params = where_clause(f)
    columns = "".join(f", {a}" for a in attributes if a in GROUP_ATTRIBUTES)
    order = f" ORDER BY {order_clause('created_at', True)}" if ordered else ""
    return conn.execute(f"SELECT pk, id{columns} FROM experiments WHERE {where}{order}", params).fetchall()


def _group_ids(
    conn: sqlite3.Connection, which: np.ndarray, count: np.ndarray, shown: list[int], matched: np.ndarray,
    order_of: ListOrder | None, rows: list[tuple[Any, ...]],
) -> dict[int, list[str]]:
    """Each shown group's run ids, in the list's order: by each ``matched`` run's place in the
    kept list order when there is one, else ``rows`` are in that order already."""
    place = order_of.place_of(matched) if order_of is not None else None
    if order_of is not None and place is None:  # the kept order is behind this read: read it anew
        order_of = ListOrder(conn)
        place = order_of.place_of(matched)
    ends = np.cumsum(count)
    if place is not None and order_of is not None:
        # One sort by (group, place): places are distinct, so one integer key orders both.
        key = which.astype(np.int64) * max(1, len(order_of.ids)) + place
        id_at = order_of.ids[place[np.argsort(key)]]
        return {gi: id_at[ends[gi] - count[gi] : ends[gi]].tolist() for gi in shown}
    runs_in_order = np.argsort(which, kind="stable")
    ids = [rows[i][1] for i in runs_in_order.tolist()]
    return {gi: ids[ends[gi] - count[gi] : ends[gi]] for gi in shown}


class ListOrder:
    """Every run of the index (deleted ones too) in the list's default order (created_at, id,
    descending): its pks sorted, each one's place in that order, and the ids in that order.
    Kept while the set of runs stands (a run's created_at and id never change once indexed),
    so after a delete, a restore or new points the ids of many runs cost a lookup, not a read
    of every matching row in order."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute(f"SELECT pk, id FROM experiments ORDER BY {order_clause('created_at', True)}").fetchall()
        in_order = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        self.ids: np.ndarray = np.array([r[1] for r in rows], dtype=object)
        by_pk = np.argsort(in_order, kind="stable")
        self.pks = in_order[by_pk]
        self.places = by_pk
        self.pks.flags.writeable = self.places.flags.writeable = False
        # What the query cache counts it as: the arrays, and about 80 bytes an id string.
        self.nbytes = self.pks.nbytes + self.places.nbytes + 80 * len(self.ids)

    def place_of(self, pks: np.ndarray) -> np.ndarray | None:
        """Each of ``pks``'s place in the list's order; None when one of them is not among the
        runs kept (a run removed between two reads of one request)."""
        if not self.pks.size:
            return None if pks.size else pks
        at = np.minimum(np.searchsorted(self.pks, pks), self.pks.size - 1)
        return self.places[at] if np.array_equal(self.pks[at], pks) else None


def list_order(conn: sqlite3.Connection, cache: QueryCache, generation: int) -> ListOrder:
    version = SetEvaluator(conn, cache, generation).version("all_runs")
    found: ListOrder | None = cache.get(("list-order",), version)
    if found is None:
        found = ListOrder(conn)
        cache.put(("list-order",), version, found)
    return found


def groups(
    conn: sqlite3.Connection,
    f: ExperimentFilter,
    group_by: Sequence[Field],
    metrics: Sequence[Field],
    order_by: Field | None = None,
    desc: bool = True,
    cache: QueryCache | None = None,
    generation: int = 0,
    with_ids: bool = True,
) -> dict[str, Any]:
    """The answer of ``GET /api/v2/groups`` (without its timing); each group's run ids (in the
    list's default order) only ``with_ids``: listing them reads every matching run's row in
    that order, the rest is served from arrays kept by table version."""
    attributes = [g.name for g in group_by if g.kind == "attributes"]
    rows: list[tuple[Any, ...]] = []
    mask: np.ndarray | None = None
    order_of: ListOrder | None = None
    if attributes or (with_ids and cache is None):
        rows = matching_runs(conn, f, attributes, ordered=with_ids)
        pks = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    else:
        pks, mask = matching_pks(conn, f, cache, generation)
        if with_ids and cache is not None:
            order_of = list_order(conn, cache, generation)

    def at_runs(keys: np.ndarray, values: np.ndarray, missing: Any) -> np.ndarray:
        found = _lookup(keys, values, pks, missing)
        return found if mask is None else found[mask]

    column_of = {name: 2 + i for i, name in enumerate(attributes)}
    source = Columns(conn, cache)
    # Each grouped field as an integer code per run (the last code: the run lacks it).
    codes, values_of = [], []
    for g in group_by:
        if g.kind == "attributes":
            seen: dict[Any, int] = {}
            codes.append(np.asarray([seen.setdefault(r[column_of[g.name]], len(seen)) for r in rows], dtype=np.int64))
            values_of.append(list(seen))
        else:
            keys, code, values = source.param(g.name)
            codes.append(at_runs(keys, code, len(values)))
            values_of.append([*values, None])
    labels = [g.label() for g in group_by]
    total = int(pks.size if mask is None else np.count_nonzero(mask))
    if not total:
        return {"groups": [], "total_groups": 0, "total_runs": 0}
    distinct, which = _distinct_rows(codes, [len(v) for v in values_of])
    n_groups = len(distinct)
    count = np.bincount(which, minlength=n_groups)
    stats = {metric_label(m): GroupStats(which, n_groups, at_runs(*source.metric(m), math.nan)) for m in metrics}
    keys_of = [tuple(values_of[j][int(c)] for j, c in enumerate(row)) for row in distinct.tolist()]
    order = sorted(range(n_groups), key=lambda gi: tuple(_key_order(v) for v in keys_of[gi]))
    if order_by is not None:
        by = stats[metric_label(order_by)]
        # Stable: groups with equal means (or none) keep their key order; no mean: last.
        with_mean = [gi for gi in order if by.count[gi]]
        with_mean.sort(key=lambda gi: float(by.mean[gi]), reverse=desc)
        order = with_mean + [gi for gi in order if not by.count[gi]]
    shown = order[:MAX_GROUPS]
    ids_of: dict[int, list[str]] = {}
    if with_ids:
        matched = pks if mask is None else pks[mask]
        ids_of = _group_ids(conn, which, count, shown, matched, order_of, rows)
    out = []
    for gi in shown:
        group: dict[str, Any] = {"key": dict(zip(labels, keys_of[gi], strict=True)), "count": int(count[gi])}
        if with_ids:
            group["ids"] = ids_of[gi]
        group["metrics"] = {label: s.json(gi) for label, s in stats.items()}
        out.append(group)
    return {"groups": out, "total_groups": n_groups, "total_runs": total}
