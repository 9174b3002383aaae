"""The V2 document's rate limits: per client and endpoint, per 60 s; off unless asked for."""

from __future__ import annotations

import time
from typing import Any

import pytest
from api_helpers import copy_runs

E1 = "20240612_080000_c0ffe1"
UNKNOWN = {"exp_ids": ["20991231_000000_000000"]}
LIMITS = [
    ("POST", "/api/v2/experiments/batch-delete", 10),
    ("GET", "/api/v2/experiments", 100),
    ("GET", f"/api/v2/experiments/{E1}", 200),
    ("GET", f"/api/v2/experiments/{E1}/metrics/fast", 100),
]


def fresh_window(needed_s: float = 5.0) -> None:
    """Start in a fixed window with at least ``needed_s`` left, so no reset falls mid-test."""
    left = 60.0 - time.time() % 60.0
    if left < needed_s:
        time.sleep(left + 0.05)


async def _call(client: Any, method: str, url: str) -> Any:
    if method == "POST":
        return await client.post(url, json=UNKNOWN)
    return await client.get(url)


@pytest.mark.parametrize(("method", "url", "limit"), LIMITS)
async def test_documented_limits(make_app, client_for, corpus, root, method: str, url: str, limit: int) -> None:
    copy_runs(corpus.root, root)  # a populated root, so the GETs answer 200
    app = make_app(rate_limit=True)
    app.state.ctx.indexer.scan()
    client = client_for(app)
    fresh_window()
    for i in range(limit):
        response = await _call(client, method, url)
        assert response.status_code == 200, (i, response.text)
        assert response.headers["x-ratelimit-limit"] == str(limit)
        assert response.headers["x-ratelimit-remaining"] == str(limit - i - 1)
    refused = await _call(client, method, url)
    assert refused.status_code == 429
    assert list(refused.json()) == ["detail"] and str(limit) in refused.json()["detail"]
    retry = int(refused.headers["retry-after"])
    assert 1 <= retry <= 60
    assert refused.headers["x-ratelimit-remaining"] == "0"
    # other endpoints keep their own budget
    assert (await client.get("/api/runs")).status_code == 200
    other = LIMITS[1] if url != LIMITS[1][1] else LIMITS[0]
    assert (await _call(client, other[0], other[1])).status_code == 200


async def test_head_shares_the_get_budget(make_app, client_for) -> None:
    client = client_for(make_app(rate_limit=True))
    fresh_window()
    for _ in range(50):
        assert (await client.head("/api/v2/experiments")).status_code == 200
    for _ in range(50):
        assert (await client.get("/api/v2/experiments")).status_code == 200
    head = await client.head("/api/v2/experiments")
    assert head.status_code == 429 and "retry-after" in head.headers
    assert (await client.get("/api/v2/experiments")).status_code == 429


async def test_off_by_default(make_app, client_for) -> None:
    client = client_for(make_app())
    for _ in range(12):
        response = await client.post("/api/v2/experiments/batch-delete", json=UNKNOWN)
        assert response.status_code == 200
        assert "x-ratelimit-limit" not in response.headers
