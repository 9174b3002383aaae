"""A real ``runicorn-lite serve`` process on a real port: runs written while it is up show up
in V2 and V1 within seconds, and the HTTP answers are the in-process ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from api_helpers import copy_fixture

import runicorn_lite

pytestmark = pytest.mark.e2e
T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def test_a_run_written_while_the_server_is_up(tmp_path: Path, server_factory) -> None:
    root = tmp_path / "data"
    root.mkdir()
    server = server_factory(root)
    server.wait_ready()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/api/v2/experiments").json()["total"] == 0
        run = runicorn_lite.init(project="live", name="e2e", root=root, tags=["e2e"], description="watched")
        run.set_primary_metric("acc")

        def listed() -> dict | None:
            body = http.get("/api/v2/experiments", params={"search": "watched"}).json()
            return body["experiments"][0] if body["total"] == 1 else None

        exp = wait_for(listed, what="the new run in the list")
        assert exp["id"] == run.id and exp["status"] == "running" and exp["tags"] == ["e2e"]

        def points(n: int) -> Callable[[], dict | None]:
            def probe() -> dict | None:
                body = http.get(f"/api/v2/experiments/{run.id}/metrics/fast").json()
                return body if body["total_points"] == n else None
            return probe

        for step in range(1, 6):  # one step at a time, each seen before the next is logged
            run.log({"acc": step / 10, "loss": 1 / step}, step=step)
            body = wait_for(points(step), what=f"step {step}")
            assert body["columns"] == ["global_step", "acc", "loss"]
            assert body["rows"][-1] == {"global_step": step, "acc": step / 10, "loss": 1 / step}
        live = http.get(f"/api/v2/experiments/{run.id}").json()["experiment"]
        assert live["status"] == "running" and live["best_metric_value"] == 0.5  # the best so far

        run.log({"acc": 0.3, "loss": 0.1}, step=6)
        run.finish()

        def finished() -> dict | None:
            body = http.get(f"/api/v2/experiments/{run.id}").json()
            return body if body["experiment"]["status"] == "finished" else None

        detail = wait_for(finished, what="the run to finish")
        assert detail["experiment"]["best_metric_value"] == 0.5 and detail["experiment"]["ended_at"] is not None
        assert detail["metrics_summary"] == {"total_data_points": 12, "available_metrics": ["acc", "loss"],
                                             "step_range": {"min": 1, "max": 6}}
        v1 = http.get("/api/runs").json()
        assert [(r["id"], r["status"], r["best_metric_value"]) for r in v1] == [(run.id, "finished", 0.5)]
        summary = http.get("/api/v2/analytics/summary").json()
        assert summary["by_status"]["finished"] == 1 and summary["total_data_points"] == 12


def test_a_served_real_runicorn_root_with_rate_limits(tmp_path: Path, server_factory) -> None:
    root = copy_fixture("runicorn_07", tmp_path / "data")
    server = server_factory(root, "--rate-limit")
    assert server.wait_ready()["index"]["runs_in_index"] == 5
    a = "20250302_090001_07a001"
    with httpx.Client(base_url=server.url, timeout=10) as http:
        body = http.get("/api/v2/experiments", params={"order_by": "best_metric_value"}).json()
        assert body["total"] == 5 and body["experiments"][0]["id"] == a
        assert body["experiments"][0]["best_metric_value"] == 0.8888
        assert http.get(f"/api/v2/experiments/{a}/metrics/fast").json()["total_points"] == 30
        allow = http.delete("/api/v2/experiments").headers["allow"]
        assert {m.strip() for m in allow.split(",")} == {"GET", "HEAD"}

        window_left = 60.0 - time.time() % 60.0
        if window_left < 5:
            time.sleep(window_left + 0.05)
        deleted = http.post("/api/v2/experiments/batch-delete", json={"exp_ids": [a], "reason": "e2e"})
        assert deleted.json() == {"deleted": 1, "failed": 0, "results": {a: True}, "errors": {}}
        assert (root / "runs" / "cv" / "yolo" / "ablation" / a / ".deleted").is_file()
        assert http.get("/api/v2/experiments").json()["total"] == 4
        assert a not in [r["id"] for r in http.get("/api/runs").json()]
        for _ in range(9):
            assert http.post("/api/v2/experiments/batch-delete", json={"exp_ids": [a]}).status_code == 200
        refused = http.post("/api/v2/experiments/batch-delete", json={"exp_ids": [a]})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert list(refused.json()) == ["detail"]
