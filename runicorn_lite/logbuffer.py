"""This server's log since it started, kept in memory for Runicorn's diagnostics page.

A logging handler on the ``runicorn_lite`` logger keeps the last lines (formatted as the
console shows them), each with a sequence number, so a reader can follow what was added since
it last looked. One buffer per process, as there is one server per process.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

MAX_LINES = 5000
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogBuffer(logging.Handler):
    """The last ``MAX_LINES`` log lines of the process."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter(FORMAT))
        self._lines: deque[tuple[int, str]] = deque(maxlen=MAX_LINES)
        self._seq = 0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - a log call must never fail the code that logs
            return
        with self._guard:
            for line in text.splitlines() or [""]:
                self._seq += 1
                self._lines.append((self._seq, line))

    def tail(self, n: int) -> tuple[int, list[str]]:
        """(sequence of the newest line, the last ``n`` lines)."""
        with self._guard:
            lines = list(self._lines)[-n:] if n > 0 else []
            return self._seq, [text for _, text in lines]

    def since(self, seq: int) -> tuple[int, list[str]]:
        """(newest sequence, the lines added after ``seq``)."""
        with self._guard:
            return self._seq, [text for s, text in self._lines if s > seq]


_installed: list[LogBuffer] = []
_install_lock = threading.Lock()


def installed() -> LogBuffer:
    """The process's buffer, attached to the ``runicorn_lite`` logger on first use."""
    with _install_lock:
        if not _installed:
            _installed.append(LogBuffer())
            logging.getLogger("runicorn_lite").addHandler(_installed[0])
        return _installed[0]
