"""What the framework integrations share: the run an integration owns, and how it ends.

A framework tells a callback when training ends well, rarely when it fails. A run that an
integration created and that is still open when the interpreter exits did not see its training
end: it is closed ``failed`` (``interrupted`` after a KeyboardInterrupt), from an uncaught
exception's hook or at exit.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from runicorn_lite.sdk import Run, init, json_safe

log = logging.getLogger("runicorn_lite")

_open: list[Run] = []
_lock = threading.Lock()
_hooks: list[Any] = []  # the excepthook that was in place before ours, once ours is installed


def _close_open(status: str) -> None:
    with _lock:
        runs = list(_open)
        _open.clear()
    for run in runs:
        try:
            run.finish(status)
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
    atexit.register(_close_open, "failed")


class OwnedRun:
    """The run of one integration object: given (``run=``) or created on first use."""

    def __init__(self, run: Run | None, init_args: Mapping[str, Any]) -> None:
        if run is not None and init_args:
            raise TypeError(f"pass either run= or init's arguments, not both (got {', '.join(sorted(init_args))})")
        self._given = run
        self._init_args = dict(init_args)
        self._run: Run | None = None

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
                _open.append(self._run)
        return self._run

    def finish(self, status: str = "finished") -> None:
        """End a created run (a given one is its owner's to end)."""
        run, self._run = self._run, None
        if run is None:
            return
        with _lock:
            if run in _open:
                _open.remove(run)
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
