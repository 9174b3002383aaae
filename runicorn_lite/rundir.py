"""The run-directory format: where runs live, tolerant readers, atomic writers.

This is the one module that knows the on-disk layout written by the real Runicorn SDK (0.4-0.5
"legacy" and 0.6+ "modern" generations) and by our own SDK. The ingester and the V1 endpoints
both read through it; the SDK and the API write through it.

Readers never raise on bad files: a missing, empty, truncated or non-JSON file reads as "absent",
and a directory that vanishes mid-read yields what could be read.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

try:  # POSIX file locks; elsewhere updates are atomic but not serialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

RUNS_DIRNAME = "runs"
RECYCLE_DIRNAME = ".recycle"
META = "meta.json"
STATUS = "status.json"
SUMMARY = "summary.json"
EVENTS = "events.jsonl"
LOGS = "logs.txt"
ENVIRONMENT = "environment.json"
ASSETS = "assets.json"  # 0.7.x: config (args/extra), code, datasets, outputs
MEDIA = "media"  # images logged with log_image
DELETED = ".deleted"
# The files whose size and mtime decide whether a run changed (events.jsonl is tracked apart,
# by byte offset).
SMALL_FILES = (META, STATUS, SUMMARY, DELETED, ENVIRONMENT, ASSETS)

# Top-level folders that are never projects in the legacy layout.
NOT_PROJECTS = frozenset({RUNS_DIRNAME, "archive", "artifacts", "webui", "index"})

STATUSES = ("running", "finished", "failed", "interrupted")
_STATUS_ALIASES = {
    "running": "running",
    "finished": "finished",
    "completed": "finished",
    "success": "finished",
    "succeeded": "finished",
    "failed": "failed",
    "error": "failed",
    "crashed": "failed",
    "interrupted": "interrupted",
    "killed": "interrupted",
    "cancelled": "interrupted",
    "canceled": "interrupted",
    "aborted": "interrupted",
}
# System metrics (``init(system_metrics=True)``) are named ``sys/…``. A metrics event whose first
# key has this prefix is a system sample: its step is the sample number, not a training step.
SYSTEM_PREFIX = "sys/"
# Keys of a metrics event that are bookkeeping, not metrics.
NON_METRIC_KEYS = frozenset({"global_step", "step", "time", "stage", "epoch"})

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
_RUN_ID_RE = re.compile(RUN_ID_PATTERN)


def is_valid_run_id(run_id: str) -> bool:
    """True for ids that are safe as a single path segment (no ``/``, no ``..``, no NUL)."""
    return bool(_RUN_ID_RE.match(run_id)) and ".." not in run_id


def normalize_status(raw: object) -> str:
    """Map any status string to running|finished|failed|interrupted (unknown → finished)."""
    if isinstance(raw, str):
        return _STATUS_ALIASES.get(raw.strip().lower(), "finished")
    return "finished"


# ---------------------------------------------------------------------------------------------
# Tolerant readers


_NOT_JSON, _TOO_DEEP = object(), object()
MAX_JSON_DEPTH = 1024  # orjson's limit of nesting (Python's json stops near the same depth)


def read_json_bytes(data: bytes) -> object:
    """Parsed JSON (bare NaN/Infinity allowed), ``_TOO_DEEP`` past MAX_JSON_DEPTH, or ``_NOT_JSON``."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:  # Python's json writes bare NaN/Infinity, which orjson refuses.
            return json.loads(data)
        except RecursionError:
            return _TOO_DEEP
        except (ValueError, UnicodeDecodeError):
            return _TOO_DEEP if "depth limit" in str(exc) else _NOT_JSON


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when missing, empty, truncated or not an object."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    obj = read_json_bytes(data) if data.strip() else None
    return obj if isinstance(obj, dict) else None


# assets.json and environment.json larger than this are not read (one warning): they are
# documents for people, and a runaway one must not cost the index its memory.
MAX_DOC_BYTES = 4 << 20


