"""``GET /api/v2/experiments/{id}`` and ``.../metrics/fast``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import DOCUMENTED_FIELDS, EXTRA_FIELDS, Corpus, assert_error, close_app, open_app
from starlette.applications import Starlette

import runicorn_lite

B = "20240612_080000_"
CURVE = "20240701_120000_cafe01"
SPIKE_STEP, DIP_STEP = 637, 211


def _loss(step: int) -> float:
    return round(2.0 / math.sqrt(step), 6)


@pytest.fixture(scope="module")
def curves_app(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Starlette]:
    """One long run: a spike, a dip, NaN, Infinity, a step logged twice, a sparse metric,
    booleans, and keys that are not metrics (epoch, stage)."""
    root: Path = tmp_path_factory.mktemp("curves") / "data"
    run = runicorn_lite.init(project="signal", name="curves", root=root, run_id=CURVE)
    for step in range(1, 1001):
        data: dict[str, Any] = {"loss": _loss(step), "acc": step / 1000, "epoch": step // 100}
        if step == SPIKE_STEP:
            data["loss"] = 50.0
        if step == DIP_STEP:
            data["acc"] = -5.0
        if step == 5:
            data["loss"] = math.nan
        if step == 6:
            data["loss"] = math.inf
        if step % 100 == 0:
            data["lr"] = step / 1e5
        if step in (1, 2):
            data["flag"] = step == 1
        run.log(data, step=step, stage="train")
        if step == 10:
            run.log({"loss": 0.5}, step=10)  # the same step again: the later value wins
    run.finish()
    app = open_app(root)
    yield app
    close_app(app)


@pytest.fixture
def curves(curves_app, client_for):  # type: ignore[no-untyped-def]
    return client_for(curves_app)


@pytest.fixture
def client(corpus_app, client_for):  # type: ignore[no-untyped-def]
    return client_for(corpus_app)


async def _fast(client: Any, exp_id: str = CURVE, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/v2/experiments/{exp_id}/metrics/fast", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_detail_of_a_run(client, corpus: Corpus) -> None:
    spec = corpus.by_id(B + "c0ffe1")
    response = await client.get(f"/api/v2/experiments/{spec.id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"experiment", "metrics_summary", "environment_available", "file_count", "query_time_ms",
                         "params", "metrics", "config", "environment", "images_count", "summary"}
    exp = body["experiment"]
    assert set(exp) >= DOCUMENTED_FIELDS | EXTRA_FIELDS | {"ended_at"}
    assert exp["id"] == spec.id and exp["status"] == "finished"
    assert exp["best_metric_name"] == "acc" and exp["best_metric_value"] == 0.91
    assert exp["ended_at"] == pytest.approx(spec.created_at + 600)
    assert exp["run_dir"] == str(corpus.run_dir(spec))
    assert body["metrics_summary"] == {
        "total_data_points": 10,
        "available_metrics": ["acc", "loss"],
        "step_range": {"min": 1, "max": 5},
    }
    assert body["environment_available"] is True
    # meta, status, events, summary, logs, environment.json and media/sample.txt
    assert body["file_count"] == 7


@pytest.mark.parametrize(
    ("short", "summary", "env", "files"),
    [
        ("c0ffe2", {"total_data_points": 10, "available_metrics": ["acc", "loss"],
                    "step_range": {"min": 1, "max": 5}}, False, 4),
        # NaN counts as a stored point
        ("c0ffe3", {"total_data_points": 10, "available_metrics": ["acc", "loss"],
                    "step_range": {"min": 1, "max": 5}}, False, 4),
        ("c0ffe4", {"total_data_points": 2, "available_metrics": ["loss"],
                    "step_range": {"min": 1, "max": 2}}, False, 3),
        ("c0ffe6", {"total_data_points": 3, "available_metrics": ["acc"],
                    "step_range": {"min": 1, "max": 3}}, False, 3),
    ],
)
async def test_detail_summaries(client, short: str, summary: dict, env: bool, files: int) -> None:
    body = (await client.get(f"/api/v2/experiments/{B + short}")).json()
    assert body["metrics_summary"] == summary
    assert body["environment_available"] is env
    assert body["file_count"] == files


async def test_detail_of_a_soft_deleted_run_says_so(client, corpus: Corpus) -> None:
    body = (await client.get(f"/api/v2/experiments/{B}c0ffec")).json()
    assert body["experiment"]["deleted_at"] == pytest.approx(corpus.now - 3600)


async def test_detail_of_a_run_without_metrics(tmp_path: Path, client_for) -> None:
    root = tmp_path / "data"
    runicorn_lite.init(project="p", root=root, run_id="20240101_000000_000000").finish()
    app = open_app(root)
    try:
        body = (await client_for(app).get("/api/v2/experiments/20240101_000000_000000")).json()
        assert body["metrics_summary"] == {"total_data_points": 0, "available_metrics": [], "step_range": None}
        fast = await _fast(client_for(app), "20240101_000000_000000")
        assert fast["columns"] == ["global_step"] and fast["rows"] == [] and fast["total_points"] == 0
    finally:
        close_app(app)


@pytest.mark.parametrize("exp_id", ["20991231_235959_ffffff", "nope", "a" * 128])
async def test_unknown_id_is_404(client, exp_id: str) -> None:
    assert_error(await client.get(f"/api/v2/experiments/{exp_id}"), 404)
    assert (await client.get(f"/api/v2/experiments/{exp_id}")).json() == {
        "detail": f"Experiment {exp_id} not found"
    }
    assert (await client.get(f"/api/v2/experiments/{exp_id}/metrics/fast")).json() == {
        "detail": f"Experiment {exp_id} not found"
    }


async def test_curves_detail(curves) -> None:
    body = (await curves.get(f"/api/v2/experiments/{CURVE}")).json()
    # loss 1000 + acc 1000 + lr 10 + flag 2; epoch, stage, time and global_step are not metrics
    assert body["metrics_summary"] == {
        "total_data_points": 2012,
        "available_metrics": ["acc", "flag", "loss", "lr"],
        "step_range": {"min": 1, "max": 1000},
    }


async def test_fast_columns_rows_and_values(curves) -> None:
    body = await _fast(curves)
    assert body["columns"] == ["global_step", "acc", "flag", "loss", "lr"]
    assert body["total_points"] == 1000 and len(body["rows"]) == 1000
    assert [r["global_step"] for r in body["rows"]] == list(range(1, 1001))
    rows = {r["global_step"]: r for r in body["rows"]}
    assert all(list(r) == body["columns"] for r in body["rows"])
    assert rows[1] == {"global_step": 1, "acc": 0.001, "flag": 1.0, "loss": 2.0, "lr": None}
    assert rows[2]["flag"] == 0.0 and rows[3]["flag"] is None
    assert rows[5]["loss"] is None  # NaN
    assert rows[6]["loss"] is None  # Infinity
    assert rows[10]["loss"] == 0.5  # logged twice, the last value kept
    assert rows[100]["lr"] == 0.001 and rows[101]["lr"] is None
    assert rows[SPIKE_STEP]["loss"] == 50.0 and rows[DIP_STEP]["acc"] == -5.0
    assert body["applied_filters"]["metrics"] == ["acc", "flag", "loss", "lr"]
    assert body["applied_filters"]["step_range"] is None
    assert body["applied_filters"]["downsampled"] is False
    assert isinstance(body["query_time_ms"], float)


async def test_fast_json_has_no_bare_nan_or_infinity(curves) -> None:
    response = await curves.get(f"/api/v2/experiments/{CURVE}/metrics/fast", params={"step_range": "1:10"})
    assert b"NaN" not in response.content and b"Infinity" not in response.content
    body = response.json()
    assert body["columns"] == ["global_step", "acc", "flag", "loss"]  # no lr point in 1..10
    assert body["rows"][4] == {"global_step": 5, "acc": 0.005, "flag": None, "loss": None}


async def test_fast_metric_names_restricts_columns(curves) -> None:
    body = await _fast(curves, metric_names="loss,unknown")
    assert body["columns"] == ["global_step", "loss"]
    assert all(set(r) == {"global_step", "loss"} for r in body["rows"])
    assert len(body["rows"]) == 1000
    sparse = await _fast(curves, metric_names="lr")
    assert sparse["columns"] == ["global_step", "lr"]
    assert [r["global_step"] for r in sparse["rows"]] == list(range(100, 1001, 100))  # one row per logged step
    assert sparse["total_points"] == 10
    none = await _fast(curves, metric_names="unknown")
    assert none["columns"] == ["global_step"] and none["rows"] == [] and none["total_points"] == 0


@pytest.mark.parametrize(
    ("step_range", "first", "last"),
    [("100:200", 100, 200), ("990:", 990, 1000), (":3", 1, 3), (" 7 : 7 ", 7, 7), ("-5:2", 1, 2),
     ("0:1000000", 1, 1000)],
)
async def test_fast_step_range(curves, step_range: str, first: int, last: int) -> None:
    body = await _fast(curves, step_range=step_range)
    assert [r["global_step"] for r in body["rows"]] == list(range(first, last + 1))
    assert body["total_points"] == last - first + 1
    lo, _, hi = step_range.partition(":")
    assert body["applied_filters"]["step_range"] == {
        "min": int(lo) if lo.strip() else None, "max": int(hi) if hi.strip() else None
    }


async def test_fast_step_range_outside_the_run_is_empty(curves) -> None:
    body = await _fast(curves, step_range="2000:3000")
    assert body["rows"] == [] and body["total_points"] == 0


@pytest.mark.parametrize("bad", ["abc", "1:2:3", "1-2", "a:b", "5:1", "1.5:2"])
async def test_fast_malformed_step_range_is_400(curves, bad: str) -> None:
    response = await curves.get(f"/api/v2/experiments/{CURVE}/metrics/fast", params={"step_range": bad})
    detail = assert_error(response, 400)
    assert detail.startswith("Invalid step_range")


@pytest.mark.parametrize("n", [2, 3, 10, 100, 999])
async def test_fast_downsample_keeps_ends_and_extremes(curves, n: int) -> None:
    body = await _fast(curves, downsample=n, metric_names="loss")
    steps = [r["global_step"] for r in body["rows"]]
    assert len(steps) <= n and steps == sorted(set(steps))
    assert steps[0] == 1 and steps[-1] == 1000
    assert body["total_points"] == 1000
    assert body["applied_filters"]["downsampled"] is True
    if n >= 3:
        assert SPIKE_STEP in steps  # the spike survives
    full = {r["global_step"]: r["loss"] for r in (await _fast(curves, metric_names="loss"))["rows"]}
    assert all(r["loss"] == full[r["global_step"]] for r in body["rows"])  # values are not averaged


async def test_fast_downsample_over_several_metrics(curves) -> None:
    body = await _fast(curves, downsample=60, metric_names="loss,acc")
    steps = [r["global_step"] for r in body["rows"]]
    assert len(steps) <= 60 and steps[0] == 1 and steps[-1] == 1000
    assert SPIKE_STEP in steps and DIP_STEP in steps  # each curve's extreme
    assert body["total_points"] == 1000


async def test_fast_downsample_larger_than_the_data_changes_nothing(curves) -> None:
    body = await _fast(curves, downsample=5000, step_range="1:50")
    assert len(body["rows"]) == 50 and body["applied_filters"]["downsampled"] is False


async def test_fast_on_a_corpus_run(client, corpus: Corpus) -> None:
    spec = corpus.by_id(B + "c0ffe3")
    body = await _fast(client, spec.id)
    assert body["columns"] == ["global_step", "acc", "loss"]
    expected = [{"global_step": s, "acc": d["acc"], "loss": None if math.isnan(d["loss"]) else d["loss"]}
                for s, d in spec.points]
    assert body["rows"] == expected
