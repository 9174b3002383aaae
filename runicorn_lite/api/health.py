"""``GET /api/health``: liveness, version, and where indexing stands (even mid-scan)."""

from __future__ import annotations

import contextlib
import os
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runicorn_lite.api.context import context
from runicorn_lite.api.responses import JSONResponse
from runicorn_lite.api.v1_ui_settings import storage_backend
from runicorn_lite.db import StoreError
from runicorn_lite.ingest import IndexState
from runicorn_lite.ingest.changelog import read_state
from runicorn_lite.version import __version__

# Fields of the index report left out when the server wants keys (health stays open).
PRIVATE_FIELDS = ("runs_in_index", "runs_found_last_scan", "runs_reindexed_last_scan", "scan_progress", "errors")


def index_report(state: IndexState) -> dict[str, object]:
    """Where indexing stands, in names that cannot be misread: what the index holds now, what
    the last completed scan found and re-read, and how far the scan under way has got."""
    finished = state.last_scan_finished_at
    return {
        "ready": bool(state.scans_completed) and not state.scanning,
        "runs_in_index": state.runs_in_index,
        "runs_found_last_scan": state.last_scan_runs_seen,
        "runs_reindexed_last_scan": state.last_scan_runs_indexed,
        "scanning": state.scanning,
        # While a scan runs: runs its walk has found so far and runs it has (re)read so far.
        "scan_progress": (
            {"runs_found": state.runs_seen, "runs_reindexed": state.runs_indexed} if state.scanning else None
        ),
        "scans_completed": state.scans_completed,
        "last_scan_started_at": state.last_scan_started_at,
        "last_scan_finished_at": finished,
        "last_scan_duration_s": state.last_scan_duration_s,
        "last_walk_s": state.last_walk_s,
        "rescan_every_s": state.rescan_every_s,
        "seconds_since_last_scan": round(time.time() - finished, 3) if finished else None,
        "last_change_at": state.last_change_at,
        "last_ingest_lag_s": state.last_ingest_lag_s,
        "errors": state.errors,
        "watcher": state.watcher,
    }


async def health(request: Request) -> Response:
    ctx = context(request)
    state = index_report(ctx.indexer.state)
    if ctx.indexer.shared and ctx.watcher is None:
        # Another worker ingests: its report, as it published it after its last scan.
        with contextlib.suppress(StoreError):
            published = await ctx.store.read(read_state)
            if published is not None:
                state = index_report(IndexState(**published))
    problems = _problems(request)
    body = {
        "status": "degraded" if problems else "ok",
        # What is wrong while "degraded": one sentence per store.
        "problems": problems,
        "version": __version__,
        "auth": ctx.settings.auth,
        "root": str(ctx.root),
        "uptime_s": round(time.time() - ctx.started_at, 3),
        "index": state,
        # Which process answered, whether it is the one that ingests, and how many answer.
        "worker": {"pid": os.getpid(), "ingester": ctx.watcher is not None, "workers": ctx.settings.workers},
        # Runicorn 0.7.2's fields, which its web UI shows: the data root, what serves the
        # runs, and its metrics cache (V1 here reads the files on each request: no cache).
        "storage": str(ctx.root),
        "storage_backend": storage_backend(ctx),
        "cache": NO_CACHE,
    }
    if ctx.settings.auth == "keys":
        # Open to anyone, so it tells nothing of the runs: no counts, no paths, no errors
        # (which name run directories), nothing a key's own lists would not.
        del body["root"]
        del body["storage"]
        for name in PRIVATE_FIELDS:
            state.pop(name, None)
    return JSONResponse(body)


NO_CACHE = {"enabled": False, "type": "none", "hit_rate": "0.0%", "hits": 0, "misses": 0, "incremental_updates": 0,
            "size": 0, "max_size": 0}


def _problems(request: Request) -> list[str]:
    ctx = context(request)
    problems = []
    index_problem = ctx.keeper.rebuilding or ctx.keeper.problem()
    if index_problem is None and ctx.settings.postgres_url is not None:
        index_problem = ctx.index.ping()
    if index_problem is not None:
        problems.append(f"index: {index_problem}")
    primary = request.app.state.optimization.state.db
    for name, db in (("index", ctx.index), ("primary database", primary)):
        if db.write_problem is not None:  # cleared by the next write that commits
            problems.append(f"{name}: {db.write_problem}")
    if primary.damaged is not None:
        problems.append(
            f"primary database: {primary.path.name} is damaged ({primary.damaged}); "
            "the optimization API is unavailable until it is restored"
        )
    return problems


def routes() -> list[Route]:
    return [Route("/api/health", health, methods=["GET"])]
