"""Runicorn's own web UI, served unchanged in place of ours (``serve --runicorn-ui``).

The bundle is the ``webui/`` folder that the ``runicorn`` package ships: read from the installed
package, from a folder, or straight from a downloaded ``runicorn-*.whl`` (a zip), without
importing or running any of Runicorn's code. Its files are read once into memory and served as
Runicorn's viewer serves them: every path that is not under ``/api`` and names no file of the
bundle answers ``index.html``, where the UI's own router takes over; ``/api`` is ours.

The bundle's file names carry a content hash (``assets/index-CwA3IHQ5.js``), so they are cached
for good; ``index.html`` is revalidated on each load.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import mimetypes
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

WHEEL_PREFIX = "runicorn/webui/"
# Types worth compressing (fonts and images are compressed already).
_COMPRESSIBLE = (".js", ".css", ".html", ".json", ".svg", ".map", ".txt")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".ico": "image/x-icon", ".svg": "image/svg+xml"}


class BundleError(Exception):
    """The bundle cannot be found or read; the message says where it was looked for."""


@dataclass(frozen=True)
class UIBundle:
    """Every file of Runicorn's web UI, by its path inside ``webui/`` (``assets/x.js``)."""

    files: dict[str, bytes]
    source: str  # where it was read from, for the start-up line
    version: str | None  # the runicorn version that shipped it, when known
    _gzipped: dict[str, bytes] = field(default_factory=dict, compare=False)

    @property
    def index(self) -> bytes:
        return self.files["index.html"]

    def gzipped(self, name: str) -> bytes:
        """The file gzipped (once, on first use)."""
        found = self._gzipped.get(name)
        if found is None:
            found = self._gzipped[name] = gzip.compress(self.files[name], 6, mtime=0)
        return found

    @functools.cached_property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.index).hexdigest()[:16] + '"'


def _from_folder(folder: Path, source: str) -> UIBundle:
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    version_file = folder.parent / "VERSION.txt"
    version = version_file.read_text().strip() if version_file.is_file() else None
    return _checked(files, source, version)


def _from_wheel(wheel: Path) -> UIBundle:
    try:
        with zipfile.ZipFile(wheel) as zf:
            files = {info.filename.removeprefix(WHEEL_PREFIX): zf.read(info) for info in zf.infolist()
                     if info.filename.startswith(WHEEL_PREFIX) and not info.is_dir()}
            names = set(zf.namelist())
            version = zf.read("runicorn/VERSION.txt").decode().strip() if "runicorn/VERSION.txt" in names else None
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{wheel} is not a readable wheel: {exc}") from None
    return _checked(files, str(wheel), version)


def _checked(files: dict[str, bytes], source: str, version: str | None) -> UIBundle:
    if "index.html" not in files:
        raise BundleError(f"{source} holds no Runicorn web UI (no index.html)")
    return UIBundle(files, source, version)


def installed_webui() -> Path | None:
    """The ``webui`` folder of the installed ``runicorn`` package (found without importing it)."""
    try:
        spec = importlib.util.find_spec("runicorn")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "webui"
        if (candidate / "index.html").is_file():
            return candidate
    return None


def load(source: Path | None) -> UIBundle:
    """The bundle from ``source`` (a ``webui`` folder, a folder holding one, or a runicorn
    wheel), or from the installed ``runicorn`` package when ``source`` is None."""
    if source is None:
        folder = installed_webui()
        if folder is None:
            raise BundleError(
                "the runicorn package is not installed in this environment: pip install runicorn==0.7.2, "
                "or give --runicorn-ui-bundle a runicorn wheel (pip download --no-deps runicorn==0.7.2)"
            )
        return _from_folder(folder, str(folder))
    if source.is_file():
        return _from_wheel(source)
    if (source / "index.html").is_file():
        return _from_folder(source, str(source))
    if (source / "webui" / "index.html").is_file():
        return _from_folder(source / "webui", str(source / "webui"))
    raise BundleError(f"{source} is neither a runicorn wheel nor a folder holding Runicorn's webui")


def _content_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/") or path == "/openapi.json"


def routes(bundle: UIBundle) -> list[Route]:
    """One catch-all route, to come after every API route."""

    async def serve(request: Request) -> Response:
        path: str = request.url.path
        if _is_api(path):  # an API path no route took: the API's own 404
            raise HTTPException(404)
        name = request.path_params["path"].strip("/")
        found = name in bundle.files and name != "index.html"
        if not found:
            name = "index.html"
        headers = {"X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
        if found and name.startswith("assets/"):
            headers["Cache-Control"] = "public, max-age=31536000, immutable"
        elif found:
            headers["Cache-Control"] = "public, max-age=3600"
        else:
            headers["Cache-Control"] = "no-cache"
            headers["ETag"] = bundle.etag
            if bundle.etag in request.headers.get("if-none-match", ""):
                return Response(status_code=304, headers=headers)
        body = bundle.files[name]
        if name.endswith(_COMPRESSIBLE) and "gzip" in request.headers.get("accept-encoding", ""):
            body = bundle.gzipped(name)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=_content_type(name), headers=headers)

    return [Route("/{path:path}", serve, methods=["GET", "HEAD"])]
