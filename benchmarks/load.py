"""``load``: the optimization runs API under concurrent clients (closed loop, threads + http.client).

The primary database is pre-filled directly in SQLite, through the package's own migrations
(``runicorn_lite.optimization.schema.MIGRATIONS`` via ``runicorn_lite.db.Database``), with
``--runs`` runs and ``--iterations`` iterations, all in the project of the benchmark's API key
(so every list and stats query sees all of them). Then, for each concurrency, each operation runs
``--requests`` requests from that many concurrent clients; latency is measured by the client
(and the server's own ``X-Response-Time`` is recorded too).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from benchmarks.common import (
    OurServer,
    command_line,
    database_url,
    fmt_ms,
    machine_info,
    markdown_table,
    percentile,
    pg_admin,
    save_result,
)

PROJECT = "bench"
STATUS_MIX = (("completed", 60), ("running", 15), ("failed", 10), ("cancelled", 5), ("pending", 10))
OPTIMIZERS = ("bayesian", "grid_search", "random_search", "genetic", "gradient_descent")
TARGETS_MS = {"GET": 100.0, "POST": 150.0, "PATCH": 150.0, "STATS": 200.0}


_RUN_COLUMNS = ("id, project_id, run_name, optimizer_type, status, direction, config, search_space, final_score,"
                " best_params, metadata, iterations_count, duration_ms, error_message, created_at, updated_at,"
                " started_at, completed_at")
_ITERATION_COLUMNS = "run_id, iteration_number, id, params, score, metrics, metadata, duration_ms, created_at"


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def prefill(root: Path, runs: int, iterations: int, seed: int = 7, database: str | None = None) -> dict[str, Any]:
    """Write the runs and iterations straight into the primary database (SQLite under ``root``,
    or the PostgreSQL ``database``); returns the key and ids."""
    from runicorn_lite.optimization.keys import create_key
    from runicorn_lite.optimization.store import open_primary
    from runicorn_lite.settings import Settings

    settings = Settings(root=root, database=database)
    settings.ensure_dirs()
    t0 = time.perf_counter()
    db = open_primary(settings)
    key, _info = create_key(db, PROJECT, "benchmark")
    rng = random.Random(seed)
    now = datetime.now(UTC)
    statuses = [s for s, w in STATUS_MIX for _ in range(w)]
    specs = []
    for _ in range(runs):
        specs.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)), rng.choice(statuses)))
    active = [i for i, (_, st) in enumerate(specs) if st != "pending"]
    per, extra = divmod(iterations, max(len(active), 1))
    counts = [0] * runs
    for j, i in enumerate(active):
        counts[i] = per + (1 if j < extra else 0)
    run_rows, it_rows = [], []
    for i, (rid, status) in enumerate(specs):
        created = now - timedelta(seconds=rng.uniform(0, 60 * 86400))
        c_iso = _iso(created)
        best, best_params, t = None, None, created
        for n in range(counts[i]):
            score = rng.random()
            params = {"lr": round(rng.uniform(1e-4, 1e-1), 5), "depth": rng.randint(2, 12)}
            t = t + timedelta(milliseconds=rng.randint(50, 5000))
            it_rows.append((rid, n, str(uuid.UUID(int=rng.getrandbits(128), version=4)), orjson.dumps(params).decode(),
                            score, '{"loss": %.5f}' % (1 - score), "{}", rng.randint(10, 5000), _iso(t)))
            if best is None or score > best:
                best, best_params = score, params
        terminal = status in ("completed", "failed", "cancelled")
        duration = int((t - created).total_seconds() * 1000) if terminal else None
        run_rows.append((
            rid, PROJECT, f"run-{i}", rng.choice(OPTIMIZERS), status, "maximize", '{"max_iterations": 100}',
            '{"lr": [0.0001, 0.1], "depth": [2, 12]}', best,
            orjson.dumps(best_params).decode() if best_params is not None else None, "{}", counts[i], duration,
            "diverged" if status == "failed" else None, c_iso, _iso(t), c_iso, _iso(t) if terminal else None,
        ))
    with db.write() as conn:
        raw = getattr(conn, "raw", None)  # PostgreSQL's psycopg connection
        for table, columns, rows in (("optimization_runs", _RUN_COLUMNS, run_rows),
                                     ("optimization_iterations", _ITERATION_COLUMNS, it_rows)):
            if raw is not None:
                # COPY: a minute where inserts row by row had not finished 100,000 runs in 7;
                # longer than a statement's budget of the store (its triggers fire per row).
                raw.execute("SET LOCAL statement_timeout = 0")
                with raw.cursor().copy(f"COPY {table} ({columns}) FROM STDIN".encode()) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ",".join("?" * (columns.count(",") + 1))
                conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
        if raw is not None:
            # The planner's statistics, as autovacuum would take them a while after such a load:
            # without them every list page was a sort of all 100,000 runs (789 ms, measured).
            raw.execute("ANALYZE optimization_runs, optimization_iterations, optimization_run_summary,"
                        " optimization_run_daily")
        conn.execute(
            "INSERT INTO optimization_project_revisions (project_id, revision) VALUES (?, 1)"
            " ON CONFLICT (project_id) DO UPDATE SET revision = optimization_project_revisions.revision + 1",
            (PROJECT,))
    db.close()
    info = {
        "key": key,
        "runs": runs,
        "iterations": sum(counts),
        "seconds": time.perf_counter() - t0,
        "run_ids": [rid for rid, _ in specs[:20000]],
        "running_ids": [rid for rid, st in specs if st == "running"][:5000],
    }
    return info


def _phase(url: str, key: str, op: str, clients: int, total: int, ids: dict[str, Any],  # noqa: C901, PLR0915 - one load phase
           counter: list[int]) -> dict[str, Any]:
    """``total`` requests of one operation from ``clients`` threads, each on its own keep-alive
    connection (http.client: httpx.AsyncClient was itself the bottleneck here, falling to ~110
    req/s at 64 connections while the server answered ~1,000 req/s to a lighter client)."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    lock = threading.Lock()
    rng = random.Random(hash((op, clients)) & 0xFFFF)
    lat: list[float] = []
    server_ms: list[float] = []
    errors: dict[int, int] = {}
    remaining = [total]
    prefix = "/api/iris/optimization"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def make_request() -> tuple[str, str, bytes | None]:
        # Called under the lock (the shared rng and counter).
        if op == "list":
            q = {"limit": 20, "offset": rng.randrange(0, 500),
                 "order_by": rng.choice(("created_at", "final_score", "duration_ms")),
                 "order": rng.choice(("asc", "desc"))}
            if rng.random() < 0.3:
                q["status"] = "completed"
            return "GET", prefix + "/runs?" + urlencode(q), None
        if op == "get":
            return "GET", f"{prefix}/runs/{rng.choice(ids['run_ids'])}", None
        if op == "create":
            return "POST", prefix + "/runs", orjson.dumps({
                "optimizer_type": rng.choice(OPTIMIZERS), "run_name": f"load-{rng.random():.6f}",
                "config": {"max_iterations": 50, "seed": rng.randrange(1000)},
                "search_space": {"lr": [0.0001, 0.1]}})
        if op == "patch":
            return "PATCH", f"{prefix}/runs/{rng.choice(ids['running_ids'])}", orjson.dumps(
                {"metadata": {"note": rng.random()}, "run_name": f"patched-{rng.randrange(10**6)}"})
        if op == "add-iteration":
            counter[0] += 1
            n = counter[0]
            run_id = ids["running_ids"][n % len(ids["running_ids"])]
            return "POST", f"{prefix}/runs/{run_id}/iterations", orjson.dumps({
                "iteration_number": 1_000_000 + n, "params": {"lr": rng.random(), "depth": 3},
                "score": rng.random(), "metrics": {"loss": rng.random()}, "duration_ms": 120})
        if op == "stats":
            return "GET", prefix + "/stats", None
        raise ValueError(op)

    start = threading.Barrier(clients + 1)

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        conn.request("GET", prefix + "/runs?limit=1", headers=headers)  # warm-up, untimed
        conn.getresponse().read()
        start.wait()
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
                method, path, body = make_request()
            t0 = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            dt = time.perf_counter() - t0
            with lock:
                lat.append(dt)
                if resp.status >= 400:
                    errors[resp.status] = errors.get(resp.status, 0) + 1
                rt = resp.getheader("x-response-time")
                if rt:
                    server_ms.append(float(rt.rstrip("ms")))
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = [x * 1000 for x in lat]
    return {"op": op, "clients": clients, "n": len(ms), "rps": len(ms) / wall, "errors": errors,
            "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "p99_ms": percentile(ms, 99),
            "server_p50_ms": percentile(server_ms, 50), "server_p99_ms": percentile(server_ms, 99)}


