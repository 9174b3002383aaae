"""Helpers shared by tests (a module of its own: every conftest.py is named alike)."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def copy_fixture(name: str, dest: Path) -> Path:
    """Copy a checked-in corpus (written by the real runicorn SDK) into ``dest``."""
    shutil.copytree(FIXTURES / name, dest, dirs_exist_ok=True)
    return dest
