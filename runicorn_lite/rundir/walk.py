"""Finding run directories under a root (both generations, the recycle bin included) and
telling cheaply whether one changed since the last look."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runicorn_lite.rundir.layout import (
    EVENTS,
    META,
    NOT_PROJECTS,
    RECYCLE_DIRNAME,
    RUNS_DIRNAME,
    SMALL_FILES,
    STAMPED_FILES,
    STATUS,
    is_valid_run_id,
)


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


def file_signature(
    run_dir: Path, names: frozenset[str] | None = None
) -> tuple[str, tuple[int, int, int] | None, float | None]:
    """(signature of the small files, (inode, size, mtime_ns) of events.jsonl or None, the
    latest mtime of STAMPED_FILES or None: what ``read_run`` would stat them again for).

    Two reads of an unchanged run give equal signatures; that is how a rescan skips it.
    ``names`` (the directory's listing, when the caller has it) spares the stats of files
    that are not there. Plain string paths: this runs for every run on every rescan.
    """
    base = f"{run_dir}{os.sep}"
    parts = []
    latest: float | None = None
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
        if fname in STAMPED_FILES and (latest is None or st.st_mtime > latest):
            latest = st.st_mtime
    events = None
    if names is None or EVENTS in names:
        try:
            st = os.stat(base + EVENTS)
            events = (st.st_ino, st.st_size, st.st_mtime_ns)
            latest = st.st_mtime if latest is None else max(latest, st.st_mtime)
        except OSError:
            pass
    return "|".join(parts), events, latest


def count_files(run_dir: Path) -> int:
    """Number of regular files in the run directory, recursively (0 if it vanished)."""
    total = 0
    for _dirpath, _dirs, files in os.walk(run_dir):
        total += len(files)
    return total
