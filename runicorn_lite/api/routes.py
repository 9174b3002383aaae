"""Every route of V1, V2, the health check and the web page."""

from __future__ import annotations

from starlette.routing import BaseRoute

from runicorn_lite.api import favicon, files, health, v1, v2, web


def routes() -> list[BaseRoute]:
    return [*health.routes(), *v2.routes(), *files.routes(), *v1.routes(), *web.routes(), *favicon.routes()]
