"""``/api/v2/groups`` and ``/api/v2/importance``: which settings won (analysis.md §2, §4)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runicorn_lite.api import access
from runicorn_lite.api.context import context
from runicorn_lite.api.errors import bad_request
from runicorn_lite.api.responses import JSONResponse
from runicorn_lite.api.v2 import LIST_QUERY, filter_error, metric_names, parse_filter, resolve_list_query
from runicorn_lite.db import in_db_thread
from runicorn_lite.http.query import Param, Values
from runicorn_lite.queries import importance as importance_of
from runicorn_lite.queries.filters import Field, FilterError
from runicorn_lite.queries.groups import (
    MAX_GROUP_FIELDS,
    MAX_GROUP_METRICS,
    groups,
    metric_label,
    parse_group_field,
    parse_metric_aggregate,
)

# Every list filter (``filter=`` included), without paging, sorting and ``include``.
LIST_FILTERS = LIST_QUERY.without("page", "per_page", "order_by", "order_desc", "include")
GROUPS_QUERY = LIST_FILTERS.with_(
    Param("group_by", "list", f"1 to {MAX_GROUP_FIELDS} fields: params.<key> or attributes.status|project|name",
          required=True, max_items=MAX_GROUP_FIELDS, expected=f"1 to {MAX_GROUP_FIELDS} comma-separated fields"),
    Param("metrics", "list", f"0 to {MAX_GROUP_METRICS} metric aggregates, name.aggregate (default last)",
          max_items=MAX_GROUP_METRICS, expected=f"at most {MAX_GROUP_METRICS} comma-separated name.aggregate"),
    Param("order_by", "string", "One of the metrics: groups by its mean (groups without it last);"
          " default: by key, null first"),
    Param("order_desc", "boolean", "Descending (with order_by)", default=True),
)
IMPORTANCE_QUERY = LIST_FILTERS.with_(
    Param("metric", "string", "The metric aggregate, name.aggregate (default last)", required=True),
    Param("params", "list", f"Only these param keys (default: every param present in at least 10% of the runs,"
          f" at most {importance_of.MAX_PARAMS})", max_items=importance_of.MAX_PARAMS),
)


def _field(parse: Any, text: str, what: str) -> Field:
    try:
        field: Field = parse(text)
    except FilterError as exc:
        raise bad_request(f"Invalid {what} {text[:300]!r}: {exc}") from None
    return field


async def groups_endpoint(request: Request) -> Response:
    """``GET /api/v2/groups``: the matching runs grouped, each group's count, metric statistics
    (mean ± sample std, min, max, count) and its run ids."""
    start = time.perf_counter()
    ctx = context(request)
    q: Values = GROUPS_QUERY.parse(request.query_params)
    f = access.scoped(request, parse_filter(q))
    group_by = [_field(parse_group_field, text, "group_by field") for text in q["group_by"]]
    if len(set(group_by)) != len(group_by):
        raise bad_request("Parameter 'group_by' names a field twice")
    metric_texts: list[str] = q["metrics"] or []
    order_text: str | None = q["order_by"]
    if order_text is not None and order_text not in metric_texts:
        given = ", ".join(metric_texts) or "none given"
        raise bad_request(f"Parameter 'order_by' must be one of the metrics ({given})")

    generation = ctx.index.generation  # read before the snapshot: a kept answer is never newer
    key = ("groups", *sorted(request.query_params.multi_items()))

    def query(conn: sqlite3.Connection) -> dict[str, Any]:
        kept: dict[str, Any] | None = ctx.counts.get(key, generation)
        if kept is not None:
            return dict(kept)
        resolved, _order = resolve_list_query(conn, f, q["filter"], "created_at", ctx.counts, generation)
        is_metric = metric_names(conn, ctx.counts, generation)
        metrics = [_field(lambda t: parse_metric_aggregate(t, is_metric), t, "metric") for t in metric_texts]
        labels = [metric_label(m) for m in metrics]
        if len(set(labels)) != len(labels):
            raise bad_request("Parameter 'metrics' names an aggregate twice")
        order = metrics[metric_texts.index(order_text)] if order_text is not None else None
        answer = groups(conn, resolved, group_by, metrics, order, q["order_desc"], ctx.counts, generation)
        ctx.counts.put(key, generation, answer)
        return dict(answer)

    try:
        body = await in_db_thread(ctx.index.read, query)
    except FilterError as exc:
        raise filter_error(exc) from None
    body["query_time_ms"] = round((time.perf_counter() - start) * 1000, 3)
    return JSONResponse(body)


async def importance_endpoint(request: Request) -> Response:
    """``GET /api/v2/importance``: how much of a metric's variance each param explains (a random
    forest's permutation importance) and its Spearman correlation."""
    start = time.perf_counter()
    ctx = context(request)
    q: Values = IMPORTANCE_QUERY.parse(request.query_params)
    f = access.scoped(request, parse_filter(q))
    metric_text: str = q["metric"]
    keys: list[str] | None = q["params"]

    generation = ctx.index.generation
    key = ("importance", *sorted(request.query_params.multi_items()))

    def query(conn: sqlite3.Connection) -> dict[str, Any]:
        kept: dict[str, Any] | None = ctx.counts.get(key, generation)
        if kept is not None:  # the same question of an unchanged index: the same answer (seeded)
            return dict(kept)
        resolved, _order = resolve_list_query(conn, f, q["filter"], "created_at", ctx.counts, generation)
        metric = _field(lambda t: parse_metric_aggregate(t, metric_names(conn, ctx.counts, generation)), metric_text,
                        "metric")
        answer = importance_of.importance(conn, resolved, metric, keys, ctx.counts)
        ctx.counts.put(key, generation, answer)
        return dict(answer)

    try:
        body = await in_db_thread(ctx.index.read, query)
    except FilterError as exc:
        raise filter_error(exc) from None
    except importance_of.TooFewRuns as exc:
        raise bad_request(str(exc)) from None
    body["query_time_ms"] = round((time.perf_counter() - start) * 1000, 3)
    return JSONResponse(body)


def routes() -> list[Route]:
    return [
        Route("/api/v2/groups", groups_endpoint, methods=["GET"]),
        Route("/api/v2/importance", importance_endpoint, methods=["GET"]),
    ]
