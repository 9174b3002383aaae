"""Opening the primary store (API keys, optimization runs and iterations) for a server or a
command: the SQLite file under the store folder, or PostgreSQL when ``--database`` says so."""

from __future__ import annotations

from runicorn_lite.db import Database
from runicorn_lite.db.backend import Backend
from runicorn_lite.optimization.schema import MIGRATIONS
from runicorn_lite.settings import Settings


def open_primary(settings: Settings) -> Backend:
    """The primary store of ``settings``, its schema created or migrated.

    SQLite: ``primary.sqlite`` (precious: never overwritten, a damaged file is reported, not
    replaced). PostgreSQL: the tables of ``optimization/pg_schema.py`` in the database of
    ``settings.postgres_url``, beside the index's; an unreachable server raises
    :class:`~runicorn_lite.db.postgres.DatabaseUnavailable` naming it.
    """
    url = settings.postgres_url
    if url is None:
        return Database(settings.primary_path, MIGRATIONS, precious=True)
    from runicorn_lite.db.postgres import PgDatabase
    from runicorn_lite.optimization.pg_schema import migrate_primary

    return PgDatabase(url, migrate_primary, name="primary")


def describe(settings: Settings) -> str:
    """Where the primary store of ``settings`` lives, for messages (never a password)."""
    url = settings.postgres_url
    if url is None:
        return str(settings.primary_path)
    from runicorn_lite.db.postgres import describe_url

    return f"PostgreSQL at {describe_url(url)}"
