"""Damaged, deleted and empty store files: the derived index is rebuilt from the run directories,
the primary database is reported damaged and never overwritten, and nothing ends in a traceback."""

from __future__ import annotations

import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from runicorn_lite.cli import main
from runicorn_lite.db import SQLITE_MAGIC, DamagedStore, Database
from runicorn_lite.db.schema import INDEX_MIGRATIONS
from runicorn_lite.demo import write_demo_runs
from runicorn_lite.optimization.keys import create_key
from runicorn_lite.optimization.schema import MIGRATIONS
from runicorn_lite.settings import Settings

RUNS = 30
PAGE = 16384


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs written through the SDK (long enough that metric chunks fill many pages)."""
    root = tmp_path_factory.mktemp("damaged") / "data"
    write_demo_runs(root, runs=RUNS, steps=700, rng=random.Random(7))
    return root


@pytest.fixture
def data(corpus: Path, tmp_path: Path) -> Path:
    """A fresh copy of the corpus, without any store."""
    root = tmp_path / "runs"
    shutil.copytree(corpus, root, ignore=shutil.ignore_patterns(".runicorn_lite"))
    return root


def _build_index(root: Path) -> Path:
    result = CliRunner().invoke(main, ["index", "--root", str(root), "--silent"])
    assert result.exit_code == 0, result.output
    return Settings(root=root).index_path


def _pages_of(path: Path, table: str) -> list[int]:
    """Page numbers (1-based) that hold ``table``'s b-tree, from SQLite's own dbstat."""
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT pageno FROM dbstat WHERE name = ?", (table,))]
    finally:
        conn.close()


def _pages_but_keys(path: Path) -> list[int]:
    """Pages of everything but the schema, the migrations and the API keys (with their indexes)."""
    conn = sqlite3.connect(path)
    try:
        keep = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE tbl_name IN ('api_keys', '_migrations')")} | {"sqlite_schema"}
        return [row[0] for row in conn.execute("SELECT pageno, name FROM dbstat") if row[1] not in keep]
    finally:
        conn.close()


def _garbage(path: Path, pages: list[int]) -> None:
    rng = random.Random(3)
    with open(path, "r+b") as fh:
        for page in pages:
            fh.seek((page - 1) * PAGE)
            fh.write(bytes(rng.randrange(256) for _ in range(PAGE)))


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _garbage_header(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.write(b"this is no database at all, just text")


def _garbage_pages(path: Path) -> None:
    _garbage(path, _pages_of(path, "experiments"))


def _directory(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    (path / "not-a-database").mkdir(parents=True)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": _truncate,
    "garbage header": _garbage_header,
    "garbage pages": _garbage_pages,
    "a directory": _directory,
}


# -- item 3: a damaged index never stops `index` or `serve` ------------------------------------


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_index_command_moves_a_damaged_index_aside_and_rebuilds(data: Path, damage: str) -> None:
    index_path = _build_index(data)
    DAMAGE[damage](index_path)
    proc = subprocess.run(
        [sys.executable, "-m", "runicorn_lite", "index", "--root", str(data), "--silent"],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "damaged" in warnings[0], proc.stderr
    assert "moved aside to index.sqlite.damaged" in warnings[0]
    assert index_path.with_name("index.sqlite.damaged").exists()
    db = Database(index_path, INDEX_MIGRATIONS)
    try:
        assert db.read(lambda conn: conn.execute("SELECT count(*) FROM experiments").fetchone()[0]) == RUNS
        assert db.read(lambda conn: conn.execute("PRAGMA integrity_check").fetchone()[0]) == "ok"
    finally:
        db.close()


def test_damage_found_in_the_middle_of_a_scan_is_rebuilt_with_one_warning(data: Path) -> None:
    # The experiments table is intact (the index opens); the metric pages are not, and every
    # run has new points, so the scan finds the damage when it writes them.
    index_path = _build_index(data)
    _garbage(index_path, _pages_of(index_path, "metric_chunks"))
    for events in data.rglob("events.jsonl"):
        with open(events, "a") as fh:
            fh.write('{"ts": 1.0, "type": "metrics", "data": {"global_step": 100000, "loss": 0.5}}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "runicorn_lite", "index", "--root", str(data), "--silent"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "index.sqlite is damaged" in lines[0] and "moved aside" in lines[0], lines
    db = Database(index_path, INDEX_MIGRATIONS)
    try:
        points = db.read(lambda conn: conn.execute("SELECT count(*) FROM experiments WHERE n_points > 0").fetchone()[0])
        assert points == RUNS
        assert db.read(lambda conn: conn.execute("PRAGMA integrity_check").fetchone()[0]) == "ok"
    finally:
        db.close()


@pytest.mark.e2e
@pytest.mark.parametrize("damage", ["truncated", "a directory"])
def test_serve_moves_a_damaged_index_aside_and_serves(data: Path, damage: str, server_factory) -> None:
    index_path = _build_index(data)
    DAMAGE[damage](index_path)
    server = server_factory(data)
    body = server.wait_ready()
    assert body["status"] == "ok" and body["index"]["runs_in_index"] == RUNS
    assert httpx.get(server.url + "/api/v2/experiments").json()["total"] == RUNS
    output = "".join(server.output)
    assert "Traceback" not in output
    assert sum(" is damaged " in line for line in output.splitlines()) == 1, output  # the path may say it too


async def test_damage_found_while_serving_answers_rebuilding_then_is_rebuilt(data: Path, make_app, client_for) -> None:
    # Only the metric pages are damaged: the index opens, lists work, a curve read finds it.
    index_path = _build_index(data)
    _garbage(index_path, _pages_of(index_path, "metric_chunks"))
    app = make_app(root=data)
    ctx = app.state.ctx
    client = client_for(app)
    exp_id = (await client.get("/api/v2/experiments", params={"per_page": 1})).json()["experiments"][0]["id"]
    answer = await client.get(f"/api/v2/experiments/{exp_id}/metrics/fast")
    assert answer.status_code == 503 and "being rebuilt" in answer.json()["detail"]
    assert answer.headers["retry-after"]
    health = (await client.get("/api/health")).json()
    assert health["status"] == "degraded" and "index.sqlite is damaged" in health["problems"][0]
    assert ctx.keeper.check() is True  # what the ingest thread does within a second
    answer = await client.get(f"/api/v2/experiments/{exp_id}/metrics/fast")
    assert answer.status_code == 200 and answer.json()["total_points"] > 0
    health = (await client.get("/api/health")).json()
    assert health["status"] == "ok" and health["problems"] == []
    assert index_path.with_name("index.sqlite.damaged").exists()


# -- item 1: the index deleted while serving ----------------------------------------------------


async def test_deleted_index_is_noticed_reported_and_rebuilt(data: Path, make_app, client_for) -> None:
    app = make_app(root=data)
    ctx = app.state.ctx
    ctx.indexer.scan()
    client = client_for(app)
    assert (await client.get("/api/v2/experiments")).json()["total"] == RUNS
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ctx.index.path}{suffix}").unlink(missing_ok=True)
    health = (await client.get("/api/health")).json()
    assert health["status"] == "degraded"
    assert health["problems"] == ["index: index.sqlite was deleted"]
    assert ctx.keeper.check() is True
    assert (await client.get("/api/v2/experiments")).json()["total"] == RUNS
    health = (await client.get("/api/health")).json()
    assert health["status"] == "ok" and health["index"]["runs_in_index"] == RUNS
    assert ctx.keeper.check() is False  # once rebuilt, nothing more to do


async def test_reads_during_a_rebuild_answer_503_saying_so(data: Path, make_app, client_for) -> None:
    app = make_app(root=data)
    ctx = app.state.ctx
    ctx.indexer.scan()
    client = client_for(app)
    ctx.keeper.rebuilding = "index.sqlite was deleted; it is being rebuilt from the run directories"
    with ctx.index.suspended(ctx.keeper.rebuilding):  # as the keeper holds it while it rebuilds
        answer = await client.get("/api/v2/experiments")
        health = (await client.get("/api/health")).json()
    assert answer.status_code == 503 and answer.headers["retry-after"] == "2"
    assert answer.json()["detail"] == (
        "The index is being rebuilt (index.sqlite was deleted; it is being rebuilt from the run directories); "
        "try again in a few seconds"
    )
    assert health["status"] == "degraded" and "being rebuilt" in health["problems"][0]


def test_a_replaced_index_is_reopened(data: Path, make_app) -> None:
    app = make_app(root=data)
    ctx = app.state.ctx
    ctx.indexer.scan()
    copy = ctx.index.path.with_name("copy.sqlite")
    conn = sqlite3.connect(ctx.index.path)
    conn.execute("VACUUM INTO ?", (str(copy),))
    conn.execute("DELETE FROM experiments_fts")  # the copy keeps everything; the old file changes
    conn.commit()
    conn.close()
    os.replace(copy, ctx.index.path)
    assert ctx.keeper.problem() == "index.sqlite was replaced by another file"
    assert ctx.keeper.check() is True
    assert ctx.index.read(lambda c: c.execute("SELECT count(*) FROM experiments_fts").fetchone()[0]) == RUNS


# -- items 2 and 9: a damaged or empty primary database ----------------------------------------


def _primary_with_a_key(root: Path) -> tuple[Path, str]:
    settings = Settings(root=root)
    settings.ensure_dirs()
    db = Database(settings.primary_path, MIGRATIONS, precious=True)
    try:
        key, _ = create_key(db, "proj_1", "test")
    finally:
        db.close()
    return settings.primary_path, key


def _emptied(path: Path) -> None:
    path.write_bytes(b"")


def _not_a_database(path: Path) -> None:
    path.write_text("api keys were here\n")


def _garbage_in_pages(path: Path) -> None:
    _garbage(path, list(range(2, path.stat().st_size // PAGE + 1)))


PRIMARY_DAMAGE: dict[str, Callable[[Path], None]] = {
    "empty": _emptied,
    "not a database": _not_a_database,
    "garbage in its pages": _garbage_in_pages,
}


@pytest.mark.parametrize("damage", list(PRIMARY_DAMAGE))
async def test_damaged_primary_says_so_and_is_never_overwritten(
    root: Path, damage: str, make_app, client_for, caplog: pytest.LogCaptureFixture
) -> None:
    primary, key = _primary_with_a_key(root)
    for suffix in ("-wal", "-shm"):
        Path(f"{primary}{suffix}").unlink(missing_ok=True)
    PRIMARY_DAMAGE[damage](primary)
    before = primary.read_bytes()
    caplog.set_level(logging.WARNING)
    client = client_for(make_app())
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(3):
        answer = await client.get("/api/iris/optimization/runs", headers=headers)
        assert answer.status_code == 503
        assert answer.json()["error"] == "The primary database is damaged"
        assert "primary.sqlite" in answer.json()["hint"]
        assert "retry-after" not in answer.headers
        posted = await client.post("/api/iris/optimization/runs", headers=headers,
                                   json={"run_name": "r", "optimizer_type": "grid", "config": {}})
        assert posted.status_code == 503 and "retry-after" not in posted.headers
    health = (await client.get("/api/health")).json()
    assert health["status"] == "degraded"
    assert health["problems"][0].startswith("primary database: primary.sqlite is damaged")
    # The V2 API, whose store is the index, is unaffected.
    assert (await client.get("/api/v2/experiments")).status_code == 200
    assert primary.read_bytes() == before  # never overwritten, never "repaired"
    causes = [r for r in caplog.records if "primary.sqlite" in r.getMessage() and "damaged" in r.getMessage()]
    assert len(causes) == 1, [r.getMessage() for r in caplog.records]


async def test_damage_found_by_a_call_while_serving_is_reported_from_then_on(
    root: Path, make_app, client_for, caplog: pytest.LogCaptureFixture
) -> None:
    # Only the keys' pages are intact: the store opens and keys are found; listing runs is not.
    primary, key = _primary_with_a_key(root)
    client = client_for(make_app())
    headers = {"Authorization": f"Bearer {key}"}
    for i in range(30):
        created = await client.post("/api/iris/optimization/runs", headers=headers,
                                    json={"run_name": f"run {i}", "optimizer_type": "grid_search", "config": {}})
        assert created.status_code == 201
    other = Settings(root=root.parent / "other")  # a fresh app: nothing of the file in any cache
    other.ensure_dirs()
    shutil.copy(primary, other.primary_path)
    conn = sqlite3.connect(other.primary_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    _garbage(other.primary_path, _pages_but_keys(other.primary_path))
    caplog.set_level(logging.WARNING)
    client = client_for(make_app(root=other.root))
    assert (await client.get("/api/health")).json()["status"] == "ok"  # nothing has read those pages yet
    listed = await client.get("/api/iris/optimization/runs", headers=headers)
    assert listed.status_code == 503 and listed.json()["error"] == "The primary database is damaged"
    assert "retry-after" not in listed.headers
    health = (await client.get("/api/health")).json()
    assert health["status"] == "degraded" and "primary.sqlite is damaged" in health["problems"][0]
    again = await client.get("/api/iris/optimization/stats", headers=headers)
    assert again.status_code == 503 and again.json()["error"] == "The primary database is damaged"
    causes = [r for r in caplog.records if "primary.sqlite" in r.getMessage() and "damaged" in r.getMessage()]
    assert len(causes) == 1


@pytest.mark.parametrize("damage", ["empty", "not a database"])
def test_keys_command_refuses_a_damaged_primary(root: Path, damage: str) -> None:
    primary, _ = _primary_with_a_key(root)
    for suffix in ("-wal", "-shm"):
        Path(f"{primary}{suffix}").unlink(missing_ok=True)
    PRIMARY_DAMAGE[damage](primary)
    before = primary.read_bytes()
    result = CliRunner().invoke(main, ["keys", "--root", str(root), "create", "--project", "p1"])
    assert result.exit_code == 1
    assert "is damaged" in result.output and "Traceback" not in result.output
    assert primary.read_bytes() == before


def test_a_new_primary_is_created_whole(root: Path) -> None:
    path = Settings(root=root).primary_path
    db = Database(path, MIGRATIONS, precious=True)
    db.close()
    assert path.read_bytes()[:16] == SQLITE_MAGIC
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".new")]
    again = Database(path, MIGRATIONS, precious=True)  # and it opens as what it is
    try:
        assert again.damaged is None
    finally:
        again.close()


def test_store_errors_of_damage_are_their_own_kind(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    path.write_bytes(SQLITE_MAGIC + b"\x00" * 84 + b"garbage" * 1000)
    db = Database(path, INDEX_MIGRATIONS)
    try:
        assert db.damaged is not None
        with pytest.raises(DamagedStore):
            db.read(lambda conn: conn.execute("SELECT 1").fetchone())
        with pytest.raises(DamagedStore), db.write():
            pass
    finally:
        db.close()
