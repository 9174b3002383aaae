"""GET /api/v2/compare: several runs side by side, on runs written by our SDK and by the real
Runicorn 0.7.2 SDK, against what the runs' files say."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import assert_error, close_app, open_app
from starlette.applications import Starlette
from support import copy_fixture

import runicorn_lite
from runicorn_lite import rundir

LONG = 20_000  # long enough that a small budget is served from the chunks' M4 points
SPIKE = 12_345


def _events(run_dir: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """metric → step → (value, time), as events.jsonl says (the last event at a step wins)."""
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for line in (run_dir / rundir.EVENTS).read_text().splitlines():
        event = json.loads(line)
        if event.get("type") != "metrics":
            continue
        data = event["data"]
        for key, value in data.items():
            if key not in rundir.NON_METRIC_KEYS:
                out.setdefault(key, {})[data["global_step"]] = (value, data["time"])
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Path]]]:
    root = tmp_path_factory.mktemp("compare") / "data"
    copy_fixture("runicorn_07_assets", root)
    dirs: dict[str, Path] = {}
    configs = [
        {"lr": 0.1, "optim": {"name": "sgd"}, "bs": 32, "flag": True, "note": None},
        {"lr": 0.01, "optim": {"name": "sgd"}, "bs": 32, "flag": 1},
        {"lr": 0.001, "optim": {"name": "adam"}, "bs": 32, "flag": True, "note": None},
    ]
    for i, config in enumerate(configs):
        run = runicorn_lite.init(project="cmp", name="sweep", root=root, run_id=f"20240301_000000_00000{i}")
        run.log_config(config)
        for step in range(1, 101):
            run.log({"loss": 1.0 / step + i, "acc": step / 100 - i / 10}, step=step)
        run.log({"loss": math.nan}, step=50)
        run.finish()
        dirs[run.id] = run.run_dir
    long_run = runicorn_lite.init(project="cmp", name="long", root=root, run_id="20240301_000000_0000ff")
    for step in range(1, LONG + 1):
        long_run.log({"loss": math.sin(step / 500) + (25.0 if step == SPIKE else 0.0)}, step=step)
    long_run.finish()
    dirs[long_run.id] = long_run.run_dir
    two = runicorn_lite.init(project="cmp", name="two", root=root, run_id="20240301_000000_0000fe")
    for step in range(1, LONG + 1):
        data = {"a": math.cos(step / 300) - (40.0 if step == SPIKE else 0.0)}
        if step % 3 == 0 or step == LONG + 1:
            data["b"] = step / 1000
        two.log(data, step=step)
    two.log({"b": 99.0}, step=LONG + 7)  # b goes on past a
    two.finish()
    dirs[two.id] = two.run_dir
    rundir.mark_deleted(dirs["20240301_000000_000002"], "finished", "cleanup", 1.0)
    yield root, dirs


@pytest.fixture(scope="module")
def app(corpus: tuple[Path, dict[str, Path]], backend: str) -> Iterator[Starlette]:
    built = open_app(corpus[0])
    yield built
    close_app(built)


@pytest.fixture
def client(app, client_for):  # type: ignore[no-untyped-def]
    return client_for(app)


async def _compare(client: Any, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v2/compare", params=params)
    assert response.status_code == 200, response.text
    return response.json()


SDK_IDS = ["20240301_000000_000002", "20240301_000000_000000", "20240301_000000_000001"]


async def test_runs_in_the_order_asked_with_params_summaries_and_differences(client, corpus) -> None:
    body = await _compare(client, ids=",".join(SDK_IDS))
    assert [e["id"] for e in body["experiments"]] == SDK_IDS  # a soft-deleted run can be compared
    first = body["experiments"][1]
    assert set(first) == {"id", "project", "name", "status", "alias", "tags", "created_at", "best_metric_name",
                          "best_metric_value", "params", "metrics"}
    assert first["params"] == {"lr": 0.1, "optim.name": "sgd", "bs": 32, "flag": True, "note": None}
    assert first["metrics"]["acc"] == {"first": 0.01, "last": 1.0, "min": 0.01, "max": 1.0, "count": 100,
                                       "last_step": 100}
    assert first["metrics"]["loss"]["count"] == 99  # the NaN at step 50 is no value
    # lr and optim.name differ; flag is true, 1, true (a boolean is not the number 1); note is
    # null, absent, null (absent counts as a value); bs is the same everywhere.
    assert body["params_differ"] == ["flag", "lr", "note", "optim.name"]
    assert set(body["series"]) == {"acc", "loss"}
    assert isinstance(body["query_time_ms"], float)


async def test_series_are_columnar_points_with_times(client, corpus) -> None:
    _root, dirs = corpus
    body = await _compare(client, ids=SDK_IDS[1], metric_names="loss")
    assert list(body["series"]) == ["loss"]
    curve = body["series"]["loss"][SDK_IDS[1]]
    truth = _events(dirs[SDK_IDS[1]])["loss"]
    assert curve["steps"] == list(range(1, 101))
    for step, value, at in zip(curve["steps"], curve["values"], curve["times"], strict=True):
        expected, expected_time = truth[step]
        assert at == pytest.approx(expected_time)
        if step == 50:
            assert value is None  # NaN comes out as null
        else:
            assert value == pytest.approx(expected)
    assert body["total_points"] == {"loss": {SDK_IDS[1]: 100}}


async def test_downsample_caps_every_series_and_keeps_ends_and_extremes(client, corpus) -> None:
    _root, dirs = corpus
    long_id = "20240301_000000_0000ff"
    truth = _events(dirs[long_id])["loss"]
    for budget in (40, 100, 1000, 5000):
        body = await _compare(client, ids=f"{long_id},{SDK_IDS[1]}", downsample=budget, metric_names="loss")
        curve = body["series"]["loss"][long_id]
        steps = curve["steps"]
        assert 4 <= len(steps) <= budget and steps == sorted(set(steps))
        assert steps[0] == 1 and steps[-1] == LONG
        assert SPIKE in steps  # the spike survives
        low = min(truth, key=lambda s: truth[s][0])
        assert low in steps  # and so does the lowest point
        for step, value, at in zip(steps, curve["values"], curve["times"], strict=True):
            assert (value, at) == pytest.approx(truth[step])  # real points, never averages
        assert body["total_points"]["loss"][long_id] == LONG
        short = body["series"]["loss"][SDK_IDS[1]]["steps"]
        assert len(short) == 100 if budget >= 100 else 4 <= len(short) <= budget


async def test_step_range_limits_points_and_totals(client, corpus) -> None:
    long_id = "20240301_000000_0000ff"
    body = await _compare(client, ids=f"{long_id},{SDK_IDS[0]}", step_range="10000:15000", downsample=100)
    curve = body["series"]["loss"][long_id]
    assert curve["steps"][0] == 10000 and curve["steps"][-1] == 15000 and SPIKE in curve["steps"]
    assert len(curve["steps"]) <= 100
    assert body["total_points"]["loss"][long_id] == 5001
    assert SDK_IDS[0] not in body["series"]["loss"]  # no point in the range: no series
    exact = await _compare(client, ids=long_id, step_range="100:199", downsample=1000)
    assert exact["series"]["loss"][long_id]["steps"] == list(range(100, 200))


async def test_real_runicorn_runs_with_config(client) -> None:
    ids = "20250303_100001_07f001,20250303_100002_07f002"
    body = await _compare(client, ids=ids)
    a, b = body["experiments"]
    assert a["params"]["optim.momentum"] == 0.9 and a["params"]["extra.tags"] == '["sweep","cifar"]'
    assert a["params"]["label_smoothing"] is None
    assert b["params"] == {"lr": 0.1, "batch_size": 128, "optim.name": "sgd", "optim.momentum": 0.0, "epochs": 3,
                           "extra.note": "diverged"}
    assert "lr" in body["params_differ"] and "optim.name" not in body["params_differ"]
    assert "model.depth" in body["params_differ"]  # absent in one
    assert body["series"]["loss"]["20250303_100001_07f001"]["times"][0] is not None


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({}, 400, "ids"),
        ({"ids": ""}, 400, "ids"),
        ({"ids": " , ,"}, 400, "ids"),
        ({"ids": ",".join(f"20240301_000000_{i:06x}" for i in range(51))}, 400, "1 to 50"),
        ({"ids": ",".join(["20240301_000000_000000"] * 51)}, 400, "1 to 50"),
        ({"ids": "20240301_000000_000000,20240301_000000_abcdef"}, 404, "Experiment 20240301_000000_abcdef not found"),
        ({"ids": "../etc"}, 404, "not found"),
        ({"ids": SDK_IDS[0], "downsample": "1"}, 400, "downsample"),
        ({"ids": SDK_IDS[0], "downsample": "100001"}, 400, "downsample"),
        ({"ids": SDK_IDS[0], "downsample": "x"}, 400, "downsample"),
        ({"ids": SDK_IDS[0], "step_range": "9:1"}, 400, "step_range"),
        ({"ids": SDK_IDS[0], "step_range": "a:b"}, 400, "step_range"),
    ],
)
async def test_bad_requests(client, params: dict[str, str], status: int, words: str) -> None:
    assert_error(await client.get("/api/v2/compare", params=params), status, words)


async def test_fifty_runs_and_duplicates(client) -> None:
    body = await _compare(client, ids=",".join([SDK_IDS[0], SDK_IDS[0], SDK_IDS[1]]), metric_names="nothing")
    assert [e["id"] for e in body["experiments"]] == [SDK_IDS[0], SDK_IDS[1]]
    assert body["series"] == {} and body["total_points"] == {}


async def test_metrics_fast_downsampled_from_chunk_m4_has_true_values_for_every_metric(client, corpus) -> None:
    _root, dirs = corpus
    two = "20240301_000000_0000fe"
    truth = _events(dirs[two])
    for downsample in (50, 400):
        response = await client.get(f"/api/v2/experiments/{two}/metrics/fast", params={"downsample": downsample})
        body = response.json()
        assert body["columns"] == ["global_step", "a", "b"]
        rows = body["rows"]
        steps = [r["global_step"] for r in rows]
        assert len(rows) <= downsample and steps == sorted(set(steps))
        assert steps[0] == 1 and steps[-1] == LONG + 7 and SPIKE in steps
        assert body["total_points"] == LONG + 1  # the steps either metric was logged at
        assert body["applied_filters"]["downsampled"] is True
        for row in rows:
            for name in ("a", "b"):
                expected = truth[name].get(row["global_step"])
                assert row[name] == (None if expected is None else pytest.approx(expected[0]))
    ranged = (await client.get(f"/api/v2/experiments/{two}/metrics/fast",
                               params={"downsample": 60, "step_range": "12000:13000"})).json()
    steps = [r["global_step"] for r in ranged["rows"]]
    assert steps[0] == 12000 and steps[-1] == 13000 and SPIKE in steps and len(steps) <= 60
    assert ranged["total_points"] == 1001


async def test_every_point_of_a_long_run_streams_out_in_batches(client, corpus, monkeypatch) -> None:
    from runicorn_lite.api import responses

    monkeypatch.setattr(responses, "STREAM_ROWS", 100)  # any answer over 100 rows streams
    _root, dirs = corpus
    two = "20240301_000000_0000fe"
    truth = _events(dirs[two])
    response = await client.get(f"/api/v2/experiments/{two}/metrics/fast", params={"step_range": "100:5000"})
    assert response.status_code == 200 and "content-length" not in response.headers
    body = response.json()
    assert body["columns"] == ["global_step", "a", "b"] and body["total_points"] == 4901
    assert [r["global_step"] for r in body["rows"]] == list(range(100, 5001))
    for row in body["rows"][::97]:
        for name in ("a", "b"):
            expected = truth[name].get(row["global_step"])
            assert row[name] == (None if expected is None else pytest.approx(expected[0]))
    v1 = await client.get(f"/api/runs/{two}/metrics")
    assert v1.status_code == 200 and "content-length" not in v1.headers
    assert v1.headers["x-row-count"] == v1.headers["x-total-count"] == str(LONG + 1)
    assert v1.headers["x-last-step"] == str(LONG + 7)
    v1_body = v1.json()
    assert v1_body["columns"] == ["global_step", "a", "b", "time"]  # our SDK logs no stage unless asked
    assert len(v1_body["rows"]) == v1_body["total"] == v1_body["sampled"] == LONG + 1
    small = await client.get(f"/api/runs/{two}/metrics", params={"downsample": 50})
    assert "content-length" in small.headers and small.json()["sampled"] <= 50


async def test_every_point_of_huge_runs_is_answered_one_at_a_time(app, client, corpus, monkeypatch) -> None:
    """Answers with every point of a huge run take turns (BigAnswers): three asked at once all
    come back whole, never two were built at once, and no place is left taken."""
    import asyncio

    from runicorn_lite.api import responses

    BIG_ANSWERS = app.state.ctx.store.big_answers  # the store's lane, not a module's

    monkeypatch.setattr(responses, "STREAM_ROWS", 100)  # the answers stream, as a huge one does
    monkeypatch.setattr(BIG_ANSWERS, "points", 1_000)  # the long runs count as huge
    monkeypatch.setattr(BIG_ANSWERS, "event_bytes", 100_000)
    monkeypatch.setattr(BIG_ANSWERS, "peak", 0)
    _root, dirs = corpus
    two, long_id = "20240301_000000_0000fe", "20240301_000000_0000ff"
    urls = [f"/api/v2/experiments/{two}/metrics/fast", f"/api/runs/{long_id}/metrics",
            f"/api/runs/{two}/metrics", f"/api/v2/experiments/{long_id}/metrics/fast"]
    answers = await asyncio.gather(*(client.get(url) for url in urls))
    assert [a.status_code for a in answers] == [200] * 4
    assert answers[0].json()["total_points"] == len(set().union(*_events(dirs[two]).values())) == LONG + 1
    assert len(answers[1].json()["rows"]) == LONG
    assert answers[2].headers["x-total-count"] == str(LONG + 1)
    assert [r["global_step"] for r in answers[3].json()["rows"]] == list(range(1, LONG + 1))
    assert BIG_ANSWERS.peak == 1 and BIG_ANSWERS.in_use == 0
    # a small run, and a downsampled view of a huge one, never wait for a place
    async with BIG_ANSWERS.place() as ticket:
        small = await client.get(f"/api/runs/{SDK_IDS[1]}/metrics")
        sampled = await client.get(f"/api/v2/experiments/{two}/metrics/fast", params={"downsample": 100})
        assert small.status_code == 200 and sampled.status_code == 200
        # while the place is taken, a huge answer waits, then says it is busy (never a 500)
        monkeypatch.setattr(BIG_ANSWERS, "wait_s", 0.2)
        for url in urls[:2]:
            busy = await client.get(url)
            assert_error(busy, 503, "retry in a few seconds")
            assert busy.headers["retry-after"] == "5"
        assert BIG_ANSWERS.in_use == 1
    assert BIG_ANSWERS.in_use == 0  # the block's end gave it back
    ticket.release()  # given back once, however often asked
    assert BIG_ANSWERS.in_use == 0
    # an unknown run that looked huge, and an answer dropped before it was sent, give theirs back
    assert (await client.get("/api/v2/experiments/20240301_000000_00dead/metrics/fast")).status_code == 404
    dropped = responses.rows_response(b"[", _table(500), None, b"]", ticket=await BIG_ANSWERS.ticket())
    assert BIG_ANSWERS.in_use == 1
    del dropped
    assert BIG_ANSWERS.in_use == 0


def _table(rows: int) -> Any:
    from runicorn_lite.queries.steptable import StepTable

    table = StepTable()
    table.add_numbers("x", list(range(rows)), [float(i) for i in range(rows)])
    return table


@pytest.mark.parametrize("downsample", [2, 7, 16, 50, 99, 100, 101, 400, 1000, 5000])
async def test_whole_curves_from_chunk_outlines_equal_the_ranged_reading(client, downsample: int) -> None:
    """A whole curve is drawn from its chunks' (n, m4) columns alone; the same curve asked with
    a step range that covers it (read through every outline's record) is the same answer."""
    ids = "20240301_000000_0000ff,20240301_000000_0000fe"
    whole = await _compare(client, ids=ids, downsample=downsample)
    ranged = await _compare(client, ids=ids, downsample=downsample, step_range="0:")
    assert whole["series"] == ranged["series"] and whole["total_points"] == ranged["total_points"]
    for curves in whole["series"].values():
        for curve in curves.values():
            assert 0 < len(curve["steps"]) <= downsample and curve["steps"] == sorted(set(curve["steps"]))


def test_m4_of_a_group_keeps_its_extremes_and_skips_what_is_not_finite() -> None:
    from runicorn_lite.queries.metrics import _m4_positions

    vals = [5.0, math.nan, 1.0, 9.0, 1.0, 9.0, math.inf, 3.0]
    assert _m4_positions(vals, 0, 8) == [0, 2, 3, 7]  # first, lowest, highest (first of equals), last
    assert _m4_positions(vals, 1, 2) == [1]  # only a NaN: itself
    assert _m4_positions(vals, 4, 7) == [4, 5, 6]
    assert _m4_positions([2.0, -math.inf, 2.0], 0, 3) == [0, 2]
    assert _m4_positions([1e308, 1e308, -1.0], 0, 3) == [0, 2]  # a sum that overflows is still right
