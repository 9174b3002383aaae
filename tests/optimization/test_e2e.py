"""Against a real server process (``python -m runicorn_lite serve --port 0``) on a real port."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import backends
import httpx
import pytest

from runicorn_lite.client import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    OptimizationClient,
    ValidationError,
)
from runicorn_lite.optimization.keys import create_key
from runicorn_lite.optimization.store import open_primary
from runicorn_lite.settings import Settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("runicorn_lite.cli") is None,
        reason="runicorn_lite.cli (serve) is not there yet",
    ),
]
LISTENING = re.compile(r"runicorn-lite listening on (http://127\.0\.0\.1:\d+)")


class Server:
    def __init__(self, root: Path, url: str, env: dict[str, str]) -> None:
        self.root = root
        self.url = url
        self.env = env  # the server's environment (RUNICORN_LITE_DATABASE on PostgreSQL)

    def new_key(self, project: str) -> str:
        # A second connection to the live primary database, as `keys create` would open.
        db = open_primary(Settings(root=self.root, database=self.env.get("RUNICORN_LITE_DATABASE")))
        try:
            return create_key(db, project)[0]
        finally:
            db.close()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runicorn_lite", *args, "--root", str(self.root)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=self.env,
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("e2e-root")
    env = {k: v for k, v in os.environ.items() if k != "RUNICORN_LITE_DATABASE"}
    database = backends.new_database()
    if database is not None:
        env["RUNICORN_LITE_DATABASE"] = database
    command = [
        sys.executable,
        "-m",
        "runicorn_lite",
        "serve",
        "--root",
        str(root),
        "--port",
        "0",
        "--no-watch",
        "--read-limit",
        "100000",
        "--write-limit",
        "100000",
        "--iterations-limit",
        "100000",
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=root,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    found: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        assert process.stdout is not None
        for line in process.stdout:  # keep draining so the server never blocks on a full pipe
            match = LISTENING.search(line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        if not ready.wait(30) or not found:
            pytest.fail(f"server did not report listening (exit code {process.poll()})")
        yield Server(root, found[0], env)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        watcher.join(10)
        assert process.stdout is not None
        process.stdout.close()
        backends.drop_database(database)


def test_200_concurrent_iteration_posts_lose_nothing(server: Server) -> None:
    key = server.new_key("concurrency")
    headers = {"Authorization": f"Bearer {key}"}
    base = server.url + "/api/iris/optimization"
    run = httpx.post(
        base + "/runs", json={"optimizer_type": "random_search", "config": {}}, headers=headers
    )
    assert run.status_code == 201
    run_id = run.json()["run"]["id"]
    scores = list(range(200))
    random.Random(4).shuffle(scores)

    async def post_all() -> list[int]:
        clients = [httpx.AsyncClient(base_url=base, headers=headers, timeout=30) for _ in range(8)]
        try:
            responses = await asyncio.gather(
                *(
                    clients[n % 8].post(
                        f"/runs/{run_id}/iterations",
                        json={"iteration_number": n, "params": {"n": n}, "score": scores[n] / 10},
                    )
                    for n in range(200)
                )
            )
        finally:
            for client in clients:
                await client.aclose()
        return [r.status_code for r in responses]

    assert asyncio.run(post_all()) == [201] * 200
    detail = httpx.get(f"{base}/runs/{run_id}", headers=headers).json()
    best = scores.index(199)
    assert detail["run"]["iterations_count"] == 200
    assert detail["run"]["final_score"] == 19.9
    assert detail["run"]["best_params"] == {"n": best}
    assert detail["run"]["status"] == "running"
    assert [it["iteration_number"] for it in detail["iterations"]] == list(range(200))
    assert detail["stats"]["totalIterations"] == 200


def test_sdk_flow_mirrors_the_document(server: Server) -> None:
    with OptimizationClient(api_key=server.new_key("sdk"), base_url=server.url) as client:
        run = client.runs.create(
            run_name="Experiment A",
            optimizer_type="bayesian",
            config={"learningRate": 0.01, "batchSize": 32},
        )
        assert run["status"] == "pending"
        for i in range(10):
            client.iterations.create(
                run["id"], iteration_number=i, params={"learningRate": 0.01 * (i + 1)}, score=i / 10
            )
        batch = client.iterations.create_many(
            run["id"], [{"iteration_number": 10 + i, "params": {}, "score": 0.1} for i in range(5)]
        )
        assert batch["runUpdates"]["iterations_count"] == 15
        done = client.runs.update(run["id"], status="completed", final_score=0.95)
        assert done["status"] == "completed" and done["completed_at"] is not None
        detail = client.runs.get(run["id"])
        assert detail["stats"]["totalIterations"] == 15
        assert client.runs.list(status="completed", limit=10)["pagination"]["total"] == 1
        stats = client.stats.get()
        assert stats["statistics"]["successRate"] == 100.0

        with pytest.raises(ValidationError) as invalid:
            client.runs.list(limit=0)
        assert invalid.value.status == 400
        assert invalid.value.field_errors == {"limit": ["Must be between 1 and 100"]}
        with pytest.raises(NotFoundError):
            client.runs.get("550e8400-e29b-41d4-a716-446655440000")
        with pytest.raises(ConflictError) as conflict:
            client.runs.update(run["id"], status="running")
        assert conflict.value.message == "Invalid status transition"
    with OptimizationClient(api_key="sk_live_notarealkeynotarealkey", base_url=server.url) as bad:
        with pytest.raises(AuthenticationError) as denied:
            bad.stats.get()
        assert denied.value.message == "Invalid or inactive API key"


def test_keys_cli_against_a_running_server(server: Server) -> None:
    created = server.cli("keys", "create", "--project", "cli_project", "--label", "ci")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("sk_live_")
    headers = {"Authorization": f"Bearer {key}"}
    url = server.url + "/api/iris/optimization/runs"
    assert httpx.get(url, headers=headers).status_code == 200
    listed = server.cli("keys", "list")
    assert listed.returncode == 0 and "cli_project" in listed.stdout and key not in listed.stdout
    revoked = server.cli("keys", "revoke", key[:16])
    assert revoked.returncode == 0, revoked.stderr
    response = httpx.get(url, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid or inactive API key"
