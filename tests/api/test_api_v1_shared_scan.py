"""V1's full scans are shared: one at a time, however many requests arrive during it, and the
server's memory for them does not grow with the number of requests."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Iterator

import pytest
from api_helpers import close_app, open_app
from starlette.applications import Starlette

import runicorn_lite
from runicorn_lite.api.v1_scan import shared_scan

RUNS = 300


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Starlette]:
    root = tmp_path_factory.mktemp("scan") / "data"
    for i in range(RUNS):
        with runicorn_lite.init(project=f"p{i % 3}", name=f"n{i % 7}", root=root, tags=["t"],
                                config={"lr": i / 1000}) as run:
            run.log({"loss": 1.0 / (i + 1)}, step=1)
    app = open_app(root)
    yield app
    close_app(app)


async def _scans(client, urls: list[str]) -> list[bytes]:  # type: ignore[no-untyped-def]
    answers = await asyncio.gather(*(client.get(url) for url in urls))
    assert all(a.status_code == 200 for a in answers), [a.text[:200] for a in answers]
    return [a.content for a in answers]


async def test_concurrent_v1_lists_share_one_scan(app, client_for) -> None:
    client = client_for(app)
    shared = shared_scan(type("Conn", (), {"app": app})())  # the app's one SharedScan
    before = shared.started
    bodies = await _scans(client, ["/api/runs"] * 10 + ["/api/recycle-bin", "/api/projects", "/api/projects/p1/names"])
    assert shared.started == before + 1
    assert len(set(bodies[:10])) == 1 and bodies[0].count(b'"id"') == RUNS
    # A request after that scan has ended scans again (and sees what changed meanwhile).
    await _scans(client, ["/api/runs"])
    assert shared.started == before + 2


async def _peak(client, n: int) -> int:  # type: ignore[no-untyped-def]
    gc.collect()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    await _scans(client, ["/api/runs"] * n)
    return tracemalloc.get_traced_memory()[1] - base


async def test_memory_of_concurrent_v1_lists_does_not_grow_with_their_number(app, client_for) -> None:
    client = client_for(app)
    await _scans(client, ["/api/runs"])  # warm: imports, caches
    tracemalloc.start()
    try:
        one = await _peak(client, 1)
        ten = await _peak(client, 10)
    finally:
        tracemalloc.stop()
    # Ten answers are ten references to one body, and one scan's records at a time (the
    # clients' own buffers of the body are the rest).
    assert ten < 2 * one, (one, ten)


async def test_a_list_after_a_delete_never_shares_a_scan_started_before_it(app, client_for) -> None:
    """A V1 list that arrives while a scan started before the caller's own soft delete does not
    take that scan's runs (the run would still be listed): it waits for it and shares the next.
    Seen from outside as Runicorn's UI showing a run moved to the bin, under load."""
    client = client_for(app)
    shared = shared_scan(type("Conn", (), {"app": app})())
    victim = (await client.get("/api/runs")).json()[0]["id"]
    for _ in range(3):
        early = asyncio.ensure_future(client.get("/api/runs"))  # a scan under way (300 runs)
        await asyncio.sleep(0.005)
        before = shared.started
        gone = await client.post("/api/runs/soft-delete", json={"run_ids": [victim]})
        assert gone.status_code == 200, gone.text
        listed = await client.get("/api/runs")
        assert victim not in {r["id"] for r in listed.json()}
        assert shared.started >= before + 1  # a scan of its own, after the write
        await early
        back = await client.post("/api/recycle-bin/restore", json={"run_ids": [victim]})
        assert back.status_code == 200, back.text
        assert victim in {r["id"] for r in (await client.get("/api/runs")).json()}
