"""SDK: log_config / init(config=) into assets.json, init(capture_env=True), log_image — in the
shapes the real Runicorn 0.7.2 SDK writes (see tests/fixtures/runicorn_07_assets)."""

from __future__ import annotations

import argparse
import enum
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import runicorn_lite
from runicorn_lite import environment, images, rundir
from runicorn_lite.demo import sample_image, write_demo_runs

RUNICORN_ENV_KEYS = {"python_version", "platform", "platform_details", "pip_packages", "conda_packages",
                     "conda_env", "git_info", "env_variables", "gpu_info"}
PNG = images.encode_png(2, 1, bytes([255, 0, 0, 0, 0, 255]), 3)


def assets(run: runicorn_lite.Run) -> dict:
    return json.loads((run.run_dir / "assets.json").read_text())


def events(run: runicorn_lite.Run) -> list[dict]:
    run.flush()
    return [json.loads(line) for line in (run.run_dir / "events.jsonl").read_text().splitlines()]


# -- config ---------------------------------------------------------------------------------------


def test_init_config_writes_runicorn_assets_shape(root: Path) -> None:
    config = {"lr": 0.01, "optim": {"name": "sgd", "momentum": 0.9}, "augment": True, "layers": [64, 128]}
    run = runicorn_lite.init(project="p", root=root, config=config)
    assert assets(run) == {"code": {}, "config": {"args": config}, "datasets": [], "pretrained": [],
                           "outputs": []}
    run.finish()


def test_log_config_namespace_extra_and_merge(root: Path) -> None:
    class Mode(enum.Enum):
        FAST = "fast"

    run = runicorn_lite.init(project="p", root=root)
    assert not (run.run_dir / "assets.json").exists()  # written only once there is something
    ns = argparse.Namespace(lr=3e-4, data=Path("/data/set"), mode=Mode.FAST, ids={3, 1, 2}, scale=np.float32(0.5),
                            steps=np.int64(7), shape=(2, 3))
    run.log_config(args=ns, extra={"note": "first", "nested": {"a": 1}})
    cfg = assets(run)["config"]
    assert cfg["args"] == {"lr": 3e-4, "data": "/data/set", "mode": "fast", "ids": [1, 2, 3], "scale": 0.5,
                           "steps": 7, "shape": [2, 3]}
    assert cfg["extra"] == {"note": "first", "nested": {"a": 1}}
    # A second call merges key by key; a later value wins; what else the file holds is kept.
    whole = assets(run)
    whole["datasets"].append({"name": "cifar"})
    (run.run_dir / "assets.json").write_text(json.dumps(whole))
    run.log_config(args={"epochs": 3, "lr": 1e-3})
    run.log_config(extra={"note": "second"})
    after = assets(run)
    assert after["config"]["args"]["lr"] == 1e-3 and after["config"]["args"]["epochs"] == 3
    assert after["config"]["args"]["data"] == "/data/set"
    assert after["config"]["extra"] == {"note": "second", "nested": {"a": 1}}
    assert after["datasets"] == [{"name": "cifar"}]
    run.finish()


def test_log_config_refuses_what_is_not_a_mapping(root: Path) -> None:
    run = runicorn_lite.init(project="p", root=root)
    with pytest.raises(TypeError, match="args"):
        run.log_config(args="lr=0.1")
    with pytest.raises(TypeError, match="extra"):
        run.log_config(extra=[1, 2])
    assert not (run.run_dir / "assets.json").exists()
    run.finish()
    with pytest.raises(RuntimeError, match="finished"):
        run.log_config(args={"lr": 1})
    with pytest.raises(TypeError, match="config"):
        runicorn_lite.init(project="q", root=root, config=[("lr", 1)])
    assert not (root / "runs" / "q").exists() or not any((root / "runs" / "q").iterdir())


# -- environment ----------------------------------------------------------------------------------


