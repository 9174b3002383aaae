"""What a training script imports: ``init``, then ``log`` / ``log_text`` / ``summary`` / ``finish``.

Runs are written in the modern Runicorn layout (``<root>/runs/<project>/<name>/<run_id>/``) with
the same files and shapes as the real SDK, so the real viewer can read them too. ``log`` is one
buffered append to events.jsonl (flushed at most every 0.2 s by a background thread), never a
database write.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import platform
import re
import secrets
import socket
import sys
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from runicorn_lite import console, environment, images, rundir, switch, uploader
from runicorn_lite import resume as _resume
from runicorn_lite import system_metrics as _system
from runicorn_lite.run_extras import RunExtras, check_runicorn_options
from runicorn_lite.rundir.encode import as_mapping, event_line, json_safe, new_run_id
from runicorn_lite.settings import default_root

FLUSH_INTERVAL_S = 0.2


def _clean_segment(part: str) -> str:
    part = part.strip().replace("\\", "/")
    if not part or part in (".", "..") or part.startswith(".") or "\x00" in part:
        raise ValueError(f"invalid project/name/path segment: {part!r}")
    return part


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class Run(RunExtras):
    """One run directory being written by a training script. Thread-safe."""

    def __init__(self, run_dir: Path, run_id: str, path: str, started_at: float) -> None:
        self.run_dir = run_dir
        self.id = run_id
        self.path = path
        self.project, self.name = rundir.split_path(path)
        self.started_at = started_at
        self._lock = threading.Lock()
        self._events = open(run_dir / rundir.EVENTS, "ab", buffering=1 << 16)  # noqa: SIM115
        self._dirty = False
        self._last_flush = time.monotonic()
        self._step = 0
        self._primary: tuple[str, str] | None = None
        self._best: tuple[float, int] | None = None
        self._best_stale = False  # the best's step was logged again with a value that is not better
        self._finished = False
        # The mirror to a team server (init's server=), and how long finish waits for it.
        self._uploader: uploader.Uploader | None = None
        self._upload_timeout = 30.0
        _flusher.add(self)

    # -- public API ---------------------------------------------------------------------------

    def set_primary_metric(self, name: str, mode: str = "max") -> None:
        """Declare the metric whose best value is the run's best (``mode`` "max" or "min")."""
        if mode not in ("max", "min"):
            raise ValueError("mode must be 'max' or 'min'")
        with self._lock:
            self._primary = (name, mode)
            self._best = None
            rundir.update_meta(self.run_dir, {"primary_metric": {"name": name, "mode": mode}}, durable=False)

    def log(
        self, data: dict[str, Any] | None = None, step: int | None = None, stage: str | None = None, **metrics: Any
    ) -> None:
        """Append one metrics event. ``step`` defaults to the previous step + 1. Metrics come as a
        dict, as keywords (``run.log(loss=0.5)``), or both."""
        if metrics or data is None:
            data = {**(data if isinstance(data, dict) else {}), **metrics}
        if not isinstance(data, dict):
            raise TypeError("log() takes a dict of metric values")
        now = time.time()
        with self._lock:
            self._check_open()
            if step is None:
                step = self._step + 1
            step = int(step)
            self._step = max(self._step, step)
            payload = dict(data)
            payload["global_step"] = step
            payload["time"] = now
            if stage is not None:
                payload["stage"] = stage
            self._events.write(event_line({"ts": now, "type": "metrics", "data": payload}))
            self._dirty = True
            if self._primary is not None and self._primary[0] in data:
                self._track_best(data[self._primary[0]], step)
            if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
                self._flush_locked()

    def log_config(
        self,
        args: Any = None,
        extra: dict[str, Any] | None = None,
        *,
        config_files: list[str | os.PathLike[str]] | None = None,
    ) -> None:
        """Record the run's configuration in assets.json (``config.args`` / ``config.extra``).

        ``args`` is a dict or an ``argparse.Namespace``; nested dicts stay nested (the server
        shows them as dotted params, ``optim.lr``). Called again, new keys are merged into what
        is there and a later value for a key wins.
        """
        changes: dict[str, Any] = {}
        if args is not None:
            changes["args"] = json_safe(as_mapping(args, "args"))
        if extra is not None:
            if not isinstance(extra, dict):
                raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
            changes["extra"] = json_safe(extra)
        if config_files is not None:
            changes["config_files"] = [str(Path(p)) for p in config_files]
        if not changes:
            return
        with self._lock:
            self._check_open()
            rundir.update_config(self.run_dir, changes)

    def log_image(
        self,
        key: str,
        image: Any,
        step: int | None = None,
        caption: str | None = None,
        format: str | None = None,
        quality: int = 90,
    ) -> str:
        """Save an image under ``media/`` and record an ``image`` event; returns its path in the run.

        ``image``: a path to a PNG, JPEG, GIF or WebP file, the bytes of one, a Pillow image, or
        a uint8 array (H×W or H×W×C). Files and bytes are checked by their content (anything
        else: ValueError) and copied as they are; ``format`` (png by default) applies to Pillow
        images and arrays.
        """
        if not isinstance(key, str) or not key.strip():
            raise ValueError("key must be a non-empty string")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise TypeError("step must be an int or None")
        if caption is not None and not isinstance(caption, str):
            raise TypeError("caption must be a string or None")
        data, ext = images.image_bytes(image, format, quality)
        name_part = _UNSAFE_NAME.sub("_", key.strip()).strip("._")[:80] or "image"
        now = time.time()
        rel = f"{rundir.MEDIA}/{int(now * 1000)}_{secrets.token_hex(3)}_{name_part}.{ext}"
        with self._lock:
            self._check_open()
            (self.run_dir / rundir.MEDIA).mkdir(exist_ok=True)
            rundir.write_new_file(self.run_dir / rel, data)
            event = {"ts": now, "type": "image", "data": {"key": key, "path": rel, "step": step, "caption": caption}}
            self._events.write(event_line(event))
            self._dirty = True
            self._flush_locked()  # rare and refers to a file: let readers see it at once
        return rel

    def log_text(self, text: str) -> None:
        """Append console text to logs.txt, one ``HH:MM:SS | line`` per line."""
        stamp = time.strftime("%H:%M:%S")
        lines = "".join(f"{stamp} | {line}\n" for line in str(text).splitlines() or [""])
        with self._lock, open(self.run_dir / rundir.LOGS, "a", encoding="utf-8") as fh:
            fh.write(lines)

    def summary(self, values: dict[str, Any]) -> None:
        """Merge ``values`` into summary.json (written atomically)."""
        with self._lock:
            current = rundir.read_json_object(self.run_dir / rundir.SUMMARY) or {}
            current.update(values)
            rundir.atomic_write_json(self.run_dir / rundir.SUMMARY, current, durable=False)

    def finish(self, status: str = "finished") -> None:
        """Flush, write the best metric into summary.json and close the run with ``status``."""
        status = rundir.normalize_status(status)
        if status == "running":
            status = "finished"
        self._detach()
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._flush_locked()
            self._events.close()
            if self._primary is not None and self._best_stale:
                self._best = self._best_from_events()
            if self._primary is not None and self._best is not None:
                current = rundir.read_json_object(self.run_dir / rundir.SUMMARY) or {}
                current.update(
                    best_metric_value=self._best[0],
                    best_metric_name=self._primary[0],
                    best_metric_step=self._best[1],
                    best_metric_mode=self._primary[1],
                )
                rundir.atomic_write_json(self.run_dir / rundir.SUMMARY, current, durable=False)
            state = rundir.read_json_object(self.run_dir / rundir.STATUS) or {}
            state.update(status=status, ended_at=time.time())
            state.setdefault("started_at", self.started_at)
            rundir.atomic_write_json(self.run_dir / rundir.STATUS, state, durable=False)
        _flusher.discard(self)
        if self._uploader is not None:
            mirror, self._uploader = self._uploader, None
            if not mirror.finish(self._upload_timeout) and mirror.refused is None:
                print(f"runicorn-lite: run {self.id} is not all on {mirror.server_url} after "
                      f"{self._upload_timeout:g} s; it is complete locally, and `runicorn-lite sync` sends the rest",
                      file=sys.stderr)

    def flush(self) -> None:
        """Write buffered events to disk now."""
        with self._lock:
            if not self._events.closed:
                self._flush_locked()
        if self._uploader is not None:
            self._uploader.notify()

    def __del__(self) -> None:
        # A run dropped without finish() stays "running" on disk (as with the real SDK); its
        # buffered events still reach the file.
        events = getattr(self, "_events", None)
        if events is not None and not events.closed:
            with contextlib.suppress(OSError):
                events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.finish("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted")
        else:
            self.finish("failed")

    # -- internals ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError(f"run {self.id} is finished")

    def _track_best(self, value: object, step: int) -> None:
        # The last value logged for a step is the step's value (the curve and the summaries
        # say so too): a step logged again replaces what it held, so when the best's own step
        # is logged again with a value that is not better, the best is read again at finish.
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            assert self._primary is not None
            v = float(value)
            if self._best is None or (v > self._best[0] if self._primary[1] == "max" else v < self._best[0]):
                self._best = (v, step)
                return
        if self._best is not None and self._best[1] == step:
            self._best_stale = True

    def _best_from_events(self) -> tuple[float, int] | None:
        assert self._primary is not None
        series = rundir.read_events(self.run_dir / rundir.EVENTS).points.get(self._primary[0]) or {}
        value, step = rundir.best_point(sorted(series.items()), self._primary[1])
        return None if value is None or step is None else (value, step)

    def _flush_locked(self) -> None:
        if self._dirty:
            self._events.flush()
            self._dirty = False
        self._last_flush = time.monotonic()

    def _flush_if_dirty(self) -> None:
        if self._dirty and self._lock.acquire(blocking=False):
            try:
                if not self._events.closed:
                    self._flush_locked()
            finally:
                self._lock.release()


