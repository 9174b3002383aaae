"""SQLite plumbing shared by the index and the primary database.

One writer connection per database (serialised by a lock, each transaction ``BEGIN IMMEDIATE``),
and reader connections of their own, one per thread, so that reads never wait for a write in WAL
mode. Low-level ``sqlite3`` errors become :class:`StoreError` (and its precise kinds: damaged,
being rebuilt, over its time budget) at one boundary (``errors.py``); opening a file and applying
migrations is ``sqlite.py``. The package's face re-exports both.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from runicorn_lite.db.errors import (
    SQLITE_MAGIC,
    BigAnswersBusy,
    DamagedStore,
    DatabaseUnavailable,
    DiskFull,
    QueryTimeout,
    StoreError,
    StoreRebuilding,
    file_problem,
    store_error,
)
from runicorn_lite.db.sqlite import Migration, connect, migrate, split_sql

__all__ = [
    "DB_THREADS",
    "READ_BUDGET_S",
    "SQLITE_MAGIC",
    "BigAnswersBusy",
    "DamagedStore",
    "Database",
    "DatabaseUnavailable",
    "DiskFull",
    "Migration",
    "QueryTimeout",
    "StoreError",
    "StoreRebuilding",
    "connect",
    "file_problem",
    "in_db_thread",
    "migrate",
    "split_sql",
    "store_error",
]

T = TypeVar("T")

log = logging.getLogger("runicorn_lite.db")


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


# Time budget of one read (every query a request makes runs inside one read).
READ_BUDGET_S = 10.0


class Database:
    """One SQLite file: a single locked writer connection and a reader connection per thread.

    A file that is not a usable database does not raise here: the object remembers why
    (:attr:`damaged`, logged once) and every read and write raises :class:`DamagedStore`, so a
    server can still say what is wrong. With ``precious`` (a store that holds what exists
    nowhere else) a missing file is created whole under a temporary name, so an empty file at
    ``path`` is never a half-made store of ours but damage, and is never overwritten.
    """

    def __init__(self, path: Path, migrations: Sequence[Migration] = (), *, precious: bool = False) -> None:
        self.path = Path(path)
        self.migrations = tuple(migrations)
        self.precious = precious
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # Bumped after every committed write: a cheap "has anything changed" for caches.
        self.generation = 0
        self._closed = False
        self.damaged: str | None = None
        # Why the last write failed when the disk is full (None once a write commits again).
        self.write_problem: str | None = None
        # Reads in progress, and the reason reads of other threads are refused meanwhile
        # (with the thread that may still read): see suspended().
        self._gate = threading.Condition()
        self._inflight = 0
        self._suspended: tuple[str, int] | None = None
        # Reader connections opened before the last reopen() are stale (another file).
        self._epoch = 0
        self._file_id: tuple[int, int] | None = None
        self._writer: sqlite3.Connection | None = None
        # Set by the owner of a store with one writer thread: True on that thread only. A
        # write from any other thread is a bug, refused loudly.
        self.writer_check: Callable[[], bool] | None = None
        self._open()

    # -- opening --------------------------------------------------------------------------

    def _open(self) -> None:
        problem = file_problem(self.path, must_be_database=self.precious)
        if problem is not None:
            self._mark_damaged(problem)
            return
        try:
            if self.precious and not self.path.exists():
                self._create_whole()
            self._writer = connect(self.path)
            migrate(self._writer, self.migrations)
            st = os.stat(self.path)
        except sqlite3.Error as exc:
            if self._writer is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._writer.close()
                self._writer = None
            error = store_error(exc, f"cannot open {self.path.name}: ")
            if isinstance(error, DamagedStore):
                self._mark_damaged(str(exc))
                return
            raise error from exc
        self._file_id = (st.st_dev, st.st_ino)

    def _create_whole(self) -> None:
        """Create the file with its schema under a temporary name, then link it into place
        (never over a file that appeared meanwhile)."""
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.new")
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        conn = connect(tmp)
        try:
            migrate(conn, self.migrations)
        finally:
            conn.close()
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)

    def _mark_damaged(self, reason: str) -> None:
        # A precious store's cause goes to the log once, not at every request; a derived one
        # is rebuilt by its owner, who says so.
        if self.damaged is None and self.precious:
            log.error("%s is damaged (%s); it is left as it is", self.path, reason)
        self.damaged = reason

    def _damage(self, exc: sqlite3.Error, what: str = "") -> StoreError:
        """The StoreError for ``exc``, remembering damage."""
        error = store_error(exc, what)
        if isinstance(error, DamagedStore):
            self._mark_damaged(str(exc))
        elif isinstance(error, DiskFull):
            self.write_problem = f"the disk holding {self.path} is full: writes fail ({exc})"
        return error

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path.name} is closed")
        if self.damaged is not None:
            raise DamagedStore(f"{self.path.name} is damaged: {self.damaged}")

    # -- writing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self, *, pipelined: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction on the one writer connection (``BEGIN IMMEDIATE`` .. ``COMMIT``).

        A damaged file found by a statement of the body raises :class:`DamagedStore`; other
        errors of the body propagate as they are (the caller knows what its data can raise).
        ``pipelined`` means something on PostgreSQL only (every statement here answers at once).
        """
        if self.writer_check is not None and not self.writer_check():
            raise RuntimeError(f"{self.path.name} is written only by its store's writer thread")
        with self._write_lock:
            self._check_usable()
            conn = self._writer
            if conn is None:  # between close_connections() and reopen()
                raise StoreRebuilding(f"{self.path.name} is being reopened")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._damage(exc, "cannot start a write: ") from exc
            try:
                yield conn
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):  # never mask the original error
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError):
                    error = store_error(exc)
                    if isinstance(error, (DamagedStore, DiskFull)):
                        raise self._damage(exc) from exc
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise self._damage(exc, "cannot commit: ") from exc
                self.generation += 1
                self.write_problem = None

    # -- reading --------------------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection (opened on first use, and again after a reopen)."""
        self._check_usable()
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "epoch", None) != self._epoch:
            self._forget_reader(conn)
            conn = None
        if conn is None:
            try:
                # mode=rw: a reader never creates the file (a deleted index must not come back
                # as an empty database that answers "no such table").
                conn = connect(self.path, uri_mode="rw")
                conn.execute("PRAGMA query_only = ON")
            except sqlite3.Error as exc:
                if not self.path.exists():
                    raise StoreRebuilding(f"{self.path.name} is missing") from exc
                raise self._damage(exc, f"cannot open {self.path.name}: ") from exc
            self._local.conn = conn
            self._local.epoch = self._epoch
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _forget_reader(self, conn: sqlite3.Connection) -> None:
        with self._readers_lock:
            if conn in self._readers:
                self._readers.remove(conn)
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        self._local.conn = None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        with self._gate:
            gate = self._suspended
            if gate is not None and gate[1] != threading.get_ident():
                raise StoreRebuilding(gate[0])
            self._inflight += 1
        try:
            yield
        finally:
            with self._gate:
                self._inflight -= 1
                if not self._inflight:
                    self._gate.notify_all()

    def read(self, fn: Callable[[sqlite3.Connection], T], budget_s: float = READ_BUDGET_S) -> T:
        """Run ``fn`` on this thread's reader inside one read transaction (a consistent snapshot).

        SQLite work past ``budget_s`` seconds is interrupted (:class:`QueryTimeout`), so no
        request can hold a database thread for long.
        """
        with self._reading():
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
        with self._reading():
            conn = self.reader()
            with self._budget(conn, budget_s):
                row: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
                return row

    @contextlib.contextmanager
    def _budget(self, conn: sqlite3.Connection, budget_s: float) -> Iterator[None]:
        """Interrupt SQLite work past ``budget_s`` and turn sqlite3 errors into store errors."""
        deadline = time.monotonic() + budget_s
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryTimeout(f"query stopped after its {budget_s:g} s budget") from exc
            raise self._damage(exc) from exc
        except sqlite3.Error as exc:
            raise self._damage(exc) from exc
        finally:
            conn.set_progress_handler(None, 0)

    # -- the file under us ----------------------------------------------------------------

    def analyze(self) -> None:
        """Refresh the planner's statistics (the store's writer, after the index grew)."""
        with self.write() as conn:
            conn.execute("ANALYZE")

    def ping(self) -> str | None:
        """Why the store cannot be read now, or None (a file: nothing to reach)."""
        return self.damaged

    def file_changed(self) -> str | None:
        """Why the file at ``path`` is no longer the one our connections use (deleted, or
        replaced by another file), or None when it still is. One stat."""
        if self._file_id is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "was deleted"
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        if (st.st_dev, st.st_ino) != self._file_id:
            return "was replaced by another file"
        return None

    @contextlib.contextmanager
    def suspended(self, reason: str, wait_s: float = READ_BUDGET_S + 1) -> Iterator[None]:
        """Refuse reads of other threads (:class:`StoreRebuilding` with ``reason``) while the
        body runs; the calling thread reads and writes as usual. Reads in progress are waited
        for (they end within their budget), so the body may close every connection."""
        with self._gate:
            self._suspended = (reason, threading.get_ident())
            deadline = time.monotonic() + wait_s
            while self._inflight and time.monotonic() < deadline:
                self._gate.wait(0.05)
        try:
            yield
        finally:
            with self._gate:
                self._suspended = None

    def reopen(self) -> None:
        """Close every connection and open the file at ``path`` again (a new, empty database
        when it is gone). For a derived store only: side files left are dropped. Call inside
        :meth:`suspended`: no reader of another thread may be
        in use, since SQLite closing the last connection of the old file removes the ``-wal``
        and ``-shm`` files by name, which would be the new file's."""
        with self._write_lock:
            self._close_connections()
            self._epoch += 1
            self.damaged = None
            self._file_id = None
            # Side files left now belong to the file we had open (deleted or replaced), not to
            # what is at ``path``: SQLite would replay that old WAL into it (seen).
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._open()
            self.generation += 1

    def close_connections(self) -> None:
        """Close every connection but keep the object usable: the next use opens them again
        (after :meth:`reopen`). Call inside :meth:`suspended`."""
        with self._write_lock:
            self._close_connections()
            self._epoch += 1

    def _close_connections(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._readers.clear()
        if self._writer is not None:
            with contextlib.suppress(sqlite3.Error):
                self._writer.close()
            self._writer = None

    def close(self) -> None:
        """Close every connection (readers of other threads included)."""
        self._closed = True
        with self._write_lock:
            self._close_connections()
        self._local = threading.local()

