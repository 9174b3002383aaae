"""``api``: our server's reads against ``/api/health``, in three parts, each in one run.

- ``runs``: on the 10k corpus, V2 (the index) against V1 (scan + client-side filter/sort/page)
  and every V2 read against ``/api/health``, timed with httpx and with a raw keep-alive
  ``http.client`` connection, both on a warm server (a request repeated on an unchanged index:
  its total and page are cached per index generation) and right after a change of the index.
- ``compare``: ``/api/v2/compare`` of 10 runs x 3 metrics x 100k steps, downsampled to 1,000
  points a series, against ``/api/health``, with the answer's size and where its time goes.
- ``huge``: one run of 1M steps x 3 metrics: time and peak RSS of ``index --rebuild``, of the
  server's start-up scan, and of each kind of metrics request (the server's VmHWM is reset before
  each request, so each peak is that request's own).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks import generate
from benchmarks.common import (
    WORK,
    OurServer,
    RawClient,
    command_line,
    drop_index,
    fmt_ms,
    fmt_ratio,
    machine_info,
    markdown_table,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
    run_measured,
    save_result,
    summarize,
    time_calls,
)
from benchmarks.queries import IndexChanger, check_answer, pick_params, query_set, round_robin, time_v2

SECTIONS = ("runs", "compare", "huge")
HEALTH = ("/api/health", {})


# ---- runs: the 10k corpus ------------------------------------------------------------------------


def run_corpus(root: Path, v1_reps: int, v2_reps: int, change_reps: int, warmup: int) -> dict[str, Any]:
    with OurServer(root, "--no-watch") as server:
        health = server.wait_ready()
        runs = health["index"]["runs_in_index"]
        with httpx.Client(base_url=server.url, timeout=300) as client, RawClient(server.url) as raw:
            params = pick_params(raw)
            queries = query_set(params)
            targets = [HEALTH] + [(q.v2_path, q.v2_params) for q in queries]
            matches = []
            for q in queries:
                body = check_answer(raw.get(q.v2_path, q.v2_params), q.v2_path, q.v2_params)
                matches.append(body.get("total") if q.is_list else None)
            # V2 first, all modes round-robin over the queries (health included); V1
            # afterwards, because each V1 call leaves the server with 10k parsed runs' worth of
            # garbage that slows the requests right after it.
            modes = {
                "httpx": round_robin(client, targets, v2_reps, warmup * 10),
                "raw": round_robin(raw, targets, v2_reps, warmup * 10),
            }
            changer = IndexChanger(raw, params.bystander)
            try:
                modes["raw_changed"] = round_robin(raw, targets, change_reps, 0, before=changer)
            finally:
                changer.restore()
            rows = []
            for i, q in enumerate(queries):
                rows.append({"query": q.name, "is_list": q.is_list, "v2_path": q.v2_path, "v2_params": q.v2_params,
                             "matches": matches[i], **{m: summarize(s[i + 1]) for m, s in modes.items()}})
            for row, q in zip(rows, queries, strict=True):
                row["v1"] = summarize(time_calls(lambda q=q: q.v1(client), v1_reps, warmup)) if q.v1 else None
                print(f"  {q.name}: V1 {fmt_ms(row['v1']['median_ms']) if row['v1'] else '-'}  "
                      f"V2 raw {fmt_ms(row['raw']['median_ms'])}", flush=True)
            # Health again at the end, after V1: how much V1 disturbed the server.
            h2 = summarize(time_v2(client, "/api/health", {}, v2_reps, 0))
        rss = server.peak_rss_mb()
    return {"runs": runs, "health": {m: summarize(s[0]) for m, s in modes.items()}, "health_end": h2,
            "rows": rows, "params": params.__dict__, "server_peak_rss_mb": rss, "v1_reps": v1_reps,
            "v2_reps": v2_reps, "change_reps": change_reps}


def render_corpus(res: dict[str, Any]) -> str:
    h = {m: res["health"][m]["median_ms"] for m in res["health"]}
    table = []
    for r in res["rows"]:
        worst = max(r["raw"]["median_ms"] / h["raw"], r["raw_changed"]["median_ms"] / h["raw_changed"])
        table.append([
            r["query"], f"{r['matches']:,}" if r["matches"] is not None else "",
            fmt_ms(r["httpx"]["median_ms"]), f"{r['httpx']['median_ms'] / h['httpx']:.2f}x",
            fmt_ms(r["raw"]["median_ms"]), fmt_ms(r["raw"]["p95_ms"]), f"{r['raw']['median_ms'] / h['raw']:.2f}x",
            fmt_ms(r["raw_changed"]["median_ms"]), fmt_ms(r["raw_changed"]["p95_ms"]),
            f"{r['raw_changed']['median_ms'] / h['raw_changed']:.2f}x", "yes" if worst <= 3 else "**no**",
        ])
    table.append(["`/api/health` (floor)", "", fmt_ms(h["httpx"]), "1.00x", fmt_ms(h["raw"]),
                  fmt_ms(res["health"]["raw"]["p95_ms"]), "1.00x", fmt_ms(h["raw_changed"]),
                  fmt_ms(res["health"]["raw_changed"]["p95_ms"]), "1.00x", ""])
    md = (
        f"{res['runs']:,} experiments. Every V2 read against `/api/health`, round-robin (health included) in "
        f"three passes: httpx ({res['v2_reps']} rounds), a raw keep-alive `http.client` connection "
        f"({res['v2_reps']} rounds) — both repeating each request on an unchanged index, so totals and pages "
        f"come from the server's per-generation cache — and the raw connection right after a change of the "
        f"index ({res['change_reps']} rounds: before every timed request, health included, an untimed "
        f"`batch-delete` or `batch-restore` of one bystander run, the oldest, moves the index generation on). "
        f"Round trip = request sent → body read (parsing not included). `matches` = the list's `total`.\n\n"
    )
    md += markdown_table(
        ["Query", "matches", "httpx median", "÷ health", "raw, repeated: median", "p95", "÷ health",
         "raw, after a change: median", "p95", "÷ health", "≤3x health (raw, both)"],
        table,
    )
    v1_rows = []
    for r in res["rows"]:
        if r["v1"] is None:
            continue
        speedup = r["v1"]["median_ms"] / r["httpx"]["median_ms"]
        verdict = ("yes" if speedup >= 100 else "**no**") if r["is_list"] else "n/a"
        v1_rows.append([r["query"], fmt_ms(r["v1"]["median_ms"]), fmt_ms(r["v1"]["p95_ms"]),
                        fmt_ms(r["httpx"]["median_ms"]), fmt_ratio(speedup), verdict])
    md += (
        f"\n\nV1 = `GET /api/runs` + client-side filter/sort/page (orjson), {res['v1_reps']} timed repetitions "
        f"after the V2 passes, against V2 through the same httpx client (its repeated figure above). Health "
        f"after the V1 calls: median {fmt_ms(res['health_end']['median_ms'])} (httpx). Server peak RSS "
        f"{res['server_peak_rss_mb']:.0f} MB.\n\n"
    )
    md += markdown_table(["Query", "V1 median", "V1 p95", "V2 median (httpx)", "V1/V2", "≥100x (lists)"], v1_rows)
    return md


# ---- compare: 10 runs x 100k steps ---------------------------------------------------------------


def run_compare(root: Path, reps: int, warmup: int) -> dict[str, Any]:
    with OurServer(root, "--no-watch") as server:
        health = server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=300) as client, RawClient(server.url) as raw:
            listed = raw.get("/api/v2/experiments", {"per_page": 50, "order_by": "created_at",
                                                     "order_desc": "false"}).json()["experiments"]
            ids = [e["id"] for e in listed]
            first = f"/api/v2/experiments/{ids[0]}/metrics/fast"
            # (name, path, params, whether the ≤10x-health target is about it)
            cases = [
                (f"Compare {len(ids)} runs, downsample=1000", "/api/v2/compare",
                 {"ids": ",".join(ids), "downsample": 1000}, True),
                (f"Compare {len(ids)} runs, downsample=100", "/api/v2/compare",
                 {"ids": ",".join(ids), "downsample": 100}, False),
                ("metrics/fast of 1 run, downsample=1000", first, {"downsample": 1000}, False),
            ]
            targets = [HEALTH] + [(path, qp) for _, path, qp, _ in cases]
            modes = {"raw": round_robin(raw, targets, reps, warmup),
                     "httpx": round_robin(client, targets, reps, warmup)}
            rows = []
            for i, (name, path, qp, is_target) in enumerate(cases):
                # Untimed: what the answer holds, the server's own time for its query (before the
                # body is rendered), and what rendering and parsing such a body costs in process.
                server_ms, body_bytes, points, series = [], 0, 0, 0
                for _ in range(max(5, min(reps, 20))):
                    r = raw.get(path, qp)
                    body = check_answer(r, path, qp)
                    server_ms.append(body["query_time_ms"])
                    body_bytes = len(r.content)
                if "series" in body:
                    series = sum(len(per_run) for per_run in body["series"].values())
                    points = sum(len(s["steps"]) for per_run in body["series"].values() for s in per_run.values())
                else:
                    series, points = len(body["columns"]) - 1, len(body["rows"]) * (len(body["columns"]) - 1)
                dumps = time_calls(lambda body=body: orjson.dumps(body), 20, 2)
                loads = time_calls(lambda c=r.content: orjson.loads(c), 20, 2)
                rows.append({"query": name, "path": path, "params": qp, "target": is_target, "series": series,
                             "points": points,
                             "bytes": body_bytes, "server_query_ms": statistics.median(server_ms),
                             "dumps_ms": statistics.median(dumps) * 1000, "loads_ms": statistics.median(loads) * 1000,
                             **{m: summarize(s[i + 1]) for m, s in modes.items()}})
        rss = server.peak_rss_mb()
    return {"runs": health["index"]["runs_in_index"], "ids": ids, "rows": rows, "reps": reps,
            "health": {m: summarize(s[0]) for m, s in modes.items()}, "server_peak_rss_mb": rss}


def render_compare(res: dict[str, Any], steps: int) -> str:
    h = {m: res["health"][m]["median_ms"] for m in res["health"]}
    table = []
    for r in res["rows"]:
        ratio = r["raw"]["median_ms"] / h["raw"]
        target = ("yes" if ratio <= 10 else "**no**") if r["target"] else ""
        table.append([r["query"], f"{r['series']} / {r['points']:,}", fmt_bytes(r["bytes"]),
                      fmt_ms(r["raw"]["median_ms"]), fmt_ms(r["raw"]["p95_ms"]), f"{ratio:.1f}x",
                      fmt_ms(r["httpx"]["median_ms"]), f"{r['httpx']['median_ms'] / h['httpx']:.1f}x",
                      fmt_ms(r["server_query_ms"]), fmt_ms(r["dumps_ms"]), fmt_ms(r["loads_ms"]), target])
    table.append(["`/api/health` (floor)", "", "", fmt_ms(h["raw"]), fmt_ms(res["health"]["raw"]["p95_ms"]), "1.0x",
                  fmt_ms(h["httpx"]), "1.0x", "", "", "", ""])
    md = (
        f"{res['runs']} runs × 3 metrics × {steps:,} steps (our SDK). Round-robin with health, {res['reps']} "
        f"rounds, raw keep-alive `http.client` connection, then httpx; round trip = request sent → body read. "
        f"`server query` = the answer's own `query_time_ms` (the query and building the answer's objects, "
        f"before they are rendered to JSON); `orjson.dumps` / `orjson.loads` = rendering / parsing the same "
        f"body in the benchmark process (what the server's JSON rendering and a client's parsing cost). "
        f"Server peak RSS {res['server_peak_rss_mb']:.0f} MB.\n\n"
    )
    md += markdown_table(["Request", "series / points", "answer", "raw median", "p95", "÷ health", "httpx median",
                          "÷ health", "server query", "orjson.dumps", "orjson.loads", "≤10x health"], table)
    return md


# ---- huge: one run of 1M steps ------------------------------------------------------------------------


def _measured_get(pid: int, url: str, path: str, params: dict[str, Any]) -> tuple[float, float | None, int]:
    """(seconds, the server's peak RSS in MB so far, answer bytes) of one request."""
    with RawClient(url) as raw:
        t0 = time.perf_counter()
        r = raw.get(path, params)
        dt = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"{path} {params} -> {r.status_code} {r.text[:200]}")
    return dt, peak_rss_mb(pid), len(r.content)