def read_doc(path: Path, max_bytes: int = MAX_DOC_BYTES) -> tuple[dict[str, Any] | None, str | None]:
    """(object, problem) of an optional JSON document: (None, None) when the file is absent,
    (None, why) when it is too large, unreadable, not JSON (or not UTF-8) or not an object."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path.name} unreadable: {exc.strerror or exc}"
    if size > max_bytes:
        return None, f"{path.name} is {size / (1 << 20):.1f} MiB, over the {max_bytes >> 20} MiB limit; not read"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{path.name} unreadable: {exc.strerror or exc}"
    if not data.strip():
        return None, None
    if (obj := read_json_bytes(data)) is _NOT_JSON or obj is _TOO_DEEP:
        why = f"nested deeper than {MAX_JSON_DEPTH} levels" if obj is _TOO_DEEP else "not valid UTF-8 JSON"
        return None, f"{path.name} is {why}"
    if not isinstance(obj, dict):
        return None, f"{path.name} is not a JSON object"
    return obj, None


def parse_event_line(line: bytes) -> dict[str, Any] | None:
    """One events.jsonl line as a dict, or None when it is not a JSON object."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
    return obj if isinstance(obj, dict) else None


def _as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return None


def _as_int(value: object) -> int | None:
    """An integer that fits SQLite's int64 (whole floats included), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            return None
        value = int(value)
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return None


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
    try:
        data, skipped = _read_lines(path, offset, max_bytes)
    except OSError:
        return out
    if skipped:  # one line longer than MAX_EVENT_LINE: stepped over, counted as bad
        out.offset, out.bad_lines, out.more = offset + skipped, 1, True
        return out
    end = data.rfind(b"\n")
    if end < 0:
        return out
    out.offset = offset + end + 1
    if max_bytes is not None and len(data) >= max_bytes:
        out.more = _has_newline_after(path, offset + len(data))
    points = out.points
    times = out.times
    step_auto = last_step
    lines = [line for line in data[: end + 1].split(b"\n") if line.strip()]
    try:  # one parse for the whole read: far cheaper than one call per line
        events: list[Any] = orjson.loads(b"[" + b",".join(lines) + b"]")
    except orjson.JSONDecodeError:  # bare NaN/Infinity or a corrupt line: line by line
        events = [parse_event_line(line) for line in lines]
    for event in events:
        if type(event) is not dict:
            out.bad_lines += 1
            continue
        event_type = event.get("type", "metrics")
        payload = event.get("data")
        if type(payload) is not dict:
            continue
        if event_type != "metrics":
            if event_type == "image":
                image = image_event(payload, step_auto)
                if image is not None:
                    out.images.append(image)
            continue
        step = payload.get("global_step")
        if type(step) is not int:
            step = _as_int(step)
            if step is None:
                step = _as_int(payload.get("step"))
            if step is None:
                step = 0 if step_auto is None else step_auto + 1
        if not _INT64_MIN <= step <= _INT64_MAX:
            out.bad_lines += 1
            continue
        system = next(iter(payload), "").startswith(SYSTEM_PREFIX)
        if not system:
            if step_auto is None or step > step_auto:
                step_auto = step
            if labels is not None:
                _collect_labels(labels, step, payload)
        at = payload.get("time")
        if type(at) is not float:
            at = _wall_time(at, event.get("ts"))
        if at is not None:
            (out.system_times if system else times)[step] = at
        for key, raw in payload.items():
            kind = type(raw)
            if kind is float:
                value = raw
            elif kind is int or kind is bool:
                value = _as_float(raw)
            else:
                continue
            if key in NON_METRIC_KEYS:
                continue
            series = points.get(key)
            if series is None:
                series = points[key] = {}
            series[step] = value
    out.last_step = step_auto
    return out


def _read_lines(path: Path, offset: int, max_bytes: int | None) -> tuple[bytes, int]:
    """(bytes from ``offset``: everything, or about ``max_bytes`` holding at least one whole
    line; bytes to skip instead when the first line is longer than MAX_EVENT_LINE)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        if max_bytes is None:
            return fh.read(), 0
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


def safe_relative_path(raw: object) -> str | None:
    """``raw`` as a path inside a run directory (``media/x.png``), or None when it is not a
    string, is absolute, or climbs out (``..``)."""
    if not isinstance(raw, str) or not raw or "\x00" in raw or len(raw) > 1024:
        return None
    text = raw.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def file_inside(run_dir: Path, rel: str) -> Path | None:
    """The regular file at ``rel`` (a ``safe_relative_path``) inside ``run_dir``, or None when it
    is missing, not a regular file, or reached through a symlink that points out of the run
    directory."""
    target = Path(run_dir) / rel
    try:
        real_dir = os.path.realpath(run_dir)
        real = os.path.realpath(target)
        if os.path.commonpath([real_dir, real]) != real_dir or real == real_dir:
            return None
        if not os.path.isfile(real):
            return None
    except (OSError, ValueError):
        return None
    return target


