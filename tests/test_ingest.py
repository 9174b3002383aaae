"""The indexer on real run directories and real SQLite files: full, incremental, damaged, rebuilt."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import pytest
from support import copy_fixture, open_index, rows

import runicorn_lite
from runicorn_lite import rundir
from runicorn_lite.db import Database
from runicorn_lite.db.schema import INDEX_MIGRATIONS
from runicorn_lite.queries.metrics import load_series
from runicorn_lite.settings import Settings


@pytest.fixture
def index(root: Path):
    db, indexer = open_index(root)
    yield db, indexer
    db.close()


def one(db: Database, exp_id: str) -> dict:
    def q(conn):
        cur = conn.execute("SELECT * FROM experiments WHERE id = ?", (exp_id,))
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))

    return db.read(q)  # type: ignore[return-value]


def _finished_runs(root: Path, n: int) -> list:
    """``n`` finished runs of project p, names n0, n1, ..."""
    runs = []
    for i in range(n):
        run = runicorn_lite.init(project="p", name=f"n{i}", root=root)
        run.finish()
        runs.append(run)
    return runs


def series(db: Database, exp_id: str) -> dict:
    pk = one(db, exp_id)["pk"]
    loaded = db.read(lambda c: load_series(c, pk))
    return {m: (list(steps), list(vals)) for m, (steps, vals) in loaded.items()}


def test_schema_is_wal_with_documented_indexes(index) -> None:
    db, _ = index
    assert rows(db, "PRAGMA journal_mode")[0][0] == "wal"
    names = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"idx_experiments_project", "idx_experiments_status", "idx_experiments_created_at",
            "idx_experiments_best_metric", "idx_experiments_deleted_at"} <= names
    assert [r[0] for r in rows(db, "SELECT name FROM _migrations ORDER BY name")] == [m.name for m in INDEX_MIGRATIONS]


def test_real_runicorn_fixtures_are_indexed(root: Path, index) -> None:
    copy_fixture("runicorn_053", root)
    copy_fixture("runicorn_07", root)
    db, indexer = index
    indexer.scan()
    assert rows(db, "SELECT count(*) FROM experiments")[0][0] == 10
    for prefix, gen in (("20250301_09000", "05a00"), ("20250302_09000", "07a00")):
        a = one(db, f"{prefix}1_{gen}1")
        assert (a["project"], a["status"], a["best_metric_name"], a["best_metric_value"]) == (
            "cv", "finished", "accuracy", 0.8888)
        pts = series(db, f"{prefix}1_{gen}1")
        assert sorted(pts) == ["accuracy", "loss", "lr"]
        steps, loss = pts["loss"]
        assert steps == list(range(1, 31))
        assert loss[11] == 0.7214  # step 12 logged twice: the last value wins
        assert math.isnan(loss[16])  # NaN at step 17 is stored
        assert a["n_points"] == 90  # 30 steps x 3 metrics; the re-logged step counts once
        b = one(db, f"{prefix}2_{gen}2")
        assert (b["project"], b["name"], b["status"], b["best_metric_value"], b["best_metric_mode"]) == (
            "nlp", "bert", "failed", 0.2578, "min")
        assert series(db, f"{prefix}2_{gen}2")["grad_norm"][1][24] == math.inf
        c = one(db, f"{prefix}3_{gen}3")
        assert (c["status"], c["best_metric_value"]) == ("interrupted", None)
        d = one(db, f"{prefix}4_{gen}4")
        assert (d["project"], d["name"]) == ("cv", "default")
        assert d["status"] == ("failed" if rundir.pid_is_gone(d["pid"], d["hostname"]) else "running")
        e = one(db, f"{prefix}5_{gen}5")
        assert (e["n_points"], e["status"]) == (0, "finished")
    assert one(db, "20250302_090001_07a001")["name"] == "yolo/ablation"
    assert one(db, "20250301_090001_05a001")["name"] == "yolo-ablation"


def test_sdk_runs_with_tags_search_body_and_live_best(root: Path, index) -> None:
    db, indexer = index
    run = runicorn_lite.init(
        project="vision", name="resnet", root=root, tags=["baseline", "fp16"], description="Big Sweep"
    )
    run.set_primary_metric("acc", "max")
    for step, acc in enumerate([0.1, 0.5, 0.3], start=1):
        run.log({"acc": acc}, step=step)
    run.flush()
    indexer.scan()
    row = one(db, run.id)
    # still running: best comes from the events, as the primary metric was declared
    assert (row["status"], row["best_metric_name"], row["best_metric_value"], row["best_metric_step"]) == (
        "running", "acc", 0.5, 2)
    assert sorted(r[0] for r in rows(db, "SELECT tag FROM exp_tags")) == ["baseline", "fp16"]
    hits = rows(db, "SELECT rowid FROM experiments_fts WHERE experiments_fts MATCH ?", ('"big sw"',))
    assert hits == [(row["pk"],)]
    run.log({"acc": 0.9}, step=4)
    run.finish()
    indexer.scan()
    row = one(db, run.id)
    assert (row["status"], row["best_metric_value"], row["best_metric_step"]) == ("finished", 0.9, 4)


def test_incremental_read_from_offset_and_unchanged_runs_cost_nothing(root: Path, index) -> None:
    db, indexer = index
    run = runicorn_lite.init(project="p", name="n", root=root)
    for step in range(1, 601):  # more than one chunk
        run.log({"x": float(step)}, step=step)
    run.flush()
    indexer.scan()
    first_offset = one(db, run.id)["events_offset"]
    assert first_offset == (run.run_dir / "events.jsonl").stat().st_size
    assert indexer.scan().runs_indexed == 0  # nothing changed: nothing re-read
    run.log({"x": -1.0}, step=5)  # re-log an early step (lands in the first chunk)
    run.log({"x": 601.0, "y": 1.0}, step=601)
    run.flush()
    assert indexer.scan().runs_indexed == 1
    pts = series(db, run.id)
    assert pts["x"][0] == list(range(1, 602))
    assert pts["x"][1][4] == -1.0 and pts["x"][1][-1] == 601.0
    assert pts["y"] == ([601], [1.0])
    assert one(db, run.id)["n_points"] == 602
    assert rows(db, "SELECT count(*) FROM metric_chunks WHERE metric = 'x'")[0][0] == 2


def test_shrunk_or_replaced_events_file_is_reread_whole(root: Path, index) -> None:
    db, indexer = index
    run = runicorn_lite.init(project="p", root=root)
    for step in range(1, 11):
        run.log({"x": 1.0}, step=step)
    run.finish()
    indexer.scan()
    (run.run_dir / "events.jsonl").write_text('{"type": "metrics", "data": {"x": 7, "global_step": 3}}\n')
    indexer.scan()
    assert series(db, run.id)["x"] == ([3], [7.0])


def test_half_written_line_is_completed_later(root: Path, index) -> None:
    db, indexer = index
    run_dir = root / "runs" / "p" / "20250101_000000_abcdef"
    run_dir.mkdir(parents=True)
    (run_dir / "meta.json").write_text(json.dumps({"id": run_dir.name, "path": "p", "created_at": 1.0}))
    events = run_dir / "events.jsonl"
    events.write_text('{"type": "metrics", "data": {"x": 1, "global_step": 1}}\n{"type": "metrics", "da')
    indexer.scan()
    assert series(db, run_dir.name)["x"] == ([1], [1.0])
    with open(events, "a") as fh:
        fh.write('ta": {"x": 2, "global_step": 2}}\n')
    indexer.scan()
    assert series(db, run_dir.name)["x"] == ([1, 2], [1.0, 2.0])


def test_damaged_runs_never_stop_the_scan(root: Path, index) -> None:
    db, indexer = index
    good = runicorn_lite.init(project="ok", root=root)
    good.log({"x": 1})
    good.finish()
    base = root / "runs" / "bad"
    cases = {
        "20250101_000000_000001": {"meta.json": ""},  # empty meta
        "20250101_000000_000002": {"meta.json": "{not json", "status.json": '{"status": "weird"}'},
        "20250101_000000_000003": {
            "status.json": '{"status": "completed", "started_at": 5}', "events.jsonl": "garbage\n\n{]\n",
        },
        "20250101_000000_000004": {
            "meta.json": "[1,2,3]", "summary.json": "null", "status.json": '{"status": "cancelled"}',
        },
        "20250101_000000_000005": {"meta.json": '{"created_at": "yesterday", "tags": "solo", "pid": "x"}'},
    }
    for run_id, files in cases.items():
        for name, text in files.items():
            p = base / run_id / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
    indexer.scan()
    got = dict(rows(db, "SELECT id, status FROM experiments"))
    assert got[good.id] == "finished"
    assert got["20250101_000000_000001"] == "running"  # no status.json: still running
    assert got["20250101_000000_000002"] == "finished"  # unknown status kept as finished
    assert got["20250101_000000_000003"] == "finished"
    assert got["20250101_000000_000004"] == "interrupted"
    assert one(db, "20250101_000000_000005")["tags"] == '["solo"]'
    assert one(db, "20250101_000000_000003")["n_points"] == 0


def test_run_deleted_between_listing_and_reading(root: Path, index, monkeypatch) -> None:
    db, indexer = index
    runs = [runicorn_lite.init(project="p", root=root) for _ in range(3)]
    for r in runs:
        r.log({"x": 1})
        r.finish()
    victim = runs[1].run_dir
    real_read_run = rundir.read_run

    def read_run_after_rmtree(loc, latest=None):
        if loc.run_dir == victim:
            shutil.rmtree(victim)  # the directory vanishes after it was listed
        return real_read_run(loc, latest)

    monkeypatch.setattr(rundir, "read_run", read_run_after_rmtree)
    indexer.scan()
    ids = {r[0] for r in rows(db, "SELECT id FROM experiments")}
    assert ids == {runs[0].id, runs[2].id}


def test_vanished_runs_leave_the_index(root: Path, index) -> None:
    db, indexer = index
    run = runicorn_lite.init(project="p", root=root, tags=["t"])
    run.log({"x": 1})
    run.finish()
    indexer.scan()
    shutil.rmtree(run.run_dir)
    indexer.scan()
    for table in ("experiments", "metric_chunks", "exp_tags", "experiments_fts"):
        assert rows(db, f"SELECT count(*) FROM {table}")[0][0] == 0


def test_rebuild_from_files_gives_the_same_rows(root: Path) -> None:
    copy_fixture("runicorn_07", root)
    for i in range(5):
        run = runicorn_lite.init(project="p", name=f"n{i}", root=root, tags=[f"t{i}"])
        run.set_primary_metric("acc", "min")
        for step in range(1, 50):
            run.log({"acc": 1 / step, "loss": step}, step=step)
        run.finish("failed" if i % 2 else "finished")
    # a soft delete is in the files (the .deleted marker) and must survive a rebuild
    rundir.mark_deleted(run.run_dir, "finished", "cleanup", 123.0)
    columns = ("id, project, name, path, alias, tags, status, created_at, ended_at, best_metric_name,"
               " best_metric_value, best_metric_step, deleted_at, delete_reason, n_points, row_json")

    def snapshot() -> tuple:
        db, indexer = open_index(root)
        try:
            indexer.scan()
            exps = rows(db, f"SELECT {columns} FROM experiments ORDER BY id")
            chunks = rows(db, "SELECT e.id, c.metric, c.chunk, c.steps, c.vals FROM metric_chunks c"
                              " JOIN experiments e ON e.pk = c.exp_pk ORDER BY 1, 2, 3")
            tags = rows(db, "SELECT e.id, t.tag FROM exp_tags t JOIN experiments e ON e.pk = t.exp_pk ORDER BY 1, 2")
            return exps, chunks, tags
        finally:
            db.close()

    before = snapshot()
    assert any(r[12] == 123.0 for r in before[0])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{Settings(root=root).index_path}{suffix}").unlink(missing_ok=True)
    assert snapshot() == before


def test_refresh_of_one_run_and_of_a_removed_one(root: Path, index) -> None:
    db, indexer = index
    run = runicorn_lite.init(project="p", root=root)
    run.finish()
    assert indexer.refresh([run.run_dir]) == 1
    assert one(db, run.id)["status"] == "finished"
    rundir.update_meta(run.run_dir, {"alias": "renamed"})
    indexer.refresh([run.run_dir])
    assert one(db, run.id)["alias"] == "renamed"
    shutil.rmtree(run.run_dir)
    indexer.refresh([run.run_dir])
    assert one(db, run.id) is None


def test_dead_process_is_reported_failed(root: Path, index) -> None:
    import subprocess
    import sys

    script = (
        "import runicorn_lite, sys\n"
        "run = runicorn_lite.init(project='p', root=sys.argv[1])\n"
        "run.log({'x': 1})\n"
        "run.flush()\n"
        "print(run.id)\n"
        "import os; os._exit(0)\n"  # dies without finish
    )
    out = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True, text=True, check=True)
    run_id = out.stdout.strip()
    db, indexer = index
    indexer.scan()
    row = one(db, run_id)
    assert (row["status"], row["exit_reason"]) == ("failed", "process_not_found")
    status = json.loads(next(root.rglob(f"{run_id}/status.json")).read_text())
    assert status["status"] == "running"  # the file is not rewritten by us


def test_ingest_rate_is_reported(root: Path, index) -> None:
    _, indexer = index
    for _i in range(3):
        runicorn_lite.init(project="p", root=root).finish()
    state = indexer.scan()
    assert (state.runs_seen, state.runs_indexed, state.runs_in_index, state.scans_completed) == (3, 3, 3, 1)
    assert state.last_scan_finished_at is not None and state.last_scan_finished_at <= time.time()


def test_an_api_write_during_a_scan_is_not_overwritten_by_the_scan(root: Path, index, monkeypatch) -> None:
    """A run refreshed (by an API write) after the scan read it keeps its newer state."""
    db, indexer = index
    runs = _finished_runs(root, 4)
    target = runs[2]
    real_write = indexer._write
    done = []

    def write_after_a_delete(batch):
        # between the scan's read of the run and its write: the API deletes it
        if not done and any(item.info.id == target.id for item in batch):
            done.append(True)
            rundir.mark_deleted(target.run_dir, "finished", "meanwhile", 42.0)
            indexer.refresh([target.run_dir])
        return real_write(batch)

    monkeypatch.setattr(indexer, "_write", write_after_a_delete)
    indexer.scan()
    assert done
    assert one(db, target.id)["deleted_at"] == 42.0
    assert rows(db, "SELECT count(*) FROM experiments")[0][0] == 4


def test_reads_have_a_time_budget(index) -> None:
    from runicorn_lite.db import QueryTimeout

    db, _ = index
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    with pytest.raises(QueryTimeout):
        db.read(lambda conn: conn.execute(slow).fetchone(), budget_s=0.05)
    assert db.read(lambda conn: conn.execute("SELECT 1").fetchone()) == (1,)  # the reader still works


def test_values_sqlite_refuses_skip_one_run_not_the_batch(root: Path, index) -> None:
    db, indexer = index
    good = [runicorn_lite.init(project="p", name=f"g{i}", root=root) for i in range(2)]
    for run in good:
        run.finish()
    bad_dir = root / "runs" / "p" / "bad" / "20250101_000000_badbad"
    bad_dir.mkdir(parents=True)
    (bad_dir / "meta.json").write_text('{"alias": "\\ud800 lone surrogate", "path": "p/bad"}')
    huge_dir = root / "runs" / "p" / "huge" / "20250101_000000_a0a0a0"
    huge_dir.mkdir(parents=True)
    (huge_dir / "meta.json").write_text(f'{{"pid": {2**70}, "hostname": "{rundir.HOSTNAME}", "path": "p/huge"}}')
    (huge_dir / "summary.json").write_text(f'{{"best_metric_step": {2**70}, "best_metric_value": 1.0}}')
    state = indexer.scan()
    ids = {r[0] for r in rows(db, "SELECT id FROM experiments")}
    assert ids == {good[0].id, good[1].id, "20250101_000000_a0a0a0"}  # out-of-range ints are dropped
    assert one(db, "20250101_000000_a0a0a0")["pid"] is None
    assert state.runs_in_index == 3
    assert indexer.scan().runs_indexed == 0  # the skipped run is not re-read until it changes
    (bad_dir / "meta.json").write_text('{"alias": "fixed", "path": "p/bad"}')
    indexer.scan()
    assert one(db, "20250101_000000_badbad")["alias"] == "fixed"


def test_one_id_in_two_directories_indexes_one_copy_stably(root: Path, index) -> None:
    db, indexer = index
    run = runicorn_lite.init(project="p", name="n", root=root)
    run.log({"x": 1})
    run.finish()
    recycled = root / "runs" / ".recycle" / run.id
    shutil.copytree(run.run_dir, recycled)
    for _ in range(3):
        indexer.scan()
        assert one(db, run.id)["run_dir"] == f"runs/p/n/{run.id}"  # the live copy wins
    assert indexer.scan().runs_indexed == 0  # and nobody is re-read
    shutil.rmtree(run.run_dir)
    indexer.scan()
    assert one(db, run.id)["run_dir"] == f"runs/.recycle/{run.id}"
    assert one(db, run.id)["deleted_at"] is not None


def test_kept_counts_follow_every_change_of_the_rows(root: Path, index) -> None:
    """exp_counts (kept by triggers) always equals counting the rows: through new runs, a
    finish, a soft delete and its restore, a project renamed on disk, a run removed, and an
    index migrated from before the counts existed."""
    from runicorn_lite.queries.experiments import ExperimentFilter, kept_count

    db, indexer = index

    def check() -> None:
        kept = rows(db, "SELECT live, project, status, n FROM exp_counts WHERE n != 0 ORDER BY 1, 2, 3")
        counted = rows(db, "SELECT deleted_at IS NULL, project, status, count(*) FROM experiments"
                           " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
        assert kept == counted
        for f in (ExperimentFilter(), ExperimentFilter(include_deleted=True), ExperimentFilter(project="a"),
                  ExperimentFilter(statuses=("running", "finished")),
                  ExperimentFilter(project="b", statuses=("failed",), include_deleted=True)):
            where = [] if f.include_deleted else ["deleted_at IS NULL"]
            args: list = []
            if f.project is not None:
                where.append("project = ?")
                args.append(f.project)
            if f.statuses:
                where.append(f"status IN ({','.join('?' * len(f.statuses))})")
                args.extend(f.statuses)
            sql = "SELECT count(*) FROM experiments WHERE " + (" AND ".join(where) or "1")
            assert db.read(lambda c, f=f: kept_count(c, f)) == rows(db, sql, tuple(args))[0][0]

    runs = [runicorn_lite.init(project="ab"[i % 2], name="n", root=root) for i in range(6)]
    indexer.scan()
    check()
    for i, run in enumerate(runs[:4]):
        run.finish("failed" if i % 2 else "finished")
    indexer.scan()
    check()
    rundir.mark_deleted(runs[0].run_dir, "finished", "cleanup", 1.0)
    rundir.mark_deleted(runs[5].run_dir, "running", "cleanup", 1.0)
    indexer.scan()
    check()
    (runs[0].run_dir / rundir.DELETED).unlink()  # restored
    shutil.rmtree(runs[3].run_dir)
    indexer.scan()
    check()
    assert rows(db, "SELECT sum(n) FROM exp_counts")[0][0] == 5
    # an index made before 0011: its counts are filled from the rows when it migrates

    def downgrade() -> None:  # on the store's writer, the only thread that writes the index
        with db.write() as conn:
            for name in ("exp_counts_insert", "exp_counts_delete", "exp_counts_update"):
                conn.execute(f"DROP TRIGGER {name}")
            conn.execute("DROP TABLE exp_counts")
            conn.execute("DELETE FROM _migrations WHERE name = '0011_live_counts'")

    indexer.store.run(downgrade)
    db.close()
    db, indexer = open_index(root)
    try:
        check()
    finally:
        db.close()


def test_the_indexer_knows_a_run_id_by_its_directory(root: Path, index) -> None:
    """The indexer keeps a run's id only when it is not its directory's name (memory at a million
    runs; the walk names runs by their directories, rundir/walk.py): ids are right after a
    restart too, and runs leave the index under them."""
    from runicorn_lite.ingest.known import Known

    db, indexer = index
    runs = [runicorn_lite.init(project="p", name="n", root=root) for _ in range(2)]
    for run in runs:
        run.finish()
    indexer.scan()
    known = indexer._known.get(f"runs/p/n/{runs[0].id}")
    assert known is not None
    assert known.own_id is None and known.run_id(f"runs/p/n/{runs[0].id}") == runs[0].id
    other = Known.of("runs/p/n/somewhere", 1, runs[0].id, "sig", None, 0, None, "finished", None, None)
    assert other.run_id("runs/p/n/somewhere") == runs[0].id  # kept when the name differs
    second_db, restarted = open_index(root)  # what it knows, read back from the index
    assert restarted.scan().runs_indexed == 0
    removed: list = []
    restarted.subscribe(removed.extend)
    for run in runs:
        shutil.rmtree(run.run_dir)
    restarted.scan()
    assert sorted((c.kind, c.id) for c in removed) == sorted(("removed", run.id) for run in runs)
    assert all(one(db, run.id) is None for run in runs)
    restarted.store.close()
    second_db.close()


def test_a_scan_writes_runs_as_its_walk_finds_them(root: Path, index, monkeypatch) -> None:
    """A cold scan holds one batch of read runs, not a plan for every run of the tree first."""
    from runicorn_lite.ingest import indexer as indexer_module

    monkeypatch.setattr(indexer_module, "BATCH_RUNS", 4)
    _db, indexer = index
    for i in range(10):
        runicorn_lite.init(project="p", name=f"n{i}", root=root).finish()
    calls: list[tuple[int, int]] = []
    state = indexer.scan(progress=lambda seen, indexed: calls.append((seen, indexed)))
    assert calls[0] == (4, 4)  # four found, four written, six not yet found
    assert calls[-1] == (10, 10) and state.runs_in_index == 10
    assert state.last_walk_s is not None and state.last_walk_s < state.last_scan_duration_s


def test_a_scan_removes_only_runs_its_walk_did_not_find(root: Path, index, monkeypatch) -> None:
    """What a scan removes: the known runs its walk did not find. A run refreshed or created
    while the scan runs (an API write, a file event) stays, whether the walk had passed it or
    not; a run deleted from disk goes. What is known read back from the index mid-scan (after a
    failed write) counts as found: nothing is lost, and the next scan removes what went."""
    from runicorn_lite.ingest import indexer as indexer_module

    monkeypatch.setattr(indexer_module, "BATCH_RUNS", 2)
    db, indexer = index
    runs = _finished_runs(root, 6)
    indexer.scan()
    real_write = indexer._write

    def scan_with(gone, meanwhile) -> set[str]:
        shutil.rmtree(gone.run_dir)
        for run in runs:  # every run read again by the scan, in batches of 2
            if run.run_dir.exists():
                (run.run_dir / "meta.json").touch()
        done: list[bool] = []

        def write(batch):
            if not done:
                done.append(True)
                meanwhile()
            return real_write(batch)

        monkeypatch.setattr(indexer, "_write", write)
        indexer.scan()
        monkeypatch.setattr(indexer, "_write", real_write)
        assert done
        return {r[0] for r in rows(db, "SELECT id FROM experiments")}

    late = []

    def refreshes() -> None:
        new = runicorn_lite.init(project="q", name="late", root=root)
        new.finish()
        late.append(new)
        indexer.refresh([new.run_dir, runs[0].run_dir])  # a new run, and one the walk found

    ids = scan_with(runs[1], refreshes)
    assert ids == {run.id for run in runs if run is not runs[1]} | {late[0].id}
    ids = scan_with(runs[2], indexer._load_known)
    assert ids == {run.id for run in runs if run is not runs[1]} | {late[0].id}  # nothing lost
    indexer.scan()
    assert {r[0] for r in rows(db, "SELECT id FROM experiments")} == ids - {runs[2].id}


def test_a_meta_edit_of_a_finished_run_leaves_its_points_and_summaries(root: Path, index) -> None:
    """An edit of a finished run's meta.json (a soft delete, tags, a description) re-reads its
    small files only: its events are not read again and its summaries not rewritten, so the
    summaries' version stands and every kept filter set stays good (queries/filter_sets.py)."""
    db, indexer = index
    run = runicorn_lite.init(project="p", name="n", root=root, config={"lr": 0.1})
    for step in range(1, 11):
        run.log({"x": float(step)}, step=step)
    run.finish()
    indexer.scan()

    def versions() -> dict:
        return dict(rows(db, "SELECT name, v FROM table_versions WHERE name IN ('exp_params', 'metric_summaries')"))

    before = versions()
    meta = run.run_dir / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "description": "edited"}))
    assert indexer.scan().runs_indexed == 1
    assert versions() == before
    assert one(db, run.id)["description"] == "edited"


