"""Pure ASGI middleware of the whole server: X-Response-Time, and local-origin protection."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runicorn_lite.http.errors import HTTPProblem, Renderer


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

    def __init__(self, app: ASGIApp, render: Renderer, check_host: bool = False) -> None:
        self.app = app
        self.render = render
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

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4403, "reason": message})
            return
        await self.render(scope, HTTPProblem(403, message))(scope, receive, send)
