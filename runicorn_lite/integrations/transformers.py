"""Hugging Face Transformers: ``Trainer(..., callbacks=[RunicornCallback(project="p")])``.

At the start of training the ``TrainingArguments`` (``learning_rate`` …) and the model's
configuration (``model.hidden_size`` …) become the run's params. Every ``on_log`` is logged at
``state.global_step`` with the Trainer's names made into sections: ``eval_loss`` → ``eval/loss``,
``test_…`` → ``test/…``, anything else ``train/…`` (``loss`` → ``train/loss``); ``epoch`` stays
as it is. The Trainer's closing figures (``train_runtime``, ``train_loss`` …) go to the run's
summary. ``on_train_end`` finishes the run. Only the main process writes.
"""

from __future__ import annotations

from typing import Any

import transformers

from runicorn_lite.integrations._common import OwnedRun, log_params, numeric
from runicorn_lite.sdk import Run

__all__ = ["RunicornCallback", "rewrite_logs"]

_SECTIONS = ("eval", "test")
# The figures the Trainer logs once, when training ends.
_CLOSING = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",
                      "train_loss"})


def rewrite_logs(logs: dict[str, float]) -> dict[str, float]:
    """The Trainer's log names as sections: ``eval_loss`` → ``eval/loss``, ``loss`` → ``train/loss``."""
    out: dict[str, float] = {}
    for key, value in logs.items():
        if key == "epoch":
            out[key] = value
            continue
        for section in _SECTIONS:
            if key.startswith(section + "_"):
                out[f"{section}/{key[len(section) + 1:]}"] = value
                break
        else:
            out[f"train/{key}"] = value
    return out


class RunicornCallback(transformers.TrainerCallback):
    """Logs a Trainer's training into a run (created from ``init_args``, or ``run=``)."""

    def __init__(self, run: Run | None = None, *, params: dict[str, Any] | None = None, **init_args: Any) -> None:
        super().__init__()
        self._owned = OwnedRun(run, init_args)
        self._params = params

    @property
    def run(self) -> Run:
        return self._owned.get()

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        found: dict[str, Any] = dict(args.to_sanitized_dict())
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            found["model"] = config.to_dict()
        log_params(self._owned.get(), {**found, **(self._params or {})})

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        values = numeric(logs)
        run = self._owned.get()
        closing = {k: values.pop(k) for k in list(values) if k in _CLOSING and "train_runtime" in logs}
        if closing:
            run.summary(closing)
        if set(values) - {"epoch"}:
            run.log(rewrite_logs(values), step=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self._owned.finish("finished")
