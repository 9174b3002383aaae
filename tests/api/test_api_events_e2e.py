"""Live events against a real ``runicorn-lite serve`` process: the watcher picks up what a
training script writes through the SDK, a hundred clients get it, and stopping the server with
streams open ends them at once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import runicorn_lite

pytestmark = pytest.mark.e2e


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event name, data) of a stream, and ("comment", text) for comment lines."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif not line:
            if "event" in fields:
                yield fields["event"], {**orjson.loads(fields["data"]), "_id": fields.get("id")}
            fields = {}
        else:
            name, _, value = line.partition(": ")
            fields[name] = value


async def _next_event(it: AsyncIterator[tuple[str, Any]], timeout: float = 15.0) -> tuple[str, Any]:
    async def skip_comments() -> tuple[str, Any]:
        async for kind, data in it:
            if kind != "comment":
                return kind, data
        raise EOFError("the stream ended")

    return await asyncio.wait_for(skip_comments(), timeout)


async def test_a_training_script_seen_live_by_a_hundred_clients(server_factory, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    server = server_factory(root, "--events-keepalive", "0.3")
    server.wait_ready()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(10, read=30), limits=limits) as http:
        first = await http.send(http.build_request("GET", "/api/v2/events"), stream=True)
        assert first.status_code == 200 and first.headers["content-type"].startswith("text/event-stream")
        it = _events(first)
        # quiet: keep-alive comments come at the configured interval
        comments = []
        async for kind, text in it:
            assert kind == "comment"
            comments.append(text)
            if comments.count("keep-alive") == 2:
                break

        run = runicorn_lite.init(path="live/e2e", root=root)
        run.log({"loss": 1.0}, step=1)
        run.flush()
        kind, row = await _next_event(it)
        assert kind == "experiment" and row["id"] == run.id and row["status"] == "running"
        kind, points = await _next_event(it)
        assert kind == "metrics" and points["id"] == run.id and points["metrics"] == ["loss"]

        others = [await http.send(http.build_request("GET", "/api/v2/events"), stream=True) for _ in range(99)]
        streams = [_events(r) for r in others]
        assert all(r.status_code == 200 for r in others)
        patched = await http.patch(f"/api/runs/{run.id}", json={"alias": "seen by all"})
        assert patched.status_code == 200
        got = await asyncio.gather(*(_next_event(s) for s in [it, *streams]))
        assert {(kind, data["id"], data["alias"]) for kind, data in got} == {("experiment", run.id, "seen by all")}
        assert len({data["_id"] for _, data in got}) == 1  # one broadcast: one event id

        # the list answers as usual meanwhile
        listed = await http.get("/api/v2/experiments")
        assert listed.status_code == 200 and listed.json()["total"] == 1
        for r in [first, *others]:
            await r.aclose()
        run.finish()


async def test_stopping_the_server_with_streams_open_ends_them_at_once(server_factory, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    server = server_factory(root)
    server.wait_ready()
    async with httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(10, read=30)) as http:
        responses = [await http.send(http.build_request("GET", "/api/v2/events"), stream=True) for _ in range(3)]
        for r in responses:
            assert r.status_code == 200

        async def drain(r: httpx.Response) -> bytes:
            return b"".join([chunk async for chunk in r.aiter_raw()])

        readers = [asyncio.create_task(drain(r)) for r in responses]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        server.proc.terminate()
        bodies = await asyncio.wait_for(asyncio.gather(*readers), 10)
        code = await asyncio.to_thread(server.proc.wait, 10)
        took = time.monotonic() - started
    # uvicorn would wait 5 s (its graceful timeout) for a stream that does not end by itself
    assert took < 3, took
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it stopped for
    assert any("Application shutdown complete" in line for line in server.output), "".join(server.output)
    assert all(body.startswith(b"retry: ") for body in bodies)  # each ended cleanly, not cut
    assert not any("Cancel" in line for line in server.output), "".join(server.output)
