"""Which SQL dialect the statements built on this thread are for.

A read or a write on PostgreSQL marks its thread for the time its function runs; the builders of
SQL (filters, search, orders) ask :func:`on_postgres` and write the few pieces that differ. Every
other statement is the same text on both (see ``db/postgres.py``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

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
