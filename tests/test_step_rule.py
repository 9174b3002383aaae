"""A step logged twice: the last value logged for a step is its value, everywhere — the curve,
the metric summary (``metrics.<m>.max``) and the run's best (``best_metric_value``), for a
finished run (summary.json, written by the SDK) and for a live one (the index's running best,
read incrementally)."""

from __future__ import annotations

import json
from pathlib import Path

from support import open_index

import runicorn_lite
from runicorn_lite.queries.detail import experiment_detail
from runicorn_lite.queries.metrics import load_series


def _answers(root: Path, exp_id: str) -> tuple[float | None, float | None, dict[int, float]]:
    """(best_metric_value, metrics.acc.max, the acc curve) as the index answers them."""
    db, indexer = open_index(root)
    try:
        indexer.scan()

        def read(conn):  # type: ignore[no-untyped-def]
            detail = experiment_detail(conn, root, exp_id)
            assert detail is not None
            pk = conn.execute("SELECT pk FROM experiments WHERE id = ?", (exp_id,)).fetchone()[0]
            steps, values = load_series(conn, pk, ["acc"])["acc"]
            curve = dict(zip(steps, values, strict=True))
            return detail["experiment"]["best_metric_value"], detail["metrics"]["acc"]["max"], curve

        return db.read(read)  # type: ignore[no-any-return]
    finally:
        db.close()


def test_finished_run_best_follows_the_last_write_of_a_step(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with runicorn_lite.init(project="p", name="n", root=root) as run:
        run.set_primary_metric("acc", mode="max")
        run.log({"acc": 0.5}, step=4)
        run.log({"acc": 0.95}, step=5)
        run.log({"acc": 0.2}, step=5)  # the same step again: 0.95 is gone
        run.log({"acc": 0.6}, step=6)
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert (summary["best_metric_value"], summary["best_metric_step"]) == (0.6, 6)
    best, acc_max, curve = _answers(root, run.id)
    assert curve == {4: 0.5, 5: 0.2, 6: 0.6}
    assert best == acc_max == 0.6


def test_live_run_best_follows_the_last_write_across_incremental_reads(tmp_path: Path) -> None:
    root = tmp_path / "data"
    run = runicorn_lite.init(project="p", name="live", root=root)
    run.set_primary_metric("acc", mode="max")
    run.log({"acc": 0.5}, step=4)
    run.log({"acc": 0.95}, step=5)
    run.flush()
    db, indexer = open_index(root)
    try:
        indexer.scan()
        assert db.read(lambda c: c.execute("SELECT best_metric_value FROM experiments").fetchone()[0]) == 0.95
        run.log({"acc": 0.2}, step=5)  # read from the offset where the last read stopped
        run.flush()
        indexer.scan()
        best, acc_max = db.read(lambda c: c.execute(
            "SELECT e.best_metric_value, s.max FROM experiments e JOIN metric_summaries s ON s.exp_pk = e.pk"
        ).fetchone())
        assert best == acc_max == 0.5
    finally:
        db.close()
        run.finish()
