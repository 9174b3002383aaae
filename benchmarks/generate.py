"""``generate``: a reproducible corpus of runs written through our SDK (``runicorn_lite.init``).

Every run is derived from ``(seed, index)`` alone, so the corpus does not depend on how the work
is split across processes. Wall-clock timestamps would make it irreproducible (and would put all
10,000 runs within a few seconds), so the SDK's clock is replaced by a synthetic one: run ``i`` of
``N`` is created at ``BASE_TIME + i * SPAN / N`` (90 days in all) and logs one step per second.
Run ids are ``YYYYMMDD_HHMMSS_`` + 6 seeded hex digits, as the SDK makes them. Only ``meta.json``'s
``python``/``platform``/``hostname``/``pid`` fields depend on the machine. Every run has a config
of about twenty params (``runicorn_lite.demo.sample_config``) in assets.json, and its curves
depend on it (``config_effect``), so a "which settings won?" query finds an answer. Environment
capture stays off: it would make the corpus depend on the machine.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import multiprocessing
import os
import random
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runicorn_lite.demo import config_effect, sample_config

PROJECTS = {
    "image_classification": ["resnet_baseline", "resnet50_aug", "vit_small", "efficientnet_b0", "convnext_tiny"],
    "object_detection": ["yolo_v8", "faster_rcnn", "detr_base", "retinanet"],
    "nlp_sentiment": ["bert_base", "distilbert", "roberta_large", "lstm_baseline"],
    "machine_translation": ["transformer_big", "marian_en_de", "t5_small"],
    "speech_recognition": ["wav2vec2", "whisper_tiny", "conformer"],
    "recommendation": ["two_tower", "dlrm", "sasrec", "mf_baseline"],
    "rl_control": ["ppo_cartpole", "sac_halfcheetah", "dqn_atari"],
    "tabular": ["xgboost_tuned", "tabnet", "lightgbm"],
    "segmentation": ["unet_resnet34", "deeplabv3", "segformer_b2"],
    "generative": ["dcgan", "vae_mnist", "diffusion_small", "stylegan_lite"],
}
TAGS = ["baseline", "production", "ablation", "sweep", "debug", "gpu", "fp16", "v1", "v2", "long", "reproduce"]
DATASETS = ["cifar10", "imagenet", "coco", "sst2", "wmt14", "librispeech", "movielens", "atari", "adult", "ade20k"]
# Weighted status mix: mostly finished, some failures and interruptions, a few left running.
STATUS_WEIGHTS = (("finished", 70), ("failed", 15), ("interrupted", 10), ("running", 5))
BASE_TIME = 1_760_000_000.0  # 2025-10-09
SPAN_S = 90 * 86400.0


@dataclass(frozen=True)
class RunSpec:
    index: int
    run_id: str
    project: str
    name: str
    tags: list[str]
    description: str
    status: str
    created_at: float
    steps: int
    primary: bool
    seed: int
    config: dict[str, Any]


def run_spec(seed: int, index: int, total: int, steps: int) -> RunSpec:
    """Everything about run ``index``, from the seed alone."""
    rng = random.Random(seed * 1_000_003 + index)
    project = rng.choice(list(PROJECTS))
    name = rng.choice(PROJECTS[project])
    created = BASE_TIME + index * SPAN_S / max(total, 1) + rng.random()
    stamp = _dt.datetime.fromtimestamp(created)
    run_id = f"{stamp:%Y%m%d_%H%M%S}_{rng.getrandbits(24):06x}"
    tags = rng.sample(TAGS, rng.choice((0, 1, 1, 2, 2, 3)))
    config = sample_config(rng, rng.choice(DATASETS))
    description = (f"{name.replace('_', ' ')} on {config['data']['dataset']}, lr={config['lr']:g}, "
                   f"batch {config['batch_size']}, {config['optim']['name']}")
    roll, status = rng.uniform(0, 100), "finished"
    for candidate, weight in STATUS_WEIGHTS:
        if roll < weight:
            status = candidate
            break
        roll -= weight
    # Every run logs ``steps`` steps (so the corpus is exactly runs x steps x 3 points, the
    # size the targets are stated for); 10% of runs never declare a primary metric.
    n = steps
    return RunSpec(index, run_id, project, name, tags, description, status, created, n,
                   rng.random() >= 0.1, rng.getrandbits(32), config)


class _Clock:
    """Stands in for the ``time`` module inside the SDK: a settable ``time()``, real everything else."""

    def __init__(self) -> None:
        self.now = BASE_TIME
        self.monotonic = time.monotonic
        self.sleep = time.sleep
        self.strftime = time.strftime
        self.perf_counter = time.perf_counter

    def time(self) -> float:
        return self.now


def _write_range(args: tuple[str, int, int, int, int, int]) -> tuple[int, int]:
    out, seed, start, stop, total, steps = args
    from runicorn_lite import sdk

    clock = _Clock()
    sdk.time = types.SimpleNamespace(time=clock.time, monotonic=clock.monotonic, sleep=clock.sleep,  # type: ignore[attr-defined]
                                     strftime=clock.strftime)
    root = Path(out)
    points = 0
    for index in range(start, stop):
        spec = run_spec(seed, index, total, steps)
        write_run(sdk, clock, root, spec)
        points += spec.steps * 3
    return stop - start, points


def write_run(sdk: types.ModuleType, clock: _Clock, root: Path, spec: RunSpec) -> None:
    rng = random.Random(spec.seed)
    clock.now = spec.created_at
    run = sdk.init(project=spec.project, name=spec.name, root=root, tags=spec.tags,
                   description=spec.description, run_id=spec.run_id, config=spec.config)
    if spec.primary:
        run.set_primary_metric("accuracy", "max")
    # Learning curves: loss decays to a floor, accuracy rises to a plateau, lr follows a cosine;
    # how high and how fast follows from the config, with some luck on top.
    ceiling, speed = config_effect(spec.config)
    ceiling = min(0.995, max(0.5, ceiling + rng.gauss(0, 0.015)))
    rate = speed * rng.uniform(4.0, 8.0)
    loss0, floor = rng.uniform(1.5, 3.0), 0.02 + (1 - ceiling) * rng.uniform(0.5, 1.0)
    lr0 = spec.config["lr"]
    total = max(spec.steps, 1)
    noise = rng.random
    exp, cos, pi = math.exp, math.cos, math.pi
    log = run.log
    created = spec.created_at
    for step in range(1, spec.steps + 1):
        x = step / total
        decay = exp(-rate * x)
        clock.now = created + step
        log(
            {
                "loss": floor + (loss0 - floor) * decay + (noise() - 0.5) * 0.04,
                "accuracy": min(1.0, ceiling * (1 - decay) + (noise() - 0.5) * 0.02),
                "lr": lr0 * 0.5 * (1 + cos(pi * x)),
            },
            step=step,
        )
    clock.now = spec.created_at + spec.steps + 1
    if spec.status == "running":
        # Left running on purpose: flush and let go of the file without finishing.
        run.flush()
        run._events.close()
        sdk._flusher.discard(run)
    else:
        run.finish(spec.status)


def generate(out: Path, runs: int, seed: int, steps: int, workers: int) -> dict[str, float]:
    """Write ``runs`` runs under ``out`` (in ``workers`` processes); returns timing facts."""
    out = Path(out).resolve()
    if (out / "runs").exists() and any((out / "runs").iterdir()):
        raise SystemExit(f"{out}/runs is not empty; choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    chunk = max(1, min(500, math.ceil(runs / max(workers, 1) / 4)))
    tasks = [(str(out), seed, s, min(s + chunk, runs), runs, steps) for s in range(0, runs, chunk)]
    if workers <= 1 or runs < 50:
        results = [_write_range(t) for t in tasks]
    else:
        ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with ctx.Pool(workers) as pool:
            results = list(pool.imap_unordered(_write_range, tasks))
    elapsed = time.perf_counter() - t0
    done = sum(r[0] for r in results)
    points = sum(r[1] for r in results)
    return {"runs": done, "seconds": elapsed, "runs_per_s": done / elapsed, "steps": steps,
            "points": points, "points_per_s": points / elapsed, "workers": workers}


def main(out: Path, runs: int, seed: int, steps: int, workers: int) -> dict[str, float]:
    facts = generate(out, runs, seed, steps, workers)
    (Path(out) / "corpus.json").write_text(json.dumps({"runs": runs, "steps": steps, "seed": seed, **facts}))
    print(f"wrote {facts['runs']} runs ({facts['points']:,} metric points, {steps} steps max) to {out} "
          f"in {facts['seconds']:.2f} s = {facts['runs_per_s']:,.0f} runs/s ({workers} processes, seed {seed})")
    return facts


def ensure(path: Path, runs: int, steps: int, seed: int, workers: int | None = None) -> Path:
    """A corpus of ``runs`` x ``steps`` at ``path``, generated on first use (kept afterwards: a
    marker records what it holds, and a folder holding something else is refused, not replaced)."""
    marker = path / "corpus.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("runs") == runs and info.get("steps") == steps and info.get("seed") == seed:
            return path
        raise SystemExit(f"{path} holds another corpus ({info}); move it away or choose another folder")
    if path.exists():
        import shutil

        shutil.rmtree(path)
    main(path, runs, seed, steps, min(workers or os.cpu_count() or 1, runs))
    return path
