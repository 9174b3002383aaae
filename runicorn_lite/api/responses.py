"""The answers V1 and V2 share (JSON rendered by orjson: NaN and infinities come out as null)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

from runicorn_lite.api.errors import ApiError
from runicorn_lite.heap import give_memory_back
from runicorn_lite.http.responses import JSONResponse, dumps
from runicorn_lite.queries.steptable import StepTable

if TYPE_CHECKING:
    from runicorn_lite.api.context import Outcome

__all__ = [
    "BigAnswers", "JSONResponse", "Ticket", "batch_answer", "dumps", "orjson_loads", "rows_response",
]


def orjson_loads(text: str | bytes | None) -> Any:
    """A JSON document stored as text in the index (None stays None)."""
    return None if text is None else orjson.loads(text)


def batch_answer(verb: str, outcomes: dict[str, Outcome], *, delete_shape: bool = False) -> JSONResponse:
    """``{verb: n, "failed": m, "results": {id: bool}, "errors": {id: reason}}``, the answer of
    every V2 batch endpoint (``errors`` names only the ids that failed).

    ``delete_shape`` adds ``deleted`` (the same count): V2's batch-restore answers in the
    batch-delete shape, so clients written for that shape read it.
    """
    results = {exp_id: o.ok for exp_id, o in outcomes.items()}
    errors = {exp_id: o.error or "failed" for exp_id, o in outcomes.items() if not o.ok}
    ok = sum(results.values())
    body: dict[str, Any] = {verb: ok, "failed": len(results) - ok, "results": results, "errors": errors}
    if delete_shape:
        body["deleted"] = ok
    return JSONResponse(body)


# Answers of more rows than this stream out a batch at a time; smaller ones go in one piece
# (with a Content-Length).
STREAM_ROWS = 20_000


class Ticket:
    """A place in BigAnswers, given back once: by ``release()``, or when the last reference to
    it goes (an answer dropped before it was sent, a client gone mid-stream)."""

    def __init__(self, slots: threading.BoundedSemaphore, owner: BigAnswers) -> None:
        self._slots: threading.BoundedSemaphore | None = slots
        self._owner = owner

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

    async def ticket(self) -> Ticket:
        """A place, once one is free; 503 with ``Retry-After`` when none came within
        ``wait_s``. It polls (every 50 ms; such an answer takes seconds) rather than blocking a
        worker thread: a request cancelled while it waits then never takes a place it cannot
        give back."""
        deadline = time.monotonic() + self.wait_s
        while not self._slots.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise ApiError(
                    503,
                    "Busy: other answers with every point of a huge run are being sent; retry in a few seconds",
                    headers={"Retry-After": "5"},
                )
            await anyio.sleep(0.05)
        return self._taken()



def rows_response(head: bytes, table: StepTable, picks: list[int] | None, tail: bytes,
                  headers: dict[str, str] | None = None, ticket: Ticket | None = None) -> Response:
    """``head`` + the table's rows (JSON objects, comma-separated) + ``tail``: the body of an
    answer with every point of a run, in bounded memory however many rows it has. ``ticket``
    is given back once the last byte is out (or the answer is dropped)."""
    rows = len(table) if picks is None else len(picks)
    if rows <= STREAM_ROWS:
        body = head + b"".join(table.json_rows(picks)) + tail
        if ticket is not None:
            ticket.release()
        return Response(body, media_type="application/json", headers=headers)

    def pieces() -> Iterator[bytes]:
        try:
            yield head
            yield from table.json_rows(picks)
            yield tail
        finally:
            if ticket is not None:
                ticket.release()

    return StreamingResponse(iterate_in_threadpool(pieces()), media_type="application/json", headers=headers)
