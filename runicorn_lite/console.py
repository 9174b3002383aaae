"""``init(capture_console=True)``: stdout and stderr teed into the run's logs.txt.

What the script prints still reaches the terminal as it is; logs.txt gets it line by line as
``HH:MM:SS | line``. A progress bar redraws its line with carriage returns: only the line's last
state is kept (``tqdm_mode="smart"``, Runicorn's default); ``"all"`` keeps every state and
``"none"`` drops what a carriage return redraws.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

TQDM_MODES = ("smart", "all", "none")


class _LogFile:
    """logs.txt opened for appending, shared by the two tees of one capture."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()

    def write_line(self, line: str) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.write(f"{time.strftime('%H:%M:%S')} | {line}\n")

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class Tee:
    """A text stream that writes through to ``original`` and line by line to the log."""

    def __init__(self, original: IO[str], log: _LogFile, tqdm_mode: str) -> None:
        self.original = original
        self._log = log
        self._mode = tqdm_mode
        self._line = ""
        self._redrawn = False  # the current line was redrawn by a carriage return
        self._pending_cr = False
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        self.original.write(text)
        with self._lock:
            for char in text:
                self._feed(char)
        return len(text)

    def _feed(self, char: str) -> None:
        if self._pending_cr:
            self._pending_cr = False
            if char == "\n":  # \r\n ends a line like \n
                self._emit()
                return
            self._carriage_return()
        if char == "\r":
            self._pending_cr = True
        elif char == "\n":
            self._emit()
        else:
            self._line += char

    def _carriage_return(self) -> None:
        if self._mode == "all" and self._line.strip():
            self._log.write_line(self._line)
        self._line = ""
        self._redrawn = True

    def _emit(self) -> None:
        line, self._line = self._line, ""
        redrawn, self._redrawn = self._redrawn, False
        if redrawn and self._mode == "none":
            return
        if line.strip() or not redrawn:
            self._log.write_line(line)

    def close_line(self) -> None:
        """Write what is left of an unfinished line (a bar's last state)."""
        with self._lock:
            self._pending_cr = False
            if self._line.strip():
                self._emit()

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


class ConsoleCapture:
    """Replaces ``sys.stdout`` and ``sys.stderr`` with tees until ``stop()``."""

    def __init__(self, log_path: Path, tqdm_mode: str = "smart") -> None:
        if tqdm_mode not in TQDM_MODES:
            raise ValueError(f"tqdm_mode must be one of {', '.join(TQDM_MODES)}, got {tqdm_mode!r}")
        self._log = _LogFile(log_path)
        self._tqdm_mode = tqdm_mode
        self._tees: list[tuple[str, Tee]] = []

    def start(self) -> None:
        for name in ("stdout", "stderr"):
            original = getattr(sys, name)
            tee = Tee(original, self._log, self._tqdm_mode)
            setattr(sys, name, tee)
            self._tees.append((name, tee))

    def stop(self) -> None:
        """Put the streams back (unless something replaced them since) and close the log."""
        for name, tee in reversed(self._tees):
            with contextlib.suppress(ValueError, OSError):
                tee.flush()
            tee.close_line()
            if getattr(sys, name) is tee:
                setattr(sys, name, tee.original)
        self._tees.clear()
        self._log.close()
