"""A team server, tried as it runs: real processes, several workers, PostgreSQL lost and found.

- PostgreSQL unreachable at start: exit 1, one line naming the host and the cause.
- PostgreSQL cut while serving (a TCP proxy in between): 503 ``database unavailable`` with
  Retry-After, health degraded naming it; back by itself, and the index catches up.
- Two servers migrating one empty database at once: both serve, each migration recorded once.
- ``--workers 2``: both answer; a worker killed is replaced; the ingester killed, another ingests
  within 10 s and nothing written meanwhile is missed; live events reach streams on any worker.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import backends
import httpx
import pytest
from support import ServerProcess, wait_for

import runicorn_lite

pytestmark = pytest.mark.e2e


def _write_run(root: Path, project: str, name: str, steps: int = 3) -> str:
    run = runicorn_lite.init(project=project, name=name, root=root)
    for step in range(1, steps + 1):
        run.log({"loss": 1.0 / step}, step=step)
    run.finish()
    return run.id


def _ids(url: str) -> set[str]:
    body = httpx.get(url + "/api/v2/experiments", params={"per_page": 1000}, timeout=10).json()
    return {e["id"] for e in body["experiments"]}


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL schema of its own (the test needs a server: it skips or fails without one)."""
    reason = backends.problem()
    if reason is not None:
        if backends.REQUIRED:
            pytest.fail(f"PostgreSQL tests are required here, but {reason}", pytrace=False)
        pytest.skip(reason)
    with backends.using("postgresql"):
        url = backends.new_database()
    assert url is not None
    yield url
    backends.drop_database(url)


