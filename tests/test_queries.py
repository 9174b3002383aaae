"""The list query's two shapes (planner's choice, or walking the sort index) give the same rows;
the query cache keeps within its bounds."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import orjson

import runicorn_lite
from runicorn_lite.db import Database, set_changes
from runicorn_lite.db.schema import INDEX_MIGRATIONS, SORT_COLUMNS
from runicorn_lite.ingest import Indexer
from runicorn_lite.queries.experiments import (
    ExperimentFilter,
    QueryCache,
    _field_page,
    list_experiments,
    order_clause,
    where_clause,
)
from runicorn_lite.queries.filters import Field, parse_filter
from runicorn_lite.queries.groups import groups, parse_group_field, parse_metric_aggregate
from runicorn_lite.settings import Settings


def test_walking_the_sort_index_returns_the_same_rows(root: Path) -> None:
    rng = random.Random(3)
    for i in range(80):
        tags = rng.sample(["a", "b", "c"], i % 3)
        run = runicorn_lite.init(project=f"p{i % 4}", name=f"n{i % 3}", root=root, tags=tags)
        if i % 5:
            run.set_primary_metric("acc", "max")
            run.log({"acc": round(rng.random(), 2)}, step=1)  # ties on purpose
        run.log_config({"lr": rng.choice([0.1, 0.01, 0.001]), "opt": rng.choice(["sgd", "adam"])})
        run.finish(rng.choice(["finished", "failed", "interrupted"]))
    settings = Settings(root=root)
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    try:
        Indexer(settings.root, db).scan()
        conn = db.reader()
        filters = [
            ExperimentFilter(project="p1"),
            ExperimentFilter(statuses=("finished", "failed"), project="p2", best_metric_min=0.3),
            ExperimentFilter(tags=("a",), created_after=0.0),
            ExperimentFilter(name="n1", search="p1"),
            ExperimentFilter(statuses=("interrupted",), best_metric_max=0.8),
            ExperimentFilter(expression=parse_filter("params.lr < 0.05")),
            ExperimentFilter(project="p3", expression=parse_filter("params.opt = 'adam' and metrics.acc.max >= 0.4")),
            ExperimentFilter(expression=parse_filter("metrics.acc.count != 1 and params.lr != 0.01")),
            ExperimentFilter(expression=parse_filter(
                "(params.lr = 0.1 or not params.opt = 'adam') and not (tags = 'a' or attributes.name = 'n2')")),
            ExperimentFilter(project="p0", expression=parse_filter("metrics.acc is null or params.lr in (0.1, 0.001)")),
        ]
        for f, order_by, desc in itertools.product(filters, SORT_COLUMNS, (True, False)):
            plain, params = where_clause(f)
            walk, walk_params = where_clause(f, walk=SORT_COLUMNS[order_by])
            order = order_clause(order_by, desc)
            select = "SELECT id, row_json, deleted_at FROM experiments WHERE"
            rows = conn.execute(f"{select} {plain} ORDER BY {order}", params).fetchall()
            walked = conn.execute(f"{select} {walk} ORDER BY {order}", walk_params).fetchall()
            assert walked == rows, (f, order_by, desc)
            # and the paged function, whichever shape it picks, pages through the same rows
            cache = QueryCache()
            paged = []
            for page in range(1, 20):
                got, total = list_experiments(conn, root, f, order_by, desc, page, 7, cache, 0)
                paged += [g["id"] for g in orjson.loads(orjson.dumps(got))]
                if page * 7 >= total:
                    break
            assert paged == [r[0] for r in rows] and total == len(rows)
        # Ordered by a param or a metric aggregate: both shapes of the field page (walking the
        # field's index filtering as it goes, or driven by the filters) match one plain sort.
        for f, field, desc in itertools.product(filters, FIELDS, (True, False)):
            where, params = where_clause(f)
            expected = _reference_field_order(conn, where, params, field, desc)
            for walk_where in (None, where_clause(f, walk="field")):
                paged = []
                for offset in range(0, len(expected) + 7, 7):
                    rows = _field_page(conn, where, params, field, desc, offset, 7, len(expected),
                                       _counter(conn), walk_where)
                    paged += [r[1].rsplit("/", 1)[-1] for r in rows]  # run_dir ends with the id
                assert paged == expected, (f, field, desc, walk_where is not None)
    finally:
        db.close()


FIELDS = [Field("params", "lr"), Field("params", "opt"), Field("metrics", "acc", "max"),
          Field("metrics", "acc", "count"), Field("params", "missing")]


def _reference_field_order(conn, where: str, params: list, field: Field, desc: bool) -> list[str]:  # type: ignore[no-untyped-def]
    if field.kind == "params":
        value = "(SELECT v FROM exp_params p WHERE p.exp_pk = experiments.pk AND p.key = ?)"
    else:
        value = f"(SELECT {field.agg} FROM metric_summaries m WHERE m.exp_pk = experiments.pk AND m.metric = ?)"
    rows = conn.execute(f"SELECT id, {value} FROM experiments WHERE {where}", [field.name, *params]).fetchall()
    have = sorted(((isinstance(v, str), v, i) for i, v in rows if v is not None), reverse=desc)
    lack = sorted((i for i, v in rows if v is None), reverse=desc)
    return [i for _, _, i in have] + lack


def _counter(conn):  # type: ignore[no-untyped-def]
    def count(sql: str, args: list, source: str = "experiments") -> int:
        return int(conn.execute(f"SELECT count(*) FROM {source} WHERE {sql}", args).fetchone()[0])

    return count


def test_search_pages_come_from_one_ordered_match_list(root: Path) -> None:
    for i in range(30):
        run = runicorn_lite.init(project="vision" if i % 3 else "nlp", name=f"resnet{i % 4}", root=root)
        run.finish()
    settings = Settings(root=root)
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    try:
        indexer = Indexer(settings.root, db)
        indexer.scan()
        conn = db.reader()
        f = ExperimentFilter(search="resnet vision")
        where, params = where_clause(f)
        for order_by, desc in itertools.product(("created_at", "name", "best_metric_value"), (True, False)):
            expected = [r[0] for r in conn.execute(
                f"SELECT id FROM experiments WHERE {where} ORDER BY {order_clause(order_by, desc)}", params)]
            cache = QueryCache()
            paged = []
            for page in range(1, 6):
                got, total = list_experiments(conn, root, f, order_by, desc, page, 4, cache, 0)
                assert total == len(expected) == 20
                paged += [g["id"] for g in orjson.loads(orjson.dumps(got))]
            assert paged == expected
            # past the end: empty page, right total
            assert list_experiments(conn, root, f, order_by, desc, 99, 4, cache, 0) == ([], 20)
    finally:
        db.close()


def test_totals_of_filter_clauses_follow_every_change_while_their_sets_are_kept(root: Path) -> None:  # noqa: PLR0915 - one change after another
    """expression_count keeps each clause's set of runs while its table's version stands: after a
    new config, a soft delete and its restore, new points of a live run, a removed run and a
    rebuilt index, every total (kept sets or not) equals SQLite's own count of the rows."""
    import shutil

    from runicorn_lite import rundir
    from runicorn_lite.queries.experiments import expression_count

    runs = []
    for i in range(12):
        run = runicorn_lite.init(project="p", name="n", root=root)
        run.log_config({"lr": [0.1, 0.01, 0.001][i % 3], "opt": ["sgd", "adam"][i % 2]})
        run.log({"acc": i / 10}, step=1)
        runs.append(run)
    for run in runs[:10]:
        run.finish()
    settings = Settings(root=root)
    caches = [QueryCache(), QueryCache(set_bytes=10)]  # the second drops sets and builds them again
    texts = ["params.lr < 0.05", "params.opt = 'adam' and metrics.acc.max >= 0.4",
             "metrics.acc.last > 0.2 and params.lr != 0.01 and params.opt != 'x'", "params.missing = 1",
             "not (params.lr = 0.1 or metrics.acc.max < 0.3) or params.opt not in ('adam')",
             "not params.missing = 1 and attributes.status = 'finished'", "params.lr is null or tags is null"]

    def check(db: Database) -> list[int]:
        lists = QueryCache()  # totals and pages are kept per generation of one Database
        conn = db.reader()
        totals = []
        for text, include_deleted in itertools.product(texts, (False, True)):
            f = ExperimentFilter(expression=parse_filter(text), include_deleted=include_deleted)
            where, params = where_clause(f)
            expected = conn.execute(f"SELECT count(*) FROM experiments WHERE {where}", params).fetchone()[0]
            conn.execute("BEGIN")
            try:
                for cache in caches:
                    for _built_then_kept in range(2):
                        assert expression_count(conn, f, cache, db.generation) == expected, (text, include_deleted)
                _page, total = list_experiments(conn, root, f, "created_at", True, 1, 5, lists, db.generation)
                assert total == expected
            finally:
                conn.execute("COMMIT")
            totals.append(expected)
        return totals

    db = Database(settings.index_path, INDEX_MIGRATIONS)
    indexer = Indexer(settings.root, db)
    try:
        indexer.scan()
        seen = [check(db)]
        rundir.update_config(runs[2].run_dir, {"args": {"lr": 0.5, "opt": "adam"}})  # a new config
        rundir.mark_deleted(runs[1].run_dir, "finished", "cleanup", 1.0)
        indexer.scan()
        seen.append(check(db))
        (runs[1].run_dir / rundir.DELETED).unlink()
        runs[11].log({"acc": 0.1}, step=2)  # a live run's new point
        runs[11].flush()
        indexer.scan()
        seen.append(check(db))
        shutil.rmtree(runs[4].run_dir)
        indexer.scan()
        seen.append(check(db))
        assert all(a != b for a, b in itertools.pairwise(seen))  # every change moved some total
    finally:
        db.close()
    for suffix in ("", "-wal", "-shm"):  # a rebuilt index: a new epoch, the same cache
        Path(f"{settings.index_path}{suffix}").unlink(missing_ok=True)
    rundir.update_config(runs[5].run_dir, {"args": {"lr": 0.5, "opt": "adam"}})
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    try:
        Indexer(settings.root, db).scan()
        check(db)
    finally:
        db.close()


