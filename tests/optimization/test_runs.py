"""Runs: create, get, patch, list; validation and error shapes."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from opt_helpers import PREFIX, Api, Client, Clock
from starlette.applications import Starlette

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UNKNOWN = "550e8400-e29b-41d4-a716-446655440000"


def _issues(response: Any, error: str = "Invalid request body") -> dict[str, list[str]]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "issues", "timestamp"}
    assert body["error"] == error
    assert set(body["issues"]) == {"formErrors", "fieldErrors"}
    return {"_form": body["issues"]["formErrors"], **body["issues"]["fieldErrors"]}


# ---- create ----------------------------------------------------------------------------------


def test_create_defaults(api: Api) -> None:
    response = api.post(
        "/runs",
        json={"run_name": "Experiment B", "optimizer_type": "bayesian", "config": {"lr": 0.01}},
    )
    assert response.status_code == 201
    body = response.json()
    run = body["run"]
    uuid.UUID(run["id"])
    assert run["project_id"] == "proj_123"
    assert run["status"] == "pending"
    assert run["direction"] == "maximize"
    assert run["config"] == {"lr": 0.01}
    assert run["search_space"] == {} and run["metadata"] == {}
    assert run["iterations_count"] == 0
    assert run["final_score"] is None and run["best_params"] is None
    assert run["started_at"] == run["created_at"] == run["updated_at"]
    assert run["completed_at"] is None
    for name in ("created_at", "updated_at", "started_at"):
        assert ISO_MS.match(run[name])
    assert set(body["metadata"]) == {"latencyMs", "timestamp"}
    assert response.headers["cache-control"] == "no-store"
    assert "etag" not in response.headers


def test_create_keeps_optional_objects_and_ignores_unknown_fields(api: Api) -> None:
    run = api.create_run(
        search_space={"lr": [0.0001, 0.1]},
        metadata={"dataset": "imagenet"},
        direction="minimize",
        surprise="ignored",
        id="not-taken",
    )
    assert run["search_space"] == {"lr": [0.0001, 0.1]}
    assert run["metadata"] == {"dataset": "imagenet"}
    assert run["direction"] == "minimize"
    assert "surprise" not in run and run["id"] != "not-taken"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"config": {}}, "optimizer_type", "Required"),
        ({"optimizer_type": "bayesian"}, "config", "Required"),
        ({"optimizer_type": "annealing", "config": {}}, "optimizer_type", "Invalid enum value"),
        ({"optimizer_type": 3, "config": {}}, "optimizer_type", "Expected"),
        ({"optimizer_type": "bayesian", "config": []}, "config", "Expected object, received array"),
        (
            {"optimizer_type": "bayesian", "config": None},
            "config",
            "Expected object, received null",
        ),
        (
            {"optimizer_type": "bayesian", "config": "x"},
            "config",
            "Expected object, received string",
        ),
        (
            {"optimizer_type": "bayesian", "config": {}, "search_space": [1]},
            "search_space",
            "Expected object",
        ),
        (
            {"optimizer_type": "bayesian", "config": {}, "metadata": None},
            "metadata",
            "Expected object",
        ),
        (
            {"optimizer_type": "bayesian", "config": {}, "run_name": "x" * 201},
            "run_name",
            "at most 200",
        ),
        (
            {"optimizer_type": "bayesian", "config": {}, "run_name": 5},
            "run_name",
            "Expected string",
        ),
        (
            {"optimizer_type": "bayesian", "config": {}, "run_name": "nul\x00name"},
            "run_name",
            "control characters (U+0000 at 3)",
        ),
        (
            {"optimizer_type": "bayesian", "config": {}, "run_name": "two\nlines"},
            "run_name",
            "control characters",
        ),
        (
            {"optimizer_type": "bayesian", "config": {}, "direction": "up"},
            "direction",
            "Invalid enum value",
        ),
    ],
)
def test_create_validation(api: Api, body: dict[str, Any], field: str, message: str) -> None:
    issues = _issues(api.post("/runs", json=body))
    assert any(message in m for m in issues[field]), issues


def test_create_reports_every_problem_at_once(api: Api) -> None:
    issues = _issues(api.post("/runs", json={"optimizer_type": "x", "config": [], "run_name": 1}))
    assert set(issues) == {"_form", "optimizer_type", "config", "run_name"}


@pytest.mark.parametrize(
    ("raw", "form"),
    [
        (b"", "Request body must be a JSON object"),
        (b"{not json", "Request body is not valid JSON"),
        (b'{"optimizer_type": "bayesian", "config": {"x": NaN}}', "Request body is not valid JSON"),
        (
            b'{"optimizer_type": "bayesian", "config": {"x": 1e400}}',
            "Request body is not valid JSON",
        ),
        (b"[1, 2]", "Expected object, received array"),
        (b"null", "Expected object, received null"),
        (b'"text"', "Expected object, received string"),
        (b"\xff\xfe", "Request body is not valid JSON"),
    ],
)
def test_bodies_that_are_not_json_objects(api: Api, raw: bytes, form: str) -> None:
    issues = _issues(api.post("/runs", content=raw, headers={"Content-Type": "application/json"}))
    assert issues["_form"] == [form]


def test_huge_body_is_413(api: Api) -> None:
    response = api.post("/runs", content=b" " * (16 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["error"] == "Request body too large"
    assert "x-ratelimit-remaining" in response.headers


def test_huge_body_without_a_key_is_401(anon: Api) -> None:
    # Authentication comes before anything about the request itself, its size included.
    response = anon.post("/runs", content=b" " * (16 * 1024 * 1024 + 1))
    assert response.status_code == 401
    assert response.json()["error"] == "Authorization header is required"


# ---- get one ---------------------------------------------------------------------------------


def test_get_one_with_no_iterations(api: Api) -> None:
    run = api.create_run(run_name="empty")
    response = api.get(f"/runs/{run['id']}")
    assert response.status_code == 200
    body = response.json()
    assert body["run"] == run
    assert body["iterations"] == []
    assert body["stats"] == {
        "totalIterations": 0,
        "bestScore": None,
        "worstScore": None,
        "averageScore": None,
        "averageDuration": None,
    }
    assert response.headers["cache-control"] == "private, max-age=60, must-revalidate"


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_get_one_orders_iterations_and_summarises_them(api: Api, direction: str) -> None:
    run = api.create_run(direction=direction)
    for number, score, duration in [(3, 0.9, 1000), (1, 0.5, 2000), (2, 0.7, None)]:
        body: dict[str, Any] = {"iteration_number": number, "params": {"n": number}, "score": score}
        if duration is not None:
            body["duration_ms"] = duration
        assert api.post(f"/runs/{run['id']}/iterations", json=body).status_code == 201
    body = api.get(f"/runs/{run['id']}").json()
    assert [it["iteration_number"] for it in body["iterations"]] == [1, 2, 3]
    assert body["iterations"][0]["params"] == {"n": 1}
    assert body["iterations"][0]["metrics"] == {}
    best, worst = (0.9, 0.5) if direction == "maximize" else (0.5, 0.9)
    assert body["stats"] == {
        "totalIterations": 3,
        "bestScore": best,
        "worstScore": worst,
        "averageScore": 0.7,
        "averageDuration": 1500,
    }
    assert body["run"]["final_score"] == best


@pytest.mark.parametrize(
    "bad", ["not-a-uuid", "550e8400e29b41d4a716446655440000", "123", "{" + UNKNOWN + "}"]
)
def test_non_uuid_run_id_is_400(api: Api, bad: str) -> None:
    for response in (
        api.get(f"/runs/{bad}"),
        api.patch(f"/runs/{bad}", json={}),
        api.post(f"/runs/{bad}/iterations", json={}),
        api.post(f"/runs/{bad}/iterations/batch", json={}),
    ):
        assert response.status_code == 400
        assert response.json()["error"] == "Invalid run ID format"


def test_unknown_run_is_404_and_uuid_case_does_not_matter(api: Api) -> None:
    response = api.get(f"/runs/{UNKNOWN}")
    assert response.status_code == 404
    assert response.json()["error"] == "Optimization run not found"
    run = api.create_run()
    assert api.get(f"/runs/{run['id'].upper()}").json()["run"]["id"] == run["id"]


# ---- patch -----------------------------------------------------------------------------------


def test_patch_to_completed_fills_completed_at_and_duration(api: Api) -> None:
    run = api.create_run()
    response = api.patch(f"/runs/{run['id']}", json={"status": "completed", "final_score": 0.95})
    assert response.status_code == 200
    patched = response.json()["run"]
    assert patched["status"] == "completed"
    assert patched["final_score"] == 0.95
    assert ISO_MS.match(patched["completed_at"])
    assert patched["completed_at"] >= patched["started_at"]
    assert isinstance(patched["duration_ms"], int) and patched["duration_ms"] >= 0
    assert (
        patched["updated_at"] == patched["completed_at"]
        or patched["updated_at"] >= run["updated_at"]
    )
    assert response.headers["cache-control"] == "no-store"


def test_patch_with_given_completed_at_and_duration(api: Api) -> None:
    run = api.create_run()
    body = {
        "status": "failed",
        "completed_at": "2999-01-01T00:00:00+02:00",
        "duration_ms": 125000,
        "error_message": "boom",
        "best_params": {"lr": 0.001},
        "iterations_count": 50,
        "metadata": {"note": "x"},
        "run_name": "renamed",
    }
    patched = api.patch(f"/runs/{run['id']}", json=body).json()["run"]
    assert patched["completed_at"] == "2998-12-31T22:00:00.000Z"
    assert patched["duration_ms"] == 125000
    assert patched["error_message"] == "boom"
    assert patched["best_params"] == {"lr": 0.001}
    assert patched["iterations_count"] == 50
    assert patched["metadata"] == {"note": "x"}
    assert patched["run_name"] == "renamed"


def test_terminal_status_derives_duration_from_given_completed_at(api: Api) -> None:
    run = api.create_run()
    patched = api.patch(
        f"/runs/{run['id']}", json={"status": "cancelled", "completed_at": "2999-01-01T00:00:00Z"}
    ).json()["run"]
    from runicorn_lite.timeutil import iso_to_ms

    assert patched["duration_ms"] == iso_to_ms("2999-01-01T00:00:00.000Z") - iso_to_ms(
        run["started_at"]
    )


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (["pending", "running"], True),
        (["pending", "completed"], True),
        (["pending", "failed"], True),
        (["pending", "cancelled"], True),
        (["pending", "running", "completed"], True),
        (["pending", "running", "failed"], True),
        (["pending", "running", "cancelled"], True),
        (["pending", "running", "pending"], False),
        (["pending", "completed", "running"], False),
        (["pending", "failed", "completed"], False),
        (["pending", "cancelled", "pending"], False),
    ],
)
def test_status_machine(api: Api, path: list[str], allowed: bool) -> None:
    run = api.create_run()
    for status in path[1:-1]:
        assert api.patch(f"/runs/{run['id']}", json={"status": status}).status_code == 200
    response = api.patch(f"/runs/{run['id']}", json={"status": path[-1]})
    if allowed:
        assert response.status_code == 200
        assert response.json()["run"]["status"] == path[-1]
    else:
        assert response.status_code == 409
        body = response.json()
        assert body["error"] == "Invalid status transition"
        assert ISO_MS.match(body["timestamp"])
        assert api.get(f"/runs/{run['id']}").json()["run"]["status"] == path[-2]


def test_setting_the_same_status_again_is_harmless(api: Api) -> None:
    run = api.create_run()
    first = api.patch(f"/runs/{run['id']}", json={"status": "completed"}).json()["run"]
    again = api.patch(f"/runs/{run['id']}", json={"status": "completed", "final_score": 0.5})
    assert again.status_code == 200
    assert again.json()["run"]["completed_at"] == first["completed_at"]
    assert again.json()["run"]["final_score"] == 0.5


def test_empty_patch_changes_nothing(api: Api) -> None:
    run = api.create_run()
    assert api.patch(f"/runs/{run['id']}", json={}).json()["run"] == run


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "done"}, "status"),
        ({"final_score": True}, "final_score"),
        ({"final_score": "0.9"}, "final_score"),
        ({"final_score": None}, "final_score"),
        ({"best_params": []}, "best_params"),
        ({"best_params": None}, "best_params"),
        ({"iterations_count": -1}, "iterations_count"),
        ({"iterations_count": 1.5}, "iterations_count"),
        ({"iterations_count": False}, "iterations_count"),
        ({"duration_ms": 2**60}, "duration_ms"),
        ({"completed_at": "yesterday"}, "completed_at"),
        ({"completed_at": 5}, "completed_at"),
        ({"metadata": [1]}, "metadata"),
        ({"run_name": "x" * 201}, "run_name"),
        ({"run_name": "esc\x1b[2J"}, "run_name"),
        ({"error_message": "nul\x00"}, "error_message"),
    ],
)
def test_patch_validation(api: Api, body: dict[str, Any], field: str) -> None:
    run = api.create_run()
    issues = _issues(api.patch(f"/runs/{run['id']}", json=body))
    assert field in issues
    assert api.get(f"/runs/{run['id']}").json()["run"] == run


def test_patch_error_message_keeps_its_lines(api: Api) -> None:
    run = api.create_run()
    text = "Traceback (most recent call last):\n\tFile x\nValueError: bad"
    assert api.patch(f"/runs/{run['id']}", json={"error_message": text}).json()["run"]["error_message"] == text


def test_patch_accepts_integral_floats(api: Api) -> None:
    run = api.create_run()
    patched = api.patch(f"/runs/{run['id']}", json={"duration_ms": 50.0, "final_score": 1})
    assert patched.json()["run"]["duration_ms"] == 50
    assert patched.json()["run"]["final_score"] == 1


# ---- list ------------------------------------------------------------------------------------


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [run["run_name"] for run in response.json()["runs"]]


def test_list_filters_pagination_and_sorting(api: Api, clock: Clock) -> None:
    specs = [
        ("a", "bayesian", 0.5, 100),
        ("b", "genetic", None, 300),
        ("c", "bayesian", 0.9, None),
        ("d", "grid_search", 0.5, 200),
        ("e", "bayesian", None, None),
    ]
    for name, optimizer, score, duration in specs:
        run = api.create_run(run_name=name, optimizer_type=optimizer)
        patch: dict[str, Any] = {}
        if score is not None:
            patch["final_score"] = score
        if duration is not None:
            patch["duration_ms"] = duration
        if name in ("a", "d"):
            patch["status"] = "completed"
            patch.setdefault("duration_ms", duration)
        if patch:
            assert api.patch(f"/runs/{run['id']}", json=patch).status_code == 200

    assert _ids(api.get("/runs")) == ["e", "d", "c", "b", "a"]
    assert _ids(api.get("/runs?order=asc")) == ["a", "b", "c", "d", "e"]
    # NULLs last in both directions; equal scores (a, d) ordered by created_at in the direction.
    assert _ids(api.get("/runs?order_by=final_score")) == ["c", "d", "a", "e", "b"]
    assert _ids(api.get("/runs?order_by=final_score&order=asc")) == ["a", "d", "c", "b", "e"]
    assert _ids(api.get("/runs?order_by=duration_ms&order=desc")) == ["b", "d", "a", "e", "c"]
    assert _ids(api.get("/runs?order_by=duration_ms&order=asc")) == ["a", "d", "b", "c", "e"]
    assert _ids(api.get("/runs?status=completed")) == ["d", "a"]
    assert _ids(api.get("/runs?optimizer_type=bayesian&order=asc")) == ["a", "c", "e"]
    assert _ids(api.get("/runs?optimizer_type=bayesian&status=pending")) == ["e", "c"]

    page = api.get("/runs?limit=2&offset=1").json()
    assert [r["run_name"] for r in page["runs"]] == ["d", "c"]
    assert page["pagination"] == {"limit": 2, "offset": 1, "total": 5, "hasMore": True}
    last = api.get("/runs?limit=2&offset=4").json()
    assert last["pagination"] == {"limit": 2, "offset": 4, "total": 5, "hasMore": False}
    past = api.get("/runs?offset=50").json()
    assert past["runs"] == [] and past["pagination"]["total"] == 5
    filtered = api.get("/runs?status=completed&limit=1").json()["pagination"]
    assert filtered == {"limit": 1, "offset": 0, "total": 2, "hasMore": True}


def test_list_defaults_and_shape(api: Api) -> None:
    response = api.get("/runs")
    body = response.json()
    assert body["runs"] == []
    assert body["pagination"] == {"limit": 50, "offset": 0, "total": 0, "hasMore": False}
    assert set(body["metadata"]) == {"latencyMs", "timestamp"}
    assert response.headers["cache-control"] == "private, max-age=30, must-revalidate"


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("limit=0", "limit", "Must be between 1 and 100"),
        ("limit=101", "limit", "Must be between 1 and 100"),
        ("limit=-5", "limit", "Must be between 1 and 100"),
        ("limit=abc", "limit", "Expected integer, received string"),
        ("limit=1.5", "limit", "Expected integer, received float"),
        ("limit=1_0", "limit", "Expected integer, received string"),
        ("offset=-1", "offset", "Must be between 0"),
        ("offset=99999999999999999999999", "offset", "Must be between 0"),
        ("status=done", "status", "Invalid enum value"),
        ("status=", "status", "Invalid enum value"),
        ("optimizer_type=foo", "optimizer_type", "Invalid enum value"),
        ("order_by=run_name", "order_by", "Invalid enum value"),
        ("order=up", "order", "Invalid enum value"),
    ],
)
def test_list_query_validation(api: Api, query: str, field: str, message: str) -> None:
    issues = _issues(api.get(f"/runs?{query}"), "Invalid query parameters")
    assert any(message in m for m in issues[field]), issues


def test_unknown_query_parameters_are_ignored(api: Api) -> None:
    assert api.get("/runs?foo=bar").status_code == 200


# ---- routing, errors, headers ----------------------------------------------------------------


def test_404_and_405_are_json(api: Api) -> None:
    response = api.get("/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "Not found"
    assert "x-response-time" in response.headers
    assert api.get("/runs/").status_code == 404

    response = api.request("DELETE", "/runs")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert response.json()["error"] == "Method not allowed"
    response = api.request("PUT", f"/runs/{UNKNOWN}")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH"}
    assert api.get(f"/runs/{UNKNOWN}/iterations").headers["allow"] == "POST"


def test_head_answers_like_get_without_a_body(api: Api) -> None:
    response = api.request("HEAD", "/runs")
    assert response.status_code == 200
    assert response.content == b""
    assert "etag" in response.headers


def test_unexpected_errors_are_a_bare_500(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from runicorn_lite.optimization import queries

    def explode(*args: Any) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(queries, "list_runs", explode)
    with caplog.at_level("ERROR", logger="runicorn_lite.optimization"):
        response = api.get("/runs")
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"error", "timestamp"}
    assert body["error"] == "Internal server error"
    assert "secret" not in response.text
    assert "x-response-time" in response.headers
    assert "secret detail" in caplog.text


def test_every_answer_has_a_response_time(api: Api, client: Client) -> None:
    run = api.create_run()
    for response in (
        api.get("/runs"),
        api.get(f"/runs/{run['id']}"),
        api.get("/stats"),
        api.patch(f"/runs/{run['id']}", json={"status": "bogus"}),
        client.get(PREFIX + "/runs"),
        client.get(PREFIX + "/nope"),
    ):
        assert re.fullmatch(r"\d+(\.\d+)?ms", response.headers["x-response-time"])


def test_db_is_exposed_for_shutdown(sub_app: Starlette, backend: str) -> None:
    from runicorn_lite.db import Database
    from runicorn_lite.db.postgres import PgDatabase

    assert isinstance(sub_app.state.db, Database if backend == "sqlite" else PgDatabase)
    assert sub_app.state.api.db is sub_app.state.db


def test_objects_nested_too_deeply_for_the_encoder_are_400(api: Api) -> None:
    # orjson reads up to 1024 levels but writes at most 254: this once was a 500.
    deep = "[" * 600 + "]" * 600
    body = f'{{"optimizer_type": "bayesian", "config": {{"a": {deep}}}}}'
    response = api.post("/runs", content=body.encode())
    assert response.status_code == 400, response.text
    assert "config" in response.json()["issues"]["fieldErrors"]
    ok = "[" * 250 + "]" * 250
    assert api.post("/runs", content=body.replace(deep, ok).encode()).status_code == 201
    run = api.create_run()
    patch = api.patch(f"/runs/{run['id']}", content=b'{"metadata": {"a": %s}}' % deep.encode())
    assert patch.status_code == 400
    iteration = b'{"iteration_number": 0, "score": 1, "params": {}, "metrics": {"a": %s}}'
    post = api.post(f"/runs/{run['id']}/iterations", content=iteration % deep.encode())
    assert post.status_code == 400
    assert "metrics" in post.json()["issues"]["fieldErrors"]
