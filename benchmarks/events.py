"""``events``: the live event stream (``/api/v2/events``) against a generated corpus.

1. Latency: a training script (here, in this process, through the SDK) logs a point; the time
   until an SSE client receives the ``metrics`` event that covers it. Twice: ``log()`` alone (the
   SDK's background thread flushes within 0.2 s) and ``log()`` + ``flush()`` (the SDK's buffering
   shown apart: file watcher → ingest → hub → stream).
2. Load: V2 list latency and the server's memory with 0 and with 100 open streams, in
   alternating rounds, while a script logs 20 points a second (every stream gets every event).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from benchmarks.common import (
    WORK,
    OurServer,
    command_line,
    machine_info,
    markdown_table,
    percentile,
    rss_mb,
    save_result,
)

TRAINER_PROJECT = "bench_live_events"


def _live_rss_mb(pid: int) -> float:
    value = rss_mb(pid)
    if value is None:
        raise RuntimeError(f"the server (pid {pid}) is gone")
    return value


class Clients:
    """``n`` SSE clients on one event loop in a thread; counts the events they receive."""

    def __init__(self, url: str, n: int, path: str = "/api/v2/events") -> None:
        self.url, self.n, self.path = url, n, path
        self.opened = 0
        self.events = 0
        self.received: list[tuple[float, bytes]] = []  # (time, event block) of the first client
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        if not self.ready.wait(60):
            raise TimeoutError(f"only {self.opened} of {n} streams opened")

    async def _one(self, http: httpx.AsyncClient, first: bool) -> None:
        async with http.stream("GET", self.path) as response:
            assert response.status_code == 200, response.status_code
            self.opened += 1
            if self.opened == self.n:
                self.ready.set()
            buf = b""
            async for chunk in response.aiter_raw():
                self.events += chunk.count(b"\nevent: ")
                if first:
                    buf += chunk
                    while b"\n\n" in buf:
                        block, buf = buf.split(b"\n\n", 1)
                        self.received.append((time.time(), block))

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.n + 10, max_keepalive_connections=self.n + 10)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=httpx.Timeout(30, read=None)) as http:
            tasks = [asyncio.create_task(self._one(http, i == 0)) for i in range(self.n)]
            while not self.stop.is_set():
                await asyncio.sleep(0.02)
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


class ClientsProcess:
    """``n`` SSE clients in a process of their own, so that parsing their events does not compete
    for this process's GIL with the requests being timed."""

    def __init__(self, url: str, n: int) -> None:
        code = "import sys; from benchmarks.events import clients_main; clients_main(sys.argv[1], int(sys.argv[2]))"
        self.proc = subprocess.Popen([sys.executable, "-c", code, url, str(n)], cwd=Path(__file__).parent.parent,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"SSE clients did not start: {line!r}")
        self.events = 0

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.events = int(self.proc.stdout.readline().strip() or 0)
        self.proc.wait(30)


def clients_main(url: str, n: int) -> None:
    """The body of :class:`ClientsProcess`: open the streams, say "ready", print the number of
    events received once stdin closes."""
    clients = Clients(url, n)
    print("ready", flush=True)
    sys.stdin.read()
    clients.close()
    print(clients.events, flush=True)


def _latency(server: OurServer, root: Path, points: int, interval: float, flush: bool) -> list[float]:
    """Seconds from log() to the client receiving the metrics event that covers the point."""
    import runicorn_lite

    run_id = f"20250101_000000_{'f1' if flush else 'a0'}{int(time.time()) % 0xFFFF:04x}"
    clients = Clients(server.url, 1, f"/api/v2/events?experiment_id={run_id}")
    logged: dict[int, float] = {}
    try:
        run = runicorn_lite.init(project=TRAINER_PROJECT, name="trainer", root=root, run_id=run_id)
        time.sleep(1.0)  # the run's first appearance is not what is timed
        for step in range(1, points + 1):
            logged[step] = time.time()
            run.log({"loss": 1 / step}, step=step)
            if flush:
                run.flush()
            time.sleep(interval)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            b"event: metrics" in b and f'"last_step":{points},'.encode() in b for _, b in clients.received
        ):
            time.sleep(0.02)
        run.finish()
    finally:
        clients.close()
    seen: dict[int, float] = {}
    for at, block in clients.received:
        if b"event: metrics" not in block:
            continue
        last = int(block.split(b'"last_step":', 1)[1].split(b",", 1)[0])
        for step in range(1, last + 1):
            seen.setdefault(step, at)
    missing = [s for s in logged if s not in seen]
    if missing:
        raise RuntimeError(f"{len(missing)} points never announced (first: step {missing[0]})")
    return [seen[s] - logged[s] for s in logged]


def _list_latency(url: str, reps: int) -> list[float]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        conn.request("GET", "/api/v2/experiments?per_page=50")
        response = conn.getresponse()
        response.read()
        out.append(time.perf_counter() - t0)
        assert response.status == 200
    conn.close()
    return out


def _trainer(root: Path, stop: threading.Event, logged: list[int]) -> None:
    import runicorn_lite

    run = runicorn_lite.init(project=TRAINER_PROJECT, name="background", root=root)
    step = 0
    while not stop.is_set():
        step += 1
        run.log({"loss": 1 / step}, step=step)
        run.flush()
        logged[0] = step
        stop.wait(0.05)
    run.finish()


