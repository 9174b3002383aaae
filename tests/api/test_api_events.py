"""Live events (extensions.md §7) in process: runs written through the SDK and indexed by the
real indexer while clients listen; the stream read piece by piece as a server would send it."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from api_helpers import assert_error
from asgi_stream import AsgiStream

import runicorn_lite
from runicorn_lite.api.event_hub import KEEPALIVE, EventHub, merge
from runicorn_lite.ingest.changes import POINTS_CAP, Change
from runicorn_lite.sdk import Run

KEEPALIVE_S = 0.3


class Events:
    """Server-Sent Events parsed from one stream."""

    def __init__(self, stream: AsgiStream) -> None:
        self.stream = stream
        self.buf = b""
        self.comments: list[str] = []

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next event (comments are collected on the way)."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n\n" in self.buf:
                block, self.buf = self.buf.split(b"\n\n", 1)
                event: dict[str, Any] = {}
                for line in block.decode().split("\n"):
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    else:
                        name, _, value = line.partition(": ")
                        event[name] = value
                if "event" in event:
                    event["data"] = orjson.loads(event["data"])
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no event")
            self.buf += await self.stream.read(left)

    async def quiet(self, seconds: float) -> None:
        """Nothing but comments for ``seconds``."""
        with pytest.raises(TimeoutError):
            event = await self.next(seconds)
            raise AssertionError(f"unexpected event {event}")


async def _open(app: Any, url: str = "/api/v2/events", **headers: str) -> Events:
    stream = await AsgiStream(app, url, headers).open()
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-cache"
    assert "content-length" not in stream.headers
    return Events(stream)


async def _settled(app: Any) -> None:
    """Let the hub turn every change reported so far into events."""
    hub: EventHub = app.state.ctx.events
    for _ in range(500):
        if not hub._pending and hub._pump is None:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the hub never settled")


def _run(root: Path, name: str, **kwargs: Any) -> Run:
    return runicorn_lite.init(path=f"live/{name}", root=root, **kwargs)


async def test_a_run_written_while_a_client_listens(make_app, root: Path, client_for) -> None:
    app = make_app(events_keepalive=KEEPALIVE_S)
    events = await _open(app)
    run = _run(root, "a", tags=["x"])
    run.set_primary_metric("acc", "max")
    run.log({"loss": 0.9, "acc": 0.1}, step=1)
    run.flush()
    app.state.ctx.indexer.scan()
    first = await events.next()
    assert first["event"] == "experiment"
    assert first["data"]["id"] == run.id and first["data"]["status"] == "running" and first["data"]["tags"] == ["x"]
    listed = (await client_for(app).get("/api/v2/experiments")).json()["experiments"][0]
    assert first["data"] == listed  # the run's list row
    assert "deleted_at" not in first["data"]
    second = await events.next()
    assert second["event"] == "metrics"
    # A run's first read is a whole read: no points carried, the client fetches.
    assert second["data"] == {"id": run.id, "metrics": ["acc", "loss"], "last_step": 1, "total_points": 2,
                              "points": None, "refetch": True}

    run.log({"loss": 0.5}, step=2)
    run.flush()
    app.state.ctx.indexer.refresh([run.run_dir])
    more = await events.next()
    times = more["data"]["points"]["loss"].pop("times")
    assert more["event"] == "metrics" and more["data"] == {"id": run.id, "metrics": ["loss"], "last_step": 2,
                                                           "total_points": 3, "refetch": False,
                                                           "points": {"loss": {"steps": [2], "values": [0.5]}}}
    assert len(times) == 1 and abs(times[0] - time.time()) < 60
    run.finish()
    app.state.ctx.indexer.refresh([run.run_dir])
    done = await events.next()
    assert done["event"] == "experiment" and done["data"]["status"] == "finished"
    ids = [int(e["id"].rsplit("-", 1)[1]) for e in (first, second, more, done)]
    assert ids == sorted(ids) and len(set(ids)) == 4
    await events.stream.close()


async def test_metrics_events_carry_appended_points_up_to_a_cap(make_app, root: Path) -> None:
    app = make_app(events_keepalive=KEEPALIVE_S)
    run = _run(root, "pts")
    run.log({"loss": 1.0}, step=1)
    run.flush()
    app.state.ctx.indexer.scan()
    events = await _open(app)
    run.log({"loss": 0.5, "acc": float("nan")}, step=2)
    run.log({"loss": 0.25}, step=3)
    run.flush()
    app.state.ctx.indexer.refresh([run.run_dir])
    got = await events.next()
    assert got["event"] == "metrics" and not got["data"]["refetch"]
    points = got["data"]["points"]
    assert (points["loss"]["steps"], points["loss"]["values"]) == ([2, 3], [0.5, 0.25])
    assert (points["acc"]["steps"], points["acc"]["values"]) == ([2], [None])  # NaN as null
    # Past the cap: the names and counts, no points, and the flag to refetch.
    for step in range(4, 4 + POINTS_CAP + 1):
        run.log({"loss": 1.0 / step}, step=step)
    run.flush()
    app.state.ctx.indexer.refresh([run.run_dir])
    got = await events.next()
    assert got["data"]["points"] is None and got["data"]["refetch"] is True
    assert got["data"]["last_step"] == 4 + POINTS_CAP and got["data"]["total_points"] == 3 + 1 + POINTS_CAP + 1
    run.finish()
    await events.stream.close()


def test_merged_changes_of_one_run_join_their_points() -> None:
    one = {"loss": {"steps": [1], "values": [0.5], "times": [None]}}
    two = {"loss": {"steps": [2], "values": [0.4], "times": [None]}, "acc": {"steps": [2], "values": [0.1],
                                                                          "times": [None]}}
    merged = merge([Change("metrics", "r", 1, ["loss"], 1, 1, one), Change("metrics", "r", 1, ["loss", "acc"], 2, 3,
                                                                          two)])
    assert merged[0].points == {"loss": {"steps": [1, 2], "values": [0.5, 0.4], "times": [None, None]},
                                "acc": {"steps": [2], "values": [0.1], "times": [None]}}
    assert merge([Change("metrics", "r", 1, ["loss"], 1, 1, one), Change("metrics", "r", 1, ["loss"], 2, 2,
                                                                         None)])[0].points is None


async def test_patch_delete_restore_and_removal(make_app, root: Path, client_for) -> None:
    run = _run(root, "b")
    run.finish()
    app = make_app(events_keepalive=KEEPALIVE_S)
    app.state.ctx.indexer.scan()
    client = client_for(app)
    events = await _open(app)

    assert (await client.patch(f"/api/runs/{run.id}", json={"alias": "best one", "tags": ["keep"]})).status_code == 200
    patched = await events.next()
    assert patched["event"] == "experiment"
    assert patched["data"]["alias"] == "best one" and patched["data"]["tags"] == ["keep"]

    assert (await client.post("/api/v2/experiments/batch-delete", json={"exp_ids": [run.id]})).json()["deleted"] == 1
    deleted = await events.next()
    assert deleted["event"] == "experiment" and isinstance(deleted["data"]["deleted_at"], float)
    row = (await client.get("/api/v2/experiments", params={"include_deleted": "true"})).json()["experiments"][0]
    assert deleted["data"] == row

    assert (await client.post("/api/v2/experiments/batch-restore", json={"exp_ids": [run.id]})).json()["restored"] == 1
    restored = await events.next()
    assert restored["event"] == "experiment" and "deleted_at" not in restored["data"]
    assert restored["data"]["alias"] == "best one"

    shutil.rmtree(run.run_dir)
    app.state.ctx.indexer.scan()
    removed = await events.next()
    assert removed["event"] == "removed" and removed["data"] == {"id": run.id}
    await events.quiet(0.3)
    await events.stream.close()


async def test_last_event_id_resumes_with_exactly_the_missed_events(make_app, root: Path) -> None:
    app = make_app(events_keepalive=KEEPALIVE_S)
    events = await _open(app)
    runs = [_run(root, f"r{i}") for i in range(4)]
    app.state.ctx.indexer.refresh([runs[0].run_dir])
    app.state.ctx.indexer.refresh([runs[1].run_dir])
    e1, e2 = await events.next(), await events.next()
    assert [e1["data"]["id"], e2["data"]["id"]] == [runs[0].id, runs[1].id]
    await events.stream.close()
    assert app.state.ctx.events.subscribers == 0

    # Written while nobody listens.
    app.state.ctx.indexer.refresh([runs[2].run_dir])
    app.state.ctx.indexer.refresh([runs[3].run_dir])
    await _settled(app)

    again = await _open(app, **{"Last-Event-ID": e2["id"]})
    missed = [await again.next(), await again.next()]
    assert [e["data"]["id"] for e in missed] == [runs[2].id, runs[3].id]
    assert all(e["event"] == "experiment" for e in missed)
    await again.quiet(0.3)
    await again.stream.close()

    earlier = await _open(app, f"/api/v2/events?last_event_id={e1['id']}")
    assert [(await earlier.next())["data"]["id"] for _ in range(3)] == [r.id for r in runs[1:]]
    await earlier.stream.close()

    # up to date: nothing to replay, no reset
    current = await _open(app, **{"Last-Event-ID": missed[-1]["id"]})
    await current.quiet(0.3)
    await current.stream.close()


@pytest.mark.parametrize("garbage", ["garbage", "", "12", "deadbeef-1", "-5", "x-y-z", "ffffffff-1\x7f", "9" * 200])
async def test_a_last_event_id_we_do_not_hold_gets_a_reset_first(make_app, root: Path, garbage: str) -> None:
    app = make_app(events_keepalive=KEEPALIVE_S)
    hub: EventHub = app.state.ctx.events
    events = await _open(app, **{"Last-Event-ID": garbage or " "})
    if garbage == "":  # a blank header is no header: a plain start
        await events.quiet(0.2)
    else:
        reset = await events.next()
        assert reset["event"] == "reset" and reset["id"] == hub.last_id and reset["data"]["reason"]
    run = _run(root, "after")
    app.state.ctx.indexer.refresh([run.run_dir])
    assert (await events.next())["data"]["id"] == run.id  # then live, as any client
    await events.stream.close()


async def test_ids_from_the_future_or_past_the_ring(make_app, root: Path) -> None:
    app = make_app(events_keepalive=KEEPALIVE_S)
    hub = EventHub(app.state.ctx.store, root, ring=3)
    app.state.ctx.indexer.subscribe(hub.on_changes)
    hub.attach(asyncio.get_running_loop())
    runs = [_run(root, f"q{i}") for i in range(5)]
    for run in runs:
        app.state.ctx.indexer.refresh([run.run_dir])
    for _ in range(200):
        if hub.last_id.endswith("-5"):
            break
        await asyncio.sleep(0.01)
    assert hub.last_id == f"{hub.boot}-5"
    future = hub.subscribe(None, f"{hub.boot}-6")[1]
    assert b"event: reset" in future and b"not an event of this server" in future
    gone = hub.subscribe(None, f"{hub.boot}-1")[1]  # the ring holds 3, 4, 5: event 2 is lost
    assert gone.startswith(b"id: " + hub.last_id.encode() + b"\nevent: reset\n") and b"no longer held" in gone
    held = hub.subscribe(None, f"{hub.boot}-2")[1]
    assert held.count(b"event: experiment") == 3 and b"event: reset" not in held
    other_server = hub.subscribe(None, "0badf00d-4")[1]
    assert b"event: reset" in other_server
    hub.close()


async def test_keep_alive_comments_while_quiet(make_app) -> None:
    app = make_app(events_keepalive=KEEPALIVE_S)
    stream = await AsgiStream(app, "/api/v2/events").open()
    opening = await stream.read()
    assert opening.startswith(b"retry: ") and b"\n: events after " in opening
    started = time.monotonic()
    assert await stream.read(timeout=2) == KEEPALIVE
    assert await stream.read(timeout=2) == KEEPALIVE
    assert time.monotonic() - started == pytest.approx(2 * KEEPALIVE_S, abs=0.25)
    await stream.close()


async def test_one_run_only_and_bad_experiment_ids(make_app, root: Path, client_for) -> None:
    app = make_app(events_keepalive=KEEPALIVE_S)
    mine, other = _run(root, "mine"), _run(root, "other")
    one = await _open(app, f"/api/v2/events?experiment_id={mine.id}")
    everything = await _open(app)
    app.state.ctx.indexer.refresh([other.run_dir])
    app.state.ctx.indexer.refresh([mine.run_dir])
    assert (await one.next())["data"]["id"] == mine.id
    assert [(await everything.next())["data"]["id"] for _ in range(2)] == [other.id, mine.id]
    await one.quiet(0.2)
    # A run that does not exist yet may be waited for.
    later = await _open(app, "/api/v2/events?experiment_id=20991231_000000_abcdef")
    await later.quiet(0.2)
    for stream in (one, everything, later):
        await stream.stream.close()
    client = client_for(app)
    for bad in ("../etc", "a b", "x" * 300, "..", "-leading-dash"):
        detail = assert_error(await client.get("/api/v2/events", params={"experiment_id": bad}), 404)
        assert detail.startswith("Experiment ") and detail.endswith(" not found")
    assert_error(await client.get("/api/v2/events", params={"experiment_id": ["a", "b"]}), 400)


async def test_a_slow_client_is_reset_and_never_slows_the_others(make_app, root: Path) -> None:
    app = make_app(events_keepalive=KEEPALIVE_S)
    hub: EventHub = app.state.ctx.events
    hub.client_queue = 5
    stalled = await AsgiStream(app, "/api/v2/events").open()  # reads nothing from here on
    fast = await _open(app)
    runs = [_run(root, f"s{i}") for i in range(30)]
    for run in runs:
        app.state.ctx.indexer.refresh([run.run_dir])
        assert (await fast.next())["data"]["id"] == run.id
    slow = next(s for s in hub._subscribers if s.resets)
    assert slow.queued() <= 5  # bounded, however far behind
    await stalled.read()  # the opening; the app was blocked handing over one more piece
    events = Events(stalled)
    received = [await events.next(), await events.next()]
    assert received[0]["event"] == "reset" or received[1]["event"] == "reset"
    await stalled.close()
    await fast.stream.close()
    assert hub.subscribers == 0


async def test_a_hundred_clients_and_closing_costs_nothing(make_app, root: Path) -> None:
    app = make_app(events_keepalive=KEEPALIVE_S)
    hub: EventHub = app.state.ctx.events
    tasks_before = len(asyncio.all_tasks())
    clients = [await _open(app) for _ in range(100)]
    assert hub.subscribers == 100
    run = _run(root, "broadcast")
    app.state.ctx.indexer.refresh([run.run_dir])
    got = await asyncio.gather(*(c.next() for c in clients))
    assert {e["data"]["id"] for e in got} == {run.id} and len({e["id"] for e in got}) == 1
    for c in clients:
        await c.stream.close()
    assert hub.subscribers == 0
    await _settled(app)
    assert len(asyncio.all_tasks()) == tasks_before  # no task left behind per client


async def test_closing_the_hub_ends_every_stream(make_app) -> None:
    app = make_app(events_keepalive=KEEPALIVE_S)
    streams = [await AsgiStream(app, "/api/v2/events").open() for _ in range(3)]
    app.state.ctx.events.close()
    for stream in streams:
        await stream.read_all(timeout=2)
        assert stream.ended
        await stream.close()
    late = await AsgiStream(app, "/api/v2/events").open()  # after the stop: opens and ends
    await late.read_all(timeout=2)
    await late.close()


async def test_bursts_are_merged_and_a_flood_is_one_reset(make_app, root: Path) -> None:
    app = make_app(events_keepalive=KEEPALIVE_S)
    hub: EventHub = app.state.ctx.events
    run = _run(root, "burst")
    app.state.ctx.indexer.refresh([run.run_dir])
    events = await _open(app)
    pk = app.state.ctx.index.read(lambda c: c.execute("SELECT pk FROM experiments").fetchone()[0])
    # One batch as the writer could report it: the row read once, the metrics merged.
    hub.on_changes([Change("experiment", run.id, pk), Change("metrics", run.id, pk, ["a"], 3, 3),
                    Change("experiment", run.id, pk), Change("metrics", run.id, pk, ["b"], 5, 6)])
    row, metrics = await events.next(), await events.next()
    assert row["event"] == "experiment" and metrics["data"] == {"id": run.id, "metrics": ["a", "b"],
                                                                "last_step": 5, "total_points": 6,
                                                                "points": None, "refetch": True}
    await events.quiet(0.2)
    hub.on_changes([Change("experiment", f"20240101_000000_{i:06x}", 10_000 + i) for i in range(1500)])
    flood = await events.next()
    assert flood["event"] == "reset" and "1500 runs changed" in flood["data"]["reason"]
    await events.stream.close()


async def test_unknown_parameters_are_refused(make_app, client_for) -> None:
    detail = assert_error(await client_for(make_app()).get("/api/v2/events", params={"experiment": "x"}), 400)
    assert "Unknown parameter 'experiment'" in detail and "experiment_id" in detail
