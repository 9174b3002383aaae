"""``peers``: the same queries, in one run, against our server, the real Runicorn viewer and MLflow.

Peers live in their own virtualenvs under benchmarks/.work (see README). Runicorn reads a copy of
the corpus (its viewer writes ``runicorn.db`` and may rewrite ``status.json`` of dead runs);
MLflow gets the corpus (or a subset: ``--mlflow-runs``) loaded through ``MlflowClient.log_batch``
into SQLite, params included. Every request goes through a raw keep-alive ``http.client``
connection (``common.RawClient``), so a fast server's cost is not hidden behind httpx's own.

With MLflow, a second part compares a few long runs (``--long-root``, 10 runs x 100k steps):
our one ``/api/v2/compare`` request against MLflow's way to fetch the same curves, one
``get-history`` call per (run, metric), and its downsampling endpoint
``get-history-bulk-interval`` (one call per metric).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from benchmarks import generate
from benchmarks.common import (
    PEER_VENVS,
    WORK,
    OurServer,
    RawClient,
    Server,
    command_line,
    copy_runs,
    fmt_ms,
    fmt_ratio,
    machine_info,
    markdown_table,
    save_result,
    summarize,
    time_calls,
)
from benchmarks.queries import (
    FILTER_LR,
    PER_PAGE,
    SORT_ACC_MAX,
    Client,
    IndexChanger,
    Params,
    _v1_list,
    _v1_search,
    pick_params,
    project_of,
    query_set,
)

RUNICORN_VENV = PEER_VENVS / "venv-runicorn"
MLFLOW_VENV = PEER_VENVS / "venv-mlflow"


def runicorn_available() -> bool:
    return (RUNICORN_VENV / "bin" / "runicorn").exists()


def mlflow_available() -> bool:
    return (MLFLOW_VENV / "bin" / "mlflow").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn: Callable[[], object], reps: int, slow_reps: int) -> dict[str, float]:
    """Warm up once; if one call takes > 0.5 s, use ``slow_reps`` repetitions."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    n = slow_reps if first > 0.5 else reps
    return summarize(time_calls(fn, n, 2 if first < 0.5 else 0))


def timed_after_change(fn: Callable[[], object], change: Callable[[], object], reps: int) -> dict[str, float]:
    """Each call right after an (untimed) change of the index."""
    out = []
    for _ in range(reps):
        change()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return summarize(out)


def _get(client: Client, path: str, params: dict[str, Any] | None = None, expect: int = 200) -> bytes:
    """The body of a GET (read whole, status checked; not parsed: that is the client's cost)."""
    r = client.get(path, params=params)
    if r.status_code != expect:
        raise RuntimeError(f"{path} {params} -> {r.status_code} {r.text[:300]}")
    content: bytes = r.content
    return content


# ---- the real Runicorn viewer --------------------------------------------------------------------


def start_runicorn(corpus: Path, expected_runs: int) -> tuple[Server, dict[str, float]]:
    root = WORK / "peer-runicorn-root"
    copy_runs(corpus, root)
    port = free_port()
    server = Server(
        [str(RUNICORN_VENV / "bin" / "runicorn"), "viewer", "--storage", str(root), "--host", "127.0.0.1",
         "--port", str(port)],
        WORK / "logs" / "runicorn-viewer.log",
        env={"HOME": str(WORK / "runicorn-home")},
    )
    url = f"http://127.0.0.1:{port}"
    first = server.wait_http(url, "/api/health", timeout=300)
    # "Ready" = its /api/runs lists every run (its background sync into runicorn.db is done).
    deadline = time.monotonic() + 900
    with httpx.Client(base_url=url, timeout=600) as c:
        while time.monotonic() < deadline:
            n = len(orjson.loads(c.get("/api/runs").content))
            if n >= expected_runs:
                break
            time.sleep(0.5)
    ready = time.perf_counter() - server.started
    return server, {"first_answer_s": first, "all_runs_listed_s": ready}


