"""The app factory: one Starlette app over one data root."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from runicorn_lite.api import files, health, v1, v2, web
from runicorn_lite.api.context import AppContext
from runicorn_lite.api.errors import EXCEPTION_HANDLERS
from runicorn_lite.api.middleware import LocalOriginMiddleware, RateLimitMiddleware, ResponseTimeMiddleware
from runicorn_lite.api.openapi import openapi_route
from runicorn_lite.ingest import IndexKeeper, Watcher, open_index
from runicorn_lite.settings import Settings

log = logging.getLogger("runicorn_lite")


def create_app(settings: Settings, *, ingest: bool = True) -> Starlette:
    """Build the app. With ``ingest`` the lifespan starts the background scan and watcher;
    without it (tests), call ``app.state.ctx.indexer.scan()`` yourself.
    """
    from runicorn_lite.optimization import create_app as create_optimization_app

    settings.ensure_dirs()
    index, indexer = open_index(settings.index_path, settings.root)
    ctx = AppContext(
        settings=settings, index=index, indexer=indexer, keeper=IndexKeeper(indexer), started_at=time.time()
    )
    optimization = create_optimization_app(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if ingest:
            ctx.watcher = Watcher(
                indexer, watch=settings.watch, rescan_interval=settings.rescan_interval, keeper=ctx.keeper
            )
            ctx.watcher.start()
        try:
            yield
        finally:
            if ctx.watcher is not None:
                ctx.watcher.stop()
            optimization.state.db.close()
            index.close()

    routes: list[BaseRoute] = [
        *health.routes(),
        *v2.routes(),
        *files.routes(),
        *v1.routes(),
        Mount("/api/iris/optimization", app=optimization),
        *web.routes(),
    ]
    routes.append(openapi_route())
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    app.state.ctx = ctx
    app.state.optimization = optimization
    if settings.rate_limit:  # off by default: then it costs nothing per request
        app.add_middleware(RateLimitMiddleware)
    app.add_middleware(LocalOriginMiddleware, check_host=settings.check_host)
    app.add_middleware(ResponseTimeMiddleware)
    return app