def test_what_is_known_is_read_at_start_beyond_a_requests_budget(root: Path, index, monkeypatch) -> None:
    """At a start the indexer reads what it knows of every run: at a million runs from a cold
    file cache that took longer than a request's 10 s budget, and the server could not start."""
    from runicorn_lite.db import READ_BUDGET_S
    from runicorn_lite.ingest.known import LOAD_BUDGET_S

    _db, indexer = index
    for _ in range(3):
        runicorn_lite.init(project="p", name="n", root=root).finish()
    indexer.scan()
    budgets: list[tuple[str, float]] = []
    real = Database.read

    def recorded(self, fn, budget_s=READ_BUDGET_S):  # the real read, its budget noted
        budgets.append((getattr(fn, "__name__", ""), budget_s))
        return real(self, fn, budget_s)

    monkeypatch.setattr(Database, "read", recorded)
    second_db, restarted = open_index(root)
    try:
        assert ("load_known", LOAD_BUDGET_S) in budgets and LOAD_BUDGET_S >= 60 * READ_BUDGET_S
        assert restarted.scan().runs_indexed == 0  # it knows the three runs
    finally:
        second_db.close()


def test_known_runs_keep_their_running_runs_and_indexed_count() -> None:
    """The running runs and the indexed count that KnownRuns keeps as runs change equal what a
    walk of every run gives (the watcher asks for them every poll)."""
    from runicorn_lite.ingest.known import Known, KnownRuns

    def known(pk, status):
        return Known.of(f"r/{pk}", pk, f"id{pk}", "sig", None, 0, None, status, 1, "h")

    runs = KnownRuns()

    def check() -> None:
        everything = runs.items()
        assert sorted(rel for rel, _ in runs.running()) == sorted(
            rel for rel, k in everything if k.status == "running")
        assert runs.indexed_count() == sum(1 for _, k in everything if k.indexed)

    runs.replace({"a": known(1, "running"), "b": known(2, "finished"), "c": Known.seen("c", "idc")})
    check()
    runs.keep("a", known(1, "finished"))  # a run ends
    runs.keep("d", known(4, "running"))
    runs.keep("c", known(3, "running"))  # a run only seen is indexed
    check()
    runs.pop("d")
    runs.pop("nothing")
    runs.update(["b", "c"], {"c": known(3, "failed")})  # b indexed no more, c read again
    check()
    assert [rel for rel, _ in runs.running()] == [] and runs.indexed_count() == 2


