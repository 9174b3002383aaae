"""The OpenAPI 3.1 document: pieces to declare operations with, and the route that serves them.

Each API declares its own operations next to its own constants (``api/openapi.py``,
``optimization/openapi.py``); the server joins them into one document, and a test checks that
every route of the app appears in it, so the two cannot drift apart.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from runicorn_lite.http.auth import COOKIE_NAME
from runicorn_lite.http.responses import JSONResponse
from runicorn_lite.version import __version__

Operations = dict[tuple[str, str], dict[str, Any]]

ERROR_TEXT = {
    304: "Not modified", 400: "Invalid parameter or body", 401: "Missing or invalid API key",
    403: "Forbidden: another project, or a read-only data root", 404: "Not found", 409: "Conflict",
    413: "Request body too large", 429: "Rate limit exceeded",
    503: "The store is busy, being rebuilt or damaged, or the query took too long",
    507: "The disk holding the store is full: the run's files changed, its index did not (yet)",
}


def query(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    """A query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description, **extra}


def path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A path parameter (a string unless ``schema`` says more)."""
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"},
            "description": description}


def json_content(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON answer."""
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """A required JSON request body."""
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def errors(error_schema: dict[str, Any], *codes: int) -> dict[str, Any]:
    """The error answers of an operation, in one API's error shape."""
    return {
        str(code): {"description": ERROR_TEXT[code]} if code == 304 else json_content(ERROR_TEXT[code], error_schema)
        for code in codes
    }


def endpoint_methods(route: Route) -> list[str]:
    """The methods of a route: its list, or those an HTTPEndpoint class defines."""
    if route.methods:
        return sorted(route.methods)
    endpoint = route.endpoint
    if inspect.isclass(endpoint) and issubclass(endpoint, HTTPEndpoint):
        return [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(endpoint, m)]
    return []


def route_methods(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """(path, method) for every HTTP and WebSocket route, mounted apps included."""
    out: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            sub = getattr(route.app, "routes", None) or getattr(getattr(route.app, "router", None), "routes", [])
            out |= route_methods(list(sub), prefix + route.path)
        elif isinstance(route, Route):
            route_path = re.sub(r"\{(\w+):\w+\}", r"{\1}", prefix + route.path)  # {path:path} is {path} in OpenAPI
            out |= {(route_path, m.lower()) for m in endpoint_methods(route) if m != "HEAD"}
        elif isinstance(route, WebSocketRoute):
            out.add((prefix + route.path, "get"))
    return out


def mounted(operations: Operations, prefix: str) -> Operations:
    """The operations of an app mounted at ``prefix``."""
    return {(prefix + op_path, method): op for (op_path, method), op in operations.items()}


def document(*operation_sets: Mapping[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these operations."""
    paths: dict[str, dict[str, Any]] = {}
    for operations in operation_sets:
        for (op_path, method), op in operations.items():
            paths.setdefault(op_path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "runicorn_lite", "version": __version__},
        "servers": [{"url": "/"}],
        # With serve --auth keys every /api request but /api/health and /api/auth/session needs
        # one of the two (the optimization API: the bearer key of a project).
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME},
        }},
        "paths": paths,
    }


def openapi_route(doc: dict[str, Any]) -> Route:
    """The /openapi.json route serving ``doc``."""

    async def openapi(request: Request) -> Response:
        return JSONResponse(doc)

    return Route("/openapi.json", openapi, methods=["GET"])
