"""Keys for V1/V2 (``serve --auth keys``, team-server.md §3), as pure ASGI middleware.

Every ``/api/…`` request (WebSockets included) is resolved to the key it carries, sent as
``Authorization: Bearer sk_live_…`` or as the session cookie a browser got from
``POST /api/auth/session``. The key's :class:`~runicorn_lite.optimization.keys.Principal` goes
into the request's state (``request.state.principal``), where the handlers read which projects
it may see (:mod:`runicorn_lite.api.access`). With ``--auth none`` no principal is set: every
run is visible, as on a laptop.

Open whatever ``--auth`` says: ``/api/health``, the session endpoints (they take the key in
their body), the optimization API (it checks its own keys, in its own error shape), and
everything outside ``/api/`` (the page, its assets, ``/openapi.json``). Paths under
``ALWAYS_KEYED`` (uploads) need a key even with ``--auth none``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from runicorn_lite.db import StoreError, in_db_thread
from runicorn_lite.http.errors import HTTPProblem, Renderer, store_problem
from runicorn_lite.http.ratelimit import FixedWindowLimiter, Limiter

KEY_PREFIX = "sk_live_"
# Generated keys match this; anything else that starts with sk_live_ cannot be one of ours,
# but we still only say "invalid format" for what does not look like a key at all.
KEY_FORMAT = re.compile(r"sk_live_[A-Za-z0-9_\-]{8,200}")
COOKIE_NAME = "runicorn_lite_session"
SESSION_TTL_S = 7 * 24 * 3600

OPEN_PATHS = ("/api/health", "/api/auth/session")
ALWAYS_KEYED = ("/api/uploads/",)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
HOW_TO_SEND = ("send 'Authorization: Bearer sk_live_…' (make a key with `runicorn-lite keys create --project NAME`), "
               "or sign in on the web page (POST /api/auth/session)")



@dataclass(frozen=True)
class Principal:
    """Who a valid key speaks for: one project's runs, or (``all_projects``) every run;
    ``read_only`` keys may not change anything."""

    key_id: str
    project_id: str
    all_projects: bool = False
    read_only: bool = False

    def sees(self, project: str | None) -> bool:
        """Whether runs of ``project`` are this key's to see."""
        return self.all_projects or project == self.project_id


class KeyStore(Protocol):
    """Keys and web sessions, as the server's V1/V2 side uses them (blocking calls: run them on
    a database thread). The primary database implements it (optimization/sessions.py)."""

    def resolve(self, token: str | None, session: str | None) -> Principal | None:
        """The principal of a bearer key, else of a session token; None for neither."""

    def start(self, principal: Principal) -> str:
        """A new session of the principal's key: its token."""

    def end(self, token: str) -> None:
        """Forget a session."""


def bearer(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer …`` header (None when there is none)."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def cookie(header: str | None, name: str) -> str | None:
    """One cookie's value from a ``Cookie`` header."""
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None and morsel.value else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def principal_of(scope: Scope) -> Principal | None:
    """The key a request was made with (None: no key was needed, every run is visible)."""
    state = scope.get("state") or {}
    found = state.get("principal")
    return found if isinstance(found, Principal) else None


class AuthMiddleware:
    """The checks of the module docstring. ``required`` is ``--auth keys``."""

    def __init__(self, app: ASGIApp, render: Renderer, keys: KeyStore, required: bool, skip_prefix: str,
                 failure_limit: int = 60, failures: Limiter | None = None) -> None:
        self.app = app
        self.render = render
        self.keys = keys
        self.required = required
        self.skip_prefix = skip_prefix
        # Wrong keys per client address per minute, as the optimization API limits them: past
        # the limit a wrong key gets 429 (a valid key always gets through). The server counts
        # them in the primary store, so every worker shares the count (team-server.md §2).
        self.failure_limit = failure_limit
        self.failures: Limiter = failures if failures is not None else FixedWindowLimiter()

    def _needs_key(self, path: str) -> bool:
        if not path.startswith("/api/") or path in OPEN_PATHS:
            return False
        if path == self.skip_prefix or path.startswith(self.skip_prefix + "/"):
            return False
        return self.required or path.startswith(ALWAYS_KEYED)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self._needs_key(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = bearer(_header(scope, b"authorization"))
        session = None if token is not None else cookie(_header(scope, b"cookie"), COOKIE_NAME)
        principal: Principal | None = None
        if token is not None and not KEY_FORMAT.fullmatch(token):
            problem: HTTPProblem | None = HTTPProblem(401, "Invalid API key format", hint=HOW_TO_SEND)
        elif token is None and session is None:
            problem = HTTPProblem(401, "An API key is required", hint=HOW_TO_SEND)
        else:
            try:
                principal = await in_db_thread(self.keys.resolve, token, session)
            except StoreError as exc:
                await self._refuse(scope, receive, send, store_problem(exc))
                return
            problem = None if principal is not None else HTTPProblem(
                401, "Invalid or inactive API key" if token is not None else "The session has ended; sign in again",
                hint=HOW_TO_SEND)
        if problem is None and principal is not None and principal.read_only and scope["type"] == "http" \
                and scope["method"] not in SAFE_METHODS:
            problem = HTTPProblem(403, "This key is read-only: it cannot change anything")
        if problem is not None:
            if problem.status == 401 and (token is not None or session is not None):
                client = (scope.get("client") or ("unknown", 0))[0]
                try:
                    problem = await in_db_thread(self._count_failure, client) or problem
                except StoreError as exc:
                    problem = store_problem(exc)
            await self._refuse(scope, receive, send, problem)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _count_failure(self, client: str) -> HTTPProblem | None:
        """Count a wrong key from ``client``; the 429 once it is past the limit (then it is not counted)."""
        blocked = self.failures.peek("auth", client, self.failure_limit)
        if not blocked.allowed:
            return HTTPProblem(429, f"Too many wrong keys from this address; retry in {blocked.retry_after} s",
                               headers={"Retry-After": str(blocked.retry_after)})
        self.failures.hit("auth", client, self.failure_limit)
        return None

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, problem: HTTPProblem) -> None:
        if scope["type"] == "websocket":
            # Refused before the handshake: the client sees an HTTP 403 and the close code.
            await send({"type": "websocket.close", "code": 4401 if problem.status == 401 else 4403,
                        "reason": problem.message[:120]})
            return
        headers = {"WWW-Authenticate": 'Bearer realm="runicorn-lite"'} if problem.status == 401 else {}
        problem.headers = {**headers, **problem.headers}
        response = self.render(scope, problem)
        await response(scope, receive, send)

