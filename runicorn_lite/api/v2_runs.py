"""V2's writes of one run and of the recycle bin, and a run's log: what the web app needs so that
it never calls V1 (whose every lookup walks the whole tree).

- ``PATCH /api/v2/experiments/{id}``: alias, tags, description, written to ``meta.json`` first
  (as V1's PATCH does), then re-indexed; answers the run's row as it is now.
- ``POST /api/v2/experiments/batch-purge``: soft-deleted runs removed for good (``purge``).
- ``GET /api/v2/experiments/{id}/logs``: the tail of ``logs.txt``, then what it appends, by
  byte offset.

Runs are found through the index; the list's ``include_deleted=only`` (v2.py) is the bin.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runicorn_lite import purge, rundir
from runicorn_lite.api import access
from runicorn_lite.api.context import AppContext, Outcome, context, os_reason
from runicorn_lite.api.errors import ApiError, bad_request, not_found
from runicorn_lite.api.params import PATCH_FIELDS, json_object, meta_changes
from runicorn_lite.api.responses import JSONResponse, batch_answer
from runicorn_lite.http.query import Param, Query
from runicorn_lite.queries.experiments import EXPERIMENT_COLUMNS, experiment_row

MAX_BATCH = 1000
# One answer of the log holds at most this much of it (a client asks again from next_offset).
MAX_LOG_BYTES = 1 << 20
MAX_TAIL_LINES = 10_000
LOGS_QUERY = Query.of(
    Param("offset", "integer", "Byte offset to read on from (a previous answer's next_offset);"
          " without it, the file's last `tail` lines", minimum=0, maximum=1 << 62),
    Param("tail", "integer", "Lines from the end when no offset is given", default=1000, minimum=1,
          maximum=MAX_TAIL_LINES),
)


def check_id(exp_id: str) -> str:
    """``exp_id``, or the 404 of an id that cannot be a run's."""
    if not rundir.is_valid_run_id(exp_id):
        raise not_found(f"Experiment {exp_id[:200]} not found")
    return exp_id


