"""Soft deletion: the ``.deleted`` marker, and restoring a run (out of the modern recycle bin)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from runicorn_lite.rundir.layout import DELETED, RECYCLE_DIRNAME, RUNS_DIRNAME
from runicorn_lite.rundir.writers import atomic_write_json


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
