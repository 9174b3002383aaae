"""What Runicorn's settings dialog and tables read and save, as Runicorn 0.7.2 answers it:
``/api/config``, ``/api/config/column-widths``, ``/api/config/dismissed-alerts`` and
``/api/storage/stats``.

The saved settings live in our own store, one set per server (see ``preferences``), never in
Runicorn's ``~/.config/runicorn``. Where Runicorn names its own config file, we have none and
say ``null`` (its UI then shows "Not available").
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from runicorn_lite.api.context import AppContext, context
from runicorn_lite.api.errors import bad_request
from runicorn_lite.api.params import check_text, json_object
from runicorn_lite.api.responses import JSONResponse
from runicorn_lite.db import in_db_thread
from runicorn_lite.http.query import Param, Query

MAX_NAME = 200
MAX_COLUMNS = 500
WIDTHS_QUERY = Query.of(
    Param("table", "string", "Table identifier", required=True, max_length=MAX_NAME),
    Param("size", "string", "Window size key, e.g. 1920x1080", required=True, max_length=MAX_NAME),
    strict=False,
)
RESET_QUERY = Query.of(
    Param("table", "string", "Table identifier", required=True, max_length=MAX_NAME),
    Param("size", "string", "Window size key (all sizes when absent)", max_length=MAX_NAME),
    strict=False,
)


def storage_backend(ctx: AppContext) -> dict[str, Any]:
    """What serves the runs, in the shape of Runicorn's ``storage_backend``: our SQLite index,
    available unless it is being rebuilt."""
    available = ctx.keeper.rebuilding is None and ctx.index.damaged is None
    return {"mode": "sqlite", "label": "SQLite-backed", "available": available, "backend_class": "RunicornLiteIndex"}


async def get_config(request: Request) -> Response:
    ctx = context(request)
    return JSONResponse({
        "user_root_dir": str(ctx.root),
        "storage": str(ctx.root),
        "config_file": None,  # settings of this server live in its store, not in a config file
        "home_directory": str(Path.home().resolve()),
        "storage_backend": storage_backend(ctx),
    })


# ---- column widths ----------------------------------------------------------------------------


async def get_column_widths(request: Request) -> Response:
    query = WIDTHS_QUERY.parse(request.query_params)
    prefs = context(request).preferences
    widths = await in_db_thread(prefs.column_widths, query["table"], query["size"])
    return JSONResponse({"table": query["table"], "size": query["size"], "widths": widths})


def _name(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise bad_request(f"Field '{field}' is required: a string of 1 to {MAX_NAME} characters")
    return check_text(value, field)


def _optional_int(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
        raise bad_request(f"Field '{field}' must be an integer from 0 to 1000000, or null")
    return value


async def save_column_widths(request: Request) -> Response:
    body = await json_object(request)
    table, size = _name(body, "table"), _name(body, "size")
    widths = body.get("widths")
    if not isinstance(widths, dict) or len(widths) > MAX_COLUMNS or not all(
        isinstance(k, str) and len(k) <= MAX_NAME and isinstance(v, int) and not isinstance(v, bool)
        and 0 <= v <= 100_000 for k, v in widths.items()
    ):
        raise bad_request(f"Field 'widths' is required: an object of at most {MAX_COLUMNS} columns, "
                          "each width an integer from 0 to 100000")
    for column in widths:
        check_text(column, "widths")
    window = (_optional_int(body, "window_width"), _optional_int(body, "window_height"))
    await in_db_thread(context(request).preferences.save_column_widths, table, size, widths, window)
    return JSONResponse({"ok": True, "message": "Column width preferences saved"})


async def reset_column_widths(request: Request) -> Response:
    query = RESET_QUERY.parse(request.query_params)
    await in_db_thread(context(request).preferences.reset_column_widths, query["table"], query["size"])
    return JSONResponse({"ok": True, "message": "Column width preferences reset"})


async def column_widths(request: Request) -> Response:
    """``/api/config/column-widths``: one route for its three methods (a 405 names them all)."""
    if request.method == "POST":
        return await save_column_widths(request)
    if request.method == "DELETE":
        return await reset_column_widths(request)
    return await get_column_widths(request)


# ---- dismissed alerts -------------------------------------------------------------------------


async def dismissed_alerts(request: Request) -> Response:
    alerts = await in_db_thread(context(request).preferences.dismissed_alerts)
    return JSONResponse({"dismissed_alerts": alerts})


async def _alert_id(request: Request) -> str:
    return _name(await json_object(request), "alert_id")


async def dismiss_alert(request: Request) -> Response:
    alert_id = await _alert_id(request)
    await in_db_thread(context(request).preferences.dismiss, alert_id)
    return JSONResponse({"ok": True, "message": f"Alert '{alert_id}' dismissed"})


async def undismiss_alert(request: Request) -> Response:
    alert_id = await _alert_id(request)
    await in_db_thread(context(request).preferences.undismiss, alert_id)
    return JSONResponse({"ok": True, "message": f"Alert '{alert_id}' restored"})


async def clear_dismissed_alerts(request: Request) -> Response:
    await in_db_thread(context(request).preferences.clear_dismissed)
    return JSONResponse({"ok": True, "message": "All dismissed alerts cleared"})


# ---- storage stats ----------------------------------------------------------------------------


def human_size(size: float) -> str:
    """Runicorn's ``_format_size``: ``33.94 KB``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024.0:
            return f"{size:.2f} {unit}"
        size /= 1024.0
    return f"{size:.2f} PB"


