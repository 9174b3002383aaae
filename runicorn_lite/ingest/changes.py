"""What one write of the index changed, for its listeners (the live event stream).

A ``metrics`` change carries the points it appended, when they are few enough to send: an open
chart then appends them instead of fetching every curve again. Past ``POINTS_CAP`` points, or
when the run was read whole (a new run, a replaced file), it carries none and says so
(``points`` None): the client fetches what it shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Points carried by one event (all its metrics together); more and the client refetches.
POINTS_CAP = 2000

Points = dict[str, dict[str, list[Any]]]  # metric → {"steps", "values", "times"}, columnar


@dataclass
class Change:
    """What one write changed.

    ``kind`` is "experiment" (a new run, or its row changed), "metrics" (points appended) or
    "removed". ``metrics`` names the metrics that got points; ``points`` holds them (see the
    module docstring), None when they are not carried.
    """

    kind: str
    id: str
    pk: int = -1
    metrics: list[str] = field(default_factory=list)
    last_step: int | None = None
    total_points: int = 0
    points: Points | None = None


def carried_points(points: dict[str, dict[int, float]], times: dict[int, float], names: list[str]) -> Points | None:
    """The appended points of ``names`` as an event carries them (NaN and infinities as None),
    or None past POINTS_CAP."""
    if sum(len(points.get(name) or ()) for name in names) > POINTS_CAP:
        return None
    out: Points = {}
    for name in names:
        series = points.get(name) or {}
        steps = sorted(series)
        values = [series[s] if math.isfinite(series[s]) else None for s in steps]
        out[name] = {"steps": steps, "values": values, "times": [times.get(s) for s in steps]}
    return out


def merge_points(first: Points | None, then: Points | None) -> Points | None:
    """The points of two changes of one run, in order (None when either carries none, or past
    POINTS_CAP together)."""
    if first is None or then is None:
        return None
    if sum(len(s["steps"]) for s in first.values()) + sum(len(s["steps"]) for s in then.values()) > POINTS_CAP:
        return None
    out = {name: {k: list(v) for k, v in cols.items()} for name, cols in first.items()}
    for name, cols in then.items():
        mine = out.setdefault(name, {"steps": [], "values": [], "times": []})
        for key in ("steps", "values", "times"):
            mine[key].extend(cols[key])
    return out
