"""The run-directory format module: tolerant readers, discovery of both layouts, writers."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from support import copy_fixture

from runicorn_lite import rundir


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", None),
        ("   \n", None),
        ('{"a": 1', None),  # truncated
        ("not json", None),
        ("[1, 2]", None),  # not an object
        ('"text"', None),
        ('{"a": NaN, "b": Infinity}', "nan"),
        ('{"a": 1}', {"a": 1}),
    ],
)
def test_read_json_object_tolerates_bad_files(tmp_path: Path, content: str, expected: object) -> None:
    got = rundir.read_json_object(_write(tmp_path / "f.json", content))
    if expected == "nan":
        assert got is not None and math.isnan(got["a"]) and got["b"] == math.inf
    else:
        assert got == expected


def test_read_json_object_missing_and_binary(tmp_path: Path) -> None:
    assert rundir.read_json_object(tmp_path / "absent.json") is None
    assert rundir.read_json_object(_write(tmp_path / "bin.json", b"\xff\xfe\x00garbage")) is None
    # a directory where a file is expected
    (tmp_path / "dir.json").mkdir()
    assert rundir.read_json_object(tmp_path / "dir.json") is None


def test_read_events_parses_nan_and_keeps_last_value_per_step(tmp_path: Path) -> None:
    lines = [
        {"ts": 1, "type": "metrics", "data": {"loss": 1.0, "acc": 0.1, "global_step": 1, "time": 1, "stage": "train"}},
        {"ts": 2, "type": "image", "data": {"path": "x.png"}},
        {"ts": 3, "type": "metrics", "data": {"loss": 0.5, "global_step": 2, "epoch": 1}},
        {"ts": 4, "type": "metrics", "data": {"loss": 0.4, "flag": True, "name": "str", "global_step": 2}},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n"
    text += '{"ts": 5, "type": "metrics", "data": {"loss": NaN, "acc": Infinity, "global_step": 3}}\n'
    text += "this line is corrupt\n"
    chunk = rundir.read_events(_write(tmp_path / "events.jsonl", text))
    assert chunk.points["loss"][1] == 1.0
    assert chunk.points["loss"][2] == 0.4  # last value wins at a repeated step
    assert math.isnan(chunk.points["loss"][3])
    assert chunk.points["acc"] == {1: 0.1, 3: math.inf}
    assert chunk.points["flag"] == {2: 1.0}  # booleans count as numbers
    assert "epoch" not in chunk.points and "time" not in chunk.points and "name" not in chunk.points
    assert chunk.bad_lines == 1
    assert chunk.offset == len(text.encode())


def test_read_events_leaves_half_written_line_for_later(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    full = '{"type": "metrics", "data": {"loss": 1.0, "global_step": 1}}\n'
    half = '{"type": "metrics", "data": {"loss": 0.'
    _write(path, full + half)
    first = rundir.read_events(path)
    assert first.points == {"loss": {1: 1.0}}
    assert first.offset == len(full)
    with open(path, "a") as fh:
        fh.write('5, "global_step": 2}}\n')
    second = rundir.read_events(path, first.offset, first.last_step)
    assert second.points == {"loss": {2: 0.5}}
    assert second.bad_lines == 0


def test_read_events_in_windows_reads_every_line_once(tmp_path: Path) -> None:
    """Windows of a few hundred bytes over a file whose lines are shorter and longer than a
    window (the long one read by the longer way): every point once, then nothing more."""
    path = tmp_path / "events.jsonl"
    lines = []
    for step in range(1, 41):
        pad = "x" * (900 if step == 17 else step)  # step 17's line is longer than a window
        lines.append(json.dumps({"type": "metrics", "data": {"loss": step / 10, "global_step": step, "note": pad}}))
    _write(path, "\n".join(lines) + "\n" + '{"type": "metrics", "data": {"loss"')
    offset, last, seen, reads = 0, None, {}, 0
    while True:
        chunk = rundir.read_events(path, offset, last, max_bytes=300)
        reads += 1
        assert not set(seen) & set(chunk.points.get("loss", {}))
        seen.update(chunk.points.get("loss", {}))
        offset, last = chunk.offset, chunk.last_step
        if not chunk.more:
            break
    assert seen == {step: step / 10 for step in range(1, 41)} and reads > 5
    assert offset == path.stat().st_size - len('{"type": "metrics", "data": {"loss"')  # the half line waits
    assert rundir.read_events(path, offset, last, max_bytes=300).points == {}


def test_read_small_reads_whole_files_and_refuses_big_ones(tmp_path: Path) -> None:
    from runicorn_lite.rundir.jsonfiles import FileTooLarge, read_small

    big = _write(tmp_path / "big.json", os.urandom(200_000))  # several reads' worth
    assert read_small(big) == big.read_bytes()
    assert read_small(_write(tmp_path / "empty.json", b"")) == b""
    exact = _write(tmp_path / "exact.json", b"y" * (1 << 16))  # a full first read, then the end
    assert read_small(str(exact)) == exact.read_bytes()
    with pytest.raises(FileTooLarge) as refused:
        read_small(big, max_bytes=100_000)
    assert refused.value.size == 200_000
    with pytest.raises(FileNotFoundError):
        read_small(tmp_path / "missing.json")
    with pytest.raises(OSError):
        read_small(tmp_path)  # a directory


def test_read_events_without_steps_numbers_them(tmp_path: Path) -> None:
    text = "".join(f'{{"type": "metrics", "data": {{"x": {i}}}}}\n' for i in range(3))
    chunk = rundir.read_events(_write(tmp_path / "events.jsonl", text))
    assert chunk.points["x"] == {0: 0.0, 1: 1.0, 2: 2.0}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("running", "running"), ("finished", "finished"), ("completed", "finished"), ("success", "finished"),
        ("error", "failed"), ("crashed", "failed"), ("killed", "interrupted"), ("cancelled", "interrupted"),
        ("aborted", "interrupted"), ("FAILED", "failed"), ("weird-status", "finished"), (None, "finished"),
        (3, "finished"),
    ],
)
def test_normalize_status(raw: object, expected: str) -> None:
    assert rundir.normalize_status(raw) == expected


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "", ".hidden", "a\x00b", "x" * 200, "a..b"])
def test_unsafe_run_ids_are_rejected(bad: str) -> None:
    assert not rundir.is_valid_run_id(bad)


def test_iter_runs_finds_both_generations_and_skips_non_projects(tmp_path: Path) -> None:
    copy_fixture("runicorn_053", tmp_path)
    copy_fixture("runicorn_07", tmp_path)
    # folders that are never projects, and a run-looking folder inside them
    _write(tmp_path / "archive" / "x" / "runs" / "20250101_000000_aaaaaa" / "meta.json", "{}")
    _write(tmp_path / ".runicorn_lite" / "x" / "runs" / "20250101_000000_bbbbbb" / "meta.json", "{}")
    # a modern run in the recycle bin
    _write(tmp_path / "runs" / ".recycle" / "20250101_000000_cccccc" / "meta.json", '{"path": "cv/old"}')
    found = {loc.run_id: loc for loc in rundir.iter_runs(tmp_path)}
    assert {i for i in found if i.endswith(("05a001", "05a002", "05a003", "05a004", "05a005"))} == {
        f"20250301_09000{n}_05a00{n}" for n in range(1, 6)
    }
    assert sum(1 for i in found if "_07a00" in i) == 5
    assert "20250101_000000_aaaaaa" not in found and "20250101_000000_bbbbbb" not in found
    assert found["20250101_000000_cccccc"].in_recycle
    assert found["20250301_090001_05a001"].generation == "legacy"
    assert found["20250302_090001_07a001"].segments == ("cv", "yolo", "ablation")


def test_read_run_real_fixtures(tmp_path: Path) -> None:
    copy_fixture("runicorn_053", tmp_path)
    copy_fixture("runicorn_07", tmp_path)
    infos = {}
    for loc in rundir.iter_runs(tmp_path):
        info = rundir.read_run(loc)
        assert info is not None
        infos[info.id] = info
    a = infos["20250302_090001_07a001"]
    assert (a.project, a.name, a.path, a.alias) == ("cv", "yolo/ablation", "cv/yolo/ablation", "best-v2")
    assert (a.status, a.best_metric_name, a.best_metric_value, a.best_metric_step) == (
        "finished", "accuracy", 0.8888, 24)
    d = infos["20250302_090004_07a004"]
    assert (d.project, d.name) == ("cv", "default")
    expected_d = "failed" if rundir.pid_is_gone(d.pid, d.hostname) else "running"
    assert d.status == expected_d
    legacy_b = infos["20250301_090002_05a002"]
    assert (legacy_b.project, legacy_b.name, legacy_b.status) == ("nlp", "bert", "failed")
    assert (legacy_b.best_metric_value, legacy_b.best_metric_mode) == (0.2578, "min")
    assert infos["20250301_090004_05a004"].name == "default"
    assert infos["20250302_090005_07a005"].best_metric_value is None


def test_read_run_survives_empty_and_corrupt_meta(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "proj" / "exp" / "20250101_000000_abcdef"
    _write(run_dir / "meta.json", "")
    _write(run_dir / "status.json", "{broken")
    loc = rundir.location_of(tmp_path, run_dir)
    assert loc is not None
    info = rundir.read_run(loc)
    assert info is not None
    assert (info.project, info.name, info.status) == ("proj", "exp", "running")
    assert info.created_at > 0  # falls back to the directory's mtime


def test_read_run_of_vanished_directory(tmp_path: Path) -> None:
    loc = rundir.RunLocation(tmp_path / "runs" / "p" / "gone_run", "gone_run", "modern", ("p",))
    assert rundir.read_run(loc) is None


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    rundir.atomic_write_json(target, {"a": math.nan})
    rundir.atomic_write_json(target, {"b": 2})
    assert json.loads(target.read_text()) == {"b": 2}
    assert os.listdir(tmp_path) == ["x.json"]


def test_location_of_rejects_paths_outside_layouts(tmp_path: Path) -> None:
    for rel in ["runs/p/../x", "archive/p/runs/20250101_000000_aaaaaa", "p/n/other/20250101_000000_aaaaaa"]:
        d = tmp_path / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / "meta.json").write_text("{}")
        assert rundir.location_of(tmp_path, d) is None
    assert rundir.location_of(tmp_path, Path("/elsewhere/runs/p/20250101_000000_aaaaaa")) is None


def test_live_best_from_events_when_summary_has_none(tmp_path: Path) -> None:
    import runicorn_lite

    run = runicorn_lite.init(project="p", root=tmp_path)
    run.set_primary_metric("loss", mode="min")
    for step, loss in enumerate([3.0, math.nan, 1.0, 2.0], start=1):
        run.log({"loss": loss}, step=step)
    run.flush()
    info = rundir.fill_live_best(rundir.read_run(rundir.location_of(tmp_path, run.run_dir)))
    best = (info.best_metric_name, info.best_metric_value, info.best_metric_step, info.best_metric_mode)
    assert best == ("loss", 1.0, 3, "min")
    run.finish()
    done = rundir.fill_live_best(rundir.read_run(rundir.location_of(tmp_path, run.run_dir)))
    assert (done.best_metric_value, done.best_metric_step) == (1.0, 3)  # now from summary.json


def test_concurrent_meta_updates_lose_nothing(tmp_path: Path) -> None:
    import threading

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rundir.atomic_write_json(run_dir / "meta.json", {"id": "x"})

    def writer(prefix: str) -> None:
        for i in range(30):
            rundir.update_meta(run_dir, {f"{prefix}{i}": i}, durable=False)

    threads = [threading.Thread(target=writer, args=(p,)) for p in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert len(meta) == 1 + 90
    assert sorted(os.listdir(run_dir)) == ["meta.json"]  # no lock or temp files left behind


def test_restore_from_the_recycle_bin_refuses_to_overwrite(tmp_path: Path) -> None:
    recycled = tmp_path / "runs" / ".recycle" / "20250101_000000_abcdef"
    recycled.mkdir(parents=True)
    rundir.atomic_write_json(recycled / "meta.json", {"path": "cv/x"})
    rundir.atomic_write_json(recycled / ".deleted", {"deleted_at": 1.0})
    taken = tmp_path / "runs" / "cv" / "x" / "20250101_000000_abcdef"
    taken.mkdir(parents=True)
    with pytest.raises(FileExistsError):
        rundir.unmark_deleted(tmp_path, recycled, "20250101_000000_abcdef", "cv/x")
    assert (recycled / ".deleted").exists()  # still deleted, and says so
    taken.rmdir()
    restored = rundir.unmark_deleted(tmp_path, recycled, "20250101_000000_abcdef", "cv/x")
    assert restored == taken and (taken / "meta.json").exists() and not (taken / ".deleted").exists()


def test_read_events_collects_image_events_with_safe_paths(tmp_path: Path) -> None:
    # The shape the real 0.7.2 SDK writes; a missing step takes the last metrics step.
    lines = [
        {"ts": 1.0, "type": "metrics", "data": {"loss": 1.0, "global_step": 4}},
        {"ts": 2.0, "type": "image",
         "data": {"key": "sample", "path": "media/1_abc123_sample.png", "step": 3, "caption": "c"}},
        {"ts": 3.0, "type": "image",
         "data": {"key": "sample", "path": "media/2_abc124_sample.png", "step": None, "caption": None}},
        {"ts": 4.0, "type": "image", "data": {"key": "bad", "path": "../../etc/passwd", "step": 1}},
        {"ts": 5.0, "type": "image", "data": {"key": "bad", "path": "/etc/passwd", "step": 1}},
        {"ts": 6.0, "type": "image", "data": {"path": "media/x.png"}},
    ]
    path = _write(tmp_path / "events.jsonl", "".join(json.dumps(e) + "\n" for e in lines))
    chunk = rundir.read_events(path)
    assert chunk.images == [
        {"key": "sample", "step": 3, "caption": "c", "path": "media/1_abc123_sample.png"},
        {"key": "sample", "step": 4, "caption": None, "path": "media/2_abc124_sample.png"},
    ]
    assert chunk.points == {"loss": {4: 1.0}}


@pytest.mark.parametrize("raw", ["../x", "a/../../x", "/abs", "C:/x", "", "a\x00b", 3, None])
def test_safe_relative_path_refuses_escapes(raw: object) -> None:
    assert rundir.safe_relative_path(raw) is None


def test_safe_relative_path_normalises() -> None:
    assert rundir.safe_relative_path("./media//x.png") == "media/x.png"
    assert rundir.safe_relative_path("media\\x.png") == "media/x.png"
