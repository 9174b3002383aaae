"""One request to an ASGI app in process, its body read as the app sends it.

httpx's ASGITransport returns only once the app has sent the whole body, which a live event
stream never does; this drives the app the way a server does: the app's ``send`` waits until the
test has read the previous piece (a slow client), and closing sends ``http.disconnect``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Self
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message


class AsgiStream:
    def __init__(self, app: ASGIApp, url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},  # what uvicorn announces
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "root_path": "",
            "headers": [(b"host", b"testserver"),
                        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())],
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 40000),
        }
        self.app = app
        self._messages: asyncio.Queue[Message] = asyncio.Queue(maxsize=1)
        self._disconnected = asyncio.Event()
        self._requested = False
        self._task: asyncio.Task[None] | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.ended = False

    async def _receive(self) -> Message:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._disconnected.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        await self._messages.put(message)

    async def open(self, timeout: float = 5.0) -> Self:
        self._task = asyncio.create_task(self.app(self.scope, self._receive, self._send))
        start = await asyncio.wait_for(self._messages.get(), timeout)
        assert start["type"] == "http.response.start", start
        self.status = start["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
        return self

    async def read(self, timeout: float = 5.0) -> bytes:
        """The next piece of the body (b"" once it has ended)."""
        if self.ended:
            return b""
        message = await asyncio.wait_for(self._messages.get(), timeout)
        if not message.get("more_body", False):
            self.ended = True
        return bytes(message.get("body", b""))

    async def read_all(self, timeout: float = 10.0) -> bytes:
        out = bytearray()
        while not self.ended:
            out += await self.read(timeout)
        return bytes(out)

    async def close(self, timeout: float = 5.0) -> None:
        """Disconnect, and wait until the app has returned."""
        self._disconnected.set()
        assert self._task is not None
        while not self._task.done():
            # Unblock a send in progress: the app sees the disconnect at its next wait.
            with contextlib.suppress(asyncio.QueueEmpty):
                self._messages.get_nowait()
            await asyncio.wait([self._task], timeout=0.01)
            timeout -= 0.01
            if timeout <= 0:
                raise TimeoutError("the app did not return after the disconnect")
        self._task.result()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
