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
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "root": str(ctx.root),
            "uptime_s": round(time.time() - ctx.started_at, 3),
            "index": state,
        }
    )


def routes() -> list[Route]:
    return [Route("/api/health", health, methods=["GET"])]
