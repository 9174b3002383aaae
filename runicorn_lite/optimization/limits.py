"""The optimization API's rate limits, counted in the primary store.

The windows are those of :mod:`runicorn_lite.http.ratelimit` (fixed, aligned on the wall clock,
a rejected request does not count), but the counters live in the primary store rather than in
one process's memory, so that every server over that store shares them: on a team server with
several workers a per-project limit of 10 a minute is 10 in total, not 10 per worker. A hit is
one statement (an upsert that counts only while the window has room and says what it counted);
a peek is one primary-key read. On PostgreSQL the table is ``UNLOGGED``: counters of a minute
need no crash safety, and a hit then writes no WAL.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from runicorn_lite.db.backend import Backend
from runicorn_lite.http.ratelimit import WINDOW_S, Decision, window_start

# Counts one hit while the window has room: a new (bucket, subject) or a new window starts at
# 1; in the same window ``used`` grows only below the limit. No row comes back when it is full.
_HIT = (
    "INSERT INTO optimization_rate_limits AS r (bucket, subject, window_start, used) VALUES (?, ?, ?, 1)"
    " ON CONFLICT (bucket, subject) DO UPDATE SET"
    " used = CASE WHEN r.window_start = excluded.window_start THEN r.used + 1 ELSE 1 END,"
    " window_start = excluded.window_start"
    " WHERE r.window_start <> excluded.window_start OR r.used < ?"
    " RETURNING used"
)


class StoreLimiter:
    """Fixed-window counters per (bucket, subject) in the primary store; the surface of
    :class:`~runicorn_lite.http.ratelimit.FixedWindowLimiter`."""

    def __init__(self, db: Backend, window_s: int = WINDOW_S, clock: Callable[[], float] | None = None) -> None:
        self.db = db
        self.window_s = window_s
        self._clock = clock or time.time
        # The window whose stale rows this process has deleted (subjects gone quiet, such as
        # addresses that once sent a bad key): once per window, so the table stays small.
        self._swept = -1

    def _window(self, now: float) -> int:
        return window_start(now, self.window_s)

    def _decision(self, allowed: bool, limit: int, used: int, start: int, now: float) -> Decision:
        return Decision.of(allowed, limit, used, start, self.window_s, now)

    def hit(self, bucket: str, subject: str, limit: int) -> Decision:
        """Count one request if it fits in the window, and say whether it did."""
        now = self._clock()
        start = self._window(now)
        if limit <= 0:
            return self._decision(False, limit, 0, start, now)
        with self.db.write() as conn:
            if start != self._swept:
                conn.execute("DELETE FROM optimization_rate_limits WHERE window_start < ?", (start,))
                self._swept = start
            row = conn.execute(_HIT, (bucket, subject, start, limit)).fetchone()
        if row is None:  # full: nothing counted
            return self._decision(False, limit, limit, start, now)
        return self._decision(True, limit, int(row[0]), start, now)

    def peek(self, bucket: str, subject: str, limit: int) -> Decision:
        """The state of a counter without counting (is this subject already over its limit?)."""
        now = self._clock()
        start = self._window(now)
        row = self.db.read_one(
            "SELECT used FROM optimization_rate_limits WHERE bucket = ? AND subject = ? AND window_start = ?",
            (bucket, subject, start),
        )
        used = int(row[0]) if row is not None else 0
        return self._decision(used < limit, limit, used, start, now)
