"""init(system_metrics=True): psutil samples as sys/… metrics with their wall times, beside the
training steps and never in their way. This machine has no GPU: the NVML path is tested with a
stand-in ``pynvml`` module that each test writes into a folder on sys.path."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
import time
from pathlib import Path

import pytest
from shown import shown

import runicorn_lite
from runicorn_lite import rundir

PSUTIL_KEYS = {"sys/cpu_percent", "sys/memory_percent", "sys/process_rss_mb", "sys/disk_read_mb",
               "sys/disk_write_mb", "sys/net_sent_mb", "sys/net_recv_mb"}
GPU_KEYS = {f"sys/gpu{i}/{k}" for i in (0, 1) for k in ("utilization", "memory_used_mb", "temperature_c", "power_w")}

# A stand-in for nvidia-ml-py with two GPUs; ``FAIL_AFTER`` readings of utilisation, it raises.
FAKE_NVML = '''
NVML_TEMPERATURE_GPU = 0
FAIL_AFTER = {fail_after}
calls = {{"util": 0, "shutdown": 0}}

class NVMLError(Exception):
    pass

class _Util:
    def __init__(self, gpu):
        self.gpu = gpu

class _Mem:
    def __init__(self, used):
        self.used = used

def nvmlInit():
    pass

def nvmlShutdown():
    calls["shutdown"] += 1

def nvmlDeviceGetCount():
    return 2

def nvmlDeviceGetHandleByIndex(i):
    return i

def nvmlDeviceGetUtilizationRates(h):
    calls["util"] += 1
    if FAIL_AFTER is not None and calls["util"] > FAIL_AFTER:
        raise NVMLError("GPU is lost")
    return _Util(40 + h)

def nvmlDeviceGetMemoryInfo(h):
    return _Mem((1024 + h) * 1024 * 1024)

def nvmlDeviceGetTemperature(h, sensor):
    return 60 + h

def nvmlDeviceGetPowerUsage(h):
    return 150000 + 1000 * h
'''


@pytest.fixture
def fake_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def install(fail_after: int | None = None) -> None:
        folder = tmp_path / "fake_nvml"
        folder.mkdir(exist_ok=True)
        (folder / "pynvml.py").write_text(textwrap.dedent(FAKE_NVML.format(fail_after=fail_after)))
        monkeypatch.syspath_prepend(str(folder))
        monkeypatch.delitem(sys.modules, "pynvml", raising=False)

    yield install
    sys.modules.pop("pynvml", None)


def _events(run_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (run_dir / rundir.EVENTS).read_text().splitlines()]


def test_samples_with_gpus_beside_training_steps(root: Path, fake_nvml) -> None:  # type: ignore[no-untyped-def]
    fake_nvml()
    started = time.time()
    run = runicorn_lite.init(project="p", root=root, system_metrics=True, system_interval=0.05)
    for _ in range(3):
        run.log({"loss": 1.0})
        time.sleep(0.06)
    run.log({"loss": 0.5})  # no step: 4, whatever the samples numbered
    run.finish()
    ended = time.time()
    samples = [e["data"] for e in _events(run.run_dir) if "sys/cpu_percent" in e["data"]]
    assert len(samples) >= 2  # every 0.05 s (about four), and one at finish
    assert [s["global_step"] for s in samples] == list(range(1, len(samples) + 1))
    assert all(set(s) - {"global_step", "time"} == PSUTIL_KEYS | GPU_KEYS for s in samples)
    assert samples[-1]["sys/gpu1/utilization"] == 41 and samples[0]["sys/gpu0/memory_used_mb"] == 1024
    assert samples[0]["sys/gpu1/temperature_c"] == 61 and samples[0]["sys/gpu0/power_w"] == 150.0
    assert all(0 <= s["sys/cpu_percent"] <= 100 * 64 and s["sys/process_rss_mb"] > 1 for s in samples)
    assert all(s["sys/disk_read_mb"] >= 0 and s["sys/net_recv_mb"] >= 0 for s in samples)
    assert sys.modules["pynvml"].calls["shutdown"] == 1

    api = shown(root, run.id)
    assert api.curve("loss") == {1: 1.0, 2: 1.0, 3: 1.0, 4: 0.5}
    cpu = api.series["sys/cpu_percent"]
    assert cpu["steps"] == [s["global_step"] for s in samples]
    # each sample at its own wall time, increasing, within the run; the training steps keep theirs
    assert cpu["times"] == pytest.approx([s["time"] for s in samples])
    assert cpu["times"] == sorted(cpu["times"]) and started <= cpu["times"][0] <= cpu["times"][-1] <= ended
    loss_times = api.series["loss"]["times"]
    training = [e["data"]["time"] for e in _events(run.run_dir) if "loss" in e["data"]]
    assert loss_times == pytest.approx(training)
    assert api.detail["metrics_summary"]["step_range"]["min"] == 1


def test_a_failing_sampler_warns_once_and_training_goes_on(
    root: Path, fake_nvml, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    fake_nvml(fail_after=4)  # two GPUs read per sample: the third sample fails
    with caplog.at_level(logging.WARNING, logger="runicorn_lite"):
        run = runicorn_lite.init(project="p", root=root, system_metrics=True, system_interval=0.02)
        for step in range(1, 11):
            run.log({"loss": 1.0 / step})
            time.sleep(0.02)
        run.finish()
    warnings = [r for r in caplog.records if "system metrics" in r.getMessage()]
    assert len(warnings) == 1 and "GPU is lost" in warnings[0].getMessage()
    samples = [e for e in _events(run.run_dir) if "sys/cpu_percent" in e["data"]]
    assert len(samples) == 2
    assert json.loads((run.run_dir / rundir.STATUS).read_text())["status"] == "finished"
    assert len([e for e in _events(run.run_dir) if "loss" in e["data"]]) == 10


def test_without_nvml_there_are_no_gpu_keys_and_the_env_switch_turns_it_on(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml → ImportError
    monkeypatch.setenv("RUNICORN_LITE_SYSTEM_METRICS", "1")
    run = runicorn_lite.init(project="p", root=root, system_interval=60)
    run.finish()  # a run shorter than the interval still has the sample taken at finish
    samples = [e["data"] for e in _events(run.run_dir)]
    assert len(samples) == 1 and set(samples[0]) - {"global_step", "time"} == PSUTIL_KEYS
    off = runicorn_lite.init(project="p", root=root, system_metrics=False)
    off.finish()
    assert not (off.run_dir / rundir.EVENTS).read_text()


def test_without_psutil_one_warning_and_no_samples(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)
    with caplog.at_level(logging.WARNING, logger="runicorn_lite"):
        run = runicorn_lite.init(project="p", root=root, system_metrics=True, system_interval=0.01)
        run.log({"x": 1})
        run.finish()
    assert [r.getMessage() for r in caplog.records if "psutil" in r.getMessage()] == [
        "system metrics need psutil: pip install 'runicorn-lite[system]'; none are recorded"]
    assert [e["data"]["x"] for e in _events(run.run_dir)] == [1]


def test_resumed_run_numbers_samples_after_its_last(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    run = runicorn_lite.init(project="p", root=root, system_metrics=True, system_interval=60)
    run.log({"loss": 1.0}, step=10)
    run.finish()
    again = runicorn_lite.init(resume=run.id, root=root, system_metrics=True, system_interval=60)
    again.log({"loss": 0.5})
    again.finish()
    events = _events(run.run_dir)
    assert [e["data"]["global_step"] for e in events if "sys/cpu_percent" in e["data"]] == [1, 2]
    assert [e["data"]["global_step"] for e in events if "loss" in e["data"]] == [10, 11]


@pytest.mark.parametrize("interval", [0, -1, float("nan")])
def test_a_bad_interval_is_refused_before_any_directory(root: Path, interval: float) -> None:
    with pytest.raises(ValueError, match="system_interval"):
        runicorn_lite.init(project="p", root=root, system_metrics=True, system_interval=interval)
    assert not (root / "runs").exists()
