"""``newrun``: ``filter=`` requests right after a new run arrives (issue 20 §3, "after a change").

A new run moves the params' and the summaries' table versions on. Each round writes one run
through our SDK into the corpus, waits until the server (watching the tree) has indexed it, then
times each ``filter=`` request once: its kept sets are brought up to date from the runs the new
versions changed (db/set_changes.py). In the same round, the same request with one more clause
never asked before (``params.lr < N``, N new each time, true for the same runs) times a set read whole,
which is what each request after a new run paid before: the baseline, measured beside ours.
The runs it writes are removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    OurServer,
    RawClient,
    command_line,
    fmt_ms,
    fmt_ratio,
    machine_info,
    markdown_table,
    save_result,
    summarize,
)
from benchmarks.queries import FILTER_3, FILTER_LR, SORT_ACC_MAX

PROJECT = "bench_newrun"
QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("`filter=` of 3 clauses", {"filter": FILTER_3, "per_page": 50}),
    (f"`filter={FILTER_LR}` + sort by `{SORT_ACC_MAX}`",
     {"filter": FILTER_LR, "order_by": SORT_ACC_MAX, "per_page": 50}),
    ("`filter=metrics.loss.min < 0.5`", {"filter": "metrics.loss.min < 0.5", "per_page": 50}),
]


def write_run(root: Path, i: int) -> str:
    from runicorn_lite import sdk

    run = sdk.init(project=PROJECT, name="new", root=root, config={"lr": 0.001 * (1 + i % 5), "batch_size": 64})
    for step in range(1, 4):
        run.log({"loss": 1.0 / (step + i), "acc": 0.5 + step / 10}, step=step)
    run.finish()
    return str(run.id)


def wait_indexed(c: RawClient, run_id: str, timeout: float = 120.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if c.get(f"/api/v2/experiments/{run_id}").status_code == 200:
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} was not indexed in {timeout} s")


def timed(c: RawClient, params: dict[str, Any]) -> float:
    started = time.perf_counter()
    r = c.get("/api/v2/experiments", params=params)
    elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"{params} -> {r.status_code} {r.text[:200]}")
    return elapsed


def main(args: argparse.Namespace) -> dict[str, Any]:
    root: Path = args.root
    extra = ("--database", args.database) if args.database else ()
    out: dict[str, Any] = {"root": str(root), "rounds": args.rounds, "machine": machine_info(),
                           "command": command_line(), "queries": {}}
    try:
        with OurServer(root, *extra) as server:
            health = server.wait_ready(timeout=3600)
            out["runs"] = health["index"]["runs_in_index"]
            with RawClient(server.url) as c:
                for _name, params in QUERIES:  # the sets built once, as a user's first request does
                    timed(c, params)
                kept: dict[str, list[float]] = {name: [] for name, _ in QUERIES}
                whole: dict[str, list[float]] = {name: [] for name, _ in QUERIES}
                indexed = []
                for i in range(args.rounds):
                    indexed.append(wait_indexed(c, write_run(root, i)))
                    for q, (name, params) in enumerate(QUERIES):
                        kept[name].append(timed(c, params))
                        bound = 1_000_000 + i * len(QUERIES) + q  # a clause no request asked for before
                        fresh = dict(params, filter=f"{params['filter']} and params.lr < {bound}")
                        whole[name].append(timed(c, fresh))
            out["indexed_s_median"] = statistics.median(indexed)
            for name, _ in QUERIES:
                out["queries"][name] = {"kept": summarize(kept[name]), "whole": summarize(whole[name])}
            out["peak_rss_mb"] = server.peak_rss_mb()
    finally:
        shutil.rmtree(root / "runs" / PROJECT, ignore_errors=True)
    markdown = render(out)
    save_result("newrun", out, markdown)
    print(markdown)
    return out


def render(res: dict[str, Any]) -> str:
    rows = []
    for name, q in res["queries"].items():
        ratio = q["whole"]["median_ms"] / q["kept"]["median_ms"] if q["kept"]["median_ms"] else None
        rows.append([name, fmt_ms(q["kept"]["median_ms"]), fmt_ms(q["kept"]["p95_ms"]),
                     fmt_ms(q["whole"]["median_ms"]), fmt_ratio(ratio)])
    table = markdown_table(
        ["Right after a new run", "kept sets brought up: median", "p95", "one clause read whole: median", "ratio"],
        rows,
    )
    return (f"{res.get('runs', 0):,} runs, {res['rounds']} rounds (a new run each, indexed in a median "
            f"{res.get('indexed_s_median', 0):.2f} s); peak RSS {res.get('peak_rss_mb') or 0:.0f} MB\n\n{table}\n")


def add_parser(sub: Any, corpus_arg: Any) -> None:
    p = sub.add_parser("newrun", help="filter= requests right after a new run: kept sets brought up vs read whole")
    corpus_arg(p, "corpus-1m")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--database", default=None, help="a PostgreSQL URL to serve from instead of SQLite")
