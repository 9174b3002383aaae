"""``/favicon.ico``: browsers ask for it on every site, whatever the page links to.

It answers the web app's icon when the app ships one (``web/favicon.ico`` or
``web/favicon.svg``), else a small built-in one, never a 404 in the log and the console.
"""

from __future__ import annotations

import functools
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# A rounded square with a sparkline: what a run's curve looks like.
BUILT_IN = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    b'<rect width="32" height="32" rx="7" fill="#4f46e5"/>'
    b'<path d="M5 23l6-7 5 4 5-9 6 5" fill="none" stroke="#fff" stroke-width="3" '
    b'stroke-linecap="round" stroke-linejoin="round"/></svg>'
)
_TYPES = (("favicon.ico", "image/x-icon"), ("favicon.svg", "image/svg+xml"))


@functools.cache
def icon() -> tuple[bytes, str]:
    """The icon's bytes and content type."""
    web = resources.files("runicorn_lite.web")
    for name, content_type in _TYPES:
        candidate = web.joinpath(name)
        if candidate.is_file():
            return candidate.read_bytes(), content_type
    return BUILT_IN, "image/svg+xml"


async def favicon(request: Request) -> Response:
    body, content_type = icon()
    return Response(body, media_type=content_type, headers={"Cache-Control": "public, max-age=86400"})


def routes() -> list[Route]:
    return [Route("/favicon.ico", favicon, methods=["GET"])]
