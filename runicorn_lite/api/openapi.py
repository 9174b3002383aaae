"""The OpenAPI operations of V1, V2, the health check and the web page.

Query parameters come from each endpoint's declaration (the one its handler parses with), body
limits from the constants the handlers check against: never from copies.
"""

from __future__ import annotations

import re
from typing import Any

from runicorn_lite import rundir
from runicorn_lite.api import analysis, events, export, openapi_ui, uploads, v1, v2, v2_runs
from runicorn_lite.api.v1_recycle import MAX_RUN_IDS
from runicorn_lite.api.v2 import MAX_BATCH
from runicorn_lite.api.web import APP_PATHS, ASSETS_PREFIX
from runicorn_lite.http.openapi import Operations, errors, json_body, json_content, path
from runicorn_lite.queries.compare import MAX_COMPARE

ERROR = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}


def _errors(*codes: int) -> dict[str, Any]:
    return errors(ERROR, *codes)


def _ids(name: str, max_items: int, **more: dict[str, Any]) -> dict[str, Any]:
    """A body ``{name: [1..max_items ids], ...more}``."""
    items = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": max_items}
    return json_body({"type": "object", "required": [name], "properties": {name: items, **more}})


_EXP_ID = path("exp_id", "Experiment (run) id", {"type": "string", "pattern": rundir.RUN_ID_PATTERN})
_RUN_ID = path("run_id", "Run id")
_REASON = {"reason": {"type": "string", "maxLength": 1000}}

