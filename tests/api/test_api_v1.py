"""V1 (``/api/...``, Runicorn-compatible): answered by reading the run directories."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import V1_DETAIL_FIELDS, V1_LIST_FIELDS, Corpus, assert_error, close_app, copy_runs, ids, open_app
from starlette.applications import Starlette
from starlette.testclient import TestClient

import runicorn_lite

B = "20240612_080000_"
E1, E5, E6 = B + "c0ffe1", B + "c0ffe5", B + "c0ffe6"


@pytest.fixture
def client(corpus_app, client_for):  # type: ignore[no-untyped-def]
    return client_for(corpus_app)


@pytest.fixture
def mutable(corpus: Corpus, tmp_path: Path) -> Iterator[Starlette]:
    """An app over a private copy of the corpus."""
    app = open_app(copy_runs(corpus.root, tmp_path / "data"))
    yield app
    close_app(app)


async def test_runs_is_a_bare_array_newest_first(client, corpus: Corpus) -> None:
    response = await client.get("/api/runs")
    assert response.status_code == 200
    runs = response.json()
    assert isinstance(runs, list) and len(runs) == 11
    assert [r["id"] for r in runs] == [B + s for s in ("c0ffea", "c0ffe6", "c0ffe8", "c0ffe7", "c0ffe5", "c0ffe4",
                                                       "c0ffe3", "c0ffe2", "c0ffeb", "c0ffe1", "c0ffe9")]
    for run in runs:
        spec = corpus.by_id(run["id"])
        assert set(run) == V1_LIST_FIELDS
        assert run["created_time"] == pytest.approx(spec.created_at)
        assert (run["project"], run["name"], run["path"]) == (spec.project, spec.name, spec.path)
        assert run["status"] == spec.status and run["alias"] == spec.alias and run["tags"] == spec.tags
        assert run["run_dir"] == str(corpus.run_dir(spec))
        if spec.status != "running":  # a live run's best is known to the index only
            assert run["best_metric_value"] == spec.best
            assert run["best_metric_name"] == (spec.primary[0] if spec.best is not None else None)


async def test_v1_and_v2_list_the_same_runs(client) -> None:
    v1 = (await client.get("/api/runs")).json()
    v2 = (await client.get("/api/v2/experiments")).json()
    assert [r["id"] for r in v1] == ids(v2)


async def test_run_detail(client, corpus: Corpus) -> None:
    spec = corpus.by_id(E1)
    body = (await client.get(f"/api/runs/{E1}")).json()
    assert set(body) >= V1_DETAIL_FIELDS
    assert body["id"] == E1 and body["status"] == "finished" and body["path"] == "vision/resnet"
    assert body["start_time"] == pytest.approx(spec.created_at)
    assert body["duration"] == pytest.approx(600, abs=1e-3)
    assert body["summary"]["best_metric_value"] == 0.91 and body["summary"]["best_metric_name"] == "acc"
    assert body["summary"]["best_metric_step"] == 4 and body["summary"]["best_metric_mode"] == "max"
    running = (await client.get(f"/api/runs/{E6}")).json()
    assert running["status"] == "running"
    assert running["duration"] == pytest.approx(time.time() - corpus.by_id(E6).created_at, abs=60)


@pytest.mark.parametrize("run_id", ["20991231_000000_000000", "nope", "%2e%2e", "x" * 300])
async def test_unknown_run_is_404(client, run_id: str) -> None:
    for suffix in ("", "/metrics", "/metrics_step"):
        response = await client.get(f"/api/runs/{run_id}{suffix}")
        assert_error(response, 404)
        assert response.json() == {"detail": "Run not found"}


async def test_metrics_and_metrics_step(client, corpus: Corpus) -> None:
    spec = corpus.by_id(E1)
    body = (await client.get(f"/api/runs/{E1}/metrics_step")).json()
    assert body == (await client.get(f"/api/runs/{E1}/metrics")).json()
    assert set(body) == {"columns", "rows", "total", "sampled"}
    assert body["columns"] == ["global_step", "acc", "loss"]
    assert body["rows"] == [{"global_step": s, **d} for s, d in spec.points]
    assert body["total"] == 5 and body["sampled"] == 5
    v2 = (await client.get(f"/api/v2/experiments/{E1}/metrics/fast")).json()
    assert v2["rows"] == body["rows"] and v2["columns"] == body["columns"]
    nan_run = (await client.get(f"/api/runs/{B}c0ffe3/metrics")).json()
    assert nan_run["rows"][1]["loss"] is None  # NaN comes out as null


async def test_metrics_downsample(tmp_path: Path, client_for) -> None:
    root = tmp_path / "data"
    run = runicorn_lite.init(project="p", root=root, run_id="20240101_000000_000001")
    for step in range(1, 301):
        run.log({"y": 100.0 if step == 150 else step / 300}, step=step)
    run.finish()
    app = open_app(root)
    try:
        client = client_for(app)
        body = (await client.get("/api/runs/20240101_000000_000001/metrics", params={"downsample": 40})).json()
        steps = [r["global_step"] for r in body["rows"]]
        assert body["total"] == 300 and body["sampled"] == len(steps) <= 40
        assert steps[0] == 1 and steps[-1] == 300 and 150 in steps
        whole = (await client.get("/api/runs/20240101_000000_000001/metrics")).json()
        assert whole["total"] == whole["sampled"] == 300
        assert_error(await client.get("/api/runs/20240101_000000_000001/metrics", params={"downsample": 1}), 400)
    finally:
        close_app(app)


async def test_projects_names_and_runs(client) -> None:
    assert (await client.get("/api/projects")).json() == {"projects": ["audio", "nlp", "vision"]}
    assert (await client.get("/api/projects/vision/names")).json() == {"project": "vision", "names": ["resnet", "vit"]}
    assert (await client.get("/api/projects/nlp/names")).json()["names"] == ["bert", "gpt", "gpt/small"]
    assert_error(await client.get("/api/projects/nope/names"), 404)
    body = (await client.get("/api/projects/vision/names/resnet/runs")).json()
    assert body["project"] == "vision" and body["name"] == "resnet"
    assert [r["id"] for r in body["runs"]] == [B + "c0ffe2", B + "c0ffeb", E1]  # the deleted one not
    assert all(set(r) == V1_LIST_FIELDS for r in body["runs"])
    assert (await client.get("/api/projects/vision/names/none/runs")).json()["runs"] == []


async def test_patch_writes_meta_and_reaches_v2(mutable, client_for) -> None:
    client = client_for(mutable)
    root = mutable.state.ctx.root
    response = await client.patch(f"/api/runs/{E5}", json={
        "alias": "Sapphire", "tags": ["golden", " golden ", "prod2"], "description": "quokka experiment"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["alias"] == "Sapphire" and body["tags"] == ["golden", "prod2"]
    assert body["description"] == "quokka experiment"
    meta = json.loads((root / "runs" / "nlp" / "bert" / E5 / "meta.json").read_text())
    assert meta["alias"] == "Sapphire" and meta["tags"] == ["golden", "prod2"]
    assert meta["description"] == "quokka experiment" and meta["id"] == E5  # the rest is kept

    async def found(**params: str) -> list[str]:
        return ids((await client.get("/api/v2/experiments", params=params)).json())

    assert await found(search="sapphire") == [E5]
    assert await found(search="QUOKKA") == [E5]
    assert await found(search="golden") == [E5]
    assert await found(tags="golden") == [E5]
    assert await found(search="bert-prod") == []  # the old alias is gone
    assert await found(tags="production") == [B + "c0ffe2"]  # and the old tags
    detail = (await client.get(f"/api/v2/experiments/{E5}")).json()["experiment"]
    assert (detail["alias"], detail["tags"], detail["description"]) == ("Sapphire", ["golden", "prod2"],
                                                                       "quokka experiment")

    # Only the fields given change; null clears.
    response = await client.patch(f"/api/runs/{E5}", json={"alias": None})
    assert response.json()["alias"] is None and response.json()["tags"] == ["golden", "prod2"]
    assert await found(search="sapphire") == []
    v1 = next(r for r in (await client.get("/api/runs")).json() if r["id"] == E5)
    assert v1["alias"] is None and v1["tags"] == ["golden", "prod2"]


@pytest.mark.parametrize(
    "body",
    [{}, {"alias": 3}, {"tags": "x"}, {"tags": [""]}, {"tags": [1]}, {"description": ["x"]}, {"alias": "a" * 201},
     {"other": 1}, [1], "text"],
)
async def test_patch_rejects_bad_bodies(mutable, client_for, body: Any) -> None:
    assert_error(await client_for(mutable).patch(f"/api/runs/{E5}", json=body), 400)


async def test_patch_unknown_run_is_404(mutable, client_for) -> None:
    response = await client_for(mutable).patch("/api/runs/20991231_000000_000000", json={"alias": "x"})
    assert response.json() == {"detail": "Run not found"} and response.status_code == 404


async def test_soft_delete_recycle_bin_and_restore(mutable, client_for, corpus: Corpus) -> None:
    client = client_for(mutable)
    root = mutable.state.ctx.root
    unknown = "20991231_000000_000000"
    response = await client.post("/api/runs/soft-delete", json={"run_ids": [E1, unknown]})
    assert response.json() == {"deleted": 1, "failed": 1, "results": {E1: True, unknown: False}}
    marker = json.loads((root / "runs" / "vision" / "resnet" / E1 / ".deleted").read_text())
    assert marker["reason"] == "user_delete" and marker["original_status"] == "finished"
    assert E1 not in [r["id"] for r in (await client.get("/api/runs")).json()]
    assert E1 not in ids((await client.get("/api/v2/experiments")).json())
    assert (await client.get("/api/v2/experiments")).json()["total"] == 10
    recycle = (await client.get("/api/recycle-bin")).json()
    assert [r["id"] for r in recycle["runs"]] == [E1, B + "c0ffec"] and recycle["total"] == 2
    entry = recycle["runs"][0]
    assert set(entry) == V1_LIST_FIELDS | {"deleted_at", "reason", "original_status"}
    assert entry["reason"] == "user_delete" and entry["deleted_at"] == pytest.approx(marker["deleted_at"])

    response = await client.post("/api/recycle-bin/restore", json={"run_ids": [E1, unknown]})
    assert response.json() == {"restored": 1, "failed": 1, "results": {E1: True, unknown: False}}
    assert not (root / "runs" / "vision" / "resnet" / E1 / ".deleted").exists()
    assert E1 in ids((await client.get("/api/v2/experiments")).json())
    assert [r["id"] for r in (await client.get("/api/recycle-bin")).json()["runs"]] == [B + "c0ffec"]


@pytest.mark.parametrize("url", ["/api/runs/soft-delete", "/api/recycle-bin/restore"])
async def test_v1_batch_limits(mutable, client_for, url: str) -> None:
    client = client_for(mutable)
    many = [f"20240101_000000_{i:06x}" for i in range(101)]
    assert_error(await client.post(url, json={"run_ids": many}), 400, "100")
    assert (await client.post(url, json={"run_ids": many[:100]})).json()["failed"] == 100
    assert_error(await client.post(url, json={"run_ids": []}), 400)
    assert_error(await client.post(url, json={"ids": [E1]}), 400)
    assert_error(await client.post(url, json={"run_ids": [1]}), 400)


def test_logs_websocket_streams_and_follows(tmp_path: Path) -> None:
    root = tmp_path / "data"
    run = runicorn_lite.init(project="p", root=root, run_id="20240101_000000_00000a")
    run.log_text("line one\nline two")
    app = open_app(root)
    try:
        client = TestClient(app)
        with client.websocket_connect(f"/api/runs/{run.id}/logs/ws") as ws:
            first, second = ws.receive_text(), ws.receive_text()
            assert first.endswith(" | line one") and second.endswith(" | line two")
            assert first[2] == ":" and first[5] == ":"  # HH:MM:SS prefix
            run.log_text("line three ✓")
            assert ws.receive_text().endswith(" | line three ✓")
        with client.websocket_connect("/api/runs/20991231_000000_000000/logs/ws") as ws:
            assert ws.receive_json() == {"detail": "Run not found"}
            closing = ws.receive()
            assert closing["type"] == "websocket.close" and closing["code"] == 4404
    finally:
        run.finish()
        close_app(app)


def test_logs_websocket_starts_again_when_the_file_is_replaced(tmp_path) -> None:
    import time as _time

    from starlette.testclient import TestClient

    import runicorn_lite
    from runicorn_lite.api import create_app
    from runicorn_lite.settings import Settings

    run = runicorn_lite.init(project="p", root=tmp_path)
    run.log_text("first line of a long log")
    app = create_app(Settings(root=tmp_path), ingest=False)
    try:
        with TestClient(app) as client, client.websocket_connect(f"/api/runs/{run.id}/logs/ws") as ws:
            assert ws.receive_text().endswith("first line of a long log")
            (run.run_dir / "logs.txt").write_text("00:00:00 | new\n")  # shorter: replaced
            _time.sleep(0.3)
            assert ws.receive_text() == "00:00:00 | new"
            with open(run.run_dir / "logs.txt", "a") as fh:
                fh.write("00:00:01 | more\n")
            assert ws.receive_text() == "00:00:01 | more"
    finally:
        run.finish()
        app.state.optimization.state.db.close()
        app.state.ctx.index.close()
