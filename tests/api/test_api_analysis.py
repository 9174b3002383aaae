"""Groups (analysis.md §2), compare's bands (§3) and importance (§4) against references that
read the run files (analysis_ref.py)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from analysis_ref import Run, mean_std, read_runs, write_corpus
from api_helpers import assert_error, close_app, open_app
from starlette.applications import Starlette

import runicorn_lite
from runicorn_lite import rundir


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Run]]:
    root = tmp_path_factory.mktemp("analysis") / "data"
    write_corpus(root)
    write_sweep(root)
    return root, read_runs(root)


def write_sweep(root: Path) -> None:
    """96 runs of project "sweep" whose score is set by lr (a number), optim (a string) and the
    interaction of two flags (both on), with a seed and a note unique to each run that explain
    nothing."""
    rng = random.Random(7)
    for i in range(96):
        lr = [0.1, 0.01, 0.001][i % 3]
        optim = ["sgd", "adam"][(i // 3) % 2]
        a, b = (i // 6) % 2, (i // 12) % 2
        score = {0.1: 0.2, 0.01: 0.6, 0.001: 0.4}[lr] + (0.15 if optim == "adam" else 0.0) + 0.2 * (a & b)
        run = runicorn_lite.init(project="sweep", name="grid", root=root, run_id=f"20240202_000000_{i:06x}")
        run.log_config(args={"lr": lr, "optim": optim, "flag_a": bool(a), "flag_b": bool(b),
                             "seed": rng.randrange(1000), "note": f"trial {i}"})
        for step in range(1, 4):
            run.log({"score": round(score * step / 3 + rng.uniform(-0.005, 0.005), 5)}, step=step)
        run.finish()


@pytest.fixture(scope="module")
def app(corpus: tuple[Path, list[Run]], backend: str) -> Iterator[Starlette]:
    built = open_app(corpus[0])
    yield built
    close_app(built)


@pytest.fixture
def client(app, client_for):  # type: ignore[no-untyped-def]
    return client_for(app)


async def _get(client: Any, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _key_order(v: Any) -> tuple[int, Any]:
    return (0, 0) if v is None else (2, v) if isinstance(v, str) else (1, v)


def reference_groups(runs: list[Run], fields: list[str], metrics: list[str]) -> list[dict[str, Any]]:
    members: dict[tuple[Any, ...], list[Run]] = {}
    for r in sorted(runs, key=lambda r: (r.attributes["created_at"], r.id), reverse=True):
        members.setdefault(tuple(r.value(f) for f in fields), []).append(r)
    out = []
    for key in sorted(members, key=lambda k: tuple(_key_order(v) for v in k)):
        stats = {}
        for m in metrics:
            name, _, agg = m.rpartition(".")
            values = [v for r in members[key] if (v := r.value(f"metrics.{name}.{agg}")) is not None]
            mean, std = mean_std(values)
            stats[m] = {"mean": mean, "std": std, "min": min(values, default=None), "max": max(values, default=None),
                        "count": len(values)}
        out.append({"key": dict(zip(fields, key, strict=True)), "count": len(members[key]),
                    "ids": [r.id for r in members[key]], "metrics": stats})
    return out


def assert_groups(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """``got`` as ``want``, each group's ids in the list's order included."""
    assert [g["key"] for g in got] == [g["key"] for g in want]
    for g, w in zip(got, want, strict=True):
        assert g["count"] == w["count"], g["key"]
        assert g["ids"] == w["ids"], g["key"]
        for label, stats in w["metrics"].items():
            for k, v in stats.items():
                assert g["metrics"][label][k] == (v if v is None else pytest.approx(v, rel=1e-9, abs=1e-12)), (
                    g["key"], label, k)


async def test_groups_by_two_params_match_the_reference(client, corpus) -> None:
    runs = [r for r in corpus[1] if not r.deleted and r.attributes["project"] != "sweep"]
    body = await _get(client, "/api/v2/groups", group_by="params.optim.name,params.lr",
                      metrics="acc.max,loss", filter="attributes.project != 'sweep'")
    want = reference_groups(runs, ["params.optim.name", "params.lr"], ["acc.max", "loss.last"])
    assert_groups(body["groups"], want)
    # the same question with other words (not a kept answer): the same groups, ids in order
    again = await _get(client, "/api/v2/groups", group_by="params.optim.name,params.lr",
                       metrics="acc.max,loss", filter="not attributes.project = 'sweep'")
    assert_groups(again["groups"], want)
    assert body["total_groups"] == len(want) and body["total_runs"] == len(runs)
    # a group where no run has the metric: count 0, the rest null; one run: no std
    assert any(s["count"] == 1 and s["std"] is None for g in body["groups"] for s in g["metrics"].values())


async def test_groups_by_attributes_and_booleans_with_every_list_filter(client, corpus) -> None:
    runs = [r for r in corpus[1] if r.attributes["project"] != "sweep" and r.has_tag("best", "prod-1")
            and r.attributes["status"] != "failed"]
    body = await _get(client, "/api/v2/groups", group_by="attributes.status,params.augment", metrics="acc.min",
                      tags="best,prod-1", status="finished,interrupted,running", include_deleted="true",
                      filter="not attributes.project = 'sweep'")
    assert_groups(body["groups"], reference_groups(runs, ["attributes.status", "params.augment"], ["acc.min"]))


@pytest.mark.parametrize("include_deleted", ["false", "true", "only"])
async def test_groups_of_a_filter_alone_match_the_reference_with_deleted_runs_in_or_out(
    client, corpus, include_deleted: str
) -> None:
    keep = {"false": lambda r: not r.deleted, "true": lambda r: True, "only": lambda r: r.deleted}[include_deleted]
    runs = [r for r in corpus[1] if keep(r) and (r.attributes["project"] != "sweep" or r.value("params.lr") == 0.1)]
    assert any(r.deleted for r in corpus[1])
    fields, metrics = ["params.optim.name", "params.augment"], ["acc.max", "loss.min"]
    want = reference_groups(runs, fields, metrics)
    for expression in ("attributes.project != 'sweep' or params.lr = 0.1",
                       "not (attributes.project = 'sweep' and params.lr != 0.1)"):
        body = await _get(client, "/api/v2/groups", group_by=",".join(fields), metrics=",".join(metrics),
                          filter=expression, include_deleted=include_deleted)
        assert_groups(body["groups"], want)
        assert body["total_runs"] == len(runs) and body["total_groups"] == len(want)
    # no filter at all: every run (of the deletion asked)
    every = [r for r in corpus[1] if keep(r)]
    body = await _get(client, "/api/v2/groups", group_by=",".join(fields), metrics=",".join(metrics),
                      include_deleted=include_deleted)
    assert_groups(body["groups"], reference_groups(every, fields, metrics))


async def test_groups_ordered_by_a_metric_mean_and_without_it_last(client, corpus) -> None:
    runs = [r for r in corpus[1] if not r.deleted and r.attributes["project"] != "sweep"]
    want = reference_groups(runs, ["params.batch_size"], ["acc.last"])
    for desc in (True, False):
        body = await _get(client, "/api/v2/groups", group_by="params.batch_size", metrics="acc",
                          order_by="acc", order_desc=str(desc).lower(), filter="attributes.project != 'sweep'")
        with_mean = sorted((g for g in want if g["metrics"]["acc.last"]["mean"] is not None),
                           key=lambda g: g["metrics"]["acc.last"]["mean"], reverse=desc)
        assert [g["key"] for g in body["groups"]] == [g["key"] for g in with_mean] + [
            g["key"] for g in want if g["metrics"]["acc.last"]["mean"] is None]


async def test_groups_lacking_a_field_fall_in_null_and_a_metric_no_run_has_is_count_0(client, corpus) -> None:
    body = await _get(client, "/api/v2/groups", group_by="params.nothing", metrics="nothing.max")
    [group] = body["groups"]
    assert group["key"] == {"params.nothing": None}
    assert group["count"] == sum(1 for r in corpus[1] if not r.deleted)
    assert group["metrics"]["nothing.max"] == {"mean": None, "std": None, "min": None, "max": None, "count": 0}


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({}, "group_by"),
        ({"group_by": "lr"}, "Expected params.<key>"),
        ({"group_by": "attributes.alias"}, "attributes.status|project|name"),
        ({"group_by": "params.a,params.b,params.c,params.d,params.e,params.f"}, "1 to 5"),
        ({"group_by": "params.a", "metrics": ",".join(f"m{i}" for i in range(11))}, "at most 10"),
        ({"group_by": "params.a", "metrics": "acc.mean"}, "Unknown aggregate 'mean'"),
        ({"group_by": "params.a", "metrics": "acc", "order_by": "loss"}, "must be one of the metrics"),
        ({"group_by": "params.a", "filter": "params.a = 1 or"}, "Invalid filter"),
        ({"group_by": "params.a", "bogus": "1"}, "Unknown parameter 'bogus'"),
        ({"group_by": "params.a", "include": "params"}, "include"),
    ],
)
async def test_groups_refuse_bad_input(client, params: dict[str, str], words: str) -> None:
    assert_error(await client.get("/api/v2/groups", params=params), 400, words)


async def test_compare_by_group_draws_mean_and_std_bands_from_the_files(client, corpus) -> None:
    runs = [r for r in corpus[1] if r.attributes["project"] == "sweep"][:12]
    body = await _get(client, "/api/v2/compare", ids=",".join(r.id for r in runs), metric_names="score",
                      group_by="params.optim,params.flag_a")
    assert set(body["series"]["score"]) == {r.id for r in runs}  # the per-run answer stays
    want: dict[tuple[Any, ...], list[Run]] = {}
    for r in runs:
        want.setdefault((r.value("params.optim"), r.value("params.flag_a")), []).append(r)
    keys = sorted(want, key=lambda k: tuple(_key_order(v) for v in k))
    assert body["groups"] == [{"key": {"params.optim": k[0], "params.flag_a": k[1]}, "ids": [r.id for r in want[k]]}
                              for k in keys]
    for index, key in enumerate(keys):
        band = body["group_series"]["score"][str(index)]
        assert band["steps"] == [1, 2, 3]
        for j, step in enumerate((1, 2, 3)):
            values = [_points(r)[step] for r in want[key]]
            mean, std = mean_std(values)
            assert band["mean"][j] == pytest.approx(mean) and band["count"][j] == len(values)
            assert band["std"][j] == (None if std is None else pytest.approx(std))
            assert (band["min"][j], band["max"][j]) == (min(values), max(values))


def _points(r: Run) -> dict[int, float]:
    """The run's score by step, from its events file."""
    out = {}
    for line in (r.run_dir / rundir.EVENTS).read_text().splitlines():
        data = json.loads(line)["data"]
        out[data["global_step"]] = data["score"]
    return out