def test_the_query_cache_is_bounded_by_bytes_dropping_the_oldest_first() -> None:
    cache = QueryCache(max_bytes=1 << 20)
    arrays = [np.full(40_000, i, dtype=np.int64) for i in range(6)]  # 320 KB each
    for i, array in enumerate(arrays):
        cache.put(("array", i), 1, (array, array[:10]))
        assert cache.nbytes <= 1 << 20
    kept = [i for i in range(6) if cache.get(("array", i), 1) is not None]
    assert kept == [3, 4, 5]  # the three newest fit, the oldest went first
    # a value larger than the whole bound is not kept, and replaces what its key held
    cache.put(("array", 5), 2, np.zeros(200_000))
    assert cache.get(("array", 5), 2) is None and cache.get(("array", 5), 1) is None
    assert cache.nbytes <= 2 * (320_000 + 1000)
    # answers count by their text, long lists by a sample of their items
    cache.put(("answer",), 1, {"ids": ["x" * 60] * 4_000})
    cache.put(("page",), 1, tuple(range(50)))
    assert cache.get(("answer",), 1) is not None and cache.get(("page",), 1) is not None
    cache.put(("ids",), 1, ["y" * 60] * 20_000)  # ~2 MB of strings, not 160 KB of pointers
    assert cache.get(("ids",), 1) is None
    assert cache.nbytes <= 1 << 20