def image_event(payload: dict[str, Any], last_step: int | None) -> dict[str, Any] | None:
    """The image of one ``image`` event's data, or None when it names no usable file."""
    key, path = payload.get("key"), safe_relative_path(payload.get("path"))
    if not isinstance(key, str) or not key or path is None:
        return None
    step = _as_int(payload.get("step"))
    caption = payload.get("caption")
    return {
        "key": key[:200],
        "step": step if step is not None else last_step,
        "caption": caption[:2000] if isinstance(caption, str) else None,
        "path": path,
    }


@dataclass
class RunLocation:
    """A run directory found on disk, with what its place in the tree says about it."""

    run_dir: Path
    run_id: str
    generation: str  # "modern" | "legacy"
    segments: tuple[str, ...]  # modern: path segments between runs/ and the id; legacy: (project, name)
    in_recycle: bool = False
    # Names in the run directory when it was listed: lets a rescan stat only files that exist.
    names: frozenset[str] | None = None


@dataclass
class RunInfo:
    """Everything about a run except its metric points, read from its small files."""

    id: str
    run_dir: Path
    generation: str
    project: str
    name: str
    path: str
    alias: str | None
    description: str | None
    tags: list[str]
    status: str
    exit_reason: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    updated_at: float
    pid: int | None
    hostname: str | None
    summary: dict[str, Any]
    best_metric_name: str | None
    best_metric_value: float | None
    best_metric_step: int | None
    best_metric_mode: str | None
    primary_metric: str | None
    primary_mode: str | None
    deleted_at: float | None
    delete_reason: str | None
    original_status: str | None
    environment_available: bool
    meta: dict[str, Any]


def _is_run_dir(names: set[str]) -> bool:
    return META in names or STATUS in names


def _listdir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError:
        return []


def _subdirs(entries: list[os.DirEntry[str]]) -> list[os.DirEntry[str]]:
    out = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                out.append(entry)
        except OSError:
            continue
    return out


def iter_runs(root: Path) -> Iterator[RunLocation]:
    """Every run directory under ``root``, both generations, soft-deleted ones included."""
    root = Path(root)
    runs_root = root / RUNS_DIRNAME
    yield from _walk_modern(runs_root, ())
    for project in _subdirs(_listdir(root)):
        if project.name in NOT_PROJECTS or project.name.startswith("."):
            continue
        for name in _subdirs(_listdir(Path(project.path))):
            if name.name.startswith("."):
                continue
            legacy_runs = Path(name.path) / RUNS_DIRNAME
            for run in _subdirs(_listdir(legacy_runs)):
                if run.name.startswith(".") or not is_valid_run_id(run.name):
                    continue
                names = {e.name for e in _listdir(Path(run.path))}
                if _is_run_dir(names):
                    yield RunLocation(
                        Path(run.path), run.name, "legacy", (project.name, name.name), names=frozenset(names)
                    )


def _walk_modern(directory: Path, segments: tuple[str, ...], depth: int = 0) -> Iterator[RunLocation]:
    if depth > 32:
        return
    for entry in _subdirs(_listdir(directory)):
        if entry.name == RECYCLE_DIRNAME and depth == 0:
            for run in _subdirs(_listdir(Path(entry.path))):
                names = {e.name for e in _listdir(Path(run.path))}
                if _is_run_dir(names) and is_valid_run_id(run.name):
                    yield RunLocation(Path(run.path), run.name, "modern", (), in_recycle=True, names=frozenset(names))
            continue
        if entry.name.startswith("."):
            continue
        sub = Path(entry.path)
        names = {e.name for e in _listdir(sub)}
        if _is_run_dir(names):
            if is_valid_run_id(entry.name):
                yield RunLocation(sub, entry.name, "modern", segments, names=frozenset(names))
        else:
            yield from _walk_modern(sub, (*segments, entry.name), depth + 1)


