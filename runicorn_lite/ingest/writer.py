"""Writing one run into the index: the indexer's write path, in named steps.

:func:`write_run` takes a run read from disk (:class:`Prepared`) and, inside the caller's
transaction: settles which row the run is (ids that moved or exist twice), appends or replaces
its metric points and their summaries, upserts its experiment row, and rewrites what its small
files say (tags, search text, params, config, environment) and its images. It returns what the
indexer must remember of the run and what changed, for the live event stream.
"""

from __future__ import annotations

import functools
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
from runicorn_lite.db.set_changes import changed
from runicorn_lite.db.where import placeholders
from runicorn_lite.ingest.changes import Change, carried_points
from runicorn_lite.ingest.known import Known
from runicorn_lite.ingest.metric_cap import cap_metric_names
from runicorn_lite.ingest.points import (
    append_points,
    best_of,
    finite,
    point_count,
    real,
    replace_points,
    split_series,
)
from runicorn_lite.ingest.summaries import Summary
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
    return Known.seen(item.rel, item.info.id, item.files_sig, item.events_ino, item.events_size)


def preference(rel: str) -> tuple[int, int, str]:
    """Which of two copies of one run id to index: live before recycled, modern before legacy."""
    parts = rel.split("/")
    return (int(rundir.RECYCLE_DIRNAME in parts), int(parts[0] != rundir.RUNS_DIRNAME), rel)


class Rows:
    """The index rows of a batch's run ids, read in one statement before the batch is written
    and kept up to date as it writes, and on PostgreSQL the primary keys of its new rows drawn
    at once: a lookup per run and a ``RETURNING pk`` per new row were a round trip each, which
    stopped the pipelined batch (most of a cold index's time, measured). On SQLite a new row's
    pk is its rowid, known without a round trip."""

    def __init__(self, conn: sqlite3.Connection, ids: list[str]) -> None:
        unique = list(dict.fromkeys(ids))
        self.by_id: dict[str, tuple[int, str]] = {}
        for start in range(0, len(unique), 500):
            part = unique[start:start + 500]
            for exp_id, pk, run_dir in conn.execute(
                f"SELECT id, pk, run_dir FROM experiments WHERE id IN ({placeholders(len(part))})", part
            ):
                self.by_id[exp_id] = (pk, run_dir)
        self._pks: list[int] = []
        self._draw(conn, len(unique) - len(self.by_id))

    def _draw(self, conn: sqlite3.Connection, n: int) -> None:
        if n > 0 and on_postgres():
            self._pks.extend(row[0] for row in conn.execute(
                "SELECT nextval(pg_get_serial_sequence('experiments', 'pk')) FROM generate_series(1, ?)", (n,)
            ))

    def new_pk(self, conn: sqlite3.Connection) -> int | None:
        """A pk for a new row (PostgreSQL: drawn beforehand), or None (SQLite: the row's rowid)."""
        if not self._pks:
            self._draw(conn, 1)  # a run id not foreseen (its row was deleted in this batch)
        return self._pks.pop() if self._pks else None


def write_run(
    conn: sqlite3.Connection, root: Path, item: Prepared, now: float, known_out: dict[str, Known | None],
    rows: Rows,
) -> list[Change]:
    """Write one run (see the module docstring). ``known_out`` receives what the indexer must
    remember, by run directory; the return value lists what changed; ``rows`` knows the batch's
    rows (and learns this run's)."""
    claimed = _claim_row(conn, root, item, known_out, rows)
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
        split = split_series(points)
        previous_best = None
    else:
        assert known is not None and existing_pk is not None
        split = ({}, {})  # appended points are merged into what the index holds
        offset, last_step = known.events_offset, known.events_last_step
        if events is not None:
            offset, last_step = events.offset, events.last_step
            appended = append_points(conn, existing_pk, info.id, events.points, events.times, events.system_times)
        n_points = point_count(conn, existing_pk)
        previous_best = conn.execute("SELECT best_metric_value, live_best_value, live_best_step FROM experiments"
                                     " WHERE pk = ?", (existing_pk,)).fetchone()
        live = _live_best_appended(conn, existing_pk, item, previous_best[1:])

    best = _best(info, live)
    # A new row is written whole in one statement, its params' and metrics' JSON included: an
    # UPDATE of the row just inserted cost as much again (on PostgreSQL, an entry in each of
    # its indexes).
    documents = (_params_json(item), _list_metrics_json(split[1])) if fresh else None
    pk = _upsert_experiment(conn, item, existing_pk, rows.new_pk(conn) if fresh else None, documents, best, live,
                            n_points, offset, last_step, now)
    rows.by_id[info.id] = (pk, item.rel)
    if full:
        replace_points(conn, pk, info.id, split, events.times if events else {}, fresh,
                       events.system_times if events else None)
        appended = sorted(events.points) if events and events.points else []
    if full or item.files_changed:
        _write_described(conn, pk, item, fresh)
    if (full or appended) and not fresh:
        _write_list_metrics(conn, pk, split[1] if full else None)
    if full:
        _write_images(conn, pk, events.images if events else [], replace=not fresh)
    elif events is not None and events.images:
        _write_images(conn, pk, events.images, replace=False)

    known_out[item.rel] = Known.of(
        item.rel, pk, info.id, item.files_sig, item.events_ino, offset, last_step, info.status, info.pid, info.hostname
    )
    row_changed = fresh or full or item.files_changed or previous_best is None or previous_best[0] != best[1]
    changes = [Change("experiment", info.id, pk)] if row_changed else []
    carried = carried_points(events.points, events.times, appended) if events is not None and not full else None
    return changes + ([Change("metrics", info.id, pk, appended, last_step, n_points, carried)] if appended else [])


