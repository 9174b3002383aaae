"""Screenshots of every view of the web app, for the README (docs/screenshots/*.png).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Writes a demo root in a temporary folder (``runicorn-lite demo``: configs, curves, images; one
run kept running; an optimization run with iterations), starts ``runicorn-lite serve --port 0``
on it, and photographs each view in Chromium at 1280 px (and the runs list at 390 px).
"""

from __future__ import annotations

import argparse
import io
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the browser helper lives with the tests, not in the wheel

from devbrowser import CHROMIUM_ARGS, find_chromium  # noqa: E402


def serve(root: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "runicorn_lite", "serve", "--root", str(root), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("runicorn-lite listening on "):
            url = line.split(" on ", 1)[1].strip()
            break
    else:
        raise SystemExit("the server did not start")
    while not httpx.get(url + "/api/health", timeout=5).json()["index"]["ready"]:
        time.sleep(0.1)
    return proc, url


def optimization_run(root: Path, url: str) -> tuple[str, str]:
    from runicorn_lite.client import OptimizationClient

    out = subprocess.run(
        [sys.executable, "-m", "runicorn_lite", "keys", "create", "--root", str(root), "--project", "vision-tuning"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    key = re.search(r"sk_live_\S+", out).group(0)  # type: ignore[union-attr]
    with OptimizationClient(key, base_url=url) as client:
        for name, kind, n in (
            ("resnet50 lr/wd search", "bayesian", 40),
            ("vit grid", "grid_search", 16),
            ("augment policy", "random_search", 24),
        ):
            run = client.runs.create(
                run_name=name,
                optimizer_type=kind,
                config={"epochs": 30, "model": name.split()[0]},
                search_space={"lr": [1e-5, 1e-1], "weight_decay": [0, 0.1]},
            )
            its = []
            for i in range(n):
                lr = 10 ** (-4 + 3 * ((i * 0.618) % 1))
                score = 0.93 - 0.08 * abs(math.log10(lr) + 2.5) / 1.5 + 0.01 * math.sin(i * 1.7) + 0.002 * i / n
                its.append(
                    {
                        "iteration_number": i + 1,
                        "params": {"lr": round(lr, 6), "weight_decay": round(0.1 * ((i * 0.37) % 1), 4)},
                        "score": round(score, 4),
                        "metrics": {"val_loss": round(1.2 - score, 4)},
                        "duration_ms": 40_000 + 900 * i,
                    }
                )
            client.iterations.create_many(run["id"], its)
            if kind != "random_search":
                client.runs.update(run["id"], status="completed", duration_ms=sum(it["duration_ms"] for it in its))
        first = client.runs.list(order_by="final_score", order="desc", limit=1)["runs"][0]["id"]
    return key, first


def system_run(root: Path) -> str:
    """A finished two-GPU run with half an hour of system samples (10 s apart), written the way
    the SDK's sampler writes them; returns its id."""
    from runicorn_lite import sdk

    run = sdk.init(project="vision", name="vit-large", root=root, tags=["2xGPU"],
                   description="vit-large on two GPUs, with system metrics")
    n, start = 180, time.time() - 1800
    rng = random.Random(7)
    for i in range(1, n + 1):
        run.log({"loss": 2.0 * math.exp(-i / 60) + 0.2}, step=i * 10)
        warm = 1 - math.exp(-i / 25)
        values = {
            "sys/cpu_percent": 62 + 18 * warm + rng.gauss(0, 4),
            "sys/memory_percent": 38 + 14 * warm + rng.gauss(0, 0.4),
            "sys/process_rss_mb": 2600 + 900 * warm + rng.gauss(0, 25),
            "sys/disk_read_mb": 9.5 * i + 300 * (i > 90),
            "sys/disk_write_mb": 420.0 * (i // 60),
            "sys/net_sent_mb": 0.4 * i,
            "sys/net_recv_mb": 1.1 * i,
        }
        for g in (0, 1):
            values[f"sys/gpu{g}/utilization"] = min(100, 88 + 7 * warm + rng.gauss(0, 2.5) - 20 * (i % 60 == 0))
            values[f"sys/gpu{g}/memory_used_mb"] = 14200 + 600 * warm + 120 * g
            values[f"sys/gpu{g}/temperature_c"] = 45 + 31 * warm + 2 * g + rng.gauss(0, 0.6)
            values[f"sys/gpu{g}/power_w"] = 150 + 120 * warm + rng.gauss(0, 12)
        run._log_system(values, i, start + 10 * i)  # the sampler's own write
    run.finish()
    return run.id


def save(png: bytes, path: Path) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image.save(path, optimize=True)
    print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {path.stat().st_size // 1024} KB")


def main() -> None:  # noqa: PLR0915 - one photograph a view, in the order of the README
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from runicorn_lite import sdk
    from runicorn_lite.demo import write_demo_runs

    tmp = Path(tempfile.mkdtemp(prefix="runicorn-shots-"))
    root = tmp / "data"
    root.mkdir()
    write_demo_runs(root, runs=60, steps=400)
    live = sdk.init(
        project="vision",
        name="resnet50",
        root=root,
        tags=["sweep", "fp16"],
        capture_env=True,
        description="resnet50: adamw, lr=0.001, batch 128 (running)",
        config={"lr": 0.001, "batch_size": 128, "optim": {"name": "adamw", "weight_decay": 0.01}},
    )
    live.set_primary_metric("accuracy", mode="max")
    for step in range(1, 261):
        decay = math.exp(-step / 90)
        live.log(
            {
                "loss": 2.2 * decay + 0.12 + 0.02 * math.sin(step / 3),
                "accuracy": 0.9 * (1 - decay) + 0.01 * math.cos(step / 4),
                "lr": 0.001 * (1 + math.cos(math.pi * step / 400)) / 2,
            },
            step=step,
        )
        if step % 20 == 0:
            live.log_text(f"step {step}: loss {2.2 * decay + 0.12:.4f}")
    live.flush()
    system = system_run(root)
    proc, url = serve(root)
    try:
        key, opt_run = optimization_run(root, url)
        runs = httpx.get(
            url + "/api/v2/experiments", params={"per_page": 100, "project": "vision", "status": "finished"}, timeout=10
        ).json()["experiments"]
        deleted = runs[-1]["id"]
        httpx.post(
            url + "/api/v2/experiments/batch-delete", json={"exp_ids": [deleted], "reason": "diverged"}, timeout=10
        )
        compare = ",".join(e["id"] for e in runs[:4])
        best = max(runs[:-1], key=lambda e: e["best_metric_value"] or 0)["id"]
        with sync_playwright() as pw:
            args_ = [*CHROMIUM_ARGS, "--hide-scrollbars"]
            browser = pw.chromium.launch(executable_path=find_chromium(), args=args_, headless=True)
            context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
            page = context.new_page()

            def shot(path: str, name: str, wait: str, full: bool = False, before: object = None) -> None:
                page.goto(url + path)
                page.wait_for_selector(wait)
                if callable(before):
                    before()
                page.wait_for_timeout(600)
                save(page.screenshot(full_page=full), args.out / f"{name}.png")

            shot("/", "runs", "table.runs-table tbody tr")
            shot("/?project=vision&sx=lr&sy=accuracy.max", "runs-plot", ".plot-panel canvas")
            shot(f"/runs/{live.id}", "run-live", ".chart-grid[data-ready] canvas")
            shot(f"/runs/{best}?smooth=0.6", "run", ".chart-grid[data-ready] canvas", full=True)
            shot(f"/compare?ids={compare}", "compare", ".chart-grid[data-ready] canvas", full=True)
            # which settings won, deeper: groups, parallel coordinates, importance, bands
            shot("/?group=params.optim.name&cols=name,metrics.accuracy.max,metrics.loss.min", "runs-groups",
                 "table.groups-table tbody tr")
            shot("/?pc=lr,optim.name,batch_size,model.depth,scheduler&pcm=accuracy.max", "runs-parcoords",
                 ".pc-panel polyline")
            shot("/?imp=accuracy.max", "runs-importance", ".imp-row")
            sweep = ",".join(e["id"] for e in runs[:16])
            shot(f"/compare?ids={sweep}&group=params.optim.name", "compare-bands", ".chart-grid[data-ready] canvas")
            shot("/overview", "overview", ".kpis")
            page.goto(url + f"/runs/{system}")
            page.wait_for_selector("#system .chart-grid[data-ready] canvas")
            page.wait_for_timeout(600)
            box = page.locator("#system").bounding_box()
            assert box is not None
            clip = {"x": 0, "y": box["y"] - 12, "width": 1280, "height": box["height"] + 24}
            save(page.screenshot(full_page=True, clip=clip), args.out / "run-system.png")
            page.goto(url + "/optimization")
            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Use this key").click()
            page.wait_for_selector("table.opt-runs")
            page.wait_for_timeout(400)
            save(page.screenshot(), args.out / "optimization.png")
            shot(f"/optimization/{opt_run}", "optimization-run", "figure.chart canvas")
            shot("/bin", "recycle-bin", "table.grid tbody tr")
            shot(
                "/?filter=params.lr%20%3C%200.01%20and%20metrics.accuracy.avg%20%3E%200.8",
                "filter-error",
                ".filter-err pre",
            )
            narrow = browser.new_context(viewport={"width": 390, "height": 800}, device_scale_factor=1)
            page = narrow.new_page()
            shot(f"/runs/{best}", "run-narrow", ".chart-grid[data-ready] canvas")
            browser.close()
    finally:
        live.finish()
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