def stats_after_write(url: str, key: str, ids: dict[str, Any], n: int) -> dict[str, Any]:
    """Stats that cannot come from the cache: one PATCH (bumps the project revision) before each.
    Without a date range the server answers from trigger-kept totals; with ``start_date`` it
    has to aggregate the matching runs, so both are measured."""
    headers = {"Authorization": f"Bearer {key}"}
    since = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
        for label, params in (("no filter", {}), ("start_date (last 30 days)", {"start_date": since})):
            lat = []
            for i in range(n):
                c.patch(f"/api/iris/optimization/runs/{ids['running_ids'][i]}", json={"metadata": {"i": i}})
                t0 = time.perf_counter()
                r = c.get("/api/iris/optimization/stats", params=params)
                lat.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
            out[label] = {"n": n, "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
                          "p99_ms": percentile(lat, 99), "max_ms": max(lat)}
    return out


def target_of(op: str) -> float:
    if op == "stats":
        return TARGETS_MS["STATS"]
    return TARGETS_MS["GET"] if op in ("list", "get") else TARGETS_MS["POST"]


def render(res: dict[str, Any]) -> str:
    rows = []
    for r in res["phases"]:
        target = target_of(r["op"])
        rows.append([r["op"], r["clients"], fmt_ms(r["p50_ms"]), fmt_ms(r["p95_ms"]), fmt_ms(r["p99_ms"]),
                     f"{r['rps']:,.0f}", fmt_ms(r["server_p50_ms"]), fmt_ms(r["server_p99_ms"]),
                     f"< {target:.0f} ms", "yes" if r["p99_ms"] < target else "**no**",
                     "yes" if r["p99_ms"] < target / 10 else "**no**",
                     ", ".join(f"{k}×{v}" for k, v in r["errors"].items()) or "0"])
    md = (f"Primary DB ({res.get('backend', 'SQLite')}, {res.get('workers', 1)} worker(s)) pre-filled with "
          f"{res['prefill']['runs']:,} runs and {res['prefill']['iterations']:,} iterations "
          f"(one project, the key's) in {res['prefill']['seconds']:.0f} s; {res['requests']} requests per row; "
          f"closed loop (each client is a thread with its own keep-alive connection and sends its next request"
          f" when the previous answer arrives); client and server "
          f"share the 2 cores. 'server' = the server's own `X-Response-Time`.\n\n")
    md += markdown_table(["Operation", "Clients", "p50", "p95", "p99", "req/s", "server p50", "server p99",
                          "Doc target (p99)", "Met", "≥10x under", "Errors"], rows)
    for label, s in res["stats_uncached"].items():
        md += (f"\n\nStats, {label}, with the cache invalidated before each call (a PATCH first, 1 client, "
               f"{s['n']} calls): p50 {fmt_ms(s['p50_ms'])}, p95 {fmt_ms(s['p95_ms'])}, p99 {fmt_ms(s['p99_ms'])}, "
               f"max {fmt_ms(s['max_ms'])}.")
    md += f"\n\nServer peak RSS {res['server_peak_rss_mb']:.0f} MB."
    return md


