"""The list query never scans the experiments table without an index, and the unfiltered sorts
walk an index in ORDER BY order instead of sorting (EXPLAIN QUERY PLAN).

``include_deleted=true`` without other filters is left out on purpose: the schema keeps sort
indexes for live rows only (that administrative view sorts; see db/schema.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from runicorn_lite.db import Database
from runicorn_lite.db.schema import INDEX_MIGRATIONS, SORT_COLUMNS
from runicorn_lite.queries.experiments import EXPERIMENT_COLUMNS, ExperimentFilter, order_clause, where_clause

# EXPLAIN QUERY PLAN is SQLite's: this module checks its planner, not what both backends answer.
pytestmark = pytest.mark.sqlite_only

DEFAULT = ExperimentFilter()
FILTERED = {
    "project": ExperimentFilter(project="vision"),
    "status": ExperimentFilter(statuses=("finished", "failed")),
    "tags": ExperimentFilter(tags=("baseline", "production")),
    "search": ExperimentFilter(search="resnet"),
    "search_short": ExperimentFilter(search="vi"),
    "search_mixed": ExperimentFilter(search="resnet 50"),
    "combined": ExperimentFilter(project="vision", statuses=("finished",), tags=("baseline",), search="res"),
    "deleted_project": ExperimentFilter(project="vision", include_deleted=True),
}


@pytest.fixture(scope="module")
def empty_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A new index: no rows, no ANALYZE statistics (the planner falls back to its guesses)."""
    db = Database(tmp_path_factory.mktemp("empty") / "index.sqlite", INDEX_MIGRATIONS)
    yield db
    db.close()


@pytest.fixture(params=["corpus", "empty"])
def index(request: pytest.FixtureRequest) -> Database:
    """The indexed corpus (analyzed by the indexer after its scan) and an index never analyzed."""
    if request.param == "corpus":
        return request.getfixturevalue("corpus_app").state.ctx.index  # type: ignore[no-any-return]
    return request.getfixturevalue("empty_index")  # type: ignore[no-any-return]


def _plan(index: Database, f: ExperimentFilter, order_by: str, desc: bool) -> list[str]:
    where, params = where_clause(f)
    sql = (f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE {where}"
           f" ORDER BY {order_clause(order_by, desc)} LIMIT ? OFFSET ?")

    def explain(conn: sqlite3.Connection) -> list[str]:
        return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, (*params, 50, 100))]

    return index.read(explain)  # type: ignore[return-value]


def _full_scans(plan: list[str]) -> list[str]:
    return [line for line in plan if line.strip() == "SCAN experiments"]


@pytest.mark.parametrize("desc", [True, False], ids=["desc", "asc"])
@pytest.mark.parametrize("order_by", list(SORT_COLUMNS))
def test_unfiltered_lists_walk_a_sort_index(index: Database, order_by: str, desc: bool) -> None:
    plan = _plan(index, DEFAULT, order_by, desc)
    assert not _full_scans(plan), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan
    # live rows only: the partial index of live rows, walked in ORDER BY order
    assert len(plan) == 1 and plan[0].startswith("SCAN experiments USING INDEX idx_sort_live_"), plan


@pytest.mark.parametrize("desc", [True, False], ids=["desc", "asc"])
@pytest.mark.parametrize("order_by", list(SORT_COLUMNS))
def test_filtered_lists_never_scan_the_table(index: Database, order_by: str, desc: bool) -> None:
    for name, f in FILTERED.items():
        plan = _plan(index, f, order_by, desc)
        assert not _full_scans(plan), (name, plan)


@pytest.mark.parametrize("name", ["default", *FILTERED])
def test_counts_never_scan_the_table(index: Database, name: str) -> None:
    where, params = where_clause({"default": DEFAULT, **FILTERED}[name])

    def explain(conn: sqlite3.Connection) -> list[str]:
        return [r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN SELECT count(*) FROM experiments WHERE {where}",
                                           params)]

    plan = index.read(explain)
    assert not _full_scans(plan), plan  # type: ignore[arg-type]


@pytest.mark.parametrize("f", [DEFAULT, FILTERED["project"], FILTERED["status"], FILTERED["deleted_project"],
                               ExperimentFilter(include_deleted="only")], ids=repr)
def test_the_overview_reads_what_is_kept_not_the_runs(index: Database, f: ExperimentFilter) -> None:
    """The analytics summary of a project / status / deletion filter sums the tables kept by
    trigger and reaches the runs only for each group's best value: by one descent of
    idx_live_project_status_best, and for deleted runs through idx_experiments_deleted_at."""
    from runicorn_lite.queries import analytics

    def statements(conn: sqlite3.Connection) -> list[str]:
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        try:
            analytics.summary(conn, f)
        finally:
            conn.set_trace_callback(None)
        return seen

    plans = []
    for sql in index.read(statements):
        if sql.lstrip().upper().startswith("SELECT"):
            plans += index.read(lambda conn, sql=sql: [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)])
    runs = [p for p in plans if " experiments" in p or p.split()[:2] in (["SCAN", "e"], ["SEARCH", "e"])]
    assert runs, plans
    for line in runs:
        assert not line.startswith("SCAN"), plans
        assert "idx_live_project_status_best" in line or "idx_experiments_deleted_at" in line, plans
