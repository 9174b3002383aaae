"""The indexer's batch write, on both backends: a new run's row is written whole (its params' and
metrics' JSON in the insert, as the index gives them back when a run is written again), the
batch's rows are known in advance (a directory that changed its run id, copies of one id in one
batch), and on PostgreSQL the live runs in any sort order are an index-only scan after a scan."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import backends
import orjson
import pytest

import runicorn_lite
from runicorn_lite.db.schema import LIST_AGGREGATES, SORT_COLUMNS


def _rows(app: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return app.state.ctx.index.read(lambda conn: conn.execute(sql, params).fetchall())  # type: ignore[no-any-return]


def _documents(app: Any) -> dict[str, tuple[Any, Any]]:
    return {r[0]: (bytes(r[1]) if r[1] is not None else None, bytes(r[2]) if r[2] is not None else None)
            for r in _rows(app, "SELECT id, params_json, metrics_json FROM experiments")}


def _metrics_from_summaries(app: Any, exp_id: str) -> bytes | None:
    """The list JSON as the index's summary rows give it (what a rewrite of a run reads back)."""
    columns = ", ".join(LIST_AGGREGATES)
    found = _rows(app, f"SELECT s.metric, {columns} FROM metric_summaries s JOIN experiments e ON e.pk = s.exp_pk"
                       " WHERE e.id = ? ORDER BY s.metric", (exp_id,))
    if not found:
        return None
    return orjson.dumps({r[0]: dict(zip(LIST_AGGREGATES, r[1:], strict=True)) for r in found})


def _finished_runs(root: Path, names: list[str]) -> list[str]:
    """Runs of project p, one point each, finished: their ids."""
    ids = []
    for n, name in enumerate(names):
        run = runicorn_lite.init(project="p", name=name, root=root)
        run.log({"x": n}, step=1)
        run.finish()
        ids.append(run.id)
    return ids


def _odd_runs(root: Path) -> tuple[list[str], Any]:
    """Runs whose values a JSON round trip could change: ints, -0.0, NaN and infinities, a
    series with no finite value, names that sort differently by bytes and by letters; the
    last one still running (returned, to log more)."""
    ids = []
    values: list[dict[str, Any]] = [
        {"acc": 1, "loss": -0.0, "Zeta": 3, "ä": 2.5},
        {"acc": math.nan, "loss": math.inf, "b": -math.inf, "a_b": 10**15},
        {"acc": 0.1 + 0.2, "loss": 1e-300, "x": -7},
    ]
    run = None
    for n, logged in enumerate(values):
        run = runicorn_lite.init(project="odd", name=f"r{n}", root=root, config={"lr": 0.1 * (n + 1), "n": n})
        for step in (1, 2):
            run.log(logged, step=step)
        run.log({"only_nan": math.nan}, step=3)
        ids.append(run.id)
        if n < len(values) - 1:
            run.finish()
        else:
            run.flush()
    empty = runicorn_lite.init(project="odd", name="empty", root=root)
    empty.finish()
    ids.append(empty.id)
    return ids, run


def test_a_new_rows_json_is_what_the_index_gives_back(make_app: Any, root: Path) -> None:
    ids, running = _odd_runs(root)
    app = make_app()
    app.state.ctx.indexer.scan()
    first = _documents(app)
    assert set(first) == set(ids)
    for exp_id in ids:
        assert first[exp_id][1] == _metrics_from_summaries(app, exp_id), exp_id
    assert orjson.loads(first[ids[0]][0]) == {"lr": 0.1, "n": 0}
    assert first[ids[3]] == (None, None)  # no params, no metrics
    # Points appended to a known run: its JSON is then read back from the summary rows.
    running.log({"acc": -0.0, "new": 5}, step=4)
    running.finish()
    app.state.ctx.indexer.scan()
    after = _documents(app)
    assert after[running.id][1] == _metrics_from_summaries(app, running.id) != first[running.id][1]
    assert orjson.loads(after[running.id][1])["new"] == {"last": 5.0, "min": 5.0, "max": 5.0}
    assert {k: v for k, v in after.items() if k != running.id} == {k: v for k, v in first.items() if k != running.id}