async def test_compare_bands_count_only_runs_with_a_point_at_the_step(client, corpus) -> None:
    # run 7 of the language corpus has no acc; run 9 only NaN: neither counts anywhere
    runs = [r for r in corpus[1] if r.attributes["project"] != "sweep"][5:11]
    body = await _get(client, "/api/v2/compare", ids=",".join(r.id for r in runs), metric_names="acc,loss",
                      group_by="attributes.project", downsample=2)
    for index, group in enumerate(body["groups"]):
        with_acc = [i for i in group["ids"] if any(r.id == i and r.value("metrics.acc.count") for r in runs)]
        acc = body["group_series"]["acc"].get(str(index))
        if not with_acc:
            assert acc is None
            continue
        assert len(acc["steps"]) <= 2 and max(acc["count"]) <= len(with_acc)
        assert body["group_series"]["loss"][str(index)]["count"][-1] == len(group["ids"])
    assert_error(await client.get("/api/v2/compare", params={"ids": runs[0].id, "group_by": "metrics.acc"}), 400,
                 "group_by")


def _spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(a: list[float]) -> list[float]:
        order = sorted(range(len(a)), key=lambda i: a[i])
        out = [0.0] * len(a)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and a[order[j + 1]] == a[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))


async def test_importance_finds_what_sets_the_metric_and_its_correlation(client, corpus) -> None:
    sweep = [r for r in corpus[1] if r.attributes["project"] == "sweep"]
    body = await _get(client, "/api/v2/importance", metric="score.max", project="sweep")
    assert body["metric"] == "score.max" and body["runs"] == len(sweep)
    by_key = {p["key"]: p for p in body["params"]}
    assert set(by_key) == {"lr", "optim", "flag_a", "flag_b", "seed", "note"}
    shares = [p["importance"] for p in body["params"]]
    assert shares == sorted(shares, reverse=True) and all(0 <= s <= 1 for s in shares) and sum(shares) <= 1
    assert body["params"][0]["key"] == "lr"
    # a string param and both halves of an interaction explain more than the noise
    assert min(by_key["optim"]["importance"], by_key["flag_a"]["importance"],
               by_key["flag_b"]["importance"]) > by_key["seed"]["importance"]
    # a string unique to each run predicts nothing out of sample
    assert by_key["note"]["importance"] < by_key["lr"]["importance"] / 20
    y = [r.value("metrics.score.max") for r in sweep]
    for key in ("lr", "seed", "flag_a"):
        assert by_key[key]["correlation"] == pytest.approx(_spearman([r.value(f"params.{key}") for r in sweep], y))
    assert by_key["optim"]["correlation"] is None and by_key["note"]["correlation"] is None  # strings
    assert all(p["runs"] == len(sweep) for p in body["params"])
    again = await _get(client, "/api/v2/importance", metric="score.max", project="sweep")
    assert again["params"] == body["params"]  # seeded


