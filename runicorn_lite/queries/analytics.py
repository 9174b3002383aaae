"""``/api/v2/analytics/summary``: aggregates over live (not deleted) experiments."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.queries.experiments import ExperimentFilter, where_clause
from runicorn_lite.rundir import STATUSES

RECENT_DAYS = 30


def _by_status(pairs: list[tuple[str, int]]) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for status, count in pairs:
        if status in out:
            out[status] += count
    return out


def summary(conn: sqlite3.Connection, f: ExperimentFilter, now: float | None = None) -> dict[str, Any]:
    """Totals, status split, success rate, durations, per-project figures and recent activity."""
    where, params = where_clause(f)
    per_project = conn.execute(
        f"SELECT project, status, count(*), max(best_metric_value) FROM experiments WHERE {where}"
        " GROUP BY project, status ORDER BY project",
        params,
    ).fetchall()
    projects: dict[str, dict[str, Any]] = {}
    overall: list[tuple[str, int]] = []
    for project, status, count, best in per_project:
        entry = projects.setdefault(
            project, {"project": project, "count": 0, "by_status": dict.fromkeys(STATUSES, 0), "best_metric_max": None}
        )
        entry["count"] += count
        entry["by_status"][status] = entry["by_status"].get(status, 0) + count
        if best is not None and (entry["best_metric_max"] is None or best > entry["best_metric_max"]):
            entry["best_metric_max"] = best
        overall.append((status, count))
    by_status = _by_status(overall)
    total = sum(by_status.values())
    ended = by_status["finished"] + by_status["failed"] + by_status["interrupted"]
    avg_duration, points = conn.execute(
        "SELECT avg(CASE WHEN ended_at IS NOT NULL AND ended_at >= created_at"
        f" THEN ended_at - created_at END), coalesce(sum(n_points), 0) FROM experiments WHERE {where}",
        params,
    ).fetchone()
    now = time.time() if now is None else now
    since = (int(now // 86400) - (RECENT_DAYS - 1)) * 86400
    day = ("to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')" if on_postgres()
           else "date(created_at, 'unixepoch')")
    recent = conn.execute(
        f"SELECT {day} AS day, count(*),"
        " sum(CASE WHEN status = 'finished' THEN 1 ELSE 0 END), sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END)"
        f" FROM experiments WHERE {where} AND created_at >= ? GROUP BY day ORDER BY day",
        (*params, since),
    ).fetchall()
    return {
        "total_experiments": total,
        "by_status": by_status,
        "success_rate": round(by_status["finished"] * 100.0 / ended, 2) if ended else 0.0,
        "average_duration_s": round(avg_duration, 3) if avg_duration is not None else None,
        "total_data_points": points,
        "projects": sorted(projects.values(), key=lambda p: (-p["count"], p["project"])),
        "recent_activity": [
            {"date": day, "count": count, "finished": fin or 0, "failed": failed or 0}
            for day, count, fin, failed in recent
        ],
    }
