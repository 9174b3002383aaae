"""One server per store: an exclusive lock on a file beside the SQLite files, naming its holder.

``flock`` is released by the OS when the process ends, however it ends, so a crash never
leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILENAME = "serve.lock"


class StoreLocked(Exception):
    """Another process holds the store; the message names it."""


class StoreLock:
    """Held by the process that keeps the index of a store (``serve``, or ``index`` while it runs)."""

    def __init__(self, store_dir: Path) -> None:
        self.path = Path(store_dir) / LOCK_FILENAME
        self._fd: int | None = None

    def acquire(self, role: str) -> None:
        """Take the lock, or raise :class:`StoreLocked` saying who holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd) or "another process"
            os.close(fd)
            raise StoreLocked(holder) from None
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self.describe(role)

    def describe(self, role: str) -> None:
        """Say who holds the lock (the pid and what it does, e.g. the address it serves)."""
        if self._fd is None:
            return
        text = f"runicorn-lite {role} (pid {os.getpid()})\n".encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text, 0)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def _read(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 4096, 0).decode(errors="replace").strip()
    return ""
