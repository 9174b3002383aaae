"""Several runs side by side in one read: their params and summaries, which params differ, and
every requested metric as columnar, downsampled series (extensions.md §5)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from runicorn_lite.queries.metrics import downsampled_series

MAX_COMPARE = 50
# The fields of an experiment a comparison shows (besides params and metrics).
_FIELDS = ("id", "project", "name", "status", "alias", "tags", "created_at", "best_metric_name", "best_metric_value")
_ABSENT = object()


class UnknownExperiment(LookupError):
    """An id of the comparison is not in the index."""

    def __init__(self, exp_id: str) -> None:
        super().__init__(exp_id)
        self.exp_id = exp_id


def compare(
    conn: sqlite3.Connection,
    ids: list[str],
    names: list[str] | None,
    budget: int,
    step_min: int | None = None,
    step_max: int | None = None,
) -> dict[str, Any]:
    """The comparison of ``ids`` (in that order; soft-deleted runs included)."""
    marks = ",".join("?" * len(ids))
    rows = {
        exp_id: (pk, row_json, params_json)
        for pk, exp_id, row_json, params_json in conn.execute(
            f"SELECT pk, id, row_json, params_json FROM experiments WHERE id IN ({marks})", ids
        )
    }
    for exp_id in ids:
        if exp_id not in rows:
            raise UnknownExperiment(exp_id)
    pks = [rows[i][0] for i in ids]
    summaries: dict[int, dict[str, dict[str, Any]]] = {pk: {} for pk in pks}
    for pk, metric, first, last, lo, hi, n, last_step in conn.execute(
        "SELECT exp_pk, metric, first, last, min, max, count, last_step FROM metric_summaries"
        f" WHERE exp_pk IN ({','.join('?' * len(pks))}) ORDER BY exp_pk, metric",
        pks,
    ):
        summaries[pk][metric] = {"first": first, "last": last, "min": lo, "max": hi, "count": n, "last_step": last_step}
    experiments = []
    for exp_id in ids:
        pk, row_json, params_json = rows[exp_id]
        row = orjson.loads(row_json)
        exp = {key: row.get(key) for key in _FIELDS}
        exp["params"] = orjson.loads(params_json) if params_json else {}
        exp["metrics"] = summaries[pk]
        experiments.append(exp)

    wanted = names if names is not None else sorted({m for s in summaries.values() for m in s})
    series: dict[str, dict[str, Any]] = {}
    totals: dict[str, dict[str, int]] = {}
    for metric in wanted:
        for exp_id, pk in zip(ids, pks, strict=True):
            if metric not in summaries[pk]:
                continue
            curve = downsampled_series(conn, pk, metric, budget, step_min, step_max)
            if curve is None:
                continue
            series.setdefault(metric, {})[exp_id] = {"steps": curve.steps, "values": curve.values,
                                                     "times": curve.times}
            totals.setdefault(metric, {})[exp_id] = curve.total
    return {
        "experiments": experiments,
        "params_differ": params_differ([e["params"] for e in experiments]),
        "series": series,
        "total_points": totals,
    }


def params_differ(params: list[dict[str, Any]]) -> list[str]:
    """Sorted keys whose values are not the same in every run (a run lacking a key differs from
    one that has it, even as null)."""
    keys = sorted({k for p in params for k in p})
    return [k for k in keys if len({_comparable(p.get(k, _ABSENT)) for p in params}) > 1]


def _comparable(value: object) -> object:
    # True == 1 in Python, but a param that is true in one run and 1 in another differs.
    if value is _ABSENT:
        return _ABSENT
    return (type(value).__name__, value) if isinstance(value, bool) else ("value", value)