OPERATIONS: Operations = {
    ("/api/health", "get"): {
        "summary": "Liveness, version and indexing progress",
        "responses": {"200": json_content("Health")},
    },
    ("/api/v2/experiments", "get"): {
        "summary": "List experiments with filters, sorting and pagination (from the index)",
        "parameters": v2.LIST_QUERY.openapi(),
        "responses": {"200": json_content("A page of experiments"), **_errors(400, 429, 503)},
    },
    ("/api/v2/experiments/{exp_id}", "get"): {
        "summary": "Experiment detail with metrics summary",
        "parameters": [_EXP_ID, *v2.NO_QUERY.openapi()],
        "responses": {"200": json_content("Detail"), **_errors(400, 404, 429, 503)},
    },
    ("/api/v2/experiments/{exp_id}/metrics/fast", "get"): {
        "summary": "Metric curves, filtered and downsampled",
        "parameters": [_EXP_ID, *v2.METRICS_QUERY.openapi()],
        "responses": {"200": json_content("Columns and rows"), **_errors(400, 404, 429, 503)},
    },
    ("/api/v2/experiments/{exp_id}/images", "get"): {
        "summary": "Images the run logged (image events), in step order, with their file URLs",
        "parameters": [_EXP_ID, *v2.NO_QUERY.openapi()],
        "responses": {"200": json_content("images"), **_errors(400, 404, 429, 503)},
    },
    ("/api/v2/compare", "get"): {
        "summary": f"Up to {MAX_COMPARE} runs side by side: params, summaries, params_differ, downsampled series",
        "parameters": v2.COMPARE_QUERY.openapi(),
        "responses": {"200": json_content("experiments, params_differ, series, total_points"),
                      **_errors(400, 404, 429, 503)},
    },
    ("/api/v2/experiments/batch-delete", "post"): {
        "summary": f"Soft-delete up to {MAX_BATCH} experiments (writes .deleted markers)",
        "requestBody": _ids("exp_ids", MAX_BATCH, **_REASON),
        "responses": {"200": json_content("deleted, failed, results, errors"), **_errors(400, 403, 413, 429, 503, 507)},
    },
    ("/api/v2/experiments/batch-restore", "post"): {
        "summary": f"Restore up to {MAX_BATCH} soft-deleted experiments",
        "requestBody": _ids("exp_ids", MAX_BATCH),
        "responses": {"200": json_content("restored, deleted, failed, results, errors"),
                      **_errors(400, 403, 413, 503, 507)},
    },
    ("/api/v2/experiments/{exp_id}/files/{path}", "get"): {
        "summary": "One file of the run directory (images under media/, logs.txt, ...): ETag, Range",
        "parameters": [_EXP_ID, path("path", "Path inside the run directory")],
        "responses": {"200": {"description": "The file"}, "206": {"description": "One byte range"},
                      "304": {"description": "Not modified (If-None-Match / If-Modified-Since)"},
                      **_errors(404), "416": json_content("Range outside the file", ERROR)},
    },
    ("/api/v2/groups", "get"): {
        "summary": "Matching runs grouped by params or attributes: counts, metric mean ± std, min, max; ids if asked",
        "parameters": analysis.GROUPS_QUERY.openapi(),
        "responses": {"200": json_content("groups"), **_errors(400, 429, 503)},
    },
    ("/api/v2/importance", "get"): {
        "summary": "Parameter importance for a metric (random forest) and Spearman correlation",
        "parameters": analysis.IMPORTANCE_QUERY.openapi(),
        "responses": {"200": json_content("importance"), **_errors(400, 429, 503)},
    },
    ("/api/v2/analytics/summary", "get"): {
        "summary": "Aggregates over live experiments",
        "parameters": v2.ANALYTICS_QUERY.openapi(),
        "responses": {"200": json_content("Summary"), **_errors(400, 503)},
    },
    ("/api/runs", "get"): {
        "summary": "V1: all live runs, newest first (file scan)",
        "responses": {"200": json_content("Runs", {"type": "array"})},
    },
    ("/api/runs/soft-delete", "post"): {
        "summary": f"V1: soft-delete up to {MAX_RUN_IDS} runs",
        "requestBody": _ids("run_ids", MAX_RUN_IDS, **_REASON),
        "responses": {"200": json_content("deleted_count, results {id: {success, error?}}, message"),
                      **_errors(400, 403, 413)},
    },
    ("/api/runs/{run_id}", "get"): {"summary": "V1: run detail (with assets, assets_count)", "parameters": [_RUN_ID],
                                    "responses": {"200": json_content("Run"), **_errors(404)}},
    ("/api/runs/{run_id}", "patch"): {
        "summary": "V1: set alias, tags, description (written to meta.json)",
        "parameters": [_RUN_ID],
        "requestBody": json_body({
            "type": "object", "properties": {"alias": {"type": ["string", "null"]},
                                             "tags": {"type": "array", "items": {"type": "string"}},
                                             "description": {"type": ["string", "null"]}}}),
        "responses": {"200": json_content("ok, alias, tags"), **_errors(400, 403, 404, 413, 507)},
    },
    ("/api/runs/{run_id}/images", "get"): {
        "summary": "V1: the run's logged images (step, key, absolute path)", "parameters": [_RUN_ID],
        "responses": {"200": json_content("run_id, images"), **_errors(404)},
    },
    ("/api/runs/{run_id}/assets", "get"): {
        "summary": "V1: the run's assets.json", "parameters": [_RUN_ID],
        "responses": {"200": json_content("run_id, assets, assets_count"), **_errors(404)},
    },
    ("/api/environment/{run_id}", "get"): {
        "summary": "V1: the run's environment.json", "parameters": [_RUN_ID],
        "responses": {"200": json_content("available, environment"), **_errors(404)},
    },
    ("/api/runs/{run_id}/metrics", "get"): {
        "summary": "V1: metric rows by step",
        "parameters": [_RUN_ID, *v1.METRICS_QUERY.openapi()],
        "responses": {"200": json_content("columns, rows, total, sampled"), **_errors(400, 404)},
    },
    ("/api/runs/{run_id}/metrics_step", "get"): {
        "summary": "V1: metric rows by step (same as /metrics)",
        "parameters": [_RUN_ID, *v1.METRICS_QUERY.openapi()],
        "responses": {"200": json_content("columns, rows, total, sampled"), **_errors(400, 404)},
    },
    ("/api/runs/{run_id}/logs/ws", "get"): {
        "summary": "V1: WebSocket that streams logs.txt and follows it", "parameters": [_RUN_ID],
        "responses": {"101": {"description": "Switching protocols"}},
    },
    ("/api/recycle-bin", "get"): {
        "summary": "V1: soft-deleted runs", "responses": {"200": json_content("deleted_runs")},
    },
    ("/api/recycle-bin/restore", "post"): {
        "summary": "V1: restore soft-deleted runs",
        "requestBody": _ids("run_ids", MAX_RUN_IDS),
        "responses": {"200": json_content("restored_count, results {id: {success, error?}}, message"),
                      **_errors(400, 403, 413)},
    },
    ("/api/recycle-bin/empty", "post"): {
        "summary": "V1: delete every soft-deleted run directory for good",
        "requestBody": json_body({"type": "object", "required": ["confirm"],
                                  "properties": {"confirm": {"type": "boolean", "enum": [True]}}}),
        "responses": {"200": json_content("permanently_deleted, message, deleted_ids"), **_errors(400, 403, 413)},
    },
    ("/api/projects", "get"): {"summary": "V1: project names", "responses": {"200": json_content("projects")}},
    ("/api/projects/{project}/names", "get"): {
        "summary": "V1: experiment names of a project", "parameters": [path("project", "Project")],
        "responses": {"200": json_content("names"), **_errors(404)},
    },
    ("/api/projects/{project}/names/{name}/runs", "get"): {
        "summary": "V1: runs of one project and name", "parameters": [path("project", "Project"), path("name", "Name")],
        "responses": {"200": json_content("runs")},
    },
    **{
        (url, "get"): {
            "summary": "The web app (its views share one HTML shell)",
            "parameters": [path(name, "Part of the view's URL") for name in re.findall(r"{(\w+)}", url)],
            "responses": {"200": {"description": "HTML"}, "304": {"description": "Not modified"}},
        }
        for url in APP_PATHS
    },
    (ASSETS_PREFIX + "{version}/{path}", "get"): {
        "summary": "A static file of the web app (immutable under its version)",
        "parameters": [path("version", "Content version of the app"), path("path", "File of the app")],
        "responses": {"200": {"description": "JavaScript, CSS or an image"}, "404": {"description": "No such file"}},
    },
    ("/favicon.ico", "get"): {"summary": "The icon browsers ask for", "responses": {"200": {"description": "Icon"}}},
    ("/openapi.json", "get"): {"summary": "This document", "responses": {"200": json_content("OpenAPI 3.1")}},
}

