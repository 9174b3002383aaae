"""Per-metric summaries: first/last/min/max/count over the finite values of a series, in step
order, built from sorted points and extended as points are appended."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Summary:
    """The summary of one series. Aggregates are None while the series has no finite value;
    ``points``, ``min_step`` and ``max_step`` count every point, NaN included."""

    first: float | None
    first_step: int | None
    last: float | None
    last_step: int | None
    min: float | None
    max: float | None
    count: int
    points: int
    min_step: int
    max_step: int

    def as_dict(self) -> dict[str, float | int | None]:
        """The API's shape: ``{"first", "last", "min", "max", "count", "last_step"}``."""
        return {
            "first": self.first,
            "last": self.last,
            "min": self.min,
            "max": self.max,
            "count": self.count,
            "last_step": self.last_step,
        }


def summarize(steps: Sequence[int], values: Sequence[float]) -> Summary:
    """The summary of a non-empty series sorted by step."""
    empty = Summary(None, None, None, None, None, None, 0, 0, steps[0], steps[0])
    return extend(empty, steps, values)


def extend(summary: Summary, steps: Sequence[int], values: Sequence[float]) -> Summary:
    """``summary`` with points appended; every step of ``steps`` (sorted) lies past its end."""
    first, first_step, last, last_step = summary.first, summary.first_step, summary.last, summary.last_step
    lo, hi, count = summary.min, summary.max, summary.count
    isfinite = math.isfinite
    for step, value in zip(steps, values, strict=False):
        if not isfinite(value):
            continue
        if first is None:
            first, first_step = value, step
        last, last_step = value, step
        if lo is None or value < lo:
            lo = value
        if hi is None or value > hi:
            hi = value
        count += 1
    return replace(
        summary,
        first=first,
        first_step=first_step,
        last=last,
        last_step=last_step,
        min=lo,
        max=hi,
        count=count,
        points=summary.points + len(steps),
        max_step=max(summary.max_step, steps[-1]) if len(steps) else summary.max_step,
    )