def delete_row(conn: sqlite3.Connection, pk: int, rows: Rows | None = None, exp_id: str = "") -> None:
    """Remove a run from the index (its dependent rows go by ON DELETE CASCADE); ``rows``, when
    a batch writes, forgets run ``exp_id``."""
    if rows is not None:
        rows.by_id.pop(exp_id, None)
    conn.execute("DELETE FROM experiments_fts WHERE rowid = ?", (pk,))
    conn.execute("DELETE FROM experiments WHERE pk = ?", (pk,))
    changed(conn, "exp_params", pk)
    changed(conn, "metric_summaries", pk)


# -- which row ----------------------------------------------------------------------------------


def _claim_row(
    conn: sqlite3.Connection, root: Path, item: Prepared, known_out: dict[str, Known | None], rows: Rows
) -> tuple[Known | None, int | None] | None:
    """(what is indexed of this directory, pk of the run's row or None when new); None when the
    run is not to be written here (another copy of its id is indexed)."""
    info = item.info
    known = item.known if item.known is not None and item.known.indexed else None
    if known is not None and known.pk is not None:
        if known.run_id(item.rel) == info.id:
            return known, known.pk
        delete_row(conn, known.pk, rows, known.run_id(item.rel))  # the directory now holds another id
    row = rows.by_id.get(info.id)
    if row is not None and row[1] != item.rel:
        # The same id in two directories: moved (to the recycle bin, say), or copied. One copy
        # is indexed, by a fixed preference, so scans never flip between them.
        if (root / row[1]).is_dir() and preference(row[1]) < preference(item.rel):
            log.warning("run %s is also at %s; indexing that copy", info.id, row[1])
            known_out[item.rel] = marker(item)
            return None
        known_out[row[1]] = Known.seen(row[1], info.id)  # re-read once
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
    new_pk: int | None,
    documents: tuple[bytes | None, bytes | None] | None,
    best: tuple[Any, ...],
    live: tuple[float | None, int | None],
    n_points: int,
    offset: int,
    last_step: int | None,
    now: float,
) -> int:
    info = item.info
    cursor = conn.execute(
        _upsert_sql(new_pk is not None, documents is not None),
        (
            *((new_pk,) if new_pk is not None else ()),
            *(documents or ()),
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
    if new_pk is not None:
        return new_pk
    # RETURNING would double the cost of this statement on SQLite (measured); a new row's pk
    # is the last inserted rowid.
    return cursor.lastrowid  # type: ignore[return-value]


_COLUMNS = """id, run_dir, generation, project, name, path, alias, description, tags, status,
            exit_reason, created_at, updated_at, ended_at, pid, hostname, best_metric_name,
            best_metric_value, best_metric_step, best_metric_mode, primary_metric,
            primary_mode, deleted_at, delete_reason, environment_available, n_points,
            files_sig, events_ino, events_offset, events_last_step, live_best_value,
            live_best_step, indexed_at, row_json"""
_ON_CONFLICT = """ON CONFLICT(id) DO UPDATE SET
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
            row_json = excluded.row_json"""


@functools.cache
def _upsert_sql(with_pk: bool, with_documents: bool) -> str:
    """The upsert of a run's row; ``with_pk``: a new row's pk drawn beforehand (PostgreSQL: see
    :class:`Rows`); ``with_documents``: a new row's params and metrics JSON with it."""
    columns = ("pk, " if with_pk else "") + ("params_json, metrics_json, " if with_documents else "") + _COLUMNS
    on_conflict = _ON_CONFLICT + (
        ", params_json = excluded.params_json, metrics_json = excluded.metrics_json" if with_documents else "")
    marks = ",".join("?" * (columns.count(",") + 1))
    return f"INSERT INTO experiments ({columns}) VALUES ({marks}) {on_conflict}"


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
    encoded = _params_json(item)
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
    if not fresh:  # a new row was written with them
        conn.execute("UPDATE experiments SET params_json = ? WHERE pk = ?", (encoded, pk))
    if item.params or not fresh:
        changed(conn, "exp_params", pk)


def _write_list_metrics(conn: sqlite3.Connection, pk: int, summaries: dict[str, Summary] | None) -> None:
    """The run's metrics in a list row's shape, kept as JSON in its row (see migration 0008):
    from ``summaries`` when they are every summary the run has (a whole read), else as the
    index holds them."""
    if summaries is not None:
        encoded = _list_metrics_json(summaries)
    else:
        columns = ", ".join(LIST_AGGREGATES)  # column names from the schema's whitelist
        metrics = {
            row[0]: dict(zip(LIST_AGGREGATES, row[1:], strict=True))
            for row in conn.execute(
                f"SELECT metric, {columns} FROM metric_summaries WHERE exp_pk = ? ORDER BY metric", (pk,)
            )
        }
        encoded = orjson.dumps(metrics) if metrics else None
    conn.execute("UPDATE experiments SET metrics_json = ? WHERE pk = ?", (encoded, pk))


def _list_metrics_json(summaries: dict[str, Summary]) -> bytes | None:
    """What :func:`_write_list_metrics` reads back from the index, made from the summaries: by
    metric name, each value as its REAL column gives it back (a float; NaN none)."""
    if not summaries:
        return None
    return orjson.dumps({
        metric: {agg: real(getattr(summaries[metric], agg)) for agg in LIST_AGGREGATES}
        for metric in sorted(summaries)
    })


def _params_json(item: Prepared) -> bytes | None:
    return orjson.dumps(item.params, option=orjson.OPT_NON_STR_KEYS) if item.params else None


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
