"""``/api/v2``: experiment queries answered from the index."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runicorn_lite import rundir
from runicorn_lite.api.context import context
from runicorn_lite.api.errors import ApiError, bad_request, not_found
from runicorn_lite.api.params import (
    MAX_PARAM_LEN,
    check_text,
    get_bool,
    get_csv,
    get_float,
    get_int,
    get_str,
    json_object,
)
from runicorn_lite.api.responses import JSONResponse, batch_answer, orjson_loads, rows_response
from runicorn_lite.db import in_db_thread
from runicorn_lite.db.schema import SORT_COLUMNS
from runicorn_lite.queries import analytics, filters
from runicorn_lite.queries.compare import MAX_COMPARE, UnknownExperiment, compare
from runicorn_lite.queries.experiments import (
    ExperimentFilter,
    Order,
    attach_details,
    experiment_row,
    get_experiment,
    list_experiments,
    metrics_summary,
)
from runicorn_lite.queries.filters import AGGREGATES, FilterError
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


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def parse_filter(request: Request, *, with_list_only: bool = True) -> ExperimentFilter:
    """The list filters of a request (400 for any that is malformed)."""
    q = request.query_params
    statuses = get_csv(q, "status")
    if statuses:
        bad = [s for s in statuses if s not in rundir.STATUSES]
        if bad:
            raise bad_request(
                f"Parameter 'status' has unknown value(s) {', '.join(bad)}; allowed: {', '.join(rundir.STATUSES)}"
            )
    created_after = get_float(q, "created_after")
    created_before = get_float(q, "created_before")
    if with_list_only:
        search = get_str(q, "search")
        if search is not None and len(set(search.split())) > MAX_SEARCH_WORDS:
            raise bad_request(
                f"Parameter 'search' has {len(set(search.split()))} words; at most {MAX_SEARCH_WORDS} are allowed"
            )
        best_min, best_max = get_float(q, "best_metric_min"), get_float(q, "best_metric_max")
        return ExperimentFilter(
            project=get_str(q, "project"),
            name=get_str(q, "name"),
            statuses=tuple(statuses) if statuses else None,
            tags=tuple(t for t in (get_csv(q, "tags") or ())) or None,
            search=search,
            created_after=created_after,
            created_before=created_before,
            best_metric_min=best_min,
            best_metric_max=best_max,
            include_deleted=get_bool(q, "include_deleted", False),
        )
    return ExperimentFilter(
        project=get_str(q, "project"),
        statuses=tuple(statuses) if statuses else None,
        created_after=created_after,
        created_before=created_before,
    )


def _raw_param(request: Request, name: str) -> str | None:
    """A parameter as sent (not stripped: positions in error messages count in it); None when
    absent or blank."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise bad_request(f"Parameter '{name}' was given {len(values)} times; give it once")
    value = values[0]
    if len(value) > MAX_PARAM_LEN:
        raise bad_request(f"Parameter '{name}' is too long (at most {MAX_PARAM_LEN} characters)")
    if "\x00" in value:
        raise bad_request(f"Parameter '{name}' contains a NUL character")
    return value if value.strip() else None


def parse_order_by(request: Request) -> str:
    """``order_by``: a column name, ``params.<key>`` or ``metrics.<name>.<aggregate>`` (the
    last two are resolved against the index, in :func:`resolve_list_query`)."""
    raw = get_str(request.query_params, "order_by")
    if raw is None:
        return "created_at"
    if raw in SORT_COLUMNS or raw.startswith(("params.", "metrics.")):
        return raw
    raise bad_request(
        f"Parameter 'order_by' must be one of {', '.join(SORT_COLUMNS)}, params.<key> or"
        f" metrics.<name>.<aggregate> (aggregates: {', '.join(AGGREGATES)}); got '{raw[:200]}'"
    )


def parse_include(request: Request) -> frozenset[str]:
    """``include=params,metrics`` (either or both)."""
    items = get_csv(request.query_params, "include", max_items=len(INCLUDES)) or []
    bad = [i for i in items if i not in INCLUDES]
    if bad:
        raise bad_request(f"Parameter 'include' has unknown value(s) {', '.join(bad)}; allowed: {', '.join(INCLUDES)}")
    return frozenset(items)


