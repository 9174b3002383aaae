"""Host and Origin checks (team-server.md §3): in process for every rule, and against real
servers for the attacks they close (DNS rebinding, a page on another local port, keys written
into the wrong store)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import runicorn_lite
from runicorn_lite.cli import main
from runicorn_lite.http.hosts import HostPolicy, parse_allowed_hosts, same_origin, split_netloc


def write_run(root: Path, project: str = "vision", tags: list[str] | None = None) -> str:
    with runicorn_lite.init(project=project, name="resnet", root=str(root), tags=tags or ["keep"]) as run:
        run.log({"loss": 1.0}, step=1)
        return str(run.id)


# ---- the rules, one by one ------------------------------------------------------------------

def test_host_names_and_ports() -> None:
    assert split_netloc("LocalHost:23300") == ("localhost", 23300)
    assert split_netloc("[::1]:80") == ("[::1]", 80)
    assert split_netloc("::1") == ("[::1]", None)
    assert split_netloc("a.example:x1")[1] == -1
    policy = HostPolicy.of(23300, ["team.example", "10.0.0.5:8443"])
    for ok in ("127.0.0.1:23300", "localhost:23300", "[::1]:23300", "team.example", "team.example:23300",
               "TEAM.example:443", "10.0.0.5:8443"):
        assert policy.accepts(ok), ok
    for bad in ("", "evil.example:23300", "localhost:8888", "127.0.0.1", "10.0.0.5:23300", "team.example:abc",
                "team.example.evil:23300", "[::1]"):
        assert not policy.accepts(bad), bad
    assert parse_allowed_hosts(" a.example, B:80 ,,") == ("a.example", "b:80")
    for bad in ("a.example/x", "user@a.example", "a:port"):
        with pytest.raises(ValueError, match="not a host name"):
            parse_allowed_hosts(bad)


def test_origins() -> None:
    assert same_origin("http://127.0.0.1:23300", "127.0.0.1:23300", "http")
    assert same_origin("http://localhost", "localhost:80", "http")
    assert same_origin("https://team.example", "team.example", "https")
    assert same_origin("http://127.0.0.1:23300", "127.0.0.1:23300", "ws")
    for origin in ("http://localhost:8888", "http://evil.example:23300", "null", "https://127.0.0.1:23300",
                   "file://", "http://127.0.0.1:23300/x", "127.0.0.1:23300"):
        assert not same_origin(origin, "127.0.0.1:23300", "http"), origin


def test_the_app_checks_host_and_origin_on_every_kind_of_request(make_app, root: Path) -> None:
    run_id = write_run(root)
    app = make_app(port=23300, allowed_hosts=())
    app.state.ctx.indexer.scan()
    own = "http://127.0.0.1:23300"
    host = {"Host": "127.0.0.1:23300"}  # the test client's WebSockets would say "testserver"
    with TestClient(app, base_url=own) as client:
        assert client.get("/api/v2/experiments").json()["total"] == 1
        rebound = client.get("/api/v2/experiments", headers={"Host": "evil.example:23300"})
        assert rebound.status_code == 400 and "evil.example" in rebound.json()["detail"]
        assert client.get("/", headers={"Host": "evil.example:23300"}).status_code == 400
        assert client.get("/api/health", headers={"Host": "localhost:8888"}).status_code == 400
        # A page on another local port: refused for writes, the event stream and the WebSocket.
        notebook = {"Origin": "http://localhost:8888"}
        patch = client.patch(f"/api/runs/{run_id}", json={"tags": ["pwned"]}, headers=notebook)
        assert patch.status_code == 403 and "Cross-origin" in patch.json()["detail"]
        assert client.get("/api/v2/events", headers=notebook).status_code == 403
        refused = client.post("/api/runs/soft-delete", content=json.dumps({"ids": [run_id]}),
                              headers={"Origin": "null", "Content-Type": "text/plain"})
        assert refused.status_code == 403
        with pytest.raises(WebSocketDisconnect) as closed, \
                client.websocket_connect(f"/api/runs/{run_id}/logs/ws", headers={**notebook, **host}):
            pass
        assert closed.value.code == 4403 and "Cross-origin" in closed.value.reason
        # The server's own origin may.
        ok = client.patch(f"/api/runs/{run_id}", json={"tags": ["mine"]}, headers={"Origin": own})
        assert ok.status_code == 200 and ok.json()["tags"] == ["mine"]
        with client.websocket_connect(f"/api/runs/{run_id}/logs/ws", headers={"Origin": own, **host}) as ws:
            ws.close()
    meta = json.loads(next(root.rglob("meta.json")).read_text())
    assert meta["tags"] == ["mine"]


def test_allowed_hosts_are_names_of_the_server(make_app) -> None:
    app = make_app(port=23300, allowed_hosts=("team.example",))
    with TestClient(app, base_url="http://team.example:23300") as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/health", headers={"Host": "team.example"}).status_code == 200  # a proxy's
        assert client.get("/api/health", headers={"Host": "127.0.0.1:23300"}).status_code == 200
        assert client.get("/api/health", headers={"Host": "evil.example:23300"}).status_code == 400
        same = client.post("/api/v2/experiments/batch-restore", json={"exp_ids": ["x"]},
                           headers={"Origin": "http://team.example:23300"})
        assert same.status_code == 200
        other = client.post("/api/v2/experiments/batch-restore", json={"exp_ids": ["x"]},
                            headers={"Origin": "http://127.0.0.1:23300"})
        assert other.status_code == 403


# ---- the command line ------------------------------------------------------------------------

def test_a_non_loopback_bind_needs_allowed_hosts(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--root", str(tmp_path), "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert "--allowed-hosts" in result.output and "RUNICORN_LITE_ALLOWED_HOSTS" in result.output
    bad = CliRunner().invoke(main, ["serve", "--root", str(tmp_path), "--allowed-hosts", "a/b"])
    assert bad.exit_code == 2 and "not a host name" in bad.output


def _raw(url: str, method: str, path: str, host: str, origin: str | None = None, body: bytes = b"") -> int:
    """One request with exactly these Host/Origin headers (as a rebinding page's browser sends)."""
    port = int(url.rsplit(":", 1)[1])
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Content-Type: text/plain", f"Content-Length: {len(body)}",
             "Connection: close"]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_dns_rebinding_against_a_shared_server_is_refused(tmp_path: Path, server_factory) -> None:
    root = tmp_path / "data"
    run_id = write_run(root)
    server = server_factory(root, "--host", "0.0.0.0", "--allowed-hosts", "team.example", "--auth", "none")
    server.url = server.url.replace("0.0.0.0", "127.0.0.1")
    server.wait_ready()
    assert "with --auth none" in "".join(server.output)  # the warning at start
    port = server.url.rsplit(":", 1)[1]
    evil = f"evil.example:{port}"
    body = json.dumps({"ids": [run_id]}).encode()
    assert _raw(server.url, "POST", "/api/runs/soft-delete", evil, f"http://{evil}", body) == 400
    assert _raw(server.url, "GET", "/api/v2/experiments", evil) == 400
    assert _raw(server.url, "GET", "/api/v2/experiments", f"team.example:{port}") == 200
    listed = httpx.get(server.url + "/api/v2/experiments").json()
    assert [e["id"] for e in listed["experiments"]] == [run_id]  # not deleted


