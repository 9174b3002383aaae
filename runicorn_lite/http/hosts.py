"""Which Host names the server answers to, and which requests must come from its own origin.

Two checks, as pure ASGI middleware in front of everything (team-server.md §3):

- **Host.** A request whose ``Host`` is not a name of this server gets 400. Loopback names
  (``127.0.0.1``, ``localhost``, ``[::1]``) with the server's port are always names of it; any
  other comes from ``--allowed-hosts``. A web page on another site that rebinds its own DNS name
  to the server's address still sends its own name, so it is refused (DNS rebinding).
- **Origin.** A request that changes anything (POST, PUT, PATCH, DELETE), the live event stream
  and every WebSocket are refused (403) when they carry an ``Origin`` other than the server's
  own: the scheme with the very ``Host`` the request came to. Another local port (a notebook
  server, ``python -m http.server``) is another origin. Other reads with a foreign ``Origin``
  are refused too: a page elsewhere has no business reading this server through a browser.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from runicorn_lite.http.errors import HTTPProblem, Renderer

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def is_loopback(host: str) -> bool:
    """Whether a bind address (``127.0.0.1``, ``::1``, ``localhost``) is reachable from this
    machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_netloc(netloc: str, default_port: int | None = None) -> tuple[str, int | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` → (lower-cased host, port or ``default_port``).
    A port that is not a number gives (host, -1), which matches nothing."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            return netloc, -1
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if not rest:
            return host, default_port
        if not rest.startswith(":"):
            return host, -1
        port_text = rest[1:]
    elif netloc.count(":") == 1:
        host, port_text = netloc.split(":")
    elif ":" in netloc:
        return f"[{netloc}]", default_port  # a bare IPv6 address
    else:
        return netloc, default_port
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        return host, -1
    return host, int(port_text)


@dataclass(frozen=True)
class HostPolicy:
    """The names a server answers to: loopback names on its port, and the allowed hosts (a
    name alone matches any port, as a reverse proxy in front may use its own; ``name:port``
    that port only)."""

    port: int
    allowed: tuple[str, ...] = ()

    @classmethod
    def of(cls, port: int, allowed: Iterable[str]) -> HostPolicy:
        return cls(port, tuple(a.strip().lower() for a in allowed if a.strip()))

    def accepts(self, host_header: str) -> bool:
        host, port = split_netloc(host_header)
        if port == -1:
            return False
        port = 80 if port is None else port
        if host in LOOPBACK_NAMES and port == self.port:
            return True
        for entry in self.allowed:
            name, want = split_netloc(entry)
            if name == host and (want is None or want == port):
                return True
        return False


def parse_allowed_hosts(text: str | None) -> tuple[str, ...]:
    """``a,b:8080,[::1]`` → its names; a malformed one raises ValueError naming it."""
    names: list[str] = []
    for raw in (text or "").split(","):
        name = raw.strip().lower()
        if not name:
            continue
        host, port = split_netloc(name)
        if port == -1 or not host or "/" in host or "@" in host or " " in host:
            raise ValueError(f"{raw.strip()!r} is not a host name (give names like team.example or 10.0.0.5:23300)")
        names.append(name)
    return tuple(names)


def same_origin(origin: str, host_header: str, scheme: str) -> bool:
    """Whether an ``Origin`` header names the origin of a request that came to ``host_header``
    over ``scheme`` (http or https; ws/wss count as those)."""
    origin_scheme, sep, netloc = origin.strip().lower().partition("://")
    if not sep or origin_scheme not in ("http", "https") or "/" in netloc:
        return False  # "null" (sandboxed frames, files), anything malformed
    base = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    if origin_scheme != base:
        return False
    return split_netloc(netloc, _DEFAULT_PORTS[origin_scheme]) == split_netloc(host_header, _DEFAULT_PORTS[base])


class HostOriginMiddleware:
    """The Host and Origin checks of the module docstring. ``policy`` None checks no Host
    (in-process test clients, which call the server ``testserver``); the Origin check is
    always on."""

    def __init__(self, app: ASGIApp, render: Renderer, policy: HostPolicy | None = None) -> None:
        self.app = app
        self.render = render
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = origin = None
        for name, value in scope.get("headers") or ():
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        if self.policy is not None and not self.policy.accepts(host or ""):
            shown = (host or "")[:100]
            await self._refuse(scope, receive, send, 400, f"Host {shown!r} is not served here: this server answers to "
                               "the names of --allowed-hosts (and loopback names on its port)")
            return
        if origin is not None and not same_origin(origin, host or "", scope.get("scheme", "http")):
            await self._refuse(scope, receive, send, 403, f"Cross-origin requests are not accepted (Origin "
                               f"{origin[:100]!r} is not this server's)")
            return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        if scope["type"] == "websocket":
            # Before the handshake is accepted, a close is an HTTP 403 to the client.
            await send({"type": "websocket.close", "code": 4403, "reason": message[:120]})
            return
        await self.render(scope, HTTPProblem(status, message))(scope, receive, send)
