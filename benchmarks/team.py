"""``team``: the team server — PostgreSQL beside SQLite, and several workers, in one run.

- ``cold``: ``runicorn-lite index`` of the corpus into a new PostgreSQL schema and into new
  SQLite files (wall clock and peak RSS of the indexing process).
- ``reads``: every V2 read of the ``api`` table (benchmarks/queries.py) on a server over each
  backend, p50 of a raw keep-alive client, against ``/api/health`` of the same server; warm (the
  same request again) and right after a change of the index.
- ``workers``: ``wrk`` (a separate, efficient client process) for 10 s against a list page and a
  param filter + metric sort, on 1 and on 2 workers, for each backend; requests per second.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
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
    run_measured,
    save_result,
    summarize,
)
from benchmarks.queries import FILTER_LR, PER_PAGE, SORT_ACC_MAX, IndexChanger, pick_params, query_set, round_robin

BASE = "postgresql://root@127.0.0.1:5432/root"
HEALTH = ("/api/health", {})


@contextlib.contextmanager
def schema(base: str) -> Iterator[str]:
    """A new PostgreSQL schema for one store (dropped afterwards); its URL."""
    import psycopg

    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{base}?options=" + urllib.parse.quote(f"-csearch_path={name},public")
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _index(root: Path, *args: str) -> dict[str, float]:
    wall, peak_mb, _out = run_measured([sys.executable, "-m", "runicorn_lite", "index", "--root", str(root),
                                        "--silent", *args])
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak_mb, 1)}


def run_cold(root: Path, url: str, work: Path) -> dict[str, Any]:
    index_dir = work / "cold-sqlite"
    shutil.rmtree(index_dir, ignore_errors=True)
    return {"postgresql": _index(root, "--database", url), "sqlite": _index(root, "--index-dir", str(index_dir))}


def run_reads(root: Path, args: tuple[str, ...], reps: int, change_reps: int) -> dict[str, Any]:
    with OurServer(root, "--no-watch", *args) as server:
        runs = server.wait_ready()["index"]["runs_in_index"]
        with RawClient(server.url) as raw:
            params = pick_params(raw)
            queries = [q for q in query_set(params) if q.name != "Metrics (all points)"]
            targets = [HEALTH] + [(q.v2_path, q.v2_params) for q in queries]
            warm = round_robin(raw, targets, reps, 20)
            changer = IndexChanger(raw, params.bystander)
            try:
                changed = round_robin(raw, targets, change_reps, 0, before=changer)
            finally:
                changer.restore()
    return {"runs": runs, "health": summarize(warm[0]), "health_changed": summarize(changed[0]),
            "rows": [{"query": q.name, "warm": summarize(warm[i + 1]), "changed": summarize(changed[i + 1])}
                     for i, q in enumerate(queries)]}


def _wrk(url: str, seconds: int, connections: int) -> float:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url], capture_output=True,
                         text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out:
        raise RuntimeError(f"wrk: {out}")
    return float(match.group(1))


def run_workers(root: Path, args: tuple[str, ...], seconds: int, connections: int) -> dict[str, Any]:
    paths = {
        "list page": f"/api/v2/experiments?per_page={PER_PAGE}",
        "param filter + metric sort": "/api/v2/experiments?" + urllib.parse.urlencode(
            {"filter": FILTER_LR, "order_by": SORT_ACC_MAX, "per_page": PER_PAGE}),
    }
    out: dict[str, Any] = {}
    for workers in (1, 2):
        with OurServer(root, "--no-watch", "--workers", str(workers), *args) as server:
            deadline = time.monotonic() + 600
            while not server.health()["index"]["ready"] and time.monotonic() < deadline:
                time.sleep(0.2)  # the answering worker may not be the ingester: ask again
            time.sleep(1.0)
            for name, path in paths.items():
                _wrk(server.url + path, 2, connections)  # warm-up
                out.setdefault(name, {})[workers] = _wrk(server.url + path, seconds, connections)
    return out


def render(res: dict[str, Any]) -> str:
    lines = [f"Corpus: {res['runs']} runs. {res['machine']}", ""]
    cold = res["cold"]
    lines.append(markdown_table(["cold index", "PostgreSQL", "SQLite"], [
        ["wall clock", f"{cold['postgresql']['wall_s']} s", f"{cold['sqlite']['wall_s']} s"],
        ["peak RSS of the indexer", f"{cold['postgresql']['peak_rss_mb']} MB", f"{cold['sqlite']['peak_rss_mb']} MB"],
    ]))
    lines.append("")
    header = ["V2 read (raw client, p50)", "PostgreSQL", "x health", "after a change", "x health",
              "SQLite", "x health"]
    pg, sq = res["reads"]["postgresql"], res["reads"]["sqlite"]
    rows = [["`/api/health`", fmt_ms(pg["health"]["median_ms"]), "1.0x", fmt_ms(pg["health_changed"]["median_ms"]),
             "1.0x", fmt_ms(sq["health"]["median_ms"]), "1.0x"]]
    for a, b in zip(pg["rows"], sq["rows"], strict=True):
        rows.append([a["query"], fmt_ms(a["warm"]["median_ms"]),
                     fmt_ratio(a["warm"]["median_ms"] / pg["health"]["median_ms"]),
                     fmt_ms(a["changed"]["median_ms"]),
                     fmt_ratio(a["changed"]["median_ms"] / pg["health_changed"]["median_ms"]),
                     fmt_ms(b["warm"]["median_ms"]), fmt_ratio(b["warm"]["median_ms"] / sq["health"]["median_ms"])])
    lines.append(markdown_table(header, rows))
    lines.append("")
    w = res["workers"]
    wrows = []
    for backend, table in w.items():
        for name, by in table.items():
            wrows.append([backend, name, f"{by[1]:.0f}", f"{by[2]:.0f}", fmt_ratio(by[2] / by[1])])
    lines.append(markdown_table(["backend", "request (wrk)", "1 worker req/s", "2 workers req/s", "2 / 1"], wrows))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> dict[str, Any]:
    root: Path = args.root
    base: str = args.database
    res: dict[str, Any] = {"machine": machine_info(), "command": command_line()}
    with schema(base) as url:
        print("cold index ...", flush=True)
        res["cold"] = run_cold(root, url, args.work)
        print("reads ...", flush=True)
        res["reads"] = {"postgresql": run_reads(root, ("--database", url), args.reps, args.change_reps)}
    res["reads"]["sqlite"] = run_reads(root, ("--index-dir", str(args.work / "cold-sqlite")), args.reps,
                                       args.change_reps)
    print("workers ...", flush=True)
    res["workers"] = {}
    with schema(base) as url:
        res["workers"]["postgresql"] = run_workers(root, ("--database", url), args.seconds, args.connections)
    res["workers"]["sqlite"] = run_workers(root, ("--index-dir", str(args.work / "cold-sqlite")), args.seconds,
                                           args.connections)
    res["runs"] = res["reads"]["sqlite"]["runs"]
    text = render(res)
    save_result("team-quick" if args.quick else "team", res, text)
    print(text)
    return res
