"""Pure ASGI middleware: X-Response-Time on every answer, and the V2 document's rate limits."""

from __future__ import annotations

import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runicorn_lite.api.errors import error_response
from runicorn_lite.optimization.ratelimit import FixedWindowLimiter

WINDOW_S = 60.0
# The V2 document's limits, per client address and endpoint, per 60 s.
V2_LIMITS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    ("POST", re.compile(r"^/api/v2/experiments/batch-delete$"), 10),
    ("GET", re.compile(r"^/api/v2/experiments$"), 100),
    ("GET", re.compile(r"^/api/v2/experiments/[^/]+/metrics/fast$"), 100),
    ("GET", re.compile(r"^/api/v2/experiments/[^/]+$"), 200),
)


class ResponseTimeMiddleware:
    """Adds ``X-Response-Time: <ms>ms`` to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def send_with_time(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-response-time"]
                elapsed = (time.perf_counter() - start) * 1000
                headers.append((b"x-response-time", f"{elapsed:.2f}ms".encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_time)


class RateLimitMiddleware:
    """The V2 document's limits per client address (installed only with ``serve --rate-limit``).

    Counting is the optimization API's fixed-window limiter: one mechanism, one header format.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.limiter = FixedWindowLimiter(int(WINDOW_S))

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
        decision = self.limiter.hit(f"{method} {rule[0].pattern}", client, rule[1])
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


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _hostname(netloc: str) -> str:
    """'host:port' or '[v6]:port' -> host, lower-cased."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class LocalOriginMiddleware:
    """Keeps web pages of other sites away from this local server.

    A browser sends ``Origin`` with cross-site requests (form posts, fetches, WebSockets):
    those are refused unless the origin is this server itself or a loopback address, so a page
    elsewhere cannot delete runs or read logs through the user's browser. With ``check_host``
    (a server bound to loopback) the ``Host`` header must name a loopback address too, which
    defeats DNS rebinding.
    """

    def __init__(self, app: ASGIApp, check_host: bool = False) -> None:
        self.app = app
        self.check_host = check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if self.check_host and host and _hostname(host) not in LOOPBACK_NAMES:
            await self._refuse(scope, receive, send, f"Host {host[:100]} is not served here")
            return
        origin = headers.get(b"origin")
        if origin is not None:
            netloc = origin.decode("latin-1").split("://", 1)[-1]
            if netloc != host and _hostname(netloc) not in LOOPBACK_NAMES:
                await self._refuse(scope, receive, send, "Cross-origin requests are not accepted")
                return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4403, "reason": detail})
            return
        await error_response(403, detail)(scope, receive, send)
