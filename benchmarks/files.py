"""``files``: a big logs.txt served by ``/api/v2/experiments/{id}/files/{path}``, whole and by Range.

Side by side in one run: reading the same file from disk in the benchmark process (the page
cache is warm after the first pass, as it is for the server) against fetching it over HTTP with a
raw keep-alive client (``http.client``: httpx's own per-chunk costs would hide the server's). The
server's peak RSS is read before and after: streaming must not grow with the file.
"""

from __future__ import annotations

import argparse
import http.client
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.common import (
    WORK,
    OurServer,
    command_line,
    machine_info,
    markdown_table,
    save_result,
    summarize,
)

LINE = b"12:00:00 | step 123456 loss=0.123456 accuracy=0.987654 lr=0.000300 grad_norm=1.2345 (padding)\n"


def make_root(root: Path, megabytes: int) -> tuple[Path, str]:
    """A data root with one run whose logs.txt is ``megabytes`` MB."""
    import runicorn_lite

    run = runicorn_lite.init(project="bench", name="files", root=root, run_id="20250101_000000_f11e5b")
    run.log({"loss": 1.0}, step=1)
    run.finish()
    target = megabytes << 20
    block = LINE * (1 << 20 // len(LINE) + 1)
    with open(run.run_dir / "logs.txt", "wb") as fh:
        written = 0
        while written < target:
            part = block[: target - written]
            fh.write(part)
            written += len(part)
    return run.run_dir / "logs.txt", run.id


def _fetch(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> tuple[int, int]:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    total = 0
    while True:
        chunk = response.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    return response.status, total


def _disk_read(path: Path, start: int, length: int) -> int:
    with open(path, "rb") as fh:
        fh.seek(start)
        total = 0
        while total < length:
            chunk = fh.read(min(1 << 20, length - total))
            if not chunk:
                break
            total += len(chunk)
        return total


def main(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.root)
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} is not empty; choose a new --root")
    megabytes = 8 if args.quick else args.megabytes
    reps = 2 if args.quick else args.reps
    logs, run_id = make_root(root, megabytes)
    size = logs.stat().st_size
    path = f"/api/v2/experiments/{run_id}/files/logs.txt"
    cases = {
        "whole file": ({}, 0, size),
        "Range: middle 10 MB": ({"Range": f"bytes={size // 3}-{size // 3 + min(size // 2, 10 << 20) - 1}"},
                                size // 3, min(size // 2, 10 << 20)),
        "Range: last 64 KB (tail)": ({"Range": "bytes=-65536"}, size - 65536, 65536),
    }
    rows, results = [], {}
    with OurServer(root, "--no-watch") as server:
        server.wait_ready()
        rss_before = server.peak_rss_mb()
        parts = urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        for name, (headers, start, length) in cases.items():
            _fetch(conn, path, headers)  # warm-up: page cache and connection
            _disk_read(logs, start, length)
            disk, http_s = [], []
            for _ in range(reps):
                t0 = time.perf_counter()
                assert _disk_read(logs, start, length) == length
                disk.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                status, got = _fetch(conn, path, headers)
                http_s.append(time.perf_counter() - t0)
                assert got == length and status == (206 if headers else 200), (status, got, length)
            d, h = summarize(disk)["median_ms"] / 1000, summarize(http_s)["median_ms"] / 1000
            mb = length / (1 << 20)
            results[name] = {"bytes": length, "disk_s": d, "http_s": h}
            rows.append([name, f"{mb:,.2f}", f"{mb / d:,.0f}", f"{mb / h:,.0f}", f"{h / d:.1f}x"])
        conn.close()
        rss_after = server.peak_rss_mb()
    table = markdown_table(["request", "MB", "disk read MB/s", "HTTP MB/s", "HTTP / disk time"], rows)
    rss = f"server peak RSS: {rss_before:.0f} MB before, {rss_after:.0f} MB after serving {megabytes} MB files"
    markdown = (f"{machine_info()}\n\n`{command_line()}` ({reps} repetitions, median; one {megabytes} MB "
                f"logs.txt)\n\n{table}\n\n{rss}")
    print(markdown)
    payload = {"megabytes": megabytes, "results": results, "rss_before_mb": rss_before, "rss_after_mb": rss_after}
    save_result("files-quick" if args.quick else "files", payload, markdown)
    return payload


def add_parser(sub: Any) -> None:
    f = sub.add_parser("files", help="a big logs.txt through files/{path}, whole and by Range, against disk")
    f.add_argument("--root", type=Path, default=WORK / "files-root", help="a new, empty data root")
    f.add_argument("--megabytes", type=int, default=50)
    f.add_argument("--reps", type=int, default=10)
    f.add_argument("--quick", action="store_true", help="8 MB, 2 repetitions")
