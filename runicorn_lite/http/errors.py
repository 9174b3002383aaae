"""Errors as HTTP answers: one exception for every answer that is not a success, one mapping of
the failures every endpoint can meet (unknown path, wrong method, too large a body, a busy or
slow store, a bug), and a renderer per API for its documented body shape.

V1/V2 render ``{"detail": ...}``; the optimization API ``{"error", "hint", ..., "timestamp"}``.
Status codes are chosen here and in each API's HTTP layer, never in the query layers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runicorn_lite.db import (
    BigAnswersBusy,
    DamagedStore,
    DatabaseUnavailable,
    DiskFull,
    QueryTimeout,
    StoreError,
    StoreRebuilding,
)
from runicorn_lite.http.body import BodyTooLarge


class HTTPProblem(Exception):
    """An answer other than success: status, a short message, an optional hint on what to do,
    extra headers and any further fields of the body (the optimization API's ``issues``...)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        hint: str | None = None,
        headers: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint
        self.headers: dict[str, str] = dict(headers or {})
        self.fields = fields

    @property
    def detail(self) -> str:
        """Message and hint in one sentence (the ``{"detail"}`` shape has one field)."""
        return self.message if self.hint is None else f"{self.message}: {self.hint}"


# Renders a problem in the shape of the API that the request addressed.
Renderer = Callable[[Scope, HTTPProblem], Response]


def store_problem(exc: StoreError, *, derived: bool = False) -> HTTPProblem:
    """What a failing store means to a client (the same for every API). A ``derived`` store
    (the index) that is damaged is being rebuilt: a retry soon succeeds. Any other damaged store
    stays so until someone acts, and a retry cannot help (no Retry-After)."""
    if isinstance(exc, StoreRebuilding) or (derived and isinstance(exc, DamagedStore)):
        return HTTPProblem(
            503, f"The index is being rebuilt ({exc}); try again in a few seconds", headers={"Retry-After": "2"}
        )
    if isinstance(exc, DatabaseUnavailable):
        return HTTPProblem(503, str(exc), headers={"Retry-After": "2"})
    if isinstance(exc, DamagedStore):
        return HTTPProblem(503, "The database is damaged", hint=str(exc))
    if isinstance(exc, DiskFull):  # a retry helps only once someone frees space: no Retry-After
        return HTTPProblem(507, "The disk is full", hint=f"{exc}; free some space on it")
    if isinstance(exc, BigAnswersBusy):
        return HTTPProblem(503, f"Busy: {exc}", headers={"Retry-After": "5"})
    if isinstance(exc, QueryTimeout):
        return HTTPProblem(503, "The query took too long and was stopped", hint=f"{exc}; narrow it down")
    return HTTPProblem(
        503, "Service temporarily unavailable", hint="the database is busy; retry shortly", headers={"Retry-After": "1"}
    )


def http_exception_problem(request: Request, exc: HTTPException) -> HTTPProblem:
    """Starlette's own 404/405 (no route, wrong method) as problems that say what exists."""
    headers = dict(exc.headers or {})
    path = request.url.path
    if exc.status_code == 404:
        return HTTPProblem(404, "Not found", hint=f"no endpoint at {path} (see /openapi.json)", headers=headers)
    if exc.status_code == 405:
        allowed = headers.get("Allow") or headers.get("allow") or ""
        return HTTPProblem(
            405, "Method not allowed", hint=f"{path} accepts {allowed}, not {request.method}", headers=headers
        )
    return HTTPProblem(exc.status_code, str(exc.detail), headers=headers)


Handler = Callable[[Request, Exception], Awaitable[Response]]


def exception_handlers(render: Renderer, log: logging.Logger, *, derived_store: bool = False) -> dict[Any, Handler]:
    """Starlette exception handlers that turn every expected failure into a rendered problem
    (``derived_store``: the app's store is rebuilt when damaged, see :func:`store_problem`)."""

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPProblem)
        return render(request.scope, exc)

    async def http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return render(request.scope, http_exception_problem(request, exc))

    async def body_too_large(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BodyTooLarge)
        return render(request.scope, HTTPProblem(413, "Request body too large", hint=str(exc)))

    async def store_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreError)
        if not isinstance(exc, (StoreRebuilding, DamagedStore)):  # those are said once, where they are found
            log.warning("store error on %s %s: %s", request.method, request.url.path, exc)
        return render(request.scope, store_problem(exc, derived=derived_store))

    return {
        HTTPProblem: problem,
        HTTPException: http_exception,
        BodyTooLarge: body_too_large,
        StoreError: store_error,
    }


class UnexpectedErrors:
    """Turns any other exception into a bare 500 (the traceback goes to the log, never to the
    client) and ends it there: Starlette's last-resort handler answers and then re-raises, which
    in a mounted app would reach the outer app after the answer was sent."""

    def __init__(self, app: ASGIApp, render: Renderer, log: logging.Logger) -> None:
        self.app = app
        self.render = render
        self.log = log

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
            self.log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if response_started:
                raise
            await self.render(scope, HTTPProblem(500, "Internal server error"))(scope, receive, send_tracked)