def test_a_page_on_another_local_port_cannot_change_runs(tmp_path: Path, server_factory) -> None:
    root = tmp_path / "data"
    run_id = write_run(root)
    server = server_factory(root)
    server.wait_ready()
    host = server.url.split("://", 1)[1]
    refused = httpx.patch(f"{server.url}/api/runs/{run_id}", json={"tags": ["pwned"]},
                          headers={"Origin": "http://localhost:8888"})
    assert refused.status_code == 403
    assert httpx.get(f"{server.url}/api/runs/{run_id}").json()["tags"] == ["keep"]
    assert _raw(server.url, "GET", "/api/health", "localhost:8888") == 400
    assert _raw(server.url, "GET", "/api/health", host) == 200


def _keys(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runicorn_lite", "keys", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_keys_go_into_the_store_the_server_uses(tmp_path: Path, server_factory) -> None:
    root, store = tmp_path / "data", tmp_path / "store"
    write_run(root, project="vision")
    server = server_factory(root, "--index-dir", str(store), "--auth", "keys")
    server.wait_ready()
    made = _keys("create", "--root", str(root), "--index-dir", str(store), "--project", "vision")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    by_url = _keys("create", "--root", str(root), "--database", f"sqlite:///{store}", "--all-projects",
                   "--read-only")
    assert by_url.returncode == 0 and "read-only key" in by_url.stderr and "every project" in by_url.stderr
    assert not (root / ".runicorn_lite").exists()  # nothing of ours under the root
    for token in (key, by_url.stdout.strip()):
        answer = httpx.get(server.url + "/api/v2/experiments", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.json()["total"] == 1
    listed = _keys("list", "--index-dir", str(store), "--root", str(root))
    assert "(all)" in listed.stdout and "read-only" not in listed.stdout and "read " in listed.stdout
    wrong = _keys("create", "--root", str(root), "--database", "mysql://x@db/runs", "--project", "p")
    assert wrong.returncode == 2 and "sqlite:///" in wrong.stderr and "postgresql://" in wrong.stderr
    unreachable = _keys("create", "--root", str(root), "--database", "postgresql://x@127.0.0.1:1/runs",
                        "--project", "p")
    assert unreachable.returncode == 1 and "127.0.0.1:1" in unreachable.stderr
    both = _keys("create", "--root", str(root), "--index-dir", str(tmp_path / "a"), "--database",
                 f"sqlite:///{tmp_path / 'b'}", "--project", "p")
    assert both.returncode == 2 and "give one" in both.stderr
