"""GET /stats over a known set of runs: every number checked, plus the empty case and a true 0."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from opt_helpers import Api, Client, Clock

# (name, optimizer, created, status, final_score, duration_ms)
RUNS = [
    ("r1", "bayesian", "2025-10-01T08:00:00Z", "completed", 0.9, 1000),
    ("r2", "bayesian", "2025-10-25T00:00:00Z", "failed", None, 3000),
    ("r3", "random_search", "2025-11-22T09:00:00Z", "completed", 0.9, 2000),
    ("r4", "random_search", "2025-11-22T23:59:00Z", "running", 0.0, None),
    ("r5", "genetic", "2025-11-23T01:00:00Z", "pending", None, None),
    ("r6", "bayesian", "2025-11-23T02:00:00Z", "cancelled", -0.3, 0),
]


@pytest.fixture
def dataset(api: Api, clock: Clock) -> dict[str, str]:
    ids = {}
    for name, optimizer, created, status, score, duration in RUNS:
        clock.set(created)
        run = api.create_run(run_name=name, optimizer_type=optimizer)
        ids[name] = run["id"]
        patch: dict[str, Any] = {"status": status}
        if score is not None:
            patch["final_score"] = score
        if duration is not None:
            patch["duration_ms"] = duration
        if status != "pending":
            assert api.patch(f"/runs/{run['id']}", json=patch).status_code == 200
    clock.set("2025-11-23T12:00:00Z")
    return ids


def test_every_number(api: Api, dataset: dict[str, str]) -> None:
    response = api.get("/stats")
    assert response.status_code == 200
    body = response.json()
    assert body["statistics"] == {
        "totalRuns": 6,
        "successRate": 33.33,
        "averageImprovement": 0.375,
        "averageDuration": 1500,
    }
    assert body["byStatus"] == {
        "pending": 1,
        "running": 1,
        "completed": 2,
        "failed": 1,
        "cancelled": 1,
    }
    assert body["byOptimizerType"] == [
        {
            "optimizerType": "bayesian",
            "count": 3,
            "successRate": 33.33,
            "averageScore": 0.3,
            "averageDuration": 1333,
        },
        {
            "optimizerType": "random_search",
            "count": 2,
            "successRate": 50.0,
            "averageScore": 0.45,
            "averageDuration": 2000,
        },
        {
            "optimizerType": "genetic",
            "count": 1,
            "successRate": 0,
            "averageScore": None,
            "averageDuration": None,
        },
    ]
    top = body["topPerformers"]
    assert [t["run_name"] for t in top] == ["r3", "r1", "r4", "r6"]
    assert top[0] == {
        "id": dataset["r3"],
        "run_name": "r3",
        "optimizer_type": "random_search",
        "final_score": 0.9,
        "duration_ms": 2000,
        "created_at": "2025-11-22T09:00:00.000Z",
    }
    assert body["recentTrends"] == [
        {"date": "2025-10-25", "count": 1, "completed": 0, "failed": 1},
        {"date": "2025-11-22", "count": 2, "completed": 1, "failed": 0},
        {"date": "2025-11-23", "count": 2, "completed": 0, "failed": 0},
    ]
    assert body["metadata"]["filters"] == {
        "projectId": "proj_123",
        "optimizerType": None,
        "status": None,
        "startDate": None,
        "endDate": None,
    }
    assert set(body["metadata"]) == {"filters", "latencyMs", "timestamp"}
    assert response.headers["cache-control"] == "private, max-age=300, must-revalidate"


def test_filters(api: Api, dataset: dict[str, str]) -> None:
    bayesian = api.get("/stats?optimizer_type=bayesian").json()
    assert bayesian["statistics"] == {
        "totalRuns": 3,
        "successRate": 33.33,
        "averageImprovement": 0.3,
        "averageDuration": 1333,
    }
    assert bayesian["metadata"]["filters"]["optimizerType"] == "bayesian"
    assert [t["run_name"] for t in bayesian["topPerformers"]] == ["r1", "r6"]

    completed = api.get("/stats?status=completed").json()
    assert completed["statistics"]["totalRuns"] == 2
    assert completed["statistics"]["successRate"] == 100.0
    assert completed["byStatus"] == {
        "pending": 0,
        "running": 0,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
    }

    recent = api.get("/stats?start_date=2025-11-22").json()
    assert recent["statistics"]["totalRuns"] == 4
    assert recent["metadata"]["filters"]["startDate"] == "2025-11-22T00:00:00.000Z"
    # A bare end date includes that whole day.
    older = api.get("/stats?end_date=2025-11-22").json()
    assert older["statistics"]["totalRuns"] == 4
    assert older["metadata"]["filters"]["endDate"] == "2025-11-22T23:59:59.999Z"
    window = api.get(
        "/stats",
        params={"start_date": "2025-11-22T10:00:00+01:00", "end_date": "2025-11-23T01:30:00Z"},
    ).json()
    assert sorted(t["run_name"] for t in window["topPerformers"]) == ["r3", "r4"]
    assert window["statistics"]["totalRuns"] == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("start_date=yesterday", "start_date"),
        ("end_date=2025-13-01", "end_date"),
        ("start_date=", "start_date"),
        ("start_date=2025-11-23&end_date=2025-11-01", "end_date"),
        ("status=done", "status"),
        ("optimizer_type=x", "optimizer_type"),
    ],
)
def test_invalid_stats_queries(api: Api, query: str, field: str) -> None:
    response = api.get(f"/stats?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid query parameters"
    assert field in response.json()["issues"]["fieldErrors"]


def test_empty_project(api: Api) -> None:
    body = api.get("/stats").json()
    assert body["statistics"] == {
        "totalRuns": 0,
        "successRate": 0,
        "averageImprovement": None,
        "averageDuration": None,
    }
    assert body["byStatus"] == {
        "pending": 0,
        "running": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert body["byOptimizerType"] == []
    assert body["topPerformers"] == []
    assert body["recentTrends"] == []


def test_a_true_zero_stays_zero(client: Client, new_key: Callable[..., str]) -> None:
    api = Api(client, new_key("zero"))
    run = api.create_run()
    api.patch(
        f"/runs/{run['id']}", json={"final_score": 0, "duration_ms": 0, "status": "completed"}
    )
    api.create_run()  # no score: must not drag the mean
    stats = api.get("/stats").json()["statistics"]
    assert stats["averageImprovement"] == 0 and stats["averageImprovement"] is not None
    assert stats["averageDuration"] == 0
    assert stats["successRate"] == 50.0


def test_top_performers_keep_ten(api: Api, clock: Clock) -> None:
    for n in range(12):
        run = api.create_run(run_name=f"run{n}")
        api.patch(f"/runs/{run['id']}", json={"final_score": n % 4})
    top = api.get("/stats").json()["topPerformers"]
    assert len(top) == 10
    # Scores 3,3,3 (newest first), then 2,2,2, ...
    assert [t["run_name"] for t in top[:4]] == ["run11", "run7", "run3", "run10"]


def test_stats_follow_changes(api: Api) -> None:
    assert api.get("/stats").json()["statistics"]["totalRuns"] == 0
    run = api.create_run()
    assert api.get("/stats").json()["byStatus"]["pending"] == 1
    api.post(
        f"/runs/{run['id']}/iterations", json={"iteration_number": 0, "params": {}, "score": 2}
    )
    body = api.get("/stats").json()
    assert body["byStatus"]["running"] == 1
    assert body["statistics"]["averageImprovement"] == 2


@pytest.mark.parametrize(
    "filters",
    ["", "optimizer_type=bayesian", "status=completed", "status=failed&optimizer_type=bayesian"],
)
def test_running_totals_agree_with_a_full_scan(
    api: Api, dataset: dict[str, str], filters: str
) -> None:
    # Undated queries read the trigger-kept totals; an all-embracing date range forces the scan.
    for n in range(5):  # churn: scores and statuses that move around
        api.post(
            f"/runs/{dataset['r5']}/iterations",
            json={"iteration_number": n, "params": {}, "score": n / 3},
        )
    api.patch(
        f"/runs/{dataset['r4']}", json={"status": "failed", "final_score": 0.1, "duration_ms": 7}
    )
    fast = api.get(f"/stats?{filters}").json()
    scan = api.get(f"/stats?{filters}&start_date=1970-01-01&end_date=2999-01-01").json()
    for block in ("statistics", "byStatus", "byOptimizerType", "topPerformers", "recentTrends"):
        assert fast[block] == scan[block], block
    listed = api.get(f"/runs?{filters}&limit=1").json()["pagination"]["total"]
    assert listed == fast["statistics"]["totalRuns"]


def test_unencoded_plus_in_a_date_offset_is_understood(api: Api) -> None:
    # curl "...?start_date=2025-11-23T10:00:00+02:00" sends a literal + that decodes as a space.
    response = api.get("/stats?start_date=2025-11-23T10:00:00+02:00&end_date=2025-11-24T10:00+0200")
    assert response.status_code == 200, response.text
    filters = response.json()["metadata"]["filters"]
    assert filters["startDate"] == "2025-11-23T08:00:00.000Z"
    assert filters["endDate"] == "2025-11-24T08:00:00.000Z"
    assert api.get("/stats?start_date=2025-11-23 junk").status_code == 400


def _reference(db: Any, project: str, start: str | None, end: str | None, today_first: str) -> dict[str, Any]:
    """Stats recomputed by brute force over the runs table (no triggers, no daily totals)."""
    where, args = "project_id = ?", [project]
    if start is not None:
        where, args = where + " AND created_at >= ?", [*args, start]
    if end is not None:
        where, args = where + " AND created_at <= ?", [*args, end]

    def q(conn: Any) -> tuple[list[Any], list[Any]]:
        groups = conn.execute(
            "SELECT status, count(*), count(final_score), total(final_score), count(duration_ms),"
            f" total(duration_ms) FROM optimization_runs WHERE {where} GROUP BY status", args
        ).fetchall()
        days = conn.execute(
            "SELECT substr(created_at, 1, 10), count(*), sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END),"
            " sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END)"
            f" FROM optimization_runs WHERE {where} AND created_at >= ? GROUP BY 1 ORDER BY 1",
            (*args, today_first),
        ).fetchall()
        return groups, days

    groups, days = db.read(q)
    total = sum(g[1] for g in groups)
    scored = sum(g[2] for g in groups)
    timed = sum(g[4] for g in groups)
    return {
        "totalRuns": total,
        "byStatus": {g[0]: g[1] for g in groups},
        "scoreSum": round(sum(g[3] for g in groups), 6),
        "scored": scored,
        "durationSum": sum(g[5] for g in groups),
        "timed": timed,
        "trends": [{"date": d, "count": c, "completed": cc, "failed": f} for d, c, cc, f in days],
    }


def test_date_ranges_agree_with_a_brute_force_scan(api: Api, clock: Clock, sub_app: Any) -> None:
    """Whole days come from the daily totals and edge days from the runs: every kind of range
    (open ends, midnights, one day, partial days) must give what a full scan gives."""
    import random

    rng = random.Random(5)
    statuses = ["running", "completed", "failed", "cancelled"]
    for i in range(60):
        day = 10 + i % 6
        clock.set(f"2025-11-{day:02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z")
        run = api.create_run(run_name=f"r{i}", optimizer_type=rng.choice(["bayesian", "genetic"]))
        if i % 5:
            patch: dict[str, Any] = {"status": rng.choice(statuses)}
            if i % 3:
                patch["final_score"] = round(rng.uniform(-1, 1), 3)
            if i % 4:
                patch["duration_ms"] = rng.randint(0, 5000)
            assert api.patch(f"/runs/{run['id']}", json=patch).status_code == 200
    clock.set("2025-11-16T12:00:00Z")
    first_trend_day = "2025-10-18T00:00:00.000Z"
    bounds = [None, "2025-11-10T00:00:00.000Z", "2025-11-11T13:30:00.000Z", "2025-11-12T23:59:59.999Z",
              "2025-11-13T00:00:00.000Z", "2025-11-14T06:00:00.000Z", "2025-11-15T23:59:59.999Z",
              "2025-11-16T00:00:00.000Z"]
    db = sub_app.state.db
    checked = 0
    for start in bounds:
        for end in bounds:
            if start is not None and end is not None and start > end:
                continue
            params = {k: v for k, v in (("start_date", start), ("end_date", end)) if v is not None}
            body = api.get("/stats", params=params).json()
            want = _reference(db, "proj_123", start, end, first_trend_day)
            stats = body["statistics"]
            assert stats["totalRuns"] == want["totalRuns"], params
            assert {k: v for k, v in body["byStatus"].items() if v} == want["byStatus"], params
            expected_avg = round(want["scoreSum"] / want["scored"], 4) if want["scored"] else None
            assert stats["averageImprovement"] == expected_avg, params
            assert (stats["averageDuration"] is None) == (want["timed"] == 0), params
            assert body["recentTrends"] == want["trends"], params
            checked += 1
    assert checked > 30


@pytest.mark.parametrize(
    "params", [{"start_date": "9999-12-31T12:00:00Z"}, {"end_date": "0001-01-01T12:00:00Z"},
               {"start_date": "0001-01-01T00:00:00Z", "end_date": "9999-12-31T23:59:59Z"}]
)
def test_dates_at_the_ends_of_the_calendar(api: Api, dataset: dict[str, str], params: dict[str, str]) -> None:
    response = api.get("/stats", params=params)
    assert response.status_code == 200
    expected = 6 if "end_date" in params and "start_date" in params else 0
    assert response.json()["statistics"]["totalRuns"] == expected


def test_scores_near_the_largest_double_never_break_the_totals(api: Api) -> None:
    # Their sum is past the largest double: infinite, as IEEE (and SQLite) adds, never an error.
    for score in (1.7e308, 1.7e308, -1.0):
        run = api.create_run()
        assert api.patch(f"/runs/{run['id']}", json={"status": "completed", "final_score": score}).status_code == 200
    running = api.create_run()
    for n in range(2):
        iteration = {"iteration_number": n, "params": {}, "score": 1.7e308}
        assert api.post(f"/runs/{running['id']}/iterations", json=iteration).status_code == 201
    today = datetime.now(UTC).date().isoformat()
    # Totals kept by triggers; whole days of the daily totals; today as an edge day, run by run.
    for params in ({}, {"start_date": "2000-01-01T00:00:00Z"}, {"start_date": f"{today}T00:00:00.001Z"}):
        body = api.get("/stats", params=params).json()
        assert body["statistics"]["totalRuns"] == 4, params
        assert body["statistics"]["averageImprovement"] is None, params  # infinite: JSON has no such number
        assert [p["final_score"] for p in body["topPerformers"]] == [1.7e308, 1.7e308, 1.7e308, -1.0], params
