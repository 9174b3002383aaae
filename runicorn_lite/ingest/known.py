"""What the indexer remembers of each run directory between reads, and reading it back from the
index (at start, after a reattach, and before each write when several workers share the store)."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.where import placeholders

_COLUMNS = "run_dir, pk, id, files_sig, events_ino, events_offset, events_last_step, status, pid, hostname"


@dataclass(slots=True)
class Known:
    """What the indexer remembers of a run directory between reads: its row, or (``pk`` None,
    made by :meth:`seen`) a run seen but not in the index. One per run directory, all in
    memory: slots and shared strings keep it small (68 MB -> 51 MB for 100k runs, tracemalloc)."""

    pk: int | None
    id: str
    files_sig: str
    events_ino: int | None
    events_offset: int
    events_last_step: int | None
    status: str
    pid: int | None
    hostname: str | None

    @classmethod
    def seen(cls, run_id: str, files_sig: str = "", events_ino: int | None = None, events_size: int = 0) -> Known:
        """A run seen but not indexed; an empty signature has it read again at the next scan."""
        return cls(None, run_id, files_sig, events_ino, events_size, None, "", None, None)

    def __post_init__(self) -> None:
        # A few distinct values across every run: one string each, not one per run.
        self.status = sys.intern(self.status)
        if self.hostname is not None:
            self.hostname = sys.intern(self.hostname)

    @property
    def indexed(self) -> bool:
        return self.pk is not None


def load_known(conn: sqlite3.Connection, rels: Sequence[str] | None = None) -> dict[str, Known]:
    """run directory → Known, of every indexed run or of those at ``rels``."""
    if rels is None:
        return {row[0]: Known(*row[1:]) for row in conn.execute(f"SELECT {_COLUMNS} FROM experiments")}
    found: dict[str, Known] = {}
    for start in range(0, len(rels), 500):
        part = rels[start : start + 500]
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM experiments WHERE run_dir IN ({placeholders(len(part))})", part
        ):
            found[row[0]] = Known(*row[1:])
    return found


def analyzed_rows(conn: sqlite3.Connection) -> int | None:
    """How many runs SQLite's planner statistics were taken at; None when there are none (or an
    index added since has none, or on PostgreSQL, which keeps statistics of its own)."""
    if on_postgres():  # statistics of its own (autovacuum); one ANALYZE at the first scan
        return None
    try:
        row = conn.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'experiments' LIMIT 1").fetchone()
        # An index a migration added since the last ANALYZE has no statistics yet.
        unknown = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'experiments'"
            " AND name NOT IN (SELECT idx FROM sqlite_stat1 WHERE tbl = 'experiments')"
        ).fetchone()[0]
    except sqlite3.OperationalError:  # never analyzed: no sqlite_stat1 table yet
        return None
    return int(row[0].split()[0]) if row and not unknown else None
