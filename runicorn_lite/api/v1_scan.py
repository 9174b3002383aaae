"""V1's full scans of the run directories, one at a time.

V1 answers its lists (``/api/runs``, the recycle bin, projects and names) by reading every run
directory, as Runicorn's viewer does: about 2 ms per thousand runs for the walk alone, and a
read of each run's files. Ten clients asking at once used to make ten scans side by side, each
holding every run's record and its own answer: the time and the memory grew with the clients.
Here one scan runs at a time; a request that arrives while one is under way waits for it and
shares its result (the runs as they were when that scan started, at most one scan old; a scan
that started before a write to the index is not shared: the next one is), and the
``/api/runs`` answer is encoded once per scan for all of them. A request after it ends starts a
new one. Memory is one scan's, whatever the number of requests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from runicorn_lite import rundir
from runicorn_lite.http.responses import dumps


def scan(root: Path) -> list[rundir.RunInfo]:
    """Every readable run under ``root`` (deleted ones included)."""
    infos = []
    for loc in rundir.iter_runs(root):
        info = rundir.read_run(loc)
        if info is not None:
            infos.append(rundir.fill_live_best(info))
    return infos


def run_entry(info: rundir.RunInfo) -> dict[str, Any]:
    """An item of ``GET /api/runs``."""
    return {
        "id": info.id,
        "run_dir": str(info.run_dir),
        "created_time": info.created_at,
        "status": info.status,
        "pid": info.pid,
        "best_metric_value": info.best_metric_value,
        "best_metric_name": info.best_metric_name,
        "project": info.project,
        "name": info.name,
        "path": info.path,
        "alias": info.alias,
        "tags": info.tags,
        "assets_count": rundir.assets_count(rundir.read_assets(info.run_dir)),
    }


def newest_first(infos: list[rundir.RunInfo]) -> list[rundir.RunInfo]:
    return sorted(infos, key=lambda i: (i.created_at, i.id), reverse=True)


@dataclass(frozen=True)
class Scan:
    """One scan's runs, and the ``/api/runs`` answer built from them."""

    infos: list[rundir.RunInfo]
    runs_body: bytes


class SharedScan:
    """At most one full scan of ``root`` at a time; callers during it share its result, unless
    the index was written after it started (``generation``: the index's count of writes), as
    a soft delete of the caller's own is: then the caller waits for that scan to end and shares
    the next one (one scan old at most, never older than its own writes)."""

    def __init__(self, root: Path, generation: Callable[[], int] = lambda: 0) -> None:
        self.root = root
        self.started = 0  # scans started (for tests and logs)
        self._generation = generation
        self._current: asyncio.Future[Scan] | None = None
        self._current_generation = 0

    async def get(self) -> Scan:
        waited = False
        while True:
            current = self._current
            if current is None or current.done():
                self.started += 1
                self._current_generation = self._generation()
                current = self._current = asyncio.ensure_future(run_in_threadpool(self._build))
                current.add_done_callback(self._finished)
                break
            if waited or self._current_generation == self._generation():
                break
            waited = True  # once: writes that keep coming must not keep a caller waiting
            with contextlib.suppress(Exception):
                await asyncio.shield(current)
        # A client that leaves stops waiting; the scan goes on for the others.
        return await asyncio.shield(current)

    def _finished(self, done: asyncio.Future[Scan]) -> None:
        if self._current is done:
            self._current = None
        if not done.cancelled():
            with contextlib.suppress(BaseException):
                done.exception()  # retrieved here: every waiter may have left

    def _build(self) -> Scan:
        infos = scan(self.root)
        live = newest_first([i for i in infos if i.deleted_at is None])
        return Scan(infos, dumps([run_entry(i) for i in live]))


def shared_scan(conn: HTTPConnection) -> SharedScan:
    """The app's SharedScan (made on first use: the event loop is one thread)."""
    state = conn.app.state
    found: SharedScan | None = getattr(state, "v1_scan", None)
    if found is None:
        index = conn.app.state.ctx.index
        found = state.v1_scan = SharedScan(conn.app.state.ctx.root, lambda: int(index.generation))
    return found
