"""``GET /api/v2/experiments``: every filter (rows and total), pagination, sorting, fields."""

from __future__ import annotations

import functools
import operator
import os
from pathlib import Path
from typing import Any

import pytest
from api_helpers import (
    DOCUMENTED_FIELDS,
    EXTRA_FIELDS,
    Corpus,
    close_app,
    expected_order,
    ids,
    matches_search,
    open_app,
)

import runicorn_lite

ORDER_FIELDS = ["created_at", "updated_at", "best_metric_value", "status", "name", "project", "ended_at"]
B = "20240612_080000_"


@pytest.fixture
def client(corpus_app, client_for):  # type: ignore[no-untyped-def]
    return client_for(corpus_app)


async def _list(client: Any, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v2/experiments", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def _all(client: Any, **params: Any) -> dict[str, Any]:
    return await _list(client, per_page=1000, **params)


async def test_defaults_are_page_1_of_50_newest_first(client, corpus: Corpus) -> None:
    body = await _list(client)
    assert body["page"] == 1 and body["per_page"] == 50
    assert body["total"] == 11 and len(body["experiments"]) == 11
    assert body["has_next"] is False and body["has_prev"] is False
    assert isinstance(body["query_time_ms"], float) and body["query_time_ms"] >= 0
    # created_at descending; equal created_at (c0ffe3/c0ffe4, c0ffe1/c0ffeb) broken by id.
    assert ids(body) == [B + s for s in ("c0ffea", "c0ffe6", "c0ffe8", "c0ffe7", "c0ffe5", "c0ffe4",
                                         "c0ffe3", "c0ffe2", "c0ffeb", "c0ffe1", "c0ffe9")]
    assert corpus.by_id(B + "c0ffe1").created_at == corpus.by_id(B + "c0ffeb").created_at


async def test_the_default_page_holds_50(tmp_path: Path, client_for) -> None:
    root = tmp_path / "data"
    for i in range(51):
        runicorn_lite.init(project="many", root=root, run_id=f"20240101_000000_{i:06d}").finish()
    app = open_app(root)
    try:
        client = client_for(app)
        first = await _list(client)
        assert len(first["experiments"]) == 50 and first["total"] == 51
        assert first["has_next"] is True and first["has_prev"] is False
        second = await _list(client, page=2)
        assert len(second["experiments"]) == 1 and second["has_next"] is False and second["has_prev"] is True
        assert set(ids(first)) | set(ids(second)) == {f"20240101_000000_{i:06d}" for i in range(51)}
    finally:
        close_app(app)


async def test_experiment_objects_carry_the_documented_fields(client, corpus: Corpus) -> None:
    body = await _all(client)
    for exp in body["experiments"]:
        spec = corpus.by_id(exp["id"])
        assert set(exp) == DOCUMENTED_FIELDS | EXTRA_FIELDS, set(exp) ^ (DOCUMENTED_FIELDS | EXTRA_FIELDS)
        assert "metrics" not in exp and "deleted_at" not in exp
        assert exp["project"] == spec.project and exp["name"] == spec.name and exp["path"] == spec.path
        assert exp["status"] == spec.status
        assert exp["created_at"] == pytest.approx(spec.created_at)
        assert exp["ended_at"] == (pytest.approx(spec.ended_at) if spec.ended_at is not None else None)
        assert isinstance(exp["updated_at"], float)
        assert exp["best_metric_value"] == spec.best
        assert exp["best_metric_name"] == (spec.primary[0] if spec.primary else None)
        assert exp["pid"] == os.getpid()
        assert exp["run_dir"] == str(corpus.run_dir(spec))
        assert exp["alias"] == spec.alias and exp["tags"] == spec.tags
        assert exp["description"] == spec.description


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"project": "vision"}, ["c0ffe1", "c0ffe2", "c0ffe3", "c0ffe4", "c0ffeb"]),
        ({"project": "nope"}, []),
        ({"name": "resnet"}, ["c0ffe1", "c0ffe2", "c0ffeb"]),
        ({"name": "gpt/small"}, ["c0ffe8"]),
        ({"project": "nlp", "name": "gpt"}, ["c0ffe7"]),
        ({"status": "running"}, ["c0ffe6", "c0ffea"]),
        ({"status": "finished,failed"}, ["c0ffe1", "c0ffe2", "c0ffe3", "c0ffe5", "c0ffe7", "c0ffe8", "c0ffe9",
                                         "c0ffeb"]),
        ({"status": "interrupted"}, ["c0ffe4"]),
        ({"tags": "baseline"}, ["c0ffe1", "c0ffe2", "c0ffeb"]),
        ({"tags": "baseline,production"}, ["c0ffe1", "c0ffe2", "c0ffe5", "c0ffeb"]),
        ({"tags": "experimental,unknown"}, ["c0ffe3", "c0ffe8"]),
        ({"tags": "Baseline"}, []),
        ({"best_metric_min": "0.91"}, ["c0ffe1", "c0ffe2", "c0ffe5", "c0ffeb"]),
        ({"best_metric_max": "0.5"}, ["c0ffe8", "c0ffe9"]),
        ({"best_metric_min": "0.5", "best_metric_max": "0.8"}, ["c0ffe3", "c0ffe6", "c0ffe9"]),
        ({"project": "vision", "status": "finished", "tags": "baseline"}, ["c0ffe1", "c0ffe2", "c0ffeb"]),
        ({"project": "vision", "status": "finished", "tags": "baseline", "best_metric_min": "0.92"}, ["c0ffe2"]),
        ({"project": "vision", "search": "vit"}, ["c0ffe3", "c0ffe4"]),
    ],
)
async def test_filters_apply_to_rows_and_total(client, params: dict[str, str], expected: list[str]) -> None:
    body = await _all(client, **params)
    assert sorted(ids(body)) == [B + e for e in expected]
    assert body["total"] == len(expected)
    # The same filter, one row per page: total does not depend on the page size.
    small = await _list(client, per_page=1, **params)
    assert small["total"] == len(expected)
    assert small["has_next"] is (len(expected) > 1)


