"""A big cold scan's runs read by child processes, while this one writes them.

Indexing a run is one core of Python: list and stat its directory, open and parse four files,
flatten its config, build its points (60% of a cold index, profiled), then write its rows (the
rest). Threads cannot share that (the GIL: a reading thread made a cold index of 100k runs
slower, 108 -> 128 s; four reading threads in a child took twice the CPU of one), processes
can. So once a cold scan (one that began on an empty index) has read :data:`HANDOVER_RUNS` runs
itself, :data:`READERS` child processes walk the rest of the tree, each reading the new runs of
its share (by a hash of their directory) with the same code (``plan_run``, ``prepare_run``), and
send them a hundred at a time; the indexer writes them as it writes its own. Two readers on two
cores: one alone kept the writer waiting (its reads wait for the disk too). A small tree never
starts one (a process takes a few hundred ms to start).

A child (:func:`main` of this module in a new interpreter) knows nothing of the index: it reads
every run of its share except those it is told were read already, and writes what it read to
its stdout as pickles (from one process of ours to another). What it logs is sent along and
logged here. If one dies, the scan ends with what was written, and the next scan (not cold any
more) reads the rest in this process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from runicorn_lite import rundir
from runicorn_lite.ingest.known import relative_to
from runicorn_lite.ingest.reading import plan_run, prepare_run
from runicorn_lite.ingest.writer import Prepared

log = logging.getLogger("runicorn_lite.ingest")

# A cold scan reads this many runs itself before child processes read the rest.
HANDOVER_RUNS = 3_000
# How many: at least two (the writer waits less than a reader), at most four (the writer is
# then the limit).
READERS = max(2, min(4, (os.cpu_count() or 2) + 1))
# Runs a message carries (or what half a second of reading found, whichever comes first).
CHUNK_RUNS = 100
CHUNK_SECONDS = 0.5


@dataclass
class Chunk:
    """What a child read since its last message."""

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


def share(rel: str, readers: int) -> int:
    """Which reader reads the run directory ``rel``."""
    return zlib.crc32(rel.encode()) % readers


def _read(root: Path, skip: set[str], part: int, readers: int, out: BinaryIO) -> None:
    """A child: walk ``root``, read every run of share ``part`` not in ``skip``, send what was
    read."""
    kept = _Kept()
    logger = logging.getLogger("runicorn_lite")
    logger.addHandler(kept)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    prefix = f"{root}{os.sep}"
    chunk, sent_at = Chunk(), time.monotonic()

    def send(done: bool = False) -> None:
        chunk.logs, chunk.done, kept.records = kept.records, done, []
        pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    runs = rundir.iter_runs(root)
    while True:
        started = time.monotonic()
        loc = next(runs, None)
        if loc is None:
            chunk.walk_s += time.monotonic() - started
            break
        rel = relative_to(prefix, root, loc.run_dir)
        if share(rel, readers) != part or rel in skip:
            chunk.walk_s += time.monotonic() - started
            continue
        chunk.seen += 1  # (a directory found twice is read twice, and written once: the indexer knows it then)
        plan = plan_run(loc, rel, None)
        chunk.walk_s += time.monotonic() - started
        try:
            prepared = prepare_run(plan) if plan is not None else None
        except OSError as exc:  # vanished or unreadable mid-read; picked up when it changes
            log.warning("skipping run %s: %s", rel, exc)
            chunk.errors += 1
            prepared = None
        if prepared is not None:
            chunk.runs.append((loc, prepared))
        if len(chunk.runs) >= CHUNK_RUNS or time.monotonic() - sent_at > CHUNK_SECONDS:
            send()
            chunk, sent_at = Chunk(), time.monotonic()
    send(done=True)


class ChildReader:
    """Child processes reading the runs under ``root`` but those in ``skip``; iterate over
    :meth:`chunks`, then :meth:`close` (also when stopping early)."""

    def __init__(self, root: Path, skip: set[str], readers: int | None = None) -> None:
        self.readers = readers if readers is not None else READERS
        env = dict(os.environ)
        # This package where the child looks first: the one this process runs.
        home = str(Path(__file__).resolve().parents[2])  # (…/runicorn_lite/ingest/coldread.py)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (home, env.get("PYTHONPATH")) if p)
        skipped = pickle.dumps(skip, protocol=pickle.HIGHEST_PROTOCOL)
        self._processes: list[subprocess.Popen[bytes]] = []
        for part in range(self.readers):
            process = subprocess.Popen(  # a fixed command: this interpreter and this module
                [sys.executable, "-c", "from runicorn_lite.ingest.coldread import main; main()",
                 str(root), str(part), str(self.readers)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            )
            assert process.stdin is not None
            try:
                process.stdin.write(skipped)
                process.stdin.close()
            except OSError:  # it died at once: chunks() says so
                pass
            self._processes.append(process)
        self._done = [False] * self.readers
        self._closed = False
        self._received: queue.Queue[tuple[int, Chunk | None]] = queue.Queue(maxsize=2 * self.readers)

    def _receive(self, part: int, stream: IO[bytes]) -> None:
        """A thread: the chunks of one child into the queue; None when it ends."""
        try:
            while True:
                try:
                    chunk: Chunk = pickle.load(stream)
                except (EOFError, OSError, ValueError, pickle.UnpicklingError):
                    return
                self._put((part, chunk))
                if chunk.done:
                    return
        finally:
            self._put((part, None))

    def _put(self, item: tuple[int, Chunk | None]) -> None:
        while not self._closed:  # (once closed, nobody takes from the queue)
            try:
                self._received.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def chunks(self) -> Iterator[Chunk]:
        for part, process in enumerate(self._processes):
            assert process.stdout is not None
            threading.Thread(target=self._receive, args=(part, process.stdout), daemon=True,
                             name=f"reader-{part}").start()
        ended = 0
        while ended < self.readers:
            part, chunk = self._received.get()
            if chunk is None:
                ended += 1
                if not self._done[part]:
                    log.error("a process reading the runs ended before it was done (exit code %s);"
                              " the next scan reads the rest", self._processes[part].poll())
                continue
            for level, message in chunk.logs:
                log.log(level, "%s", message)
            self._done[part] = chunk.done
            yield chunk

    def close(self) -> None:
        self._closed = True
        for part, process in enumerate(self._processes):
            if self._done[part]:  # it has sent everything: let it exit
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            if process.stdout is not None:
                process.stdout.close()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @property
    def returncodes(self) -> list[int | None]:
        return [process.returncode for process in self._processes]


def main() -> None:
    """A child's entry: the root, its share and the number of shares as its arguments, the
    runs to skip on its stdin."""
    skip = pickle.load(sys.stdin.buffer)
    with contextlib.suppress(BrokenPipeError):  # the indexer stopped reading (shutting down)
        _read(Path(sys.argv[1]), skip, int(sys.argv[2]), int(sys.argv[3]), sys.stdout.buffer)
