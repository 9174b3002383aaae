"""Our database threads beside aiosqlite: the same read requests, at the same concurrency.

The store runs plain ``sqlite3`` on a few dedicated threads (``runicorn_lite.db.in_db_thread``):
a request's whole read, all its statements in one snapshot, is one hop from the event loop to a
database thread and back. aiosqlite, the library first named for the store, gives each
connection a thread of its own and makes every statement (and every fetch) an awaited hop.

Three ways to serve the same requests, on one event loop, over one index:

- ``threads``: ``in_db_thread(db.read, request)``, what the server does (``DB_THREADS`` threads);
- ``aiosqlite xN``: a pool of ``DB_THREADS`` aiosqlite connections, a request takes one;
- ``aiosqlite x1``: one aiosqlite connection for everything (its usual use).

Requests, in turn: a V2 list page (count + page of one project, newest first), a detail (the
run's row and its metric summary) and a curve (every metric chunk of a run, unpacked). Each
opens a read transaction, as the server's reads do. Modes alternate in rounds, so a drift of
the machine spreads over all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from benchmarks.common import WORK, fmt_ms, machine_info, markdown_table, save_result, summarize
from runicorn_lite.db import DB_THREADS, in_db_thread
from runicorn_lite.db.chunks import unpack
from runicorn_lite.ingest import open_index
from runicorn_lite.queries.experiments import EXPERIMENT_COLUMNS, ExperimentFilter, order_clause, where_clause

Statements = list[tuple[str, Sequence[Any]]]
CONNECTION_PRAGMAS = ("PRAGMA busy_timeout = 10000", "PRAGMA temp_store = MEMORY", "PRAGMA cache_size = -16000",
                      "PRAGMA query_only = ON")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dbthreads", help="our database threads beside aiosqlite (same queries, same concurrency)")
    p.add_argument("--root", type=Path, default=WORK / "corpus-10k", help="corpus written by `generate`")
    p.add_argument("--clients", default="1,16", help="concurrent clients (comma list)")
    p.add_argument("--seconds", type=float, default=4.0, help="per mode, client count and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--quick", action="store_true")


def _index(root: Path) -> Path:
    """An index of the corpus in the work folder (built once; the corpus is not written to)."""
    path = WORK / "dbthreads" / f"{root.name}.sqlite"
    stamp = path.with_suffix(".done")
    if not stamp.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        db, indexer = open_index(path, root)
        try:
            indexer.scan()
        finally:
            db.close()
        stamp.write_text("indexed\n")
    return path


def _request_set(path: Path, seed: int = 7) -> list[tuple[str, Statements]]:
    """(kind, statements) for a few of the corpus's projects and runs."""
    conn = sqlite3.connect(path)
    try:
        projects = [r[0] for r in conn.execute("SELECT DISTINCT project FROM experiments ORDER BY project")]
        runs = conn.execute("SELECT pk, id FROM experiments WHERE n_points > 0 ORDER BY pk").fetchall()
    finally:
        conn.close()
    rng = random.Random(seed)
    order = order_clause("created_at", True)
    out: list[tuple[str, Statements]] = []
    for _ in range(8):
        where, params = where_clause(ExperimentFilter(project=rng.choice(projects)))
        out.append(("list", [(f"SELECT count(*) FROM experiments WHERE {where}", params),
                             (f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE {where} ORDER BY {order} LIMIT 50",
                              params)]))
        pk, exp_id = rng.choice(runs)
        out.append(("detail", [(f"SELECT pk, {EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?", (exp_id,)),
                               ("SELECT coalesce(sum(n), 0), min(min_step), max(max_step) FROM metric_chunks"
                                " WHERE exp_pk = ?", (pk,)),
                               ("SELECT DISTINCT metric FROM metric_chunks WHERE exp_pk = ?", (pk,))]))
        pk, _ = rng.choice(runs)
        out.append(("curve", [("SELECT metric, steps, vals FROM metric_chunks WHERE exp_pk = ? ORDER BY metric, chunk",
                               (pk,))]))
    return out


def _finish(kind: str, results: list[list[Any]]) -> int:
    """The work a handler does with the rows (the curve's chunks are unpacked); a checksum."""
    if kind == "curve":
        return sum(len(unpack(steps, vals)[0]) for _, steps, vals in results[0])
    return sum(len(rows) for rows in results)


# ---- the three ways --------------------------------------------------------------------------------

Runner = Callable[[str, Statements], Awaitable[int]]


def _threads(path: Path) -> tuple[Runner, Callable[[], Awaitable[None]]]:
    from runicorn_lite.db import Database

    db = Database(path)

    def read(kind: str, statements: Statements) -> int:
        return db.read(lambda conn: _finish(kind, [conn.execute(sql, p).fetchall() for sql, p in statements]))

    async def run(kind: str, statements: Statements) -> int:
        return await in_db_thread(read, kind, statements)

    async def close() -> None:
        db.close()

    return run, close


