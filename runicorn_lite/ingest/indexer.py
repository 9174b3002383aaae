"""Index run directories into SQLite: one writer, batched transactions, incremental reads.

A run is re-read only when its small files changed (size, mtime) or its events.jsonl grew; a
grown events.jsonl is read from the byte offset where the last read stopped. Everything is
derived from the files, so deleting the index and scanning again reproduces it.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from runicorn_lite import rundir
from runicorn_lite.db import Database, StoreError
from runicorn_lite.db.chunks import CHUNK_POINTS, pack, split_sorted, unpack

log = logging.getLogger("runicorn_lite.ingest")

# Runs prepared (files read) before one write transaction commits them.
BATCH_RUNS = 200
# ... or this many seconds of reading, whichever comes first, so progress shows while scanning.
BATCH_SECONDS = 0.5


@dataclass
class IndexState:
    """What /api/health reports about indexing. Plain fields, written by the indexer thread."""

    scanning: bool = False
    scans_completed: int = 0
    runs_seen: int = 0
    runs_indexed: int = 0
    runs_in_index: int = 0
    last_scan_started_at: float | None = None
    last_scan_finished_at: float | None = None
    last_scan_duration_s: float | None = None
    last_change_at: float | None = None
    last_ingest_lag_s: float | None = None
    errors: int = 0
    watcher: str = "off"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready copy."""
        return dict(self.__dict__)


@dataclass
class _Known:
    pk: int
    id: str
    files_sig: str
    events_ino: int | None
    events_offset: int
    events_last_step: int | None
    status: str
    pid: int | None
    hostname: str | None


@dataclass
class _Plan:
    """A run that changed, and how its events must be read."""

    loc: rundir.RunLocation
    rel: str
    known: _Known | None
    files_sig: str
    events_ino: int | None
    events_size: int
    full: bool


@dataclass
class _Prepared:
    """A run read from disk, ready to be written."""

    rel: str
    info: rundir.RunInfo
    files_sig: str
    files_changed: bool
    events_ino: int | None
    events: rundir.EventsChunk | None
    full_events: bool
    known: _Known | None
    body: str = ""
    events_size: int = 0


