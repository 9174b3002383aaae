"""Live ingest: the watcher follows a run written while it runs, step by step."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from support import wait_for

import runicorn_lite
from runicorn_lite.db import Database
from runicorn_lite.db.schema import INDEX_MIGRATIONS
from runicorn_lite.ingest import Indexer, Watcher
from runicorn_lite.settings import Settings


def test_watcher_follows_a_live_run_step_by_step(root: Path) -> None:
    settings = Settings(root=root)
    settings.ensure_dirs()
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    indexer = Indexer(settings.root, db)
    watcher = Watcher(indexer, watch=True, rescan_interval=0)
    watcher.start()
    try:
        wait_for(lambda: indexer.state.scans_completed and indexer.state.watcher == "watchfiles")
        run = runicorn_lite.init(project="live", name="run", root=root)
        run.set_primary_metric("acc", "max")

        def points() -> int:
            sql = "SELECT n_points, status, best_metric_value FROM experiments WHERE id = ?"
            row = db.read(lambda c: c.execute(sql, (run.id,)).fetchone())
            return row

        wait_for(lambda: points() is not None)
        for step in range(1, 4):
            run.log({"acc": step / 10}, step=step)
            run.flush()
            started = time.monotonic()
            wait_for(lambda step=step: (points() or (0,))[0] == step)
            assert time.monotonic() - started < 5
        assert points()[2] == 0.3  # live best from the declared primary metric
        run.finish()
        wait_for(lambda: points()[1] == "finished")
        assert indexer.state.last_ingest_lag_s is not None
    finally:
        watcher.stop()
        db.close()


def test_real_server_sees_a_run_written_while_it_is_up(root: Path, server_factory) -> None:
    server = server_factory(root)
    health = server.wait_ready()
    assert health["status"] == "ok" and health["index"]["watcher"] in ("watchfiles", "polling")
    run = runicorn_lite.init(project="e2e", name="live", root=root, tags=["smoke"])
    for step in range(1, 4):
        run.log({"loss": 1.0 / step}, step=step)
        run.flush()

        def visible(step: int = step) -> bool:
            body = httpx.get(f"{server.url}/api/v2/experiments/{run.id}/metrics/fast", timeout=5)
            return body.status_code == 200 and body.json()["total_points"] == step

        wait_for(visible, timeout=10)
    run.finish()

    def finished() -> bool:
        r = httpx.get(f"{server.url}/api/v2/experiments", params={"project": "e2e", "status": "finished"}, timeout=5)
        return r.json()["total"] == 1

    wait_for(finished, timeout=10)
    # Every write was a file event; none of them is a line of the server's log (at INFO).
    assert not [line for line in server.output if "change detected" in line or "watchfiles" in line]


def test_real_server_keeps_summaries_and_params_live(root: Path, server_factory) -> None:
    server = server_factory(root)
    server.wait_ready()
    run = runicorn_lite.init(project="e2e", name="sweep", root=root, config={"optim": {"lr": 0.02}, "bs": 8})
    api = f"{server.url}/api/v2/experiments"
    for step, loss in enumerate([0.9, 0.4, 0.7], start=1):
        run.log({"loss": loss}, step=step)
        run.flush()

        def summary_shows(step: int = step, loss: float = loss) -> bool:
            rows = httpx.get(api, params={"include": "params,metrics", "filter": "params.optim.lr = 0.02"},
                             timeout=5).json()["experiments"]
            return bool(rows) and rows[0]["metrics"].get("loss", {}).get("last") == loss

        wait_for(summary_shows, timeout=10)
    row = httpx.get(api, params={"include": "params,metrics"}, timeout=5).json()["experiments"][0]
    assert row["params"] == {"optim.lr": 0.02, "bs": 8}
    assert row["metrics"] == {"loss": {"last": 0.7, "min": 0.4, "max": 0.9}}
    found = httpx.get(api, params={"filter": "metrics.loss.min < 0.5 and metrics.loss.count = 3"}, timeout=5).json()
    assert [e["id"] for e in found["experiments"]] == [run.id]
    detail = httpx.get(f"{api}/{run.id}", timeout=5).json()
    assert detail["metrics"]["loss"] == {"first": 0.9, "last": 0.7, "min": 0.4, "max": 0.9, "count": 3,
                                         "last_step": 3}
    run.finish()


def test_ingest_summary_is_at_most_one_line_per_interval(caplog) -> None:
    from runicorn_lite.ingest.watcher import IngestSummary

    summary = IngestSummary(every_s=3600)
    with caplog.at_level("INFO", logger="runicorn_lite.ingest"):
        for _ in range(50):
            summary.note(files=2, written=1)
    assert caplog.records == []
    summary.every_s = 0
    with caplog.at_level("INFO", logger="runicorn_lite.ingest"):
        summary.note(files=1, written=1)
    assert len(caplog.records) == 1
    assert "51 batch(es)" in caplog.text and "101 file change(s)" in caplog.text and "51 run update(s)" in caplog.text


def test_without_file_events_a_dead_process_is_still_noticed(root: Path, monkeypatch) -> None:
    import subprocess
    import sys

    from runicorn_lite.ingest import watcher as watcher_module

    monkeypatch.setattr(watcher_module, "PID_CHECK_S", 0.1)
    script = (
        "import runicorn_lite, sys, time\n"
        "run = runicorn_lite.init(project='p', root=sys.argv[1])\n"
        "run.log({'x': 1}); run.flush(); print(run.id, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(root)], stdout=subprocess.PIPE, text=True)
    settings = Settings(root=root)
    settings.ensure_dirs()
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    watcher = None
    try:
        run_id = proc.stdout.readline().strip()
        indexer = Indexer(settings.root, db)
        watcher = Watcher(indexer, watch=False, rescan_interval=3600)  # no events, rare rescans
        watcher.start()

        def status() -> str | None:
            row = db.read(lambda c: c.execute("SELECT status FROM experiments WHERE id = ?", (run_id,)).fetchone())
            return row[0] if row else None

        wait_for(lambda: status() == "running")
        proc.kill()
        proc.wait()
        wait_for(lambda: status() == "failed")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if watcher is not None:
            watcher.stop()
        db.close()


def test_periodic_walks_are_paced_by_their_cost_and_running_runs_still_show_live(root: Path) -> None:
    """Without file events, a walk that costs more than the budget's share is deferred (at a
    million runs a walk takes tens of seconds); the running runs are still read every interval,
    so their points show live, and a run started meanwhile is found in the directories that
    hold runs (a new name, a new project, an empty run folder filled later), without a walk; a
    run removed by hand waits for the next walk."""
    settings = Settings(root=root)
    settings.ensure_dirs()
    live = runicorn_lite.init(project="paced", name="live", root=root)
    live.log({"loss": 1.0}, step=1)
    live.flush()
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    indexer = Indexer(settings.root, db)
    # A budget so small that any walk defers the next one for good.
    watcher = Watcher(indexer, watch=False, rescan_interval=0.2, rescan_budget=1e-9)
    watcher.start()

    def row(run_id: str) -> tuple[int, str] | None:
        sql = "SELECT n_points, status FROM experiments WHERE id = ?"
        return db.read(lambda c: c.execute(sql, (run_id,)).fetchone())

    try:
        wait_for(lambda: row(live.id) == (1, "running"))
        wait_for(lambda: (indexer.state.rescan_every_s or 0) > 3600)
        walks = indexer.state.scans_completed
        late = runicorn_lite.init(project="paced", name="late", root=root)
        late.finish()
        for step in (2, 3):
            live.log({"loss": 1.0 / step}, step=step)
            live.flush()
            wait_for(lambda step=step: (row(live.id) or (0,))[0] == step, timeout=10)
        live.finish()
        wait_for(lambda: row(live.id) == (3, "finished"), timeout=10)
        wait_for(lambda: row(late.id) == (0, "finished"), timeout=10)
        elsewhere = runicorn_lite.init(project="new-project", name="first", root=root)
        elsewhere.log({"loss": 2.0}, step=1)
        elsewhere.flush()
        wait_for(lambda: row(elsewhere.id) == (1, "running"), timeout=10)
        beside = runicorn_lite.init(project="paced", name="live", root=root)  # beside a known run
        beside.finish()
        wait_for(lambda: row(beside.id) == (0, "finished"), timeout=10)
        import shutil

        shutil.rmtree(beside.run_dir)
        time.sleep(1.0)
        assert row(beside.id) == (0, "finished")  # removed by hand: found by the next walk
        assert indexer.state.scans_completed == walks  # all without a walk
    finally:
        watcher.stop()
        db.close()


def test_walk_pace_is_the_interval_or_the_walk_over_its_budget(root: Path) -> None:
    settings = Settings(root=root)
    settings.ensure_dirs()
    for i in range(30):
        runicorn_lite.init(project="p", name=f"r{i}", root=root).finish()
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    indexer = Indexer(settings.root, db)
    watcher = Watcher(indexer, watch=False, rescan_interval=0.1)
    watcher.start()
    try:
        wait_for(lambda: indexer.state.scans_completed >= 3 and indexer.state.rescan_every_s is not None)
    finally:
        watcher.stop()
        db.close()
    walk = indexer.state.last_walk_s
    assert walk is not None and 0 < walk < 5
    assert watcher._rescan_gap(0.1) == max(0.1, walk / 0.05)
    assert watcher._rescan_gap(3600) == 3600
    assert indexer.state.rescan_every_s == 3600  # what health reports as ``rescan_every_s``


def test_parent_dirs_find_a_run_whose_folder_came_before_its_files(root: Path) -> None:
    """The SDK makes a run's folder, then writes its files: a look in between sees an empty
    folder, and the next look (the parent's mtime unchanged since) still finds the run."""
    from runicorn_lite.ingest.dirwatch import ParentDirs

    first = runicorn_lite.init(project="p", name="n", root=root)
    first.finish()
    parents = ParentDirs(root)
    rel = first.run_dir.relative_to(root).as_posix()
    parents.rebuild([rel])
    known = {rel}
    assert parents.new_runs(known.__contains__) == []
    folder = first.run_dir.parent / "20990101_000000_abcdef"
    time.sleep(0.01)
    folder.mkdir()
    assert parents.new_runs(known.__contains__) == []  # empty: not a run yet
    (folder / "meta.json").write_text('{"id": "20990101_000000_abcdef", "project": "p", "name": "n"}')
    assert parents.new_runs(known.__contains__) == [folder]
    known.add(folder.relative_to(root).as_posix())
    assert parents.new_runs(known.__contains__) == []