def test_capture_env_writes_runicorn_keys(root: Path) -> None:
    started = time.perf_counter()
    run = runicorn_lite.init(project="p", root=root, capture_env=True)
    took = time.perf_counter() - started
    env = json.loads((run.run_dir / "environment.json").read_text())
    assert set(env) == RUNICORN_ENV_KEYS
    assert env["python_version"] == sys.version
    assert set(env["platform_details"]) == {"system", "node", "release", "version", "machine", "processor",
                                            "python_implementation", "python_compiler"}
    from importlib.metadata import version

    assert f"orjson=={version('orjson')}" in env["pip_packages"]
    assert all(re.fullmatch(r"[^=\s]+==\S+", p) for p in env["pip_packages"])
    assert isinstance(env["env_variables"], dict)
    run.finish()
    # Informative only (timing claims live in benchmarks/): the figure is in the failure text.
    assert took < 30, f"capture_env took {took:.2f} s"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}).stdout


def test_git_info_of_the_repository_holding_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "exp/lr-sweep")
    (repo / "train.py").write_text("print('hi')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    _git(repo, "remote", "add", "origin", "https://alice:s3cret-token@example.com/team/repo.git")
    head = _git(repo, "rev-parse", "HEAD").strip()
    monkeypatch.chdir(repo)
    run = runicorn_lite.init(project="p", root=tmp_path / "data", capture_env=True)
    git = json.loads((run.run_dir / "environment.json").read_text())["git_info"]
    assert git["commit"] == head and git["branch"] == "exp/lr-sweep" and git["dirty"] is False
    assert git["remote"] == "https://example.com/team/repo.git"  # the credentials never reach the file
    run.finish()
    (repo / "train.py").write_text("print('changed')\n")
    dirty = environment.git_info(repo)
    assert dirty is not None and dirty["dirty"] is True and dirty["changed_files_count"] == 1
    outside = tmp_path / "plain"
    outside.mkdir()
    assert environment.git_info(outside) is None


def test_env_variables_are_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-record")
    monkeypatch.setenv("WANDB_API_KEY", "do-not-record")
    monkeypatch.setenv("OMP_NUM_THREADS", "x" * 600)
    env = environment.capture()
    assert env["env_variables"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert len(env["env_variables"]["OMP_NUM_THREADS"]) == environment.MAX_ENV_VALUE
    assert "do-not-record" not in json.dumps(env)


def test_capture_without_git_or_gpu_tools_is_null_not_an_error(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    env = environment.capture(tmp_path)
    assert env["git_info"] is None and env["gpu_info"] is None and set(env) == RUNICORN_ENV_KEYS


def test_gpu_info_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tmp_path / "bin" / "nvidia-smi"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n"
                    "echo '0, NVIDIA A100-SXM4-40GB, 40960, 535.104.05'\n"
                    "echo '1, NVIDIA A100, 40960, 535.1'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    gpus = environment.capture()["gpu_info"]
    assert gpus == [
        {"index": 0, "name": "NVIDIA A100-SXM4-40GB", "memory_total_mb": 40960.0, "driver_version": "535.104.05"},
        {"index": 1, "name": "NVIDIA A100", "memory_total_mb": 40960.0, "driver_version": "535.1"},
    ]
    tool.write_text("#!/bin/sh\nexit 9\n")
    assert environment.capture()["gpu_info"] is None


def test_conda_packages_from_conda_meta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = tmp_path / "envs" / "torch" / "conda-meta"
    meta.mkdir(parents=True)
    for name in ("numpy-1.26.4-py311h64a7726_0.json", "python-dateutil-2.9.0-pyhd8ed1ab_0.json", "history"):
        (meta / name).write_text("{}")
    monkeypatch.setenv("CONDA_PREFIX", str(meta.parent))
    monkeypatch.delenv("CONDA_DEFAULT_ENV", raising=False)
    env = environment.capture()
    assert env["conda_env"] == "torch"
    assert env["conda_packages"] == ["numpy=1.26.4=py311h64a7726_0", "python-dateutil=2.9.0=pyhd8ed1ab_0"]


# -- images ---------------------------------------------------------------------------------------

MAGIC = {
    "png": PNG,
    "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00rest",
    "gif": b"GIF89a\x01\x00\x01\x00rest",
    "webp": b"RIFF\x10\x00\x00\x00WEBPVP8 rest",
}


@pytest.mark.parametrize("ext", sorted(MAGIC))
def test_log_image_bytes_and_paths_keep_their_format(root: Path, tmp_path: Path, ext: str) -> None:
    run = runicorn_lite.init(project="p", root=root)
    rel = run.log_image("val/pred", MAGIC[ext], step=4, caption="four")
    assert re.fullmatch(rf"media/\d{{13}}_[0-9a-f]{{6}}_val_pred\.{ext}", rel), rel
    assert (run.run_dir / rel).read_bytes() == MAGIC[ext]
    source = tmp_path / f"picture.bin{ext}"
    source.write_bytes(MAGIC[ext])
    rel2 = run.log_image("val/pred", source)
    assert rel2.endswith(f".{ext}") and (run.run_dir / rel2).read_bytes() == MAGIC[ext]
    evs = events(run)
    assert evs[0]["type"] == "image" and set(evs[0]) == {"ts", "type", "data"}
    assert evs[0]["data"] == {"key": "val/pred", "path": rel, "step": 4, "caption": "four"}
    assert evs[1]["data"] == {"key": "val/pred", "path": rel2, "step": None, "caption": None}
    run.finish()


@pytest.mark.parametrize("bad", [b"", b"not an image at all", b"\x89PNX\r\n", b"RIFF\x00\x00\x00\x00WAVE",
                                 b"%PDF-1.4 text"])
def test_log_image_refuses_what_is_not_an_image(root: Path, tmp_path: Path, bad: bytes) -> None:
    run = runicorn_lite.init(project="p", root=root)
    with pytest.raises(ValueError, match="not a PNG, JPEG, GIF or WebP"):
        run.log_image("x", bad)
    fake = tmp_path / "fake.png"
    fake.write_bytes(bad)
    with pytest.raises(ValueError, match="not a PNG"):
        run.log_image("x", fake)
    with pytest.raises(FileNotFoundError):
        run.log_image("x", tmp_path / "missing.png")
    with pytest.raises(TypeError):
        run.log_image("x", 42)
    with pytest.raises(ValueError, match="key"):
        run.log_image("  ", PNG)
    with pytest.raises(ValueError, match="uint8"):
        run.log_image("x", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        run.log_image("x", np.zeros((2, 2, 5), dtype=np.uint8))
    run.flush()
    assert not (run.run_dir / "media").exists() or not any((run.run_dir / "media").iterdir())
    assert not (run.run_dir / "events.jsonl").read_bytes()  # no event for a refused image
    run.finish()


def test_log_image_pillow_and_arrays(root: Path) -> None:
    run = runicorn_lite.init(project="p", root=root)
    pil = Image.new("RGBA", (3, 2), (10, 20, 30, 128))
    rel = run.log_image("pil", pil, step=1)
    assert rel.endswith(".png")
    with Image.open(run.run_dir / rel) as back:
        assert back.size == (3, 2) and back.getpixel((0, 0)) == (10, 20, 30, 128)
    as_jpeg = run.log_image("pil", pil, step=2, format="jpeg")
    assert as_jpeg.endswith(".jpg") and images.detect_format((run.run_dir / as_jpeg).read_bytes()) == "jpg"
    array = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    rel = run.log_image("arr", array, step=3)
    with Image.open(run.run_dir / rel) as back:
        assert np.array_equal(np.asarray(back), array)
    gray = run.log_image("gray", np.full((3, 3, 1), 200, dtype=np.uint8))
    with Image.open(run.run_dir / gray) as back:
        assert back.mode == "L" and back.getpixel((1, 1)) == 200
    run.finish()


def test_builtin_png_encoder_decodes_everywhere() -> None:
    data = sample_image(__import__("random").Random(1), step=5, size=16)
    assert images.detect_format(data) == "png"
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert img.size == (16, 16) and img.mode == "RGB"
    for channels, mode in ((1, "L"), (2, "LA"), (4, "RGBA")):
        raw = bytes(range(3 * 2 * channels))
        with Image.open(io.BytesIO(images.encode_png(3, 2, raw, channels))) as img:
            assert img.mode == mode and img.tobytes() == raw
    with pytest.raises(ValueError):
        images.encode_png(3, 2, b"short", 3)


def test_image_events_are_read_back_by_the_format_module(root: Path) -> None:
    run = runicorn_lite.init(project="p", root=root)
    run.log({"loss": 1.0}, step=7)
    first = run.log_image("samples", PNG, step=7, caption="seven")
    second = run.log_image("samples", PNG)  # no step: the last metrics step
    run.finish()
    chunk = rundir.read_events(run.run_dir / rundir.EVENTS)
    assert chunk.images == [
        {"key": "samples", "step": 7, "caption": "seven", "path": first},
        {"key": "samples", "step": 7, "caption": None, "path": second},
    ]
    assert chunk.points == {"loss": {7: 1.0}}


def test_demo_runs_have_configs_images_and_environment(root: Path) -> None:
    write_demo_runs(root, runs=4, steps=12)
    locs = list(rundir.iter_runs(root))
    assert len(locs) == 4
    with_env = 0
    for loc in locs:
        config = json.loads((loc.run_dir / "assets.json").read_text())["config"]
        args = config["args"]
        assert {"lr", "batch_size", "seed", "epochs", "warmup_steps", "scheduler"} <= set(args)
        assert {"name", "momentum", "weight_decay"} <= set(args["optim"])
        assert {"depth", "width", "dropout"} <= set(args["model"]) and isinstance(args["data"]["augment"], bool)
        assert config["extra"]["trial"] in range(4)
        chunk = rundir.read_events(loc.run_dir / rundir.EVENTS)
        assert chunk.images, loc.run_dir
        for image in chunk.images:
            assert images.detect_format((loc.run_dir / image["path"]).read_bytes()) == "png"
        with_env += (loc.run_dir / "environment.json").is_file()
    assert with_env == 2


# -- the same shapes as the real 0.7.2 SDK ----------------------------------------------------------

REAL = Path(__file__).parent / "fixtures" / "runicorn_07_assets" / "runs"
REAL_F = REAL / "cv" / "resnet" / "sweep" / "20250303_100001_07f001"


def test_our_files_have_the_real_sdks_shapes(root: Path) -> None:
    real_assets = json.loads((REAL_F / "assets.json").read_text())
    args = argparse.Namespace(**{**real_assets["config"]["args"], "data_dir": Path("data/cifar10")})
    run = runicorn_lite.init(project="p", root=root, capture_env=True)
    run.log_config(args=args, extra=real_assets["config"]["extra"])
    run.log({"accuracy": 0.5}, step=4)
    run.log_image("predictions", (REAL_F / json.loads(
        next(line for line in (REAL_F / "events.jsonl").read_text().splitlines() if '"image"' in line)
    )["data"]["path"]), step=4, caption="val predictions @ 4")
    run.finish()
    assert assets(run) == real_assets
    real_env = json.loads((REAL_F / "environment.json").read_text())
    ours_env = json.loads((run.run_dir / "environment.json").read_text())
    assert set(ours_env) == set(real_env) and set(ours_env["platform_details"]) == set(real_env["platform_details"])
    real_image = next(json.loads(line) for line in (REAL_F / "events.jsonl").read_text().splitlines()
                      if '"image"' in line)
    ours_image = next(e for e in events(run) if e["type"] == "image")
    assert set(ours_image) == set(real_image) and set(ours_image["data"]) == set(real_image["data"])
    assert re.fullmatch(r"media/\d{13}_[0-9a-f]{6}_predictions\.png", real_image["data"]["path"])
    assert re.fullmatch(r"media/\d{13}_[0-9a-f]{6}_predictions\.png", ours_image["data"]["path"])


def test_real_image_events_are_read(root: Path) -> None:
    chunk = rundir.read_events(REAL_F / rundir.EVENTS)
    assert [(i["key"], i["step"], i["caption"]) for i in chunk.images] == [
        ("predictions", 4, "val predictions @ 4"), ("predictions", 8, "val predictions @ 8"),
        ("predictions", 12, "val predictions @ 12"), ("confusion", 12, "confusion matrix"),
        ("input_sample", 12, None),  # no step: the last metrics step before it
    ]
    for image in chunk.images:
        assert images.detect_format((REAL_F / image["path"]).read_bytes()) == "png"
