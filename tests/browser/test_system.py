"""The run page's System section: sys/… metrics written by the SDK's sampler (real psutil, two
GPUs from a stand-in NVML module, as this machine has none) charted against time, apart from
the training curves."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from runicorn_lite import sdk

from .helpers import expect

LIVE_TIMEOUT = 15_000

FAKE_NVML = """
NVML_TEMPERATURE_GPU = 0
class _U:
    def __init__(self, gpu): self.gpu = gpu
class _M:
    def __init__(self, used): self.used = used
def nvmlInit(): pass
def nvmlShutdown(): pass
def nvmlDeviceGetCount(): return 2
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetUtilizationRates(h): return _U(70 + 10 * h)
def nvmlDeviceGetMemoryInfo(h): return _M((4000 + 500 * h) * 1024 * 1024)
def nvmlDeviceGetTemperature(h, sensor): return 60 + h
def nvmlDeviceGetPowerUsage(h): return 200000 + 10000 * h
"""


def test_system_section_charts_samples_against_time(page, site, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pynvml.py").write_text(FAKE_NVML)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    run = sdk.init(project="system", name="gpu-run", root=site.root, system_metrics=True, system_interval=0.05)
    for step in range(1, 11):
        run.log({"loss": 1.0 / step}, step=step)
        time.sleep(0.03)
    run.finish()
    sys.modules.pop("pynvml", None)

    page.goto(f"/runs/{run.id}")
    section = page.locator("section#system")
    expect(section).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(section.locator(".chart-grid[data-ready] canvas").first).to_be_visible()
    titles = section.locator("figure.chart .chart-title")
    expect(titles).to_have_text(["CPU and memory (%)", "Process memory (MB)", "Disk since start (MB)",
                                 "Network since start (MB)", "GPU utilisation (%)", "GPU memory used (MB)",
                                 "GPU temperature (°C)", "GPU power (W)"])
    expect(page.locator('.subnav a[href="#system"]')).to_be_visible()
    # the training curves stay in Charts, the samples only in System
    expect(page.locator("section#charts figure.chart .chart-title")).to_have_text(["loss"])
    gpu = section.locator("figure.chart", has_text="GPU utilisation")
    expect(gpu.locator(".legend")).to_contain_text("gpu0")
    expect(gpu.locator(".legend")).to_contain_text("gpu1")


def test_no_system_section_without_samples(page, site) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"/runs/{site.sdk_ids[0]}")
    expect(page.locator("section#charts .chart-grid[data-ready]")).to_be_attached()
    expect(page.locator("section#system")).to_be_hidden()
    expect(page.locator('.subnav a[href="#system"]')).to_be_hidden()