def test_groups_are_the_same_whether_their_arrays_are_kept_or_do_not_fit(root: Path) -> None:
    for i in range(60):
        run = runicorn_lite.init(project="p", name="n", root=root)
        run.log_config({"lr": [0.1, 0.01, 0.001][i % 3], "opt": ["sgd", "adam"][i % 2]})
        run.log({"acc": (i * 7 % 11) / 10}, step=1)
        run.finish()
    settings = Settings(root=root)
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    try:
        Indexer(settings.root, db).scan()
        conn = db.reader()
        by = [parse_group_field("params.lr"), parse_group_field("params.opt")]
        metrics = [parse_metric_aggregate("acc.max", lambda _name: True)]
        kept, tiny = QueryCache(), QueryCache(max_bytes=256)
        f = ExperimentFilter(expression=parse_filter("params.lr != 0.01 or params.opt = 'adam'"))
        answers = [groups(conn, f, by, metrics, None, True, cache, db.generation)
                   for cache in (kept, tiny, kept, tiny)]
        assert all(a == answers[0] for a in answers) and answers[0]["total_runs"] == 50
        assert kept.nbytes > 256 >= tiny.nbytes
    finally:
        db.close()


def test_a_filter_page_sorted_by_a_metric_walks_its_index(root: Path) -> None:
    """``filter=`` matching most runs, sorted by a metric: the page walks the metric's index and
    tests each run against the filter's kept set, never the whole match set built or sorted in
    SQL (19.6 ms at 10k runs, 3.3 s at 1M, after any change of the index, before ``+pk``; 1.75 s
    at 1M with it, SQLite building the clause's set in every statement), and after a change that
    leaves the params the set is not read again."""
    ids_by_i = []
    for i in range(400):
        run = runicorn_lite.init(project="p", name=f"n{i}", root=root)
        run.log_config({"lr": 0.001 if i % 8 else 0.1})
        run.log({"acc": i / 400}, step=1)
        run.finish()
        ids_by_i.append(run.id)
    settings = Settings(root=root)
    settings.ensure_dirs()
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    Indexer(settings.root, db).scan()
    metric = {"acc"}.__contains__
    f = ExperimentFilter(expression=parse_filter("params.lr < 0.01", metric))
    order = Field("metrics", "acc", "max")
    cache = QueryCache()

    def page(conn, generation):
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        try:
            rows, total = list_experiments(conn, root, f, order, True, 1, 5, cache, generation)
        finally:
            conn.set_trace_callback(None)
        walked = [s for s in statements if s.startswith("SELECT") and "FROM metric_summaries" in s]
        plan = [r[3] for s in walked for r in conn.execute(f"EXPLAIN QUERY PLAN {s}").fetchall()]
        return [orjson.loads(orjson.dumps(r))["id"] for r in rows], total, plan, statements

    ids, total, plan, _ = db.read(lambda conn: page(conn, 1))
    assert total == 350 and ids == [ids_by_i[i] for i in (399, 398, 397, 396, 395)]
    assert plan and not any("TEMP B-TREE" in step for step in plan), plan
    assert any("idx_msum_max" in step for step in plan), plan
    # the index changed (a new generation) but not its params: the set is kept, not read again
    again, total, plan, statements = db.read(lambda conn: page(conn, 2))
    db.close()
    assert again == ids and total == 350
    assert not [s for s in statements if "FROM exp_params" in s], statements


