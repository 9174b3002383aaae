"""Faults on real processes: the index deleted under a serving server, processes killed while they
index or train, two servers on one root, and a read-only root served from another index folder."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import runicorn_lite
from runicorn_lite import rundir
from runicorn_lite.settings import Settings

pytestmark = pytest.mark.e2e

CLONES = 400
STEPS = 1500


def clone_runs(root: Path, n: int, steps: int, project: str = "bulk") -> list[str]:
    """``n`` runs: one written through the SDK, the others copies of it under new ids (writing
    each through the SDK would cost seconds of fsyncs)."""
    run = runicorn_lite.init(project=project, name="clone", root=root, tags=["bulk"])
    run.set_primary_metric("acc")
    for step in range(1, steps + 1):
        run.log({"acc": step / steps, "loss": 1 / step, "lr": 0.1}, step=step)
    run.finish()
    template = Path(run.run_dir)
    ids = [run.id]
    for i in range(1, n):
        new_id = f"20250101_000000_{i:06x}"
        target = template.parent / new_id
        shutil.copytree(template, target)
        meta = json.loads((target / rundir.META).read_text())
        meta["id"] = new_id
        (target / rundir.META).write_text(json.dumps(meta))
        ids.append(new_id)
    return ids


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bulk") / "data"
    clone_runs(root, CLONES, STEPS)
    return root


@pytest.fixture
def bulk_copy(bulk: Path, tmp_path: Path) -> Path:
    root = tmp_path / "bulk"
    shutil.copytree(bulk, root, ignore=shutil.ignore_patterns(".runicorn_lite"))
    return root


def _index_rows(index_path: Path) -> tuple[int, int, str]:
    conn = sqlite3.connect(index_path)
    try:
        runs = conn.execute("SELECT count(*) FROM experiments").fetchone()[0]
        points = conn.execute("SELECT coalesce(sum(n), 0) FROM metric_chunks").fetchone()[0]
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    return runs, points, check


def _committed_runs(index_path: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{index_path}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM experiments").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or its schema not yet committed
        return 0


# -- item 1: the index deleted while serving ----------------------------------------------------


def test_index_deleted_while_serving_is_back_within_seconds(bulk_copy: Path, server_factory) -> None:
    server = server_factory(bulk_copy)
    server.wait_ready(60)
    index_path = Settings(root=bulk_copy).index_path
    url = server.url + "/api/v2/experiments"
    with httpx.Client(timeout=20) as http:
        assert http.get(url).json()["total"] == CLONES
        for suffix in ("", "-wal", "-shm"):
            Path(f"{index_path}{suffix}").unlink(missing_ok=True)
        deleted_at = time.monotonic()
        seen: dict[int, int] = {}
        degraded = []

        def one(_: int) -> tuple[int, dict]:
            answer = http.get(url, params={"per_page": 5})
            return answer.status_code, answer.json()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            while True:
                answers = list(pool.map(one, range(8)))
                for status, body in answers:
                    seen[status] = seen.get(status, 0) + 1
                    assert status in (200, 503), body
                    if status == 503:
                        assert "being rebuilt" in body["detail"], body
                    else:
                        assert body["total"] == CLONES, body  # never a partial answer
                health = http.get(server.url + "/api/health").json()
                if health["status"] == "degraded":
                    degraded.append(health["problems"])
                if all(s == 200 and b["total"] == CLONES for s, b in answers) and health["status"] == "ok":
                    break
                # Seconds on a quiet machine; the bound only tells "back by itself" from "never",
                # with room for a loaded one (speed is the benchmarks' business).
                assert time.monotonic() - deleted_at < 90, f"not back after 90 s: {seen}"
                time.sleep(0.05)
    assert index_path.exists() and _index_rows(index_path)[0] == CLONES
    output = "".join(server.output)
    assert "index.sqlite was deleted; it is being rebuilt" in output and "Traceback" not in output
    assert all("index.sqlite" in p[0] for p in degraded)


# -- kills ----------------------------------------------------------------------------------------


def test_index_killed_mid_way_then_run_again_is_complete(bulk_copy: Path) -> None:
    index_path = Settings(root=bulk_copy).index_path
    proc = subprocess.Popen(
        [sys.executable, "-m", "runicorn_lite", "index", "--root", str(bulk_copy), "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while _committed_runs(index_path) == 0:  # kill it once some batches are committed
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    partial_runs, _, check = _index_rows(index_path)
    assert 0 < partial_runs < CLONES and check == "ok"
    again = subprocess.run(
        [sys.executable, "-m", "runicorn_lite", "index", "--root", str(bulk_copy), "--silent"],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert _index_rows(index_path) == (CLONES, CLONES * STEPS * 3, "ok")


def test_a_killed_training_script_is_failed_and_keeps_every_flushed_point(root: Path, server_factory) -> None:
    server = server_factory(root)
    server.wait_ready()
    script = textwrap.dedent(
        f"""
        import sys, time
        import runicorn_lite
        run = runicorn_lite.init(project="kill", name="writer", root={str(root)!r})
        print(run.id, flush=True)
        step = 0
        while True:
            step += 1
            run.log({{"loss": 1 / step}}, step=step)
            if step % 50 == 0:
                run.flush()
                print(step, flush=True)
            time.sleep(0.001)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    flushed = 0
    while flushed < 300:
        flushed = int(proc.stdout.readline())
    proc.kill()
    proc.wait(10)
    proc.stdout.close()
    events = Path(next(root.rglob(f"{run_id}/events.jsonl")))
    logged = [json.loads(line)["data"]["global_step"] for line in events.read_text().splitlines()
              if line.endswith("}")]
    assert len(logged) >= flushed
    deadline = time.monotonic() + 20
    with httpx.Client(base_url=server.url, timeout=10) as http:
        while True:
            detail = http.get(f"/api/v2/experiments/{run_id}").json()
            fast = http.get(f"/api/v2/experiments/{run_id}/metrics/fast").json()
            if detail["experiment"]["status"] == "failed" and fast["total_points"] >= len(logged):
                break
            assert time.monotonic() < deadline, (detail, fast["total_points"], len(logged))
            time.sleep(0.1)
        assert detail["experiment"]["exit_reason"] == "process_not_found"
        assert [row["global_step"] for row in fast["rows"]] == sorted(set(logged))
        assert http.get("/api/health").json()["index"]["errors"] == 0


