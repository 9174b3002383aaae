"""The OpenAPI operations of the V1 routes that Runicorn's web UI calls besides the run routes:
path tree, files and export, permanent deletion, settings, system, diagnostics."""

from __future__ import annotations

from typing import Any

from runicorn_lite.api import v1_paths, v1_runs_files, v1_system, v1_ui_settings
from runicorn_lite.api.v1_recycle import MAX_PERMANENT_IDS
from runicorn_lite.http.openapi import Operations, errors, json_body, json_content, path

ERROR = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
_RUN_ID = path("run_id", "Run id")
_ZIP = {"description": "A zip archive", "content": {"application/zip": {"schema": {"type": "string"}}}}
_NAME = {"type": "string", "minLength": 1, "maxLength": v1_ui_settings.MAX_NAME}


def _errors(*codes: int) -> dict[str, Any]:
    return errors(ERROR, *codes)


def _json(summary: str, fields: str, *codes: int, **more: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {"200": json_content(fields), **_errors(*codes)}, **more}


def _alert() -> dict[str, Any]:
    return json_body({"type": "object", "required": ["alert_id"], "properties": {"alert_id": _NAME}})


OPERATIONS: Operations = {
    ("/api/paths", "get"): _json("V1: every run path and its ancestors, as a list and a tree (+ run counts)",
                                 "paths, tree, stats?", 400, 503, parameters=v1_paths.PATHS_QUERY.openapi()),
    ("/api/paths/tree", "get"): _json("V1: the path tree", "tree", 503),
    ("/api/paths/create", "post"): _json(
        "V1: make an empty folder under runs/ (listed in the path tree while it exists)", "ok, path",
        400, 403, 409, 413,
        requestBody=json_body({"type": "object", "required": ["path"],
                               "properties": {"path": {"type": "string", "maxLength": v1_paths.MAX_PATH}}})),
    ("/api/runs/export", "post"): {
        "summary": "V1: the runs as one zip laid out as a storage (runs/<path>/<id>/...)",
        "requestBody": json_body({"type": "object", "required": ["run_ids"], "properties": {
            "run_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                        "maxItems": v1_runs_files.MAX_EXPORT_IDS}}}),
        "responses": {"200": _ZIP, **_errors(400, 404, 413)},
    },
    ("/api/runs/{run_id}/assets/download", "get"): {
        "summary": "V1: a file of the run by its absolute path (a folder as a zip)",
        "parameters": [_RUN_ID, *v1_runs_files.DOWNLOAD_QUERY.openapi()],
        "responses": {"200": {"description": "The file, or a zip of the folder"}, "206": {"description": "A range"},
                      "304": {"description": "Not modified"}, **_errors(400, 403, 404),
                      "416": json_content("Range outside the file", ERROR)},
    },
    ("/api/runs/permanent-delete", "post"): _json(
        f"V1: remove up to {MAX_PERMANENT_IDS} runs of the recycle bin for good (live runs are refused)",
        "deleted_count, total_runs, dry_run, results {id: {success, run_dir_deleted, errors, ...}}",
        400, 403, 413,
        requestBody=json_body({"type": "object", "required": ["run_ids"], "properties": {
            "run_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_PERMANENT_IDS},
            "dry_run": {"type": "boolean"}}})),
    ("/api/runs/{run_id}/assets/refs", "get"): _json(
        "V1: archived assets the run owns alone or shares (none here: no archive)",
        "run_id, orphaned_assets, shared_assets, orphaned_count, shared_count", 400, 404, parameters=[_RUN_ID]),
    ("/api/config", "get"): _json("V1: data root and storage backend, as Runicorn's settings show them",
                                  "user_root_dir, storage, config_file, home_directory, storage_backend"),
    ("/api/config/column-widths", "get"): _json("V1: saved column widths of a table at a window size",
                                                "table, size, widths", 400, 503,
                                                parameters=v1_ui_settings.WIDTHS_QUERY.openapi()),
    ("/api/config/column-widths", "post"): _json(
        "V1: save column widths of a table at a window size", "ok, message", 400, 413, 503,
        requestBody=json_body({"type": "object", "required": ["table", "size", "widths"], "properties": {
            "table": _NAME, "size": _NAME,
            "widths": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100000}},
            "window_width": {"type": ["integer", "null"]}, "window_height": {"type": ["integer", "null"]}}})),
    ("/api/config/column-widths", "delete"): _json("V1: forget saved column widths", "ok, message", 400, 503,
                                                   parameters=v1_ui_settings.RESET_QUERY.openapi()),
    ("/api/config/column-widths/reset", "post"): _json("V1: forget saved column widths", "ok, message", 400, 503,
                                                       parameters=v1_ui_settings.RESET_QUERY.openapi()),
    ("/api/config/dismissed-alerts", "get"): _json("V1: alerts the UI was told not to show again",
                                                   "dismissed_alerts", 503),
    ("/api/config/dismissed-alerts/dismiss", "post"): _json("V1: dismiss an alert", "ok, message", 400, 413, 503,
                                                            requestBody=_alert()),
    ("/api/config/dismissed-alerts/undismiss", "post"): _json("V1: show an alert again", "ok, message",
                                                              400, 413, 503, requestBody=_alert()),
    ("/api/config/dismissed-alerts/clear", "post"): _json("V1: show every alert again", "ok, message", 503),
    ("/api/storage/stats", "get"): _json("V1: disk use of the runs, the archive and the index",
                                         "storage_root, total, archive, runs, index", 503),
    ("/api/system/monitor", "get"): _json("V1: CPU, memory and disk of this machine", "available, cpu, memory, disk"),
    ("/api/gpu/telemetry", "get"): _json("V1: GPU telemetry (not collected here)", "available, reason"),
    ("/api/gpu/telemetry/history", "get"): _json("V1: GPU samples (none)", "available, enabled, samples"),
    ("/api/gpu/telemetry/config", "get"): _json("V1: GPU collector settings (no collector)",
                                                "enabled, interval_sec, max_duration_h"),
    ("/api/gpu/telemetry/config", "post"): _json("V1: change GPU collector settings (no collector)", "ok, error"),
    ("/api/remote/viewer/sessions", "get"): _json("V1: remote viewer sessions (none)", "sessions"),
    ("/api/remote/connections/saved", "get"): _json("V1: saved SSH connections (none)", "ok, connections"),
    ("/api/diagnostics/sources", "get"): _json("V1: log sources of the diagnostics page",
                                               "remoteMode, appSessionId, defaultSource, sources"),
    ("/api/diagnostics/logs", "get"): {
        "summary": "V1: the last lines of this server's log (or all of it as a download)",
        "parameters": v1_system.LOGS_QUERY.openapi(),
        "responses": {"200": {"description": "Text", "content": {"text/plain": {"schema": {"type": "string"}}}},
                      **_errors(400, 404)},
    },
    ("/api/diagnostics/logs/ws", "get"): {
        "summary": "V1 WebSocket: the log's last lines, then each new line",
        "responses": {"101": {"description": "Switching protocols"}},
    },
}
