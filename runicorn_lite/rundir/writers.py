"""Atomic writers: a reader never sees a half-written file, and read-modify-write updates of one
run directory are serialised by an OS lock on the directory itself."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runicorn_lite.rundir.jsonfiles import read_json_object
from runicorn_lite.rundir.layout import META

try:  # POSIX file locks; elsewhere updates are atomic but not serialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def _json_default(obj: object) -> object:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_json(obj: object) -> str:
    """JSON text as the real SDK writes it (Python's json, bare NaN/Infinity allowed)."""
    return json.dumps(obj, ensure_ascii=False, default=_json_default)


def atomic_write_json(path: Path, obj: object, *, durable: bool = True) -> None:
    """Write ``obj`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    ``durable=False`` skips the fsync: readers still never see a half-written file, but a
    power cut may lose the write (fine for a training script's own bookkeeping).
    """
    path = Path(path)
    text = json.dumps(obj, ensure_ascii=False, indent=2, default=_json_default)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_new_file(path: Path, data: bytes) -> None:
    """Write a file that readers must never see half-written (temp file, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:50]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def update_meta(run_dir: Path, changes: dict[str, Any], *, durable: bool = True) -> dict[str, Any]:
    """Merge ``changes`` into meta.json atomically; returns the new meta.

    The read-modify-write holds an OS lock on the run directory itself (no lock file left
    behind), so a PATCH from the server and the training script's own update cannot lose each
    other's keys.
    """
    with dir_lock(Path(run_dir)):
        meta = read_json_object(run_dir / META) or {}
        meta.update(changes)
        atomic_write_json(run_dir / META, meta, durable=durable)
    return meta


@contextlib.contextmanager
def dir_lock(directory: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover - no POSIX locks: atomic, not serialised
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
