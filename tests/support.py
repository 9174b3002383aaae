"""Helpers shared by tests (a module of its own: every conftest.py is named alike)."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devserver import ServerProcess

from runicorn_lite.db import Database
from runicorn_lite.db.schema import INDEX_MIGRATIONS
from runicorn_lite.ingest import Indexer
from runicorn_lite.settings import Settings

__all__ = ["FIXTURES", "ServerProcess", "copy_fixture", "open_index", "reference_summary", "rows", "wait_for"]

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


def open_index(root: Path) -> tuple[Database, Indexer]:
    """A real index of ``root`` (in its store folder) and the indexer that fills it."""
    settings = Settings(root=root)
    settings.ensure_dirs()
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    return db, Indexer(settings.root, db)


def rows(db: Database, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every row of one read statement."""
    return db.read(lambda c: c.execute(sql, params).fetchall())


def reference_summary(series: Mapping[int, float]) -> dict[str, Any]:
    """A metric's summary as extensions.md §2 defines it, computed the slow, obvious way: over
    the finite values, in step order."""
    finite = [(s, series[s]) for s in sorted(series) if math.isfinite(series[s])]
    return {
        "first": finite[0][1] if finite else None,
        "last": finite[-1][1] if finite else None,
        "min": min((v for _, v in finite), default=None),
        "max": max((v for _, v in finite), default=None),
        "count": len(finite),
        "last_step": finite[-1][0] if finite else None,
    }
