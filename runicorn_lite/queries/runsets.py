"""A set of runs as a bitmap: one byte per run key (``experiments.pk``), true for the members.

A filter clause's runs are kept between requests (queries/filter_sets.py). As Python frozensets
they took about 70 bytes a member: at a million runs one clause that most runs match was 55 MB,
so only a couple fit the cache, and a filter of three such clauses read its sets again at every
request after a change (about a second). A bitmap is one byte a run key whatever it holds (1 MB
at a million runs); ``and``, ``or`` and ``not`` are vectorised passes over it (well under a
millisecond), a copy to bring a set up to date is a memcpy, and its members come out sorted.

Run keys are dense: SQLite's rowids and PostgreSQL's serial, counting up from 1. A store whose
keys outgrow :data:`MAX_KEY` (far past what it holds: rebuild the index to renumber them)
refuses bitmaps with :class:`KeysTooSparse` rather than allocate them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

# The largest run key a bitmap is made for: 64 MB a set.
MAX_KEY = 1 << 26


class KeysTooSparse(ValueError):
    """A run key past MAX_KEY."""


class RunSet:
    """An immutable set of run keys (a read-only bool array indexed by key; keys past its end
    are not members)."""

    __slots__ = ("_bits", "_count", "_view")

    def __init__(self, bits: np.ndarray, count: int | None = None) -> None:
        bits.flags.writeable = False  # shared by every request that reads it
        self._bits = bits
        self._count = count
        self._view = memoryview(bits)  # type: ignore[arg-type]  # a member test by it: quicker than numpy's

    @classmethod
    def of(cls, keys: Iterable[int] | np.ndarray) -> RunSet:
        """The set of ``keys`` (any order, repeats allowed)."""
        array = keys if isinstance(keys, np.ndarray) else np.fromiter(keys, dtype=np.int64)
        if not len(array):
            return EMPTY
        top = int(array.max())
        if top > MAX_KEY or int(array.min()) < 0:
            raise KeysTooSparse(f"run key {top} is past {MAX_KEY}: rebuild the index to number its runs again")
        bits = np.zeros(top + 1, dtype=np.bool_)
        bits[array] = True
        return cls(bits)

    @property
    def nbytes(self) -> int:
        return int(self._bits.nbytes) + 64

    def __len__(self) -> int:
        if self._count is None:
            self._count = int(np.count_nonzero(self._bits))
        return self._count

    def __bool__(self) -> bool:
        return len(self) > 0

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int):
            return False
        view = self._view
        return 0 <= key < len(view) and bool(view[key])

    def __iter__(self) -> Iterator[int]:
        return iter(self.sorted().tolist())

    def sorted(self) -> np.ndarray:
        """The members in ascending order (int64)."""
        return np.flatnonzero(self._bits).astype(np.int64, copy=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunSet):
            return NotImplemented
        return len(self) == len(other) and bool(np.array_equal(self.sorted(), other.sorted()))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RunSet({len(self)} of {len(self._bits)} keys)"

    def _pair(self, other: RunSet) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._bits, other._bits
        if len(a) == len(b):
            return a, b
        size = max(len(a), len(b))
        return _padded(a, size), _padded(b, size)

    def __and__(self, other: RunSet) -> RunSet:
        size = min(len(self._bits), len(other._bits))
        return RunSet(self._bits[:size] & other._bits[:size])

    def __or__(self, other: RunSet) -> RunSet:
        a, b = self._pair(other)
        return RunSet(a | b)

    def __sub__(self, other: RunSet) -> RunSet:
        size = min(len(self._bits), len(other._bits))
        out = self._bits.copy()
        out[:size] &= ~other._bits[:size]
        return RunSet(out)

    def changed(self, left: Iterable[int], joined: Iterable[int]) -> RunSet:
        """A copy with the keys ``left`` taken out and ``joined`` put in."""
        joined = list(joined)
        top = max(joined, default=-1)
        if top > MAX_KEY:
            raise KeysTooSparse(f"run key {top} is past {MAX_KEY}: rebuild the index to number its runs again")
        bits = _padded(self._bits, max(len(self._bits), top + 1))
        if bits is self._bits:
            bits = bits.copy()
        gone = [k for k in left if 0 <= k < len(bits)]
        bits[gone] = False
        bits[joined] = True
        return RunSet(bits)


def union(sets: Iterable[RunSet]) -> RunSet:
    out = EMPTY
    for s in sets:
        out = out | s
    return out


def _padded(bits: np.ndarray, size: int) -> np.ndarray:
    if len(bits) >= size:
        return bits
    out = np.zeros(size, dtype=np.bool_)
    out[: len(bits)] = bits
    return out


EMPTY = RunSet(np.zeros(0, dtype=np.bool_), 0)
