"""Fixtures of the optimization API tests: a real primary store (a SQLite file under tmp_path, or a
PostgreSQL schema of its own: every test runs on both, see tests/backends.py), the sub-app
mounted where the server mounts it, and keys made through the real key functions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio.from_thread
import backends
import pytest
from opt_helpers import PREFIX, Api, Client, Clock, drop_spare_databases, make_settings, release_database
from starlette.applications import Starlette
from starlette.routing import Mount

from runicorn_lite.optimization import create_app
from runicorn_lite.optimization.keys import create_key
from runicorn_lite.settings import Settings


@pytest.fixture(scope="module", params=backends.BACKENDS, autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test of this folder runs on SQLite and on PostgreSQL (see tests/backends.py)."""
    try:
        yield from backends.backend_fixture(request)
    finally:
        drop_spare_databases()


@pytest.fixture(autouse=True)
def _sqlite_only(request: pytest.FixtureRequest, backend: str) -> None:
    backends.only_sqlite(request)


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    made = make_settings(tmp_path)
    yield made
    release_database(made.database)


@pytest.fixture
def app(settings: Settings) -> Iterator[Starlette]:
    sub = create_app(settings)
    yield Starlette(routes=[Mount(PREFIX, app=sub)])
    sub.state.api.close()


@pytest.fixture
def sub_app(app: Starlette) -> Starlette:
    return app.routes[0].app  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def client(app: Starlette) -> Iterator[Client]:
    with anyio.from_thread.start_blocking_portal() as portal:
        test_client = Client(portal, app)
        yield test_client
        test_client.close()


@pytest.fixture
def new_key(sub_app: Starlette) -> Callable[..., str]:
    def make(project: str = "proj_123", label: str | None = None) -> str:
        key, _ = create_key(sub_app.state.db, project, label)
        return key

    return make


@pytest.fixture
def api(client: Client, new_key: Callable[..., str]) -> Api:
    return Api(client, new_key("proj_123"))


@pytest.fixture
def anon(client: Client) -> Api:
    return Api(client, None)


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., tuple[Api, Starlette]]]:
    """Build another app over its own root with some settings changed; returns a client bound
    to a fresh key of ``proj`` and the sub-app (closed at the end of the test)."""
    with ExitStack() as stack:
        portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
        count = 0

        def make(**overrides: Any) -> tuple[Api, Starlette]:
            nonlocal count
            count += 1
            settings = make_settings(tmp_path / f"app{count}", **overrides)
            stack.callback(release_database, settings.database)
            sub = create_app(settings)
            stack.callback(sub.state.api.close)
            client = Client(portal, Starlette(routes=[Mount(PREFIX, app=sub)]))
            stack.callback(client.close)
            key, _ = create_key(sub.state.db, "proj")
            return Api(client, key), sub

        yield make


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Controls the timestamps the store writes (and its idea of today)."""
    from runicorn_lite.optimization import queries, stats

    fake = Clock()
    monkeypatch.setattr(queries, "now_iso", fake.now_iso)
    monkeypatch.setattr(stats, "now_utc", fake.now_utc)
    return fake
