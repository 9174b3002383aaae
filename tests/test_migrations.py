"""SQLite migrations when two processes open one new file at the same moment (two workers)."""

from __future__ import annotations

from pathlib import Path

from runicorn_lite.db import connect, migrate, split_sql
from runicorn_lite.db.schema import INDEX_MIGRATIONS


def test_a_migration_applied_by_another_connection_meanwhile_is_not_applied_twice(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    late, early = connect(path), connect(path)
    first = INDEX_MIGRATIONS[0]

    def early_worker_applies_the_first(statement: str) -> None:
        # Runs as the late connection starts its first BEGIN IMMEDIATE: it has already read
        # "nothing applied"; the early worker applies the first migration just then.
        if statement == "BEGIN IMMEDIATE" and not early.in_transaction:
            late.set_trace_callback(None)
            early.execute("BEGIN IMMEDIATE")
            for sql in split_sql(first.sql):
                early.execute(sql)
            early.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, 0)", (first.name,))
            early.execute("COMMIT")

    late.set_trace_callback(early_worker_applies_the_first)
    applied = migrate(late, INDEX_MIGRATIONS)
    assert applied == [m.name for m in INDEX_MIGRATIONS[1:]]
    names = [row[0] for row in early.execute("SELECT name FROM _migrations")]
    assert sorted(names) == sorted(m.name for m in INDEX_MIGRATIONS)
