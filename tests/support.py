"""Helpers shared by tests (a module of its own: every conftest.py is named alike)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

FIXTURES = Path(__file__).parent / "fixtures"


def copy_fixture(name: str, dest: Path) -> Path:
    """Copy a checked-in corpus (written by the real runicorn SDK) into ``dest``."""
    shutil.copytree(FIXTURES / name, dest, dirs_exist_ok=True)
    return dest


class ServerProcess:
    """``runicorn-lite serve --port 0`` as a real process; ``url`` once it listens."""

    def __init__(self, root: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runicorn_lite", "serve", "--root", str(root), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.url = self._wait_for_address()

    def _wait_for_address(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        lines = []
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            lines.append(line)
            if line.startswith("runicorn-lite listening on "):
                # Keep reading the output, so a chatty server never blocks on a full pipe.
                self.output = lines
                self._drainer = threading.Thread(target=self._drain, daemon=True)
                self._drainer.start()
                return line.split(" on ", 1)[1].strip()
        self.stop()
        raise RuntimeError("server did not start:\n" + "".join(lines))

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self.output.append(line)
        except (ValueError, OSError):
            pass

    def wait_ready(self, timeout: float = 30.0) -> dict:
        """Wait until the start-up scan has finished; returns the health body."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = httpx.get(self.url + "/api/health", timeout=5).json()
            if body["index"]["ready"]:
                return body
            time.sleep(0.05)
        raise TimeoutError("index never became ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        drainer = getattr(self, "_drainer", None)
        if drainer is not None:
            drainer.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> object:
    """Poll ``predicate`` until it is truthy (its value is returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
