"""The run-directory format: where runs live, tolerant readers, atomic writers.

One package knows the on-disk layout written by the real Runicorn SDK (0.4-0.5 "legacy" and 0.6+
"modern" generations) and by our own SDK. The ingester and the V1 endpoints both read through it;
the SDK and the API write through it. Its modules, from the bottom up:

- ``layout``: file names, run ids, statuses, safe relative paths;
- ``values``: normalising numbers, strings and tags read from any SDK's files;
- ``jsonfiles``: tolerant JSON readers;
- ``events``: ``events.jsonl`` (points, step times, labels, images), window by window;
- ``walk``: finding run directories, and file signatures that tell a rescan what changed;
- ``liveness``: whether a "running" run's process still exists;
- ``runinfo``: a run as its small files describe it;
- ``writers``, ``assets``, ``recycle``: atomic writes, assets.json, soft-delete markers.

Readers never raise on bad files: a missing, empty, truncated or non-JSON file reads as "absent",
and a directory that vanishes mid-read yields what could be read. Callers use the names below as
``rundir.X``; the modules are the place to read them.
"""

from __future__ import annotations

from runicorn_lite.rundir.assets import append_asset, assets_count, empty_assets, read_assets, update_config
from runicorn_lite.rundir.events import (
    EVENTS_WINDOW,
    MAX_EVENT_LINE,
    NON_METRIC_KEYS,
    SYSTEM_PREFIX,
    EventsChunk,
    best_point,
    image_event,
    read_events,
)
from runicorn_lite.rundir.jsonfiles import (
    MAX_DOC_BYTES,
    MAX_JSON_DEPTH,
    Unparsed,
    parse_event_line,
    read_doc,
    read_json_bytes,
    read_json_object,
)
from runicorn_lite.rundir.layout import (
    ASSETS,
    DELETED,
    ENVIRONMENT,
    EVENTS,
    LOGS,
    MEDIA,
    META,
    NOT_PROJECTS,
    RECYCLE_DIRNAME,
    RUN_ID_PATTERN,
    RUNS_DIRNAME,
    SMALL_FILES,
    STATUS,
    STATUSES,
    SUMMARY,
    file_inside,
    is_valid_run_id,
    normalize_status,
    safe_relative_path,
    split_path,
)
from runicorn_lite.rundir.liveness import HOSTNAME, pid_is_gone
from runicorn_lite.rundir.recycle import mark_deleted, unmark_deleted
from runicorn_lite.rundir.runinfo import RunInfo, fill_live_best, read_run
from runicorn_lite.rundir.walk import RunLocation, count_files, file_signature, iter_runs, location_of
from runicorn_lite.rundir.writers import atomic_write_json, dir_lock, dumps_json, update_meta, write_new_file

__all__ = [
    "ASSETS",
    "DELETED",
    "ENVIRONMENT",
    "EVENTS",
    "EVENTS_WINDOW",
    "HOSTNAME",
    "LOGS",
    "MAX_DOC_BYTES",
    "MAX_EVENT_LINE",
    "MAX_JSON_DEPTH",
    "MEDIA",
    "META",
    "NON_METRIC_KEYS",
    "NOT_PROJECTS",
    "RECYCLE_DIRNAME",
    "RUNS_DIRNAME",
    "RUN_ID_PATTERN",
    "SMALL_FILES",
    "STATUS",
    "STATUSES",
    "SUMMARY",
    "SYSTEM_PREFIX",
    "EventsChunk",
    "RunInfo",
    "RunLocation",
    "Unparsed",
    "append_asset",
    "assets_count",
    "atomic_write_json",
    "best_point",
    "count_files",
    "dir_lock",
    "dumps_json",
    "empty_assets",
    "file_inside",
    "file_signature",
    "fill_live_best",
    "image_event",
    "is_valid_run_id",
    "iter_runs",
    "location_of",
    "mark_deleted",
    "normalize_status",
    "parse_event_line",
    "pid_is_gone",
    "read_assets",
    "read_doc",
    "read_events",
    "read_json_bytes",
    "read_json_object",
    "read_run",
    "safe_relative_path",
    "split_path",
    "unmark_deleted",
    "update_config",
    "update_meta",
    "write_new_file",
]
