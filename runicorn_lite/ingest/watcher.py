"""Background ingest: a full scan at start, then file events, with a periodic rescan as fallback.

One daemon thread runs it all, so the index has one writer. File events come from watchfiles;
where they cannot be had (inotify watch limit, some network mounts) the periodic rescan keeps
the index current, at a shorter interval.

Periodic rescans are paced by what they cost: a full walk comes no sooner than
``--rescan-interval`` and no sooner than its last walk's time divided by :data:`RESCAN_BUDGET`,
so walks take at most about 5% of one core whatever the size of the tree (a walk of a million
runs takes tens of seconds: then they come some minutes apart). A change is still found at
once: file events bring it; without them, the runs marked running (the ones that change) are
re-read every polling interval, new runs are found in the directories that hold runs, whose
mtimes are polled too (``dirwatch.py``), a process that died is found by the pid check, and only
what none covers (a finished run edited or removed by hand) waits for the next paced walk.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from runicorn_lite import rundir
from runicorn_lite.db import DamagedStore, DatabaseUnavailable
from runicorn_lite.ingest.dirwatch import ParentDirs
from runicorn_lite.ingest.indexer import Indexer
from runicorn_lite.ingest.keeper import IndexKeeper
from runicorn_lite.settings import STORE_DIRNAME

log = logging.getLogger("runicorn_lite.ingest")

# Rescan interval when file events are unavailable.
POLL_FALLBACK_S = 2.0
# At most this share of one core goes to periodic full walks of the tree.
RESCAN_BUDGET = 0.05
# How often the live-run pid check runs.
PID_CHECK_S = 5.0
# Longest wait between two looks at the index file (deleted, replaced, damaged) when polling.
KEEPER_CHECK_S = 1.0
# At most one INFO line this often about what file events brought in (a training script
# logging makes several batches a second; a line per file change drowned the log).
SUMMARY_EVERY_S = 60.0
_RUN_FILES = frozenset(
    {rundir.META, rundir.STATUS, rundir.SUMMARY, rundir.EVENTS, rundir.DELETED, rundir.ENVIRONMENT, rundir.ASSETS}
)


def _wanted(change: object, path: str) -> bool:
    """watchfiles filter: our own store and SQLite side files never trigger an ingest."""
    name = path.rsplit("/", 1)[-1]
    if f"/{STORE_DIRNAME}" in path or name.startswith("runicorn.db"):
        return False
    return not name.endswith((".tmp", ".lock"))


def _runs_below(root: Path, directory: Path) -> list[Path]:
    """Run directories at or below ``directory`` (not descending into runs)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        if rundir.META in filenames or rundir.STATUS in filenames:
            if rundir.location_of(root, Path(dirpath)) is not None:
                found.append(Path(dirpath))
            dirnames[:] = []
    return found


class IngestSummary:
    """Says what file events brought in: a DEBUG line per batch, an INFO line at most every
    ``every_s`` seconds."""

    def __init__(self, every_s: float = SUMMARY_EVERY_S) -> None:
        self.every_s = every_s
        self._since = time.monotonic()
        self._batches = self._files = self._written = 0

    def note(self, files: int, written: int) -> None:
        log.debug("file events: %d change(s), %d run(s) written", files, written)
        self._batches += 1
        self._files += files
        self._written += written
        now = time.monotonic()
        if now - self._since >= self.every_s:
            log.info(
                "in the last %.0f s: %d file change(s) in %d batch(es), %d run update(s) indexed",
                now - self._since, self._files, self._batches, self._written,
            )
            self._since = now
            self._batches = self._files = self._written = 0


