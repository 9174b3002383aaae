"""The store speaks in its own terms (run not found, a transition it refuses, a finished run, a
repeated iteration); only the HTTP layer turns them into status codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opt_helpers import make_settings, release_database

from runicorn_lite.db.backend import Backend
from runicorn_lite.optimization import queries
from runicorn_lite.optimization.model import DuplicateIteration, InvalidTransition, RunFinished, RunNotFound
from runicorn_lite.optimization.store import open_primary

UNKNOWN = "550e8400-e29b-41d4-a716-446655440000"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Backend]:
    settings = make_settings(tmp_path)
    database = open_primary(settings)
    yield database
    database.close()
    release_database(settings.database)


def _run(db: Backend, project: str = "p") -> str:
    with db.write() as conn:
        run = queries.create_run(conn, project, {"optimizer_type": "bayesian", "config": "{}"})
    run_id: str = run["id"]
    return run_id


def _item(number: int) -> dict[str, object]:
    return {"iteration_number": number, "params": "{}", "score": 1.0}


def test_unknown_runs_and_runs_of_other_projects_are_not_found(db: Backend) -> None:
    theirs = _run(db, "other")
    for run_id in (UNKNOWN, theirs):
        with pytest.raises(RunNotFound):
            db.read(lambda conn, run_id=run_id: queries.get_run(conn, "p", run_id))
        with pytest.raises(RunNotFound), db.write() as conn:
            queries.add_iterations(conn, "p", run_id, [_item(0)])


def test_refused_changes_say_why(db: Backend) -> None:
    run_id = _run(db)
    with pytest.raises(DuplicateIteration) as repeated, db.write() as conn:
        queries.add_iterations(conn, "p", run_id, [_item(1), _item(1)])
    assert repeated.value.number == 1
    with db.write() as conn:
        queries.patch_run(conn, "p", run_id, {"status": "completed"})
    with pytest.raises(InvalidTransition) as transition, db.write() as conn:
        queries.patch_run(conn, "p", run_id, {"status": "running"})
    assert (transition.value.current, transition.value.requested) == ("completed", "running")
    with pytest.raises(RunFinished) as finished, db.write() as conn:
        queries.add_iterations(conn, "p", run_id, [_item(2)])
    assert finished.value.status == "completed"