def _load_rounds(server: OurServer, root: Path, n_clients: int, rounds: int, reps: int,
                 trainer: bool) -> dict[str, Any]:
    """List latency and server RSS in rounds alternating 0 and ``n_clients`` open streams."""
    stop, logged = threading.Event(), [0]
    thread = threading.Thread(target=_trainer, args=(root, stop, logged), daemon=True)
    if trainer:
        thread.start()
    pid = server.proc.pid
    with_streams = f"{n_clients} streams"
    samples: dict[str, list[float]] = {"0 streams": [], with_streams: []}
    medians: dict[str, list[float]] = {k: [] for k in samples}
    rss: dict[str, list[float]] = {k: [] for k in samples}
    events = 0
    try:
        _list_latency(server.url, reps)  # warm-up
        for _ in range(rounds):
            rss["0 streams"].append(_live_rss_mb(pid))
            got = _list_latency(server.url, reps)
            samples["0 streams"] += got
            medians["0 streams"].append(statistics.median(got))
            clients = ClientsProcess(server.url, n_clients)
            time.sleep(0.5)
            rss[with_streams].append(_live_rss_mb(pid))
            got = _list_latency(server.url, reps)
            samples[with_streams] += got
            medians[with_streams].append(statistics.median(got))
            clients.close()
            events += clients.events
            time.sleep(0.5)
    finally:
        stop.set()
        if trainer:
            thread.join(10)
    out: dict[str, Any] = {k: {"median_ms": statistics.median(v) * 1000, "p95_ms": percentile(v, 95) * 1000,
                               "round_medians_ms": [m * 1000 for m in medians[k]], "rss_mb": rss[k]}
                           for k, v in samples.items()}
    without = out["0 streams"]["round_medians_ms"]
    out["delta_ms"] = out[with_streams]["median_ms"] - out["0 streams"]["median_ms"]
    out["round_deltas_ms"] = [b - a for a, b in zip(without, out[with_streams]["round_medians_ms"], strict=True)]
    out["noise_ms"] = max(without) - min(without)
    out["rss_cost_mb"] = max(b - a for a, b in zip(rss["0 streams"], rss[with_streams], strict=True))
    out["events"] = events
    return out


def main(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.root)
    points = 10 if args.quick else args.points
    n_clients = 10 if args.quick else args.clients
    rounds = 2 if args.quick else args.rounds
    reps = 20 if args.quick else args.reps
    shutil.rmtree(root / "runs" / TRAINER_PROJECT, ignore_errors=True)
    payload: dict[str, Any] = {}
    try:
        with OurServer(root, "--rescan-interval", "0") as server:
            server.wait_ready()
            lat = {
                "log()": _latency(server, root, points, args.interval, flush=False),
                "log() + flush()": _latency(server, root, points, args.interval, flush=True),
            }
            payload["latency"] = {k: {"p50_ms": percentile(v, 50) * 1000, "p95_ms": percentile(v, 95) * 1000,
                                      "max_ms": max(v) * 1000, "n": len(v)} for k, v in lat.items()}

            payload["load"] = {
                "quiet": _load_rounds(server, root, n_clients, rounds, reps, trainer=False),
                "20 points/s logged": _load_rounds(server, root, n_clients, rounds, reps, trainer=True),
            }
    finally:
        shutil.rmtree(root / "runs" / TRAINER_PROJECT, ignore_errors=True)
    lat_rows = [[k, f"{v['p50_ms']:.0f} ms", f"{v['p95_ms']:.0f} ms", f"{v['max_ms']:.0f} ms", v["n"]]
                for k, v in payload["latency"].items()]
    load_rows, notes = [], []
    for phase, res in payload["load"].items():
        for k in ("0 streams", f"{n_clients} streams"):
            v = res[k]
            load_rows.append([phase, k, f"{v['median_ms']:.2f} ms", f"{v['p95_ms']:.2f} ms",
                              " / ".join(f"{m:.2f}" for m in v["round_medians_ms"]),
                              " / ".join(f"{m:.1f}" for m in v["rss_mb"])])
        notes.append(
            f"- {phase}: {n_clients} streams moved the median by {res['delta_ms']:+.3f} ms; round by round"
            f" (with minus without) {' / '.join(f'{d:+.3f}' for d in res['round_deltas_ms'])} ms, against a spread of"
            f" {res['noise_ms']:.3f} ms between rounds without streams; server RSS +{res['rss_cost_mb']:.1f} MB at"
            f" most; {res['events']:,} events delivered to the streams"
        )
    markdown = "\n".join([
        machine_info(), "", f"`{command_line()}`", "",
        f"Training script `log()` → `metrics` event received ({points} points, one every {args.interval} s):", "",
        markdown_table(["path", "p50", "p95", "max", "points"], lat_rows), "",
        f"V2 list (page of 50), {reps} requests per round, {rounds} rounds alternating 0 and {n_clients} open"
        " streams; quiet, then while a script logs 20 points a second (every stream gets every event):", "",
        markdown_table(["while", "open SSE streams", "median", "p95", "round medians (ms)", "server RSS (MB)"],
                       load_rows),
        "", *notes,
    ])
    print(markdown)
    save_result("events-quick" if args.quick else "events", payload, markdown)
    return payload


def add_parser(sub: Any) -> None:
    e = sub.add_parser("events", help="live events: log() → SSE latency; 100 streams vs list latency and memory")
    e.add_argument("--root", type=Path, default=WORK / "corpus-10k", help="a corpus written by `generate`")
    e.add_argument("--points", type=int, default=100, help="points timed per latency path")
    e.add_argument("--interval", type=float, default=0.1, help="seconds between timed points")
    e.add_argument("--clients", type=int, default=100)
    e.add_argument("--rounds", type=int, default=5)
    e.add_argument("--reps", type=int, default=300, help="list requests per round")
    e.add_argument("--quick", action="store_true", help="10 points, 10 clients, 2 rounds of 20 requests")
