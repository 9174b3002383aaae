"""``/api/...`` (V1, Runicorn-compatible): answered by reading the run directories on each request.

This is the honest baseline V2 is measured against: a straightforward scan through the same
format module the ingester uses, not a deliberately slowed one. Writes go to the files first and
then reach the index through the indexer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from runicorn_lite import rundir
from runicorn_lite.api import access
from runicorn_lite.api.context import Locator, context, os_reason
from runicorn_lite.api.errors import ApiError, not_found
from runicorn_lite.api.params import json_object, meta_changes
from runicorn_lite.api.responses import JSONResponse, rows_response
from runicorn_lite.api.v1_scan import newest_first, run_entry, shared_scan
from runicorn_lite.http.query import Param, Query
from runicorn_lite.queries.experiments import RunRef
from runicorn_lite.queries.metrics import MAX_DOWNSAMPLE
from runicorn_lite.queries.steptable import StepTable

LOG_POLL_S = 0.25
MAX_LOG_CHUNK = 1 << 20


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


def locate_by_scan(root: Path, sees: Callable[[str], bool] = lambda project: True) -> Locator:
    """A Locator (see AppContext) that finds runs by walking the files, as V1 does (only runs of
    the projects that ``sees`` accepts)."""

    def locate(ids: list[str]) -> dict[str, RunRef]:
        wanted = set(ids)
        out: dict[str, RunRef] = {}
        for loc in rundir.iter_runs(root):
            if loc.run_id in wanted and loc.run_id not in out:
                info = rundir.read_run(loc)
                if info is not None and sees(info.project):
                    rel = info.run_dir.relative_to(root).as_posix()
                    out[info.id] = RunRef(rel, info.status, info.deleted_at, info.path)
        return out

    return locate


def run_detail(info: rundir.RunInfo) -> dict[str, Any]:
    """The body of ``GET /api/runs/{id}``."""
    start = info.started_at or info.created_at
    end = info.ended_at if info.ended_at is not None else (time.time() if info.status == "running" else None)
    assets = rundir.read_assets(info.run_dir) or {}
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
        # Runicorn 0.7.2 names the files behind its other routes, and adds the assets.
        "logs": str(info.run_dir / rundir.LOGS),
        "metrics": str(info.run_dir / rundir.EVENTS),
        "metrics_step": str(info.run_dir / rundir.EVENTS),
        "assets": assets,
        "assets_count": rundir.assets_count(assets),
    }


async def list_runs(request: Request) -> Response:
    scanned = await shared_scan(request).get()
    if access.who(request) is None:  # every run is visible: the body the scan encoded once
        return Response(scanned.runs_body, media_type="application/json")

    def build() -> list[dict[str, Any]]:
        infos = [i for i in scanned.infos if i.deleted_at is None and access.sees(request, i.project)]
        return [run_entry(i) for i in newest_first(infos)]

    return JSONResponse(await run_in_threadpool(build))


async def _found(request: Request) -> rundir.RunInfo:
    root = context(request).root
    info = await run_in_threadpool(find_run, root, request.path_params["run_id"])
    if info is None or not access.sees(request, info.project):
        raise not_found("Run not found")
    return info


async def get_run(request: Request) -> Response:
    return JSONResponse(run_detail(await _found(request)))


def metrics_table(events: Path) -> StepTable:
    """The run's metrics as Runicorn 0.7.2 answers them: one row per step (a step with only a
    ``time`` or ``stage`` too), every metric plus ``stage`` and ``time``, read a window at a time
    so that memory holds columns, never the events."""
    table = StepTable()
    offset, last_step = 0, None
    while True:
        labels: dict[int, dict[str, Any]] = {}
        chunk = rundir.read_events(events, offset, last_step, labels=labels, max_bytes=rundir.EVENTS_WINDOW)
        for name, points in chunk.points.items():
            steps = sorted(points)
            table.add_numbers(name, steps, [points[s] for s in steps])
        if labels:
            steps = sorted(labels)
            for name in ("stage", "time"):
                have = [s for s in steps if name in labels[s]]
                if not have:
                    continue
                if name == "time":
                    table.add_numbers(name, have, [float(labels[s][name]) for s in have])
                else:
                    table.add_texts(name, have, [_shared(labels[s][name]) for s in have])
        offset, last_step = chunk.offset, chunk.last_step
        if not chunk.more:
            return table


_TEXTS: dict[str, str] = {}


def _shared(text: str) -> str:
    """One object per distinct stage name, not one per step."""
    return _TEXTS.setdefault(text, text) if len(_TEXTS) < 10_000 else text


# Runicorn's clients may send what its viewer takes: parameters we do not know are let through.
METRICS_QUERY = Query.of(
    Param("downsample", "integer", "At most N rows", minimum=2, maximum=MAX_DOWNSAMPLE), strict=False
)


async def run_metrics(request: Request) -> Response:
    downsample: int | None = METRICS_QUERY.parse(request.query_params)["downsample"]
    info = await _found(request)
    events = info.run_dir / rundir.EVENTS
    big_answers = context(request).store.big_answers
    huge = await run_in_threadpool(_file_size, events) > big_answers.event_bytes

    def build() -> tuple[StepTable, list[int] | None]:
        table = metrics_table(events)
        return table, table.pick(downsample)

    async with big_answers.place(needed=huge) as ticket:
        table, picks = await run_in_threadpool(build)
        total = len(table)
        sampled = total if picks is None else len(picks)
        headers = {"x-row-count": str(sampled), "x-total-count": str(total)}
        if sampled:
            headers["x-last-step"] = str(table.steps[picks[-1] if picks else -1])
        columns = ["global_step", *table.names()] if total else []
        head = b'{"columns":' + orjson.dumps(columns) + b',"rows":['
        tail = b'],"total":' + str(total).encode() + b',"sampled":' + str(sampled).encode() + b"}"
        return rows_response(head, table, picks, tail, headers, ticket)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


async def patch_run(request: Request) -> Response:
    ctx = context(request)
    body = await json_object(request)
    changes = meta_changes(body)
    ctx.require_writable()
    info = await _found(request)

    def write() -> tuple[dict[str, Any], list[Path]]:
        if not changes:
            return info.meta, []
        try:
            meta = rundir.update_meta(info.run_dir, changes)
        except OSError as exc:
            raise ApiError(403, f"Cannot write to the run directory: {os_reason(exc)}") from None
        return meta, [info.run_dir]

    meta = await ctx.edit(write)
    tags = meta.get("tags")
    tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
    return JSONResponse({"ok": True, "alias": meta.get("alias"), "tags": tags})


async def run_resource(request: Request) -> Response:
    """``/api/runs/{id}``: one route for both methods, so a 405 there lists both in ``Allow``
    (Starlette answers a wrong method from the first route whose path matches)."""
    if request.method == "PATCH":
        return await patch_run(request)
    return await get_run(request)


async def run_images(request: Request) -> Response:
    """The run's image events whose file exists, in file order, each path absolute (as Runicorn
    0.7.2 answers); a path that leaves the run directory is left out."""
    info = await _found(request)

    def build() -> list[dict[str, Any]]:
        out = []
        for data in _image_events(info.run_dir / rundir.EVENTS):
            rel = rundir.safe_relative_path(data.get("path"))
            target = rundir.file_inside(info.run_dir, rel) if rel is not None else None
            if target is not None:
                step = data.get("step")
                key = data.get("key")
                out.append({"step": step if isinstance(step, int) and not isinstance(step, bool) else None,
                            "key": key if isinstance(key, str) and key else "image", "path": str(target)})
        return out

    return JSONResponse({"run_id": info.id, "images": await run_in_threadpool(build)})


def _image_events(path: Path) -> Iterator[dict[str, Any]]:
    """The ``data`` of every ``image`` event in events.jsonl, in file order."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError:
        return
    with fh:
        for line in fh:
            if b'"image"' not in line:  # cheap: most lines are metrics
                continue
            event = rundir.parse_event_line(line)
            if event is not None and event.get("type") == "image" and isinstance(event.get("data"), dict):
                yield event["data"]


