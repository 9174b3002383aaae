"""ETags / If-None-Match, and the per-project fixed-window rate limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from opt_helpers import Api, Client
from starlette.applications import Starlette

from runicorn_lite.http.caching import if_none_match_hits, strong_etag

MakeApi = Callable[..., tuple[Api, Starlette]]


# ---- ETags ---------------------------------------------------------------------------------------


def test_etag_is_stable_and_304_carries_the_headers(api: Api) -> None:
    run = api.create_run()
    for path, cache in (
        ("/runs", "private, max-age=30, must-revalidate"),
        (f"/runs/{run['id']}", "private, max-age=60, must-revalidate"),
        ("/stats", "private, max-age=300, must-revalidate"),
    ):
        first, second = api.get(path), api.get(path)
        etag = first.headers["etag"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
        # metadata (latency, timestamp) differs, the validator does not
        assert second.headers["etag"] == etag
        response = api.get(path, headers={"If-None-Match": etag})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == cache
        for name in (
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-response-time",
        ):
            assert name in response.headers


def test_changes_make_a_new_etag(api: Api) -> None:
    run = api.create_run()
    path = f"/runs/{run['id']}"
    etags = {
        path: api.get(path).headers["etag"],
        "/runs": api.get("/runs").headers["etag"],
        "/stats": api.get("/stats").headers["etag"],
    }

    def changed(*paths: str) -> None:
        for p in paths:
            old = etags[p]
            response = api.get(p, headers={"If-None-Match": old})
            assert response.status_code == 200, p
            assert response.headers["etag"] != old
            etags[p] = response.headers["etag"]

    api.patch(path, json={"run_name": "renamed"})
    changed(path, "/runs")
    # A name is not part of the statistics of an unscored run: its stats answer is unchanged.
    assert api.get("/stats", headers={"If-None-Match": etags["/stats"]}).status_code == 304
    api.post(f"{path}/iterations", json={"iteration_number": 0, "params": {}, "score": 1})
    changed(path, "/runs", "/stats")
    # Nothing changed since: every validator still matches.
    for p, etag in etags.items():
        assert api.get(p, headers={"If-None-Match": etag}).status_code == 304


def test_if_none_match_forms(api: Api) -> None:
    etag = api.get("/runs").headers["etag"]
    assert api.get("/runs", headers={"If-None-Match": f'"x", {etag}'}).status_code == 304
    assert api.get("/runs", headers={"If-None-Match": f"W/{etag}"}).status_code == 304
    assert api.get("/runs", headers={"If-None-Match": "*"}).status_code == 304
    assert api.get("/runs", headers={"If-None-Match": '"other"'}).status_code == 200
    assert api.get("/runs", headers={"If-None-Match": "garbage"}).status_code == 200
    assert api.get("/runs", headers={"If-None-Match": etag.strip('"')}).status_code == 200


def test_etags_differ_by_query(api: Api) -> None:
    api.create_run()
    assert api.get("/runs?limit=1").headers["etag"] != api.get("/runs?limit=2").headers["etag"]


@pytest.mark.parametrize(
    ("header", "hit"),
    [
        (None, False),
        ("", False),
        ("*", True),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x" , W/"abc"', True),
        ('"x",,"abc"', True),
        ('bogus, "abc"', True),
        ('"abcd"', False),
        ('"ab"', False),
        ("abc", False),
    ],
)
def test_if_none_match_parsing(header: str | None, hit: bool) -> None:
    assert if_none_match_hits(header, '"abc"') is hit


def test_strong_etag_shape() -> None:
    assert strong_etag(b"x") == strong_etag(b"x") != strong_etag(b"y")


# ---- rate limits ---------------------------------------------------------------------------------


def _reset(response) -> datetime:  # type: ignore[no-untyped-def]
    return datetime.fromisoformat(response.headers["x-ratelimit-reset"])


def test_headers_count_down_and_429_is_documented(make_api: MakeApi) -> None:
    api, _ = make_api(read_limit=3)
    remaining = [api.get("/runs").headers["x-ratelimit-remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    response = api.get("/runs")
    assert response.status_code == 429
    body = response.json()
    assert set(body) == {"error", "code", "retryAfter", "timestamp"}
    assert body["error"] == "Rate limit exceeded"
    assert body["code"] == "RATE_LIMIT_EXCEEDED"
    assert 1 <= body["retryAfter"] <= 60
    assert response.headers["retry-after"] == str(body["retryAfter"])
    assert response.headers["x-ratelimit-limit"] == "3"
    assert response.headers["x-ratelimit-remaining"] == "0"
    reset = _reset(response)
    assert reset.tzinfo is not None and reset > datetime.now(UTC)
    assert reset.second == 0 and reset.microsecond == 0  # fixed windows on the minute


def test_three_independent_buckets(make_api: MakeApi) -> None:
    api, _ = make_api(read_limit=2, write_limit=2, iterations_limit=3)
    run = api.create_run()
    run2 = api.create_run()
    assert api.post("/runs", json={"optimizer_type": "bayesian", "config": {}}).status_code == 429
    # PATCH shares the write window.
    assert api.patch(f"/runs/{run['id']}", json={}).status_code == 429
    for n in range(3):
        response = api.post(
            f"/runs/{run['id']}/iterations", json={"iteration_number": n, "params": {}, "score": 1}
        )
        assert response.status_code == 201
        assert response.headers["x-ratelimit-limit"] == "3"
    batch = api.post(
        f"/runs/{run2['id']}/iterations/batch",
        json={"iterations": [{"iteration_number": 0, "params": {}, "score": 1}]},
    )
    assert batch.status_code == 429
    assert api.get("/runs").status_code == 200
    assert api.get("/stats").status_code == 200
    assert api.get(f"/runs/{run['id']}").status_code == 429


def test_rejected_requests_do_not_count_and_windows_reset(make_api: MakeApi) -> None:
    api, sub = make_api(read_limit=2)
    limiter = sub.state.api.limiter
    now = [1_700_000_000.0 - (1_700_000_000.0 % 60) + 5]  # 5 s into a window
    limiter._clock = lambda: now[0]
    assert api.get("/runs").status_code == 200
    assert api.get("/runs").status_code == 200
    for _ in range(5):
        response = api.get("/runs")
        assert response.status_code == 429
        assert response.json()["retryAfter"] == 55
    now[0] += 55  # the next window
    response = api.get("/runs")
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining"] == "1"


def test_limits_are_per_project(make_api: MakeApi) -> None:
    api, sub = make_api(read_limit=1)
    from runicorn_lite.optimization.keys import create_key

    same_project, _ = create_key(sub.state.db, "proj")
    other_project, _ = create_key(sub.state.db, "other")
    assert api.get("/runs").status_code == 200
    assert Api(api.client, same_project).get("/runs").status_code == 429
    assert Api(api.client, other_project).get("/runs").status_code == 200


def test_304_counts_as_a_read_and_carries_the_limit(make_api: MakeApi) -> None:
    api, _ = make_api(read_limit=5)
    etag = api.get("/runs").headers["etag"]
    response = api.get("/runs", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.headers["x-ratelimit-remaining"] == "3"


def test_unauthenticated_answers_carry_no_project_limits(client: Client) -> None:
    response = client.get("/api/iris/optimization/runs")
    assert response.status_code == 401
    assert "x-ratelimit-remaining" not in response.headers
