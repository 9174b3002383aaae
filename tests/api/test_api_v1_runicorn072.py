"""V1 answers as the real Runicorn 0.7.2 viewer answers (extensions.md §9), on the checked-in
fixtures written by the real 0.7.2 SDK and on runs written by our SDK.

The expected bodies below were observed by running the real 0.7.2 viewer on a copy of the same
fixture roots (see README, "Decisions").
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import assert_error, close_app, copy_fixture, ids, open_app
from starlette.applications import Starlette
from starlette.testclient import TestClient

import runicorn_lite
from runicorn_lite import purge, rundir
from runicorn_lite.images import encode_png

F, G, H = "20250303_100001_07f001", "20250303_100002_07f002", "20250303_100003_07f003"
A07, C07, E07 = "20250302_090001_07a001", "20250302_090003_07a003", "20250302_090005_07a005"
UNKNOWN = "20991231_000000_abcdef"


@pytest.fixture
def assets_root(tmp_path: Path) -> Path:
    """The 0.7.2 config/environment/images fixture and the 0.7.2 basic one, in one root."""
    root = copy_fixture("runicorn_07", tmp_path / "data")
    copy_fixture("runicorn_07_assets", tmp_path / "data")
    return root


@pytest.fixture
def app(assets_root: Path) -> Iterator[Starlette]:
    application = open_app(assets_root)
    yield application
    close_app(application)


def _run_dir(root: Path, run_id: str) -> Path:
    return next(loc.run_dir for loc in rundir.iter_runs(root) if loc.run_id == run_id)


async def test_detail_and_list_carry_assets(app, client_for, assets_root: Path) -> None:
    client = client_for(app)
    detail = (await client.get(f"/api/runs/{F}")).json()
    run_dir = _run_dir(assets_root, F)
    assert detail["assets"] == json.loads((run_dir / "assets.json").read_text())
    assert detail["assets"]["config"]["args"]["optim"] == {"name": "sgd", "momentum": 0.9, "weight_decay": 0.0005}
    assert detail["assets_count"] == 1  # a non-empty config counts once, as Runicorn counts
    assert (detail["logs"], detail["metrics"], detail["metrics_step"]) == (
        str(run_dir / "logs.txt"), str(run_dir / "events.jsonl"), str(run_dir / "events.jsonl"))
    empty_config = (await client.get(f"/api/runs/{A07}")).json()  # 0.7.2 writes assets.json always
    assert empty_config["assets"]["config"] == {} and empty_config["assets_count"] == 0
    counts = {r["id"]: r["assets_count"] for r in (await client.get("/api/runs")).json()}
    assert counts[F] == counts[G] == 1 and counts[H] == counts[A07] == 0


async def test_assets_route(app, client_for, assets_root: Path) -> None:
    client = client_for(app)
    body = (await client.get(f"/api/runs/{G}/assets")).json()
    assert body == {"run_id": G, "assets": json.loads((_run_dir(assets_root, G) / "assets.json").read_text()),
                    "assets_count": 1}
    assert body["assets"]["config"]["args"]["batch_size"] == 128  # the real SDK's second call replaced args
    ours = runicorn_lite.init(project="p", root=assets_root)
    ours.finish()
    assert (await client.get(f"/api/runs/{ours.id}/assets")).json() == {"run_id": ours.id, "assets": {},
                                                                         "assets_count": 0}
    assert (await client.get(f"/api/runs/{UNKNOWN}/assets")).json() == {"detail": "Run not found"}


async def test_images_route_as_the_real_viewer(app, client_for, assets_root: Path) -> None:
    client = client_for(app)
    run_dir = _run_dir(assets_root, F)
    body = (await client.get(f"/api/runs/{F}/images")).json()
    assert list(body) == ["run_id", "images"] and body["run_id"] == F
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    images = [e["data"] for e in events if e["type"] == "image"]
    assert body["images"] == [{"step": d["step"], "key": d["key"], "path": str(run_dir / d["path"])} for d in images]
    assert [i["step"] for i in body["images"]] == [4, 8, 12, 12, None]  # null stays null, as in 0.7.2
    assert (await client.get(f"/api/runs/{A07}/images")).json() == {"run_id": A07, "images": []}
    assert (await client.get(f"/api/runs/{UNKNOWN}/images")).json() == {"detail": "Run not found"}


async def test_images_route_skips_missing_and_escaping_files(root: Path, client_for, tmp_path: Path) -> None:
    run = runicorn_lite.init(project="p", root=root)
    kept = run.log_image("k", encode_png(1, 1, b"\x00\x00\x00"), step=1)
    gone = run.log_image("k", encode_png(1, 1, b"\x00\x00\x00"), step=2)
    (run.run_dir / gone).unlink()
    outside = tmp_path / "secret.png"
    outside.write_bytes(encode_png(1, 1, b"\x00\x00\x00"))
    (run.run_dir / "media" / "link.png").symlink_to(outside)
    bad_paths = ("../../../../secret.png", str(outside), "media/link.png", "media")
    with open(run.run_dir / "events.jsonl", "a") as fh:
        fh.writelines(json.dumps({"ts": 1.0, "type": "image", "data": {"key": "x", "path": p, "step": 3}}) + "\n"
                      for p in bad_paths)
    run.finish()
    app = open_app(root)
    try:
        body = (await client_for(app).get(f"/api/runs/{run.id}/images")).json()
        assert body["images"] == [{"step": 1, "key": "k", "path": str(run.run_dir / kept)}]
    finally:
        close_app(app)


async def test_environment_route(app, client_for, assets_root: Path) -> None:
    client = client_for(app)
    body = (await client.get(f"/api/environment/{H}")).json()
    env = json.loads((_run_dir(assets_root, H) / "environment.json").read_text())
    assert body == {"available": True, "environment": env}
    assert {"python_version", "platform", "platform_details", "pip_packages", "conda_packages", "conda_env",
            "git_info", "env_variables", "gpu_info"} == set(env)
    # 0.7.2 answers {"available": false}; the documented null environment is added.
    assert (await client.get(f"/api/environment/{A07}")).json() == {"available": False, "environment": None}
    response = await client.get(f"/api/environment/{UNKNOWN}")
    assert response.status_code == 404 and response.json() == {"detail": f"Run {UNKNOWN} not found"}
    ours = runicorn_lite.init(project="p", root=assets_root, capture_env=True)
    ours.finish()
    mine = (await client.get(f"/api/environment/{ours.id}")).json()
    assert mine["available"] is True and set(mine["environment"]) == set(env)


async def test_metrics_stage_time_and_headers(app, client_for) -> None:
    client = client_for(app)
    for route in ("metrics", "metrics_step"):
        response = await client.get(f"/api/runs/{F}/{route}")
        body = response.json()
        assert body["columns"] == ["global_step", "accuracy", "loss", "stage", "time"]
        assert [r["stage"] for r in body["rows"][:4]] == ["train", "train", "train", "eval"]
        assert all(isinstance(r["time"], float) for r in body["rows"])
        assert body["total"] == body["sampled"] == 12
        assert {k: response.headers[k] for k in ("x-row-count", "x-total-count", "x-last-step")} == {
            "x-row-count": "12", "x-total-count": "12", "x-last-step": "12"}
    a = (await client.get(f"/api/runs/{A07}/metrics")).json()
    assert a["columns"] == ["global_step", "accuracy", "loss", "lr", "stage", "time"]
    row12 = a["rows"][11]
    assert (row12["loss"], row12["accuracy"], row12["lr"], row12["stage"]) == (0.7214, 0.7695, 0.0008, "train")
    assert a["rows"][16]["loss"] is None  # NaN
    c = (await client.get(f"/api/runs/{C07}/metrics")).json()
    assert c["columns"] == ["global_step", "accuracy", "loss", "time"]  # no stage logged: no column
    # A run without events: no columns at all and no x-last-step (as 0.7.2).
    response = await client.get(f"/api/runs/{E07}/metrics_step")
    assert response.json() == {"columns": [], "rows": [], "total": 0, "sampled": 0}
    assert response.headers["x-row-count"] == "0" and response.headers["x-total-count"] == "0"
    assert "x-last-step" not in response.headers


async def test_patch_answer(app, client_for, assets_root: Path) -> None:
    client = client_for(app)
    response = await client.patch(f"/api/runs/{C07}", json={"alias": "  new alias ", "tags": [" a ", "", "b", "  "]})
    assert response.json() == {"ok": True, "alias": "new alias", "tags": ["a", "b"]}
    meta = json.loads((_run_dir(assets_root, C07) / "meta.json").read_text())
    assert meta["alias"] == "new alias" and meta["tags"] == ["a", "b"]
    assert (await client.patch(f"/api/runs/{C07}", json={"alias": None})).json()["alias"] == "new alias"
    assert (await client.patch(f"/api/runs/{C07}", json={"alias": ""})).json() == {"ok": True, "alias": None,
                                                                                   "tags": ["a", "b"]}
    assert (await client.patch(f"/api/runs/{UNKNOWN}", json={"alias": "x"})).json() == {"detail": "Run not found"}


@pytest.mark.parametrize("field, value", [("alias", "a\x00b"), ("alias", "bell\x07"), ("tags", ["ok", "nul\x00"]),
                                          ("tags", ["line\nbreak"]), ("description", "esc\x1b[31m"),
                                          ("description", "c1\x85")])
async def test_control_characters_are_refused_naming_the_field(app, client_for, assets_root: Path, field: str,
                                                               value: object) -> None:
    client = client_for(app)
    before = (_run_dir(assets_root, C07) / "meta.json").read_bytes()
    detail = assert_error(await client.patch(f"/api/runs/{C07}", json={field: value}), 400, f"'{field}'")
    assert "control character" in detail
    assert (_run_dir(assets_root, C07) / "meta.json").read_bytes() == before


async def test_multiline_description_is_text(app, client_for) -> None:
    client = client_for(app)
    assert (await client.patch(f"/api/runs/{C07}", json={"description": "line one\n\tline two"})).status_code == 200
    detail = (await client.get(f"/api/v2/experiments/{C07}")).json()["experiment"]
    assert detail["description"] == "line one\n\tline two"


async def test_reason_control_characters(app, client_for) -> None:
    client = client_for(app)
    assert_error(await client.post("/api/runs/soft-delete", json={"run_ids": [F], "reason": "x\x00"}), 400,
                 "'reason'")
    assert_error(await client.post("/api/v2/experiments/batch-delete", json={"exp_ids": [F], "reason": "\x1b"}), 400,
                 "'reason'")
    assert F in ids((await client.get("/api/v2/experiments")).json())


def test_logs_websocket_unknown_run(app) -> None:
    with TestClient(app) as client:
        for run_id in (UNKNOWN, "nope", "a..b"):
            with client.websocket_connect(f"/api/runs/{run_id}/logs/ws") as ws:
                assert ws.receive_text() == "[error] run not found"
                assert ws.receive()["code"] == 1000


# -- the OS refuses a write -------------------------------------------------------------------------


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """The OS refuses writes into ``path``: immutable for root (chattr), read-only otherwise."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True,
                                                            check=False).returncode != 0:
            pytest.skip("running as root and this file system cannot make a directory immutable")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)


