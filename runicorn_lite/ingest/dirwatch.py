"""New run directories found without a walk of the whole tree, when file events are unavailable.

Without file events (an OS watch limit: a million runs are over a million directories; some
network mounts) the tree is walked at a pace its cost allows, minutes apart at a million runs.
A run that starts meanwhile must not wait for that walk. The directories that hold runs, and
theirs up to the root, are few (hundreds at a million runs), and creating a run in one changes
its mtime: :class:`ParentDirs` stats them at the polling interval, lists the ones that changed,
and returns the run directories in them (or in new folders below them, a few levels deep) that
the index does not know. A run removed by hand still waits for the next walk (one removed
through the API is re-read at once).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from runicorn_lite import rundir

# How deep below a changed directory new folders are looked into (a new project and name:
# runs/<project>/<name>/<id>).
NEW_DEPTH = 3


class ParentDirs:
    """The directories holding known runs, and their ancestors, with their mtimes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._mtimes: dict[str, int | None] = {}  # relative directory ("" the root) → st_mtime_ns

    def rebuild(self, run_rels: Iterable[str]) -> None:
        """Watch the parents of these run directories (relative to the root) and theirs. A
        directory watched before keeps the mtime it was last seen with; a new one is listed at
        the next look (a run may have started since the walk that found the others)."""
        dirs = {""}
        for rel in run_rels:
            parent = rel.rpartition("/")[0]
            while parent not in dirs:
                dirs.add(parent)
                parent = parent.rpartition("/")[0]
        self._mtimes = {d: self._mtimes.get(d) for d in dirs}

    def new_runs(self, is_known: Callable[[str], bool]) -> list[Path]:
        """Run directories not known (``is_known`` of their relative path) in the directories
        that changed since the last look."""
        found: list[Path] = []
        for rel, before in list(self._mtimes.items()):
            now = self._mtime(rel)
            self._mtimes[rel] = now
            if now is None or now == before:
                continue
            if rel and not is_known(rel) and rundir.location_of(self.root, self.root / rel) is not None:
                found.append(self.root / rel)  # a folder watched here became a run
                self._mtimes.pop(rel)
            elif self._look(rel, is_known, found, 0):
                self._mtimes[rel] = before  # an empty folder in it: again next time
        return found

    def _look(self, rel: str, is_known: Callable[[str], bool], found: list[Path], depth: int) -> bool:
        """Add the unknown runs in ``rel`` to ``found``, watching new folders (a few levels);
        whether an empty folder was seen (the SDK makes a run's folder, then its files)."""
        pending = False
        try:
            with os.scandir(self.root / rel if rel else self.root) as entries:
                children = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            return False
        for name in children:
            child = f"{rel}/{name}" if rel else name
            if child in self._mtimes or is_known(child):
                continue
            path = self.root / child
            if rundir.location_of(self.root, path) is not None:
                found.append(path)
            elif not _has_entries(path):
                pending = True
            elif depth < NEW_DEPTH:
                self._mtimes[child] = self._mtime(child)
                pending = self._look(child, is_known, found, depth + 1) or pending
        return pending

    def _mtime(self, rel: str) -> int | None:
        try:
            return os.stat(self.root / rel if rel else self.root).st_mtime_ns
        except OSError:
            return None


def _has_entries(path: Path) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(True for _ in entries)
    except OSError:
        return True
