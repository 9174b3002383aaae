"""Metric curves of experiments, read from packed chunks in indexed range scans."""

from __future__ import annotations

import bisect
import itertools
import math
import sqlite3
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runicorn_lite.db.chunks import M4_RECORD_SIZE, unpack, unpack_m4, unpack_m4_columns, unpack_times
from runicorn_lite.downsample import m4_indices
from runicorn_lite.queries.steptable import StepTable, table_of

# Largest ``downsample`` a client may ask for (V1 and V2).
MAX_DOWNSAMPLE = 100_000
_INT64 = (-(1 << 63), (1 << 63) - 1)
# A series with more points than this many times the budget is downsampled from its chunks'
# stored M4 points alone (see db/chunks.py); shorter ones from their points.
CHUNK_M4_FACTOR = 16


def load_series(
    conn: sqlite3.Connection,
    pk: int,
    names: list[str] | None = None,
    step_min: int | None = None,
    step_max: int | None = None,
) -> dict[str, tuple[array[int], array[float]]]:
    """metric → (steps, values) arrays, sorted by step, restricted to names and an inclusive step
    range (16 bytes a point: a million-step metric is 16 MB, not a list of float objects)."""
    sql = "SELECT metric, steps, vals FROM metric_chunks WHERE exp_pk = ?"
    params: list[Any] = [pk]
    if names is not None:
        sql += f" AND metric IN ({','.join('?' * len(names))})"
        params.extend(names)
    if step_min is not None:
        sql += " AND max_step >= ?"
        params.append(step_min)
    if step_max is not None:
        sql += " AND min_step <= ?"
        params.append(step_max)
    sql += " ORDER BY metric, chunk"
    lo = step_min if step_min is not None else _INT64[0]
    hi = step_max if step_max is not None else _INT64[1]
    out: dict[str, tuple[array[int], array[float]]] = {}
    for metric, steps_blob, vals_blob in conn.execute(sql, params):
        steps, vals = unpack(steps_blob, vals_blob)
        if steps[0] < lo or steps[-1] > hi:  # a chunk the range cuts: chunks are sorted
            a, b = bisect.bisect_left(steps, lo), bisect.bisect_right(steps, hi)
            steps, vals = steps[a:b], vals[a:b]
        entry = out.get(metric)
        if entry is None:
            out[metric] = (steps, vals)
        else:
            entry[0].extend(steps)
            entry[1].extend(vals)
    return {m: s for m, s in out.items() if s[0]}


@dataclass
class Series:
    """One (run, metric) curve as an answer carries it: columns of steps, values (NaN where a
    point is NaN: JSON null), times (NaN where unknown), and its points before downsampling."""

    steps: list[int]
    values: list[float]
    times: list[float]
    total: int


def downsampled_series(
    conn: sqlite3.Connection, pk: int, metric: str, budget: int, step_min: int | None = None,
    step_max: int | None = None,
) -> Series | None:
    """One curve within an inclusive step range, at most ``budget`` points (M4: every peak and
    dip kept, first and last points kept); None when it has no point there.

    A long curve (more than CHUNK_M4_FACTOR x budget points, or enough chunks that their M4
    points fill half the budget) is drawn from its chunks' M4 points, grouped so that the answer
    fits the budget: its points are never read, only the chunks cut by the step range are.
    """
    lo = step_min if step_min is not None else _INT64[0]
    hi = step_max if step_max is not None else _INT64[1]
    if step_min is None and step_max is None:
        # The whole curve: no chunk is cut, so the chunks' counts and M4 points are all it
        # needs (the usual compare of long runs: 30 series of ~200 chunks each were 6,000 rows
        # of five columns, then 6,000 records made one by one).
        whole = conn.execute(
            "SELECT n, m4 FROM chunk_outlines WHERE exp_pk = ? AND metric = ? ORDER BY chunk", (pk, metric)
        ).fetchall()
        if not whole:
            return None
        total = sum(o[0] for o in whole)
        if _from_outlines(total, len(whole), budget):
            return _within(_m4_of_whole_chunks(whole, total, budget), budget)
        return _m4_of_points(conn, pk, metric, budget, lo, hi)
    outlines = conn.execute(
        "SELECT chunk, n, min_step, max_step, m4 FROM chunk_outlines WHERE exp_pk = ? AND metric = ?"
        " AND max_step >= ? AND min_step <= ? ORDER BY chunk",
        (pk, metric, lo, hi),
    ).fetchall()
    if not outlines:
        return None
    if _from_outlines(sum(o[1] for o in outlines), len(outlines), budget):
        return _within(_from_chunk_m4(conn, pk, metric, outlines, budget, lo, hi), budget)
    return _m4_of_points(conn, pk, metric, budget, lo, hi)


def _within(series: Series, budget: int) -> Series:
    """``series`` cut to ``budget`` points when its chunks' M4 points are more (a budget under
    4 still gets one whole bucket of them: first, lowest, highest, last)."""
    if len(series.steps) <= budget:
        return series
    keep = m4_indices(series.values, budget)
    return Series([series.steps[i] for i in keep], [series.values[i] for i in keep],
                  [series.times[i] for i in keep], series.total)