def location_of(root: Path, run_dir: Path) -> RunLocation | None:
    """The RunLocation of ``run_dir`` (which must lie under ``root``), or None if it is not a run."""
    try:
        rel = Path(run_dir).relative_to(root).parts
    except ValueError:
        return None
    if not rel or not is_valid_run_id(rel[-1]):
        return None
    try:
        names = set(os.listdir(run_dir))
    except OSError:
        return None
    if not _is_run_dir(names):
        return None
    if rel[0] == RUNS_DIRNAME:
        if len(rel) == 3 and rel[1] == RECYCLE_DIRNAME:
            return RunLocation(Path(run_dir), rel[-1], "modern", (), in_recycle=True)
        if len(rel) >= 2 and not any(p.startswith(".") for p in rel[1:]):
            return RunLocation(Path(run_dir), rel[-1], "modern", tuple(rel[1:-1]))
        return None
    if len(rel) == 4 and rel[2] == RUNS_DIRNAME and rel[0] not in NOT_PROJECTS and not rel[0].startswith("."):
        return RunLocation(Path(run_dir), rel[-1], "legacy", (rel[0], rel[1]))
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _float_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _tags(value: object) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    seen: dict[str, None] = {}
    for tag in value:
        if isinstance(tag, str) and tag.strip():
            seen.setdefault(tag.strip(), None)
    return list(seen)


def split_path(path: str) -> tuple[str, str]:
    """A modern ``path`` ("cv/yolo/ablation") as (project, name); name is ``default`` when absent."""
    parts = [p for p in path.replace("\\", "/").split("/") if p and p not in (".", "..")]
    if not parts:
        return "default", "default"
    return parts[0], "/".join(parts[1:]) or "default"


_HOSTNAME = socket.gethostname()


def pid_is_gone(pid: int | None, hostname: str | None) -> bool:
    """True when ``pid`` ran on this host and no such process exists any more."""
    if pid is None or pid <= 0 or hostname != _HOSTNAME:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError, ValueError):  # not ours to signal, or not a pid at all
        return False
    return False


def read_run(loc: RunLocation) -> RunInfo | None:
    """Read a run's small files. None when the directory vanished or holds no run any more."""
    run_dir = loc.run_dir
    meta = read_json_object(run_dir / META)
    status_obj = read_json_object(run_dir / STATUS)
    if meta is None and status_obj is None and not run_dir.is_dir():
        return None
    meta = meta or {}
    status_obj = status_obj or {}
    summary = read_json_object(run_dir / SUMMARY) or {}
    deleted = read_json_object(run_dir / DELETED)
    deleted_exists = deleted is not None or (run_dir / DELETED).exists()

    if loc.generation == "modern":
        raw_path = _str_or_none(meta.get("path"))
        if raw_path is None:
            raw_path = "/".join(loc.segments) if loc.segments else None
        if raw_path is None and isinstance(deleted, dict):
            raw_path = _str_or_none(deleted.get("original_path"))
        project, name = split_path(raw_path or "default")
        path = raw_path.strip("/") if raw_path else project
    else:
        project = _str_or_none(meta.get("project")) or loc.segments[0]
        name = _str_or_none(meta.get("name")) or loc.segments[1]
        path = f"{project}/{name}"

    mtimes = []
    for fname in (META, STATUS, SUMMARY, EVENTS):
        with contextlib.suppress(OSError):
            mtimes.append((run_dir / fname).stat().st_mtime)
    try:
        dir_mtime = run_dir.stat().st_mtime
    except OSError:
        dir_mtime = 0.0
    updated_at = max(mtimes) if mtimes else dir_mtime

    started_at = _float_or_none(status_obj.get("started_at"))
    created_at = _float_or_none(meta.get("created_at"))
    if created_at is None:
        created_at = started_at if started_at is not None else dir_mtime
    # No status yet: the run is starting. A status that is there but unknown: finished.
    status = normalize_status(status_obj["status"]) if "status" in status_obj else "running"
    exit_reason = _str_or_none(status_obj.get("exit_reason"))
    pid = _as_int(meta.get("pid"))
    hostname = _str_or_none(meta.get("hostname"))
    if status == "running" and pid_is_gone(pid, hostname):
        status, exit_reason = "failed", "process_not_found"

    primary = meta.get("primary_metric")
    primary_name = primary_mode = None
    if isinstance(primary, dict):
        primary_name = _str_or_none(primary.get("name"))
        primary_mode = "min" if primary.get("mode") == "min" else "max"
    elif isinstance(primary, str) and primary:
        primary_name = primary
        primary_mode = "min" if meta.get("primary_metric_mode") == "min" else "max"

    best_name = _str_or_none(summary.get("best_metric_name"))
    best_value = _float_or_none(summary.get("best_metric_value"))
    best_step = _as_int(summary.get("best_metric_step"))
    best_mode = summary.get("best_metric_mode") if summary.get("best_metric_mode") in ("max", "min") else None

    deleted_at = None
    delete_reason = original_status = None
    if deleted_exists or loc.in_recycle:
        deleted = deleted or {}
        deleted_at = _float_or_none(deleted.get("deleted_at"))
        if deleted_at is None:
            try:
                deleted_at = (run_dir / DELETED).stat().st_mtime
            except OSError:
                deleted_at = dir_mtime
        delete_reason = _str_or_none(deleted.get("reason"))
        original_status = _str_or_none(deleted.get("original_status"))

    return RunInfo(
        id=loc.run_id,
        run_dir=run_dir,
        generation=loc.generation,
        project=project,
        name=name,
        path=path,
        alias=_str_or_none(meta.get("alias")),
        description=_str_or_none(meta.get("description")),
        tags=_tags(meta.get("tags")),
        status=status,
        exit_reason=exit_reason,
        created_at=created_at,
        started_at=started_at,
        ended_at=_float_or_none(status_obj.get("ended_at")),
        updated_at=updated_at,
        pid=pid,
        hostname=hostname,
        summary=summary,
        best_metric_name=best_name,
        best_metric_value=best_value,
        best_metric_step=best_step,
        best_metric_mode=best_mode,
        primary_metric=primary_name,
        primary_mode=primary_mode,
        deleted_at=deleted_at,
        delete_reason=delete_reason,
        original_status=original_status,
        environment_available=(run_dir / ENVIRONMENT).is_file(),
        meta=meta,
    )


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


