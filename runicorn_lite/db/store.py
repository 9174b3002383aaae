"""The index as one service with one owner: :class:`IndexStore`.

Every write to the index is a job run by the store's one writer thread; every read of a request
runs on the store's reader threads, each with a connection of its own; the change feed (what a
committed write changed) goes from the writer to whoever subscribed; the big-answer tickets
(``big_answers``: answers with every point of a huge run take turns) are handed out by it. Request handlers await
reads and writes and never wait on an ingest batch or an fsync themselves.

The threads of a server, what each owns, and the lock order
-------------------------------------------------------------

- **the event loop** (uvicorn): every request handler and the live event hub. Never blocks on
  the database: it awaits :meth:`IndexStore.read`, :meth:`IndexStore.write` and the primary
  store's pool.
- **the writer** (``runicorn-lite-writer``, one per store): the index's only write connection
  and every index write — scans, refreshes of paths (from file events and after an API write),
  rebuilds, the pid check of live runs. It owns the indexer's record of what is indexed. Jobs
  come in through a queue; API jobs are urgent and run between two batches of a long scan, so an
  edit waits for one batch, never for a whole scan.
- **the readers** (``runicorn-lite-read-N``, ``READERS`` per store): index reads of requests,
  each thread with its own connection (WAL: a read never waits for the writer).
- **the watcher** (``runicorn-lite-ingest``): file events and the periodic rescan, turned into
  jobs for the writer (it waits for each; it is no request thread).
- **the primary store's threads** (``runicorn-lite-db-N``): the optimization API's reads and
  short writes (API keys, runs, iterations), on their own database.
- **Starlette's thread pool**: file work of requests (V1 scans of run directories, writes of a
  run's files before its re-index is submitted, big answers streamed).

Locks, always taken in this order, never the other way: ``Indexer._scan_lock`` (one scan at a
time) → ``Indexer._lock`` (the record of what is indexed) → ``Database._write_lock`` (the write
connection) → ``Database._gate`` (reads in flight while the file is reopened). The job queue's
lock is never held while a job runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

# The tickets' class lives with the answers that hold them; the store owns the one lane of them.
from runicorn_lite.db.big_answers import BigAnswers

log = logging.getLogger("runicorn_lite.db")

T = TypeVar("T")

# Reader threads per store: SQLite calls hold the GIL, so more threads on 2 cores only fight for
# it (measured in benchmarks/dbthreads.py).
READERS = 4
# Seconds without a job after which the writer thread ends (the next job starts it again).
IDLE_S = 30.0


class Readable(Protocol):
    """What a store reads through (a SQLite :class:`~runicorn_lite.db.Database` or PostgreSQL's)."""

    def read(self, fn: Callable[[Any], T], budget_s: float = ...) -> T: ...


class WriterGone(RuntimeError):
    """The store was closed: its writer takes no more jobs."""


class IndexStore:
    """One writer thread fed by a queue of jobs, a pool of reader threads, and the change feed.

    ``run(fn)`` runs ``fn`` on the writer (inline when called there) and returns its result;
    ``await write(fn)`` does the same for a request without holding a thread; ``await read(fn)``
    runs ``db.read(fn)`` on a reader thread. ``big_answers`` hands out the places of answers with
    every point of a huge run (one lane per store, so two servers in one process never share it).
    """

    def __init__(self, db: Readable, *, readers: int = READERS, name: str = "runicorn-lite") -> None:
        self.db = db
        self._jobs: queue.PriorityQueue[tuple[int, int, Callable[[], None] | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._closed = False
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix=f"{name}-read")
        self._listeners: list[Callable[[list[Any]], None]] = []
        self.big_answers = BigAnswers()
        self._name = f"{name}-writer"
        # The writer thread starts with the first job and ends after IDLE_S without one (a store
        # of a short command or a test leaves no thread behind); there is never more than one.
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    # -- the writer -----------------------------------------------------------------------

    def on_writer(self) -> bool:
        """Whether the calling thread is the writer."""
        thread = self._thread
        return thread is not None and threading.get_ident() == thread.ident

    def submit(self, fn: Callable[[], T], *, urgent: bool = False) -> Future[T]:
        """Queue ``fn`` for the writer; urgent jobs (API writes) go before queued ingest work and
        also run between two batches of a scan under way."""
        future: Future[T] = Future()
        if self._closed:
            future.set_exception(WriterGone("the index store is closed"))
            return future

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits; the writer goes on
                future.set_exception(exc)

        with self._thread_lock:
            self._jobs.put((0 if urgent else 1, next(self._seq), job))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
        return future

    def run(self, fn: Callable[[], T], *, urgent: bool = False) -> T:
        """Run ``fn`` on the writer and wait for its result (inline when already there)."""
        if self.on_writer():
            return fn()
        return self.submit(fn, urgent=urgent).result()

    async def write(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the writer as an urgent job, awaited without holding a thread."""
        return await asyncio.wrap_future(self.submit(fn, urgent=True))

    def between_batches(self) -> None:
        """Run the urgent jobs waiting now (called by long jobs on the writer between batches)."""
        if not self.on_writer():
            return
        held: list[tuple[int, int, Callable[[], None] | None]] = []
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item[0] != 0 or item[2] is None:
                held.append(item)
                break
            item[2]()
        for item in held:
            self._jobs.put(item)

    def _loop(self) -> None:
        while True:
            try:
                _priority, _seq, job = self._jobs.get(timeout=IDLE_S)
            except queue.Empty:
                with self._thread_lock:
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            if job is None:
                with self._thread_lock:
                    self._thread = None
                return
            job()

    # -- the readers ----------------------------------------------------------------------

    async def read(self, fn: Callable[[Any], T]) -> T:
        """``db.read(fn)`` on a reader thread: one snapshot, within the read budget."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.db.read, fn)

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Blocking work of a request that reads the index (several reads, files beside them)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, functools.partial(fn, *args))

    # -- the change feed ------------------------------------------------------------------

    def subscribe(self, listener: Callable[[list[Any]], None]) -> None:
        """Call ``listener`` with the changes of every committed write, on the writer (it must be
        quick: hand the changes over, do not work there)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[list[Any]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def publish(self, changes: list[Any]) -> None:
        """Tell the listeners what a committed write changed (a listener never breaks ingest)."""
        if not changes:
            return
        for listener in list(self._listeners):
            try:
                listener(changes)
            except Exception:
                log.exception("an index listener failed")

    # -- the end --------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued jobs, stop the writer and the readers."""
        if self._closed:
            return
        self._closed = True
        with self._thread_lock:
            thread = self._thread
            if thread is not None:
                self._jobs.put((2, next(self._seq), None))
        if thread is not None and thread.ident != threading.get_ident():
            thread.join(timeout)
        with contextlib.suppress(RuntimeError):
            self._readers.shutdown(wait=False, cancel_futures=True)
