"""One script of requests against the API on SQLite and on PostgreSQL: every answer the same,
byte for byte (status, body, ETag, Cache-Control), with the same clock and the same ids. Only
the answer's timing (``metadata.latencyMs``, ``metadata.timestamp``, an error's ``timestamp``)
and the key differ."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio.from_thread
import backends
import httpx
import orjson
import pytest
from opt_helpers import PREFIX, Api, Client, Clock, make_settings, release_database
from starlette.applications import Starlette
from starlette.routing import Mount

from runicorn_lite.optimization import create_app, queries
from runicorn_lite.optimization.keys import create_key
from runicorn_lite.optimization.limits import StoreLimiter
from runicorn_lite.optimization.model import OPTIMIZER_TYPES, STATUSES

COMPARED_HEADERS = ("etag", "cache-control", "content-type", "x-ratelimit-limit", "x-ratelimit-remaining")


class _Ids:
    """uuid4 made repeatable: the same run and iteration ids on both backends."""

    def __init__(self) -> None:
        self.counter = itertools.count(1)

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=next(self.counter), version=4)


@pytest.fixture
def apis(tmp_path: Path, backend: str) -> Iterator[dict[str, Api]]:
    """An app per backend (this test needs both, so it runs in the PostgreSQL half only)."""
    if backend != "postgresql":
        pytest.skip("compares with PostgreSQL: runs in its half")
    with ExitStack() as stack:
        portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
        apis = {}
        for name in backends.BACKENDS:
            with backends.using(name):
                settings = make_settings(tmp_path / name)
            stack.callback(release_database, settings.database)
            sub = create_app(settings)
            stack.callback(sub.state.api.close)
            # The rate-limit windows are aligned on the wall clock: one backend's script may
            # cross a window's end and the other's not. One moment for both, mid-window.
            sub.state.api.limiter = StoreLimiter(sub.state.db, clock=lambda: 1_764_000_030.0)
            client = Client(portal, Starlette(routes=[Mount(PREFIX, app=sub)]))
            stack.callback(client.close)
            apis[name] = Api(client, create_key(sub.state.db, "proj")[0])
        yield apis


def _script(rng: random.Random) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx arguments); ``{run:N}`` in a path is the N-th run created."""
    for n in range(14):
        body: dict[str, Any] = {"optimizer_type": OPTIMIZER_TYPES[n % 3], "config": {"n": n}}
        if n % 4 == 0:
            body["direction"] = "minimize"
        if n % 5:
            body["run_name"] = f"run {n}"
        yield "POST", "/runs", {"json": body}
    for n in range(14):
        run = f"{{run:{n}}}"
        if n % 3:
            scores = [rng.choice([1, 0.5, -2, 0.1 + 0.2, 1e300, 3]) for _ in range(rng.randint(1, 4))]
            yield "POST", f"/runs/{run}/iterations", {"json": {
                "iteration_number": 0, "params": {"lr": 0.1}, "score": scores[0], "duration_ms": 10 * n}}
            yield "POST", f"/runs/{run}/iterations/batch", {"json": {"iterations": [
                {"iteration_number": i + 1, "params": {"i": i}, "score": s, "metrics": {"m": s}}
                for i, s in enumerate(scores)]}}
            yield "POST", f"/runs/{run}/iterations", {"json": {"iteration_number": 1, "params": {}, "score": 2}}
            yield "POST", f"/runs/{run}/iterations/batch", {"json": {"iterations": [
                {"iteration_number": i, "params": {}, "score": 1} for i in (9, 1, 0)]}}
        if n % 4 != 1:
            patch: dict[str, Any] = {"status": STATUSES[1 + n % 4]}
            if n % 2:
                patch["final_score"] = rng.choice([7, 0.25, -1, 2.5e-8])
            if n % 3 == 0:
                patch["duration_ms"] = 1000 + n
            yield "PATCH", f"/runs/{run}", {"json": patch}
        yield "PATCH", f"/runs/{run}", {"json": {"status": "pending"}}
        yield "GET", f"/runs/{run}", {}
    for order_by, order in itertools.product(("created_at", "final_score", "duration_ms"), ("asc", "desc")):
        for extra in ({}, {"status": "completed"}, {"optimizer_type": "bayesian"}):
            yield "GET", "/runs", {"params": {"order_by": order_by, "order": order, "limit": 4, "offset": 2, **extra}}
    yield "GET", "/runs", {"params": {"limit": 100}}
    yield "GET", "/runs", {"params": {"limit": 0}}
    yield "GET", "/runs/550e8400-e29b-41d4-a716-446655440000", {}
    yield "POST", "/runs/{run:3}/iterations", {"json": {"iteration_number": 9, "params": {}, "score": 1}}
    for params in ({}, {"status": "completed"}, {"optimizer_type": "genetic"},
                   {"start_date": "2025-11-23T10:00:05Z", "end_date": "2025-11-23T10:00:40Z"},
                   {"start_date": "2025-11-22T00:00:00Z"}):
        yield "GET", "/stats", {"params": params}


def _answer(api: Api, ids: list[str], method: str, path: str, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    for n, run_id in enumerate(ids):
        path = path.replace(f"{{run:{n}}}", run_id)
    response: httpx.Response = api.request(method, path, **kwargs)
    body = response.json()
    if method == "POST" and path == "/runs" and response.status_code == 201:
        ids.append(body["run"]["id"])
    if response.status_code >= 400:
        body.pop("timestamp")  # an error's time of answer
    metadata = body.pop("metadata", {})
    metadata.pop("latencyMs", None)
    metadata.pop("timestamp", None)
    headers = {name: response.headers.get(name) for name in COMPARED_HEADERS}
    return response.status_code, orjson.dumps(body, option=orjson.OPT_SORT_KEYS), metadata, headers


def test_every_answer_is_the_same_on_both(
    apis: dict[str, Api], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: dict[str, list[tuple[Any, ...]]] = {}
    for name, api in apis.items():
        monkeypatch.setattr(queries, "uuid", _Ids())
        clock.set("2025-11-23T10:00:00Z")
        ids: list[str] = []
        answers[name] = [_answer(api, ids, *step) for step in _script(random.Random(7))]
    sqlite, postgresql = answers["sqlite"], answers["postgresql"]
    assert len(sqlite) == len(postgresql) > 100
    for step, (a, b) in enumerate(zip(sqlite, postgresql, strict=True)):
        assert a == b, f"step {step}"
    statuses = {answer[0] for answer in sqlite}
    assert {200, 201, 400, 404, 409} <= statuses  # the script reaches errors, not only successes
    assert any(answer[3]["etag"] for answer in sqlite)