class TcpProxy:
    """Forwards a local port to PostgreSQL; ``cut()`` drops every connection and refuses new
    ones (as a network partition would), ``restore()`` lets them through again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if not self.open:  # cut meanwhile
                    client.close()
                    upstream.close()
                    continue
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_postgres_unreachable_at_start_exits_1_naming_host_and_cause(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:  # a port nobody answers on once closed
        port = s.getsockname()[1]
    (tmp_path / "data").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "runicorn_lite", "serve", "--root", str(tmp_path / "data"), "--port", "0",
         "--database", f"postgresql://root@127.0.0.1:{port}/root"],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "refused" in lines[0].lower(), lines[0]
    assert "Traceback" not in proc.stderr


def test_postgres_cut_while_serving_503_then_back_and_caught_up(tmp_path: Path, pg_url: str) -> None:
    root = tmp_path / "data"
    first = _write_run(root, "team", "before")
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxied = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    server = ServerProcess(root, "--database", proxied)
    try:
        server.wait_ready(60)
        assert _ids(server.url) == {first}
        proxy.cut()
        answer = wait_for(lambda: (r := httpx.get(server.url + "/api/v2/experiments", timeout=20)).status_code == 503
                          and r, timeout=20)
        assert isinstance(answer, httpx.Response)
        assert answer.json()["detail"].startswith("database unavailable: ") and answer.headers["Retry-After"]
        health = wait_for(lambda: (h := httpx.get(server.url + "/api/health", timeout=20).json())["status"]
                          == "degraded" and h, timeout=20)
        assert isinstance(health, dict)
        assert any("database unavailable" in p for p in health["problems"]), health["problems"]
        during = _write_run(root, "team", "during")  # written while the index cannot be reached
        assert (root / "runs" / "team" / "during" / during / "events.jsonl").exists()
        proxy.restore()
        wait_for(lambda: httpx.get(server.url + "/api/health", timeout=20).json()["status"] == "ok", timeout=30)
        try:
            wait_for(lambda: _ids(server.url) == {first, during}, timeout=30)
        except AssertionError:
            raise AssertionError(server.tail(60)) from None
        assert "Traceback" not in "".join(server.output)
    finally:
        server.stop()
        proxy.close()


def test_two_servers_migrating_one_empty_database_both_serve(tmp_path: Path, pg_url: str) -> None:
    root = tmp_path / "data"
    run_id = _write_run(root, "team", "shared")
    servers = [ServerProcess(root, "--database", pg_url), ServerProcess(root, "--database", pg_url)]
    try:
        for server in servers:
            assert server.health()["status"] == "ok"
        wait_for(lambda: all(_ids(s.url) == {run_id} for s in servers), timeout=30)
    finally:
        for server in servers:
            server.stop()
    import psycopg

    with psycopg.connect(pg_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _index_migrations").fetchall()]
    assert sorted(names) == sorted(set(names)) and names


def _healths(url: str, n: int = 40) -> list[dict[str, object]]:
    """The ``worker`` of ``n`` answers, each on a new connection (the kernel spreads those)."""
    out = []
    for _ in range(n):
        with contextlib.suppress(httpx.TransportError):  # a worker killed by the test
            out.append(httpx.get(url + "/api/health", timeout=10, headers={"Connection": "close"}).json()["worker"])
    return out


def _pids(url: str) -> set[int]:
    return {int(w["pid"]) for w in _healths(url)}  # type: ignore[call-overload]


def _ingester(url: str) -> int | None:
    found = [int(w["pid"]) for w in _healths(url) if w["ingester"]]  # type: ignore[call-overload]
    return found[0] if found else None


def _logged_at(server: ServerProcess, message: str) -> float | None:
    """When the server logged a line ending with ``message`` (its clock), or None."""
    for line in list(server.output):
        if line.rstrip().endswith(message):
            stamp = line[:23]  # "2026-12-07 13:53:20,588"
            return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_workers_failover_and_replacement(tmp_path: Path, database: str, request: pytest.FixtureRequest) -> None:
    root = tmp_path / "data"
    first = _write_run(root, "team", "first")
    extra = ["--database", request.getfixturevalue("pg_url")] if database == "postgresql" else []
    server = ServerProcess(root, "--workers", "2", "--rescan-interval", "0", *extra)
    try:
        pids = wait_for(lambda: len(p := _pids(server.url)) == 2 and p, timeout=30)
        assert isinstance(pids, set)
        assert all(w["workers"] == 2 for w in _healths(server.url, 4))
        # Whichever worker answers, health reports the index as the ingester left it.
        wait_for(lambda: all(h["index"]["ready"] and h["index"]["runs_in_index"] == 1 for h in
                             (httpx.get(server.url + "/api/health", headers={"Connection": "close"}).json()
                              for _ in range(10))), timeout=30)
        wait_for(lambda: _ids(server.url) == {first}, timeout=30)
        ingester = wait_for(lambda: _ingester(server.url), timeout=20)
        assert isinstance(ingester, int)
        # The other worker killed during requests: requests go on, and it is replaced.
        other = next(iter(pids - {ingester}))
        os.kill(other, signal.SIGKILL)
        ok = 0
        with httpx.Client(timeout=10) as http:
            for _ in range(50):
                with contextlib.suppress(httpx.TransportError):  # a request the dead worker held
                    ok += http.get(server.url + "/api/v2/experiments").status_code == 200
        assert ok >= 45
        wait_for(lambda: len(p := _pids(server.url)) == 2 and other not in p, timeout=20)
        # The ingester killed: another ingests within 10 s, and a run written meanwhile is found.
        os.kill(ingester, signal.SIGKILL)
        killed_at = time.time()
        second = _write_run(root, "team", "second")
        successor = wait_for(lambda: (pid := _ingester(server.url)) not in (None, ingester) and pid, timeout=30)
        # The takeover as the server logged it (the test's own polling, slow on a loaded
        # machine, is not part of it).
        took = wait_for(lambda: _logged_at(server, f"worker {successor} ingests from now on"), timeout=10) - killed_at
        assert took < 10, f"another worker ingests {took:.1f} s after the ingester died"
        wait_for(lambda: _ids(server.url) == {first, second}, timeout=30)
        assert "worker" in "".join(server.output) and "Traceback" not in "".join(server.output)
    finally:
        server.stop()


def test_live_events_reach_streams_on_every_worker(tmp_path: Path) -> None:
    root = tmp_path / "data"
    server = ServerProcess(root, "--workers", "2")
    received: list[bytes] = []
    streams = []
    try:
        wait_for(lambda: _ingester(server.url), timeout=20)
        port = int(server.url.rsplit(":", 1)[1])
        for _ in range(6):  # the kernel spreads them over both workers
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(f"GET /api/v2/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                         "Accept: text/event-stream\r\n\r\n".encode())
            sock.settimeout(15)
            streams.append(sock)
        time.sleep(1.0)
        run_id = _write_run(root, "team", "live")

        def read_until(sock: socket.socket) -> bytes:
            data = b""
            deadline = time.monotonic() + 15
            while run_id.encode() not in data and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    data += sock.recv(65536)
            return data

        received = [read_until(s) for s in streams]
        assert all(run_id.encode() in data for data in received), [d[-300:] for d in received]
    finally:
        for sock in streams:
            sock.close()
        server.stop()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_rate_limits_are_shared_between_workers(tmp_path: Path, database: str,
                                                request: pytest.FixtureRequest) -> None:
    """A limit of 10 a minute is 10 in total over both workers, not 10 each (team-server.md §2):
    V2's ``--rate-limit`` and the wrong-key limit of V1/V2 count in the primary store."""
    root = tmp_path / "data"
    root.mkdir()
    extra = ["--database", request.getfixturevalue("pg_url")] if database == "postgresql" else []
    server = ServerProcess(root, "--workers", "2", "--rate-limit", *extra)
    try:
        wait_for(lambda: len(_pids(server.url)) == 2, timeout=30)
        if 60.0 - time.time() % 60.0 < 15:  # all of it inside one window of the limits
            time.sleep(60.0 - time.time() % 60.0 + 0.1)
        unknown = {"exp_ids": ["20991231_000000_000000"]}
        close = {"Connection": "close"}  # a new connection each: the kernel spreads them over both workers
        statuses, pids = [], set()
        with httpx.Client(base_url=server.url, timeout=10, headers=close) as http:
            # Whichever worker accepts first gets a connection: go on until both have answered
            # while the limited requests were being made (a busy machine can favour one).
            while len(statuses) < 30 or (len(pids) < 2 and len(statuses) < 300):
                statuses.append(http.post("/api/v2/experiments/batch-delete", json=unknown).status_code)
                pids.add(http.get("/api/health").json()["worker"]["pid"])
            assert len(pids) == 2
            assert statuses == [200] * 10 + [429] * (len(statuses) - 10)
            wrong = {"Authorization": "Bearer sk_live_" + "0" * 40}
            refused = [http.get("/api/uploads/runs", headers=wrong).status_code for _ in range(70)]
        assert refused == [401] * 60 + [429] * 10  # settings.auth_failure_limit, in total
    finally:
        server.stop()