def resolve_list_query(
    conn: sqlite3.Connection, f: ExperimentFilter, filter_text: str | None, order_by: str
) -> tuple[ExperimentFilter, Order]:
    """Parse ``filter=`` and a params/metrics ``order_by`` (a dotted bare metric name is read
    against the metric names the index holds). FilterError → 400 at the HTTP boundary."""

    def is_metric(name: str) -> bool:
        return conn.execute("SELECT 1 FROM metric_summaries WHERE metric = ? LIMIT 1", (name,)).fetchone() is not None

    if filter_text is not None:
        f = dataclasses.replace(f, clauses=filters.parse_filter(filter_text, is_metric))
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
    q = request.query_params
    f = parse_filter(request)
    filter_text = _raw_param(request, "filter")
    page = get_int(q, "page", 1, 1, MAX_PAGE)
    per_page = get_int(q, "per_page", 50, 1, MAX_PER_PAGE)
    order_by = parse_order_by(request)
    desc = get_bool(q, "order_desc", True)
    include = parse_include(request)
    generation = ctx.index.generation  # read before the snapshot: a cached total is never newer

    def query(conn: sqlite3.Connection) -> tuple[list[orjson.Fragment], int]:
        resolved, order = resolve_list_query(conn, f, filter_text, order_by)
        return list_experiments(conn, ctx.root, resolved, order, desc, page, per_page, ctx.counts, generation, include)

    try:
        experiments, total = await in_db_thread(ctx.index.read, query)
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
    exp_id = _check_id(request.path_params["exp_id"])

    def query(conn: sqlite3.Connection) -> dict[str, Any] | None:
        found = get_experiment(conn, exp_id)
        if found is None:
            return None
        pk, row, environment_available = found
        experiment = experiment_row(row, ctx.root, True)
        attach_details(conn, experiment, pk)
        config, environment = conn.execute(
            "SELECT config, environment FROM exp_docs WHERE exp_pk = ?", (pk,)
        ).fetchone() or (None, None)
        images = conn.execute("SELECT count(*) FROM exp_images WHERE exp_pk = ?", (pk,)).fetchone()[0]
        return {
            "experiment": experiment,
            "metrics_summary": metrics_summary(conn, pk),
            "environment_available": environment_available,
            "params": experiment["params"],
            "metrics": experiment["metrics"],
            "config": orjson_loads(config),
            "environment": orjson_loads(environment),
            "images_count": images,
        }

    body = await in_db_thread(ctx.index.read, query)
    if body is None:
        raise not_found(f"Experiment {exp_id} not found")
    body["file_count"] = await run_in_threadpool(rundir.count_files, Path(body["experiment"]["run_dir"]))
    body["query_time_ms"] = _ms(start)
    return JSONResponse(body)


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
    exp_id = _check_id(request.path_params["exp_id"])
    q = request.query_params
    names = get_csv(q, "metric_names", max_items=1000)
    step_range = parse_step_range(get_str(q, "step_range"))
    downsample = None
    if get_str(q, "downsample") is not None:
        downsample = get_int(q, "downsample", 0, 2, MAX_DOWNSAMPLE)
    lo, hi = step_range or (None, None)

    def query(conn: sqlite3.Connection) -> tuple[StepTable, list[int] | None, int] | None:
        found = conn.execute("SELECT pk FROM experiments WHERE id = ?", (exp_id,)).fetchone()
        if found is None:
            return None
        if downsample is None:
            table = table_of(load_series(conn, found[0], names, lo, hi))
            return table, None, len(table)
        wanted = names
        if wanted is None:
            wanted = [r[0] for r in conn.execute(
                "SELECT metric FROM metric_summaries WHERE exp_pk = ? ORDER BY metric", (found[0],)
            )]
        return downsampled_table(conn, found[0], wanted, downsample, lo, hi)

    answer = await in_db_thread(ctx.index.read, query)
    if answer is None:
        raise not_found(f"Experiment {exp_id} not found")
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
    return rows_response(head, table, picks, tail)


async def experiment_images(request: Request) -> Response:
    """The run's logged images (its ``image`` events), in step order, each with the URL of its
    file."""
    ctx = context(request)
    exp_id = _check_id(request.path_params["exp_id"])

    def query(conn: sqlite3.Connection) -> list[tuple[Any, ...]] | None:
        found = conn.execute("SELECT pk FROM experiments WHERE id = ?", (exp_id,)).fetchone()
        if found is None:
            return None
        return conn.execute(
            "SELECT key, step, caption, path FROM exp_images WHERE exp_pk = ? ORDER BY step IS NULL, step, seq",
            (found[0],),
        ).fetchall()

    rows = await in_db_thread(ctx.index.read, query)
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
    q = request.query_params
    raw_ids = [i.strip() for i in (get_str(q, "ids") or "").split(",") if i.strip()]
    if not 1 <= len(raw_ids) <= MAX_COMPARE:
        raise bad_request(
            f"Parameter 'ids' takes 1 to {MAX_COMPARE} comma-separated experiment ids, got {len(raw_ids)}"
        )
    ids = list(dict.fromkeys(raw_ids))
    for exp_id in ids:
        _check_id(exp_id)
    names = get_csv(q, "metric_names", max_items=1000)
    step_range = parse_step_range(get_str(q, "step_range"))
    lo, hi = step_range or (None, None)
    budget = get_int(q, "downsample", DEFAULT_COMPARE_POINTS, 2, MAX_DOWNSAMPLE)
    try:
        body = await in_db_thread(ctx.index.read, lambda conn: compare(conn, ids, names, budget, lo, hi))
    except UnknownExperiment as exc:
        raise not_found(f"Experiment {exc.exp_id} not found") from None
    body["query_time_ms"] = _ms(start)
    return JSONResponse(body)


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
    results = await in_db_thread(ctx.delete_runs, ids, reason)
    return batch_answer("deleted", results)


async def batch_restore(request: Request) -> Response:
    ctx = context(request)
    ids, _body = await _ids_body(request, "restore")
    results = await in_db_thread(ctx.restore_runs, ids)
    return batch_answer("restored", results, delete_shape=True)


async def analytics_summary(request: Request) -> Response:
    start = time.perf_counter()
    ctx = context(request)
    f = parse_filter(request, with_list_only=False)
    data = await in_db_thread(ctx.index.read, lambda conn: analytics.summary(conn, f))
    data["query_time_ms"] = _ms(start)
    return JSONResponse(data)


def routes() -> list[Route]:
    """The V2 routes (mounted under /api/v2)."""
    return [
        Route("/api/v2/experiments", list_experiments_endpoint, methods=["GET"]),
        Route("/api/v2/experiments/batch-delete", batch_delete, methods=["POST"]),
        Route("/api/v2/experiments/batch-restore", batch_restore, methods=["POST"]),
        Route("/api/v2/experiments/{exp_id}", experiment_detail, methods=["GET"]),
        Route("/api/v2/experiments/{exp_id}/metrics/fast", metrics_fast, methods=["GET"]),
        Route("/api/v2/experiments/{exp_id}/images", experiment_images, methods=["GET"]),
        Route("/api/v2/analytics/summary", analytics_summary, methods=["GET"]),
        Route("/api/v2/compare", compare_endpoint, methods=["GET"]),
    ]

