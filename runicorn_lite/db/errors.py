"""The store's own exceptions, and the one place a low-level ``sqlite3`` error becomes one of them."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class StoreError(Exception):
    """The store could not answer (locked too long, disk full, corrupt file...)."""


class QueryTimeout(StoreError):
    """A read ran past its time budget and was interrupted."""


class BigAnswersBusy(StoreError):
    """No place came free for an answer with every point of a huge run within its wait."""


class DamagedStore(StoreError):
    """The file is not a usable SQLite database: corrupt pages, a truncated or foreign file, an
    empty file where a database must be, a directory in its place. Retrying cannot help."""


class DatabaseUnavailable(StoreError):
    """The database server cannot be reached (PostgreSQL down, restarting, the network cut);
    it answers again by itself once it is back."""


class DiskFull(StoreError):
    """The disk holding the file is full (SQLite's SQLITE_FULL): writes fail until it has room."""


class StoreRebuilding(StoreError):
    """The file is being reopened or rebuilt (it was deleted, replaced or damaged); it answers
    again within seconds."""


# The first 16 bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def store_error(exc: sqlite3.Error, what: str = "") -> StoreError:
    """The project's exception for a low-level sqlite3 error (``what`` prefixes the message)."""
    code = getattr(exc, "sqlite_errorcode", None)
    message = f"{what}{exc}"
    if code is not None and code & 0xFF in _DAMAGE_CODES:
        return DamagedStore(message)
    if (code is not None and code & 0xFF == sqlite3.SQLITE_FULL) or "disk is full" in str(exc):
        return DiskFull(message)
    if "interrupted" in str(exc):
        return QueryTimeout(message)
    return StoreError(message)


def file_problem(path: Path, *, must_be_database: bool = False) -> str | None:
    """Why the file at ``path`` cannot be a database of ours, or None when it may be.

    Only what is seen without opening it: a directory, or a file that does not start like a
    SQLite database. An empty file is a new database to SQLite; with ``must_be_database`` (a
    store that holds what exists nowhere else) it is damage, not a fresh start.
    """
    try:
        if path.is_dir():
            return "a directory is in its place"
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not head:
        return "it is empty (0 bytes)" if must_be_database else None
    if head != SQLITE_MAGIC:
        return "it is not a SQLite database"
    return None
