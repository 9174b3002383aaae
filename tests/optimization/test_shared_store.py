"""Several servers over one primary store (a team server's workers, or servers started at once):
what one writes the others see, concurrent writes to one run lose nothing, rate limits are one
count across them, and on PostgreSQL
the schema is created once, beside the index's, and survives an index rebuild."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio.from_thread
import backends
import orjson
import pytest
from opt_helpers import PREFIX, Api, Client, make_settings, release_database
from starlette.applications import Starlette
from starlette.routing import Mount

from runicorn_lite.db.backend import Backend
from runicorn_lite.optimization import create_app, queries
from runicorn_lite.optimization.keys import KeyChecker, create_key
from runicorn_lite.optimization.model import ListQuery
from runicorn_lite.optimization.store import open_primary
from runicorn_lite.settings import Settings


@pytest.fixture
def two_stores(tmp_path: Path) -> Iterator[tuple[Backend, Backend]]:
    """Two store objects over one primary store, as two server processes open it."""
    settings = make_settings(tmp_path)
    first, second = open_primary(settings), open_primary(settings)
    yield first, second
    first.close()
    second.close()
    release_database(settings.database)


def _in_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


def test_writers_of_two_servers_to_one_run_lose_nothing(two_stores: tuple[Backend, Backend]) -> None:
    rounds = 12
    run_ids = []
    for _ in range(rounds):
        with two_stores[0].write() as conn:
            run_ids.append(queries.create_run(conn, "p", {"optimizer_type": "random_search", "config": "{}"})["id"])
    together = threading.Barrier(2)
    scores = (2.0, 1.0)

    def post(i: int) -> None:
        # Each round both servers post to one run at the same instant, the better score first
        # or second: whoever compared with a best read before the other's commit would lose it.
        for run_id in run_ids:
            together.wait(10)
            item = {"iteration_number": i, "params": f'{{"n": {i}}}', "score": scores[i]}
            with two_stores[i].write() as conn:
                queries.add_iterations(conn, "p", run_id, [item])

    _in_threads(2, post)
    for store in two_stores:
        for run_id in run_ids:
            detail = store.read(lambda conn, run_id=run_id: queries.get_run(conn, "p", run_id))
            run = detail["run"]
            assert (run["iterations_count"], run["final_score"]) == (2, 2.0)
            assert orjson.dumps(run["best_params"]) == b'{"n": 0}'
            assert [it["iteration_number"] for it in detail["iterations"]] == [0, 1]
    listed = two_stores[1].read(lambda conn: queries.list_runs(conn, "p", _list_query()))
    assert listed["pagination"]["total"] == rounds


def _list_query() -> ListQuery:
    return ListQuery(status=None, optimizer_type=None, limit=10, offset=0, order_by="created_at", order="desc")


def test_a_key_made_by_one_server_works_on_the_other_at_once(two_stores: tuple[Backend, Backend]) -> None:
    key, _ = create_key(two_stores[0], "shared")
    checker = KeyChecker(two_stores[1])
    try:
        principal = checker.lookup(key)
        assert principal is not None and principal.project_id == "shared"
    finally:
        checker.close()


def test_two_servers_share_a_project_limit_and_the_bad_key_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, read_limit=10, auth_failure_limit=3)
    with ExitStack() as stack:
        stack.callback(release_database, settings.database)
        portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
        servers = []
        for _ in range(2):
            sub = create_app(settings)
            stack.callback(sub.state.api.close)
            sub.state.api.limiter._clock = lambda: 1_700_000_000.0 - 1_700_000_000.0 % 60 + 5  # never at a window's end
            client = Client(portal, Starlette(routes=[Mount(PREFIX, app=sub)]))
            stack.callback(client.close)
            servers.append(client)
        key, _ = create_key(sub.state.db, "proj")
        # A limit of 10 a minute is 10 in total, whichever server answers.
        answers = [Api(servers[n % 2], key).get("/runs") for n in range(12)]
        assert [a.status_code for a in answers] == [200] * 10 + [429] * 2
        assert [a.headers["x-ratelimit-remaining"] for a in answers] == [str(9 - n) for n in range(10)] + ["0", "0"]
        # Guessing keys through several servers gets no more tries than through one.
        bad = [Api(servers[n % 2], "sk_live_" + "x" * 40).get("/runs").status_code for n in range(5)]
        assert bad == [401, 401, 401, 429, 429]


# -- PostgreSQL: the schema ---------------------------------------------------------------------


@pytest.fixture
def empty_schema(backend: str) -> Iterator[str]:
    if backend != "postgresql":
        pytest.skip("PostgreSQL's schema and its migration lock")
    url = backends.new_database()
    assert url is not None
    yield url
    backends.drop_database(url)


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_servers_migrating_one_empty_schema_at_once_migrate_it_once(empty_schema: str) -> None:
    from runicorn_lite.db.postgres import PgConn, PgDatabase
    from runicorn_lite.optimization.pg_schema import PRIMARY_MIGRATIONS, migrate_primary

    count = 4
    start = threading.Barrier(count)
    applied: list[list[str]] = []
    stores: list[PgDatabase] = []
    lock = threading.Lock()

    def migrate(conn: PgConn) -> list[str]:
        start.wait(10)  # every server reaches its migration before any has taken the lock
        done = migrate_primary(conn)
        with lock:
            applied.append(done)
        return done

    def open_one(i: int) -> None:
        store = PgDatabase(empty_schema, migrate, name=f"primary-{i}")
        with lock:
            stores.append(store)

    try:
        _in_threads(count, open_one)
        assert sorted(applied) == [[]] * (count - 1) + [list(PRIMARY_MIGRATIONS)]
        assert _rows(empty_schema, "SELECT name FROM _primary_migrations") == [(m,) for m in PRIMARY_MIGRATIONS]
        # Every one of them serves: a key written through each is read through the others.
        keys = [create_key(store, f"p{i}")[0] for i, store in enumerate(stores)]
        for store in stores:
            checker = KeyChecker(store)
            try:
                assert all(checker.lookup(key) is not None for key in keys)
            finally:
                checker.close()
    finally:
        for store in stores:
            store.close()


def test_beside_the_index_and_through_its_rebuild(empty_schema: str, tmp_path: Path) -> None:
    from runicorn_lite.db.pg_schema import INDEX_TABLES, drop_index, migrate_index
    from runicorn_lite.db.postgres import PgDatabase
    from runicorn_lite.optimization.pg_schema import PRIMARY_TABLES

    assert not set(INDEX_TABLES) & set(PRIMARY_TABLES)
    index = PgDatabase(empty_schema, migrate_index, name="index")
    primary = open_primary(Settings(root=tmp_path, database=empty_schema))
    try:
        tables = {name for (name,) in _rows(
            empty_schema, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        assert tables == set(INDEX_TABLES) | set(PRIMARY_TABLES)
        key, _ = create_key(primary, "kept")
        with primary.write() as conn:
            run = queries.create_run(conn, "kept", {"optimizer_type": "grid_search", "config": "{}"})
        with index.write() as conn:  # what `index --rebuild --database URL` does to the schema
            drop_index(conn)  # type: ignore[arg-type]
            migrate_index(conn)  # type: ignore[arg-type]
        checker = KeyChecker(primary)
        try:
            assert checker.lookup(key) is not None
        finally:
            checker.close()
        assert primary.read(lambda conn: queries.get_run(conn, "kept", run["id"]))["run"]["id"] == run["id"]
    finally:
        index.close()
        primary.close()
