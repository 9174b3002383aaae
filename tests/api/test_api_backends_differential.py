"""SQLite and PostgreSQL answer alike: every list, filter and sort query over one corpus, the
detail, metrics, compare, analytics and CSV of its runs, byte for byte (less the time taken).

The corpus mixes the API tests' runs (statuses, tags, aliases, Unicode, NaN, deleted runs, ties)
with demo runs (configs of ~20 params: numbers, strings, booleans) and a few runs whose params
hold the same key as a number in one run and a string in another.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import backends
import httpx
import orjson
import pytest
from api_helpers import build_corpus, close_app, open_app
from starlette.applications import Starlette

import runicorn_lite
from runicorn_lite.db.schema import SORT_COLUMNS
from runicorn_lite.demo import write_demo_runs

# This module opens the same corpus on both backends itself: it runs once, not once per backend.
pytestmark = pytest.mark.compares_backends

FILTERS = [
    "",
    "project=vision",
    "status=finished",
    "status=finished,failed",
    "tags=baseline",
    "search=yolo",
    "search=ab",
    "search=yolo%20baseline",
    "search=%C3%BC",
    "include_deleted=true",
    "best_metric_min=0.5",
    "created_after=2000-01-01T00:00:00Z",
    "filter=" + urllib.parse.quote("params.lr < 0.005"),
    "filter=" + urllib.parse.quote("params.optim.name = 'adam'"),
    "filter=" + urllib.parse.quote("params.optim.name != 'adam'"),
    "filter=" + urllib.parse.quote("params.mixed >= 1"),
    "filter=" + urllib.parse.quote("params.mixed = 'b'"),
    "filter=" + urllib.parse.quote("metrics.accuracy.max > 0.5 and params.batch_size >= 32"),
    "filter=" + urllib.parse.quote("metrics.loss.count > 3"),
    "project=vision&status=running&best_metric_min=0.1",
    "filter=" + urllib.parse.quote("(params.lr < 0.003 or params.optim.name = 'sgd') and not metrics.loss.min > 2"),
    "filter=" + urllib.parse.quote("params.mixed in (1, 'a', 2.5) or params.mixed not in ('b')"),
    "filter=" + urllib.parse.quote("params.optim.name like 'ad%' or params.optim.name ilike 'SG_'"),
    "filter=" + urllib.parse.quote("params.mixed is null and tags != 'baseline'"),
    "filter=" + urllib.parse.quote("attributes.status in ('finished', 'failed') and not tags like 'ba%'"),
    "include_deleted=only",
]
ORDERS = [*SORT_COLUMNS, "params.lr", "params.mixed", "params.optim.name", "metrics.accuracy.max",
          "metrics.loss.min", "metrics.loss.last", "metrics.loss.count"]


def _mixed_runs(root: Path) -> None:
    """Runs whose ``mixed`` param is a number in some and a string in others."""
    for i, value in enumerate([1, 2.5, "a", "b", True, None, "B", 0]):
        run = runicorn_lite.init(project="mixed", name=f"m{i}", root=root, config={"mixed": value, "lr": i / 100})
        run.log({"loss": 1.0 / (i + 1), "accuracy": i / 10}, step=1)
        run.finish()


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Starlette]]:
    reason = backends.problem()
    if reason is not None:
        if backends.REQUIRED:
            pytest.fail(f"PostgreSQL tests are required here, but {reason}", pytrace=False)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("diff") / "data"
    corpus = build_corpus(root)
    write_demo_runs(root, runs=30, steps=12, rng=random.Random(7))
    _mixed_runs(root)
    made = {}
    for backend in backends.BACKENDS:
        with backends.using(backend):
            made[backend] = open_app(root)
    yield made
    for app in made.values():
        close_app(app)
    corpus.close()


def _answers(app: Starlette, paths: list[str]) -> list[tuple[int, Any]]:
    async def run() -> list[tuple[int, Any]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            out = []
            for path in paths:
                response = await client.get(path)
                out.append((response.status_code, _comparable(response)))
            return out

    return asyncio.run(run())


def _comparable(response: httpx.Response) -> Any:
    if response.headers.get("content-type", "").startswith("application/json"):
        body = orjson.loads(response.content)
        return _without_times(body)
    return response.text


def _without_times(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in ("query_time_ms", "latencyMs")}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


def _compare(apps: dict[str, Starlette], paths: list[str]) -> list[tuple[int, Any]]:
    sqlite, postgres = (_answers(apps[b], paths) for b in backends.BACKENDS)
    for path, a, b in zip(paths, sqlite, postgres, strict=True):
        assert a == b, f"{path}: SQLite and PostgreSQL differ"
    return sqlite


def test_every_list_filter_and_sort_answers_alike(apps: dict[str, Starlette]) -> None:
    paths = []
    for filt, order, desc in itertools.product(FILTERS, ORDERS, ("true", "false")):
        query = "&".join(q for q in (filt, f"order_by={order}", f"order_desc={desc}", "per_page=7",
                                     "include=params,metrics") if q)
        paths.append(f"/api/v2/experiments?{query}")
    # Pages past the runs that have a field, and huge pages.
    for order in ("params.lr", "metrics.accuracy.max", "ended_at"):
        paths += [f"/api/v2/experiments?order_by={order}&per_page=5&page={p}" for p in range(1, 15)]
    paths.append("/api/v2/experiments?per_page=1000&include_deleted=true")
    answers = _compare(apps, paths)
    # The grid asks real questions: most answers are pages of runs, and orders differ.
    pages = [b for s, b in answers if s == 200 and b["experiments"]]
    assert len(pages) > 0.6 * len(paths)
    assert len({tuple(e["id"] for e in b["experiments"]) for b in pages}) > 50


def test_details_metrics_compare_analytics_and_csv_answer_alike(apps: dict[str, Starlette]) -> None:
    listing = _answers(apps["sqlite"], ["/api/v2/experiments?per_page=1000&include_deleted=true"])[0][1]
    ids = [e["id"] for e in listing["experiments"]]
    assert len(ids) > 40
    paths = ["/api/v2/analytics/summary", "/api/v2/experiments.csv?order_by=params.lr",
             "/api/v2/experiments.csv?filter=" + urllib.parse.quote("metrics.loss.min < 0.5")]
    for exp_id in ids:
        paths += [f"/api/v2/experiments/{exp_id}", f"/api/v2/experiments/{exp_id}/metrics/fast?downsample=5",
                  f"/api/v2/experiments/{exp_id}/metrics/fast", f"/api/v2/experiments/{exp_id}/images",
                  f"/api/v2/experiments/{exp_id}/metrics.csv"]
    paths.append(f"/api/v2/compare?ids={','.join(ids[:10])}&downsample=50")
    answers = _compare(apps, paths)
    assert sum(s == 200 for s, _ in answers) == len(paths)


def test_errors_answer_alike(apps: dict[str, Starlette]) -> None:
    paths = ["/api/v2/experiments?filter=" + urllib.parse.quote(x) for x in
             ("params.lr <", "params.lr < 'x'", "metrics.loss.median > 1", "params.lr < 1 xor params.lr > 2",
              "(params.lr < 1")]
    paths += ["/api/v2/experiments?per_page=100000", "/api/v2/experiments?order_by=params.",
              "/api/v2/experiments/not-a-run", "/api/v2/experiments/20250101_000000_abcdef"]
    _compare(apps, paths)
    assert all(re.match(r"[45]\d\d", str(s)) for s, _ in _answers(apps["postgresql"], paths))
