"""Keeps the derived index usable: an index file that is deleted, replaced or damaged is
rebuilt from the run directories (a damaged one moved aside first), while reads answer that
it is being rebuilt. Nothing in it is lost: the run directories are the truth."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from runicorn_lite.db import DamagedStore, Database, file_problem
from runicorn_lite.db.backend import Backend
from runicorn_lite.db.schema import INDEX_MIGRATIONS
from runicorn_lite.ingest.indexer import Indexer
from runicorn_lite.ingest.state import IndexState
from runicorn_lite.settings import Settings

log = logging.getLogger("runicorn_lite.ingest")

# A damaged index is kept beside the new one under this suffix (the last one only), for a look.
DAMAGED_SUFFIX = ".damaged"
# Rebuilds in a row that find damage again before giving up until the next check.
MAX_ATTEMPTS = 3


def move_aside(path: Path) -> Path:
    """Move a damaged index (file or directory) to ``<name>.damaged``; its side files go."""
    target = path.with_name(path.name + DAMAGED_SUFFIX)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    if path.exists() or path.is_symlink():
        os.replace(path, target)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return target


def open_index(path: Path, root: Path) -> tuple[Database, Indexer]:
    """The index at ``path`` and its indexer; a damaged index (truncated, garbage, a directory
    in its place) is moved aside with one warning and a new one is started."""
    db = Database(path, INDEX_MIGRATIONS)
    for _ in range(MAX_ATTEMPTS):
        if db.damaged is None:
            try:
                return db, Indexer(root, db)
            except DamagedStore:
                pass  # found while reading what is indexed: db.damaged says why
        reason = db.damaged
        db.close_connections()
        aside = move_aside(path)
        log.warning("%s is damaged (%s): moved aside to %s; rebuilding it from the run directories",
                    path.name, reason, aside.name)
        db.reopen()
    raise DamagedStore(f"{path.name} is still damaged after {MAX_ATTEMPTS} new starts: {db.damaged}")


def open_store(settings: Settings) -> tuple[Backend, Indexer]:
    """The index of a server and its indexer: on PostgreSQL when ``settings.database`` says so
    (its schema created or migrated under a lock), else the SQLite file (see :func:`open_index`)."""
    url = settings.postgres_url
    if url is None:
        return open_index(settings.index_path, settings.root)
    from runicorn_lite.db.pg_schema import CHURNED_TABLES, INDEX_TABLES, migrate_index
    from runicorn_lite.db.postgres import PgDatabase

    db = PgDatabase(url, migrate_index, name="index", pipeline=True, tables=INDEX_TABLES, churned=CHURNED_TABLES)
    return db, Indexer(settings.root, db)


class IndexKeeper:
    """Notices a deleted, replaced or damaged index file and rebuilds it (on the ingest thread)."""

    def __init__(self, indexer: Indexer) -> None:
        self.indexer = indexer
        self.db = indexer.db
        # Why the index is being rebuilt, while it is (health and 503 answers say it).
        self.rebuilding: str | None = None

    def problem(self) -> str | None:
        """What is wrong with the index file now, or None (one stat)."""
        name = self.db.path.name
        if self.db.damaged is not None:
            return f"{name} is damaged ({self.db.damaged})"
        changed = self.db.file_changed()
        return f"{name} {changed}" if changed is not None else None

    def check(self) -> bool:
        """Rebuild the index if its file is gone, replaced or damaged; True when it did."""
        problem = self.problem()
        if problem is None:
            return False
        self.rebuild(problem)
        return True

    def scan(self, progress: Callable[[int, int], None] | None = None) -> IndexState:
        """A scan; damage found on the way rebuilds the index (moved aside) and scans again."""
        try:
            return self.indexer.scan(progress)
        except DamagedStore as exc:
            self.rebuild(f"{self.db.path.name} is damaged ({exc})")
            return self.indexer.state

    def rebuild(self, problem: str) -> None:
        """Reopen the file (a new one if it is gone; a damaged one moved aside first), forget
        what was indexed, and scan. Reads of other threads answer "being rebuilt" meanwhile.
        Runs on the store's writer (the only thread that may read while reads are suspended)."""
        self.indexer.store.run(lambda: self._rebuild(problem), urgent=True)

    def _rebuild(self, problem: str) -> None:
        self.rebuilding = f"{problem}; it is being rebuilt from the run directories"
        aside = self.db.path.name + DAMAGED_SUFFIX
        # One line says it all (damage found later, inside the rebuild, adds its own).
        log.warning("%s", self.rebuilding.replace("; it is", f"; moved aside to {aside}, it is")
                    if self._damaged() else self.rebuilding)
        try:
            with self.db.suspended(self.rebuilding):
                for attempt in range(MAX_ATTEMPTS):
                    try:
                        self.indexer.reattach(self._reopen)
                        self.indexer.scan()
                        return
                    except DamagedStore as exc:
                        if attempt == MAX_ATTEMPTS - 1:
                            log.error("%s: still damaged after %d rebuilds (%s)", self.db.path.name, MAX_ATTEMPTS, exc)
        finally:
            self.rebuilding = None

    def _damaged(self) -> bool:
        if not isinstance(self.db, Database):  # PostgreSQL: no file of ours to be damaged
            return False
        return self.db.damaged is not None or file_problem(self.db.path) is not None

    def _reopen(self) -> None:
        if self._damaged() and isinstance(self.db, Database):
            self.db.close_connections()
            move_aside(self.db.path)
        self.db.reopen()
        if self.db.damaged is not None:  # what is there now is damaged too
            raise DamagedStore(self.db.damaged)