async def test_writes_the_os_refuses_are_403_or_per_id_errors(app, client_for, assets_root: Path) -> None:
    client = client_for(app)
    run_dir = _run_dir(assets_root, C07)
    before = (run_dir / "meta.json").read_bytes()
    with unwritable(run_dir):
        response = await client.patch(f"/api/runs/{C07}", json={"alias": "x"})
        detail = assert_error(response, 403, "Cannot write to the run directory")
        assert ("Operation not permitted" in detail) or ("Permission denied" in detail)
        v1 = (await client.post("/api/runs/soft-delete", json={"run_ids": [C07, F]})).json()
        assert v1["deleted_count"] == 1 and v1["results"][F] == {"success": True}
        assert v1["results"][C07]["success"] is False and v1["results"][C07]["error"] in (
            "Operation not permitted", "Permission denied")
        v2 = (await client.post("/api/v2/experiments/batch-delete", json={"exp_ids": [C07, UNKNOWN]})).json()
        assert v2["results"] == {C07: False, UNKNOWN: False} and v2["failed"] == 2
        assert v2["errors"][UNKNOWN] == "run not found"
        assert v2["errors"][C07] in ("Operation not permitted", "Permission denied")
    assert (run_dir / "meta.json").read_bytes() == before and not (run_dir / ".deleted").exists()


