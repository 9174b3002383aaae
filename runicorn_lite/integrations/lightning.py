"""PyTorch Lightning: ``Trainer(logger=RunicornLogger(project="p", name="n"))``.

``log_hyperparams`` → the run's config (params); ``log_metrics(metrics, step)`` → metrics at that
step; ``log_image(key, images, step)`` → the run's images; ``finalize`` → finished / failed /
interrupted. Only rank 0 writes. ``version`` is the run id.

The run is created lazily, at the first call that writes something: Lightning touches a logger
(``experiment``, ``version``) before it restores a checkpoint, and a logger must not leave an
empty run behind. Every checkpoint save records the run beside the checkpoint (in
``runicorn-runs.json`` in the checkpoint folder); ``fit(ckpt_path=…)`` with a new logger of the
same project and name then resumes that run, and its steps continue. ``resume=<run id>``
resumes a run explicitly. Works with ``lightning`` and with ``pytorch_lightning``.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.fabric.utilities.rank_zero import rank_zero_only
    from lightning.pytorch.loggers import Logger
except ImportError:  # only the older package, pytorch_lightning, is installed
    from lightning_fabric.loggers.logger import rank_zero_experiment  # type: ignore[no-redef,unused-ignore]
    from lightning_fabric.utilities.rank_zero import rank_zero_only  # type: ignore[no-redef,unused-ignore]
    from pytorch_lightning.loggers import Logger  # type: ignore[assignment,unused-ignore]

from runicorn_lite import rundir
from runicorn_lite.integrations._common import OwnedRun, log_params, numeric
from runicorn_lite.sdk import Run, new_run_id

__all__ = ["SIDECAR", "RunicornLogger"]

log = logging.getLogger("runicorn_lite")

# Written into each checkpoint folder: checkpoint file name → the run that saved it.
SIDECAR = "runicorn-runs.json"
_STATUSES = {"success": "finished", "finished": "finished", "failed": "failed", "interrupted": "interrupted"}


def _image_array(image: Any) -> Any:
    """A torch tensor (C×H×W or H×W×C, floats in [0, 1] or uint8) as an H×W×C uint8 array."""
    if not hasattr(image, "detach"):
        return image
    array = image.detach().cpu().numpy()
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)
    if array.dtype.kind == "f":
        array = (array.clip(0.0, 1.0) * 255.0).round()
    return array.astype("uint8")


def _read_sidecar(folder: Path) -> dict[str, Any]:
    obj = rundir.read_json_object(folder / SIDECAR)
    return obj if obj is not None else {}


class _LazyRun:
    """``logger.experiment`` before the run exists: any use of it creates the run."""

    def __init__(self, logger: RunicornLogger) -> None:
        self._logger = logger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger._ensure_run(), name)


class RunicornLogger(Logger):
    """A Lightning logger that writes a runicorn-lite run.

    ``run=`` logs into an existing run (left open at the end); otherwise ``init``'s arguments
    (``project``, ``name``, ``root``, ``tags``, ``system_metrics`` …) describe the run to create.
    ``save_dir`` is where Lightning puts checkpoints (``<save_dir>/<name>/<version>/checkpoints``;
    by default under the Trainer's ``default_root_dir``).
    """

    def __init__(
        self, run: Run | None = None, *, resume: str | None = None, save_dir: str | os.PathLike[str] | None = None,
        **init_args: Any,
    ) -> None:
        super().__init__()
        if run is not None and resume is not None:
            raise TypeError("pass either run= or resume=, not both")
        # Lightning finalizes a failed training itself: a run still open at exit was reopened by
        # a call after the trainer was done with it.
        self._owned = OwnedRun(run, init_args, exit_status="finished")
        self._init_args = dict(init_args)
        self._resume = resume
        self._save_dir = os.fspath(save_dir) if save_dir is not None else None
        self._reserved_id = resume or init_args.get("run_id") or new_run_id()
        self._finished_id: str | None = None  # a run this logger finished: later logging resumes it
        self._pending: dict[str, Any] = {}
        self._ckpt_path: str | None = None
        self._last: Run | None = None  # the run this logger wrote last (it may be finished)

    # -- what Lightning reads -----------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self._init_args.get("name") or self._init_args.get("project") or "default")

    @property
    def version(self) -> str:
        run = self._owned.created or self._last
        return run.id if run is not None else self._reserved_id

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    @property
    def log_dir(self) -> str | None:
        """The run's directory, once the run exists."""
        run = self._owned.created or self._last
        return str(run.run_dir) if run is not None else None

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        run = self._owned.created
        return run if run is not None else _LazyRun(self)

    # -- what Lightning calls -----------------------------------------------------------------

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | argparse.Namespace, *args: Any, **kwargs: Any) -> None:
        values = dict(vars(params)) if isinstance(params, argparse.Namespace) else dict(params or {})
        run = self._owned.created
        if run is None:  # a checkpoint may still name the run: wait for it (log_graph comes next)
            self._pending.update(values)
        else:
            log_params(run, values)

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        # Called right after log_hyperparams, once the checkpoint (if any) is restored: the
        # moment to know which run this is.
        trainer = getattr(model, "_trainer", None)
        ckpt_path = getattr(trainer, "ckpt_path", None) if trainer is not None else None
        if ckpt_path is not None:
            self._ckpt_path = os.fspath(ckpt_path)
        if self._pending:
            self._ensure_run()

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        values = numeric(metrics)
        epoch = values.pop("epoch", None)
        if not values:
            return
        run = self._ensure_run()
        if epoch is not None:
            values["epoch"] = epoch
        run.log(values, step=step)

    @rank_zero_only
    def log_image(self, key: str, images: list[Any], step: int | None = None, **kwargs: Any) -> None:
        """Each image (a path, bytes, a Pillow image, an array or a tensor) under ``key``;
        ``caption=[...]`` gives each its caption."""
        if not isinstance(images, (list, tuple)):
            raise TypeError(f"images must be a list, got {type(images).__name__}")
        captions = kwargs.get("caption") or [None] * len(images)
        run = self._ensure_run()
        for image, caption in zip(images, captions, strict=False):
            run.log_image(key, _image_array(image), step=step, caption=caption)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        run = self._ensure_run()
        folder = getattr(checkpoint_callback, "dirpath", None)
        if not folder:
            return
        saved = {getattr(checkpoint_callback, attr, "") for attr in
                 ("_last_checkpoint_saved", "best_model_path", "last_model_path")}
        entry = {"run_id": run.id, "path": run.path}
        sidecar = _read_sidecar(Path(folder))
        files = sidecar.get("files")
        files = dict(files) if isinstance(files, dict) else {}
        files.update((os.path.basename(path), entry) for path in saved if path)
        rundir.atomic_write_json(Path(folder) / SIDECAR, {"latest": entry, "files": files}, durable=False)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        run = self._owned.created
        if run is None and self._pending:
            run = self._ensure_run()
        if run is None or run is self._owned.given:
            return  # nothing was logged (no run, not even an empty one), or the run is its owner's
        self._finished_id = run.id
        self._owned.finish(_STATUSES.get(status, "finished"))

    # -- internals ------------------------------------------------------------------------------

    def _run_of_checkpoint(self) -> str | None:
        """The run that saved the checkpoint being resumed from, if it is this logger's run."""
        if self._ckpt_path is None:
            return None
        sidecar = _read_sidecar(Path(self._ckpt_path).parent)
        files = sidecar.get("files")
        entry = files.get(os.path.basename(self._ckpt_path)) if isinstance(files, dict) else None
        if not isinstance(entry, dict):
            entry = sidecar.get("latest")
        if not isinstance(entry, dict) or not isinstance(entry.get("run_id"), str):
            return None
        return entry["run_id"] if entry.get("path") == self._path() else None

    def _path(self) -> str:
        """The run path ``init`` makes of this logger's arguments."""
        args = self._init_args
        path = args.get("path") or "/".join(p for p in (args.get("project") or "default", args.get("name")) if p)
        return "/".join(p.strip() for p in str(path).replace("\\", "/").split("/") if p.strip())

    def _ensure_run(self) -> Run:
        run = self._owned.created
        if run is None:
            resume = self._resume or self._finished_id
            from_checkpoint = None if resume else self._run_of_checkpoint()
            run = None
            if resume or from_checkpoint:
                try:
                    run = self._owned.get(resume=resume or from_checkpoint)
                except ValueError:
                    if resume:
                        raise
                    log.warning("the run %s that saved %s is gone: logging into a new run", from_checkpoint,
                                self._ckpt_path)
            if run is None:
                run = self._owned.get(run_id=self._reserved_id)
            if self._pending:
                log_params(run, self._pending)
                self._pending = {}
            self._last = run
        return run
