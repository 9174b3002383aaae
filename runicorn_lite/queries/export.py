"""SQL behind the CSV exports: every match of a list query in order, and a run's points in step
order, each read in short pieces so that no read transaction outlives one batch.

Identifiers come from the same whitelists as the list (``order_clause``, ``field_source``);
every value is a bound parameter.
"""

from __future__ import annotations

import bisect
import sqlite3
from array import array
from dataclasses import dataclass, field
from typing import Any

from runicorn_lite.db.chunks import unpack
from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.queries.experiments import ExperimentFilter, Order, order_clause, where_clause
from runicorn_lite.queries.field_pages import field_order, field_source
from runicorn_lite.queries.filters import Field

# Rows of one export batch: each batch is one short read, so a slow download never holds a
# snapshot open (and never keeps the WAL from being checkpointed).
EXPORT_BATCH = 500
# Chunks of one metric read per refill of metrics.csv (about 4,000 points each).
CHUNKS_PER_REFILL = 8
_MIN_STEP, _MAX_STEP = -(1 << 63), (1 << 63) - 1


def ordered_pks(conn: sqlite3.Connection, f: ExperimentFilter, order_by: Order, desc: bool) -> array[int]:
    """The pks of every run the list query matches, in the list's order (a column, a param or a
    metric aggregate; NULLs and runs lacking the field last, ties by id), as the list would page
    through them. 8 bytes per run."""
    where, params = where_clause(f)
    out = array("q")
    if not isinstance(order_by, Field):
        out.extend(r[0] for r in conn.execute(
            f"SELECT pk FROM experiments WHERE {where} ORDER BY {order_clause(order_by, desc)}", params
        ))
        return out
    table, has, has_params = field_source(order_by)
    direction = "DESC" if desc else ""
    out.extend(r[0] for r in conn.execute(
        f"SELECT e.pk FROM {table} s JOIN experiments e ON e.pk = s.exp_pk"
        f" WHERE {has} AND {where} ORDER BY {field_order(order_by, direction)}, s.exp_id {direction}",
        (*has_params, *params),
    ))
    out.extend(r[0] for r in conn.execute(
        f"SELECT pk FROM experiments WHERE {where} AND NOT EXISTS"
        f" (SELECT 1 FROM {table} s WHERE s.exp_pk = experiments.pk AND {has})"
        f" ORDER BY id {direction}",
        (*params, *has_params),
    ))
    return out


def export_columns(conn: sqlite3.Connection, f: ExperimentFilter) -> tuple[list[str], list[str]]:
    """(param keys, metric names) of the runs the filter matches, each sorted: the params and
    metrics columns of the export. Keys whose only values are null count (they are in the
    runs' params JSON, though not in the params index)."""
    where, params = where_clause(f)
    # PostgreSQL: jsonb_object_keys of the same JSON (a blob there too).
    each = ("jsonb_object_keys(convert_from(e.params_json, 'UTF8')::jsonb) AS j(key)" if on_postgres()
            else "json_each(CAST(e.params_json AS TEXT)) j")
    keys = [r[0] for r in conn.execute(
        "SELECT DISTINCT j.key FROM (SELECT params_json FROM experiments"
        f" WHERE {where} AND params_json IS NOT NULL) e, {each}",
        params,
    )]
    names = [r[0] for r in conn.execute(
        f"SELECT DISTINCT metric FROM metric_summaries WHERE exp_pk IN (SELECT pk FROM experiments WHERE {where})",
        params,
    )]
    return sorted(keys), sorted(names)


def export_rows(conn: sqlite3.Connection, pks: list[int]) -> list[tuple[Any, ...]]:
    """(pk, run_dir, deleted_at, row_json, params_json, metrics_json) of these runs, in the
    order of ``pks``; runs gone from the index since are left out."""
    rows = {r[0]: r for r in conn.execute(
        "SELECT pk, run_dir, deleted_at, row_json, params_json, metrics_json FROM experiments"
        f" WHERE pk IN ({','.join('?' * len(pks))})",
        pks,
    )}
    return [rows[pk] for pk in pks if pk in rows]


# -- a run's points, step by step -------------------------------------------------------------


