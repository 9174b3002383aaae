"""Where things live in a run directory: file names, run ids, statuses and safe relative paths.

The on-disk layout is written by the real Runicorn SDK (0.4-0.5 "legacy" and 0.6+ "modern"
generations) and by our own SDK; this module names its pieces once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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
# The files whose latest mtime is a run's ``updated_at``.
STAMPED_FILES = (META, STATUS, SUMMARY, EVENTS)


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


def split_path(path: str) -> tuple[str, str]:
    """A modern ``path`` ("cv/yolo/ablation") as (project, name); name is ``default`` when absent."""
    parts = [p for p in path.replace("\\", "/").split("/") if p and p not in (".", "..")]
    if not parts:
        return "default", "default"
    return parts[0], "/".join(parts[1:]) or "default"


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
