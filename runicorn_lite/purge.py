"""Permanent deletion of soft-deleted run directories, and of nothing else.

A directory is removed only when, at the moment it is removed, it is still a soft-deleted run
(in ``runs/.recycle/`` or holding a ``.deleted`` marker) of the id it was listed under, it lies
inside the data root with no symlink on the way, and it was already soft-deleted when the
recycle bin was listed. It is first renamed aside (atomic), checked again under its new name,
and only then removed; rmtree never follows a symlink found inside it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from runicorn_lite import rundir

log = logging.getLogger("runicorn_lite.purge")


@dataclass(frozen=True)
class Candidate:
    """A soft-deleted run as the recycle bin listed it."""

    run_id: str
    run_dir: Path


def list_deleted(root: Path) -> list[Candidate]:
    """Every soft-deleted run directory under ``root`` right now."""
    out = []
    for loc in rundir.iter_runs(root):
        if _is_soft_deleted(loc.run_dir, loc.in_recycle):
            out.append(Candidate(loc.run_id, loc.run_dir))
    return out


def _is_soft_deleted(run_dir: Path, in_recycle: bool) -> bool:
    try:
        st = os.lstat(run_dir / rundir.DELETED)
    except OSError:
        return in_recycle
    return stat.S_ISREG(st.st_mode) or in_recycle


def _inside(root: Path, path: Path) -> bool:
    """``path`` is below ``root`` and every component on the way is a real directory (the root
    itself may be a symlink: that is the user's choice of where data lives)."""
    root_abs = Path(os.path.abspath(root))
    try:
        rel = Path(os.path.abspath(path)).relative_to(root_abs)
    except ValueError:
        return False
    if not rel.parts or ".." in rel.parts:
        return False
    current = root_abs
    for part in rel.parts:
        current = current / part
        try:
            if not stat.S_ISDIR(os.lstat(current).st_mode):  # a symlink or a file on the way
                return False
        except OSError:
            return False
    return os.path.realpath(path) == os.path.join(os.path.realpath(root_abs), *rel.parts)


def _deleted_location(root: Path, run_dir: Path, run_id: str) -> rundir.RunLocation | None:
    """The run's location when ``run_dir`` is still a soft-deleted run of ``run_id``."""
    loc = rundir.location_of(root, run_dir)
    if loc is None or loc.run_id != run_id or not _is_soft_deleted(run_dir, loc.in_recycle):
        return None
    return loc


def purge(root: Path, candidates: list[Candidate]) -> list[str]:
    """Remove the candidates that are still soft-deleted runs; returns the ids removed."""
    root = Path(os.path.abspath(root))
    removed = []
    for cand in candidates:
        run_dir = Path(os.path.abspath(cand.run_dir))
        if not rundir.is_valid_run_id(cand.run_id) or run_dir.name != cand.run_id or not _inside(root, run_dir):
            log.info("not purging %s: not a run directory inside the root", cand.run_id)
            continue
        loc = _deleted_location(root, run_dir, cand.run_id)
        if loc is None:
            log.info("not purging %s: it is no longer soft-deleted", cand.run_id)
            continue
        aside = run_dir.with_name(f".{cand.run_id}.purging-{secrets.token_hex(4)}")
        try:
            os.rename(run_dir, aside)
        except OSError as exc:
            log.warning("cannot purge %s: %s", cand.run_id, exc)
            continue
        # Checked again under the new name, where nobody restores or re-creates it.
        if not _is_soft_deleted(aside, loc.in_recycle) or not _inside(root, aside):
            try:
                os.rename(aside, run_dir)
            except OSError as exc:
                log.error("purge of %s stopped; its directory is at %s: %s", cand.run_id, aside, exc)
            continue
        try:
            shutil.rmtree(aside)
        except OSError as exc:
            log.error("purge of %s incomplete: %s", cand.run_id, exc)
            continue
        removed.append(cand.run_id)
    return removed
