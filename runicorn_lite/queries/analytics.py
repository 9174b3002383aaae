"""``/api/v2/analytics/summary``: aggregates over live (not deleted) experiments.

A filter of project, status and deletion alone (the overview's, and a project key's) is
answered from what the index keeps by trigger (db/schema.py, 0015_kept_analytics): a few rows
whatever the number of runs. Any other filter reads the matching runs.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, NamedTuple

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.where import Where
from runicorn_lite.queries.experiments import (
    ExperimentFilter,
    kept_where,
    only_kept_filters,
    scoped_where,
    where_clause,
)
from runicorn_lite.rundir import STATUSES

RECENT_DAYS = 30
DAY = 86400


class _Figures(NamedTuple):
    groups: list[tuple[str, str, int, float | None]]  # project, status, runs, best value
    duration_sum: float
    durations: int  # runs that ended at or after their start
    points: int
    recent: list[tuple[str, int, int, int]]  # date, runs, finished, failed


def _by_status(pairs: list[tuple[str, int]]) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for status, count in pairs:
        if status in out:
            out[status] += count
    return out


def _kept(conn: sqlite3.Connection, f: ExperimentFilter, since_day: int) -> _Figures:
    where = kept_where(f)
    # The best live value of a (project, status): one descent of idx_live_project_status_best.
    groups = conn.execute(
        "SELECT project, status, sum(n), max(CASE WHEN live = 1 THEN (SELECT max(e.best_metric_value)"
        " FROM experiments e WHERE e.project = c.project AND e.status = c.status AND e.deleted_at IS NULL) END)"
        f" FROM exp_counts c WHERE {where.sql} AND n > 0 GROUP BY project, status",
        where.args,
    ).fetchall()
    best = {(project, status): value for project, status, _n, value in groups}
    if f.include_deleted is not False:  # the bin's best values: the deleted runs, by idx_experiments_deleted_at
        # (unlikely: SQLite's statistics do not tell it that few runs are deleted; the unary
        # plus keeps it off a project's or status's index, which holds all their runs)
        deleted = scoped_where(Where().and_("unlikely(deleted_at IS NOT NULL)"), f, hint="+")
        for project, status, value in conn.execute(  # (grouped here: SQLite would walk an index in group order)
            f"SELECT project, status, best_metric_value FROM experiments WHERE {deleted.sql}", deleted.args,
        ).fetchall():
            if value is not None and (best.get((project, status)) is None or value > best[(project, status)]):
                best[(project, status)] = value
    duration_sum, durations, points = conn.execute(
        f"SELECT coalesce(sum(dur_sum), 0), coalesce(sum(n_dur), 0), coalesce(sum(points), 0) FROM exp_stats"
        f" WHERE {where.sql}", where.args,
    ).fetchone()
    recent = conn.execute(
        "SELECT day, sum(n), sum(CASE WHEN status = 'finished' THEN n ELSE 0 END),"
        f" sum(CASE WHEN status = 'failed' THEN n ELSE 0 END) FROM exp_days WHERE {where.sql} AND day >= ?"
        " GROUP BY day HAVING sum(n) > 0 ORDER BY day",
        (*where.args, since_day),
    ).fetchall()
    return _Figures(
        [(project, status, int(n), best[(project, status)]) for project, status, n, _value in groups],
        float(duration_sum), int(durations), int(points),
        [(time.strftime("%Y-%m-%d", time.gmtime(int(day) * DAY)), int(n), int(fin), int(failed))
         for day, n, fin, failed in recent],
    )


def _read(conn: sqlite3.Connection, f: ExperimentFilter, since_day: int) -> _Figures:
    where, params = where_clause(f)
    groups = conn.execute(
        f"SELECT project, status, count(*), max(best_metric_value) FROM experiments WHERE {where}"
        " GROUP BY project, status",
        params,
    ).fetchall()
    duration_sum, durations, points = conn.execute(
        "SELECT coalesce(sum(CASE WHEN ended_at >= created_at THEN ended_at - created_at END), 0),"
        " count(CASE WHEN ended_at >= created_at THEN 1 END), coalesce(sum(n_points), 0)"
        f" FROM experiments WHERE {where}",
        params,
    ).fetchone()
    day = ("to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')" if on_postgres()
           else "date(created_at, 'unixepoch')")
    recent = conn.execute(
        f"SELECT {day} AS day, count(*),"
        " sum(CASE WHEN status = 'finished' THEN 1 ELSE 0 END), sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END)"
        f" FROM experiments WHERE {where} AND created_at >= ? GROUP BY day ORDER BY day",
        (*params, since_day * DAY),
    ).fetchall()
    return _Figures(
        [(project, status, int(n), value) for project, status, n, value in groups],
        float(duration_sum), int(durations), int(points),
        [(day, int(n), int(fin or 0), int(failed or 0)) for day, n, fin, failed in recent],
    )


def summary(conn: sqlite3.Connection, f: ExperimentFilter, now: float | None = None) -> dict[str, Any]:
    """Totals, status split, success rate, durations, per-project figures and recent activity."""
    now = time.time() if now is None else now
    since_day = int(now // DAY) - (RECENT_DAYS - 1)
    figures = (_kept if only_kept_filters(f) else _read)(conn, f, since_day)
    projects: dict[str, dict[str, Any]] = {}
    for project, status, count, best in sorted(figures.groups):
        entry = projects.setdefault(
            project, {"project": project, "count": 0, "by_status": dict.fromkeys(STATUSES, 0), "best_metric_max": None}
        )
        entry["count"] += count
        entry["by_status"][status] = entry["by_status"].get(status, 0) + count
        if best is not None and (entry["best_metric_max"] is None or best > entry["best_metric_max"]):
            entry["best_metric_max"] = best
    by_status = _by_status([(status, count) for _project, status, count, _best in figures.groups])
    ended = by_status["finished"] + by_status["failed"] + by_status["interrupted"]
    average = figures.duration_sum / figures.durations if figures.durations else None
    return {
        "total_experiments": sum(by_status.values()),
        "by_status": by_status,
        "success_rate": round(by_status["finished"] * 100.0 / ended, 2) if ended else 0.0,
        "average_duration_s": round(average, 3) if average is not None else None,
        "total_data_points": figures.points,
        "projects": sorted(projects.values(), key=lambda p: (-p["count"], p["project"])),
        "recent_activity": [
            {"date": day, "count": count, "finished": fin, "failed": failed}
            for day, count, fin, failed in figures.recent
        ],
    }
