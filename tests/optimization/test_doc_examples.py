"""The document's curl flows, sent as written (same bodies, same query strings)."""

from __future__ import annotations

from opt_helpers import Api


def test_sample_curl_commands(api: Api) -> None:
    listed = api.get("/runs?limit=10")
    assert listed.status_code == 200

    created = api.post(
        "/runs",
        content=b'{"optimizer_type":"bayesian","config":{}}',
        headers={"Content-Type": "application/json"},
    )
    assert created.status_code == 201
    run_id = created.json()["run"]["id"]

    assert api.get(f"/runs/{run_id}").status_code == 200

    iteration = api.post(
        f"/runs/{run_id}/iterations",
        content=b'{"iteration_number":1,"params":{},"score":0.75}',
        headers={"Content-Type": "application/json"},
    )
    assert iteration.status_code == 201
    assert iteration.json()["runUpdates"] == {
        "iterations_count": 1,
        "is_new_best": True,
        "final_score": 0.75,
    }

    updated = api.patch(
        f"/runs/{run_id}",
        content=b'{"status":"completed","final_score":0.95}',
        headers={"Content-Type": "application/json"},
    )
    assert updated.status_code == 200
    assert updated.json()["run"]["final_score"] == 0.95

    stats = api.get("/stats")
    assert stats.status_code == 200
    assert stats.json()["statistics"]["totalRuns"] == 1


def test_endpoint_examples(api: Api) -> None:
    created = api.post(
        "/runs",
        json={
            "run_name": "Experiment B",
            "optimizer_type": "bayesian",
            "config": {"learning_rate": 0.01, "batch_size": 32},
        },
    ).json()
    run = created["run"]
    assert {
        k: run[k]
        for k in (
            "project_id",
            "run_name",
            "optimizer_type",
            "status",
            "config",
            "iterations_count",
        )
    } == {
        "project_id": "proj_123",
        "run_name": "Experiment B",
        "optimizer_type": "bayesian",
        "status": "pending",
        "config": {"learning_rate": 0.01, "batch_size": 32},
        "iterations_count": 0,
    }
    assert run["started_at"] == run["created_at"]

    added = api.post(
        f"/runs/{run['id']}/iterations",
        json={"iteration_number": 1, "params": {"learning_rate": 0.01}, "score": 0.75},
    ).json()
    assert added["iteration"]["run_id"] == run["id"]
    assert added["iteration"]["params"] == {"learning_rate": 0.01}
    assert added["runUpdates"] == {"iterations_count": 1, "is_new_best": True, "final_score": 0.75}

    full = api.post(
        f"/runs/{run['id']}/iterations",
        json={
            "iteration_number": 2,
            "params": {"learning_rate": 0.01, "batch_size": 32},
            "score": 0.75,
            "metrics": {"accuracy": 0.75, "loss": 0.25, "f1_score": 0.73},
            "duration_ms": 2500,
            "metadata": {"gpu_usage": "85%", "memory_mb": 4096},
        },
    )
    assert full.status_code == 201
    assert full.json()["runUpdates"]["is_new_best"] is False

    patched = api.patch(
        f"/runs/{run['id']}",
        json={"status": "completed", "final_score": 0.95, "duration_ms": 125000},
    ).json()["run"]
    assert (patched["status"], patched["final_score"], patched["duration_ms"]) == (
        "completed",
        0.95,
        125000,
    )

    listing = api.get("/runs?status=completed&limit=10&order_by=final_score").json()
    assert [r["id"] for r in listing["runs"]] == [run["id"]]
    assert listing["pagination"] == {"limit": 10, "offset": 0, "total": 1, "hasMore": False}

    detail = api.get(f"/runs/{run['id']}").json()
    assert detail["stats"] == {
        "totalIterations": 2,
        "bestScore": 0.75,
        "worstScore": 0.75,
        "averageScore": 0.75,
        "averageDuration": 2500,
    }
    stats = api.get("/stats?optimizer_type=bayesian").json()
    assert stats["metadata"]["filters"]["optimizerType"] == "bayesian"
    assert stats["byOptimizerType"][0]["optimizerType"] == "bayesian"
    assert stats["topPerformers"][0]["final_score"] == 0.95
