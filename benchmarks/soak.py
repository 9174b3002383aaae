"""``soak``: one server under a steady mixed load for N minutes; nothing may fail, leak or get lost.

- training writers: processes that log through our SDK (3 metrics a step, a new run every few
  hundred steps), each counting what it logged;
- API readers: threads asking V2 lists, searches, details and curves and V1 lists;
- SSE clients: connections to ``/api/v2/events``, only when the server answers it with an event
  stream (probed at the start);
- optimization writers: threads creating runs, posting iterations and completing runs with a key.

Reported: requests by kind, every non-2xx status (5xx must be 0), latency, the server's RSS
sampled over time (it must stay flat), and at the end every logged point is checked three ways:
what the writers logged, what the files hold, what the index answers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import (
    WORK,
    OurServer,
    command_line,
    machine_info,
    markdown_table,
    percentile,
    rss_mb,
    save_result,
)

OPT = "/api/iris/optimization"
# A writer logs one step (3 metrics) per this many seconds, and starts a new run after RUN_STEPS.
STEP_INTERVAL_S = 0.02
RUN_STEPS = 400
RSS_SAMPLE_S = 5.0
# Seconds an optimization writer waits between runs (each run: 2 writes, 10 iterations).
OPT_CYCLE_S = 1.0

WRITER = r"""
import json, sys, time
import runicorn_lite
root, index, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
interval, run_steps = float(sys.argv[4]), int(sys.argv[5])
deadline = time.monotonic() + seconds
logged = {}
n = 0
while time.monotonic() < deadline:
    n += 1
    run = runicorn_lite.init(project=f"soak{index % 4}", name=f"writer{index}", root=root,
                             tags=["soak", f"w{index}"], description=f"writer {index} run {n}")
    run.set_primary_metric("acc", mode="max")
    steps = 0
    for step in range(1, run_steps + 1):
        run.log({"loss": 1.0 / step, "acc": step / run_steps, "lr": 0.001}, step=step)
        steps = step
        time.sleep(interval)
        if time.monotonic() >= deadline:
            break
    run.finish()
    logged[run.id] = steps * 3
