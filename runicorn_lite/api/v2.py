"""``/api/v2``: experiment queries answered from the index."""

from __future__ import annotations

import dataclasses
import enum
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runicorn_lite import rundir
from runicorn_lite.api import access
from runicorn_lite.api.context import context
from runicorn_lite.api.errors import ApiError, bad_request, not_found
from runicorn_lite.api.params import check_text, json_object
from runicorn_lite.api.responses import (
    JSONResponse,
    Ticket,
    batch_answer,
    rows_response,
)
from runicorn_lite.api.v2_runs import patch_experiment
from runicorn_lite.db.schema import SORT_COLUMNS
from runicorn_lite.http.query import Param, Query, Values
from runicorn_lite.queries import analytics, bands, filters
from runicorn_lite.queries.cache import QueryCache
from runicorn_lite.queries.compare import MAX_COMPARE, UnknownExperiment, compare
from runicorn_lite.queries.detail import experiment_detail as detail_of
from runicorn_lite.queries.experiments import (
    ExperimentFilter,
    Order,
    list_experiments,
)
from runicorn_lite.queries.filters import AGGREGATES, FilterError
from runicorn_lite.queries.groups import MAX_GROUP_FIELDS, parse_group_field
from runicorn_lite.queries.metrics import MAX_DOWNSAMPLE, downsampled_table, load_series
from runicorn_lite.queries.steptable import StepTable, table_of

MAX_PER_PAGE = 1000
MAX_PAGE = 1_000_000
MAX_BATCH = 1000
INCLUDES = ("params", "metrics")
# Points per (metric, run) series of a comparison unless ``downsample`` says otherwise.
DEFAULT_COMPARE_POINTS = 1000
# Words of one search: each is a term of one SQL expression, and SQLite refuses expressions
# past a depth of 1000 (495 two-letter words did); more words than this narrow nothing anyway.
MAX_SEARCH_WORDS = 100
_STEP_RANGE = re.compile(r"^\s*(-?\d+)?\s*:\s*(-?\d+)?\s*$")
_INT64 = (-(1 << 63), (1 << 63) - 1)


# ---- query parameters, one declaration per endpoint (the parser and /openapi.json both read it) ----

FILTERS = Query.of(
    Param("project", "string", "Exact project"),
    Param("status", "list", "Any of these statuses", enum=rundir.STATUSES),
    Param("created_after", "number", "Unix seconds, inclusive"),
    Param("created_before", "number", "Unix seconds, inclusive"),
)
LIST_QUERY = FILTERS.with_(
    Param("name", "string", "Exact experiment name"),
    Param("tags", "list", "Experiments with any of these tags", max_items=100),
    Param("search", "string", f"Case-insensitive substrings (every word must match; at most {MAX_SEARCH_WORDS} words)"),
    Param("best_metric_min", "number", "Minimum best metric value"),
    Param("best_metric_max", "number", "Maximum best metric value"),
    Param("include_deleted", "boolean", "Include soft-deleted experiments; 'only' lists the recycle bin alone",
          default=False, enum=("only",)),
    Param("filter", "string", "Expression over params, metric summaries, attributes and tags (and, or, not,"
          " parentheses, in, like, is null), e.g. params.lr < 0.01 and (metrics.acc.max > 0.9 or tags = 'best')",
          raw=True, max_length=filters.MAX_FILTER_LENGTH),
    Param("include", "list", "Add params and/or metrics to each row", enum=INCLUDES, max_items=len(INCLUDES)),
    Param("page", "integer", "1-based page", default=1, minimum=1, maximum=MAX_PAGE),
    Param("per_page", "integer", "Page size", default=50, minimum=1, maximum=MAX_PER_PAGE),
    # params.<key> and metrics.<name>.<aggregate> are resolved against the index, in
    # resolve_list_query.
    Param("order_by", "string", "Sort field: a column, params.<key> or metrics.<name>.<last|min|max|first|count>"
          " (NULLs and runs lacking the field last, ties by id)", default="created_at", enum=tuple(SORT_COLUMNS),
          pattern=r"^(params|metrics)\..+",
          expected=f"one of {', '.join(SORT_COLUMNS)}, params.<key> or metrics.<name>.<aggregate>"
                   f" (aggregates: {', '.join(AGGREGATES)})"),
    Param("order_desc", "boolean", "Descending", default=True),
)
ANALYTICS_QUERY = FILTERS
_METRIC_NAMES = Param("metric_names", "list", "Only these metrics", max_items=1000)
_STEP_RANGE_PARAM = Param("step_range", "string", "min:max inclusive; either side may be empty",
                          pattern=_STEP_RANGE.pattern)
