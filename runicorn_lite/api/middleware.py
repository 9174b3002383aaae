"""The V2 document's rate limits, as pure ASGI middleware."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runicorn_lite.api.errors import error_response, render
from runicorn_lite.db import StoreError, in_db_thread
from runicorn_lite.http.errors import store_problem
from runicorn_lite.http.ratelimit import Limiter

WINDOW_S = 60.0
# The V2 document's limits, per client address and endpoint, per 60 s.
V2_LIMITS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    ("POST", re.compile(r"^/api/v2/experiments/batch-delete$"), 10),
    ("GET", re.compile(r"^/api/v2/experiments$"), 100),
    ("GET", re.compile(r"^/api/v2/experiments/[^/]+/metrics/fast$"), 100),
    ("GET", re.compile(r"^/api/v2/experiments/[^/]+$"), 200),
)


class RateLimitMiddleware:
    """The V2 document's limits per client address (installed only with ``serve --rate-limit``).

    Counting is the optimization API's fixed-window limiter over the primary store
    (``StoreLimiter``): one mechanism, one header format, and counters that every worker and
    every server over that store share (team-server.md §2: a limit of 100 a minute is 100 in
    total, not 100 per worker). A hit is a short write, so it runs on a database thread.
    """

    def __init__(self, app: ASGIApp, limiter: Limiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # HEAD runs the GET handler (the same query): it shares the GET budget.
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        path = scope["path"]
        rule = next(((p, lim) for m, p, lim in V2_LIMITS if m == method and p.match(path)), None)
        if rule is None:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        try:
            decision = await in_db_thread(self.limiter.hit, f"{method} {rule[0].pattern}", client, rule[1])
        except StoreError as exc:  # the counters are unreachable: the answer says so, never a 500
            await render(scope, store_problem(exc))(scope, receive, send)
            return
        headers = decision.headers()
        if not decision.allowed:
            retry = decision.retry_after
            response = error_response(
                429,
                f"Rate limit exceeded: {rule[1]} requests per {int(WINDOW_S)} s on this endpoint; retry in {retry} s",
                {"Retry-After": str(retry), **headers},
            )
            await response(scope, receive, send)
            return
        limit_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *limit_headers]
            await send(message)

        await self.app(scope, receive, send_with_limits)
