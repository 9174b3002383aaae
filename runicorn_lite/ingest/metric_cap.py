"""At most MAX_METRICS metric names per run: a script that logs a new name per step (or one
event with 200,000 keys) would otherwise make every view of that run as large as its names.

The first names a run logged are kept (in the order it first logged them); points of the names
past the cap are left out of the index, with one warning per run in the log. Like params, this
is a choice of what the index keeps: the run's files keep everything.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import OrderedDict

from runicorn_lite import rundir

log = logging.getLogger("runicorn_lite.ingest")

MAX_METRICS = 1000
_WARNED_MAX = 10_000  # runs remembered as warned (the oldest forgotten first)
_warned: OrderedDict[str, None] = OrderedDict()


def cap_metric_names(conn: sqlite3.Connection, pk: int | None, run: str, events: rundir.EventsChunk | None,
                     whole: bool) -> int:
    """Drop from ``events`` the metrics past the run's cap (``whole``: the read replaces every
    series of run ``pk``; else it appends to what the index holds). Returns how many were dropped."""
    if events is None or not events.points:
        return 0
    names = list(events.points)
    if whole or pk is None:
        keep = names[:MAX_METRICS]
    else:
        held = conn.execute("SELECT count(*) FROM metric_summaries WHERE exp_pk = ?", (pk,)).fetchone()[0]
        if held + len(names) <= MAX_METRICS:
            return 0
        known = {r[0] for r in conn.execute("SELECT metric FROM metric_summaries WHERE exp_pk = ?", (pk,))}
        fresh = [n for n in names if n not in known]
        keep = [n for n in names if n in known] + fresh[: max(0, MAX_METRICS - held)]
    dropped = len(names) - len(keep)
    if dropped:
        kept = set(keep)
        for name in names:
            if name not in kept:
                del events.points[name]
        if run not in _warned:
            _warned[run] = None
            if len(_warned) > _WARNED_MAX:
                _warned.popitem(last=False)
            log.warning("%s logs more than %d metric names: %d dropped from the index (the first %d are kept;"
                        " the files keep every one)", run, MAX_METRICS, dropped, MAX_METRICS)
    return dropped
