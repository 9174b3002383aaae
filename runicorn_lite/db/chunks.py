"""Packing of metric points into chunk rows.

A chunk holds sorted int64 steps, their float64 values and the float64 wall-clock times of
the events that logged them (NaN where unknown), plus its *M4* points: the first, last, lowest
and highest point (by value, finite values only). A line drawn through the M4 points of
consecutive chunks is the same picture as one through every point, at any width of at least
four points per chunk (Jugel et al., "M4", VLDB 2014), so a downsampled curve of a long series
is read from these small blobs alone.
"""

from __future__ import annotations

import math
import struct
import sys
import typing
from array import array
from collections.abc import Iterable, Sequence

from runicorn_lite.downsample import m4_indices

# Points per chunk when a series grows by appends. A rewrite of an earlier step merges into the
# chunk whose range holds it, so chunks may hold more than this.
CHUNK_POINTS = 512
_NAN = math.nan


def pack(steps: Iterable[int], values: Iterable[float]) -> tuple[bytes, bytes]:
    """Two blobs for sorted steps and their values."""
    return array("q", steps).tobytes(), array("d", values).tobytes()


def pack_times(times: Iterable[float]) -> bytes:
    """The blob of a chunk's times (NaN where unknown)."""
    return array("d", times).tobytes()


def unpack(steps_blob: bytes, vals_blob: bytes) -> tuple[array[int], array[float]]:
    """The arrays stored by :func:`pack`."""
    steps = array("q")
    steps.frombytes(steps_blob)
    vals = array("d")
    vals.frombytes(vals_blob)
    return steps, vals


def unpack_times(times_blob: bytes | None, n: int) -> array[float]:
    """A chunk's times; all NaN when the chunk was stored without them."""
    times = array("d")
    if times_blob is not None and len(times_blob) == 8 * n:
        times.frombytes(times_blob)
    else:
        times.extend([_NAN] * n)
    return times


def split_sorted(points: dict[int, float], size: int = CHUNK_POINTS) -> list[tuple[list[int], list[float]]]:
    """Sorted points cut into runs of ``size``."""
    steps = sorted(points)
    out = []
    for start in range(0, len(steps), size):
        part = steps[start : start + size]
        out.append((part, [points[s] for s in part]))
    return out


_M4_RECORD = struct.Struct("<qdd")  # step, value, time
M4_RECORD_SIZE = _M4_RECORD.size


def m4(steps: Sequence[int], vals: Sequence[float], times: Sequence[float]) -> bytes:
    """The chunk's M4 points (first, lowest, highest, last; at most four, in step order) as
    one blob of (step int64, value float64, time float64) records."""
    return b"".join(_M4_RECORD.pack(steps[i], vals[i], times[i]) for i in m4_indices(vals, 4))


def unpack_m4(blob: bytes) -> list[tuple[int, float, float]]:
    """The (step, value, time) records of :func:`m4`."""
    return list(_M4_RECORD.iter_unpack(blob))


def unpack_m4_columns(blob: bytes) -> tuple[list[int], list[float], list[float]]:
    """The records of :func:`m4` (several chunks' blobs joined, too) as three columns: steps,
    values, times. On a little-endian machine the blob is read in place as strided arrays."""
    if sys.byteorder == "little":
        view = memoryview(blob)
        ints, floats = view.cast("q"), view.cast("d")
        steps: list[int] = ints[0::3].tolist()
        # (typeshed says memoryview.tolist() gives ints; of a "d" view it gives floats)
        values = typing.cast(list[float], floats[1::3].tolist())
        times = typing.cast(list[float], floats[2::3].tolist())
        return steps, values, times
    records = _M4_RECORD.iter_unpack(blob)
    columns = tuple(zip(*records, strict=True)) or ((), (), ())
    return list(columns[0]), list(columns[1]), list(columns[2])
