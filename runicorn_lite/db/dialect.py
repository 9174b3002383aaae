"""Which SQL dialect the statements built on this thread are for.

A read or a write on PostgreSQL marks its thread for the time its function runs; the builders of
SQL (filters, search, orders) ask :func:`on_postgres` and write the few pieces that differ. Every
other statement is the same text on both (see ``db/postgres.py``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

_local = threading.local()


def on_postgres() -> bool:
    """Whether the statement being built runs on PostgreSQL."""
    return getattr(_local, "postgres", False)


@contextlib.contextmanager
def postgres_statements() -> Iterator[None]:
    """Mark this thread's statements as PostgreSQL's while the body runs."""
    before = on_postgres()
    _local.postgres = True
    try:
        yield
    finally:
        _local.postgres = before


def pg_number(value: Any) -> Any:
    """A param's number as PostgreSQL's NUMERIC column keeps it: a float by its shortest decimal
    form (exact, and read back as the same double), an int as it is; other values unchanged."""
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else Decimal(str(value))
    return value
