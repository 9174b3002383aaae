"""A run's metric points in the index: chunks of packed points, their outlines (M4) and each
metric's summary, written whole or appended, and the table versions their readers key on."""

from __future__ import annotations

import bisect
import math
import sqlite3
from collections.abc import Sequence
from typing import Any

from runicorn_lite import rundir
from runicorn_lite.db.chunks import CHUNK_POINTS, m4, pack, pack_times, split_sorted, unpack, unpack_times
from runicorn_lite.db.set_changes import changed
from runicorn_lite.ingest.summaries import Summary, extend, summarize

Parts = list[tuple[list[int], list[float]]]


def split_series(points: dict[str, dict[int, float]]) -> tuple[dict[str, Parts], dict[str, Summary]]:
    """A run's points read whole, cut into chunks and summarised, before its row is written
    (the row holds its metrics' list JSON: see the writer)."""
    parts: dict[str, Parts] = {}
    summaries: dict[str, Summary] = {}
    for metric, series in points.items():
        if series:
            parts[metric] = split_sorted(series)
            summaries[metric] = summarize_parts(parts[metric])
    return parts, summaries


def replace_points(
    conn: sqlite3.Connection,
    pk: int,
    exp_id: str,
    split: tuple[dict[str, Parts], dict[str, Summary]],
    times: dict[int, float],
    fresh: bool,
    system_times: dict[int, float] | None = None,
) -> None:
    """All of a run's points, read whole (``split`` by :func:`split_series`): chunks and
    summaries written anew (``sys/…`` metrics take their times from ``system_times``)."""
    parts_of, summaries = split
    if not fresh:
        conn.execute("DELETE FROM metric_chunks WHERE exp_pk = ?", (pk,))
        conn.execute("DELETE FROM chunk_outlines WHERE exp_pk = ?", (pk,))
        conn.execute("DELETE FROM metric_summaries WHERE exp_pk = ?", (pk,))
    if not fresh or parts_of:
        changed(conn, "metric_summaries", pk)
    if not parts_of:
        return
    chunk_rows = []
    for metric, parts in parts_of.items():
        at = _times_of(metric, times, system_times)
        for chunk_no, (steps, vals) in enumerate(parts):
            chunk_rows.append(_chunk_rows(pk, metric, chunk_no, steps, vals, [at.get(s, _NAN) for s in steps]))
    _insert_chunks(conn, chunk_rows)
    conn.executemany(_INSERT_SUMMARY, [_summary_row(pk, metric, exp_id, summaries[metric]) for metric in parts_of])


def _times_of(metric: str, times: dict[int, float], system_times: dict[int, float] | None) -> dict[int, float]:
    """The step → time map of ``metric``: system samples number their own steps."""
    return system_times if system_times is not None and metric.startswith(rundir.SYSTEM_PREFIX) else times


def append_points(
    conn: sqlite3.Connection, pk: int, exp_id: str, points: dict[str, dict[int, float]], times: dict[int, float],
    system_times: dict[int, float] | None = None,
) -> list[str]:
    """Merge points read from where the last read stopped; returns the metrics that got some.

    New steps past a series' end extend its last chunk and fold into its summary; a step logged
    again (or out of order) overwrites that point, and the summary is computed again from the
    series, so it is always what a full read would give.
    """
    touched = []
    for metric, series in points.items():
        if not series:
            continue
        touched.append(metric)
        row = conn.execute(_SELECT_SUMMARY, (pk, metric)).fetchone()
        before = Summary(*row) if row is not None else None
        _merge_series(conn, pk, metric, series, _times_of(metric, times, system_times))
        steps = sorted(series)
        if before is not None and steps[0] > before.max_step:
            after = extend(before, steps, [series[s] for s in steps])
        elif before is None:
            after = summarize(steps, [series[s] for s in steps])
        else:
            after = _summary_from_chunks(conn, pk, metric)
        conn.execute(_UPSERT_SUMMARY, _summary_row(pk, metric, exp_id, after))
    if touched:
        changed(conn, "metric_summaries", pk)
    return sorted(touched)


_NAN = math.nan


def real(value: float | None) -> float | None:
    """A value as SQLite's REAL column gives it back (a float; -0.0 as 0.0, which SQLite keeps as
    the integer 0), so PostgreSQL keeps the same."""
    return None if value is None or value != value else float(value) + 0.0
_INSERT_CHUNK = (
    "INSERT INTO metric_chunks (exp_pk, metric, chunk, n, min_step, max_step, steps, vals, times)"
    " VALUES (?,?,?,?,?,?,?,?,?)"
)
_INSERT_OUTLINE = "INSERT INTO chunk_outlines (exp_pk, metric, chunk, n, min_step, max_step, m4) VALUES (?,?,?,?,?,?,?)"


