"""``/api/uploads``: run directories mirrored from other machines (team-server.md §4).

The wire protocol (also in the README and /openapi.json). A run is named by its directory
relative to the data root, ``run=runs/<project>/<name…>/<run_id>``, exactly where the SDK wrote
it on the training machine; the server keeps it at the same place under its own root.

- ``GET /api/uploads/state?run=REL`` → ``{"run", "files": {name: {"size", "sha256"?}}}``: what
  the server holds (``sha256`` for the replaced files; for ``meta.json`` that of the last copy
  uploaded, which the server's own edits do not change).
- ``PUT /api/uploads/file?run=REL&name=NAME&offset=N`` (body: the bytes of NAME from offset N):
  an append. Bytes the server holds already are skipped (a replayed or overlapping piece changes
  nothing), the rest is appended; a piece that starts past the end (a gap) is 409 with the
  ``size`` the server holds, so the client resumes there. Answer: ``{"name", "size"}``.
- ``PUT /api/uploads/file?run=REL&name=NAME`` without ``offset``: the whole file, replaced
  (the JSON files the SDK rewrites whole). ``meta.json`` is merged: a field that the server
  changed since the last upload (tags, alias, description through the API) keeps the server's
  value, every other field takes the uploaded one; with no server change the uploaded bytes are
  stored as they are (byte-identical copies).

Appended names: ``events.jsonl``, ``logs.txt``, ``media/<file>``; replaced names: ``meta.json``,
``status.json``, ``summary.json``, ``assets.json``, ``environment.json``. Anything else is 400,
as are ``..``, absolute paths, NUL, overlong names and symlinks on the server side. Every
upload needs a key, whatever ``--auth`` says (the middleware: http/auth.py ALWAYS_KEYED); the
key's project must be the run's (403, nothing written; a key of every project may upload any)
and read-only keys cannot upload. Bodies past ``MAX_PIECE`` are 413 while they arrive.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runicorn_lite import rundir
from runicorn_lite.api.context import context
from runicorn_lite.api.errors import ApiError, bad_request
from runicorn_lite.api.responses import JSONResponse
from runicorn_lite.http.auth import principal_of
from runicorn_lite.http.body import BodyTooLarge, read_body
from runicorn_lite.http.query import Param, Query

MAX_PIECE = 8 << 20  # bytes of one request body
APPENDED = (rundir.EVENTS, rundir.LOGS)
REPLACED = (rundir.META, rundir.STATUS, rundir.SUMMARY, rundir.ASSETS, rundir.ENVIRONMENT)
_MEDIA_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")
_SEGMENT_MAX = 255
_RUN_MAX = 1024
# The last meta.json the SDK sent, kept to tell the server's own edits from the SDK's.
BASE_META = ".upload-meta.json"

STATE_QUERY = Query.of(Param("run", "string", "The run directory relative to the root: runs/<project>/<name…>/<run_id>",
                             required=True))
FILE_QUERY = STATE_QUERY.with_(
    Param("name", "string", "The file, relative to the run directory (events.jsonl, media/<file>, meta.json…)",
          required=True),
    Param("offset", "integer", "Append from this byte offset (absent: replace the whole file)", minimum=0,
          maximum=1 << 50),
)

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        if len(_locks) > 10_000:  # forgotten runs: drop the idle locks
            for k in [k for k, v in _locks.items() if not v.locked()]:
                del _locks[k]
        return _locks.setdefault(key, threading.Lock())


def run_parts(rel: str) -> tuple[str, ...]:
    """The segments of ``runs/<project>/<name…>/<run_id>``, or 400 saying what is wrong."""
    if len(rel) > _RUN_MAX or "\x00" in rel or "\\" in rel or rel.startswith("/"):
        raise bad_request("Parameter 'run' must be runs/<project>/<name…>/<run_id> (relative, no NUL or backslash)")
    parts = tuple(rel.split("/"))
    if len(parts) < 3 or parts[0] != rundir.RUNS_DIRNAME:
        raise bad_request("Parameter 'run' must be runs/<project>/<name…>/<run_id>")
    for part in parts[1:]:
        if not part or part in (".", "..") or part.startswith(".") or len(part) > _SEGMENT_MAX \
                or any(ord(c) < 32 for c in part):
            raise bad_request(f"Parameter 'run' has an invalid segment {part[:100]!r}")
    if not rundir.is_valid_run_id(parts[-1]):
        raise bad_request(f"Parameter 'run' ends in {parts[-1][:100]!r}, which is not a run id")
    return parts


def check_name(name: str) -> str:
    """A file name of the run-directory layout, or 400."""
    if name in APPENDED or name in REPLACED:
        return name
    if name.startswith(rundir.MEDIA + "/") and _MEDIA_NAME.fullmatch(name[len(rundir.MEDIA) + 1 :]):
        return name
    raise bad_request(f"Parameter 'name' {name[:100]!r} is not a file of a run directory (events.jsonl, logs.txt, "
                      "media/<file>, meta.json, status.json, summary.json, assets.json, environment.json)")


def _no_symlinks(root: Path, target: Path) -> None:
    """400 when a directory on the way from the root to ``target``, or target itself, is a symlink."""
    path = root
    for part in target.relative_to(root).parts:
        path = path / part
        if path.is_symlink():
            raise bad_request("The run directory on the server holds a symbolic link where a file was expected")


def _authorize(request: Request, parts: tuple[str, ...]) -> None:
    principal = principal_of(request.scope)
    if principal is None:  # the middleware lets no upload through without one
        raise ApiError(401, "Uploads need an API key")
    if not principal.sees(parts[1]):
        raise ApiError(403, f"This key is for project {principal.project_id!r}; the run is of project {parts[1]!r}")


async def _located(request: Request, q: Any) -> tuple[Path, tuple[str, ...]]:
    ctx = context(request)
    parts = run_parts(q["run"])
    _authorize(request, parts)
    run_id = parts[-1]
    rel = "/".join(parts)
    found = await ctx.store.call(ctx.index.read_one, "SELECT run_dir FROM experiments WHERE id = ?", (run_id,))
    if found is not None and found[0] != rel:
        raise ApiError(409, f"Run id {run_id} is taken by another run directory on this server")
    return ctx.root / rel, parts


async def state(request: Request) -> Response:
    q = STATE_QUERY.parse(request.query_params)
    run_dir, parts = await _located(request, q)

    def sizes() -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if run_dir.is_symlink() or not run_dir.is_dir():
            return out
        for name in APPENDED:
            size = _lstat(run_dir / name)
            if size is not None:
                out[name] = {"size": size}
        for name in REPLACED:
            source = run_dir / (BASE_META if name == rundir.META else name)
            if _lstat(source) is not None and _lstat(run_dir / name) is not None:
                data = source.read_bytes()
                out[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        media = run_dir / rundir.MEDIA
        if media.is_dir() and not media.is_symlink():
            for entry in os.scandir(media):
                if entry.is_file(follow_symlinks=False) and _MEDIA_NAME.fullmatch(entry.name):
                    out[f"{rundir.MEDIA}/{entry.name}"] = {"size": entry.stat(follow_symlinks=False).st_size}
        return out

    return JSONResponse({"run": "/".join(parts), "files": await run_in_threadpool(sizes)})


def _lstat(path: Path) -> int | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return st.st_size if not path.is_symlink() else None


async def put_file(request: Request) -> Response:
    ctx = context(request)
    q = FILE_QUERY.parse(request.query_params)
    name = check_name(q["name"])
    offset: int | None = q["offset"]
    if offset is None and name not in REPLACED:
        raise bad_request(f"{name} is appended: give the byte offset of this piece (offset=N)")
    if offset is not None and name in REPLACED:
        raise bad_request(f"{name} is replaced whole: send it without offset")
    run_dir, parts = await _located(request, q)
    ctx.require_writable()
    try:
        body = await read_body(request, MAX_PIECE)
    except BodyTooLarge as exc:
        raise ApiError(413, f"Request body too large: at most {exc.limit} bytes a piece") from None
    target = run_dir / name

    def write() -> tuple[int, int | None]:
        with _lock(str(target)):
            target.parent.mkdir(parents=True, exist_ok=True)
            _no_symlinks(ctx.root, target)
            if offset is None:
                _replace(run_dir, name, body, parts[1])
                return len(body), None
            return _append(target, offset, body)

    try:
        size, gap = await run_in_threadpool(write)
    except OSError as exc:
        raise ApiError(507 if exc.errno == 28 else 403, f"Cannot write {name}: {exc.strerror or exc}") from None
    if gap is not None:
        raise ApiError(409, f"Offset {offset} is past the end of {name} on the server ({gap} bytes): "
                       f"send from offset {gap}", {"X-Upload-Size": str(gap)})
    # The watcher sees the change (within its 150 ms debounce) and indexes it: no index write here.
    return JSONResponse({"name": name, "size": size})


def _append(target: Path, offset: int, body: bytes) -> tuple[int, int | None]:
    """Append the part of ``body`` past the end of ``target`` (which must reach ``offset``):
    (size now, None), or (size, size) for a gap."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    try:
        # The thread lock orders this process's writers; flock also another process's (several
        # workers answering one port), so two copies of one piece never both append.
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if offset > size:
            return size, size
        fresh = body[size - offset :]
        if fresh:
            os.write(fd, fresh)
        return size + len(fresh), None
    finally:
        os.close(fd)


