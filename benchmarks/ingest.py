"""``ingest``: cold indexing, the server's start-up scan, a no-change rescan, and live latency.

Live latency: a training process (our SDK, a subprocess) logs one value every ``--interval`` s
and flushes; it reports the wall-clock time just before each ``log()``. This process polls, in
turn, V2 ``metrics/fast`` of that run (``step_range=<next>:``) and its detail (whose ``metrics``
holds the run's metric summaries), and notes when each step becomes visible in each: as a point,
and in the summary (``metrics.accuracy.last_step`` reaches it). Meanwhile ``--readers`` threads
keep V2 list/filter/search queries going against the server.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import (
    WORK,
    OurServer,
    command_line,
    copy_runs,
    drop_index,
    fmt_ms,
    machine_info,
    markdown_table,
    percentile,
    run_measured,
    save_result,
)

STEADY_AFTER_S = 3.0
TRAINER = r"""
import sys, time
import runicorn_lite
root, n, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
run = runicorn_lite.init(project="live_latency", name="trainer", root=root, tags=["live"])
run.set_primary_metric("accuracy", "max")
print("RUN", run.id, flush=True)
time.sleep(1.0)
for step in range(1, n + 1):
    t = time.time()
    run.log({"accuracy": step / n, "loss": 1.0 / step}, step=step)
    run.flush()
    print("LOG", step, repr(t), flush=True)
    time.sleep(interval)
