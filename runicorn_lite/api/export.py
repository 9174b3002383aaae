"""CSV exports: ``/api/v2/experiments.csv`` (every run a list query matches, with params and
metric summaries) and ``/api/v2/experiments/{id}/metrics.csv`` (every point of a run).

Both stream: the runs (or points) are read a batch at a time, each batch one short read on a
database thread and formatted there too, and the next batch is read only once the previous one
was handed to the client. Memory stays flat in the number of rows, and a slow download holds
no read transaction open.
"""

from __future__ import annotations

import csv
import io
import math
import sqlite3
from array import array
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from runicorn_lite import rundir
from runicorn_lite.api import access
from runicorn_lite.api.context import context
from runicorn_lite.api.errors import not_found
from runicorn_lite.api.v2 import (
    LIST_QUERY,
    METRICS_QUERY,
    filter_error,
    parse_filter,
    parse_step_range,
    resolve_list_query,
)
from runicorn_lite.db.schema import LIST_AGGREGATES
from runicorn_lite.db.store import IndexStore, Readable
from runicorn_lite.queries.export import (
    EXPORT_BATCH,
    PointReader,
    export_columns,
    export_rows,
    ordered_pks,
    point_columns,
)
from runicorn_lite.queries.filters import FilterError
from runicorn_lite.timeutil import format_iso

CSV_TYPE = "text/csv; charset=utf-8"
# The columns every row has, before its params and metrics (extensions.md §6).
RUN_COLUMNS = (
    "id", "project", "name", "path", "alias", "status", "created_at", "ended_at", "duration_s",
    "best_metric_name", "best_metric_value", "tags",
)
# Every parameter of the list but its paging (the export has every match); ``include`` is taken
# and checked as the list takes it, and the export always has both params and metrics.
EXPORT_QUERY = LIST_QUERY.without("page", "per_page")
POINTS_QUERY = METRICS_QUERY.without("downsample")


def _csv_lines(rows: Sequence[Sequence[Any]]) -> bytes:
    """RFC 4180 lines (CRLF, quotes only where needed), UTF-8."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode()


def _number(value: Any) -> str:
    """A finite number as Python writes it back exactly; anything else (null, NaN, ±Infinity)
    as an empty cell."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return repr(value)


def _time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    try:
        return format_iso(datetime.fromtimestamp(seconds, UTC))
    except (OverflowError, OSError, ValueError):
        return ""


def run_cells(row_json: bytes, params_json: bytes | None, metrics_json: bytes | None,
              keys: list[str], names: list[str]) -> list[Any]:
    """One line of experiments.csv from the JSON the index keeps of a run.

    The values go to the csv writer as they are: it writes None as an empty cell and a float as
    its repr (the shortest text that reads back exactly), in C. The index's JSON never holds NaN
    or infinities (orjson writes them as null), so only booleans need turning into text here.
    A call per cell was most of an export's time (70 us a row).
    """
    exp = orjson.loads(row_json)
    params = orjson.loads(params_json) if params_json else {}
    metrics = orjson.loads(metrics_json) if metrics_json else {}
    created, ended = exp.get("created_at"), exp.get("ended_at")
    cells: list[Any] = [
        exp.get("id"), exp.get("project"), exp.get("name"), exp.get("path"), exp.get("alias"), exp.get("status"),
        _time(created), _time(ended),
        round(ended - created, 3) if created is not None and ended is not None else None,
        exp.get("best_metric_name"), exp.get("best_metric_value"), ";".join(exp.get("tags") or ()),
    ]
    cells += [("true" if v else "false") if v.__class__ is bool else v for v in map(params.get, keys)]
    for name in names:
        summary = metrics.get(name)
        if summary:
            cells += map(summary.get, LIST_AGGREGATES)
        else:
            cells += (None,) * len(LIST_AGGREGATES)
    return cells


