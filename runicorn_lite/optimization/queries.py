"""SQL of the optimization API: runs, iterations and statistics, always scoped to one project.

Every function takes a connection inside a transaction opened by the caller (``Database.read``
for a consistent snapshot, ``Database.write`` for ``BEGIN IMMEDIATE``). Values are bound
parameters; the only interpolated SQL fragments come from the whitelists in this module.
Stored JSON text is wrapped in ``orjson.Fragment`` so answers embed it without re-parsing.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import orjson

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.where import Where
from runicorn_lite.optimization.model import (
    STATUSES,
    TERMINAL_STATUSES,
    DuplicateIteration,
    InvalidTransition,
    ListQuery,
    RunFinished,
    RunNotFound,
    StatsQuery,
)
from runicorn_lite.timeutil import format_iso, iso_to_ms, now_iso, now_utc

RUN_COLUMNS = (
    "id",
    "project_id",
    "run_name",
    "optimizer_type",
    "status",
    "direction",
    "config",
    "search_space",
    "final_score",
    "best_params",
    "metadata",
    "iterations_count",
    "duration_ms",
    "error_message",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
)
_RUN_SELECT = ", ".join(RUN_COLUMNS)
_RUN_JSON = frozenset(("config", "search_space", "best_params", "metadata"))
_RUN_JSON_FLAGS = tuple(name in _RUN_JSON for name in RUN_COLUMNS)

ITERATION_COLUMNS = (
    "id",
    "run_id",
    "iteration_number",
    "params",
    "score",
    "metrics",
    "metadata",
    "duration_ms",
    "created_at",
)
_ITERATION_SELECT = ", ".join(ITERATION_COLUMNS)
_ITERATION_JSON_FLAGS = tuple(
    name in ("params", "metrics", "metadata") for name in ITERATION_COLUMNS
)

# Whitelisted ORDER BY clauses, matching the indexes of schema.py column for column.
_ORDER_SQL = {
    ("created_at", "asc"): "created_at ASC, id ASC",
    ("created_at", "desc"): "created_at DESC, id DESC",
    ("final_score", "asc"): "final_score IS NULL, final_score ASC, created_at ASC, id ASC",
    ("final_score", "desc"): "final_score IS NULL, final_score DESC, created_at DESC, id DESC",
    ("duration_ms", "asc"): "duration_ms IS NULL, duration_ms ASC, created_at ASC, id ASC",
    ("duration_ms", "desc"): "duration_ms IS NULL, duration_ms DESC, created_at DESC, id DESC",
}
# Columns a PATCH may set, in a fixed order (the SET clause is built only from these names).
PATCHABLE = (
    "status",
    "final_score",
    "best_params",
    "iterations_count",
    "duration_ms",
    "completed_at",
    "error_message",
    "metadata",
    "run_name",
)
_TRANSITIONS = {
    "pending": frozenset(("running", "completed", "failed", "cancelled")),
    "running": frozenset(("completed", "failed", "cancelled")),
}
TOP_PERFORMERS = 10
TREND_DAYS = 30


def _with_fragments(
    row: Sequence[Any], columns: Sequence[str], flags: Sequence[bool]
) -> dict[str, Any]:
    return {
        name: orjson.Fragment(value) if flag and value is not None else value
        for name, flag, value in zip(columns, flags, row, strict=True)
    }


def run_dict(row: Sequence[Any]) -> dict[str, Any]:
    return _with_fragments(row, RUN_COLUMNS, _RUN_JSON_FLAGS)


def iteration_dict(row: Sequence[Any]) -> dict[str, Any]:
    return _with_fragments(row, ITERATION_COLUMNS, _ITERATION_JSON_FLAGS)


def _bump_revision(conn: sqlite3.Connection, project_id: str) -> None:
    conn.execute(
        "INSERT INTO optimization_project_revisions (project_id, revision) VALUES (?, 1)"
        # Qualified: on PostgreSQL a bare name here could be the excluded row's too.
        " ON CONFLICT (project_id) DO UPDATE SET revision = optimization_project_revisions.revision + 1",
        (project_id,),
    )


def _for_update() -> str:
    """What locks a row read before it is changed: nothing on SQLite, whose ``BEGIN IMMEDIATE``
    already makes every write transaction wait for the others; ``FOR UPDATE`` on PostgreSQL,
    where transactions of other servers run at the same time (no SQLite spelling to translate)."""
    return " FOR UPDATE" if on_postgres() else ""


def _fetch_run(conn: sqlite3.Connection, project_id: str, run_id: str, *, lock: bool = False) -> tuple[Any, ...]:
    """The run's row, or 404 when it does not exist or belongs to another project (the two are
    indistinguishable to the caller, so run ids of other projects cannot be probed). ``lock``:
    the caller changes it next (see :func:`_for_update`)."""
    row: tuple[Any, ...] | None = conn.execute(
        f"SELECT {_RUN_SELECT} FROM optimization_runs WHERE id = ? AND project_id = ?"
        + (_for_update() if lock else ""),
        (run_id, project_id),
    ).fetchone()
    if row is None:
        raise RunNotFound(run_id)
    return row


# ---- runs ----------------------------------------------------------------------------------------


def create_run(conn: sqlite3.Connection, project_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    now = now_iso()
    run_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO optimization_runs (id, project_id, run_name, optimizer_type, status,"
        " direction, config, search_space, metadata, created_at, updated_at, started_at)"
        " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
        (
            run_id,
            project_id,
            fields.get("run_name"),
            fields["optimizer_type"],
            fields.get("direction", "maximize"),
            fields["config"],
            fields.get("search_space", "{}"),
            fields.get("metadata", "{}"),
            now,
            now,
            now,
        ),
    )
    _bump_revision(conn, project_id)
    return run_dict(_fetch_run(conn, project_id, run_id))


def list_runs(conn: sqlite3.Connection, project_id: str, query: ListQuery) -> dict[str, Any]:
    where = _filters(project_id, query)
    where_sql, args = where.sql, where.args
    order_sql = _ORDER_SQL[(query.order_by, query.order)]
    rows = conn.execute(
        f"SELECT {_RUN_SELECT} FROM optimization_runs WHERE {where_sql}"
        f" ORDER BY {order_sql} LIMIT ? OFFSET ?",
        (*args, query.limit, query.offset),
    ).fetchall()
    if query.offset == 0 and len(rows) < query.limit:
        total = len(rows)  # the whole result is on this page: no need to count
    else:
        # The trigger-kept totals answer any status/optimizer filter in a few rows.
        total = conn.execute(
            f"SELECT coalesce(sum(runs), 0) FROM optimization_run_summary WHERE {where_sql}", args
        ).fetchone()[0]
    return {
        "runs": [run_dict(row) for row in rows],
        "pagination": {
            "limit": query.limit,
            "offset": query.offset,
            "total": total,
            "hasMore": query.offset + len(rows) < total,
        },
    }


def get_run(conn: sqlite3.Connection, project_id: str, run_id: str) -> dict[str, Any]:
    """The run, its iterations in order, and their summary."""
    run = run_dict(_fetch_run(conn, project_id, run_id))
    rows = conn.execute(
        f"SELECT {_ITERATION_SELECT} FROM optimization_iterations WHERE run_id = ?"
        " ORDER BY iteration_number",
        (run_id,),
    ).fetchall()
    iterations = [iteration_dict(row) for row in rows]
    stats: dict[str, Any] = {
        "totalIterations": len(rows),
        "bestScore": None,
        "worstScore": None,
        "averageScore": None,
        "averageDuration": None,
    }
    if rows:
        scores = [row[4] for row in rows]
        high, low = max(scores), min(scores)
        maximize = run["direction"] != "minimize"
        stats["bestScore"] = high if maximize else low
        stats["worstScore"] = low if maximize else high
        stats["averageScore"] = round(sum(scores) / len(scores), 4)
        durations = [row[7] for row in rows if row[7] is not None]
        if durations:
            stats["averageDuration"] = round_half_up(sum(durations) / len(durations))
    return {"run": run, "iterations": iterations, "stats": stats}


def patch_run(
    conn: sqlite3.Connection, project_id: str, run_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    row = _fetch_run(conn, project_id, run_id, lock=True)
    current = dict(zip(RUN_COLUMNS, row, strict=True))
    updates = {name: fields[name] for name in PATCHABLE if name in fields}
    new_status = updates.get("status")
    if new_status is not None and new_status == current["status"]:
        # Setting the status it already has is no transition (so a retried PATCH is harmless).
        del updates["status"]
    elif new_status is not None:
        if new_status not in _TRANSITIONS.get(current["status"], ()):
            raise InvalidTransition(current["status"], new_status)
        if new_status in TERMINAL_STATUSES:
            completed_at = updates.setdefault("completed_at", now_iso())
            if "duration_ms" not in updates:
                started = current["started_at"] or current["created_at"]
                updates["duration_ms"] = max(0, iso_to_ms(completed_at) - iso_to_ms(started))
    if not updates:
        return {"run": run_dict(row)}
    updates["updated_at"] = now_iso()
    # Names come from PATCHABLE (plus updated_at), never from the request.
    assignments = ", ".join(f"{name} = ?" for name in updates)
    conn.execute(
        f"UPDATE optimization_runs SET {assignments} WHERE id = ?", (*updates.values(), run_id)
    )
    _bump_revision(conn, project_id)
    return {"run": run_dict(_fetch_run(conn, project_id, run_id))}


# ---- iterations ----------------------------------------------------------------------------------


def add_iterations(
    conn: sqlite3.Connection, project_id: str, run_id: str, items: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Insert iterations and update their run, all in the caller's write transaction.

    Runs under ``BEGIN IMMEDIATE`` (SQLite) or with the run's row locked (PostgreSQL), so the
    run row read here cannot change before the update: the count is incremented in SQL and the
    best is compared against the committed best, and concurrent posts to one run serialise
    without losing anything.
    """
    row = conn.execute(
        "SELECT status, direction, final_score FROM optimization_runs"
        " WHERE id = ? AND project_id = ?" + _for_update(),
        (run_id, project_id),
    ).fetchone()
    if row is None:
        raise RunNotFound(run_id)
    status, direction, best = row
    if status in TERMINAL_STATUSES:
        raise RunFinished(status)
    seen: set[int] = set()
    for item in items:
        number = item["iteration_number"]
        if number in seen:
            raise DuplicateIteration(number)
        seen.add(number)
    maximize = direction != "minimize"
    now = now_iso()
    records = []
    best_item: dict[str, Any] | None = None
    for item in items:
        score = item["score"]
        if best is None or (score > best if maximize else score < best):
            best, best_item = score, item
        records.append(
            (
                str(uuid.uuid4()),
                run_id,
                item["iteration_number"],
                item["params"],
                score,
                item.get("metrics", "{}"),
                item.get("metadata", "{}"),
                item.get("duration_ms"),
                now,
            )
        )
    # A savepoint: after a refused row PostgreSQL accepts no statement of the transaction until
    # it is rolled back to one (SQLite would go on), and the next query says which number it was.
    conn.execute("SAVEPOINT iterations")
    try:
        conn.executemany(
            f"INSERT INTO optimization_iterations ({_ITERATION_SELECT})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            records,
        )
        conn.execute("RELEASE SAVEPOINT iterations")
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK TO SAVEPOINT iterations")
        existing = conn.execute(
            "SELECT iteration_number FROM optimization_iterations WHERE run_id = ?"
            # The lowest: the same answer on both backends, whatever order their scans take.
            f" AND iteration_number IN ({', '.join('?' * len(seen))}) ORDER BY iteration_number LIMIT 1",
            (run_id, *seen),
        ).fetchone()
        raise DuplicateIteration(existing[0] if existing else None) from None
    if best_item is not None:
        conn.execute(
            "UPDATE optimization_runs SET iterations_count = iterations_count + ?,"
            " final_score = ?, best_params = ?, updated_at = ?,"
            " status = CASE status WHEN 'pending' THEN 'running' ELSE status END"
            " WHERE id = ?",
            (len(items), best_item["score"], best_item["params"], now, run_id),
        )
    else:
        conn.execute(
            "UPDATE optimization_runs SET iterations_count = iterations_count + ?,"
            " updated_at = ?, status = CASE status WHEN 'pending' THEN 'running' ELSE status END"
            " WHERE id = ?",
            (len(items), now, run_id),
        )
    count, final_score = conn.execute(
        "SELECT iterations_count, final_score FROM optimization_runs WHERE id = ?", (run_id,)
    ).fetchone()
    _bump_revision(conn, project_id)
    created = [iteration_dict(record) for record in records]
    updates = {
        "iterations_count": count,
        "is_new_best": best_item is not None,
        "final_score": final_score,
    }
    return created, updates


# ---- statistics ----------------------------------------------------------------------------------


def round_half_up(value: float) -> int:
    """Integers for averages of durations (Python's round() would send 2.5 to 2)."""
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)


def _rate(part: int, whole: int) -> float:
    return round(part * 100 / whole, 2) if whole else 0


def project_revision(conn: sqlite3.Connection, project_id: str) -> int:
    row = conn.execute(
        "SELECT revision FROM optimization_project_revisions WHERE project_id = ?", (project_id,)
    ).fetchone()
    return row[0] if row else 0


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


def _filters(project_id: str, query: ListQuery | StatsQuery) -> Where:
    """The filters the trigger-kept totals can answer too (project, status, optimizer)."""
    where = Where().and_("project_id = ?", project_id)
    if query.status is not None:
        where = where.and_("status = ?", query.status)
    if query.optimizer_type is not None:
        where = where.and_("optimizer_type = ?", query.optimizer_type)
    return where


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
    filters = _filters(project_id, query)
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