_CSV = {"description": "CSV (RFC 4180, UTF-8, a header row), streamed",
        "content": {"text/csv": {"schema": {"type": "string"}}}}
OPERATIONS.update({
    ("/api/v2/experiments.csv", "get"): {
        "summary": "Every experiment the list parameters match (no paging), in order, with params and"
                   " metric last/min/max columns, as CSV",
        "parameters": export.EXPORT_QUERY.openapi(),
        "responses": {"200": _CSV, **_errors(400, 429, 503)},
    },
    ("/api/v2/experiments/{exp_id}/metrics.csv", "get"): {
        "summary": "Every metric point of a run (global_step, then the metrics sorted), no downsampling, as CSV",
        "parameters": [_EXP_ID, *export.POINTS_QUERY.openapi()],
        "responses": {"200": _CSV, **_errors(400, 404, 429, 503)},
    },
    ("/api/v2/experiments/{exp_id}", "patch"): {
        "summary": "Set alias, tags, description (written to meta.json first, then indexed); answers the row."
                   " Absent or null: left as it is; an empty alias or description clears it",
        "parameters": [_EXP_ID],
        "requestBody": json_body({
            "type": "object", "additionalProperties": False,
            "properties": {"alias": {"type": ["string", "null"], "maxLength": 200},
                           "tags": {"type": ["array", "null"], "items": {"type": "string"}, "maxItems": 100},
                           "description": {"type": ["string", "null"], "maxLength": 10_000}}}),
        "responses": {"200": json_content("experiment"), **_errors(400, 403, 404, 413, 503, 507)},
    },
    ("/api/v2/experiments/batch-purge", "post"): {
        "summary": f"Delete up to {v2_runs.MAX_BATCH} soft-deleted experiments for good (their directories);"
                   " runs not in the recycle bin are never touched",
        "requestBody": _ids("exp_ids", v2_runs.MAX_BATCH, confirm={"type": "boolean", "enum": [True]}),
        "responses": {"200": json_content("purged, failed, results, errors"), **_errors(400, 403, 413, 503, 507)},
    },
    ("/api/v2/experiments/{exp_id}/logs", "get"): {
        "summary": "The run's logs.txt: its last `tail` lines, or whole lines from a byte `offset` on"
                   " (text, offset, next_offset, size, reset)",
        "parameters": [_EXP_ID, *v2_runs.LOGS_QUERY.openapi()],
        "responses": {"200": json_content("text, offset, next_offset, size, reset"), **_errors(400, 403, 404, 503)},
    },
    ("/api/v2/events", "get"): {
        "summary": "Live events (Server-Sent Events): experiment (a run's list row), metrics (points appended:"
                   " id, metrics, last_step, total_points, points up to 2,000 or null with refetch: true),"
                   " removed, reset (refetch); each with an id for Last-Event-ID, a comment line when quiet",
        "parameters": [
            *events.EVENTS_QUERY.openapi(),
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"},
             "description": "Resume after this event; one the server no longer holds gets a reset first"},
        ],
        "responses": {"200": {"description": "An endless event stream",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                      **_errors(400, 404)},
    },
})
OPERATIONS.update(openapi_ui.OPERATIONS)

