"""What an interrupted write or an odd document leaves in a run directory, as the ingester
meets it: a temp file of a write killed before its rename is removed once it is old (a young
one may be a write in progress), and a config nested past the JSON parser's depth is named as
such in the log, not as text that is not JSON."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import pytest
from support import open_index, rows

import runicorn_lite
from runicorn_lite import rundir


def test_a_temp_file_left_by_a_killed_delete_is_removed_once_old(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with runicorn_lite.init(project="p", name="n", root=root) as run:
        run.log({"loss": 1.0}, step=1)
    old = run.run_dir / "..deleted.k3x9_a0q.tmp"  # as mkstemp names the marker's temp file
    old.write_text('{"deleted_at": 1')  # cut short by the kill
    past = time.time() - 3600
    os.utime(old, (past, past))
    young = run.run_dir / ".meta.json.ab12cd34.tmp"  # a write that may still be under way
    young.write_text("{}")
    mine = run.run_dir / "notes.tmp"  # not a name our writers use: never touched
    mine.write_text("x")
    os.utime(mine, (past, past))
    db, indexer = open_index(root)
    try:
        indexer.scan()
        assert not old.exists()
        assert young.exists() and mine.exists()
        assert rows(db, "SELECT id, deleted_at FROM experiments") == [(run.id, None)]
        os.utime(young, (past, past))
        indexer.scan()  # a rescan with nothing else changed still sweeps
        assert not young.exists() and mine.exists()
    finally:
        db.close()


@pytest.mark.parametrize("depth", [10_000, 1_100])
def test_a_config_nested_too_deep_is_reported_as_such(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, depth: int
) -> None:
    root = tmp_path / "data"
    with runicorn_lite.init(project="p", name="deep", root=root, config={"lr": 0.1}) as run:
        run.log({"loss": 1.0}, step=1)
    nested = '{"a":' * depth + "1" + "}" * depth
    (run.run_dir / rundir.ASSETS).write_text('{"config": {"args": ' + nested + "}}")
    db, indexer = open_index(root)
    # Another library in the process (a test framework, a training one) may have raised
    # Python's recursion limit: the verdict must not depend on it.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        with caplog.at_level(logging.WARNING, logger="runicorn_lite.ingest"):
            indexer.scan()
        messages = " ".join(r.getMessage() for r in caplog.records)
        assert f"assets.json is nested deeper than {rundir.MAX_JSON_DEPTH} levels" in messages
        assert "not valid UTF-8 JSON" not in messages
        # The rest of the run is indexed.
        assert rows(db, "SELECT id, n_points FROM experiments") == [(run.id, 1)]
    finally:
        sys.setrecursionlimit(limit)
        db.close()
