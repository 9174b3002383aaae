"""Helpers shared by the optimization API tests (a module name of its own, so that it never
collides with another folder's conftest)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.from_thread
import backends
import httpx
from starlette.applications import Starlette

from runicorn_lite.settings import Settings
from runicorn_lite.timeutil import format_iso

PREFIX = "/api/iris/optimization"


class Client:
    """Synchronous calls into the app through httpx.ASGITransport on one event-loop thread
    (Starlette's TestClient warns about httpx, and warnings are errors here)."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, app: Starlette) -> None:
        self.portal = portal
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            return await self.http.request(method, url, **kwargs)

        return self.portal.call(call)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def close(self) -> None:
        self.portal.call(self.http.aclose)


class Api:
    """A client bound to one key, speaking paths relative to the mount point."""

    def __init__(self, client: Client, key: str | None) -> None:
        self.client = client
        self.key = key

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return {**headers, **(extra or {})}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs["headers"] = self.headers(kwargs.get("headers"))
        return self.client.request(method, PREFIX + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def create_run(self, **fields: Any) -> dict[str, Any]:
        body = {"optimizer_type": "bayesian", "config": {}, **fields}
        response = self.post("/runs", json=body)
        assert response.status_code == 201, response.text
        return response.json()["run"]


def make_settings(root: Path, **overrides: Any) -> Settings:
    """Settings over ``root`` on the backend of the tests running now (on PostgreSQL a schema of
    its own, which whoever made the settings gives back: :func:`release_database`)."""
    overrides.setdefault("database", new_database())
    return Settings(root=root, watch=False, **overrides)


# Schemas of tests that are done, holding the primary store's tables, emptied: creating and
# migrating a schema costs 0.3-0.5 s of DDL on this machine, emptying one a few ms. A test still
# has its schema to itself; every schema is dropped when its module ends (drop_spare_databases).
_spare: list[str] = []
# Children first, so that no foreign key or trigger finds a row it needs gone.
_PRIMARY_ROWS = ("optimization_iterations", "optimization_runs", "optimization_run_summary",
                 "optimization_run_daily", "optimization_project_revisions", "api_keys",
                 "optimization_rate_limits")


def new_database() -> str | None:
    """A database URL for one primary store of the current backend (None on SQLite): an emptied
    schema of a finished test, else a new one (``backends.new_database``)."""
    if backends.current() != "postgresql":
        return None
    return _spare.pop() if _spare else backends.new_database()


def release_database(url: str | None) -> None:
    """Give back a schema of :func:`new_database` once its stores are closed: emptied for the next
    test when it holds only a migrated primary store, else dropped."""
    if url is None:
        return
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            found = conn.execute(
                "SELECT to_regclass('_primary_migrations') IS NOT NULL, to_regclass('experiments') IS NULL"
            ).fetchone()
            if found != (True, True):
                raise LookupError("not a schema of the primary store alone")
            for table in _PRIMARY_ROWS:  # names from the tuple above, never from a test
                conn.execute(f"DELETE FROM {table}")
    except (psycopg.Error, LookupError):
        backends.drop_database(url)
    else:
        _spare.append(url)


def drop_spare_databases() -> None:
    """Drop every emptied schema kept for reuse (at the end of a module)."""
    while _spare:
        backends.drop_database(_spare.pop())


class Clock:
    """A stand-in for the store's clock: every timestamp it hands out is ``step`` later than
    the previous one, so creation order is never a same-millisecond tie."""

    def __init__(self, start: str = "2025-11-23T10:00:00Z", step_s: float = 1.0) -> None:
        self.now = datetime.fromisoformat(start)
        self.step = timedelta(seconds=step_s)

    def set(self, moment: str) -> None:
        self.now = datetime.fromisoformat(moment)

    def now_iso(self) -> str:
        current = self.now
        self.now += self.step
        return format_iso(current)

    def now_utc(self) -> datetime:
        return self.now