def test_a_new_run_is_tested_alone_not_the_whole_table(root: Path) -> None:
    """A new run moves the params' version on: the next filter reads only that run's rows
    (``exp_pk IN``, by the table's key) to bring the kept set up to date, where it read every
    matching row before (about 1.2 s for ``params.lr < 0.01`` at a million runs)."""
    for i in range(300):
        run = runicorn_lite.init(project="p", name=f"n{i}", root=root)
        run.log_config({"lr": 0.001 if i % 8 else 0.1})
        run.log({"acc": i / 300}, step=1)
        run.finish()
    settings = Settings(root=root)
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    indexer = Indexer(settings.root, db)
    indexer.scan()
    cache = QueryCache()
    texts = ["params.lr < 0.01", "not params.lr = 0.1 and metrics.acc.max >= 0.5"]

    def totals(conn, generation):  # type: ignore[no-untyped-def]
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        try:
            found = [list_experiments(conn, root, ExperimentFilter(expression=parse_filter(t)), "created_at", True,
                                      1, 5, cache, generation)[1] for t in texts]
        finally:
            conn.set_trace_callback(None)
        return found, statements

    try:
        first, _ = db.read(lambda conn: totals(conn, db.generation))
        assert first == [262, 131]
        run = runicorn_lite.init(project="p", name="new", root=root)
        run.log_config({"lr": 0.001})
        run.log({"acc": 0.9}, step=1)
        run.finish()
        indexer.scan()
        again, statements = db.read(lambda conn: totals(conn, db.generation))
        assert again == [263, 132]
        set_reads = ("SELECT exp_pk FROM exp_params", "SELECT exp_pk FROM metric_",
                     "SELECT pk FROM experiments WHERE pk IN")
        reads = [s for s in statements if s.startswith(set_reads) or s == "SELECT pk FROM experiments"]
        assert reads and all(" IN (" in s for s in reads), [s for s in reads if " IN (" not in s]
        for statement in reads:  # each run looked up by the table's key
            steps = db.read(lambda c, s=statement: c.execute(f"EXPLAIN QUERY PLAN {s}").fetchall())
            plan = " ".join(r[3] for r in steps)
            assert "PRIMARY KEY" in plan, (statement, plan)
    finally:
        db.close()


