"""Writing one run into the index: the indexer's write path, in named steps.

:func:`write_run` takes a run read from disk (:class:`Prepared`) and, inside the caller's
transaction: settles which row the run is (ids that moved or exist twice), appends or replaces
its metric points and their summaries, upserts its experiment row, and rewrites what its small
files say (tags, search text, params, config, environment) and its images. It returns what the
indexer must remember of the run and what changed, for the live event stream.
"""

from __future__ import annotations

import bisect
import logging
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from runicorn_lite import rundir
from runicorn_lite.db.chunks import CHUNK_POINTS, m4, pack, pack_times, split_sorted, unpack, unpack_times
from runicorn_lite.db.dialect import on_postgres, pg_number
from runicorn_lite.db.rows import row_document
from runicorn_lite.ingest.changes import Change, carried_points
from runicorn_lite.ingest.metric_cap import cap_metric_names
from runicorn_lite.ingest.summaries import Summary, extend, summarize
from runicorn_lite.params import ParamValue, index_value

log = logging.getLogger("runicorn_lite.ingest")


@dataclass
class Known:
    """What the indexer remembers of a run directory between reads: its row, or (``pk`` None,
    made by :meth:`seen`) a run seen but not in the index."""

    pk: int | None
    id: str
    files_sig: str
    events_ino: int | None
    events_offset: int
    events_last_step: int | None
    status: str
    pid: int | None
    hostname: str | None

    @classmethod
    def seen(cls, run_id: str, files_sig: str = "", events_ino: int | None = None, events_size: int = 0) -> Known:
        """A run seen but not indexed; an empty signature has it read again at the next scan."""
        return cls(None, run_id, files_sig, events_ino, events_size, None, "", None, None)

    @property
    def indexed(self) -> bool:
        return self.pk is not None


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
        n_points = _point_count(conn, existing_pk)
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


def changed(conn: sqlite3.Connection, table: str) -> None:
    """Move ``table``'s version on (db/schema.py, 0012_table_versions): its rows changed in
    this transaction."""
    conn.execute("UPDATE table_versions SET v = v + 1 WHERE name = ?", (table,))


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
        return _best_of(conn, pk, info.primary_metric, mode)
    return rundir.best_point(sorted(new_points.items()), mode, *previous)


