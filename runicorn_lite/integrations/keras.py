"""Keras 3 (any backend): ``model.fit(x, y, epochs=5, callbacks=[RunicornCallback(project="p")])``.

The optimizer's configuration (``optimizer.learning_rate`` …), the fit's ``epochs`` and
``steps_per_epoch``, and ``params=`` become the run's params; at the end of each epoch its logs
(``loss``, ``val_loss``, the compiled metrics, as Keras's History records them) are logged at
step = epoch + 1. ``log_every_n_batches=N`` also logs every N-th training batch's logs as
``batch/<name>`` at step = the batch's number since training began.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras  # type: ignore[import-untyped]

from runicorn_lite.integrations._common import OwnedRun, log_params, numeric
from runicorn_lite.sdk import Run

__all__ = ["RunicornCallback"]


class RunicornCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Logs a Keras training into a run (created from ``init_args``, or ``run=``)."""

    def __init__(
        self, run: Run | None = None, *, params: dict[str, Any] | None = None, log_every_n_batches: int | None = None,
        **init_args: Any,
    ) -> None:
        super().__init__()
        if log_every_n_batches is not None and (isinstance(log_every_n_batches, bool) or log_every_n_batches < 1):
            raise ValueError(f"log_every_n_batches must be a positive int, got {log_every_n_batches!r}")
        self._owned = OwnedRun(run, init_args)
        self._user_params = params
        self._every = log_every_n_batches
        self._batches = 0

    @property
    def run(self) -> Run:
        return self._owned.get()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        run = self._owned.get()
        self._batches = 0
        found: dict[str, Any] = {}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            # Keras 3 on torch reads its variables through numpy's deprecated __array__ path
            # here: the warning is Keras's, and not worth a line in every training's output.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                found["optimizer"] = optimizer.get_config()
        fit = self.params or {}
        if fit.get("epochs") is not None:
            found["epochs"] = fit["epochs"]
        if fit.get("steps") is not None:
            found["steps_per_epoch"] = fit["steps"]
        log_params(run, {**found, **(self._user_params or {})})

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches += 1
        if self._every is None or self._batches % self._every or not logs:
            return
        values = {f"batch/{k}": v for k, v in numeric(logs).items()}
        if values:
            self._owned.get().log(values, step=self._batches)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = numeric(logs or {})
        if values:
            self._owned.get().log(values, step=epoch + 1)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._owned.finish("finished")
