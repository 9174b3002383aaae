"""A small synchronous client of the optimization runs API (``/api/iris/optimization``).

Mirrors the document's TypeScript SDK::

    from runicorn_lite.client import OptimizationClient

    with OptimizationClient(api_key=os.environ["IRIS_API_KEY"]) as client:
        run = client.runs.create(run_name="Experiment A", optimizer_type="bayesian",
                                 config={"learning_rate": 0.01})
        for i in range(10):
            client.iterations.create(run["id"], iteration_number=i,
                                     params={"learning_rate": 0.01 * (i + 1)}, score=random())
        client.runs.update(run["id"], status="completed", final_score=0.95)
        stats = client.stats.get()
        print(f"Success rate: {stats['statistics']['successRate']}%")

Errors raise :class:`OptimizationAPIError` subclasses carrying the status and the server's
message (and, for 400s, its ``fieldErrors``/``formErrors``); a 429 raises
:class:`RateLimitError` with ``retry_after`` in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Self
from urllib.parse import quote

import httpx

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "ForbiddenError",
    "NotFoundError",
    "OptimizationAPIError",
    "OptimizationClient",
    "OptimizationConnectionError",
    "OptimizationError",
    "RateLimitError",
    "ServerError",
    "ValidationError",
]

DEFAULT_BASE_URL = "http://127.0.0.1:23300"
API_PREFIX = "/api/iris/optimization"


class OptimizationError(Exception):
    """Anything that went wrong talking to the optimization API."""


class OptimizationConnectionError(OptimizationError):
    """The server could not be reached, or did not answer in time."""


class OptimizationAPIError(OptimizationError):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, body: Mapping[str, Any] | None = None) -> None:
        self.status = status
        self.message = message
        self.body: dict[str, Any] = dict(body or {})
        self.hint: str | None = self.body.get("hint")
        issues = self.body.get("issues") or {}
        self.field_errors: dict[str, list[str]] = dict(issues.get("fieldErrors") or {})
        self.form_errors: list[str] = list(issues.get("formErrors") or [])
        detail = message
        if self.field_errors:
            detail += ": " + "; ".join(f"{k}: {', '.join(v)}" for k, v in self.field_errors.items())
        elif self.form_errors:
            detail += ": " + "; ".join(self.form_errors)
        elif self.hint:
            detail += f" ({self.hint})"
        super().__init__(f"{status} {detail}")


class ValidationError(OptimizationAPIError):
    """400: the request's parameters or body were rejected (see ``field_errors``)."""


class AuthenticationError(OptimizationAPIError):
    """401: missing, malformed, unknown or revoked API key."""


class ForbiddenError(OptimizationAPIError):
    """403: the key may not access the requested project."""


class NotFoundError(OptimizationAPIError):
    """404: no such run in this key's project."""


class ConflictError(OptimizationAPIError):
    """409: invalid status transition, duplicate iteration number, or a finished run."""


class RateLimitError(OptimizationAPIError):
    """429: too many requests; retry after ``retry_after`` seconds."""

    def __init__(
        self,
        status: int,
        message: str,
        body: Mapping[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(status, message, body)
        self.retry_after = retry_after


class ServerError(OptimizationAPIError):
    """5xx: the server failed; details are in its log."""


_BY_STATUS: dict[int, type[OptimizationAPIError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
}


def _segment(value: str) -> str:
    """One path segment, escaped (so an odd run id cannot reach another endpoint)."""
    return quote(str(value), safe="")


def _drop_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class OptimizationClient:
    """Synchronous client bound to one API key (and so to one project)."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        """``http_client`` lets callers bring their own ``httpx.Client`` (pooling, transports);
        its base URL is then taken as is."""
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.runs = Runs(self)
        self.iterations = Iterations(self)
        self.stats = Stats(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        """Send one request under the API prefix; the decoded JSON answer or an exception."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method, API_PREFIX + path, params=query, json=json, headers=self._headers
            )
        except httpx.TransportError as exc:
            raise OptimizationConnectionError(f"cannot reach the optimization API: {exc}") from exc
        if response.is_success:
            answer: dict[str, Any] = response.json()
            return answer
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        message = str(body.get("error") or response.reason_phrase or "Error")
        status = response.status_code
        if status == 429:
            retry = body.get("retryAfter", response.headers.get("retry-after"))
            try:
                retry_after = int(retry) if retry is not None else None
            except (TypeError, ValueError):
                retry_after = None
            raise RateLimitError(status, message, body, retry_after=retry_after)
        if status >= 500:
            raise ServerError(status, message, body)
        raise _BY_STATUS.get(status, OptimizationAPIError)(status, message, body)


class Runs:
    """``client.runs``: create, get, list, update."""

    def __init__(self, client: OptimizationClient) -> None:
        self._client = client

    def create(
        self,
        *,
        optimizer_type: str,
        config: Mapping[str, Any],
        run_name: str | None = None,
        search_space: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        direction: str | None = None,
    ) -> dict[str, Any]:
        """Create a run; returns the run object (``status`` is ``pending``)."""
        body = _drop_none(
            {
                "run_name": run_name,
                "optimizer_type": optimizer_type,
                "config": config,
                "search_space": search_space,
                "metadata": metadata,
                "direction": direction,
            }
        )
        run: dict[str, Any] = self._client.request("POST", "/runs", json=body)["run"]
        return run

    def get(self, run_id: str) -> dict[str, Any]:
        """``{"run", "iterations", "stats", "metadata"}`` of one run."""
        return self._client.request("GET", f"/runs/{_segment(run_id)}")

    def list(self, **filters: Any) -> dict[str, Any]:
        """``{"runs", "pagination", "metadata"}``; filters: status, optimizer_type, limit,
        offset, order_by, order, project_id."""
        return self._client.request("GET", "/runs", params=filters)

    def update(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """PATCH a run (status, final_score, best_params, ...); returns the updated run."""
        run: dict[str, Any] = self._client.request("PATCH", f"/runs/{_segment(run_id)}", json=fields)["run"]
        return run


class Iterations:
    """``client.iterations``: add one, or many at once."""

    def __init__(self, client: OptimizationClient) -> None:
        self._client = client

    def create(
        self,
        run_id: str,
        *,
        iteration_number: int,
        params: Mapping[str, Any],
        score: float,
        metrics: Mapping[str, Any] | None = None,
        duration_ms: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add an iteration; returns ``{"iteration", "runUpdates", "metadata"}``."""
        body = _drop_none(
            {
                "iteration_number": iteration_number,
                "params": params,
                "score": score,
                "metrics": metrics,
                "duration_ms": duration_ms,
                "metadata": metadata,
            }
        )
        return self._client.request("POST", f"/runs/{_segment(run_id)}/iterations", json=body)

    def create_many(self, run_id: str, iterations: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Add up to 1000 iterations in one all-or-nothing request;
        returns ``{"iterations", "runUpdates", "metadata"}``."""
        body = {"iterations": [dict(item) for item in iterations]}
        return self._client.request("POST", f"/runs/{_segment(run_id)}/iterations/batch", json=body)


class Stats:
    """``client.stats``: aggregated statistics of the key's project."""

    def __init__(self, client: OptimizationClient) -> None:
        self._client = client

    def get(self, **filters: Any) -> dict[str, Any]:
        """The full stats answer; filters: optimizer_type, status, start_date, end_date."""
        return self._client.request("GET", "/stats", params=filters)