def _chunk_rows(
    pk: int, metric: str, chunk_no: int, steps: Sequence[int], vals: Sequence[float], times: Sequence[float]
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The chunk's row and its outline's row."""
    head = (pk, metric, chunk_no, len(steps), steps[0], steps[-1])
    return (*head, *pack(steps, vals), pack_times(times)), (*head, m4(steps, vals, times))


def _insert_chunks(conn: sqlite3.Connection, pairs: list[tuple[tuple[Any, ...], tuple[Any, ...]]]) -> None:
    conn.executemany(_INSERT_CHUNK, [p[0] for p in pairs])
    conn.executemany(_INSERT_OUTLINE, [p[1] for p in pairs])


_SUMMARY_COLUMNS = "first, first_step, last, last_step, min, max, count, points, min_step, max_step"
_SELECT_SUMMARY = f"SELECT {_SUMMARY_COLUMNS} FROM metric_summaries WHERE exp_pk = ? AND metric = ?"
_INSERT_SUMMARY = (
    f"INSERT INTO metric_summaries (exp_pk, metric, exp_id, {_SUMMARY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_UPSERT_SUMMARY = _INSERT_SUMMARY.replace("INSERT INTO", "INSERT OR REPLACE INTO", 1)


def _summary_row(pk: int, metric: str, exp_id: str, s: Summary) -> tuple[Any, ...]:
    return (
        pk,
        metric,
        exp_id,
        real(s.first),
        s.first_step,
        real(s.last),
        s.last_step,
        real(s.min),
        real(s.max),
        s.count,
        s.points,
        s.min_step,
        s.max_step,
    )


def summarize_parts(parts: list[tuple[list[int], list[float]]]) -> Summary:
    """The summary of a series given as consecutive sorted parts."""
    summary = summarize(*parts[0])
    for steps, vals in parts[1:]:
        summary = extend(summary, steps, vals)
    return summary


def _summary_from_chunks(conn: sqlite3.Connection, pk: int, metric: str) -> Summary:
    parts = []
    for steps_blob, vals_blob in conn.execute(
        "SELECT steps, vals FROM metric_chunks WHERE exp_pk = ? AND metric = ? ORDER BY chunk", (pk, metric)
    ):
        steps, vals = unpack(steps_blob, vals_blob)
        parts.append((steps.tolist(), vals.tolist()))
    return summarize_parts(parts)


def point_count(conn: sqlite3.Connection, pk: int) -> int:
    return int(
        conn.execute("SELECT coalesce(sum(points), 0) FROM metric_summaries WHERE exp_pk = ?", (pk,)).fetchone()[0]
    )


def _merge_series(
    conn: sqlite3.Connection, pk: int, metric: str, series: dict[int, float], times: dict[int, float]
) -> None:
    """Merge appended points of one metric: new steps extend the last chunk; re-logged steps
    overwrite (value and time)."""
    # The usual append lies past the last chunk: read that chunk's row alone, not the ranges of
    # every chunk (thousands for a long run).
    chunks = conn.execute(
        "SELECT chunk, n, min_step, max_step FROM chunk_outlines WHERE exp_pk = ? AND metric = ?"
        " ORDER BY chunk DESC LIMIT 1",
        (pk, metric),
    ).fetchall()
    if chunks and min(series) <= chunks[0][3]:
        chunks = conn.execute(
            "SELECT chunk, n, min_step, max_step FROM chunk_outlines WHERE exp_pk = ? AND metric = ? ORDER BY chunk",
            (pk, metric),
        ).fetchall()
    if not chunks:
        _insert_chunks(conn, [
            _chunk_rows(pk, metric, chunk_no, steps, vals, [times.get(s, _NAN) for s in steps])
            for chunk_no, (steps, vals) in enumerate(split_sorted(series))
        ])
        return
    # A point goes to the first chunk whose range ends at or after it (a gap before a chunk joins
    # that chunk), or to the last chunk when it lies past every range.
    highs = [c[3] for c in chunks]
    last_chunk = chunks[-1][0]
    touched: dict[int, dict[int, float]] = {}
    for step, value in series.items():
        i = bisect.bisect_left(highs, step)
        target = chunks[i][0] if i < len(chunks) else last_chunk
        touched.setdefault(target, {})[step] = value
    next_chunk = last_chunk + 1
    for chunk_no, new_points in touched.items():
        n, steps_blob, vals_blob, times_blob = conn.execute(
            "SELECT n, steps, vals, times FROM metric_chunks WHERE exp_pk = ? AND metric = ? AND chunk = ?",
            (pk, metric, chunk_no),
        ).fetchone()
        steps, vals = unpack(steps_blob, vals_blob)
        merged = dict(zip(steps, vals, strict=True))
        merged_times = dict(zip(steps, unpack_times(times_blob, n), strict=True))
        merged.update(new_points)
        merged_times.update((s, times.get(s, _NAN)) for s in new_points)
        parts = (
            split_sorted(merged, CHUNK_POINTS)
            if chunk_no == last_chunk
            else [(sorted(merged), [merged[s] for s in sorted(merged)])]
        )
        for i, (part_steps, part_vals) in enumerate(parts):
            row, outline = _chunk_rows(pk, metric, chunk_no if i == 0 else next_chunk, part_steps, part_vals,
                                       [merged_times[s] for s in part_steps])
            if i == 0:
                conn.execute(
                    "UPDATE metric_chunks SET n = ?, min_step = ?, max_step = ?, steps = ?, vals = ?, times = ?"
                    " WHERE exp_pk = ? AND metric = ? AND chunk = ?",
                    (*row[3:], pk, metric, chunk_no),
                )
                conn.execute(
                    "UPDATE chunk_outlines SET n = ?, min_step = ?, max_step = ?, m4 = ?"
                    " WHERE exp_pk = ? AND metric = ? AND chunk = ?",
                    (*outline[3:], pk, metric, chunk_no),
                )
            else:
                _insert_chunks(conn, [(row, outline)])
                next_chunk += 1


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def best_of(conn: sqlite3.Connection, pk: int, metric: str, mode: str) -> tuple[float | None, int | None]:
    """Best finite value of one series (NaN and infinities never count as best)."""
    best: tuple[float | None, int | None] = (None, None)
    for steps_blob, vals_blob in conn.execute(
        "SELECT steps, vals FROM metric_chunks WHERE exp_pk = ? AND metric = ? ORDER BY chunk", (pk, metric)
    ):
        steps, vals = unpack(steps_blob, vals_blob)
        best = rundir.best_point(zip(steps, vals, strict=False), mode, *best)
    return best
