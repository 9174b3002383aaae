"""The optimization API's statistics of a project's runs: totals and rates from the trigger-kept
summaries where the filters allow, per-day sums for whole days and the runs themselves only at
the edges of a range, top performers and recent trends; and a cache of answers by revision."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.where import Where
from runicorn_lite.optimization.model import STATUSES, StatsQuery
from runicorn_lite.optimization.queries import project_filters, round_half_up
from runicorn_lite.timeutil import format_iso, now_utc

TOP_PERFORMERS = 10
TREND_DAYS = 30


def _rate(part: int, whole: int) -> float:
    return round(part * 100 / whole, 2) if whole else 0


_DAY_START = "T00:00:00.000Z"
_DAY_END = "T23:59:59.999Z"
# Columns of a group of runs, in this order, whichever table they are summed from.
_GROUP_SUMS = "runs, scored, score_sum, timed, duration_sum"


def _float_sum(expr: str) -> str:
    """The sum of a float column as IEEE arithmetic has it: past the largest double it is
    infinite (SQLite's ``total``). PostgreSQL's ``sum`` raises there instead, so on PostgreSQL it
    is the aggregate of ``optimization/pg_schema.py`` (no SQLite spelling maps to it)."""
    return f"coalesce(optimization_fsum({expr}), 0.0)" if on_postgres() else f"total({expr})"


def _group_from_runs() -> str:
    return f"count(*), count(final_score), {_float_sum('final_score')}, count(duration_ms), total(duration_ms)"


def _created_between(where: Where, start: str | None, end: str | None, column: str = "created_at") -> Where:
    """``where`` and an inclusive range of creation times; ``column`` is ``created_at`` or an
    expression of it from this module (never from a request)."""
    if start is not None:
        where = where.and_(f"{column} >= ?", start)
    if end is not None:
        where = where.and_(f"{column} <= ?", end)
    return where


def _next_day(day: str, step: int) -> str | None:
    """The day ``step`` days after ``day``, or None past either end of the calendar."""
    try:
        return (date.fromisoformat(day) + timedelta(days=step)).isoformat()
    except OverflowError:
        return None


@dataclass(frozen=True)
class _Days:
    """An inclusive range of ISO timestamps split into whole UTC days, read from the daily
    totals, and the partial days at its edges, read run by run."""

    whole: tuple[str | None, str | None] | None  # first and last whole day (None = open); None = no whole day
    edges: tuple[tuple[str, str], ...]


def _split_days(start: str | None, end: str | None) -> _Days:
    if start is not None and end is not None and start[:10] == end[:10]:
        # One day: either all of it or a single interval.
        if start[10:] == _DAY_START and end[10:] == _DAY_END:
            return _Days((start[:10], start[:10]), ())
        return _Days(None, ((start, end),))
    edges: list[tuple[str, str]] = []
    first: str | None = None
    last: str | None = None
    no_whole_day = False
    if start is not None:
        first = start[:10]
        if start[10:] != _DAY_START:
            edges.append((start, start[:10] + _DAY_END))
            first = _next_day(first, 1)
            no_whole_day |= first is None  # the range starts within the calendar's last day
    if end is not None:
        last = end[:10]
        if end[10:] != _DAY_END:
            edges.append((end[:10] + _DAY_START, end))
            last = _next_day(last, -1)
            no_whole_day |= last is None  # the range ends within the calendar's first day
    if no_whole_day or (first is not None and last is not None and first > last):
        return _Days(None, tuple(edges))
    return _Days((first, last), tuple(edges))


def _on_days(where: Where, days: tuple[str | None, str | None]) -> Where:
    if days[0] is not None:
        where = where.and_("day >= ?", days[0])
    if days[1] is not None:
        where = where.and_("day <= ?", days[1])
    return where


def _over_days(
    conn: sqlite3.Connection, filters: Where, days: _Days, daily: tuple[str, str], runs: tuple[str, str]
) -> list[tuple[Any, ...]]:
    """One aggregate over a date range: whole days from the trigger-kept daily totals, the
    range's edge days run by run (through a covering index). ``daily`` and ``runs`` are the
    (select list, GROUP BY clause) of each source, from this module."""
    rows: list[tuple[Any, ...]] = []
    if days.whole is not None:
        where = _on_days(filters, days.whole)
        rows += conn.execute(
            f"SELECT {daily[0]} FROM optimization_run_daily WHERE {where.sql} GROUP BY {daily[1]}", where.args
        ).fetchall()
    for lo, hi in days.edges:
        where = _created_between(filters, lo, hi)
        rows += conn.execute(
            f"SELECT {runs[0]} FROM optimization_runs WHERE {where.sql} GROUP BY {runs[1]}", where.args
        ).fetchall()
    return rows


def _groups(conn: sqlite3.Connection, filters: Where, query: StatsQuery) -> list[tuple[Any, ...]]:
    """(optimizer_type, status, runs, scored, score_sum, timed, duration_sum) of the matching runs."""
    if query.start_date is None and query.end_date is None:
        return conn.execute(
            f"SELECT optimizer_type, status, {_GROUP_SUMS} FROM optimization_run_summary"
            f" WHERE {filters.and_('runs > 0').sql}",
            filters.args,
        ).fetchall()
    return _over_days(
        conn, filters, _split_days(query.start_date, query.end_date),
        daily=(f"optimizer_type, status, sum(runs), sum(scored), {_float_sum('score_sum')}, sum(timed),"
               " sum(duration_sum)", "optimizer_type, status HAVING sum(runs) > 0"),
        runs=(f"optimizer_type, status, {_group_from_runs()}", "optimizer_type, status"),
    )


def _top_performers(conn: sqlite3.Connection, filters: Where, query: StatsQuery) -> list[dict[str, Any]]:
    # The score index must lead (it needs no sort and stops after ten): a unary + on created_at
    # keeps the planner from walking the created_at index and sorting the range instead.
    where = _created_between(filters, query.start_date, query.end_date, column="+created_at")
    names = ("id", "run_name", "optimizer_type", "final_score", "duration_ms", "created_at")
    rows = conn.execute(
        f"SELECT {', '.join(names)} FROM optimization_runs WHERE {where.and_('final_score IS NOT NULL').sql}"
        # The ORDER BY of the score index, term for term (its leading "IS NULL" included).
        " ORDER BY final_score IS NULL, final_score DESC, created_at DESC, id DESC LIMIT ?",
        (*where.args, TOP_PERFORMERS),
    ).fetchall()
    return [dict(zip(names, row, strict=True)) for row in rows]


def _recent_trends(conn: sqlite3.Connection, filters: Where, query: StatsQuery) -> list[dict[str, Any]]:
    """Runs per UTC day over the last TREND_DAYS days (within the date range, if any)."""
    today = now_utc()
    window_start = format_iso(today.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=TREND_DAYS - 1))
    start = max(window_start, query.start_date) if query.start_date else window_start
    if query.end_date is not None and query.end_date < start:
        return []  # the range ends before the trend window starts
    rows = _over_days(
        conn, filters, _split_days(start, query.end_date),
        # CASE, not SQLite's "runs * (status = ...)": a comparison is no number on PostgreSQL.
        daily=("day, sum(runs), sum(CASE WHEN status = 'completed' THEN runs ELSE 0 END),"
               " sum(CASE WHEN status = 'failed' THEN runs ELSE 0 END)", "day"),
        runs=("substr(created_at, 1, 10) AS day, count(*), sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END),"
              " sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END)", "day"),
    )
    per_day: dict[str, list[int]] = {}
    for day, count, completed, failed in rows:
        acc = per_day.setdefault(day, [0, 0, 0])
        acc[0] += count or 0
        acc[1] += completed or 0
        acc[2] += failed or 0
    today_iso = today.date().isoformat()
    return [
        {"date": day, "count": count, "completed": completed, "failed": failed}
        for day, (count, completed, failed) in sorted(per_day.items())
        if count > 0 and day <= today_iso
    ]


def stats(conn: sqlite3.Connection, project_id: str, query: StatsQuery) -> dict[str, Any]:
    """The aggregate answer of ``GET /stats`` (without its metadata)."""
    filters = project_filters(project_id, query)
    by_status = dict.fromkeys(STATUSES, 0)
    per_type: dict[str, list[float]] = {}
    totals = [0, 0, 0.0, 0, 0.0]  # runs, scored, score sum, timed, duration sum
    for optimizer_type, status, *sums in _groups(conn, filters, query):
        by_status[status] = by_status.get(status, 0) + sums[0]
        acc = per_type.setdefault(optimizer_type, [0, 0, 0, 0.0, 0, 0.0])  # runs, completed, then as totals
        acc[0] += sums[0]
        acc[1] += sums[0] if status == "completed" else 0
        for i, value in enumerate(sums[1:], start=2):
            acc[i] += value
        for i, value in enumerate(sums):
            totals[i] += value
    total_runs = int(totals[0])
    statistics = {
        "totalRuns": total_runs,
        "successRate": _rate(by_status["completed"], total_runs),
        "averageImprovement": round(totals[2] / totals[1], 4) + 0.0 if totals[1] else None,
        "averageDuration": round_half_up(totals[4] / totals[3]) if totals[3] else None,
    }
    by_type = [
        {
            "optimizerType": name,
            "count": int(acc[0]),
            "successRate": _rate(int(acc[1]), int(acc[0])),
            "averageScore": round(acc[3] / acc[2], 4) + 0.0 if acc[2] else None,
            "averageDuration": round_half_up(acc[5] / acc[4]) if acc[4] else None,
        }
        for name, acc in sorted(per_type.items(), key=lambda item: (-item[1][0], item[0]))
    ]
    return {
        "statistics": statistics,
        "byStatus": by_status,
        "byOptimizerType": by_type,
        "topPerformers": _top_performers(conn, filters, query),
        "recentTrends": _recent_trends(conn, filters, query),
    }


class StatsCache:
    """Reuses a stats answer while its project has not changed (same revision, same UTC day).

    Stats scan every matching run, the one answer whose cost grows with the data; clients
    poll it, and most polls see no change. Entries are keyed by project and filters; the
    revision check is one primary-key probe in the same read snapshot as the query.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._entries: dict[tuple[Any, ...], tuple[int, str, bytes]] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: tuple[Any, ...], revision: int) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] == revision and entry[1] == now_utc().date().isoformat():
            return entry[2]
        return None

    def put(self, key: tuple[Any, ...], revision: int, payload: bytes) -> None:
        with self._lock:
            if len(self._entries) >= self._max and key not in self._entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (revision, now_utc().date().isoformat(), payload)
