"""Runs grouped by params or attributes, with each group's metric statistics (analysis.md §2).

The matching runs come from one walk of the list's default order (created_at, id, descending),
each grouped field's values from one walk of its (key, value) index, each metric aggregate's
from one walk of its summary index: a few indexed reads, whatever the number of params a run
has. The statistics are numpy's, over the group's runs that have the metric.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.queries.experiments import ExperimentFilter, QueryCache, order_clause, where_clause
from runicorn_lite.queries.filter_sets import aggregate_column
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


@dataclass
class Stats:
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    count: int

    def json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "min": self.min, "max": self.max, "count": self.count}


def stats_of(values: np.ndarray) -> Stats:
    """Mean, sample standard deviation (n - 1; None under 2 values), min, max and count."""
    n = int(values.size)
    if n == 0:
        return Stats(None, None, None, None, 0)
    return Stats(
        float(values.mean()),
        float(values.std(ddof=1)) if n > 1 else None,
        float(values.min()),
        float(values.max()),
        n,
    )


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
        self.versions = dict(conn.execute("SELECT name, v FROM table_versions").fetchall())

    def _kept(self, key: tuple[Any, ...], table: str, build: Any) -> Any:
        version = (self.versions["epoch"], self.versions[table])
        found = self.cache.get(key, version) if self.cache is not None else None
        if found is None:
            found = build()
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
    """``values`` at each of ``pks`` in the sorted ``keys``; ``missing`` where a pk is absent."""
    if not keys.size:
        return np.full(pks.size, missing, dtype=values.dtype)
    at = np.minimum(np.searchsorted(keys, pks), keys.size - 1)
    out: np.ndarray = np.where(keys[at] == pks, values[at], missing)
    return out


def _distinct_rows(codes: list[np.ndarray], sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of the code columns (sorted) and each run's row among them: one 1-d
    ``unique`` of the codes packed into one integer (numpy's row-wise unique sorts records,
    several times slower), unless the packing would overflow."""
    if math.prod(max(1, n) for n in sizes) < 1 << 62:
        packed = np.zeros(codes[0].size, dtype=np.int64)
        for column, n in zip(codes, sizes, strict=True):
            packed = packed * max(1, n) + column
        keys, which = np.unique(packed, return_inverse=True)
        distinct = np.empty((keys.size, len(codes)), dtype=np.int64)
        for j in range(len(codes) - 1, -1, -1):
            keys, distinct[:, j] = np.divmod(keys, max(1, sizes[j]))
        return distinct, which.reshape(-1)
    distinct, which = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    return distinct, which.reshape(-1)


def matching_runs(
    conn: sqlite3.Connection, f: ExperimentFilter, attributes: Sequence[str] = ()
) -> list[tuple[Any, ...]]:
    """(pk, id, *attributes) of every run the list filter matches, in the list's default order."""
    where, params = where_clause(f)
    columns = "".join(f", {a}" for a in attributes if a in GROUP_ATTRIBUTES)
    return conn.execute(
        f"SELECT pk, id{columns} FROM experiments WHERE {where} ORDER BY {order_clause('created_at', True)}", params
    ).fetchall()


def groups(
    conn: sqlite3.Connection,
    f: ExperimentFilter,
    group_by: Sequence[Field],
    metrics: Sequence[Field],
    order_by: Field | None = None,
    desc: bool = True,
    cache: QueryCache | None = None,
) -> dict[str, Any]:
    """The answer of ``GET /api/v2/groups`` (without its timing)."""
    attributes = [g.name for g in group_by if g.kind == "attributes"]
    rows = matching_runs(conn, f, attributes)
    column_of = {name: 2 + i for i, name in enumerate(attributes)}
    source = Columns(conn, cache)
    pks = np.array([r[0] for r in rows], dtype=np.int64)
    # Each grouped field as an integer code per run (the last code: the run lacks it).
    codes, values_of = [], []
    for g in group_by:
        if g.kind == "attributes":
            seen: dict[Any, int] = {}
            codes.append(np.asarray([seen.setdefault(r[column_of[g.name]], len(seen)) for r in rows], dtype=np.int64))
            values_of.append(list(seen))
        else:
            keys, code, values = source.param(g.name)
            codes.append(_lookup(keys, code, pks, len(values)))
            values_of.append([*values, None])
    out = []
    if rows:
        distinct, which = _distinct_rows(codes, [len(v) for v in values_of])
        order = np.argsort(which, kind="stable")  # each group's runs together, in the list's order
        bounds = np.cumsum(np.bincount(which, minlength=len(distinct)))
        columns = [_lookup(*source.metric(m), pks, math.nan) for m in metrics]
        start = 0
        for gi, end in enumerate(bounds):
            idx = order[start:end]
            start = int(end)
            key = tuple(values_of[j][int(c)] for j, c in enumerate(distinct[gi]))
            stats = {}
            for m, column in zip(metrics, columns, strict=True):
                got = column[idx]
                stats[metric_label(m)] = stats_of(got[~np.isnan(got)])
            out.append((key, idx.tolist(), stats))
    out.sort(key=lambda g: tuple(_key_order(v) for v in g[0]))
    if order_by is not None:
        label = metric_label(order_by)
        # Stable: groups with equal means (or none) keep their key order; no mean: last.
        with_mean = [g for g in out if g[2][label].mean is not None]
        without = [g for g in out if g[2][label].mean is None]
        with_mean.sort(key=lambda g: g[2][label].mean, reverse=desc)  # type: ignore[arg-type, return-value]
        out = with_mean + without
    labels = [g.label() for g in group_by]
    return {
        "groups": [
            {
                "key": dict(zip(labels, key, strict=True)),
                "count": len(idx),
                "ids": [rows[i][1] for i in idx],
                "metrics": {label: s.json() for label, s in stats.items()},
            }
            for key, idx, stats in out[:MAX_GROUPS]
        ],
        "total_groups": len(out),
        "total_runs": len(rows),
    }

