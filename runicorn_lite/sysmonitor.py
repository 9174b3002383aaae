"""CPU, memory and disk of this machine, in the shape of Runicorn's ``/api/system/monitor``.

Runicorn reads them through psutil and blocks 1.5 s per request to measure CPU use; here they
come from Linux's ``/proc`` without a dependency, and CPU use is the share since the previous
request (the first request measures over 0.2 s). Where ``/proc`` is missing (not Linux) the
answer is Runicorn's own when it cannot measure: ``{"available": false, "reason": ...}``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import threading
import time
from pathlib import Path
from typing import Any

PROC = Path("/proc")
FIRST_SAMPLE_S = 0.2
_lock = threading.Lock()
_last: dict[str, tuple[int, int]] = {}  # cpu line name → (busy, total) jiffies at the previous call


def _cpu_times() -> dict[str, tuple[int, int]]:
    """``{"cpu": (busy, total), "cpu0": ..., ...}`` from /proc/stat."""
    out = {}
    for line in (PROC / "stat").read_text().splitlines():
        if not line.startswith("cpu"):
            continue
        name, *fields = line.split()
        values = [int(v) for v in fields[:8]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total = sum(values)
        out[name] = (total - idle, total)
    return out


def _percent(now: tuple[int, int], before: tuple[int, int] | None) -> float:
    if before is None or now[1] <= before[1]:
        return 0.0
    return round(100.0 * max(0, now[0] - before[0]) / (now[1] - before[1]), 1)


def cpu_percents() -> tuple[float, list[float]]:
    """(overall %, per core %) since the previous call."""
    with _lock:
        if not _last:
            _last.update(_cpu_times())
            time.sleep(FIRST_SAMPLE_S)
        now = _cpu_times()
        before = dict(_last)
        _last.clear()
        _last.update(now)
    cores = sorted((k for k in now if k != "cpu"), key=lambda k: int(k[3:]))
    return _percent(now["cpu"], before.get("cpu")), [_percent(now[k], before.get(k)) for k in cores]


def _cpuinfo() -> tuple[int | None, float | None]:
    """(physical cores, mean current MHz) from /proc/cpuinfo."""
    cores: set[tuple[str, str]] = set()
    mhz: list[float] = []
    physical = core = ""
    for line in (PROC / "cpuinfo").read_text().splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "physical id":
            physical = value
        elif key == "core id":
            core = value
            cores.add((physical, core))
        elif key == "cpu MHz":
            with contextlib.suppress(ValueError):
                mhz.append(float(value))
    return (len(cores) or None), (sum(mhz) / len(mhz) if mhz else None)


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out = {}
    for line in (PROC / "meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def _disk_io() -> dict[str, int] | None:
    """Reads and writes of the whole disks (not their partitions), as psutil sums them."""
    try:
        disks = set(os.listdir("/sys/block"))
        lines = (PROC / "diskstats").read_text().splitlines()
    except OSError:
        return None
    reads = writes = read_sectors = write_sectors = 0
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[2] not in disks or fields[2].startswith(("loop", "ram")):
            continue
        reads, read_sectors = reads + int(fields[3]), read_sectors + int(fields[5])
        writes, write_sectors = writes + int(fields[7]), write_sectors + int(fields[9])
    return {"read_bytes": read_sectors * 512, "write_bytes": write_sectors * 512, "read_count": reads,
            "write_count": writes}


def system_metrics() -> dict[str, Any]:
    """The body of ``GET /api/system/monitor``."""
    if not (PROC / "stat").is_file():
        return {"available": False, "reason": "system metrics are read from /proc, which this system lacks"}
    try:
        percent, per_core = cpu_percents()
        physical, mhz = _cpuinfo()
        mem = _meminfo()
        disk = shutil.disk_usage("/")
    except (OSError, ValueError, KeyError) as exc:
        return {"available": False, "reason": str(exc)}
    total, available = mem.get("MemTotal", 0), mem.get("MemAvailable", mem.get("MemFree", 0))
    cached = mem.get("Cached", 0) + mem.get("SReclaimable", 0)
    used = total - mem.get("MemFree", 0) - mem.get("Buffers", 0) - cached
    swap_total = mem.get("SwapTotal", 0)
    swap_used = swap_total - mem.get("SwapFree", 0)
    logical = os.cpu_count()
    return {
        "available": True,
        "ts": time.time(),
        "cpu": {
            "percent": percent,
            "count": physical or logical,
            "logical_count": logical,
            "per_core": per_core,
            "frequency": {"current": mhz, "min": 0.0, "max": 0.0} if mhz is not None else None,
            "load_avg": list(os.getloadavg()),
        },
        "memory": {
            "total": total,
            "available": available,
            "used": max(used, 0),
            "percent": round(100.0 * (total - available) / total, 1) if total else 0.0,
            "swap_total": swap_total,
            "swap_used": swap_used,
            "swap_percent": round(100.0 * swap_used / swap_total, 1) if swap_total else 0.0,
        },
        "disk": {
            "path": "/",
            "total": disk.total,
            "used": disk.used,
            "free": disk.free,
            "percent": round(100.0 * disk.used / (disk.used + disk.free), 1) if disk.used + disk.free else 0.0,
            "io": _disk_io(),
        },
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine()},
    }
