"""Every error path of V1/V2: the right status and one body shape, ``{"detail": str}``; never a 500."""

from __future__ import annotations

from typing import Any

import orjson
from api_helpers import assert_error

E1 = "20240612_080000_c0ffe1"
LIST = "/api/v2/experiments"
FAST = f"/api/v2/experiments/{E1}/metrics/fast"
DELETE, RESTORE = "/api/v2/experiments/batch-delete", "/api/v2/experiments/batch-restore"


def _bodies(url: str, field: str) -> list[tuple[str, str, dict[str, Any], int]]:
    """Every malformed body of an id-list endpoint."""
    return [
        ("POST", url, {"content": b"{not json"}, 400),
        ("POST", url, {"content": b""}, 400),
        ("POST", url, {"content": b"\xff\xfe"}, 400),
        ("POST", url, {"content": b"[1, 2]"}, 400),
        ("POST", url, {"content": b'"exp"'}, 400),
        ("POST", url, {"content": b"null"}, 400),
        ("POST", url, {"content": b"3"}, 400),
        ("POST", url, {"json": {}}, 400),
        ("POST", url, {"json": {field: "20240612_080000_c0ffe1"}}, 400),
        ("POST", url, {"json": {field: None}}, 400),
        ("POST", url, {"json": {field: [1, 2]}}, 400),
        ("POST", url, {"json": {field: [E1, None]}}, 400),
        ("POST", url, {"json": {field: [["x"]]}}, 400),
        ("POST", url, {"json": {field: {"a": 1}}}, 400),
        ("POST", url, {"json": {field: []}}, 400),
    ]


