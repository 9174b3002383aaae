"""OptimizationClient's error mapping, through httpx.MockTransport (the happy path runs
against a real server in test_e2e.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from runicorn_lite.client import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    OptimizationAPIError,
    OptimizationClient,
    OptimizationConnectionError,
    RateLimitError,
    ServerError,
    ValidationError,
)


def _client(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> tuple[OptimizationClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    http = httpx.Client(base_url="http://server", transport=httpx.MockTransport(handler))
    return OptimizationClient("sk_live_abcdefghijklmnop", http_client=http), seen


def test_requests_carry_the_key_and_drop_unset_fields() -> None:
    client, seen = _client(201, {"run": {"id": "x"}})
    assert client.runs.create(optimizer_type="bayesian", config={}) == {"id": "x"}
    request = seen[0]
    assert request.url.path == "/api/iris/optimization/runs"
    assert request.headers["authorization"] == "Bearer sk_live_abcdefghijklmnop"
    assert request.read() == b'{"optimizer_type":"bayesian","config":{}}'
    client.stats.get(status=None, optimizer_type="genetic")
    assert str(seen[1].url) == "http://server/api/iris/optimization/stats?optimizer_type=genetic"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ValidationError),
        (401, AuthenticationError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (409, ConflictError),
        (500, ServerError),
        (418, OptimizationAPIError),
    ],
)
def test_statuses_map_to_exceptions(status: int, cls: type[Exception]) -> None:
    body = {
        "error": "Something",
        "issues": {"formErrors": [], "fieldErrors": {"limit": ["Must be between 1 and 100"]}},
    }
    client, _ = _client(status, body)
    with pytest.raises(cls) as caught:
        client.runs.list(limit=0)
    error = caught.value
    assert isinstance(error, OptimizationAPIError)
    assert error.status == status and error.message == "Something"
    assert error.field_errors == {"limit": ["Must be between 1 and 100"]}
    assert "limit: Must be between 1 and 100" in str(error)


def test_rate_limit_error_has_retry_after() -> None:
    body = {"error": "Rate limit exceeded", "code": "RATE_LIMIT_EXCEEDED", "retryAfter": 45}
    client, _ = _client(429, body, {"Retry-After": "45"})
    with pytest.raises(RateLimitError) as caught:
        client.iterations.create("r", iteration_number=0, params={}, score=1.0)
    assert caught.value.retry_after == 45


def test_non_json_error_and_unreachable_server() -> None:
    client, _ = _client(502, b"<html>bad gateway</html>")
    with pytest.raises(ServerError) as caught:
        client.runs.get("x")
    assert caught.value.status == 502
    with OptimizationClient(
        "sk_live_abcdefghijklmnop", base_url="http://127.0.0.1:9", timeout=2
    ) as offline, pytest.raises(OptimizationConnectionError):
        offline.stats.get()


def test_run_ids_are_escaped_into_one_path_segment() -> None:
    client, seen = _client(404, {"error": "Optimization run not found"})
    with pytest.raises(NotFoundError):
        client.runs.get("../stats?x=1")
    assert seen[0].url.raw_path == b"/api/iris/optimization/runs/..%2Fstats%3Fx%3D1"
