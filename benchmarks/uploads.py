"""``uploads``: logging to a team server (team-server.md §4, §5), over loopback.

1. Latency: a script logs one point (``log()`` alone: the SDK flushes within 0.2 s, the uploader
   looks every 0.1 s, the server's watcher indexes within its debounce); the time until the
   server's V2 detail shows that step.
2. Throughput: one uploader (the same ``Mirror`` the SDK's thread and ``sync`` use) sending a run
   written beforehand: points a minute, and until the server's index holds them all.
3. The SDK's per-``log()`` cost with an uploader running against the cost without, in
   alternating rounds in this process.
4. ``--runs`` runs (default 20) logging and uploading at once, in threads: points lost and
   points duplicated on the server (its V2 point counts and its copies of ``events.jsonl``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import runicorn_lite
from benchmarks.common import (
    WORK,
    OurServer,
    RawClient,
    command_line,
    machine_info,
    markdown_table,
    percentile,
    save_result,
)
from runicorn_lite.db import Database
from runicorn_lite.optimization.keys import create_key
from runicorn_lite.optimization.schema import MIGRATIONS
from runicorn_lite.uploader import Mirror, client_for

PROJECT = "bench_uploads"
METRICS = 4  # values per logged step


def _key(store: Path) -> str:
    db = Database(store / "primary.sqlite", MIGRATIONS, precious=True)
    try:
        return create_key(db, PROJECT)[0]
    finally:
        db.close()


def _last_step(client: RawClient, run_id: str) -> int | None:
    response = client.get(f"/api/v2/experiments/{run_id}/metrics/fast", {"downsample": 2})
    if response.status_code != 200:
        return None
    steps = [row["global_step"] for row in response.json()["rows"]]
    return max(steps) if steps else None


def _points(client: RawClient, run_id: str) -> int:
    response = client.get(f"/api/v2/experiments/{run_id}/metrics/fast", {"downsample": 2})
    return int(response.json()["total_points"]) if response.status_code == 200 else 0


def _latency(url: str, key: str, local: Path, n: int, interval: float) -> list[float]:
    samples = []
    run = runicorn_lite.init(project=PROJECT, name="latency", root=local, server=url, api_key=key)
    with RawClient(url) as client:
        for step in range(1, n + 1):
            time.sleep(interval)
            start = time.perf_counter()
            run.log({"loss": 1 / step}, step=step)
            while (_last_step(client, run.id) or 0) < step:
                time.sleep(0.005)
            samples.append(time.perf_counter() - start)
    run.finish()
    return samples


def _throughput(url: str, key: str, local: Path, steps: int) -> dict[str, float]:
    run = runicorn_lite.init(project=PROJECT, name="throughput", root=local)  # written first, no server
    for step in range(steps):
        run.log({"loss": 1 / (step + 1), "acc": step / steps, "lr": 0.001, "grad_norm": 1.5}, step=step)
    run.finish()
    size = (run.run_dir / "events.jsonl").stat().st_size
    with client_for(url, key, timeout=60) as client:
        start = time.perf_counter()
        Mirror(client, local, run.run_dir).push()
        sent_s = time.perf_counter() - start
    with RawClient(url) as raw:
        while _points(raw, run.id) < steps:
            time.sleep(0.05)
    indexed_s = time.perf_counter() - start
    points = steps * METRICS
    return {"points": points, "bytes": size, "upload_s": sent_s, "indexed_s": indexed_s,
            "points_per_min": points / sent_s * 60, "indexed_points_per_min": points / indexed_s * 60}


def _log_cost(url: str, key: str, local: Path, rounds: int, per_round: int) -> dict[str, Any]:
    # The cost of a call is a round's whole time over its calls (the SDK's flushes and the
    # uploader's share of the GIL included), per round; the median of the rounds is compared.
    means: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(rounds):
        for label in ("without", "with"):
            extra = {"server": url, "api_key": key} if label == "with" else {}
            run = runicorn_lite.init(project=PROJECT, name=f"cost-{label}", root=local, **extra)
            start = time.perf_counter()
            for step in range(per_round):
                run.log({"loss": 0.5, "acc": 0.5, "lr": 0.001, "grad_norm": 1.0}, step=step)
            means[label].append((time.perf_counter() - start) / per_round * 1e6)
            run.finish()
    ratio = statistics.median(means["with"]) / statistics.median(means["without"])
    return {"median_us": {k: statistics.median(v) for k, v in means.items()}, "round_means_us": means,
            "ratio": ratio}


def _concurrent(url: str, key: str, local: Path, runs: int, steps: int, server_root: Path) -> dict[str, int]:
    done: list[Any] = []

    def train(i: int) -> None:
        run = runicorn_lite.init(project=PROJECT, name=f"parallel{i}", root=local, server=url, api_key=key,
                                 upload_timeout=120)
        for step in range(steps):
            run.log({"loss": 1 / (step + 1), "worker": i}, step=step)
        run.finish()
        done.append(run)

    threads = [threading.Thread(target=train, args=(i,)) for i in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 60
    with RawClient(url) as raw:
        while time.monotonic() < deadline and any(_points(raw, r.id) < steps for r in done):
            time.sleep(0.1)
        counts = [_points(raw, r.id) for r in done]
    lines = [len((server_root / r.run_dir.relative_to(local) / "events.jsonl").read_bytes().splitlines())
             for r in done]
    return {"runs": len(done), "steps_each": steps, "lost": sum(max(0, steps - c) for c in counts),
            "duplicated": sum(max(0, c - steps) for c in counts) + sum(max(0, n - steps) for n in lines)}


def add_parser(sub: Any) -> None:
    u = sub.add_parser("uploads", help="logging to a team server: latency, throughput, log() cost, concurrent runs")
    u.add_argument("--points", type=int, default=200, help="points timed for the latency")
    u.add_argument("--interval", type=float, default=0.05, help="seconds between timed points")
    u.add_argument("--steps", type=int, default=300_000, help="steps (x4 metrics) of the throughput run")
    u.add_argument("--rounds", type=int, default=5, help="alternating rounds of the log() cost")
    u.add_argument("--per-round", type=int, default=100_000, help="log() calls per round")
    u.add_argument("--runs", type=int, default=20, help="runs uploading at once")
    u.add_argument("--run-steps", type=int, default=2000, help="steps of each concurrent run")
    u.add_argument("--quick", action="store_true", help="tiny sizes")


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.points, args.steps, args.rounds, args.per_round, args.runs, args.run_steps = 10, 2000, 2, 2000, 4, 50
    base = WORK / "uploads"
    shutil.rmtree(base, ignore_errors=True)
    server_root, store, local = base / "server", base / "store", base / "gpu-box"
    server_root.mkdir(parents=True)
    payload: dict[str, Any] = {}
    try:
        with OurServer(server_root, "--index-dir", str(store)) as server:
            server.wait_ready()
            key = _key(store)
            lat = _latency(server.url, key, local, args.points, args.interval)
            payload["latency"] = {"p50_ms": percentile(lat, 50) * 1000, "p95_ms": percentile(lat, 95) * 1000,
                                  "max_ms": max(lat) * 1000, "n": len(lat)}
            payload["throughput"] = _throughput(server.url, key, local, args.steps)
            payload["log_cost"] = _log_cost(server.url, key, local, args.rounds, args.per_round)
            payload["concurrent"] = _concurrent(server.url, key, local, args.runs, args.run_steps, server_root)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    lat, thr, cost, conc = payload["latency"], payload["throughput"], payload["log_cost"], payload["concurrent"]
    markdown = "\n".join([
        machine_info(), "", f"`{command_line()}`", "",
        markdown_table(["measure", "result", "target"], [
            ["log() → visible on the server (V2), p50 / p95 / max",
             f"{lat['p50_ms']:.0f} / {lat['p95_ms']:.0f} / {lat['max_ms']:.0f} ms (n={lat['n']})", "p95 ≤ 1 s"],
            ["one uploader, points a minute (sent / indexed)",
             f"{thr['points_per_min'] / 1e6:.1f}M / {thr['indexed_points_per_min'] / 1e6:.1f}M "
             f"({thr['points']:,} points, {thr['bytes'] / 1e6:.1f} MB in {thr['upload_s']:.2f} s)", "≥ 1M"],
            ["per-log() cost with / without an uploader (mean of a round, median of rounds)",
             f"{cost['median_us']['with']:.2f} / {cost['median_us']['without']:.2f} µs = {cost['ratio']:.2f}x",
             "≤ 1.5x"],
            [f"{conc['runs']} runs uploading at once ({conc['steps_each']:,} steps each): lost / duplicated",
             f"{conc['lost']} / {conc['duplicated']}", "0 / 0"],
        ]),
    ])
    print(markdown)
    save_result("uploads" + ("-quick" if args.quick else ""), payload, markdown)
    return payload
