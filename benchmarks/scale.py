"""``scale``: V2 queries at growing corpus sizes (default 1k / 10k / 100k), with a log-log plot.

Corpora are generated on first use under benchmarks/.work/corpus-<size> (seed ``--seed``); the
100k corpus has fewer steps per run (``--steps``) to keep its size and generation time sane, which
only changes the per-run metric queries (fewer points to return), not the list queries.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import httpx

from benchmarks import generate
from benchmarks.common import (
    WORK,
    OurServer,
    command_line,
    fmt_ms,
    fmt_ratio,
    machine_info,
    markdown_table,
    save_result,
    summarize,
)
from benchmarks.queries import pick_params, query_set, time_v2


def corpus_for(size: int, steps: int, seed: int, quick: bool) -> Path:
    name = f"corpus-{size // 1000}k" if size % 1000 == 0 and not quick else f"corpus-scale-{size}"
    path = WORK / name
    marker = path / "corpus.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("runs") == size and info.get("steps") == steps and info.get("seed") == seed:
            return path
        raise SystemExit(f"{path} holds another corpus ({info}); move it away or pass other --sizes/--steps")
    if path.exists():
        import shutil

        shutil.rmtree(path)
    generate.main(path, size, seed, steps, os.cpu_count() or 1)
    return path


def measure(path: Path, reps: int) -> dict[str, Any]:
    with OurServer(path, "--no-watch") as server:
        health = server.wait_ready(timeout=3600)
        out: dict[str, Any] = {"runs": health["index"]["runs_in_index"], "ready_s": server.ready_s,
                               "scan_s": health["index"]["last_scan_duration_s"]}
        with httpx.Client(base_url=server.url, timeout=300) as c:
            params = pick_params(c)
            warm = max(5, reps // 10)
            out["Health"] = summarize(time_v2(c, "/api/health", {}, reps, warm))
            for q in query_set(params):
                out[q.name] = summarize(time_v2(c, q.v2_path, q.v2_params, reps, warm))
                out[q.name]["is_list"] = q.is_list
        out["peak_rss_mb"] = server.peak_rss_mb()
    return out


def render(res: dict[str, Any]) -> str:
    sizes = res["sizes"]
    by = res["by_size"]
    names = [k for k in by[str(sizes[0])] if isinstance(by[str(sizes[0])][k], dict)]
    header = ["Query"] + [f"{s:,} runs" for s in sizes]
    growth_cols = len(sizes) >= 2
    if growth_cols:
        header += [f"{sizes[-2]:,}→{sizes[-1]:,}", "≤2x (list/filter/sort)"]
    rows = []
    for name in names:
        row = [name] + [fmt_ms(by[str(s)][name]["median_ms"]) for s in sizes]
        if growth_cols:
            g = by[str(sizes[-1])][name]["median_ms"] / by[str(sizes[-2])][name]["median_ms"]
            is_list = by[str(sizes[0])][name].get("is_list", False) and not name.startswith("Search")
            row += [fmt_ratio(g), ("yes" if g <= 2 else "**no**") if is_list else "n/a"]
        rows.append(row)
    facts = "; ".join(
        f"{s:,} runs × {res['steps'][i]} steps: index ready {by[str(s)]['ready_s']:.1f} s after start "
        f"(scan {by[str(s)]['scan_s']:.1f} s), peak RSS {by[str(s)]['peak_rss_mb']:.0f} MB"
        for i, s in enumerate(sizes))
    return (f"Medians over {res['reps']} requests after warm-up (keep-alive client). {facts}.\n\n"
            + markdown_table(header, rows))


def plot(res: dict[str, Any], out: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(matplotlib not installed: no plot)"
    sizes = res["sizes"]
    by = res["by_size"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    names = [k for k in by[str(sizes[0])] if isinstance(by[str(sizes[0])][k], dict)]
    for name in names:
        ys = [by[str(s)][name]["median_ms"] for s in sizes]
        style = "k--" if name == "Health" else "o-"
        ax.plot(sizes, ys, style, label=name if name != "Health" else "/api/health (floor)", markersize=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("experiments in the index")
    ax.set_ylabel("median round trip (ms)")
    ax.set_title("runicorn-lite V2: latency vs corpus size (log-log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return f"plot written to {out}"


def main(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in str(args.sizes).split(",")]
    steps = [int(s) for s in str(args.steps).split(",")]
    if args.quick:
        sizes, steps, args.reps = [20, 60], [5, 5], 2
        args.plot = WORK / "scale-quick.png"
    if len(steps) == 1:
        steps = steps * len(sizes)
    res: dict[str, Any] = {"sizes": sizes, "steps": steps, "reps": args.reps, "by_size": {}}
    for size, st in zip(sizes, steps, strict=True):
        path = corpus_for(size, st, args.seed, args.quick)
        res["by_size"][str(size)] = measure(path, args.reps)
        print(f"  {size:,} runs measured", flush=True)
    note = plot(res, Path(args.plot))
    md = f"Machine: {machine_info()}\n\nCommand: `{command_line()}`\n\n" + render(res)
    path = save_result("scale-quick" if args.quick else "scale", res, md)
    print(md)
    print(f"\n{note}\n(saved to {path})")
    return res