def _row(ctx: AppContext, exp_id: str) -> dict[str, Any] | None:
    def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
        row = conn.execute(f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?", (exp_id,)).fetchone()
        return None if row is None else experiment_row(row, ctx.root, True)

    return ctx.index.read(read)


async def patch_experiment(request: Request) -> Response:
    """Change a run's alias, tags and description (absent or null: left as it is; an empty
    alias or description clears it). Unknown fields are refused: a misspelt one would be lost."""
    ctx = context(request)
    exp_id = check_id(request.path_params["exp_id"])
    await access.require_visible(request, exp_id)
    body = await json_object(request)
    unknown = [k for k in body if k not in PATCH_FIELDS]
    if unknown:
        raise bad_request(f"Unknown field '{unknown[0][:100]}'; a PATCH takes {', '.join(PATCH_FIELDS)}")
    changes = meta_changes(body)
    ctx.require_writable()

    ref = (await ctx.store.call(ctx.locate_indexed, [exp_id])).get(exp_id)
    if ref is None:
        raise not_found(f"Experiment {exp_id} not found")
    run_dir = ctx.root / ref.rel_dir

    def write() -> tuple[None, list[Path]]:
        try:
            rundir.update_meta(run_dir, changes)
        except OSError as exc:
            raise ApiError(403, f"Cannot write to the run directory: {os_reason(exc)}") from None
        return None, [run_dir]

    if changes:
        await ctx.edit(write)
    row = await ctx.store.call(_row, ctx, exp_id)
    if row is None:
        raise not_found(f"Experiment {exp_id} not found")
    return JSONResponse({"experiment": row})


async def batch_purge(request: Request) -> Response:
    """Remove soft-deleted runs for good: ``{"exp_ids": [...], "confirm": true}``. A run that
    is not in the recycle bin is never touched (``results`` false, ``errors`` says why)."""
    ctx = context(request)
    body = await json_object(request, max_bytes=4 << 20)
    ids = body.get("exp_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not 1 <= len(ids) <= MAX_BATCH:
        raise bad_request(f"Field 'exp_ids' is required: a list of 1 to {MAX_BATCH} experiment id strings")
    if body.get("confirm") is not True:
        raise bad_request("Must set confirm=true to permanently delete")
    ctx.require_writable()
    ids = list(dict.fromkeys(ids))

    found = await ctx.store.call(access.visible_locator(request, ctx.locate_indexed), ids)

    def work() -> tuple[dict[str, Outcome], list[Path]]:
        outcomes: dict[str, Outcome] = {}
        candidates = []
        for exp_id in ids:
            ref = found.get(exp_id)
            if ref is None:
                outcomes[exp_id] = Outcome(False, False, "run not found")
            elif ref.deleted_at is None:
                outcomes[exp_id] = Outcome(False, False, "run not deleted: delete it first")
            else:
                candidates.append(purge.Candidate(exp_id, ctx.root / ref.rel_dir))
        removed = set(purge.purge(ctx.root, candidates))
        for cand in candidates:
            gone = cand.run_id in removed
            outcomes[cand.run_id] = Outcome(gone, gone, None if gone else "could not be removed (see the server log)")
        return outcomes, [c.run_dir for c in candidates]

    return batch_answer("purged", await ctx.edit(work))


async def run_logs(request: Request) -> Response:
    """``{"text", "offset", "next_offset", "size", "reset"}``: ``text`` is the file from byte
    ``offset`` to ``next_offset``, whole lines only (a line still being written waits for its
    end, unless it alone fills an answer). Without ``offset``: the last ``tail`` lines. An
    ``offset`` past the end (the file was truncated or replaced) answers the tail with
    ``reset: true``: drop what you show."""
    ctx = context(request)
    q = LOGS_QUERY.parse(request.query_params)
    exp_id = check_id(request.path_params["exp_id"])
    await access.require_visible(request, exp_id)
    offset: int | None = q["offset"]
    tail: int = q["tail"]

    def work() -> dict[str, Any] | None:
        ref = ctx.locate_indexed([exp_id]).get(exp_id)
        if ref is None:
            return None
        return read_log(ctx.root / ref.rel_dir / rundir.LOGS, offset, tail)

    answer = await ctx.store.call(work)
    if answer is None:
        raise not_found(f"Experiment {exp_id} not found")
    return JSONResponse(answer)


def read_log(path: Path, offset: int | None, tail: int) -> dict[str, Any]:
    """The body of ``run_logs`` for one file (absent: empty)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            reset = offset is not None and offset > size
            if offset is not None and not reset:
                fh.seek(offset)
                data = fh.read(MAX_LOG_BYTES)
                # Whole lines; a line still being written waits for its end, unless it fills an answer.
                end = data.rfind(b"\n") + 1 or (len(data) if len(data) == MAX_LOG_BYTES else 0)
                return _log_answer(data[:end], offset, size, False)
            start = max(0, size - MAX_LOG_BYTES)
            fh.seek(start)
            data = fh.read(size - start)
    except FileNotFoundError:
        return _log_answer(b"", 0, 0, offset is not None and offset > 0)
    except OSError as exc:
        raise ApiError(403, f"Cannot read logs.txt: {os_reason(exc)}") from None
    cut = data.rfind(b"\n") + 1 if not data.endswith(b"\n") else len(data)
    lines = data[:cut].split(b"\n")[:-1]
    if start > 0:
        lines = lines[1:]  # the first line read may be the end of a longer one
    kept = b"".join(line + b"\n" for line in lines[-tail:])
    return _log_answer(kept, start + cut - len(kept), size, reset)


def _log_answer(data: bytes, offset: int, size: int, reset: bool) -> dict[str, Any]:
    return {"text": data.decode("utf-8", errors="replace"), "offset": offset, "next_offset": offset + len(data),
            "size": size, "reset": reset}


def routes() -> list[Route]:
    """PATCH of one run shares its route with the detail (v2.py), so that a 405 there lists both."""
    return [
        Route("/api/v2/experiments/batch-purge", batch_purge, methods=["POST"]),
        Route("/api/v2/experiments/{exp_id}/logs", run_logs, methods=["GET"]),
    ]