def point_columns(
    conn: sqlite3.Connection, pk: int, names: list[str] | None, lo: int | None, hi: int | None
) -> list[str]:
    """Sorted names of the run's metrics that have a point in [lo, hi] (among ``names``, when
    given): the columns of metrics.csv, as metrics/fast shows them."""
    lo_, hi_ = (_MIN_STEP if lo is None else lo), (_MAX_STEP if hi is None else hi)
    sql = ("SELECT metric, min_step, max_step, steps FROM metric_chunks"
           " WHERE exp_pk = ? AND max_step >= ? AND min_step <= ?")
    params: list[Any] = [pk, lo_, hi_]
    if names is not None:
        sql += f" AND metric IN ({','.join('?' * len(names))})"
        params.extend(names)
    found: set[str] = set()
    for metric, min_step, max_step, steps_blob in conn.execute(sql, params):
        if metric in found:
            continue
        if lo_ <= min_step or max_step <= hi_:
            found.add(metric)  # its first or its last step lies inside the range
            continue
        steps = array("q")  # the chunk spans the whole range: is any step inside it?
        steps.frombytes(steps_blob)
        i = bisect.bisect_left(steps, lo_)
        if i < len(steps) and steps[i] <= hi_:
            found.add(metric)
    return sorted(found)


@dataclass
class _Series:
    """One metric's fetched points not yet merged (from ``pos`` on)."""

    name: str
    next: int  # the lowest step not fetched yet
    steps: array[int] = field(default_factory=lambda: array("q"))
    vals: array[float] = field(default_factory=lambda: array("d"))
    pos: int = 0
    done: bool = False  # every point in range is fetched

    def pending(self) -> int:
        return len(self.steps) - self.pos


# (steps, one list of values per metric aligned with them: None where a metric has no point)
Window = tuple[list[int], list[list[float | None]]]


class PointReader:
    """A run's points of several metrics, merged by step, a bounded window of chunks at a time.

    :meth:`refill` (one short read) fetches the next chunks of every metric whose fetched points
    are used up, at most CHUNKS_PER_REFILL each; :meth:`take` then gives every step no metric
    can still add a point at or below. Memory is a few chunks per metric, whatever the length of
    the run. It relies only on a step being stored once per metric (chunks of one metric do not
    overlap), not on how chunks are numbered.
    """

    def __init__(self, pk: int, names: list[str], lo: int | None, hi: int | None) -> None:
        self.pk = pk
        self.lo = _MIN_STEP if lo is None else lo
        self.hi = _MAX_STEP if hi is None else hi
        self.series = [_Series(name, self.lo) for name in names]

    def finished(self) -> bool:
        return all(s.done and not s.pending() for s in self.series)

    def refill(self, conn: sqlite3.Connection) -> None:
        """Fetch the next chunks of every metric that has nothing left to merge."""
        for s in self.series:
            if s.done or s.pending():
                continue
            rows = conn.execute(
                "SELECT steps, vals, max_step FROM metric_chunks WHERE exp_pk = ? AND metric = ?"
                " AND max_step >= ? AND min_step <= ? ORDER BY min_step LIMIT ?",
                (self.pk, s.name, s.next, self.hi, CHUNKS_PER_REFILL),
            ).fetchall()
            steps, vals = array("q"), array("d")
            top = s.next - 1
            for steps_blob, vals_blob, max_step in rows:
                cs, cv = unpack(steps_blob, vals_blob)
                a = bisect.bisect_left(cs, s.next)
                b = bisect.bisect_right(cs, self.hi) if max_step > self.hi else len(cs)
                steps.extend(cs[a:b])
                vals.extend(cv[a:b])
                top = max(top, max_step)
            s.steps, s.vals, s.pos = steps, vals, 0
            s.done = len(rows) < CHUNKS_PER_REFILL or top >= self.hi
            if not s.done:
                s.next = top + 1

    def take(self) -> Window:
        """Every step now complete, in order, with each metric's value there."""
        # A metric with more to fetch may still have any step past the last one fetched.
        bound = min((s.next - 1 for s in self.series if not s.done), default=_MAX_STEP)
        parts = []
        for s in self.series:
            cut = bisect.bisect_right(s.steps, bound, s.pos)
            parts.append((s.steps[s.pos : cut], s.vals[s.pos : cut]))
            s.pos = cut
        present = [p[0] for p in parts if p[0]]
        if not present:
            return [], []
        first = present[0]
        if len(present) == len(parts) and all(p == first for p in present):
            # The usual case: every metric logged at every step.
            aligned: list[list[float | None]] = [list(p[1]) for p in parts]
            return first.tolist(), aligned
        steps = sorted(set().union(*present))
        index = {step: i for i, step in enumerate(steps)}
        columns: list[list[float | None]] = []
        for st, vs in parts:
            column: list[float | None] = [None] * len(steps)
            for step, value in zip(st, vs, strict=True):
                column[index[step]] = value
            columns.append(column)
        return steps, columns