def test_the_set_changes_log_says_what_changed_or_that_it_cannot(root: Path) -> None:
    """One row per version: a reader gets the changed runs when every version since its own is
    logged, None when one is missing (pruned, or the gap too long to be worth it)."""
    db = Database(Settings(root=root).index_path, INDEX_MIGRATIONS)
    try:
        top = set_changes.KEEP_VERSIONS + 1000
        with db.write() as conn:
            conn.executemany("INSERT INTO set_changes (tbl, v, exp_pk) VALUES ('exp_params', ?, ?)",
                             [(v, v % 97) for v in range(1, top + 1)])
            conn.execute("UPDATE table_versions SET v = ? WHERE name = 'exp_params'", (top,))
            for pk in (5, 6, 5):
                set_changes.changed(conn, "exp_params", pk)
            set_changes.prune(conn)  # as every PRUNE_EVERY-th move of a version does
        now = top + 3
        oldest = db.read(lambda c: c.execute("SELECT min(v) FROM set_changes WHERE tbl = 'exp_params'").fetchone()[0])
        assert oldest == now - set_changes.KEEP_VERSIONS + 1
        since = db.read
        assert since(lambda c: set_changes.changes_since(c, "exp_params", top, now)) == {5, 6}
        assert since(lambda c: set_changes.changes_since(c, "exp_params", now, now)) == frozenset()
        assert since(lambda c: set_changes.changes_since(c, "exp_params", top - 1, now)) == {5, 6, (top % 97)}
        assert since(lambda c: set_changes.changes_since(c, "exp_params", 1, now)) is None  # pruned, and too far
        far = now - set_changes.MAX_DELTA
        assert since(lambda c: set_changes.changes_since(c, "exp_params", far, now)) is not None
        assert since(lambda c: set_changes.changes_since(c, "exp_params", far - 1, now)) is None
        with db.write() as conn:  # a version moved with no row: a gap, never a wrong answer
            conn.execute("UPDATE table_versions SET v = v + 1 WHERE name = 'exp_params'")
            set_changes.changed(conn, "exp_params", 7)
        assert since(lambda c: set_changes.changes_since(c, "exp_params", now, now + 2)) is None
        assert since(lambda c: set_changes.changes_since(c, "exp_params", now + 1, now + 2)) == {7}
    finally:
        db.close()
