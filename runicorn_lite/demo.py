"""Realistic sample runs written through the SDK (``runicorn-lite demo``, benchmarks, tests)."""

from __future__ import annotations

import math
import random
from pathlib import Path

from runicorn_lite import sdk

PROJECTS = {
    "vision": ["resnet50", "vit-base", "yolo/ablation", "yolo/baseline"],
    "nlp": ["bert-base", "gpt2-small", "t5/finetune"],
    "speech": ["wav2vec", "conformer"],
    "rl": ["ppo-atari", "sac-mujoco"],
}
TAGS = ["baseline", "production", "ablation", "sweep", "debug", "fp16", "large-batch"]
STATUSES = (("finished", 0.7), ("failed", 0.15), ("interrupted", 0.1), ("running", 0.05))


def _pick_status(rng: random.Random) -> str:
    x = rng.random()
    for status, p in STATUSES:
        if x < p:
            return status
        x -= p
    return "finished"


def write_demo_runs(root: Path, runs: int = 24, steps: int = 100, rng: random.Random | None = None) -> int:
    """Write ``runs`` runs of ``steps`` steps (loss, accuracy, lr) under ``root``; returns the count."""
    rng = rng or random.Random(0)
    choices = [(p, n) for p, names in PROJECTS.items() for n in names]
    for i in range(runs):
        project, name = choices[i % len(choices)]
        tags = rng.sample(TAGS, rng.randint(0, 3))
        run = sdk.init(
            project=project,
            name=name,
            root=root,
            tags=tags,
            description=f"{name} trial {i} with lr={10 ** rng.uniform(-5, -2):.1e}",
        )
        run.set_primary_metric("accuracy", mode="max")
        ceiling = rng.uniform(0.6, 0.98)
        speed = rng.uniform(0.02, 0.1)
        status = _pick_status(rng)
        last = steps if status in ("finished", "running") else rng.randint(1, steps)
        for step in range(1, last + 1):
            acc = ceiling * (1 - math.exp(-speed * step)) + rng.gauss(0, 0.01)
            loss = 2.3 * math.exp(-speed * step) + 0.05 + abs(rng.gauss(0, 0.02))
            lr = 1e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
            run.log({"loss": loss, "accuracy": acc, "lr": lr}, step=step, stage="train" if step % 10 else "eval")
        run.log_text(f"trained {last} steps")
        run.summary({"epochs": last // 10, "dataset": project})
        if status == "running":
            run.flush()
        else:
            run.finish(status)
    return runs