class _Pool:
    """Connections handed out first come, first served (an asyncio.Queue lets the task that
    just gave one back take it again before the waiting ones run, which starves them)."""

    def __init__(self, connections: list[aiosqlite.Connection]) -> None:
        self.free = list(connections)
        self.waiting: collections.deque[asyncio.Future[aiosqlite.Connection]] = collections.deque()

    async def get(self) -> aiosqlite.Connection:
        if self.free and not self.waiting:
            return self.free.pop()
        future: asyncio.Future[aiosqlite.Connection] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        return await future

    def put(self, conn: aiosqlite.Connection) -> None:
        if self.waiting:
            self.waiting.popleft().set_result(conn)
        else:
            self.free.append(conn)


async def _aiosqlite(path: Path, connections: int) -> tuple[Runner, Callable[[], Awaitable[None]]]:
    opened = []
    for _ in range(connections):
        conn = await aiosqlite.connect(path, isolation_level=None)
        for pragma in CONNECTION_PRAGMAS:
            await conn.execute(pragma)
        opened.append(conn)
    pool = _Pool(opened)

    async def run(kind: str, statements: Statements) -> int:
        conn = await pool.get()
        try:
            await conn.execute("BEGIN")
            try:
                results = []
                for sql, params in statements:
                    async with conn.execute(sql, params) as cursor:
                        results.append(list(await cursor.fetchall()))
            finally:
                await conn.execute("COMMIT")
            return _finish(kind, results)
        finally:
            pool.put(conn)

    async def close() -> None:
        for conn in opened:
            await conn.close()

    return run, close


async def _measure(run: Runner, requests: list[tuple[str, Statements]], clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < deadline:
            kind, statements = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            await run(kind, statements)
            latencies.append(time.perf_counter() - started)
            done += 1

    for kind, statements in requests[:3]:  # warm the connections and the page cache
        await run(kind, statements)
    started = time.perf_counter()
    await asyncio.gather(*(client(k * 7) for k in range(clients)))
    elapsed = time.perf_counter() - started
    return {"requests": done, "seconds": elapsed, "latencies": latencies}


MODES = ("threads", "aiosqlite xN", "aiosqlite x1")


async def _run(path: Path, clients_list: list[int], seconds: float, rounds: int) -> dict[str, Any]:
    requests = _request_set(path)
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for _round in range(rounds):
        for clients in clients_list:
            for mode in MODES:
                if mode == "threads":
                    run, close = _threads(path)
                else:
                    run, close = await _aiosqlite(path, DB_THREADS if mode == "aiosqlite xN" else 1)
                try:
                    got = await _measure(run, requests, clients, seconds)
                finally:
                    await close()
                cell = cells.setdefault((mode, clients), {"requests": 0, "seconds": 0.0, "latencies": []})
                cell["requests"] += got["requests"]
                cell["seconds"] += got["seconds"]
                cell["latencies"] += got["latencies"]
                print(f"  round {_round + 1}: {mode:<13} {clients:>3} clients: "
                      f"{got['requests'] / got['seconds']:,.0f} req/s", flush=True)
    rows = []
    for (mode, clients), cell in cells.items():
        stats = summarize(cell["latencies"])
        rows.append({"mode": mode, "clients": clients, "rps": cell["requests"] / cell["seconds"],
                     "p50_ms": stats["median_ms"], "p99_ms": stats["p99_ms"], "requests": cell["requests"]})
    return {"rows": rows, "db_threads": DB_THREADS, "requests_in_turn": len(requests)}


def render(res: dict[str, Any]) -> str:
    base = {r["clients"]: r["rps"] for r in res["rows"] if r["mode"] == "threads"}
    table = [
        [f"`{r['mode']}`", r["clients"], f"{r['rps']:,.0f}", f"{r['rps'] / base[r['clients']]:.2f}x",
         fmt_ms(r["p50_ms"]), fmt_ms(r["p99_ms"])]
        for r in sorted(res["rows"], key=lambda r: (r["clients"], MODES.index(r["mode"])))
    ]
    return (
        f"Read requests (list page / detail / curve in turn) over one index, {res['db_threads']} database "
        "threads or connections (`x1`: one connection), one event loop; throughput relative to `threads`.\n\n"
        + markdown_table(["mode", "clients", "requests/s", "vs threads", "p50", "p99"], table)
    )


def main(args: argparse.Namespace) -> dict[str, Any]:
    clients = [int(c) for c in str(args.clients).split(",")]
    seconds, rounds = (0.3, 1) if args.quick else (args.seconds, args.rounds)
    print(machine_info(), flush=True)
    path = _index(args.root)
    res = asyncio.run(_run(path, clients, seconds, rounds))
    res.update({"corpus": str(args.root.name), "seconds": seconds, "rounds": rounds})
    markdown = render(res)
    print(markdown, flush=True)
    save_result("dbthreads-quick" if args.quick else "dbthreads", res, markdown)
    return res
