"""Pure ASGI middleware of the whole server: X-Response-Time (Host and Origin checks: hosts.py)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
