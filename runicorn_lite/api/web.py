"""The web app: one HTML shell for every app URL, and its static assets.

Assets are served under ``/assets/<version>/…`` where the version is a hash of every file of the
app, so they can be cached for good (``immutable``): a new release has new URLs. ES modules import
each other by relative path, so the version prefix carries through without rewriting any file.
The shell itself is revalidated on every load (``no-cache`` + ETag) and carries a
Content-Security-Policy that allows no inline script and nothing from another origin.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ASSETS_PREFIX = "/assets/"
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Paths of the app's views; each answers the same shell and the client-side router takes over.
APP_PATHS = (
    "/",
    "/runs",
    "/runs/{exp_id}",
    "/compare",
    "/overview",
    "/bin",
    "/optimization",
    "/optimization/{run_id}",
)


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str


@dataclass(frozen=True)
class Bundle:
    version: str
    shell: bytes
    assets: dict[str, Asset]


def _walk(folder: Traversable, prefix: str = "") -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for entry in folder.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            if entry.name != "__pycache__":
                files.update(_walk(entry, name + "/"))
        elif any(entry.name.endswith(ext) for ext in CONTENT_TYPES) or entry.name == "index.html":
            files[name] = entry.read_bytes()
    return files


@functools.cache
def load_bundle() -> Bundle:
    """Every file of the app, read once (the package's files do not change while it runs)."""
    files = _walk(resources.files("runicorn_lite.web"))
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    version = digest.hexdigest()[:12]
    shell = files.pop("index.html").replace(b"%ASSETS%", f"{ASSETS_PREFIX}{version}".encode())
    assets = {
        name: Asset(body, gzip.compress(body, 9, mtime=0), CONTENT_TYPES["." + name.rsplit(".", 1)[-1]])
        for name, body in files.items()
    }
    return Bundle(version, shell, assets)


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match", "")
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in header.split(","))


async def shell(request: Request) -> Response:
    bundle = load_bundle()
    etag = f'"{bundle.version}"'
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "ETag": etag}
    if _etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(bundle.shell, media_type="text/html; charset=utf-8", headers=headers)


async def asset(request: Request) -> Response:
    bundle = load_bundle()
    found = bundle.assets.get(request.path_params["path"])
    if found is None:
        return Response("Not found", status_code=404, media_type="text/plain")
    # An old shell may still ask for a former version: answer the current file, uncached.
    current = request.path_params["version"] == bundle.version
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable" if current else "no-cache",
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    body = found.body
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = found.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=found.content_type, headers=headers)


def routes() -> list[Route]:
    return [
        *(Route(path, shell, methods=["GET"]) for path in APP_PATHS),
        Route(ASSETS_PREFIX + "{version}/{path:path}", asset, methods=["GET"]),
    ]
