"""Secondary indexes set aside while a scan fills an index that started empty, and built once.

A cold scan of a big tree inserts every run into tables with two dozen secondary indexes (sort
orders, filters, summaries). Each batch then touches a page of every index at random places: at
a million runs the commits write hundreds of MB a second and most of the writer's time goes
there. Building an index once over the loaded table is a sort, far cheaper. So a scan that
started on an empty index and has written :data:`BULK_AFTER_RUNS` runs drops the secondary
indexes of the big tables (never a unique one: the writer's lookups and upserts use those), and
makes them again when it ends.

What was dropped is written, in the same transaction, to ``deferred_indexes``: a process killed
mid-scan leaves it there, and the next scan makes the indexes before anything else. Reads in the
meantime give the same answers, only slower (they sort what an index would have walked).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from typing import Self

from runicorn_lite.db.backend import Backend
from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.errors import StoreError

log = logging.getLogger("runicorn_lite.ingest")

# A cold scan sets the secondary indexes aside once it has written this many runs (a small
# tree keeps them: setting aside and making again costs more than it saves).
BULK_AFTER_RUNS = 2_000
# The tables whose secondary indexes are set aside.
BULK_TABLES = ("experiments", "exp_params", "metric_summaries", "experiments_fts")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TABLE = "CREATE TABLE IF NOT EXISTS deferred_indexes (name TEXT PRIMARY KEY, sql TEXT NOT NULL)"


def _secondary_indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    marks = ", ".join("?" * len(BULK_TABLES))
    if on_postgres():
        sql = (f"SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
               f" AND tablename IN ({marks}) ORDER BY indexname")
    else:
        sql = (f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
               f" AND tbl_name IN ({marks}) ORDER BY name")
    found = [(str(name), str(text)) for name, text in conn.execute(sql, BULK_TABLES).fetchall()]
    return [(name, text) for name, text in found
            if _NAME.fullmatch(name) and not text.lstrip().upper().startswith("CREATE UNIQUE")]


def set_aside(db: Backend) -> int:
    """Drop the big tables' secondary indexes, keeping their definitions; how many."""
    with db.write() as conn:
        conn.execute(_TABLE)
        indexes = _secondary_indexes(conn)
        for name, text in indexes:
            conn.execute("INSERT OR REPLACE INTO deferred_indexes (name, sql) VALUES (?, ?)", (name, text))
            conn.execute(f"DROP INDEX {name}")  # a name from the catalog, checked by _NAME
    if indexes:
        log.info("cold scan: %d secondary indexes set aside until it ends", len(indexes))
    return len(indexes)


def _pending(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    if on_postgres():
        exists = conn.execute("SELECT to_regclass('deferred_indexes') IS NOT NULL").fetchone()[0]
    else:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'deferred_indexes'").fetchone() is not None
    if not exists:
        return []
    return [(str(n), str(t)) for n, t in conn.execute("SELECT name, sql FROM deferred_indexes ORDER BY name")]


def make_again(db: Backend) -> int:
    """Make every index set aside (by this process or one that died mid-scan); how many."""
    if not db.read(_pending):
        return 0
    started = time.monotonic()
    with db.write() as conn:
        pending = _pending(conn)
        sqlite = not on_postgres()
        if sqlite:
            # SQLite sorts an index's keys within its page cache and writes the runs it sorted
            # to temporary files: in memory (this store's temp_store) that was 150 MB more at
            # 100k runs, so to files while the indexes are made.
            conn.execute("PRAGMA temp_store = FILE")
        try:
            for _name, text in pending:
                statement = text.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
                raw = getattr(conn, "raw", None)  # PostgreSQL's own text, not SQLite's to translate
                (raw if raw is not None else conn).execute(statement)
            conn.execute("DELETE FROM deferred_indexes")
        finally:
            if sqlite:
                conn.execute("PRAGMA temp_store = MEMORY")
    log.info("%d secondary indexes made in %.1f s", len(pending), time.monotonic() - started)
    return len(pending)


class ColdScan:
    """One scan's part in this, as a context manager: ``written`` after each batch; at the end
    of the ``with`` (whatever way it ends) what was set aside is made again. ``cold``: the index
    was empty when the scan began; a scan that is not cold first makes what a scan that died
    left set aside."""

    def __init__(self, db: Backend, cold: bool) -> None:
        self.db = db
        self.cold = cold
        self.aside = False
        if not cold:
            self._make_again()

    def written(self, runs: int) -> None:
        """``runs`` runs written so far by this scan."""
        if self.cold and not self.aside and runs >= BULK_AFTER_RUNS:
            self.aside = True  # whatever happens next, the exit makes what is in the table
            set_aside(self.db)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.aside:
            self.aside = False
            self._make_again()

    def _make_again(self) -> None:
        try:
            make_again(self.db)
        except (StoreError, sqlite3.Error) as exc:  # the next scan tries again
            log.error("cannot make the indexes set aside: %s", exc)
