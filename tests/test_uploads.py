"""Logging from another machine (team-server.md §4): the SDK's background uploader and
``runicorn-lite sync`` against real server processes, through a TCP proxy that drops and stalls
connections; the server's checks (keys, names, sizes, offsets) in process."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from support import ServerProcess, wait_for

import runicorn_lite
from runicorn_lite import rundir
from runicorn_lite.api.uploads import MAX_PIECE
from runicorn_lite.db import Database
from runicorn_lite.optimization.keys import create_key
from runicorn_lite.optimization.schema import MIGRATIONS
from runicorn_lite.uploader import local_files


def make_key(store: Path, project: str | None, **kwargs: Any) -> str:
    """A key in the primary database of a (running) server's store."""
    db = Database(store / "primary.sqlite", MIGRATIONS, precious=True)
    try:
        return create_key(db, project, **kwargs)[0]
    finally:
        db.close()


def assert_mirrored(local_root: Path, server_root: Path, run_dir: Path, *, except_meta: bool = False) -> None:
    """Every file of the run is on the server at the same relative path, byte for byte."""
    rel = run_dir.relative_to(local_root)
    names = local_files(run_dir)
    assert rundir.EVENTS in names and rundir.STATUS in names
    for name in names:
        if except_meta and name == rundir.META:
            continue
        assert (server_root / rel / name).read_bytes() == (run_dir / name).read_bytes(), name


def points(url: str, run_id: str, key: str) -> int:
    response = httpx.get(f"{url}/api/v2/experiments/{run_id}/metrics/fast",
                         headers={"Authorization": f"Bearer {key}"}, timeout=10)
    return int(response.json().get("total_points", 0)) if response.status_code == 200 else 0


class Proxy:
    """A TCP proxy on a fixed local port in front of a server that may change port: ``drop()``
    cuts every connection (and refuses new ones until ``heal()``), ``stall`` holds all bytes."""

    def __init__(self, target: str) -> None:
        self.target = target  # host:port
        self.refusing = False
        self.stall = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            host, port = self.target.rsplit(":", 1)
            try:
                upstream = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while self.stall:
                    time.sleep(0.02)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        self.refusing = True
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def heal(self) -> None:
        self.refusing = False

    def close(self) -> None:
        self.drop()
        self.sock.close()


