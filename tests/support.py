"""Helpers shared by tests (a module of its own: every conftest.py is named alike)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from runicorn_lite.devserver import ServerProcess

__all__ = ["FIXTURES", "ServerProcess", "copy_fixture", "wait_for"]

FIXTURES = Path(__file__).parent / "fixtures"


def copy_fixture(name: str, dest: Path) -> Path:
    """Copy a checked-in corpus (written by the real runicorn SDK) into ``dest``."""
    shutil.copytree(FIXTURES / name, dest, dirs_exist_ok=True)
    return dest


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> object:
    """Poll ``predicate`` until it is truthy (its value is returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