METRICS_QUERY = Query.of(
    _METRIC_NAMES,
    _STEP_RANGE_PARAM,
    Param("downsample", "integer", "At most N rows (M4 per metric: first, last, lowest, highest)", minimum=2,
          maximum=MAX_DOWNSAMPLE),
)
COMPARE_QUERY = Query.of(
    Param("ids", "list", "The experiments, in the order of the answer", required=True, max_items=MAX_COMPARE,
          unique=False, expected=f"1 to {MAX_COMPARE} comma-separated experiment ids"),
    _METRIC_NAMES,
    _STEP_RANGE_PARAM,
    Param("downsample", "integer", "At most N points per (metric, run) series", default=DEFAULT_COMPARE_POINTS,
          minimum=2, maximum=MAX_DOWNSAMPLE),
    Param("group_by", "list", f"Also each group's mean ± std per step: 1 to {MAX_GROUP_FIELDS} fields,"
          " params.<key> or attributes.status|project|name", max_items=MAX_GROUP_FIELDS,
          expected=f"1 to {MAX_GROUP_FIELDS} comma-separated fields"),
)
NO_QUERY = Query.of()


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def parse_filter(q: Values, *, with_list_only: bool = True) -> ExperimentFilter:
    """The list filters of parsed query values (LIST_QUERY's, or ANALYTICS_QUERY's)."""
    statuses = tuple(q["status"]) if q["status"] else None
    if with_list_only:
        search = q["search"]
        if search is not None and len(set(search.split())) > MAX_SEARCH_WORDS:
            raise bad_request(
                f"Parameter 'search' has {len(set(search.split()))} words; at most {MAX_SEARCH_WORDS} are allowed"
            )
        return ExperimentFilter(
            project=q["project"],
            name=q["name"],
            statuses=statuses,
            tags=tuple(q["tags"]) if q["tags"] else None,
            search=search,
            created_after=q["created_after"],
            created_before=q["created_before"],
            best_metric_min=q["best_metric_min"],
            best_metric_max=q["best_metric_max"],
            include_deleted=q["include_deleted"],
        )
    return ExperimentFilter(
        project=q["project"],
        statuses=statuses,
        created_after=q["created_after"],
        created_before=q["created_before"],
    )


def metric_names(conn: sqlite3.Connection, cache: QueryCache | None = None, generation: int = 0) -> filters.MetricNames:
    """Whether a name is a metric the index holds (what a dotted bare name in a filter or sort
    is read against); with ``cache``, each name is looked up once per index generation (a round
    trip on PostgreSQL)."""

    def is_metric(name: str) -> bool:
        known: bool | None = cache.get(("is-metric", name), generation) if cache is not None else None
        if known is None:
            known = conn.execute(
                "SELECT 1 FROM metric_summaries WHERE metric = ? LIMIT 1", (name,)).fetchone() is not None
            if cache is not None:
                cache.put(("is-metric", name), generation, known)
        return known

    return is_metric


def resolve_list_query(
    conn: sqlite3.Connection, f: ExperimentFilter, filter_text: str | None, order_by: str,
    cache: QueryCache | None = None, generation: int = 0,
) -> tuple[ExperimentFilter, Order]:
    """Parse ``filter=`` and a params/metrics ``order_by`` (a dotted bare metric name is read
    against the metric names the index holds; with ``cache``, once per index generation).
    FilterError → 400 at the HTTP boundary."""
    is_metric = metric_names(conn, cache, generation)

    if filter_text is not None:
        f = dataclasses.replace(f, expression=filters.parse_filter(filter_text, is_metric))
    if order_by in SORT_COLUMNS:
        return f, order_by
    try:
        field = filters.parse_sort_field(order_by, is_metric)
    except FilterError as exc:
        raise _OrderError(exc.message, exc.position) from None
    assert field is not None
    return f, field


