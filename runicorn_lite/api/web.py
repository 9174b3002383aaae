"""The web page: one static HTML file that reads the V2 API."""

from __future__ import annotations

import functools
from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route


@functools.cache
def _page() -> bytes:
    return resources.files("runicorn_lite.web").joinpath("index.html").read_bytes()


async def index(request: Request) -> Response:
    return HTMLResponse(_page())


def routes() -> list[Route]:
    return [Route("/", index, methods=["GET"])]