class Indexer:
    """Keeps the index in step with the run directories under one data root.

    Thread-safe: scans and refreshes are serialised by one lock (one writer).
    """

    def __init__(self, root: Path, db: Database) -> None:
        self.root = Path(root)
        self._root_prefix = f"{self.root}{os.sep}"
        self.db = db
        self.state = IndexState()
        self._lock = threading.RLock()  # guards _known and the index writes
        self._scan_lock = threading.Lock()
        self._stopping = threading.Event()
        self._known: dict[str, _Known] = {}
        self._analyzed_rows: int | None = None
        self._load_known()

    # -- public ---------------------------------------------------------------------------

    def scan(self, progress: Callable[[int, int], None] | None = None) -> IndexState:
        """Walk every run directory once; index what changed, drop what vanished.

        The walk first decides, by size and mtime, which runs need reading; then those are
        read and written in batches, one transaction per batch.
        """
        # Only one scan at a time; the write lock is held per batch, so an API write (a
        # delete, a PATCH) waits for one batch, not for a whole cold scan.
        with self._scan_lock:
            st = self.state
            started = time.time()
            st.scanning = True
            st.last_scan_started_at = started
            st.runs_seen = 0
            st.runs_indexed = 0
            try:
                with self._lock:
                    before = set(self._known)
                seen: set[str] = set()
                plans: list[_Plan] = []
                for loc in rundir.iter_runs(self.root):
                    rel = self._rel(loc.run_dir)
                    if rel in seen:
                        continue
                    seen.add(rel)
                    st.runs_seen += 1
                    plan = self._plan(loc, rel)
                    if plan is not None:
                        plans.append(plan)
                if progress:
                    progress(st.runs_seen, st.runs_indexed)
                batch: list[_Prepared] = []
                batch_started = time.monotonic()
                for plan in plans:
                    if self._stopping.is_set():  # shutting down: the next start resumes
                        break
                    prepared = self._prepare(plan)
                    if prepared is not None:
                        batch.append(prepared)
                    if len(batch) >= BATCH_RUNS or (batch and time.monotonic() - batch_started > BATCH_SECONDS):
                        with self._lock:
                            self._write(batch)
                        st.runs_indexed += len(batch)
                        batch = []
                        batch_started = time.monotonic()
                        if progress:
                            progress(st.runs_seen, st.runs_indexed)
                with self._lock:
                    if batch:
                        self._write(batch)
                        st.runs_indexed += len(batch)
                    # Runs indexed before the walk and not found by it; runs a refresh added
                    # meanwhile were not in ``before``.
                    vanished = [rel for rel in before if rel not in seen and rel in self._known]
                    if self._stopping.is_set():
                        vanished = []
                    if vanished:
                        self._remove(vanished)
                self._analyze_if_grown()
                if progress:
                    progress(st.runs_seen, st.runs_indexed)
            finally:
                st.scanning = False
                finished = time.time()
                st.last_scan_finished_at = finished
                st.last_scan_duration_s = round(finished - started, 4)
                st.scans_completed += 1
                st.runs_in_index = self._indexed_count()
            return st

    def stop(self) -> None:
        """Make a scan under way stop after its current batch (at shutdown)."""
        self._stopping.set()

    def refresh(self, run_dirs: Iterable[Path], changed_at: float | None = None) -> int:
        """Re-read the given run directories now (from the watcher or after an API write).

        A directory that no longer holds a run is removed from the index. Returns how many
        runs were written or removed.
        """
        with self._lock:
            batch: list[_Prepared] = []
            gone: list[str] = []
            for run_dir in {Path(p) for p in run_dirs}:
                rel = self._rel(run_dir)
                loc = rundir.location_of(self.root, run_dir)
                if loc is None:
                    if rel in self._known:
                        gone.append(rel)
                    continue
                plan = self._plan(loc, rel)
                prepared = self._prepare(plan) if plan is not None else None
                if prepared is not None:
                    batch.append(prepared)
            if batch:
                self._write(batch)
            if gone:
                self._remove(gone)
            self.state.runs_in_index = self._indexed_count()
            if changed_at is not None and (batch or gone):
                self.state.last_ingest_lag_s = round(time.time() - changed_at, 4)
            return len(batch) + len(gone)

    def _indexed_count(self) -> int:
        return sum(1 for known in self._known.values() if known.pk >= 0)

    def _analyze_if_grown(self) -> None:
        """Refresh the planner's statistics when the table grew or shrank by a quarter.

        Without them SQLite takes ``deleted_at IS NULL`` for a selective filter and sorts the
        whole table instead of walking a sort index (1.2 ms against 0.25 ms for a page of 50 at
        2,000 runs, measured).
        """
        rows = len(self._known)
        last = self._analyzed_rows
        if last is not None and abs(rows - last) <= max(100, last // 4):
            return
        try:
            with self.db.write() as conn:
                conn.execute("ANALYZE")
        except (StoreError, sqlite3.Error) as exc:
            log.warning("ANALYZE failed: %s", exc)
            return
        self._analyzed_rows = rows

    def known_run_dir(self, path: Path) -> Path | None:
        """The indexed run directory that ``path`` is, or lies in; None if there is none."""
        try:
            rel_parts = Path(path).relative_to(self.root).parts
        except ValueError:
            return None
        for depth in range(len(rel_parts), 0, -1):
            rel = "/".join(rel_parts[:depth])
            if rel in self._known:
                return self.root / rel
        return None

    def check_live_runs(self) -> int:
        """Refresh runs marked running whose process is gone (reported failed from now on)."""
        dead = [
            self.root / rel
            for rel, k in list(self._known.items())
            if k.status == "running" and rundir.pid_is_gone(k.pid, k.hostname)
        ]
        if not dead:
            return 0
        with self._lock:
            for run_dir in dead:
                known = self._known.get(self._rel(run_dir))
                if known:
                    known.files_sig = ""  # force a re-read of the status
        return self.refresh(dead)

    # -- reading --------------------------------------------------------------------------

    def _rel(self, run_dir: Path) -> str:
        text, root = str(run_dir), self._root_prefix
        if text.startswith(root):  # the common case, without pathlib's parsing
            return text[len(root):].replace(os.sep, "/")
        try:
            return Path(run_dir).relative_to(self.root).as_posix()
        except ValueError:
            return Path(run_dir).as_posix()

    def _load_known(self) -> None:
        def load(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT run_dir, pk, id, files_sig, events_ino, events_offset, events_last_step,"
                " status, pid, hostname FROM experiments"
            ).fetchall()

        def analyzed(conn: sqlite3.Connection) -> int | None:
            try:
                row = conn.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'experiments' LIMIT 1").fetchone()
                # An index a migration added since the last ANALYZE has no statistics yet.
                unknown = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'experiments'"
                    " AND name NOT IN (SELECT idx FROM sqlite_stat1 WHERE tbl = 'experiments')"
                ).fetchone()[0]
            except sqlite3.OperationalError:  # never analyzed: no sqlite_stat1 table yet
                return None
            return int(row[0].split()[0]) if row and not unknown else None

        rows = self.db.read(load)
        self._known = {row[0]: _Known(*row[1:]) for row in rows}
        self._analyzed_rows = self.db.read(analyzed)
        self.state.runs_in_index = len(self._known)

    def _plan(self, loc: rundir.RunLocation, rel: str) -> _Plan | None:
        """What reading this run takes, or None when it is unchanged (two stats per file)."""
        known = self._known.get(rel)
        files_sig, events_stat = rundir.file_signature(loc.run_dir, loc.names)
        events_ino = events_stat[0] if events_stat else None
        events_size = events_stat[1] if events_stat else 0
        if (
            known is not None
            and known.files_sig == files_sig
            and known.events_ino == events_ino
            and events_size == known.events_offset
        ):
            return None
        full = (
            known is None or known.pk < 0 or known.events_ino != events_ino or events_size < known.events_offset
        )
        return _Plan(loc, rel, known, files_sig, events_ino, events_size, full)

    def _prepare(self, plan: _Plan) -> _Prepared | None:
        """Read the run as planned."""
        loc, rel, known = plan.loc, plan.rel, plan.known
        try:
            info = rundir.read_run(loc)
        except OSError as exc:  # vanished or unreadable mid-read; picked up when it changes
            log.warning("skipping run %s: %s", rel, exc)
            self.state.errors += 1
            return None
        if info is None:
            return None
        full = plan.full or known is None or known.id != info.id
        events = None
        if plan.events_ino is not None:
            if full:
                events = rundir.read_events(loc.run_dir / rundir.EVENTS)
            elif known is not None and plan.events_size > known.events_offset:
                events = rundir.read_events(loc.run_dir / rundir.EVENTS, known.events_offset, known.events_last_step)
        if events is not None and events.bad_lines:
            log.warning("%s: %d unreadable line(s) in events.jsonl skipped", rel, events.bad_lines)
        files_changed = known is None or known.files_sig != plan.files_sig or known.id != info.id
        body = "\n".join(
            x
            for x in (info.project, info.name, info.path, info.alias, info.description, " ".join(info.tags), info.id)
            if x
        )
        return _Prepared(
            rel=rel,
            info=info,
            files_sig=plan.files_sig,
            files_changed=files_changed,
            events_ino=plan.events_ino,
            events=events,
            full_events=full,
            known=known,
            body=body,
            events_size=plan.events_size,
        )

    # -- writing --------------------------------------------------------------------------

    def _write(self, batch: list[_Prepared]) -> None:
        """Write a batch in one transaction; ``_known`` changes only after the commit.

        If a run cannot be written (a value SQLite refuses, say), the batch is rolled back and
        written again with each run in its own savepoint: that run is skipped alone, logged
        once, and remembered by its file signature (retried when it changes). Savepoints on
        every batch would cost a third of a cold scan (measured), so only a failed batch pays.
        """
        now = time.time()
        try:
            staged = self._write_batch(batch, now, isolate=False)
        except _RUN_ERRORS:
            try:
                staged = self._write_batch(batch, now, isolate=True)
            except (StoreError, sqlite3.Error) as exc:
                return self._write_failed(exc, batch)
        except (StoreError, sqlite3.Error) as exc:
            return self._write_failed(exc, batch)
        for rel, value in staged.items():
            if value is None:
                self._known.pop(rel, None)
            else:
                self._known[rel] = value
        self.state.last_change_at = now

    def _write_batch(self, batch: list[_Prepared], now: float, *, isolate: bool) -> dict[str, _Known | None]:
        staged: dict[str, _Known | None] = {}
        with self.db.write() as conn:
            for item in batch:
                if self._known.get(item.rel) is not item.known:
                    continue  # refreshed since it was read (an API write): that read is newer
                changes: dict[str, _Known | None] = {}
                if not isolate:
                    self._write_one(conn, item, now, changes)
                else:
                    conn.execute("SAVEPOINT run")
                    try:
                        self._write_one(conn, item, now, changes)
                    except _RUN_ERRORS as exc:
                        conn.execute("ROLLBACK TO run")
                        log.warning("skipping run %s: %s (retried when it changes)", item.rel, exc)
                        self.state.errors += 1
                        changes = {item.rel: _marker(item)}
                    conn.execute("RELEASE run")
                staged.update(changes)
        return staged

    def _write_failed(self, exc: Exception, batch: list[_Prepared]) -> None:
        # Nothing of the batch was committed and _known was not touched: it is retried on the
        # next scan or change.
        log.error("index write failed (%s); %d run(s) will be retried", exc, len(batch))
        self.state.errors += 1

    def _write_one(
        self, conn: sqlite3.Connection, item: _Prepared, now: float, changes: dict[str, _Known | None]
    ) -> None:
        info = item.info
        known = item.known if item.known is not None and item.known.pk >= 0 else None
        existing_pk = known.pk if known is not None else None
        if known is None or known.id != info.id:
            if known is not None:  # the directory now holds another id
                self._delete_pk(conn, known.pk)
                known = None
            row = conn.execute("SELECT pk, run_dir FROM experiments WHERE id = ?", (info.id,)).fetchone()
            existing_pk = row[0] if row else None
            if row is not None and row[1] != item.rel:
                # The same id in two directories: moved (to the recycle bin, say), or copied.
                # One copy is indexed, by a fixed preference, so scans never flip between them.
                if (self.root / row[1]).is_dir() and _preference(row[1]) < _preference(item.rel):
                    log.warning("run %s is also at %s; indexing that copy", info.id, row[1])
                    changes[item.rel] = _marker(item)
                    return
                changes[row[1]] = _Known(-1, info.id, "", None, 0, None, "", None, None)  # re-read once
        fresh = existing_pk is None  # nothing of this run in the index yet: no old rows to delete
        full = item.full_events or known is None
        events = item.events
        mode = info.primary_mode or "max"
        # The primary metric whose best the logged points give, when the files state no best.
        live_metric = info.primary_metric if info.best_metric_value is None else None
        live: tuple[float | None, int | None] = (None, None)

        if full:
            offset = events.offset if events else 0
            last_step = events.last_step if events else None
            points = events.points if events else {}
            n_points = sum(len(series) for series in points.values())
            if live_metric is not None:
                live = rundir.best_point(sorted((points.get(live_metric) or {}).items()), mode, None, None)
        else:
            assert known is not None
            pk = known.pk
            offset, last_step = known.events_offset, known.events_last_step
            if events is not None:
                offset, last_step = events.offset, events.last_step
                if events.points:
                    self._merge_series(conn, pk, events.points)
            n_points = conn.execute(
                "SELECT coalesce(sum(n), 0) FROM metric_chunks WHERE exp_pk = ?", (pk,)
            ).fetchone()[0]
            if live_metric is not None:
                if item.files_changed:  # the primary metric may be new: look at the whole series
                    live = _best_of(conn, pk, live_metric, mode)
                else:
                    previous = conn.execute(
                        "SELECT live_best_value, live_best_step FROM experiments WHERE pk = ?", (pk,)
                    ).fetchone()
                    new_points = (events.points.get(live_metric) or {}) if events else {}
                    live = rundir.best_point(sorted(new_points.items()), mode, *previous)

        best: tuple[str | None, float | None, int | None, str | None]
        if live[0] is not None:
            best = (info.primary_metric, live[0], live[1], mode)
        else:
            best = (
                info.best_metric_name, _finite(info.best_metric_value), info.best_metric_step, info.best_metric_mode
            )
        cursor = conn.execute(
            """
            INSERT INTO experiments (
                id, run_dir, generation, project, name, path, alias, description, tags, status,
                exit_reason, created_at, updated_at, ended_at, pid, hostname, best_metric_name,
                best_metric_value, best_metric_step, best_metric_mode, primary_metric,
                primary_mode, deleted_at, delete_reason, environment_available, n_points,
                files_sig, events_ino, events_offset, events_last_step, live_best_value,
                live_best_step, indexed_at)
            VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
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
                live_best_step = excluded.live_best_step, indexed_at = excluded.indexed_at
            """,
            (
                info.id, item.rel, info.generation, info.project, info.name, info.path,
                info.alias, info.description, orjson.dumps(info.tags).decode(), info.status,
                info.exit_reason, info.created_at, info.updated_at, info.ended_at, info.pid,
                info.hostname, *best, info.primary_metric, info.primary_mode, info.deleted_at,
                info.delete_reason, int(info.environment_available), n_points, item.files_sig,
                item.events_ino, offset, last_step, live[0], live[1], now,
            ),
        )
        # RETURNING would double the cost of this statement (measured); the pk is known already
        # unless the row is new, and then it is the last inserted rowid.
        if existing_pk is None:
            assert cursor.lastrowid is not None  # set by the INSERT that just ran
            pk = cursor.lastrowid
        else:
            pk = existing_pk

        if full:
            if not fresh:
                conn.execute("DELETE FROM metric_chunks WHERE exp_pk = ?", (pk,))
            if events is not None and events.points:
                self._insert_series(conn, pk, events.points)
        if full or item.files_changed:
            if not fresh:
                conn.execute("DELETE FROM exp_tags WHERE exp_pk = ?", (pk,))
                conn.execute("DELETE FROM experiments_fts WHERE rowid = ?", (pk,))
            if info.tags:
                conn.executemany(
                    "INSERT OR IGNORE INTO exp_tags (tag, exp_pk) VALUES (?, ?)", [(t, pk) for t in info.tags]
                )
            conn.execute("INSERT INTO experiments_fts (rowid, body) VALUES (?, ?)", (pk, item.body))

        changes[item.rel] = _Known(
            pk, info.id, item.files_sig, item.events_ino, offset, last_step, info.status, info.pid, info.hostname
        )

    @staticmethod
    def _insert_series(conn: sqlite3.Connection, pk: int, points: dict[str, dict[int, float]]) -> None:
        rows = []
        for metric, series in points.items():
            for chunk_no, (steps, vals) in enumerate(split_sorted(series)):
                rows.append((pk, metric, chunk_no, len(steps), steps[0], steps[-1], *pack(steps, vals)))
        conn.executemany(
            "INSERT INTO metric_chunks (exp_pk, metric, chunk, n, min_step, max_step, steps, vals)"
            " VALUES (?,?,?,?,?,?,?,?)",
            rows,
        )

    @staticmethod
    def _merge_series(conn: sqlite3.Connection, pk: int, points: dict[str, dict[int, float]]) -> None:
        """Merge appended points: new steps extend the last chunk; re-logged steps overwrite."""
        for metric, series in points.items():
            # The usual append lies past the last chunk: read that chunk's row alone, not the
            # ranges of every chunk (thousands for a long run).
            chunks = conn.execute(
                "SELECT chunk, n, min_step, max_step FROM metric_chunks"
                " WHERE exp_pk = ? AND metric = ? ORDER BY chunk DESC LIMIT 1",
                (pk, metric),
            ).fetchall()
            if chunks and min(series) <= chunks[0][3]:
                chunks = conn.execute(
                    "SELECT chunk, n, min_step, max_step FROM metric_chunks"
                    " WHERE exp_pk = ? AND metric = ? ORDER BY chunk",
                    (pk, metric),
                ).fetchall()
            if not chunks:
                Indexer._insert_series(conn, pk, {metric: series})
                continue
            # A point goes to the first chunk whose range ends at or after it (a gap before a
            # chunk joins that chunk), or to the last chunk when it lies past every range.
            highs = [c[3] for c in chunks]
            last_chunk = chunks[-1][0]
            touched: dict[int, dict[int, float]] = {}
            for step, value in series.items():
                i = bisect.bisect_left(highs, step)
                target = chunks[i][0] if i < len(chunks) else last_chunk
                touched.setdefault(target, {})[step] = value
            next_chunk = last_chunk + 1
            for chunk_no, new_points in touched.items():
                row = conn.execute(
                    "SELECT steps, vals FROM metric_chunks WHERE exp_pk = ? AND metric = ? AND chunk = ?",
                    (pk, metric, chunk_no),
                ).fetchone()
                steps, vals = unpack(row[0], row[1])
                merged = dict(zip(steps, vals, strict=True))
                merged.update(new_points)
                parts = split_sorted(merged, CHUNK_POINTS) if chunk_no == last_chunk else [
                    (sorted(merged), [merged[s] for s in sorted(merged)])
                ]
                first_steps, first_vals = parts[0]
                conn.execute(
                    "UPDATE metric_chunks SET n = ?, min_step = ?, max_step = ?, steps = ?, vals = ?"
                    " WHERE exp_pk = ? AND metric = ? AND chunk = ?",
                    (
                        len(first_steps), first_steps[0], first_steps[-1], *pack(first_steps, first_vals),
                        pk, metric, chunk_no,
                    ),
                )
                for extra_steps, extra_vals in parts[1:]:
                    conn.execute(
                        "INSERT INTO metric_chunks (exp_pk, metric, chunk, n, min_step, max_step, steps, vals)"
                        " VALUES (?,?,?,?,?,?,?,?)",
                        (
                            pk, metric, next_chunk, len(extra_steps), extra_steps[0], extra_steps[-1],
                            *pack(extra_steps, extra_vals),
                        ),
                    )
                    next_chunk += 1

    def _remove(self, rels: list[str]) -> None:
        try:
            with self.db.write() as conn:
                for rel in rels:
                    known = self._known.get(rel)
                    if known is not None:
                        self._delete_pk(conn, known.pk)
        except (StoreError, sqlite3.Error) as exc:
            log.error("index delete failed: %s", exc)
            self.state.errors += 1
            self._load_known()
            return
        gone_ids = set()
        for rel in rels:
            known = self._known.pop(rel, None)
            if known is not None:
                gone_ids.add(known.id)
        # Other copies of a removed run id were left alone while it was indexed: read them now.
        others = [rel for rel, known in self._known.items() if known.pk < 0 and known.id in gone_ids]
        for rel in others:
            self._known[rel] = _Known(-1, self._known[rel].id, "", None, 0, None, "", None, None)
        self.state.last_change_at = time.time()
        if others:
            self.refresh([self.root / rel for rel in others])

    @staticmethod
    def _delete_pk(conn: sqlite3.Connection, pk: int) -> None:
        conn.execute("DELETE FROM experiments_fts WHERE rowid = ?", (pk,))
        conn.execute("DELETE FROM experiments WHERE pk = ?", (pk,))


