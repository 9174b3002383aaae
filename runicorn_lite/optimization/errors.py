"""The one error shape of the optimization API, built in one place.

Every error answer is ``{"error": message, [hint | issues | code, retryAfter], "timestamp"}``;
handlers raise :class:`ApiError` (or one of the helpers below) and ``app.py`` renders it.
"""

from __future__ import annotations

from typing import Any

from runicorn_lite.optimization.timeutil import now_iso

INVALID_QUERY = "Invalid query parameters"
INVALID_BODY = "Invalid request body"
AUTH_HINT = 'Include "Authorization: Bearer <your-api-key>" header'
NOT_FOUND_HINT = "Check that the run ID is correct and belongs to your project"


class ApiError(Exception):
    """An answer other than success: status code, body fields and extra headers."""

    def __init__(
        self,
        status: int,
        error: str,
        *,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.hint = hint
        self.fields = fields
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error}
        if self.hint is not None:
            body["hint"] = self.hint
        body.update(self.fields)
        body["timestamp"] = now_iso()
        return body


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
            raise ApiError(
                400,
                error,
                issues={"formErrors": self.form_errors, "fieldErrors": self.field_errors},
            )


def invalid(error: str, *, field: str | None = None, form: str | None = None) -> ApiError:
    """A 400 with a single issue (a field error, or a form error when no field is named)."""
    issues = Issues()
    if field is not None:
        issues.add(field, form or "Invalid value")
    else:
        issues.form(form or "Invalid value")
    return ApiError(
        400, error, issues={"formErrors": issues.form_errors, "fieldErrors": issues.field_errors}
    )


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, hint=AUTH_HINT, headers={"WWW-Authenticate": "Bearer"})


def run_not_found() -> ApiError:
    return ApiError(404, "Optimization run not found", hint=NOT_FOUND_HINT)


def rate_limited(retry_after: int, headers: dict[str, str]) -> ApiError:
    return ApiError(
        429,
        "Rate limit exceeded",
        code="RATE_LIMIT_EXCEEDED",
        retryAfter=retry_after,
        headers={**headers, "Retry-After": str(retry_after)},
    )
