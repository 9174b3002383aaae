"""A run as its small files describe it (``RunInfo``), read from a ``RunLocation``."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runicorn_lite.rundir.events import best_point, read_events
from runicorn_lite.rundir.jsonfiles import read_json_object
from runicorn_lite.rundir.layout import (
    DELETED,
    ENVIRONMENT,
    EVENTS,
    META,
    STAMPED_FILES,
    STATUS,
    SUMMARY,
    normalize_status,
    split_path,
)
from runicorn_lite.rundir.liveness import pid_is_gone
from runicorn_lite.rundir.values import as_int, float_or_none, str_or_none, tag_list
from runicorn_lite.rundir.walk import RunLocation


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


def read_run(loc: RunLocation, latest: float | None = None) -> RunInfo | None:
    """Read a run's small files. None when the directory vanished or holds no run any more.
    ``latest``: the latest mtime of meta, status, summary and events, when the caller has just
    read them (:func:`~runicorn_lite.rundir.walk.file_signature`)."""
    run_dir = loc.run_dir
    names = loc.names  # the listing the walk made, when it did: files it lacks are not tried

    def read(fname: str) -> dict[str, Any] | None:
        return read_json_object(run_dir / fname) if names is None or fname in names else None

    meta = read(META)
    status_obj = read(STATUS)
    if meta is None and status_obj is None and not run_dir.is_dir():
        return None
    meta = meta or {}
    status_obj = status_obj or {}
    summary = read(SUMMARY) or {}
    deleted = read(DELETED)
    deleted_exists = deleted is not None or (DELETED in names if names is not None else (run_dir / DELETED).exists())

    project, name, path = _place(loc, meta, deleted)
    updated_at = latest if latest is not None else _latest_mtime(run_dir, names)
    if updated_at is None:
        updated_at = _dir_mtime(run_dir)

    started_at = float_or_none(status_obj.get("started_at"))
    created_at = float_or_none(meta.get("created_at"))
    if created_at is None:
        created_at = started_at if started_at is not None else _dir_mtime(run_dir)
    # No status yet: the run is starting. A status that is there but unknown: finished.
    status = normalize_status(status_obj["status"]) if "status" in status_obj else "running"
    exit_reason = str_or_none(status_obj.get("exit_reason"))
    pid = as_int(meta.get("pid"))
    hostname = str_or_none(meta.get("hostname"))
    if status == "running" and pid_is_gone(pid, hostname):
        status, exit_reason = "failed", "process_not_found"

    primary_name, primary_mode = _primary_metric(meta)

    best_name = str_or_none(summary.get("best_metric_name"))
    best_value = float_or_none(summary.get("best_metric_value"))
    best_step = as_int(summary.get("best_metric_step"))
    best_mode = summary.get("best_metric_mode") if summary.get("best_metric_mode") in ("max", "min") else None

    deleted_at = delete_reason = original_status = None
    if deleted_exists or loc.in_recycle:
        deleted = deleted or {}
        deleted_at = float_or_none(deleted.get("deleted_at"))
        if deleted_at is None:
            try:
                deleted_at = (run_dir / DELETED).stat().st_mtime
            except OSError:
                deleted_at = _dir_mtime(run_dir)
        delete_reason = str_or_none(deleted.get("reason"))
        original_status = str_or_none(deleted.get("original_status"))

    return RunInfo(
        id=loc.run_id,
        run_dir=run_dir,
        generation=loc.generation,
        project=project,
        name=name,
        path=path,
        alias=str_or_none(meta.get("alias")),
        description=str_or_none(meta.get("description")),
        tags=tag_list(meta.get("tags")),
        status=status,
        exit_reason=exit_reason,
        created_at=created_at,
        started_at=started_at,
        ended_at=float_or_none(status_obj.get("ended_at")),
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
        environment_available=ENVIRONMENT in names if names is not None else (run_dir / ENVIRONMENT).is_file(),
        meta=meta,
    )



def _place(loc: RunLocation, meta: dict[str, Any], deleted: dict[str, Any] | None) -> tuple[str, str, str]:
    """(project, name, path): a modern run's from meta.json's ``path`` or its place in the tree
    (or, in the recycle bin, the marker's ``original_path``); a legacy run's from its folders."""
    if loc.generation != "modern":
        project = str_or_none(meta.get("project")) or loc.segments[0]
        name = str_or_none(meta.get("name")) or loc.segments[1]
        return project, name, f"{project}/{name}"
    raw_path = str_or_none(meta.get("path"))
    if raw_path is None:
        raw_path = "/".join(loc.segments) if loc.segments else None
    if raw_path is None and isinstance(deleted, dict):
        raw_path = str_or_none(deleted.get("original_path"))
    project, name = split_path(raw_path or "default")
    return project, name, raw_path.strip("/") if raw_path else project


def _latest_mtime(run_dir: Path, names: frozenset[str] | None) -> float | None:
    """The latest mtime of the run's small files and events, None when it has none of them;
    ``names``: the directory's listing, when known."""
    mtimes = []
    base = f"{run_dir}{os.sep}"
    for fname in STAMPED_FILES:
        if names is None or fname in names:
            with contextlib.suppress(OSError):
                mtimes.append(os.stat(base + fname).st_mtime)
    return max(mtimes) if mtimes else None


def _dir_mtime(run_dir: Path) -> float:
    try:
        return run_dir.stat().st_mtime
    except OSError:
        return 0.0


def _primary_metric(meta: dict[str, Any]) -> tuple[str | None, str | None]:
    """(name, "min" | "max") of the declared primary metric, in either form the SDKs write."""
    primary = meta.get("primary_metric")
    if isinstance(primary, dict):
        return str_or_none(primary.get("name")), "min" if primary.get("mode") == "min" else "max"
    if isinstance(primary, str) and primary:
        return primary, "min" if meta.get("primary_metric_mode") == "min" else "max"
    return None, None


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
