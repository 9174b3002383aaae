"""init(resume=<id>) continues a run where it stopped, and the V2 API shows one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shown import shown

import runicorn_lite
from runicorn_lite import rundir


def test_resume_continues_the_same_run(root: Path) -> None:
    first = runicorn_lite.init(project="cv", name="resnet", root=root, tags=["a"], alias="base",
                               config={"lr": 0.1, "optim": {"name": "sgd"}})
    first.set_primary_metric("acc", mode="max")
    for step in (1, 2, 3):
        first.log({"loss": 1.0 / step, "acc": 0.3 * step})
    first.summary({"epochs_done": 3})
    first.finish("interrupted")

    again = runicorn_lite.init(resume=first.id, root=root, tags=["resumed"], config={"epochs": 6})
    assert again.id == first.id and again.run_dir == first.run_dir
    assert json.loads((again.run_dir / rundir.STATUS).read_text())["status"] == "running"
    again.log({"loss": 0.2, "acc": 0.5})  # no step: the one after the last, 4
    again.log({"loss": 0.1, "acc": 0.8}, step=5)
    again.summary({"epochs_done": 5})
    again.finish()

    run = shown(root, first.id)
    assert run.status == "finished"
    assert run.curve("loss") == {1: 1.0, 2: 0.5, 3: pytest.approx(1 / 3), 4: 0.2, 5: 0.1}
    assert run.experiment["tags"] == ["a", "resumed"] and run.experiment["alias"] == "base"
    assert run.experiment["path"] == "cv/resnet"
    # config merged: the first part's and the resumed part's keys
    assert run.params == {"lr": 0.1, "optim.name": "sgd", "epochs": 6}
    # the best over both parts
    assert run.experiment["best_metric_name"] == "acc" and run.experiment["best_metric_value"] == pytest.approx(0.9)
    summary = json.loads((first.run_dir / rundir.SUMMARY).read_text())
    assert summary["epochs_done"] == 5 and summary["best_metric_step"] == 3
    assert len(list((root / "runs" / "cv" / "resnet").iterdir())) == 1


def test_resume_of_an_unknown_run_names_it(root: Path) -> None:
    with pytest.raises(ValueError, match="20990101_000000_abcdef"):
        runicorn_lite.init(resume="20990101_000000_abcdef", root=root)
    with pytest.raises(ValueError, match="not a valid run id"):
        runicorn_lite.init(resume="../etc", root=root)
    assert not (root / "runs").exists() or not any((root / "runs").rglob("meta.json"))
