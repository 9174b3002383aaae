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
from datetime import date, timedelta
from typing import Any

import orjson

from runicorn_lite.optimization.errors import ApiError, run_not_found
from runicorn_lite.optimization.timeutil import format_iso, iso_to_ms, now_iso, now_utc
from runicorn_lite.optimization.validation import (
    STATUSES,
    TERMINAL_STATUSES,
    ListQuery,
    StatsQuery,
)

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
        " ON CONFLICT (project_id) DO UPDATE SET revision = revision + 1",
        (project_id,),
    )


def _fetch_run(conn: sqlite3.Connection, project_id: str, run_id: str) -> tuple[Any, ...]:
    """The run's row, or 404 when it does not exist or belongs to another project (the two are
    indistinguishable to the caller, so run ids of other projects cannot be probed)."""
    row: tuple[Any, ...] | None = conn.execute(
        f"SELECT {_RUN_SELECT} FROM optimization_runs WHERE id = ? AND project_id = ?",
        (run_id, project_id),
    ).fetchone()
    if row is None:
        raise run_not_found()
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
    where = ["project_id = ?"]
    args: list[Any] = [project_id]
    if query.status is not None:
        where.append("status = ?")
        args.append(query.status)
    if query.optimizer_type is not None:
        where.append("optimizer_type = ?")
        args.append(query.optimizer_type)
    where_sql = " AND ".join(where)
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
    row = _fetch_run(conn, project_id, run_id)
    current = dict(zip(RUN_COLUMNS, row, strict=True))
    updates = {name: fields[name] for name in PATCHABLE if name in fields}
    new_status = updates.get("status")
    if new_status is not None and new_status == current["status"]:
        # Setting the status it already has is no transition (so a retried PATCH is harmless).
        del updates["status"]
    elif new_status is not None:
        if new_status not in _TRANSITIONS.get(current["status"], ()):
            raise ApiError(
                409,
                "Invalid status transition",
                hint=f"A run cannot move from '{current['status']}' to '{new_status}'",
            )
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

    Runs under ``BEGIN IMMEDIATE``, so the run row read here cannot change before the update:
    the count is incremented in SQL and the best is compared against the committed best, and
    concurrent posts to one run serialise without losing anything.
    """
    row = conn.execute(
        "SELECT status, direction, final_score FROM optimization_runs"
        " WHERE id = ? AND project_id = ?",
        (run_id, project_id),
    ).fetchone()
    if row is None:
        raise run_not_found()
    status, direction, best = row
    if status in TERMINAL_STATUSES:
        raise ApiError(
            409,
            "Run is already finished",
            hint=f"A run in status '{status}' does not accept iterations",
        )
    seen: set[int] = set()
    for item in items:
        number = item["iteration_number"]
        if number in seen:
            raise _duplicate(number)
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
    try:
        conn.executemany(
            f"INSERT INTO optimization_iterations ({_ITERATION_SELECT})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            records,
        )
    except sqlite3.IntegrityError:
        existing = conn.execute(
            "SELECT iteration_number FROM optimization_iterations WHERE run_id = ?"
            f" AND iteration_number IN ({', '.join('?' * len(seen))}) LIMIT 1",
            (run_id, *seen),
        ).fetchone()
        raise _duplicate(existing[0] if existing else None) from None
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


def _duplicate(number: int | None) -> ApiError:
    which = f"Iteration {number}" if number is not None else "An iteration_number"
    return ApiError(409, "Duplicate iteration number", hint=f"{which} already exists for this run")


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


def _shift_day(day: str, days: int) -> str:
    try:
        return (date.fromisoformat(day) + timedelta(days=days)).isoformat()
    except OverflowError:  # past year 9999 or before year 1: a day no run has
        return "9999-12-32" if days > 0 else "0000-12-31"


def _date_parts(
    start: str | None, end: str | None
) -> tuple[tuple[str | None, str | None] | None, list[tuple[str, str]]]:
    """Split an inclusive [start, end] of ISO timestamps into whole UTC days (first, last;
    None = open) and the partial edge intervals that must be read run by run."""
    edges: list[tuple[str, str]] = []
    first_day = last_day = None
    if start is not None:
        first_day = start[:10]
        if start[10:] != _DAY_START:
            first_day = _shift_day(first_day, 1)
            edges.append((start, start[:10] + _DAY_END))
    if end is not None:
        last_day = end[:10]
        if end[10:] != _DAY_END:
            last_day = _shift_day(last_day, -1)
            edges.append((end[:10] + _DAY_START, end))
    if start is not None and end is not None and start[:10] == end[:10]:
        # One day: either all of it (from the daily totals) or a single interval.
        whole = start[10:] == _DAY_START and end[10:] == _DAY_END
        return ((start[:10], start[:10]) if whole else None), ([] if whole else [(start, end)])
    if first_day is not None and last_day is not None and first_day > last_day:
        return None, edges
    return (first_day, last_day), edges


def _day_range_sql(days: tuple[str | None, str | None]) -> tuple[str, list[str]]:
    sql, args = "", []
    if days[0] is not None:
        sql += " AND day >= ?"
        args.append(days[0])
    if days[1] is not None:
        sql += " AND day <= ?"
        args.append(days[1])
    return sql, args


def _add_day(per_day: dict[str, list[int]], day: str, count: int, completed: int, failed: int) -> None:
    acc = per_day.setdefault(day, [0, 0, 0])
    acc[0] += count or 0
    acc[1] += completed or 0
    acc[2] += failed or 0


def stats(conn: sqlite3.Connection, project_id: str, query: StatsQuery) -> dict[str, Any]:
    """The aggregate answer of ``GET /stats`` (without its metadata)."""
    # base: the filters the trigger-kept totals can answer; where: base and the date range.
    base = ["project_id = ?"]
    base_args: list[Any] = [project_id]
    if query.status is not None:
        base.append("status = ?")
        base_args.append(query.status)
    if query.optimizer_type is not None:
        base.append("optimizer_type = ?")
        base_args.append(query.optimizer_type)
    where, args = list(base), list(base_args)
    if query.start_date is not None:
        where.append("created_at >= ?")
        args.append(query.start_date)
    if query.end_date is not None:
        where.append("created_at <= ?")
        args.append(query.end_date)
    base_sql = " AND ".join(base)
    # For the top performers the score index must lead (it needs no sort and stops after ten);
    # a unary + keeps the planner from walking the created_at index and sorting the range.
    top_sql = " AND ".join(term.replace("created_at", "+created_at") for term in where)

    if query.start_date is not None or query.end_date is not None:
        # Whole days of the range come from the trigger-kept daily totals; only the range's
        # edge days are read run by run (through a covering index).
        days, edges = _date_parts(query.start_date, query.end_date)
        groups = []
        if days is not None:
            day_sql, day_args = _day_range_sql(days)
            groups += conn.execute(
                "SELECT optimizer_type, status, sum(runs), sum(scored), sum(score_sum), sum(timed),"
                f" sum(duration_sum) FROM optimization_run_daily WHERE {base_sql}{day_sql}"
                " GROUP BY optimizer_type, status HAVING sum(runs) > 0",
                (*base_args, *day_args),
            ).fetchall()
        for lo, hi in edges:
            groups += conn.execute(
                "SELECT optimizer_type, status, count(*), count(final_score), total(final_score),"
                f" count(duration_ms), total(duration_ms) FROM optimization_runs WHERE {base_sql}"
                " AND created_at >= ? AND created_at <= ? GROUP BY optimizer_type, status",
                (*base_args, lo, hi),
            ).fetchall()
    else:
        # Same filters (project, status, optimizer) over the trigger-kept totals.
        groups = conn.execute(
            "SELECT optimizer_type, status, runs, scored, score_sum, timed, duration_sum"
            f" FROM optimization_run_summary WHERE {base_sql} AND runs > 0",
            base_args,
        ).fetchall()
    by_status = dict.fromkeys(STATUSES, 0)
    per_type: dict[str, list[float]] = {}
    totals = [0, 0, 0.0, 0, 0.0]  # runs, scored, score sum, timed, duration sum
    for optimizer_type, status, count, scored, score_sum, timed, duration_sum in groups:
        by_status[status] = by_status.get(status, 0) + count
        acc = per_type.setdefault(optimizer_type, [0, 0, 0, 0.0, 0, 0.0])
        acc[0] += count
        acc[1] += count if status == "completed" else 0
        acc[2] += scored
        acc[3] += score_sum
        acc[4] += timed
        acc[5] += duration_sum
        totals[0] += count
        totals[1] += scored
        totals[2] += score_sum
        totals[3] += timed
        totals[4] += duration_sum
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

    top = conn.execute(
        "SELECT id, run_name, optimizer_type, final_score, duration_ms, created_at"
        f" FROM optimization_runs WHERE {top_sql} AND final_score IS NOT NULL"
        " ORDER BY final_score IS NULL, final_score DESC, created_at DESC, id DESC LIMIT ?",
        (*args, TOP_PERFORMERS),
    ).fetchall()
    top_performers = [
        dict(
            zip(("id", "run_name", "optimizer_type", "final_score", "duration_ms", "created_at"), r, strict=True)
        )
        for r in top
    ]

    today = now_utc().date()
    first_day = format_iso(
        now_utc().replace(hour=0, minute=0, second=0, microsecond=0)
        - timedelta(days=TREND_DAYS - 1)
    )
    # The last TREND_DAYS days, within the date range if there is one: whole days from the
    # daily totals, edge days run by run.
    trend_start = max(first_day, query.start_date) if query.start_date else first_day
    days, edges = _date_parts(trend_start, query.end_date)
    if query.end_date is not None and query.end_date < trend_start:
        days, edges = None, []  # the range ends before the trend window starts
    per_day: dict[str, list[int]] = {}
    if days is not None:
        day_sql, day_args = _day_range_sql(days)
        for day, count, completed, failed in conn.execute(
            "SELECT day, sum(runs), sum(runs * (status = 'completed')),"
            f" sum(runs * (status = 'failed')) FROM optimization_run_daily WHERE {base_sql}{day_sql}"
            " GROUP BY day",
            (*base_args, *day_args),
        ):
            _add_day(per_day, day, count, completed, failed)
    for lo, hi in edges:
        for day, count, completed, failed in conn.execute(
            "SELECT substr(created_at, 1, 10) AS day, count(*), sum(status = 'completed'),"
            f" sum(status = 'failed') FROM optimization_runs WHERE {base_sql}"
            " AND created_at >= ? AND created_at <= ? GROUP BY day",
            (*base_args, lo, hi),
        ):
            _add_day(per_day, day, count, completed, failed)
    recent = [
        {"date": day, "count": count, "completed": completed, "failed": failed}
        for day, (count, completed, failed) in sorted(per_day.items())
        if count > 0 and day <= today.isoformat()
    ]
    return {
        "statistics": statistics,
        "byStatus": by_status,
        "byOptimizerType": by_type,
        "topPerformers": top_performers,
        "recentTrends": recent,
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
