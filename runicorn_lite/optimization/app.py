"""The optimization runs API as a Starlette sub-application.

Each request makes one trip to the database threads: authentication, rate limiting, validation,
the SQLite work and the JSON encoding all happen in one synchronous call (``_process``), so the
event loop never waits on SQLite and pays for one thread hand-off per request, not several.
Routing, body limits, error rendering and middleware are the shared ones of ``runicorn_lite.http``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runicorn_lite.db import DamagedStore, StoreError, in_db_thread
from runicorn_lite.db.backend import Backend
from runicorn_lite.http.auth import COOKIE_NAME, KEY_FORMAT, KEY_PREFIX, Principal, cookie
from runicorn_lite.http.body import BodyTooLarge, read_body
from runicorn_lite.http.caching import NO_STORE, if_none_match_hits, private_cache, strong_etag
from runicorn_lite.http.errors import HTTPProblem, UnexpectedErrors, exception_handlers, store_problem
from runicorn_lite.http.middleware import ResponseTimeMiddleware
from runicorn_lite.optimization import queries, stats
from runicorn_lite.optimization import validation as v
from runicorn_lite.optimization.errors import rate_limited, render, store_refusal, unauthorized
from runicorn_lite.optimization.keys import KeyChecker
from runicorn_lite.optimization.limits import StoreLimiter
from runicorn_lite.optimization.model import OptimizationError
from runicorn_lite.optimization.sessions import session_principal
from runicorn_lite.optimization.store import open_primary
from runicorn_lite.settings import Settings
from runicorn_lite.timeutil import now_iso

log = logging.getLogger("runicorn_lite.optimization")

JSON = "application/json"
# 1000 iterations with generous params/metrics fit well within this.
MAX_BODY_BYTES = 16 * 1024 * 1024
READ, WRITE, ITERATIONS, AUTH_FAILURES = "read", "write", "iterations", "auth_failures"
# The document's Cache-Control of each cacheable answer.
CACHE_LIST, CACHE_RUN, CACHE_STATS = private_cache(30), private_cache(60), private_cache(300)


@dataclass
class Call:
    """What ``_process`` needs from the request (plain data: it runs on a database thread)."""

    kind: str
    authorization: str | None
    client: str
    params: Mapping[str, str]
    path_params: Mapping[str, str]
    body: bytes
    if_none_match: str | None
    started: float
    # The body passed MAX_BODY_BYTES (reading stopped there): answered 413 after authentication.
    body_too_large: BodyTooLarge | None = None
    # The web app's session cookie (used when there is no Authorization header).
    session: str | None = None


@dataclass
class Result:
    """A successful answer before encoding; ``metadata`` is appended after the ETag is taken."""

    payload: dict[str, Any] | None = None
    status: int = 200
    cache_control: str | None = None  # set for cacheable GETs (which also get an ETag)
    encoded: bytes | None = None  # the payload already encoded (stats cache)
    meta_prefix: dict[str, Any] = field(default_factory=dict)


Handler = Callable[["OptimizationAPI", Principal, Call], Result]


class OptimizationAPI:
    """Handlers plus the shared state they need (store, limiter, key checker, settings)."""

    def __init__(self, settings: Settings, db: Backend) -> None:
        self.settings = settings
        self.db = db
        self.keys = KeyChecker(db)
        # In the store: every server over it shares the counters (team-server.md §2).
        self.limiter = StoreLimiter(db)
        self.stats_cache = stats.StatsCache()
        self.limits = {
            READ: settings.read_limit,
            WRITE: settings.write_limit,
            ITERATIONS: settings.iterations_limit,
        }

    def close(self) -> None:
        """Store the pending key bookkeeping, then close the database."""
        self.keys.close()
        self.db.close()

    # ---- request plumbing --------------------------------------------------------------------

    async def answer(self, request: Request, kind: str, handler: Handler, *, body: bool = False) -> Response:
        """Run ``handler`` for the request, with authentication and rate limits, on a database thread."""
        started = time.perf_counter()
        raw, too_large = b"", None
        if body:
            try:
                raw = await read_body(request, MAX_BODY_BYTES)
            except BodyTooLarge as exc:
                too_large = exc
        call = Call(
            kind=kind,
            authorization=request.headers.get("authorization"),
            client=request.client.host if request.client else "unknown",
            params=request.query_params,
            path_params=request.path_params,
            body=raw,
            if_none_match=request.headers.get("if-none-match"),
            started=started,
            body_too_large=too_large,
            session=cookie(request.headers.get("cookie"), COOKIE_NAME),
        )
        status, headers, content = await in_db_thread(self._process, handler, call)
        return Response(content, status, headers, media_type=JSON if content else None)

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
            if call.body_too_large is not None:
                raise call.body_too_large
            return self._encode(handler(self, principal, call), call, limit_headers)
        except OptimizationError as exc:
            raise self._with(store_refusal(exc), limit_headers) from exc
        except DamagedStore as exc:
            # Retrying cannot help, so no Retry-After; the cause was logged once by the store.
            damaged = HTTPProblem(
                503,
                "The primary database is damaged",
                hint=f"{self.db.path.name} ({self.db.damaged}) holds the API keys and optimization runs and "
                "is left as it is: restore it from a backup, or move it aside to start an empty one",
            )
            raise self._with(damaged, limit_headers) from exc
        except StoreError as exc:  # busy past the lock timeout, or over the read budget
            log.warning("store error on %s: %s", call.kind, exc)
            raise self._with(store_problem(exc), limit_headers) from exc
        except BodyTooLarge as exc:
            raise self._with(HTTPProblem(413, "Request body too large", hint=str(exc)), limit_headers) from exc
        except HTTPProblem as exc:
            self._with(exc, limit_headers)
            raise

    @staticmethod
    def _with(problem: HTTPProblem, limit_headers: dict[str, str]) -> HTTPProblem:
        """Every authenticated answer carries the rate-limit headers, errors included."""
        problem.headers = {**limit_headers, **problem.headers}
        return problem

    def _authenticate(self, call: Call) -> Principal:
        # Only failures are limited per address. A valid key always gets through: every local
        # client shares 127.0.0.1, and one script retrying a revoked key must not lock out the
        # others. Guessing stays useless: past the limit a wrong key gets 429 instead of 401,
        # and a key is 240 random bits.
        limit = self.settings.auth_failure_limit
        try:
            if call.authorization is None and call.session is not None:
                principal = session_principal(self.db, self.keys, call.session)
                if principal is None:
                    raise unauthorized("The session has ended; sign in again")
            else:
                principal = self._check_key(call.authorization)
        except HTTPProblem:
            blocked = self.limiter.peek(AUTH_FAILURES, call.client, limit)
            if not blocked.allowed:
                raise rate_limited(blocked.retry_after, blocked.headers()) from None
            self.limiter.hit(AUTH_FAILURES, call.client, limit)
            raise
        if principal.all_projects:
            raise HTTPProblem(403, "This key is for every project's runs",
                              hint="The optimization API answers per project: use a key made with --project NAME")
        if principal.read_only and call.kind != READ:
            raise HTTPProblem(403, "This key is read-only", hint="It can read optimization runs, not change them")
        return principal

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
        if value == token:
            problem = unauthorized("Invalid API key format")
            if token.startswith(KEY_PREFIX):  # the key itself, without its scheme
                problem.hint = f"The header must be 'Authorization: Bearer {KEY_PREFIX}…' ('Bearer ' before the key)"
            raise problem
        if not KEY_FORMAT.fullmatch(token):
            raise unauthorized("Invalid API key format")
        principal = self.keys.lookup(token)
        if principal is None:
            raise unauthorized("Invalid or inactive API key")
        return principal

    def _encode(self, result: Result, call: Call, limit_headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        stable = result.encoded if result.encoded is not None else orjson.dumps(result.payload)
        headers = dict(limit_headers)
        if result.cache_control is not None:
            etag = strong_etag(stable)
            headers["ETag"] = etag
            headers["Cache-Control"] = result.cache_control
            headers["Vary"] = "Authorization, Cookie"
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

    # ---- handlers (run on a database thread) -------------------------------------------------

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
            encoded = orjson.dumps(stats.stats(conn, principal.project_id, query))
            self.stats_cache.put(key, revision, encoded)
            return encoded

        return Result(encoded=self.db.read(compute), cache_control=CACHE_STATS, meta_prefix={"filters": filters})


# ---- routes: one endpoint class per path, so a 405 names every method of the path ----------------


def _api(request: Request) -> OptimizationAPI:
    api: OptimizationAPI = request.app.state.api
    return api


class Runs(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        return await _api(request).answer(request, READ, OptimizationAPI.list_runs)

    async def post(self, request: Request) -> Response:
        return await _api(request).answer(request, WRITE, OptimizationAPI.create_run, body=True)


class Run(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        return await _api(request).answer(request, READ, OptimizationAPI.get_run)

    async def patch(self, request: Request) -> Response:
        return await _api(request).answer(request, WRITE, OptimizationAPI.patch_run, body=True)


class Iterations(HTTPEndpoint):
    async def post(self, request: Request) -> Response:
        return await _api(request).answer(request, ITERATIONS, OptimizationAPI.add_iteration, body=True)


class IterationBatch(HTTPEndpoint):
    async def post(self, request: Request) -> Response:
        return await _api(request).answer(request, ITERATIONS, OptimizationAPI.add_iterations_batch, body=True)


class Stats(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        return await _api(request).answer(request, READ, OptimizationAPI.stats)


ROUTES = [
    Route("/runs", Runs),
    Route("/runs/{run_id}", Run),
    Route("/runs/{run_id}/iterations", Iterations),
    Route("/runs/{run_id}/iterations/batch", IterationBatch),
    Route("/stats", Stats),
]


def create_app(settings: Settings) -> Starlette:
    """The optimization API, to be mounted at ``/api/iris/optimization``.

    Opens the primary database now (a mounted app's lifespan never runs) and keeps the API at
    ``app.state.api`` (its database at ``app.state.db``); whoever mounts the app calls
    ``app.state.api.close()`` on shutdown.
    """
    settings.ensure_dirs()
    db = open_primary(settings)
    api = OptimizationAPI(settings, db)
    app = Starlette(routes=list(ROUTES), exception_handlers=exception_handlers(render, log))
    app.add_middleware(UnexpectedErrors, render=render, log=log)
    # The same X-Response-Time as the main app (which sets it again, outermost, when mounted),
    # so the sub-app is complete on its own.
    app.add_middleware(ResponseTimeMiddleware)
    # "/runs/" is not "/runs": answer the JSON 404 rather than a redirect.
    app.router.redirect_slashes = False
    app.state.db = db
    app.state.api = api
    return app
