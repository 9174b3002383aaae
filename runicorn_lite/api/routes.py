"""Every route of V1, V2, the health check and the web page."""

from __future__ import annotations

from starlette.routing import BaseRoute

from runicorn_lite.api import analysis, events, export, favicon, files, health, v1, v1_recycle, v2, web

# The web app's catch-all view paths come last, after every API path.
MODULES = (health, v2, analysis, export, events, files, v1_recycle, v1, web, favicon)


def routes() -> list[BaseRoute]:
    return [route for module in MODULES for route in module.routes()]