# -- recycle-bin/empty deletes soft-deleted run directories and nothing else ----------------------


def _soft_delete(run_dir: Path) -> None:
    rundir.mark_deleted(run_dir, "finished", "test", 1.0)


async def test_empty_needs_confirm_true(app, client_for, assets_root: Path) -> None:
    client = client_for(app)
    _soft_delete(_run_dir(assets_root, G))
    for body in ({}, {"confirm": False}, {"confirm": "true"}, {"confirm": 1}, {"confirm": None}):
        response = await client.post("/api/recycle-bin/empty", json=body)
        assert response.status_code == 400
        assert response.json() == {"detail": "Must set confirm=true to permanently delete"}
    assert _run_dir(assets_root, G).is_dir()


async def test_empty_removes_soft_deleted_runs_only(app, client_for, assets_root: Path) -> None:
    client = client_for(app)
    deleted = (await client.post("/api/runs/soft-delete", json={"run_ids": [G, A07]})).json()
    assert deleted["deleted_count"] == 2
    # A run the real 0.7.x viewer moved into runs/.recycle/ (with original_path).
    recycled = assets_root / "runs" / ".recycle" / H
    recycled.parent.mkdir()
    os.replace(_run_dir(assets_root, H), recycled)
    rundir.atomic_write_json(recycled / ".deleted", {"deleted_at": 2.0, "reason": "user_deleted",
                                                     "original_status": "finished", "original_path": "nlp/gpt"})
    app.state.ctx.indexer.scan()
    live_before = sorted(ids((await client.get("/api/v2/experiments")).json()))
    response = await client.post("/api/recycle-bin/empty", json={"confirm": True})
    body = response.json()
    assert body["permanently_deleted"] == 3 and body["message"] == "Permanently deleted 3 runs"
    assert sorted(body["deleted_ids"]) == sorted([G, A07, H])
    remaining = {loc.run_id for loc in rundir.iter_runs(assets_root)}
    assert not remaining & {G, A07, H} and set(live_before) == remaining
    assert (await client.get("/api/recycle-bin")).json() == {"deleted_runs": []}
    everything = (await client.get("/api/v2/experiments", params={"include_deleted": "true"})).json()
    assert sorted(ids(everything)) == live_before  # the index forgot them too
    again = (await client.post("/api/recycle-bin/empty", json={"confirm": True})).json()
    assert again == {"permanently_deleted": 0, "message": "Permanently deleted 0 runs", "deleted_ids": []}