class _OrderError(FilterError):
    """A malformed params/metrics ``order_by``."""


def filter_error(exc: FilterError) -> ApiError:
    """400 for a malformed ``filter`` or ``order_by``: what is wrong, and where (the message
    always ends with "at position N", N counted from 0)."""
    name = "order_by" if isinstance(exc, _OrderError) else "filter"
    return bad_request(f"Invalid {name}: {exc}")


async def list_experiments_endpoint(request: Request) -> Response:
    start = time.perf_counter()
    ctx = context(request)
    q = LIST_QUERY.parse(request.query_params)
    f = access.scoped(request, parse_filter(q))
    filter_text: str | None = q["filter"]
    page: int = q["page"]
    per_page: int = q["per_page"]
    order_by: str = q["order_by"]
    desc: bool = q["order_desc"]
    include = frozenset(q["include"] or ())
    generation = ctx.index.generation  # read before the snapshot: a cached total is never newer

    def query(conn: sqlite3.Connection) -> tuple[list[orjson.Fragment], int]:
        resolved, order = resolve_list_query(conn, f, filter_text, order_by, ctx.counts, generation)
        return list_experiments(conn, ctx.root, resolved, order, desc, page, per_page, ctx.counts, generation, include)

    try:
        experiments, total = await ctx.store.read(query)
    except FilterError as exc:
        raise filter_error(exc) from None
    return JSONResponse(
        {
            "experiments": experiments,
            "total": total,
            "page": page,
            "per_page": per_page,
            "has_next": page * per_page < total,
            "has_prev": page > 1,
            "query_time_ms": _ms(start),
        }
    )


def _check_id(exp_id: str) -> str:
    if not rundir.is_valid_run_id(exp_id):
        raise not_found(f"Experiment {exp_id[:200]} not found")
    return exp_id


async def experiment_detail(request: Request) -> Response:
    start = time.perf_counter()
    ctx = context(request)
    NO_QUERY.parse(request.query_params)
    exp_id = _check_id(request.path_params["exp_id"])
    await access.require_visible(request, exp_id)

    def detail() -> dict[str, Any] | None:
        found = ctx.index.read(lambda conn: detail_of(conn, ctx.root, exp_id))
        if found is not None:  # the files are read after the index, on the same thread
            run_dir = Path(found["experiment"]["run_dir"])
            found["file_count"] = rundir.count_files(run_dir)
            found["summary"] = rundir.read_json_object(run_dir / rundir.SUMMARY)
        return found

    body = await ctx.store.call(detail)
    if body is None:
        raise not_found(f"Experiment {exp_id} not found")
    body["query_time_ms"] = _ms(start)
    return JSONResponse(body)


async def experiment_resource(request: Request) -> Response:
    """One route for the detail and its PATCH, so that a 405 there lists both in ``Allow``."""
    if request.method == "PATCH":
        return await patch_experiment(request)
    return await experiment_detail(request)


def parse_step_range(raw: str | None) -> tuple[int | None, int | None] | None:
    """``min:max`` inclusive, either side may be empty (``100:``); None when absent."""
    if raw is None:
        return None
    match = _STEP_RANGE.match(raw)
    if match is None:
        raise bad_request(f"Invalid step_range format, use 'min:max' (integers, either may be empty); got '{raw}'")
    lo = int(match.group(1)) if match.group(1) is not None else None
    hi = int(match.group(2)) if match.group(2) is not None else None
    for v in (lo, hi):
        if v is not None and not _INT64[0] <= v <= _INT64[1]:
            raise bad_request("Invalid step_range: steps must fit in 64 bits")
    if lo is not None and hi is not None and lo > hi:
        raise bad_request(f"Invalid step_range: min ({lo}) is greater than max ({hi})")
    return lo, hi