def _replace(run_dir: Path, name: str, body: bytes, project: str) -> None:
    target = run_dir / name
    if name == rundir.META:
        # The merge reads what the server edited and writes it back: under the run directory's
        # lock, which the server's own edits of meta.json take too (rundir.update_meta), in
        # this process and in every other worker.
        with rundir.dir_lock(run_dir):
            _write_atomically(target, _merged_meta(run_dir, body, project))
        return
    _write_atomically(target, body)


def _write_atomically(target: Path, body: bytes) -> None:
    tmp = target.parent / f".upload-{target.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(body)
    os.replace(tmp, target)


def _merged_meta(run_dir: Path, uploaded: bytes, project: str) -> bytes:
    """meta.json as stored: the uploaded bytes, unless the server changed fields since the last
    upload (the API's tags, alias, description...), which then keep the server's values."""
    try:
        new = json.loads(uploaded)
    except ValueError:
        raise bad_request("meta.json is not valid JSON") from None
    if not isinstance(new, dict):
        raise bad_request("meta.json must be a JSON object")
    if "project" in new and new["project"] != project:
        # The project decides who may see the run: it is the one of the path the key was checked on.
        raise ApiError(403, f"meta.json names project {str(new['project'])[:100]!r}, the run's path {project!r}")
    base = rundir.read_json_object(run_dir / BASE_META)
    current = rundir.read_json_object(run_dir / rundir.META)
    _write_atomically(run_dir / BASE_META, uploaded)
    if current is None or base is None:
        return uploaded
    edited = {k for k in set(current) | set(base) if current.get(k, _MISSING) != base.get(k, _MISSING)}
    if not edited:
        return uploaded
    merged = {k: v for k, v in new.items() if k not in edited}
    for key in edited:
        if key in current:
            merged[key] = current[key]
    return json.dumps(merged, ensure_ascii=False, indent=2).encode()


_MISSING = object()


def routes() -> list[Route]:
    return [
        Route("/api/uploads/state", state, methods=["GET"]),
        Route("/api/uploads/file", put_file, methods=["PUT"]),
    ]
