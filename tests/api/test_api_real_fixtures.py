"""Run directories written by the REAL runicorn SDK (0.5.3 legacy layout, 0.7.2 modern layout),
through V1 and V2 (tests/fixtures/README.md says what each run holds)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from api_helpers import close_app, copy_fixture, ids, open_app, pid_is_gone
from support import reference_summary


@dataclass(frozen=True)
class Expected:
    key: str
    status: str
    best: tuple[str, float] | None
    points: int
    steps: tuple[int, int] | None
    metrics: list[str]


RUNS = [
    Expected("A", "finished", ("accuracy", 0.8888), 90, (1, 30), ["accuracy", "loss", "lr"]),
    Expected("B", "failed", ("loss", 0.2578), 120, (1, 40), ["grad_norm", "loss", "val_loss"]),
    Expected("C", "interrupted", None, 40, (1, 20), ["accuracy", "loss"]),
    Expected("D", "running", None, 50, (1, 25), ["accuracy", "loss"]),
    Expected("E", "finished", None, 0, None, []),
]
GENERATIONS = {
    "runicorn_053": {
        "ids": {k: f"20250301_09000{i}_05a00{i}" for i, k in enumerate("ABCDE", 1)},
        "paths": {
            "A": "cv/yolo-ablation", "B": "nlp/bert", "C": "cv/yolo-ablation", "D": "cv/default", "E": "nlp/bert",
        },
        "names": {"A": "yolo-ablation", "B": "bert", "C": "yolo-ablation", "D": "default", "E": "bert"},
        "aliases": dict.fromkeys("ABCDE"),
        "dirs": lambda k, path, run_id: f"{path}/runs/{run_id}",
    },
    "runicorn_07": {
        "ids": {k: f"20250302_09000{i}_07a00{i}" for i, k in enumerate("ABCDE", 1)},
        "paths": {"A": "cv/yolo/ablation", "B": "nlp/bert", "C": "cv/yolo/ablation", "D": "cv", "E": "nlp/bert"},
        "names": {"A": "yolo/ablation", "B": "bert", "C": "yolo/ablation", "D": "default", "E": "bert"},
        "aliases": {"A": "best-v2", "B": "bert-base-lr3e-5", "C": None, "D": "scratch", "E": None},
        "dirs": lambda k, path, run_id: f"runs/{path}/{run_id}",
    },
}


@pytest.fixture(scope="module", params=sorted(GENERATIONS))
def generation(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, backend: str
) -> Iterator[tuple]:
    root = copy_fixture(request.param, tmp_path_factory.mktemp(request.param) / "data")
    app = open_app(root)
    yield request.param, root, app
    close_app(app)


@pytest.fixture
def client(generation: tuple, client_for):  # type: ignore[no-untyped-def]
    return client_for(generation[2])


def _expected_status(root: Path, gen: dict[str, Any], run: Expected) -> tuple[str, str | None]:
    """Run D never finished; its process is gone unless a process of that pid lives here."""
    if run.status != "running":
        return run.status, None
    path = gen["dirs"](run.key, gen["paths"][run.key], gen["ids"][run.key])
    meta = json.loads((root / path / "meta.json").read_text())
    if meta["hostname"] == socket.gethostname() and pid_is_gone(meta["pid"]):
        return "failed", "process_not_found"
    return "running", None


async def test_v2_lists_every_run_with_its_identity(client, generation: tuple) -> None:
    name, root, _ = generation
    gen = GENERATIONS[name]
    body = (await client.get("/api/v2/experiments", params={"order_by": "name", "order_desc": "false"})).json()
    assert body["total"] == 5
    by_id = {e["id"]: e for e in body["experiments"]}
    assert set(by_id) == set(gen["ids"].values())
    for run in RUNS:
        exp = by_id[gen["ids"][run.key]]
        path = gen["paths"][run.key]
        assert exp["path"] == path and exp["project"] == path.split("/")[0]
        assert exp["name"] == gen["names"][run.key] and exp["alias"] == gen["aliases"][run.key]
        status, exit_reason = _expected_status(root, gen, run)
        assert exp["status"] == status and exp.get("exit_reason") == exit_reason
        assert (exp["best_metric_name"], exp["best_metric_value"]) == (run.best or (None, None))
        assert exp["tags"] == [] and exp["run_dir"] == str(root / gen["dirs"](run.key, path, exp["id"]))
        assert exp["created_at"] > 1.7e9


async def test_v2_details_and_metrics(client, generation: tuple) -> None:
    gen = GENERATIONS[generation[0]]
    for run in RUNS:
        exp_id = gen["ids"][run.key]
        detail = (await client.get(f"/api/v2/experiments/{exp_id}")).json()
        summary = detail["metrics_summary"]
        assert summary["total_data_points"] == run.points and summary["available_metrics"] == run.metrics
        assert summary["step_range"] == ({"min": run.steps[0], "max": run.steps[1]} if run.steps else None)
        assert detail["environment_available"] is False
        fast = (await client.get(f"/api/v2/experiments/{exp_id}/metrics/fast")).json()
        assert fast["columns"] == ["global_step", *run.metrics]
        assert fast["total_points"] == (run.steps[1] if run.steps else 0)
    a = (await client.get(f"/api/v2/experiments/{gen['ids']['A']}/metrics/fast")).json()
    rows = {r["global_step"]: r for r in a["rows"]}
    assert rows[12] == {"global_step": 12, "accuracy": 0.7695, "loss": 0.7214, "lr": 0.0008}  # later wins
    assert rows[17]["loss"] is None  # NaN
    assert rows[24]["accuracy"] == 0.8888 and rows[30]["accuracy"] == 0.8365
    b = (await client.get(f"/api/v2/experiments/{gen['ids']['B']}/metrics/fast",
                          params={"metric_names": "loss,grad_norm", "step_range": "19:25"})).json()
    rows = {r["global_step"]: r for r in b["rows"]}
    assert b["columns"] == ["global_step", "grad_norm", "loss"] and sorted(rows) == list(range(19, 26))
    assert rows[20]["loss"] is None and rows[25]["grad_norm"] is None  # NaN, Infinity


async def test_v2_filters_and_search_over_real_runs(client, generation: tuple) -> None:
    gen = GENERATIONS[generation[0]]
    body = (await client.get("/api/v2/experiments", params={"project": "nlp"})).json()
    assert sorted(ids(body)) == sorted([gen["ids"]["B"], gen["ids"]["E"]]) and body["total"] == 2
    body = (await client.get("/api/v2/experiments", params={"status": "interrupted"})).json()
    assert ids(body) == [gen["ids"]["C"]]
    body = (await client.get("/api/v2/experiments", params={"search": "BERT"})).json()
    assert body["total"] == 2
    body = (await client.get("/api/v2/experiments", params={"best_metric_min": "0.5"})).json()
    assert ids(body) == [gen["ids"]["A"]]
    summary = (await client.get("/api/v2/analytics/summary")).json()
    assert summary["total_experiments"] == 5 and summary["total_data_points"] == 300


async def test_v1_over_real_runs(client, generation: tuple) -> None:
    name, root, _ = generation
    gen = GENERATIONS[name]
    runs = (await client.get("/api/runs")).json()
    assert {r["id"] for r in runs} == set(gen["ids"].values())
    v2 = (await client.get("/api/v2/experiments")).json()
    assert [r["id"] for r in runs] == ids(v2)  # both newest first
    by_id = {r["id"]: r for r in runs}
    for run in RUNS:
        entry = by_id[gen["ids"][run.key]]
        assert entry["path"] == gen["paths"][run.key] and entry["name"] == gen["names"][run.key]
        assert entry["status"] == _expected_status(root, gen, run)[0]
        assert (entry["best_metric_name"], entry["best_metric_value"]) == (run.best or (None, None))
        metrics = (await client.get(f"/api/runs/{entry['id']}/metrics_step")).json()
        fast = (await client.get(f"/api/v2/experiments/{entry['id']}/metrics/fast")).json()
        # V1 adds the events' time and stage (when they carry one), as Runicorn 0.7.2 does.
        labels = {"time", "stage"} & set(metrics["columns"])
        if metrics["rows"]:
            assert "time" in labels and ("stage" in labels) == (run.key != "C")
            assert [c for c in metrics["columns"] if c not in labels] == fast["columns"]
        assert [{k: v for k, v in r.items() if k not in labels} for r in metrics["rows"]] == fast["rows"]
        assert metrics["total"] == metrics["sampled"] == fast["total_points"]
    detail = (await client.get(f"/api/runs/{gen['ids']['A']}")).json()
    assert detail["summary"]["dataset"] == "coco-mini" and detail["summary"]["best_metric_step"] == 24
    assert detail["duration"] is not None and detail["duration"] >= 0
    assert (await client.get("/api/projects")).json() == {"projects": ["cv", "nlp"]}
    names = (await client.get("/api/projects/cv/names")).json()["names"]
    assert names == sorted({gen["names"][k] for k in "ACD"})


@pytest.mark.parametrize("name", sorted(GENERATIONS))
async def test_delete_and_restore_real_runs(tmp_path: Path, client_for, name: str) -> None:
    """The marker goes into the run directory of either layout; V1, V2 and a rebuild agree."""
    gen = GENERATIONS[name]
    root = copy_fixture(name, tmp_path / "data")
    a, b = gen["ids"]["A"], gen["ids"]["B"]
    app = open_app(root)
    try:
        client = client_for(app)
        body = (await client.post("/api/v2/experiments/batch-delete", json={"exp_ids": [a]})).json()
        assert body["results"] == {a: True}
        marker = json.loads((root / gen["dirs"]("A", gen["paths"]["A"], a) / ".deleted").read_text())
        assert marker["original_status"] == "finished" and marker["reason"] == "user_batch_delete"
        body = (await client.post("/api/runs/soft-delete", json={"run_ids": [b]})).json()
        assert body == {"deleted_count": 1, "results": {b: {"success": True}}, "message": "Soft deleted 1 of 1 runs"}
        assert (await client.get("/api/v2/experiments")).json()["total"] == 3
        assert len((await client.get("/api/runs")).json()) == 3
        assert {r["id"] for r in (await client.get("/api/recycle-bin")).json()["deleted_runs"]} == {a, b}
        restored = (await client.post("/api/recycle-bin/restore", json={"run_ids": [a]})).json()
        assert restored == {"restored_count": 1, "results": {a: {"success": True}}, "message": "Restored 1 of 1 runs"}
    finally:
        close_app(app)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{app.state.ctx.settings.index_path}{suffix}").unlink(missing_ok=True)
    rebuilt = open_app(root)
    try:
        client = client_for(rebuilt)
        live = (await client.get("/api/v2/experiments")).json()
        assert live["total"] == 4 and b not in ids(live) and a in ids(live)
        deleted = (await client.get("/api/v2/experiments", params={"include_deleted": "true"})).json()
        assert [e["id"] for e in deleted["experiments"] if e["deleted_at"]] == [b]
    finally:
        close_app(rebuilt)


def _reference_summaries(events: Path) -> dict[str, dict[str, Any]]:
    """Summaries of the file read with Python's json (bare NaN/Infinity allowed), the later
    event at a step winning."""
    series: dict[str, dict[int, float]] = {}
    if events.exists():
        for line in events.read_text().splitlines():
            event = json.loads(line)
            if event.get("type", "metrics") != "metrics":
                continue
            data = event["data"]
            for key, value in data.items():
                if key not in ("global_step", "step", "time", "stage", "epoch") and isinstance(value, (int, float)):
                    series.setdefault(key, {})[data["global_step"]] = float(value)
    return {name: reference_summary(points) for name, points in series.items()}


async def test_metric_summaries_and_filters_over_real_runs(client, generation: tuple) -> None:
    name, root, _ = generation
    gen = GENERATIONS[name]
    for run in RUNS:
        exp_id = gen["ids"][run.key]
        path = root / gen["dirs"](run.key, gen["paths"][run.key], exp_id)
        expected = _reference_summaries(path / "events.jsonl")
        detail = (await client.get(f"/api/v2/experiments/{exp_id}")).json()
        assert detail["metrics"] == expected, run.key
        # These SDKs logged no config: 0.7.2 writes assets.json with an empty one, 0.5.3 none.
        assert detail["params"] == {} and detail["config"] == ({} if name == "runicorn_07" else None)
        for metric, summary in expected.items():
            found = await client.get("/api/v2/experiments", params={
                "filter": f"metrics.{metric}.max = {summary['max']!r} and metrics.{metric}.count = {summary['count']}",
                "include_deleted": "true"})
            assert exp_id in ids(found.json()), (run.key, metric)
