"""The web page: one static HTML file that reads the V2 API."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

_PAGE: bytes | None = None


async def index(request: Request) -> Response:
    global _PAGE
    if _PAGE is None:
        _PAGE = resources.files("runicorn_lite.web").joinpath("index.html").read_bytes()
    return HTMLResponse(_PAGE)


def routes() -> list[Route]:
    return [Route("/", index, methods=["GET"])]
