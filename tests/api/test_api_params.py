"""V2 over params and metric summaries: include=, filter=, order_by= on a corpus written through
the SDK, checked against a reference evaluation of extensions.md §1-4 in plain Python."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import assert_error, close_app, ids, open_app
from starlette.applications import Starlette
from support import reference_summary

import runicorn_lite
from runicorn_lite import rundir

N_RUNS = 30
LRS = [0.1, 0.01, 0.001, 0.0001]
OPTIMS = ["sgd", "adam", "adamw"]


def spec(i: int) -> dict[str, Any]:
    """Run i: its config args, its metric series, its project, status and deletion."""
    args: dict[str, Any] = {
        "batch_size": [16, 32, 64][i % 3],
        "optim": {"name": OPTIMS[i % 3], "momentum": 0.9},
        "augment": bool(i % 2),
        "seed": i,
    }
    if i % 7 != 0:
        args["lr"] = LRS[i % 4]
    if i == 5:
        args["lr"] = "0.01"  # a string: never equal to the number 0.01
    if i == 6:
        args["lr"] = None  # null: the run lacks it for filters and sorts
    acc = [round(0.1 + ((i * 7 + s * 3) % 10) / 20, 4) for s in range(1, 6)]
    series: dict[str, list[float]] = {"loss": [round(1 / (s + i % 5), 4) for s in range(1, 6)]}
    if i % 10 != 9:
        series["acc"] = acc
    if i == 8:
        series["acc"] = [math.nan] * 5  # a metric with no finite value: lacks every aggregate but count
    return {
        "args": args,
        "extra": {"note": f"run {i}"},
        "series": series,
        "project": "a" if i < 3 else "b",
        "status": "failed" if i % 4 == 3 else "finished",
        "deleted": i == 29,
    }


def flat_params(s: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in s["args"].items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    out.update({f"extra.{k}": v for k, v in s["extra"].items()})
    return out


def summary(values: list[float]) -> dict[str, Any]:
    return reference_summary(dict(enumerate(values, start=1)))


class Ref:
    """The corpus as the reference sees it."""

    def __init__(self, runs: list[tuple[str, dict[str, Any]]]) -> None:
        self.runs = runs

    def live(self) -> list[tuple[str, dict[str, Any]]]:
        return [(i, s) for i, s in self.runs if not s["deleted"]]

    @staticmethod
    def value(s: dict[str, Any], field: str) -> Any:
        """The field's value, or None when the run lacks it."""
        kind, _, rest = field.partition(".")
        if kind == "params":
            v = flat_params(s).get(rest)
            return int(v) if isinstance(v, bool) else v
        name, _, agg = rest.rpartition(".")
        if agg not in ("last", "min", "max", "first", "count"):
            name, agg = rest, "last"
        values = s["series"].get(name)
        return None if values is None else summary(values)[agg]


OPS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def matches(ref: Ref, s: dict[str, Any], clauses: list[tuple[str, str, Any]]) -> bool:
    for field, op, wanted in clauses:
        v = ref.value(s, field)
        if v is None or isinstance(v, str) != isinstance(wanted, str):
            return False
        if not OPS[op](v, wanted):
            return False
    return True


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Ref]]:
    root = tmp_path_factory.mktemp("params") / "data"
    runs = []
    for i in range(N_RUNS):
        s = spec(i)
        run = runicorn_lite.init(path=f"{s['project']}/sweep", root=root, run_id=f"20240101_000000_{i:06x}")
        run.log_config(args=s["args"], extra=s["extra"])
        if i == 1:
            rundir.atomic_write_json(run.run_dir / rundir.ENVIRONMENT, {"python_version": "3.11.7", "git_info": None})
        for name, values in s["series"].items():
            for step, value in enumerate(values, start=1):
                run.log({name: value}, step=step)
        run.finish(s["status"])
        if s["deleted"]:
            rundir.mark_deleted(run.run_dir, s["status"], "cleanup", 1.0)
        runs.append((run.id, s))
    yield root, Ref(runs)


@pytest.fixture(scope="module")
def app(corpus: tuple[Path, Ref], backend: str) -> Iterator[Starlette]:
    built = open_app(corpus[0])
    yield built
    close_app(built)


@pytest.fixture
def client(app, client_for):  # type: ignore[no-untyped-def]
    return client_for(app)


