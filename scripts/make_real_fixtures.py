#!/usr/bin/env python3
"""Write a small fixture corpus of run directories with the REAL `runicorn` SDK.

Runs under a virtualenv holding either `runicorn==0.5.3` (legacy layout,
``<root>/<project>/<name>/runs/<id>/``) or `runicorn` 0.7.x (modern layout,
``<root>/runs/<path…>/<id>/``).  Standard library + runicorn only.

    python scripts/make_real_fixtures.py OUT_DIR

OUT_DIR must not exist or be empty; it becomes the runicorn storage root
(``storage=OUT_DIR``), so generate into a neutral place such as
/tmp/fixture-root/runicorn_07 and copy the tree into tests/fixtures/ afterwards
(meta.json records the absolute storage root).

Metric values are deterministic (random.Random(seed), rounded); run ids are
fixed.  Timestamps, pid, hostname, python and platform are whatever the real SDK
records.  See tests/fixtures/README.md for what every run exercises.
"""
from __future__ import annotations

import argparse
import math
import random
import shutil
import sys
from importlib.metadata import version as dist_version
from pathlib import Path

import runicorn as rn

RN_VERSION = dist_version("runicorn")  # runicorn.__version__ is stale in 0.5.3 ("0.5.2")
MAJOR_MINOR = tuple(int(x) for x in RN_VERSION.split(".")[:2])
MODERN = MAJOR_MINOR >= (0, 6)
DB_KEEP_LIMIT = 200 * 1024

# One logical design, mapped onto both generations.
#   path   -> 0.7 `path=`           legacy -> 0.5 (`project=`, `name=`)
RUNS = [
    {"key": "A", "id07": "20250302_090001_07a001", "id05": "20250301_090001_05a001",
         "path": "cv/yolo/ablation", "legacy": ("cv", "yolo-ablation"), "alias": "best-v2", "seed": 1},
    {"key": "B", "id07": "20250302_090002_07a002", "id05": "20250301_090002_05a002",
         "path": "nlp/bert", "legacy": ("nlp", "bert"), "alias": "bert-base-lr3e-5", "seed": 2},
    {"key": "C", "id07": "20250302_090003_07a003", "id05": "20250301_090003_05a003",
         "path": "cv/yolo/ablation", "legacy": ("cv", "yolo-ablation"), "alias": None, "seed": 3},
    {"key": "E", "id07": "20250302_090005_07a005", "id05": "20250301_090005_05a005",
         "path": "nlp/bert", "legacy": ("nlp", "bert"), "alias": None, "seed": 5},
    # D last: it is never finished and stays `running`.
    {"key": "D", "id07": "20250302_090004_07a004", "id05": "20250301_090004_05a004",
         "path": "cv", "legacy": ("cv", None), "alias": "scratch", "seed": 4},
]


def r4(x: float) -> float:
    return round(x, 4)


def start(spec: dict, out: Path):
    if MODERN:
        return rn.init(path=spec["path"], alias=spec["alias"], storage=str(out),
                       run_id=spec["id07"], workspace_root=str(out))
    project, name = spec["legacy"]
    return rn.init(project=project, name=name, storage=str(out), run_id=spec["id05"])


def run_a(run, rng: random.Random) -> None:
    """accuracy/max primary, stages, duplicate step 12, NaN loss at 17, finished."""
    run.set_primary_metric("accuracy", mode="max")
    run.log_text("epoch 0: starting training (yolo ablation, no mosaic)")
    for step in range(1, 31):
        stage = "warmup" if step <= 5 else "train"
        acc = 0.5 + 0.4 * (1 - math.exp(-step / 8)) + rng.uniform(-0.01, 0.01)
        acc = r4(acc - 0.01 * max(0, step - 24))  # overfits: best is not the last value
        loss = r4(2.0 * math.exp(-step / 10) + rng.uniform(0, 0.05))
        lr = r4(0.001 * step / 5 if step <= 5 else 0.001 * (1 - (step - 5) / 30))
        if step == 17:
            loss = float("nan")
        run.log({"loss": loss, "accuracy": acc, "lr": lr}, step=step, stage=stage)
        if step == 12:
            # same step logged again with different (lower-than-best) values
            run.log({"loss": r4(loss + 0.1), "accuracy": r4(acc - 0.05)}, step=12, stage=stage)
        if step % 10 == 0:
            run.log_text(f"step {step}: loss={loss} accuracy={acc}")
    run.log_text("training done")
    run.summary({"epochs": 3, "dataset": "coco-mini", "final_lr": 0.0})
    run.finish("finished")


