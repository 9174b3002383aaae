"""``GET /api/v2/experiments/{id}/files/{path}``: one file of a run, confined to its directory.

The run directory comes from the index (soft-deleted runs included). The path must stay inside
it: ``..``, absolute paths, NUL and symlinks that resolve outside all answer 404, the same as a
file that is not there, so the answer says nothing about what lies outside.

The file is opened once and everything (length, ETag, the bytes sent) comes from that open
file, so a ``logs.txt`` that grows while it is being sent is served as it was when opened,
never with more bytes than the declared length. Bytes are streamed in 1 MB reads: memory stays
flat whatever the file's size. Single ``Range`` requests answer 206; a range that starts past the
end answers 416; malformed or multi-part ranges are ignored (the whole file, 200), as HTTP
allows.
"""

from __future__ import annotations

import enum
import hashlib
import mimetypes
import os
import re
import stat
from collections.abc import AsyncIterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any, NamedTuple

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from runicorn_lite import rundir
from runicorn_lite.api import access
from runicorn_lite.api.context import context
from runicorn_lite.api.errors import ApiError, not_found
from runicorn_lite.images import CONTENT_TYPES

CHUNK = 1 << 20
MAX_RANGE_HEADER = 1000
_RANGE_PART = re.compile(r"^\s*(\d{0,19})\s*-\s*(\d{0,19})\s*$")
# Types a browser would run or render as a page from our origin: sent as text instead.
_ACTIVE_TYPES = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml", "text/javascript",
                           "application/javascript", "text/xml", "application/xml"})
_TEXT_SUFFIXES = {".txt": "text/plain", ".log": "text/plain", ".jsonl": "application/x-ndjson",
                  ".json": "application/json", ".csv": "text/csv", ".yaml": "text/plain", ".yml": "text/plain",
                  ".md": "text/plain", ".py": "text/plain", ".lock": "text/plain"}
# A file's bytes never become a page: no scripts, no plugins, no sniffing into another type.
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "content-security-policy": "default-src 'none'; sandbox"}


def content_type(path: str) -> str:
    """The media type a file is served with, from its name (images by their own extensions)."""
    suffix = Path(path).suffix.lower()
    if suffix.lstrip(".") in CONTENT_TYPES:
        return CONTENT_TYPES[suffix.lstrip(".")]
    if suffix == ".jpeg":
        return CONTENT_TYPES["jpg"]
    guessed = _TEXT_SUFFIXES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    if guessed in _ACTIVE_TYPES:
        guessed = "text/plain"
    if guessed.startswith("text/") or guessed in ("application/json", "application/x-ndjson"):
        guessed += "; charset=utf-8"
    return guessed


class ByteRange(NamedTuple):
    """A satisfiable byte range of a file (``end`` exclusive)."""

    start: int
    end: int


class NoRange(enum.Enum):
    """What a Range header that gives no ``ByteRange`` asks for."""

    IGNORED = "ignored"  # malformed, another unit, several ranges: the whole file, 200
    UNSATISFIABLE = "unsatisfiable"  # past the end, or an empty suffix: 416


def parse_range(header: str, size: int) -> ByteRange | NoRange:
    """The single byte range ``header`` asks for in a file of ``size`` bytes, or why there is none."""
    if len(header) > MAX_RANGE_HEADER:
        return NoRange.IGNORED
    unit, sep, spec = header.partition("=")
    parts = [p for p in spec.split(",") if p.strip()]
    match = _RANGE_PART.match(parts[0]) if sep and unit.strip().lower() == "bytes" and len(parts) == 1 else None
    if match is None or not (match.group(1) or match.group(2)):
        return NoRange.IGNORED
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
        if last and int(last) < start:
            return NoRange.IGNORED
    else:
        suffix = int(last)
        start, end = (max(size - suffix, 0), size) if suffix else (size, size)
    return ByteRange(start, end) if start < size else NoRange.UNSATISFIABLE