def _huge_cases(run_id: str) -> list[tuple[str, str, dict[str, Any], int]]:
    """(name, path, params, concurrent requests) of the huge run's metrics requests."""
    v2 = f"/api/v2/experiments/{run_id}/metrics/fast"
    v1 = f"/api/runs/{run_id}/metrics"
    return [
        ("V2 metrics/fast, all points", v2, {}, 1),
        ("V2 metrics/fast, downsample=1000", v2, {"downsample": 1000}, 1),
        ("V2 metrics/fast, downsample=100000", v2, {"downsample": 100000}, 1),
        ("V2 compare (downsample 1000, the default)", "/api/v2/compare", {"ids": run_id}, 1),
        ("V2 compare, downsample=100000", "/api/v2/compare", {"ids": run_id, "downsample": 100000}, 1),
        ("V1 metrics, all points", v1, {}, 1),
        ("V1 metrics, downsample=1000", v1, {"downsample": 1000}, 1),
        ("V1 metrics, all points, 3 requests at once", v1, {}, 3),
    ]


def _measure_case(pid: int, url: str, path: str, params: dict[str, Any], at_once: int,
                  reps: int) -> dict[str, Any]:
    """``reps`` times: the server's peak reset, ``at_once`` requests in parallel, its peak read.
    Seconds are each round's wall time."""
    def one(into: list[tuple[float, float | None, int]]) -> None:
        into.append(_measured_get(pid, url, path, params))

    seconds, peaks, size = [], [], 0
    for _ in range(reps):
        reset_peak_rss(pid)
        results: list[tuple[float, float | None, int]] = []
        threads = [threading.Thread(target=one, args=(results,)) for _ in range(at_once)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds.append(time.perf_counter() - t0)
        peaks.append(peak_rss_mb(pid) or 0.0)
        size = sum(r[2] for r in results)
    return {"seconds": seconds, "peak_rss_mb": max(peaks), "bytes": size}


def run_huge(root: Path, reps: int) -> dict[str, Any]:
    """The index built by ``index --rebuild``; then one server that built its index at start-up
    (from empty) answers every kind of request in turn; then, per kind, a server just started on
    the built index answers it (its memory at rest is lower: a scan's freed memory is not all
    given back to the OS)."""
    out: dict[str, Any] = {}
    wall, peak, _output = run_measured([sys.executable, "-m", "runicorn_lite", "index", "--root", str(root),
                                        "--rebuild", "--silent"])
    out["index_rebuild"] = {"wall_s": wall, "peak_rss_mb": peak}
    print(f"  huge: index --rebuild {wall:.1f} s, peak RSS {peak:.0f} MB", flush=True)
    drop_index(root)
    rows: list[dict[str, Any]] = []
    with OurServer(root, "--no-watch") as server:
        health = server.wait_ready()
        pid = server.proc.pid
        out["startup_scan"] = {"scan_s": health["index"]["last_scan_duration_s"], "ready_s": server.ready_s,
                               "peak_rss_mb": peak_rss_mb(pid)}
        with RawClient(server.url) as raw:
            run_id = raw.get("/api/v2/experiments", {"per_page": 1}).json()["experiments"][0]["id"]
        out["idle_rss_mb"] = rss_mb(pid)
        for name, path, qp, at_once in _huge_cases(run_id):
            rows.append({"query": name, "path": path, "params": qp, "at_once": at_once,
                         "after_scan": _measure_case(pid, server.url, path, qp, at_once, reps)})
            print(f"  huge, after the scan: {name}: {statistics.median(rows[-1]['after_scan']['seconds']):.2f} s, "
                  f"peak {rows[-1]['after_scan']['peak_rss_mb']:.0f} MB", flush=True)
    idle = []
    for row in rows:
        with OurServer(root, "--no-watch") as server:
            server.wait_ready()
            idle.append(rss_mb(server.proc.pid) or 0.0)
            row["fresh"] = _measure_case(server.proc.pid, server.url, row["path"], row["params"], row["at_once"], reps)
        print(f"  huge, fresh server: {row['query']}: {statistics.median(row['fresh']['seconds']):.2f} s, "
              f"peak {row['fresh']['peak_rss_mb']:.0f} MB", flush=True)
    out["fresh_idle_rss_mb"] = statistics.median(idle)
    out["rows"] = rows
    return out


def render_huge(res: dict[str, Any], steps: int, events_mb: float, reps: int) -> str:
    ix, scan = res["index_rebuild"], res["startup_scan"]
    rows = [
        ["`runicorn-lite index --rebuild` (whole command)", f"{ix['wall_s']:.2f} s", f"{ix['peak_rss_mb']:.0f} MB",
         "", "", "", _ok(ix["peak_rss_mb"] <= 300)],
        ["server start-up scan from an empty index (health `last_scan_duration_s`)", f"{scan['scan_s']:.2f} s",
         f"{scan['peak_rss_mb']:.0f} MB", "", "", "", _ok(scan["peak_rss_mb"] <= 300)],
    ]
    for r in res["rows"]:
        a, f = r["after_scan"], r["fresh"]
        worst = max(a["peak_rss_mb"], f["peak_rss_mb"])
        rows.append([r["query"], fmt_s(statistics.median(a["seconds"])), f"{a['peak_rss_mb']:.0f} MB",
                     fmt_s(statistics.median(f["seconds"])), f"{f['peak_rss_mb']:.0f} MB", fmt_bytes(a["bytes"]),
                     _ok(worst <= 300)])
    md = (
        f"One run of {steps:,} steps × 3 metrics written by our SDK (events.jsonl {events_mb:,.0f} MB). Peak RSS = "
        f"the process's VmHWM: for `index --rebuild` the kernel's maximum for the command (`wait4`); for the "
        f"server, VmHWM reset (`/proc/PID/clear_refs` ← 5) before each round of requests and read after it, so "
        f"a row's peak is that request's own on top of what the server holds at rest. Two servers: the one "
        f"that built the index at start-up answers every row in turn (at rest {res['idle_rss_mb']:.0f} MB: "
        f"the scan's freed memory is not all given back to the OS), and for each row a server just started "
        f"on the built index (at rest {res['fresh_idle_rss_mb']:.0f} MB). Times: median of {reps} round(s), raw "
        f"`http.client` connections, whole body read; the 3-at-once row is the wall time of all three.\n\n"
    )
    md += markdown_table(["What", "time (after the scan)", "peak RSS", "time (fresh server)", "peak RSS", "answer",
                          "≤300 MB"], rows)
    return md


def fmt_bytes(n: int) -> str:
    if n >= 10 << 20:
        return f"{n / (1 << 20):,.0f} MB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MB"
    return f"{n / 1024:,.0f} KB"


def fmt_s(v: float) -> str:
    return fmt_ms(v * 1000)


def _ok(b: bool) -> str:
    return "yes" if b else "**no**"


# ---- the command -------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> dict[str, Any]:
    sections = [s.strip() for s in str(args.sections).split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown --sections {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if args.quick:
        args.v1_reps, args.v2_reps, args.change_reps, args.warmup = 2, 2, 2, 1
        args.compare_reps, args.huge_reps = 2, 1
        args.long_runs, args.long_steps, args.huge_steps = 3, 2000, 20_000
    long_root = args.long_root or WORK / ("corpus-long-quick" if args.quick else "corpus-long")
    huge_root = args.huge_root or WORK / ("corpus-huge-quick" if args.quick else "corpus-huge")
    t0 = time.perf_counter()
    res: dict[str, Any] = {}
    md = f"Machine: {machine_info()}\n\nCommand: `{command_line()}`\n"
    if "runs" in sections:
        res["runs"] = run_corpus(args.root, args.v1_reps, args.v2_reps, args.change_reps, args.warmup)
        md += "\n### V2 reads against `/api/health`, and V1 against V2\n\n" + render_corpus(res["runs"]) + "\n"
    if "compare" in sections:
        generate.ensure(long_root, args.long_runs, args.long_steps, args.seed)
        res["compare"] = run_compare(long_root, args.compare_reps, args.warmup)
        md += "\n### Compare of long runs against `/api/health`\n\n" + render_compare(res["compare"], args.long_steps)
        md += "\n"
    if "huge" in sections:
        generate.ensure(huge_root, 1, args.huge_steps, args.seed)
        events_mb = sum(p.stat().st_size for p in huge_root.glob("runs/**/events.jsonl")) / 1e6
        res["huge"] = run_huge(huge_root, args.huge_reps)
        md += "\n### One huge run: time and peak RSS\n\n" + render_huge(res["huge"], args.huge_steps, events_mb,
                                                                      args.huge_reps) + "\n"
    path = save_result("api-quick" if args.quick else "api", res, md)
    print(md)
    print(f"\n(saved to {path}; {time.perf_counter() - t0:.1f} s)")
    return res
