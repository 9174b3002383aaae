"""LightGBM: ``lgb.train(params, dtrain, valid_sets=[dvalid], callbacks=[runicorn_callback(project="p")])``.

``env.params`` become the run's params; after each iteration every evaluation result is logged
as ``<data>-<metric>`` at step = iteration + 1 (``lgb.cv``'s standard deviations as
``<data>-<metric>-std``). The run is finished after the last planned iteration; training ended
early (``early_stopping``) does not tell its callbacks, so such a run is finished when the next
training with this callback starts, or at exit.
"""

from __future__ import annotations

from typing import Any

import lightgbm  # noqa: F401 - the extra this module needs: fail at import when it is missing

from runicorn_lite.integrations._common import OwnedRun, log_params
from runicorn_lite.sdk import Run

__all__ = ["RunicornLightGBMCallback", "runicorn_callback"]


class RunicornLightGBMCallback:
    """The callable that ``runicorn_callback`` returns (a LightGBM after-iteration callback)."""

    # Before early_stopping (30), so the iteration that stops training is logged too.
    order = 25
    before_iteration = False

    def __init__(self, run: Run | None, init_args: dict[str, Any]) -> None:
        self._owned = OwnedRun(run, init_args, exit_status="finished")

    @property
    def run(self) -> Run:
        return self._owned.get()

    def __call__(self, env: Any) -> None:
        if env.iteration == env.begin_iteration:
            self._owned.finish("finished")  # a training that stopped early, before this one
            log_params(self._owned.get(), env.params)
        values: dict[str, float] = {}
        for item in env.evaluation_result_list or ():
            data, metric, value = item[0], item[1], item[2]
            if data == "cv_agg":  # lgb.cv: ("cv_agg", "valid l2", mean, higher_better, std)
                data, _, metric = str(metric).partition(" ")
            values[f"{data}-{metric}"] = float(value)
            if len(item) > 4:
                values[f"{data}-{metric}-std"] = float(item[4])
        run = self._owned.get()
        if values:
            run.log(values, step=env.iteration + 1)
        if env.iteration + 1 >= env.end_iteration:
            self._owned.finish("finished")


def runicorn_callback(run: Run | None = None, **init_args: Any) -> RunicornLightGBMCallback:
    """A LightGBM callback that logs the training into a run (created from ``init_args``, or
    ``run=``)."""
    return RunicornLightGBMCallback(run, init_args)
