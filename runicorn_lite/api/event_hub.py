"""The one broadcast behind ``/api/v2/events``: index changes in, numbered Server-Sent Events out.

The indexer reports every committed write on its own thread; the hub only hands the changes to
the event loop there. On the loop, one task turns them into events: the rows of changed runs are
read once per change, in batches, on a database thread (never once per client), each event is
encoded once, numbered, kept in a bounded ring for ``Last-Event-ID`` resumption, and appended to
the bounded queue of every client that wants it. A client too slow to keep up has its queue
replaced by one ``reset`` (refetch what you show); memory never grows with a stalled client, and
no client waits for another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from runicorn_lite.db import StoreError
from runicorn_lite.db.store import IndexStore
from runicorn_lite.ingest.changes import Change, Points, merge_points
from runicorn_lite.queries.experiments import EXPERIMENT_COLUMNS, experiment_json

log = logging.getLogger("runicorn_lite.events")

# Events kept for clients that reconnect (with Last-Event-ID).
RING_EVENTS = 2048
# Events waiting for one client; past that its queue is replaced by a reset.
CLIENT_QUEUE = 256
# A burst of more changes than this (a cold scan, an index rebuild) is sent as one reset: every
# client would be reset by its queue limit anyway, and refetching once is cheaper than reading
# and sending thousands of rows.
BULK_CHANGES = 1000
# Rows read per statement when building experiment events.
ROW_BATCH = 500
KEEPALIVE = b": keep-alive\n\n"


@dataclass(frozen=True)
class Event:
    """One numbered event, encoded once for every client (``exp_id`` None: for all of them;
    ``project``: the run's, which a key of one project must hold to get it)."""

    seq: int
    exp_id: str | None
    wire: bytes
    project: str | None = None


@dataclass
class _Pending:
    """A change of one run waiting to be turned into an event (merged with later ones)."""

    kind: str
    exp_id: str
    pk: int
    metrics: set[str] = field(default_factory=set)
    last_step: int | None = None
    total_points: int = 0
    points: Points | None = None


class Subscriber:
    """One client of the stream: its filters (one run, one project) and its bounded queue of
    encoded events."""

    def __init__(self, exp_id: str | None, limit: int, project: str | None = None) -> None:
        self.exp_id = exp_id
        self.project = project
        self.limit = limit
        self.closed = False
        self.resets = 0  # times its queue overflowed
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()

    def wants(self, event: Event) -> bool:
        if event.exp_id is None:
            return True  # a reset: for everyone
        if self.project is not None and event.project != self.project:
            return False
        return self.exp_id is None or event.exp_id == self.exp_id

    def queued(self) -> int:
        return len(self._queue)

    def full(self) -> bool:
        return len(self._queue) >= self.limit

    def push(self, wire: bytes, reset: bytes) -> None:
        if len(self._queue) >= self.limit:
            self._queue.clear()
            self._queue.append(reset)
            self.resets += 1
        else:
            self._queue.append(wire)
        self._wake.set()

    def end(self) -> None:
        self.closed = True
        self._wake.set()

    async def next(self, keepalive: float) -> bytes | None:
        """The queued events as one piece, a keep-alive comment after ``keepalive`` seconds of
        quiet, or None once the hub has closed and the queue is sent."""
        if not self._queue and not self.closed:
            try:
                async with asyncio.timeout(keepalive):
                    await self._wake.wait()
            except TimeoutError:
                return KEEPALIVE
        self._wake.clear()
        if not self._queue:
            return None
        out = b"".join(self._queue)
        self._queue.clear()
        return out


def _wire(event_id: str, kind: str, data: bytes) -> bytes:
    return b"id: " + event_id.encode() + b"\nevent: " + kind.encode() + b"\ndata: " + data + b"\n\n"


class EventHub:
    """Index changes → numbered events → every subscribed client (see the module docstring).

    ``on_changes`` is the indexer's listener (any thread); everything else runs on the event
    loop, which the hub learns from :meth:`attach` or from its first subscriber.
    """

    def __init__(
        self,
        store: IndexStore,
        root: Path,
        *,
        keepalive: float = 15.0,
        ring: int = RING_EVENTS,
        client_queue: int = CLIENT_QUEUE,
    ) -> None:
        self.store = store
        self.root = root
        self.keepalive = keepalive
        self.client_queue = client_queue
        # Ids carry the hub's start so that an id of an earlier server process is never taken
        # for one of ours.
        self.boot = secrets.token_hex(4)
        self._seq = 0
        self._ring: deque[Event] = deque(maxlen=ring)
        self._subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[Change] = []
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        # The project of each run an event was built for: a removal (its row is gone) goes to
        # the keys of that project only. One short string per run that changed while serving.
        self._projects: dict[str, str] = {}

    # -- the writer's side ----------------------------------------------------------------

    def on_changes(self, changes: list[Change]) -> None:
        """The indexer's listener: hand the changes to the loop, nothing more (writer thread)."""
        loop = self._loop
        if loop is None or self._closed:
            return  # nobody has ever listened: there is nothing to resume either
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server is stopping
            loop.call_soon_threadsafe(self._accept, list(changes))

    # -- the loop's side ------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver events on ``loop`` from now on."""
        if self._loop is None:
            self._loop = loop

    @property
    def last_id(self) -> str:
        return f"{self.boot}-{self._seq}"

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(
        self, exp_id: str | None, last_event_id: str | None, project: str | None = None
    ) -> tuple[Subscriber, bytes]:
        """A new client (of one run when ``exp_id``, of one project's runs when ``project``) and
        what it must be sent first: the events it missed since ``last_event_id``, or a reset
        when they are no longer held."""
        self.attach(asyncio.get_running_loop())
        subscriber = Subscriber(exp_id, self.client_queue, project)
        first = b"" if last_event_id is None else self._missed(subscriber, last_event_id)
        if self._closed:
            subscriber.end()
        else:
            self._subscribers.add(subscriber)
        return subscriber, first

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every stream (at shutdown: the server waits for open responses)."""
        self._closed = True
        for subscriber in self._subscribers:
            subscriber.end()
        if self._pump is not None:
            self._pump.cancel()

    def _missed(self, subscriber: Subscriber, last_event_id: str) -> bytes:
        boot, sep, seq_text = last_event_id.strip().rpartition("-")
        if not (sep and boot == self.boot and seq_text.isascii() and seq_text.isdigit() and len(seq_text) < 19):
            return self._reset_wire("Last-Event-ID is not an event of this server")
        seq = int(seq_text)
        oldest = self._ring[0].seq if self._ring else self._seq + 1
        if seq > self._seq:
            return self._reset_wire("Last-Event-ID is not an event of this server")
        if seq < oldest - 1:
            return self._reset_wire(f"events after {last_event_id.strip()} are no longer held")
        return b"".join(e.wire for e in self._ring if e.seq > seq and subscriber.wants(e))

    def _reset_wire(self, reason: str) -> bytes:
        """A reset for one client: it carries the newest id, so a reconnect resumes from here."""
        return _wire(self.last_id, "reset", orjson.dumps({"reason": reason}))

    def _accept(self, changes: list[Change]) -> None:
        if self._closed:
            return
        self._pending.extend(changes)
        if self._pump is None:
            assert self._loop is not None
            self._pump = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending and not self._closed:
                batch, self._pending = self._pending, []
                merged = merge(batch)
                if len(merged) > BULK_CHANGES:
                    self._publish(None, "reset", orjson.dumps({"reason": f"{len(merged)} runs changed at once"}))
                    continue
                try:
                    built = await self.store.call(self._build, merged)
                except StoreError as exc:
                    log.warning("live events: cannot read changed runs (%s); clients are reset", exc)
                    self._publish(None, "reset", orjson.dumps({"reason": "the index could not be read"}))
                    continue
                for exp_id, kind, data, project in built:
                    self._publish(exp_id, kind, data, project)
        finally:
            self._pump = None

    def _publish(self, exp_id: str | None, kind: str, data: bytes, project: str | None = None) -> None:
        self._seq += 1
        event = Event(self._seq, exp_id, _wire(self.last_id, kind, data), project)
        self._ring.append(event)
        reset = b""
        for subscriber in self._subscribers:
            if subscriber.wants(event):
                if not reset and subscriber.full():
                    reset = self._reset_wire("the client fell behind; events were dropped")
                subscriber.push(event.wire, reset)

    def _build(self, merged: list[_Pending]) -> list[tuple[str, str, bytes, str | None]]:
        """The events of merged changes (a database thread): one read for every changed row."""
        pks = [p.pk for p in merged if p.kind in ("experiment", "metrics")]

        def read(conn: sqlite3.Connection) -> dict[int, tuple[Any, ...]]:
            rows: dict[int, tuple[Any, ...]] = {}
            for start in range(0, len(pks), ROW_BATCH):
                part = pks[start : start + ROW_BATCH]
                for row in conn.execute(
                    f"SELECT pk, project, {EXPERIMENT_COLUMNS} FROM experiments"
                    f" WHERE pk IN ({','.join('?' * len(part))})",
                    part,
                ):
                    rows[row[0]] = row[1:]
            return rows

        rows = self.store.db.read(read) if pks else {}
        out: list[tuple[str, str, bytes, str | None]] = []
        for p in merged:
            if p.kind == "removed":
                out.append((p.exp_id, "removed", orjson.dumps({"id": p.exp_id}), self._projects.pop(p.exp_id, None)))
                continue
            found = rows.get(p.pk)
            if found is None:
                continue  # gone again since: its removal is on the way
            project, row = found[0], found[1:]
            self._projects[p.exp_id] = project
            if p.kind == "experiment":
                experiment = orjson.dumps(experiment_json(row, self.root, row[1] is not None))
                out.append((p.exp_id, "experiment", experiment, project))
            else:
                data = {"id": p.exp_id, "metrics": sorted(p.metrics), "last_step": p.last_step,
                        "total_points": p.total_points, "points": p.points, "refetch": p.points is None}
                out.append((p.exp_id, "metrics", orjson.dumps(data), project))
        return out


def merge(changes: Iterable[Change]) -> list[_Pending]:
    """Changes of one batch, one per (kind, run), in order: a run's row is read once however
    often it changed, its appended metrics are one event; a removal drops what came before it
    of that run, and what comes after a removal (the run came back) stays after it."""
    out: OrderedDict[tuple[str, str], _Pending] = OrderedDict()
    for c in changes:
        key = (c.kind, c.id)
        if c.kind == "removed":
            out.pop(("experiment", c.id), None)
            out.pop(("metrics", c.id), None)
            out.pop(key, None)
            out[key] = _Pending("removed", c.id, c.pk)
            continue
        if c.kind not in ("experiment", "metrics"):
            continue
        pending = out.get(key)
        if pending is None:
            pending = out[key] = _Pending(c.kind, c.id, c.pk, points=c.points)
        elif c.kind == "metrics":
            pending.points = merge_points(pending.points, c.points)
        pending.pk = c.pk
        if c.kind == "metrics":
            pending.metrics.update(c.metrics)
            if c.last_step is not None:
                pending.last_step = c.last_step if pending.last_step is None else max(pending.last_step, c.last_step)
            pending.total_points = c.total_points
    return list(out.values())