def runicorn_queries(p: Params) -> dict[str, Callable[[Client], object]]:
    def complex_keep(r: dict[str, Any]) -> bool:
        return (project_of(r) == p.project and r["status"] in ("finished", "failed")
                and (r.get("created_time") or 0) >= p.created_after
                and r.get("best_metric_value") is not None and r["best_metric_value"] >= p.best_min)

    return {
        "List all (page 1 of 50)": _v1_list,
        "Filter by project": lambda c: _v1_list(c, lambda r: project_of(r) == p.project),
        "Filter by status": lambda c: _v1_list(c, lambda r: r["status"] == "finished"),
        "Sort by metric": lambda c: _v1_list(c, sort="metric"),
        "Complex query (4 filters)": lambda c: _v1_list(c, complex_keep, sort="metric"),
        "Pagination (page 2)": lambda c: _v1_list(c, page=2),
        f"Search '{p.search}'": lambda c: _v1_list(c, _v1_search(p.search)),
        "Detail": lambda c: _get(c, f"/api/runs/{p.run_id}"),
        "Metrics (all points)": lambda c: _get(c, f"/api/runs/{p.run_id}/metrics_step"),
        "404 (unknown id)": lambda c: _get(c, "/api/runs/20000101_000000_ffffff", expect=404),
        "Health": lambda c: _get(c, "/api/health"),
    }


# ---- MLflow -------------------------------------------------------------------------------------------


def load_mlflow(corpus: Path, n_runs: int, base: Path, latest_only: bool = False, uri: str | None = None,
                fresh: Callable[[], object] | None = None) -> dict[str, Any]:
    """Load (once; reused while the corpus, N, the store and the loader are the same) an MLflow
    store: ``uri`` (SQLAlchemy's form; default a SQLite file in ``base``), artifacts in ``base``;
    ``latest_only``: each metric's last point only (mlflow_load.py). ``fresh`` empties the store
    before a load (a PostgreSQL database made anew)."""
    marker = base / "loaded.json"
    loader = Path(__file__).parent / "mlflow_load.py"
    key = {"corpus": str(corpus.resolve()), "runs": n_runs,
           "loader": hashlib.sha256(loader.read_bytes()).hexdigest()[:16], **({"latest": True} if latest_only else {})}
    if uri is not None:
        key["uri"] = uri
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("key") == key:
            return info
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    if fresh is not None:
        fresh()
    out = subprocess.run(
        [str(MLFLOW_VENV / "bin" / "python"), str(loader), str(corpus),
         uri or f"sqlite:///{base / 'mlflow.db'}", str(base / "artifacts"), str(n_runs),
         *(["latest"] if latest_only else [])],
        capture_output=True, text=True, check=True,
    )
    info = json.loads(out.stdout.strip().splitlines()[-1])
    info["key"] = key
    marker.write_text(json.dumps(info))
    return info


def start_mlflow(base: Path, uri: str | None = None, extra: tuple[str, ...] = ()) -> tuple[Server, dict[str, float]]:
    """MLflow's tracking server over ``uri`` (default the SQLite file of ``load_mlflow``)."""
    port = free_port()
    server = Server(
        [str(MLFLOW_VENV / "bin" / "mlflow"), "server", "--backend-store-uri", uri or f"sqlite:///{base / 'mlflow.db'}",
         "--default-artifact-root", str(base / "artifacts"), "--host", "127.0.0.1", "--port", str(port), *extra],
        WORK / "logs" / f"mlflow-server-{base.name}.log",
    )
    url = f"http://127.0.0.1:{port}"
    first = server.wait_http(url, "/health", timeout=300, ok=lambda r: r.status_code == 200)
    return server, {"first_answer_s": first}


def mlflow_lr_filter(values: list[str], below: float) -> str:
    """MLflow's form of ``params.lr < below``: its params are strings, compared with ``=``, ``!=``
    and ``LIKE`` only (no ``<``, no ``IN``), so the runs whose lr is not below are left out value
    by value (every run of the corpus has an lr)."""
    excluded = [v for v in values if float(v) >= below]
    return " AND ".join(f"params.lr != '{v}'" for v in excluded) or "params.lr != ''"


