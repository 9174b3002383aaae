"""V1 path tree: ``GET /api/paths[?include_stats=true]``, ``GET /api/paths/tree`` and
``POST /api/paths/create``, answered as Runicorn 0.7.2 answers them, from the index.

Runicorn lists the folders under ``runs/`` (a walk) with per-path counts; here the paths come
from the index (one grouped query), which holds every run's path, soft-deleted ones too, so a
folder whose runs are all in the recycle bin stays in the tree with zero counts, as it does in
Runicorn (whose bin moves runs out and leaves the folder). Folders made through ``create``
hold no run, so the index cannot know them: they are remembered in our UI store and listed
while they exist.
"""

from __future__ import annotations

import os
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from runicorn_lite import rundir
from runicorn_lite.api import access
from runicorn_lite.api.context import AppContext, context, os_reason
from runicorn_lite.api.errors import ApiError, bad_request
from runicorn_lite.api.params import json_object
from runicorn_lite.api.responses import JSONResponse
from runicorn_lite.http.query import Param, Query

COUNTED = ("running", "finished", "failed")  # Runicorn's stats count these (and every run in total)
_SAFE_PATH = re.compile(r"^[a-zA-Z0-9_/\-. ]+$")  # Runicorn's own rule
MAX_PATH = 1000
MAX_SEGMENT = 200  # folder names: file systems stop at 255 bytes
PATHS_QUERY = Query.of(Param("include_stats", "boolean", "Add run counts per path"), strict=False)


def _ancestors(path: str) -> list[str]:
    """``a/b/c`` → ``a``, ``a/b``, ``a/b/c``."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def tree(paths: list[str]) -> dict[str, Any]:
    """The nested ``{segment: {...}}`` of Runicorn's ``tree``."""
    out: dict[str, Any] = {}
    for path in paths:
        node = out
        for part in path.split("/"):
            node = node.setdefault(part, {})
    return out


def path_stats(ctx: AppContext) -> dict[str, dict[str, int]]:
    """``{path: {total, running, finished, failed}}`` for every path and its ancestors; live runs
    are counted, and the paths of soft-deleted runs and created folders are there with zeros."""
    rows = ctx.index.read(lambda conn: conn.execute(
        "SELECT path, status, deleted_at IS NOT NULL, COUNT(*) FROM experiments GROUP BY 1, 2, 3").fetchall())
    stats: dict[str, dict[str, int]] = {}
    for path, status, deleted, count in rows:
        if not path:
            continue
        for ancestor in _ancestors(path):
            entry = stats.setdefault(ancestor, {"total": 0, "running": 0, "finished": 0, "failed": 0})
            if not deleted:
                entry["total"] += count
                if status in COUNTED:
                    entry[status] += count
    for created in existing_created_paths(ctx):
        for ancestor in _ancestors(created):
            stats.setdefault(ancestor, {"total": 0, "running": 0, "finished": 0, "failed": 0})
    return stats


def existing_created_paths(ctx: AppContext) -> list[str]:
    """The folders made through ``create`` that are still there."""
    runs = ctx.root / rundir.RUNS_DIRNAME
    return [p for p in ctx.preferences.created_paths() if os.path.isdir(runs / p)]


async def list_paths(request: Request) -> Response:
    include_stats = PATHS_QUERY.parse(request.query_params)["include_stats"]
    ctx = context(request)
    stats = _visible(request, await ctx.store.call(path_stats, ctx))
    paths = sorted(stats)
    body: dict[str, Any] = {"paths": paths, "tree": tree(paths)}
    if include_stats:
        body["stats"] = stats
    return JSONResponse(body)


async def path_tree(request: Request) -> Response:
    stats = _visible(request, await context(request).store.call(path_stats, context(request)))
    return JSONResponse({"tree": tree(sorted(stats))})


def _visible(request: Request, stats: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The paths of the projects the request may see (a path's first segment is its project)."""
    if access.who(request) is None:
        return stats
    return {p: s for p, s in stats.items() if access.sees(request, p.split("/", 1)[0])}


def checked_new_path(raw: object) -> str:
    """The folder path of a ``create`` body, as Runicorn reads it (trimmed, no leading or
    trailing ``/``), refused when it could name anything but a plain folder under ``runs/``."""
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise bad_request("Field 'path' must be a string")
    target = raw.strip().strip("/")
    if not target:
        raise bad_request("path is required")
    if ".." in target:
        raise bad_request("path must not contain '..'")
    if len(target) > MAX_PATH or not _SAFE_PATH.match(target):
        raise bad_request("path contains invalid characters")
    parts = target.split("/")
    if any(not p.strip() or p.startswith(".") for p in parts):
        raise bad_request("path segments must not be empty or start with '.'")
    if any(len(p.encode()) > MAX_SEGMENT for p in parts):
        raise bad_request(f"path segments must be at most {MAX_SEGMENT} bytes long")
    return "/".join(parts)


async def create_path(request: Request) -> Response:
    ctx = context(request)
    body = await json_object(request)
    target = checked_new_path(body.get("path"))
    if not access.sees(request, target.split("/", 1)[0]):  # a project's key: folders of its project
        raise ApiError(403, "This key may create folders under its own project only")
    ctx.require_writable()
    runs = ctx.root / rundir.RUNS_DIRNAME

    def make() -> None:
        current = runs
        try:
            for part in target.split("/"):
                current = current / part
                if not os.path.lexists(current):
                    break
                if os.path.islink(current) or not current.is_dir():
                    raise bad_request("path runs into something that is not a folder")
                if (current / rundir.META).exists() or (current / rundir.STATUS).exists():
                    raise bad_request("path must not lead into a run's directory")
            final = runs / target
            if os.path.lexists(final):
                raise ApiError(409, "Path already exists")
            final.mkdir(parents=True)
        except OSError as exc:
            raise ApiError(403, f"Cannot create the folder: {os_reason(exc)}") from None
        ctx.preferences.add_created_path(target)

    await run_in_threadpool(make)
    return JSONResponse({"ok": True, "path": target})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/paths", list_paths, methods=["GET"]),
        Route("/api/paths/tree", path_tree, methods=["GET"]),
        Route("/api/paths/create", create_path, methods=["POST"]),
    ]
