"""``/api/...`` (V1, Runicorn-compatible): answered by reading the run directories on each request.

This is the honest baseline V2 is measured against: a straightforward scan through the same
format module the ingester uses, not a deliberately slowed one. Writes go to the files first and
then reach the index through the indexer.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from runicorn_lite import rundir
from runicorn_lite.api.context import Locator, context
from runicorn_lite.api.errors import bad_request, not_found
from runicorn_lite.api.params import get_int, get_str, json_object
from runicorn_lite.api.responses import JSONResponse, batch_answer
from runicorn_lite.queries.experiments import RunRef
from runicorn_lite.queries.metrics import MAX_DOWNSAMPLE, pivot

MAX_SOFT_DELETE = 100
LOG_POLL_S = 0.25
MAX_LOG_CHUNK = 1 << 20


def scan(root: Path) -> list[rundir.RunInfo]:
    """Every readable run under ``root`` (deleted ones included)."""
    infos = []
    for loc in rundir.iter_runs(root):
        info = rundir.read_run(loc)
        if info is not None:
            infos.append(rundir.fill_live_best(info))
    return infos


def find_run(root: Path, run_id: str) -> rundir.RunInfo | None:
    """The run with this id, found by walking the tree (None for unknown or unsafe ids)."""
    if not rundir.is_valid_run_id(run_id):
        return None
    for loc in rundir.iter_runs(root):
        if loc.run_id == run_id:
            info = rundir.read_run(loc)
            if info is not None:
                return rundir.fill_live_best(info)
    return None


def locate_by_scan(root: Path) -> Locator:
    """A Locator (see AppContext) that finds runs by walking the files, as V1 does."""

    def locate(ids: list[str]) -> dict[str, RunRef]:
        wanted = set(ids)
        out: dict[str, RunRef] = {}
        for loc in rundir.iter_runs(root):
            if loc.run_id in wanted and loc.run_id not in out:
                info = rundir.read_run(loc)
                if info is not None:
                    rel = info.run_dir.relative_to(root).as_posix()
                    out[info.id] = RunRef(rel, info.status, info.deleted_at, info.path)
        return out

    return locate


def run_entry(info: rundir.RunInfo) -> dict[str, Any]:
    """An item of ``GET /api/runs``."""
    return {
        "id": info.id,
        "run_dir": str(info.run_dir),
        "created_time": info.created_at,
        "status": info.status,
        "pid": info.pid,
        "best_metric_value": info.best_metric_value,
        "best_metric_name": info.best_metric_name,
        "project": info.project,
        "name": info.name,
        "path": info.path,
        "alias": info.alias,
        "tags": info.tags,
    }


def run_detail(info: rundir.RunInfo) -> dict[str, Any]:
    """The body of ``GET /api/runs/{id}``."""
    start = info.started_at or info.created_at
    end = info.ended_at if info.ended_at is not None else (time.time() if info.status == "running" else None)
    return {
        "id": info.id,
        "status": info.status,
        "pid": info.pid,
        "run_dir": str(info.run_dir),
        "project": info.project,
        "name": info.name,
        "path": info.path,
        "alias": info.alias,
        "tags": info.tags,
        "description": info.description,
        "start_time": start,
        "duration": round(end - start, 3) if end is not None else None,
        "summary": info.summary,
        "deleted_at": info.deleted_at,
    }


async def list_runs(request: Request) -> Response:
    root = context(request).root

    def build() -> list[dict[str, Any]]:
        infos = [i for i in scan(root) if i.deleted_at is None]
        infos.sort(key=lambda i: (i.created_at, i.id), reverse=True)
        return [run_entry(i) for i in infos]

    return JSONResponse(await run_in_threadpool(build))


async def _found(request: Request) -> rundir.RunInfo:
    root = context(request).root
    info = await run_in_threadpool(find_run, root, request.path_params["run_id"])
    if info is None:
        raise not_found("Run not found")
    return info


async def get_run(request: Request) -> Response:
    return JSONResponse(run_detail(await _found(request)))


async def run_metrics(request: Request) -> Response:
    downsample = None
    if get_str(request.query_params, "downsample") is not None:
        downsample = get_int(request.query_params, "downsample", 0, 2, MAX_DOWNSAMPLE)
    info = await _found(request)

    def build() -> dict[str, Any]:
        chunk = rundir.read_events(info.run_dir / rundir.EVENTS)
        series = {name: (sorted(pts), [pts[s] for s in sorted(pts)]) for name, pts in chunk.points.items()}
        columns, rows, total, _ = pivot(series, downsample)
        return {"columns": columns, "rows": rows, "total": total, "sampled": len(rows)}

    return JSONResponse(await run_in_threadpool(build))


_PATCH_FIELDS = ("alias", "tags", "description")


def _patch_changes(body: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "alias" in body:
        alias = body["alias"]
        if alias is not None and (not isinstance(alias, str) or len(alias) > 200):
            raise bad_request("Field 'alias' must be a string of at most 200 characters, or null")
        changes["alias"] = alias or None
    if "description" in body:
        desc = body["description"]
        if desc is not None and (not isinstance(desc, str) or len(desc) > 10_000):
            raise bad_request("Field 'description' must be a string of at most 10000 characters, or null")
        changes["description"] = desc or None
    if "tags" in body:
        tags = body["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t.strip()) <= 100 for t in tags):
            raise bad_request("Field 'tags' must be a list of non-empty strings (at most 100 characters each)")
        if len(tags) > 100:
            raise bad_request("Field 'tags' takes at most 100 tags")
        changes["tags"] = list(dict.fromkeys(t.strip() for t in tags))
    if not changes:
        raise bad_request(f"Body must set at least one of {', '.join(_PATCH_FIELDS)}")
    return changes


async def patch_run(request: Request) -> Response:
    ctx = context(request)
    body = await json_object(request)
    changes = _patch_changes(body)
    info = await _found(request)

    def write() -> rundir.RunInfo | None:
        rundir.update_meta(info.run_dir, changes)
        ctx.indexer.refresh([info.run_dir])
        loc = rundir.location_of(ctx.root, info.run_dir)
        return rundir.read_run(loc) if loc else None

    updated = await run_in_threadpool(write)
    if updated is None:
        raise not_found("Run not found")
    return JSONResponse(run_detail(updated))


async def run_resource(request: Request) -> Response:
    """``/api/runs/{id}``: one route for both methods, so a 405 there lists both in ``Allow``
    (Starlette answers a wrong method from the first route whose path matches)."""
    if request.method == "PATCH":
        return await patch_run(request)
    return await get_run(request)


async def _run_ids(request: Request) -> tuple[list[str], dict[str, Any]]:
    body = await json_object(request)
    ids = body.get("run_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad_request("Field 'run_ids' is required: a list of run id strings")
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise bad_request("Field 'run_ids' must name at least one run")
    if len(ids) > MAX_SOFT_DELETE:
        raise bad_request(f"Cannot change more than {MAX_SOFT_DELETE} runs at once")
    return ids, body


async def soft_delete(request: Request) -> Response:
    ctx = context(request)
    ids, body = await _run_ids(request)
    reason = body.get("reason") or "user_delete"
    if not isinstance(reason, str) or len(reason) > 1000:
        raise bad_request("Field 'reason' must be a string of at most 1000 characters")
    results = await run_in_threadpool(ctx.delete_runs, ids, reason, locate_by_scan(ctx.root))
    return batch_answer("deleted", results)


async def recycle_bin(request: Request) -> Response:
    root = context(request).root

    def build() -> list[dict[str, Any]]:
        infos = [i for i in scan(root) if i.deleted_at is not None]
        infos.sort(key=lambda i: (i.deleted_at or 0.0, i.id), reverse=True)
        return [
            {
                **run_entry(i),
                "deleted_at": i.deleted_at,
                "reason": i.delete_reason,
                "original_status": i.original_status,
            }
            for i in infos
        ]

    runs = await run_in_threadpool(build)
    return JSONResponse({"runs": runs, "total": len(runs)})


async def restore(request: Request) -> Response:
    ctx = context(request)
    ids, _ = await _run_ids(request)
    results = await run_in_threadpool(ctx.restore_runs, ids, locate_by_scan(ctx.root))
    return batch_answer("restored", results)


async def projects(request: Request) -> Response:
    root = context(request).root
    infos = await run_in_threadpool(scan, root)
    names = sorted({i.project for i in infos if i.deleted_at is None})
    return JSONResponse({"projects": names})


async def project_names(request: Request) -> Response:
    root = context(request).root
    project = request.path_params["project"]
    infos = await run_in_threadpool(scan, root)
    live = [i for i in infos if i.deleted_at is None and i.project == project]
    if not live:
        raise not_found(f"Project {project[:200]} not found")
    return JSONResponse({"project": project, "names": sorted({i.name for i in live})})


async def name_runs(request: Request) -> Response:
    root = context(request).root
    project, name = request.path_params["project"], request.path_params["name"]
    infos = await run_in_threadpool(scan, root)
    live = [i for i in infos if i.deleted_at is None and i.project == project and i.name == name]
    live.sort(key=lambda i: (i.created_at, i.id), reverse=True)
    return JSONResponse({"project": project, "name": name, "runs": [run_entry(i) for i in live]})


async def logs_ws(websocket: WebSocket) -> None:
    """Send logs.txt line by line, then follow it as the run appends."""
    root = context(websocket).root
    info = await run_in_threadpool(find_run, root, websocket.path_params["run_id"])
    await websocket.accept()
    if info is None:
        await websocket.send_json({"detail": "Run not found"})
        await websocket.close(code=4404)
        return
    path = info.run_dir / rundir.LOGS
    offset = 0
    pending = b""
    try:
        while True:
            offset, data = await run_in_threadpool(_read_from, path, offset)
            if data is None:  # truncated or replaced: start again from its beginning
                pending = b""
                continue
            if data:
                pending += data
                *lines, pending = pending.split(b"\n")
                if len(pending) > MAX_LOG_CHUNK:  # a line with no end in sight: send what there is
                    lines.append(pending)
                    pending = b""
                for line in lines:
                    await websocket.send_text(line.decode("utf-8", errors="replace"))
            try:
                message = await asyncio.wait_for(websocket.receive(), timeout=LOG_POLL_S)
            except TimeoutError:
                continue
            if message["type"] == "websocket.disconnect":
                return
    except WebSocketDisconnect:
        return


def _read_from(path: Path, offset: int) -> tuple[int, bytes | None]:
    """(new offset, bytes after ``offset``); (0, None) when the file shrank or was replaced."""
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, 2) < offset:
                return 0, None
            fh.seek(offset)
            data = fh.read(MAX_LOG_CHUNK)
            return offset + len(data), data
    except OSError:
        return offset, b""


def routes() -> list[BaseRoute]:
    """The V1 routes."""
    return [
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/runs/soft-delete", soft_delete, methods=["POST"]),
        Route("/api/runs/{run_id}", run_resource, methods=["GET", "PATCH"]),
        Route("/api/runs/{run_id}/metrics", run_metrics, methods=["GET"]),
        Route("/api/runs/{run_id}/metrics_step", run_metrics, methods=["GET"]),
        Route("/api/recycle-bin", recycle_bin, methods=["GET"]),
        Route("/api/recycle-bin/restore", restore, methods=["POST"]),
        Route("/api/projects", projects, methods=["GET"]),
        Route("/api/projects/{project}/names", project_names, methods=["GET"]),
        Route("/api/projects/{project}/names/{name}/runs", name_runs, methods=["GET"]),
        WebSocketRoute("/api/runs/{run_id}/logs/ws", logs_ws),
    ]