def mlflow_queries(p: Params, info: dict[str, Any], client: Client) -> tuple[dict[str, Callable], Params]:
    """The MLflow forms of the table's queries (parameters chosen from the loaded subset).

    MLflow has no aggregates of a metric: a run's value of a metric in ``runs/search`` is its
    latest one, so where we sort or filter by ``metrics.accuracy.max`` it does by
    ``metrics.accuracy`` (the same work: one stored value per run and metric). Its answers always
    carry every param and latest metric of a run, so its list is also the form of our
    ``include=params,metrics``."""
    exps = info["experiments"]
    all_ids = list(exps.values())
    # The subset may not hold our chosen run: use the one MLflow has that is closest in our order.
    run_id = info["runs_map"].get(p.run_id) or next(iter(info["runs_map"].values()))
    project = p.project if p.project in exps else next(iter(exps))
    after_ms = int(p.created_after * 1000)
    search = "/api/2.0/mlflow/runs/search"

    def post(c: Client, body: dict[str, Any]) -> dict[str, Any]:
        r = c.post(search, json=body)
        if r.status_code != 200:
            raise RuntimeError(f"search {body} -> {r.status_code} {r.text[:300]}")
        return orjson.loads(r.content)

    base = {"experiment_ids": all_ids, "max_results": PER_PAGE, "order_by": ["attributes.start_time DESC"]}
    token = post(client, base).get("next_page_token")

    def history(c: Client, max_results: int | None = None) -> None:
        for key in ("accuracy", "loss", "lr"):
            if max_results is None:
                _get(c, "/api/2.0/mlflow/metrics/get-history",
                     {"run_id": run_id, "metric_key": key, "max_results": 25000})
            else:
                _get(c, "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                     {"run_ids": run_id, "metric_key": key, "max_results": max_results})

    lr_filter = mlflow_lr_filter(info.get("param_values", {}).get("lr", []), 0.01)
    by_acc = ["metrics.accuracy DESC"]
    queries = {
        "List all (page 1 of 50)": lambda c: post(c, base),
        "Filter by project": lambda c: post(c, {**base, "experiment_ids": [exps[project]]}),
        "Filter by status": lambda c: post(c, {**base, "filter": "attributes.status = 'FINISHED'"}),
        "Sort by metric": lambda c: post(c, {**base, "order_by": ["metrics.best_metric_value DESC"]}),
        "Complex query (4 filters)": lambda c: post(c, {
            "experiment_ids": [exps[project]], "max_results": PER_PAGE,
            # MLflow's IN works only for run_id: "FINISHED or FAILED" as "neither KILLED nor RUNNING".
            "filter": ("attributes.status != 'KILLED' AND attributes.status != 'RUNNING'"
                       f" AND attributes.start_time >= {after_ms}"
                       f" AND metrics.best_metric_value >= {p.best_min}"),
            "order_by": ["metrics.best_metric_value DESC"]}),
        "Pagination (page 2)": lambda c: post(c, {**base, "page_token": token}),
        f"Search '{p.search}'": lambda c: post(c, {**base, "filter": f"attributes.run_name ILIKE '%{p.search}%'"}),
        "Sort by param `params.lr`": lambda c: post(c, {**base, "order_by": ["params.lr DESC"]}),
        f"Sort by `{SORT_ACC_MAX}`": lambda c: post(c, {**base, "order_by": by_acc}),
        "`filter=` of 3 clauses": lambda c: post(c, {**base, "filter": (
            f"{lr_filter} AND params.`optim.name` = 'adam' AND metrics.accuracy > 0.5")}),
        f"`filter={FILTER_LR}` + sort by `{SORT_ACC_MAX}`": lambda c: post(c, {
            **base, "filter": lr_filter, "order_by": by_acc}),
        "List + `include=params,metrics`": lambda c: post(c, base),
        "Detail": lambda c: _get(c, "/api/2.0/mlflow/runs/get", {"run_id": run_id}),
        "Metrics (all points)": history,
        "Metrics (downsample=20)": lambda c: history(c, 20),
        "404 (unknown id)": lambda c: _get(c, "/api/2.0/mlflow/runs/get", {"run_id": "0" * 32}, expect=404),
        "Health": lambda c: _get(c, "/health"),
    }
    return queries, Params(project=project, run_id=p.run_id, created_after=p.created_after)


# ---- ours ----------------------------------------------------------------------------------------


def our_queries(p: Params) -> dict[str, Callable[[Client], object]]:
    out: dict[str, Callable[[Client], object]] = {}
    for q in query_set(p):
        out[q.name] = lambda c, q=q: _get(c, q.v2_path, q.v2_params)
    out["404 (unknown id)"] = lambda c: _get(c, "/api/v2/experiments/20000101_000000_ffffff", expect=404)
    out["Health"] = lambda c: _get(c, "/api/health")
    return out


# ---- the run ---------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:  # noqa: PLR0915 - one measured scenario, top to bottom
    corpus = Path(args.root).resolve()
    res: dict[str, Any] = {"servers": {}, "rows": {}}
    t_start = time.perf_counter()
    ours = OurServer(corpus, "--no-watch")
    try:
        health = ours.wait_ready(timeout=900)
        n_runs = health["index"]["runs_in_index"]
        res["n_runs"] = n_runs
        res["servers"]["runicorn-lite"] = {"first_answer_s": ours.listening_s, "ready_s": ours.ready_s}
        with RawClient(ours.url) as oc:
            params = pick_params(oc)
            res["params"] = params.__dict__
            ours_q = our_queries(params)
            res["rows"]["runicorn-lite"] = {name: timed(lambda f=f: f(oc), args.reps * 3, args.slow_reps)
                                            for name, f in ours_q.items()}
            changer = IndexChanger(oc, params.bystander)
            try:
                res["rows"]["runicorn-lite after a change"] = {
                    name: timed_after_change(lambda f=f: f(oc), changer, args.reps) for name, f in ours_q.items()}
            finally:
                changer.restore()
        res["servers"]["runicorn-lite"]["peak_rss_mb"] = ours.peak_rss_mb()
    finally:
        ours.stop()
    print(f"  ours done ({time.perf_counter() - t_start:.0f} s)", flush=True)

    if args.only in (None, "runicorn") and runicorn_available():
        server, facts = start_runicorn(corpus, n_runs)
        try:
            with RawClient(server.url) as c:
                res["rows"]["runicorn"] = {name: timed(lambda f=f: f(c), args.reps, args.slow_reps)
                                           for name, f in runicorn_queries(params).items()}
            facts["peak_rss_mb"] = server.peak_rss_mb()
            res["servers"]["runicorn"] = facts
        finally:
            server.stop()
        print(f"  runicorn done ({time.perf_counter() - t_start:.0f} s)", flush=True)

    if args.only in (None, "mlflow") and mlflow_available():
        t0 = time.perf_counter()
        info = load_mlflow(corpus, args.mlflow_runs, WORK / "mlflow")
        res["mlflow_lr_values"] = info.get("param_values", {}).get("lr", [])
        res["mlflow_load"] = {"runs": info["runs"], "points": info["points"], "params": info.get("params"),
                              "seconds": info["seconds"], "wall_s": time.perf_counter() - t0}
        server, facts = start_mlflow(WORK / "mlflow")
        try:
            with RawClient(server.url) as c:
                mq, _ = mlflow_queries(params, info, c)
                res["rows"]["mlflow"] = {name: timed(lambda f=f: f(c), args.reps, args.slow_reps)
                                         for name, f in mq.items()}
            facts["peak_rss_mb"] = server.peak_rss_mb()
            res["servers"]["mlflow"] = facts
        finally:
            server.stop()
        print(f"  mlflow done ({time.perf_counter() - t_start:.0f} s)", flush=True)
        if not args.no_long:
            res["long"] = run_long(args)
            print(f"  long runs done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    return res


# ---- long runs: our compare against MLflow's history calls --------------------------------------


def run_long(args: argparse.Namespace) -> dict[str, Any]:
    root = args.long_root or WORK / ("corpus-long-quick" if args.quick else "corpus-long")
    generate.ensure(root, args.long_runs, args.long_steps, args.seed)
    out: dict[str, Any] = {"runs": args.long_runs, "steps": args.long_steps}
    with OurServer(root, "--no-watch") as ours:
        ours.wait_ready(timeout=900)
        with RawClient(ours.url) as c:
            listed = orjson.loads(_get(c, "/api/v2/experiments", {"per_page": 50, "order_desc": "false"}))
            ids = [e["id"] for e in listed["experiments"]]

            def compare(budget: int) -> Callable[[Client], object]:
                return lambda c: _get(c, "/api/v2/compare", {"ids": ",".join(ids), "downsample": budget})

            everything = orjson.loads(compare(100_000)(c))
            out["ours_points"] = sum(len(s["steps"]) for per in everything["series"].values() for s in per.values())
            del everything
            out["ours"] = {
                "downsampled": timed(lambda: compare(1000)(c), args.reps, args.slow_reps),
                "all": timed(lambda: compare(100_000)(c), args.reps, args.slow_reps),
                "health": timed(lambda: _get(c, "/api/health"), args.reps, args.slow_reps),
            }
    t0 = time.perf_counter()
    base = WORK / ("mlflow-long-quick" if args.quick else "mlflow-long")
    info = load_mlflow(root, args.long_runs, base)
    out["mlflow_load"] = {"points": info["points"], "seconds": info["seconds"], "wall_s": time.perf_counter() - t0}
    server, _facts = start_mlflow(base)
    try:
        mids = [info["runs_map"][i] for i in ids]
        keys = ("accuracy", "loss", "lr")

        def history(c: Client) -> int:
            """Every point of every (run, metric): one get-history call each (more if paged)."""
            calls = 0
            for rid in mids:
                for key in keys:
                    token = None
                    while True:
                        params = {"run_id": rid, "metric_key": key, **({"page_token": token} if token else {})}
                        body = orjson.loads(_get(c, "/api/2.0/mlflow/metrics/get-history", params))
                        calls += 1
                        token = body.get("next_page_token")
                        if not token:
                            break
            return calls

        def bulk(c: Client) -> int:
            """MLflow's downsampling: one get-history-bulk-interval call per metric, every run in it."""
            for key in keys:
                query = urlencode([*(("run_ids", rid) for rid in mids), ("metric_key", key), ("max_results", 1000)])
                _get(c, f"/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?{query}")
            return len(keys)

        with RawClient(server.url) as c:
            out["mlflow_calls"] = {"all": history(c), "downsampled": bulk(c)}
            out["mlflow"] = {
                "downsampled": timed(lambda: bulk(c), args.reps, args.slow_reps),
                "all": timed(lambda: history(c), args.reps, args.slow_reps),
                "health": timed(lambda: _get(c, "/health"), args.reps, args.slow_reps),
            }
    finally:
        server.stop()
    return out


def render_long(res: dict[str, Any]) -> str:
    ours, ml, calls = res["ours"], res["mlflow"], res["mlflow_calls"]
    n, steps = res["runs"], res["steps"]
    series = n * 3
    rows = [
        [f"{series} series downsampled to ≤ 1,000 points", fmt_ms(ours["downsampled"]["median_ms"]),
         "1 × `compare?downsample=1000`", fmt_ms(ml["downsampled"]["median_ms"]),
         f"{calls['downsampled']} × `get-history-bulk-interval` (`max_results=1000`, {n} runs a call)",
         fmt_ratio(ml["downsampled"]["median_ms"] / ours["downsampled"]["median_ms"])],
        [f"every point ({res['ours_points']:,})", fmt_ms(ours["all"]["median_ms"]),
         "1 × `compare?downsample=100000`", fmt_ms(ml["all"]["median_ms"]),
         f"{calls['all']} × `get-history` (one per run and metric)",
         fmt_ratio(ml["all"]["median_ms"] / ours["all"]["median_ms"])],
        ["Health", fmt_ms(ours["health"]["median_ms"]), "`/api/health`", fmt_ms(ml["health"]["median_ms"]),
         "`/health`", ""],
    ]
    return (f"{n} runs × 3 metrics × {steps:,} steps (our SDK; loaded into MLflow with `log_batch`: "
            f"{res['mlflow_load']['points']:,} points in {res['mlflow_load']['seconds']:.0f} s). Raw keep-alive "
            f"client; medians.\n\n"
            + markdown_table(["Curves of the runs", "runicorn-lite", "requests", "MLflow", "requests",
                              "ours faster by"], rows))


def render(res: dict[str, Any]) -> str:
    """Per query: each peer's median, our speed-up over it, and the verdict against the issue's
    rule: never slower; ≥10x faster where the peer takes more than 10x the health round trip
    (our ``/api/health``, the floor of one HTTP round trip on this machine). Our speed-up is
    taken from the slower of our two figures (repeated, or right after a change of the index)."""
    ours = res["rows"]["runicorn-lite"]
    changed = res["rows"].get("runicorn-lite after a change", {})
    peers = [p for p in ("runicorn", "mlflow") if p in res["rows"]]
    floor = ours["Health"]["median_ms"]
    header = ["Query", "runicorn-lite (V2), repeated", "after a change"]
    for p in peers:
        header += [f"{p} median", "ours faster by", "peer / health floor", "verdict"]
    rows = []
    for name, repeated in ours.items():
        after = changed.get(name)
        s = max((repeated, after) if after else (repeated,), key=lambda x: x["median_ms"])
        row = [name, fmt_ms(repeated["median_ms"]), fmt_ms(after["median_ms"]) if after else "–"]
        for p in peers:
            ps = res["rows"][p].get(name)
            if ps is None:
                row += ["–", "–", "–", "not comparable"]
                continue
            ratio = ps["median_ms"] / s["median_ms"]
            to_floor = ps["median_ms"] / floor
            if name == "Health":
                verdict = ""
            elif ratio < 1:
                verdict = "**slower**"
            elif to_floor > 10:
                verdict = "ok (≥10x)" if ratio >= 10 else "**<10x**"
            else:
                verdict = "ok (not slower)"
            row += [fmt_ms(ps["median_ms"]), fmt_ratio(ratio), f"{to_floor:.1f}x", verdict]
        rows.append(row)
    md = markdown_table(header, rows)
    srv = []
    for name, facts in res["servers"].items():
        srv.append([name, f"{facts.get('peak_rss_mb') or 0:.0f} MB", f"{facts['first_answer_s']:.2f} s",
                    f"{facts.get('ready_s', facts.get('all_runs_listed_s', facts['first_answer_s'])):.2f} s"])
    md += "\n\n" + markdown_table(["Server", "Peak RSS", "Start → first answer", "Start → all runs queryable"], srv)
    if "mlflow_load" in res:
        ml = res["mlflow_load"]
        held = (f"MLflow holds a subset: {ml['runs']:,} of the {res['n_runs']:,} runs" if ml["runs"] < res["n_runs"]
                else f"MLflow holds the same {ml['runs']:,} runs")
        lr = mlflow_lr_filter(res.get("mlflow_lr_values", []), 0.01)
        md += (f"\n\n{held} ({ml['points']:,} metric points, {ml.get('params') or 0:,} params,"
               f" loaded with `MlflowClient.log_batch` in {ml['seconds']:.0f} s); runicorn-lite and Runicorn hold all"
               f" {res['n_runs']:,}. Health = `/api/health` (ours, Runicorn), `/health` (MLflow). MLflow's forms:"
               f" `params.lr < 0.01` is `{lr}` (its params are strings: no `<`, no `IN`; every run has an lr);"
               f" `metrics.accuracy.max` is `metrics.accuracy` (MLflow keeps one value per run and metric, the"
               f" latest); `include=params,metrics` is its plain list (it always sends every param and metric).")
    if "long" in res:
        md += "\n\n" + render_long(res["long"])
    return md


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.reps, args.slow_reps, args.mlflow_runs = 2, 1, min(args.mlflow_runs, 20)
        args.long_runs, args.long_steps = 3, 2000
    if not runicorn_available() and not mlflow_available():
        print("no peers installed (see benchmarks/README.md: benchmarks/.work/venv-runicorn, venv-mlflow)")
        sys.exit(2)
    res = run(args)
    md = f"Machine: {machine_info()}\n\nCommand: `{command_line()}`\n\n" + render(res)
    path = save_result("peers-quick" if args.quick else "peers", res, md)
    print(md)
    print(f"\n(saved to {path})")
    return res


def generate_real(out: Path, runs: int, seed: int) -> None:
    """A small corpus written by the real runicorn SDK (0.7.x, in its own venv)."""
    if not runicorn_available():
        raise SystemExit(f"install the real runicorn first: python3 -m venv {RUNICORN_VENV} && "
                         f"{RUNICORN_VENV}/bin/pip install runicorn")
    script = f"""
import random, runicorn as rn
rng = random.Random({seed})
for i in range({runs}):
    run = rn.init(path=f"real_project/name_{{i % 5}}", storage={str(out)!r})
    run.set_primary_metric("accuracy", mode="max")
    for s in range(1, 101):
        run.log({{"loss": 1 / s + rng.random() * 0.01, "accuracy": 1 - 1 / s, "lr": 0.001}}, step=s)
    run.finish("finished" if i % 7 else "failed")
"""
    t0 = time.perf_counter()
    subprocess.run([str(RUNICORN_VENV / "bin" / "python"), "-c", script], check=True,
                   env={"HOME": str(WORK / "runicorn-home"), "PATH": "/usr/bin:/bin"})
    dt = time.perf_counter() - t0
    print(f"wrote {runs} runs with the real runicorn SDK to {out} in {dt:.1f} s = {runs / dt:.1f} runs/s")
