"""The SDK writes the modern Runicorn layout exactly, cheaply, and closes runs properly."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

import runicorn_lite
from runicorn_lite import rundir


def test_run_directory_layout_and_files(root: Path) -> None:
    run = runicorn_lite.init(project="cv", name="yolo/ablation", root=root, tags=["a", "b", "a"], description="d")
    assert run.run_dir == root / "runs" / "cv" / "yolo" / "ablation" / run.id
    assert len(run.id) == 22 and run.id[8] == "_" and run.id[15] == "_"
    run.set_primary_metric("acc", mode="max")
    for step in range(1, 6):
        run.log({"acc": step / 10, "loss": 1 / step}, step=step, stage="train")
    run.log({"acc": math.nan})  # step 6, auto
    run.log_text("hello\nworld")
    run.summary({"epochs": 3})
    run.finish()
    meta = json.loads((run.run_dir / "meta.json").read_text())
    assert meta["path"] == "cv/yolo/ablation" and meta["tags"] == ["a", "b"] and meta["description"] == "d"
    assert {"id", "created_at", "python", "platform", "hostname", "pid", "storage_dir", "alias"} <= meta.keys()
    status = json.loads((run.run_dir / "status.json").read_text())
    assert status["status"] == "finished" and status["ended_at"] >= status["started_at"]
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary == {"epochs": 3, "best_metric_value": 0.5, "best_metric_name": "acc",
                       "best_metric_step": 5, "best_metric_mode": "max"}
    lines = (run.run_dir / "events.jsonl").read_text().splitlines()
    assert len(lines) == 6
    first = json.loads(lines[0])
    assert first["type"] == "metrics" and first["data"]["global_step"] == 1 and first["data"]["stage"] == "train"
    assert "NaN" in lines[5] and json.loads(lines[5])["data"]["global_step"] == 6  # bare NaN, as json writes it
    logs = (run.run_dir / "logs.txt").read_text().splitlines()
    assert [line.split(" | ", 1)[1] for line in logs] == ["hello", "world"]


def test_context_manager_marks_failure(root: Path) -> None:
    with pytest.raises(ValueError), runicorn_lite.init(project="p", root=root) as run:
        run.log({"x": 1})
        raise ValueError("boom")
    assert json.loads((run.run_dir / "status.json").read_text())["status"] == "failed"
    with runicorn_lite.init(project="p", root=root) as ok:
        ok.log({"x": 1})
    assert json.loads((ok.run_dir / "status.json").read_text())["status"] == "finished"


def test_log_is_buffered_then_flushed_in_background(root: Path) -> None:
    run = runicorn_lite.init(project="p", name="n", root=root)
    for i in range(200):
        run.log({"x": i})
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if (run.run_dir / "events.jsonl").read_text().count("\n") == 200:
            break
        time.sleep(0.05)
    assert (run.run_dir / "events.jsonl").read_text().count("\n") == 200
    run.finish("completed")  # normalised like the real package
    assert json.loads((run.run_dir / "status.json").read_text())["status"] == "finished"
    with pytest.raises(RuntimeError):
        run.log({"x": 1})


def test_bad_arguments(root: Path) -> None:
    with pytest.raises(ValueError):
        runicorn_lite.init(project="..", root=root)
    with pytest.raises(ValueError):
        runicorn_lite.init(project="p", root=root, run_id="../evil")
    run = runicorn_lite.init(project="p", root=root)
    with pytest.raises(ValueError):
        run.set_primary_metric("x", mode="sideways")
    with pytest.raises(TypeError):
        run.log([1, 2])  # type: ignore[arg-type]
    run.finish()


def test_sdk_run_reads_back_through_format_module(root: Path) -> None:
    run = runicorn_lite.init(path="nlp/bert/large", root=root, alias="big")
    run.log({"loss": 2.0}, step=10)
    run.finish("failed")
    loc = rundir.location_of(root, run.run_dir)
    info = rundir.read_run(loc)
    assert (info.project, info.name, info.alias, info.status) == ("nlp", "bert/large", "big", "failed")


def test_non_finite_and_foreign_numbers_keep_the_format(root: Path) -> None:
    run = runicorn_lite.init(project="p", root=root)
    run.log({"a": math.inf, "b": 1}, step=1)
    run.log({"a": -math.inf}, step=2)
    run.log({"a": True, "s": "text", "n": None}, step=3)
    run.finish()
    lines = (run.run_dir / "events.jsonl").read_text().splitlines()
    assert "Infinity" in lines[0] and "-Infinity" in lines[1]
    assert json.loads(lines[2])["data"]["a"] is True