async def test_created_after_and_before_are_inclusive(client, corpus: Corpus) -> None:
    pivot = corpus.by_id(B + "c0ffe5").created_at
    after = await _all(client, created_after=repr(pivot))
    assert sorted(ids(after)) == [B + s for s in ("c0ffe5", "c0ffe6", "c0ffe7", "c0ffe8", "c0ffea")]
    assert after["total"] == 5
    before = await _all(client, created_before=repr(pivot))
    assert sorted(ids(before)) == [B + s for s in ("c0ffe1", "c0ffe2", "c0ffe3", "c0ffe4", "c0ffe5", "c0ffe9",
                                                   "c0ffeb")]
    assert before["total"] == 7
    both = await _all(client, created_after=repr(pivot), created_before=repr(pivot))
    assert ids(both) == [B + "c0ffe5"] and both["total"] == 1
    empty = await _all(client, created_after=repr(pivot + 1), created_before=repr(pivot - 1))
    assert empty["experiments"] == [] and empty["total"] == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("resnet", ["c0ffe1", "c0ffe2", "c0ffeb"]),  # name / path / description; the deleted one not
        ("RESNET", ["c0ffe1", "c0ffe2", "c0ffeb"]),
        ("cifar", ["c0ffe1"]),  # description
        ("resnet cifar", ["c0ffe1"]),  # every word must match
        ("bert-prod", ["c0ffe5"]),  # alias
        ("Tiny", ["c0ffe3", "c0ffe8"]),  # description of one, alias of the other
        ("PRODUCTION", ["c0ffe2", "c0ffe5"]),  # tags
        ("c0ffe7", ["c0ffe7"]),  # id
        ("gpt/small", ["c0ffe8"]),  # path
        ("wav", ["c0ffe9", "c0ffea"]),  # project/name
        ("über", ["c0ffe7"]),  # non-ASCII, case folded
        ("ÜBER-modell", ["c0ffe7"]),
        ("vi", ["c0ffe1", "c0ffe2", "c0ffe3", "c0ffe4", "c0ffeb"]),  # two characters
        ("ViT vi", ["c0ffe3", "c0ffe4"]),
        ("ß", ["c0ffe7"]),  # one character
        ("Ü", ["c0ffe7"]),
        ("ü", ["c0ffe7"]),
        ("resnet 50", ["c0ffe1"]),  # a long and a short word
        ("e", ["c0ffe1", "c0ffe2", "c0ffe3", "c0ffe4", "c0ffe5", "c0ffe6", "c0ffe7", "c0ffe8", "c0ffe9",
               "c0ffea", "c0ffeb"]),
        ("zzz", []),
        ("q", []),
        ('"quoted" 100%', []),
    ],
)
async def test_search(client, corpus: Corpus, text: str, expected: list[str]) -> None:
    reference = sorted(s.id for s in corpus.live if matches_search(s, text))
    assert reference == [B + e for e in expected], "the expectation disagrees with the reference search"
    body = await _all(client, search=text)
    assert sorted(ids(body)) == reference
    assert body["total"] == len(reference)


@pytest.mark.parametrize(
    "text",
    ['" OR 1=1 --', "NEAR(a b)", "*", "^abc", "col:abc", "'", '"', '"""', 'a"b"c', "AND OR NOT", "x" * 2000,
     " ".join(f"{c}{d}" for c in "abcdefghij" for d in "klmnopqrst"), "%", "_", "%_%", "\\"],
)
async def test_search_syntax_is_never_interpreted(client, corpus: Corpus, text: str) -> None:
    """FTS5 query syntax and LIKE wildcards are plain text to search."""
    reference = sorted(s.id for s in corpus.live if matches_search(s, text))
    body = await _all(client, search=text)
    assert sorted(ids(body)) == reference and body["total"] == len(reference)


