"""What the indexer remembers of each run directory between reads, and reading it back from the
index (at start, after a reattach, and before each write when several workers share the store)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.where import placeholders

_COLUMNS = "run_dir, pk, id, files_sig, events_ino, events_offset, events_last_step, status, pid, hostname"
# Reading what is known of every run is not a request: a million rows from a cold file cache
# took longer than a request's 10 s budget, and the server could not start.
LOAD_BUDGET_S = 3600.0


def signature_key(files_sig: str) -> int | None:
    """A run's file signature (names, sizes, mtimes: a hundred bytes of text) as the 64-bit
    number the indexer keeps in memory; None for the empty signature, which matches nothing (it
    has the run read again). Two different signatures share a key with odds of 2**-64."""
    if not files_sig:
        return None
    key = int.from_bytes(hashlib.blake2b(files_sig.encode(), digest_size=8).digest(), "little", signed=True)
    return key if key != -(1 << 63) else key + 1  # that one stands for None in a packed Known



def relative_to(prefix: str, root: Path, run_dir: Path) -> str:
    """``run_dir`` relative to ``root`` as the key of what is known of it (``a/b/<id>``);
    ``prefix`` is the root's text and a separator (the common case, without pathlib's parsing)."""
    text = str(run_dir)
    if text.startswith(prefix):
        return text[len(prefix):].replace(os.sep, "/")
    try:
        return Path(run_dir).relative_to(root).as_posix()
    except ValueError:
        return Path(run_dir).as_posix()

_NUMBERS = struct.Struct("<5q")  # pk, sig, events_ino, events_offset, events_last_step
_NONE = -(1 << 63)  # a number that is None (a signature key never takes it: signature_key)


class Known:
    """What the indexer remembers of a run directory between reads: its row, or (``pk`` None,
    made by :meth:`seen`) a run seen but not in the index. One per run directory, all in
    memory, so kept small: slots, shared strings, the signature as a number, the id not kept
    when it is the directory's name (as runs' directories are named), the process only of a
    running run, and the five numbers packed in one bytes object (five int objects and their
    slots were ~160 bytes of it; packed, ~75): 680 -> ~270 bytes a run, its key included."""

    __slots__ = ("_numbers", "hostname", "own_id", "pid", "status", "walk")

    def __init__(self, pk: int | None, own_id: str | None, sig: int | None, events_ino: int | None,
                 events_offset: int, events_last_step: int | None, status: str, pid: int | None,
                 hostname: str | None, walk: int = 0) -> None:
        self._numbers = _pack(pk, sig, events_ino, events_offset, events_last_step)
        self.own_id = own_id  # the run's id; None when it is the directory's name (see run_id)
        self.status = status
        self.pid = pid  # the run's process and its host, kept while it runs
        self.hostname = hostname
        self.walk = walk  # the number of the last walk that found it (Indexer._walk)

    def _number(self, i: int) -> int | None:
        value: int = _NUMBERS.unpack(self._numbers)[i]
        return None if value == _NONE else value

    @property
    def pk(self) -> int | None:
        return self._number(0)

    @property
    def sig(self) -> int | None:  # signature_key of the files' signature
        return self._number(1)

    @property
    def events_ino(self) -> int | None:
        return self._number(2)

    @property
    def events_offset(self) -> int:
        return _NUMBERS.unpack(self._numbers)[3]  # type: ignore[no-any-return]

    @property
    def events_last_step(self) -> int | None:
        return self._number(4)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Known):
            return NotImplemented
        return (self._numbers, self.own_id, self.status, self.pid, self.hostname, self.walk) == (
            other._numbers, other.own_id, other.status, other.pid, other.hostname, other.walk)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Known(pk={self.pk}, own_id={self.own_id!r}, sig={self.sig}, events_ino={self.events_ino}, "
                f"events_offset={self.events_offset}, events_last_step={self.events_last_step}, "
                f"status={self.status!r}, pid={self.pid}, hostname={self.hostname!r}, walk={self.walk})")

    @classmethod
    def of(cls, rel: str, pk: int | None, run_id: str, files_sig: str, events_ino: int | None, events_offset: int,
           events_last_step: int | None, status: str, pid: int | None, hostname: str | None) -> Known:
        """Of the run directory ``rel``, from its row's values (the signature as its text)."""
        named = bool(run_id) and (rel == run_id or rel.endswith(f"/{run_id}"))
        own_id = None if named else run_id
        running = status == "running"
        return cls(pk, own_id, signature_key(files_sig), events_ino, events_offset, events_last_step,
                   sys.intern(status), pid if running else None,
                   sys.intern(hostname) if running and hostname is not None else None)

    @classmethod
    def seen(cls, rel: str, run_id: str, files_sig: str = "", events_ino: int | None = None,
             events_size: int = 0) -> Known:
        """A run seen at ``rel`` but not indexed; an empty signature has it read again at the
        next scan."""
        return cls.of(rel, None, run_id, files_sig, events_ino, events_size, None, "", None, None)

    def run_id(self, rel: str) -> str:
        """The run's id (``rel``: its directory, this Known's key)."""
        return self.own_id if self.own_id is not None else rel[rel.rfind("/") + 1 :]

    @property
    def indexed(self) -> bool:
        return self.pk is not None

    def same_files(self, files_sig: str) -> bool:
        """Whether the run's small files have this signature still."""
        return self.sig is not None and self.sig == signature_key(files_sig)

    def forget_files(self) -> None:
        """Have the run's small files read again at its next refresh."""
        pk, _sig, ino, offset, last = _NUMBERS.unpack(self._numbers)
        self._numbers = _NUMBERS.pack(pk, _NONE, ino, offset, last)


