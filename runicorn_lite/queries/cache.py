"""What recent queries found (totals, plan facts, search orders, arrays, sets of runs), kept
while the index, or the table they came from, has not changed."""

from __future__ import annotations

import sys
import threading
from typing import Any

import orjson

from runicorn_lite.queries.runsets import RunSet

# What the query cache may hold, about (numpy arrays of params and metric summaries, sorted
# sets of runs, answers): at 100k runs one param's array of pks and codes is 1.6 MB, so this
# keeps the columns of importance over about 80 params there (its default weighs at most 200).
QUERY_CACHE_BYTES = 128 << 20
_SAMPLE = 16  # items of a long container measured; the rest are taken to be alike
_SCALARS = (int, float, str, bytes, type(None))


def approx_nbytes(value: Any, depth: int = 0) -> int:
    """About how many bytes ``value`` holds: numpy arrays by their buffers, a dict (an API
    answer) by its JSON text (Python's objects of it take a few times that), tuples and lists
    by their items (a long one by a sample of its first items: a put stays cheap), and
    anything else by ``sys.getsizeof``."""
    if isinstance(value, _SCALARS):
        return sys.getsizeof(value)
    buffer = getattr(value, "nbytes", None)  # a numpy array (not imported here for this)
    if isinstance(buffer, int):
        return buffer + 112
    if isinstance(value, dict):
        try:
            return 4 * len(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS))
        except TypeError:
            return sys.getsizeof(value)
    if depth >= 3 or not isinstance(value, (tuple, list)):
        return sys.getsizeof(value)
    sample = value[:_SAMPLE]
    if not sample:
        return sys.getsizeof(value)
    measured = sum(sys.getsizeof(item) if isinstance(item, _SCALARS) else approx_nbytes(item, depth + 1)
                   for item in sample)
    return sys.getsizeof(value) + measured * len(value) // len(sample)


class QueryCache:
    """Totals, plan facts, search orders, arrays and answers of recent queries, each valid
    while its version stands (the index's generation, or a table's version).

    Paging through a result asks for the same total again and again; at 100k experiments a
    count is several milliseconds, a page of rows a fraction of one. At most ``size`` entries
    of about ``max_bytes`` in all (:func:`approx_nbytes`): the oldest go first, and an entry
    larger than the whole bound is not kept.
    """

    # Sets of runs (queries/runsets.py: a byte a run key, 1 MB each at a million runs) kept, at
    # most this many bytes in all: every clause of a few filters at a million runs. As
    # frozensets (~70 bytes a member) 84 MB held 1.2M members, not the three clauses of one
    # filter over most runs, which were then read again at every request after a change.
    SET_BYTES = 96 << 20

    def __init__(self, size: int = 256, set_bytes: int = SET_BYTES, max_bytes: int = QUERY_CACHE_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._entries: dict[tuple[Any, ...], tuple[Any, Any, int]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        # Sets of runs (filter_sets) are kept apart, within their own bytes.
        self.set_bytes = set_bytes
        self._sets: dict[tuple[Any, ...], tuple[Any, RunSet]] = {}
        self._set_bytes = 0

    @property
    def nbytes(self) -> int:
        """About how many bytes the kept entries hold (sets of runs apart)."""
        return self._bytes

    def get(self, key: tuple[Any, ...], generation: Any) -> Any:
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] == generation else None

    def get_set(self, key: tuple[Any, ...], version: Any) -> RunSet | None:
        """A set of runs kept by :meth:`put_set` for this version of its table, else None."""
        hit = self._sets.get(key)
        return hit[1] if hit is not None and hit[0] == version else None

    def set_entry(self, key: tuple[Any, ...]) -> tuple[Any, RunSet] | None:
        """The set of runs kept under ``key`` with the version it was good for, whatever that
        version (one to bring up to date: queries/filter_sets.py)."""
        return self._sets.get(key)

    def put(self, key: tuple[Any, ...], generation: Any, value: Any) -> None:
        """Keep ``value`` for this generation (or version), dropping the oldest entries while
        there would be more than ``size`` of them or more than ``max_bytes``."""
        nbytes = approx_nbytes(key) + approx_nbytes(value)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            if nbytes > self.max_bytes:
                return
            while self._entries and (len(self._entries) >= self.size or self._bytes + nbytes > self.max_bytes):
                self._bytes -= self._entries.pop(next(iter(self._entries)))[2]
            self._entries[key] = (generation, value, nbytes)
            self._bytes += nbytes

    def put_set(self, key: tuple[Any, ...], version: Any, runs: RunSet) -> None:
        """Keep a set of runs, dropping the oldest sets while they would hold too many bytes."""
        with self._lock:
            old = self._sets.pop(key, None)
            if old is not None:
                self._set_bytes -= old[1].nbytes
            if runs.nbytes > self.set_bytes:
                return
            while self._sets and self._set_bytes + runs.nbytes > self.set_bytes:
                self._set_bytes -= self._sets.pop(next(iter(self._sets)))[1].nbytes
            self._sets[key] = (version, runs)
            self._set_bytes += runs.nbytes