def fill_live_best(info: RunInfo) -> RunInfo:
    """A run that declared a primary metric but has no best in summary.json yet (it is live,
    or died before finish) gets the best value in its events so far, as the index reports it.
    """
    if info.best_metric_value is not None or info.primary_metric is None:
        return info
    series = read_events(info.run_dir / EVENTS).points.get(info.primary_metric) or {}
    mode = info.primary_mode or "max"
    value, step = best_point(sorted(series.items()), mode)
    if value is not None:
        info.best_metric_name, info.best_metric_mode = info.primary_metric, mode
        info.best_metric_value, info.best_metric_step = value, step
    return info


def file_signature(
    run_dir: Path, names: frozenset[str] | None = None
) -> tuple[str, tuple[int, int, int] | None]:
    """(signature of the small files, (inode, size, mtime_ns) of events.jsonl or None).

    Two reads of an unchanged run give equal signatures; that is how a rescan skips it.
    ``names`` (the directory's listing, when the caller has it) spares the stats of files
    that are not there. Plain string paths: this runs for every run on every rescan.
    """
    base = f"{run_dir}{os.sep}"
    parts = []
    for fname in SMALL_FILES:
        if names is not None and fname not in names:
            parts.append("-")
            continue
        try:
            st = os.stat(base + fname)
        except OSError:
            parts.append("-")
            continue
        parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    events = None
    if names is None or EVENTS in names:
        try:
            st = os.stat(base + EVENTS)
            events = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            pass
    return "|".join(parts), events


def count_files(run_dir: Path) -> int:
    """Number of regular files in the run directory, recursively (0 if it vanished)."""
    total = 0
    for _dirpath, _dirs, files in os.walk(run_dir):
        total += len(files)
    return total


# ---------------------------------------------------------------------------------------------
# Writers


def _json_default(obj: object) -> object:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(obj: object) -> str:
    """JSON text as the real SDK writes it (Python's json, bare NaN/Infinity allowed)."""
    return json.dumps(obj, ensure_ascii=False, default=_json_default)


def atomic_write_json(path: Path, obj: object, *, durable: bool = True) -> None:
    """Write ``obj`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    ``durable=False`` skips the fsync: readers still never see a half-written file, but a
    power cut may lose the write (fine for a training script's own bookkeeping).
    """
    path = Path(path)
    text = json.dumps(obj, ensure_ascii=False, indent=2, default=_json_default)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def mark_deleted(run_dir: Path, original_status: str, reason: str, now: float) -> None:
    """Soft-delete: write the ``.deleted`` marker into the run directory."""
    marker = {"deleted_at": now, "reason": reason, "original_status": original_status}
    atomic_write_json(Path(run_dir) / DELETED, marker)


