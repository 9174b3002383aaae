"""Index run directories into SQLite: one writer, batched transactions, incremental reads.

A run is re-read only when its small files changed (size, mtime) or its events.jsonl grew; a
grown events.jsonl is read from the byte offset where the last read stopped. Everything is
derived from the files, so deleting the index and scanning again reproduces it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from runicorn_lite import rundir
from runicorn_lite.db import DamagedStore, DatabaseUnavailable, StoreError
from runicorn_lite.db.backend import Backend
from runicorn_lite.db.bulk import ColdScan
from runicorn_lite.db.store import IndexStore
from runicorn_lite.heap import give_memory_back
from runicorn_lite.ingest.changelog import log_changes, publish_state
from runicorn_lite.ingest.changes import Change
from runicorn_lite.ingest.coldread import HANDOVER_RUNS, ChildReader
from runicorn_lite.ingest.known import LOAD_BUDGET_S, Known, KnownRuns, analyzed_rows, load_known, relative_to
from runicorn_lite.ingest.reading import Plan, Timed, plan_run, prepare_run
from runicorn_lite.ingest.state import IndexState
from runicorn_lite.ingest.writer import Prepared, Rows, delete_row, marker, write_run

log = logging.getLogger("runicorn_lite.ingest")

# Runs prepared (files read) before one write transaction commits them.
BATCH_RUNS = 200
# ... or this many seconds of reading, whichever comes first, so progress shows while scanning.
BATCH_SECONDS = 0.5


Listener = Callable[[list[Change]], None]


class Indexer:
    """Keeps the index in step with the run directories under one data root.

    Every write runs on the store's one writer thread: :meth:`scan`, :meth:`refresh`,
    :meth:`check_live_runs` and :meth:`reattach` called from any other thread are queued there
    and waited for (a request's edit is a job there itself: ``AppContext.edit``).
    """

    def __init__(self, root: Path, db: Backend, store: IndexStore | None = None) -> None:
        self.root = Path(root)
        self._root_prefix = f"{self.root}{os.sep}"
        self.db = db
        self.store = store if store is not None else IndexStore(db)
        db.writer_check = self.store.on_writer
        # Several workers write this store (serve --workers N): what is indexed is read again
        # before each write, and every write is logged for the others (ingest/changelog.py).
        self.shared = False
        self.state = IndexState()
        self._lock = threading.RLock()  # guards _known and the index writes
        self._scan_lock = threading.Lock()
        self._stopping = threading.Event()
        self._known = KnownRuns()
        self._analyzed_rows: int | None = None
        self._load_known()

    # -- public ---------------------------------------------------------------------------

    def scan(self, progress: Callable[[int, int], None] | None = None) -> IndexState:
        """Walk every run directory once; index what changed, drop what vanished.

        The walk first decides, by size and mtime, which runs need reading; then those are
        read and written in batches, one transaction per batch.
        """
        return self.store.run(lambda: self._scan(progress))

    def _scan(self, progress: Callable[[int, int], None] | None) -> IndexState:
        # Only one scan at a time; urgent jobs (an API write: a delete, a PATCH) run between
        # two batches, so they wait for one batch, not for a whole cold scan.
        with self._scan_lock:
            if self.shared:
                with self._lock:
                    self._load_known()
            st = self.state
            started = time.time()
            st.scanning = True
            st.last_scan_started_at = started
            st.runs_seen = 0
            st.runs_indexed = 0
            try:
                with ColdScan(self.db, cold=not self._known) as cold:
                    # Runs are read as the walk finds them, a batch at a time (every plan held
                    # first took 1.85 KB a run at a million runs); past HANDOVER_RUNS, a cold
                    # scan's are read by child processes (ingest/coldread.py).
                    walk = Timed(self._walk(self._known.begin_walk()))
                    read = ((plan.loc, self._prepare(plan)) for plan in walk)
                    handover = self._read_prepared(read, progress, cold, HANDOVER_RUNS if cold.cold else None)
                    walk_s = walk.seconds + (self._read_in_child(progress, cold) if handover else 0.0)
                    st.last_walk_s = round(walk_s, 4)
                    with self._lock:
                        vanished = self._known.unwalked()
                        if vanished and not self._stopping.is_set():
                            self._remove(vanished)
                self._analyze_if_grown()  # the indexes set aside are made again by now
                if progress:
                    progress(st.runs_seen, st.runs_indexed)
            finally:
                self._scan_finished(started)
            return st

    def _walk(self, walk_no: int) -> Iterator[Plan]:
        """The plans of the run directories that changed, as the walk finds them; what is
        known of every run directory found is marked with ``walk_no``."""
        new: set[str] = set()  # found and not known yet (a directory may be found twice)
        for loc in rundir.iter_runs(self.root):
            rel = self._rel(loc.run_dir)
            known = self._known.get(rel)
            if (known.walk == walk_no) if known is not None else (rel in new):
                continue
            if known is not None:
                known.walk = walk_no
            else:
                new.add(rel)
                if len(new) > 2 * BATCH_RUNS:  # those written since are known (and marked)
                    new = {r for r in new if r not in self._known}
            self.state.runs_seen += 1
            plan = plan_run(loc, rel, known)
            if plan is not None:
                yield plan

    def _read_in_child(self, progress: Callable[[int, int], None] | None, cold: ColdScan) -> float:
        """Have child processes read the runs not known yet, and write them; the seconds they
        spent walking."""
        reader = ChildReader(self.root, set(self._known))
        walk_s = 0.0

        def read() -> Iterator[tuple[rundir.RunLocation, Prepared | None]]:
            nonlocal walk_s
            for chunk in reader.chunks():
                self.state.runs_seen += chunk.seen
                self.state.errors += chunk.errors
                walk_s += chunk.walk_s
                yield from chunk.runs

        try:
            self._read_prepared(read(), progress, cold)
        finally:
            reader.close()
        return walk_s

    def _read_prepared(
        self, runs: Iterable[tuple[rundir.RunLocation, Prepared | None]], progress: Callable[[int, int], None] | None,
        cold: ColdScan, limit: int | None = None,
    ) -> bool:
        """Write the runs read in batches (of BATCH_RUNS, or BATCH_SECONDS of reading); a run
        whose events are read only in part is written at once, then read to its end. With
        ``limit``, stop after that many runs: whether it stopped so (there may be more)."""
        st = self.state
        batch: list[Prepared] = []
        batch_started = time.monotonic()
        count = 0

        def write() -> None:
            nonlocal batch
            with self._lock:
                self._write(batch)
            st.runs_indexed += len(batch)
            batch = []
            cold.written(st.runs_indexed)

        for loc, prepared in runs:
            if self._stopping.is_set():  # shutting down: the next start resumes
                break
            if prepared is not None:
                batch.append(prepared)
            if prepared is not None and prepared.events is not None and prepared.events.more:
                write()
                self._read_rest(loc, prepared.rel)
            if len(batch) >= BATCH_RUNS or (batch and time.monotonic() - batch_started > BATCH_SECONDS):
                write()
                batch_started = time.monotonic()
                if progress:
                    progress(st.runs_seen, st.runs_indexed)
                self.store.between_batches()
            count += 1
            if count == limit:
                break
        if batch:
            write()
        return count == limit

    def _scan_finished(self, started: float) -> None:
        st = self.state
        st.scanning = False
        finished = time.time()
        st.last_scan_finished_at = finished
        st.last_scan_duration_s = round(finished - started, 4)
        st.scans_completed += 1
        st.runs_in_index = self._known.indexed_count()
        st.last_scan_runs_seen, st.last_scan_runs_indexed = st.runs_seen, st.runs_indexed
        if self.shared:
            self._publish_state(finished)
        # What this scan's windows of events took (and, at each periodic rescan, what the
        # ingest of live runs and the requests since freed) goes back to the OS.
        give_memory_back()

    def _publish_state(self, now: float) -> None:
        """Where this scan left the index, for the workers that do not ingest (their health)."""
        try:
            with self.db.write() as conn:
                publish_state(conn, self.state.as_dict(), now)
        except (StoreError, sqlite3.Error) as exc:
            log.debug("cannot publish the ingest state: %s", exc)

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with the changes of every committed write (the store's change feed)."""
        self.store.subscribe(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self.store.unsubscribe(listener)

    def stop(self) -> None:
        """Make a scan under way stop after its current batch (at shutdown)."""
        self._stopping.set()

    def resume(self) -> None:
        """Scan again after :meth:`stop` (a worker that ingests again, after another did)."""
        self._stopping.clear()

    def reattach(self, reopen: Callable[[], None]) -> None:
        """Run ``reopen`` (the database file was deleted, replaced or damaged) with no scan or
        refresh under way, then forget what was indexed and read it from the database again."""
        self.store.run(lambda: self._reattach(reopen))

    def _reattach(self, reopen: Callable[[], None]) -> None:
        with self._scan_lock, self._lock:
            reopen()
            self._known = KnownRuns()
            self._load_known()

    def refresh(self, run_dirs: Iterable[Path], changed_at: float | None = None, *, urgent: bool = False) -> int:
        """Re-read the given run directories now (from the watcher or after an API write).

        A directory that no longer holds a run is removed from the index. Returns how many
        runs were written or removed.
        """
        dirs = list(run_dirs)
        return self.store.run(lambda: self._refresh(dirs, changed_at), urgent=urgent)

    def _refresh(self, run_dirs: Iterable[Path], changed_at: float | None) -> int:
        large: list[tuple[rundir.RunLocation, str]] = []
        with self._lock:
            if self.shared:
                run_dirs = list(run_dirs)
                self._reload_known([self._rel(Path(p)) for p in run_dirs])
            batch: list[Prepared] = []
            gone: list[str] = []
            for run_dir in {Path(p) for p in run_dirs}:
                rel = self._rel(run_dir)
                loc = rundir.location_of(self.root, run_dir)
                if loc is None:
                    if rel in self._known:
                        gone.append(rel)
                    continue
                plan = plan_run(loc, rel, self._known.get(rel))
                prepared = self._prepare(plan) if plan is not None else None
                if prepared is not None:
                    batch.append(prepared)
                    if prepared.events is not None and prepared.events.more:
                        large.append((loc, rel))
            if batch:
                self._write(batch)
            if gone:
                self._remove(gone)
            self.state.runs_in_index = self._known.indexed_count()
            if changed_at is not None and (batch or gone):
                self.state.last_ingest_lag_s = round(time.time() - changed_at, 4)
        # The rest of a huge events file, window by window, without holding the lock between
        # windows (an API write waits for one window, not for the whole file).
        for loc, rel in large:
            self._read_rest(loc, rel)
        return len(batch) + len(gone)

    def _read_rest(self, loc: rundir.RunLocation, rel: str) -> None:
        """Go on reading a run whose events.jsonl was read only in part, a window at a time."""
        while not self._stopping.is_set():
            plan = plan_run(loc, rel, self._known.get(rel))
            prepared = self._prepare(plan) if plan is not None else None
            if prepared is None:
                return
            with self._lock:
                self._write([prepared])
                written = self._known.get(rel)
            self.store.between_batches()
            if prepared.events is None or not prepared.events.more:
                return
            if written is None or written.events_offset != prepared.events.offset:
                return  # the write failed (logged): the next scan or change retries

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
            self.db.analyze()
        except (StoreError, sqlite3.Error) as exc:
            log.warning("ANALYZE failed: %s", exc)
            return
        self._analyzed_rows = rows

    def known_rels(self) -> list[str]:  # every run directory known, relative to the root
        return list(self._known)

    def knows(self, rel: str) -> bool:  # whether the run directory ``rel`` is known
        return rel in self._known

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

    def live_run_dirs(self) -> list[Path]:
        """Run directories of the runs marked running (few, whatever the size of the tree)."""
        return [self.root / rel for rel, _k in self._known.running()]

    def check_live_runs(self) -> int:
        """Refresh runs marked running whose process is gone (reported failed from now on)."""
        dead = [self.root / rel for rel, k in self._known.running() if rundir.pid_is_gone(k.pid, k.hostname)]
        if not dead:
            return 0

        def job() -> int:
            with self._lock:
                for run_dir in dead:
                    known = self._known.get(self._rel(run_dir))
                    if known:
                        known.forget_files()  # its status is read again
            return self._refresh(dead, None)

        return self.store.run(job)

    # -- reading --------------------------------------------------------------------------

    def _rel(self, run_dir: Path) -> str:
        return relative_to(self._root_prefix, self.root, run_dir)

    def _load_known(self) -> None:
        self._known.replace(self.db.read(load_known, budget_s=LOAD_BUDGET_S))
        self._analyzed_rows = self.db.read(analyzed_rows)
        self.state.runs_in_index = len(self._known)

    def _reload_known(self, rels: list[str]) -> None:
        """What the index holds now for these runs (another worker may have written them)."""
        self._known.update(rels, self.db.read(lambda conn: load_known(conn, rels)))

    def _prepare(self, plan: Plan) -> Prepared | None:
        try:
            return prepare_run(plan)
        except OSError as exc:  # vanished or unreadable mid-read; picked up when it changes
            log.warning("skipping run %s: %s", plan.rel, exc)
            self.state.errors += 1
            return None

    # -- writing --------------------------------------------------------------------------

    def _write(self, batch: list[Prepared]) -> None:
        """Write a batch in one transaction; ``_known`` changes only after the commit.

        If a run cannot be written (a value SQLite refuses, say), the batch is rolled back and
        written again with each run in its own savepoint: that run is skipped alone, logged
        once, and remembered by its file signature (retried when it changes). Savepoints on
        every batch would cost a third of a cold scan (measured), so only a failed batch pays.
        """
        now = time.time()
        try:
            staged, notes = self._write_batch(batch, now, isolate=False)
        except _RUN_ERRORS:
            try:
                staged, notes = self._write_batch(batch, now, isolate=True)
            except (StoreError, sqlite3.Error) as exc:
                return self._write_failed(exc, batch)
        except (StoreError, sqlite3.Error) as exc:
            return self._write_failed(exc, batch)
        for rel, value in staged.items():
            if value is None:
                self._known.pop(rel)
            else:
                self._known.keep(rel, value)
        self.state.last_change_at = now
        self._notify(notes)

    def _write_batch(
        self, batch: list[Prepared], now: float, *, isolate: bool
    ) -> tuple[dict[str, Known | None], list[Change]]:
        staged: dict[str, Known | None] = {}
        notes: list[Change] = []
        # Isolated: one savepoint per run, each failure caught where it happens, so no pipeline
        # of statements on PostgreSQL (its errors would surface later).
        with self.db.write(pipelined=not isolate) as conn:
            rows = Rows(conn, [item.info.id for item in batch])
            for item in batch:
                if self._known.get(item.rel) is not item.known:
                    continue  # refreshed since it was read (an API write): that read is newer
                known_out: dict[str, Known | None] = {}
                if not isolate:
                    notes.extend(write_run(conn, self.root, item, now, known_out, rows))
                else:
                    conn.execute("SAVEPOINT run")
                    before = dict(rows.by_id)
                    try:
                        notes.extend(write_run(conn, self.root, item, now, known_out, rows))
                    except _RUN_ERRORS as exc:
                        conn.execute("ROLLBACK TO run")
                        rows.by_id = before
                        log.warning("skipping run %s: %s (retried when it changes)", item.rel, exc)
                        self.state.errors += 1
                        known_out = {item.rel: marker(item)}
                    conn.execute("RELEASE run")
                staged.update(known_out)
            if self.shared:
                log_changes(conn, notes, now)
        return staged, notes

    def _write_failed(self, exc: Exception, batch: list[Prepared]) -> None:
        if isinstance(exc, DamagedStore):  # no retry can help: whoever scans rebuilds the index
            raise exc
        if isinstance(exc, DatabaseUnavailable):  # the watcher scans again once it is back
            raise exc
        # Nothing of the batch was committed and _known was not touched: it is retried on the
        # next scan or change.
        log.error("index write failed (%s); %d run(s) will be retried", exc, len(batch))
        self.state.errors += 1

    def _remove(self, rels: list[str]) -> None:
        try:
            with self.db.write() as conn:
                for rel in rels:
                    known = self._known.get(rel)
                    if known is not None and known.pk is not None:  # a run only seen has no row
                        delete_row(conn, known.pk)
                if self.shared:
                    gone = [(rel, self._known.get(rel)) for rel in rels]
                    removed = [Change("removed", k.run_id(rel), k.pk) for rel, k in gone
                               if k is not None and k.pk is not None]
                    log_changes(conn, removed, time.time())
        except (DamagedStore, DatabaseUnavailable):
            raise
        except (StoreError, sqlite3.Error) as exc:
            log.error("index delete failed: %s", exc)
            self.state.errors += 1
            self._load_known()
            return
        gone_ids = set()
        notes = []
        for rel in rels:
            known = self._known.pop(rel)
            if known is not None:
                gone_ids.add(known.run_id(rel))
                if known.pk is not None:
                    notes.append(Change("removed", known.run_id(rel), known.pk))
        self._notify(notes)
        # Other copies of a removed run id were left alone while it was indexed: read them now.
        others = [(rel, known.run_id(rel)) for rel, known in self._known.items()
                  if not known.indexed and known.run_id(rel) in gone_ids]
        for rel, run_id in others:
            self._known.keep(rel, Known.seen(rel, run_id))
        self.state.last_change_at = time.time()
        if others:
            self._refresh([self.root / rel for rel, _id in others], None)

    def _notify(self, changes: list[Change]) -> None:
        """Tell the listeners what a committed write changed (a listener never breaks ingest)."""
        self.store.publish(changes)


# What one run's data can raise on the way into SQLite (as opposed to the store failing).
_RUN_ERRORS = (sqlite3.InterfaceError, sqlite3.IntegrityError, sqlite3.DataError, OverflowError, ValueError, TypeError)
