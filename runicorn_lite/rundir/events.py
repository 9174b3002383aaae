"""Reading ``events.jsonl``: metric points, step times and labels, image events, window by
window, tolerant of a half-written last line and of corrupt lines."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from runicorn_lite.rundir.jsonfiles import READ_FLAGS, parse_event_line
from runicorn_lite.rundir.layout import safe_relative_path
from runicorn_lite.rundir.values import INT64_MAX, INT64_MIN, as_float, as_int

# System metrics (``init(system_metrics=True)``) are named ``sys/…``. A metrics event whose first
# key has this prefix is a system sample: its step is the sample number, not a training step.
SYSTEM_PREFIX = "sys/"


# Keys of a metrics event that are bookkeeping, not metrics.
NON_METRIC_KEYS = frozenset({"global_step", "step", "time", "stage", "epoch"})


@dataclass
class EventsChunk:
    """What one read of events.jsonl produced.

    ``points`` maps metric name → {step: value} (last value logged at a step wins).
    ``images`` are the ``image`` events, in file order: ``{"key", "step", "caption", "path"}``
    (``path`` relative to the run directory; ``step`` the event's, or else the last metrics
    step logged before it).
    ``offset`` is where the next read starts: just after the last complete line.
    """

    points: dict[str, dict[int, float]] = field(default_factory=dict)
    # step → wall-clock time of the (last) metrics event at that step, when it says one.
    times: dict[int, float] = field(default_factory=dict)
    # The same for system samples (``is_system_event``), whose steps are sample numbers: their
    # times are kept apart so neither overwrites the other's at a shared step number.
    system_times: dict[int, float] = field(default_factory=dict)
    # Complete lines were left unread (a read bounded by ``max_bytes``).
    more: bool = False
    images: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0
    last_step: int | None = None
    bad_lines: int = 0


# A line of events.jsonl longer than this is not read: it is skipped as a bad line.
MAX_EVENT_LINE = 64 << 20


# Bytes of events.jsonl read and parsed at once where a whole file is read window by window (the
# indexer's ingest, V1's metrics answer): memory stays flat whatever the size of the file.
EVENTS_WINDOW = 1 << 20


def read_events(
    path: Path,
    offset: int = 0,
    last_step: int | None = None,
    labels: dict[int, dict[str, Any]] | None = None,
    max_bytes: int | None = None,
) -> EventsChunk:
    """Read metric points from ``events.jsonl`` starting at byte ``offset``.

    A last line without its newline is half-written (the run is live): it is left for the next
    read. A complete line that is not JSON is skipped and counted in ``bad_lines``. Events with
    no step get the one after the last seen, as the real SDK numbers them. ``labels``, when
    given, receives each step's ``time`` (a number) and ``stage`` (a string), later events
    winning. ``max_bytes`` bounds one read (the lines that fit, at least one): ``more`` then
    says whether complete lines were left for the next read, so a huge file is read in windows
    of bounded memory.
    """
    out = EventsChunk(offset=offset, last_step=last_step)
    for event in _complete_events(path, out, max_bytes):
        if type(event) is not dict:
            out.bad_lines += 1
            continue
        payload = event.get("data")
        if type(payload) is not dict:
            continue
        event_type = event.get("type", "metrics")
        if event_type == "metrics":
            _add_metrics(out, event, payload, labels)
        elif event_type == "image" and (image := image_event(payload, out.last_step)) is not None:
            out.images.append(image)
    return out


def _complete_events(path: Path, out: EventsChunk, max_bytes: int | None) -> list[Any]:
    """The events of the complete lines from ``out.offset`` (a non-object stands for a bad line);
    moves ``out.offset`` past them and sets ``out.more``."""
    offset = out.offset
    try:
        data, skipped = _read_lines(path, offset, max_bytes)
    except OSError:
        return []
    if skipped:  # one line longer than MAX_EVENT_LINE: stepped over, counted as bad
        out.offset, out.bad_lines, out.more = offset + skipped, 1, True
        return []
    end = data.rfind(b"\n")
    if end < 0:
        return []
    out.offset = offset + end + 1
    if max_bytes is not None and len(data) >= max_bytes:
        out.more = _has_newline_after(path, offset + len(data))
    lines = [line for line in data[: end + 1].split(b"\n") if line.strip()]
    try:  # one parse for the whole read: far cheaper than one call per line
        events: list[Any] = orjson.loads(b"[" + b",".join(lines) + b"]")
    except orjson.JSONDecodeError:  # bare NaN/Infinity or a corrupt line: line by line
        events = [parse_event_line(line) for line in lines]
    return events


def _event_step(payload: dict[str, Any], last_step: int | None) -> int | None:
    """A metrics event's step (``global_step``, else ``step``, else the one after ``last_step``),
    or None when it does not fit the index's int64."""
    step = payload.get("global_step")
    if type(step) is not int:
        step = as_int(step)
        if step is None:
            step = as_int(payload.get("step"))
        if step is None:
            step = 0 if last_step is None else last_step + 1
    return step if INT64_MIN <= step <= INT64_MAX else None