def _run_batch(index: Readable, pks: list[int], keys: list[str], names: list[str]) -> bytes:
    """Read one batch of runs (one short read), then format it outside the transaction."""
    rows = index.read(lambda conn: export_rows(conn, pks))
    return _csv_lines([run_cells(r[3], r[4], r[5], keys, names) for r in rows])


async def _run_lines(store: IndexStore, pks: array[int], keys: list[str], names: list[str]) -> AsyncIterator[bytes]:
    header = [*RUN_COLUMNS, *(f"params.{k}" for k in keys)]
    header += [f"metrics.{name}.{agg}" for name in names for agg in LIST_AGGREGATES]
    yield _csv_lines([header])
    for start in range(0, len(pks), EXPORT_BATCH):
        yield await store.call(_run_batch, store.db, pks[start : start + EXPORT_BATCH].tolist(), keys, names)


async def experiments_csv(request: Request) -> Response:
    """Every run the list parameters match (no paging), in the list's order, as CSV."""
    ctx = context(request)
    q = EXPORT_QUERY.parse(request.query_params)
    f = access.scoped(request, parse_filter(q))
    filter_text: str | None = q["filter"]
    order_by: str = q["order_by"]
    desc: bool = q["order_desc"]

    def plan(conn: sqlite3.Connection) -> tuple[array[int], list[str], list[str]]:
        resolved, order = resolve_list_query(conn, f, filter_text, order_by)
        keys, names = export_columns(conn, resolved)
        return ordered_pks(conn, resolved, order, desc), keys, names

    try:
        pks, keys, names = await ctx.store.read(plan)
    except FilterError as exc:
        raise filter_error(exc) from None
    return StreamingResponse(
        _run_lines(ctx.store, pks, keys, names),
        media_type=CSV_TYPE,
        headers={"Content-Disposition": 'attachment; filename="experiments.csv"', "Cache-Control": "no-store"},
    )


def _point_lines(steps: list[int], columns: list[list[float | None]]) -> bytes:
    cells = [[_number(v) for v in column] for column in columns]
    return "".join(",".join(line) + "\r\n" for line in zip(map(str, steps), *cells, strict=True)).encode()


def _point_batch(index: Readable, reader: PointReader) -> bytes:
    """The next window of points: one short read, formatted outside the transaction."""
    index.read(reader.refill)
    steps, columns = reader.take()
    return _point_lines(steps, columns) if steps else b""


async def _points(store: IndexStore, header: list[str], reader: PointReader) -> AsyncIterator[bytes]:
    yield _csv_lines([header])
    while not reader.finished():
        chunk = await store.call(_point_batch, store.db, reader)
        if chunk:
            yield chunk


async def metrics_csv(request: Request) -> Response:
    """Every point of a run (``global_step``, then its metrics sorted), no downsampling."""
    ctx = context(request)
    q = POINTS_QUERY.parse(request.query_params)
    exp_id = request.path_params["exp_id"]
    if not rundir.is_valid_run_id(exp_id):
        raise not_found(f"Experiment {exp_id[:200]} not found")
    await access.require_visible(request, exp_id)
    names: list[str] | None = q["metric_names"]
    lo, hi = parse_step_range(q["step_range"]) or (None, None)

    def plan(conn: sqlite3.Connection) -> PointReader | None:
        found = conn.execute("SELECT pk FROM experiments WHERE id = ?", (exp_id,)).fetchone()
        if found is None:
            return None
        return PointReader(found[0], point_columns(conn, found[0], names, lo, hi), lo, hi)

    reader = await ctx.store.read(plan)
    if reader is None:
        raise not_found(f"Experiment {exp_id} not found")
    header = ["global_step", *(s.name for s in reader.series)]
    return StreamingResponse(
        _points(ctx.store, header, reader),
        media_type=CSV_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{exp_id}_metrics.csv"', "Cache-Control": "no-store"},
    )


def routes() -> list[Route]:
    return [
        Route("/api/v2/experiments.csv", experiments_csv, methods=["GET"]),
        Route("/api/v2/experiments/{exp_id}/metrics.csv", metrics_csv, methods=["GET"]),
    ]

