"""V1 soft delete, recycle bin, restore and permanent deletion, answered as Runicorn 0.7.2 does.

Bodies follow the real viewer (observed side by side on the same fixture copy): per-id
``{"success": bool, "error"?}`` results with a ``message``; the recycle bin as ``deleted_runs``;
``recycle-bin/empty`` only with ``{"confirm": true}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from runicorn_lite import purge, rundir
from runicorn_lite.api import access, v1_scan
from runicorn_lite.api.context import Locator, Outcome, context
from runicorn_lite.api.errors import bad_request, not_found
from runicorn_lite.api.params import check_text, json_object
from runicorn_lite.api.responses import JSONResponse
from runicorn_lite.api.v1 import find_run, locate_by_scan
from runicorn_lite.api.v1_scan import shared_scan
from runicorn_lite.asset_refs import asset_refs as refs_of

MAX_RUN_IDS = 100
MAX_PERMANENT_IDS = 50  # Runicorn's limit for permanent-delete
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
    outcomes = await ctx.delete_runs(ids, reason, _locator(request))
    results = _results(outcomes)
    done = sum(r["success"] for r in results.values())
    return JSONResponse(
        {"deleted_count": done, "results": results, "message": f"Soft deleted {done} of {len(ids)} runs"}
    )


async def recycle_bin(request: Request) -> Response:
    scanned = (await shared_scan(request).get()).infos

    def build() -> list[dict[str, Any]]:
        infos = [i for i in scanned if i.deleted_at is not None and access.sees(request, i.project)]
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
    outcomes = await ctx.restore_runs(ids, _locator(request))
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

    def work() -> tuple[list[str], list[Path]]:
        candidates = purge.list_deleted(ctx.root)
        if access.who(request) is not None:  # a project's key empties its project's runs only
            mine = {i.id for i in v1_scan.scan(ctx.root)
                    if i.deleted_at is not None and access.sees(request, i.project)}
            candidates = [c for c in candidates if c.run_id in mine]
        return purge.purge(ctx.root, candidates), [c.run_dir for c in candidates]

    removed = await ctx.edit(work)
    return JSONResponse(
        {
            "permanently_deleted": len(removed),
            "message": f"Permanently deleted {len(removed)} runs",
            "deleted_ids": removed,
        }
    )


def _deletion_result(run_id: str) -> dict[str, Any]:
    """One run's entry of ``permanent-delete``, in Runicorn's shape (no archive blobs here)."""
    return {"success": False, "run_id": run_id, "run_dir_deleted": False, "orphaned_assets": [], "kept_assets": [],
            "blobs_deleted": 0, "manifests_deleted": 0, "outputs_deleted": 0, "bytes_freed": 0, "errors": [],
            "partial_failures": []}


async def permanent_delete(request: Request) -> Response:
    """``POST /api/runs/permanent-delete {run_ids, dry_run}``: remove runs for good, as
    Runicorn's bin does, but only runs that are in the recycle bin (a live run is refused,
    never removed) and only through ``purge`` (inside the root, no symlink followed)."""
    ctx = context(request)
    body = await json_object(request)
    ids = body.get("run_ids")
    if not ids or not isinstance(ids, list):
        raise bad_request("run_ids is required and must be a list")
    if len(ids) > MAX_PERMANENT_IDS:
        raise bad_request(f"Cannot delete more than {MAX_PERMANENT_IDS} runs at once")
    for run_id in ids:
        if not isinstance(run_id, str) or not rundir.is_valid_run_id(run_id):
            raise bad_request(f"Invalid run_id format: {str(run_id)[:200]}")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise bad_request("Field 'dry_run' must be true or false")
    if not dry_run:
        ctx.require_writable()
    wanted = list(dict.fromkeys(ids))

    # The index says where the runs are and which are in the bin; purge checks each directory
    # again on disk (still soft-deleted, inside the root) before it removes it.
    refs = await ctx.store.call(access.visible_locator(request, ctx.locate_indexed), wanted)
    deleted = {i: purge.Candidate(i, ctx.root / r.rel_dir) for i, r in refs.items() if r.deleted_at is not None}

    def work() -> tuple[dict[str, dict[str, Any]], list[Path]]:
        results: dict[str, dict[str, Any]] = {}
        for run_id in wanted:
            result = results[run_id] = _deletion_result(run_id)
            candidate = deleted.get(run_id)
            if candidate is None:
                result["errors"].append(
                    f"Run is not in the recycle bin (delete it first): {run_id}" if run_id in refs
                    else f"Run not found: {run_id}")
                continue
            removed = True if dry_run else bool(purge.purge(ctx.root, [candidate]))
            result["run_dir_deleted"] = result["success"] = removed
            if not removed:
                result["errors"].append(f"Failed to delete run directory: {run_id} (see the server log)")
        return results, [] if dry_run else [c.run_dir for c in deleted.values()]

    results = await ctx.edit(work)
    return JSONResponse({
        "deleted_count": sum(r["success"] for r in results.values()),
        "total_runs": len(ids),
        "total_blobs_deleted": 0,
        "total_bytes_freed": 0,
        "dry_run": dry_run,
        "results": results,
    })


async def asset_refs(request: Request) -> Response:
    """``GET /api/runs/{id}/assets/refs``: the run's assets that no other run refers to (they
    go with it) and the shared ones, for the bin's "delete for good" preview."""
    run_id = request.path_params["run_id"]
    if not rundir.is_valid_run_id(run_id):
        raise bad_request(f"Invalid run_id format: {run_id[:200]}")
    root = context(request).root
    info = await run_in_threadpool(find_run, root, run_id)
    if info is None or not access.sees(request, info.project):
        raise not_found("Run not found")
    return JSONResponse(await run_in_threadpool(refs_of, root, info.run_dir, run_id))


def routes() -> list[BaseRoute]:
    """The recycle-bin routes of V1."""
    return [
        Route("/api/runs/soft-delete", soft_delete, methods=["POST"]),
        Route("/api/recycle-bin", recycle_bin, methods=["GET"]),
        Route("/api/recycle-bin/restore", restore, methods=["POST"]),
        Route("/api/recycle-bin/empty", empty_recycle_bin, methods=["POST"]),
        Route("/api/runs/permanent-delete", permanent_delete, methods=["POST"]),
        Route("/api/runs/{run_id}/assets/refs", asset_refs, methods=["GET"]),
    ]
