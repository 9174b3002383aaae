"""A cold scan of a big tree sets the big tables' secondary indexes aside and makes them once at
its end (db/bulk.py), on both backends: the same indexes after it, the same answers during and
after it, and indexes set aside by a process that died mid-scan made by the next scan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import backends
import pytest
from starlette.testclient import TestClient

import runicorn_lite
from runicorn_lite.db import bulk
from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.set_changes import read_versions
from runicorn_lite.ingest import coldread
from runicorn_lite.ingest import indexer as indexer_module

QUERIES = (
    {"order_by": "best_metric_value", "order_desc": "true", "per_page": 5},
    {"order_by": "params.lr", "order_desc": "false", "per_page": 5},
    {"filter": "params.lr > 0.3 and metrics.acc.max > 0.2", "order_by": "created_at"},
    {"search": "n1"},
    {"status": "finished", "project": "p1"},
)


def _indexes(app: Any) -> set[str]:
    def names(conn: Any) -> set[str]:
        if on_postgres():
            sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
        # (the table that keeps what is set aside has a key index of its own)
        return {r[0] for r in conn.execute(sql).fetchall() if "deferred_indexes" not in r[0]}

    return app.state.ctx.index.read(names)  # type: ignore[no-any-return]


def _answers(client: TestClient) -> list[Any]:
    out = []
    for params in QUERIES:
        res = client.get("/api/v2/experiments", params=params)
        assert res.status_code == 200, res.text
        body = res.json()
        out.append((body["total"], [e["id"] for e in body["experiments"]]))
    return out


def _runs(root: Path, n: int) -> None:
    for i in range(n):
        run = runicorn_lite.init(project=f"p{i % 2}", name=f"n{i}", root=root, config={"lr": round(0.1 * (i % 7), 2)})
        run.log({"acc": (i * 37 % 11) / 10}, step=1)
        run.finish()


def test_a_cold_scan_makes_the_same_indexes_and_answers(make_app: Any, root: Path, monkeypatch: Any) -> None:
    _runs(root, 14)
    plain = make_app()
    plain.state.ctx.indexer.scan()  # 14 runs: far under BULK_AFTER_RUNS, nothing set aside
    with TestClient(plain) as client:
        expected = _answers(client)
        expected_indexes = _indexes(plain)
    assert expected_indexes >= {"idx_sort_live_created_at", "idx_msum_max", "idx_experiments_project"}

    monkeypatch.setattr(bulk, "BULK_AFTER_RUNS", 4)
    monkeypatch.setattr(indexer_module, "BATCH_RUNS", 3)
    elsewhere = root.parent / "cold-index"
    elsewhere.mkdir()
    cold = make_app(index_dir=elsewhere)  # an empty index of the same tree
    dropped: list[set[str]] = []
    real_set_aside = bulk.set_aside

    def watched(db: Any) -> int:
        count = real_set_aside(db)
        dropped.append(_indexes(cold))
        return count

    monkeypatch.setattr(bulk, "set_aside", watched)
    with TestClient(cold) as client:
        cold.state.ctx.indexer.scan()
        assert dropped and "idx_sort_live_created_at" not in dropped[0] and "idx_msum_max" not in dropped[0]
        assert _indexes(cold) == expected_indexes
        pending = cold.state.ctx.index.read(lambda c: c.execute("SELECT count(*) FROM deferred_indexes").fetchone())
        assert pending[0] == 0
        assert _answers(client) == expected


def test_indexes_left_aside_by_a_dead_scan_are_made_by_the_next(make_app: Any, root: Path) -> None:
    _runs(root, 6)
    app = make_app()
    app.state.ctx.indexer.scan()
    with TestClient(app) as client:
        expected = _answers(client)
        all_indexes = _indexes(app)
        # as a scan killed mid-way leaves them (written on the store's writer thread, as all writes)
        assert app.state.ctx.store.run(lambda: bulk.set_aside(app.state.ctx.index)) >= 20
        assert "idx_sort_live_created_at" not in _indexes(app)
        assert _answers(client) == expected  # slower without them, the same answers
        app.state.ctx.indexer.scan()  # the next scan (the index is not empty: not a cold one)
        assert _indexes(app) == all_indexes
        assert _answers(client) == expected


@pytest.mark.parametrize("runs", [3])
def test_a_small_cold_scan_keeps_its_indexes(make_app: Any, root: Path, runs: int, monkeypatch: Any) -> None:
    calls: list[int] = []
    monkeypatch.setattr(bulk, "set_aside", lambda db: calls.append(1) or 0)
    _runs(root, runs)
    app = make_app()
    app.state.ctx.indexer.scan()
    assert calls == []


def _table_contents(app: Any) -> list[Any]:
    """What the index holds of the runs, less what depends on the order they were written in."""

    def read(conn: Any) -> list[Any]:
        return [
            conn.execute("SELECT id, project, name, status, created_at, ended_at, best_metric_value, n_points,"
                         " files_sig, events_offset, tags FROM experiments ORDER BY id").fetchall(),
            conn.execute(f"SELECT exp_id, key, {'vn, vs' if on_postgres() else 'v'} FROM exp_params"
                         " ORDER BY exp_id, key").fetchall(),
            conn.execute("SELECT e.id, s.metric, s.count, s.last, s.max FROM metric_summaries s"
                         " JOIN experiments e ON e.pk = s.exp_pk ORDER BY e.id, s.metric").fetchall(),
            conn.execute("SELECT live, project, status, n_dur, points FROM exp_stats ORDER BY 1, 2, 3").fetchall(),
        ]

    return app.state.ctx.index.read(read)  # type: ignore[no-any-return]


def test_a_big_cold_scan_read_by_a_second_process_indexes_the_same(
    make_app: Any, root: Path, monkeypatch: Any, caplog: Any
) -> None:
    """Past HANDOVER_RUNS, a cold scan has child processes walk and read the rest, each its
    share: every run indexed once, as a scan in one process indexes it, and what a child logs
    logged here."""
    _runs(root, 12)
    broken = runicorn_lite.init(project="p9", name="torn", root=root)
    broken.log({"acc": 0.5}, step=1)
    broken.finish()
    with (broken.run_dir / "events.jsonl").open("ab") as f:
        f.write(b'{"not json\n')
    one = make_app()
    one.state.ctx.indexer.scan()  # 13 runs: all read in this process
    started: list[coldread.ChildReader] = []

    class Recorded(coldread.ChildReader):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            started.append(self)

    monkeypatch.setattr(indexer_module, "ChildReader", Recorded)
    monkeypatch.setattr(indexer_module, "HANDOVER_RUNS", 4)
    monkeypatch.setattr(indexer_module, "BATCH_RUNS", 3)
    elsewhere = root.parent / "cold-index"
    elsewhere.mkdir()
    two = make_app(index_dir=elsewhere)
    state = two.state.ctx.indexer.scan()
    assert len(started) == 1 and started[0].returncodes == [0] * started[0].readers  # they ran, and ended
    assert state.runs_seen == 13 and state.runs_indexed == 13
    assert _table_contents(two) == _table_contents(one)
    assert any("unreadable line" in r.getMessage() and r.name == "runicorn_lite.ingest" for r in caplog.records)
    assert two.state.ctx.indexer.scan().runs_indexed == 0  # nothing left to read


def test_a_reading_process_that_dies_leaves_the_rest_to_the_next_scan(
    make_app: Any, root: Path, monkeypatch: Any, caplog: Any
) -> None:
    _runs(root, 12)

    class Killed(coldread.ChildReader):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            for process in self._processes:
                process.kill()  # as the OOM killer would, before it has read a run
                process.wait()

    monkeypatch.setattr(indexer_module, "ChildReader", Killed)
    monkeypatch.setattr(indexer_module, "HANDOVER_RUNS", 2)
    app = make_app()
    assert app.state.ctx.indexer.scan().runs_indexed == 2  # what this process read before the handover
    assert any("ended before it was done" in r.getMessage() for r in caplog.records)
    assert app.state.ctx.indexer.scan().runs_indexed == 10  # the rest, in this process
    with TestClient(app) as client:
        assert client.get("/api/v2/experiments", params={"per_page": 100}).json()["total"] == 12


def test_indexes_set_aside_are_made_past_a_requests_statement_timeout(
    make_app: Any, root: Path, monkeypatch: Any
) -> None:
    """On PostgreSQL the writer's connection had a request's statement timeout; making an index
    over a million runs takes minutes, and the timeout had cancelled it at every scan, so the
    index stayed without its secondary indexes (lists of a million runs took 0.4-6 s). Only the
    readers have a request's budget now."""
    from runicorn_lite.db import postgres

    if backends.current() != "postgresql":
        pytest.skip("PostgreSQL's statement timeout")
    monkeypatch.setattr(postgres, "READ_BUDGET_S", 0.05)  # the connections' budget, as 10 s is
    _runs(root, 6)
    app = make_app()
    app.state.ctx.indexer.scan()
    db = app.state.ctx.index

    # (short: its transaction holds back VACUUM for the other tests in this database)
    def slow_index() -> None:  # an index whose making takes ~0.12 s, set aside as a cold scan does
        bulk.set_aside(db)
        with db.write() as conn:
            conn.execute("CREATE FUNCTION slow_key(x bigint) RETURNS bigint IMMUTABLE LANGUAGE plpgsql"
                         " AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN x; END $$")
            conn.execute("INSERT INTO deferred_indexes (name, sql) VALUES"
                         " ('idx_slow_key', 'CREATE INDEX idx_slow_key ON experiments (slow_key(pk))')")

    app.state.ctx.store.run(slow_index)
    app.state.ctx.indexer.scan()  # not cold: makes what was set aside first
    assert "idx_slow_key" in _indexes(app) and "idx_sort_live_created_at" in _indexes(app)