@pytest.fixture
def ref(corpus: tuple[Path, Ref]) -> Ref:
    return corpus[1]


async def _all(client: Any, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v2/experiments", params={"per_page": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def test_include_params_and_metrics(client, ref: Ref) -> None:
    body = await _all(client, include="params,metrics")
    assert body["total"] == N_RUNS - 1
    for exp in body["experiments"]:
        s = dict(ref.runs)[exp["id"]]
        assert exp["params"] == flat_params(s)
        assert exp["metrics"] == {
            name: {k: summary(v)[k] for k in ("last", "min", "max")} for name, v in s["series"].items()
        }
    only = await _all(client, include="params")
    assert all("params" in e and "metrics" not in e for e in only["experiments"])
    plain = await _all(client)
    assert all("params" not in e and "metrics" not in e for e in plain["experiments"])


@pytest.mark.parametrize("bad", ["bogus", "params,bogus", "params,metrics,config"])
async def test_include_refuses_anything_else(client, bad: str) -> None:
    assert_error(await client.get("/api/v2/experiments", params={"include": bad}), 400, "include")


FILTERS = [
    ("params.lr < 0.01", [("params.lr", "<", 0.01)]),
    ("params.lr <= 0.01", [("params.lr", "<=", 0.01)]),
    ("params.lr = 0.01", [("params.lr", "=", 0.01)]),
    ("params.lr != 0.01", [("params.lr", "!=", 0.01)]),
    ("params.lr > 0.001", [("params.lr", ">", 0.001)]),
    ("params.lr >= 0.001", [("params.lr", ">=", 0.001)]),
    ("params.lr = '0.01'", [("params.lr", "=", "0.01")]),
    ("params.lr != '0.01'", [("params.lr", "!=", "0.01")]),
    ("params.optim.name = 'adam'", [("params.optim.name", "=", "adam")]),
    ('params.optim.name != "adam"', [("params.optim.name", "!=", "adam")]),
    ("params.augment = 1", [("params.augment", "=", 1)]),
    ("params.augment = true", [("params.augment", "=", 1)]),
    ("params.augment = false", [("params.augment", "=", 0)]),
    (
        "params.batch_size >= 32 and params.optim.name = 'adamw'",
        [("params.batch_size", ">=", 32), ("params.optim.name", "=", "adamw")],
    ),
    ("params.extra.note = 'run 4'", [("params.extra.note", "=", "run 4")]),
    ("params.nothing = 1", [("params.nothing", "=", 1)]),
    ("params.nothing != 1", [("params.nothing", "!=", 1)]),
    ("metrics.acc > 0.3", [("metrics.acc.last", ">", 0.3)]),
    ("metrics.acc.max >= 0.5", [("metrics.acc.max", ">=", 0.5)]),
    ("metrics.acc.min < 0.2", [("metrics.acc.min", "<", 0.2)]),
    ("metrics.acc.first = 0.3", [("metrics.acc.first", "=", 0.3)]),
    ("metrics.acc.count = 0", [("metrics.acc.count", "=", 0)]),
    ("metrics.acc.count != 5", [("metrics.acc.count", "!=", 5)]),
    (
        "metrics.loss.last < 0.3 AND params.lr < 0.05 and metrics.acc.max > 0.2",
        [("metrics.loss.last", "<", 0.3), ("params.lr", "<", 0.05), ("metrics.acc.max", ">", 0.2)],
    ),
]


@pytest.mark.parametrize(("text", "clauses"), FILTERS, ids=[f[0] for f in FILTERS])
async def test_filter_matches_the_reference(client, ref: Ref, text: str, clauses: list) -> None:
    body = await _all(client, filter=text, order_by="created_at")
    expected = {i for i, s in ref.live() if matches(ref, s, clauses)}
    assert set(ids(body)) == expected
    assert body["total"] == len(expected)


async def test_filter_combines_with_other_filters_and_pages(client, ref: Ref) -> None:
    clauses = [("params.lr", "<", 0.05)]
    expected = sorted(
        (i for i, s in ref.live() if s["status"] == "finished" and s["project"] == "b" and matches(ref, s, clauses)),
        reverse=True,
    )
    seen = []
    for page in range(1, 10):
        body = (
            await client.get(
                "/api/v2/experiments",
                params={
                    "filter": "params.lr < 0.05",
                    "status": "finished",
                    "project": "b",
                    "per_page": 3,
                    "page": page,
                    "order_by": "name",
                },
            )
        ).json()
        assert body["total"] == len(expected)
        seen.extend(ids(body))
        if not body["has_next"]:
            break
    assert sorted(seen, reverse=True) == expected and len(seen) == len(set(seen))


def reference_order(ref: Ref, field: str, desc: bool, include_deleted: bool = False) -> list[str]:
    runs = ref.runs if include_deleted else ref.live()
    have = [(i, ref.value(s, field)) for i, s in runs if ref.value(s, field) is not None]
    lack = [i for i, s in runs if ref.value(s, field) is None]
    # Numbers before strings (SQLite's order of types), ties by id; reversed as a whole for desc.
    have.sort(key=lambda p: (isinstance(p[1], str), p[1], p[0]), reverse=desc)
    return [i for i, _ in have] + sorted(lack, reverse=desc)


@pytest.mark.parametrize(
    "field",
    [
        "params.lr",
        "params.batch_size",
        "params.optim.name",
        "params.augment",
        "metrics.acc.max",
        "metrics.acc.last",
        "metrics.loss.min",
        "metrics.acc.count",
        "metrics.acc.first",
        "params.nothing",
    ],
)
@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("per_page", [4, 7, 1000])
async def test_order_by_params_and_metrics_pages_neither_overlap_nor_skip(
    client, ref: Ref, field: str, desc: bool, per_page: int
) -> None:
    expected = reference_order(ref, field, desc)
    got: list[str] = []
    page = 1
    while True:
        body = (
            await client.get(
                "/api/v2/experiments",
                params={"order_by": field, "order_desc": str(desc).lower(), "per_page": per_page, "page": page},
            )
        ).json()
        assert body["total"] == len(expected)
        got.extend(ids(body))
        if not body["has_next"]:
            break
        page += 1
    assert got == expected
    past = (
        await client.get("/api/v2/experiments", params={"order_by": field, "per_page": per_page, "page": page + 1})
    ).json()
    assert past["experiments"] == [] and past["total"] == len(expected)


async def test_order_by_a_field_with_filters_and_deleted_runs(client, ref: Ref) -> None:
    body = await _all(
        client, order_by="metrics.acc.max", order_desc="false", include_deleted="true", filter="params.batch_size = 32"
    )
    keep = {i for i, s in ref.runs if s["args"]["batch_size"] == 32}
    assert ids(body) == [i for i in reference_order(ref, "metrics.acc.max", False, True) if i in keep]
    assert any(e.get("deleted_at") for e in body["experiments"]) == any(dict(ref.runs)[i]["deleted"] for i in keep)


@pytest.mark.parametrize("field", ["params.lr", "params.optim.name", "metrics.acc.max", "metrics.loss.min",
                                   "params.nothing"])
@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("include_deleted", ["false", "true", "only"])
async def test_a_filter_ordered_by_a_field_pages_as_the_reference(
    client, ref: Ref, field: str, desc: bool, include_deleted: str
) -> None:
    """A ``filter=`` alone that most runs match, ordered by a param or a metric: its pages come
    from a walk of the field's index testing the filter's kept set (queries/field_pages.py),
    through the runs that lack the field, deleted runs left out, kept or alone as asked."""
    keep = {i for i, s in ref.runs if s["args"]["batch_size"] != 7}
    everything = reference_order(ref, field, desc, include_deleted != "false")
    deleted = {i for i, s in ref.runs if s["deleted"]}
    expected = [i for i in everything if i in keep and (include_deleted != "only" or i in deleted)]
    for per_page in (1, 3):
        got: list[str] = []
        for page in range(1, len(expected) // per_page + 3):
            body = (await client.get("/api/v2/experiments", params={
                "filter": "params.batch_size != 7", "order_by": field, "order_desc": str(desc).lower(),
                "include_deleted": include_deleted, "per_page": per_page, "page": page})).json()
            assert body["total"] == len(expected)
            got.extend(ids(body))
        assert got == expected


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"filter": "params.lr < 0.01 or or params.lr > 1"}, "Expected a field"),
        ({"filter": "(params.lr < 1"}, "Unclosed '('"),
        ({"filter": "metrics.acc.mean > 1"}, "Unknown aggregate 'mean'"),
        ({"filter": "params.optim.name < 'adam'"}, "Strings compare with = and != only"),
        ({"filter": "params.lr < 0.0.1"}, "Malformed number"),
        ({"filter": "params.optim.name = 'adam"}, "Unclosed quote"),
        ({"filter": "params." + "k" * 300 + " = 1"}, "too long"),
        ({"filter": "params.lr < 1", "order_by": "metrics.acc.mean"}, "Invalid order_by: Unknown aggregate 'mean'"),
        ({"order_by": "metrics.`acc"}, "Unclosed backtick"),
        ({"order_by": "bogus"}, "params.<key>"),
        ({"filter": ["params.lr < 1", "params.lr > 0"]}, "given 2 times"),
        ({"filter": "params.lr < 1\x00"}, "NUL"),
    ],
)
async def test_malformed_expressions_are_400_with_what_and_where(client, params: dict, words: str) -> None:
    detail = assert_error(await client.get("/api/v2/experiments", params=params), 400)
    assert words in detail, detail
    if "filter" in params and isinstance(params["filter"], str) and "\x00" not in params["filter"]:
        # Where: the character position, counted from 0 in the expression as sent.
        expected = {"Expected a field": 20, "Unclosed '('": 14, "Unclosed quote": 20, "Malformed": 12, "Strings": 18}
        for start, position in expected.items():
            if start in detail:
                assert detail.endswith(f"at position {position}"), detail


