"""An experiment's row as the API shows it, kept as JSON in the index.

The writer stores it with the row (``experiments.row_json``); lists copy it into their answer
(``orjson.Fragment``) instead of building an object from seventeen columns per run and
serialising it again, which was most of a page's cost. Only ``run_dir`` (absolute, so it depends
on where the data root is mounted) and ``deleted_at`` (shown on request) are added per answer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson


def row_document(
    *,
    exp_id: str,
    project: str,
    name: str,
    status: str,
    created_at: float,
    best_metric_name: str | None,
    best_metric_value: float | None,
    pid: int | None,
    path: str,
    alias: str | None,
    tags: list[str],
    description: str | None,
    ended_at: float | None,
    updated_at: float,
    exit_reason: str | None,
    delete_reason: str | None = None,
) -> bytes:
    """The JSON of an experiment object, without ``run_dir`` and ``deleted_at``."""
    obj: dict[str, Any] = {
        "id": exp_id,
        "project": project,
        "name": name,
        "status": status,
        "created_at": created_at,
        "best_metric_name": best_metric_name,
        "best_metric_value": best_metric_value,
        "pid": pid,
        "path": path,
        "alias": alias,
        "tags": tags,
        "description": description,
        "ended_at": ended_at,
        "updated_at": updated_at,
    }
    if exit_reason is not None:
        obj["exit_reason"] = exit_reason
    if delete_reason is not None:  # a run in the recycle bin: why it was deleted (its marker's reason)
        obj["delete_reason"] = delete_reason
    return orjson.dumps(obj)


def compose(
    root: Path | str, rel_dir: str, deleted_at: float | None, row_json: bytes, include_deleted: bool, extra: bytes = b""
) -> bytes:
    """The experiment object's JSON: ``run_dir`` first, the stored row, ``deleted_at`` when
    asked, then ``extra`` (``,"key":value`` pairs, e.g. params)."""
    head = b'{"run_dir":' + orjson.dumps(f"{root}{os.sep}{rel_dir}") + b","
    tail = b',"deleted_at":' + orjson.dumps(deleted_at) if include_deleted else b""
    return head + row_json[1:-1] + tail + extra + b"}"
