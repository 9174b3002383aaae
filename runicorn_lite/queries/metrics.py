"""Metric curves of one experiment, read from packed chunks in one indexed range scan."""

from __future__ import annotations

import sqlite3
from typing import Any

from runicorn_lite.db.chunks import unpack
from runicorn_lite.queries.downsample import lttb_indices

# Largest ``downsample`` a client may ask for (V1 and V2).
MAX_DOWNSAMPLE = 100_000


def load_series(
    conn: sqlite3.Connection,
    pk: int,
    names: list[str] | None = None,
    step_min: int | None = None,
    step_max: int | None = None,
) -> dict[str, tuple[list[int], list[float]]]:
    """metric → (steps, values), sorted by step, restricted to names and an inclusive step range."""
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
    out: dict[str, tuple[list[int], list[float]]] = {}
    for metric, steps_blob, vals_blob in conn.execute(sql, params):
        steps, vals = unpack(steps_blob, vals_blob)
        if step_min is not None or step_max is not None:
            lo = step_min if step_min is not None else -(1 << 63)
            hi = step_max if step_max is not None else (1 << 63) - 1
            pairs = [(s, v) for s, v in zip(steps, vals, strict=True) if lo <= s <= hi]
            steps_l = [p[0] for p in pairs]
            vals_l = [p[1] for p in pairs]
        else:
            steps_l, vals_l = steps.tolist(), vals.tolist()
        entry = out.get(metric)
        if entry is None:
            out[metric] = (steps_l, vals_l)
        else:
            entry[0].extend(steps_l)
            entry[1].extend(vals_l)
    return {m: s for m, s in out.items() if s[0]}


def pivot(
    series: dict[str, tuple[list[int], list[float]]], downsample: int | None = None
) -> tuple[list[str], list[dict[str, Any]], int, bool]:
    """(columns, rows, rows before downsampling, whether rows were dropped).

    One row per step; a metric not logged at a step is null there. Downsampling runs LTTB on
    each metric with an equal share of the budget and keeps the union of the chosen steps (the
    first and last step always among them), so no row count exceeds ``downsample``.
    """
    names = sorted(series)
    columns = ["global_step", *names]
    steps = series[names[0]][0] if len(names) == 1 else sorted({s for st, _ in series.values() for s in st})
    total = len(steps)
    keep: set[int] | None = None
    if downsample is not None and total > downsample:
        keep = {steps[0], steps[-1]}
        budget = max(3, (downsample - 2) // max(1, len(names)))
        for name in names:
            st, vals = series[name]
            for i in lttb_indices(st, vals, budget):
                if len(keep) >= downsample:
                    break
                keep.add(st[i])
        steps = sorted(keep)
    index = {s: i for i, s in enumerate(steps)}
    rows: list[dict[str, Any]] = [{"global_step": s} for s in steps]
    for name in names:
        for row in rows:
            row[name] = None
        st, vals = series[name]
        for s, v in zip(st, vals, strict=True):
            row_no = index.get(s)
            if row_no is not None:
                rows[row_no][name] = v
    return columns, rows, total, keep is not None
