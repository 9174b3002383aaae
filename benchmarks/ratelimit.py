"""What a rate-limit hit of the optimization API costs: counted in memory (one process's
counters, as before) or in the primary store (shared by every server over it), on SQLite and
on PostgreSQL.

Each client is a thread calling ``limiter.hit`` as a request does (one of three buckets, one of
four projects), as fast as it can; a hit in the store is one upsert in a write transaction.
Clients 1 and ``DB_THREADS`` (the optimization API's database threads: its concurrency).
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import fmt_ms, machine_info, markdown_table, save_result, summarize
from runicorn_lite.db import DB_THREADS
from runicorn_lite.http.ratelimit import Decision, FixedWindowLimiter
from runicorn_lite.optimization.limits import StoreLimiter
from runicorn_lite.optimization.store import open_primary
from runicorn_lite.settings import Settings

DEFAULT_URL = "postgresql://root@127.0.0.1:5432/root"
BUCKETS = ("read", "write", "iterations")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ratelimit", help="a rate-limit hit in memory, in SQLite, in PostgreSQL")
    p.add_argument("--database", default=os.environ.get("RUNICORN_LITE_DATABASE") or DEFAULT_URL,
                   help="PostgreSQL to measure in (a schema of its own, dropped after)")
    p.add_argument("--seconds", type=float, default=3.0, help="per backend and client count")
    p.add_argument("--quick", action="store_true", help="0.5 s each")


@contextmanager
def _schema(url: str) -> Iterator[str]:
    import psycopg

    schema = f"bench_{secrets.token_hex(5)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.urlencode([("options", f"-csearch_path={schema},public")])
    try:
        yield urllib.parse.urlunsplit(parts._replace(query=query))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _measure(hit: Callable[[str, str, int], Decision], clients: int, seconds: float) -> dict[str, Any]:
    samples: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        own = samples[i]
        n = i
        while time.perf_counter() < stop:
            started = time.perf_counter()
            hit(BUCKETS[n % 3], f"project-{n % 4}", 10**12)
            own.append(time.perf_counter() - started)
            n += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [s for own in samples for s in own]
    return {"hits_per_s": len(flat) / seconds, **summarize(flat)}


def main(args: argparse.Namespace) -> None:
    seconds = 0.5 if args.quick else args.seconds
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp, _schema(args.database) as pg_url:
        stores = {
            "memory": None,
            "SQLite store": open_primary(Settings(root=Path(tmp), database=None)),
            "PostgreSQL store": open_primary(Settings(root=Path(tmp), database=pg_url)),
        }
        try:
            for clients in (1, DB_THREADS):
                for name, db in stores.items():
                    limiter = FixedWindowLimiter() if db is None else StoreLimiter(db)
                    result = _measure(limiter.hit, clients, seconds)
                    results[f"{name} x{clients}"] = result
                    rows.append((name, clients, f"{result['hits_per_s']:,.0f}", fmt_ms(result["median_ms"]),
                                 fmt_ms(result["p99_ms"])))
        finally:
            for db in stores.values():
                if db is not None:
                    db.close()
    markdown = (
        f"Run: {machine_info()}  \nReproduce: `python -m benchmarks ratelimit`\n\n"
        + markdown_table(["counters", "clients", "hits/s", "p50", "p99"], rows)
    )
    print(markdown)
    save_result("ratelimit-quick" if args.quick else "ratelimit", {"results": results}, markdown)
