"""A script written for Runicorn 0.7.2 (``import runicorn as rn``) runs unchanged with ``import
runicorn_lite as rn``, and importing runicorn_lite imports no machine-learning framework."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from shown import shown_all

import runicorn_lite as rn
from runicorn_lite import rundir

SCRIPT = Path(__file__).resolve().parent / "fixtures" / "scripts" / "runicorn072_train.py"
FRAMEWORKS = ("torch", "lightning", "pytorch_lightning", "transformers", "keras", "tensorflow", "jax", "xgboost",
              "lightgbm", "psutil", "pynvml", "numpy")


def test_a_runicorn_script_runs_unchanged(root: Path, tmp_path: Path) -> None:
    source = SCRIPT.read_text(encoding="utf-8")
    assert source.count("import runicorn as rn\n") == 1
    script = tmp_path / "train.py"
    script.write_text(source.replace("import runicorn as rn\n", "import runicorn_lite as rn\n"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNICORN")}
    done = subprocess.run([sys.executable, str(script)], env={**env, "RUNICORN_DIR": str(root)}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "train 100%" in done.stdout and "epoch 3 done" in done.stdout  # the terminal still gets it all
    run_id = done.stdout.strip().splitlines()[-1].removeprefix("run id: ")

    runs = shown_all(root)
    assert list(runs) == [run_id]  # nothing of the run made while disabled
    run = runs[run_id]
    assert run.status == "finished" and run.experiment["path"] == "cv/mnist/baseline"
    assert run.experiment["alias"] == "first try"
    assert run.params == {"lr": 0.01, "epochs": 3, "model": "mlp", "extra.note": "drop-in"}
    assert run.curve("loss") == {1: 1.0, 2: 0.5, 3: pytest.approx(1 / 3)}
    assert run.curve("val_acc") == pytest.approx({1: 0.6, 2: 0.7, 3: 0.8})
    assert run.experiment["best_metric_name"] == "val_acc"
    assert run.experiment["best_metric_value"] == pytest.approx(0.8)
    run_dir = Path(run.experiment["run_dir"])
    logs = [line.split(" | ", 1)[1] for line in (run_dir / rundir.LOGS).read_text().splitlines()]
    assert logs == ["train 100%", "epoch 1 done", "train 100%", "epoch 2 done", "train 100%", "epoch 3 done",
                    "a text line", "WARNING | train | from logging"]
    assets = json.loads((run_dir / rundir.ASSETS).read_text())
    assert assets["config"]["extra"] == {"note": "drop-in"}
    assert assets["datasets"] == [{"name": "mnist", "context": "train", "uri": "/data/mnist", "description": "digits",
                                   "saved": False, "fingerprint": None}]
    assert assets["pretrained"] == [{"name": "resnet18", "source_type": "torchvision",
                                     "path_or_uri": "torchvision://resnet18", "description": None, "saved": False}]
    assert json.loads((run_dir / rundir.SUMMARY).read_text())["final"] == "ok"


def test_importing_runicorn_lite_imports_no_framework() -> None:
    code = ("import sys, runicorn_lite, runicorn_lite.sdk, runicorn_lite.integrations; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FRAMEWORKS!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_disabled_runs_do_nothing_and_the_switch_is_scoped(root: Path) -> None:
    with rn.enabled(False):
        assert not rn.is_enabled()
        run = rn.init(project="p", root=root, system_metrics=True, capture_console=True)
        run.log({"x": 1}, step=1)
        run.log(x=2)
        assert run.log_image("k", b"not an image") == ""
        run.log_config(args={"a": 1})
        run.set_primary_metric("x")
        with run:
            run.summary({"a": 1})
    assert rn.is_enabled()
    assert not (root / "runs").exists()
    rn.set_enabled(False)
    try:
        assert rn.init(project="p", root=root).id == "disabled"
    finally:
        rn.reset_enabled()
    assert not (root / "runs").exists()


def test_ignored_options_warn_once_and_unknown_ones_are_refused(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="runicorn_lite"):
        for _ in range(2):
            run = rn.init(project="p", root=root, snapshot_code=True, workspace_root=".", force_snapshot=True)
            run.watch_outputs(interval_s=1)
            assert run.scan_outputs_once() == {"scanned": 0, "archived": 0, "changed": 0}
            run.finish()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "snapshot_code" in m]) == 1
    assert len([m for m in messages if "output files" in m]) == 1
    with pytest.raises(TypeError, match="snapshot_cod"):
        rn.init(project="p", root=root, snapshot_cod=True)
