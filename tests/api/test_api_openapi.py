"""``GET /openapi.json`` documents every route of the app, so the two cannot drift apart."""

from __future__ import annotations

import re

from runicorn_lite.http.openapi import route_methods


async def test_openapi_lists_every_route(make_app, client_for) -> None:
    app = make_app()
    response = await client_for(app).get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    routes = route_methods(app.routes)
    assert documented - routes == set(), "documented but not routed"
    assert routes - documented == set(), "routed but not documented"
    # the V1, V2 and optimization routes are all there (the mounted sub-app included)
    assert {("/api/v2/experiments", "get"), ("/api/runs/{run_id}", "patch"), ("/api/runs/{run_id}/logs/ws", "get"),
            ("/api/iris/optimization/runs/{run_id}/iterations", "post")} <= routes


async def test_every_operation_declares_its_path_parameters_and_responses(make_app, client_for) -> None:
    doc = (await client_for(make_app()).get("/openapi.json")).json()
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, method, declared)
            assert op["responses"] and op["summary"], (path, method)