def test_known_keeps_its_numbers_packed_and_none_as_none() -> None:
    """A Known's five numbers live in one bytes object: every value, None included, reads back
    as it was given; forgetting the files clears the signature alone."""
    from runicorn_lite.ingest.known import Known, signature_key

    full = Known.of("a/b/r1", 7, "r1", "1:2|-", 2**40, 123_456, -3, "running", 42, "host")
    assert (full.pk, full.events_ino, full.events_offset, full.events_last_step) == (7, 2**40, 123_456, -3)
    assert full.sig == signature_key("1:2|-") and full.same_files("1:2|-") and not full.same_files("1:3|-")
    assert (full.own_id, full.status, full.pid, full.hostname) == (None, "running", 42, "host")
    seen = Known.seen("a/b/r2", "other-id")
    numbers = (seen.pk, seen.sig, seen.events_ino, seen.events_offset, seen.events_last_step)
    assert numbers == (None, None, None, 0, None)
    assert seen.own_id == "other-id" and seen.run_id("a/b/r2") == "other-id" and full.run_id("a/b/r1") == "r1"
    full.forget_files()
    assert full.sig is None and not full.same_files("1:2|-")
    assert (full.pk, full.events_ino, full.events_offset, full.events_last_step) == (7, 2**40, 123_456, -3)
    assert full == Known(7, None, None, 2**40, 123_456, -3, "running", 42, "host") != seen
