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
import os
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Scope

from runicorn_lite import logbuffer, optimization
from runicorn_lite.api import errors as api_errors
from runicorn_lite.api import openapi as api_openapi
from runicorn_lite.api import runicorn_ui
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
from runicorn_lite.ingest import IndexKeeper, Watcher, open_store
from runicorn_lite.ingest.changelog import ChangeFollower
from runicorn_lite.ingest.lease import IngestLease
from runicorn_lite.optimization import errors as optimization_errors
from runicorn_lite.optimization import openapi as optimization_openapi
from runicorn_lite.optimization.sessions import Authenticator
from runicorn_lite.preferences import Preferences
from runicorn_lite.settings import Settings

log = logging.getLogger("runicorn_lite")

# Seconds between a worker's tries for the ingest lease (a dead ingester is replaced within it,
# plus the first scan of the one that takes over).
LEASE_RETRY_S = 1.0


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
    logbuffer.installed()  # the diagnostics page's log
    # Runicorn's UI is read first: a missing bundle stops the start before anything opens.
    ui = runicorn_ui.load(settings.runicorn_ui_bundle) if settings.runicorn_ui else None
    index, indexer = open_store(settings)
    events = EventHub(indexer.store, settings.root, keepalive=settings.events_keepalive)
    # Other processes may write this store: several workers, or any server of a PostgreSQL
    # database (several may serve one). Their writes come through the change log.
    shared = settings.workers > 1 or settings.postgres_url is not None
    indexer.shared = shared
    indexer.subscribe(events.on_changes)
    optimization_app = optimization.create_app(settings)
    primary = optimization_app.state.api
    ctx = AppContext(
        settings=settings, index=index, indexer=indexer, keeper=IndexKeeper(indexer), events=events,
        preferences=Preferences(settings.store_dir), auth=Authenticator(primary.db, primary.keys),
        started_at=time.time(),
    )

    lifespan = _Lifespan(ctx, optimization_app, ui, shared=shared, ingest=ingest)

    routes = [
        *api_routes(web_app=ui is None),
        Mount(optimization.PREFIX, app=optimization_app),
        openapi_route(openapi_document()),
        # Runicorn's UI answers every other path, so it comes after everything.
        *(runicorn_ui.routes(ui) if ui is not None else []),
    ]
    # The index is derived: when it is damaged it is being rebuilt, and the answer says so.
    handlers = exception_handlers(render, log, derived_store=True)
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.ctx = ctx
    app.state.optimization = optimization_app
    app.state.runicorn_ui = ui
    app.add_middleware(UnexpectedErrors, render=render, log=log)
    if settings.rate_limit:  # off by default: then it costs nothing per request
        app.add_middleware(RateLimitMiddleware, limiter=primary.limiter)
    app.add_middleware(AuthMiddleware, render=render, keys=ctx.auth, required=settings.auth == "keys",
                       skip_prefix=optimization.PREFIX, failure_limit=settings.auth_failure_limit,
                       failures=primary.limiter)
    policy = None if settings.allowed_hosts is None else HostPolicy.of(settings.port, settings.allowed_hosts)
    app.add_middleware(HostOriginMiddleware, render=render, policy=policy)
    app.add_middleware(ResponseTimeMiddleware)
    return app


class _Lifespan:
    """What the server starts and stops around serving: ingest (at once, or while this worker
    holds the store's ingest lease), the follower of other processes' changes, every store."""

    def __init__(self, ctx: AppContext, optimization_app: Starlette, ui: object, *, shared: bool, ingest: bool) -> None:
        self.ctx, self.optimization_app, self.ui = ctx, optimization_app, ui
        self.shared, self.ingest = shared, ingest

    def start_ingest(self) -> None:
        ctx, settings = self.ctx, self.ctx.settings
        ctx.indexer.resume()
        ctx.watcher = Watcher(
            ctx.indexer, watch=settings.watch, rescan_interval=settings.rescan_interval, keeper=ctx.keeper
        )
        ctx.watcher.start()

    async def keep_lease(self, lease: IngestLease) -> None:
        """Ingest while this process holds the store's ingest lease; try for it every second
        while another does."""
        ctx = self.ctx
        while True:
            held = await run_in_threadpool(lease.try_acquire)
            if held and ctx.watcher is None:
                log.info("worker %d ingests from now on", os.getpid())
                self.start_ingest()
            elif not held and ctx.watcher is not None:
                log.warning("worker %d lost the ingest lease; another worker takes over", os.getpid())
                watcher, ctx.watcher = ctx.watcher, None
                await run_in_threadpool(watcher.stop)
            await asyncio.sleep(LEASE_RETRY_S)

    @contextlib.asynccontextmanager
    async def __call__(self, app: Starlette) -> AsyncIterator[None]:
        ctx, settings, events, indexer = self.ctx, self.ctx.settings, self.ctx.events, self.ctx.indexer
        loop = asyncio.get_running_loop()
        events.attach(loop)
        log.info("serving %s%s", settings.root, " with Runicorn's web UI" if self.ui is not None else "")
        follower = lease_task = None
        lease = IngestLease(settings)
        if self.shared:
            follower = ChangeFollower(indexer.store, events.on_changes, bump=ctx.changed_elsewhere)
            follower.start()
            if self.ingest:
                lease_task = loop.create_task(self.keep_lease(lease))
        elif self.ingest:
            self.start_ingest()
        try:
            yield
        finally:
            events.close()
            if lease_task is not None:
                lease_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lease_task
            if follower is not None:
                await follower.stop()
            if ctx.watcher is not None:
                ctx.watcher.stop()
            lease.release()
            indexer.unsubscribe(events.on_changes)
            self.optimization_app.state.api.close()
            indexer.store.close()
            ctx.preferences.close()
            ctx.index.close()
