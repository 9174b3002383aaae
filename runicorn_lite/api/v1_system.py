"""The machine and the server as Runicorn 0.7.2's Performance, Remote and Diagnostics pages ask
for them: ``/api/system/monitor``, ``/api/gpu/telemetry`` (+ ``/config``, ``/history``),
``/api/remote/viewer/sessions``, ``/api/remote/connections/saved``, ``/api/diagnostics/…``.

What has no meaning on this server answers as Runicorn answers when it has nothing: no GPU
collector (telemetry not available, history empty), no remote sessions, no saved connections.
The diagnostics log is this server's own log since it started (``logbuffer``).
"""

from __future__ import annotations

import asyncio
import shutil

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from runicorn_lite import logbuffer, sysmonitor
from runicorn_lite.api.errors import not_found
from runicorn_lite.api.responses import JSONResponse
from runicorn_lite.http.query import Param, Query

SOURCE = "session"  # the one diagnostics source: this server's log
SOURCE_PATH = "(in memory) this runicorn-lite server's log since it started"
DEFAULT_TAIL_LINES = 400
MAX_TAIL_LINES = 5000
POLL_S = 0.5
LOGS_QUERY = Query.of(
    Param("source", "string", "Log source id (see /api/diagnostics/sources)", required=True, max_length=100),
    Param("lines", "integer", "Last N lines", default=DEFAULT_TAIL_LINES, minimum=1, maximum=MAX_TAIL_LINES),
    Param("download", "boolean", "The whole log as a file", default=False),
    strict=False,
)


async def system_monitor(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(sysmonitor.system_metrics))


def _gpu_reason() -> str:
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found in PATH"  # Runicorn's words on a machine without it
    return "GPU telemetry is not collected by runicorn-lite"


async def gpu_telemetry(request: Request) -> Response:
    return JSONResponse({"available": False, "reason": _gpu_reason()})


async def gpu_history(request: Request) -> Response:
    return JSONResponse({"available": False, "enabled": False, "samples": []})


async def gpu_config(request: Request) -> Response:
    if request.method == "POST":
        return JSONResponse({"ok": False, "error": "GPU collector not initialized"})
    return JSONResponse({"enabled": False, "interval_sec": 2, "max_duration_h": 24})


async def remote_sessions(request: Request) -> Response:
    return JSONResponse({"sessions": []})


async def saved_connections(request: Request) -> Response:
    return JSONResponse({"ok": True, "connections": []})


async def diagnostics_sources(request: Request) -> Response:
    return JSONResponse({
        "remoteMode": False,
        "appSessionId": f"runicorn-lite-{id(request.app):x}",
        "defaultSource": SOURCE,
        "sources": [{"id": SOURCE, "kind": SOURCE, "path": SOURCE_PATH, "available": True}],
    })


async def diagnostics_log(request: Request) -> Response:
    query = LOGS_QUERY.parse(request.query_params)
    if query["source"] != SOURCE:
        raise not_found(f"Unknown diagnostics source: {query['source'][:100]}")
    buffer = logbuffer.installed()
    _, lines = buffer.tail(logbuffer.MAX_LINES if query["download"] else query["lines"])
    headers = {"Cache-Control": "no-store"}
    if query["download"]:
        headers["Content-Disposition"] = 'attachment; filename="runicorn-lite.log"'
    return PlainTextResponse("\n".join(lines), headers=headers)


async def diagnostics_ws(websocket: WebSocket) -> None:
    """The log's last ``lines`` lines, then each new line as it is logged."""
    await websocket.accept()
    source = websocket.query_params.get("source", "")
    if source != SOURCE:  # as Runicorn: a text frame, then close 1008
        await websocket.send_text(f"[error] Unknown diagnostics source: {source[:100]}")
        await websocket.close(code=1008)
        return
    try:
        initial = int(websocket.query_params.get("lines", DEFAULT_TAIL_LINES))
    except ValueError:
        initial = DEFAULT_TAIL_LINES
    buffer = logbuffer.installed()
    seq, lines = buffer.tail(max(1, min(initial, MAX_TAIL_LINES)))
    try:
        while True:
            for line in lines:
                await websocket.send_text(line)
            try:
                message = await asyncio.wait_for(websocket.receive(), timeout=POLL_S)
            except TimeoutError:
                seq, lines = buffer.since(seq)
                continue
            if message["type"] == "websocket.disconnect":
                return
            lines = []
    except WebSocketDisconnect:
        return


def routes() -> list[BaseRoute]:
    return [
        Route("/api/system/monitor", system_monitor, methods=["GET"]),
        Route("/api/gpu/telemetry", gpu_telemetry, methods=["GET"]),
        Route("/api/gpu/telemetry/history", gpu_history, methods=["GET"]),
        Route("/api/gpu/telemetry/config", gpu_config, methods=["GET", "POST"]),
        Route("/api/remote/viewer/sessions", remote_sessions, methods=["GET"]),
        Route("/api/remote/connections/saved", saved_connections, methods=["GET"]),
        Route("/api/diagnostics/sources", diagnostics_sources, methods=["GET"]),
        Route("/api/diagnostics/logs", diagnostics_log, methods=["GET"]),
        WebSocketRoute("/api/diagnostics/logs/ws", diagnostics_ws),
    ]
