"""What the framework integrations share: the run an integration owns, and how it ends.

A framework tells a callback when training ends well, rarely when it fails. A run that an
integration created and that is still open when an uncaught exception ends the script is closed
``failed`` (``interrupted`` for a KeyboardInterrupt) by the exception hook. One still open at a
normal exit is closed with its integration's ``exit_status``: ``failed`` where the framework
always says when training ended (the training did not reach its end), ``finished`` where it
cannot say (LightGBM's early stopping ends training without telling its callbacks).
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from runicorn_lite.rundir.encode import json_safe
from runicorn_lite.sdk import Run, init

log = logging.getLogger("runicorn_lite")

_open: list[tuple[Run, str]] = []  # (run, the status it gets at a normal exit)
_lock = threading.Lock()
_hooks: list[Any] = []  # the excepthook that was in place before ours, once ours is installed


def _close_open(status: str | None) -> None:
    with _lock:
        runs = list(_open)
        _open.clear()
    for run, exit_status in runs:
        try:
            run.finish(status or exit_status)
        except Exception:
            log.warning("could not close run %s", run.id, exc_info=True)


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    _close_open("interrupted" if issubclass(kind, KeyboardInterrupt) else "failed")
    (_hooks[0] if _hooks else sys.__excepthook__)(kind, exc, tb)


def _install_hooks() -> None:
    with _lock:
        if _hooks:
            return
        _hooks.append(sys.excepthook)
    sys.excepthook = _excepthook
    atexit.register(_close_open, None)


class OwnedRun:
    """The run of one integration object: given (``run=``) or created on first use."""

    def __init__(self, run: Run | None, init_args: Mapping[str, Any], exit_status: str = "failed") -> None:
        if run is not None and init_args:
            raise TypeError(f"pass either run= or init's arguments, not both (got {', '.join(sorted(init_args))})")
        self._given = run
        self._exit_status = exit_status
        self._init_args = dict(init_args)
        self._run: Run | None = None

    @property
    def given(self) -> Run | None:
        """The run passed in as ``run=``, if any."""
        return self._given

    @property
    def created(self) -> Run | None:
        """The run, if one exists yet (never creates it)."""
        return self._given or self._run

    def get(self, **extra: Any) -> Run:
        """The run, created now (with ``extra`` init arguments) if it does not exist or ended."""
        if self._given is not None:
            return self._given
        if self._run is None or self._run.is_finished:
            self._run = init(**{**self._init_args, **extra})
            _install_hooks()
            with _lock:
                _open.append((self._run, self._exit_status))
        return self._run

    def finish(self, status: str = "finished") -> None:
        """End a created run (a given one is its owner's to end)."""
        run, self._run = self._run, None
        if run is None:
            return
        with _lock:
            _open[:] = [item for item in _open if item[0] is not run]
        run.finish(status)


def log_params(run: Run, params: Mapping[str, Any] | None) -> None:
    """Record ``params`` as the run's config (merged with what is there)."""
    if params:
        run.log_config(args=json_safe(dict(params)))


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of ``metrics`` (tensors and numpy scalars included) as floats."""
    out: dict[str, float] = {}
    for key, raw in metrics.items():
        value = raw.item() if hasattr(raw, "item") and getattr(raw, "ndim", 0) == 0 else raw
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[str(key)] = float(value)
    return out
