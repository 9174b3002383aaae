"""Realistic sample runs written through the SDK (``runicorn-lite demo``, benchmarks, tests).

Each run has a configuration of about twenty params (nested, so they flatten to dotted keys)
and learning curves that depend on it: a sweep over these runs answers "which settings won?"
the way a real one would (lr near 1e-3, some augmentation and a little dropout do best).
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import orjson

from runicorn_lite import images, rundir, sdk

PROJECTS = {
    "vision": ["resnet50", "vit-base", "yolo/ablation", "yolo/baseline"],
    "nlp": ["bert-base", "gpt2-small", "t5/finetune"],
    "speech": ["wav2vec", "conformer"],
    "rl": ["ppo-atari", "sac-mujoco"],
}
TAGS = ["baseline", "production", "ablation", "sweep", "debug", "fp16", "large-batch"]
STATUSES = (("finished", 0.7), ("failed", 0.15), ("interrupted", 0.1), ("running", 0.05))
DATASETS = ["cifar10", "imagenet", "coco", "sst2", "wmt14", "librispeech", "atari"]
IMAGE_SIZE = 32
DAY = 86400.0
SPREAD_DAYS = 14  # demo runs start over this many days before now
# Where demo runs that are still running train: another machine, so this host's check for dead
# processes leaves them running.
DEMO_HOST = "gpu-node-2"


def sample_config(rng: random.Random, dataset: str | None = None) -> dict[str, Any]:
    """About twenty hyper-parameters, drawn from ``rng`` alone (same rng state, same config)."""
    optim = rng.choice(("adamw", "sgd", "adam", "lamb"))
    return {
        "lr": rng.choice((1e-2, 3e-3, 1e-3, 3e-4, 1e-4)),
        "batch_size": rng.choice((32, 64, 128, 256)),
        "epochs": rng.choice((10, 20, 50)),
        "seed": rng.randrange(10_000),
        "warmup_steps": rng.choice((0, 100, 500, 1000)),
        "scheduler": rng.choice(("cosine", "linear", "step", "constant")),
        "optim": {
            "name": optim,
            "momentum": rng.choice((0.0, 0.9)) if optim == "sgd" else 0.9,
            "weight_decay": rng.choice((0.0, 1e-4, 1e-2)),
            "betas": [0.9, rng.choice((0.98, 0.999))],
        },
        "model": {
            "depth": rng.choice((18, 34, 50, 101)),
            "width": rng.choice((64, 128, 256, 512)),
            "dropout": rng.choice((0.0, 0.1, 0.2, 0.3)),
            "activation": rng.choice(("relu", "gelu", "silu")),
            "pretrained": rng.random() < 0.5,
        },
        "data": {
            "dataset": dataset or rng.choice(DATASETS),
            "augment": rng.random() < 0.6,
            "num_workers": rng.choice((2, 4, 8)),
        },
        "mixed_precision": rng.random() < 0.5,
        "grad_clip": rng.choice((0.5, 1.0, 5.0)),
        "label_smoothing": rng.choice((0.0, 0.1)),
    }


def config_effect(config: dict[str, Any]) -> tuple[float, float]:
    """(accuracy ceiling in [0.5, 0.99], learning speed > 0) that this config earns."""
    optim, model, data = config["optim"], config["model"], config["data"]
    quality = 0.82
    quality -= 0.07 * abs(math.log10(config["lr"]) + 3)  # best near lr = 1e-3
    quality += {"adamw": 0.03, "adam": 0.015, "lamb": 0.01}.get(optim["name"], 0.0)
    if optim["name"] == "sgd" and optim["momentum"] == 0.0:
        quality -= 0.05
    quality += 0.03 if data["augment"] else 0.0
    quality -= 0.15 * abs(model["dropout"] - 0.1)
    quality += 0.012 * math.log2(model["depth"] / 18) + 0.01 * math.log2(model["width"] / 64)
    quality += 0.02 if model["pretrained"] else 0.0
    quality += 0.01 if config["label_smoothing"] else 0.0
    if config["lr"] >= 3e-3 and config["warmup_steps"] == 0:
        quality -= 0.04  # a high lr without warmup hurts
    speed = 0.3 + 40 * config["lr"] + (0.1 if config["scheduler"] == "cosine" else 0.0)
    return min(0.99, max(0.5, quality)), speed


def sample_image(rng: random.Random, step: int, size: int = IMAGE_SIZE) -> bytes:
    """A small PNG that changes with ``step`` (a gradient with a moving disc), no Pillow needed."""
    hue = rng.random()
    cx = (step * 7) % size
    cy = size // 2 + int(size / 4 * math.sin(step / 3))
    radius2 = (size // 5) ** 2
    pixels = bytearray()
    for y in range(size):
        for x in range(size):
            if (x - cx) ** 2 + (y - cy) ** 2 <= radius2:
                pixels += bytes((250, 250, 250))
            else:
                pixels += bytes((int(255 * x / size), int(255 * y / size), int(255 * hue)))
    return images.encode_png(size, size, bytes(pixels), 3)


def _pick_status(rng: random.Random) -> str:
    x = rng.random()
    for status, p in STATUSES:
        if x < p:
            return status
        x -= p
    return "finished"


def set_clock(run_dir: Path, start: float, end: float | None) -> None:
    """Move a run written just now to the times a real one would have: created and started at
    ``start``, ended at ``end`` (None: still running, on DEMO_HOST), its events spread evenly
    between the two (so charts by time and durations read as a real run's)."""
    rundir.update_meta(run_dir, {"created_at": start, **({"hostname": DEMO_HOST} if end is None else {})})
    status = rundir.read_json_object(run_dir / rundir.STATUS) or {}
    status["started_at"] = start
    if end is not None:
        status["ended_at"] = end
    rundir.atomic_write_json(run_dir / rundir.STATUS, status)
    events = run_dir / rundir.EVENTS
    lines = [line for line in events.read_bytes().splitlines() if line.strip()]
    stop = end if end is not None else time.time()
    out = []
    for i, line in enumerate(lines):
        event = orjson.loads(line)
        at = start + (stop - start) * (i + 1) / len(lines)
        event["ts"] = at
        if isinstance(event.get("data"), dict) and "time" in event["data"]:
            event["data"]["time"] = at
        out.append(orjson.dumps(event))
    rundir.write_new_file(events, b"\n".join(out) + b"\n")


def write_demo_runs(root: Path, runs: int = 24, steps: int = 100, rng: random.Random | None = None) -> int:
    """Write ``runs`` runs of ``steps`` steps (loss, accuracy, lr), each with a config, a few
    images and (in two of them) the environment, under ``root``; returns the count.

    They look like a fortnight of work: started over the last SPREAD_DAYS days, each taking
    from twenty minutes to a few hours (failed ones stop early), and the newest few (one in
    twenty) still running."""
    rng = rng or random.Random(0)
    choices = [(p, n) for p, names in PROJECTS.items() for n in names]
    now = time.time()
    still_running = max(1, runs // 20) if runs >= 4 else 0
    for i in range(runs):
        project, name = choices[i % len(choices)]
        tags = rng.sample(TAGS, rng.randint(0, 3))
        config = sample_config(rng)
        run = sdk.init(
            project=project,
            name=name,
            root=root,
            tags=tags,
            description=f"{name} trial {i}: {config['optim']['name']}, lr={config['lr']:g}, "
                        f"batch {config['batch_size']} on {config['data']['dataset']}",
            config=config,
            capture_env=i in (0, runs // 2),  # twice is enough to show it
        )
        run.log_config(extra={"trial": i, "notes": f"demo sweep trial {i}"})
        run.set_primary_metric("accuracy", mode="max")
        ceiling, speed = config_effect(config)
        speed *= rng.uniform(0.8, 1.2) * 5 / steps
        status = "running" if i >= runs - still_running else _pick_status(rng)
        while status == "running" and i < runs - still_running:
            status = _pick_status(rng)
        last = steps if status in ("finished", "running") else rng.randint(1, steps)
        image_steps = {max(1, last // 3), max(1, 2 * last // 3), last}
        lr0 = config["lr"]
        for step in range(1, last + 1):
            acc = ceiling * (1 - math.exp(-speed * step)) + rng.gauss(0, 0.01)
            loss = 2.3 * math.exp(-speed * step) + (1 - ceiling) * 0.5 + abs(rng.gauss(0, 0.02))
            lr = lr0 * 0.5 * (1 + math.cos(math.pi * step / steps))
            run.log({"loss": loss, "accuracy": acc, "lr": lr}, step=step, stage="train" if step % 10 else "eval")
            if step in image_steps:
                run.log_image("samples", sample_image(rng, step), step=step, caption=f"predictions at step {step}")
        run.log_text(f"trained {last} steps")
        run.summary({"epochs": last // 10, "dataset": config["data"]["dataset"]})
        if status == "running":
            run.flush()
        else:
            run.finish(status)
        hours = rng.uniform(1 / 3, 4) * (0.5 + config["model"]["depth"] / 101)
        if status == "running":  # started within the last two hours, about half-way through
            start, end = now - rng.uniform(600, 7200), None
        else:
            start = now - SPREAD_DAYS * DAY * (1 - i / runs) + rng.uniform(0, DAY / 4)
            end = start + hours * 3600 * last / steps
            if end > now - 600:
                start, end = start - (end - now + 600), now - 600
        set_clock(run.run_dir, start, end)
    return runs