PRISTINE, LIVE = "bench_load_pristine", "bench_load_live"


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.runs, args.iterations, args.clients, args.requests = 200, 2000, "4", 40
    root = Path(args.root).resolve()
    base: str | None = getattr(args, "database", None)
    if base is not None:  # a root of its own, so that a SQLite pre-fill is never taken for this one
        root = root.parent / (root.name + "-postgresql")
    meta = root / "prefill.json"
    if args.reuse and meta.exists():
        info = json.loads(meta.read_text())
    else:
        if root.exists():
            shutil.rmtree(root)
        if base is not None:
            pg_admin(base, f"DROP DATABASE IF EXISTS {PRISTINE} WITH (FORCE)", f"CREATE DATABASE {PRISTINE}")
        info = prefill(root, args.runs, args.iterations,
                       database=None if base is None else database_url(base, PRISTINE))
        meta.write_text(json.dumps(info))
    print(f"  pre-filled {info['runs']:,} runs / {info['iterations']:,} iterations in {info['seconds']:.1f} s",
          flush=True)
    huge = "1000000000"
    res: dict[str, Any] = {"prefill": {k: info[k] for k in ("runs", "iterations", "seconds")},
                           "requests": args.requests, "workers": args.workers, "phases": [],
                           "backend": "SQLite" if base is None else "PostgreSQL"}
    # Keep the pre-filled DB pristine for --reuse: the server works on a copy.
    work = root.parent / (root.name + "-live")
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(root, work)
    store: tuple[str, ...] = ()
    if base is not None:
        pg_admin(base, f"DROP DATABASE IF EXISTS {LIVE} WITH (FORCE)", f"CREATE DATABASE {LIVE} TEMPLATE {PRISTINE}")
        store = ("--database", database_url(base, LIVE))
    limits = ("--read-limit", huge, "--write-limit", huge, "--iterations-limit", huge)
    with OurServer(work, "--no-watch", "--workers", str(args.workers), *limits, *store) as server:
        server.wait_ready()
        counter = [0]
        for clients in [int(c) for c in str(args.clients).split(",")]:
            for op in ("list", "get", "create", "patch", "add-iteration", "stats"):
                r = _phase(server.url, info["key"], op, clients, args.requests, info, counter)
                print(f"  {op:14s} x{clients}: p50 {fmt_ms(r['p50_ms'])} p99 {fmt_ms(r['p99_ms'])} "
                      f"{r['rps']:.0f} req/s errors {r['errors']}", flush=True)
                res["phases"].append(r)
        res["stats_uncached"] = stats_after_write(server.url, info["key"], info, 5 if args.quick else 30)
        res["server_peak_rss_mb"] = server.peak_rss_mb()
    shutil.rmtree(work, ignore_errors=True)
    if base is not None:
        pg_admin(base, f"DROP DATABASE IF EXISTS {LIVE} WITH (FORCE)")
    md = f"Machine: {machine_info()}\n\nCommand: `{command_line()}`\n\n" + render(res)
    name = ("load-quick" if args.quick else "load") + ("-postgresql" if base is not None else "")
    path = save_result(name, res, md)
    print(md)
    print(f"\n(saved to {path})")
    return res
