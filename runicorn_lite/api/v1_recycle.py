"""V1 soft delete, recycle bin, restore and permanent deletion, answered as Runicorn 0.7.2 does.

Bodies follow the real viewer (observed side by side on the same fixture copy): per-id
``{"success": bool, "error"?}`` results with a ``message``; the recycle bin as ``deleted_runs``;
``recycle-bin/empty`` only with ``{"confirm": true}``.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from runicorn_lite import purge
from runicorn_lite.api import access
from runicorn_lite.api.context import Locator, Outcome, context
from runicorn_lite.api.errors import bad_request
from runicorn_lite.api.params import check_text, json_object
from runicorn_lite.api.responses import JSONResponse
from runicorn_lite.api.v1 import locate_by_scan, scan

MAX_RUN_IDS = 100
DEFAULT_REASON = "user_deleted"  # what the real viewer writes into .deleted


def _locator(request: Request) -> Locator:
    """V1 finds runs by walking the files: only those of the request's projects."""
    return locate_by_scan(context(request).root, lambda project: access.sees(request, project))


async def _run_ids(request: Request, verb: str) -> tuple[list[str], dict[str, Any]]:
    body = await json_object(request)
    ids = body.get("run_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad_request("Field 'run_ids' is required: a list of run id strings")
    if not ids:
        raise bad_request("Field 'run_ids' must name at least one run")
    if len(ids) > MAX_RUN_IDS:  # counted before de-duplication, as the real viewer counts
        raise bad_request(f"Cannot {verb} more than {MAX_RUN_IDS} runs at once")
    for run_id in ids:
        check_text(run_id, "run_ids")
    return list(dict.fromkeys(ids)), body


def _results(outcomes: dict[str, Outcome]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for run_id, outcome in outcomes.items():
        out[run_id] = {"success": True} if outcome.changed else {"success": False, "error": outcome.error or "failed"}
    return out


async def soft_delete(request: Request) -> Response:
    ctx = context(request)
    ids, body = await _run_ids(request, "delete")
    reason = body.get("reason")
    if reason is None:
        reason = DEFAULT_REASON
    if not isinstance(reason, str) or len(reason) > 1000:
        raise bad_request("Field 'reason' must be a string of at most 1000 characters")
    reason = check_text(reason, "reason").strip() or DEFAULT_REASON
    outcomes = await run_in_threadpool(ctx.delete_runs, ids, reason, _locator(request))
    results = _results(outcomes)
    done = sum(r["success"] for r in results.values())
    return JSONResponse(
        {"deleted_count": done, "results": results, "message": f"Soft deleted {done} of {len(ids)} runs"}
    )


async def recycle_bin(request: Request) -> Response:
    root = context(request).root

    def build() -> list[dict[str, Any]]:
        infos = [i for i in scan(root) if i.deleted_at is not None and access.sees(request, i.project)]
        infos.sort(key=lambda i: (i.deleted_at or 0.0, i.id), reverse=True)
        out = []
        for i in infos:
            entry: dict[str, Any] = {
                "id": i.id,
                "path": i.path,
                "alias": i.alias,
                "created_time": i.created_at,
                "deleted_at": i.deleted_at,
                "delete_reason": i.delete_reason or "unknown",
                "original_status": i.original_status or "unknown",
                "run_dir": str(i.run_dir),
            }
            if i.generation == "legacy":
                entry["project"], entry["name"] = i.project, i.name
            out.append(entry)
        return out

    return JSONResponse({"deleted_runs": await run_in_threadpool(build)})


async def restore(request: Request) -> Response:
    ctx = context(request)
    ids, _ = await _run_ids(request, "restore")
    outcomes = await run_in_threadpool(ctx.restore_runs, ids, _locator(request))
    results = _results(outcomes)
    done = sum(r["success"] for r in results.values())
    return JSONResponse({"restored_count": done, "results": results, "message": f"Restored {done} of {len(ids)} runs"})


async def empty_recycle_bin(request: Request) -> Response:
    """Delete every soft-deleted run directory for good (and nothing else: see ``purge``)."""
    ctx = context(request)
    body = await json_object(request)
    if body.get("confirm") is not True:  # only the JSON literal true: "yes" or 1 do not delete
        raise bad_request("Must set confirm=true to permanently delete")
    ctx.require_writable()

    def work() -> list[str]:
        candidates = purge.list_deleted(ctx.root)
        if access.who(request) is not None:  # a project's key empties its project's runs only
            mine = {i.id for i in scan(ctx.root) if i.deleted_at is not None and access.sees(request, i.project)}
            candidates = [c for c in candidates if c.run_id in mine]
        removed = purge.purge(ctx.root, candidates)
        if candidates:
            ctx.indexer.refresh(c.run_dir for c in candidates)
        return removed

    removed = await run_in_threadpool(work)
    return JSONResponse(
        {
            "permanently_deleted": len(removed),
            "message": f"Permanently deleted {len(removed)} runs",
            "deleted_ids": removed,
        }
    )


def routes() -> list[BaseRoute]:
    """The recycle-bin routes of V1."""
    return [
        Route("/api/runs/soft-delete", soft_delete, methods=["POST"]),
        Route("/api/recycle-bin", recycle_bin, methods=["GET"]),
        Route("/api/recycle-bin/restore", restore, methods=["POST"]),
        Route("/api/recycle-bin/empty", empty_recycle_bin, methods=["POST"]),
    ]
