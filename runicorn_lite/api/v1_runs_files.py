"""V1 files of runs, as Runicorn 0.7.2's viewer answers them: one file (or a folder as a zip)
of a run by its absolute path, ``GET /api/runs/{id}/assets/download?path=`` (what the UI's
images and asset links use), and ``POST /api/runs/export {run_ids}``: the runs as one zip laid
out as a storage (``runs/<path>/<id>/…``), which Runicorn's import takes back.

Nothing outside a run directory is ever read: the path must lie inside the run's directory
(Runicorn: ``403 Unsafe path`` outside the storage, ``403 Path does not belong to this run``
elsewhere in it), a symlink is never followed out of it, and zips hold regular files only.
Runs are found through the index (one lookup), not a walk of the tree: a run page asks for
each of its images.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from runicorn_lite import rundir
from runicorn_lite.api import access
from runicorn_lite.api.context import context
from runicorn_lite.api.errors import ApiError, bad_request, not_found
from runicorn_lite.api.files import send_file
from runicorn_lite.api.params import check_text, json_object
from runicorn_lite.http.query import Param, Query
from runicorn_lite.queries.experiments import RunRef

MAX_EXPORT_IDS = 1000
DOWNLOAD_QUERY = Query.of(
    Param("path", "string", "Absolute path of a file or folder of the run", required=True, max_length=4096),
    Param("filename", "string", "Name to save the download under"),
    strict=False,
)


def regular_files(folder: Path) -> Iterator[tuple[Path, str]]:
    """Every regular file below ``folder`` with its path relative to it; symlinks (to files or
    folders) are skipped, never followed."""
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(base / d))
        for name in sorted(filenames):
            path = base / name
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    yield path, path.relative_to(folder).as_posix()
            except OSError:
                continue


def _zip_to_temp(entries: list[tuple[Path, str]]) -> Path:
    """A temporary zip of (file, name in the archive); the caller removes it."""
    fd, name = tempfile.mkstemp(prefix="runicorn_lite_", suffix=".zip")
    os.close(fd)
    tmp = Path(name)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path, arcname in entries:
                try:
                    zf.write(path, arcname)
                except OSError:  # vanished meanwhile: the rest still goes out
                    continue
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _zip_response(tmp: Path, filename: str) -> Response:
    return FileResponse(tmp, filename=filename, media_type="application/zip",
                        background=BackgroundTask(tmp.unlink, missing_ok=True))


def _download_name(raw: str | None, default: str) -> str:
    if raw is None:
        return default
    name = os.path.basename(raw.replace("\\", "/")).strip()
    return name if name and "\x00" not in name else default


async def located(request: Request, ids: list[str]) -> dict[str, RunRef]:
    """Where the index says these runs are, of those the request may see (ids that are not run
    ids are not looked up)."""
    ctx = context(request)
    valid = [i for i in ids if rundir.is_valid_run_id(i)]
    return await ctx.store.call(access.visible_locator(request, ctx.locate_indexed), valid) if valid else {}


async def download(request: Request) -> Response:
    query = DOWNLOAD_QUERY.parse(request.query_params)
    raw: str = query["path"]
    ctx = context(request)
    root = ctx.root
    run_id = request.path_params["run_id"]
    ref = (await located(request, [run_id])).get(run_id)
    if ref is None:
        raise not_found("Run not found")
    run_path = root / ref.rel_dir
    if "\x00" in raw:
        raise ApiError(403, "Unsafe path")
    target = os.path.normpath(raw)
    if not os.path.isabs(target) or os.path.commonpath([str(root), target]) != str(root):
        raise ApiError(403, "Unsafe path")
    run_dir = str(run_path)
    if os.path.commonpath([run_dir, target]) != run_dir:
        raise ApiError(403, "Path does not belong to this run")
    rel = os.path.relpath(target, run_dir)
    if await run_in_threadpool(_is_folder_inside, run_path, rel):
        entries = await run_in_threadpool(lambda: list(regular_files(run_path / rel)))
        tmp = await run_in_threadpool(_zip_to_temp, entries)
        name = _download_name(query["filename"], Path(target).name)
        return _zip_response(tmp, name if name.lower().endswith(".zip") else f"{name}.zip")
    name = _download_name(query["filename"], Path(target).name)
    disposition = {"content-disposition": f"attachment; filename=\"{_quoted(name)}\""}
    return await send_file(request, run_path, rel, "File not found", disposition)


def _quoted(name: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "_" for c in name)


def _is_folder_inside(run_dir: Path, rel: str) -> bool:
    """``rel`` is a real folder inside ``run_dir`` reached through no symlink."""
    current = run_dir
    for part in Path(rel).parts:
        current = current / part
        try:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                return False
        except OSError:
            return False
    return True


async def export_runs(request: Request) -> Response:
    body = await json_object(request)
    ids = body.get("run_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad_request("Field 'run_ids' is required: a list of run id strings")
    if not ids:
        raise bad_request("run_ids must not be empty")
    if len(ids) > MAX_EXPORT_IDS:
        raise bad_request(f"Cannot export more than {MAX_EXPORT_IDS} runs at once")
    for run_id in ids:
        check_text(run_id, "run_ids")
    wanted = list(dict.fromkeys(ids))
    ctx = context(request)
    refs = await located(request, wanted)
    for run_id in wanted:
        ref = refs.get(run_id)
        if ref is None or ref.deleted_at is not None:  # as Runicorn: the bin's runs are not exported
            raise not_found(f"Run not found: {run_id[:200]}")

    def build() -> tuple[Path, int]:
        entries: list[tuple[Path, str]] = []
        for run_id in wanted:
            ref = refs[run_id]
            prefix = f"runs/{ref.path}/{run_id}" if ref.path else f"runs/{run_id}"
            entries.extend((path, f"{prefix}/{rel}") for path, rel in regular_files(ctx.root / ref.rel_dir))
        return _zip_to_temp(entries), len(wanted)

    tmp, count = await run_in_threadpool(build)
    return _zip_response(tmp, f"runicorn_export_{count}runs_{time.strftime('%Y%m%d_%H%M%S')}.zip")


def routes() -> list[BaseRoute]:
    return [
        Route("/api/runs/export", export_runs, methods=["POST"]),
        Route("/api/runs/{run_id}/assets/download", download, methods=["GET"]),
    ]