async def run_assets(request: Request) -> Response:
    info = await _found(request)
    assets = await run_in_threadpool(rundir.read_assets, info.run_dir)
    return JSONResponse({"run_id": info.id, "assets": assets or {}, "assets_count": rundir.assets_count(assets)})


async def run_environment(request: Request) -> Response:
    root = context(request).root
    run_id = request.path_params["run_id"]
    info = await run_in_threadpool(find_run, root, run_id)
    if info is None or not access.sees(request, info.project):
        raise not_found(f"Run {run_id[:200]} not found")
    env = await run_in_threadpool(rundir.read_json_object, info.run_dir / rundir.ENVIRONMENT)
    return JSONResponse({"available": env is not None, "environment": env})


async def projects(request: Request) -> Response:
    infos = (await shared_scan(request).get()).infos
    names = sorted({i.project for i in infos if i.deleted_at is None and access.sees(request, i.project)})
    return JSONResponse({"projects": names})


async def project_names(request: Request) -> Response:
    project = request.path_params["project"]
    infos = (await shared_scan(request).get()).infos
    live = [i for i in infos if i.deleted_at is None and i.project == project]
    if not live or not access.sees(request, project):
        raise not_found(f"Project {project[:200]} not found")
    return JSONResponse({"project": project, "names": sorted({i.name for i in live})})


async def name_runs(request: Request) -> Response:
    project, name = request.path_params["project"], request.path_params["name"]
    infos = (await shared_scan(request).get()).infos
    live = newest_first([i for i in infos if i.deleted_at is None and i.project == project and i.name == name
                         and access.sees(request, project)])
    entries = await run_in_threadpool(lambda: [run_entry(i) for i in live])
    return JSONResponse({"project": project, "name": name, "runs": entries})


async def logs_ws(websocket: WebSocket) -> None:
    """Send logs.txt line by line, then follow it as the run appends."""
    root = context(websocket).root
    info = await run_in_threadpool(find_run, root, websocket.path_params["run_id"])
    await websocket.accept()
    if info is None or not access.sees(websocket, info.project):  # as Runicorn 0.7.2: a text frame, then a normal close
        await websocket.send_text("[error] run not found")
        await websocket.close()
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
    """The V1 routes (the recycle bin's are in v1_recycle, which builds on this module's scan)."""
    return [
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/runs/{run_id}", run_resource, methods=["GET", "PATCH"]),
        Route("/api/runs/{run_id}/metrics", run_metrics, methods=["GET"]),
        Route("/api/runs/{run_id}/metrics_step", run_metrics, methods=["GET"]),
        Route("/api/runs/{run_id}/images", run_images, methods=["GET"]),
        Route("/api/runs/{run_id}/assets", run_assets, methods=["GET"]),
        Route("/api/environment/{run_id}", run_environment, methods=["GET"]),
        Route("/api/projects", projects, methods=["GET"]),
        Route("/api/projects/{project}/names", project_names, methods=["GET"]),
        Route("/api/projects/{project}/names/{name}/runs", name_runs, methods=["GET"]),
        WebSocketRoute("/api/runs/{run_id}/logs/ws", logs_ws),
    ]
