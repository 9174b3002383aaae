"""Mirrors local run directories to a team server (team-server.md §4; the wire protocol is in
runicorn_lite/api/uploads.py and the README).

The run is written locally first, as always; a :class:`Mirror` copies what the server lacks:
appended files (``events.jsonl``, ``logs.txt``, ``media/…``) by byte offset, the small JSON
files whole when their content changed. It asks the server what it holds whenever it (re)starts
or is told it is out of step, so a restart from scratch sends only what is missing and a
replayed piece is skipped by the server. The SDK runs one on a background thread
(:class:`Uploader`); ``runicorn-lite sync`` runs them one run at a time. Nothing here raises
into a training script: network errors are retried with backoff and jitter.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from runicorn_lite import rundir

API = "/api/uploads"
APPENDED = (rundir.EVENTS, rundir.LOGS)
REPLACED = (rundir.META, rundir.STATUS, rundir.SUMMARY, rundir.ASSETS, rundir.ENVIRONMENT)
PIECE = 4 << 20  # bytes per request (the server takes up to 8 MiB)
POLL_S = 0.1  # how often a live run's files are looked at
BACKOFF_S = (0.2, 5.0)


class UploadRefused(Exception):
    """The server refused the run for good (a wrong key, another project's key, a bad name)."""


def local_files(run_dir: Path) -> dict[str, int]:
    """The files of a run directory that are mirrored, with their sizes (bookkeeping names that
    begin with ``.`` are not part of the copy)."""
    out: dict[str, int] = {}
    for name in (*APPENDED, *REPLACED):
        with contextlib.suppress(OSError):
            out[name] = os.stat(run_dir / name).st_size
    try:
        entries = list(os.scandir(run_dir / rundir.MEDIA))
    except OSError:
        entries = []
    for entry in entries:
        if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
            out[f"{rundir.MEDIA}/{entry.name}"] = entry.stat(follow_symlinks=False).st_size
    return out


def _read(path: Path, start: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(length)


class Mirror:
    """What one run directory still has to send, and the sending of it (one piece a call)."""

    def __init__(self, client: httpx.Client, root: Path, run_dir: Path) -> None:
        self.client = client
        self.run_dir = run_dir
        self.rel = run_dir.relative_to(root).as_posix()
        self.server: dict[str, dict[str, Any]] | None = None  # what the server holds, once asked
        self.sent_bytes = 0
        self._hashes: dict[str, tuple[tuple[int, int, int], str]] = {}

    def refresh(self) -> None:
        """Ask the server what it holds of the run."""
        response = self.client.get(f"{API}/state", params={"run": self.rel})
        self._check(response)
        self.server = dict(response.json()["files"])

    def _check(self, response: httpx.Response) -> None:
        """Refusals for good raise UploadRefused; a server error raises httpx's (retried)."""
        status = response.status_code
        if status == 409 and "X-Upload-Size" in response.headers:
            return  # a gap: the caller resumes where the server is
        if 400 <= status < 500 and status not in (408, 429):
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise UploadRefused(f"{status}: {detail}")
        response.raise_for_status()

    def todo(self) -> list[tuple[str, int, bool]]:
        """(name, local size, replaced whole) of every file the server lacks (part of)."""
        if self.server is None:
            self.refresh()
        assert self.server is not None
        out = []
        # The small JSON files first: meta.json and status.json make the copy a run the server shows.
        files = local_files(self.run_dir)
        for name in sorted(files, key=lambda n: (n not in REPLACED, n)):
            size = files[name]
            held = self.server.get(name)
            if name in REPLACED:
                if held is None or held.get("size") != size or held.get("sha256") != self._sha(name):
                    out.append((name, size, True))
            elif held is None or held["size"] < size:
                out.append((name, size, False))
        return out

    def _sha(self, name: str) -> str | None:
        """The SHA-256 of a local file, hashed again only when its size or mtime changed (a live
        run is looked at ten times a second, on the training process)."""
        path = self.run_dir / name
        try:
            st = os.stat(path)
            sig = (st.st_size, st.st_mtime_ns, st.st_ino)
            known = self._hashes.get(name)
            if known is not None and known[0] == sig:
                return known[1]
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None
        self._hashes[name] = (sig, digest)
        return digest

    def send(self, name: str, whole: bool) -> None:
        """Send one piece of ``name`` (the whole of a replaced file)."""
        assert self.server is not None
        path = self.run_dir / name
        if whole:
            data = path.read_bytes()
            response = self.client.put(f"{API}/file", params={"run": self.rel, "name": name}, content=data)
            self._check(response)
            self.server[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            self.sent_bytes += len(data)
            return
        offset = int(self.server.get(name, {}).get("size", 0))
        data = _read(path, offset, PIECE)
        if not data:
            return
        response = self.client.put(f"{API}/file", params={"run": self.rel, "name": name, "offset": offset},
                                   content=data)
        self._check(response)
        if response.status_code == 409:  # a gap: the server holds less than we thought
            self.server[name] = {"size": int(response.headers["X-Upload-Size"])}
            return
        self.server[name] = {"size": int(response.json()["size"])}
        self.sent_bytes += len(data)

    def push(self) -> bool:
        """Send everything the server lacks now; True when nothing is left."""
        for _ in range(100_000):
            pending = self.todo()
            if not pending:
                return True
            for name, _size, whole in pending:
                self.send(name, whole)
        return False


def client_for(server: str, api_key: str, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(base_url=server.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"},
                        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))


class Uploader:
    """One run's mirror on a background thread: wakes every ``POLL_S`` (or when told), sends
    what changed, retries failures with backoff and jitter, and never raises."""

    def __init__(self, run_dir: Path, root: Path, server: str, api_key: str) -> None:
        self.run_dir = run_dir
        self.server_url = server
        self._mirror = Mirror(client_for(server, api_key), root, run_dir)
        self._wake = threading.Event()
        self._stop = threading.Event()
        # finish() asks for a look that finds nothing left; the loop says which ask it answered.
        self._cond = threading.Condition()
        self._asked = 0
        self._clean = -1
        self.refused: str | None = None
        self._thread = threading.Thread(target=self._loop, name="runicorn-lite-upload", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Something was written: look now rather than at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        delay = BACKOFF_S[0]
        while not self._stop.is_set():
            try:
                with self._cond:
                    asked = self._asked
                pending = self._mirror.todo()
                if pending:
                    for name, _size, whole in pending:
                        self._mirror.send(name, whole)
                    delay = BACKOFF_S[0]
                    continue
                with self._cond:
                    self._clean = asked
                    self._cond.notify_all()
                delay = BACKOFF_S[0]
                self._wake.wait(POLL_S)
                self._wake.clear()
            except UploadRefused as exc:
                print(f"runicorn-lite: the server {self.server_url} refused run {self.run_dir.name} "
                      f"({exc}); it stays local only", file=sys.stderr)
                with self._cond:
                    self.refused = str(exc)
                    self._cond.notify_all()
                return
            except Exception:  # noqa: BLE001 - the network, a restarting server: retry, never raise
                self._mirror.server = None  # ask what the server holds before sending again
                self._stop.wait(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, BACKOFF_S[1])

    def finish(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for everything to be on the server; then stop. True if it is."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._asked += 1
            want = self._asked
        self._wake.set()
        with self._cond:
            self._cond.wait_for(lambda: self._clean >= want or self.refused is not None, timeout)
            done = self._clean >= want
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
        self._mirror.client.close()
        return done


def start(run_dir: Path, root: Path, server: str | None, api_key: str | None) -> Uploader | None:
    """The SDK's hook: an Uploader for a new run when a server is named (argument, else
    $RUNICORN_LITE_SERVER), with its key (argument, else $RUNICORN_LITE_API_KEY)."""
    server = server or os.environ.get("RUNICORN_LITE_SERVER") or None
    if server is None:
        return None
    api_key = api_key or os.environ.get("RUNICORN_LITE_API_KEY") or None
    if api_key is None:
        print(f"runicorn-lite: uploads to {server} need an API key (api_key=, or RUNICORN_LITE_API_KEY); "
              f"run {run_dir.name} stays local only", file=sys.stderr)
        return None
    try:
        return Uploader(run_dir, root, server, api_key)
    except Exception as exc:  # noqa: BLE001 - a malformed URL must not stop training
        print(f"runicorn-lite: cannot upload to {server} ({exc}); run {run_dir.name} stays local only",
              file=sys.stderr)
        return None