def _add_metrics(
    out: EventsChunk, event: dict[str, Any], payload: dict[str, Any], labels: dict[int, dict[str, Any]] | None
) -> None:
    step = _event_step(payload, out.last_step)
    if step is None:
        out.bad_lines += 1
        return
    system = next(iter(payload), "").startswith(SYSTEM_PREFIX)
    if not system:
        if out.last_step is None or step > out.last_step:
            out.last_step = step
        if labels is not None:
            _collect_labels(labels, step, payload)
    at = payload.get("time")
    if type(at) is not float:
        at = _wall_time(at, event.get("ts"))
    if at is not None:
        (out.system_times if system else out.times)[step] = at
    points = out.points
    for key, raw in payload.items():
        kind = type(raw)
        if kind is float:
            value = raw
        elif kind is int or kind is bool:
            value = as_float(raw)
        else:
            continue
        if key in NON_METRIC_KEYS:
            continue
        series = points.get(key)
        if series is None:
            series = points[key] = {}
        series[step] = value


def _read_lines(path: Path, offset: int, max_bytes: int | None) -> tuple[bytes, int]:
    """(bytes from ``offset``: everything, or about ``max_bytes`` holding at least one whole
    line; bytes to skip instead when the first line is longer than MAX_EVENT_LINE).

    The file's size first, then one read of what is there (a window's worth at most): a
    buffer of the window's size for a few KB of events cost an allocation and a ``mremap``
    per run of a cold scan. Only a window with no whole line in it takes the longer way."""
    fd = os.open(path, READ_FLAGS)
    try:
        room = max(os.fstat(fd).st_size - offset, 0)
        want = room if max_bytes is None else min(room, max_bytes)
        data = os.pread(fd, want, offset) if want else b""
    finally:
        os.close(fd)
    if max_bytes is None or len(data) < max_bytes or b"\n" in data:
        return data, 0
    return _read_long_line(path, offset, max_bytes)


def _read_long_line(path: Path, offset: int, max_bytes: int) -> tuple[bytes, int]:
    """:func:`_read_lines` for a window that holds no whole line."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(max_bytes)
        while b"\n" not in data and len(data) < MAX_EVENT_LINE:
            more = fh.read(max(len(data), 1))  # doubling: a long line costs a few reads
            if not more:
                return data, 0
            data += more
        if b"\n" in data:
            return data, 0
        # A runaway line: find its end without holding it.
        skipped = len(data)
        while True:
            piece = fh.read(1 << 20)
            if not piece:
                return b"", 0  # not complete yet: it may still be being written
            newline = piece.find(b"\n")
            if newline >= 0:
                return b"", skipped + newline + 1
            skipped += len(piece)


def _has_newline_after(path: Path, position: int) -> bool:
    """Whether a complete line starts at ``position`` (a newline follows somewhere)."""
    with open(path, "rb") as fh:
        fh.seek(position)
        while True:
            piece = fh.read(1 << 16)
            if not piece:
                return False
            if b"\n" in piece:
                return True


def _wall_time(*candidates: object) -> float | None:
    """The first finite number among ``candidates`` (an event's ``time``, then its ``ts``)."""
    for value in candidates:
        if type(value) in (int, float) and math.isfinite(value):  # type: ignore[arg-type]
            return float(value)  # type: ignore[arg-type]
    return None


def _collect_labels(labels: dict[int, dict[str, Any]], step: int, payload: dict[str, Any]) -> None:
    stamp, stage = payload.get("time"), payload.get("stage")
    if type(stamp) is not float and type(stamp) is not int:
        stamp = None
    if stamp is None and not isinstance(stage, str):
        return
    row = labels.setdefault(step, {})
    if stamp is not None:
        row["time"] = stamp
    if isinstance(stage, str):
        row["stage"] = stage


def image_event(payload: dict[str, Any], last_step: int | None) -> dict[str, Any] | None:
    """The image of one ``image`` event's data, or None when it names no usable file."""
    key, path = payload.get("key"), safe_relative_path(payload.get("path"))
    if not isinstance(key, str) or not key or path is None:
        return None
    step = as_int(payload.get("step"))
    caption = payload.get("caption")
    return {
        "key": key[:200],
        "step": step if step is not None else last_step,
        "caption": caption[:2000] if isinstance(caption, str) else None,
        "path": path,
    }


def best_point(
    points: Iterable[tuple[int, float]],
    mode: str,
    best_value: float | None = None,
    best_step: int | None = None,
) -> tuple[float | None, int | None]:
    """Fold (step, value) points into a running best; NaN and infinities never count, and
    the first of equal values wins."""
    for step, value in points:
        if not math.isfinite(value):
            continue
        if best_value is None or (value > best_value if mode == "max" else value < best_value):
            best_value, best_step = value, step
    return best_value, best_step
