"""Iterations: single and batch inserts, the run updates they make, and their validation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opt_helpers import Api


def _post(api: Api, run_id: str, number: int, score: float, **extra: Any) -> Any:
    return api.post(
        f"/runs/{run_id}/iterations",
        json={"iteration_number": number, "params": {"n": number}, "score": score, **extra},
    )


def test_first_iteration_starts_the_run_and_is_the_best(api: Api) -> None:
    run = api.create_run()
    response = _post(
        api,
        run["id"],
        1,
        0.75,
        metrics={"accuracy": 0.75},
        duration_ms=2500,
        metadata={"gpu": "85%"},
    )
    assert response.status_code == 201
    body = response.json()
    iteration = body["iteration"]
    assert iteration["run_id"] == run["id"]
    assert iteration["iteration_number"] == 1
    assert iteration["params"] == {"n": 1}
    assert iteration["score"] == 0.75
    assert iteration["metrics"] == {"accuracy": 0.75}
    assert iteration["metadata"] == {"gpu": "85%"}
    assert iteration["duration_ms"] == 2500
    assert body["runUpdates"] == {"iterations_count": 1, "is_new_best": True, "final_score": 0.75}
    assert set(body["metadata"]) == {"latencyMs", "timestamp"}
    after = api.get(f"/runs/{run['id']}").json()["run"]
    assert after["status"] == "running"
    assert after["best_params"] == {"n": 1}
    assert after["updated_at"] >= run["updated_at"]


@pytest.mark.parametrize(
    ("direction", "scores", "bests", "final"),
    [
        ("maximize", [0.5, 0.4, 0.5, 0.9], [True, False, False, True], 0.9),
        ("minimize", [0.5, 0.6, 0.5, 0.1], [True, False, False, True], 0.1),
    ],
)
def test_best_follows_the_direction_and_must_be_strictly_better(
    api: Api, direction: str, scores: list[float], bests: list[bool], final: float
) -> None:
    run = api.create_run(direction=direction)
    for number, (score, best) in enumerate(zip(scores, bests, strict=True)):
        updates = _post(api, run["id"], number, score).json()["runUpdates"]
        assert updates["is_new_best"] is best
        assert updates["iterations_count"] == number + 1
    after = api.get(f"/runs/{run['id']}").json()["run"]
    assert after["final_score"] == final
    assert after["best_params"] == {"n": len(scores) - 1}


def test_a_patched_score_is_the_bar_to_beat(api: Api) -> None:
    run = api.create_run()
    api.patch(f"/runs/{run['id']}", json={"final_score": 0.8, "status": "running"})
    assert _post(api, run["id"], 0, 0.7).json()["runUpdates"] == {
        "iterations_count": 1,
        "is_new_best": False,
        "final_score": 0.8,
    }


def test_duplicate_iteration_number_is_409(api: Api) -> None:
    run = api.create_run()
    assert _post(api, run["id"], 7, 0.5).status_code == 201
    response = _post(api, run["id"], 7, 0.9)
    assert response.status_code == 409
    assert response.json()["error"] == "Duplicate iteration number"
    after = api.get(f"/runs/{run['id']}").json()
    assert after["run"]["iterations_count"] == 1
    assert after["run"]["final_score"] == 0.5


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_terminal_runs_take_no_iterations(api: Api, status: str) -> None:
    run = api.create_run()
    api.patch(f"/runs/{run['id']}", json={"status": status})
    response = _post(api, run["id"], 0, 0.5)
    assert response.status_code == 409
    assert response.json()["error"] == "Run is already finished"
    batch = api.post(
        f"/runs/{run['id']}/iterations/batch",
        json={"iterations": [{"iteration_number": 0, "params": {}, "score": 1}]},
    )
    assert batch.status_code == 409
    assert api.get(f"/runs/{run['id']}").json()["stats"]["totalIterations"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"params": {}, "score": 1}, "iteration_number"),
        ({"iteration_number": -1, "params": {}, "score": 1}, "iteration_number"),
        ({"iteration_number": 1.5, "params": {}, "score": 1}, "iteration_number"),
        ({"iteration_number": True, "params": {}, "score": 1}, "iteration_number"),
        ({"iteration_number": "1", "params": {}, "score": 1}, "iteration_number"),
        ({"iteration_number": 2**53, "params": {}, "score": 1}, "iteration_number"),
        ({"iteration_number": 18446744073709551615, "params": {}, "score": 1}, "iteration_number"),
        ({"iteration_number": 1, "score": 1}, "params"),
        ({"iteration_number": 1, "params": [], "score": 1}, "params"),
        ({"iteration_number": 1, "params": None, "score": 1}, "params"),
        ({"iteration_number": 1, "params": {}}, "score"),
        ({"iteration_number": 1, "params": {}, "score": True}, "score"),
        ({"iteration_number": 1, "params": {}, "score": "0.5"}, "score"),
        ({"iteration_number": 1, "params": {}, "score": None}, "score"),
        ({"iteration_number": 1, "params": {}, "score": 1, "metrics": []}, "metrics"),
        ({"iteration_number": 1, "params": {}, "score": 1, "metrics": None}, "metrics"),
        ({"iteration_number": 1, "params": {}, "score": 1, "metadata": "x"}, "metadata"),
        ({"iteration_number": 1, "params": {}, "score": 1, "duration_ms": -5}, "duration_ms"),
        ({"iteration_number": 1, "params": {}, "score": 1, "duration_ms": 2.5}, "duration_ms"),
    ],
)
def test_iteration_validation(api: Api, body: dict[str, Any], field: str) -> None:
    run = api.create_run()
    response = api.post(f"/runs/{run['id']}/iterations", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "Invalid request body"
    assert field in response.json()["issues"]["fieldErrors"]


def test_non_finite_scores_never_get_in(api: Api) -> None:
    run = api.create_run()
    for raw in (
        b'{"iteration_number": 1, "params": {}, "score": NaN}',
        b'{"iteration_number": 1, "params": {}, "score": Infinity}',
        b'{"iteration_number": 1, "params": {}, "score": 1e999}',
    ):
        assert api.post(f"/runs/{run['id']}/iterations", content=raw).status_code == 400


def test_iteration_on_unknown_run_is_404(api: Api) -> None:
    response = _post(api, "550e8400-e29b-41d4-a716-446655440000", 0, 1.0)
    assert response.status_code == 404
    assert response.json()["error"] == "Optimization run not found"


# ---- batch -----------------------------------------------------------------------------------


def _items(numbers: list[int], scores: list[float] | None = None) -> list[dict[str, Any]]:
    scores = scores or [float(n) for n in numbers]
    return [
        {"iteration_number": n, "params": {"n": n}, "score": s} for n, s in zip(numbers, scores, strict=True)
    ]


def test_batch_inserts_everything_in_one_go(api: Api) -> None:
    run = api.create_run()
    response = api.post(
        f"/runs/{run['id']}/iterations/batch", json={"iterations": _items(list(range(1000)))}
    )
    assert response.status_code == 201
    body = response.json()
    assert len(body["iterations"]) == 1000
    assert body["runUpdates"] == {
        "iterations_count": 1000,
        "is_new_best": True,
        "final_score": 999.0,
    }
    detail = api.get(f"/runs/{run['id']}").json()
    assert detail["run"]["best_params"] == {"n": 999}
    assert detail["run"]["status"] == "running"
    assert detail["stats"]["totalIterations"] == 1000
    # A later batch that does not beat the best.
    more = api.post(
        f"/runs/{run['id']}/iterations/batch", json={"iterations": _items([1000, 1001], [1.0, 2.0])}
    ).json()
    assert more["runUpdates"] == {
        "iterations_count": 1002,
        "is_new_best": False,
        "final_score": 999.0,
    }


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (
            {"iterations": [*_items([5, 6]), {"iteration_number": 7, "params": {}, "score": "x"}]},
            400,
        ),
        ({"iterations": _items([5, 6, 5])}, 409),
        ({"iterations": _items([8, 1])}, 409),  # 1 already exists
        ({"iterations": []}, 400),
        ({"iterations": _items(list(range(100, 1101)))}, 400),
        ({"iterations": {"iteration_number": 9}}, 400),
        ({"iterations": [1, 2]}, 400),
        ({}, 400),
    ],
)
def test_batch_is_all_or_nothing(api: Api, body: dict[str, Any], status: int) -> None:
    run = api.create_run()
    assert _post(api, run["id"], 1, 0.1).status_code == 201
    response = api.post(f"/runs/{run['id']}/iterations/batch", json=body)
    assert response.status_code == status, response.text
    detail = api.get(f"/runs/{run['id']}").json()
    assert detail["run"]["iterations_count"] == 1
    assert detail["run"]["final_score"] == 0.1
    assert [it["iteration_number"] for it in detail["iterations"]] == [1]


def test_batch_errors_name_the_item(api: Api) -> None:
    run = api.create_run()
    body = {"iterations": [*_items([0]), {"iteration_number": -1, "params": [], "score": 1}]}
    issues = api.post(f"/runs/{run['id']}/iterations/batch", json=body).json()["issues"]
    assert set(issues["fieldErrors"]) == {"iterations.1.iteration_number", "iterations.1.params"}


def test_concurrent_posts_in_process_lose_nothing(api: Api) -> None:
    run = api.create_run()
    http = api.client.http
    headers = api.headers()

    async def post_all() -> list[int]:
        responses = await asyncio.gather(
            *(
                http.post(
                    f"/api/iris/optimization/runs/{run['id']}/iterations",
                    json={"iteration_number": n, "params": {"n": n}, "score": (n * 37) % 101},
                    headers=headers,
                )
                for n in range(60)
            )
        )
        return [r.status_code for r in responses]

    assert api.client.portal.call(post_all) == [201] * 60
    after = api.get(f"/runs/{run['id']}").json()["run"]
    assert after["iterations_count"] == 60
    best = max(range(60), key=lambda n: (n * 37) % 101)
    assert after["final_score"] == (best * 37) % 101
    assert after["best_params"] == {"n": best}
