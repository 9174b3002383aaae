"""Answers with every point of a huge run take turns: the places are the index store's (one
lane per store), handed out as tickets an answer gives back after its last byte."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator

import anyio

from runicorn_lite.db.errors import BigAnswersBusy
from runicorn_lite.heap import give_memory_back


class Ticket:
    """A place in BigAnswers, given back once: by ``release()``, when the ``BigAnswers.place()``
    block that took it ends without handing it over, or when the last reference to it goes (an
    answer dropped before it was sent, a client gone mid-stream). A ticket of no slots holds no
    place (an answer small enough not to wait)."""

    def __init__(self, slots: threading.BoundedSemaphore | None, owner: BigAnswers) -> None:
        self._slots = slots
        self._owner = owner
        self.handed_over = False

    def hand_over(self) -> None:
        """The answer being sent owns the place from now on and gives it back after its last byte."""
        self.handed_over = True

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            self._owner.given_back()
            slots.release()
            give_memory_back()

    def __del__(self) -> None:
        self.release()


class BigAnswers:
    """At most ``slots`` answers with every point of a huge run built and sent at once.

    Such an answer holds its columns (about 40 MB for a million steps) from the first read to
    the last byte sent. Building one is Python work under the GIL, so two at once take as long
    as one after the other; letting them overlap only adds up their memory (three V1 answers of
    one 1M-step run at once peaked at 452 MB, one at 253 MB). Small answers never wait here.
    """

    def __init__(self, slots: int = 1, wait_s: float = 120.0, points: int = 300_000,
                 event_bytes: int = 16 << 20) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self.wait_s = wait_s
        # A run is huge from this many points (V2, from the index) or bytes of events.jsonl
        # (V1, from the file): about 100,000 steps of 3 metrics.
        self.points = points
        self.event_bytes = event_bytes
        self.in_use = 0
        self.peak = 0  # the most tickets out at once (health of the lane, for tests and logs)

    def _taken(self) -> Ticket:
        with self._lock:
            self.in_use += 1
            self.peak = max(self.peak, self.in_use)
        return Ticket(self._slots, self)

    def given_back(self) -> None:
        with self._lock:
            self.in_use -= 1

    @contextlib.asynccontextmanager
    async def place(self, needed: bool = True) -> AsyncIterator[Ticket]:
        """A place for the ``async with`` block (none when not ``needed``), given back when the
        block ends, by an error or a return alike, unless it was handed over to the answer that
        sends the points (``rows_response``), which gives it back after the last byte."""
        ticket = await self.ticket() if needed else Ticket(None, self)
        try:
            yield ticket
        finally:
            if not ticket.handed_over:
                ticket.release()

    async def ticket(self) -> Ticket:
        """A place, once one is free; 503 with ``Retry-After`` when none came within
        ``wait_s``. It polls (every 50 ms; such an answer takes seconds) rather than blocking a
        worker thread: a request cancelled while it waits then never takes a place it cannot
        give back."""
        deadline = time.monotonic() + self.wait_s
        while not self._slots.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise BigAnswersBusy(
                    "other answers with every point of a huge run are being sent; retry in a few seconds"
                )
            await anyio.sleep(0.05)
        return self._taken()
