"""``GET /api/health``: liveness, version, and where indexing stands (even mid-scan)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runicorn_lite import __version__
from runicorn_lite.api.context import context
from runicorn_lite.api.responses import JSONResponse


async def health(request: Request) -> Response:
    ctx = context(request)
    state = ctx.indexer.state.as_dict()
    finished = ctx.indexer.state.last_scan_finished_at
    state["ready"] = bool(state["scans_completed"]) and not state["scanning"]
    state["seconds_since_last_scan"] = round(time.time() - finished, 3) if finished else None
    problems = _problems(request)
    return JSONResponse(
        {
            "status": "degraded" if problems else "ok",
            # What is wrong while "degraded": one sentence per store.
            "problems": problems,
            "version": __version__,
            "root": str(ctx.root),
            "uptime_s": round(time.time() - ctx.started_at, 3),
            "index": state,
        }
    )


def _problems(request: Request) -> list[str]:
    ctx = context(request)
    problems = []
    index_problem = ctx.keeper.rebuilding or ctx.keeper.problem()
    if index_problem is not None:
        problems.append(f"index: {index_problem}")
    primary = request.app.state.optimization.state.db
    if primary.damaged is not None:
        problems.append(
            f"primary database: {primary.path.name} is damaged ({primary.damaged}); "
            "the optimization API is unavailable until it is restored"
        )
    return problems


def routes() -> list[Route]:
    return [Route("/api/health", health, methods=["GET"])]
