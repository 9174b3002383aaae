"""Temporary files that an interrupted atomic write left in a run directory.

Every file of a run is written as a temp file beside it (``.<name>.<8 random>.tmp``, as
``tempfile.mkstemp`` names it), then renamed over it. A process killed between the two (a
``kill -9`` during a delete, say) leaves the temp file behind for good: nothing would ever
rename it. The ingester removes such leftovers when it sees them in a run directory's listing,
once they are older than any write in progress could be.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("runicorn_lite.ingest")

# What rundir's atomic writers name their temp files: the target's name (at most 50 characters
# of it), then mkstemp's eight random characters.
LEFTOVER = re.compile(r"^\.[^/]{1,50}\.[a-z0-9_]{8}\.tmp$")
# A temp file younger than this may belong to a write in progress.
MIN_AGE_S = 60.0


def sweep(run_dir: Path, names: Iterable[str], now: float | None = None) -> list[str]:
    """Remove the leftovers among ``names`` (the directory's listing); returns the names removed."""
    listing = "/".join(names)  # one C-level search: this runs for every run on every rescan
    if ".tmp" not in listing:
        return []
    candidates = [n for n in listing.split("/") if LEFTOVER.match(n)]
    now = time.time() if now is None else now
    removed = []
    for name in candidates:
        path = os.path.join(run_dir, name)
        try:
            if now - os.lstat(path).st_mtime < MIN_AGE_S:
                continue
            os.unlink(path)
        except OSError:  # gone meanwhile, or not ours to remove (read-only root): left as it is
            continue
        removed.append(name)
    if removed:
        log.info("%s: removed %d temp file(s) an interrupted write left: %s", run_dir, len(removed), ", ".join(removed))
    return removed
