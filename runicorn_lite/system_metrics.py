"""``init(system_metrics=True)``: a background thread that samples the machine into the run.

Every ``interval`` seconds one metrics event of ``sys/…`` keys: CPU and memory of the machine,
the training process's RSS, disk and network traffic since the run started (MB), and for every
NVIDIA GPU that NVML reports (``nvidia-ml-py``, imported as ``pynvml``) its utilisation, memory,
temperature and power. The event's ``global_step`` is the sample number, its ``time`` the wall
time; readers keep these steps apart from the training steps (``rundir.is_system_event``).

psutil and NVML are optional: without psutil there are no samples (one warning); without NVML
or without a driver there are no GPU keys. A sampler that fails logs one warning and stops: it
never raises into training.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from runicorn_lite.rundir import SYSTEM_PREFIX

log = logging.getLogger("runicorn_lite")

ENV_SWITCH = "RUNICORN_LITE_SYSTEM_METRICS"
DEFAULT_INTERVAL_S = 10.0
PREFIX = SYSTEM_PREFIX
_MB = float(1 << 20)


def wanted(system_metrics: bool | None) -> bool:
    """``init``'s argument, or else the environment switch (off by default)."""
    if system_metrics is not None:
        return bool(system_metrics)
    return os.environ.get(ENV_SWITCH, "").strip().lower() in {"1", "true", "yes", "on"}


class _Gpus:
    """NVML, when the module imports and a driver answers; else no GPU at all."""

    def __init__(self) -> None:
        self.nvml: Any = None
        self.handles: list[Any] = []
        try:
            nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
        except Exception:  # noqa: BLE001 - no module, no driver, no GPU: simply no GPU keys
            return
        self.nvml = nvml
        self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(int(nvml.nvmlDeviceGetCount()))]

    def sample(self, out: dict[str, float]) -> None:
        nvml = self.nvml
        for i, handle in enumerate(self.handles):
            key = f"{PREFIX}gpu{i}/"
            out[key + "utilization"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            out[key + "memory_used_mb"] = nvml.nvmlDeviceGetMemoryInfo(handle).used / _MB
            out[key + "temperature_c"] = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            out[key + "power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0

    def close(self) -> None:
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                log.debug("nvmlShutdown failed", exc_info=True)
            self.nvml = None


class Sampler:
    """Samples into ``write(values, sample_number, wall_time)`` until ``stop()``.

    The first sample is taken one interval after the start (CPU percentages need an interval to
    mean anything) and a last one at ``stop()``, so a run shorter than the interval still has
    one. Sample numbers continue after ``first_sample`` (a resumed run).
    """

    def __init__(
        self, write: Callable[[dict[str, float], int, float], None], interval: float = DEFAULT_INTERVAL_S,
        first_sample: int = 1,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"system_interval must be a positive number of seconds, got {interval!r}")
        self._write = write
        self._interval = float(interval)
        self._sample_no = first_sample
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._failed = False
        self._psutil: Any = None
        self._process: Any = None
        self._gpus: _Gpus | None = None
        self._base: dict[str, float] = {}
        self._thread = threading.Thread(target=self._loop, name="runicorn-lite-system", daemon=True)

    def start(self) -> bool:
        """Begin sampling; False (and one warning) when psutil is missing or fails at once."""
        try:
            self._psutil = importlib.import_module("psutil")
            self._process = self._psutil.Process()
            self._psutil.cpu_percent(interval=None)  # primes the counter the first sample reads
            self._base = self._counters()
            self._gpus = _Gpus()
        except ImportError:
            log.warning("system metrics need psutil: pip install 'runicorn-lite[system]'; none are recorded")
            return False
        except Exception as exc:  # noqa: BLE001 - a sampler never raises into training
            log.warning("system metrics are off: the first sample failed (%s)", exc)
            return False
        self._thread.start()
        return True

    def stop(self) -> None:
        """Take the last sample and end the thread (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
            self._sample_once()
        if self._gpus is not None:
            self._gpus.close()

    # -- internals ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            if not self._sample_once():
                return

    def _sample_once(self) -> bool:
        with self._lock:
            if self._failed:
                return False
            try:
                values = self.sample()
                self._write(values, self._sample_no, time.time())
            except Exception as exc:  # noqa: BLE001 - one warning, then the sampler stops
                self._failed = True
                log.warning("system metrics stopped: a sample failed (%s: %s); training goes on",
                            type(exc).__name__, exc)
                return False
            self._sample_no += 1
            return True

    def _counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        disk = self._psutil.disk_io_counters()
        if disk is not None:  # None in some containers: then no disk keys
            out["disk_read_mb"] = disk.read_bytes / _MB
            out["disk_write_mb"] = disk.write_bytes / _MB
        net = self._psutil.net_io_counters()
        if net is not None:
            out["net_sent_mb"] = net.bytes_sent / _MB
            out["net_recv_mb"] = net.bytes_recv / _MB
        return out

    def sample(self) -> dict[str, float]:
        """One sample's values (``sys/…`` keys)."""
        ps = self._psutil
        out: dict[str, float] = {
            PREFIX + "cpu_percent": float(ps.cpu_percent(interval=None)),
            PREFIX + "memory_percent": float(ps.virtual_memory().percent),
            PREFIX + "process_rss_mb": self._process.memory_info().rss / _MB,
        }
        for key, value in self._counters().items():
            out[PREFIX + key] = max(0.0, value - self._base.get(key, value))
        if self._gpus is not None:
            self._gpus.sample(out)
        return out
