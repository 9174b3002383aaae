"""What every request handler shares: settings, the index, the indexer, and writes to run dirs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from runicorn_lite import rundir
from runicorn_lite.api.errors import ApiError
from runicorn_lite.api.event_hub import EventHub
from runicorn_lite.db.backend import Backend
from runicorn_lite.db.store import IndexStore
from runicorn_lite.http.auth import KeyStore
from runicorn_lite.ingest import Indexer, IndexKeeper, Watcher
from runicorn_lite.preferences import Preferences
from runicorn_lite.queries.cache import QueryCache
from runicorn_lite.queries.experiments import RunRef, find_for_write
from runicorn_lite.settings import Settings

log = logging.getLogger("runicorn_lite.api")

T = TypeVar("T")


@dataclass
class AppContext:
    """One per app; built by ``create_app`` and kept at ``app.state.ctx``."""

    settings: Settings
    index: Backend
    indexer: Indexer
    keeper: IndexKeeper
    events: EventHub  # the live event stream's broadcast, fed by the indexer
    preferences: Preferences  # what Runicorn's web UI saves on the server (ui.sqlite)
    auth: KeyStore  # keys and web sessions (the primary database's)
    watcher: Watcher | None = None
    started_at: float = 0.0
    counts: QueryCache = field(default_factory=QueryCache)

    @property
    def root(self) -> Path:
        return self.settings.root

    def changed_elsewhere(self) -> None:
        """Another worker process wrote the index: what this one keeps of it is stale."""
        self.index.generation += 1

    @property
    def store(self) -> IndexStore:
        """The index as a service: its one writer, its readers, its change feed."""
        return self.indexer.store

    def require_writable(self) -> None:
        """403 when the data root is read-only (run directories cannot be changed)."""
        if self.settings.read_only:
            raise ApiError(
                403,
                f"The data root is read-only ({self.root}): runs cannot be changed through this server",
            )

    def locate_indexed(self, ids: list[str]) -> dict[str, RunRef]:
        """Where the index says the runs are."""
        return self.index.read(lambda conn: find_for_write(conn, ids))

    async def delete_runs(self, ids: list[str], reason: str, locate: Locator | None = None) -> dict[str, Outcome]:
        """Soft-delete: write each run's ``.deleted`` marker, then re-index those runs.

        One Outcome per id: ``ok`` when the run is deleted after the call (already deleted
        included), ``changed`` when this call deleted it, ``error`` why not. ``locate`` finds
        the runs (the index by default; V1 passes its file scan).
        """
        self.require_writable()
        found = await run_in_threadpool(locate or self.locate_indexed, ids)
        now = time.time()

        def apply(ref: RunRef, run_dir: Path, exp_id: str) -> list[Path]:
            if ref.deleted_at is not None:
                return []
            rundir.mark_deleted(run_dir, ref.status, reason, now)
            return [run_dir]

        return await self.edit(lambda: self._apply(ids, found, apply, already="already deleted"))

    async def restore_runs(self, ids: list[str], locate: Locator | None = None) -> dict[str, Outcome]:
        """Remove each run's ``.deleted`` marker (moving recycled runs back), then re-index."""
        self.require_writable()
        found = await run_in_threadpool(locate or self.locate_indexed, ids)

        def apply(ref: RunRef, run_dir: Path, exp_id: str) -> list[Path]:
            if ref.deleted_at is None:
                return []
            return [run_dir, rundir.unmark_deleted(self.root, run_dir, exp_id, ref.path)]

        return await self.edit(lambda: self._apply(ids, found, apply, already="run not deleted"))

    async def edit(self, change: Callable[[], tuple[T, Iterable[Path]]]) -> T:
        """An edit of run directories as one job on the store's writer: ``change`` writes the
        files (and returns its result and the run directories it touched), then the index
        follows. The request awaits both without holding a thread; the writer does the fsyncs."""

        def job() -> T:
            result, touched = change()
            touched = list(touched)
            if touched:
                self.reindex(touched)  # on the writer already: runs inline
            return result

        return await self.store.write(job)

    def _apply(
        self,
        ids: list[str],
        found: dict[str, RunRef],
        apply: Callable[[RunRef, Path, str], list[Path]],
        already: str,
    ) -> tuple[dict[str, Outcome], set[Path]]:
        results: dict[str, Outcome] = {}
        touched: set[Path] = set()
        for exp_id in ids:
            ref = found.get(exp_id)
            if ref is None:
                results[exp_id] = Outcome(False, False, "run not found")
                continue
            try:
                changed = apply(ref, self.root / ref.rel_dir, exp_id)
            except OSError as exc:
                log.warning("cannot change %s: %s", exp_id, exc)
                results[exp_id] = Outcome(False, False, os_reason(exc))
                continue
            touched.update(changed)
            results[exp_id] = Outcome(True, True) if changed else Outcome(True, False, already)
        return results, touched

    def reindex(self, run_dirs: Iterable[Path]) -> None:
        """Re-index run directories an edit has just changed (on the store's writer: call it
        from an :meth:`edit` job). The files are the truth and hold the change already; when
        the index cannot take it (a full disk), the caller gets 507 saying so instead of a
        success that the lists would contradict. The index catches up by itself once there is
        room (the next scan or change re-reads those runs)."""
        self.indexer.refresh(run_dirs)
        problem = self.index.write_problem
        if problem is not None:
            raise ApiError(507, "The change is written to the run directory, but the index could not be updated"
                                f" ({problem}); lists and searches show it once the disk has room again")


@dataclass(frozen=True)
class Outcome:
    """What a delete or restore did to one run."""

    ok: bool  # the run is in the wanted state after the call
    changed: bool  # this call put it there
    error: str | None = None  # why not (or, when ok, why nothing changed)


def os_reason(exc: OSError) -> str:
    """The OS's words for why a run directory could not be changed, without the paths."""
    if isinstance(exc, FileExistsError) and not exc.strerror:
        return "its original place is taken by another directory; it stays in the recycle bin"
    return exc.strerror or str(exc) or type(exc).__name__


Locator = Callable[[list[str]], dict[str, RunRef]]


def context(conn: HTTPConnection) -> AppContext:
    """The AppContext of the app serving this request."""
    ctx: AppContext = conn.app.state.ctx
    return ctx
