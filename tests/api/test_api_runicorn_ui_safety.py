"""The routes Runicorn's web UI needs, where we keep our own rules: nothing outside a run
directory is read or zipped, only runs in the recycle bin are removed for good, malformed input
is a 400, and what the UI saves lives in our store (it survives a restart, one set per store)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
from api_helpers import assert_error
from starlette.testclient import TestClient

import runicorn_lite
from runicorn_lite import rundir
from runicorn_lite.images import encode_png
from runicorn_lite.settings import Settings

PNG = encode_png(1, 1, b"\x10\x20\x30")


@pytest.fixture
def run(root: Path) -> runicorn_lite.sdk.Run:
    """A finished run with an image and a log line."""
    r = runicorn_lite.init(path="cv/exp", root=root, config={"lr": 0.1})
    r.log({"loss": 1.0}, step=1)
    r.log_image("samples", PNG, step=1)
    r.log_text("hello")
    r.finish()
    return r


def _app(make_app, **settings):
    app = make_app(**settings)
    app.state.ctx.indexer.scan()
    return app


async def test_download_serves_files_of_the_run_only(make_app, client_for, root: Path, run, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (run.run_dir / "leak.txt").symlink_to(secret)
    (run.run_dir / "leakdir").symlink_to(tmp_path)
    client = client_for(_app(make_app))
    url = f"/api/runs/{run.id}/assets/download?path="
    image = (await client.get(f"/api/runs/{run.id}/images")).json()["images"][0]["path"]
    ok = await client.get(url + quote(image, safe=""))
    assert ok.status_code == 200 and ok.content == PNG and ok.headers["content-type"] == "image/png"
    assert ok.headers["x-content-type-options"] == "nosniff"
    assert_error(await client.get(url + quote(str(run.run_dir / "leak.txt"))), 404, "File not found")
    assert_error(await client.get(url + quote(str(run.run_dir / "leakdir/secret.txt"))), 404, "File not found")
    assert_error(await client.get(url + quote(str(secret))), 403, "Unsafe path")
    assert_error(await client.get(url + quote(f"{run.run_dir}/../../../../../{secret}")), 403, "Unsafe path")
    assert_error(await client.get(url + "media%00x"), 400, "NUL")
    assert_error(await client.get(url + "relative/path.png"), 403, "Unsafe path")
    assert_error(await client.get(url + quote(str(root / "runs"))), 403, "does not belong to this run")
    assert_error(await client.get(f"/api/runs/{run.id}/assets/download"), 400, "'path' is required")
    # a folder comes as a zip of its regular files, symlinks left out
    (run.run_dir / "media" / "link.png").symlink_to(secret)
    folder = await client.get(url + quote(str(run.run_dir)))
    names = zipfile.ZipFile(io.BytesIO(folder.content)).namelist()
    assert folder.status_code == 200 and "meta.json" in names and "media/" + Path(image).name in names
    assert not any("leak" in n or "link" in n for n in names)
    assert folder.headers["content-disposition"] == f'attachment; filename="{run.id}.zip"'


async def test_export_zips_regular_files_only(make_app, client_for, run, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (run.run_dir / "leak.txt").symlink_to(secret)
    client = client_for(_app(make_app))
    response = await client.post("/api/runs/export", json={"run_ids": [run.id, run.id]})
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        names = zf.namelist()
        assert zf.read(f"runs/cv/exp/{run.id}/logs.txt").decode().endswith("hello\n")
    assert sorted(names) == sorted(f"runs/cv/exp/{run.id}/{p.relative_to(run.run_dir).as_posix()}"
                                   for p in run.run_dir.rglob("*") if p.is_file() and not p.is_symlink())
    for body, status in (({"run_ids": "x"}, 400), ({"run_ids": [1]}, 400), ({"run_ids": []}, 400),
                         ({}, 400), ({"run_ids": ["a\x00"]}, 400), ({"run_ids": ["x"] * 1001}, 400)):
        assert_error(await client.post("/api/runs/export", json=body), status)
    assert_error(await client.post("/api/runs/export", content=b"{nope"), 400, "not valid JSON")


async def test_permanent_delete_removes_only_runs_in_the_bin(make_app, client_for, root: Path, run) -> None:
    other = runicorn_lite.init(path="cv/exp", root=root)
    other.finish()
    client = client_for(_app(make_app))
    live = (await client.post("/api/runs/permanent-delete", json={"run_ids": [run.id]})).json()
    assert live["deleted_count"] == 0 and live["results"][run.id]["success"] is False
    assert "not in the recycle bin" in live["results"][run.id]["errors"][0]
    assert run.run_dir.is_dir()  # a live run is never removed
    await client.post("/api/runs/soft-delete", json={"run_ids": [run.id]})
    dry = (await client.post("/api/runs/permanent-delete", json={"run_ids": [run.id], "dry_run": True})).json()
    assert dry["dry_run"] is True and dry["results"][run.id]["run_dir_deleted"] is True and run.run_dir.is_dir()
    done = (await client.post("/api/runs/permanent-delete", json={"run_ids": [run.id, other.id]})).json()
    assert done["deleted_count"] == 1 and done["total_runs"] == 2
    assert not run.run_dir.exists() and other.run_dir.is_dir()
    assert (await client.get("/api/recycle-bin")).json() == {"deleted_runs": []}
    assert [r["id"] for r in (await client.get("/api/v2/experiments")).json()["experiments"]] == [other.id]
    for body in ({"run_ids": [run.id], "dry_run": "yes"}, {"run_ids": "x"}, {"run_ids": [None]}, {}):
        assert_error(await client.post("/api/runs/permanent-delete", json=body), 400)


async def test_writes_answer_403_on_a_read_only_root(make_app, client_for, root: Path, run) -> None:
    rundir.mark_deleted(run.run_dir, "finished", "user_deleted", 1.0)
    client = client_for(_app(make_app, read_only=True))
    assert_error(await client.post("/api/runs/permanent-delete", json={"run_ids": [run.id]}), 403, "read-only")
    assert run.run_dir.is_dir()
    assert (await client.post("/api/runs/permanent-delete", json={"run_ids": [run.id], "dry_run": True})).json()[
        "deleted_count"] == 1
    assert_error(await client.post("/api/paths/create", json={"path": "a/b"}), 403, "read-only")
    assert not (root / "runs" / "a").exists()


async def test_create_path_refuses_what_is_not_a_plain_folder(make_app, client_for, root: Path, run,
                                                              tmp_path: Path) -> None:
    client = client_for(_app(make_app))
    (root / "runs" / "out").symlink_to(tmp_path)
    for path, status, words in (
        (f"cv/exp/{run.id}/inside", 400, "run's directory"), ("out/x", 400, "not a folder"), ("a/.hidden", 400, "'.'"),
        ("a//b", 400, "empty"), ("x" * 201, 400, "bytes"), ("a/../b", 400, ".."), (5, 400, "string"),
        ("a\\b", 400, "invalid"), ("cv/exp", 409, "already exists"),
    ):
        assert_error(await client.post("/api/paths/create", json={"path": path}), status, words)
    assert not (tmp_path / "x").exists()
    assert (await client.post("/api/paths/create", json={"path": "cv/new one"})).json() == {"ok": True,
                                                                                          "path": "cv/new one"}
    tree = (await client.get("/api/paths?include_stats=true")).json()
    assert tree["stats"]["cv/new one"] == {"total": 0, "running": 0, "finished": 0, "failed": 0}
    assert tree["stats"]["cv"]["total"] == 1 and tree["tree"]["cv"] == {"exp": {}, "new one": {}}
    os.rmdir(root / "runs" / "cv" / "new one")  # removed by hand: gone from the tree
    assert "cv/new one" not in (await client.get("/api/paths")).json()["paths"]
    assert_error(await client.get("/api/paths?include_stats=maybe"), 400, "include_stats")


def test_what_the_ui_saves_is_kept_per_store_across_restarts(make_app, root: Path, tmp_path: Path) -> None:
    widths = {"table": "experiments", "size": "1300x900", "widths": {"path": 240}}
    with TestClient(make_app()) as client:
        assert client.post("/api/config/column-widths", json=widths).json()["ok"] is True
        client.post("/api/config/dismissed-alerts/dismiss", json={"alert_id": "remote.intro"})
        client.post("/api/paths/create", json={"path": "kept"})
    with TestClient(make_app()) as client:  # a new server on the same store
        assert client.get("/api/config/column-widths?table=experiments&size=1300x900").json()["widths"] == {
            "path": 240}
        assert client.get("/api/config/dismissed-alerts").json() == {"dismissed_alerts": ["remote.intro"]}
        assert "kept" in client.get("/api/paths").json()["paths"]
    other = tmp_path / "other"
    other.mkdir()
    with TestClient(make_app(root=other)) as client:  # another root: its own settings
        assert client.get("/api/config/dismissed-alerts").json() == {"dismissed_alerts": []}
    assert (Settings(root=root).store_dir / "ui.sqlite").is_file()


async def test_ui_settings_refuse_malformed_input(make_app, client_for) -> None:
    client = client_for(make_app())
    url = "/api/config/column-widths"
    for body in ({"table": "t", "size": "s"}, {"table": "t", "size": "s", "widths": {"a": -1}},
                 {"table": "t", "size": "s", "widths": {"a": True}}, {"table": "t", "size": "s", "widths": [1]},
                 {"table": "", "size": "s", "widths": {}}, {"table": "t\x00", "size": "s", "widths": {}},
                 {"table": "t", "size": "s", "widths": {}, "window_width": "wide"},
                 {"table": "t", "size": "s", "widths": {str(i): 1 for i in range(501)}}):
        assert_error(await client.post(url, json=body), 400)
    assert_error(await client.get(url + "?table=t"), 400, "'size' is required")
    assert_error(await client.delete(url), 400, "'table' is required")
    assert_error(await client.put(url, json={}), 405)
    for body in ({}, {"alert_id": ""}, {"alert_id": 3}, {"alert_id": "a\nb"}, {"alert_id": "x" * 201}):
        assert_error(await client.post("/api/config/dismissed-alerts/dismiss", json=body), 400)
    assert_error(await client.post("/api/config/dismissed-alerts/dismiss", content=b"[1]"), 400, "JSON object")


async def test_health_keeps_its_fields_and_adds_runicorns(make_app, client_for, root: Path) -> None:
    body = (await client_for(make_app()).get("/api/health")).json()
    assert {"status", "problems", "version", "root", "uptime_s", "index"} <= set(body)
    assert body["storage"] == str(root.resolve()) and body["storage_backend"]["mode"] == "sqlite"
    assert body["cache"]["enabled"] is False and body["cache"]["hit_rate"] == "0.0%"


async def test_system_monitor_reads_this_machine(make_app, client_for) -> None:
    client = client_for(make_app())
    for _ in range(2):  # the second reading is the share since the first
        body = (await client.get("/api/system/monitor")).json()
        if not os.path.exists("/proc/stat"):
            assert body["available"] is False
            return
        assert body["available"] is True and 0 <= body["cpu"]["percent"] <= 100
        assert len(body["cpu"]["per_core"]) == body["cpu"]["logical_count"] == os.cpu_count()
        assert 0 < body["memory"]["available"] <= body["memory"]["total"]
        assert 0 <= body["disk"]["percent"] <= 100 and body["disk"]["total"] > 0


def test_diagnostics_log_is_this_servers_log(make_app) -> None:
    import logging

    with TestClient(make_app()) as client:
        logging.getLogger("runicorn_lite.test").warning("a line for the diagnostics page")
        text = client.get("/api/diagnostics/logs?source=session&lines=5").text
        assert "a line for the diagnostics page" in text
        assert_error(client.get("/api/diagnostics/logs?source=global"), 404, "Unknown diagnostics source")
        assert_error(client.get("/api/diagnostics/logs?source=session&lines=0"), 400, "lines")
        download = client.get("/api/diagnostics/logs?source=session&download=true")
        assert download.headers["content-disposition"] == 'attachment; filename="runicorn-lite.log"'
        with client.websocket_connect("/api/diagnostics/logs/ws?source=session&lines=1") as ws:
            assert "a line for the diagnostics page" in ws.receive_text()
            logging.getLogger("runicorn_lite.test").warning("and one more")
            assert ws.receive_text().endswith("and one more")
