"""SQL of the optimization API: runs and iterations, always scoped to one project (statistics: stats.py).

Every function takes a connection inside a transaction opened by the caller (``Database.read``
for a consistent snapshot, ``Database.write`` for ``BEGIN IMMEDIATE``). Values are bound
parameters; the only interpolated SQL fragments come from the whitelists in this module.
Stored JSON text is wrapped in ``orjson.Fragment`` so answers embed it without re-parsing.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.where import Where
from runicorn_lite.optimization.model import (
    TERMINAL_STATUSES,
    DuplicateIteration,
    InvalidTransition,
    ListQuery,
    RunFinished,
    RunNotFound,
    StatsQuery,
)
from runicorn_lite.timeutil import iso_to_ms, now_iso

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
    where = project_filters(project_id, query)
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


def project_filters(project_id: str, query: ListQuery | StatsQuery) -> Where:
    """The filters the trigger-kept totals can answer too (project, status, optimizer)."""
    where = Where().and_("project_id = ?", project_id)
    if query.status is not None:
        where = where.and_("status = ?", query.status)
    if query.optimizer_type is not None:
        where = where.and_("optimizer_type = ?", query.optimizer_type)
    return where


def project_revision(conn: sqlite3.Connection, project_id: str) -> int:
    row = conn.execute(
        "SELECT revision FROM optimization_project_revisions WHERE project_id = ?", (project_id,)
    ).fetchone()
    return row[0] if row else 0


def round_half_up(value: float) -> int:
    """Integers for averages of durations (Python's round() would send 2.5 to 2)."""
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)