@pytest.fixture
def team(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A server on its own root and store, a key of project vision, a local root for the SDK."""
    server_root, store, local = tmp_path / "server", tmp_path / "store", tmp_path / "gpu-box"
    server_root.mkdir()
    # The tests' TCP proxy has a port of its own (as a reverse proxy would): allow the name on any port.
    server = ServerProcess(server_root, "--index-dir", str(store), "--allowed-hosts", "127.0.0.1")
    server.wait_ready()
    try:
        yield {"server": server, "root": server_root, "store": store, "local": local,
               "key": make_key(store, "vision")}
    finally:
        server.stop()


def test_a_run_is_mirrored_live_and_server_edits_survive(team: dict[str, Any]) -> None:
    server, key = team["server"], team["key"]
    run = runicorn_lite.init(project="vision", name="resnet", root=team["local"], server=server.url, api_key=key,
                             tags=["sdk"], config={"lr": 0.1})
    for step in range(1, 51):
        run.log({"loss": 1 / step}, step=step)
    run.flush()
    wait_for(lambda: points(server.url, run.id, key) == 50)  # live, before the run ends
    # The server's user retags the run meanwhile; the SDK then changes meta.json too.
    patched = httpx.patch(f"{server.url}/api/runs/{run.id}", json={"tags": ["keep"], "alias": "best"}, timeout=10)
    assert patched.status_code == 200
    deleted = httpx.post(f"{server.url}/api/v2/experiments/batch-delete", json={"exp_ids": [run.id]}, timeout=10)
    assert deleted.json()["deleted"] == 1
    run.set_primary_metric("loss", mode="min")
    run.log_text("epoch done")
    run.log_image("samples", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), step=50)
    for step in range(51, 101):
        run.log({"loss": 1 / step}, step=step)
    run.summary({"epochs": 2})
    run.finish()
    assert_mirrored(team["local"], team["root"], run.run_dir, except_meta=True)
    meta = json.loads((team["root"] / run.run_dir.relative_to(team["local"]) / "meta.json").read_text())
    assert meta["tags"] == ["keep"] and meta["alias"] == "best"  # the server's edits
    assert meta["primary_metric"] == {"name": "loss", "mode": "min"}  # the SDK's later change
    wait_for(lambda: points(server.url, run.id, key) == 100)
    detail = httpx.get(f"{server.url}/api/v2/experiments/{run.id}", timeout=10).json()["experiment"]
    assert detail["status"] == "finished" and detail["tags"] == ["keep"]
    assert detail["deleted_at"] is not None  # the server's soft delete outlived every later upload


def test_a_refusing_server_never_stops_training(team: dict[str, Any], capfd: pytest.CaptureFixture[str]) -> None:
    run = runicorn_lite.init(project="nlp", name="wrong-key", root=team["local"], server=team["server"].url,
                             api_key=team["key"])  # a key of project vision
    for step in range(1, 101):
        run.log({"loss": 1 / step}, step=step)
    run.finish()
    err = capfd.readouterr().err
    assert err.count("refused run") == 1 and "403" in err and "stays local only" in err
    assert not (team["root"] / "runs" / "nlp").exists()
    assert len((run.run_dir / "events.jsonl").read_bytes().splitlines()) == 100  # the local run is whole


def test_the_network_drops_stalls_and_the_server_restarts(team: dict[str, Any], tmp_path: Path) -> None:
    server, key = team["server"], team["key"]
    proxy = Proxy(server.url.split("://", 1)[1])
    try:
        run = runicorn_lite.init(project="vision", name="flaky", root=team["local"], server=proxy.url, api_key=key,
                                 upload_timeout=60)
        for step in range(1, 2001):
            run.log({"loss": 1 / step, "acc": step / 2000}, step=step)
            if step == 400:
                proxy.drop()  # the network goes away...
            elif step == 700:
                proxy.heal()
            elif step == 900:
                proxy.stall = True  # ...then hangs mid-request
            elif step == 1000:
                time.sleep(0.5)
                proxy.stall = False
                proxy.drop()
                proxy.heal()
            elif step == 1200:  # the server is killed and comes back on another port
                server.proc.kill()
                server.proc.wait(10)
                again = ServerProcess(team["root"], "--index-dir", str(team["store"]), "--allowed-hosts", "127.0.0.1")
                again.wait_ready()
                team["server"] = server = again
                proxy.target = again.url.split("://", 1)[1]
                proxy.drop()
                proxy.heal()
            if step % 100 == 0:
                run.log_text(f"step {step}")
                time.sleep(0.05)
        run.finish()
        assert_mirrored(team["local"], team["root"], run.run_dir)
        wait_for(lambda: points(server.url, run.id, key) == 2000, timeout=20)  # every step, once
    finally:
        proxy.close()
        team["server"].stop()


def _sync(root: Path, url: str, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runicorn_lite", "sync", "--root", str(root), "--server", url,
                           "--api-key", key], capture_output=True, text=True, timeout=120, check=False)


def test_runs_written_with_the_server_down_are_synced_once(team: dict[str, Any]) -> None:
    server, key, local = team["server"], team["key"], team["local"]
    dead = socket.create_server(("127.0.0.1", 0))
    down = f"http://127.0.0.1:{dead.getsockname()[1]}"
    dead.close()  # nobody listens there
    started = time.perf_counter()
    run = runicorn_lite.init(project="vision", name="offline", root=local, server=down, api_key=key,
                             upload_timeout=1)
    for step in range(1, 301):
        run.log({"loss": 1 / step}, step=step)  # never raises, never waits
    run.finish()
    assert time.perf_counter() - started < 30
    with runicorn_lite.init(project="vision", name="before-server", root=local) as plain:
        plain.log({"loss": 1.0}, step=1)
    with runicorn_lite.init(project="nlp", name="other-project", root=local) as other:
        other.log({"loss": 1.0}, step=1)
    first = _sync(local, server.url, key)
    assert first.returncode == 1  # the nlp run needs a key of its project
    assert "runs/nlp/other-project" in first.stderr and "403" in first.stderr
    assert "2 of 3 runs complete" in first.stdout and "2 needed sending" in first.stdout
    for r in (run, plain):
        assert_mirrored(local, team["root"], r.run_dir)
    wait_for(lambda: points(server.url, run.id, key) == 300)
    everything = make_key(team["store"], None, all_projects=True)
    second = _sync(local, server.url, everything)
    assert second.returncode == 0, second.stderr
    assert "3 of 3 runs complete" in second.stdout and "1 needed sending" in second.stdout
    third = _sync(local, server.url, everything)
    assert third.returncode == 0 and "0 needed sending, 0 bytes sent" in third.stdout


def test_twenty_runs_at_once_lose_and_repeat_nothing(team: dict[str, Any]) -> None:
    server, key, local = team["server"], team["key"], team["local"]
    runs: list[Any] = []

    def train(i: int) -> None:
        run = runicorn_lite.init(project="vision", name=f"worker{i}", root=local, server=server.url, api_key=key)
        runs.append(run)
        for step in range(1, 201):
            run.log({"loss": 1 / step, "i": i}, step=step)
            if step % 50 == 0:
                time.sleep(0.01)
        run.finish()

    threads = [threading.Thread(target=train, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(runs) == 20
    for run in runs:
        assert_mirrored(local, team["root"], run.run_dir)
    # Every step of every run indexed once (a repeated piece would have broken the copies above).
    wait_for(lambda: all(points(server.url, r.id, key) == 200 for r in runs), timeout=30)


# ---- the server's checks, in process ------------------------------------------------------------

RUN = "runs/vision/resnet/20261207_101010_abcdef"


@pytest.fixture
def upload_app(make_app, root: Path) -> Any:
    app = make_app()
    db = app.state.optimization.state.db
    keys = {"vision": create_key(db, "vision")[0], "nlp": create_key(db, "nlp")[0],
            "read": create_key(db, "vision", read_only=True)[0], "all": create_key(db, None, all_projects=True)[0]}
    return TestClient(app), keys, root


def put(client: TestClient, key: str, name: str, body: bytes, offset: int | None = 0, run: str = RUN) -> Any:
    params: dict[str, Any] = {"run": run, "name": name}
    if offset is not None:
        params["offset"] = offset
    return client.put("/api/uploads/file", params=params, content=body, headers={"Authorization": f"Bearer {key}"})


def test_uploads_always_need_a_key_of_the_runs_project(upload_app: Any) -> None:
    client, keys, root = upload_app
    anonymous = client.put("/api/uploads/file", params={"run": RUN, "name": "events.jsonl", "offset": 0},
                           content=b"x")
    assert anonymous.status_code == 401  # even on a server with --auth none
    assert client.get("/api/uploads/state", params={"run": RUN}).status_code == 401
    other = put(client, keys["nlp"], "events.jsonl", b"{}\n")
    assert other.status_code == 403 and "project" in other.json()["detail"]
    read_only = put(client, keys["read"], "events.jsonl", b"{}\n")
    assert read_only.status_code == 403 and "read-only" in read_only.json()["detail"]
    assert not (root / "runs").exists()  # nothing written
    lying = put(client, keys["vision"], "meta.json", json.dumps({"project": "nlp"}).encode(), offset=None)
    assert lying.status_code == 403
    assert put(client, keys["all"], "events.jsonl", b"{}\n").status_code == 200
    assert put(client, keys["vision"], "status.json", b'{"status": "running"}', offset=None).status_code == 200


def test_hostile_names_and_run_paths_are_refused(upload_app: Any, tmp_path: Path) -> None:
    client, keys, root = upload_app
    key = keys["vision"]
    for name in ("../meta.json", "/etc/passwd", "media/../../x", "events.jsonl\x00", "media/" + "a" * 300,
                 ".deleted", "media/.hidden", "notes.txt", "media/sub/x.png"):
        answer = put(client, key, name, b"x")
        assert answer.status_code == 400, name
    for run in ("runs/vision/../../x/20261207_101010_abcdef", "/runs/vision/a/20261207_101010_abcdef",
                "elsewhere/vision/a/20261207_101010_abcdef", "runs/vision/a/not an id", "runs/.recycle/a/b",
                "runs/vision/" + "n" * 300 + "/20261207_101010_abcdef", "runs/vi\x00sion/a/20261207_101010_abcdef"):
        assert put(client, key, "events.jsonl", b"x", run=run).status_code == 400, run
    # a symlink planted in the server's copy is never followed
    assert put(client, key, "events.jsonl", b"{}\n").status_code == 200
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / RUN / "media")
    assert put(client, key, "media/x.png", b"png").status_code == 400
    assert list(outside.iterdir()) == []
    assert put(client, key, "events.jsonl", b"x", offset=None).status_code == 400  # appended files need offset
    assert put(client, key, "status.json", b"{}", offset=0).status_code == 400


def test_offsets_replays_gaps_and_the_size_cap(upload_app: Any) -> None:
    client, keys, root = upload_app
    key = keys["vision"]
    assert put(client, key, "events.jsonl", b"line one\n").json()["size"] == 9
    replay = put(client, key, "events.jsonl", b"line one\n")  # the same piece again
    assert replay.status_code == 200 and replay.json()["size"] == 9
    overlap = put(client, key, "events.jsonl", b"one\nline two\n", offset=5)
    assert overlap.json()["size"] == 18
    gap = put(client, key, "events.jsonl", b"far away\n", offset=100)
    assert gap.status_code == 409 and gap.headers["x-upload-size"] == "18"
    assert (root / RUN / "events.jsonl").read_bytes() == b"line one\nline two\n"

    def stream() -> Iterator[bytes]:
        for _ in range(MAX_PIECE // 65536 + 2):
            yield b"\0" * 65536

    too_big = client.put("/api/uploads/file", params={"run": RUN, "name": "logs.txt", "offset": 0},
                         content=stream(), headers={"Authorization": f"Bearer {key}"})
    assert too_big.status_code == 413
    assert not (root / RUN / "logs.txt").exists()
    state = client.get("/api/uploads/state", params={"run": RUN}, headers={"Authorization": f"Bearer {key}"})
    assert state.json()["files"] == {"events.jsonl": {"size": 18}}


def test_the_meta_merge_waits_for_another_process_editing_meta(upload_app: Any) -> None:
    """Another worker's edit of meta.json holds the run directory's lock (rundir.update_meta):
    an upload of meta.json waits for it, then keeps the edit, instead of writing over it."""
    client, keys, root = upload_app
    key = keys["vision"]
    first = {"project": "vision", "name": "resnet", "alias": None, "tags": []}
    assert put(client, key, "meta.json", json.dumps(first).encode(), offset=None).status_code == 200
    holder = subprocess.Popen(  # another process: edits meta.json under the lock, slowly
        [sys.executable, "-c", (
            "import sys, time, json, pathlib\n"
            "from runicorn_lite import rundir\n"
            "d = pathlib.Path(sys.argv[1])\n"
            "with rundir.dir_lock(d):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(1.0)\n"
            "    meta = json.loads((d / 'meta.json').read_text())\n"
            "    meta['alias'] = 'edited elsewhere'\n"
            "    rundir.atomic_write_json(d / 'meta.json', meta)\n"
        ), str(root / RUN)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        second = {**first, "tags": ["from the sdk"]}
        assert put(client, key, "meta.json", json.dumps(second).encode(), offset=None).status_code == 200
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
        holder.stdout.close()  # type: ignore[union-attr]
    meta = json.loads((root / RUN / "meta.json").read_text())
    assert waited > 0.5  # it waited for the other process's lock ...
    assert meta["alias"] == "edited elsewhere" and meta["tags"] == ["from the sdk"]  # ... and kept its edit