def _pack(pk: int | None, sig: int | None, ino: int | None, offset: int, last: int | None) -> bytes:
    return _NUMBERS.pack(*(_NONE if v is None else v for v in (pk, sig, ino, offset, last)))


def load_known(conn: sqlite3.Connection, rels: Sequence[str] | None = None) -> dict[str, Known]:
    """run directory → Known, of every indexed run or of those at ``rels``."""
    if rels is None:
        return {row[0]: Known.of(*row) for row in conn.execute(f"SELECT {_COLUMNS} FROM experiments")}
    found: dict[str, Known] = {}
    for start in range(0, len(rels), 500):
        part = rels[start : start + 500]
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM experiments WHERE run_dir IN ({placeholders(len(part))})", part
        ):
            found[row[0]] = Known.of(*row)
    return found


def analyzed_rows(conn: sqlite3.Connection) -> int | None:
    """How many runs SQLite's planner statistics were taken at; None when there are none (or an
    index added since has none, or on PostgreSQL, which keeps statistics of its own)."""
    if on_postgres():  # statistics of its own (autovacuum); one ANALYZE at the first scan
        return None
    try:
        row = conn.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'experiments' LIMIT 1").fetchone()
        # An index a migration added since the last ANALYZE has no statistics yet.
        unknown = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'experiments'"
            " AND name NOT IN (SELECT idx FROM sqlite_stat1 WHERE tbl = 'experiments')"
        ).fetchone()[0]
    except sqlite3.OperationalError:  # never analyzed: no sqlite_stat1 table yet
        return None
    return int(row[0].split()[0]) if row and not unknown else None


class KnownRuns:
    """Every run directory the indexer knows (relative to the root, as ``a/b/<id>``) with what
    it knows of it, and which of them the current walk has found: a walk marks each run it
    finds with its number (sets of the runs found and known took ~150 MB at a million runs),
    and what is written meanwhile is marked as found (it exists). The runs marked running and
    the number indexed are kept as the runs change: the watcher asks for them every poll, and
    counting them walked every run (~70 ms at a million)."""

    __slots__ = ("_indexed", "_running", "_runs", "walk_no")

    def __init__(self) -> None:
        self._runs: dict[str, Known] = {}
        self._running: set[str] = set()
        self._indexed = 0
        self.walk_no = 0  # the number of the current (or last) walk

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, rel: object) -> bool:
        return rel in self._runs

    def __iter__(self) -> Iterator[str]:
        return iter(self._runs)

    def get(self, rel: str) -> Known | None:
        return self._runs.get(rel)

    def items(self) -> list[tuple[str, Known]]:
        """A copy: safe to iterate while the runs change."""
        return list(self._runs.items())

    def pop(self, rel: str) -> Known | None:
        known = self._runs.pop(rel, None)
        if known is not None:
            self._forget(rel, known)
        return known

    def keep(self, rel: str, known: Known) -> None:
        """Remember ``known`` of ``rel``, as found by the current walk: it exists."""
        known.walk = self.walk_no
        old = self._runs.get(rel)
        if old is not None:
            self._forget(rel, old)
        self._runs[rel] = known
        self._indexed += known.indexed
        if known.status == "running":
            self._running.add(rel)

    def _forget(self, rel: str, known: Known) -> None:
        self._indexed -= known.indexed
        self._running.discard(rel)

    def replace(self, runs: dict[str, Known]) -> None:
        """Know these runs and no other (as read from the index), all found."""
        for known in runs.values():
            known.walk = self.walk_no
        self._runs = runs
        self._running = {rel for rel, known in runs.items() if known.status == "running"}
        self._indexed = sum(1 for known in runs.values() if known.indexed)

    def update(self, rels: Sequence[str], found: dict[str, Known]) -> None:
        """What the index holds now for ``rels`` (another worker may have written them): a run
        indexed no more is forgotten; one only seen is kept."""
        for rel in rels:
            if (known := found.get(rel)) is not None:
                self.keep(rel, known)
            elif (old := self._runs.get(rel)) is not None and old.indexed:
                self.pop(rel)

    def begin_walk(self) -> int:
        self.walk_no += 1
        return self.walk_no

    def unwalked(self) -> list[str]:
        """The runs the current walk has not found (nor written)."""
        return [rel for rel, known in self._runs.items() if known.walk != self.walk_no]

    def indexed_count(self) -> int:
        return self._indexed

    def running(self) -> list[tuple[str, Known]]:
        """The runs marked running (few, whatever the size of the tree), with what is known."""
        return [(rel, self._runs[rel]) for rel in list(self._running)]
