"""``scale``: V2 queries at growing corpus sizes (default 1k / 10k / 100k), with a log-log plot.

Corpora are generated on first use under benchmarks/.work/corpus-<size> (seed ``--seed``); the
100k corpus has fewer steps per run (``--steps``) to keep its size and generation time sane, which
only changes the per-run metric queries (fewer points to return), not the list queries.

Each size is timed with a raw keep-alive ``http.client`` connection, round-robin over the
queries and health, twice: repeating each request on an unchanged index (totals and pages come
from the server's per-generation cache, so they hardly grow) and right after a change of the
index (``queries.IndexChanger``), where every count and page is computed again: that pass is the
one whose growth says how the queries scale.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks import generate
from benchmarks.common import (
    WORK,
    OurServer,
    RawClient,
    command_line,
    database_exists,
    database_url,
    fmt_ms,
    fmt_ratio,
    machine_info,
    markdown_table,
    pg_admin,
    save_result,
    summarize,
)
from benchmarks.queries import IndexChanger, pick_params, query_set, round_robin

HEALTH: tuple[str, dict[str, Any]] = ("/api/health", {})


def corpus_for(size: int, steps: int, seed: int, quick: bool) -> Path:
    name = f"corpus-{size // 1000}k" if size % 1000 == 0 and not quick else f"corpus-scale-{size}"
    return generate.ensure(WORK / name, size, steps, seed)


def scale_database(base: str, size: int) -> str:
    """The PostgreSQL database of one size (``bench_scale_<size>``), made when missing and kept,
    so a later run serves what an earlier one indexed (a million runs take a long cold index)."""
    name = f"bench_scale_{int(size)}"
    if not database_exists(base, name):
        pg_admin(base, f"CREATE DATABASE {name}")
    return database_url(base, name)


def measure(path: Path, reps: int, change_reps: int, database: str | None = None) -> dict[str, Any]:
    extra = ("--database", database) if database else ()
    with OurServer(path, "--no-watch", *extra) as server:
        health = server.wait_ready(timeout=3600)
        out: dict[str, Any] = {"runs": health["index"]["runs_in_index"], "ready_s": server.ready_s,
                               "scan_s": health["index"]["last_scan_duration_s"]}
        with RawClient(server.url) as c:
            params = pick_params(c)
            queries = query_set(params)
            targets = [HEALTH] + [(q.v2_path, q.v2_params) for q in queries]
            repeated = round_robin(c, targets, reps, max(5, reps // 10))
            changer = IndexChanger(c, params.bystander)
            try:
                changed = round_robin(c, targets, change_reps, 0, before=changer)
            finally:
                changer.restore()
        out["Health"] = {"repeated": summarize(repeated[0]), "changed": summarize(changed[0]), "is_list": False}
        for i, q in enumerate(queries, start=1):
            out[q.name] = {"repeated": summarize(repeated[i]), "changed": summarize(changed[i]), "is_list": q.is_list}
        out["peak_rss_mb"] = server.peak_rss_mb()
    return out


def _names(res: dict[str, Any]) -> list[str]:
    first = res["by_size"][str(res["sizes"][0])]
    return [k for k in first if isinstance(first[k], dict)]


def render(res: dict[str, Any]) -> str:
    sizes = res["sizes"]
    by = res["by_size"]
    growth_cols = len(sizes) >= 2
    header = ["Query"]
    for mode in ("repeated", "after a change"):
        header += [f"{s:,} runs, {mode}" for s in sizes]
        if growth_cols:
            header += [f"{sizes[-2]:,}→{sizes[-1]:,}"]
    if growth_cols:
        header += ["≤2x (list/filter/sort, both)"]
    rows = []
    for name in _names(res):
        row = [name]
        worst = 0.0
        for mode in ("repeated", "changed"):
            row += [fmt_ms(by[str(s)][name][mode]["median_ms"]) for s in sizes]
            if growth_cols:
                g = by[str(sizes[-1])][name][mode]["median_ms"] / by[str(sizes[-2])][name][mode]["median_ms"]
                worst = max(worst, g)
                row.append(fmt_ratio(g))
        if growth_cols:
            is_list = by[str(sizes[0])][name].get("is_list", False) and not name.startswith("Search")
            row.append(("yes" if worst <= 2 else "**no**") if is_list else "n/a")
        rows.append(row)
    facts = "; ".join(
        f"{s:,} runs × {res['steps'][i]} steps: index ready {by[str(s)]['ready_s']:.1f} s after start "
        f"(scan {by[str(s)]['scan_s']:.1f} s), peak RSS {by[str(s)]['peak_rss_mb']:.0f} MB"
        for i, s in enumerate(sizes))
    return (f"Backend: {res.get('backend', 'sqlite')}. Medians, raw keep-alive `http.client` connection, "
            f"round-robin over the queries and health: "
            f"{res['reps']} rounds repeating each request on an unchanged index, then {res['change_reps']} rounds "
            f"each right after a change of the index (an untimed soft-delete or restore of one bystander run "
            f"before every timed request). {facts}.\n\n" + markdown_table(header, rows))


def plot(res: dict[str, Any], out: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(matplotlib not installed: no plot)"
    sizes = res["sizes"]
    by = res["by_size"]
    fig, ax = plt.subplots(figsize=(9, 6))
    # Sixteen lines: twenty distinct colours and a marker cycle, so no two look alike.
    colours = plt.get_cmap("tab20").colors
    markers = "osD^v<>phX*"
    for i, name in enumerate(n for n in _names(res) if n != "Health"):
        ys = [by[str(s)][name]["changed"]["median_ms"] for s in sizes]
        ax.plot(sizes, ys, "-", marker=markers[i % len(markers)], color=colours[i % len(colours)], label=name,
                markersize=4)
    ax.plot(sizes, [by[str(s)]["Health"]["changed"]["median_ms"] for s in sizes], "k--", label="/api/health (floor)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("experiments in the index")
    ax.set_ylabel("median round trip right after an index change (ms)")
    ax.set_title(f"runicorn-lite V2 ({res.get('backend', 'sqlite')}): latency vs corpus size (log-log, raw client)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return f"plot written to {out}"


def main(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in str(args.sizes).split(",")]
    steps = [int(s) for s in str(args.steps).split(",")]
    seeds = [int(s) for s in str(args.seeds or args.seed).split(",")]
    if args.quick:
        sizes, steps, args.reps, args.change_reps = [20, 60], [5, 5], 2, 2
        args.plot = WORK / "scale-quick.png"
    if len(steps) == 1:
        steps = steps * len(sizes)
    if len(seeds) == 1:
        seeds = seeds * len(sizes)
    res: dict[str, Any] = {"sizes": sizes, "steps": steps, "reps": args.reps, "change_reps": args.change_reps,
                           "by_size": {}, "backend": "postgresql" if args.database else "sqlite"}
    for size, st, seed in zip(sizes, steps, seeds, strict=True):
        path = corpus_for(size, st, seed, args.quick)
        database = scale_database(args.database, size) if args.database else None
        res["by_size"][str(size)] = measure(path, args.reps, args.change_reps, database)
        print(f"  {size:,} runs measured", flush=True)
    note = plot(res, Path(args.plot))
    md = f"Machine: {machine_info()}\n\nCommand: `{command_line()}`\n\n" + render(res)
    name = "scale-quick" if args.quick else "scale" if not args.database else "scale-postgresql"
    path = save_result(name, res, md)
    print(md)
    print(f"\n{note}\n(saved to {path})")
    return res
