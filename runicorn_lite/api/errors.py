"""One error shape for V1/V2, produced in one place: ``{"detail": "<what is wrong>"}``.

The optimization API has its own documented shape and handles its errors inside its sub-app.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from runicorn_lite.api.responses import JSONResponse
from runicorn_lite.db import DamagedStore, QueryTimeout, StoreError, StoreRebuilding

log = logging.getLogger("runicorn_lite.api")


class ApiError(Exception):
    """A client-facing error: HTTP status and a message that says what is wrong."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def bad_request(detail: str) -> ApiError:
    """400 with ``detail``."""
    return ApiError(400, detail)


def not_found(detail: str) -> ApiError:
    """404 with ``detail``."""
    return ApiError(404, detail)


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """The canonical error body."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.detail, exc.headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"Not found: {request.url.path}"
    elif exc.status_code == 405:
        detail = f"Method {request.method} not allowed on {request.url.path}"
    return error_response(exc.status_code, str(detail), dict(exc.headers or {}))


async def _store_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, (StoreRebuilding, DamagedStore)):
        # The index is derived: it is rebuilt in the background (said once in the log).
        return error_response(
            503, f"The index is being rebuilt ({exc}); try again in a few seconds", {"Retry-After": "2"}
        )
    log.error("store error on %s %s: %s", request.method, request.url.path, exc)
    if isinstance(exc, QueryTimeout):
        return error_response(503, f"The query took too long and was stopped ({exc}); narrow it down")
    return error_response(503, "The index is busy or unavailable; try again shortly", {"Retry-After": "1"})


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "Internal server error")


EXCEPTION_HANDLERS = {
    ApiError: _api_error,
    HTTPException: _http_exception,
    StoreError: _store_error,
    Exception: _unexpected,
}
