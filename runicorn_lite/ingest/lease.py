"""Which worker ingests: the one that holds the ingest lease of the store.

Several worker processes serve one store (``serve --workers N``); exactly one of them watches
the run directories and writes the index. The lease is a lock that the operating system or the
database gives back when its holder dies, however it dies: on SQLite an ``flock`` on a file
beside the index, on PostgreSQL a session advisory lock. The other workers try again every
second, so one of them takes over within a few seconds of a holder's death, and its first scan
finds whatever changed meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from runicorn_lite.settings import Settings

log = logging.getLogger("runicorn_lite.ingest")

LEASE_FILENAME = "ingest.lock"


class IngestLease:
    """The ingest lease of one store, held or not by this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._fd: int | None = None
        self._conn: Any = None

    @property
    def held(self) -> bool:
        return self._fd is not None or self._conn is not None

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this process holds it now."""
        if self.held:
            return self.alive()
        url = self.settings.postgres_url
        if url is None:
            return self._flock()
        return self._advisory(url)

    def alive(self) -> bool:
        """Whether a held lease still stands (a PostgreSQL session can be lost with its server)."""
        if self._conn is None:
            return self._fd is not None
        try:
            self._conn.execute("SELECT 1")
        except Exception:  # noqa: BLE001 - any failure: the session and its lock are gone
            self.release()
            return False
        return True

    def _flock(self) -> bool:
        path = Path(self.settings.store_dir) / LEASE_FILENAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"runicorn-lite ingester (pid {os.getpid()})\n".encode(), 0)
        return True

    def _advisory(self, url: str) -> bool:
        import psycopg

        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            log.debug("ingest lease: cannot connect (%s)", exc)
            return False
        row = conn.execute(
            "SELECT pg_try_advisory_lock(hashtext(current_schema() || '/runicorn-lite/ingest'))"
        ).fetchone()
        if not row or not row[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()  # the session's end releases the advisory lock
            self._conn = None