async def test_search_applies_to_total_with_pagination(client) -> None:
    body = await _list(client, search="vi", per_page=2, page=3)
    assert body["total"] == 5 and len(body["experiments"]) == 1
    assert body["has_next"] is False and body["has_prev"] is True


async def test_include_deleted_lists_soft_deleted_runs_with_deleted_at(client, corpus: Corpus) -> None:
    default = await _all(client)
    assert B + "c0ffec" not in ids(default)
    assert all("deleted_at" not in e for e in default["experiments"])
    body = await _all(client, include_deleted="true")
    assert body["total"] == 12 and len(body["experiments"]) == 12
    by_id = {e["id"]: e for e in body["experiments"]}
    assert by_id[B + "c0ffec"]["deleted_at"] == pytest.approx(corpus.now - 3600)
    assert all(e["deleted_at"] is None for i, e in by_id.items() if i != B + "c0ffec")
    # Filters still apply, to the deleted run too.
    best = await _all(client, include_deleted="true", best_metric_min="0.96")
    assert ids(best) == [B + "c0ffec"] and best["total"] == 1
    assert (await _all(client, include_deleted="false"))["total"] == 11


async def test_pagination_and_a_page_past_the_end(client) -> None:
    everything = ids(await _all(client))
    pages = []
    for page in (1, 2, 3):
        body = await _list(client, per_page=4, page=page)
        assert body["total"] == 11 and body["page"] == page and body["per_page"] == 4
        assert body["has_prev"] is (page > 1)
        assert body["has_next"] is (page < 3)
        pages.append(ids(body))
    assert [len(p) for p in pages] == [4, 4, 3]
    assert functools.reduce(operator.iadd, pages, []) == everything
    past = await _list(client, per_page=4, page=4)
    assert past["experiments"] == [] and past["total"] == 11
    assert past["has_next"] is False and past["has_prev"] is True
    far = await _list(client, page=999)
    assert far["experiments"] == [] and far["total"] == 11
    exact = await _list(client, per_page=11)
    assert len(exact["experiments"]) == 11 and exact["has_next"] is False


@pytest.mark.parametrize("desc", [True, False], ids=["desc", "asc"])
@pytest.mark.parametrize("order_by", ORDER_FIELDS)
@pytest.mark.parametrize("include_deleted", [False, True], ids=["live", "all"])
async def test_every_order_walks_all_pages_without_overlap_or_gap(
    client, order_by: str, desc: bool, include_deleted: bool
) -> None:
    extra = {"include_deleted": "true"} if include_deleted else {}
    reference = await _all(client, **extra)
    expected = expected_order(reference["experiments"], order_by, desc)
    walked: list[str] = []
    page = 1
    while True:
        body = await _list(client, order_by=order_by, order_desc=str(desc).lower(), per_page=3, page=page, **extra)
        assert body["total"] == len(expected)
        walked.extend(ids(body))
        if not body["has_next"]:
            break
        page += 1
    assert page == -(-len(expected) // 3)
    assert walked == expected
    assert len(set(walked)) == len(walked)


async def test_orders_with_known_answers(client) -> None:
    body = await _all(client, order_by="best_metric_value", order_desc="true")
    assert ids(body)[:4] == [B + "c0ffe2", B + "c0ffeb", B + "c0ffe5", B + "c0ffe1"]  # 0.95, then 0.91 by id desc
    assert ids(body)[-3:] == [B + "c0ffea", B + "c0ffe7", B + "c0ffe4"]  # NULLs last
    body = await _all(client, order_by="best_metric_value", order_desc="false")
    assert ids(body)[:2] == [B + "c0ffe8", B + "c0ffe9"]  # 0.30, 0.5
    assert ids(body)[-3:] == [B + "c0ffe4", B + "c0ffe7", B + "c0ffea"]  # NULLs last here too
    body = await _all(client, order_by="ended_at", order_desc="false")
    assert ids(body)[-2:] == [B + "c0ffe6", B + "c0ffea"]  # the running ones have no end
    body = await _all(client, order_by="status", order_desc="false")
    assert [e["status"] for e in body["experiments"]] == ["failed"] * 2 + ["finished"] * 6 + ["interrupted"] + [
        "running"
    ] * 2
    body = await _list(client, order_by="project", order_desc="true", per_page=2)
    assert ids(body) == [B + "c0ffeb", B + "c0ffe4"]  # vision, ties by id descending
