"""Tolerant JSON readers: a missing, empty, truncated, too deep or non-JSON file reads as absent
(or as a named problem), never as an exception."""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Any

import orjson


class Unparsed(enum.Enum):
    """Why bytes did not parse as JSON (``read_json_bytes`` returns it instead of a value, since
    ``None`` is a JSON value)."""

    NOT_JSON = "not valid UTF-8 JSON"
    TOO_DEEP = "nested too deep"


MAX_JSON_DEPTH = 1024  # orjson's limit of nesting (Python's json stops near the same depth)


def read_json_bytes(data: bytes) -> object:
    """Parsed JSON (bare NaN/Infinity allowed), or ``Unparsed.TOO_DEEP`` past MAX_JSON_DEPTH, or
    ``Unparsed.NOT_JSON``."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            # Too deep for orjson is too deep for us, whatever Python's recursion limit is in
            # this process (something may have raised it; a document that deep is refused alike).
            return Unparsed.TOO_DEEP
        try:  # Python's json writes bare NaN/Infinity, which orjson refuses.
            return json.loads(data)
        except RecursionError:
            return Unparsed.TOO_DEEP
        except (ValueError, UnicodeDecodeError):
            return Unparsed.NOT_JSON


READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_PIECE = 1 << 16


def read_small(path: Path | str, max_bytes: int | None = None) -> bytes:
    """A file's bytes by the system calls it takes (open, read, close: a short read of a
    regular file is its end), where ``open()`` and ``read()`` make seven; a cold scan reads
    five files a run. ``max_bytes``: :class:`FileTooLarge` past it (the size read from the open
    file). OSError as ``open()`` raises it."""
    fd = os.open(path, READ_FLAGS)
    try:
        if max_bytes is not None and (size := os.fstat(fd).st_size) > max_bytes:
            raise FileTooLarge(size)
        pieces = []
        while True:
            piece = os.read(fd, _PIECE)
            pieces.append(piece)
            if len(piece) < _PIECE:
                return piece if len(pieces) == 1 else b"".join(pieces)
    finally:
        os.close(fd)


class FileTooLarge(Exception):
    """A file over the size its reader takes (``size``: its size in bytes)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when missing, empty, truncated or not an object."""
    try:
        data = read_small(path)
    except OSError:
        return None
    obj = read_json_bytes(data) if data.strip() else None
    return obj if isinstance(obj, dict) else None


# assets.json and environment.json larger than this are not read (one warning): they are
# documents for people, and a runaway one must not cost the index its memory.
MAX_DOC_BYTES = 4 << 20


def read_doc(path: Path, max_bytes: int = MAX_DOC_BYTES) -> tuple[dict[str, Any] | None, str | None]:
    """(object, problem) of an optional JSON document: (None, None) when the file is absent,
    (None, why) when it is too large, unreadable, not JSON (or not UTF-8) or not an object."""
    try:
        data = read_small(path, max_bytes)
    except FileNotFoundError:
        return None, None
    except FileTooLarge as big:
        return None, f"{path.name} is {big.size / (1 << 20):.1f} MiB, over the {max_bytes >> 20} MiB limit; not read"
    except OSError as exc:
        return None, f"{path.name} unreadable: {exc.strerror or exc}"
    if not data.strip():
        return None, None
    if isinstance(obj := read_json_bytes(data), Unparsed):
        why = f"nested deeper than {MAX_JSON_DEPTH} levels" if obj is Unparsed.TOO_DEEP else obj.value
        return None, f"{path.name} is {why}"
    if not isinstance(obj, dict):
        return None, f"{path.name} is not a JSON object"
    return obj, None


def parse_event_line(line: bytes) -> dict[str, Any] | None:
    """One events.jsonl line as a dict, or None when it is not a JSON object."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
    return obj if isinstance(obj, dict) else None