def test_purge_never_follows_symlinks_out(assets_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "data.bin").write_bytes(b"precious")
    g = _run_dir(assets_root, G)
    (g / "media" / "escape").symlink_to(outside / "keep")  # a link inside a deleted run
    (g / "file-link").symlink_to(outside / "keep" / "data.bin")
    _soft_delete(g)
    # A soft-deleted run outside the root, reachable through a symlinked project folder.
    foreign = outside / "foreign" / "20250101_000000_0f0f0f"
    shutil.copytree(_run_dir(assets_root, F), foreign)
    _soft_delete(foreign)
    (assets_root / "runs" / "linked").symlink_to(outside / "foreign")
    candidates = purge.list_deleted(assets_root)
    assert [c.run_id for c in candidates] == [G]  # the symlinked folder is not walked
    assert purge.purge(assets_root, candidates) == [G]
    assert not g.exists()
    assert (outside / "keep" / "data.bin").read_bytes() == b"precious" and foreign.is_dir()


def test_purge_refuses_candidates_it_did_not_list_safely(assets_root: Path, tmp_path: Path) -> None:
    # Paths outside the root, through a symlink, or not named after the id are never removed,
    # even when handed over directly.
    outside = tmp_path / "elsewhere" / F
    shutil.copytree(_run_dir(assets_root, F), outside)
    _soft_delete(outside)
    link = assets_root / "runs" / "cv" / "resnet" / "20250101_000000_1c1c1c"
    link.symlink_to(outside)
    g = _run_dir(assets_root, G)
    _soft_delete(g)
    dotdot = assets_root / "runs" / ".." / "runs" / "cv" / "resnet" / "sweep" / G
    bad = [purge.Candidate(F, outside), purge.Candidate("20250101_000000_1c1c1c", link),
           purge.Candidate(F, g), purge.Candidate("..", assets_root / "runs"),
           purge.Candidate(G, Path("/") / "nonexistent" / G)]
    assert purge.purge(assets_root, bad) == []
    assert outside.is_dir() and link.is_symlink() and g.is_dir()
    assert purge.purge(assets_root, [purge.Candidate(G, dotdot)]) == [G]  # normalised, still inside


def test_purge_rechecks_each_run_when_it_removes_it(assets_root: Path) -> None:
    g, f, h = _run_dir(assets_root, G), _run_dir(assets_root, F), _run_dir(assets_root, H)
    _soft_delete(g)
    _soft_delete(h)
    candidates = purge.list_deleted(assets_root)
    assert sorted(c.run_id for c in candidates) == sorted([G, H])
    _soft_delete(f)  # deleted after the listing: not part of this emptying
    os.unlink(h / ".deleted")  # restored after the listing: live again
    assert purge.purge(assets_root, candidates) == [G]
    assert f.is_dir() and h.is_dir() and not g.exists()
    # A marker that is not a regular file does not make a run deleted.
    os.unlink(f / ".deleted")
    (f / ".deleted").mkdir()
    (h / ".deleted").symlink_to(f / "meta.json")
    assert purge.list_deleted(assets_root) == []
    assert purge.purge(assets_root, [purge.Candidate(F, f), purge.Candidate(H, h)]) == []
    assert f.is_dir() and h.is_dir()


def test_purge_of_a_run_replaced_by_a_symlink_after_listing(assets_root: Path, tmp_path: Path) -> None:
    g = _run_dir(assets_root, G)
    _soft_delete(g)
    candidates = purge.list_deleted(assets_root)
    moved = tmp_path / "moved" / G
    moved.parent.mkdir()
    os.replace(g, moved)
    g.symlink_to(moved)  # same path, now a link to a directory outside the root
    assert purge.purge(assets_root, candidates) == []
    assert moved.is_dir() and (moved / ".deleted").is_file() and g.is_symlink()
