"""What both APIs get from the shared HTTP pieces: bodies refused while they arrive, errors in
the shape of the API a path belongs to, and an OpenAPI document built from the code's constants."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from runicorn_lite import rundir
from runicorn_lite.api import uploads, v1_recycle, v2
from runicorn_lite.optimization import PREFIX, model
from runicorn_lite.optimization.app import MAX_BODY_BYTES
from runicorn_lite.optimization.keys import create_key
from runicorn_lite.queries.metrics import MAX_DOWNSAMPLE

RUN_UUID = "550e8400-e29b-41d4-a716-446655440000"
CHUNK = b" " * (1 << 20)


class Sender:
    """A request body of ``total`` MiB that counts how much of it the server read."""

    def __init__(self, total_mib: int) -> None:
        self.total = total_mib
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.total):
            self.sent += 1
            yield CHUNK


def _concrete(path: str) -> str:
    return re.sub(r"{run_id}", RUN_UUID, re.sub(r"{exp_id}", "20250101_000000_abcdef", path))


async def test_every_body_over_its_limit_is_refused_while_it_arrives(make_app, client_for) -> None:
    app = make_app()
    client = client_for(app)
    key, _ = create_key(app.state.optimization.state.db, "p")
    doc = (await client.get("/openapi.json")).json()
    with_body = [(p, m) for p, ops in doc["paths"].items() for m, op in ops.items() if "requestBody" in op]
    assert len(with_body) >= 9  # V2 batch x2, V1 x3, optimization x4
    for path, method in with_body:
        # Uploads take pieces of up to MAX_PIECE (and always a key, and the file they are of).
        uploading = path.startswith("/api/uploads/")
        max_mib = (uploads.MAX_PIECE if uploading else MAX_BODY_BYTES) >> 20
        body = Sender(max_mib * 4)
        headers = {"Authorization": f"Bearer {key}"} if path.startswith(PREFIX) or uploading else {}
        params = {"run": "runs/p/n/20250101_000000_abcdef", "name": "logs.txt", "offset": "0"} if uploading else None
        response = await client.request(method.upper(), _concrete(path), content=body, headers=headers, params=params)
        assert response.status_code == 413, (path, method, response.text)
        message = response.json().get("detail") or response.json()["hint"]
        assert "at most" in message, (path, method, response.text)
        # Reading stopped at the endpoint's limit (plus the chunk that crossed it).
        assert body.sent <= max_mib + 1, (path, method, body.sent)


async def test_v2_batch_bodies_stop_at_their_own_limit(make_app, client_for) -> None:
    client = client_for(make_app())
    body = Sender(400)
    response = await client.post("/api/v2/experiments/batch-delete", content=body)
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large: at most 4194304 bytes"}
    assert body.sent <= 5


async def test_a_newline_in_an_optimization_path_reaches_the_optimization_api(make_app, client_for) -> None:
    app = make_app()
    client = client_for(app)
    anonymous = await client.get(f"{PREFIX}/runs/abc%0A")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "Authorization header is required"
    key, _ = create_key(app.state.optimization.state.db, "p")
    response = await client.get(f"{PREFIX}/runs/abc%0A/iterations", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    response = await client.get(f"{PREFIX}/runs/abc%0A", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400 and response.json()["error"] == "Invalid run ID format"


async def test_errors_answered_outside_an_api_take_its_shape(make_app, client_for) -> None:
    client = client_for(make_app())
    evil = {"Origin": "https://evil.example"}
    refused = await client.post(f"{PREFIX}/runs", json={}, headers=evil)
    assert refused.status_code == 403
    assert set(refused.json()) == {"error", "timestamp"} and refused.headers["cache-control"] == "no-store"
    refused = await client.post("/api/v2/experiments/batch-delete", json={}, headers=evil)
    assert refused.status_code == 403 and set(refused.json()) == {"detail"}
    missing = await client.get(f"{PREFIX}/nothing")
    assert missing.status_code == 404 and missing.json()["error"] == "Not found"
    assert (await client.get("/api/nothing")).json()["detail"].startswith("Not found")


async def test_an_unexpected_v2_error_is_a_bare_logged_500(make_app, client_for, monkeypatch, caplog) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(v2, "list_experiments", explode)
    with caplog.at_level(logging.ERROR, logger="runicorn_lite"):
        response = await client_for(make_app()).get("/api/v2/experiments")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert response.headers["x-response-time"].endswith("ms")
    assert "secret detail" in caplog.text


@pytest.mark.parametrize("name", ["include_deleted", "order_desc", "page", "per_page",
                                  "created_after", "best_metric_min"])
async def test_typed_parameters_given_empty_are_refused(make_app, client_for, name: str) -> None:
    response = await client_for(make_app()).get(f"/api/v2/experiments?{name}=")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"Parameter '{name}' is empty")


async def test_repeated_ids_count_against_the_batch_limit(make_app, client_for) -> None:
    client = client_for(make_app())
    for path in ("/api/v2/experiments/batch-delete", "/api/v2/experiments/batch-restore"):
        response = await client.post(path, json={"exp_ids": ["x"] * (v2.MAX_BATCH + 1)})
        assert response.status_code == 400 and str(v2.MAX_BATCH) in response.json()["detail"], path
    for path in ("/api/runs/soft-delete", "/api/recycle-bin/restore"):
        response = await client.post(path, json={"run_ids": ["x"] * (v1_recycle.MAX_RUN_IDS + 1)})
        assert response.status_code == 400 and str(v1_recycle.MAX_RUN_IDS) in response.json()["detail"], path


async def test_openapi_enums_and_limits_are_the_codes_own(make_app, client_for) -> None:
    doc = (await client_for(make_app()).get("/openapi.json")).json()
    paths = doc["paths"]

    def param(path: str, method: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = next(p for p in paths[path][method]["parameters"] if p["name"] == name)
        return found

    runs = f"{PREFIX}/runs"
    assert param(runs, "get", "status")["schema"]["enum"] == list(model.STATUSES)
    assert param(runs, "get", "optimizer_type")["schema"]["enum"] == list(model.OPTIMIZER_TYPES)
    assert param(runs, "get", "order_by")["schema"]["enum"] == list(model.ORDER_BY)
    assert param(runs, "get", "limit")["schema"]["maximum"] == model.LIMIT_MAX
    assert param(f"{PREFIX}/stats", "get", "status")["schema"]["enum"] == list(model.STATUSES)
    for path in (f"{PREFIX}/runs/{{run_id}}", f"{PREFIX}/runs/{{run_id}}/iterations"):
        method = next(iter(paths[path]))
        assert param(path, method, "run_id")["schema"] == {"type": "string", "format": "uuid"}
    batch = paths[f"{PREFIX}/runs/{{run_id}}/iterations/batch"]["post"]["requestBody"]
    items = batch["content"]["application/json"]["schema"]["properties"]["iterations"]
    assert (items["minItems"], items["maxItems"]) == (1, model.MAX_BATCH)

    status = param("/api/v2/experiments", "get", "status")
    assert status["schema"]["items"]["enum"] == list(rundir.STATUSES)
    assert (status["style"], status["explode"]) == ("form", False)
    for path in ("/api/v2/experiments/batch-delete", "/api/v2/experiments/batch-restore"):
        ids = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["exp_ids"]
        assert (ids["minItems"], ids["maxItems"]) == (1, v2.MAX_BATCH)
    for path in ("/api/runs/{run_id}/metrics", "/api/v2/experiments/{exp_id}/metrics/fast"):
        schema = param(path, "get", "downsample")["schema"]
        assert (schema["minimum"], schema["maximum"]) == (2, MAX_DOWNSAMPLE)


async def test_the_favicon_browsers_ask_for_is_there(make_app, client_for) -> None:
    response = await client_for(make_app()).get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] in ("image/svg+xml", "image/x-icon")
    assert response.content.startswith(b"<svg") or response.content[:4] == b"\x00\x00\x01\x00"
