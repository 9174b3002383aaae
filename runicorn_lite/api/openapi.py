"""``GET /openapi.json``: every route, its parameters and responses.

The document is written here, next to nothing else, and a test checks that every route of the
app appears in it, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from runicorn_lite import __version__
from runicorn_lite.api.responses import JSONResponse


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _p(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


_ERR = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
_OPT_ERR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "hint": {"type": "string"}, "issues": {"type": "object"},
                   "timestamp": {"type": "string"}},
    "required": ["error", "timestamp"],
}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _errors(*codes: int, opt: bool = False) -> dict[str, Any]:
    text = {400: "Invalid parameter or body", 401: "Missing or invalid API key", 403: "Another project",
            404: "Not found", 409: "Conflict", 429: "Rate limit exceeded", 304: "Not modified"}
    out: dict[str, Any] = {}
    for code in codes:
        out[str(code)] = {"description": text[code]} if code == 304 else _json(text[code], _OPT_ERR if opt else _ERR)
    return out


_EXP_ID = _p("exp_id", "Experiment (run) id")
_RUN_ID = _p("run_id", "Run id")
_OPT_ID = _p("run_id", "Optimization run UUID")
_LIST_FILTERS = [
    _q("project", {"type": "string"}, "Exact project"),
    _q("status", {"type": "string"}, "Comma list of running, finished, failed, interrupted"),
    _q("created_after", {"type": "number"}, "Unix seconds, inclusive"),
    _q("created_before", {"type": "number"}, "Unix seconds, inclusive"),
]
_OPT_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/health", "get"): {
        "summary": "Liveness, version and indexing progress",
        "responses": {"200": _json("Health")},
    },
    ("/api/v2/experiments", "get"): {
        "summary": "List experiments with filters, sorting and pagination (from the index)",
        "parameters": [
            *_LIST_FILTERS,
            _q("name", {"type": "string"}, "Exact experiment name"),
            _q("tags", {"type": "string"}, "Comma list; an experiment with any of them matches"),
            _q("search", {"type": "string"}, "Case-insensitive substrings (every word must match)"),
            _q("best_metric_min", {"type": "number"}, "Minimum best metric value"),
            _q("best_metric_max", {"type": "number"}, "Maximum best metric value"),
            _q("include_deleted", {"type": "boolean", "default": False}, "Include soft-deleted"),
            _q("page", {"type": "integer", "minimum": 1, "default": 1}, "1-based page"),
            _q("per_page", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}, "Page size"),
            _q("order_by", {"type": "string", "default": "created_at", "anyOf": [
                {"enum": ["created_at", "updated_at", "best_metric_value", "status", "name", "project", "ended_at"]},
                {"pattern": "^(params|metrics)\\..+"}]},
               "Sort field: a column, params.<key> or metrics.<name>.<last|min|max|first|count>"
               " (NULLs and runs lacking the field last, ties by id)"),
            _q("filter", {"type": "string", "maxLength": 2000},
               "Expression over params and metric summaries, e.g. params.lr < 0.01 and metrics.acc.max > 0.9"),
            _q("include", {"type": "string"}, "Comma list of params, metrics: add them to each row"),
            _q("order_desc", {"type": "boolean", "default": True}, "Descending"),
        ],
        "responses": {"200": _json("A page of experiments"), **_errors(400, 429)},
    },
    ("/api/v2/experiments/{exp_id}", "get"): {
        "summary": "Experiment detail with metrics summary",
        "parameters": [_EXP_ID],
        "responses": {"200": _json("Detail"), **_errors(404, 429)},
    },
    ("/api/v2/experiments/{exp_id}/metrics/fast", "get"): {
        "summary": "Metric curves, filtered and downsampled",
        "parameters": [
            _EXP_ID,
            _q("metric_names", {"type": "string"}, "Comma list of metrics"),
            _q("step_range", {"type": "string"}, "min:max inclusive; either side may be empty"),
            _q("downsample", {"type": "integer", "minimum": 2, "maximum": 100000}, "At most N rows (LTTB)"),
        ],
        "responses": {"200": _json("Columns and rows"), **_errors(400, 404, 429)},
    },
    ("/api/v2/experiments/{exp_id}/images", "get"): {
        "summary": "Images the run logged (image events), in step order, with their file URLs",
        "parameters": [_EXP_ID],
        "responses": {"200": _json("images"), **_errors(404, 429)},
    },
    ("/api/v2/experiments/batch-delete", "post"): {
        "summary": "Soft-delete up to 1000 experiments (writes .deleted markers)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["exp_ids"],
            "properties": {"exp_ids": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
                           "reason": {"type": "string"}}}}}},
        "responses": {"200": _json("deleted, failed, results, errors"), **_errors(400, 429)},
    },
    ("/api/v2/experiments/batch-restore", "post"): {
        "summary": "Restore up to 1000 soft-deleted experiments",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["exp_ids"],
            "properties": {"exp_ids": {"type": "array", "items": {"type": "string"}, "maxItems": 1000}}}}}},
        "responses": {"200": _json("restored, deleted, failed, results, errors"), **_errors(400)},
    },
    ("/api/v2/experiments/{exp_id}/files/{path}", "get"): {
        "summary": "One file of the run directory (images under media/, logs.txt, ...): ETag, Range",
        "parameters": [_p("exp_id", "Experiment id"), _p("path", "Path inside the run directory")],
        "responses": {"200": {"description": "The file"}, "206": {"description": "One byte range"},
                      "304": {"description": "Not modified (If-None-Match / If-Modified-Since)"},
                      **_errors(404), "416": _json("Range outside the file", _ERR)},
    },
    ("/api/v2/analytics/summary", "get"): {
        "summary": "Aggregates over live experiments",
        "parameters": _LIST_FILTERS,
        "responses": {"200": _json("Summary"), **_errors(400)},
    },
    ("/api/runs", "get"): {
        "summary": "V1: all live runs, newest first (file scan)",
        "responses": {"200": _json("Runs", {"type": "array"})},
    },
    ("/api/runs/soft-delete", "post"): {
        "summary": "V1: soft-delete up to 100 runs",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["run_ids"],
            "properties": {"run_ids": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
                           "reason": {"type": "string"}}}}}},
        "responses": {"200": _json("deleted_count, results {id: {success, error?}}, message"), **_errors(400)},
    },
    ("/api/runs/{run_id}", "get"): {"summary": "V1: run detail (with assets, assets_count)", "parameters": [_RUN_ID],
                                    "responses": {"200": _json("Run"), **_errors(404)}},
    ("/api/runs/{run_id}", "patch"): {
        "summary": "V1: set alias, tags, description (written to meta.json)",
        "parameters": [_RUN_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"alias": {"type": ["string", "null"]},
                                             "tags": {"type": "array", "items": {"type": "string"}},
                                             "description": {"type": ["string", "null"]}}}}}},
        "responses": {"200": _json("ok, alias, tags"), **_errors(400, 403, 404)},
    },
    ("/api/runs/{run_id}/images", "get"): {
        "summary": "V1: the run's logged images (step, key, absolute path)", "parameters": [_RUN_ID],
        "responses": {"200": _json("run_id, images"), **_errors(404)},
    },
    ("/api/runs/{run_id}/assets", "get"): {
        "summary": "V1: the run's assets.json", "parameters": [_RUN_ID],
        "responses": {"200": _json("run_id, assets, assets_count"), **_errors(404)},
    },
    ("/api/environment/{run_id}", "get"): {
        "summary": "V1: the run's environment.json", "parameters": [_RUN_ID],
        "responses": {"200": _json("available, environment"), **_errors(404)},
    },
    ("/api/runs/{run_id}/metrics", "get"): {
        "summary": "V1: metric rows by step",
        "parameters": [_RUN_ID, _q("downsample", {"type": "integer"}, "At most N rows")],
        "responses": {"200": _json("columns, rows, total, sampled"), **_errors(400, 404)},
    },
    ("/api/runs/{run_id}/metrics_step", "get"): {
        "summary": "V1: metric rows by step (same as /metrics)",
        "parameters": [_RUN_ID, _q("downsample", {"type": "integer"}, "At most N rows")],
        "responses": {"200": _json("columns, rows, total, sampled"), **_errors(400, 404)},
    },
    ("/api/runs/{run_id}/logs/ws", "get"): {
        "summary": "V1: WebSocket that streams logs.txt and follows it", "parameters": [_RUN_ID],
        "responses": {"101": {"description": "Switching protocols"}},
    },
    ("/api/recycle-bin", "get"): {"summary": "V1: soft-deleted runs", "responses": {"200": _json("deleted_runs")}},
    ("/api/recycle-bin/restore", "post"): {
        "summary": "V1: restore soft-deleted runs",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["run_ids"],
            "properties": {"run_ids": {"type": "array", "items": {"type": "string"}, "maxItems": 100}}}}}},
        "responses": {"200": _json("restored_count, results {id: {success, error?}}, message"), **_errors(400)},
    },
    ("/api/recycle-bin/empty", "post"): {
        "summary": "V1: delete every soft-deleted run directory for good",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["confirm"],
            "properties": {"confirm": {"type": "boolean", "enum": [True]}}}}}},
        "responses": {"200": _json("permanently_deleted, message, deleted_ids"), **_errors(400)},
    },
    ("/api/projects", "get"): {"summary": "V1: project names", "responses": {"200": _json("projects")}},
    ("/api/projects/{project}/names", "get"): {
        "summary": "V1: experiment names of a project", "parameters": [_p("project", "Project")],
        "responses": {"200": _json("names"), **_errors(404)},
    },
    ("/api/projects/{project}/names/{name}/runs", "get"): {
        "summary": "V1: runs of one project and name", "parameters": [_p("project", "Project"), _p("name", "Name")],
        "responses": {"200": _json("runs")},
    },
    ("/api/iris/optimization/runs", "get"): {
        "summary": "List optimization runs", "security": _OPT_SECURITY,
        "parameters": [
            _q("project_id", {"type": "string"}, "Must be the key's project"),
            _q("status", {"type": "string", "enum": ["pending", "running", "completed", "failed", "cancelled"]},
               "Status"),
            _q("optimizer_type", {"type": "string", "enum": [
                "bayesian", "grid_search", "random_search", "genetic", "gradient_descent"]}, "Optimizer"),
            _q("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}, "Page size"),
            _q("offset", {"type": "integer", "minimum": 0, "default": 0}, "Offset"),
            _q("order_by", {"type": "string", "enum": ["created_at", "final_score", "duration_ms"],
                            "default": "created_at"}, "Sort field"),
            _q("order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}, "Direction"),
        ],
        "responses": {"200": _json("runs, pagination, metadata"), **_errors(304, 400, 401, 403, 429, opt=True)},
    },
    ("/api/iris/optimization/runs", "post"): {
        "summary": "Create an optimization run", "security": _OPT_SECURITY,
        "responses": {"201": _json("run, metadata"), **_errors(400, 401, 429, opt=True)},
    },
    ("/api/iris/optimization/runs/{run_id}", "get"): {
        "summary": "One run with its iterations and stats", "security": _OPT_SECURITY, "parameters": [_OPT_ID],
        "responses": {"200": _json("run, iterations, stats, metadata"), **_errors(304, 400, 401, 404, 429, opt=True)},
    },
    ("/api/iris/optimization/runs/{run_id}", "patch"): {
        "summary": "Update a run", "security": _OPT_SECURITY, "parameters": [_OPT_ID],
        "responses": {"200": _json("run, metadata"), **_errors(400, 401, 404, 409, 429, opt=True)},
    },
    ("/api/iris/optimization/runs/{run_id}/iterations", "post"): {
        "summary": "Add an iteration", "security": _OPT_SECURITY, "parameters": [_OPT_ID],
        "responses": {"201": _json("iteration, runUpdates, metadata"), **_errors(400, 401, 404, 409, 429, opt=True)},
    },
    ("/api/iris/optimization/runs/{run_id}/iterations/batch", "post"): {
        "summary": "Add up to 1000 iterations, all or nothing", "security": _OPT_SECURITY, "parameters": [_OPT_ID],
        "responses": {"201": _json("iterations, runUpdates, metadata"), **_errors(400, 401, 404, 409, 429, opt=True)},
    },
    ("/api/iris/optimization/stats", "get"): {
        "summary": "Aggregated statistics", "security": _OPT_SECURITY,
        "parameters": [
            _q("project_id", {"type": "string"}, "Must be the key's project"),
            _q("optimizer_type", {"type": "string"}, "Optimizer"),
            _q("status", {"type": "string"}, "Status"),
            _q("start_date", {"type": "string", "format": "date-time"}, "Created at or after"),
            _q("end_date", {"type": "string", "format": "date-time"}, "Created at or before"),
        ],
        "responses": {"200": _json("statistics"), **_errors(304, 400, 401, 403, 429, opt=True)},
    },
    ("/", "get"): {"summary": "The web page", "responses": {"200": {"description": "HTML"}}},
    ("/openapi.json", "get"): {"summary": "This document", "responses": {"200": _json("OpenAPI 3.1")}},
}


def route_methods(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """(path, method) for every HTTP and WebSocket route, mounted apps included."""
    out: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            sub = getattr(route.app, "routes", None) or getattr(getattr(route.app, "router", None), "routes", [])
            out |= route_methods(list(sub), prefix + route.path)
        elif isinstance(route, Route):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", prefix + route.path)  # {path:path} is {path} in OpenAPI
            for method in route.methods or ():
                if method != "HEAD":
                    out.add((path, method.lower()))
        elif isinstance(route, WebSocketRoute):
            out.add((prefix + route.path, "get"))
    return out


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {}
    for (path, method), op in OPERATIONS.items():
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "runicorn_lite", "version": __version__},
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


def openapi_route() -> Route:
    """The /openapi.json route."""
    body = document()

    async def openapi(request: Request) -> Response:
        return JSONResponse(body)

    return Route("/openapi.json", openapi, methods=["GET"])