def test_a_run_moved_in_the_same_batch_as_new_runs_keeps_its_row(make_app: Any, root: Path) -> None:
    app = make_app()
    moved = runicorn_lite.init(project="p", name="n", root=root)
    moved.log({"x": 1}, step=1)
    moved.finish()
    app.state.ctx.indexer.scan()
    [(pk_before,)] = _rows(app, "SELECT pk FROM experiments")
    recycled = root / "runs" / ".recycle" / moved.id
    recycled.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(moved.run_dir), recycled)
    new = _finished_runs(root, [f"new{n}" for n in range(5)])
    app.state.ctx.indexer.scan()
    found = {r[0]: r[1:] for r in _rows(app, "SELECT id, pk, run_dir FROM experiments")}
    assert set(found) == {moved.id, *new}
    assert found[moved.id] == (pk_before, f"runs/.recycle/{moved.id}")  # the same row, re-pointed
    assert len({v[0] for v in found.values()}) == 6
    orphans = _rows(app, "SELECT count(*) FROM metric_summaries WHERE exp_pk NOT IN (SELECT pk FROM experiments)")
    assert orphans == [(0,)]
    assert _rows(app, "SELECT count(*) FROM metric_summaries") == [(6,)]


def test_a_run_the_database_refuses_is_skipped_alone_and_written_once_fixed(make_app: Any, root: Path) -> None:
    """A value the store refuses (a lone surrogate) fails the batch, which is written again run
    by run in savepoints (PostgreSQL: not pipelined): the others keep their new rows and pks."""
    good = _finished_runs(root, [f"g{n}" for n in range(3)])
    bad_dir = root / "runs" / "p" / "bad" / "20250101_000000_badbad"
    bad_dir.mkdir(parents=True)
    (bad_dir / "meta.json").write_text('{"alias": "\\ud800 lone surrogate", "path": "p/bad"}')
    app = make_app()
    app.state.ctx.indexer.scan()
    found = {r[0]: r[1] for r in _rows(app, "SELECT id, pk FROM experiments")}
    assert set(found) == set(good)
    assert _rows(app, "SELECT count(*) FROM metric_summaries") == [(3,)]
    (bad_dir / "meta.json").write_text('{"alias": "fixed", "path": "p/bad"}')
    app.state.ctx.indexer.scan()
    after = {r[0]: r[1] for r in _rows(app, "SELECT id, pk FROM experiments")}
    assert set(after) == {*good, "20250101_000000_badbad"}
    assert {k: after[k] for k in good} == found
    assert len(set(after.values())) == 4


def test_sort_indexes_can_answer_alone_after_a_scan(make_app: Any, root: Path) -> None:
    """PostgreSQL: every sort index of the live runs carries the pk (an index-only scan needs no
    row), and a scan that grew the index leaves the visibility map set (VACUUM), without which
    PostgreSQL reads each row anyway."""
    if backends.current() != "postgresql":
        pytest.skip("PostgreSQL's indexes and visibility map (SQLite's indexes hold the rowid, the pk)")
    for n in range(30):
        run = runicorn_lite.init(project=f"p{n % 3}", name=f"n{n}", root=root)
        run.log({"acc": n / 30}, step=1)
        run.finish()
    app = make_app()
    app.state.ctx.indexer.scan()
    definitions = dict(_rows(app, "SELECT indexname, indexdef FROM pg_indexes"
                                  " WHERE tablename = 'experiments' AND schemaname = current_schema()"))
    for column in SORT_COLUMNS:
        assert "INCLUDE (pk)" in definitions[f"idx_sort_live_{column}"], column
    [(pages, visible)] = _rows(app, "SELECT relpages, relallvisible FROM pg_class"
                                    " WHERE oid = 'experiments'::regclass")
    assert pages > 0 and visible == pages
    plan = app.state.ctx.index.read(lambda conn: (
        conn.execute("SET LOCAL enable_seqscan = off"), conn.execute("SET LOCAL enable_sort = off"),
        conn.execute("SET LOCAL enable_incremental_sort = off"),
        "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT pk FROM experiments WHERE deleted_at IS NULL"
            " ORDER BY created_at DESC NULLS LAST, id DESC NULLS LAST").fetchall()))[3])
    assert "Index Only Scan" in plan and "idx_sort_live_created_at" in plan, plan