async def metrics_fast(request: Request) -> Response:
    start = time.perf_counter()
    ctx = context(request)
    q = METRICS_QUERY.parse(request.query_params)
    exp_id = _check_id(request.path_params["exp_id"])
    await access.require_visible(request, exp_id)
    names: list[str] | None = q["metric_names"]
    step_range = parse_step_range(q["step_range"])
    downsample: int | None = q["downsample"]
    lo, hi = step_range or (None, None)

    def query(conn: sqlite3.Connection, huge_ok: bool) -> _Points | _NoPoints:
        found = conn.execute("SELECT pk, n_points FROM experiments WHERE id = ?", (exp_id,)).fetchone()
        if found is None:
            return _NoPoints.NOT_FOUND
        if downsample is None:
            if not huge_ok and found[1] > ctx.store.big_answers.points:
                return _NoPoints.HUGE
            table = table_of(load_series(conn, found[0], names, lo, hi))
            return _Points(table, None, len(table))
        wanted = names
        if wanted is None:
            wanted = [r[0] for r in conn.execute(
                "SELECT metric FROM metric_summaries WHERE exp_pk = ? ORDER BY metric", (found[0],)
            )]
        return _Points(*downsampled_table(conn, found[0], wanted, downsample, lo, hi))

    answer = await ctx.store.read(lambda conn: query(conn, huge_ok=False))
    async with ctx.store.big_answers.place(needed=answer is _NoPoints.HUGE) as ticket:
        if answer is _NoPoints.HUGE:
            answer = await ctx.store.read(lambda conn: query(conn, huge_ok=True))
        if not isinstance(answer, _Points):  # (gone while it waited, too)
            raise not_found(f"Experiment {exp_id} not found")
        return _points_answer(start, answer, names, step_range, downsample, ticket)


class _Points(NamedTuple):
    table: StepTable
    picks: list[int] | None  # the rows to send (downsampled), or None: every row
    total: int  # points in range, before downsampling


class _NoPoints(enum.Enum):
    NOT_FOUND = "not found"
    HUGE = "huge"  # every point of a huge run: read again once it has its turn (BigAnswers)


def _points_answer(
    start: float,
    answer: _Points,
    names: list[str] | None,
    step_range: tuple[int | None, int | None] | None,
    downsample: int | None,
    ticket: Ticket,
) -> Response:
    """The answer of ``metrics/fast``: its rows stream out with the ticket handed over."""
    lo, hi = step_range or (None, None)
    table, picks, total = answer
    columns = ["global_step", *table.names()]
    head = b'{"columns":' + orjson.dumps(columns) + b',"rows":['
    tail = b"]," + orjson.dumps({
        "query_time_ms": _ms(start),
        "total_points": total,
        "applied_filters": {
            "metrics": names if names is not None else columns[1:],
            "step_range": {"min": lo, "max": hi} if step_range else None,
            "downsampled": len(table) < total,
            "downsample": downsample,
        },
    })[1:]
    return rows_response(head, table, picks, tail, ticket=ticket)


async def experiment_images(request: Request) -> Response:
    """The run's logged images (its ``image`` events), in step order, each with the URL of its
    file."""
    ctx = context(request)
    NO_QUERY.parse(request.query_params)
    exp_id = _check_id(request.path_params["exp_id"])
    await access.require_visible(request, exp_id)

    def query(conn: sqlite3.Connection) -> list[tuple[Any, ...]] | None:
        found = conn.execute("SELECT pk FROM experiments WHERE id = ?", (exp_id,)).fetchone()
        if found is None:
            return None
        return conn.execute(
            "SELECT key, step, caption, path FROM exp_images WHERE exp_pk = ? ORDER BY step IS NULL, step, seq",
            (found[0],),
        ).fetchall()

    rows = await ctx.store.read(query)
    if rows is None:
        raise not_found(f"Experiment {exp_id} not found")
    base = f"/api/v2/experiments/{exp_id}/files/"
    return JSONResponse({
        "images": [
            {"key": key, "step": step, "caption": caption, "path": path, "url": base + quote(path)}
            for key, step, caption, path in rows
        ]
    })


