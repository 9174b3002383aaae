"""Opening a SQLite file with the pragmas every connection of ours wants, and applying named
migrations, each once, in its own transaction, recorded in ``_migrations``."""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Migration:
    """One named schema step, applied once, in its own transaction, and recorded."""

    name: str
    sql: str


def connect(path: Path, *, readonly: bool = False, uri_mode: str | None = None) -> sqlite3.Connection:
    """Open a connection with the pragmas every connection of ours wants (``uri_mode`` "rw":
    never create the file)."""
    mode = "ro" if readonly else uri_mode
    if mode is not None:
        conn = sqlite3.connect(
            f"file:{urllib.parse.quote(str(path))}?mode={mode}", uri=True, check_same_thread=False,
            isolation_level=None,
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
            # Another process (a second worker starting at the same moment) may have applied
            # it between our read and our lock: the lock is the only place to decide.
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (migration.name,)).fetchone():
                conn.execute("COMMIT")
                continue
            for statement in split_sql(migration.sql):
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


def split_sql(script: str) -> list[str]:
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
