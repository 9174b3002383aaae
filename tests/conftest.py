"""Shared fixtures: data roots on real disks, the app in process, and a real server process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import backends
import httpx
import pytest
import pytest_asyncio
from support import ServerProcess

from runicorn_lite.app import create_app
from runicorn_lite.settings import Settings


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty data root."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def make_app(root: Path):
    """Build an app over ``root`` (ingest is driven by the test: call ``app.state.ctx.indexer.scan()``)."""
    apps = []

    def factory(**kwargs):
        if "database" not in kwargs:
            kwargs["database"] = backends.new_database()
        app = create_app(Settings(root=kwargs.pop("root", root), **kwargs), ingest=False)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        close_app(app)


def close_app(app) -> None:
    """Close what create_app opened (and drop its PostgreSQL schema)."""
    app.state.ctx.store.close()
    app.state.optimization.state.api.close()
    app.state.ctx.preferences.close()
    app.state.ctx.index.close()
    backends.drop_database(app.state.ctx.settings.database)


def pytest_terminal_summary(terminalreporter) -> None:
    line = backends.summary_line()
    if line:
        terminalreporter.write_sep("!", "POSTGRESQL TESTS SKIPPED", yellow=True, bold=True)
        terminalreporter.write_line(line, yellow=True, bold=True)


@pytest_asyncio.fixture
async def client_for() -> AsyncIterator:
    """``client_for(app)`` → an httpx.AsyncClient talking to the app in process."""
    clients: list[httpx.AsyncClient] = []

    def factory(app) -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        clients.append(c)
        return c

    yield factory
    for c in clients:
        await c.aclose()


@pytest.fixture
def server_factory() -> Iterator:
    """``server_factory(root, *extra_args)`` → a started ServerProcess (stopped after the test)."""
    servers: list[ServerProcess] = []

    def factory(root: Path, *args: str) -> ServerProcess:
        server = ServerProcess(root, *args)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()
