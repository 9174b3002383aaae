"""``serve --workers N``: N worker processes on one listening socket, kept alive.

The parent binds the socket, then forks the workers (each builds its own app and serves the
socket it inherited; the kernel spreads connections between them). A worker that dies is
replaced (after a pause that grows while workers keep dying at start); SIGTERM or SIGINT to the
parent stops them all. The parent holds no thread, connection or store of its own, so forking
is safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

log = logging.getLogger("runicorn_lite")

# A worker that dies within this many seconds of its start counts as failing at start.
EARLY_DEATH_S = 5.0
MAX_BACKOFF_S = 10.0


def supervise(workers: int, run_worker: Callable[[int], None]) -> int:
    """Fork ``workers`` processes running ``run_worker(index)`` and keep that many alive until
    SIGTERM/SIGINT; returns the exit status for the command (0 after a clean stop)."""
    children: dict[int, tuple[int, float]] = {}  # pid → (index, started)
    stopping = False
    backoff = 0.0

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            _be_the_worker(run_worker, index)
        children[pid] = (index, time.monotonic())

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(workers):
        spawn(index)
    while children:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        entry = children.pop(pid, None)
        if entry is None or stopping:
            continue
        index, started = entry
        how = f"signal {-os.waitstatus_to_exitcode(status)}" if os.WIFSIGNALED(status) else (
            f"exit status {os.waitstatus_to_exitcode(status)}")
        log.warning("worker %d ended (%s); starting another", pid, how)
        if time.monotonic() - started < EARLY_DEATH_S:
            backoff = min(MAX_BACKOFF_S, backoff * 2 or 0.5)
            time.sleep(backoff)
        else:
            backoff = 0.0
        if not stopping:
            spawn(index)
    return 0


def _be_the_worker(run_worker: Callable[[int], None], index: int) -> NoReturn:
    """The forked child: run the worker with the default signal handlers, then exit with its
    status (never return into the supervisor's loop)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    status = 0
    try:
        run_worker(index)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("worker %d failed", os.getpid())
        status = 1
    finally:
        os._exit(status)