def _best(info: rundir.RunInfo, live: tuple[float | None, int | None]) -> tuple[Any, ...]:
    """(name, value, step, mode) of the run's best metric: summary.json's, else the live one."""
    if live[0] is not None:
        return (info.primary_metric, live[0], live[1], info.primary_mode or "max")
    return (info.best_metric_name, _finite(info.best_metric_value), info.best_metric_step, info.best_metric_mode)


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
    metrics = {
        metric: {"last": last, "min": lo, "max": hi}
        for metric, last, lo, hi in conn.execute(
            "SELECT metric, last, min, max FROM metric_summaries WHERE exp_pk = ? ORDER BY metric", (pk,)
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


# -- metric points and their summaries --------------------------------------------------------------


def replace_points(
    conn: sqlite3.Connection,
    pk: int,
    exp_id: str,
    points: dict[str, dict[int, float]],
    times: dict[int, float],
    fresh: bool,
    system_times: dict[int, float] | None = None,
) -> None:
    """All of a run's points, read whole: chunks and summaries written anew (``sys/…`` metrics
    take their times from ``system_times``)."""
    if not fresh:
        conn.execute("DELETE FROM metric_chunks WHERE exp_pk = ?", (pk,))
        conn.execute("DELETE FROM chunk_outlines WHERE exp_pk = ?", (pk,))
        conn.execute("DELETE FROM metric_summaries WHERE exp_pk = ?", (pk,))
    if not fresh or points:
        changed(conn, "metric_summaries")
    if not points:
        return
    chunk_rows = []
    summary_rows = []
    for metric, series in points.items():
        if not series:
            continue
        parts = split_sorted(series)
        at = _times_of(metric, times, system_times)
        for chunk_no, (steps, vals) in enumerate(parts):
            chunk_rows.append(_chunk_rows(pk, metric, chunk_no, steps, vals, [at.get(s, _NAN) for s in steps]))
        summary_rows.append(_summary_row(pk, metric, exp_id, summarize_parts(parts)))
    _insert_chunks(conn, chunk_rows)
    conn.executemany(_INSERT_SUMMARY, summary_rows)


def _times_of(metric: str, times: dict[int, float], system_times: dict[int, float] | None) -> dict[int, float]:
    """The step → time map of ``metric``: system samples number their own steps."""
    return system_times if system_times is not None and metric.startswith(rundir.SYSTEM_PREFIX) else times


def append_points(
    conn: sqlite3.Connection, pk: int, exp_id: str, points: dict[str, dict[int, float]], times: dict[int, float],
    system_times: dict[int, float] | None = None,
) -> list[str]:
    """Merge points read from where the last read stopped; returns the metrics that got some.

    New steps past a series' end extend its last chunk and fold into its summary; a step logged
    again (or out of order) overwrites that point, and the summary is computed again from the
    series, so it is always what a full read would give.
    """
    touched = []
    for metric, series in points.items():
        if not series:
            continue
        touched.append(metric)
        row = conn.execute(_SELECT_SUMMARY, (pk, metric)).fetchone()
        before = Summary(*row) if row is not None else None
        _merge_series(conn, pk, metric, series, _times_of(metric, times, system_times))
        steps = sorted(series)
        if before is not None and steps[0] > before.max_step:
            after = extend(before, steps, [series[s] for s in steps])
        elif before is None:
            after = summarize(steps, [series[s] for s in steps])
        else:
            after = _summary_from_chunks(conn, pk, metric)
        conn.execute(_UPSERT_SUMMARY, _summary_row(pk, metric, exp_id, after))
    if touched:
        changed(conn, "metric_summaries")
    return sorted(touched)


_NAN = math.nan
_INSERT_CHUNK = (
    "INSERT INTO metric_chunks (exp_pk, metric, chunk, n, min_step, max_step, steps, vals, times)"
    " VALUES (?,?,?,?,?,?,?,?,?)"
)
_INSERT_OUTLINE = "INSERT INTO chunk_outlines (exp_pk, metric, chunk, n, min_step, max_step, m4) VALUES (?,?,?,?,?,?,?)"


def _chunk_rows(
    pk: int, metric: str, chunk_no: int, steps: Sequence[int], vals: Sequence[float], times: Sequence[float]
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The chunk's row and its outline's row."""
    head = (pk, metric, chunk_no, len(steps), steps[0], steps[-1])
    return (*head, *pack(steps, vals), pack_times(times)), (*head, m4(steps, vals, times))


def _insert_chunks(conn: sqlite3.Connection, pairs: list[tuple[tuple[Any, ...], tuple[Any, ...]]]) -> None:
    conn.executemany(_INSERT_CHUNK, [p[0] for p in pairs])
    conn.executemany(_INSERT_OUTLINE, [p[1] for p in pairs])


_SUMMARY_COLUMNS = "first, first_step, last, last_step, min, max, count, points, min_step, max_step"
_SELECT_SUMMARY = f"SELECT {_SUMMARY_COLUMNS} FROM metric_summaries WHERE exp_pk = ? AND metric = ?"
_INSERT_SUMMARY = (
    f"INSERT INTO metric_summaries (exp_pk, metric, exp_id, {_SUMMARY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_UPSERT_SUMMARY = _INSERT_SUMMARY.replace("INSERT INTO", "INSERT OR REPLACE INTO", 1)


def _summary_row(pk: int, metric: str, exp_id: str, s: Summary) -> tuple[Any, ...]:
    return (
        pk,
        metric,
        exp_id,
        s.first,
        s.first_step,
        s.last,
        s.last_step,
        s.min,
        s.max,
        s.count,
        s.points,
        s.min_step,
        s.max_step,
    )


def summarize_parts(parts: list[tuple[list[int], list[float]]]) -> Summary:
    """The summary of a series given as consecutive sorted parts."""
    summary = summarize(*parts[0])
    for steps, vals in parts[1:]:
        summary = extend(summary, steps, vals)
    return summary


def _summary_from_chunks(conn: sqlite3.Connection, pk: int, metric: str) -> Summary:
    parts = []
    for steps_blob, vals_blob in conn.execute(
        "SELECT steps, vals FROM metric_chunks WHERE exp_pk = ? AND metric = ? ORDER BY chunk", (pk, metric)
    ):
        steps, vals = unpack(steps_blob, vals_blob)
        parts.append((steps.tolist(), vals.tolist()))
    return summarize_parts(parts)


def _point_count(conn: sqlite3.Connection, pk: int) -> int:
    return int(
        conn.execute("SELECT coalesce(sum(points), 0) FROM metric_summaries WHERE exp_pk = ?", (pk,)).fetchone()[0]
    )


def _merge_series(
    conn: sqlite3.Connection, pk: int, metric: str, series: dict[int, float], times: dict[int, float]
) -> None:
    """Merge appended points of one metric: new steps extend the last chunk; re-logged steps
    overwrite (value and time)."""
    # The usual append lies past the last chunk: read that chunk's row alone, not the ranges of
    # every chunk (thousands for a long run).
    chunks = conn.execute(
        "SELECT chunk, n, min_step, max_step FROM chunk_outlines WHERE exp_pk = ? AND metric = ?"
        " ORDER BY chunk DESC LIMIT 1",
        (pk, metric),
    ).fetchall()
    if chunks and min(series) <= chunks[0][3]:
        chunks = conn.execute(
            "SELECT chunk, n, min_step, max_step FROM chunk_outlines WHERE exp_pk = ? AND metric = ? ORDER BY chunk",
            (pk, metric),
        ).fetchall()
    if not chunks:
        _insert_chunks(conn, [
            _chunk_rows(pk, metric, chunk_no, steps, vals, [times.get(s, _NAN) for s in steps])
            for chunk_no, (steps, vals) in enumerate(split_sorted(series))
        ])
        return
    # A point goes to the first chunk whose range ends at or after it (a gap before a chunk joins
    # that chunk), or to the last chunk when it lies past every range.
    highs = [c[3] for c in chunks]
    last_chunk = chunks[-1][0]
    touched: dict[int, dict[int, float]] = {}
    for step, value in series.items():
        i = bisect.bisect_left(highs, step)
        target = chunks[i][0] if i < len(chunks) else last_chunk
        touched.setdefault(target, {})[step] = value
    next_chunk = last_chunk + 1
    for chunk_no, new_points in touched.items():
        n, steps_blob, vals_blob, times_blob = conn.execute(
            "SELECT n, steps, vals, times FROM metric_chunks WHERE exp_pk = ? AND metric = ? AND chunk = ?",
            (pk, metric, chunk_no),
        ).fetchone()
        steps, vals = unpack(steps_blob, vals_blob)
        merged = dict(zip(steps, vals, strict=True))
        merged_times = dict(zip(steps, unpack_times(times_blob, n), strict=True))
        merged.update(new_points)
        merged_times.update((s, times.get(s, _NAN)) for s in new_points)
        parts = (
            split_sorted(merged, CHUNK_POINTS)
            if chunk_no == last_chunk
            else [(sorted(merged), [merged[s] for s in sorted(merged)])]
        )
        for i, (part_steps, part_vals) in enumerate(parts):
            row, outline = _chunk_rows(pk, metric, chunk_no if i == 0 else next_chunk, part_steps, part_vals,
                                       [merged_times[s] for s in part_steps])
            if i == 0:
                conn.execute(
                    "UPDATE metric_chunks SET n = ?, min_step = ?, max_step = ?, steps = ?, vals = ?, times = ?"
                    " WHERE exp_pk = ? AND metric = ? AND chunk = ?",
                    (*row[3:], pk, metric, chunk_no),
                )
                conn.execute(
                    "UPDATE chunk_outlines SET n = ?, min_step = ?, max_step = ?, m4 = ?"
                    " WHERE exp_pk = ? AND metric = ? AND chunk = ?",
                    (*outline[3:], pk, metric, chunk_no),
                )
            else:
                _insert_chunks(conn, [(row, outline)])
                next_chunk += 1


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _best_of(conn: sqlite3.Connection, pk: int, metric: str, mode: str) -> tuple[float | None, int | None]:
    """Best finite value of one series (NaN and infinities never count as best)."""
    best: tuple[float | None, int | None] = (None, None)
    for steps_blob, vals_blob in conn.execute(
        "SELECT steps, vals FROM metric_chunks WHERE exp_pk = ? AND metric = ? ORDER BY chunk", (pk, metric)
    ):
        steps, vals = unpack(steps_blob, vals_blob)
        best = rundir.best_point(zip(steps, vals, strict=False), mode, *best)
    return best
