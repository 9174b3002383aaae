"""A big cold scan's runs read in a second process, while this one writes them.

Indexing a run is one core of Python: list and stat its directory, open and parse four files,
flatten its config, build its points (60% of a cold index, profiled), then write its rows (the
rest). A thread cannot take half of that (the GIL: a reading thread made a cold index of 100k
runs slower, 108 -> 128 s), a process can. So once a cold scan (one that began on an empty
index) has read :data:`HANDOVER_RUNS` runs itself, a child process walks the rest of the tree
and reads each new run with the same code (``plan_run``, ``prepare_run``), and sends them a
hundred at a time; the indexer writes them as it writes its own. A small tree never starts one
(a process takes a few hundred ms to start).

The child (:func:`main` of this module in a new interpreter) knows nothing of the index:
it reads every run it finds except those it is told were read already, and writes what it read
to its stdout as pickles (from one process of ours to another). What it logs is sent along and
logged here. If it dies, the scan ends with what was written, and the next scan (not cold any
more) reads the rest in this process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import runicorn_lite
from runicorn_lite import rundir
from runicorn_lite.ingest.known import relative_to
from runicorn_lite.ingest.reading import plan_run, prepare_run
from runicorn_lite.ingest.writer import Prepared

log = logging.getLogger("runicorn_lite.ingest")

# A cold scan reads this many runs itself before a child reads the rest.
HANDOVER_RUNS = 3_000
# Runs a message carries (or what half a second of reading found, whichever comes first).
CHUNK_RUNS = 100
CHUNK_SECONDS = 0.5
# Threads reading runs in the child, and how many runs they may be ahead of what was sent.
READ_THREADS = 4
READ_AHEAD = 64


@dataclass
class Chunk:
    """What the child read since its last message."""

    runs: list[tuple[rundir.RunLocation, Prepared]] = field(default_factory=list)
    seen: int = 0  # run directories found (read or not)
    errors: int = 0  # runs that vanished or could not be read mid-read
    walk_s: float = 0.0  # seconds spent walking (listing and stat'ing), not reading
    logs: list[tuple[int, str]] = field(default_factory=list)
    done: bool = False


class _Kept(logging.Handler):
    """Keeps the child's log records for its next message."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))


def _read_one(loc: rundir.RunLocation, rel: str) -> tuple[rundir.RunLocation, Prepared | None, bool]:
    """Plan and read one new run: (where, what was read or None, whether it failed)."""
    try:
        plan = plan_run(loc, rel, None)
        return loc, (prepare_run(plan) if plan is not None else None), False
    except OSError as exc:  # vanished or unreadable mid-read; picked up when it changes
        log.warning("skipping run %s: %s", rel, exc)
        return loc, None, True


def _read(root: Path, skip: set[str], out: BinaryIO) -> None:
    """The child: walk ``root``, read every run not in ``skip``, send what was read, in the
    walk's order. Runs are read by READ_THREADS threads: most of a cold read's time is waiting
    for the disk (a file cache without the tree: a third of two cores idle with one reader),
    which a thread does without the GIL."""
    kept = _Kept()
    logger = logging.getLogger("runicorn_lite")
    logger.addHandler(kept)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    prefix = f"{root}{os.sep}"
    chunk, sent_at = Chunk(), time.monotonic()

    def take(read: tuple[rundir.RunLocation, Prepared | None, bool]) -> None:
        nonlocal chunk, sent_at
        loc, prepared, failed = read
        chunk.errors += failed
        if prepared is not None:
            chunk.runs.append((loc, prepared))
        if len(chunk.runs) >= CHUNK_RUNS or time.monotonic() - sent_at > CHUNK_SECONDS:
            chunk.logs, kept.records = kept.records, []
            pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
            chunk, sent_at = Chunk(), time.monotonic()

    runs = rundir.iter_runs(root)
    pending: deque[Future[tuple[rundir.RunLocation, Prepared | None, bool]]] = deque()
    with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="read") as pool:
        while True:
            started = time.monotonic()
            loc = next(runs, None)
            chunk.walk_s += time.monotonic() - started
            if loc is None:
                break
            rel = relative_to(prefix, root, loc.run_dir)
            if rel in skip:
                continue
            skip.add(rel)  # (a directory may be found twice)
            chunk.seen += 1
            pending.append(pool.submit(_read_one, loc, rel))
            while len(pending) > READ_AHEAD or (pending and pending[0].done()):
                take(pending.popleft().result())
        while pending:
            take(pending.popleft().result())
    chunk.logs, chunk.done = kept.records, True
    pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


class ChildReader:
    """A child process reading the runs under ``root`` but those in ``skip``; iterate over
    :meth:`chunks`, then :meth:`close` (also when stopping early)."""

    def __init__(self, root: Path, skip: set[str]) -> None:
        env = dict(os.environ)
        # This package where the child looks first: the one this process runs.
        home = str(Path(runicorn_lite.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (home, env.get("PYTHONPATH")) if p)
        self._process = subprocess.Popen(  # a fixed command: this interpreter and module
            [sys.executable, "-c", "from runicorn_lite.ingest.coldread import main; main()", str(root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._out = self._process.stdout
        self._done = False
        try:
            self._process.stdin.write(pickle.dumps(skip, protocol=pickle.HIGHEST_PROTOCOL))
            self._process.stdin.close()
        except OSError:  # it died at once: chunks() says so
            pass

    def chunks(self) -> Iterator[Chunk]:
        while True:
            try:
                chunk: Chunk = pickle.load(self._out)
            except (EOFError, OSError, pickle.UnpicklingError):
                log.error("the process reading the runs ended before it was done (exit code %s);"
                          " the next scan reads the rest", self._process.poll())
                return
            for level, message in chunk.logs:
                log.log(level, "%s", message)
            yield chunk
            if chunk.done:
                self._done = True
                return

    def close(self) -> None:
        if self._done:  # it has sent everything: let it exit
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)
        if self._process.poll() is None:
            self._process.terminate()
        self._out.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def main() -> None:
    """The child's entry: the root as its argument, the runs to skip on its stdin."""
    skip = pickle.load(sys.stdin.buffer)
    with contextlib.suppress(BrokenPipeError):  # the indexer stopped reading (shutting down)
        _read(Path(sys.argv[1]), skip, sys.stdout.buffer)
