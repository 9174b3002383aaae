"""``--auth keys`` (team-server.md §3) in process: every route of the table without a key, with
another project's key and with a read-only key; lists, totals and events narrowed to the key's
project; the web session cookie."""

from __future__ import annotations

import json
import re
from contextlib import closing
from pathlib import Path
from typing import Any

import backends
import pytest
from api_helpers import close_app
from asgi_stream import AsgiStream
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from test_api_events import Events, _settled

import runicorn_lite
from runicorn_lite.app import create_app
from runicorn_lite.optimization.keys import create_key, revoke_key
from runicorn_lite.settings import Settings

SECRET = "secretproj"  # the project a vision key must never learn of


def _write(root: Path, project: str, name: str) -> str:
    run = runicorn_lite.init(project=project, name=name, root=root, tags=["t"])
    run.log({"loss": 0.5}, step=1)
    run.log_text("hello")
    run.log_image("samples", b"\x89PNG\r\n\x1a\n" + b"\0" * 32, step=1)
    run.finish()
    return str(run.id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Any:
    root = tmp_path_factory.mktemp("auth") / "data"
    ids = {"vision": [_write(root, "vision", "a"), _write(root, "vision", "b")], SECRET: [_write(root, SECRET, "c")]}
    # The walk sends two wrong keys per route: more than the per-address limit of a minute.
    settings = Settings(root=root, auth="keys", auth_failure_limit=100_000, database=backends.new_database())
    app = create_app(settings, ingest=False)
    app.state.ctx.indexer.scan()
    db = app.state.optimization.state.db
    keys = {
        "vision": create_key(db, "vision")[0],
        "all": create_key(db, None, all_projects=True)[0],
        "read": create_key(db, "vision", read_only=True)[0],
        SECRET: create_key(db, SECRET)[0],
    }
    yield root, app, ids, keys
    close_app(app)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# Values for the path parameters of every route: a new parameter name makes the walk fail until
# it is taught here, so no route goes unchecked.
def _fill(path: str, run_id: str) -> str:
    values = {"exp_id": run_id, "run_id": run_id, "project": SECRET, "name": "c", "path": "meta.json"}

    def one(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        assert name in values, f"teach test_auth_keys the path parameter {{{name}}} of {path}"
        return values[name]

    return re.sub(r"\{([^}]+)\}", one, path)


QUERIES = {
    "/api/v2/compare": "?ids={}",
    "/api/v2/groups": "?group_by=attributes.status&metrics=loss",
    "/api/v2/importance": "?metric=loss",
    "/api/runs/{run_id}/assets/download": "?path=meta.json",
    "/api/uploads/state": f"?run=runs/{SECRET}/c/{{}}",
    "/api/uploads/file": f"?run=runs/{SECRET}/c/{{}}&name=events.jsonl&offset=0",
}
STREAMS = {"/api/v2/events"}
# Routes that may refuse the walk's generic question (400) once the key is checked; the answer
# still names nothing of the other project (checked below).
MAY_REFUSE = {"/api/v2/importance", "/api/paths/create"}
# Routes of the server itself (Runicorn's UI settings, system and diagnostics pages): no run of
# any project in them; a key still needed, a read-only key still refused a change.
SERVER_SETTINGS = ("/api/config", "/api/gpu", "/api/system", "/api/storage", "/api/remote", "/api/diagnostics")
OPEN = {"/api/health", "/api/auth/session"}
BODY = {"run_ids": [], "exp_ids": [], "confirm": True, "tags": ["pwned"], "alias": "pwned"}


def _api_routes(app: Any) -> list[tuple[str, str | None]]:
    """(path, method) of every /api route (method None: a WebSocket); the optimization API
    checks its own keys (its own tests)."""
    out: list[tuple[str, str | None]] = []
    for route in app.routes:
        if isinstance(route, Mount) or not route.path.startswith("/api/") or route.path in OPEN:
            continue
        if isinstance(route, WebSocketRoute):
            out.append((route.path, None))
        else:
            assert isinstance(route, Route)
            out.extend((route.path, m) for m in sorted(route.methods or ()) if m != "HEAD")
    assert len(out) > 25  # the walk sees the whole table
    return out


def test_every_route_wants_a_key_and_keeps_other_projects_out(world: Any) -> None:
    root, app, ids, keys = world
    secret = ids[SECRET][0]
    body = {**BODY, "run_ids": [secret], "exp_ids": [secret]}
    with closing(TestClient(app)) as client:  # (no lifespan: the app outlives it)
        for path, method in _api_routes(app):
            url = _fill(path, secret) + QUERIES.get(path, "").format(secret)
            if method is None:
                for headers, code in (({}, 4401), (bearer("sk_live_" + "x" * 40), 4401)):
                    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url, headers=headers):
                        pass
                    assert closed.value.code == code, url
                if path.startswith(SERVER_SETTINGS):  # the server's own log: no run in it
                    continue
                with client.websocket_connect(url, headers=bearer(keys["vision"])) as ws:
                    assert ws.receive_text() == "[error] run not found"  # as a run that does not exist
                continue
            anonymous = client.request(method, url, json=body)
            assert anonymous.status_code == 401, (method, url)
            assert "Authorization: Bearer" in anonymous.json()["detail"], (method, url)
            wrong = client.request(method, url, json=body, headers=bearer("sk_live_" + "y" * 40))
            assert wrong.status_code == 401, (method, url)
            if path in STREAMS:
                continue  # never ends with a key: test_the_event_stream_carries_only_the_keys_project
            other = client.request(method, url, json=body, headers=bearer(keys["vision"]))
            # Uploads name the run's project themselves: another project's is 403, nothing written.
            allowed = (200, 404, 400) if path in MAY_REFUSE or path.startswith(SERVER_SETTINGS) else (200, 404)
            if path.startswith("/api/uploads/"):
                allowed = (403,)
            assert other.status_code in allowed, (method, url, other.text)
            if other.status_code == 400:  # refused, and saying nothing of the other project
                assert secret not in other.text, (method, url, other.text)
            if other.status_code == 200 and method == "GET":  # (a 404 may echo the id it was asked for)
                assert secret not in other.text, (method, url, other.text)
            if other.status_code == 200 and method != "GET":  # a batch: that run "not found"
                assert '"success":true' not in other.text.replace(" ", ""), (method, url)
            if method != "GET":
                read_only = client.request(method, url, json=body, headers=bearer(keys["read"]))
                assert read_only.status_code == 403 and "read-only" in read_only.json()["detail"], (method, url)
        # The secret project's run came through all of it untouched.
        mine = client.get(f"/api/v2/experiments/{secret}", headers=bearer(keys[SECRET])).json()["experiment"]
        assert mine["tags"] == ["t"] and mine.get("deleted_at") is None and mine["alias"] is None
        assert (root / "runs" / SECRET / "c" / secret / "meta.json").is_file()


def test_a_project_key_sees_its_project_everywhere(world: Any) -> None:
    _, app, ids, keys = world
    vision, secret = ids["vision"], ids[SECRET][0]
    with closing(TestClient(app, headers=bearer(keys["vision"]))) as client:
        listed = client.get("/api/v2/experiments").json()
        assert listed.get("total") == 2, listed
        assert sorted(e["id"] for e in listed["experiments"]) == sorted(vision)
        assert client.get("/api/v2/experiments", params={"project": SECRET}).json()["total"] == 0
        assert client.get("/api/v2/experiments", params={"search": SECRET}).json()["total"] == 0
        assert client.get("/api/v2/analytics/summary").json()["total_experiments"] == 2
        csv = client.get("/api/v2/experiments.csv").text
        assert csv.count("\r\n") == 3 and secret not in csv
        assert client.get("/api/projects").json() == {"projects": ["vision"]}
        assert sorted(r["id"] for r in client.get("/api/runs").json()) == sorted(vision)
        assert client.get(f"/api/projects/{SECRET}/names").status_code == 404
        assert client.get(f"/api/v2/compare?ids={vision[0]},{secret}").status_code == 404
        assert client.get(f"/api/v2/compare?ids={vision[0]},{vision[1]}").status_code == 200
        images = client.get(f"/api/v2/experiments/{vision[0]}/images").json()["images"]
        assert client.get(images[0]["url"]).status_code == 200
        with client.websocket_connect(f"/api/runs/{vision[0]}/logs/ws") as ws:
            assert ws.receive_text().endswith("hello")
    with closing(TestClient(app, headers=bearer(keys["all"]))) as client:
        assert client.get("/api/v2/experiments").json()["total"] == 3
        assert client.get("/api/projects").json() == {"projects": sorted(["vision", SECRET])}


async def test_the_event_stream_carries_only_the_keys_project(world: Any) -> None:
    root, app, _, keys = world
    vision = await AsgiStream(app, "/api/v2/events", bearer(keys["vision"])).open()
    everyone = await AsgiStream(app, "/api/v2/events", bearer(keys["all"])).open()
    refused = await AsgiStream(app, "/api/v2/events").open()
    assert (vision.status, everyone.status, refused.status) == (200, 200, 401)
    seen_vision, seen_all = Events(vision), Events(everyone)
    new_secret = _write(root, SECRET, "d")
    new_vision = _write(root, "vision", "e")
    app.state.ctx.indexer.scan()
    await _settled(app)
    got_all = {(await seen_all.next())["data"]["id"] for _ in range(4)}
    assert got_all == {new_secret, new_vision}
    first = await seen_vision.next()
    second = await seen_vision.next()
    assert {first["data"]["id"], second["data"]["id"]} == {new_vision}
    await seen_vision.quiet(0.3)
    for stream in (vision, everyone, refused):
        await stream.close()


def test_health_stays_open_and_tells_nothing_of_the_runs(world: Any) -> None:
    _, app, _, _ = world
    with closing(TestClient(app)) as client:
        health = client.get("/api/health")
        assert health.status_code == 200 and health.json()["auth"] == "keys"
        assert "runs_in_index" not in health.json()["index"] and "root" not in health.json()
        assert health.json()["index"]["ready"] is True
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/").status_code == 200


def test_the_web_session(world: Any) -> None:
    _, app, _, keys = world
    with closing(TestClient(app)) as client:
        assert client.get("/api/auth/session").json() == {
            "auth": "keys", "signed_in": False, "project": None, "all_projects": False, "read_only": False}
        assert client.post("/api/auth/session", json={"key": "sk_live_" + "z" * 40}).status_code == 401
        assert client.post("/api/auth/session", json={"key": "nope"}).status_code == 401
        assert client.post("/api/auth/session", json={}).status_code == 400
        signed = client.post("/api/auth/session", json={"key": keys["vision"]})
        assert signed.status_code == 200 and signed.json()["project"] == "vision"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
        assert keys["vision"] not in cookie
        by_key = client.get("/api/v2/experiments", headers=bearer(keys["vision"])).json()
        assert client.get("/api/v2/experiments").json() | {"query_time_ms": 0} == by_key | {"query_time_ms": 0}
        opt = client.get("/api/iris/optimization/runs")
        assert opt.status_code == 200  # the optimization view rides on the same session
        token = client.cookies.get("runicorn_lite_session")
        out = client.delete("/api/auth/session")
        assert out.status_code == 200 and "Max-Age=0" in out.headers["set-cookie"]
        assert client.get("/api/v2/experiments").status_code == 401
        client.cookies.set("runicorn_lite_session", token)  # an ended session stays ended
        assert client.get("/api/v2/experiments").status_code == 401
    with closing(TestClient(app, base_url="https://testserver")) as client:
        made, _ = create_key(app.state.optimization.state.db, "vision")
        signed = client.post("/api/auth/session", json={"key": made}, headers={"Origin": "https://testserver"})
        assert "Secure" in signed.headers["set-cookie"]
        assert client.get("/api/v2/experiments").status_code == 200
        revoke_key(app.state.optimization.state.db, made)  # revoking the key ends its sessions
        assert client.get("/api/v2/experiments").status_code == 401


def test_keys_on_the_optimization_api(world: Any) -> None:
    _, app, _, keys = world
    with closing(TestClient(app)) as client:
        every = client.get("/api/iris/optimization/runs", headers=bearer(keys["all"]))
        assert every.status_code == 403 and "every project" in every.json()["error"]
        assert client.get("/api/iris/optimization/runs", headers=bearer(keys["read"])).status_code == 200
        write = client.post("/api/iris/optimization/runs", headers=bearer(keys["read"]),
                            content=json.dumps({"optimizer_type": "bayesian"}))
        assert write.status_code == 403 and "read-only" in write.json()["error"]


def test_auth_none_needs_no_key(make_app, root: Path) -> None:
    _write(root, "vision", "a")
    app = make_app()
    app.state.ctx.indexer.scan()
    with closing(TestClient(app)) as client:
        assert client.get("/api/v2/experiments").json()["total"] == 1
        assert client.get("/api/health").json()["index"]["runs_in_index"] == 1


def test_wrong_keys_are_limited_per_address(make_app) -> None:
    app = make_app(auth="keys", auth_failure_limit=3)
    good = create_key(app.state.optimization.state.db, "vision")[0]
    with closing(TestClient(app)) as client:
        wrong = [client.get("/api/v2/experiments", headers=bearer("sk_live_" + "w" * 40)).status_code
                 for _ in range(4)]
        assert wrong == [401, 401, 401, 429]
        assert client.get("/api/v2/experiments", headers=bearer(good)).status_code == 200  # a valid key gets in