async def test_positions_count_in_the_expression_as_sent(client) -> None:
    detail = assert_error(await client.get("/api/v2/experiments", params={"filter": "   params.lr < 1 or x"}), 400)
    assert detail.endswith("at position 20"), detail  # three spaces + "params.lr < 1 or "


async def test_blank_filter_is_no_filter(client) -> None:
    assert (await _all(client, filter="  "))["total"] == N_RUNS - 1


async def test_detail_carries_params_metrics_config_environment(client, ref: Ref) -> None:
    exp_id, s = ref.runs[1]
    body = (await client.get(f"/api/v2/experiments/{exp_id}")).json()
    assert body["params"] == flat_params(s) == body["experiment"]["params"]
    assert body["metrics"] == {name: summary(v) for name, v in s["series"].items()} == body["experiment"]["metrics"]
    assert body["config"] == {"args": s["args"], "extra": s["extra"]}
    assert body["environment"] == {"python_version": "3.11.7", "git_info": None}
    assert body["images_count"] == 0
    assert body["metrics_summary"]["available_metrics"] == sorted(s["series"])
    other = (await client.get(f"/api/v2/experiments/{ref.runs[2][0]}")).json()
    assert other["environment"] is None and other["environment_available"] is False


async def test_images_list_in_step_order_with_file_urls(tmp_path: Path, client_for) -> None:
    import json as _json

    root = tmp_path / "data"
    run = runicorn_lite.init(project="p", root=root, run_id="20240101_000000_1a1a1a")
    run.log({"loss": 1.0}, step=7)
    run.flush()
    with open(run.run_dir / rundir.EVENTS, "a") as fh:
        fh.writelines(_json.dumps({"ts": 1.0, "type": "image", "data": data}) + "\n" for data in (
            {"key": "b", "path": "media/2 b.png", "step": 5, "caption": "second"},
            {"key": "a", "path": "media/1.png", "step": 2, "caption": None},
            {"key": "c", "path": "media/3.png", "step": None},
        ))
    run.finish()
    app = open_app(root)
    try:
        client = client_for(app)
        body = (await client.get(f"/api/v2/experiments/{run.id}/images")).json()
        base = f"/api/v2/experiments/{run.id}/files/"
        assert body == {
            "images": [
                {"key": "a", "step": 2, "caption": None, "path": "media/1.png", "url": base + "media/1.png"},
                {"key": "b", "step": 5, "caption": "second", "path": "media/2 b.png", "url": base + "media/2%20b.png"},
                {"key": "c", "step": 7, "caption": None, "path": "media/3.png", "url": base + "media/3.png"},
            ]
        }
        assert (await client.get(f"/api/v2/experiments/{run.id}")).json()["images_count"] == 3
        assert_error(await client.get("/api/v2/experiments/20240101_000000_ffffff/images"), 404, "not found")
    finally:
        close_app(app)
