"""What a store's database is: the SQLite file, or PostgreSQL behind the same surface."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from runicorn_lite.db import Database
    from runicorn_lite.db.postgres import PgDatabase

Backend = Union["Database", "PgDatabase"]
