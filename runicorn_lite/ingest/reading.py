"""Reading a run for the index: whether it changed since it was indexed (two stats per file), and
what changed (its small files, the new part of its events, its config and environment)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from runicorn_lite import leftovers, rundir
from runicorn_lite.ingest.known import Known
from runicorn_lite.ingest.writer import Prepared
from runicorn_lite.params import flatten_config

log = logging.getLogger("runicorn_lite.ingest")


@dataclass
class Plan:
    """A run that changed, and how its events must be read."""

    loc: rundir.RunLocation
    rel: str
    known: Known | None
    files_sig: str
    events_ino: int | None
    events_size: int
    full: bool
    latest: float | None = None  # the latest mtime of its stamped files (rundir.file_signature)


class Timed:
    """An iterator, and the seconds spent in it (the walk: what periodic rescans are paced by)."""

    def __init__(self, items: Iterator[Plan]) -> None:
        self._items = items
        self.seconds = 0.0

    def __iter__(self) -> Iterator[Plan]:
        return self

    def __next__(self) -> Plan:
        started = time.monotonic()
        try:
            return next(self._items)
        finally:
            self.seconds += time.monotonic() - started


def plan_run(loc: rundir.RunLocation, rel: str, known: Known | None) -> Plan | None:
    """What reading this run takes, or None when it is unchanged (two stats per file)."""
    leftovers.sweep(loc.run_dir, loc.names or ())
    files_sig, events_stat, latest = rundir.file_signature(loc.run_dir, loc.names)
    events_ino = events_stat[0] if events_stat else None
    events_size = events_stat[1] if events_stat else 0
    if (
        known is not None
        and known.same_files(files_sig)
        and known.events_ino == events_ino
        and events_size == known.events_offset
    ):
        return None
    full = (
        known is None or not known.indexed or known.events_ino != events_ino or events_size < known.events_offset
    )
    return Plan(loc, rel, known, files_sig, events_ino, events_size, full, latest)


def prepare_run(plan: Plan) -> Prepared | None:
    """Read the run as planned; None when it holds no run any more. OSError when it vanished or
    is unreadable mid-read."""
    loc, rel, known = plan.loc, plan.rel, plan.known
    info = rundir.read_run(loc, plan.latest)
    if info is None:
        return None
    full = plan.full or known is None or known.run_id(rel) != info.id
    events = None
    if plan.events_ino is not None:
        if full:
            events = rundir.read_events(loc.run_dir / rundir.EVENTS, max_bytes=rundir.EVENTS_WINDOW)
        elif known is not None and plan.events_size > known.events_offset:
            events = rundir.read_events(
                loc.run_dir / rundir.EVENTS, known.events_offset, known.events_last_step,
                max_bytes=rundir.EVENTS_WINDOW,
            )
    if events is not None and events.bad_lines:
        log.warning("%s: %d unreadable line(s) in events.jsonl skipped", rel, events.bad_lines)
    files_changed = known is None or not known.same_files(plan.files_sig) or known.run_id(rel) != info.id
    texts = (info.project, info.name, info.path, info.alias, info.description, " ".join(info.tags), info.id)
    body = "\n".join(x for x in texts if x)
    prepared = Prepared(
        rel=rel,
        info=info,
        files_sig=plan.files_sig,
        files_changed=files_changed,
        events_ino=plan.events_ino,
        events=events,
        full_events=full,
        known=known,
        body=body,
        events_size=plan.events_size,
    )
    if files_changed or full:
        read_documents(prepared)
    return prepared


def read_documents(item: Prepared) -> None:
    """Config (→ params) and environment; what is wrong with them is one warning per read,
    and the rest of the run is indexed all the same."""
    run_dir = item.info.run_dir
    problems = []
    assets, problem = rundir.read_doc(run_dir / rundir.ASSETS)
    if problem:
        problems.append(problem)
    if assets is not None:
        config = assets.get("config")
        item.config = config if isinstance(config, dict) else None
        item.params, param_problems = flatten_config(config)
        problems.extend(param_problems)
    if item.info.environment_available:
        item.environment, problem = rundir.read_doc(run_dir / rundir.ENVIRONMENT)
        if problem:
            problems.append(problem)
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        log.warning("%s: %s%s", item.rel, "; ".join(problems[:5]), more)
