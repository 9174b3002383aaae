"""Rows by step for answers of every point (V1 ``metrics``, V2 ``metrics/fast``), in bounded
memory.

A run of a million steps and three metrics was a million row dicts (two gigabytes) before it
became JSON. Here it is one sorted array of steps and one array per column (16 bytes a point),
and the JSON is written a batch of rows at a time while it streams out.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from runicorn_lite.downsample import m4_indices

_NAN = math.nan
ROWS_PER_BATCH = 5000


class StepTable:
    """A sorted array of steps and columns aligned with it: number columns are float arrays
    (NaN: no value, shown as null), text columns lists (None: no value)."""

    def __init__(self) -> None:
        self.steps: array[int] = array("q")
        self.numbers: dict[str, array[float]] = {}
        self.texts: dict[str, list[str | None]] = {}

    def __len__(self) -> int:
        return len(self.steps)

    def add_numbers(self, name: str, steps: Sequence[int], values: Sequence[float]) -> None:
        """Values of a number column at sorted, distinct ``steps`` (a later value at a step
        wins over an earlier one)."""
        column = self.numbers.get(name)
        if column is None:
            column = self.numbers[name] = array("d", [_NAN]) * len(self.steps)
        positions = self._positions(steps)
        column = self.numbers[name]
        for pos, value in zip(positions, values, strict=True):
            column[pos] = value

    def add_texts(self, name: str, steps: Sequence[int], values: Sequence[str | None]) -> None:
        """As :meth:`add_numbers`, for a text column."""
        if name not in self.texts:
            self.texts[name] = [None] * len(self.steps)
        positions = self._positions(steps)
        column = self.texts[name]
        for pos, value in zip(positions, values, strict=True):
            column[pos] = value

    def _positions(self, steps: Sequence[int]) -> Sequence[int]:
        """Row positions of sorted ``steps``, adding rows for the new ones. Appends past the last
        step (the usual case of a run read in order) cost nothing but the append."""
        own = self.steps
        if not steps:
            return []
        if not own or steps[0] > own[-1]:
            start = len(own)
            self._grow(steps)
            return range(start, start + len(steps))
        k = len(steps)
        if k <= len(own) and own[-k:] == (steps if isinstance(steps, array) else array("q", steps)):
            return range(len(own) - k, len(own))  # the last rows' steps: metrics logged together
        positions = []
        for step in steps:
            i = bisect.bisect_left(own, step)
            if i == len(own) or own[i] != step:
                self._insert(i, step)
            positions.append(i)
        return positions

    def _grow(self, steps: Sequence[int]) -> None:
        self.steps.extend(steps)
        for column in self.numbers.values():
            column.extend(array("d", [_NAN]) * len(steps))
        for texts in self.texts.values():
            texts.extend([None] * len(steps))

    def _insert(self, i: int, step: int) -> None:  # a step logged out of order: rare
        self.steps.insert(i, step)
        for column in self.numbers.values():
            column.insert(i, _NAN)
        for texts in self.texts.values():
            texts.insert(i, None)

    def names(self) -> list[str]:
        return sorted([*self.numbers, *self.texts])

    def pick(self, downsample: int | None) -> list[int] | None:
        """Row positions to answer: None for every row; else at most ``downsample``, chosen by
        M4 on each number column with an equal share of the budget (first and last rows kept)."""
        n = len(self.steps)
        if downsample is None or n <= downsample or not self.numbers:
            return None
        keep = {0, n - 1}
        budget = max(3, (downsample - 2) // len(self.numbers))
        for name in sorted(self.numbers):
            column = self.numbers[name]
            present = [i for i in range(n) if not math.isnan(column[i])] if _has_gaps(column) else None
            values = column if present is None else array("d", [column[i] for i in present])
            for j in m4_indices(values, budget):
                if len(keep) >= downsample:
                    break
                keep.add(j if present is None else present[j])
        return sorted(keep)

    def json_rows(self, picks: Iterable[int] | None = None) -> Iterator[bytes]:
        """The rows as JSON objects (``global_step`` then the columns by name), comma-separated,
        a batch at a time."""
        names = self.names()
        columns: list[Sequence[Any]] = [self.numbers[n] if n in self.numbers else self.texts[n] for n in names]
        keys = ["global_step", *names]
        positions = range(len(self.steps)) if picks is None else list(picks)
        first = True
        for start in range(0, len(positions), ROWS_PER_BATCH):
            batch = positions[start : start + ROWS_PER_BATCH]
            rows = [dict(zip(keys, (self.steps[i], *(c[i] for c in columns)), strict=True)) for i in batch]
            text = orjson.dumps(rows)[1:-1]  # NaN comes out as null
            if text:
                yield text if first else b"," + text
                first = False


def _has_gaps(column: array[float]) -> bool:
    """Whether a number column has rows without a value (NaN), which M4 must not count as rows
    of that column."""
    return not math.isfinite(sum(column))


def table_of(series: dict[str, tuple[array[int], array[float]]]) -> StepTable:
    """A table of whole series (metric → sorted steps and their values)."""
    table = StepTable()
    for name in sorted(series):
        steps, values = series[name]
        table.add_numbers(name, steps, values)
    return table
