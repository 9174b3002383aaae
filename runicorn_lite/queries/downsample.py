"""Downsampling that keeps a curve's shape: Largest-Triangle-Three-Buckets (Steinarsson 2013)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def lttb_indices(xs: Sequence[float], ys: Sequence[float], threshold: int) -> list[int]:
    """Indices of at most ``threshold`` points chosen by LTTB; the first and last always kept.

    Non-finite y values (NaN, infinities) are treated as 0 for the area computation, so they
    never break the selection; they stay in the data as they are.
    """
    n = len(xs)
    if threshold >= n or n <= 2:
        return list(range(n))
    if threshold < 3:
        return [0, n - 1][:threshold] if threshold > 0 else []
    fy = [y if math.isfinite(y) else 0.0 for y in ys]
    out = [0]
    bucket = (n - 2) / (threshold - 2)
    a = 0
    for i in range(threshold - 2):
        start = int(i * bucket) + 1
        end = int((i + 1) * bucket) + 1
        nxt_start = end
        nxt_end = min(int((i + 2) * bucket) + 1, n)
        if nxt_start >= nxt_end:
            avg_x, avg_y = xs[n - 1], fy[n - 1]
        else:
            span = nxt_end - nxt_start
            avg_x = sum(xs[nxt_start:nxt_end]) / span
            avg_y = sum(fy[nxt_start:nxt_end]) / span
        ax, ay = xs[a], fy[a]
        best, best_area = start, -1.0
        for j in range(start, min(end, n - 1)):
            area = abs((ax - avg_x) * (fy[j] - ay) - (ax - xs[j]) * (avg_y - ay))
            if area > best_area:
                best_area, best = area, j
        out.append(best)
        a = best
    out.append(n - 1)
    return out
