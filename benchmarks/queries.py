"""The benchmark's query set: the rows of the V2 document's performance table and a few more.

Each query has a V2 form (server-side) and a V1 form (``GET /api/runs`` + the client-side
filter/sort/page of the V2 document's migration guide). Parameters are picked from the corpus
itself (its most common project, a run in the middle), so any corpus works.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

PER_PAGE = 50


@dataclass
class Params:
    project: str
    run_id: str
    created_after: float
    search: str = "resnet"
    best_min: float = 0.9


def pick_params(client: httpx.Client) -> Params:
    """Choose query parameters from what the server holds (via V2, untimed), the same way at any
    corpus size: the most common project among the newest runs, a run in the middle of them, and
    ``created_after`` a quarter into the corpus's time span (about 75% of runs are newer)."""
    lst = "/api/v2/experiments"
    newest = client.get(lst, params={"per_page": 1000}).json()["experiments"]
    oldest = client.get(lst, params={"per_page": 1, "order_desc": "false"}).json()["experiments"]
    projects: Counter[str] = Counter(r["project"] for r in newest)
    mid = newest[len(newest) // 2]
    lo = oldest[0]["created_at"] if oldest else 0.0
    hi = newest[0]["created_at"] if newest else 0.0
    return Params(project=projects.most_common(1)[0][0], run_id=mid["id"], created_after=lo + (hi - lo) / 4)


def project_of(r: dict[str, Any]) -> str:
    """A V1 row's project (the real Runicorn's rows carry only ``path``)."""
    return r.get("project") or (r.get("path") or "").split("/", 1)[0]


def _desc_nulls_last(key: str) -> Callable[[dict[str, Any]], tuple]:
    return lambda r: (r.get(key) is None, -(r.get(key) or 0.0), r["id"])


def _v1_list(client: httpx.Client, keep: Callable[[dict[str, Any]], bool] | None = None,
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
    v1: Callable[[httpx.Client], object] | None
    is_list: bool = True  # a list/filter/sort/search query (the 3x-of-health target applies)


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

    def v2_get(c: httpx.Client, path: str, params: dict[str, Any]) -> object:
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
        Query("Detail", exp, {}, lambda c: v2_get(c, f"/api/runs/{p.run_id}", {}), is_list=False),
        Query("Metrics (all points)", exp + "/metrics/fast", {},
              lambda c: v2_get(c, f"/api/runs/{p.run_id}/metrics_step", {}), is_list=False),
        Query("Metrics (downsample=20)", exp + "/metrics/fast", {"downsample": 20},
              lambda c: v2_get(c, f"/api/runs/{p.run_id}/metrics_step", {"downsample": 20}), is_list=False),
    ]


def time_v2(client: httpx.Client, path: str, params: dict[str, Any], reps: int, warmup: int) -> list[float]:
    """Round trips of one V2 request (status checked, body parsed)."""
    def call() -> None:
        r = client.get(path, params=params)
        if r.status_code != 200:
            raise RuntimeError(f"{path} {params} -> {r.status_code} {r.text[:200]}")
        orjson.loads(r.content)

    for _ in range(warmup):
        call()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out
