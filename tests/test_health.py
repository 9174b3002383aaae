"""/api/health reports indexing progress, also while a scan is under way."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

import runicorn_lite
from runicorn_lite.ingest import indexer as indexer_module


def test_health_mid_scan_and_after(root: Path, make_app, monkeypatch) -> None:
    monkeypatch.setattr(indexer_module, "BATCH_RUNS", 5)
    for i in range(12):
        run = runicorn_lite.init(project="p", name=f"n{i % 3}", root=root)
        run.log({"x": i})
        run.finish()
    app = make_app()
    seen = []
    with TestClient(app) as client:
        # index everything, then re-read it all with a probe that asks for health mid-scan
        def probe(runs_seen: int, runs_indexed: int) -> None:
            seen.append(client.get("/api/health").json())

        ctx = app.state.ctx
        ctx.indexer.scan()  # everything indexed
        for path in root.rglob("status.json"):
            path.write_text(path.read_text())  # touch every run: a full re-read
            path.touch()
        monkeypatch.setattr(indexer_module.rundir, "file_signature", _changed(indexer_module.rundir.file_signature))
        ctx.indexer.scan(progress=probe)
        after = client.get("/api/health").json()
    assert all(h["index"]["scanning"] is True and h["index"]["ready"] is False for h in seen[:-1])
    mid = [h["index"] for h in seen if 0 < h["index"]["scan_progress"]["runs_reindexed"] < 12]
    # The walk's runs are read as it finds them: found so far, never fewer than re-read.
    assert mid and all(h["scan_progress"]["runs_reindexed"] <= h["scan_progress"]["runs_found"] <= 12 for h in mid)
    assert mid[0]["scan_progress"]["runs_found"] < 12  # a batch of 5 is written before the walk has found all
    # Mid-scan, what the index holds and what the last completed scan did stay as they were.
    assert (mid[0]["runs_in_index"], mid[0]["runs_found_last_scan"], mid[0]["runs_reindexed_last_scan"]) == (12, 12, 12)
    assert after["index"]["scanning"] is False and after["index"]["ready"] is True
    assert after["index"]["scan_progress"] is None
    assert (after["index"]["runs_in_index"], after["index"]["runs_found_last_scan"]) == (12, 12)
    assert after["index"]["last_scan_duration_s"] is not None
    assert set(after) >= {"status", "version", "root", "index"}


def _changed(real):
    """file_signature that reports every run as changed (forces a full re-read)."""
    counter = iter(range(10**9))

    def signature(run_dir, names=None):
        sig, events, latest = real(run_dir, names)
        return f"{sig}#{next(counter)}", events, latest

    return signature


def test_runs_in_index_is_live_between_scans(root: Path, make_app) -> None:
    app = make_app()
    ctx = app.state.ctx
    ctx.indexer.scan()
    run = runicorn_lite.init(project="p", name="late", root=root)
    run.finish()
    ctx.indexer.refresh([run.run_dir])  # what the watcher does on a file event
    with TestClient(app) as client:
        index = client.get("/api/health").json()["index"]
    # The live count moved; the last scan's figures say what that scan found (none then).
    assert (index["runs_in_index"], index["runs_found_last_scan"], index["runs_reindexed_last_scan"]) == (1, 0, 0)
