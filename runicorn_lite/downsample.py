"""Downsampling that keeps a curve's shape: M4 (Jugel et al., VLDB 2014).

The points are cut into buckets of consecutive points; each bucket keeps its first, last,
lowest and highest point. A line chart drawn from them shows every peak and dip of the full
series, and the first and last points are always kept. It is also cheap: the minimum and
maximum of a bucket are found by the built-in ``min``/``max`` over an array slice, in C.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def m4_indices(vals: Sequence[float], budget: int) -> list[int]:
    """Sorted indices of at most ``budget`` points (``budget`` ≥ 2): every point when they fit,
    else the first/last/lowest/highest of ``budget // 4`` buckets. NaN and infinities are never
    a bucket's lowest or highest point (they stay in the data as they are)."""
    n = len(vals)
    if n <= budget:
        return list(range(n))
    buckets = budget // 4
    if buckets < 1:
        return _three(vals) if budget == 3 else [0, n - 1]
    width = -(-n // buckets)  # ceil
    finite = math.isfinite(sum(vals))  # a NaN or an infinity anywhere makes the sum one
    picks: list[int] = []
    for start in range(0, n, width):
        end = min(start + width, n)
        chosen = {start, end - 1}
        if finite:
            seg = vals[start:end]
            chosen.add(start + seg.index(min(seg)))
            chosen.add(start + seg.index(max(seg)))
        else:
            lo = hi = -1
            for i in range(start, end):
                v = vals[i]
                if not math.isfinite(v):
                    continue
                if lo < 0 or v < vals[lo]:
                    lo = i
                if hi < 0 or v > vals[hi]:
                    hi = i
            if lo >= 0:
                chosen.update((lo, hi))
        picks.extend(sorted(chosen))
    return picks


def _three(vals: Sequence[float]) -> list[int]:
    """First, last, and the point farthest from the line between them (what one LTTB bucket
    keeps)."""
    n = len(vals)
    first, last = vals[0], vals[-1]
    a = first if math.isfinite(first) else 0.0
    slope = ((last if math.isfinite(last) else 0.0) - a) / (n - 1)
    best, best_gap = -1, -1.0
    for i in range(1, n - 1):
        v = vals[i]
        if not math.isfinite(v):
            continue
        gap = abs(v - (a + slope * i))
        if gap > best_gap:
            best, best_gap = i, gap
    return [0, best, n - 1] if best > 0 else [0, n - 1]
