"""The list query's two shapes (planner's choice, or walking the sort index) give the same rows."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import runicorn_lite
from runicorn_lite.db import Database
from runicorn_lite.db.schema import INDEX_MIGRATIONS, SORT_COLUMNS
from runicorn_lite.ingest import Indexer
from runicorn_lite.queries.experiments import (
    EXPERIMENT_COLUMNS,
    ExperimentFilter,
    QueryCache,
    list_experiments,
    order_clause,
    where_clause,
)
from runicorn_lite.settings import Settings


def test_walking_the_sort_index_returns_the_same_rows(root: Path) -> None:
    rng = random.Random(3)
    for i in range(80):
        tags = rng.sample(["a", "b", "c"], i % 3)
        run = runicorn_lite.init(project=f"p{i % 4}", name=f"n{i % 3}", root=root, tags=tags)
        if i % 5:
            run.set_primary_metric("acc", "max")
            run.log({"acc": round(rng.random(), 2)}, step=1)  # ties on purpose
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
        ]
        for f, order_by, desc in itertools.product(filters, SORT_COLUMNS, (True, False)):
            plain, params = where_clause(f)
            walk, walk_params = where_clause(f, walk=SORT_COLUMNS[order_by])
            order = order_clause(order_by, desc)
            select = f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE"
            rows = conn.execute(f"{select} {plain} ORDER BY {order}", params).fetchall()
            walked = conn.execute(f"{select} {walk} ORDER BY {order}", walk_params).fetchall()
            assert walked == rows, (f, order_by, desc)
            # and the paged function, whichever shape it picks, pages through the same rows
            cache = QueryCache()
            paged = []
            for page in range(1, 20):
                got, total = list_experiments(conn, root, f, order_by, desc, page, 7, cache, 0)
                paged += [g["id"] for g in got]
                if page * 7 >= total:
                    break
            assert paged == [r[0] for r in rows] and total == len(rows)
    finally:
        db.close()


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
                paged += [g["id"] for g in got]
            assert paged == expected
            # past the end: empty page, right total
            assert list_experiments(conn, root, f, order_by, desc, 99, 4, cache, 0) == ([], 20)
    finally:
        db.close()