CASES: list[tuple[str, str, dict[str, Any], int]] = [
    # V2 list: every parameter that can be malformed
    *[("GET", LIST, {"params": p}, 400) for p in (
        {"page": "0"}, {"page": "-1"}, {"page": "abc"}, {"page": "1.5"}, {"page": "10000000"},
        {"per_page": "0"}, {"per_page": "1001"}, {"per_page": "abc"},
        {"order_by": "bogus"}, {"order_by": "id; DROP TABLE experiments"}, {"order_desc": "maybe"},
        {"include_deleted": "perhaps"},
        {"created_after": "yesterday"}, {"created_before": "2024-01-01"}, {"created_after": "inf"},
        {"best_metric_min": "abc"}, {"best_metric_min": "nan"}, {"best_metric_max": "-Infinity"},
        {"status": "bogus"}, {"status": "finished,bogus"}, {"status": "FINISHED"},
        {"page": ["1", "2"]}, {"search": "a\x00b"}, {"project": "p" * 2001},
        {"tags": ",".join(f"t{i}" for i in range(101))},
    )],
    # analytics
    *[("GET", "/api/v2/analytics/summary", {"params": p}, 400) for p in (
        {"status": "bogus"}, {"created_after": "yesterday"}, {"created_before": "nan"},
    )],
    # metrics/fast
    *[("GET", FAST, {"params": p}, 400) for p in (
        {"step_range": "abc"}, {"step_range": "1:2:3"}, {"step_range": "5:1"}, {"step_range": "1.5:"},
        {"step_range": "99999999999999999999:"}, {"downsample": "1"}, {"downsample": "0"},
        {"downsample": "abc"}, {"downsample": "100001"},
    )],
    # batch bodies, and a reason that is not a string
    *_bodies(DELETE, "exp_ids"),
    *_bodies(RESTORE, "exp_ids"),
    ("POST", DELETE, {"json": {"exp_ids": [E1], "reason": 5}}, 400),
    ("POST", DELETE, {"json": {"exp_ids": [f"20240101_000000_{i:06x}" for i in range(1001)]}}, 400),
    ("POST", DELETE, {"content": b"{" + b" " * (5 << 20) + b"}"}, 413),
    # V1 bodies and parameters
    *_bodies("/api/runs/soft-delete", "run_ids"),
    *_bodies("/api/recycle-bin/restore", "run_ids"),
    ("POST", "/api/runs/soft-delete", {"json": {"run_ids": [E1], "reason": ["x"]}}, 400),
    ("PATCH", f"/api/runs/{E1}", {"content": b"{oops"}, 400),
    ("PATCH", f"/api/runs/{E1}", {"json": []}, 400),
    ("PATCH", f"/api/runs/{E1}", {"json": {"tags": [1]}}, 400),
    ("PATCH", f"/api/runs/{E1}", {"json": {"alias": "a\x00b"}}, 400),
    ("PATCH", f"/api/runs/{E1}", {"json": {"tags": ["ok", "bad\nline"]}}, 400),
    ("PATCH", f"/api/runs/{E1}", {"json": {"description": "bell\x07"}}, 400),
    ("POST", "/api/runs/soft-delete", {"json": {"run_ids": [E1], "reason": "x\x00"}}, 400),
    ("POST", "/api/runs/soft-delete", {"json": {"run_ids": ["a\x1bb"]}}, 400),
    ("POST", DELETE, {"json": {"exp_ids": [E1], "reason": "esc\x1b[31m"}}, 400),
    ("POST", "/api/recycle-bin/empty", {"json": {}}, 400),
    ("POST", "/api/recycle-bin/empty", {"json": {"confirm": "yes"}}, 400),
    ("POST", "/api/recycle-bin/empty", {"json": {"confirm": 1}}, 400),
    ("POST", "/api/recycle-bin/empty", {"content": b"nope"}, 400),
    *[("GET", f"/api/runs/20991231_000000_000000/{s}", {}, 404) for s in ("images", "assets")],
    ("GET", "/api/environment/20991231_000000_000000", {}, 404),
    ("GET", f"/api/runs/{E1}/metrics", {"params": {"downsample": "1"}}, 400),
    ("GET", f"/api/runs/{E1}/metrics_step", {"params": {"downsample": "x"}}, 400),
    # unknown ids, hostile ones included
    *[("GET", f"/api/v2/experiments/{i}{s}", {}, 404)
      for i in ("20991231_000000_000000", "%2e%2e", "%2E%2E", "a" * 5000, "%00", "x%00y", "-rf", "%20",
                "%E2%9C%93", "a..b")
      for s in ("", "/metrics/fast")],
    *[("GET", f"/api/runs/{i}{s}", {}, 404)
      for i in ("20991231_000000_000000", "%2e%2e", "a" * 5000, "%00", "..%2F..%2Fetc")
      for s in ("", "/metrics", "/metrics_step")],
    ("PATCH", "/api/runs/%2e%2e", {"json": {"alias": "x"}}, 404),
    ("GET", "/api/projects/nope/names", {}, 404),
    # unknown paths under /api (and elsewhere) answer JSON too
    ("GET", "/api/nothing", {}, 404),
    ("GET", "/api/v2/nothing", {}, 404),
    ("GET", "/api/v3/experiments", {}, 404),
    ("GET", "/api/v2/experiments/a/b/c", {}, 404),
    ("POST", "/api/v2/nothing", {"json": {}}, 404),
    ("GET", "/nothing.html", {}, 404),
]

# Wrong method: 405 with the methods that are allowed.
METHOD_CASES: list[tuple[str, str, set[str]]] = [
    ("DELETE", LIST, {"GET", "HEAD"}),
    ("POST", LIST, {"GET", "HEAD"}),
    ("PUT", f"/api/v2/experiments/{E1}", {"GET", "HEAD", "PATCH"}),
    ("DELETE", FAST, {"GET", "HEAD"}),
    ("PUT", DELETE, {"POST"}),
    ("DELETE", RESTORE, {"POST"}),
    ("POST", "/api/v2/analytics/summary", {"GET", "HEAD"}),
    ("POST", "/api/runs", {"GET", "HEAD"}),
    ("DELETE", f"/api/runs/{E1}", {"GET", "HEAD", "PATCH"}),
    ("PUT", "/api/runs/soft-delete", {"POST"}),
    ("POST", f"/api/runs/{E1}/metrics", {"GET", "HEAD"}),
    ("DELETE", "/api/recycle-bin", {"GET", "HEAD"}),
    ("GET", "/api/recycle-bin/restore", {"POST"}),
    ("POST", "/api/projects", {"GET", "HEAD"}),
    ("POST", "/api/health", {"GET", "HEAD"}),
    ("POST", "/openapi.json", {"GET", "HEAD"}),
]


