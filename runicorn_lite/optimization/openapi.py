"""The OpenAPI operations of the optimization API (paths relative to where it is mounted).

Enums and limits come from ``model``, the constants validation checks against.
"""

from __future__ import annotations

from typing import Any

from runicorn_lite.http.openapi import Operations, errors, json_body, json_content, path, query
from runicorn_lite.optimization.app import MAX_BODY_BYTES
from runicorn_lite.optimization.model import (
    DIRECTIONS,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    LIMIT_MIN,
    MAX_BATCH,
    MAX_ERROR_MESSAGE,
    MAX_INT,
    MAX_PROJECT_ID,
    MAX_RUN_NAME,
    OPTIMIZER_TYPES,
    ORDER_BY,
    ORDERS,
    STATUSES,
)

ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "hint": {"type": "string"}, "issues": {"type": "object"},
                   "timestamp": {"type": "string"}},
    "required": ["error", "timestamp"],
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def _errors(*codes: int) -> dict[str, Any]:
    return errors(ERROR, *codes)


_RUN_ID = path("run_id", "Optimization run UUID", {"type": "string", "format": "uuid"})
_PROJECT = query("project_id", {"type": "string", "maxLength": MAX_PROJECT_ID}, "Must be the key's project")
_STATUS = query("status", {"type": "string", "enum": list(STATUSES)}, "Status")
_OPTIMIZER = query("optimizer_type", {"type": "string", "enum": list(OPTIMIZER_TYPES)}, "Optimizer")
_OBJECT = {"type": "object"}
_COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
_RUN_NAME = {"type": "string", "maxLength": MAX_RUN_NAME}
_ITERATION = {
    "type": "object",
    "required": ["iteration_number", "params", "score"],
    "properties": {"iteration_number": _COUNT, "params": _OBJECT, "score": {"type": "number"},
                   "metrics": _OBJECT, "metadata": _OBJECT, "duration_ms": _COUNT},
}
_BODY_LIMIT = f"Bodies over {MAX_BODY_BYTES} bytes are refused with 413."

OPERATIONS: Operations = {
    ("/runs", "get"): {
        "summary": "List optimization runs", "security": SECURITY,
        "parameters": [
            _PROJECT, _STATUS, _OPTIMIZER,
            query("limit", {"type": "integer", "minimum": LIMIT_MIN, "maximum": LIMIT_MAX, "default": LIMIT_DEFAULT},
                  "Page size"),
            query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INT, "default": 0}, "Offset"),
            query("order_by", {"type": "string", "enum": list(ORDER_BY), "default": ORDER_BY[0]}, "Sort field"),
            query("order", {"type": "string", "enum": list(ORDERS), "default": "desc"}, "Direction"),
        ],
        "responses": {"200": json_content("runs, pagination, metadata"), **_errors(304, 400, 401, 403, 429, 503)},
    },
    ("/runs", "post"): {
        "summary": "Create an optimization run", "security": SECURITY, "description": _BODY_LIMIT,
        "requestBody": json_body({
            "type": "object", "required": ["optimizer_type", "config"],
            "properties": {"run_name": _RUN_NAME, "optimizer_type": {"type": "string", "enum": list(OPTIMIZER_TYPES)},
                           "config": _OBJECT, "search_space": _OBJECT, "metadata": _OBJECT,
                           "direction": {"type": "string", "enum": list(DIRECTIONS)},
                           "project_id": {"type": "string", "maxLength": MAX_PROJECT_ID}},
        }),
        "responses": {"201": json_content("run, metadata"), **_errors(400, 401, 403, 413, 429, 503, 507)},
    },
    ("/runs/{run_id}", "get"): {
        "summary": "One run with its iterations and stats", "security": SECURITY, "parameters": [_RUN_ID, _PROJECT],
        "responses": {"200": json_content("run, iterations, stats, metadata"),
                      **_errors(304, 400, 401, 403, 404, 429, 503)},
    },
    ("/runs/{run_id}", "patch"): {
        "summary": "Update a run", "security": SECURITY, "parameters": [_RUN_ID], "description": _BODY_LIMIT,
        "requestBody": json_body({
            "type": "object",
            "properties": {"status": {"type": "string", "enum": list(STATUSES)}, "final_score": {"type": "number"},
                           "best_params": _OBJECT, "iterations_count": _COUNT, "duration_ms": _COUNT,
                           "completed_at": {"type": "string", "format": "date-time"},
                           "error_message": {"type": "string", "maxLength": MAX_ERROR_MESSAGE},
                           "metadata": _OBJECT, "run_name": _RUN_NAME},
        }),
        "responses": {"200": json_content("run, metadata"), **_errors(400, 401, 404, 409, 413, 429, 503, 507)},
    },
    ("/runs/{run_id}/iterations", "post"): {
        "summary": "Add an iteration", "security": SECURITY, "parameters": [_RUN_ID], "description": _BODY_LIMIT,
        "requestBody": json_body(_ITERATION),
        "responses": {"201": json_content("iteration, runUpdates, metadata"),
                      **_errors(400, 401, 404, 409, 413, 429, 503, 507)},
    },
    ("/runs/{run_id}/iterations/batch", "post"): {
        "summary": f"Add up to {MAX_BATCH} iterations, all or nothing", "security": SECURITY,
        "parameters": [_RUN_ID], "description": _BODY_LIMIT,
        "requestBody": json_body({
            "type": "object", "required": ["iterations"],
            "properties": {"iterations": {"type": "array", "items": _ITERATION, "minItems": 1, "maxItems": MAX_BATCH}},
        }),
        "responses": {"201": json_content("iterations, runUpdates, metadata"),
                      **_errors(400, 401, 404, 409, 413, 429, 503, 507)},
    },
    ("/stats", "get"): {
        "summary": "Aggregated statistics", "security": SECURITY,
        "parameters": [
            _PROJECT, _OPTIMIZER, _STATUS,
            query("start_date", {"type": "string", "format": "date-time"}, "Created at or after"),
            query("end_date", {"type": "string", "format": "date-time"}, "Created at or before"),
        ],
        "responses": {"200": json_content("statistics"), **_errors(304, 400, 401, 403, 429, 503)},
    },
}
