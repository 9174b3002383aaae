"""The whole filter language (analysis.md §1) over V2 lists and the CSV export, on a corpus
written through the SDK, against a reference that reads the run files (analysis_ref.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from analysis_ref import Run, read_runs, write_corpus
from api_helpers import assert_error, close_app, ids, open_app
from starlette.applications import Starlette


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Run]]:
    root = tmp_path_factory.mktemp("language") / "data"
    write_corpus(root)
    return root, read_runs(root)


@pytest.fixture(scope="module")
def app(corpus: tuple[Path, list[Run]], backend: str) -> Iterator[Starlette]:
    built = open_app(corpus[0])
    yield built
    close_app(built)


@pytest.fixture
def client(app, client_for):  # type: ignore[no-untyped-def]
    return client_for(app)


CASES: list[tuple[str, Callable[[Run], bool]]] = [
    ("params.lr = 0.1 or params.lr = 0.001", lambda r: r.cmp("params.lr", "=", 0.1) or r.cmp("params.lr", "=", 0.001)),
    ("not params.lr = 0.1", lambda r: not r.cmp("params.lr", "=", 0.1)),
    ("not params.lr != 0.1", lambda r: not r.cmp("params.lr", "!=", 0.1)),
    ("params.lr < 0.05 and not (params.optim.name = 'adam' or params.batch_size >= 64)",
     lambda r: r.cmp("params.lr", "<", 0.05)
     and not (r.cmp("params.optim.name", "=", "adam") or r.cmp("params.batch_size", ">=", 64))),
    ("params.augment = true or metrics.acc.max > 0.4 and params.lr > 0.001",
     lambda r: r.cmp("params.augment", "=", 1)
     or (r.cmp("metrics.acc.max", ">", 0.4) and r.cmp("params.lr", ">", 0.001))),
    ("(params.augment = true or metrics.acc.max > 0.4) and params.lr > 0.001",
     lambda r: (r.cmp("params.augment", "=", 1) or r.cmp("metrics.acc.max", ">", 0.4))
     and r.cmp("params.lr", ">", 0.001)),
    ("not not (params.batch_size = 16)", lambda r: r.cmp("params.batch_size", "=", 16)),
    ("params.lr in (0.1, 0.0001, '0.01')", lambda r: r.isin("params.lr", (0.1, 0.0001, "0.01"))),
    ("params.lr not in (0.1, 0.0001)", lambda r: r.isin("params.lr", (0.1, 0.0001), negate=True)),
    ("params.optim.name not in ('sgd')", lambda r: r.isin("params.optim.name", ("sgd",), negate=True)),
    ("params.optim.name in ('adam', 'AdamW') and metrics.loss.last in (0.25, 0.5)",
     lambda r: r.isin("params.optim.name", ("adam", "AdamW")) and r.isin("metrics.loss.last", (0.25, 0.5))),
    ("params.optim.name like 'adam%'", lambda r: r.like("params.optim.name", "adam%")),
    ("params.optim.name ilike 'ADAM%'", lambda r: r.like("params.optim.name", "ADAM%", ci=True)),
    ("params.optim.name not like '%a%'", lambda r: r.like("params.optim.name", "%a%", negate=True)),
    ("params.optim.name not ilike '%W'", lambda r: r.like("params.optim.name", "%W", ci=True, negate=True)),
    ("params.extra.note like '5\\%%'", lambda r: r.like("params.extra.note", "5\\%%")),
    ("params.extra.note like 'run\\_1'", lambda r: r.like("params.extra.note", "run\\_1")),
    ("params.extra.note like 'run_1'", lambda r: r.like("params.extra.note", "run_1")),
    ("params.extra.note like 'it\\'s'", lambda r: r.like("params.extra.note", "it's")),
    ("params.extra.note ilike 'ünï%'", lambda r: r.like("params.extra.note", "ünï%", ci=True)),
    ("params.lr like '0%'", lambda r: r.like("params.lr", "0%")),
    ("params.lr is null", lambda r: r.null("params.lr")),
    ("params.lr is not null", lambda r: not r.null("params.lr")),
    ("metrics.acc.max is null", lambda r: r.null("metrics.acc.max")),
    ("metrics.acc is not null and metrics.acc.count < 4",
     lambda r: not r.null("metrics.acc") and r.cmp("metrics.acc.count", "<", 4)),
    ("attributes.status = 'failed' or attributes.status = 'running'",
     lambda r: r.attributes["status"] in ("failed", "running")),
    ("attributes.status in ('finished', 'interrupted') and not attributes.project = 'nlp'",
     lambda r: r.attributes["status"] in ("finished", "interrupted") and r.attributes["project"] != "nlp"),
    ("attributes.name like 'exp_' and attributes.name != 'exp1'",
     lambda r: r.like("attributes.name", "exp_") and r.cmp("attributes.name", "!=", "exp1")),
    ("attributes.alias is null", lambda r: r.null("attributes.alias")),
    ("attributes.alias like 'base-1%'", lambda r: r.like("attributes.alias", "base-1%")),
    ("not attributes.alias = 'base-0'", lambda r: not r.cmp("attributes.alias", "=", "base-0")),
    ("attributes.ended_at is null", lambda r: r.null("attributes.ended_at")),
    ("attributes.duration_s >= 0", lambda r: r.cmp("attributes.duration_s", ">=", 0)),
    ("attributes.created_at > '2000-01-01T00:00:00Z' and attributes.created_at < 4102444800",
     lambda r: 946684800 < r.attributes["created_at"] < 4102444800),
    ("attributes.best_metric_value > 0.4", lambda r: r.cmp("attributes.best_metric_value", ">", 0.4)),
    ("attributes.best_metric_value is null", lambda r: r.null("attributes.best_metric_value")),
    ("tags = 'best'", lambda r: r.has_tag("best")),
    ("tags != 'best'", lambda r: bool(r.tags) and not r.has_tag("best")),
    ("not tags = 'best'", lambda r: not r.has_tag("best")),
    ("tags in ('baseline', 'prod-1')", lambda r: r.has_tag("baseline", "prod-1")),
    ("tags not in ('baseline', 'prod-1')", lambda r: bool(r.tags) and not r.has_tag("baseline", "prod-1")),
    ("tags like 'prod%'", lambda r: r.tag_like("prod%")),
    ("tags ilike 'BASE%'", lambda r: r.tag_like("BASE%", ci=True)),
    ("tags not like 'b%'", lambda r: bool(r.tags) and not r.tag_like("b%")),
    ("tags is null", lambda r: not r.tags),
    ("tags is not null and not (tags = 'baseline')", lambda r: bool(r.tags) and not r.has_tag("baseline")),
    # the 5-clause shape of the benchmark
    ("(params.lr < 0.01 or params.optim.name = 'adam') and not params.batch_size = 64"
     " and (metrics.acc.max > 0.3 or tags = 'best')",
     lambda r: (r.cmp("params.lr", "<", 0.01) or r.cmp("params.optim.name", "=", "adam"))
     and not r.cmp("params.batch_size", "=", 64) and (r.cmp("metrics.acc.max", ">", 0.3) or r.has_tag("best"))),
]


async def _all(client: Any, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v2/experiments", params={"per_page": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _expected(runs: list[Run], keep: Callable[[Run], bool], include_deleted: bool = False) -> list[str]:
    return sorted((r.id for r in runs if (include_deleted or not r.deleted) and keep(r)), reverse=True)


@pytest.mark.parametrize(("text", "keep"), CASES, ids=[c[0] for c in CASES])
async def test_every_construct_matches_the_reference(client, corpus, text: str, keep: Callable[[Run], bool]) -> None:
    runs = corpus[1]
    expected = _expected(runs, keep)
    body = await _all(client, filter=text, order_by="created_at")
    assert ids(body) == expected
    assert body["total"] == len(expected)
    # deleted runs too, and a second ask (the kept sets) answers the same
    with_deleted = await _all(client, filter=text, include_deleted="true")
    assert sorted(ids(with_deleted), reverse=True) == _expected(runs, keep, include_deleted=True)
    assert (await _all(client, filter=text, order_by="created_at"))["total"] == len(expected)
    # with another filter the expression goes to SQLite as one condition: the same runs
    in_vision = await _all(client, filter=text, project="vision", order_by="name", order_desc="false")
    assert sorted(ids(in_vision)) == sorted(i for i in expected if i in {r.id for r in runs
                                                                         if r.attributes["project"] == "vision"})
    assert in_vision["total"] == len(ids(in_vision))


async def test_the_language_pages_sorts_and_combines_with_other_filters(client, corpus) -> None:
    runs = corpus[1]
    text = "params.lr < 0.05 or not tags is null"

    def keep(r: Run) -> bool:
        return r.attributes["project"] == "vision" and (r.cmp("params.lr", "<", 0.05) or bool(r.tags))

    expected = [r for r in runs if not r.deleted and keep(r)]
    by_lr = sorted((r for r in expected if isinstance(r.value("params.lr"), float)),
                   key=lambda r: (r.value("params.lr"), r.id))
    rest = sorted((r for r in expected if r not in by_lr), key=lambda r: r.id)
    want = [r.id for r in by_lr + rest]  # numbers first, then runs lacking it, ties by id
    seen: list[str] = []
    for page in range(1, 20):
        body = (await client.get("/api/v2/experiments", params={
            "filter": text, "project": "vision", "order_by": "params.lr", "order_desc": "false",
            "per_page": 4, "page": page,
        })).json()
        assert body["total"] == len(want)
        seen += ids(body)
        if not body["has_next"]:
            break
    assert seen == want


async def test_the_csv_export_takes_the_whole_language(client, corpus) -> None:
    text = "not (params.optim.name = 'sgd') and (tags = 'best' or attributes.status = 'failed')"
    def wanted(r: Run) -> bool:
        return not r.cmp("params.optim.name", "=", "sgd") and (r.has_tag("best") or r.attributes["status"] == "failed")

    response = await client.get("/api/v2/experiments.csv", params={"filter": text, "order_by": "created_at"})
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["id"] for row in rows] == _expected(corpus[1], wanted)


@pytest.mark.parametrize(
    ("text", "words", "position"),
    [
        ("params.a = 1 or", "Expected a clause after 'or'", 15),
        ("(params.a = 1", "Unclosed '('", 13),
        ("params.a = 1)", "Unbalanced ')'", 12),
        ("metrics.acc like 'x%'", "'like' takes strings only", 12),
        ("attributes.status = 'done'", "Unknown status 'done'", 20),
        ("tags > 'a'", "Strings compare with = and != only", 5),
        ("(" * 17 + "params.a = 1" + ")" * 17, "Too many levels of parentheses: at most 16", 16),
        (" or ".join(f"params.a = {i}" for i in range(65)), "Too many clauses: at most 64", 1078),
    ],
)
async def test_malformed_expressions_are_400_with_what_and_where(client, text: str, words: str, position: int) -> None:
    response = await client.get("/api/v2/experiments", params={"filter": text})
    detail = assert_error(response, 400, words)
    assert detail.startswith("Invalid filter: ") and detail.endswith(f"at position {position}"), detail
    assert_error(await client.get("/api/v2/experiments.csv", params={"filter": text}), 400, words)


async def test_an_in_of_a_thousand_values_fits_and_longer_is_refused(client, corpus) -> None:
    values = [0.1] + [1000.0 + i for i in range(999)]
    text = f"params.lr in ({', '.join(repr(v) for v in values)})"
    assert len(text) <= 16_000
    body = await _all(client, filter=text)
    assert ids(body) == _expected(corpus[1], lambda r: r.cmp("params.lr", "=", 0.1))
    assert_error(await client.get("/api/v2/experiments", params={"filter": text[:-1] + ", 7)"}), 400,
                 "at most 1,000")
    too_long = "params.lr = 0.1 or " * 850 + "params.lr = 0.1"
    assert_error(await client.get("/api/v2/experiments", params={"filter": too_long}), 400, "too long")
