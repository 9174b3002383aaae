"""Freed memory goes back to the OS after large work (glibc's malloc_trim)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from runicorn_lite.heap import _TRIM, give_memory_back


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux") or _TRIM is None, reason="glibc's malloc_trim")
def test_memory_freed_by_worker_threads_goes_back() -> None:
    """Small objects made and dropped in other threads (their own malloc arenas) stay in the
    process until given back."""

    def churn() -> None:
        junk = [bytearray(600) for _ in range(100_000)]  # ~60 MB in blocks malloc, not pymalloc, holds
        del junk

    give_memory_back()
    before = _rss_kb()
    for _ in range(2):
        t = threading.Thread(target=churn)
        t.start()
        t.join()
    kept = _rss_kb() - before
    give_memory_back()
    after = _rss_kb() - before
    assert after < 10_000, (kept, after)  # back within 10 MB of where it started (kept: ~55 MB)
