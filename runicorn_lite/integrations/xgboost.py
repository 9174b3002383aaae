"""XGBoost: ``xgb.train(params, dtrain, evals=[(dvalid, "eval")], callbacks=[RunicornCallback(project="p")])``.

The booster's parameters (as the booster reports them, with XGBoost's defaults filled in) become
the run's params; after each boosting round every evaluation result is logged as
``<data>-<metric>`` at step = round + 1 (``xgb.cv``'s ``(mean, std)`` pairs as ``<data>-<metric>``
and ``<data>-<metric>-std``). The sklearn wrappers take the callback the same way
(``XGBClassifier(callbacks=[...])``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import xgboost

from runicorn_lite.integrations._common import OwnedRun, log_params
from runicorn_lite.sdk import Run

__all__ = ["RunicornCallback"]


def _number(text: str) -> Any:
    """XGBoost's config strings as values: numbers as numbers (float32 noise rounded off)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return float(f"{value:.7g}") if math.isfinite(value) else text


def booster_params(model: Any) -> dict[str, Any]:
    """The training parameters of a Booster (xgb.cv's: of its first fold), from its saved
    configuration."""
    folds = getattr(model, "cvfolds", None)
    if folds:
        model = folds[0].bst
    learner = json.loads(model.save_config())["learner"]
    params: dict[str, Any] = {}
    sections = [learner.get("learner_train_param", {}), learner.get("generic_param", {})]
    booster = learner.get("gradient_booster", {})
    sections += [value for key, value in booster.items() if key.endswith("train_param") and isinstance(value, dict)]
    for section in sections:
        for key, text in section.items():
            if isinstance(text, str) and text != "":
                params[key] = _number(text)
    metrics = [m.get("name") for m in learner.get("metrics", []) if isinstance(m, dict)]
    if metrics:
        params["eval_metric"] = metrics[0] if len(metrics) == 1 else metrics
    return params


class RunicornCallback(xgboost.callback.TrainingCallback):
    """Logs an XGBoost training into a run (created from ``init_args``, or ``run=``).

    ``params=`` adds parameters of your own to what the booster reports.
    """

    def __init__(self, run: Run | None = None, *, params: dict[str, Any] | None = None, **init_args: Any) -> None:
        super().__init__()
        self._owned = OwnedRun(run, init_args)
        self._params = params

    @property
    def run(self) -> Run:
        return self._owned.get()

    def before_training(self, model: Any) -> Any:
        run = self._owned.get()
        log_params(run, {**booster_params(model), **(self._params or {})})
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
        values: dict[str, float] = {}
        for data, metrics in evals_log.items():
            for metric, history in metrics.items():
                if not history:
                    continue
                last = history[-1]
                if isinstance(last, tuple):  # xgb.cv: (mean, std)
                    values[f"{data}-{metric}"] = float(last[0])
                    values[f"{data}-{metric}-std"] = float(last[1])
                else:
                    values[f"{data}-{metric}"] = float(last)
        if values:
            self._owned.get().log(values, step=epoch + 1)
        return False

    def after_training(self, model: Any) -> Any:
        self._owned.finish("finished")
        return model