def _from_outlines(points: int, chunks: int, budget: int) -> bool:
    """Whether a curve of at most ``points`` in ``chunks`` chunks is drawn from the chunks' M4
    points: they fill at least half the budget, or reading every point would be far more than
    the answer."""
    return points > budget and (4 * chunks >= budget // 2 or points > CHUNK_M4_FACTOR * budget)


def _m4_of_points(conn: sqlite3.Connection, pk: int, metric: str, budget: int, lo: int, hi: int) -> Series | None:
    steps, vals, times = _points(conn, pk, metric, lo, hi)
    if not steps:
        return None
    keep = m4_indices(vals, budget)
    if len(keep) == len(steps):
        return Series(steps.tolist(), vals.tolist(), times.tolist(), len(steps))
    return Series([steps[i] for i in keep], [vals[i] for i in keep], [times[i] for i in keep], len(steps))


def _m4_of_whole_chunks(whole: list[Any], total: int, budget: int) -> Series:
    """M4 of consecutive groups of whole chunks, from their ``(n, m4)`` rows: what
    :func:`_from_chunk_m4` answers when no chunk is cut, worked on columns."""
    steps, vals, times = unpack_m4_columns(b"".join(o[1] for o in whole))
    buckets = max(1, budget // 4)
    if len(whole) <= buckets:
        return Series(steps, vals, times, total)
    per_group = -(-len(whole) // buckets)
    ends = list(itertools.accumulate(len(o[1]) // M4_RECORD_SIZE for o in whole))
    keep: list[int] = []
    start = 0
    for last in range(per_group - 1, len(ends) + per_group - 1, per_group):
        end = ends[min(last, len(ends) - 1)]
        if end > start:
            keep.extend(_m4_positions(vals, start, end))
        start = end
    return Series([steps[i] for i in keep], [vals[i] for i in keep], [times[i] for i in keep], total)


def _m4_positions(vals: list[float], start: int, end: int) -> list[int]:
    """Positions of the first, lowest, highest and last of ``vals[start:end]`` (finite values
    only for the lowest and highest; the first of equal ones), in order."""
    among: Sequence[int] = range(start, end)
    if not math.isfinite(sum(vals[start:end])):  # a NaN or an infinity in it (or an overflow)
        among = [i for i in among if math.isfinite(vals[i])]
    picks = {start, end - 1}
    if among:
        picks.add(min(among, key=vals.__getitem__))
        picks.add(max(among, key=vals.__getitem__))
    return sorted(picks)


def _points(
    conn: sqlite3.Connection, pk: int, metric: str, lo: int, hi: int
) -> tuple[array[int], array[float], array[float]]:
    steps, vals, times = array("q"), array("d"), array("d")
    for n, steps_blob, vals_blob, times_blob in conn.execute(
        "SELECT n, steps, vals, times FROM metric_chunks WHERE exp_pk = ? AND metric = ?"
        " AND max_step >= ? AND min_step <= ? ORDER BY chunk",
        (pk, metric, lo, hi),
    ):
        st, va = unpack(steps_blob, vals_blob)
        ti = unpack_times(times_blob, n)
        if st[0] < lo or st[-1] > hi:  # a chunk the range cuts
            keep = [i for i, s in enumerate(st) if lo <= s <= hi]
            st, va, ti = array("q", [st[i] for i in keep]), array("d", [va[i] for i in keep]), array(
                "d", [ti[i] for i in keep]
            )
        steps.extend(st)
        vals.extend(va)
        times.extend(ti)
    return steps, vals, times


Record = tuple[int, float, float]  # step, value, time


def _from_chunk_m4(
    conn: sqlite3.Connection, pk: int, metric: str, outlines: list[Any], budget: int, lo: int, hi: int
) -> Series:
    """M4 of consecutive groups of chunks, from the chunks' stored M4 points (the chunks a step
    range cuts are read and reduced here)."""
    groups: list[list[Record]] = []
    total = 0
    cut = [o for o in outlines if o[2] < lo or o[3] > hi]  # at most the first and the last
    if not cut and len(outlines) <= budget // 4:
        # Every chunk whole, one bucket each: the answer is their M4 points, in one decode.
        return Series(*unpack_m4_columns(b"".join(o[4] for o in outlines)), sum(o[1] for o in outlines))
    for chunk, n, min_step, max_step, m4_blob in outlines:
        if min_step >= lo and max_step <= hi:
            groups.append(unpack_m4(m4_blob))
            total += n
            continue
        steps, vals, times = _points_of_chunk(conn, pk, metric, chunk, lo, hi)
        total += len(steps)
        if steps:
            groups.append([(steps[i], vals[i], times[i]) for i in m4_indices(vals, 4)])
    per_group = -(-len(groups) // max(1, budget // 4))  # chunks merged into one M4 bucket
    records: list[Record] = []
    if per_group == 1:
        for group in groups:
            records.extend(group)
    else:
        for start in range(0, len(groups), per_group):
            records.extend(_m4_of([r for group in groups[start : start + per_group] for r in group]))
    if not records:
        return Series([], [], [], total)
    steps_out, vals_out, times_out = zip(*records, strict=True)
    return Series(list(steps_out), list(vals_out), list(times_out), total)


def _m4_of(records: list[Record]) -> list[Record]:
    """First, lowest, highest and last of M4 records in step order (see :func:`_m4_positions`)."""
    return [records[i] for i in _m4_positions([r[1] for r in records], 0, len(records))]


def _points_of_chunk(
    conn: sqlite3.Connection, pk: int, metric: str, chunk: int, lo: int, hi: int
) -> tuple[list[int], list[float], list[float]]:
    n, steps_blob, vals_blob, times_blob = conn.execute(
        "SELECT n, steps, vals, times FROM metric_chunks WHERE exp_pk = ? AND metric = ? AND chunk = ?",
        (pk, metric, chunk),
    ).fetchone()
    st, va = unpack(steps_blob, vals_blob)
    ti = unpack_times(times_blob, n)
    keep = [i for i, s in enumerate(st) if lo <= s <= hi]
    return [st[i] for i in keep], [va[i] for i in keep], [ti[i] for i in keep]


def downsampled_table(
    conn: sqlite3.Connection,
    pk: int,
    names: list[str],
    downsample: int,
    step_min: int | None = None,
    step_max: int | None = None,
) -> tuple[StepTable, list[int] | None, int]:
    """(table, rows of it to answer or None for all, rows before downsampling) for
    ``metrics/fast?downsample=``, in memory bounded by the answer, not by the run.

    Each metric's curve is chosen as :func:`downsampled_series` chooses it (a long one from its
    chunks' M4 points); the union of the chosen steps becomes the rows, and the other metrics'
    values at those steps are read from the chunks that hold them. Runs whose steps fit the
    budget answer every point.
    """
    lo = step_min if step_min is not None else _INT64[0]
    hi = step_max if step_max is not None else _INT64[1]
    budget = max(3, (downsample - 2) // max(1, len(names)))
    chosen: dict[str, Series] = {}
    for name in names:
        curve = downsampled_series(conn, pk, name, budget, step_min, step_max)
        if curve is not None:
            chosen[name] = curve
    if not chosen:
        return StepTable(), None, 0
    total = _distinct_steps(conn, pk, list(chosen), lo, hi)
    if total <= downsample:
        return table_of(load_series(conn, pk, list(chosen), step_min, step_max)), None, total
    keep = {min(c.steps[0] for c in chosen.values()), max(c.steps[-1] for c in chosen.values())}
    for name in sorted(chosen):
        for step in chosen[name].steps:
            if len(keep) >= downsample:
                break
            keep.add(step)
    steps = sorted(keep)
    table = StepTable()
    table.steps.extend(steps)
    for name in sorted(chosen):
        table.numbers[name] = array("d", [math.nan if v is None else v for v in _values_at(conn, pk, name, steps)])
    return table, None, total


def _distinct_steps(conn: sqlite3.Connection, pk: int, names: list[str], lo: int, hi: int) -> int:
    """Rows a pivot of these metrics has in [lo, hi]: the steps any of them was logged at."""
    per_metric: list[array[int]] = []
    for name in names:
        steps = array("q")
        for (blob,) in conn.execute(
            "SELECT steps FROM metric_chunks WHERE exp_pk = ? AND metric = ? AND max_step >= ? AND min_step <= ?"
            " ORDER BY chunk",
            (pk, name, lo, hi),
        ):
            part = array("q")
            part.frombytes(blob)
            if part[0] < lo or part[-1] > hi:
                part = array("q", [s for s in part if lo <= s <= hi])
            steps.extend(part)
        per_metric.append(steps)
    if all(s == per_metric[0] for s in per_metric[1:]):  # the usual case: logged together
        return len(per_metric[0])
    return len(set().union(*per_metric))


def _values_at(conn: sqlite3.Connection, pk: int, metric: str, steps: list[int]) -> list[float | None]:
    """The metric's value at each of the (sorted) steps, None where it was not logged."""
    metas = conn.execute(
        "SELECT chunk, min_step, max_step FROM chunk_outlines WHERE exp_pk = ? AND metric = ? ORDER BY min_step",
        (pk, metric),
    ).fetchall()
    lows = [m[1] for m in metas]
    out: list[float | None] = []
    loaded: dict[int, tuple[array[int], array[float]]] = {}
    for step in steps:
        i = bisect.bisect_right(lows, step) - 1
        if i < 0 or step > metas[i][2]:
            out.append(None)
            continue
        chunk = metas[i][0]
        if chunk not in loaded:
            loaded.clear()  # steps are sorted: an earlier chunk is never needed again
            steps_blob, vals_blob = conn.execute(
                "SELECT steps, vals FROM metric_chunks WHERE exp_pk = ? AND metric = ? AND chunk = ?",
                (pk, metric, chunk),
            ).fetchone()
            loaded[chunk] = unpack(steps_blob, vals_blob)
        chunk_steps, chunk_vals = loaded[chunk]
        j = bisect.bisect_left(chunk_steps, step)
        out.append(chunk_vals[j] if j < len(chunk_steps) and chunk_steps[j] == step else None)
    return out
