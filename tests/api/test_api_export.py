"""CSV exports (extensions.md §6) on runs written through the SDK: experiments.csv holds exactly
the rows of the V2 list (every page of it, in its order) with params and metric summaries as
columns; metrics.csv holds exactly the points of metrics/fast without downsampling."""

from __future__ import annotations

import csv
import io
import math
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_helpers import assert_error, close_app, open_app
from asgi_stream import AsgiStream
from starlette.applications import Starlette

import runicorn_lite
from runicorn_lite import rundir
from runicorn_lite.api import export

N_RUNS = 24
FIXED = ["id", "project", "name", "path", "alias", "status", "created_at", "ended_at", "duration_s",
         "best_metric_name", "best_metric_value", "tags"]


def _config(i: int) -> dict[str, Any]:
    args: dict[str, Any] = {"optim": {"name": ["sgd", "adam", "adamw"][i % 3], "lr": [0.1, 0.01, 0.001][i % 3]},
                            "batch": [16, 32][i % 2], "mixup": bool(i % 2), "nothing": None}
    if i % 5 == 0:
        args["layers"] = [64, 128]  # a list is kept as its JSON text
    if i % 4 == 0:
        del args["optim"]["lr"]  # runs lacking a param sort last and have an empty cell
    if i == 7:
        args["note"] = 'comma, "quote"\nand a line break'  # RFC 4180 quoting
    return args


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export") / "data"
    for i in range(N_RUNS):
        run = runicorn_lite.init(path=f"{'cv' if i % 2 else 'nlp'}/sweep-ü", root=root,
                                 run_id=f"20240301_000000_{i:06x}", tags=["t", f"g{i % 3}"] if i % 3 else [],
                                 alias=f"alias {i}" if i % 2 else None)
        run.log_config(args=_config(i), extra={"seed": i})
        run.set_primary_metric("acc", "max")
        for step in range(1, 6):
            values = {"loss": 1 / (step + i), "acc": ((i * 7 + step * 3) % 10) / 10}
            if i == 3:
                values["acc"] = math.nan  # no finite value: empty summary cells
            if i % 6 == 1:
                values["val,loss"] = step / 10  # a metric name that needs quoting
            run.log(values, step=step)
        if i != 11:  # run 11 stays running: no ended_at, no duration
            run.finish("failed" if i % 4 == 3 else "finished")
        if i == 13:
            rundir.mark_deleted(run.run_dir, "finished", "cleanup", 1.0)
    return root


@pytest.fixture(scope="module")
def app(root: Path, backend: str) -> Iterator[Starlette]:
    built = open_app(root)
    yield built
    close_app(built)


@pytest.fixture
def client(app, client_for):  # type: ignore[no-untyped-def]
    return client_for(app)


