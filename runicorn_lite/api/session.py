"""``/api/auth/session``: the web app signs in once with a key and holds a session cookie.

``POST {"key": "sk_live_…"}`` checks the key and sets an ``HttpOnly; SameSite=Strict`` cookie
(``Secure`` when the page came over HTTPS) holding a session token, never the key; the page, the
event stream and the WebSocket then carry it. ``DELETE`` ends the session. ``GET`` says whether
this server wants a key and what the current session may see, so the page knows to ask.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runicorn_lite.api.context import context
from runicorn_lite.api.errors import ApiError, bad_request
from runicorn_lite.api.params import json_object
from runicorn_lite.api.responses import JSONResponse
from runicorn_lite.db import in_db_thread
from runicorn_lite.http.auth import COOKIE_NAME, HOW_TO_SEND, KEY_FORMAT, SESSION_TTL_S, Principal, bearer, cookie

PATH = "/api/auth/session"


def _who(auth: str, principal: Principal | None) -> dict[str, Any]:
    return {
        "auth": auth,
        "signed_in": principal is not None,
        "project": None if principal is None or principal.all_projects else principal.project_id,
        "all_projects": principal is not None and principal.all_projects,
        "read_only": principal is not None and principal.read_only,
    }


def _cookie_header(request: Request, value: str, max_age: int) -> str:
    secure = "; Secure" if request.url.scheme in ("https", "wss") else ""
    return f"{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"


async def sign_in(request: Request) -> Response:
    ctx = context(request)
    body = await json_object(request, max_bytes=4096)
    key = body.get("key")
    if not isinstance(key, str) or not key.strip():
        raise bad_request("Field 'key' is required: an API key (sk_live_…)")
    key = bearer(key) or key.strip()  # a pasted "Bearer sk_live_…" is the key too
    if not KEY_FORMAT.fullmatch(key):
        raise ApiError(401, f"Invalid API key format: {HOW_TO_SEND}")
    principal = await in_db_thread(ctx.auth.resolve, key, None)
    if principal is None:
        raise ApiError(401, "Invalid or inactive API key")
    token = await in_db_thread(ctx.auth.start, principal)
    response = JSONResponse(_who(ctx.settings.auth, principal))
    response.headers["Set-Cookie"] = _cookie_header(request, token, SESSION_TTL_S)
    response.headers["Cache-Control"] = "no-store"
    return response


async def sign_out(request: Request) -> Response:
    ctx = context(request)
    token = cookie(request.headers.get("cookie"), COOKIE_NAME)
    if token is not None:
        await in_db_thread(ctx.auth.end, token)
    response = JSONResponse(_who(ctx.settings.auth, None))
    response.headers["Set-Cookie"] = _cookie_header(request, "", 0)
    return response


async def current(request: Request) -> Response:
    ctx = context(request)
    token = bearer(request.headers.get("authorization"))
    session = None if token is not None else cookie(request.headers.get("cookie"), COOKIE_NAME)
    principal = None
    if (token is not None and KEY_FORMAT.fullmatch(token)) or session is not None:
        principal = await in_db_thread(ctx.auth.resolve, token, session)
    response = JSONResponse(_who(ctx.settings.auth, principal))
    response.headers["Cache-Control"] = "no-store"
    return response


async def session(request: Request) -> Response:
    """One route for the three methods (a wrong one gets 405 listing them all)."""
    if request.method == "POST":
        return await sign_in(request)
    if request.method == "DELETE":
        return await sign_out(request)
    return await current(request)


def routes() -> list[Route]:
    return [Route(PATH, session, methods=["GET", "POST", "DELETE"])]
