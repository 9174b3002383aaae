"""``runicorn-lite demo`` writes runs that look like real ones: started over days, taking real
time (their events spread over it), a few still running, and still running once indexed."""

from __future__ import annotations

import random
import time
from pathlib import Path

from support import open_index, rows

from runicorn_lite import rundir
from runicorn_lite.demo import DAY, write_demo_runs


def test_demo_runs_are_spread_over_days_with_real_durations(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_demo_runs(root, runs=20, steps=30, rng=random.Random(3))
    infos = [i for i in (rundir.read_run(loc) for loc in rundir.iter_runs(root)) if i is not None]
    assert len(infos) == 20
    now = time.time()
    created = sorted(i.created_at for i in infos)
    assert created[-1] - created[0] > 7 * DAY and created[-1] < now
    ended = [i for i in infos if i.status != "running"]
    assert all(i.ended_at is not None and 600 < i.ended_at - i.created_at < DAY for i in ended)
    assert len({round(i.ended_at - i.created_at) for i in ended}) > 10  # not all alike
    running = [i for i in infos if i.status == "running"]
    assert len(running) == 1 and now - running[0].created_at < 3 * 3600
    # The events of a run spread over its time, as a training loop's would.
    longest = max(ended, key=lambda i: i.ended_at - i.created_at)  # type: ignore[operator]
    events = rundir.read_events(longest.run_dir / rundir.EVENTS)
    times = sorted(events.times.values())
    assert times[0] >= longest.created_at and times[-1] <= longest.ended_at  # type: ignore[operator]
    assert times[-1] - times[0] > 0.5 * (longest.ended_at - longest.created_at)  # type: ignore[operator]
    # The running one trains on another machine: this host's check for dead processes leaves it running.
    db, indexer = open_index(root)
    try:
        indexer.scan()
        indexer.check_live_runs()
        assert rows(db, "SELECT count(*) FROM experiments WHERE status = 'running'") == [(1,)]
    finally:
        db.close()
