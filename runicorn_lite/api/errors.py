"""One error shape for V1/V2, produced in one place: ``{"detail": "<what is wrong>"}``."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Scope

from runicorn_lite.http.errors import HTTPProblem
from runicorn_lite.http.responses import JSONResponse


class ApiError(HTTPProblem):
    """A V1/V2 answer other than success: status and the whole ``detail`` sentence."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, detail, headers=headers)


def bad_request(detail: str) -> ApiError:
    """400 with ``detail``."""
    return ApiError(400, detail)


def not_found(detail: str) -> ApiError:
    """404 with ``detail``."""
    return ApiError(404, detail)


def error_response(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    """The canonical error body."""
    return JSONResponse({"detail": detail}, status_code=status, headers=dict(headers or {}))


def render(scope: Scope, problem: HTTPProblem) -> Response:
    """A problem in the ``{"detail"}`` shape."""
    return error_response(problem.status, problem.detail, problem.headers)