async def test_importance_takes_chosen_params_and_the_list_filters(client, corpus) -> None:
    sweep = [r for r in corpus[1] if r.attributes["project"] == "sweep" and r.value("params.optim") == "adam"]
    body = await _get(client, "/api/v2/importance", metric="score", params="lr,seed,absent",
                      filter="attributes.project = 'sweep' and params.optim = 'adam'")
    assert body["metric"] == "score.last" and body["runs"] == len(sweep)
    assert {p["key"] for p in body["params"]} == {"lr", "seed", "absent"}
    absent = next(p for p in body["params"] if p["key"] == "absent")
    assert absent["runs"] == 0 and absent["importance"] == 0 and absent["correlation"] is None


async def test_importance_refuses_too_few_runs_and_bad_input(client) -> None:
    detail = assert_error(await client.get("/api/v2/importance", params={"metric": "score", "filter": "params.lr = 0.1",
                                                                         "project": "nlp"}), 400, "at least 10 runs")
    assert "0 of the matching runs" in detail
    assert_error(await client.get("/api/v2/importance"), 400, "metric")
    assert_error(await client.get("/api/v2/importance", params={"metric": "score.avg"}), 400, "Unknown aggregate")
    assert_error(await client.get("/api/v2/importance", params={"metric": "score", "filter": "("}), 400,
                 "Invalid filter")