async def _raw(app: Any, method: str, path: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request straight through ASGI, with a path no HTTP client would normalise."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path.decode("latin-1"), "raw_path": path, "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1),
             "server": ("testserver", 80)}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


async def test_every_error_path(corpus_app, client_for) -> None:
    client = client_for(corpus_app)
    failures = []
    for method, url, kwargs, status in CASES:
        response = await client.request(method, url, **kwargs)
        try:
            assert_error(response, status)
            assert response.headers["x-response-time"].endswith("ms")
        except (AssertionError, KeyError) as exc:
            failures.append(f"{method} {url[:80]} {str(kwargs)[:80]}: {exc!r}")
    for method, url, allowed in METHOD_CASES:
        response = await client.request(method, url)
        try:
            assert_error(response, 405)
            assert {m.strip() for m in response.headers["allow"].split(",")} == allowed, response.headers["allow"]
        except (AssertionError, KeyError) as exc:
            failures.append(f"{method} {url}: {exc!r}")
    for path in (b"/api/v2/experiments/..", b"/api/v2/experiments/../metrics/fast", b"/api/runs/..",
                 b"/api/runs/../metrics", b"/api/v2/experiments/.", b"/api/runs/%2e%2e"):
        status, _headers, body = await _raw(corpus_app, "GET", path)
        if status != 404 or list(orjson.loads(body)) != ["detail"]:
            failures.append(f"raw {path!r}: {status} {body[:200]!r}")
    assert not failures, "\n".join(failures)


async def test_messages_say_what_is_wrong_and_what_is_allowed(corpus_app, client_for) -> None:
    client = client_for(corpus_app)

    async def detail(url: str, **params: str) -> str:
        return assert_error(await client.get(url, params=params), 400)

    assert "page" in await detail(LIST, page="0") and "1" in await detail(LIST, page="0")
    assert "1000" in await detail(LIST, per_page="1001")
    message = await detail(LIST, order_by="bogus")
    assert all(f in message for f in ("created_at", "updated_at", "best_metric_value", "status", "name",
                                       "project", "ended_at"))
    assert "true or false" in await detail(LIST, order_desc="maybe")
    assert "created_after" in await detail(LIST, created_after="yesterday")
    assert "finite" in await detail(LIST, best_metric_min="nan")
    message = await detail(LIST, status="bogus")
    assert all(s in message for s in ("running", "finished", "failed", "interrupted"))
    assert (await detail(FAST, step_range="abc")).startswith("Invalid step_range format, use 'min:max'")
    assert "downsample" in await detail(FAST, downsample="1")
    assert (await client.get("/api/v2/experiments/" + "z" * 5000)).json()["detail"] == \
        f"Experiment {'z' * 200} not found"
    nothing = (await client.get("/api/nothing")).json()
    assert nothing == {"detail": "Not found: no endpoint at /api/nothing (see /openapi.json)"}
    bad_json = await client.post(DELETE, content=b"{")
    assert bad_json.json() == {"detail": "Request body is not valid JSON"}
    not_object = await client.post(DELETE, json=[1])
    assert not_object.json() == {"detail": "Request body must be a JSON object"}
    missing = assert_error(await client.post(DELETE, json={"ids": []}), 400)
    assert "exp_ids" in missing