class Watcher:
    """Runs the initial scan, then follows changes until :meth:`stop`."""

    def __init__(
        self, indexer: Indexer, *, watch: bool = True, rescan_interval: float = 30.0, keeper: IndexKeeper | None = None,
        rescan_budget: float = RESCAN_BUDGET,
    ) -> None:
        self.indexer = indexer
        self.keeper = keeper or IndexKeeper(indexer)
        self.watch = watch
        self.rescan_interval = rescan_interval
        self.rescan_budget = rescan_budget
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_poll_scan = time.monotonic()
        # Without file events: the directories that hold runs, for new runs between walks.
        self._parents = ParentDirs(indexer.root)
        self.summary = IngestSummary()
        # A write failed because the database could not be reached: scan once it answers.
        self._rescan_due = False

    def start(self) -> None:
        """Start the background thread (returns at once)."""
        self._thread = threading.Thread(target=self._run, name="runicorn-lite-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        self.indexer.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        self._safe(self.indexer.scan)  # a bad tree never kills the server; the next rescan retries
        if not self.watch:
            # No file events (network mounts, say): the periodic rescan alone keeps the index
            # current; --rescan-interval 0 freezes it after the start-up scan (but a deleted or
            # damaged index is still rebuilt).
            self.indexer.state.watcher = "off"
            self._poll(self.rescan_interval)
            return
        try:
            self._follow_events()
        except (OSError, RuntimeError) as exc:  # watchfiles' notify backend errors are RuntimeErrors
            log.warning("file events unavailable (%s); polling every %.0f s", exc, POLL_FALLBACK_S)
        if not self._stop.is_set():
            self.indexer.state.watcher = "polling"
            self._poll(min(self.rescan_interval or POLL_FALLBACK_S, POLL_FALLBACK_S))

    def _follow_events(self) -> None:
        from watchfiles import watch

        if not log.isEnabledFor(logging.DEBUG):
            # watchfiles logs every change it sees at INFO; ours is the summary above.
            logging.getLogger("watchfiles").setLevel(logging.WARNING)

        self.indexer.state.watcher = "watchfiles"
        last_rescan = last_pid_check = time.monotonic()
        caught_up = False
        root = self.indexer.root
        root.mkdir(parents=True, exist_ok=True)
        for changes in watch(
            root,
            watch_filter=_wanted,
            stop_event=self._stop,
            debounce=150,
            step=30,
            rust_timeout=250,  # the first yield (and the catch-up scan) comes this soon
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            received = time.time()
            self._safe(self.keeper.check)
            self._catch_up()
            if changes:
                self._apply(changes, received)
            if not caught_up:
                # The first yield comes once the notifier is watching: one more (cheap) scan
                # catches whatever changed during the start-up scan, before events flowed
                # (after the changes in hand, so those show without waiting for it).
                self._safe(self.indexer.scan)
                caught_up = True
            now = time.monotonic()
            if self.rescan_interval and now - last_rescan >= self._rescan_gap(self.rescan_interval):
                self._safe(self.indexer.scan)
                last_rescan = now
            if now - last_pid_check >= PID_CHECK_S:
                self._safe(self.indexer.check_live_runs)
                last_pid_check = now

    def _poll(self, interval: float) -> None:
        # A scan re-reads what changed; the pid check catches runs whose process died without
        # touching a file (they change nothing a scan could see).
        # ``interval`` 0: no scans, only the pid and index-file checks.
        last_pid_check = last_live = time.monotonic()
        self._parents.rebuild(self.indexer.known_rels())
        while not self._stop.wait(min(interval or KEEPER_CHECK_S, PID_CHECK_S, KEEPER_CHECK_S)):
            self._safe(self.keeper.check)
            self._catch_up()
            now = time.monotonic()
            if now - last_pid_check >= PID_CHECK_S:
                self._safe(self.indexer.check_live_runs)
                last_pid_check = now
            if interval and now - self._last_poll_scan >= self._rescan_gap(interval):
                self._safe(self.indexer.scan)
                self._parents.rebuild(self.indexer.known_rels())
                self._last_poll_scan = last_live = now
            elif interval and now - last_live >= interval:
                # Between paced walks, the runs that change (those running) are read at the
                # polling interval: live metrics show as they would with file events, late by
                # at most ``interval``.
                self._safe(self._refresh_live_runs)
                last_live = now

    def _refresh_live_runs(self) -> None:
        # The runs that change (running), and new runs in the directories that hold runs.
        new = self._parents.new_runs(self.indexer.knows)
        dirs = self.indexer.live_run_dirs() + new
        if dirs:
            self.indexer.refresh(dirs)

    def _rescan_gap(self, interval: float) -> float:
        """Seconds between two periodic walks: ``interval``, or longer when a walk costs more
        than the budget's share of that (see the module's docstring)."""
        walk = self.indexer.state.last_walk_s or 0.0
        gap = max(interval, walk / self.rescan_budget) if self.rescan_budget > 0 else interval
        self.indexer.state.rescan_every_s = round(gap, 3)
        return gap

    def _catch_up(self) -> None:
        """The scan owed since the database came back (see :meth:`_safe`)."""
        if self._rescan_due:
            self._rescan_due = False
            self._safe(self.indexer.scan)
            if not self._rescan_due:
                log.info("the database is back: the index has caught up")

    def _apply(self, changes: Iterable[tuple[object, str]], received: float) -> None:
        run_dirs: set[Path] = set()
        root = self.indexer.root
        for _change, raw in changes:
            path = Path(raw)
            known = self.indexer.known_run_dir(path)
            if known is not None:
                run_dirs.add(known)
                continue
            # A new run: the changed file sits in the run directory, or the change is a
            # directory (a run, or a tree of runs moved in at once, which brings no file events).
            candidate = path.parent if path.name in _RUN_FILES else path
            if rundir.location_of(root, candidate) is not None:
                run_dirs.add(candidate)
            elif path.is_dir():
                run_dirs.update(_runs_below(root, path))
        if run_dirs:
            self._safe(lambda: self.summary.note(len(run_dirs), self.indexer.refresh(run_dirs, changed_at=received)))

    def _safe(self, fn: Callable[[], object]) -> None:
        try:
            fn()
            return
        except DatabaseUnavailable as exc:
            # The database server is away: say it once a while, and scan again once it is back,
            # so that what changed meanwhile (file events that could not be written) is indexed.
            if not self._rescan_due:
                log.warning("index not updated: %s; it catches up once the database is back", exc)
            self._rescan_due = True
            return
        except DamagedStore as exc:  # the index is derived: rebuild it, no traceback
            try:
                self.keeper.rebuild(f"{self.indexer.db.path.name} is damaged ({exc})")
            except Exception:
                log.exception("rebuilding the index failed; it is retried on the next check")
                self.indexer.state.errors += 1
        except Exception:
            log.exception("ingest step failed; it is retried on the next change or rescan")
            self.indexer.state.errors += 1
