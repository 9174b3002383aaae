"""The server: V1/V2 over one data root, with the optimization API mounted beside them.

This is where the two APIs meet; neither imports the other. Both are built from the same
pieces (``runicorn_lite.http``), and each renders errors in its own documented shape: an error
answered out here (no route, a refused origin, a rate limit) takes the shape of the API its
path belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import Scope

from runicorn_lite import optimization
from runicorn_lite.api import errors as api_errors
from runicorn_lite.api import openapi as api_openapi
from runicorn_lite.api.context import AppContext
from runicorn_lite.api.event_hub import EventHub
from runicorn_lite.api.middleware import RateLimitMiddleware
from runicorn_lite.api.routes import routes as api_routes
from runicorn_lite.http.auth import AuthMiddleware
from runicorn_lite.http.errors import HTTPProblem, UnexpectedErrors, exception_handlers
from runicorn_lite.http.hosts import HostOriginMiddleware, HostPolicy
from runicorn_lite.http.middleware import ResponseTimeMiddleware
from runicorn_lite.http.openapi import document, mounted, openapi_route
from runicorn_lite.http.routing import Mount
from runicorn_lite.ingest import IndexKeeper, Watcher, open_index
from runicorn_lite.optimization import errors as optimization_errors
from runicorn_lite.optimization import openapi as optimization_openapi
from runicorn_lite.optimization.sessions import Authenticator
from runicorn_lite.settings import Settings

log = logging.getLogger("runicorn_lite")


def render(scope: Scope, problem: HTTPProblem) -> Response:
    """A problem in the shape of the API that the request addressed."""
    path: str = scope.get("path", "")
    if path == optimization.PREFIX or path.startswith(optimization.PREFIX + "/"):
        return optimization_errors.render(scope, problem)
    return api_errors.render(scope, problem)


def openapi_document() -> dict[str, object]:
    """The OpenAPI document of the whole server."""
    return document(api_openapi.OPERATIONS, mounted(optimization_openapi.OPERATIONS, optimization.PREFIX))


def create_app(settings: Settings, *, ingest: bool = True) -> Starlette:
    """Build the app. With ``ingest`` the lifespan starts the background scan and watcher;
    without it (tests), call ``app.state.ctx.indexer.scan()`` yourself.
    """
    settings.ensure_dirs()
    index, indexer = open_index(settings.index_path, settings.root)
    events = EventHub(index, settings.root, keepalive=settings.events_keepalive)
    indexer.subscribe(events.on_changes)
    optimization_app = optimization.create_app(settings)
    primary = optimization_app.state.api
    ctx = AppContext(
        settings=settings, index=index, indexer=indexer, keeper=IndexKeeper(indexer), events=events,
        auth=Authenticator(primary.db, primary.keys), started_at=time.time(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.attach(asyncio.get_running_loop())
        if ingest:
            ctx.watcher = Watcher(
                indexer, watch=settings.watch, rescan_interval=settings.rescan_interval, keeper=ctx.keeper
            )
            ctx.watcher.start()
        try:
            yield
        finally:
            events.close()
            if ctx.watcher is not None:
                ctx.watcher.stop()
            indexer.unsubscribe(events.on_changes)
            optimization_app.state.api.close()
            index.close()

    routes = [
        *api_routes(),
        Mount(optimization.PREFIX, app=optimization_app),
        openapi_route(openapi_document()),
    ]
    # The index is derived: when it is damaged it is being rebuilt, and the answer says so.
    handlers = exception_handlers(render, log, derived_store=True)
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.ctx = ctx
    app.state.optimization = optimization_app
    app.add_middleware(UnexpectedErrors, render=render, log=log)
    if settings.rate_limit:  # off by default: then it costs nothing per request
        app.add_middleware(RateLimitMiddleware)
    app.add_middleware(AuthMiddleware, render=render, keys=ctx.auth, required=settings.auth == "keys",
                       skip_prefix=optimization.PREFIX, failure_limit=settings.auth_failure_limit)
    policy = None if settings.allowed_hosts is None else HostPolicy.of(settings.port, settings.allowed_hosts)
    app.add_middleware(HostOriginMiddleware, render=render, policy=policy)
    app.add_middleware(ResponseTimeMiddleware)
    return app
