"""Sets of runs as bitmaps (queries/runsets.py) behave as Python's sets of the same keys."""

from __future__ import annotations

import random

import numpy as np
import pytest

from runicorn_lite.queries.runsets import EMPTY, MAX_KEY, KeysTooSparse, RunSet, union


def test_operations_match_python_sets() -> None:
    rng = random.Random(5)
    for _ in range(200):
        a = {rng.randrange(1, rng.choice([5, 50, 3000])) for _ in range(rng.randrange(0, 60))}
        b = {rng.randrange(1, rng.choice([5, 50, 3000])) for _ in range(rng.randrange(0, 60))}
        ra, rb = RunSet.of(a), RunSet.of(np.array(sorted(b), dtype=np.int64))  # bitmaps of other lengths
        for got, want in ((ra & rb, a & b), (ra | rb, a | b), (ra - rb, a - b), (rb - ra, b - a),
                          (union([ra, rb, EMPTY]), a | b)):
            assert list(got) == sorted(want) and len(got) == len(want) and bool(got) == bool(want)
            assert got.sorted().tolist() == sorted(want)
        probe = rng.randrange(-5, 3100)
        assert (probe in ra) == (probe in a)
        left, joined = rng.sample(sorted(a), min(3, len(a))), [rng.randrange(1, 5000) for _ in range(3)]
        changed = ra.changed(left, joined)
        assert list(changed) == sorted((a - set(left)) | set(joined))
        assert list(ra) == sorted(a)  # the set it came from is as it was


def test_edges() -> None:
    s = RunSet.of([3, 3, 1])
    assert list(s) == [1, 3] and len(s) == 2 and s == RunSet.of([1, 3]) and s != RunSet.of([1])
    assert "3" not in s and 3.0 not in s and -1 not in s and 10**12 not in s
    assert not EMPTY and list(EMPTY) == [] and RunSet.of([]) is EMPTY
    with pytest.raises(ValueError):  # shared by every request: never written in place
        s._bits[0] = True
    with pytest.raises(KeysTooSparse):
        RunSet.of([1, MAX_KEY + 1])
    with pytest.raises(KeysTooSparse):
        s.changed([], [MAX_KEY + 1])
    assert s.nbytes < 100 and RunSet.of([999_999]).nbytes >= 1_000_000
