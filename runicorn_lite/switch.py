"""Runicorn's switch: ``set_enabled(False)`` (or ``RUNICORN_ON=0``) makes ``init`` return a run
whose every call does nothing, so a script can keep its logging lines and turn them off; and the
run ``init`` made last (``get_active_run``)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self


class _State:
    override: bool | None = None  # set_enabled's value
    active: Any = None  # the run init returned last


_state = _State()


def _parse_bool(raw: str) -> bool | None:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "y", "on"}:
        return True
    if value in {"0", "false", "no", "n", "off"}:
        return False
    return None


def is_enabled() -> bool:
    """``set_enabled``'s value, else ``$RUNICORN_ON`` (on unless it says off)."""
    if _state.override is not None:
        return _state.override
    parsed = _parse_bool(os.environ.get("RUNICORN_ON", ""))
    return True if parsed is None else parsed


def set_enabled(enabled: bool) -> None:
    """Turn every later ``init`` into a no-op run (False) or back on (True)."""
    _state.override = bool(enabled)


def reset_enabled() -> None:
    """Forget ``set_enabled``: ``$RUNICORN_ON`` decides again."""
    _state.override = None


@contextlib.contextmanager
def enabled(value: bool) -> Iterator[None]:
    """``with enabled(False): ...``: the switch for a block, put back after it."""
    previous = _state.override
    _state.override = bool(value)
    try:
        yield
    finally:
        _state.override = previous


def get_active_run() -> Any:
    """The run ``init`` returned last, until it finishes (None when there is none)."""
    return _state.active


def set_active(run: Any) -> None:
    _state.active = run


def clear_active(run: Any) -> None:
    if _state.active is run:
        _state.active = None


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


class NoOpRun:
    """What ``init`` returns while tracking is off: the methods of a run, doing nothing."""

    def __init__(self, path: str | None = None, alias: str | None = None) -> None:
        self.path = path or "default"
        self.alias = alias
        self.id = "disabled"
        self.run_dir = None
        self.is_finished = False

    def log_image(self, *_args: Any, **_kwargs: Any) -> str:
        return ""

    def get_logging_handler(self, *_args: Any, **_kwargs: Any) -> logging.Handler:
        return logging.NullHandler()

    def finish(self, *_args: Any, **_kwargs: Any) -> None:
        self.is_finished = True

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("__"):
            raise AttributeError(name)
        return _nothing

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish()