def run_b(run, rng: random.Random) -> None:
    """loss/min primary, NaN loss at 20 (ignored by best), inf grad_norm at 25, failed."""
    run.set_primary_metric("loss", mode="min")
    run.log_text("fine-tuning bert-base on sst2-mini")
    for step in range(1, 41):
        loss = 1.2 * math.exp(-step / 15) + 0.1 + rng.uniform(0, 0.03)
        loss = r4(loss + 0.02 * max(0, step - 32))  # diverges: best is not the last value
        val_loss = r4(loss + 0.05 + rng.uniform(0, 0.02))
        grad_norm = r4(rng.uniform(0.5, 3.0))
        if step == 20:
            loss = float("nan")
        if step == 25:
            grad_norm = float("inf")
        stage = "eval" if step % 10 == 0 else "train"
        run.log({"loss": loss, "val_loss": val_loss, "grad_norm": grad_norm}, step=step, stage=stage)
    run.log_text("RuntimeError: CUDA out of memory (simulated)")
    run.summary({"max_seq_len": 128, "batch_size": 32})
    run.finish("failed")


def run_c(run, rng: random.Random) -> None:
    """no primary metric, no stage, interrupted."""
    for step in range(1, 21):
        loss = r4(1.5 * math.exp(-step / 6) + rng.uniform(0, 0.05))
        acc = r4(0.6 + 0.3 * (1 - math.exp(-step / 6)) + rng.uniform(-0.01, 0.01))
        run.log({"loss": loss, "accuracy": acc}, step=step)
    run.log_text("KeyboardInterrupt")
    run.summary({"note": "stopped by user"})
    run.finish("interrupted")


def run_d(run, rng: random.Random) -> None:
    """accuracy/max primary set, but never finished -> stays running, no best in summary."""
    run.set_primary_metric("accuracy", mode="max")
    for step in range(1, 26):
        loss = r4(1.0 * math.exp(-step / 12) + rng.uniform(0, 0.02))
        acc = r4(0.55 + 0.35 * (1 - math.exp(-step / 12)) + rng.uniform(-0.01, 0.01))
        run.log({"loss": loss, "accuracy": acc}, step=step, stage="train")
    run.log_text("still training ...")
    run.summary({"note": "left running"})
    # no finish(): status.json stays {"status": "running", ...}


def run_e(run, rng: random.Random) -> None:
    """no metric events at all (no events.jsonl), text + summary only, finished."""
    run.log_text("preprocessing only, no metrics logged")
    run.log_text("tokenized 1000 examples")
    run.summary({"num_examples": 1000, "tokenizer": "bert-base-uncased"})
    run.finish("finished")


BODIES = {"A": run_a, "B": run_b, "C": run_c, "D": run_d, "E": run_e}


def tidy(out: Path) -> None:
    for p in sorted(out.rglob("__pycache__"), reverse=True):
        shutil.rmtree(p, ignore_errors=True)
    for p in out.rglob("*.lock"):
        p.unlink()
    db = out / "runicorn.db"
    sidecars = [out / f"runicorn.db{s}" for s in ("-wal", "-shm", "-journal")]
    if db.exists() and db.stat().st_size > DB_KEEP_LIMIT:
        print(f"removing runicorn.db ({db.stat().st_size} bytes > {DB_KEEP_LIMIT})", file=sys.stderr)
        db.unlink()
    if not db.exists():
        for p in sidecars:
            if p.exists():
                p.unlink()
    for p in sidecars:
        if p.exists():
            print(f"warning: {p.name} left next to runicorn.db", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", help="storage root to create (must be absent or empty)")
    ap.add_argument("--no-tidy", action="store_true",
                    help="keep *.lock files, __pycache__ and a large runicorn.db")
    args = ap.parse_args()
    out = Path(args.out_dir).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        ap.error(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    if MAJOR_MINOR not in ((0, 5), (0, 7)):
        print(f"warning: untested runicorn {RN_VERSION}", file=sys.stderr)

    for spec in RUNS:
        run = start(spec, out)
        BODIES[spec["key"]](run, random.Random(spec["seed"]))
        print(f"{spec['key']} {run.id} -> {run.run_dir.relative_to(out)}")
    # Run D is never finished.  Only release its SQLite connection (0.7.x) so the
    # WAL is checkpointed into runicorn.db before tidy() looks at it; no run file
    # is touched, its status.json stays "running".
    close = getattr(run, "close_storage_backend", None)
    if callable(close):
        close()
    if not args.no_tidy:
        tidy(out)
    print(f"runicorn {RN_VERSION}: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