# -- item 12: two servers on one root --------------------------------------------------------------


def test_a_second_server_on_the_same_root_exits_1_naming_the_first(root: Path, server_factory) -> None:
    first = server_factory(root, "--no-watch")
    second = subprocess.run(
        [sys.executable, "-m", "runicorn_lite", "serve", "--root", str(root), "--port", "0"],
        capture_output=True, text=True, check=False, timeout=30,
    )
    assert second.returncode == 1
    message = second.stderr.strip()
    assert f"pid {first.proc.pid}" in message and first.url in message, message
    assert f"{root} is in use by runicorn-lite serve on {first.url}" in message and "Traceback" not in message
    index = subprocess.run(
        [sys.executable, "-m", "runicorn_lite", "index", "--root", str(root)],
        capture_output=True, text=True, check=False, timeout=30,
    )
    assert index.returncode == 1 and f"pid {first.proc.pid}" in index.stderr
    first.stop()
    # The lock dies with its process, however it ends.
    third = server_factory(root, "--no-watch")
    assert third.wait_ready()["status"] == "ok"


# -- item 10: a read-only root ----------------------------------------------------------------------


def _read_only_mount_works(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    result = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f"mount --bind -o ro {probe} {probe} && ! touch {probe}/x"],
        capture_output=True, check=False,
    )
    return result.returncode == 0


def test_a_read_only_root_is_served_from_an_index_dir(tmp_path: Path, corpus_root: Path) -> None:
    if shutil.which("unshare") is None or not _read_only_mount_works(tmp_path):
        pytest.skip("needs unshare --mount to make a read-only mount")
    index_dir = tmp_path / "elsewhere"
    before = sorted(str(p.relative_to(corpus_root)) for p in corpus_root.rglob("*"))
    command = (
        f"mount --bind -o ro {corpus_root} {corpus_root} && exec {sys.executable} -m runicorn_lite serve "
        f"--root {corpus_root} --port 0"
    )
    env = {**os.environ, "RUNICORN_LITE_INDEX_DIR": str(index_dir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(["unshare", "--mount", "sh", "-c", command], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("runicorn-lite listening on "):
                break
        else:
            raise AssertionError("".join(lines))
        url = lines[-1].split(" on ", 1)[1].strip()
        with httpx.Client(base_url=url, timeout=10) as http:
            deadline = time.monotonic() + 20
            while not http.get("/api/health").json()["index"]["ready"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            listed = http.get("/api/v2/experiments").json()
            assert listed["total"] == 3
            exp_id = listed["experiments"][0]["id"]
            assert http.get(f"/api/runs/{exp_id}").status_code == 200
            writes = [
                http.post("/api/v2/experiments/batch-delete", json={"exp_ids": [exp_id]}),
                http.post("/api/v2/experiments/batch-restore", json={"exp_ids": [exp_id]}),
                http.patch(f"/api/runs/{exp_id}", json={"alias": "x"}),
                http.post("/api/runs/soft-delete", json={"run_ids": [exp_id]}),
                http.post("/api/recycle-bin/restore", json={"run_ids": [exp_id]}),
                http.post("/api/recycle-bin/empty", json={"confirm": True}),
            ]
            declared = http.get("/openapi.json").json()["paths"]
            for answer in writes:
                assert answer.status_code == 403, answer.text
                assert "read-only" in answer.json()["detail"]
                path = answer.request.url.path.replace(exp_id, "{run_id}")
                assert "403" in declared[path][answer.request.method.lower()]["responses"], path
        assert (index_dir / "index.sqlite").exists() and (index_dir / "primary.sqlite").exists()
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert sorted(str(p.relative_to(corpus_root)) for p in corpus_root.rglob("*")) == before
    assert "Traceback" not in "".join(lines)


def test_a_read_only_root_without_an_index_dir_says_what_to_do(tmp_path: Path, corpus_root: Path) -> None:
    if shutil.which("unshare") is None or not _read_only_mount_works(tmp_path):
        pytest.skip("needs unshare --mount to make a read-only mount")
    command = (
        f"mount --bind -o ro {corpus_root} {corpus_root} && exec {sys.executable} -m runicorn_lite serve "
        f"--root {corpus_root} --port 0"
    )
    env = {k: v for k, v in os.environ.items() if k != "RUNICORN_LITE_INDEX_DIR"}
    result = subprocess.run(["unshare", "--mount", "sh", "-c", command], capture_output=True, text=True, check=False,
                            timeout=30, env=env)
    assert result.returncode == 1
    assert "read-only" in result.stderr and "--index-dir" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def corpus_root(tmp_path: Path) -> Path:
    root = tmp_path / "shared"
    for i in range(3):
        with runicorn_lite.init(project="shared", name=f"r{i}", root=root) as run:
            run.log({"acc": 0.5 + i / 10}, step=1)
    return root
