"""What recent queries found (totals, plan facts, search orders, sets of runs), kept while the
index has not changed."""

from __future__ import annotations

import threading
from typing import Any


class QueryCache:
    """Totals, plan facts and search orders of recent queries, valid while the index has not
    changed (by its generation).

    Paging through a result asks for the same total again and again; at 100k experiments a
    count is several milliseconds, a page of rows a fraction of one.
    """

    def __init__(self, size: int = 256, set_members: int = 400_000) -> None:
        self.size = size
        self._entries: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        # Sets of runs (filter_sets) are kept apart, within a number of members in all
        # (about 50 bytes each: 400,000 are ~20 MB).
        self.set_members = set_members
        self._sets: dict[tuple[Any, ...], tuple[Any, frozenset[int]]] = {}
        self._members = 0

    def get(self, key: tuple[Any, ...], generation: Any) -> Any:
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] == generation else None

    def get_set(self, key: tuple[Any, ...], version: Any) -> frozenset[int] | None:
        """A set of runs kept by :meth:`put_set` for this version of its table, else None."""
        hit = self._sets.get(key)
        return hit[1] if hit is not None and hit[0] == version else None

    def put(self, key: tuple[Any, ...], generation: Any, total: Any) -> None:
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (generation, total)

    def put_set(self, key: tuple[Any, ...], version: Any, runs: frozenset[int]) -> None:
        """Keep a set of runs, dropping the oldest sets while the members would be too many."""
        if len(runs) > self.set_members:
            return
        with self._lock:
            old = self._sets.pop(key, None)
            if old is not None:
                self._members -= len(old[1])
            while self._sets and self._members + len(runs) > self.set_members:
                self._members -= len(self._sets.pop(next(iter(self._sets)))[1])
            self._sets[key] = (version, runs)
            self._members += len(runs)
