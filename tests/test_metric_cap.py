"""A run that logs more metric names than MAX_METRICS: the index keeps the first ones, says so
once in the log, and every answer about the run stays small."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support import open_index, rows

import runicorn_lite
from runicorn_lite.ingest.metric_cap import MAX_METRICS

NAMES = 5000  # the run had 200,000: the same path, a smaller file


def test_metric_names_past_the_cap_are_left_out_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    run = runicorn_lite.init(project="p", name="wide", root=root)
    run.log({f"m{i:05d}": float(i) for i in range(NAMES)}, step=1)  # one huge events line
    run.flush()
    db, indexer = open_index(root)
    try:
        with caplog.at_level(logging.WARNING, logger="runicorn_lite.ingest"):
            indexer.scan()
            names = [r[0] for r in rows(db, "SELECT metric FROM metric_summaries ORDER BY metric")]
            assert names == [f"m{i:05d}" for i in range(MAX_METRICS)]  # the first logged
            # Appended reads: known names get their points, new names past the cap do not.
            run.log({"m00000": 1.5, "brand_new": 2.0}, step=2)
            run.flush()
            indexer.scan()
            run.log({f"m{i:05d}": 0.0 for i in range(NAMES)}, step=3)
            run.finish()
            indexer.scan()
        assert rows(db, "SELECT count(*) FROM metric_summaries") == [(MAX_METRICS,)]
        assert rows(db, "SELECT count, last FROM metric_summaries WHERE metric = 'm00000'") == [(3, 0.0)]
        assert rows(db, "SELECT count(*) FROM metric_summaries WHERE metric = 'brand_new'") == [(0,)]
        warnings = [r.getMessage() for r in caplog.records if "metric names" in r.getMessage()]
        assert len(warnings) == 1 and f"more than {MAX_METRICS} metric names" in warnings[0]
        assert f"{NAMES - MAX_METRICS} dropped" in warnings[0]
    finally:
        db.close()
