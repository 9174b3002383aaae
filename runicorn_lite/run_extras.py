"""What a run does beside init/log/finish: the system sampler and the console capture it holds,
going on after a resume, and the rest of Runicorn 0.7.2's ``Run`` surface.

``Run`` (sdk.py) inherits these. Runicorn's calls that name something the run directory has a
place for are recorded there (``log_dataset`` and ``log_pretrained`` in assets.json); the ones
that archive or watch files (``watch_outputs``, ``scan_outputs_once``, ``snapshot_code``) are
accepted and ignored, with one warning each per process.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from runicorn_lite import rundir, switch
from runicorn_lite.console import ConsoleCapture
from runicorn_lite.system_metrics import Sampler

if TYPE_CHECKING:
    from runicorn_lite.resume import Reopened

log = logging.getLogger("runicorn_lite")
_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(what: str, message: str) -> None:
    """Log ``message`` the first time ``what`` happens in this process."""
    with _warned_lock:
        if what in _warned:
            return
        _warned.add(what)
    log.warning(message)


# Runicorn 0.7.2's init options that archive code, which runicorn-lite does not do.
_IGNORED_OPTIONS = frozenset({"snapshot_code", "workspace_root", "snapshot_format", "force_snapshot"})


def check_runicorn_options(options: dict[str, Any]) -> None:
    """``init``'s Runicorn options without a meaning here: accepted (one warning); others refused."""
    unknown = sorted(set(options) - _IGNORED_OPTIONS)
    if unknown:
        raise TypeError(f"init() got unexpected keyword argument(s): {', '.join(unknown)}")
    if options.get("snapshot_code"):
        warn_once("snapshot_code", "init(snapshot_code=True) is ignored: runicorn-lite does not archive code")


def _uri(value: Any) -> Any:
    if isinstance(value, (str, os.PathLike)):
        return str(Path(value).expanduser())
    return value


class _LogTextHandler(logging.Handler):
    """A logging handler that appends each record to the run's logs.txt."""

    def __init__(self, run: RunExtras, level: int) -> None:
        super().__init__(level)
        self._run = run

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._run.log_text(self.format(record))
        except Exception:  # noqa: BLE001 - a logging handler reports its own failures
            self.handleError(record)


class RunExtras:
    """Mixed into ``Run``; uses its lock, events file and step."""

    run_dir: Path
    id: str
    _lock: threading.Lock
    _events: IO[bytes]
    _dirty: bool
    _finished: bool
    _step: int
    _primary: tuple[str, str] | None
    _best: tuple[float, int] | None
    _sampler: Sampler | None = None
    _console: ConsoleCapture | None = None

    def log_text(self, text: str) -> None:  # pragma: no cover - Run's
        raise NotImplementedError

    # -- attachments --------------------------------------------------------------------------

    def _attach(self, *, system: bool, interval: float, first_sample: int, console: bool, tqdm_mode: str) -> None:
        if console:
            capture = ConsoleCapture(self.run_dir / rundir.LOGS, tqdm_mode)
            capture.start()
            self._console = capture
        if system:
            sampler = Sampler(self._log_system, interval, first_sample)
            if sampler.start():
                self._sampler = sampler
        switch.set_active(self)

    def _detach(self) -> None:
        """Stop the sampler (its last sample) and the console capture; before finish closes."""
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.stop()
        console, self._console = self._console, None
        if console is not None:
            console.stop()
        switch.clear_active(self)

    def _log_system(self, values: dict[str, float], sample: int, now: float) -> None:
        """One system sample: its own step numbering, so the training steps are not moved."""
        line = orjson.dumps({"ts": now, "type": "metrics", "data": {**values, "global_step": sample, "time": now}})
        with self._lock:
            if self._finished:
                return
            self._events.write(line + b"\n")
            self._dirty = True

    def _continue(self, state: Reopened) -> None:
        """Go on after a resume: steps after the last, the best so far kept."""
        self._step = state.last_step
        self._primary = state.primary
        self._best = state.best

    # -- Runicorn 0.7.2's surface ---------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self._finished

    def get_logging_handler(self, level: int = logging.INFO, fmt: str | None = None) -> logging.Handler:
        """A ``logging.Handler`` that writes records into the run's logs.txt."""
        handler = _LogTextHandler(self, level)
        handler.setFormatter(logging.Formatter(fmt or "%(levelname)s | %(name)s | %(message)s"))
        return handler

    def log_dataset(
        self, name: str, root_or_uri: Any, *, context: str = "train", save: bool = False,
        description: str | None = None, force_save: bool = False, max_archive_bytes: int = 0,
        max_archive_files: int = 0,
    ) -> None:
        """Record a dataset the run used in assets.json's ``datasets`` (never archived here)."""
        del force_save, max_archive_bytes, max_archive_files
        if save:
            warn_once("archive", "runicorn-lite records datasets and pretrained models but does not archive them")
        entry = {"name": str(name), "context": context, "uri": _uri(root_or_uri), "description": description,
                 "saved": False, "fingerprint": None}
        self._append_asset("datasets", entry)

    def log_pretrained(
        self, name: str, *, path_or_uri: Any = None, save: bool = False, source_type: str = "unknown",
        description: str | None = None, force_save: bool = False, max_archive_bytes: int = 0,
        max_archive_files: int = 0,
    ) -> None:
        """Record a pretrained model the run started from in assets.json's ``pretrained``."""
        del force_save, max_archive_bytes, max_archive_files
        if save:
            warn_once("archive", "runicorn-lite records datasets and pretrained models but does not archive them")
        where = os.fspath(path_or_uri) if isinstance(path_or_uri, (str, os.PathLike)) else path_or_uri
        entry = {"name": str(name), "source_type": source_type, "path_or_uri": where, "description": description,
                 "saved": False}
        self._append_asset("pretrained", entry)

    def watch_outputs(self, *_args: Any, **_kwargs: Any) -> None:
        """Accepted and ignored: runicorn-lite does not archive output files."""
        warn_once("watch_outputs", "watch_outputs() is ignored: runicorn-lite does not archive output files")

    def scan_outputs_once(self, *_args: Any, **_kwargs: Any) -> dict[str, int]:
        """Accepted and ignored (see ``watch_outputs``)."""
        warn_once("watch_outputs", "scan_outputs_once() is ignored: runicorn-lite does not archive output files")
        return {"scanned": 0, "archived": 0, "changed": 0}

    def stop_outputs_watch(self) -> None:
        """Nothing to stop (see ``watch_outputs``)."""

    def _append_asset(self, kind: str, entry: dict[str, Any]) -> None:
        if self._finished:
            log.warning("%s called after finish(); ignored", kind)
            return
        rundir.append_asset(self.run_dir, kind, entry)
