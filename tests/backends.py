"""The two stores every API test runs against: SQLite files and a real PostgreSQL server.

An autouse, module-scoped fixture (``backend_fixture``, installed by the conftest of each API
test folder) runs every test of the folder once per backend. On PostgreSQL each store the test
opens lives in a schema of its own (``new_database()``), dropped when the store is closed.

PostgreSQL: ``$RUNICORN_LITE_TEST_POSTGRES`` (default ``postgresql://root@127.0.0.1:5432/root``).
Without a reachable server its half of the suite skips and the summary says so in a warning
line; with ``RUNICORN_LITE_POSTGRES_TESTS=required`` (set by CI) it fails instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

BASE_URL = os.environ.get("RUNICORN_LITE_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/root")
REQUIRED = os.environ.get("RUNICORN_LITE_POSTGRES_TESTS") == "required"
BACKENDS = ("sqlite", "postgresql")

_state: dict[str, Any] = {"current": "sqlite", "problem": None, "checked": False}
_schemas: dict[str, str] = {}  # url → schema, for dropping
_lock = threading.Lock()


def problem() -> str | None:
    """Why PostgreSQL cannot be used by the tests, or None (checked once)."""
    if not _state["checked"]:
        _state["checked"] = True
        try:
            import psycopg

            psycopg.connect(BASE_URL, connect_timeout=3).close()
        except Exception as exc:  # noqa: BLE001 - any failure means: no server for the tests
            _state["problem"] = f"PostgreSQL at {BASE_URL} cannot be reached ({str(exc).strip().splitlines()[0]})"
    return _state["problem"]


def current() -> str:
    """The backend of the tests running now."""
    return str(_state["current"])


def with_schema(base: str, schema: str) -> str:
    """``base`` with its search_path set to ``schema`` (then public, for pg_trgm)."""
    parts = urllib.parse.urlsplit(base)
    query = urllib.parse.parse_qsl(parts.query)
    query = [(k, v) for k, v in query if k != "options"]
    query.append(("options", f"-csearch_path={schema},public"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def new_database() -> str | None:
    """A database URL for one store of the current backend: None for SQLite (its files), else a
    new PostgreSQL schema of its own (dropped by :func:`drop_database`)."""
    if current() != "postgresql":
        return None
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = with_schema(BASE_URL, schema)
    with _lock:
        _schemas[url] = schema
    return url


def drop_database(url: str | None) -> None:
    """Drop the schema :func:`new_database` made for ``url`` (nothing for SQLite)."""
    if url is None:
        return
    with _lock:
        schema = _schemas.pop(url, None)
    if schema is None:
        return
    import psycopg

    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextlib.contextmanager
def using(backend: str) -> Iterator[None]:
    """Make ``backend`` the current one while the body runs."""
    before = _state["current"]
    _state["current"] = backend
    try:
        yield
    finally:
        _state["current"] = before


def backend_fixture(request: pytest.FixtureRequest) -> Iterator[str]:
    """The body of the autouse ``backend`` fixture: skip (or fail, when required) without a
    server, else run the module's tests with this backend current."""
    backend: str = request.param
    if backend == "postgresql" and request.node.get_closest_marker("sqlite_only") is not None:
        pytest.skip("checks SQLite's own files or planner")
    if backend == "postgresql" and request.node.get_closest_marker("compares_backends") is not None:
        pytest.skip("compares both backends itself (runs once, in the other half)")
    if backend == "postgresql":
        reason = problem()
        if reason is not None:
            if REQUIRED:
                pytest.fail(f"PostgreSQL tests are required here, but {reason}", pytrace=False)
            pytest.skip(reason)
    with using(backend):
        yield backend


def only_sqlite(request: pytest.FixtureRequest) -> None:
    """Skip a test marked ``sqlite_only`` (it checks SQLite's own files or planner) on PostgreSQL."""
    if current() == "postgresql" and request.node.get_closest_marker("sqlite_only") is not None:
        pytest.skip("checks SQLite's own files or planner")


def summary_line() -> str | None:
    """The warning the run ends with when the PostgreSQL half did not run."""
    if _state["checked"] and _state["problem"] is not None:
        return (f"WARNING: the PostgreSQL half of the API tests did NOT run: {_state['problem']}. "
                "Start it (pg_ctlcluster ... main start) or set RUNICORN_LITE_TEST_POSTGRES.")
    return None
