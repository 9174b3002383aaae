"""What every request handler shares: settings, the index, the indexer, and writes to run dirs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import HTTPConnection

from runicorn_lite import rundir
from runicorn_lite.db import Database
from runicorn_lite.ingest import Indexer, Watcher
from runicorn_lite.queries.experiments import QueryCache, RunRef, find_for_write
from runicorn_lite.settings import Settings

log = logging.getLogger("runicorn_lite.api")


@dataclass
class AppContext:
    """One per app; built by ``create_app`` and kept at ``app.state.ctx``."""

    settings: Settings
    index: Database
    indexer: Indexer
    watcher: Watcher | None = None
    started_at: float = 0.0
    counts: QueryCache = field(default_factory=QueryCache)

    @property
    def root(self) -> Path:
        return self.settings.root

    def locate_indexed(self, ids: list[str]) -> dict[str, RunRef]:
        """Where the index says the runs are."""
        return self.index.read(lambda conn: find_for_write(conn, ids))

    def delete_runs(self, ids: list[str], reason: str, locate: Locator | None = None) -> dict[str, bool]:
        """Soft-delete: write each run's ``.deleted`` marker, then re-index those runs.

        True when the run is deleted after the call (already deleted included), False when it
        does not exist or its marker could not be written. ``locate`` finds the runs (the index
        by default; V1 passes its file scan).
        """
        found = (locate or self.locate_indexed)(ids)
        now = time.time()

        def apply(ref: RunRef, run_dir: Path, exp_id: str) -> list[Path]:
            if ref.deleted_at is not None:
                return []
            rundir.mark_deleted(run_dir, ref.status, reason, now)
            return [run_dir]

        return self._apply(ids, found, apply)

    def restore_runs(self, ids: list[str], locate: Locator | None = None) -> dict[str, bool]:
        """Remove each run's ``.deleted`` marker (moving recycled runs back), then re-index."""
        found = (locate or self.locate_indexed)(ids)

        def apply(ref: RunRef, run_dir: Path, exp_id: str) -> list[Path]:
            if ref.deleted_at is None:
                return []
            return [run_dir, rundir.unmark_deleted(self.root, run_dir, exp_id, ref.path)]

        return self._apply(ids, found, apply)

    def _apply(
        self, ids: list[str], found: dict[str, RunRef], apply: Callable[[RunRef, Path, str], list[Path]]
    ) -> dict[str, bool]:
        results: dict[str, bool] = {}
        touched: set[Path] = set()
        for exp_id in ids:
            ref = found.get(exp_id)
            if ref is None:
                results[exp_id] = False
                continue
            try:
                touched.update(apply(ref, self.root / ref.rel_dir, exp_id))
            except OSError as exc:
                log.warning("cannot change %s: %s", exp_id, exc)
                results[exp_id] = False
                continue
            results[exp_id] = True
        if touched:
            self.indexer.refresh(touched)
        return results


Locator = Callable[[list[str]], dict[str, RunRef]]


def context(conn: HTTPConnection) -> AppContext:
    """The AppContext of the app serving this request."""
    ctx: AppContext = conn.app.state.ctx
    return ctx
