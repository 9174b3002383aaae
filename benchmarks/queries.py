"""The benchmark's query set: the rows of the V2 document's performance table, the params and
metric-summary queries of extensions.md §3–4, and a few more.

Each query has a V2 form (server-side) and, where V1 can answer it, a V1 form (``GET /api/runs``
+ the client-side filter/sort/page of the V2 document's migration guide). Parameters are picked
from the corpus itself (its most common project, a run in the middle), so any corpus works.

Queries are timed with either client (httpx or ``common.RawClient``), warm (the same request
repeated on an unchanged index: the server keeps totals and pages per index generation) or right
after a change of the index (``IndexChanger``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

PER_PAGE = 50
# The 3-clause expression of the targets; the generator's configs give every value here
# (lr in 1e-4..1e-2, optim.name one of adamw/sgd/adam/lamb, accuracy ceilings 0.5..0.99).
FILTER_3 = "params.lr < 0.01 and params.optim.name = 'adam' and metrics.accuracy.max > 0.5"
# "Runs with lr < 0.01, best accuracy first": the question the MLflow comparison asks.
FILTER_LR = "params.lr < 0.01"
SORT_ACC_MAX = "metrics.accuracy.max"


class Client(Protocol):
    """What the benchmarks ask through: an httpx.Client or a common.RawClient."""

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any: ...

    def post(self, path: str, json: Any = None) -> Any: ...


@dataclass
class Params:
    project: str
    run_id: str
    created_after: float
    bystander: str = ""  # the oldest run: soft-deleted and restored by IndexChanger
    search: str = "resnet"
    best_min: float = 0.9


def pick_params(client: Client) -> Params:
    """Choose query parameters from what the server holds (via V2, untimed), the same way at any
    corpus size: the most common project among the newest runs, a run in the middle of them,
    ``created_after`` a quarter into the corpus's time span (about 75% of runs are newer), and
    the oldest run as the bystander whose soft-delete changes the index."""
    lst = "/api/v2/experiments"
    newest = client.get(lst, params={"per_page": 1000}).json()["experiments"]
    oldest = client.get(lst, params={"per_page": 1, "order_desc": "false"}).json()["experiments"]
    projects: Counter[str] = Counter(r["project"] for r in newest)
    mid = newest[len(newest) // 2]
    lo = oldest[0]["created_at"] if oldest else 0.0
    hi = newest[0]["created_at"] if newest else 0.0
    return Params(project=projects.most_common(1)[0][0], run_id=mid["id"], created_after=lo + (hi - lo) / 4,
                  bystander=oldest[0]["id"] if oldest else "")


def project_of(r: dict[str, Any]) -> str:
    """A V1 row's project (the real Runicorn's rows carry only ``path``)."""
    return r.get("project") or (r.get("path") or "").split("/", 1)[0]


def _desc_nulls_last(key: str) -> Callable[[dict[str, Any]], tuple]:
    return lambda r: (r.get(key) is None, -(r.get(key) or 0.0), r["id"])


def _v1_list(client: Client, keep: Callable[[dict[str, Any]], bool] | None = None,
             sort: str = "created", page: int = 1) -> list[dict[str, Any]]:
    runs = orjson.loads(client.get("/api/runs").content)
    if keep is not None:
        runs = [r for r in runs if keep(r)]
    if sort == "metric":
        runs.sort(key=_desc_nulls_last("best_metric_value"))
    else:
        runs.sort(key=lambda r: (-(r.get("created_time") or 0.0), r["id"]))
    return runs[(page - 1) * PER_PAGE: page * PER_PAGE]


def _v1_search(text: str) -> Callable[[dict[str, Any]], bool]:
    words = text.lower().split()

    def keep(r: dict[str, Any]) -> bool:
        hay = " ".join(str(r.get(k) or "") for k in ("id", "project", "name", "path", "alias")).lower()
        hay += " " + " ".join(r.get("tags") or []).lower()
        return all(w in hay for w in words)

    return keep


@dataclass
class Query:
    name: str
    v2_path: str
    v2_params: dict[str, Any]
    v1: Callable[[Client], object] | None
    is_list: bool = True  # a list/filter/sort/search page (the 10k -> 100k growth target applies)


def query_set(p: Params) -> list[Query]:
    """The table rows, in order."""
    lst = "/api/v2/experiments"
    exp = f"/api/v2/experiments/{p.run_id}"
    complex_params = {"project": p.project, "status": "finished,failed", "created_after": p.created_after,
                      "best_metric_min": p.best_min, "order_by": "best_metric_value", "order_desc": "true",
                      "page": 1, "per_page": PER_PAGE}

    def complex_keep(r: dict[str, Any]) -> bool:
        return (project_of(r) == p.project and r["status"] in ("finished", "failed")
                and (r.get("created_time") or 0) >= p.created_after
                and r.get("best_metric_value") is not None and r["best_metric_value"] >= p.best_min)

    def v2_get(c: Client, path: str, params: dict[str, Any]) -> object:
        return orjson.loads(c.get(path, params=params).content)

    return [
        Query("List all (page 1 of 50)", lst, {"page": 1, "per_page": PER_PAGE}, _v1_list),
        Query("Filter by project", lst, {"project": p.project, "per_page": PER_PAGE},
              lambda c: _v1_list(c, lambda r: project_of(r) == p.project)),
        Query("Filter by status", lst, {"status": "finished", "per_page": PER_PAGE},
              lambda c: _v1_list(c, lambda r: r["status"] == "finished")),
        Query("Sort by metric", lst, {"order_by": "best_metric_value", "order_desc": "true", "per_page": PER_PAGE},
              lambda c: _v1_list(c, sort="metric")),
        Query("Complex query (4 filters)", lst, complex_params,
              lambda c: _v1_list(c, complex_keep, sort="metric")),
        Query("Pagination (page 2)", lst, {"page": 2, "per_page": PER_PAGE}, lambda c: _v1_list(c, page=2)),
        Query(f"Search '{p.search}'", lst, {"search": p.search, "per_page": PER_PAGE},
              lambda c: _v1_list(c, _v1_search(p.search))),
        # Params and metric summaries (extensions.md §3-4): V1 rows carry neither.
        Query("Sort by param `params.lr`", lst, {"order_by": "params.lr", "per_page": PER_PAGE}, None),
        Query(f"Sort by `{SORT_ACC_MAX}`", lst, {"order_by": SORT_ACC_MAX, "per_page": PER_PAGE}, None),
        Query("`filter=` of 3 clauses", lst, {"filter": FILTER_3, "per_page": PER_PAGE}, None),
        Query(f"`filter={FILTER_LR}` + sort by `{SORT_ACC_MAX}`", lst,
              {"filter": FILTER_LR, "order_by": SORT_ACC_MAX, "per_page": PER_PAGE}, None),
        Query("List + `include=params,metrics`", lst, {"include": "params,metrics", "per_page": PER_PAGE}, None),
        Query("Detail", exp, {}, lambda c: v2_get(c, f"/api/runs/{p.run_id}", {}), is_list=False),
        Query("Metrics (all points)", exp + "/metrics/fast", {},
              lambda c: v2_get(c, f"/api/runs/{p.run_id}/metrics_step", {}), is_list=False),
        Query("Metrics (downsample=20)", exp + "/metrics/fast", {"downsample": 20},
              lambda c: v2_get(c, f"/api/runs/{p.run_id}/metrics_step", {"downsample": 20}), is_list=False),
    ]


class IndexChanger:
    """Changes the index between two requests: soft-deletes, then restores, one bystander run
    (in turn) through V2 ``batch-delete``/``batch-restore``. Each is a committed index write, so
    the index generation moves on and nothing the server cached for the previous one (totals,
    pages, plans) is valid for the next request; SQLite's page cache of the reading connections
    is dropped too. ``restore`` leaves the corpus as it was."""

    def __init__(self, client: Client, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.deleted = False

    def __call__(self) -> None:
        path = "/api/v2/experiments/batch-restore" if self.deleted else "/api/v2/experiments/batch-delete"
        r = self.client.post(path, json={"exp_ids": [self.run_id]})
        if r.status_code != 200:
            raise RuntimeError(f"{path} -> {r.status_code} {r.text[:200]}")
        self.deleted = not self.deleted

    def restore(self) -> None:
        if self.deleted:
            self()


def check_answer(r: Any, path: str, params: dict[str, Any]) -> Any:
    """The parsed body of a 200 answer (anything else is a broken benchmark)."""
    if r.status_code != 200:
        raise RuntimeError(f"{path} {params} -> {r.status_code} {r.text[:200]}")
    return orjson.loads(r.content)


def time_v2(client: Client, path: str, params: dict[str, Any], reps: int, warmup: int,
            before: Callable[[], object] | None = None) -> list[float]:
    """Round trips (request sent → whole body read) of one V2 request; the status is checked and
    the body parsed after the clock stops (parsing is the client's cost, not the server's).
    ``before`` runs, untimed, before each call (an ``IndexChanger``)."""
    for _ in range(warmup):
        check_answer(client.get(path, params=params), path, params)
    out = []
    for _ in range(reps):
        if before is not None:
            before()
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        out.append(time.perf_counter() - t0)
        check_answer(r, path, params)
    return out


def round_robin(client: Client, targets: list[tuple[str, dict[str, Any]]], reps: int, warmup: int,
                before: Callable[[], object] | None = None) -> list[list[float]]:
    """``reps`` rounds of one call of each target in turn (slow drift of the machine spreads
    evenly over them); samples per target in seconds."""
    for path, qp in targets:
        time_v2(client, path, qp, 0, warmup)
    samples: list[list[float]] = [[] for _ in targets]
    for _ in range(reps):
        for i, (path, qp) in enumerate(targets):
            samples[i].extend(time_v2(client, path, qp, 1, 0, before))
    return samples
