"""Fixed-window rate limits, in memory, one counter per (bucket, subject).

Windows are aligned to multiples of the window length on the wall clock, so every counter of a
window resets at the same instant and ``X-RateLimit-Reset`` is the same for all of them.
A rejected request does not count (a client hammering a full window does not extend its ban).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from runicorn_lite.timeutil import format_iso

WINDOW_S = 60


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # unix seconds, end of the current window
    retry_after: int  # whole seconds until the window resets (>= 1)

    @classmethod
    def of(cls, allowed: bool, limit: int, used: int, start: float, window_s: int, now: float) -> Decision:
        """The answer for a counter at ``used`` in the window that began at ``start``."""
        reset_at = start + window_s
        return cls(
            allowed=allowed,
            limit=limit,
            remaining=max(0, limit - used),
            reset_at=reset_at,
            retry_after=max(1, math.ceil(reset_at - now)),
        )

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": format_iso(datetime.fromtimestamp(self.reset_at, UTC)),
        }


def window_start(now: float, window_s: int) -> int:
    """The start of the fixed window that holds ``now`` (aligned on the wall clock)."""
    return math.floor(now / window_s) * window_s


class Limiter(Protocol):
    """What counts hits: this module's limiter (one process's memory), or the primary store's
    counters (``optimization.limits.StoreLimiter``), which every worker and every server over
    that store share."""

    def hit(self, bucket: str, subject: str, limit: int) -> Decision: ...

    def peek(self, bucket: str, subject: str, limit: int) -> Decision: ...


class FixedWindowLimiter:
    """Counts hits per key within the current window; thread-safe."""

    def __init__(self, window_s: int = WINDOW_S, clock: Callable[[], float] | None = None) -> None:
        self.window_s = window_s
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._counts: dict[tuple[str, str], int] = {}

    def _roll(self, now: float) -> float:
        start = window_start(now, self.window_s)
        if start != self._window_start:
            # A new window: every counter starts over, so old subjects cost no memory.
            self._window_start = start
            self._counts = {}
        return start

    def hit(self, bucket: str, subject: str, limit: int) -> Decision:
        """Count one request if it fits in the window, and say whether it did."""
        now = self._clock()
        with self._lock:
            start = self._roll(now)
            key = (bucket, subject)
            used = self._counts.get(key, 0)
            allowed = used < limit
            if allowed:
                used += 1
                self._counts[key] = used
        return Decision.of(allowed, limit, used, start, self.window_s, now)

    def peek(self, bucket: str, subject: str, limit: int) -> Decision:
        """The state of a counter without counting (is this subject already over its limit?)."""
        now = self._clock()
        with self._lock:
            start = self._roll(now)
            used = self._counts.get((bucket, subject), 0)
        return Decision.of(used < limit, limit, used, start, self.window_s, now)
