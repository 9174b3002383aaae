"""``POST /api/v2/experiments/batch-delete`` and ``batch-restore``: markers in the run
directories, the index, V1, and an index rebuilt from the files all agree."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import Corpus, assert_error, close_app, copy_runs, ids, open_app
from starlette.applications import Starlette

import runicorn_lite
from runicorn_lite import rundir

B = "20240612_080000_"
E1, E5, E12 = B + "c0ffe1", B + "c0ffe5", B + "c0ffec"
UNKNOWN = "20991231_000000_000000"


@pytest.fixture
def root(corpus: Corpus, tmp_path: Path) -> Path:
    """A private copy of the corpus: these tests change it."""
    return copy_runs(corpus.root, tmp_path / "data")


@pytest.fixture
def app(root: Path) -> Iterator[Starlette]:
    app = open_app(root)
    yield app
    close_app(app)


@pytest.fixture
def client(app, client_for):  # type: ignore[no-untyped-def]
    return client_for(app)


async def _post(client: Any, url: str, body: Any) -> dict[str, Any]:
    response = await client.post(url, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _marker(corpus: Corpus, root: Path, exp_id: str) -> dict[str, Any] | None:
    spec = corpus.by_id(exp_id)
    path = root / "runs" / spec.path / spec.id / ".deleted"
    return json.loads(path.read_text()) if path.exists() else None


async def _snapshot(client: Any) -> dict[str, Any]:
    """What clients see, without the timings."""
    out: dict[str, Any] = {}
    for name, params in {
        "live": {"per_page": 1000},
        "all": {"per_page": 1000, "include_deleted": "true"},
        "search": {"search": "resnet", "include_deleted": "true"},
        "by_best": {"order_by": "best_metric_value", "order_desc": "false", "per_page": 5, "page": 2},
    }.items():
        body = (await client.get("/api/v2/experiments", params=params)).json()
        body.pop("query_time_ms")
        out[name] = body
    summary = (await client.get("/api/v2/analytics/summary")).json()
    summary.pop("query_time_ms")
    out["summary"] = summary
    for exp_id in (E1, E5, E12):
        detail = (await client.get(f"/api/v2/experiments/{exp_id}")).json()
        detail.pop("query_time_ms")
        out[exp_id] = detail
    out["v1"] = (await client.get("/api/runs")).json()
    out["bin"] = (await client.get("/api/recycle-bin")).json()
    return out


async def test_batch_delete_writes_markers_and_hides_runs(client, corpus: Corpus, root: Path) -> None:
    before = time.time()
    body = await _post(client, "/api/v2/experiments/batch-delete",
                       {"exp_ids": [E1, UNKNOWN, E12, E1], "reason": "cleanup_old_experiments"})
    assert body == {"deleted": 2, "failed": 1, "results": {E1: True, UNKNOWN: False, E12: True},
                    "errors": {UNKNOWN: "run not found"}}
    marker = _marker(corpus, root, E1)
    assert marker is not None
    assert set(marker) == {"deleted_at", "reason", "original_status"}
    assert marker["reason"] == "cleanup_old_experiments" and marker["original_status"] == "finished"
    assert before <= marker["deleted_at"] <= time.time()
    assert _marker(corpus, root, E12)["reason"] == "cleanup"  # already deleted: left as it was

    live = (await client.get("/api/v2/experiments", params={"per_page": 1000})).json()
    assert E1 not in ids(live) and live["total"] == 10
    assert (await client.get("/api/v2/experiments", params={"tags": "baseline"})).json()["total"] == 2
    everything = (await client.get("/api/v2/experiments", params={"include_deleted": "true"})).json()
    assert everything["total"] == 12
    deleted = {e["id"]: e["deleted_at"] for e in everything["experiments"] if e["deleted_at"] is not None}
    assert deleted == {E1: pytest.approx(marker["deleted_at"]), E12: pytest.approx(corpus.now - 3600)}

    # V1 reads the files and agrees.
    v1 = (await client.get("/api/runs")).json()
    assert E1 not in [r["id"] for r in v1] and len(v1) == 10
    recycle = (await client.get("/api/recycle-bin")).json()["deleted_runs"]
    by_id = {r["id"]: r for r in recycle}
    assert by_id[E1]["delete_reason"] == "cleanup_old_experiments" and by_id[E1]["original_status"] == "finished"
    assert [r["id"] for r in recycle] == [E1, E12]  # latest deletion first


@pytest.mark.parametrize("reason", [None, "absent"])
async def test_batch_delete_default_reason(client, corpus: Corpus, root: Path, reason: str | None) -> None:
    payload: dict[str, Any] = {"exp_ids": [E5]}
    if reason is None:
        payload["reason"] = None
    assert (await _post(client, "/api/v2/experiments/batch-delete", payload))["deleted"] == 1
    assert _marker(corpus, root, E5)["reason"] == "user_batch_delete"


async def test_batch_restore_removes_markers(client, corpus: Corpus, root: Path) -> None:
    await _post(client, "/api/v2/experiments/batch-delete", {"exp_ids": [E1, E5]})
    body = await _post(client, "/api/v2/experiments/batch-restore", {"exp_ids": [E1, E12, UNKNOWN]})
    assert body["failed"] == 1 and body["deleted"] == 2
    assert body["results"] == {E1: True, E12: True, UNKNOWN: False}
    assert body["errors"] == {UNKNOWN: "run not found"}
    assert _marker(corpus, root, E1) is None and _marker(corpus, root, E12) is None
    assert _marker(corpus, root, E5) is not None
    live = (await client.get("/api/v2/experiments", params={"per_page": 1000})).json()
    assert live["total"] == 11 and E1 in ids(live) and E12 in ids(live) and E5 not in ids(live)
    restored = next(e for e in live["experiments"] if e["id"] == E12)
    assert restored["status"] == "finished" and restored["best_metric_value"] == 0.99
    assert {r["id"] for r in (await client.get("/api/recycle-bin")).json()["deleted_runs"]} == {E5}


async def test_a_rebuilt_index_gives_the_same_answers(app, client, client_for, root: Path) -> None:
    await _post(client, "/api/v2/experiments/batch-delete", {"exp_ids": [E1, B + "c0ffe8"], "reason": "r"})
    await _post(client, "/api/v2/experiments/batch-restore", {"exp_ids": [E12]})
    response = await client.patch(f"/api/runs/{E5}", json={"alias": "renamed", "tags": ["x"]})
    assert response.status_code == 200
    before = await _snapshot(client)
    assert before["live"]["total"] == 10

    close_app(app)
    index = app.state.ctx.settings.index_path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    rebuilt = open_app(root)
    try:
        after = await _snapshot(client_for(rebuilt))
    finally:
        close_app(rebuilt)
    assert after == before


async def test_restore_moves_a_recycled_modern_run_back(tmp_path: Path, client_for) -> None:
    """The real 0.7 viewer moves a deleted run to runs/.recycle/<id>/ (with original_path)."""
    root = tmp_path / "data"
    run = runicorn_lite.init(path="cv/yolo", root=root, run_id="20240101_000000_abcdef")
    run.log({"loss": 1.0})
    run.finish()
    recycle = root / "runs" / ".recycle"
    recycle.mkdir()
    os.replace(run.run_dir, recycle / run.id)
    rundir.atomic_write_json(recycle / run.id / ".deleted", {
        "deleted_at": 1.0, "reason": "user_deleted", "original_status": "finished", "original_path": "cv/yolo"})
    app = open_app(root)
    try:
        client = client_for(app)
        listed = (await client.get("/api/v2/experiments", params={"include_deleted": "true"})).json()
        assert [(e["id"], e["path"], e["deleted_at"]) for e in listed["experiments"]] == [(run.id, "cv/yolo", 1.0)]
        assert (await client.get("/api/v2/experiments")).json()["total"] == 0
        assert [r["id"] for r in (await client.get("/api/recycle-bin")).json()["deleted_runs"]] == [run.id]
        body = await _post(client, "/api/v2/experiments/batch-restore", {"exp_ids": [run.id]})
        assert body["results"] == {run.id: True}
        assert (root / "runs" / "cv" / "yolo" / run.id / "meta.json").is_file()
        assert not (recycle / run.id).exists()
        live = (await client.get("/api/v2/experiments")).json()
        assert ids(live) == [run.id]
        assert live["experiments"][0]["run_dir"] == str(root / "runs" / "cv" / "yolo" / run.id)
        fast = (await client.get(f"/api/v2/experiments/{run.id}/metrics/fast")).json()
        assert fast["rows"] == [{"global_step": 1, "loss": 1.0}]
    finally:
        close_app(app)


@pytest.mark.parametrize("verb", ["delete", "restore"])
async def test_batch_limits(client, verb: str) -> None:
    url = f"/api/v2/experiments/batch-{verb}"
    too_many = [f"20240101_000000_{i:06x}" for i in range(1001)]
    assert_error(await client.post(url, json={"exp_ids": too_many}), 400)
    assert (await client.post(url, json={"exp_ids": too_many})).json() == {
        "detail": f"Cannot {verb} more than 1000 experiments at once"
    }
    none = assert_error(await client.post(url, json={"exp_ids": []}), 400)
    assert none.startswith(f"Cannot {verb} more than 1000 experiments at once")
    assert "1 to 1000" in none
    # 1000 is allowed (none of them exists); a repeated id is an item of the list like any other
    # (maxItems holds for what is sent), and is answered once.
    body = await _post(client, url, {"exp_ids": too_many[:1000]})
    assert body["failed"] == 1000 and len(body["results"]) == 1000
    assert_error(await client.post(url, json={"exp_ids": too_many[:1000] + too_many[:1]}), 400)
    body = await _post(client, url, {"exp_ids": too_many[:995] + too_many[:5]})
    assert len(body["results"]) == 995