def tree_size(path: Path) -> tuple[int, int]:
    """(bytes, files) of the regular files below ``path``; symlinks are not followed."""
    total = count = 0
    for dirpath, dirnames, filenames in os.walk(path):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not os.path.islink(base / d)]
        for name in filenames:
            try:
                st = os.lstat(base / name)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total, count = total + st.st_size, count + 1
    return total, count


def _sized(size: int, **more: Any) -> dict[str, Any]:
    return {"size_bytes": size, "size_human": human_size(size), **more}


def storage_stats(ctx: AppContext) -> dict[str, Any]:
    """Runicorn's storage statistics: the live runs (which the index names) and their sizes,
    the archive folder of a Runicorn storage when there is one, and our index files."""
    rows = ctx.index.read(lambda conn: conn.execute(
        "SELECT run_dir, path FROM experiments WHERE deleted_at IS NULL").fetchall())
    runs_size = sum(tree_size(ctx.root / rel)[0] for rel, _ in rows)
    archive = ctx.root / "archive"
    (blobs, n_blobs), (outputs, n_outputs) = tree_size(archive / "blobs"), tree_size(archive / "outputs")
    manifests_root = archive / "manifests"
    manifests, n_manifests = tree_size(manifests_root)
    categories = {}
    if manifests_root.is_dir() and not manifests_root.is_symlink():
        for folder in sorted(manifests_root.iterdir()):
            if folder.is_dir() and not folder.is_symlink():
                size, count = tree_size(folder)
                categories[folder.name] = _sized(size, file_count=count)
    index_path = ctx.settings.index_path
    index_size = sum(p.stat().st_size for p in (index_path, Path(f"{index_path}-wal")) if p.is_file())
    archive_size = blobs + manifests + outputs
    return {
        "storage_root": str(ctx.root),
        "total": _sized(archive_size + runs_size + index_size),
        "archive": _sized(
            archive_size,
            blobs=_sized(blobs, file_count=n_blobs),
            manifests=_sized(manifests, file_count=n_manifests, by_category=categories),
            outputs=_sized(outputs, file_count=n_outputs),
        ),
        "runs": _sized(runs_size, paths_count=len({p for _, p in rows if p}), runs_count=len(rows)),
        "index": _sized(index_size),
    }


async def get_storage_stats(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(storage_stats, context(request)))


def routes() -> list[BaseRoute]:
    return [
        Route("/api/config", get_config, methods=["GET"]),
        Route("/api/config/column-widths", column_widths, methods=["GET", "POST", "DELETE"]),
        Route("/api/config/column-widths/reset", reset_column_widths, methods=["POST"]),
        Route("/api/config/dismissed-alerts", dismissed_alerts, methods=["GET"]),
        Route("/api/config/dismissed-alerts/dismiss", dismiss_alert, methods=["POST"]),
        Route("/api/config/dismissed-alerts/undismiss", undismiss_alert, methods=["POST"]),
        Route("/api/config/dismissed-alerts/clear", clear_dismissed_alerts, methods=["POST"]),
        Route("/api/storage/stats", get_storage_stats, methods=["GET"]),
    ]
