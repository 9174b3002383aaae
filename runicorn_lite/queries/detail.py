"""The detail of one experiment: its list object with params and whole metric summaries, the V2
document's ``metrics_summary``, and what the run recorded (config, environment, images)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from runicorn_lite.queries.experiments import EXPERIMENT_COLUMNS, experiment_row


def experiment_detail(conn: sqlite3.Connection, root: Path, exp_id: str) -> dict[str, Any] | None:
    """The detail of one experiment (deleted ones included), None if unknown: the experiment
    object with its params and whole metric summaries, the V2 document's ``metrics_summary``,
    and what the run recorded (config, environment, images). Four indexed statements."""
    row = conn.execute(
        f"SELECT pk, environment_available, params_json, {EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?",
        (exp_id,),
    ).fetchone()
    if row is None:
        return None
    pk, environment_available, params_json = row[:3]
    experiment = experiment_row(row[3:], root, True)
    summaries = conn.execute(
        "SELECT metric, first, last, min, max, count, last_step, points, min_step, max_step FROM metric_summaries"
        " WHERE exp_pk = ? ORDER BY metric",
        (pk,),
    ).fetchall()
    experiment["params"] = orjson.loads(params_json) if params_json else {}
    experiment["metrics"] = {
        r[0]: {"first": r[1], "last": r[2], "min": r[3], "max": r[4], "count": r[5], "last_step": r[6]}
        for r in summaries
    }
    config, environment = conn.execute(
        "SELECT config, environment FROM exp_docs WHERE exp_pk = ?", (pk,)
    ).fetchone() or (None, None)
    images = conn.execute("SELECT count(*) FROM exp_images WHERE exp_pk = ?", (pk,)).fetchone()[0]
    return {
        "experiment": experiment,
        "metrics_summary": {
            "total_data_points": sum(r[7] for r in summaries),
            "available_metrics": [r[0] for r in summaries],
            "step_range": {"min": min(r[8] for r in summaries), "max": max(r[9] for r in summaries)}
            if summaries else None,
        },
        "environment_available": bool(environment_available),
        "params": experiment["params"],
        "metrics": experiment["metrics"],
        "config": None if config is None else orjson.loads(config),
        "environment": None if environment is None else orjson.loads(environment),
        "images_count": images,
    }