def test_analyze_rewrites_the_few_rows_every_write_updates(root: Path, make_app) -> None:  # type: ignore[no-untyped-def]
    """table_versions and the kept counts hold a few rows that every run written updates: with
    autovacuum off, a cold index of a million runs left table_versions 156 MB of dead rows and
    each read of its four rows 30-190 ms. analyze() (after a scan that grew the index) rewrites
    them, and the versions are read by their key either way."""
    if backends.current() != "postgresql":
        pytest.skip("PostgreSQL's dead rows and VACUUM FULL")
    _runs(root, 3)
    app = make_app()
    app.state.ctx.indexer.scan()
    db = app.state.ctx.index

    def churn() -> None:
        with db.write() as conn:
            for _ in range(3000):
                conn.execute("UPDATE table_versions SET v = v WHERE name = 'epoch'")

    def size() -> int:
        return int(db.read(lambda c: c.execute("SELECT pg_relation_size('table_versions')").fetchone()[0]))

    app.state.ctx.store.run(churn)
    assert size() > 64 * 1024  # thousands of dead row versions
    app.state.ctx.store.run(db.analyze)
    assert size() <= 8192  # one page: the live rows alone
    assert set(db.read(read_versions)) == {"epoch", "exp_params", "metric_summaries", "all_runs"}
