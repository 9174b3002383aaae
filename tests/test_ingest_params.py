"""Params, metric summaries, documents and images in the index: from full reads, from appends,
from re-logged steps, live, after damage, and the same again after a rebuild."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest
from support import copy_fixture, open_index, reference_summary, rows

import runicorn_lite
from runicorn_lite import rundir
from runicorn_lite.db import Database
from runicorn_lite.ingest.changes import Change
from runicorn_lite.settings import Settings


@pytest.fixture
def index(root: Path):
    db, indexer = open_index(root)
    yield db, indexer
    db.close()


def write_config(run_dir: Path, args: Any = None, extra: Any = None) -> None:
    """assets.json as the real Runicorn 0.7.x SDK writes it."""
    rundir.atomic_write_json(
        run_dir / rundir.ASSETS,
        {
            "code": {},
            "config": {"args": args or {}, "extra": extra or {}},
            "datasets": [],
            "pretrained": [],
            "outputs": [],
        },
    )


def summaries(db: Database, exp_id: str) -> dict[str, dict[str, Any]]:
    out = {}
    for metric, first, last, lo, hi, count, last_step, points in rows(
        db,
        "SELECT s.metric, first, last, min, max, count, last_step, points FROM metric_summaries s"
        " JOIN experiments e ON e.pk = s.exp_pk WHERE e.id = ? ORDER BY metric",
        (exp_id,),
    ):
        out[metric] = {
            "first": first,
            "last": last,
            "min": lo,
            "max": hi,
            "count": count,
            "last_step": last_step,
            "points": points,
        }
    return out


def with_points(series: dict[int, float]) -> dict[str, Any]:
    """The reference summary and the count of every point (NaN included), as the index keeps."""
    return {**reference_summary(series), "points": len(series)}


def test_params_documents_summaries_and_images_of_a_run(root: Path, index) -> None:
    db, indexer = index
    run = runicorn_lite.init(project="vision", name="resnet", root=root)
    run.log_config(
        {"optim": {"lr": 0.01, "name": "adam"}, "batch_size": 64, "augment": True, "layers": [3, 4, 6], "ckpt": None},
        {"note": "sweep"},
    )
    rundir.atomic_write_json(run.run_dir / rundir.ENVIRONMENT, {"python_version": "3.11.7", "pip_packages": ["a==1"]})
    values = {1: 0.5, 2: math.nan, 3: 0.2, 4: 0.9, 5: math.inf, 6: 0.4}
    for step, value in values.items():
        run.log({"acc": value, "only_nan": math.nan}, step=step)
    (run.run_dir / "media").mkdir()
    with open(run.run_dir / rundir.EVENTS, "a") as fh:
        fh.write(
            json.dumps(
                {
                    "ts": 1.0,
                    "type": "image",
                    "data": {"key": "pred", "path": "media/1_aaaaaa_pred.png", "step": 2, "caption": "first"},
                }
            )
            + "\n"
        )
    run.finish()
    indexer.scan()
    params = dict(rows(db, "SELECT key, v FROM exp_params"))
    assert params == {
        "optim.lr": 0.01,
        "optim.name": "adam",
        "batch_size": 64,
        "augment": 1,
        "layers": "[3,4,6]",
        "extra.note": "sweep",
    }  # null params have no row
    assert rows(db, "SELECT typeof(v) FROM exp_params WHERE key = 'batch_size'") == [("integer",)]
    doc_params = rows(db, "SELECT params_json FROM experiments")[0][0]
    config, env = rows(db, "SELECT config, environment FROM exp_docs")[0]
    assert json.loads(doc_params) == {
        "optim.lr": 0.01,
        "optim.name": "adam",
        "batch_size": 64,
        "augment": True,
        "layers": "[3,4,6]",
        "ckpt": None,
        "extra.note": "sweep",
    }
    assert json.loads(config)["args"]["optim"] == {"lr": 0.01, "name": "adam"}
    assert json.loads(env)["python_version"] == "3.11.7"
    got = summaries(db, run.id)
    assert got["acc"] == with_points(values)
    assert got["acc"] == {"first": 0.5, "last": 0.4, "min": 0.2, "max": 0.9, "count": 4, "last_step": 6, "points": 6}
    assert got["only_nan"] == {
        "first": None,
        "last": None,
        "min": None,
        "max": None,
        "count": 0,
        "last_step": None,
        "points": 6,
    }
    assert rows(db, "SELECT seq, key, step, caption, path FROM exp_images") == [
        (0, "pred", 2, "first", "media/1_aaaaaa_pred.png")
    ]


def test_summaries_follow_appends_and_relogged_steps(root: Path, index) -> None:
    db, indexer = index
    run = runicorn_lite.init(project="p", root=root)
    series: dict[int, float] = {}

    def log(step: int, value: float) -> None:
        series[step] = value
        run.log({"x": value}, step=step)

    for step in range(1, 601):  # more than one chunk
        log(step, float(step % 97))
    run.flush()
    indexer.scan()
    assert summaries(db, run.id)["x"] == with_points(series)
    # Appends past the end fold into the summary.
    for step in range(601, 700):
        log(step, 500.0 - step)
    run.flush()
    indexer.scan()
    assert summaries(db, run.id)["x"] == with_points(series)
    # A step logged again overwrites its point: the old maximum is gone.
    top = max(series, key=lambda s: series[s])
    log(top, -10.0)
    log(700, math.nan)
    run.flush()
    indexer.scan()
    assert summaries(db, run.id)["x"] == with_points(series)
    # A new metric appears mid-run.
    run.log({"y": 3.0}, step=701)
    run.flush()
    indexer.scan()
    assert summaries(db, run.id)["y"] == {
        "first": 3.0,
        "last": 3.0,
        "min": 3.0,
        "max": 3.0,
        "count": 1,
        "last_step": 701,
        "points": 1,
    }


def test_changed_config_replaces_params_and_a_removed_one_clears_them(root: Path, index) -> None:
    db, indexer = index
    run = runicorn_lite.init(project="p", root=root)
    write_config(run.run_dir, {"lr": 0.1, "old": 1})
    run.finish()
    indexer.scan()
    write_config(run.run_dir, {"lr": 0.2})
    indexer.scan()
    assert rows(db, "SELECT key, v FROM exp_params") == [("lr", 0.2)]
    (run.run_dir / rundir.ASSETS).unlink()
    indexer.scan()
    assert rows(db, "SELECT count(*) FROM exp_params") == [(0,)]
    assert rows(db, "SELECT params_json FROM experiments") == [(None,)]
    assert rows(db, "SELECT count(*) FROM exp_docs") == [(0,)]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"config": {"args": {"lr": 1}}, "pad": "' + b"x" * (rundir.MAX_DOC_BYTES + 10) + b'"}', "over the"),
        (b'{"config": {"args": {"lr": "\xff\xfe"}}}', "not valid UTF-8 JSON"),
        (b'{"config": {"args": {"lr": 1', "not valid UTF-8 JSON"),
        (b'{"config": [1, 2]}', "config is a list"),
        (b'{"config": {"args": {"ok": 1, "bad": "a\\u0000b"}}}', "NUL"),
        (b"[]", "not a JSON object"),
    ],
)
def test_damaged_assets_give_one_warning_and_the_rest_is_indexed(
    root: Path, index, caplog: pytest.LogCaptureFixture, content: bytes, words: str
) -> None:
    db, indexer = index
    run = runicorn_lite.init(project="p", root=root)
    run.log({"loss": 1.0}, step=1)
    run.finish()
    (run.run_dir / rundir.ASSETS).write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="runicorn_lite.ingest"):
        indexer.scan()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and words in warnings[0].getMessage(), [r.getMessage() for r in warnings]
    assert rows(db, "SELECT status, n_points FROM experiments") == [("finished", 1)]
    assert summaries(db, run.id)["loss"]["last"] == 1.0
    caplog.clear()
    indexer.scan()  # unchanged: not read again, not warned again
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_listeners_hear_new_runs_points_and_removals(root: Path, index) -> None:
    _db, indexer = index
    heard: list[Change] = []
    indexer.subscribe(heard.extend)
    run = runicorn_lite.init(project="p", root=root)
    run.log({"a": 1.0}, step=1)
    run.flush()
    indexer.scan()
    assert [(c.kind, c.id) for c in heard] == [("experiment", run.id), ("metrics", run.id)]
    assert (heard[1].metrics, heard[1].last_step, heard[1].total_points) == (["a"], 1, 1)
    heard.clear()
    run.log({"a": 2.0, "b": 1.0}, step=2)
    run.flush()
    indexer.scan()
    assert [(c.kind, c.metrics, c.last_step, c.total_points) for c in heard] == [("metrics", ["a", "b"], 2, 3)]
    heard.clear()
    run.finish()
    indexer.scan()
    assert [c.kind for c in heard] == ["experiment"]
    heard.clear()
    import shutil

    shutil.rmtree(run.run_dir)
    indexer.scan()
    assert [(c.kind, c.id) for c in heard] == [("removed", run.id)]
    indexer.unsubscribe(heard.extend)
    runicorn_lite.init(project="p", root=root).finish()
    indexer.scan()
    assert len(heard) == 1


def test_a_failing_listener_does_not_stop_ingest(root: Path, index) -> None:
    db, indexer = index

    def boom(changes: list[Change]) -> None:
        raise RuntimeError("listener bug")

    indexer.subscribe(boom)
    runicorn_lite.init(project="p", root=root).finish()
    indexer.scan()
    assert rows(db, "SELECT count(*) FROM experiments") == [(1,)]


def test_rebuild_reproduces_params_summaries_documents_and_images(root: Path) -> None:
    copy_fixture("runicorn_07", root)
    queries = (
        "SELECT e.id, p.key, p.v, typeof(p.v), p.exp_id FROM exp_params p"
        " JOIN experiments e ON e.pk = p.exp_pk ORDER BY 1, 2",
        "SELECT e.id, s.metric, s.exp_id, first, first_step, last, last_step, min, max, count, points, min_step,"
        " max_step FROM metric_summaries s JOIN experiments e ON e.pk = s.exp_pk ORDER BY 1, 2",
        "SELECT e.id, e.params_json, e.metrics_json, d.config, d.environment FROM experiments e"
        " LEFT JOIN exp_docs d ON e.pk = d.exp_pk ORDER BY 1",
        "SELECT e.id, i.seq, i.key, i.step, i.caption, i.path FROM exp_images i"
        " JOIN experiments e ON e.pk = i.exp_pk ORDER BY 1, 2",
    )
    db, indexer = open_index(root)
    try:
        # Built incrementally: scans in the middle of the runs see part of their events.
        runs = []
        for i in range(4):
            run = runicorn_lite.init(project="p", name=f"n{i}", root=root)
            run.log_config({"lr": 10.0**-i, "opt": {"name": ["sgd", "adam"][i % 2]}, "flag": bool(i % 2)})
            if i == 0:
                rundir.atomic_write_json(run.run_dir / rundir.ENVIRONMENT, {"python_version": "3.11"})
            runs.append(run)
        for step in range(1, 40):
            for i, run in enumerate(runs):
                run.log({"acc": step / 40, "loss": 1 / step}, step=step)
                if step in (3, 20):
                    run.flush()
                    with open(run.run_dir / rundir.EVENTS, "a") as fh:
                        fh.write(
                            json.dumps({"type": "image", "data": {"key": "k", "path": f"media/{i}_{step}.png"}}) + "\n"
                        )
            if step in (3, 20, 30):
                indexer.scan()
        for run in runs:
            run.log({"acc": 0.0}, step=5)  # re-logged
            run.finish()
        indexer.scan()
        before = tuple(rows(db, sql) for sql in queries)
    finally:
        db.close()
    assert all(before) and len(before[0]) == 4 * 3 and len(before[3]) == 4 * 2
    for suffix in ("", "-wal", "-shm"):
        Path(f"{Settings(root=root).index_path}{suffix}").unlink(missing_ok=True)
    db, indexer = open_index(root)
    try:
        indexer.scan()
        assert tuple(rows(db, sql) for sql in queries) == before
    finally:
        db.close()


def test_chunks_keep_times_and_their_m4_points_through_merges(root: Path, index) -> None:
    from runicorn_lite.db.chunks import m4, unpack, unpack_m4, unpack_times

    db, indexer = index
    run = runicorn_lite.init(project="p", root=root)
    for step in range(1, 700):  # two chunks
        run.log({"x": math.sin(step)}, step=step)
    run.flush()
    indexer.scan()
    run.log({"x": 50.0}, step=3)  # re-logged into the first chunk: a new maximum, a new time
    run.log({"x": -50.0}, step=700)
    run.log({"x": math.nan}, step=701)
    run.flush()
    indexer.scan()
    truth: dict[int, tuple[float, float]] = {}
    for line in (run.run_dir / rundir.EVENTS).read_text().splitlines():
        data = json.loads(line)["data"]
        truth[data["global_step"]] = (data["x"], data["time"])
    seen = {}
    for n, steps_blob, vals_blob, times_blob, m4_blob, outlined in rows(
        db,
        "SELECT c.n, steps, vals, times, m4, (o.n, o.min_step, o.max_step) = (c.n, c.min_step, c.max_step)"
        " FROM metric_chunks c JOIN chunk_outlines o USING (exp_pk, metric, chunk) ORDER BY chunk",
    ):
        assert outlined  # the outline's range and count are the chunk's
        steps, vals = unpack(steps_blob, vals_blob)
        times = unpack_times(times_blob, n)
        assert m4_blob == m4(steps, vals, times)
        m4_steps = [record[0] for record in unpack_m4(m4_blob)]
        finite = [(v, s) for s, v in zip(steps, vals, strict=True) if math.isfinite(v)]
        assert m4_steps[0] == steps[0] and m4_steps[-1] == steps[-1]
        assert min(finite)[1] in m4_steps and max(finite)[1] in m4_steps
        for s, v, t in zip(steps, vals, times, strict=True):
            seen[s] = (v, t)
    assert seen.keys() == truth.keys()
    for step, (value, at) in truth.items():
        got_value, got_time = seen[step]
        assert got_time == at
        assert got_value == value or (math.isnan(value) and math.isnan(got_value))


def test_runs_without_times_say_so_with_nan(root: Path, index) -> None:
    from runicorn_lite.db.chunks import unpack_times

    db, indexer = index
    run_dir = root / "runs" / "p" / "20240101_000000_aaaaaa"
    run_dir.mkdir(parents=True)
    rundir.atomic_write_json(run_dir / rundir.META, {"path": "p", "created_at": 1.0})
    (run_dir / rundir.EVENTS).write_text(
        '{"type": "metrics", "data": {"x": 1.0, "global_step": 1}}\n'
        '{"ts": 5.5, "type": "metrics", "data": {"x": 2.0, "global_step": 2}}\n'
    )
    indexer.scan()
    n, blob = rows(db, "SELECT n, times FROM metric_chunks")[0]
    first, second = unpack_times(blob, n)
    assert math.isnan(first) and second == 5.5  # no time at all, then the event's ts


def test_events_read_in_windows_give_what_one_read_gives(tmp_path: Path) -> None:
    lines = [json.dumps({"type": "metrics", "data": {"x": float(i), "global_step": i, "time": float(i)}})
             for i in range(1, 400)]
    lines.insert(200, "not json")
    path = tmp_path / rundir.EVENTS
    path.write_text("\n".join(lines) + "\n" + '{"type": "metrics", "data": {"x": 1')  # half-written tail
    whole = rundir.read_events(path)
    offset, last_step, points, times, bad, reads = 0, None, {}, {}, 0, 0
    while True:
        chunk = rundir.read_events(path, offset, last_step, max_bytes=1000)
        reads += 1
        for key, series in chunk.points.items():
            points.setdefault(key, {}).update(series)
        times.update(chunk.times)
        bad += chunk.bad_lines
        offset, last_step = chunk.offset, chunk.last_step
        if not chunk.more:
            break
    assert reads > 10
    assert (points, times, bad, offset, last_step) == (whole.points, whole.times, whole.bad_lines, whole.offset,
                                                       whole.last_step)


def test_a_line_longer_than_a_window_and_a_runaway_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / rundir.EVENTS
    big = json.dumps({"type": "metrics", "data": {"x": 1.0, "global_step": 1, "pad": "p" * 5000}})
    runaway = "x" * 20_000
    path.write_text(big + "\n" + runaway + "\n" + '{"type": "metrics", "data": {"x": 2.0, "global_step": 2}}\n')
    monkeypatch.setattr(rundir.events, "MAX_EVENT_LINE", 10_000)
    first = rundir.read_events(path, max_bytes=1000)  # the first line is longer than the window
    assert first.points == {"x": {1: 1.0}} and first.more
    second = rundir.read_events(path, first.offset, first.last_step, max_bytes=1000)
    assert second.bad_lines == 1 and second.points == {} and second.more  # stepped over, not held
    third = rundir.read_events(path, second.offset, second.last_step, max_bytes=1000)
    assert third.points == {"x": {2: 2.0}} and not third.more and third.offset == path.stat().st_size


def test_a_huge_events_file_is_indexed_window_by_window(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = runicorn_lite.init(project="p", root=root)
    run.set_primary_metric("acc", "max")
    for step in range(1, 3001):
        run.log({"acc": math.sin(step / 100), "loss": 1 / step}, step=step)
    run.finish()

    def snapshot(window: int) -> tuple:
        monkeypatch.setattr(rundir, "EVENTS_WINDOW", window)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{Settings(root=root).index_path}{suffix}").unlink(missing_ok=True)
        db, indexer = open_index(root)
        heard: list[Change] = []
        indexer.subscribe(heard.extend)
        try:
            indexer.scan()
            return (
                rows(db, "SELECT n_points, events_offset, events_last_step, best_metric_value, metrics_json"
                      " FROM experiments"),
                rows(db, "SELECT metric, first, last, min, max, count, last_step, points FROM metric_summaries"),
                sorted(rows(db, "SELECT metric, steps, vals, times FROM metric_chunks")),
            ), len([c for c in heard if c.kind == "metrics"])
        finally:
            db.close()

    whole, _ = snapshot(1 << 30)
    windowed, writes = snapshot(10_000)
    assert writes > 20  # many windows, each its own write
    assert whole[0] == windowed[0] and whole[1] == windowed[1]
    assert [(m, s, v, t) for m, s, v, t in whole[2]] != []
    # Chunks may be cut differently, but they hold the same points.
    from runicorn_lite.db.chunks import unpack

    def points(rows: list) -> dict:
        out: dict = {}
        for metric, steps_blob, vals_blob, _times in rows:
            steps, vals = unpack(steps_blob, vals_blob)
            out.setdefault(metric, {}).update(zip(steps, vals, strict=True))
        return out

    assert points(whole[2]) == points(windowed[2])