def _etag(st: os.stat_result) -> str:
    digest = hashlib.md5(f"{st.st_mtime_ns}-{st.st_size}-{st.st_ino}".encode(), usedforsecurity=False)
    return f'"{digest.hexdigest()}"'


def _not_modified(request: Request, etag: str, mtime: float) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since:
        try:
            return int(mtime) <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError, OverflowError):
            return False
    return False


class _Chunks:
    """The bytes [start, end) of an open file, read in CHUNK pieces off the event loop. Owns the
    descriptor: closed when the stream ends, fails, or is dropped without being read."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        self.fd, self.start, self.end = fd, start, end

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            offset = self.start
            while offset < self.end and self.fd >= 0:
                chunk = await anyio.to_thread.run_sync(os.pread, self.fd, min(CHUNK, self.end - offset), offset)
                if not chunk:  # the file shrank since it was opened: stop (the client sees a short body)
                    break
                offset += len(chunk)
                yield chunk
        finally:
            self.close()


def _open_inside(run_dir: Path, raw: str) -> tuple[int, os.stat_result, str] | None:
    rel = rundir.safe_relative_path(raw)
    if rel is None or rundir.file_inside(run_dir, rel) is None:
        return None
    real = os.path.realpath(run_dir / rel)
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return fd, st, rel


async def run_file(request: Request) -> Response:
    ctx = context(request)
    exp_id: str = request.path_params["exp_id"]
    raw: str = request.path_params["path"]
    missing = f"File {raw[:200]!r} not found in experiment {exp_id[:200]}"
    if not rundir.is_valid_run_id(exp_id):
        raise not_found(f"Experiment {exp_id[:200]} not found")
    await access.require_visible(request, exp_id)

    def locate(conn: Any) -> str | None:
        row = conn.execute("SELECT run_dir FROM experiments WHERE id = ?", (exp_id,)).fetchone()
        return row[0] if row else None

    rel_dir = await ctx.store.read(locate)
    if rel_dir is None:
        raise not_found(f"Experiment {exp_id} not found")
    return await send_file(request, ctx.root / rel_dir, raw, missing)


async def send_file(request: Request, run_dir: Path, raw: str, missing: str,
                    extra_headers: dict[str, str] | None = None) -> Response:
    """The regular file ``raw`` (a path relative to ``run_dir``, confined to it) with ETag,
    ranges and the security headers; 404 ``missing`` when there is no such file."""
    opened = await anyio.to_thread.run_sync(_open_inside, run_dir, raw)
    if opened is None:
        raise not_found(missing)
    fd, st, rel = opened
    chunks = _Chunks(fd, 0, st.st_size)  # owns fd from here on
    etag = _etag(st)
    headers = {"etag": etag, "last-modified": formatdate(st.st_mtime, usegmt=True), "accept-ranges": "bytes",
               "cache-control": "no-cache", **SECURITY_HEADERS, **(extra_headers or {})}
    if _not_modified(request, etag, st.st_mtime):
        chunks.close()
        return Response(status_code=304, headers=headers)
    status = 200
    header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if header is not None and (if_range is None or if_range in (etag, headers["last-modified"])):
        parsed = parse_range(header, st.st_size)
        if parsed is NoRange.UNSATISFIABLE:
            chunks.close()
            raise ApiError(416, f"Range {header[:100]!r} is outside the file ({st.st_size} bytes)",
                           {"content-range": f"bytes */{st.st_size}", **SECURITY_HEADERS})
        if isinstance(parsed, ByteRange):
            chunks.start, chunks.end = parsed
            status = 206
            headers["content-range"] = f"bytes {chunks.start}-{chunks.end - 1}/{st.st_size}"
    headers["content-length"] = str(chunks.end - chunks.start)
    if request.method == "HEAD":
        chunks.close()
        return Response(status_code=status, headers=headers, media_type=content_type(rel))
    return StreamingResponse(chunks, status_code=status, headers=headers, media_type=content_type(rel))


def routes() -> list[Route]:
    """The files route (under /api/v2)."""
    return [Route("/api/v2/experiments/{exp_id}/files/{path:path}", run_file, methods=["GET", "HEAD"])]
