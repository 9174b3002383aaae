"""Every route of V1, V2, the health check and the web page."""

from __future__ import annotations

from starlette.routing import BaseRoute

from runicorn_lite.api import (
    analysis,
    events,
    export,
    favicon,
    files,
    health,
    session,
    uploads,
    v1,
    v1_paths,
    v1_recycle,
    v1_runs_files,
    v1_system,
    v1_ui_settings,
    v2,
    v2_runs,
    web,
)

# The web app's catch-all view paths come last, after every API path. The fixed V1 paths
# (/api/runs/export, /api/runs/permanent-delete) come before /api/runs/{run_id}.
API_MODULES = (
    health, session, uploads, v2_runs, v2, analysis, export, events, files, v1_recycle, v1_paths, v1_runs_files,
    v1_ui_settings, v1_system, v1,
)
WEB_MODULES = (web, favicon)


def routes(*, web_app: bool = True) -> list[BaseRoute]:
    """Every API route, and our web app's unless Runicorn's UI takes its place."""
    modules = API_MODULES + WEB_MODULES if web_app else API_MODULES
    return [route for module in modules for route in module.routes()]
