"""Shared helpers: our server as a subprocess, timing statistics, markdown tables, machine info."""

from __future__ import annotations

import datetime as _dt
import functools
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlencode, urlsplit

import httpx
import orjson

from tests.devserver import LoggedProcess, ServerProcess

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# Scratch space (corpora, databases, logs, results); BENCH_WORK moves it (the tests use a tmp dir).
WORK = Path(os.environ.get("BENCH_WORK") or BENCH_DIR / ".work")
RESULTS = WORK / "results"
# The peers' virtualenvs always live in benchmarks/.work (installed once, see README).
PEER_VENVS = BENCH_DIR / ".work"


# ---- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank-with-interpolation percentile (q in 0..100) of ``values``."""
    if not values:
        return float("nan")
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(samples_s: Sequence[float]) -> dict[str, float]:
    """Median / p95 / p99 / mean in milliseconds."""
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "median_ms": statistics.median(ms) if ms else float("nan"),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
    }


def time_calls(fn: Callable[[], object], reps: int, warmup: int) -> list[float]:
    """Wall-clock seconds of ``reps`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def fmt_ms(v: float | None) -> str:
    if v is None or v != v:
        return "–"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


def fmt_ratio(v: float | None) -> str:
    if v is None or v != v:
        return "–"
    if v >= 100:
        return f"{v:,.0f}x"
    if v >= 10:
        return f"{v:.1f}x"
    return f"{v:.2f}x"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


@functools.cache
def machine_info() -> str:
    """Date, machine and package commit. Cached: ``python -m benchmarks`` calls it once at the
    start, so a table is stamped with the commit it measured even if the tree moves meanwhile."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GB RAM"
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "runicorn_lite"], cwd=REPO,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        commit = f"commit {commit}{' + uncommitted changes in runicorn_lite/' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        commit = "commit unknown"
    return (
        f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC; {platform.system()} {platform.release()}; "
        f"nproc={os.cpu_count()}; {cpu}; {mem}; Python {platform.python_version()}; {commit}"
    )


def save_result(name: str, payload: dict[str, Any], markdown: str) -> Path:
    """Write ``<name>.json`` and ``<name>.md`` under $BENCH_WORK/results (default benchmarks/.work/results)."""
    out = RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    (out / f"{name}.md").write_text(markdown + "\n")
    return out / f"{name}.md"


def command_line() -> str:
    return "python -m benchmarks " + " ".join(sys.argv[1:])


# ---- a raw HTTP client --------------------------------------------------------------------------


class RawResponse:
    """What the benchmarks read of an answer (the names httpx uses, so query functions take
    either client)."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


def _query_value(value: object) -> str:
    # As httpx writes them, so both clients send the same URL.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class RawClient:
    """One keep-alive HTTP/1.1 connection through ``http.client``, with httpx's ``get``/``post``.

    httpx adds 0.25-0.7 ms of its own to each request on a 2-core machine (more on a slow one),
    about what a V2 page costs the server, so it hides most of what a fast server does; this
    client adds a few tens of µs. A request
    whose connection the server closed meanwhile is sent again once on a new connection (every
    request the benchmarks send is idempotent).
    """

    def __init__(self, base_url: str, timeout: float = 600.0) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            conn.connect()
            assert conn.sock is not None
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def request(self, method: str, path: str, params: dict[str, Any] | None = None, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> RawResponse:
        if params:
            path += ("&" if "?" in path else "?") + urlencode({k: _query_value(v) for k, v in params.items()})
        hdrs = {"Accept-Encoding": "identity", **(headers or {})}
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
                content = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
                continue
            if resp.will_close:
                self.close()
            return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, content)
        raise AssertionError("unreachable")

    def get(self, path: str, params: dict[str, Any] | None = None) -> RawResponse:
        return self.request("GET", path, params)

    def post(self, path: str, json: Any = None) -> RawResponse:
        return self.request("POST", path, body=orjson.dumps(json), headers={"Content-Type": "application/json"})

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- processes ----------------------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, in MB (Linux)."""
    return _status_mb(pid, "VmHWM:")


def rss_mb(pid: int) -> float | None:
    """VmRSS (resident set now) of a live process, in MB (Linux)."""
    return _status_mb(pid, "VmRSS:")


def _status_mb(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak_rss(pid: int) -> bool:
    """Lower a process's VmHWM to its RSS now (Linux ``clear_refs`` 5), so the next reading is
    the peak of what it did since: one server measures each request's own peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run_measured(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run a command to its end: (wall seconds, its peak RSS in MB from the kernel's accounting
    at exit (``wait4``'s ``ru_maxrss``), its output). Fails on a non-zero exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out


def tree_peak_rss_mb(pid: int) -> float | None:
    """Peak RSS of a process plus its live children (servers that fork workers)."""
    total = peak_rss_mb(pid)
    if total is None:
        return None
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        total += tree_peak_rss_mb(int(child)) or 0
    return total


class Server(LoggedProcess):
    """A peer's server (the real Runicorn viewer, MLflow); ``url`` is set once it answers."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        super().__init__(argv, log_path=log_path, env=env, cwd=cwd)
        self.url = ""

    def wait_http(
        self, url: str, probe: str, timeout: float = 120.0, ok: Callable[[httpx.Response], bool] | None = None
    ) -> float:
        """Poll ``url + probe`` until it answers (``ok``); returns seconds since launch."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited early; see {self.log_path}:\n{self.tail()}")
                try:
                    resp = client.get(url + probe)
                    if ok is None or ok(resp):
                        self.url = url
                        return time.perf_counter() - self.started
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        raise TimeoutError(f"server did not answer in {timeout} s; see {self.log_path}:\n{self.tail()}")

    def peak_rss_mb(self) -> float | None:
        return tree_peak_rss_mb(self.proc.pid)


class OurServer(ServerProcess):
    """``runicorn-lite serve --root DIR --port 0`` (from the Python running the benchmark), its
    output in the work folder's logs."""

    ready_timeout_s = 600.0

    def __init__(self, root: Path, *args: str, log_path: Path | None = None) -> None:
        log_path = log_path or (WORK / "logs" / f"serve-{os.getpid()}-{int(time.time() * 1000)}.log")
        super().__init__(root, *args, log_path=log_path)

    def peak_rss_mb(self) -> float | None:
        return tree_peak_rss_mb(self.proc.pid)


def copy_runs(src: Path, dest: Path) -> Path:
    """Copy a corpus's run directories (not our store) to ``dest`` (replacing it)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(src / "runs", dest / "runs")
    return dest


def drop_index(root: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root}/.runicorn_lite/index.sqlite{suffix}").unlink(missing_ok=True)


class Background(threading.Thread):
    """A daemon thread running ``fn(stop_event)``."""

    def __init__(self, fn: Callable[[threading.Event], None]) -> None:
        super().__init__(daemon=True)
        self.stop_event = threading.Event()
        self._fn = fn

    def run(self) -> None:
        self._fn(self.stop_event)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)


# ---- PostgreSQL databases of the benchmarks ------------------------------------------------------


def database_url(base: str, name: str, driver: str | None = None) -> str:
    """``base`` (a libpq URL) naming the database ``name`` instead (and the scheme ``driver``)."""
    parts = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((driver or parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def pg_admin(base: str, *statements: str) -> None:
    """Run ``statements`` on ``base`` outside a transaction (CREATE / DROP DATABASE)."""
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def database_exists(base: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