run.finish("finished")
print("DONE", flush=True)
"""


def cold_index(src: Path, quick: bool) -> dict[str, Any]:
    """`runicorn-lite index --rebuild` on a fresh copy, then `index` again with nothing changed."""
    root = WORK / ("ingest-copy-quick" if quick else "ingest-copy")
    copy_runs(src, root)
    subprocess.run(["sync"], check=False)
    out: dict[str, Any] = {}
    for label, extra in (("cold", ["--rebuild"]), ("rescan", [])):
        wall, peak, output = run_measured([sys.executable, "-m", "runicorn_lite", "index", "--root", str(root),
                                           *extra])
        m = re.search(r"(\d+) runs in the index \((\d+) \(re\)indexed\) in ([\d.]+) s", output)
        out[label] = {"wall_s": wall, "internal_s": float(m.group(3)) if m else None, "peak_rss_mb": peak,
                      "runs": int(m.group(1)) if m else None, "reindexed": int(m.group(2)) if m else None}
    return out


def startup_scan(src: Path, quick: bool) -> dict[str, Any]:
    """Server start-up scan from an empty index, then a no-change periodic rescan (via health)."""
    root = WORK / ("ingest-copy-quick" if quick else "ingest-copy")
    drop_index(root)
    # Watcher on (periodic rescans only run with it), rescanning every 2 s.
    with OurServer(root, "--rescan-interval", "2") as server:
        health = server.wait_ready(timeout=900)
        first = {"listening_s": server.listening_s, "ready_s": server.ready_s,
                 "scan_s": health["index"]["last_scan_duration_s"], "runs": health["index"]["runs_in_index"]}
        health2 = server.wait_ready(timeout=120, min_scans=2)
        first["rescan_s"] = health2["index"]["last_scan_duration_s"]
        first["rescan_reindexed"] = health2["index"]["runs_reindexed_last_scan"]
        first["peak_rss_mb"] = server.peak_rss_mb()
    return first


def live_latency(src: Path, events: int, interval: float, readers: int) -> dict[str, Any]:  # noqa: C901, PLR0915 - one measured scenario
    root = src  # the server indexes the corpus; the trainer adds one run (removed afterwards)
    with OurServer(root) as server:  # watcher on (the default)
        server.wait_ready(timeout=900)
        t_ready = time.time()
        stop = threading.Event()
        read_counts = [0] * readers

        def reader(k: int) -> None:
            qs = [{"per_page": 50}, {"status": "finished"}, {"order_by": "best_metric_value"},
                  {"search": "resnet"}, {"project": "nlp_sentiment", "page": 2}]
            with httpx.Client(base_url=server.url, timeout=60) as c:
                i = 0
                while not stop.is_set():
                    c.get("/api/v2/experiments", params=qs[i % len(qs)])
                    i += 1
                    read_counts[k] += 1

        threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(readers)]
        for t in threads:
            t.start()
        trainer = subprocess.Popen([sys.executable, "-c", TRAINER, str(root), str(events), str(interval)],
                                   stdout=subprocess.PIPE, text=True)
        assert trainer.stdout is not None
        logged: dict[int, float] = {}
        seen: dict[int, float] = {}
        seen_summary: dict[int, float] = {}
        run_id = trainer.stdout.readline().split()[1]
        lock = threading.Lock()

        def read_trainer() -> None:
            assert trainer.stdout is not None
            for line in trainer.stdout:
                parts = line.split()
                if parts and parts[0] == "LOG":
                    with lock:
                        logged[int(parts[1])] = float(parts[2])

        threading.Thread(target=read_trainer, daemon=True).start()
        t_start = time.perf_counter()
        with httpx.Client(base_url=server.url, timeout=60) as c:
            next_step, next_summary = 1, 1
            path = f"/api/v2/experiments/{run_id}/metrics/fast"
            detail = f"/api/v2/experiments/{run_id}"
            deadline = time.monotonic() + events * interval + 120
            while (next_step <= events or next_summary <= events) and time.monotonic() < deadline:
                if next_step <= events:
                    r = c.get(path, params={"step_range": f"{next_step}:", "metric_names": "accuracy"})
                    now = time.time()
                    if r.status_code == 200:
                        for row in r.json()["rows"]:
                            s = row["global_step"]
                            if s >= next_step and s not in seen:
                                seen[s] = now
                        while next_step in seen:
                            next_step += 1
                if next_summary <= events:
                    r = c.get(detail)
                    now = time.time()
                    if r.status_code == 200:
                        summary = r.json()["metrics"].get("accuracy") or {}
                        last = summary.get("last_step") or 0
                        while next_summary <= min(last, events):
                            seen_summary[next_summary] = now
                            next_summary += 1
                time.sleep(0.005)
        elapsed = time.perf_counter() - t_start
        stop.set()
        trainer.wait(60)
        for t in threads:
            t.join(10)
        health = server.health()
    # Remove the trainer's run so the corpus stays as generated.
    for d in (root / "runs" / "live_latency").glob("trainer/*"):
        import shutil

        shutil.rmtree(d, ignore_errors=True)
    lat = [seen[s] - logged[s] for s in sorted(seen) if s in logged]
    lat_summary = [seen_summary[s] - logged[s] for s in sorted(seen_summary) if s in logged]
    steady_summary = [seen_summary[s] - logged[s] for s in sorted(seen_summary)
                      if s in logged and logged[s] >= t_ready + STEADY_AFTER_S]
    # Events logged in the first seconds after index.ready can wait for the watcher to start
    # (see README); "steady" leaves them out.
    steady = [seen[s] - logged[s] for s in sorted(seen) if s in logged and logged[s] >= t_ready + STEADY_AFTER_S]
    return {"latencies_ms": [round(x * 1000, 2) for x in lat], "events": len(lat),
            "steady_events": len(steady), "steady_p50_ms": percentile(steady, 50) * 1000,
            "steady_p95_ms": percentile(steady, 95) * 1000,
            "p50_ms": percentile(lat, 50) * 1000, "p95_ms": percentile(lat, 95) * 1000,
            "max_ms": max(lat) * 1000 if lat else None, "reads_per_s": sum(read_counts) / elapsed,
            "summary": {"events": len(lat_summary), "p50_ms": percentile(lat_summary, 50) * 1000,
                        "p95_ms": percentile(lat_summary, 95) * 1000,
                        "max_ms": max(lat_summary) * 1000 if lat_summary else None,
                        "steady_events": len(steady_summary), "steady_p50_ms": percentile(steady_summary, 50) * 1000,
                        "steady_p95_ms": percentile(steady_summary, 95) * 1000},
            "readers": readers, "interval_s": interval, "watcher": health["index"]["watcher"],
            "server_last_ingest_lag_s": health["index"]["last_ingest_lag_s"]}


def render(res: dict[str, Any]) -> str:
    c, s, live = res["cold"], res["startup"], res["live"]
    runs, points = res["runs"], res["points"]
    cold_s = c["cold"]["internal_s"] or c["cold"]["wall_s"]
    summ = live["summary"]
    rows = [
        ["Cold index (`index --rebuild`, in-process time)", f"{cold_s:.2f} s",
         f"{runs / cold_s:,.0f} runs/s, {points / cold_s:,.0f} points/s", "< 15 s", _ok(cold_s < 15)],
        ["… same, whole command wall time (incl. Python start)", f"{c['cold']['wall_s']:.2f} s",
         f"peak RSS {c['cold']['peak_rss_mb']:.0f} MB", "", ""],
        ["Server start-up scan (health `last_scan_duration_s`)", f"{s['scan_s']:.2f} s",
         f"{runs / s['scan_s']:,.0f} runs/s, {points / s['scan_s']:,.0f} points/s", "< 15 s", _ok(s["scan_s"] < 15)],
        ["… server start → listening / → `index.ready`", f"{s['listening_s']:.2f} s / {s['ready_s']:.2f} s",
         "", "", ""],
        ["No-change rescan (`index`, in-process)", f"{c['rescan']['internal_s']:.3f} s",
         f"{c['rescan']['reindexed']} runs re-read", "< 1 s", _ok(c["rescan"]["internal_s"] < 1)],
        ["No-change rescan (server periodic rescan)", f"{s['rescan_s']:.3f} s",
         f"{s['rescan_reindexed']} runs re-read", "< 1 s", _ok(s["rescan_s"] < 1)],
        [f"Live latency log()+flush → visible in V2 metrics/fast (p50 / p95 / max, {live['events']} events)",
         f"{fmt_ms(live['p50_ms'])} / {fmt_ms(live['p95_ms'])} / {fmt_ms(live['max_ms'])}",
         f"under {live['readers']} reader threads ({live['reads_per_s']:.0f} V2 list req/s), watcher {live['watcher']}",
         "p95 < 1 s", _ok(live["p95_ms"] < 1000)],
        [f"… steady state: events logged ≥ {STEADY_AFTER_S:.0f} s after `index.ready`"
         f" (p50 / p95, {live['steady_events']} events)",
         f"{fmt_ms(live['steady_p50_ms'])} / {fmt_ms(live['steady_p95_ms'])}", "", "p95 < 1 s",
         _ok(live["steady_p95_ms"] < 1000) if live["steady_events"] else "n/a"],
        [f"Live latency log()+flush → summary visible in the V2 detail's `metrics` (p50 / p95 / max,"
         f" {summ['events']} events)",
         f"{fmt_ms(summ['p50_ms'])} / {fmt_ms(summ['p95_ms'])} / {fmt_ms(summ['max_ms'])}",
         "`metrics.accuracy.last_step` reaches the step; same readers", "p95 < 1 s", _ok(summ["p95_ms"] < 1000)],
        [f"… steady state (p50 / p95, {summ['steady_events']} events)",
         f"{fmt_ms(summ['steady_p50_ms'])} / {fmt_ms(summ['steady_p95_ms'])}", "", "p95 < 1 s",
         _ok(summ["steady_p95_ms"] < 1000) if summ["steady_events"] else "n/a"],
    ]
    return (f"Corpus: {runs:,} runs, {points:,} metric points. Server peak RSS during the start-up scan "
            f"{s['peak_rss_mb']:.0f} MB.\n\n"
            + markdown_table(["Measure", "Result", "Rate / context", "Target", "Met"], rows))


def _ok(b: bool) -> str:
    return "yes" if b else "**no**"


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.events, args.interval, args.readers = 10, 0.05, 1
    src = Path(args.root).resolve()
    runs = sum(1 for _ in (src / "runs").glob("*/*/*/meta.json"))
    points = 0
    for p in list((src / "runs").glob("*/*/*/events.jsonl"))[:200]:
        with open(p, "rb") as fh:
            points += sum(1 for _ in fh)
    sample = min(200, runs) or 1
    points = int(points / sample * runs * 3)  # 3 metrics a line in our corpus
    t0 = time.perf_counter()
    res: dict[str, Any] = {"runs": runs, "points": points}
    res["cold"] = cold_index(src, args.quick)
    print(f"  cold index: {res['cold']}", flush=True)
    res["startup"] = startup_scan(src, args.quick)
    print(f"  start-up scan: {res['startup']}", flush=True)
    res["live"] = live_latency(src, args.events, args.interval, args.readers)
    print(f"  live: {res['live']}", flush=True)
    md = f"Machine: {machine_info()}\n\nCommand: `{command_line()}`\n\n" + render(res)
    path = save_result("ingest-quick" if args.quick else "ingest", res, md)
    print(md)
    print(f"\n(saved to {path}; {time.perf_counter() - t0:.1f} s)")
    return res