async def compare_endpoint(request: Request) -> Response:
    """``GET /api/v2/compare``: up to 50 runs side by side (extensions.md §5)."""
    start = time.perf_counter()
    ctx = context(request)
    q = COMPARE_QUERY.parse(request.query_params)
    ids = list(dict.fromkeys(q["ids"]))  # counted as sent by the declaration, answered once
    for exp_id in ids:
        _check_id(exp_id)
    hidden = await access.hidden(request, ids)
    for exp_id in ids:  # the first one not found, as compare itself names it
        if exp_id in hidden:
            raise not_found(f"Experiment {exp_id} not found")
    names: list[str] | None = q["metric_names"]
    step_range = parse_step_range(q["step_range"])
    lo, hi = step_range or (None, None)
    budget: int = q["downsample"]
    group_by = [_group_field(text) for text in q["group_by"] or ()]
    try:
        body = await ctx.store.read(lambda conn: compare(conn, ids, names, budget, lo, hi))
    except UnknownExperiment as exc:
        raise not_found(f"Experiment {exc.exp_id} not found") from None
    if group_by:
        body["groups"] = bands.group_runs(body["experiments"], group_by)
        body["group_series"] = bands.group_series(body["groups"], body["series"], budget)
    body["query_time_ms"] = _ms(start)
    return JSONResponse(body)


def _group_field(text: str) -> filters.Field:
    try:
        return parse_group_field(text)
    except FilterError as exc:
        raise bad_request(f"Invalid group_by field {text[:300]!r}: {exc}") from None


async def _ids_body(request: Request, verb: str) -> tuple[list[str], dict[str, Any]]:
    body = await json_object(request, max_bytes=4 << 20)
    ids = body.get("exp_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad_request("Field 'exp_ids' is required: a list of experiment id strings")
    if len(ids) > MAX_BATCH:  # counted as sent: a repeated id is still an item of the list
        raise bad_request(f"Cannot {verb} more than {MAX_BATCH} experiments at once")
    ids = list(dict.fromkeys(ids))
    if not ids:
        # DECISIONS: an empty list gets the documented message too, with what is allowed.
        raise bad_request(
            f"Cannot {verb} more than {MAX_BATCH} experiments at once, or none: give 1 to {MAX_BATCH} ids in 'exp_ids'"
        )
    return ids, body


async def batch_delete(request: Request) -> Response:
    ctx = context(request)
    ids, body = await _ids_body(request, "delete")
    reason = body.get("reason", "user_batch_delete")
    if reason is None:
        reason = "user_batch_delete"
    if not isinstance(reason, str) or len(reason) > 1000:
        raise bad_request("Field 'reason' must be a string of at most 1000 characters")
    check_text(reason, "reason")
    results = await ctx.delete_runs(ids, reason, access.visible_locator(request, ctx.locate_indexed))
    return batch_answer("deleted", results)


async def batch_restore(request: Request) -> Response:
    ctx = context(request)
    ids, _body = await _ids_body(request, "restore")
    results = await ctx.restore_runs(ids, access.visible_locator(request, ctx.locate_indexed))
    return batch_answer("restored", results, delete_shape=True)


async def analytics_summary(request: Request) -> Response:
    start = time.perf_counter()
    ctx = context(request)
    f = access.scoped(request, parse_filter(ANALYTICS_QUERY.parse(request.query_params), with_list_only=False))
    data = await ctx.store.read(lambda conn: analytics.summary(conn, f))
    data["query_time_ms"] = _ms(start)
    return JSONResponse(data)


def routes() -> list[Route]:
    """The V2 routes (mounted under /api/v2)."""
    return [
        Route("/api/v2/experiments", list_experiments_endpoint, methods=["GET"]),
        Route("/api/v2/experiments/batch-delete", batch_delete, methods=["POST"]),
        Route("/api/v2/experiments/batch-restore", batch_restore, methods=["POST"]),
        Route("/api/v2/experiments/{exp_id}", experiment_resource, methods=["GET", "PATCH"]),
        Route("/api/v2/experiments/{exp_id}/metrics/fast", metrics_fast, methods=["GET"]),
        Route("/api/v2/experiments/{exp_id}/images", experiment_images, methods=["GET"]),
        Route("/api/v2/analytics/summary", analytics_summary, methods=["GET"]),
        Route("/api/v2/compare", compare_endpoint, methods=["GET"]),
    ]

