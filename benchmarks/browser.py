"""``browser``: the web app in Chromium on a corpus, beside the real Runicorn viewer's page and
MLflow's UI where they are installed (benchmarks/.work/venv-runicorn, venv-mlflow).

What is timed (medians of ``--reps`` navigations in a browser whose cache holds the assets, as
for a returning user; the first, cold load is reported apart):

- runs view: navigation start → the first rows of the list painted;
- run page: navigation start → every chart of a run with 3 metrics × ``--big-steps`` steps
  painted;
- compare: navigation start → the charts of 10 runs × 3 metrics painted;
- live: ``run.log()`` + flush in this process → the new point drawn on the open run page (p95);
- bundle: the bytes of every JS and CSS file of the app, gzipped, and what the runs view loads.

"Painted" is the animation frame after the DOM holds the thing (a MutationObserver and
requestAnimationFrame in an init script, read as ``performance.now()``, which counts from the
navigation's start).
"""

from __future__ import annotations

import argparse
import gzip
import math
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import (
    WORK,
    OurServer,
    command_line,
    fmt_ms,
    machine_info,
    markdown_table,
    percentile,
    save_result,
)
from tests.devbrowser import CHROMIUM_ARGS, find_chromium

WEB = Path(__file__).resolve().parent.parent / "runicorn_lite" / "web"
TARGETS_MS = {"runs": 300.0, "run": 500.0, "compare": 800.0, "live_p95": 1000.0}
BUDGET_KB = 150.0
BENCH_PROJECT = "browser_bench"