def parse_csv(response: Any) -> tuple[list[str], list[dict[str, str]]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.count(b"\r\n") >= 1  # RFC 4180 line ends
    reader = csv.reader(io.StringIO(response.content.decode("utf-8"), newline=""))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value if isinstance(value, str) else repr(value)


async def _listed(client: Any, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of the V2 list, as a client paging through it sees it."""
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await client.get("/api/v2/experiments", params={
            **params, "include": "params,metrics", "per_page": "7", "page": str(page)})
        assert response.status_code == 200, response.text
        body = response.json()
        out += body["experiments"]
        if not body["has_next"]:
            return out
        page += 1


LIST_QUERIES = [
    {},
    {"order_by": "name", "order_desc": "false"},
    {"order_by": "best_metric_value"},
    {"order_by": "best_metric_value", "order_desc": "false"},
    {"order_by": "ended_at", "order_desc": "false"},
    {"order_by": "params.optim.lr"},
    {"order_by": "params.optim.lr", "order_desc": "false"},
    {"order_by": "params.optim.name", "order_desc": "false"},
    {"order_by": "metrics.acc.max", "order_desc": "false"},
    {"order_by": "metrics.`val,loss`.last"},
    {"filter": "params.batch = 32 and metrics.loss.min < 0.2"},
    {"filter": "params.optim.name != 'adam'", "order_by": "params.batch"},
    {"search": "cv sweep"},
    {"tags": "g1"},
    {"project": "nlp", "status": "finished"},
    {"include_deleted": "true", "order_by": "name"},
    {"include_deleted": "true", "order_by": "params.mixup"},
    {"created_after": "0", "best_metric_min": "0.5"},
    {"filter": "params.batch > 1000"},  # no match: the header row alone
]


@pytest.mark.parametrize("params", LIST_QUERIES, ids=[str(p) for p in LIST_QUERIES])
async def test_experiments_csv_is_the_list_with_params_and_metrics(client, params: dict[str, str]) -> None:
    listed = await _listed(client, params)
    response = await client.get("/api/v2/experiments.csv", params=params)
    header, rows = parse_csv(response)
    assert response.headers["content-disposition"] == 'attachment; filename="experiments.csv"'
    # every matching run, in the list's order
    assert [r["id"] for r in rows] == [e["id"] for e in listed]
    keys = sorted({k for e in listed for k in e["params"]})
    names = sorted({n for e in listed for n in e["metrics"]})
    assert header == [*FIXED, *(f"params.{k}" for k in keys),
                      *(f"metrics.{n}.{agg}" for n in names for agg in ("last", "min", "max"))]
    for exp, row in zip(listed, rows, strict=True):
        assert row["project"] == exp["project"] and row["name"] == exp["name"] and row["path"] == exp["path"]
        assert row["alias"] == (exp["alias"] or "") and row["status"] == exp["status"]
        assert row["created_at"] == _iso(exp["created_at"]) and row["ended_at"] == _iso(exp["ended_at"])
        duration = round(exp["ended_at"] - exp["created_at"], 3) if exp["ended_at"] else None
        assert row["duration_s"] == _cell(duration)
        assert row["best_metric_name"] == (exp["best_metric_name"] or "")
        assert row["best_metric_value"] == _cell(exp["best_metric_value"])
        assert row["tags"] == ";".join(exp["tags"])
        for key in keys:
            value = exp["params"].get(key)
            assert row[f"params.{key}"] == _cell(value), key
        for name in names:
            summary = exp["metrics"].get(name, {})
            for agg in ("last", "min", "max"):
                assert row[f"metrics.{name}.{agg}"] == _cell(summary.get(agg)), (name, agg)


async def test_csv_cells_as_written(client) -> None:
    header, rows = parse_csv(await client.get("/api/v2/experiments.csv", params={"order_by": "name"}))
    by_id = {r["id"]: r for r in rows}
    seven = by_id["20240301_000000_000007"]
    assert seven["params.note"] == 'comma, "quote"\nand a line break'
    assert seven["params.mixup"] == "true" and seven["params.batch"] == "32" and seven["params.optim.lr"] == "0.01"
    assert by_id["20240301_000000_000000"]["params.layers"] == "[64,128]"
    assert by_id["20240301_000000_000000"]["params.optim.lr"] == ""  # lacks it
    assert "params.nothing" in header and {r["params.nothing"] for r in rows} == {""}  # null everywhere
    assert by_id["20240301_000000_000003"]["metrics.acc.max"] == ""  # NaN only
    assert by_id["20240301_000000_00000b"]["ended_at"] == "" and by_id["20240301_000000_00000b"]["duration_s"] == ""
    assert by_id["20240301_000000_000001"]["metrics.val,loss.last"] == "0.5"
    assert by_id["20240301_000000_000001"]["project"] == "cv" and by_id["20240301_000000_000001"]["name"] == "sweep-ü"
    assert "20240301_000000_00000d" not in by_id  # soft-deleted, not asked for
    raw = (await client.get("/api/v2/experiments.csv", params={"order_by": "name"})).content
    assert b'"comma, ""quote""\nand a line break"' in raw  # RFC 4180: doubled quotes, quoted line break
    assert b',"metrics.val,loss.last",' in raw


async def test_export_reads_in_batches_and_holds_no_read_while_the_client_waits(
    app, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "EXPORT_BATCH", 5)  # several batches of this small corpus
    stream = await AsgiStream(app, "/api/v2/experiments.csv?order_by=name&order_desc=false").open()
    try:
        assert stream.status == 200
        header = await stream.read()
        first = await stream.read()
        assert header.startswith(b"id,project,name,") and first.count(b"\r\n") == 5
        # The app is now blocked handing over the next batch. No read transaction may be open:
        # a checkpoint that must wait for every reader completes at once.
        conn = sqlite3.connect(app.state.ctx.settings.index_path)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
        assert busy == 0
        rest = await stream.read_all()
    finally:
        await stream.close()
    lines = (header + first + rest).decode().split("\r\n")
    assert len([line for line in lines if line.startswith("20240301_")]) == N_RUNS - 1


LIST_ERRORS = [
    {"order_by": "bogus"}, {"order_by": "id; DROP TABLE experiments"}, {"order_desc": "maybe"},
    {"include_deleted": "perhaps"}, {"include_deleted": ""}, {"created_after": "yesterday"},
    {"created_before": "2024-01-01"}, {"best_metric_min": "nan"}, {"best_metric_max": "-Infinity"},
    {"status": "bogus"}, {"status": "finished,bogus"}, {"search": "a\x00b"}, {"project": "p" * 2001},
    {"tags": ",".join(f"t{i}" for i in range(101))}, {"search": " ".join(f"w{i}" for i in range(101))},
    {"filter": "params.lr <"}, {"filter": "params.lr < 1 or (params.lr > 2"}, {"filter": "metrics.acc.bogus > 1"},
    {"filter": "params.name < 'x'"}, {"filter": "params.lr = 'open"}, {"filter": ["params.a = 1", "params.b = 2"]},
    {"order_by": "metrics.acc.bogus"}, {"order_by": "params."}, {"include": "config"},
]


@pytest.mark.parametrize("params", LIST_ERRORS, ids=[str(p)[:60] for p in LIST_ERRORS])
async def test_csv_refuses_what_the_list_refuses_with_the_same_answer(client, params: dict[str, Any]) -> None:
    listed = await client.get("/api/v2/experiments", params=params)
    exported = await client.get("/api/v2/experiments.csv", params=params)
    assert_error(listed, 400)
    assert assert_error(exported, 400) == listed.json()["detail"]


# -- metrics.csv ---------------------------------------------------------------------------------------

LONG = "20240302_000000_00000a"


@pytest.fixture(scope="module")
def points_app(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Starlette]:
    """A run of 5,000 steps over many chunks, metrics on different steps, NaN and infinities,
    and a second ingest that rewrites earlier steps (chunks no longer numbered in step order)."""
    root = tmp_path_factory.mktemp("points") / "data"
    run = runicorn_lite.init(path="long/run", root=root, run_id=LONG)
    for step in range(5000):
        values: dict[str, float] = {"loss": 1 / (step + 1)}
        if step % 3 == 0:
            values["acc"] = step / 5000
        if step in (10, 4000):
            values["loss"] = math.nan if step == 10 else math.inf
        run.log(values, step=step)
    run.log({"sparse": 1.0}, step=5)
    run.log({"sparse": 2.0}, step=4500)
    run.flush()
    app = open_app(root)
    for step in range(100, 1400, 2):  # logged again: the newest value wins
        run.log({"loss": -float(step)}, step=step)
    run.log({"acc": 0.5}, step=7001)
    run.finish()
    app.state.ctx.indexer.scan()
    yield app
    close_app(app)


async def _fast(client: Any, **params: str) -> dict[str, Any]:
    response = await client.get(f"/api/v2/experiments/{LONG}/metrics/fast", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _points_csv(response: Any) -> tuple[list[str], list[list[str]]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{LONG}_metrics.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    return rows[0], rows[1:]


@pytest.mark.parametrize("params", [
    {}, {"metric_names": "acc,sparse"}, {"step_range": "95:1500"}, {"step_range": "4001:"},
    {"step_range": ":5", "metric_names": "loss"}, {"step_range": "6:4400"}, {"metric_names": "nope"},
    {"step_range": "7001:7001"},
], ids=str)
async def test_metrics_csv_is_every_point_of_metrics_fast(points_app, client_for, params: dict[str, str]) -> None:
    client = client_for(points_app)
    fast = await _fast(client, **params)
    header, rows = _points_csv(await client.get(f"/api/v2/experiments/{LONG}/metrics.csv", params=params))
    assert header == fast["columns"]
    assert len(rows) == fast["total_points"] == len(fast["rows"])  # nothing downsampled
    for row, want in zip(rows, fast["rows"], strict=True):
        assert row == [str(want["global_step"]), *(_cell(want[c]) for c in header[1:])]


async def test_metrics_csv_values(points_app, client_for) -> None:
    client = client_for(points_app)
    header, rows = _points_csv(await client.get(f"/api/v2/experiments/{LONG}/metrics.csv"))
    assert header == ["global_step", "acc", "loss", "sparse"]
    by_step = {int(r[0]): r for r in rows}
    assert len(by_step) == len(rows) == 5001
    assert by_step[10][2] == "" and by_step[4000][2] == ""  # NaN and Infinity: empty cells
    assert by_step[200][2] == "-200.0" and by_step[201][2] == repr(1 / 202)
    assert by_step[4500] == ["4500", repr(0.9), repr(1 / 4501), "2.0"]
    assert by_step[7001] == ["7001", "0.5", "", ""]
    assert [int(r[0]) for r in rows] == sorted(by_step)


@pytest.mark.parametrize(("url", "params", "status"), [
    (f"/api/v2/experiments/{LONG}/metrics.csv", {"step_range": "9:3"}, 400),
    (f"/api/v2/experiments/{LONG}/metrics.csv", {"step_range": "abc"}, 400),
    (f"/api/v2/experiments/{LONG}/metrics.csv", {"step_range": "1:2:3"}, 400),
    (f"/api/v2/experiments/{LONG}/metrics.csv", {"step_range": "99999999999999999999:"}, 400),
    (f"/api/v2/experiments/{LONG}/metrics.csv", {"metric_names": ",".join(f"m{i}" for i in range(1001))}, 400),
    ("/api/v2/experiments/20990101_000000_abcdef/metrics.csv", {}, 404),
    ("/api/v2/experiments/not-a-run-id/metrics.csv", {}, 404),
])
async def test_metrics_csv_bad_input(points_app, client_for, url: str, params: dict[str, str], status: int) -> None:
    assert_error(await client_for(points_app).get(url, params=params), status)


@pytest.mark.parametrize("params", [{"page": "2"}, {"per_page": "10"}, {"staus": "finished"}])
async def test_csv_refuses_paging_and_unknown_parameters(client, params: dict[str, str]) -> None:
    name = next(iter(params))
    detail = assert_error(await client.get("/api/v2/experiments.csv", params=params), 400)
    assert f"Unknown parameter '{name}'" in detail


async def test_metrics_csv_refuses_downsample(points_app, client_for) -> None:
    response = await client_for(points_app).get(f"/api/v2/experiments/{LONG}/metrics.csv", params={"downsample": "9"})
    assert "Unknown parameter 'downsample'" in assert_error(response, 400)
