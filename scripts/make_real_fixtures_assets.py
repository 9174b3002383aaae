#!/usr/bin/env python3
"""Write runs that use the REAL `runicorn` 0.7.x SDK's config, environment and image calls.

    python scripts/make_real_fixtures_assets.py OUT_DIR

Runs under a virtualenv holding `runicorn` 0.7.x and Pillow (numpy optional). OUT_DIR must be
absent or empty; it becomes the storage root. A small git repository is made beside it
(``OUT_DIR.workspace``) and passed as ``workspace_root``, so that ``environment.json`` has a
``git_info`` to show. Copy OUT_DIR into tests/fixtures/ afterwards; see tests/fixtures/README.md.

Deterministic: run ids, paths, configs, metric values, image pixels and captions. Not: times,
the media file names (they hold a millisecond clock and 6 random hex digits, as the SDK makes
them), pid, and everything in environment.json.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import random
import shutil
import subprocess
import sys
from importlib.metadata import version as dist_version
from pathlib import Path

import runicorn as rn
from make_real_fixtures import tidy
from PIL import Image

try:
    import numpy as np
except ImportError:  # arrays are one more input kind; the rest works without
    np = None

RN_VERSION = dist_version("runicorn")


def r4(x: float) -> float:
    return round(x, 4)


def picture(seed: int, step: int, size: int = 8) -> Image.Image:
    """A tiny RGB picture that changes with the step."""
    rng = random.Random(seed * 1000 + step)
    img = Image.new("RGB", (size, size))
    img.putdata([(rng.randrange(256), (x * 32) % 256, (y * 32 + step * 20) % 256)
                 for y in range(size) for x in range(size)])
    return img


def png_bytes(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def make_workspace(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "train.py").write_text("print('train')\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "fixture", "GIT_AUTHOR_EMAIL": "fixture@example.com",
           "GIT_COMMITTER_NAME": "fixture", "GIT_COMMITTER_EMAIL": "fixture@example.com"}
    for args in (["init", "-q", "-b", "main"], ["add", "train.py"], ["commit", "-q", "-m", "fixture workspace"]):
        subprocess.run(["git", *args], cwd=path, check=True, env=env)
    (path / "train.py").write_text("print('train, edited')\n")  # uncommitted: git_info says has_changes


def run_f(out: Path, workspace: Path) -> None:
    """Config as an argparse.Namespace with nested values plus extra, environment captured,
    images from a Pillow image, a uint8 array and PNG bytes at several steps, finished."""
    run = rn.init(path="cv/resnet/sweep", alias="lr-0.01", storage=str(out), run_id="20250303_100001_07f001",
                  workspace_root=str(workspace), capture_env=True)
    args = argparse.Namespace(
        lr=0.01, batch_size=64, epochs=3, seed=1234, augment=True, scheduler="cosine",
        optim={"name": "sgd", "momentum": 0.9, "weight_decay": 0.0005},
        model={"depth": 18, "width": 64, "dropout": 0.1, "blocks": [2, 2, 2, 2]},
        data_dir=Path("data/cifar10"), label_smoothing=None,
    )
    run.log_config(args=args, extra={"note": "baseline of the lr sweep", "tags": ["sweep", "cifar"],
                                     "schedule": {"warmup_epochs": 1, "min_lr": 1e-5}})
    run.set_primary_metric("accuracy", mode="max")
    rng = random.Random(11)
    for step in range(1, 13):
        acc = r4(0.5 + 0.4 * (1 - math.exp(-step / 4)) + rng.uniform(-0.01, 0.01))
        loss = r4(2.0 * math.exp(-step / 5) + rng.uniform(0, 0.05))
        run.log({"loss": loss, "accuracy": acc}, step=step, stage="train" if step % 4 else "eval")
        if step in (4, 8, 12):
            run.log_image("predictions", picture(1, step), step=step, caption=f"val predictions @ {step}")
    if np is not None:
        grid = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
        run.log_image("confusion", grid, step=12, caption="confusion matrix")
    run.log_image("input_sample", png_bytes(picture(2, 0)), caption=None)  # no step
    run.log_text("epoch 3 done")
    run.summary({"epochs": 3})
    run.finish("finished")


def run_g(out: Path) -> None:
    """Config as a dict, logged twice (the second call replaces `args`), images as PNG bytes
    and from a file, no environment, failed."""
    run = rn.init(path="cv/resnet/sweep", alias="lr-0.1", storage=str(out), run_id="20250303_100002_07f002",
                  workspace_root=str(out))
    run.log_config(args={"lr": 0.1, "batch_size": 64, "optim": {"name": "sgd", "momentum": 0.0}})
    run.log_config(args={"lr": 0.1, "batch_size": 128, "optim": {"name": "sgd", "momentum": 0.0},
                         "epochs": 3}, extra={"note": "diverged"})
    run.set_primary_metric("loss", mode="min")
    for step in range(1, 7):
        run.log({"loss": r4(1.5 + 0.3 * step)}, step=step)
        if step in (1, 3):
            run.log_image("samples", png_bytes(picture(3, step)), step=step, caption=f"samples {step}")
    tmp_file = out / "sample_from_disk.png"
    picture(4, 5).save(tmp_file, format="PNG")
    run.log_image("samples", str(tmp_file), step=5, caption="from a file")
    tmp_file.unlink()
    run.log_text("loss is diverging, stopping")
    run.finish("failed")


def run_h(out: Path, workspace: Path) -> None:
    """Environment captured, no config, no images, finished."""
    run = rn.init(path="nlp/gpt", storage=str(out), run_id="20250303_100003_07f003",
                  workspace_root=str(workspace), capture_env=True)
    for step in range(1, 4):
        run.log({"ppl": r4(30.0 / step)}, step=step)
    run.finish("finished")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", help="storage root to create (must be absent or empty)")
    args = ap.parse_args()
    out = Path(args.out_dir).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        ap.error(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    workspace = out.with_name(out.name + ".workspace")
    shutil.rmtree(workspace, ignore_errors=True)
    make_workspace(workspace)
    run_f(out, workspace)
    run_g(out)
    run_h(out, workspace)
    tidy(out)
    # The viewer rebuilds its own database from the files; the fixture is the files.
    for name in ("runicorn.db", "runicorn.db-wal", "runicorn.db-shm"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(workspace)
    print(f"runicorn {RN_VERSION}: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