# Marks the frame in which a condition first holds. Injected through the browser's DevTools
# protocol, so the page's Content-Security-Policy does not apply to it.
MARKS_SCRIPT = """
(() => {
  window.__marks = {};
  const conds = {
    rows: () => document.querySelector(
      "table.runs-table tbody tr, .ant-table-row, .ag-row a[href*='/runs/']"),
    charts: () => document.querySelector(".chart-grid[data-ready] canvas"),
    echarts: () => document.querySelector("canvas")
      && performance.getEntriesByType("resource").some((e) => /metrics/.test(e.name)),
  };
  window.__subs = {};
  const check = () => {
    // each text a run page's chart subtitle ("N points") shows, with the wall clock of its frame
    const sub = document.querySelector(".chart-sub");
    if (sub && sub.textContent && !(sub.textContent in window.__subs)) {
      const text = sub.textContent;
      window.__subs[text] = -1;
      requestAnimationFrame(() => { window.__subs[text] = Date.now(); });
    }
    for (const [k, f] of Object.entries(conds)) {
      if (!(k in window.__marks) && f()) {
        window.__marks[k] = -1;
        requestAnimationFrame(() => { window.__marks[k] = performance.now(); });
      }
    }
  };
  new MutationObserver(check)
    .observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
})();
"""


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        executable = find_chromium()
        if executable is None:
            raise SystemExit("no Chromium found: apt-get install chromium (or set RUNICORN_LITE_CHROMIUM)")
        browser = pw.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def poll(page: Any, expression: str, timeout_s: float = 60.0) -> Any:
    """The value of ``expression`` once it is a positive number (polled from here: the page's CSP
    forbids the string evaluation Playwright's wait_for_function does in the page)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = page.evaluate(expression)
        if isinstance(value, (int, float)) and value > 0:
            return value
        time.sleep(0.005)
    raise TimeoutError(f"{expression} not reached in {timeout_s} s")


def time_mark(context: Any, url: str, mark: str, timeout_s: float = 180.0) -> float:
    """Milliseconds from navigation start until ``mark`` was painted, in a new page."""
    page = context.new_page()
    try:
        page.goto(url, wait_until="commit")
        return float(poll(page, f"window.__marks && window.__marks[{mark!r}]", timeout_s))
    finally:
        page.close()


def series_of(context: Any, url: str, mark: str, reps: int) -> dict[str, Any]:
    cold = time_mark(context, url, mark)  # fills the cache (our assets are immutable)
    warm = [time_mark(context, url, mark) for _ in range(reps)]
    return {"cold_ms": cold, "median_ms": statistics.median(warm), "p95_ms": percentile(warm, 95), "n": len(warm)}


# ---- data the benchmark adds to the corpus (removed at the end) ---------------------------------


def write_big_run(root: Path, steps: int) -> str:
    from runicorn_lite import sdk

    run = sdk.init(project=BENCH_PROJECT, name="big", root=root, config={"lr": 0.001, "batch_size": 256})
    for step in range(1, steps + 1):
        decay = math.exp(-step / (steps / 5))
        run.log({"loss": 2 * decay + 0.05, "accuracy": 0.95 * (1 - decay), "lr": 1e-3 * decay}, step=step)
    run.finish()
    return run.id


def remove_bench_runs(root: Path) -> None:
    shutil.rmtree(root / "runs" / BENCH_PROJECT, ignore_errors=True)


def wait_indexed(url: str, run_id: str, points: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/api/v2/experiments/{run_id}", timeout=10)
        if r.status_code == 200 and r.json()["metrics_summary"]["total_data_points"] >= points:
            return
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} was not indexed in {timeout} s")


# ---- our app -------------------------------------------------------------------------------------


def bundle_sizes() -> dict[str, float]:
    files = [p for p in WEB.rglob("*") if p.suffix in (".js", ".css")]
    return {"files": len(files), "gzip_kb": sum(len(gzip.compress(p.read_bytes(), 9)) for p in files) / 1024,
            "raw_kb": sum(p.stat().st_size for p in files) / 1024}


def loaded_kb(context: Any, url: str) -> float:
    """KB (gzipped, as served) of the JS and CSS that a first visit of ``url`` loads."""
    names: list[str] = []
    page = context.new_page()
    page.on("request", lambda r: names.append(r.url.split("/assets/", 1)[1].split("/", 1)[1])
            if "/assets/" in r.url and r.resource_type in ("script", "stylesheet") else None)
    # Not "networkidle": the page keeps its live event stream (/api/v2/events) open for good.
    page.goto(url, wait_until="load")
    page.wait_for_timeout(1500)  # modules the view imports once it runs
    page.close()
    return sum(len(gzip.compress((WEB / n).read_bytes(), 9)) for n in set(names)) / 1024


def live_latency(context: Any, root: Path, url: str, events: int, interval: float) -> dict[str, Any]:
    """run.log() + flush here → the new point's count shown on the open run page."""
    from runicorn_lite import sdk

    run = sdk.init(project=BENCH_PROJECT, name="live", root=root)
    try:
        for step in range(1, 11):
            run.log({"loss": 1 / step}, step=step)
        run.flush()
        wait_indexed(url, run.id, 10)
        page = context.new_page()
        page.goto(f"{url}/runs/{run.id}")
        poll(page, "window.__subs['10 points']", 30)
        samples = []
        for i in range(events):
            step = 11 + i
            t0 = time.time() * 1000  # the page stamps its frame with Date.now(): the same clock
            run.log({"loss": 1 / step}, step=step)
            run.flush()
            drawn = poll(page, f"window.__subs['{step} points']", 30)
            samples.append(drawn - t0)
            time.sleep(interval)
        page.close()
    finally:
        run.finish()
    return {"median_ms": statistics.median(samples), "p95_ms": percentile(samples, 95), "n": len(samples)}


