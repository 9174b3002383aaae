"""A filter's kept sets of runs brought up to date from the runs each table version changed
(db/set_changes.py), not read again whole: after a new run, a live run's new points, a new
config and a removed run, every answer is the reference's; points that move no run in or out
leave the very same sets. A gap in the log means the sets are read again, still right."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import close_app, ids, open_app
from starlette.applications import Starlette

import runicorn_lite
from runicorn_lite import rundir

FILTERS = {
    "params.lr < 0.01": lambda r: isinstance(r["lr"], float) and r["lr"] < 0.01,
    "metrics.acc.max > 0.5": lambda r: bool(r["acc"]) and max(r["acc"]) > 0.5,
    "not params.lr = 0.1": lambda r: r["lr"] != 0.1,
    "params.lr < 0.01 or metrics.acc.last >= 0.7": lambda r: (isinstance(r["lr"], float) and r["lr"] < 0.01)
    or (bool(r["acc"]) and r["acc"][-1] >= 0.7),
    "params.opt = 'adam' and not metrics.acc.max < 0.3": lambda r: r["opt"] == "adam"
    and not (bool(r["acc"]) and max(r["acc"]) < 0.3),
    "params.missing is null and metrics.acc.count >= 2": lambda r: len(r["acc"]) >= 2,
}


class Model:
    """What each run holds, as the reference sees it, and the SDK's open runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs: dict[str, dict[str, Any]] = {}
        self.open: dict[str, Any] = {}

    def add(self, i: int, lr: float, opt: str, acc: list[float], finish: bool = True) -> str:
        run = runicorn_lite.init(project="p", name=f"n{i}", root=self.root, run_id=f"20240101_000000_{i:06x}")
        run.log_config({"lr": lr, "opt": opt})
        for step, value in enumerate(acc, start=1):
            run.log({"acc": value}, step=step)
        if finish:
            run.finish()
        else:
            run.flush()
            self.open[run.id] = run
        self.runs[run.id] = {"lr": lr, "opt": opt, "acc": list(acc), "dir": run.run_dir}
        return str(run.id)

    def expected(self, text: str) -> set[str]:
        return {run_id for run_id, r in self.runs.items() if FILTERS[text](r)}


@pytest.fixture
def world(tmp_path: Path, backend: str) -> Iterator[tuple[Model, Starlette]]:
    model = Model(tmp_path / "data")
    for i in range(40):
        model.add(i, [0.1, 0.01, 0.001, 0.0001][i % 4], ["sgd", "adam"][i % 3 == 0],
                  [round((i * 7 + s * 3) % 10 / 10, 2) for s in range(1 + i % 3)], finish=i % 10 != 0)
    app = open_app(model.root)
    yield model, app
    for run in model.open.values():
        run.finish()
    close_app(app)


async def check(client: Any, model: Model) -> None:
    for text in FILTERS:
        response = await client.get("/api/v2/experiments", params={"filter": text, "per_page": 200})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(ids(body)) == model.expected(text), text
        assert body["total"] == len(model.expected(text)), text


def kept_sets(app: Starlette) -> dict[tuple[Any, ...], tuple[Any, frozenset[int]]]:
    """The expression sets the server keeps, by key (what the next request starts from)."""
    cache = app.state.ctx.counts
    return {key: entry for key in list(cache._sets) if key[0] == "expression-set"
            and (entry := cache.set_entry(key)) is not None}


def scan(app: Starlette) -> None:
    app.state.ctx.indexer.scan()


async def test_sets_are_brought_up_from_the_changed_runs(world, client_for) -> None:  # type: ignore[no-untyped-def]
    model, app = world
    client = client_for(app)
    await check(client, model)
    before = kept_sets(app)
    assert len(before) == len(FILTERS)

    # a live run's new points that leave every set as it was: the same set objects, re-keyed
    live = next(iter(model.open))
    model.open[live].log({"acc": model.runs[live]["acc"][-1]}, step=len(model.runs[live]["acc"]) + 1)
    model.open[live].flush()
    model.runs[live]["acc"].append(model.runs[live]["acc"][-1])
    scan(app)
    await check(client, model)
    after = kept_sets(app)
    for key, (version, runs) in after.items():
        if "agg='count'" not in key[1]:  # the count moved, so that one set may have changed
            assert runs is before[key][1], key  # brought up, not read again
            assert version != before[key][0] or "metrics" not in key[1], key

    # a new run that joins some sets, points that move a live run in and out of others,
    # a config rewritten, a run removed
    model.add(100, 0.001, "adam", [0.9, 0.95])
    other = list(model.open)[1]
    model.open[other].log({"acc": 0.99}, step=len(model.runs[other]["acc"]) + 1)
    model.open[other].flush()
    model.runs[other]["acc"].append(0.99)
    rewritten = next(run_id for run_id, r in model.runs.items() if r["lr"] == 0.1 and run_id not in model.open)
    rundir.update_config(model.runs[rewritten]["dir"], {"args": {"lr": 0.0001, "opt": "adam"}})
    model.runs[rewritten].update(lr=0.0001, opt="adam")
    removed = next(run_id for run_id, r in model.runs.items() if r["lr"] == 0.001 and run_id not in model.open)
    shutil.rmtree(model.runs.pop(removed)["dir"])
    scan(app)
    await check(client, model)

    # a gap in the log (rows pruned): the sets are read again, and still right
    def prune() -> None:
        with app.state.ctx.index.write() as conn:
            conn.execute("DELETE FROM set_changes")

    app.state.ctx.store.run(prune)
    model.add(101, 0.0001, "sgd", [0.2])
    scan(app)
    await check(client, model)


@pytest.fixture
def late_members(tmp_path: Path, backend: str) -> Iterator[Starlette]:
    """300 runs: the filter's members are the 150 oldest, with the lowest accuracy, so a walk in
    the list's order (newest first, or best first) meets 150 other runs before the first member."""
    root = tmp_path / "data"
    for i in range(300):
        run = runicorn_lite.init(project="p", name=f"n{i}", root=root, run_id=f"20240101_000000_{i:06x}")
        run.log_config({"lr": 0.001 if i < 150 else 0.1})
        run.log({"acc": i / 300}, step=1)
        run.finish()
    app = open_app(root)
    yield app
    close_app(app)


@pytest.mark.parametrize("order", [{}, {"order_by": "metrics.acc.max"}])
async def test_a_walk_past_many_other_runs_pages_as_the_list_does(late_members, client_for, order) -> None:  # type: ignore[no-untyped-def]
    """Pages of a filter whose members come late in the list's order: the walk of the sort index
    goes on past its first window (PostgreSQL reads it in growing windows) and gives the pages
    the unfiltered list gives, less the others."""
    client = client_for(late_members)
    listed = await client.get("/api/v2/experiments", params={"per_page": 1000, "include": "params", **order})
    everything = listed.json()
    expected = [e["id"] for e in everything["experiments"] if e["params"]["lr"] < 0.01]
    assert len(expected) == 150 and len(everything["experiments"]) == 300
    got = []
    for page in range(1, 17):
        body = (await client.get("/api/v2/experiments",
                                 params={"filter": "params.lr < 0.01", "per_page": 10, "page": page, **order})).json()
        assert body["total"] == 150
        got.extend(ids(body))
    assert got == expected