def unmark_deleted(root: Path, run_dir: Path, run_id: str, path: str) -> Path:
    """Restore a soft-deleted run; a run in the modern recycle bin moves back to ``path``.

    Returns the run directory after the restore. FileExistsError (an OSError) when a recycled
    run's place is taken by another directory: it stays deleted.
    """
    run_dir = Path(run_dir)
    target = None
    if run_dir.parent.name == RECYCLE_DIRNAME and run_dir.parent.parent.name == RUNS_DIRNAME:
        target_parent = Path(root) / RUNS_DIRNAME
        for segment in path.split("/"):
            if segment and segment not in (".", "..") and not segment.startswith("."):
                target_parent = target_parent / segment
        target = target_parent / run_id
        if target.exists():
            raise FileExistsError(f"{target} exists; {run_id} stays in the recycle bin")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(run_dir / DELETED)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(run_dir, target)
        return target
    return run_dir


def empty_assets() -> dict[str, Any]:
    """The assets.json the 0.7.x SDK starts every run with."""
    return {"code": {}, "config": {}, "datasets": [], "pretrained": [], "outputs": []}


def read_assets(run_dir: Path) -> dict[str, Any] | None:
    """The run's assets.json object, or None when it is missing or unreadable."""
    return read_json_object(Path(run_dir) / ASSETS)


def assets_count(assets: object) -> int:
    """How many assets Runicorn's viewer counts in an assets.json: a code snapshot, a non-empty
    config, and every dataset, pretrained model and output."""
    if not isinstance(assets, dict):
        return 0
    code, config = assets.get("code"), assets.get("config")
    n = int(isinstance(code, dict) and isinstance(code.get("snapshot"), dict))
    n += int(isinstance(config, dict) and len(config) > 0)
    for key in ("datasets", "pretrained", "outputs"):
        items = assets.get(key)
        if isinstance(items, list):
            n += len(items)
    return n


def update_config(run_dir: Path, changes: dict[str, Any], *, durable: bool = False) -> dict[str, Any]:
    """Merge ``changes`` (``{"args": {...}, "extra": {...}, ...}``) into assets.json's ``config``.

    ``args`` and ``extra`` are merged key by key (a later value for a key wins); any other part
    of the file is kept. Locked like ``update_meta``; returns the new ``config``.
    """
    run_dir = Path(run_dir)
    with _dir_lock(run_dir):
        assets = read_assets(run_dir) or empty_assets()
        config = assets.get("config")
        config = dict(config) if isinstance(config, dict) else {}
        for key, value in changes.items():
            current = config.get(key)
            if isinstance(value, dict) and isinstance(current, dict):
                config[key] = {**current, **value}
            else:
                config[key] = value
        assets["config"] = config
        atomic_write_json(run_dir / ASSETS, assets, durable=durable)
    return config


def append_asset(run_dir: Path, kind: str, entry: dict[str, Any]) -> None:
    """Append ``entry`` to assets.json's list ``kind`` (``datasets``, ``pretrained``, ``outputs``),
    locked like ``update_config``."""
    run_dir = Path(run_dir)
    with _dir_lock(run_dir):
        assets = read_assets(run_dir) or empty_assets()
        items = assets.get(kind)
        assets[kind] = [*(items if isinstance(items, list) else []), entry]
        atomic_write_json(run_dir / ASSETS, assets, durable=False)


def write_new_file(path: Path, data: bytes) -> None:
    """Write a file that readers must never see half-written (temp file, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:50]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def update_meta(run_dir: Path, changes: dict[str, Any], *, durable: bool = True) -> dict[str, Any]:
    """Merge ``changes`` into meta.json atomically; returns the new meta.

    The read-modify-write holds an OS lock on the run directory itself (no lock file left
    behind), so a PATCH from the server and the training script's own update cannot lose each
    other's keys.
    """
    with _dir_lock(Path(run_dir)):
        meta = read_json_object(run_dir / META) or {}
        meta.update(changes)
        atomic_write_json(run_dir / META, meta, durable=durable)
    return meta


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover - no POSIX locks: atomic, not serialised
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
