"""Writing one run into the index: the indexer's write path, in named steps.

:func:`write_run` takes a run read from disk (:class:`Prepared`) and, inside the caller's
transaction: settles which row the run is (ids that moved or exist twice), appends or replaces
its metric points and their summaries, upserts its experiment row, and rewrites what its small
files say (tags, search text, params, config, environment) and its images. It returns what the
indexer must remember of the run and what changed, for the live event stream.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from runicorn_lite import rundir
from runicorn_lite.db.dialect import on_postgres, pg_number
from runicorn_lite.db.rows import row_document
from runicorn_lite.db.schema import LIST_AGGREGATES
from runicorn_lite.ingest.changes import Change, carried_points
from runicorn_lite.ingest.known import Known
from runicorn_lite.ingest.metric_cap import cap_metric_names
from runicorn_lite.ingest.points import append_points, best_of, changed, finite, point_count, replace_points
from runicorn_lite.params import ParamValue, index_value

log = logging.getLogger("runicorn_lite.ingest")


@dataclass
class Prepared:
    """A run read from disk, ready to be written."""

    rel: str
    info: rundir.RunInfo
    files_sig: str
    files_changed: bool
    events_ino: int | None
    events: rundir.EventsChunk | None
    full_events: bool
    known: Known | None
    body: str = ""
    events_size: int = 0
    # Read only when the small files changed (files_changed):
    params: dict[str, ParamValue] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None


def marker(item: Prepared) -> Known:
    """A run seen but not in the index (skipped, or another copy of an indexed id), with its
    file signature, so a rescan leaves it alone until its files change."""
    return Known.seen(item.info.id, item.files_sig, item.events_ino, item.events_size)


def preference(rel: str) -> tuple[int, int, str]:
    """Which of two copies of one run id to index: live before recycled, modern before legacy."""
    parts = rel.split("/")
    return (int(rundir.RECYCLE_DIRNAME in parts), int(parts[0] != rundir.RUNS_DIRNAME), rel)


def write_run(
    conn: sqlite3.Connection, root: Path, item: Prepared, now: float, known_out: dict[str, Known | None]
) -> list[Change]:
    """Write one run (see the module docstring). ``known_out`` receives what the indexer must
    remember, by run directory; the return value lists what changed."""
    claimed = _claim_row(conn, root, item, known_out)
    if claimed is None:
        return []
    known, existing_pk = claimed
    info = item.info
    fresh = existing_pk is None  # nothing of this run in the index yet: no old rows to delete
    full = item.full_events or known is None
    cap_metric_names(conn, existing_pk, info.id, events := item.events, full)

    appended: list[str] = []
    if full:
        points = events.points if events else {}
        n_points = sum(len(series) for series in points.values())
        offset = events.offset if events else 0
        last_step = events.last_step if events else None
        live = _live_best_of_points(info, points)
        previous_best = None
    else:
        assert known is not None and existing_pk is not None
        offset, last_step = known.events_offset, known.events_last_step
        if events is not None:
            offset, last_step = events.offset, events.last_step
            appended = append_points(conn, existing_pk, info.id, events.points, events.times, events.system_times)
        n_points = point_count(conn, existing_pk)
        previous_best = conn.execute("SELECT best_metric_value, live_best_value, live_best_step FROM experiments"
                                     " WHERE pk = ?", (existing_pk,)).fetchone()
        live = _live_best_appended(conn, existing_pk, item, previous_best[1:])

    best = _best(info, live)
    pk = _upsert_experiment(conn, item, existing_pk, best, live, n_points, offset, last_step, now)
    if full:
        replace_points(conn, pk, info.id, events.points if events else {}, events.times if events else {}, fresh,
                       events.system_times if events else None)
        appended = sorted(events.points) if events and events.points else []
    if full or item.files_changed:
        _write_described(conn, pk, item, fresh)
    if full or appended:
        _write_list_metrics(conn, pk)
    if full:
        _write_images(conn, pk, events.images if events else [], replace=not fresh)
    elif events is not None and events.images:
        _write_images(conn, pk, events.images, replace=False)

    known_out[item.rel] = Known(
        pk, info.id, item.files_sig, item.events_ino, offset, last_step, info.status, info.pid, info.hostname
    )
    row_changed = fresh or full or item.files_changed or previous_best is None or previous_best[0] != best[1]
    changes = [Change("experiment", info.id, pk)] if row_changed else []
    carried = carried_points(events.points, events.times, appended) if events is not None and not full else None
    return changes + ([Change("metrics", info.id, pk, appended, last_step, n_points, carried)] if appended else [])


def delete_row(conn: sqlite3.Connection, pk: int) -> None:
    """Remove a run from the index (its dependent rows go by ON DELETE CASCADE)."""
    conn.execute("DELETE FROM experiments_fts WHERE rowid = ?", (pk,))
    conn.execute("DELETE FROM experiments WHERE pk = ?", (pk,))
    changed(conn, "exp_params")
    changed(conn, "metric_summaries")


# -- which row ----------------------------------------------------------------------------------


def _claim_row(
    conn: sqlite3.Connection, root: Path, item: Prepared, known_out: dict[str, Known | None]
) -> tuple[Known | None, int | None] | None:
    """(what is indexed of this directory, pk of the run's row or None when new); None when the
    run is not to be written here (another copy of its id is indexed)."""
    info = item.info
    known = item.known if item.known is not None and item.known.indexed else None
    if known is not None and known.pk is not None:
        if known.id == info.id:
            return known, known.pk
        delete_row(conn, known.pk)  # the directory now holds another id
    row = conn.execute("SELECT pk, run_dir FROM experiments WHERE id = ?", (info.id,)).fetchone()
    if row is not None and row[1] != item.rel:
        # The same id in two directories: moved (to the recycle bin, say), or copied. One copy
        # is indexed, by a fixed preference, so scans never flip between them.
        if (root / row[1]).is_dir() and preference(row[1]) < preference(item.rel):
            log.warning("run %s is also at %s; indexing that copy", info.id, row[1])
            known_out[item.rel] = marker(item)
            return None
        known_out[row[1]] = Known.seen(info.id)  # re-read once
    return None, (row[0] if row else None)


# -- the experiment row ---------------------------------------------------------------------------


def _live_best_of_points(info: rundir.RunInfo, points: dict[str, dict[int, float]]) -> tuple[float | None, int | None]:
    if info.best_metric_value is not None or info.primary_metric is None:
        return None, None
    series = points.get(info.primary_metric) or {}
    return rundir.best_point(sorted(series.items()), info.primary_mode or "max")


def _live_best_appended(
    conn: sqlite3.Connection, pk: int, item: Prepared, previous: tuple[float | None, int | None]
) -> tuple[float | None, int | None]:
    info = item.info
    if info.best_metric_value is not None or info.primary_metric is None:
        return None, None
    mode = info.primary_mode or "max"
    new_points = (item.events.points.get(info.primary_metric) or {}) if item.events else {}
    # A new primary metric, or the best's step logged again (its last write wins): the whole series.
    if item.files_changed or previous[1] in new_points:
        return best_of(conn, pk, info.primary_metric, mode)
    return rundir.best_point(sorted(new_points.items()), mode, *previous)


def _best(info: rundir.RunInfo, live: tuple[float | None, int | None]) -> tuple[Any, ...]:
    """(name, value, step, mode) of the run's best metric: summary.json's, else the live one."""
    if live[0] is not None:
        return (info.primary_metric, live[0], live[1], info.primary_mode or "max")
    return (info.best_metric_name, finite(info.best_metric_value), info.best_metric_step, info.best_metric_mode)


def _upsert_experiment(
    conn: sqlite3.Connection,
    item: Prepared,
    existing_pk: int | None,
    best: tuple[Any, ...],
    live: tuple[float | None, int | None],
    n_points: int,
    offset: int,
    last_step: int | None,
    now: float,
) -> int:
    info = item.info
    cursor = conn.execute(
        """
        INSERT INTO experiments (
            id, run_dir, generation, project, name, path, alias, description, tags, status,
            exit_reason, created_at, updated_at, ended_at, pid, hostname, best_metric_name,
            best_metric_value, best_metric_step, best_metric_mode, primary_metric,
            primary_mode, deleted_at, delete_reason, environment_available, n_points,
            files_sig, events_ino, events_offset, events_last_step, live_best_value,
            live_best_step, indexed_at, row_json)
        VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
        ON CONFLICT(id) DO UPDATE SET
            run_dir = excluded.run_dir, generation = excluded.generation,
            project = excluded.project, name = excluded.name, path = excluded.path,
            alias = excluded.alias, description = excluded.description,
            tags = excluded.tags, status = excluded.status,
            exit_reason = excluded.exit_reason, created_at = excluded.created_at,
            updated_at = excluded.updated_at, ended_at = excluded.ended_at,
            pid = excluded.pid, hostname = excluded.hostname,
            best_metric_name = excluded.best_metric_name,
            best_metric_value = excluded.best_metric_value,
            best_metric_step = excluded.best_metric_step,
            best_metric_mode = excluded.best_metric_mode,
            primary_metric = excluded.primary_metric, primary_mode = excluded.primary_mode,
            deleted_at = excluded.deleted_at, delete_reason = excluded.delete_reason,
            environment_available = excluded.environment_available,
            n_points = excluded.n_points, files_sig = excluded.files_sig,
            events_ino = excluded.events_ino, events_offset = excluded.events_offset,
            events_last_step = excluded.events_last_step,
            live_best_value = excluded.live_best_value,
            live_best_step = excluded.live_best_step, indexed_at = excluded.indexed_at,
            row_json = excluded.row_json
        """ + (" RETURNING pk" if existing_pk is None and on_postgres() else ""),
        (
            info.id,
            item.rel,
            info.generation,
            info.project,
            info.name,
            info.path,
            info.alias,
            info.description,
            orjson.dumps(info.tags).decode(),
            info.status,
            info.exit_reason,
            info.created_at,
            info.updated_at,
            info.ended_at,
            info.pid,
            info.hostname,
            *best,
            info.primary_metric,
            info.primary_mode,
            info.deleted_at,
            info.delete_reason,
            int(info.environment_available),
            n_points,
            item.files_sig,
            item.events_ino,
            offset,
            last_step,
            live[0],
            live[1],
            now,
            row_document(
                exp_id=info.id,
                project=info.project,
                name=info.name,
                status=info.status,
                created_at=info.created_at,
                best_metric_name=best[0],
                best_metric_value=best[1],
                pid=info.pid,
                path=info.path,
                alias=info.alias,
                tags=info.tags,
                description=info.description,
                ended_at=info.ended_at,
                updated_at=info.updated_at,
                exit_reason=info.exit_reason,
                delete_reason=info.delete_reason if info.deleted_at is not None else None,
            ),
        ),
    )
    if existing_pk is not None:
        return existing_pk
    if on_postgres():  # no rowid there: the upsert's own RETURNING pk (see _UPSERT_SQL)
        return int(cursor.fetchone()[0])
    # RETURNING would double the cost of this statement on SQLite (measured); a new row's pk
    # is the last inserted rowid.
    return cursor.lastrowid  # type: ignore[return-value]


# -- what the small files say --------------------------------------------------------------------


def _write_described(conn: sqlite3.Connection, pk: int, item: Prepared, fresh: bool) -> None:
    """Tags, search text, params, config and environment: all from the small files."""
    info = item.info
    if not fresh:
        conn.execute("DELETE FROM exp_tags WHERE exp_pk = ?", (pk,))
        conn.execute("DELETE FROM experiments_fts WHERE rowid = ?", (pk,))
    if info.tags:
        conn.executemany("INSERT OR IGNORE INTO exp_tags (tag, exp_pk) VALUES (?, ?)", [(t, pk) for t in info.tags])
    # PostgreSQL searches a lowercased copy (db/pg_schema.py); FTS5 folds case itself.
    body = item.body.lower() if on_postgres() else item.body
    conn.execute("INSERT INTO experiments_fts (rowid, body) VALUES (?, ?)", (pk, body))
    _write_params(conn, pk, item, fresh)
    if item.config is not None or item.environment is not None:
        conn.execute(
            "INSERT OR REPLACE INTO exp_docs (exp_pk, config, environment) VALUES (?, ?, ?)",
            (pk, _json(item.config), _json(item.environment)),
        )
    elif not fresh:
        conn.execute("DELETE FROM exp_docs WHERE exp_pk = ?", (pk,))


def _write_params(conn: sqlite3.Connection, pk: int, item: Prepared, fresh: bool) -> None:
    """The run's flat params, rewritten only when they differ from the ones indexed (a soft
    delete, an edit of the alias re-read the small files, not a new config)."""
    encoded = orjson.dumps(item.params, option=orjson.OPT_NON_STR_KEYS) if item.params else None
    if not fresh:
        if conn.execute("SELECT params_json FROM experiments WHERE pk = ?", (pk,)).fetchone()[0] == encoded:
            return
        conn.execute("DELETE FROM exp_params WHERE exp_pk = ?", (pk,))
    if item.params:
        rows = [(pk, key, index_value(value), item.info.id) for key, value in item.params.items() if value is not None]
        if on_postgres():  # typed columns there: numbers in vn, strings in vs
            conn.executemany(
                "INSERT INTO exp_params (exp_pk, key, vn, vs, exp_id) VALUES (?, ?, ?, ?, ?)",
                [(pk_, key, None, v, exp_id) if isinstance(v, str) else (pk_, key, pg_number(v), None, exp_id)
                 for pk_, key, v, exp_id in rows],
            )
        else:
            conn.executemany("INSERT INTO exp_params (exp_pk, key, v, exp_id) VALUES (?, ?, ?, ?)", rows)
    conn.execute("UPDATE experiments SET params_json = ? WHERE pk = ?", (encoded, pk))
    if item.params or not fresh:
        changed(conn, "exp_params")


def _write_list_metrics(conn: sqlite3.Connection, pk: int) -> None:
    """The run's metrics in a list row's shape, kept as JSON in its row (see migration 0008)."""
    columns = ", ".join(LIST_AGGREGATES)  # column names from the schema's whitelist
    metrics = {
        row[0]: dict(zip(LIST_AGGREGATES, row[1:], strict=True))
        for row in conn.execute(
            f"SELECT metric, {columns} FROM metric_summaries WHERE exp_pk = ? ORDER BY metric", (pk,)
        )
    }
    encoded = orjson.dumps(metrics) if metrics else None
    conn.execute("UPDATE experiments SET metrics_json = ? WHERE pk = ?", (encoded, pk))


def _json(obj: object) -> str | None:
    if obj is None:
        return None
    # NaN/Infinity (bare in Python-written JSON) come out as null.
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()


def _write_images(conn: sqlite3.Connection, pk: int, images: list[dict[str, Any]], *, replace: bool) -> None:
    if replace:
        conn.execute("DELETE FROM exp_images WHERE exp_pk = ?", (pk,))
    if not images:
        return
    if replace:
        start = 0
    else:
        start = conn.execute("SELECT coalesce(max(seq) + 1, 0) FROM exp_images WHERE exp_pk = ?", (pk,)).fetchone()[0]
    conn.executemany(
        "INSERT INTO exp_images (exp_pk, seq, key, step, caption, path) VALUES (?, ?, ?, ?, ?, ?)",
        [(pk, start + i, im["key"], im["step"], im["caption"], im["path"]) for i, im in enumerate(images)],
    )
