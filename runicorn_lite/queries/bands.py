"""Compare by group (analysis.md §3): the compared runs grouped by params or attributes, and
each group's curve as mean ± std (with min, max and count) per step.

Each run's (downsampled) series is put onto one set of steps for its group: the union of the
group's steps, thinned evenly to at most ``budget``; a run's value at a step is the mean of its
points since the previous one (exactly its point when the runs log the same steps). A step's
numbers aggregate the runs that have a point there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from runicorn_lite.queries.filters import Field
from runicorn_lite.queries.groups import _key_order


def _key_value(exp: dict[str, Any], field: Field) -> Any:
    value = exp["params"].get(field.name) if field.kind == "params" else exp.get(field.name)
    if isinstance(value, bool):
        return int(value)  # as the index keeps it (and groups shows it)
    if isinstance(value, (list, dict)):
        return None
    return value


def group_runs(experiments: Sequence[dict[str, Any]], group_by: Sequence[Field]) -> list[dict[str, Any]]:
    """``[{"key", "ids"}]``, by key ascending (null first), ids in the comparison's order."""
    members: dict[tuple[Any, ...], list[str]] = {}
    for exp in experiments:
        members.setdefault(tuple(_key_value(exp, g) for g in group_by), []).append(exp["id"])
    labels = [g.label() for g in group_by]
    ordered = sorted(members, key=lambda k: tuple(_key_order(v) for v in k))
    return [{"key": dict(zip(labels, key, strict=True)), "ids": members[key]} for key in ordered]


def _nullable(a: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in a]


def band(curves: Sequence[dict[str, Any]], budget: int) -> dict[str, Any]:
    """One group's band of one metric from its runs' columnar series (``steps``, ``values``)."""
    runs = [(np.asarray(c["steps"], dtype=np.int64),
             np.asarray([np.nan if v is None else v for v in c["values"]], dtype=np.float64)) for c in curves]
    union = np.unique(np.concatenate([s for s, _v in runs])) if runs else np.zeros(0, dtype=np.int64)
    if union.size > budget:
        union = union[np.unique(np.linspace(0, union.size - 1, budget).round().astype(np.int64))]
    k = union.size
    table = np.full((len(runs), k), np.nan)
    for r, (steps, values) in enumerate(runs):
        finite = ~np.isnan(values)
        bucket = np.searchsorted(union, steps[finite], side="left")
        keep = bucket < k
        bucket, vals = bucket[keep], values[finite][keep]
        if not bucket.size:
            continue
        counts = np.bincount(bucket, minlength=k)
        sums = np.bincount(bucket, weights=vals, minlength=k)
        has = counts > 0
        table[r, has] = sums[has] / counts[has]
    count = (~np.isnan(table)).sum(axis=0)
    safe = np.where(np.isnan(table), 0.0, table)
    mean = np.divide(safe.sum(axis=0), count, out=np.full(k, np.nan), where=count > 0)
    dev = np.where(np.isnan(table), 0.0, table - mean)
    std = np.sqrt(np.divide((dev**2).sum(axis=0), count - 1, out=np.full(k, np.nan), where=count > 1))
    lo = np.where(np.isnan(table), np.inf, table).min(axis=0, initial=np.inf)
    hi = np.where(np.isnan(table), -np.inf, table).max(axis=0, initial=-np.inf)
    lo[count == 0] = np.nan
    hi[count == 0] = np.nan
    return {"steps": union.tolist(), "mean": _nullable(mean), "std": _nullable(std), "min": _nullable(lo),
            "max": _nullable(hi), "count": count.tolist()}


def group_series(
    groups: Sequence[dict[str, Any]], series: dict[str, dict[str, Any]], budget: int
) -> dict[str, dict[str, Any]]:
    """``{metric: {"<group index>": band}}`` for the groups with at least one run that has
    the metric."""
    out: dict[str, dict[str, Any]] = {}
    for metric, by_run in series.items():
        for index, group in enumerate(groups):
            curves = [by_run[i] for i in group["ids"] if i in by_run]
            if curves:
                out.setdefault(metric, {})[str(index)] = band(curves, budget)
    return out