_WHO = json_content("auth (keys | none), signed_in, project, all_projects, read_only")
OPERATIONS.update({
    ("/api/auth/session", "get"): {
        "summary": "Whether this server wants a key (auth), and what the current session or bearer key may see",
        "responses": {"200": _WHO},
    },
    ("/api/auth/session", "post"): {
        "summary": "Sign in with an API key: sets an HttpOnly, SameSite=Strict session cookie (Secure over HTTPS)"
                   " that stands for the key on every /api request, the event stream and the WebSocket",
        "requestBody": json_body({"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}),
        "responses": {"200": _WHO, **_errors(400, 401, 403, 413)},
    },
    ("/api/auth/session", "delete"): {
        "summary": "Sign out: the session ends and its cookie is cleared",
        "responses": {"200": _WHO, **_errors(403)},
    },
})

_SIZES = json_content("run, files: {name: {size, sha256 (replaced files)}}")
OPERATIONS.update({
    ("/api/uploads/state", "get"): {
        "summary": "Uploads (always need a key of the run's project): what the server holds of a run directory,"
                   " to resume an upload where it stopped",
        "parameters": uploads.STATE_QUERY.openapi(),
        "responses": {"200": _SIZES, **_errors(400, 401, 403, 409)},
    },
    ("/api/uploads/file", "put"): {
        "summary": "Upload one piece of a run's file: with offset, bytes appended from there (bytes already held"
                   " are skipped; a gap is 409 with X-Upload-Size, the size held); without, a JSON file replaced"
                   " whole (meta.json merged: the server's own edits stay)",
        "parameters": uploads.FILE_QUERY.openapi(),
        "requestBody": {"required": True, "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary", "maxLength": uploads.MAX_PIECE}}}},
        "responses": {"200": json_content("name, size"), **_errors(400, 401, 403, 409, 413)},
    },
})
