"""``export``: the CSV exports against a generated corpus (configs, 3 metrics per run).

``experiments.csv`` of every run (plain, sorted by a param, filtered), rows per second over HTTP
with a raw keep-alive client, and the server's peak RSS before and after; ``--big-root`` adds a
second corpus (100k runs) for the memory target. ``metrics.csv`` of one long run (written here
through the SDK) against ``metrics/fast`` of the same points. A slow reader is timed too: the
server must not read ahead of it.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from benchmarks.common import (
    WORK,
    OurServer,
    command_line,
    machine_info,
    markdown_table,
    save_result,
    summarize,
)

QUERIES = {
    "every run, newest first": "",
    "every run by params.lr": "order_by=params.lr&order_desc=false",
    "filter params.lr < 0.01, by metrics.accuracy.max": "filter=" + quote("params.lr < 0.01")
    + "&order_by=metrics.accuracy.max",
}


def _get(conn: http.client.HTTPConnection, path: str, slow_s: float = 0.0) -> tuple[int, int, bytes]:
    """(status, body bytes, first line) of one GET, read in 64 KB pieces (``slow_s`` between)."""
    conn.request("GET", path)
    response = conn.getresponse()
    total, head = 0, b""
    while True:
        chunk = response.read(1 << 16)
        if not chunk:
            break
        if not head:
            head = chunk.split(b"\r\n", 1)[0]
        total += len(chunk)
        if slow_s:
            time.sleep(slow_s)
    return response.status, total, head


def _rows(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, (response.status, body[:300])
    return body.count(b"\r\n") - 1  # the header row; quoted line breaks are rare in this corpus


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used: what the server spent, whatever else the
    machine was doing meanwhile."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _export_table(server: OurServer, reps: int, label: str) -> tuple[list[list[Any]], dict[str, Any]]:
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    rows, results = [], {}
    rss_start = server.peak_rss_mb()
    for name, query in QUERIES.items():
        path = "/api/v2/experiments.csv" + (f"?{query}" if query else "")
        n = _rows(conn, path)  # warm-up, and the row count
        times = []
        cpu = _cpu_s(server.proc.pid)
        for _ in range(reps):
            t0 = time.perf_counter()
            status, size, _head = _get(conn, path)
            times.append(time.perf_counter() - t0)
            assert status == 200
        cpu = (_cpu_s(server.proc.pid) - cpu) / reps
        median = summarize(times)["median_ms"] / 1000
        results[name] = {"rows": n, "bytes": size, "median_s": median, "rows_per_s": n / median if median else None,
                         "server_cpu_s": cpu}
        rows.append([label, name, f"{n:,}", f"{size / 1e6:,.1f}", f"{median * 1000:,.0f} ms",
                     f"{n / median:,.0f}" if median else "–", f"{n / cpu:,.0f}" if cpu else "–"])
    rss_end = server.peak_rss_mb()
    conn.close()
    results["rss_before_mb"], results["rss_after_mb"] = rss_start, rss_end
    return rows, results


def _long_run(root: Path, steps: int) -> str:
    """A run of ``steps`` steps × 3 metrics, written through the SDK."""
    import runicorn_lite

    run = runicorn_lite.init(project="bench", name="long", root=root, run_id="20250101_000000_10a9e5")
    for step in range(steps):
        run.log({"loss": 1 / (step + 1), "accuracy": step / steps, "lr": 0.001}, step=step)
    run.finish()
    return run.id


def main(args: argparse.Namespace) -> dict[str, Any]:  # noqa: PLR0915 - one measured scenario, top to bottom
    reps = 1 if args.quick else args.reps
    steps = 2_000 if args.quick else args.steps
    payload: dict[str, Any] = {}
    table_rows: list[list[Any]] = []
    long_root = Path(args.work_root)
    with OurServer(Path(args.root), "--no-watch", "--rescan-interval", "0") as server:
        server.wait_ready()
        rows, payload["corpus"] = _export_table(server, reps, Path(args.root).name)
        table_rows += rows
        # A client reading 64 KB every 10 ms: the export follows its pace, memory stays flat.
        parts = urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
        before = server.peak_rss_mb()
        t0 = time.perf_counter()
        _status, size, _ = _get(conn, "/api/v2/experiments.csv", slow_s=0.01)
        slow_s = time.perf_counter() - t0
        conn.close()
        payload["slow_reader"] = {"bytes": size, "seconds": slow_s, "rss_before_mb": before,
                                  "rss_after_mb": server.peak_rss_mb()}
    if args.big_root:
        with OurServer(Path(args.big_root), "--no-watch", "--rescan-interval", "0") as server:
            server.wait_ready()
            rows, payload["big"] = _export_table(server, 1, Path(args.big_root).name)
            table_rows += rows
    shutil.rmtree(long_root, ignore_errors=True)
    run_id = _long_run(long_root, steps)
    with OurServer(long_root, "--no-watch", "--rescan-interval", "0") as server:
        server.wait_ready()
        parts = urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
        csv_path = f"/api/v2/experiments/{run_id}/metrics.csv"
        fast_path = f"/api/v2/experiments/{run_id}/metrics/fast"
        before = server.peak_rss_mb()
        timings: dict[str, list[float]] = {"csv": [], "fast": []}
        _get(conn, csv_path)
        _get(conn, fast_path)
        for _ in range(reps):
            for key, path in (("csv", csv_path), ("fast", fast_path)):
                t0 = time.perf_counter()
                status, size, _ = _get(conn, path)
                timings[key].append(time.perf_counter() - t0)
                assert status == 200
        conn.close()
        csv_s, fast_s = (summarize(timings[k])["median_ms"] / 1000 for k in ("csv", "fast"))
        payload["points"] = {"steps": steps, "csv_s": csv_s, "fast_s": fast_s, "rss_before_mb": before,
                             "rss_after_mb": server.peak_rss_mb()}
    corpus, slow, points = payload["corpus"], payload["slow_reader"], payload["points"]
    table = markdown_table(["corpus", "experiments.csv", "rows", "MB", "time (median)", "rows/s",
                            "rows per server CPU-second"], table_rows)
    lines = [
        f"{machine_info()}", "", f"`{command_line()}` ({reps} repetitions, median; raw keep-alive HTTP client)",
        "", table, "",
        f"- server peak RSS, {Path(args.root).name}: {corpus['rss_before_mb']:.0f} MB before the exports,"
        f" {corpus['rss_after_mb']:.0f} MB after",
    ]
    if "big" in payload:
        big = payload["big"]
        lines.append(f"- server peak RSS, {Path(args.big_root).name}: {big['rss_before_mb']:.0f} MB before,"
                     f" {big['rss_after_mb']:.0f} MB after exporting every run"
                     f" (growth {big['rss_after_mb'] - big['rss_before_mb']:.0f} MB)")
    lines += [
        f"- a slow reader (64 KB every 10 ms) took {slow['seconds']:.1f} s for {slow['bytes'] / 1e6:.1f} MB;"
        f" peak RSS {slow['rss_before_mb']:.0f} → {slow['rss_after_mb']:.0f} MB",
        f"- metrics.csv of one run, {steps:,} steps × 3 metrics: {points['csv_s'] * 1000:,.0f} ms"
        f" ({steps / points['csv_s']:,.0f} rows/s) against {points['fast_s'] * 1000:,.0f} ms for the same"
        f" points as JSON from metrics/fast; peak RSS {points['rss_before_mb']:.0f} → {points['rss_after_mb']:.0f} MB",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    save_result("export-quick" if args.quick else "export", payload, markdown)
    return payload


def add_parser(sub: Any) -> None:
    e = sub.add_parser("export", help="experiments.csv and metrics.csv: rows/s and server memory")
    e.add_argument("--root", type=Path, default=WORK / "corpus-10k", help="a corpus written by `generate`")
    e.add_argument("--big-root", type=Path, default=None,
                   help="a second, larger corpus (e.g. 100k runs) for the memory target")
    e.add_argument("--work-root", type=Path, default=WORK / "export-long",
                   help="where the long run for metrics.csv is written (replaced each time)")
    e.add_argument("--steps", type=int, default=200_000, help="steps of the long run")
    e.add_argument("--reps", type=int, default=5)
    e.add_argument("--quick", action="store_true", help="1 repetition, a 2,000-step run")
