"""Real server processes, as the test suite and the benchmarks run them.

``ServerProcess`` is ``runicorn-lite serve --port 0`` in a process of its own: its address is
read from what it prints, its output is kept (and written to a log file when asked), its health
is polled, and it is stopped gracefully. ``LoggedProcess`` is the part that fits any server (the
benchmarks start the real Runicorn viewer and MLflow with it). One module for both, instead of
two near-copies, and not in the wheel: tests import it as ``devserver`` (``tests/`` is on their
path), the benchmarks, run from the repository's root, as ``tests.devserver``.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Self

import httpx

LISTENING = "runicorn-lite listening on "


class LoggedProcess:
    """A process whose output (stdout and stderr) is read as it comes: kept in ``output`` and,
    with ``log_path``, written to that file (so a chatty process never blocks on a full pipe)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.log_path = log_path
        self.output: list[str] = []
        self._log: IO[str] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed by stop)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C meant for the caller does not reach it first
        )
        self._reader = threading.Thread(target=self._read, name="server-output", daemon=True)
        self._reader.start()
        atexit.register(self.stop)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self.output.append(line)
                if self._log is not None:
                    self._log.write(line)
                    self._log.flush()
        except (ValueError, OSError):  # the pipe or the log closed under us at stop
            pass

    def wait_line(self, prefix: str, timeout: float = 60.0) -> str:
        """The first output line that starts with ``prefix`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            lines = self.output
            for line in lines[seen:]:
                if line.startswith(prefix):
                    return line
            seen = len(lines)
            if self.proc.poll() is not None:
                self._reader.join(5)
                for line in self.output[seen:]:
                    if line.startswith(prefix):
                        return line
                raise RuntimeError(f"the process exited (status {self.proc.returncode}):\n{self.tail()}")
            time.sleep(0.01)
        raise TimeoutError(f"no line {prefix!r} within {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        """The last ``n`` lines of output."""
        return "".join(self.output[-n:])

    def stop(self) -> None:
        """Terminate (kill after 10 s) and wait; safe to call twice."""
        atexit.unregister(self.stop)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess(LoggedProcess):
    """``runicorn-lite serve --root ROOT --port 0 ARGS…``; ``url`` once it listens."""

    # How long wait_ready waits by default (a benchmark corpus takes longer than a test's).
    ready_timeout_s = 60.0

    def __init__(
        self,
        root: Path,
        *args: str,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        argv = [sys.executable, "-m", "runicorn_lite", "serve", "--root", str(root), "--port", "0", *args]
        super().__init__(argv, log_path=log_path, env=env)
        try:
            line = self.wait_line(LISTENING, timeout)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"the server did not start: {exc}") from None
        self.listening_s = time.perf_counter() - self.started
        self.url = line[len(LISTENING):].strip()
        self.ready_s: float | None = None

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(self.url + "/api/health", timeout=10).json()
        return body

    def wait_ready(self, timeout: float | None = None, min_scans: int = 1) -> dict[str, Any]:
        """Wait until the start-up scan (``min_scans`` scans) has finished; the health body."""
        deadline = time.monotonic() + (self.ready_timeout_s if timeout is None else timeout)
        while time.monotonic() < deadline:
            body = self.health()
            if body["index"]["ready"] and body["index"]["scans_completed"] >= min_scans:
                self.ready_s = time.perf_counter() - self.started
                return body
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.tail()}")
            time.sleep(0.02)
        raise TimeoutError(f"the index was not ready within {timeout} s:\n{self.tail()}")
