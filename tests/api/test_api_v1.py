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
    response = await client.get(f"/api/runs/{E1}/metrics_step")
    body = response.json()
    assert body == (await client.get(f"/api/runs/{E1}/metrics")).json()
    assert set(body) == {"columns", "rows", "total", "sampled"}
    # As Runicorn 0.7.2: the events' time column too (these runs were logged without a stage).
    assert body["columns"] == ["global_step", "acc", "loss", "time"]
    assert [{k: v for k, v in r.items() if k != "time"} for r in body["rows"]] == [
        {"global_step": s, **d} for s, d in spec.points]
    assert all(isinstance(r["time"], float) for r in body["rows"])
    assert body["total"] == 5 and body["sampled"] == 5
    assert (response.headers["x-row-count"], response.headers["x-total-count"], response.headers["x-last-step"]) == (
        "5", "5", "5")
    v2 = (await client.get(f"/api/v2/experiments/{E1}/metrics/fast")).json()
    assert v2["rows"] == [{k: v for k, v in r.items() if k != "time"} for r in body["rows"]]
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
        response = await client.get("/api/runs/20240101_000000_000001/metrics", params={"downsample": 40})
        body = response.json()
        steps = [r["global_step"] for r in body["rows"]]
        assert body["total"] == 300 and body["sampled"] == len(steps) <= 40
        assert response.headers["x-row-count"] == str(len(steps)) and response.headers["x-total-count"] == "300"
        assert response.headers["x-last-step"] == "300"
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
        "alias": " Sapphire ", "tags": ["golden", " golden ", "", "  ", "prod2"], "description": "quokka experiment"})
    assert response.status_code == 200, response.text
    # Runicorn 0.7.2's answer: alias and tags trimmed, empty tags dropped (duplicates too, here).
    assert response.json() == {"ok": True, "alias": "Sapphire", "tags": ["golden", "prod2"]}
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

    # As in Runicorn 0.7.2, a field that is absent or null stays as it is; an empty alias clears.
    for body in ({"alias": None}, {}, {"tags": None, "description": None}):
        response = await client.patch(f"/api/runs/{E5}", json=body)
        assert response.json() == {"ok": True, "alias": "Sapphire", "tags": ["golden", "prod2"]}
    response = await client.patch(f"/api/runs/{E5}", json={"alias": "   ", "description": ""})
    assert response.json() == {"ok": True, "alias": None, "tags": ["golden", "prod2"]}
    assert await found(search="sapphire") == [] and await found(search="quokka") == []
    v1 = next(r for r in (await client.get("/api/runs")).json() if r["id"] == E5)
    assert v1["alias"] is None and v1["tags"] == ["golden", "prod2"]


@pytest.mark.parametrize(
    "body",
    [{"alias": 3}, {"tags": "x"}, {"tags": [1]}, {"description": ["x"]}, {"alias": "a" * 201},
     {"tags": ["t"] * 101}, {"alias": "nul\x00"}, {"tags": ["a\tb"]}, {"description": "\x1b[2J"}, [1], "text"],
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
    assert response.json() == {
        "deleted_count": 1,
        "results": {E1: {"success": True}, unknown: {"success": False, "error": "run not found"}},
        "message": "Soft deleted 1 of 2 runs",
    }
    marker = json.loads((root / "runs" / "vision" / "resnet" / E1 / ".deleted").read_text())
    assert marker["reason"] == "user_deleted" and marker["original_status"] == "finished"
    again = (await client.post("/api/runs/soft-delete", json={"run_ids": [E1]})).json()
    assert again["results"] == {E1: {"success": False, "error": "already deleted"}} and again["deleted_count"] == 0
    assert E1 not in [r["id"] for r in (await client.get("/api/runs")).json()]
    assert E1 not in ids((await client.get("/api/v2/experiments")).json())
    assert (await client.get("/api/v2/experiments")).json()["total"] == 10
    recycle = (await client.get("/api/recycle-bin")).json()
    assert list(recycle) == ["deleted_runs"]
    assert [r["id"] for r in recycle["deleted_runs"]] == [E1, B + "c0ffec"]
    entry = recycle["deleted_runs"][0]
    assert entry == {"id": E1, "path": "vision/resnet", "alias": "rn50-base",
                     "created_time": pytest.approx(corpus.by_id(E1).created_at),
                     "deleted_at": pytest.approx(marker["deleted_at"]), "delete_reason": "user_deleted",
                     "original_status": "finished", "run_dir": str(root / "runs" / "vision" / "resnet" / E1)}

    response = await client.post("/api/recycle-bin/restore", json={"run_ids": [E1, unknown, E5]})
    assert response.json() == {
        "restored_count": 1,
        "results": {E1: {"success": True}, unknown: {"success": False, "error": "run not found"},
                    E5: {"success": False, "error": "run not deleted"}},
        "message": "Restored 1 of 3 runs",
    }
    assert not (root / "runs" / "vision" / "resnet" / E1 / ".deleted").exists()
    assert E1 in ids((await client.get("/api/v2/experiments")).json())
    assert [r["id"] for r in (await client.get("/api/recycle-bin")).json()["deleted_runs"]] == [B + "c0ffec"]


@pytest.mark.parametrize("url", ["/api/runs/soft-delete", "/api/recycle-bin/restore"])
async def test_v1_batch_limits(mutable, client_for, url: str) -> None:
    client = client_for(mutable)
    many = [f"20240101_000000_{i:06x}" for i in range(101)]
    assert_error(await client.post(url, json={"run_ids": many}), 400, "100")
    assert_error(await client.post(url, json={"run_ids": many[:50] * 3}), 400, "100")  # counted as sent
    body = (await client.post(url, json={"run_ids": many[:100]})).json()
    assert len(body["results"]) == 100 and not any(r["success"] for r in body["results"].values())
    assert body["message"].endswith("0 of 100 runs")
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
        for unknown in ("20991231_000000_000000", "nope"):  # as Runicorn 0.7.2: a text frame, a normal close
            with client.websocket_connect(f"/api/runs/{unknown}/logs/ws") as ws:
                assert ws.receive_text() == "[error] run not found"
                closing = ws.receive()
                assert closing["type"] == "websocket.close" and closing["code"] == 1000
    finally:
        run.finish()
        close_app(app)


def test_logs_websocket_starts_again_when_the_file_is_replaced(tmp_path) -> None:
    import time as _time

    from starlette.testclient import TestClient

    import runicorn_lite
    from runicorn_lite.app import create_app
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
        app.state.optimization.state.api.close()
        app.state.ctx.preferences.close()
        app.state.ctx.index.close()