# What one run's data can raise on the way into SQLite (as opposed to the store failing).
_RUN_ERRORS = (sqlite3.InterfaceError, sqlite3.IntegrityError, sqlite3.DataError, OverflowError, ValueError, TypeError)


def _marker(item: _Prepared) -> _Known:
    """A run seen but not in the index (skipped, or another copy of an indexed id): pk -1 and
    its file signature, so a rescan leaves it alone until its files change."""
    return _Known(-1, item.info.id, item.files_sig, item.events_ino, item.events_size, None, "", None, None)


def _preference(rel: str) -> tuple[int, int, str]:
    """Which of two copies of one run id to index: live before recycled, modern before legacy."""
    parts = rel.split("/")
    return (int(rundir.RECYCLE_DIRNAME in parts), int(parts[0] != rundir.RUNS_DIRNAME), rel)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _best_of(conn: sqlite3.Connection, pk: int, metric: str, mode: str) -> tuple[float | None, int | None]:
    """Best finite value of one series (NaN and infinities never count as best)."""
    best: tuple[float | None, int | None] = (None, None)
    for steps_blob, vals_blob in conn.execute(
        "SELECT steps, vals FROM metric_chunks WHERE exp_pk = ? AND metric = ? ORDER BY chunk", (pk, metric)
    ):
        steps, vals = unpack(steps_blob, vals_blob)
        best = rundir.best_point(zip(steps, vals, strict=True), mode, *best)
    return best