class _Flusher:
    """One daemon thread that flushes idle runs, so the last events reach disk promptly."""

    def __init__(self) -> None:
        self._runs: weakref.WeakSet[Run] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, run: Run) -> None:
        with self._lock:
            self._runs.add(run)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="runicorn-lite-flush", daemon=True)
                self._thread.start()

    def discard(self, run: Run) -> None:
        with self._lock:
            self._runs.discard(run)

    def flush_all(self) -> None:
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.flush()

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_S)
            with self._lock:
                runs = list(self._runs)
            for run in runs:
                run._flush_if_dirty()


_flusher = _Flusher()
atexit.register(_flusher.flush_all)


def init(
    project: str | None = None,
    name: str | None = None,
    *,
    path: str | None = None,
    root: str | os.PathLike[str] | None = None,
    storage: str | os.PathLike[str] | None = None,
    tags: list[str] | None = None,
    description: str | None = None,
    alias: str | None = None,
    run_id: str | None = None,
    config: Any = None,
    capture_env: bool = False,
    server: str | None = None,
    api_key: str | None = None,
    upload_timeout: float = 30.0,
    resume: str | None = None,
    system_metrics: bool | None = None,
    system_interval: float = _system.DEFAULT_INTERVAL_S,
    capture_console: bool = False,
    tqdm_mode: str = "smart",
    **runicorn_options: Any,
) -> Run:
    """Start a run and write its directory.

    Either ``project`` (+ optional ``name``) or a Runicorn-style ``path`` ("cv/yolo/ablation")
    names it. ``root`` (or ``storage``, the real SDK's word) defaults to $RUNICORN_LITE_ROOT,
    $RUNICORN_DIR or ./runicorn-data. ``config`` (a dict or an argparse.Namespace) is
    ``log_config(args=config)``; ``capture_env`` writes environment.json (Python, platform,
    packages, git state, GPUs).

    ``resume=<run id>`` continues that run (ValueError when there is none). ``system_metrics``
    (default ``$RUNICORN_LITE_SYSTEM_METRICS``, else off) samples CPU, memory, disk, network and
    GPUs every ``system_interval`` seconds as ``sys/…`` metrics. ``capture_console`` tees stdout
    and stderr into logs.txt. Runicorn's options that have no meaning here (``snapshot_code``,
    ``workspace_root``, ``snapshot_format``, ``force_snapshot``) are accepted; one warning says
    they are ignored. While ``set_enabled(False)`` is in force, a run that does nothing.
    ``server`` (else $RUNICORN_LITE_SERVER) mirrors the run to a team server in the background,
    with ``api_key`` (else $RUNICORN_LITE_API_KEY); ``finish`` waits up to ``upload_timeout`` s
    for the upload, then leaves the rest to ``runicorn-lite sync``.
    """
    check_runicorn_options(runicorn_options)
    if not switch.is_enabled():
        return cast(Run, switch.NoOpRun(path or "/".join(p for p in (project, name) if p), alias))
    _check_arguments(config, tqdm_mode, system_interval)
    segments = _segments(path if path is not None else "/".join(p for p in (project or "default", name) if p))
    path = "/".join(segments)
    base = Path(root or storage or default_root()).expanduser().resolve()
    want_system = _system.wanted(system_metrics)
    if resume is not None:
        reopened = _resume.reopen(base, resume, tags=tags, description=description, alias=alias)
        run = Run(reopened.run_dir, reopened.run_id, reopened.path, reopened.created_at)
        run._continue(reopened)
        if config is not None:
            run.log_config(args=config)
        if capture_env:
            rundir.atomic_write_json(run.run_dir / rundir.ENVIRONMENT, environment.capture(), durable=False)
        run._attach(system=want_system, interval=system_interval, first_sample=reopened.last_sample + 1,
                    console=capture_console, tqdm_mode=tqdm_mode)
        return run
    now = time.time()
    if run_id is not None and not rundir.is_valid_run_id(run_id):
        raise ValueError(f"invalid run id: {run_id!r}")
    run_dir = _new_run_dir(base / rundir.RUNS_DIRNAME / Path(*segments), run_id, now)
    run_id = run_dir.name
    meta = {
        "id": run_id,
        "path": path,
        "alias": alias,
        "tags": list(dict.fromkeys(t for t in (tags or []) if isinstance(t, str) and t)),
        "description": description,
        "created_at": now,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "storage_dir": str(base),
    }
    rundir.atomic_write_json(run_dir / rundir.META, meta, durable=False)
    rundir.atomic_write_json(run_dir / rundir.STATUS, {"status": "running", "started_at": now}, durable=False)
    if config is not None:  # a new directory: no assets.json to merge into, no lock needed
        assets = rundir.empty_assets()
        assets["config"] = {"args": json_safe(as_mapping(config, "config"))}
        rundir.atomic_write_json(run_dir / rundir.ASSETS, assets, durable=False)
    run = Run(run_dir, run_id, path, now)
    if capture_env:
        rundir.atomic_write_json(run_dir / rundir.ENVIRONMENT, environment.capture(), durable=False)
    run._upload_timeout = upload_timeout
    run._uploader = uploader.start(run_dir, base, server, api_key)
    run._attach(system=want_system, interval=system_interval, first_sample=1, console=capture_console,
                tqdm_mode=tqdm_mode)
    return run



