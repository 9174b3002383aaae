"""The optimization runs API as a Starlette sub-application.

Each request makes one trip to the threadpool: authentication, rate limiting, validation, the
SQLite work and the JSON encoding all happen in one synchronous call (``_process``), so the
event loop never waits on SQLite and pays for one thread hand-off per request, not several.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runicorn_lite.api.middleware import ResponseTimeMiddleware
from runicorn_lite.db import DamagedStore, Database, StoreError, in_db_thread
from runicorn_lite.optimization import queries
from runicorn_lite.optimization import validation as v
from runicorn_lite.optimization.caching import (
    CACHE_LIST,
    CACHE_RUN,
    CACHE_STATS,
    NO_STORE,
    if_none_match_hits,
    strong_etag,
)
from runicorn_lite.optimization.errors import ApiError, rate_limited, unauthorized
from runicorn_lite.optimization.keys import KEY_FORMAT, KeyChecker, Principal
from runicorn_lite.optimization.ratelimit import FixedWindowLimiter
from runicorn_lite.optimization.schema import MIGRATIONS
from runicorn_lite.optimization.timeutil import now_iso
from runicorn_lite.settings import Settings

log = logging.getLogger("runicorn_lite.optimization")

JSON = "application/json"
# 1000 iterations with generous params/metrics fit well within this.
MAX_BODY_BYTES = 16 * 1024 * 1024
READ, WRITE, ITERATIONS, AUTH_FAILURES = "read", "write", "iterations", "auth_failures"


@dataclass
class Call:
    """What ``_process`` needs from the request (plain data: it runs on a worker thread)."""

    kind: str
    authorization: str | None
    client: str
    params: Mapping[str, str]
    path_params: Mapping[str, str]
    body: bytes
    if_none_match: str | None
    started: float
    # The body exceeded MAX_BODY_BYTES: answered 413, but only after authentication.
    body_too_large: bool = False


@dataclass
class Result:
    """A successful answer before encoding; ``metadata`` is appended after the ETag is taken."""

    payload: dict[str, Any] | None = None
    status: int = 200
    cache_control: str | None = None  # set for cacheable GETs (which also get an ETag)
    encoded: bytes | None = None  # the payload already encoded (stats cache)
    meta_prefix: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Principal, "Call"], "Result"]
# (rate-limit bucket, handler, whether the request has a JSON body)
Operation = tuple[str, Handler, bool]


def _error_response(exc: ApiError, headers: Mapping[str, str] | None = None) -> Response:
    merged = {"Cache-Control": NO_STORE, **(headers or {}), **exc.headers}
    return Response(orjson.dumps(exc.body()), exc.status, merged, media_type=JSON)


class OptimizationAPI:
    """Handlers plus the shared state they need (store, limiter, key checker, settings)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.keys = KeyChecker(db)
        self.limiter = FixedWindowLimiter()
        self.stats_cache = queries.StatsCache()
        self.limits = {
            READ: settings.read_limit,
            WRITE: settings.write_limit,
            ITERATIONS: settings.iterations_limit,
        }

    # ---- request plumbing --------------------------------------------------------------------

    def resource(self, methods: Mapping[str, Operation]) -> Callable[[Request], Any]:
        """One endpoint per path, dispatching on the method (so a 405 lists every method)."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            method = "GET" if request.method == "HEAD" else request.method
            kind, handler, wants_body = methods[method]
            raw: bytes | None = b""
            if wants_body:
                raw = await _read_body(request)
            call = Call(
                kind=kind,
                authorization=request.headers.get("authorization"),
                client=request.client.host if request.client else "unknown",
                params=request.query_params,
                path_params=request.path_params,
                body=raw or b"",
                if_none_match=request.headers.get("if-none-match"),
                started=started,
                body_too_large=raw is None,
            )
            status, headers, content = await in_db_thread(self._process, handler, call)
            return Response(content, status, headers, media_type=JSON if content else None)

        return endpoint

    def _process(self, handler: Handler, call: Call) -> tuple[int, dict[str, str], bytes]:
        limit_headers: dict[str, str] = {}
        try:
            principal = self._authenticate(call)
            decision = self.limiter.hit(call.kind, principal.project_id, self.limits[call.kind])
            limit_headers = decision.headers()
            if not decision.allowed:
                raise rate_limited(decision.retry_after, limit_headers)
            # Any endpoint: the key decides the project, a project_id naming another is refused.
            v.check_project_param(call.params, principal.project_id)
            if call.body_too_large:
                raise ApiError(413, "Request body too large")
            result = handler(principal, call)
            return self._encode(result, call, limit_headers)
        except DamagedStore:
            # Retrying cannot help, so no Retry-After; the cause was logged once by the store.
            damaged = ApiError(
                503,
                "The primary database is damaged",
                hint=f"{self.db.path.name} ({self.db.damaged}) holds the API keys and optimization runs and "
                "is left as it is: restore it from a backup, or move it aside to start an empty one",
            )
            return damaged.status, {"Cache-Control": NO_STORE, **limit_headers}, orjson.dumps(damaged.body())
        except StoreError as exc:  # busy past the lock timeout, or over the read budget
            log.warning("store error on %s: %s", call.kind, exc)
            busy = ApiError(503, "Service temporarily unavailable", hint="The database is busy; retry shortly")
            headers = {"Cache-Control": NO_STORE, "Retry-After": "1", **limit_headers}
            return busy.status, headers, orjson.dumps(busy.body())
        except ApiError as exc:
            headers = {"Cache-Control": NO_STORE, **limit_headers, **exc.headers}
            return exc.status, headers, orjson.dumps(exc.body())

    def _authenticate(self, call: Call) -> Principal:
        # Only failures are limited per address. A valid key always gets through: every local
        # client shares 127.0.0.1, and one script retrying a revoked key must not lock out the
        # others. Guessing stays useless: past the limit a wrong key gets 429 instead of 401,
        # and a key is 240 random bits.
        limit = self.settings.auth_failure_limit
        try:
            return self._check_key(call.authorization)
        except ApiError:
            blocked = self.limiter.peek(AUTH_FAILURES, call.client, limit)
            if not blocked.allowed:
                raise rate_limited(blocked.retry_after, blocked.headers()) from None
            self.limiter.hit(AUTH_FAILURES, call.client, limit)
            raise

    def _check_key(self, header: str | None) -> Principal:
        if header is None:
            raise unauthorized("Authorization header is required")
        value = header.strip()
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer":
            token = token.strip()
        elif value.lower() == "bearer":
            token = ""
        else:
            token = value
        if not token:
            raise unauthorized("API key is required")
        if value == token or not KEY_FORMAT.fullmatch(token):
            raise unauthorized("Invalid API key format")
        principal = self.keys.lookup(token)
        if principal is None:
            raise unauthorized("Invalid or inactive API key")
        return principal

    def _encode(
        self, result: Result, call: Call, limit_headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        stable = result.encoded if result.encoded is not None else orjson.dumps(result.payload)
        headers = dict(limit_headers)
        if result.cache_control is not None:
            etag = strong_etag(stable)
            headers["ETag"] = etag
            headers["Cache-Control"] = result.cache_control
            headers["Vary"] = "Authorization"
            if if_none_match_hits(call.if_none_match, etag):
                return 304, headers, b""
        else:
            headers["Cache-Control"] = NO_STORE
        metadata = {
            **result.meta_prefix,
            "latencyMs": round((time.perf_counter() - call.started) * 1000, 2),
            "timestamp": now_iso(),
        }
        # Splice metadata into the already-encoded object rather than encoding twice.
        joiner = b',"metadata":' if len(stable) > 2 else b'"metadata":'
        return result.status, headers, stable[:-1] + joiner + orjson.dumps(metadata) + b"}"

    # ---- handlers (run on a worker thread) ---------------------------------------------------

    def list_runs(self, principal: Principal, call: Call) -> Result:
        query = v.parse_list_query(call.params)
        payload = self.db.read(lambda conn: queries.list_runs(conn, principal.project_id, query))
        return Result(payload, cache_control=CACHE_LIST)

    def create_run(self, principal: Principal, call: Call) -> Result:
        fields = v.parse_create_run(call.body)
        v.check_project(fields.pop("project_id", None), principal.project_id)
        with self.db.write() as conn:
            run = queries.create_run(conn, principal.project_id, fields)
        return Result({"run": run}, status=201)

    def get_run(self, principal: Principal, call: Call) -> Result:
        run_id = v.parse_run_id(call.path_params["run_id"])
        payload = self.db.read(lambda conn: queries.get_run(conn, principal.project_id, run_id))
        return Result(payload, cache_control=CACHE_RUN)

    def patch_run(self, principal: Principal, call: Call) -> Result:
        run_id = v.parse_run_id(call.path_params["run_id"])
        fields = v.parse_patch_run(call.body)
        with self.db.write() as conn:
            payload = queries.patch_run(conn, principal.project_id, run_id, fields)
        return Result(payload)

    def add_iteration(self, principal: Principal, call: Call) -> Result:
        run_id = v.parse_run_id(call.path_params["run_id"])
        item = v.parse_iteration(call.body)
        with self.db.write() as conn:
            created, updates = queries.add_iterations(conn, principal.project_id, run_id, [item])
        return Result({"iteration": created[0], "runUpdates": updates}, status=201)

    def add_iterations_batch(self, principal: Principal, call: Call) -> Result:
        run_id = v.parse_run_id(call.path_params["run_id"])
        items = v.parse_iteration_batch(call.body)
        with self.db.write() as conn:
            created, updates = queries.add_iterations(conn, principal.project_id, run_id, items)
        return Result({"iterations": created, "runUpdates": updates}, status=201)

    def stats(self, principal: Principal, call: Call) -> Result:
        query = v.parse_stats_query(call.params)
        key = (principal.project_id, query)
        filters = {
            "projectId": principal.project_id,
            "optimizerType": query.optimizer_type,
            "status": query.status,
            "startDate": query.start_date,
            "endDate": query.end_date,
        }

        def compute(conn: Any) -> bytes:
            revision = queries.project_revision(conn, principal.project_id)
            cached = self.stats_cache.get(key, revision)
            if cached is not None:
                return cached
            encoded = orjson.dumps(queries.stats(conn, principal.project_id, query))
            self.stats_cache.put(key, revision, encoded)
            return encoded

        encoded = self.db.read(compute)
        return Result(
            encoded=encoded,
            cache_control=CACHE_STATS,
            meta_prefix={"filters": filters},
        )


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it exceeds MAX_BODY_BYTES (read no further than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class ErrorsAs500:
    """Turns any unexpected exception into the documented 500 (the traceback goes to the log,
    never to the client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_tracked(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if response_started:
                raise
            response = _error_response(ApiError(500, "Internal server error"))
            await response(scope, receive, send_tracked)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = ApiError(404, "Not found", hint="See the API documentation for the endpoints")
    elif exc.status_code == 405:
        error = ApiError(405, "Method not allowed")
    else:
        error = ApiError(exc.status_code, exc.detail or "Error")
    return _error_response(error, exc.headers)


def _route(path: str, methods: dict[str, Operation], api: OptimizationAPI) -> Route:
    return Route(path, api.resource(methods), methods=list(methods))


def create_app(settings: Settings) -> Starlette:
    """The optimization API, to be mounted at ``/api/iris/optimization``.

    Opens the primary database now (a mounted app's lifespan never runs) and keeps it at
    ``app.state.db``; whoever mounts the app closes it on shutdown.
    """
    settings.ensure_dirs()
    db = Database(settings.primary_path, MIGRATIONS, precious=True)
    api = OptimizationAPI(settings, db)
    routes = [
        _route(
            "/runs",
            {"GET": (READ, api.list_runs, False), "POST": (WRITE, api.create_run, True)},
            api,
        ),
        _route(
            "/runs/{run_id}",
            {"GET": (READ, api.get_run, False), "PATCH": (WRITE, api.patch_run, True)},
            api,
        ),
        _route("/runs/{run_id}/iterations", {"POST": (ITERATIONS, api.add_iteration, True)}, api),
        _route(
            "/runs/{run_id}/iterations/batch",
            {"POST": (ITERATIONS, api.add_iterations_batch, True)},
            api,
        ),
        _route("/stats", {"GET": (READ, api.stats, False)}, api),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_exception},
    )
    app.add_middleware(ErrorsAs500)
    # The same X-Response-Time as the main app (which sets it again, outermost, when mounted),
    # so the sub-app is complete on its own.
    app.add_middleware(ResponseTimeMiddleware)
    # "/runs/" is not "/runs": answer the JSON 404 rather than a redirect.
    app.router.redirect_slashes = False
    app.state.db = db
    app.state.api = api
    return app
