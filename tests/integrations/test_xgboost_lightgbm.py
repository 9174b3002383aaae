"""XGBoost and LightGBM: what the framework recorded (evals_result(), record_evaluation) is what
the V2 API shows, step by step; the booster's parameters are the run's params."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from shown import shown, shown_all

import runicorn_lite
from runicorn_lite.integrations.lightgbm import runicorn_callback
from runicorn_lite.integrations.xgboost import RunicornCallback


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(float)


def test_xgboost_train_logs_every_round(root: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    dtrain, dvalid = xgb.DMatrix(x[:80], label=y[:80]), xgb.DMatrix(x[80:], label=y[80:])
    recorded: dict = {}  # type: ignore[type-arg]
    callback = RunicornCallback(project="boost", name="xgb", root=root, tags=["xgb"])
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "eval_metric": ["logloss", "error"]}
    xgb.train(params, dtrain, num_boost_round=5, evals=[(dtrain, "train"), (dvalid, "eval")],
              evals_result=recorded, callbacks=[callback], verbose_eval=False)
    (run,) = shown_all(root).values()
    assert run.status == "finished" and run.experiment["tags"] == ["xgb"]
    for data_name, metrics in recorded.items():
        for metric, values in metrics.items():
            assert run.curve(f"{data_name}-{metric}") == {i + 1: v for i, v in enumerate(values)}
    assert set(run.series) == {"train-logloss", "train-error", "eval-logloss", "eval-error"}
    assert run.params["max_depth"] == 3 and run.params["eta"] == 0.3
    assert run.params["objective"] == "binary:logistic" and run.params["eval_metric"] == '["logloss","error"]'


def test_xgboost_cv_into_a_given_run(root: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    run = runicorn_lite.init(project="boost", name="cv", root=root)
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.5, "eval_metric": "logloss"}
    history = xgb.cv(params, xgb.DMatrix(x, label=y), num_boost_round=4, nfold=3, as_pandas=False,
                     callbacks=[RunicornCallback(run=run, params={"note": "mine"})])
    assert not run.is_finished  # a given run is its owner's to finish
    run.finish()
    api = shown(root, run.id)
    for key in ("train-logloss", "test-logloss"):
        assert api.curve(key) == dict(enumerate(history[f"{key}-mean"], 1))
        assert api.curve(f"{key}-std") == dict(enumerate(history[f"{key}-std"], 1))
    assert api.params["max_depth"] == 2 and api.params["eta"] == 0.5 and api.params["note"] == "mine"
    with pytest.raises(TypeError, match="either run= or"):
        RunicornCallback(run=run, project="x")


def test_lightgbm_train_logs_every_iteration(root: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    dtrain = lgb.Dataset(x[:80], label=y[:80])
    dvalid = lgb.Dataset(x[80:], label=y[80:], reference=dtrain)
    recorded: dict = {}  # type: ignore[type-arg]
    params = {"objective": "binary", "metric": ["binary_logloss", "auc"], "num_leaves": 7, "learning_rate": 0.2,
              "verbose": -1, "num_threads": 1}
    lgb.train(params, dtrain, num_boost_round=6, valid_sets=[dtrain, dvalid], valid_names=["train", "valid"],
              callbacks=[lgb.record_evaluation(recorded), runicorn_callback(project="boost", name="lgb", root=root)])
    (run,) = shown_all(root).values()
    assert run.status == "finished"
    assert set(run.series) == {"train-binary_logloss", "train-auc", "valid-binary_logloss", "valid-auc"}
    for data_name, metrics in recorded.items():
        for metric, values in metrics.items():
            assert run.curve(f"{data_name}-{metric}") == {i + 1: v for i, v in enumerate(values)}
    assert run.params["num_leaves"] == 7 and run.params["learning_rate"] == 0.2 and run.params["objective"] == "binary"


def test_lightgbm_early_stopping_and_a_second_training(root: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(80, 4))  # validation data unrelated to training: it stops early
    dtrain, dvalid = lgb.Dataset(x[:80], label=y[:80]), lgb.Dataset(noise, label=y[:80])
    callback = runicorn_callback(project="boost", name="early", root=root)
    recorded: dict = {}  # type: ignore[type-arg]
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "learning_rate": 0.5}
    booster = lgb.train(params, dtrain, num_boost_round=200, valid_sets=[dvalid], valid_names=["valid"],
                        callbacks=[lgb.early_stopping(3, verbose=False), lgb.record_evaluation(recorded), callback])
    first = callback.run.id
    assert booster.current_iteration() < 200
    lgb.train(params, dtrain, num_boost_round=2, valid_sets=[dvalid], valid_names=["valid"], callbacks=[callback])
    runs = shown_all(root)
    assert runs[first].status == "finished"  # closed when the next training began
    assert runs[first].curve("valid-binary_logloss") == dict(enumerate(recorded["valid"]["binary_logloss"], 1))
    (second,) = (r for i, r in runs.items() if i != first)
    assert second.status == "finished" and sorted(second.curve("valid-binary_logloss")) == [1, 2]


def test_training_that_raises_leaves_a_failed_run(root: Path, tmp_path: Path) -> None:
    """In a script: a training that raised and was caught is failed at exit; an uncaught
    exception fails the runs at once (its hook), and the traceback is still printed."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np, xgboost as xgb
        from runicorn_lite.integrations.xgboost import RunicornCallback
        d = xgb.DMatrix(np.arange(20.0).reshape(10, 2), label=np.arange(10.0))
        def bad_objective(preds, dtrain):
            raise RuntimeError("objective exploded")
        try:
            xgb.train({{}}, d, 3, obj=bad_objective, callbacks=[RunicornCallback(project="caught", root={str(root)!r})])
        except RuntimeError:
            pass
        xgb.train({{}}, d, 3, obj=bad_objective, callbacks=[RunicornCallback(project="uncaught", root={str(root)!r})])
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "objective exploded" in done.stderr
    statuses = {r.experiment["project"]: r.status for r in shown_all(root).values()}
    assert statuses == {"caught": "failed", "uncaught": "failed"}
