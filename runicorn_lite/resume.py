"""``init(resume=<run id>)``: find a run written in the modern layout and open it again.

The run keeps its directory, id, path, tags and alias; its status goes back to ``running``; the
training steps continue after the last one in events.jsonl and the system samples after theirs;
the primary metric and the best value so far come back from meta.json and summary.json, so a
resumed run's best is the best over both parts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runicorn_lite import rundir


@dataclass
class Reopened:
    """What the SDK needs to go on writing a run."""

    run_dir: Path
    run_id: str
    path: str
    created_at: float
    last_step: int
    last_sample: int
    primary: tuple[str, str] | None
    best: tuple[float, int] | None


def locate(base: Path, run_id: str) -> Path:
    """The directory of the (modern, not soft-deleted) run ``run_id`` under ``base``."""
    if not isinstance(run_id, str) or not rundir.is_valid_run_id(run_id):
        raise ValueError(f"cannot resume run {run_id!r}: not a valid run id")
    for loc in rundir.iter_runs(base):
        if loc.run_id == run_id and loc.generation == "modern" and not loc.in_recycle:
            return loc.run_dir
    raise ValueError(f"cannot resume run {run_id!r}: no such run under {base}")


def _last_steps(events: Path) -> tuple[int, int]:
    """(last training step, last system sample) in events.jsonl, read window by window."""
    offset, last_step, last_sample = 0, None, 0
    while True:
        chunk = rundir.read_events(events, offset, last_step, max_bytes=rundir.EVENTS_WINDOW)
        last_step = chunk.last_step
        if chunk.system_times:
            last_sample = max(last_sample, *chunk.system_times)
        if not chunk.more or chunk.offset == offset:
            break
        offset = chunk.offset
    return (last_step or 0), last_sample


def _primary(meta: dict[str, Any], summary: dict[str, Any]) -> tuple[tuple[str, str] | None, tuple[float, int] | None]:
    primary = meta.get("primary_metric")
    if not (isinstance(primary, dict) and isinstance(primary.get("name"), str)
            and primary.get("mode") in ("max", "min")):
        return None, None
    name, mode = primary["name"], primary["mode"]
    value, step = summary.get("best_metric_value"), summary.get("best_metric_step")
    best = None
    if (summary.get("best_metric_name") == name and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and isinstance(step, int)):
        best = (float(value), step)
    return (name, mode), best


def reopen(base: Path, run_id: str, *, tags: list[str] | None = None, description: str | None = None,
           alias: str | None = None) -> Reopened:
    """Mark run ``run_id`` running again and say where its steps stopped.

    ``tags`` are added to the run's tags; ``description`` and ``alias``, when given, replace
    the run's.
    """
    run_dir = locate(base, run_id)
    meta = rundir.read_json_object(run_dir / rundir.META) or {}
    path = meta.get("path")
    if not isinstance(path, str) or not path:
        path = "/".join(run_dir.relative_to(base / rundir.RUNS_DIRNAME).parts[:-1]) or "default"
    changes: dict[str, Any] = {}
    if tags:
        old = [t for t in meta.get("tags") or [] if isinstance(t, str)]
        changes["tags"] = list(dict.fromkeys([*old, *(t for t in tags if isinstance(t, str) and t)]))
    if description is not None:
        changes["description"] = description
    if alias is not None:
        changes["alias"] = alias
    if changes:
        rundir.update_meta(run_dir, changes, durable=False)
    now = time.time()
    status = rundir.read_json_object(run_dir / rundir.STATUS) or {}
    created = meta.get("created_at")
    created_at = float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else now
    started = status.get("started_at")
    state = {"status": "running", "started_at": started if isinstance(started, (int, float)) else created_at,
             "resumed_at": now}
    rundir.atomic_write_json(run_dir / rundir.STATUS, state, durable=False)
    last_step, last_sample = _last_steps(run_dir / rundir.EVENTS)
    primary, best = _primary(meta, rundir.read_json_object(run_dir / rundir.SUMMARY) or {})
    return Reopened(run_dir, run_id, path, created_at, last_step, last_sample, primary, best)
