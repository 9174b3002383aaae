"""The one error shape of the optimization API, built in one place.

Every error answer is ``{"error": message, [hint | issues | code, retryAfter], "timestamp"}``;
handlers raise :class:`HTTPProblem` (or one of the helpers below), the store raises its own
errors (``model``), and :func:`render` writes either in this shape.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response
from starlette.types import Scope

from runicorn_lite.http.caching import NO_STORE
from runicorn_lite.http.errors import HTTPProblem
from runicorn_lite.optimization.model import (
    DuplicateIteration,
    InvalidTransition,
    OptimizationError,
    RunFinished,
    RunNotFound,
)
from runicorn_lite.timeutil import now_iso

INVALID_QUERY = "Invalid query parameters"
INVALID_BODY = "Invalid request body"
AUTH_HINT = 'Include "Authorization: Bearer <your-api-key>" header'
NOT_FOUND_HINT = "Check that the run ID is correct and belongs to your project"


def render(scope: Scope, problem: HTTPProblem) -> Response:
    """The documented error body; errors are never cached."""
    body: dict[str, object] = {"error": problem.message}
    if problem.hint is not None:
        body["hint"] = problem.hint
    body.update(problem.fields)
    body["timestamp"] = now_iso()
    headers = {"Cache-Control": NO_STORE, **problem.headers}
    return Response(orjson.dumps(body), problem.status, headers, media_type="application/json")


class Issues:
    """Collects validation problems in zod's ``flatten()`` shape."""

    def __init__(self) -> None:
        self.form_errors: list[str] = []
        self.field_errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.field_errors.setdefault(field, []).append(message)

    def form(self, message: str) -> None:
        self.form_errors.append(message)

    def __bool__(self) -> bool:
        return bool(self.form_errors or self.field_errors)

    def raise_if_any(self, error: str) -> None:
        if self:
            raise HTTPProblem(
                400,
                error,
                issues={"formErrors": self.form_errors, "fieldErrors": self.field_errors},
            )


def invalid(error: str, *, field: str | None = None, form: str | None = None) -> HTTPProblem:
    """A 400 with a single issue (a field error, or a form error when no field is named)."""
    issues = Issues()
    if field is not None:
        issues.add(field, form or "Invalid value")
    else:
        issues.form(form or "Invalid value")
    return HTTPProblem(
        400, error, issues={"formErrors": issues.form_errors, "fieldErrors": issues.field_errors}
    )


def unauthorized(message: str) -> HTTPProblem:
    return HTTPProblem(401, message, hint=AUTH_HINT, headers={"WWW-Authenticate": "Bearer"})


def rate_limited(retry_after: int, headers: dict[str, str]) -> HTTPProblem:
    return HTTPProblem(
        429,
        "Rate limit exceeded",
        code="RATE_LIMIT_EXCEEDED",
        retryAfter=retry_after,
        headers={**headers, "Retry-After": str(retry_after)},
    )


def store_refusal(exc: OptimizationError) -> HTTPProblem:
    """The answer to what the store refused."""
    if isinstance(exc, RunNotFound):
        return HTTPProblem(404, "Optimization run not found", hint=NOT_FOUND_HINT)
    if isinstance(exc, InvalidTransition):
        return HTTPProblem(409, "Invalid status transition", hint=str(exc))
    if isinstance(exc, RunFinished):
        return HTTPProblem(409, "Run is already finished", hint=str(exc))
    if isinstance(exc, DuplicateIteration):
        return HTTPProblem(409, "Duplicate iteration number", hint=str(exc))
    raise TypeError(f"no answer for {type(exc).__name__}")  # a new store error without one is a bug
