"""Packing of metric points into chunk rows (sorted int64 steps + float64 values)."""

from __future__ import annotations

from array import array
from collections.abc import Iterable

# Points per chunk when a series grows by appends. A rewrite of an earlier step merges into the
# chunk whose range holds it, so chunks may hold more than this.
CHUNK_POINTS = 512


def pack(steps: Iterable[int], values: Iterable[float]) -> tuple[bytes, bytes]:
    """Two blobs for sorted steps and their values."""
    return array("q", steps).tobytes(), array("d", values).tobytes()


def unpack(steps_blob: bytes, vals_blob: bytes) -> tuple[array[int], array[float]]:
    """The arrays stored by :func:`pack`."""
    steps = array("q")
    steps.frombytes(steps_blob)
    vals = array("d")
    vals.frombytes(vals_blob)
    return steps, vals


def split_sorted(points: dict[int, float], size: int = CHUNK_POINTS) -> list[tuple[list[int], list[float]]]:
    """Sorted points cut into runs of ``size``."""
    steps = sorted(points)
    out = []
    for start in range(0, len(steps), size):
        part = steps[start : start + size]
        out.append((part, [points[s] for s in part]))
    return out
