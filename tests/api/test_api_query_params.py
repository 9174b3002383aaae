"""V2 query parameters come from one declaration per endpoint: what it declares is parsed and
documented in /openapi.json, and what it does not is refused with 400 naming it (a misspelled
``staus=finished`` would otherwise answer everything)."""

from __future__ import annotations

import re

import pytest

from runicorn_lite.api import v2
from runicorn_lite.http.query import Param, Query

LIST = "/api/v2/experiments"
# V2 endpoints that answer JSON; files/{path} serves files, whose URLs may carry anything.
NOT_DECLARED = ("/api/v2/experiments/{exp_id}/files/{path}",)


async def test_a_misspelled_parameter_is_named_with_the_allowed_ones(make_app, client_for) -> None:
    response = await client_for(make_app()).get(LIST, params={"staus": "finished"})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("Unknown parameter 'staus' (did you mean 'status'?); this endpoint takes: ")
    for name in ("status", "project", "per_page", "order_by", "filter", "include"):
        assert name in detail


async def test_underscore_parameters_are_let_through_for_cache_busting(make_app, client_for) -> None:
    response = await client_for(make_app()).get(LIST, params={"_": "1700000000", "_v": "3", "status": "finished"})
    assert response.status_code == 200, response.text


async def test_every_v2_endpoint_refuses_what_it_does_not_declare(make_app, client_for) -> None:
    app = make_app()
    run_id = "20250101_000000_abcdef"  # unknown: the query is refused before the run is looked up
    client = client_for(app)
    doc = (await client.get("/openapi.json")).json()
    checked = 0
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/v2/") or path in NOT_DECLARED or "get" not in ops:
            continue
        declared = {p["name"] for p in ops["get"].get("parameters", []) if p["in"] == "query"}
        url = re.sub(r"{exp_id}", run_id, path)
        refused = await client.get(url, params={"zz_nope": "1"})
        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["detail"].startswith("Unknown parameter 'zz_nope'"), (path, refused.text)
        for name in declared:  # each declared name is named as allowed
            assert name in refused.json()["detail"], (path, name)
        checked += 1
    assert checked >= 5  # list, detail, metrics/fast, images, analytics, compare, ...


async def test_the_document_shows_each_declaration(make_app, client_for) -> None:
    doc = (await client_for(make_app()).get("/openapi.json")).json()
    for path, query in ((LIST, v2.LIST_QUERY), ("/api/v2/compare", v2.COMPARE_QUERY),
                        ("/api/v2/analytics/summary", v2.ANALYTICS_QUERY)):
        shown = [p for p in doc["paths"][path]["get"]["parameters"] if p["in"] == "query"]
        assert shown == query.openapi(), path
    per_page = next(p for p in doc["paths"][LIST]["get"]["parameters"] if p["name"] == "per_page")
    assert per_page["schema"] == {"type": "integer", "minimum": 1, "maximum": v2.MAX_PER_PAGE, "default": 50}


@pytest.mark.parametrize(("sent", "value"), [
    ({}, 7), ({"n": "3"}, 3), ({"n": " 4 "}, 4),
])
def test_a_declared_integer(sent: dict[str, str], value: int) -> None:
    from starlette.datastructures import QueryParams

    query = Query.of(Param("n", "integer", "n", default=7, minimum=1, maximum=1_000_000))
    assert query.parse(QueryParams(sent))["n"] == value


@pytest.mark.parametrize(("sent", "message"), [
    ("n=0", "Parameter 'n' must be between 1 and 1000000, got 0"),
    ("n=x", "Parameter 'n' must be an integer from 1 to 1000000, got 'x'"),
    ("n=", "Parameter 'n' is empty: give an integer from 1 to 1000000, or leave it out"),
    ("n=1&n=2", "Parameter 'n' was given 2 times; give it once"),
    ("m=1", "Unknown parameter 'm'"),
])
def test_a_declared_integer_refused(sent: str, message: str) -> None:
    from starlette.datastructures import QueryParams

    from runicorn_lite.http.errors import HTTPProblem

    query = Query.of(Param("n", "integer", "n", default=7, minimum=1, maximum=1_000_000))
    with pytest.raises(HTTPProblem) as refused:
        query.parse(QueryParams(sent))
    assert refused.value.status == 400 and refused.value.message.startswith(message)
