"""``api``: V1 (scan + client-side filter/sort/page) against V2 (index) on one server, one run."""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx

from benchmarks.common import (
    OurServer,
    command_line,
    fmt_ms,
    fmt_ratio,
    machine_info,
    markdown_table,
    save_result,
    summarize,
    time_calls,
)
from benchmarks.queries import pick_params, query_set, time_v2


def run(root: Any, v1_reps: int, v2_reps: int, warmup: int) -> dict[str, Any]:
    with OurServer(root, "--no-watch") as server:
        health = server.wait_ready()
        runs = health["index"]["runs_in_index"]
        with httpx.Client(base_url=server.url, timeout=300) as client:
            params = pick_params(client)
            queries = query_set(params)
            # V2 first, round-robin over the queries (health included), so slow drift of the
            # machine spreads evenly; V1 afterwards, because each V1 call leaves the server with
            # 10k parsed runs' worth of garbage that slows the requests right after it.
            targets = [("/api/health", {})] + [(q.v2_path, q.v2_params) for q in queries]
            samples: list[list[float]] = [[] for _ in targets]
            for path, qp in targets:
                time_v2(client, path, qp, 0, warmup * 10)
            for _ in range(v2_reps):
                for i, (path, qp) in enumerate(targets):
                    samples[i].extend(time_v2(client, path, qp, 1, 0))
            h = summarize(samples[0])
            rows = []
            for q, s in zip(queries, samples[1:], strict=True):
                rows.append({"query": q.name, "is_list": q.is_list, "v2_path": q.v2_path, "v2_params": q.v2_params,
                             "v2": summarize(s)})
            for row, q in zip(rows, queries, strict=True):
                row["v1"] = summarize(time_calls(lambda q=q: q.v1(client), v1_reps, warmup)) if q.v1 else None
                print(f"  {q.name}: V1 {fmt_ms(row['v1']['median_ms']) if row['v1'] else '-'}  "
                      f"V2 {fmt_ms(row['v2']['median_ms'])}", flush=True)
            # Health again at the end, after V1: how much V1 disturbed the server.
            h2 = summarize(time_v2(client, "/api/health", {}, v2_reps, 0))
        rss = server.peak_rss_mb()
    return {"runs": runs, "health": h, "health_end": h2, "rows": rows, "params": params.__dict__,
            "server_peak_rss_mb": rss, "v1_reps": v1_reps, "v2_reps": v2_reps}


def render(res: dict[str, Any]) -> str:
    h = res["health"]["median_ms"]
    table = []
    for r in res["rows"]:
        v1, v2 = r["v1"], r["v2"]
        speedup = v1["median_ms"] / v2["median_ms"] if v1 else None
        to_health = v2["median_ms"] / h
        ok_speed = "yes" if speedup and speedup >= 100 else "**no**"
        ok_health = ("yes" if to_health <= 3 else "**no**") if r["is_list"] else "n/a"
        table.append([r["query"], fmt_ms(v1["median_ms"]), fmt_ms(v1["p95_ms"]), fmt_ms(v2["median_ms"]),
                      fmt_ms(v2["p95_ms"]), fmt_ratio(speedup), ok_speed, f"{to_health:.2f}x", ok_health])
    table.append(["`/api/health` (floor)", "", "", fmt_ms(h), fmt_ms(res["health"]["p95_ms"]), "", "",
                  "1.00x", ""])
    md = (
        f"{res['runs']:,} experiments; V1 = `GET /api/runs` + client-side filter/sort/page (orjson), "
        f"{res['v1_reps']} timed repetitions; V2 = one request, {res['v2_reps']} timed repetitions, round-robin over "
        f"the V2 queries and health, all V2 before any V1; both after warm-up, keep-alive httpx client on the same "
        f"machine. Health after the V1 calls: "
        f"median {fmt_ms(res['health_end']['median_ms'])}. Server peak RSS {res['server_peak_rss_mb']:.0f} MB.\n\n"
    )
    md += markdown_table(
        ["Query", "V1 median", "V1 p95", "V2 median", "V2 p95", "V1/V2", "≥100x", "V2 / health", "≤3x health"],
        table,
    )
    return md


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.v1_reps, args.v2_reps, args.warmup = 2, 2, 1
    t0 = time.perf_counter()
    res = run(args.root, args.v1_reps, args.v2_reps, args.warmup)
    md = f"Machine: {machine_info()}\n\nCommand: `{command_line()}`\n\n" + render(res)
    path = save_result("api-quick" if args.quick else "api", res, md)
    print(md)
    print(f"\n(saved to {path}; {time.perf_counter() - t0:.1f} s)")
    return res
