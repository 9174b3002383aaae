"""Authentication, project scoping and the per-address limit on bad keys."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from opt_helpers import PREFIX, Api, Client
from starlette.applications import Starlette

from runicorn_lite.optimization.keys import list_keys, revoke_key

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HINT = 'Include "Authorization: Bearer <your-api-key>" header'

ENDPOINTS = [
    ("GET", "/runs"),
    ("POST", "/runs"),
    ("GET", "/runs/550e8400-e29b-41d4-a716-446655440000"),
    ("PATCH", "/runs/550e8400-e29b-41d4-a716-446655440000"),
    ("POST", "/runs/550e8400-e29b-41d4-a716-446655440000/iterations"),
    ("POST", "/runs/550e8400-e29b-41d4-a716-446655440000/iterations/batch"),
    ("GET", "/stats"),
]


def _assert_401(response, message: str, hint: str = HINT) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"error", "hint", "timestamp"}
    assert body["error"] == message
    assert body["hint"] == hint
    assert ISO_MS.match(body["timestamp"])
    assert response.headers["x-response-time"].endswith("ms")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_requires_a_key(client: Client, method: str, path: str) -> None:
    _assert_401(client.request(method, PREFIX + path), "Authorization header is required")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "API key is required"),
        ("Bearer", "API key is required"),
        ("Bearer    ", "API key is required"),
        ("Bearer abc", "Invalid API key format"),
        ("Bearer sk_test_0123456789abcdef", "Invalid API key format"),
        ("Bearer sk_live_", "Invalid API key format"),
        ("Basic dXNlcjpwYXNz", "Invalid API key format"),
        ("Bearer sk_live_0123456789abcdefghijklmnop", "Invalid or inactive API key"),
    ],
)
def test_the_four_401_messages(client: Client, header: str, message: str) -> None:
    _assert_401(client.get(PREFIX + "/runs", headers={"Authorization": header}), message)


def test_a_key_without_its_scheme_is_told_how_the_header_goes(client: Client) -> None:
    response = client.get(PREFIX + "/runs", headers={"Authorization": "sk_live_0123456789abcdefghij"})
    _assert_401(response, "Invalid API key format",
                "The header must be 'Authorization: Bearer sk_live_…' ('Bearer ' before the key)")


def test_authentication_comes_before_validation(client: Client) -> None:
    response = client.request(
        "POST",
        PREFIX + "/runs/not-a-uuid/iterations",
        content=b"{not json",
        headers={"Authorization": "Bearer nope"},
    )
    _assert_401(response, "Invalid API key format")
    _assert_401(client.get(PREFIX + "/runs?limit=0"), "Authorization header is required")


def test_scheme_is_case_insensitive(api: Api) -> None:
    response = api.client.get(PREFIX + "/runs", headers={"Authorization": f"bearer {api.key}"})
    assert response.status_code == 200


def test_keys_created_and_revoked_while_serving_take_effect_at_once(
    client: Client, sub_app: Starlette, new_key: Callable[..., str]
) -> None:
    key = new_key("late_project")
    api = Api(client, key)
    assert api.get("/runs").status_code == 200
    sub_app.state.api.keys.flush()  # a request only notes the use; the store learns it in the background
    info = next(k for k in list_keys(sub_app.state.db) if k.project_id == "late_project")
    assert info.last_used_at is not None
    revoke_key(sub_app.state.db, info.prefix)
    _assert_401(api.get("/runs"), "Invalid or inactive API key")


def test_a_key_sees_only_its_own_project(client: Client, new_key: Callable[..., str]) -> None:
    mine, theirs = Api(client, new_key("proj_a")), Api(client, new_key("proj_b"))
    run = mine.create_run(run_name="a-run")
    theirs.create_run(run_name="b-run")

    listed = mine.get("/runs").json()
    assert [r["run_name"] for r in listed["runs"]] == ["a-run"]
    assert listed["runs"][0]["project_id"] == "proj_a"
    assert mine.get("/stats").json()["statistics"]["totalRuns"] == 1

    for response in (
        theirs.get(f"/runs/{run['id']}"),
        theirs.patch(f"/runs/{run['id']}", json={"status": "running"}),
        theirs.post(
            f"/runs/{run['id']}/iterations", json={"iteration_number": 0, "params": {}, "score": 1}
        ),
    ):
        assert response.status_code == 404
        body = response.json()
        assert body["error"] == "Optimization run not found"
        assert body["hint"] == "Check that the run ID is correct and belongs to your project"
        assert ISO_MS.match(body["timestamp"])
    # The other project's attempts changed nothing.
    assert mine.get(f"/runs/{run['id']}").json()["run"]["status"] == "pending"


@pytest.mark.parametrize("path", ["/runs", "/stats"])
def test_project_id_of_another_project_is_forbidden(api: Api, path: str) -> None:
    response = api.get(path, params={"project_id": "someone_else"})
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "Forbidden"
    assert ISO_MS.match(body["timestamp"])
    assert "x-ratelimit-limit" in response.headers
    assert api.get(path, params={"project_id": "proj_123"}).status_code == 200


def test_bad_keys_are_limited_per_client_address(
    make_api: Callable[..., tuple[Api, Starlette]],
) -> None:
    good, _ = make_api(auth_failure_limit=3)
    bad = Api(good.client, "sk_live_guessguessguessguess")
    for _ in range(3):
        assert bad.get("/runs").status_code == 401
    # Over the limit, wrong keys from the address get 429 (guessing stops) ...
    response = bad.get("/runs")
    assert response.status_code == 429
    assert response.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(response.headers["retry-after"]) >= 1
    # ... while a valid key from the same address (every local client shares one) still works.
    assert good.get("/runs").status_code == 200
    assert bad.get("/runs").status_code == 429


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_project_id_of_another_project_is_forbidden_on_every_endpoint(
    api: Api, method: str, path: str
) -> None:
    # Checked right after authentication, so the run ids need not exist.
    response = api.request(method, path, params={"project_id": "someone_else"}, json={})
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "Forbidden"
    # Repeating the parameter cannot slip another project past the check.
    query = "?project_id=someone_else&project_id=proj_123"
    assert api.request(method, path + query, json={}).status_code == 403


def test_create_body_naming_another_project_is_forbidden(api: Api) -> None:
    body = {"optimizer_type": "bayesian", "config": {}}
    response = api.post("/runs", json={**body, "project_id": "someone_else"})
    assert response.status_code == 403
    assert response.json()["error"] == "Forbidden"
    assert api.get("/runs").json()["pagination"]["total"] == 0
    own = api.post("/runs", json={**body, "project_id": "proj_123"})
    assert own.status_code == 201 and own.json()["run"]["project_id"] == "proj_123"
    wrong_type = api.post("/runs", json={**body, "project_id": 123})
    assert wrong_type.status_code == 400
    assert "project_id" in wrong_type.json()["issues"]["fieldErrors"]


def test_a_request_never_writes_to_record_a_key_use(
    client: Client, sub_app: Starlette, new_key: Callable[..., str]
) -> None:
    # (A request does write its rate-limit count, one upsert: that is shared between servers.)
    api = Api(client, new_key("quiet"))
    for _ in range(3):
        assert api.get("/runs").status_code == 200
    assert next(k for k in list_keys(sub_app.state.db) if k.project_id == "quiet").last_used_at is None
    sub_app.state.api.keys.flush()
    assert next(k for k in list_keys(sub_app.state.db) if k.project_id == "quiet").last_used_at is not None
