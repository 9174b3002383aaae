"""SQLite plumbing shared by the index and the primary database.

One writer connection per database (serialised by a lock, each transaction ``BEGIN IMMEDIATE``),
and reader connections of their own, one per thread, so that reads never wait for a write in WAL
mode. Low-level ``sqlite3`` errors become :class:`StoreError` here, at one boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


# Blocking SQLite work of requests runs on this small pool, not on Starlette's 40-thread one:
# every SQLite call takes the GIL, and 40 threads fighting for it on 2 cores cut the
# optimization API's throughput by 2-4x and let memory grow to a reader connection (and its
# page cache) per thread (measured under 64 concurrent clients).
DB_THREADS = 4
_db_threads = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="runicorn-lite-db")


async def in_db_thread(fn: Callable[..., T], *args: object) -> T:
    """Run blocking database work on the database threads and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_db_threads, functools.partial(fn, *args))


class StoreError(Exception):
    """The store could not answer (locked too long, disk full, corrupt file...)."""


class QueryTimeout(StoreError):
    """A read ran past its time budget and was interrupted."""


# Time budget of one read (every query a request makes runs inside one read).
READ_BUDGET_S = 10.0


@dataclass(frozen=True)
class Migration:
    """One named schema step, applied once, in its own transaction, and recorded."""

    name: str
    sql: str


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a connection with the pragmas every connection of ours wants."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    if not readonly:
        # Takes effect only when the file is new. Larger pages suit the packed metric chunks
        # (about 1.6 KB a row): half the write cost of the default 4 KB pages, measured.
        conn.execute("PRAGMA page_size = 16384")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -16000")
    return conn


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply the migrations not yet recorded in ``_migrations``; return the names applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for migration in migrations:
        if migration.name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (migration.name, time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(migration.name)
    return applied


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (complete_statement knows about triggers)."""
    statements, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements


class Database:
    """One SQLite file: a single locked writer connection and a reader connection per thread."""

    def __init__(self, path: Path, migrations: Sequence[Migration] = ()) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # Bumped after every committed write: a cheap "has anything changed" for caches.
        self.generation = 0
        self._closed = False
        try:
            self._writer = connect(self.path)
            migrate(self._writer, migrations)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path.name}: {exc}") from exc

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on the one writer connection (``BEGIN IMMEDIATE`` .. ``COMMIT``)."""
        with self._write_lock:
            if self._closed:
                raise StoreError(f"{self.path.name} is closed")
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot start a write: {exc}") from exc
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # never mask the original error
                    conn.execute("ROLLBACK")
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    conn.execute("ROLLBACK")
                    raise StoreError(f"cannot commit: {exc}") from exc
                self.generation += 1

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection (opened on first use)."""
        if self._closed:
            raise StoreError(f"{self.path.name} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = connect(self.path)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open {self.path.name}: {exc}") from exc
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def read(self, fn: Callable[[sqlite3.Connection], T], budget_s: float = READ_BUDGET_S) -> T:
        """Run ``fn`` on this thread's reader inside one read transaction (a consistent snapshot).

        SQLite work past ``budget_s`` seconds is interrupted (:class:`QueryTimeout`), so no
        request can hold a database thread for long.
        """
        conn = self.reader()
        with self._budget(conn, budget_s):
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")

    def read_one(
        self, sql: str, params: Sequence[object] = (), budget_s: float = READ_BUDGET_S
    ) -> tuple[Any, ...] | None:
        """The first row of one read statement, under the same budget as :meth:`read` but without
        an explicit transaction (a single statement reads one snapshot anyway; BEGIN/COMMIT around
        it were a measurable share of a cheap request)."""
        conn = self.reader()
        with self._budget(conn, budget_s):
            row: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
            return row

    @staticmethod
    @contextlib.contextmanager
    def _budget(conn: sqlite3.Connection, budget_s: float) -> Iterator[None]:
        """Interrupt SQLite work past ``budget_s`` and turn sqlite3 errors into store errors."""
        deadline = time.monotonic() + budget_s
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryTimeout(f"query stopped after its {budget_s:g} s budget") from exc
            raise StoreError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        finally:
            conn.set_progress_handler(None, 0)

    def close(self) -> None:
        """Close every connection (readers of other threads included)."""
        self._closed = True
        with self._readers_lock:
            for conn in self._readers:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._readers.clear()
        self._local = threading.local()
        with self._write_lock, contextlib.suppress(sqlite3.Error):
            self._writer.close()