print(json.dumps(logged))
"""


def add_parser(sub: Any) -> None:
    s = sub.add_parser("soak", help="a server under writers, readers, SSE clients and optimization writers")
    s.add_argument("--root", type=Path, default=WORK / "soak-root", help="a new, empty data root (emptied first)")
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--write-minutes", type=float, default=None,
                   help="training and optimization writers stop after this many minutes while readers and "
                        "SSE clients go on to --minutes: a read-only phase in which the stores no longer grow "
                        "(default: write all along)")
    s.add_argument("--writers", type=int, default=8, help="training processes logging through the SDK")
    s.add_argument("--readers", type=int, default=4, help="API reader threads")
    s.add_argument("--sse", type=int, default=20, help="SSE clients of /api/v2/events (when it exists)")
    s.add_argument("--opt-writers", type=int, default=2, help="optimization API writer threads")
    s.add_argument("--quick", action="store_true", help="12 seconds, 2 writers, 1 reader, 2 SSE clients")


class Tally:
    """Requests by kind: count, statuses, latencies (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.latency: dict[str, list[float]] = {}
        self.errors: Counter[str] = Counter()

    def add(self, kind: str, status: int, seconds: float) -> None:
        with self.lock:
            self.count[kind] += 1
            self.statuses[(kind, status)] += 1
            self.latency.setdefault(kind, []).append(seconds)

    def error(self, kind: str, exc: Exception) -> None:
        with self.lock:
            self.errors[f"{kind}: {type(exc).__name__}"] += 1


def _timed(
    tally: Tally, kind: str, client: httpx.Client, method: str, url: str, **kwargs: Any
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        tally.error(kind, exc)
        return None
    tally.add(kind, response.status_code, time.perf_counter() - started)
    return response


def _reader(url: str, stop: threading.Event, tally: Tally, seed: int) -> None:
    ids: list[str] = []
    i = seed
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            i += 1
            pick = i % 6
            if pick == 0 or not ids:
                r = _timed(tally, "v2 list", http, "GET", "/api/v2/experiments",
                           params={"per_page": 50, "order_by": "created_at"})
                if r is not None and r.status_code == 200:
                    ids = [e["id"] for e in r.json()["experiments"]] or ids
            elif pick == 1:
                _timed(tally, "v2 search", http, "GET", "/api/v2/experiments", params={"search": f"writer {i % 8}"})
            elif pick == 2:
                _timed(tally, "v2 detail", http, "GET", f"/api/v2/experiments/{ids[i % len(ids)]}")
            elif pick == 3:
                _timed(tally, "v2 metrics", http, "GET", f"/api/v2/experiments/{ids[i % len(ids)]}/metrics/fast",
                       params={"downsample": 200})
            elif pick == 4:
                _timed(tally, "v2 analytics", http, "GET", "/api/v2/analytics/summary")
            else:
                _timed(tally, "v1 list", http, "GET", "/api/runs")
            stop.wait(0.02)


def _sse_client(url: str, stop: threading.Event, tally: Tally, events: Counter[str]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=60)) as http, \
                    http.stream("GET", "/api/v2/events") as response:
                tally.add("sse connect", response.status_code, time.perf_counter() - started)
                if response.status_code != 200:
                    stop.wait(1)
                    continue
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        with tally.lock:
                            events["data"] += 1
                    if stop.is_set():
                        break
        except httpx.HTTPError as exc:
            if not stop.is_set():
                tally.error("sse", exc)
                stop.wait(1)


def _sse_available(url: str) -> bool:
    try:
        with httpx.Client(base_url=url, timeout=5) as http, http.stream("GET", "/api/v2/events") as response:
            return response.status_code == 200 and response.headers.get("content-type", "").startswith(
                "text/event-stream")
    except httpx.HTTPError:
        return False


def _opt_writer(url: str, key: str, stop: threading.Event, tally: Tally, created: Counter[str]) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    n = 0
    with httpx.Client(base_url=url + OPT, timeout=30, headers=headers) as http:
        while not stop.is_set():
            n += 1
            r = _timed(tally, "opt create", http, "POST", "/runs",
                       json={"run_name": f"soak {n}", "optimizer_type": "bayesian", "config": {"lr": 0.01}})
            if r is None or r.status_code != 201:
                stop.wait(0.5)
                continue
            run_id = r.json()["run"]["id"]
            for it in range(1, 11):
                _timed(tally, "opt iteration", http, "POST", f"/runs/{run_id}/iterations",
                       json={"iteration_number": it, "params": {"lr": 0.01 * it}, "score": it / 10})
            _timed(tally, "opt patch", http, "PATCH", f"/runs/{run_id}",
                   json={"status": "completed", "final_score": 1.0, "duration_ms": 1000})
            _timed(tally, "opt list", http, "GET", "/runs", params={"limit": 10})
            with tally.lock:
                created["runs"] += 1
            # Paced under the default per-project limits (500 writes, 2,000 iterations a minute,
            # shared by the writers): the soak measures the server, not its 429s.
            stop.wait(OPT_CYCLE_S)


def _check_points(url: str, root: Path, logged: dict[str, int]) -> dict[str, Any]:
    """Every logged point in the files and in the index, run by run."""
    from runicorn_lite import rundir

    files_points: dict[str, int] = {}
    for loc in rundir.iter_runs(root):
        info = rundir.read_run(loc)
        if info is None or not info.project.startswith("soak"):
            continue
        chunk = rundir.read_events(loc.run_dir / rundir.EVENTS)
        files_points[info.id] = sum(len(series) for series in chunk.points.values())
    index_points: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for run_id in logged:
            rows = http.get(f"/api/v2/experiments/{run_id}/metrics/fast").json().get("rows", [])
            index_points[run_id] = sum(
                1 for row in rows for name, value in row.items() if name != "global_step" and value is not None
            )
    missing_files = {r: (n, files_points.get(r)) for r, n in logged.items() if files_points.get(r) != n}
    missing_index = {r: (n, index_points.get(r)) for r, n in logged.items() if index_points.get(r) != n}
    return {
        "runs": len(logged),
        "points_logged": sum(logged.values()),
        "points_in_files": sum(files_points.get(r, 0) for r in logged),
        "points_in_index": sum(index_points.get(r, 0) for r in logged),
        "runs_differing_files": len(missing_files),
        "runs_differing_index": len(missing_index),
        "examples": dict(list(missing_index.items())[:5]),
    }


def main(args: argparse.Namespace) -> None:  # noqa: PLR0915 - one measured scenario, top to bottom
    if args.quick:
        args.minutes, args.writers, args.readers, args.sse, args.opt_writers = 0.2, 2, 1, 2, 1
    seconds = args.minutes * 60
    write_seconds = seconds if args.write_minutes is None else min(seconds, args.write_minutes * 60)
    root: Path = args.root
    if root.exists():
        import shutil

        shutil.rmtree(root)
    root.mkdir(parents=True)
    key = subprocess.run(
        [sys.executable, "-m", "runicorn_lite", "keys", "create", "--root", str(root), "--project", "soak"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    server = OurServer(root)
    server.wait_ready()
    url = server.url
    stop = threading.Event()
    stop_writes = threading.Event()
    tally = Tally()
    sse_events: Counter[str] = Counter()
    opt_created: Counter[str] = Counter()
    sse_on = args.sse > 0 and _sse_available(url)
    rss: list[tuple[float, float]] = []
    started = time.monotonic()

    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(i), str(write_seconds), str(STEP_INTERVAL_S), str(RUN_STEPS)],
            stdout=subprocess.PIPE, text=True,
        )
        for i in range(args.writers)
    ]
    threads = [threading.Thread(target=_reader, args=(url, stop, tally, i * 1000), daemon=True)
               for i in range(args.readers)]
    threads += [threading.Thread(target=_opt_writer, args=(url, key, stop_writes, tally, opt_created), daemon=True)
                for _ in range(args.opt_writers)]
    if sse_on:
        threads += [threading.Thread(target=_sse_client, args=(url, stop, tally, sse_events), daemon=True)
                    for _ in range(args.sse)]
    for t in threads:
        t.start()
    while time.monotonic() - started < seconds:
        if time.monotonic() - started >= write_seconds:
            stop_writes.set()
        value = rss_mb(server.proc.pid)
        if value is not None:
            rss.append((time.monotonic() - started, value))
        time.sleep(min(RSS_SAMPLE_S, max(0.1, seconds - (time.monotonic() - started))))
    logged: dict[str, int] = {}
    for proc in writers:
        out, _ = proc.communicate(timeout=120)
        logged.update(json.loads(out.strip().splitlines()[-1]))
    # Let the watcher catch up on the last appends (a change is seen within well under a second).
    time.sleep(3)
    stop_writes.set()
    stop.set()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - started
    points = _check_points(url, root, logged)
    health = httpx.get(url + "/api/health", timeout=10).json()
    server.stop()

    total = sum(tally.count.values())
    five_xx = sum(n for (kind, status), n in tally.statuses.items() if status >= 500)
    other = {f"{kind} {status}": n for (kind, status), n in sorted(tally.statuses.items()) if status >= 300}
    rows = []
    for kind in sorted(tally.count):
        lat = tally.latency[kind]
        rows.append([kind, tally.count[kind], f"{percentile(lat, 50) * 1000:.1f}", f"{percentile(lat, 99) * 1000:.1f}"])
    rss_rows = _rss_rows(rss)
    first = statistics.median(v for t, v in rss if t <= max(60.0, seconds * 0.1)) if rss else 0.0
    last = statistics.median(v for t, v in rss if t >= seconds - max(60.0, seconds * 0.1)) if rss else 0.0
    half = [(t, v) for t, v in rss if t >= seconds / 2]
    slope = _slope_mb_per_min(half)
    # The read-only phase, from a minute after the writers stopped (the last appends ingested).
    quiet = [(t, v) for t, v in rss if t >= write_seconds + 60] if write_seconds < seconds else []
    quiet_slope = _slope_mb_per_min(quiet)
    payload = {
        "machine": machine_info(), "command": command_line(), "seconds": round(elapsed, 1),
        "writers": args.writers, "readers": args.readers, "sse_clients": args.sse if sse_on else 0,
        "opt_writers": args.opt_writers, "requests": total, "five_xx": five_xx, "non_2xx": other,
        "client_errors": dict(tally.errors), "sse_events": sse_events["data"], "opt_runs": opt_created["runs"],
        "rss_mb": rss, "rss_first_mb": first, "rss_last_mb": last, "rss_slope_second_half_mb_per_min": slope,
        "write_seconds": write_seconds, "rss_slope_read_only_mb_per_min": quiet_slope if quiet else None,
        "points": points,
        "health_status": health.get("status"), "index_errors": health.get("index", {}).get("errors"),
    }
    markdown = "\n".join([
        f"### soak: {args.minutes:g} min ({write_seconds / 60:g} writing), {args.writers} writers, "
        f"{args.readers} readers, "
        f"{args.sse if sse_on else 0} SSE clients{'' if sse_on else ' (no /api/v2/events yet)'}, "
        f"{args.opt_writers} optimization writers",
        "",
        f"{machine_info()}",
        f"`{command_line()}`",
        "",
        markdown_table(["kind", "requests", "p50 ms", "p99 ms"], rows),
        "",
        f"- requests: {total:,}; 5xx: {five_xx}; other non-2xx: {other or 'none'}; client errors: "
        f"{dict(tally.errors) or 'none'}",
        f"- SSE events received: {sse_events['data']:,}" if sse_on else "- SSE: endpoint not answering, skipped",
        f"- optimization runs written: {opt_created['runs']:,} (10 iterations each)",
        f"- RSS first {first:.0f} MB (median of the first minute) → last {last:.0f} MB (median of the last "
        f"minute); over the second half it moves {slope:+.2f} MB a minute; samples every {RSS_SAMPLE_S:g} s:",
        "",
        markdown_table(["t (s)", "RSS (MB)"], rss_rows),
        "",
        *([f"- writers stopped at {write_seconds:.0f} s; from a minute later to the end (read-only: "
           f"{len(quiet)} samples) RSS went {min(v for _, v in quiet):.0f}–{max(v for _, v in quiet):.0f} MB, "
           f"{quiet_slope:+.2f} MB a minute"] if quiet else []),
        f"- points: {points['points_logged']:,} logged by {points['runs']} runs; {points['points_in_files']:,} in the "
        f"files; {points['points_in_index']:,} in the index; runs differing: files {points['runs_differing_files']}, "
        f"index {points['runs_differing_index']}",
        f"- health at the end: {health.get('status')}; index errors: {health.get('index', {}).get('errors')}",
    ])
    path = save_result("soak", payload, markdown)
    print(markdown)
    print(f"\nsaved {path}")
    if five_xx or points["runs_differing_files"] or points["runs_differing_index"]:
        sys.exit(1)


def _rss_rows(rss: list[tuple[float, float]]) -> list[list[str]]:
    """About a dozen rows, evenly spaced, first and last included."""
    if not rss:
        return []
    step = max(1, len(rss) // 12)
    picked = rss[::step]
    if picked[-1] != rss[-1]:
        picked.append(rss[-1])
    return [[f"{t:.0f}", f"{v:.0f}"] for t, v in picked]


def _slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS against time, in MB per minute (0 for fewer than 2 samples)."""
    if len(samples) < 2:
        return 0.0
    mean_t = statistics.fmean(t for t, _ in samples)
    mean_v = statistics.fmean(v for _, v in samples)
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if not var:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / var * 60
