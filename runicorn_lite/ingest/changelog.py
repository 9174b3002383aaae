"""The change feed between the processes that serve one store (``serve --workers N``, or
several servers on one PostgreSQL database).

The process that writes the index appends what each committed write changed to ``change_log``,
in the same transaction; every worker follows that table (a few indexed rows, ten times a
second) and hands what it finds to its own live event stream, and moves its index generation
on so that no total or page it keeps outlives a write made elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from runicorn_lite.db import StoreError
from runicorn_lite.db.store import IndexStore
from runicorn_lite.ingest.changes import Change

log = logging.getLogger("runicorn_lite.ingest")

# Seconds between two looks at the log.
FOLLOW_S = 0.1
# Rows are kept this long (a worker that falls further behind resets its clients).
KEEP_S = 300.0
# Rows a look reads again below the last seen (a write that committed after a later one).
OVERLAP = 64
_appended = itertools.count(1)


def log_changes(conn: sqlite3.Connection, changes: list[Change], now: float) -> None:
    """Append ``changes`` to the log (in the writer's transaction); now and then drop old rows."""
    if not changes:
        return
    payload = orjson.dumps([dataclasses.asdict(c) for c in changes])
    conn.execute("INSERT INTO change_log (at, writer, payload) VALUES (?, ?, ?)", (now, os.getpid(), payload))
    if next(_appended) % 256 == 0:
        conn.execute("DELETE FROM change_log WHERE at < ?", (now - KEEP_S,))


def publish_state(conn: sqlite3.Connection, state: dict[str, Any], now: float) -> None:
    """Keep the ingester's indexing report where the other workers read it (one row)."""
    conn.execute(
        "INSERT INTO ingest_state (id, at, payload) VALUES (1, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET at = excluded.at, payload = excluded.payload",
        (now, orjson.dumps(state)),
    )


def read_state(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The ingester's last published indexing report, or None before its first scan."""
    row = conn.execute("SELECT payload FROM ingest_state WHERE id = 1").fetchone()
    return None if row is None else dict(orjson.loads(row[0]))


class ChangeFollower:
    """Follows ``change_log`` on a reader thread and hands every new change to ``deliver``."""

    def __init__(self, store: IndexStore, deliver: Callable[[list[Change]], None], bump: Callable[[], None]) -> None:
        self.store = store
        self.deliver = deliver
        self.bump = bump
        self._last: int | None = None
        self._seen: deque[int] = deque(maxlen=4 * OVERLAP)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.look()
            except StoreError as exc:
                log.debug("change log: %s", exc)
            await asyncio.sleep(FOLLOW_S)

    async def look(self) -> int:
        """Deliver the changes logged since the last look; how many rows were new."""
        if self._last is None:
            last = await self.store.read(lambda conn: conn.execute("SELECT max(seq) FROM change_log").fetchone()[0])
            self._last = int(last or 0)
            return 0
        since = max(0, self._last - OVERLAP)
        sql = "SELECT seq, writer, payload FROM change_log WHERE seq > ? ORDER BY seq"
        rows: list[Any] = await self.store.read(lambda conn: conn.execute(sql, (since,)).fetchall())
        fresh = 0
        me = os.getpid()
        for seq, writer, payload in rows:
            if seq in self._seen:
                continue
            self._seen.append(seq)
            self._last = max(self._last, seq)
            if writer == me:  # this process's own writes reached its listeners already
                continue
            fresh += 1
            self.deliver([Change(**d) for d in orjson.loads(payload)])
        if fresh:
            self.bump()
        return fresh

