"""``GET /api/v2/analytics/summary`` (DECISIONS.md), checked field by field against the corpus."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from api_helpers import DAY, Corpus, Spec, assert_error, utc_date

import runicorn_lite
from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.pg_schema import migrate_index
from runicorn_lite.db.schema import INDEX_MIGRATIONS
from runicorn_lite.db.sqlite import connect, migrate
from runicorn_lite.queries import analytics
from runicorn_lite.queries.experiments import ExperimentFilter
from runicorn_lite.rundir import DELETED, mark_deleted

STATUSES = ("running", "finished", "failed", "interrupted")


@pytest.fixture
def client(corpus_app, client_for):  # type: ignore[no-untyped-def]
    return client_for(corpus_app)


def expected_summary(corpus: Corpus, specs: list[Spec]) -> dict[str, Any]:
    """The summary DECISIONS describes, computed from what was written."""
    by_status = {s: sum(1 for x in specs if x.status == s) for s in STATUSES}
    ended = by_status["finished"] + by_status["failed"] + by_status["interrupted"]
    durations = [x.ended_at - x.created_at for x in specs if x.ended_at is not None]
    projects: dict[str, dict[str, Any]] = {}
    for x in specs:
        entry = projects.setdefault(x.project, {"project": x.project, "count": 0,
                                                "by_status": dict.fromkeys(STATUSES, 0), "best_metric_max": None})
        entry["count"] += 1
        entry["by_status"][x.status] += 1
        if x.best is not None and (entry["best_metric_max"] is None or x.best > entry["best_metric_max"]):
            entry["best_metric_max"] = x.best
    today = int(corpus.now // DAY)
    recent = [x for x in specs if int(x.created_at // DAY) > today - 30]
    days = sorted({utc_date(x.created_at) for x in recent})
    return {
        "total_experiments": len(specs),
        "by_status": by_status,
        "success_rate": round(by_status["finished"] * 100 / ended, 2) if ended else 0.0,
        "average_duration_s": sum(durations) / len(durations) if durations else None,
        "total_data_points": sum(x.n_points for x in specs),
        "projects": projects,
        "recent_activity": [
            {"date": d,
             "count": sum(1 for x in recent if utc_date(x.created_at) == d),
             "finished": sum(1 for x in recent if utc_date(x.created_at) == d and x.status == "finished"),
             "failed": sum(1 for x in recent if utc_date(x.created_at) == d and x.status == "failed")}
            for d in days
        ],
    }


def check(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(body) == {"total_experiments", "by_status", "success_rate", "average_duration_s",
                         "total_data_points", "projects", "recent_activity", "query_time_ms"}
    assert body["total_experiments"] == expected["total_experiments"]
    assert body["by_status"] == expected["by_status"]
    assert body["success_rate"] == expected["success_rate"]
    if expected["average_duration_s"] is None:
        assert body["average_duration_s"] is None
    else:
        assert body["average_duration_s"] == pytest.approx(expected["average_duration_s"], abs=1e-3)
    assert body["total_data_points"] == expected["total_data_points"]
    assert {p["project"]: p for p in body["projects"]} == expected["projects"]
    assert len(body["projects"]) == len(expected["projects"])
    assert body["recent_activity"] == expected["recent_activity"]
    assert isinstance(body["query_time_ms"], float)


async def test_summary_of_the_corpus(client, corpus: Corpus) -> None:
    body = (await client.get("/api/v2/analytics/summary")).json()
    check(body, expected_summary(corpus, corpus.live))
    # The same numbers, written out, so the reference above cannot drift unnoticed.
    assert body["total_experiments"] == 11  # the soft-deleted run is left out
    assert body["by_status"] == {"running": 2, "finished": 6, "failed": 2, "interrupted": 1}
    assert body["success_rate"] == 66.67  # 6 finished of 9 ended
    assert body["average_duration_s"] == pytest.approx(8260 / 9, abs=1e-3)
    assert body["total_data_points"] == 78
    projects = {p["project"]: p for p in body["projects"]}
    assert projects["vision"]["count"] == 5 and projects["vision"]["best_metric_max"] == 0.95  # not 0.99
    assert projects["nlp"]["by_status"] == {"running": 1, "finished": 2, "failed": 1, "interrupted": 0}
    assert projects["audio"]["best_metric_max"] == 0.5
    assert [p["project"] for p in body["projects"]] == ["vision", "nlp", "audio"]  # by count
    assert sum(d["count"] for d in body["recent_activity"]) == 10  # the 60-day-old run is outside
    dates = [d["date"] for d in body["recent_activity"]]
    assert dates == sorted(dates) and utc_date(corpus.now - 60 * DAY) not in dates


@pytest.mark.parametrize(
    "params",
    [{"project": "vision"}, {"project": "nlp"}, {"status": "finished"}, {"status": "failed,interrupted"},
     {"status": "running"}, {"project": "nope"}, {"project": "vision", "status": "finished"}, "after", "before"],
)
async def test_summary_filters(client, corpus: Corpus, params: Any) -> None:
    pivot = corpus.by_id("20240612_080000_c0ffe5").created_at
    specs = corpus.live
    if params == "after":
        params, specs = {"created_after": repr(pivot)}, [s for s in specs if s.created_at >= pivot]
    elif params == "before":
        params, specs = {"created_before": repr(pivot)}, [s for s in specs if s.created_at <= pivot]
    else:
        if "project" in params:
            specs = [s for s in specs if s.project == params["project"]]
        if "status" in params:
            specs = [s for s in specs if s.status in params["status"].split(",")]
    body = (await client.get("/api/v2/analytics/summary", params=params)).json()
    check(body, expected_summary(corpus, specs))


async def test_summary_of_nothing(client) -> None:
    body = (await client.get("/api/v2/analytics/summary", params={"project": "nope"})).json()
    assert body["total_experiments"] == 0 and body["success_rate"] == 0.0
    assert body["average_duration_s"] is None and body["total_data_points"] == 0
    assert body["projects"] == [] and body["recent_activity"] == []
    assert body["by_status"] == dict.fromkeys(STATUSES, 0)


def test_status_counts_of_the_corpus_are_what_the_specs_say(corpus: Corpus) -> None:
    assert Counter(s.status for s in corpus.live) == {"finished": 6, "running": 2, "failed": 2, "interrupted": 1}


@pytest.mark.parametrize(
    "params",
    [{"status": "bogus"}, {"created_after": "yesterday"}, {"created_before": "nan"}, {"project": "a\x00b"}],
)
async def test_summary_rejects_bad_filters(client, params: dict[str, str]) -> None:
    assert_error(await client.get("/api/v2/analytics/summary", params=params), 400)


def _figures_alike(kept: Any, read: Any) -> None:
    assert sorted(kept.groups) == sorted(read.groups)
    assert kept.durations == read.durations and kept.points == read.points
    assert kept.duration_sum == pytest.approx(read.duration_sum, rel=1e-9, abs=1e-6)
    assert kept.recent == read.recent


def _downgrade_and_migrate(ctx: Any) -> None:
    """Make the index one from before 0015_kept_analytics, and bring it up to date (on the
    store's writer, the only thread that writes the index)."""
    with ctx.index.write() as conn:
        conn.execute("DROP INDEX idx_live_project_status_best")
        postgres = on_postgres()  # (known inside a transaction of the store)
        if postgres:
            for function in ("exp_stats_keep", "exp_days_keep"):
                conn.execute(f"DROP FUNCTION {function}() CASCADE")
            conn.execute("DELETE FROM _index_migrations WHERE name = 'pg_0004_kept_analytics'")
        else:
            for name in ("exp_stats_insert", "exp_stats_delete", "exp_stats_update", "exp_days_update"):
                conn.execute(f"DROP TRIGGER {name}")
            conn.execute("DELETE FROM _migrations WHERE name = '0015_kept_analytics'")
        conn.execute("DROP TABLE exp_stats")
        conn.execute("DROP TABLE exp_days")
    if postgres:
        with ctx.index.write() as conn:
            assert migrate_index(conn) == ["pg_0004_kept_analytics"]
    else:  # (SQLite's migrations take their own transactions)
        conn = connect(ctx.settings.index_path)
        try:
            assert migrate(conn, INDEX_MIGRATIONS) == ["0015_kept_analytics"]
        finally:
            conn.close()


def test_kept_figures_follow_every_change_of_the_rows(make_app: Any, root: Path) -> None:
    """What the index keeps for the summary (exp_stats, exp_days, by trigger) always equals
    reading the rows, for every filter it answers: through new runs, points, ends, a run
    moved out of the last 30 days, a soft delete and its restore, a run removed, and an index
    made before it existed."""
    ctx = make_app().state.ctx
    since = int(time.time() // DAY) - (analytics.RECENT_DAYS - 1)
    filters = [ExperimentFilter(), ExperimentFilter(include_deleted=True), ExperimentFilter(include_deleted="only"),
               ExperimentFilter(project="a"), ExperimentFilter(statuses=("running", "finished")),
               ExperimentFilter(project="b", statuses=("failed",), include_deleted=True)]

    def check() -> None:
        for f in filters:
            kept = ctx.index.read(lambda c, f=f: analytics._kept(c, f, since))
            _figures_alike(kept, ctx.index.read(lambda c, f=f: analytics._read(c, f, since)))

    runs = [runicorn_lite.init(project="ab"[i % 2], name=f"n{i}", root=root) for i in range(7)]
    for i, run in enumerate(runs):
        run.log({"acc": i / 10, "loss": 1 - i / 10}, step=1)
        run.flush()
    ctx.indexer.scan()
    check()
    for i, run in enumerate(runs[:5]):
        run.log({"acc": 0.5}, step=2)
        run.finish("failed" if i % 2 else "finished")
    meta = runs[1].run_dir / "meta.json"
    body = json.loads(meta.read_text())
    body["created_at"] -= 45 * DAY
    meta.write_text(json.dumps(body))
    ctx.indexer.scan()
    check()
    assert len(ctx.index.read(lambda c: analytics._kept(c, ExperimentFilter(), since)).recent) == 1
    mark_deleted(runs[0].run_dir, "finished", "cleanup", 1.0)
    mark_deleted(runs[5].run_dir, "running", "cleanup", 1.0)
    ctx.indexer.scan()
    check()
    (runs[0].run_dir / DELETED).unlink()  # restored
    shutil.rmtree(runs[3].run_dir)
    ctx.indexer.scan()
    check()
    total = ctx.index.read(lambda c: analytics.summary(c, ExperimentFilter(include_deleted=True)))
    assert total["total_experiments"] == 6
    ctx.indexer.store.run(lambda: _downgrade_and_migrate(ctx))
    check()