def _check_arguments(config: Any, tqdm_mode: str, system_interval: object) -> None:
    """Refuse bad arguments of ``init`` before any directory is made."""
    if config is not None:
        as_mapping(config, "config")
    if tqdm_mode not in console.TQDM_MODES:
        raise ValueError(f"tqdm_mode must be one of {', '.join(console.TQDM_MODES)}, got {tqdm_mode!r}")
    if not (isinstance(system_interval, (int, float)) and system_interval > 0):
        raise ValueError(f"system_interval must be a positive number of seconds, got {system_interval!r}")


def _segments(path: str) -> list[str]:
    segments = [_clean_segment(p) for p in path.replace("\\", "/").split("/") if p]
    if not segments:
        raise ValueError("a run needs a project or a path")
    return segments


def _new_run_dir(parent: Path, run_id: str | None, now: float) -> Path:
    """A new, empty run directory under ``parent``: ``run_id``'s (FileExistsError when taken), or
    one of a fresh id."""
    parent.mkdir(parents=True, exist_ok=True)
    for _attempt in range(100):
        run_dir = parent / (run_id or new_run_id(now))
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            if run_id is not None:
                raise
    raise RuntimeError("could not find a free run id")  # pragma: no cover - 100 collisions in one second


__all__ = ["Run", "init", "new_run_id"]