def measure_ours(browser: Any, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    server = OurServer(root)
    try:
        server.wait_ready()
        url = server.url
        big = write_big_run(root, args.big_steps)
        wait_indexed(url, big, 3 * args.big_steps)
        ids = [e["id"] for e in httpx.get(f"{url}/api/v2/experiments", params={"per_page": 10, "status": "finished"},
                                           timeout=30).json()["experiments"]]
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.add_init_script(MARKS_SCRIPT)
        out = {
            "runs": series_of(context, f"{url}/", "rows", args.reps),
            "run": series_of(context, f"{url}/runs/{big}", "charts", args.reps),
            "compare": series_of(context, f"{url}/compare?ids={','.join(ids)}", "charts", args.reps),
            "compare_runs": len(ids),
            "live": live_latency(context, root, url, args.events, args.interval),
        }
        fresh = browser.new_context()
        out["loaded_kb_runs_view"] = loaded_kb(fresh, f"{url}/")
        fresh.close()
        context.close()
        return out
    finally:
        server.stop()
        remove_bench_runs(root)


# ---- peers ---------------------------------------------------------------------------------------


def measure_runicorn(browser: Any, corpus: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    from benchmarks import peers

    if not peers.runicorn_available():
        return None
    expected = sum(1 for _ in (corpus / "runs").glob("*/*/*/meta.json"))
    server, startup = peers.start_runicorn(corpus, expected)
    try:
        url = server.url
        # the same kind of run as ours charts: 3 metrics x --big-steps, written into its copy
        big = write_big_run(WORK / "peer-runicorn-root", args.big_steps)
        deadline = time.monotonic() + 300
        while httpx.get(f"{url}/api/runs/{big}", timeout=300).status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("the Runicorn viewer never listed the big run")
            time.sleep(0.5)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.add_init_script(MARKS_SCRIPT)
        reps = max(1, min(args.reps, 5))
        out = {"runs": series_of(context, f"{url}/", "rows", reps),
               "run": series_of(context, f"{url}/runs/{big}", "echarts", reps), "startup": startup}
        context.close()
        return out
    finally:
        server.stop()


def measure_mlflow(browser: Any, corpus: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    from benchmarks import peers

    if not peers.mlflow_available():
        return None
    info = peers.load_mlflow(corpus, args.mlflow_runs, WORK / "mlflow")
    server, startup = peers.start_mlflow(WORK / "mlflow")
    try:
        url = server.url
        # the experiment (project) with the most runs
        experiment = next(iter(info["experiments"].values()))
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.add_init_script(MARKS_SCRIPT)
        reps = max(1, min(args.reps, 5))
        out = {"runs": series_of(context, f"{url}/#/experiments/{experiment}/runs", "rows", reps),
               "runs_loaded": info.get("runs"), "startup": startup}
        context.close()
        return out
    finally:
        server.stop()


# ---- the table -----------------------------------------------------------------------------------


def render(res: dict[str, Any]) -> str:
    ours, rn, ml = res["ours"], res.get("runicorn"), res.get("mlflow")

    def cell(d: dict[str, Any] | None, key: str) -> str:
        return fmt_ms(d[key]["median_ms"]) if d and key in d else "–"

    def verdict(value: float, target: float) -> str:
        return "met" if value <= target else "missed"

    rows = [
        ["Runs view: first rows painted", fmt_ms(ours["runs"]["median_ms"]), fmt_ms(ours["runs"]["cold_ms"]),
         f"≤ {fmt_ms(TARGETS_MS['runs'])} ({verdict(ours['runs']['median_ms'], TARGETS_MS['runs'])})",
         cell(rn, "runs"), cell(ml, "runs")],
        [f"Run page: 3 metrics × {res['big_steps']:,} steps charted", fmt_ms(ours["run"]["median_ms"]),
         fmt_ms(ours["run"]["cold_ms"]),
         f"≤ {fmt_ms(TARGETS_MS['run'])} ({verdict(ours['run']['median_ms'], TARGETS_MS['run'])})",
         cell(rn, "run"), "–"],
        [f"Compare {ours['compare_runs']} runs × 3 metrics charted", fmt_ms(ours["compare"]["median_ms"]),
         fmt_ms(ours["compare"]["cold_ms"]),
         f"≤ {fmt_ms(TARGETS_MS['compare'])} ({verdict(ours['compare']['median_ms'], TARGETS_MS['compare'])})",
         "–", "–"],
        ["`log()` → point drawn on the open chart (p95)", fmt_ms(ours["live"]["p95_ms"]),
         f"median {fmt_ms(ours['live']['median_ms'])}",
         f"≤ {fmt_ms(TARGETS_MS['live_p95'])} ({verdict(ours['live']['p95_ms'], TARGETS_MS['live_p95'])})", "–", "–"],
        ["All JS + CSS, gzipped", f"{res['bundle']['gzip_kb']:.1f} KB",
         f"runs view loads {ours['loaded_kb_runs_view']:.1f} KB",
         f"≤ {BUDGET_KB:.0f} KB ({verdict(res['bundle']['gzip_kb'], BUDGET_KB)})",
         f"{res['runicorn_bundle_kb']:.0f} KB" if res.get("runicorn_bundle_kb") else "–", "–"],
    ]
    head = ["", "ours (median)", "ours (cold / other)", "target", "Runicorn 0.7.2 viewer", "MLflow UI"]
    return "\n".join([
        f"### Browser ({res['corpus_runs']:,} runs{', quick' if res['quick'] else ''}) — {machine_info()}",
        "",
        markdown_table(head, rows),
        "",
        f"Medians of {res['reps']} navigations with the assets cached; cold = the first load. "
        f"Command: `{command_line()}`",
    ])


def runicorn_bundle_kb() -> float | None:
    from benchmarks import peers

    webui = next((peers.RUNICORN_VENV / "lib").glob("python*/site-packages/runicorn/webui/assets"), None)
    if webui is None:
        return None
    return sum(len(gzip.compress(p.read_bytes(), 9)) for p in webui.iterdir() if p.suffix in (".js", ".css")) / 1024


def main(args: argparse.Namespace) -> dict[str, Any]:
    corpus: Path = args.root
    if not (corpus / "runs").exists():
        raise SystemExit(f"no corpus at {corpus}: run `python -m benchmarks generate` first")
    if args.quick:
        args.reps, args.big_steps, args.events = 2, 2000, 5
    res: dict[str, Any] = {"quick": args.quick, "reps": args.reps, "big_steps": args.big_steps,
                           "corpus_runs": sum(1 for _ in (corpus / "runs").glob("*/*/*/meta.json")),
                           "bundle": bundle_sizes(), "runicorn_bundle_kb": runicorn_bundle_kb()}
    remove_bench_runs(corpus)
    with chromium() as browser:
        res["ours"] = measure_ours(browser, corpus, args)
        if not args.quick and args.only != "ours":
            for name, measure in (("runicorn", measure_runicorn), ("mlflow", measure_mlflow)):
                # a peer that cannot be measured leaves its column empty, with the reason saved
                try:
                    res[name] = measure(browser, corpus, args)
                except (RuntimeError, TimeoutError, OSError, ValueError, subprocess.CalledProcessError,
                        httpx.HTTPError) as exc:
                    res[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:2000]
                    print(f"{name}: not measured ({res[f'{name}_error'][:300]})")
    table = render(res)
    print(table)
    save_result("browser-quick" if args.quick else "browser", res, table)
    return res


def add_parser(sub: Any, corpus_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    b = sub.add_parser("browser", help="the web app in Chromium: first rows, charts, compare, live point, bundle size")
    corpus_arg(b)
    b.add_argument("--reps", type=int, default=15, help="navigations per page (median)")
    b.add_argument("--big-steps", type=int, default=100_000, help="steps of the run charted (3 metrics)")
    b.add_argument("--events", type=int, default=40, help="live points timed")
    b.add_argument("--interval", type=float, default=0.2, help="seconds between live points")
    b.add_argument("--mlflow-runs", type=int, default=2000, help="runs loaded into MLflow (a subset)")
    b.add_argument("--only", choices=("ours",), default=None, help="skip the peers")
    b.add_argument("--quick", action="store_true", help="2 navigations, a 2,000-step run, 5 live points, no peers")
