"""Keras 3 on the torch backend: Keras's History is what the V2 API shows, epoch by epoch."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from shown import shown, shown_all

import runicorn_lite
from runicorn_lite.integrations.keras import RunicornCallback

keras = pytest.importorskip("keras")


def _model(lr: float = 0.05) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("float32")


def test_history_is_what_we_show(root: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    assert keras.backend.backend() == "torch"
    x, y = data
    callback = RunicornCallback(project="keras", name="mlp", root=root, params={"width": 8}, log_every_n_batches=2)
    history = _model().fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=[callback])
    (run,) = shown_all(root).values()
    assert run.status == "finished"
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.history)
    for key, values in history.history.items():
        assert run.curve(key) == {i + 1: float(v) for i, v in enumerate(values)}, key
    # 48 training samples in batches of 16: 3 batches an epoch, every 2nd logged
    assert sorted(run.curve("batch/loss")) == [2, 4, 6, 8]
    assert run.params["optimizer.learning_rate"] == pytest.approx(0.05)
    assert run.params["optimizer.name"] == "adam" and run.params["epochs"] == 3 and run.params["width"] == 8
    assert run.params["steps_per_epoch"] == 3


class _Explode(keras.callbacks.Callback):  # type: ignore[misc]
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:  # type: ignore[type-arg]
        if epoch == 1:
            raise RuntimeError("diverged")


def test_training_that_raises_is_failed(root: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    callback = RunicornCallback(project="keras", name="boom", root=root)
    with pytest.raises(RuntimeError, match="diverged") as caught:
        _model().fit(x, y, epochs=5, verbose=0, callbacks=[callback, _Explode()])
    run_id = callback.run.id
    assert shown(root, run_id).status == "running"  # Keras tells its callbacks nothing of it
    # What Python does with an exception that ends the script: its hook marks the run failed.
    sys.excepthook(caught.type, caught.value, caught.tb)
    run = shown(root, run_id)
    assert run.status == "failed" and sorted(run.curve("loss")) == [1, 2]


def test_a_given_run_is_left_open(root: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    run = runicorn_lite.init(project="keras", name="given", root=root)
    _model().fit(x, y, epochs=2, verbose=0, callbacks=[RunicornCallback(run=run)])
    assert not run.is_finished
    run.log({"test_accuracy": 0.5}, step=3)
    run.finish()
    assert sorted(shown(root, run.id).curve("loss")) == [1, 2]
    with pytest.raises(ValueError, match="log_every_n_batches"):
        RunicornCallback(project="x", log_every_n_batches=0)
