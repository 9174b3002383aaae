"""``team``: the team server — PostgreSQL beside SQLite, and several workers, in one run.

- ``cold``: ``runicorn-lite index`` of the corpus into a new PostgreSQL schema and into new
  SQLite files (wall clock and peak RSS of the indexing process).
- ``reads``: every V2 read of the ``api`` table (benchmarks/queries.py) on a server over each
  backend, p50 of a raw keep-alive client, against ``/api/health`` of the same server; warm (the
  same request again) and right after a change of the index.
- ``workers``: ``wrk`` (a separate, efficient client process) for 10 s against a list page and a
  param filter + metric sort, on 1 and on 2 workers, for each backend; requests per second.
- ``growth`` (``--root-100k``): the same V2 reads on PostgreSQL over a corpus of 100k runs,
  against the 10k figures (and its cold index).
- ``mlflow`` (``--mlflow-runs N``, with the MLflow venv of ``peers``): MLflow's tracking server on
  the **same** PostgreSQL server, in a database of its own made for it (``--keep-mlflow`` keeps it
  for the next run, else it is dropped), loaded as ``peers`` loads it (``benchmarks/mlflow_load.py``);
  the filter by a param + sort by a metric, the list, detail and history rows of the peers table,
  against our server on PostgreSQL at 10k runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import (
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
    run_measured,
    save_result,
    summarize,
)
from benchmarks.queries import (
    FILTER_LR,
    PER_PAGE,
    SORT_ACC_MAX,
    IndexChanger,
    Params,
    pick_params,
    query_set,
    round_robin,
)

BASE = "postgresql://root@127.0.0.1:5432/root"
NAMES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
HEALTH = ("/api/health", {})


@contextlib.contextmanager
def schema(base: str) -> Iterator[str]:
    """A new PostgreSQL schema for one store (dropped afterwards); its URL."""
    import psycopg

    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{base}?options=" + urllib.parse.quote(f"-csearch_path={name},public")
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def mirror(corpus: Path, work: Path) -> Path:
    """A copy of ``corpus`` under ``work`` made of hard links (seconds, no space): the servers
    write there (the store's folder, a bystander's ``.deleted`` marker), never into a corpus
    others read. Our writes into a run directory make new files or rename over old ones, so a
    linked original is never changed. Reused while the corpus is the same."""
    dest = work / f"mirror-{corpus.name}"
    stamp = (corpus / "corpus.json").read_bytes() if (corpus / "corpus.json").exists() else b""
    if (dest / "corpus.json").exists() and (dest / "corpus.json").read_bytes() == stamp and (dest / "runs").is_dir():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(corpus / "runs"), str(dest / "runs")], check=True)
    (dest / "corpus.json").write_bytes(stamp)
    return dest


def _index(root: Path, *args: str) -> dict[str, float]:
    wall, peak_mb, _out = run_measured([sys.executable, "-m", "runicorn_lite", "index", "--root", str(root),
                                        "--silent", *args])
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak_mb, 1)}


def run_reads(root: Path, args: tuple[str, ...], reps: int, change_reps: int) -> dict[str, Any]:
    with OurServer(root, "--no-watch", *args) as server:
        runs = server.wait_ready()["index"]["runs_in_index"]
        with RawClient(server.url) as raw:
            params = pick_params(raw)
            queries = query_set(params)
            targets = [HEALTH] + [(q.v2_path, q.v2_params) for q in queries]
            warm = round_robin(raw, targets, reps, 20)
            changer = IndexChanger(raw, params.bystander)
            try:
                changed = round_robin(raw, targets, change_reps, 0, before=changer)
            finally:
                changer.restore()
    return {"runs": runs, "params": params.__dict__, "health": summarize(warm[0]),
            "health_changed": summarize(changed[0]),
            "rows": [{"query": q.name, "warm": summarize(warm[i + 1]), "changed": summarize(changed[i + 1])}
                     for i, q in enumerate(queries)]}


def _wrk(url: str, seconds: int, connections: int) -> float:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url], capture_output=True,
                         text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out:
        raise RuntimeError(f"wrk: {out}")
    return float(match.group(1))


def run_workers(root: Path, args: tuple[str, ...], seconds: int, connections: int) -> dict[str, Any]:
    paths = {
        "list page": f"/api/v2/experiments?per_page={PER_PAGE}",
        "param filter + metric sort": "/api/v2/experiments?" + urllib.parse.urlencode(
            {"filter": FILTER_LR, "order_by": SORT_ACC_MAX, "per_page": PER_PAGE}),
    }
    out: dict[str, Any] = {}
    for workers in (1, 2):
        with OurServer(root, "--no-watch", "--workers", str(workers), *args) as server:
            deadline = time.monotonic() + 600
            while not server.health()["index"]["ready"] and time.monotonic() < deadline:
                time.sleep(0.2)  # the answering worker may not be the ingester: ask again
            time.sleep(1.0)
            for name, path in paths.items():
                _wrk(server.url + path, 2, connections)  # warm-up
                out.setdefault(name, {})[workers] = _wrk(server.url + path, seconds, connections)
    return out


def run_growth(root: Path, base: str, reps: int, change_reps: int) -> dict[str, Any]:
    """Cold index and the V2 reads on PostgreSQL over the 100k-run corpus."""
    with schema(base) as url:
        cold = _index(root, "--database", url)
        return {"cold": cold, "reads": run_reads(root, ("--database", url), reps, change_reps)}


# ---- MLflow's tracking server on the same PostgreSQL ---------------------------------------------

# The rows of the peers table asked here, by their names in benchmarks/queries.py.
MLFLOW_ROWS = (f"`filter={FILTER_LR}` + sort by `{SORT_ACC_MAX}`", "List all (page 1 of 50)", "Detail",
               "Metrics (all points)")


@contextlib.contextmanager
def mlflow_database(root: Path, base: str, n_runs: int, work: Path, keep: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """A database of MLflow's own on the PostgreSQL server of ``base``, loaded with ``n_runs`` of
    the corpus (reused from an earlier ``--keep-mlflow`` run when the same); its SQLAlchemy URL.

    SQLAlchemy 2.1 takes a plain ``postgresql://`` for psycopg 3, which MLflow's venv does not
    have: the URL names psycopg2 (``postgresql+psycopg2://``), the driver MLflow documents."""
    from benchmarks import peers

    base_dir = work / "mlflow-pg"
    marker = base_dir / "loaded.json"
    name = json.loads(marker.read_text()).get("database") if marker.exists() else None
    if not (isinstance(name, str) and database_exists(base, name)):
        name = f"bench_mlflow_{secrets.token_hex(4)}"
    uri = database_url(base, name, "postgresql+psycopg2")

    def fresh() -> None:
        pg_admin(base, f"DROP DATABASE IF EXISTS {name}")
        pg_admin(base, f"CREATE DATABASE {name}")

    try:
        t0 = time.perf_counter()
        info = peers.load_mlflow(root, n_runs, base_dir, uri=uri, fresh=fresh)
        if info.get("database") != name:
            info["database"] = name
            marker.write_text(json.dumps(info))
        info["wall_s"] = time.perf_counter() - t0
        yield uri, info
    finally:
        if not keep:
            shutil.rmtree(base_dir, ignore_errors=True)
            pg_admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_mlflow(root: Path, base: str, params: Params, n_runs: int, reps: int, work: Path,
               keep: bool) -> dict[str, Any]:
    from benchmarks import peers

    with mlflow_database(root, base, n_runs, work, keep) as (uri, info):
        # uvicorn kills a worker that misses a 5 s health ping; on a loaded 2-core machine MLflow's
        # workers miss it while importing, and were killed and restarted in a loop.
        server, facts = peers.start_mlflow(work / "mlflow-pg", uri,
                                           ("--uvicorn-opts", "--timeout-worker-healthcheck 60"))
        try:
            with RawClient(server.url) as c:
                queries, _ = peers.mlflow_queries(params, info, c)
                rows = {name: peers.timed(lambda f=queries[name]: f(c), reps, max(3, reps // 4))
                        for name in (*MLFLOW_ROWS, "Health")}
            facts["peak_rss_mb"] = server.peak_rss_mb()
        finally:
            server.stop()
    lr_filter = peers.mlflow_lr_filter(info.get("param_values", {}).get("lr", []), 0.01)
    return {"rows": rows, "server": facts, "lr_filter": lr_filter,
            "load": {k: info.get(k) for k in ("runs", "points", "params", "seconds")}}


def _slower(row: dict[str, Any]) -> float:
    """Our figure for a row: the slower of warm and right after a change (as peers judges)."""
    return float(max(row["warm"]["median_ms"], row["changed"]["median_ms"]))


def render(res: dict[str, Any]) -> str:
    lines = [f"Corpus: {res['runs']} runs. {res['machine']}", ""]
    cold = res["cold"]
    backends = [b for b in ("postgresql", "sqlite") if b in cold]
    lines.append(markdown_table(["cold index", *(NAMES[b] for b in backends)], [
        ["wall clock", *(f"{cold[b]['wall_s']} s" for b in backends)],
        ["peak RSS of the indexer", *(f"{cold[b]['peak_rss_mb']} MB" for b in backends)],
    ]))
    lines.append("")
    growth = res.get("growth")
    if growth is not None:
        g = growth["cold"]
        lines.append(f"Cold index of the {growth['reads']['runs']:,}-run corpus into PostgreSQL: {g['wall_s']} s, "
                     f"peak RSS of the indexer {g['peak_rss_mb']} MB.")
    lines.append("")
    header = ["V2 read (raw client, p50)", "PostgreSQL", "x health", "after a change", "x health",
              "SQLite", "x health"]
    pg = res["reads"]["postgresql"]
    sq = res["reads"].get("sqlite")
    if sq is None:
        header = header[:5]
    rows = [["`/api/health`", fmt_ms(pg["health"]["median_ms"]), "1.0x", fmt_ms(pg["health_changed"]["median_ms"]),
             "1.0x", *([fmt_ms(sq["health"]["median_ms"]), "1.0x"] if sq else [])]]
    for i, a in enumerate(pg["rows"]):
        b = sq["rows"][i] if sq else None
        rows.append([a["query"], fmt_ms(a["warm"]["median_ms"]),
                     fmt_ratio(a["warm"]["median_ms"] / pg["health"]["median_ms"]),
                     fmt_ms(a["changed"]["median_ms"]),
                     fmt_ratio(a["changed"]["median_ms"] / pg["health_changed"]["median_ms"]),
                     *([fmt_ms(b["warm"]["median_ms"]), fmt_ratio(b["warm"]["median_ms"] / sq["health"]["median_ms"])]
                       if b and sq else [])])
    lines.append(markdown_table(header, rows))
    lines.append("")
    if growth is not None:
        big = growth["reads"]
        def grown(a: dict[str, Any], b: dict[str, Any], state: str) -> float:
            return float(b[state]["median_ms"] / a[state]["median_ms"])

        grows = [["`/api/health`", fmt_ms(pg["health"]["median_ms"]), fmt_ms(big["health"]["median_ms"]),
                  fmt_ratio(big["health"]["median_ms"] / pg["health"]["median_ms"]),
                  fmt_ms(pg["health_changed"]["median_ms"]), fmt_ms(big["health_changed"]["median_ms"]),
                  fmt_ratio(big["health_changed"]["median_ms"] / pg["health_changed"]["median_ms"]), "", ""]]
        for a, b in zip(pg["rows"], big["rows"], strict=True):
            warm, changed = grown(a, b, "warm"), grown(a, b, "changed")
            grows.append([a["query"], fmt_ms(a["warm"]["median_ms"]), fmt_ms(b["warm"]["median_ms"]), fmt_ratio(warm),
                          fmt_ms(a["changed"]["median_ms"]), fmt_ms(b["changed"]["median_ms"]), fmt_ratio(changed),
                          fmt_ratio(b["warm"]["median_ms"] / big["health"]["median_ms"]),
                          "yes" if max(warm, changed) <= 2 else "**no**"])
        lines.append(markdown_table(["PostgreSQL, p50", f"{pg['runs']:,} runs", f"{big['runs']:,} runs", "growth",
                                     "after a change, 10k", "100k", "growth", "100k x health", "≤ 2x"], grows))
        lines.append("")
    ml = res.get("mlflow")
    if ml is not None:
        by_name = {r["query"]: r for r in pg["rows"]}
        mrows = []
        for name in MLFLOW_ROWS:
            ours = _slower(by_name[name])
            theirs = ml["rows"][name]["median_ms"]
            target = "≥ 100x" if name == MLFLOW_ROWS[0] else "faster"
            met = theirs / ours >= 100 if name == MLFLOW_ROWS[0] else theirs > ours
            row = by_name[name]
            mrows.append([name, fmt_ms(row["warm"]["median_ms"]), fmt_ms(row["changed"]["median_ms"]), fmt_ms(theirs),
                          fmt_ratio(theirs / ours), target, "yes" if met else "**no**"])
        mrows.append(["Health", fmt_ms(pg["health"]["median_ms"]), fmt_ms(pg["health_changed"]["median_ms"]),
                      fmt_ms(ml["rows"]["Health"]["median_ms"]), "", "", ""])
        load = ml["load"]
        lines.append(f"MLflow's tracking server (`mlflow server --backend-store-uri "
                     f"postgresql+psycopg2://…`, its default workers) on the same PostgreSQL server, in a database of"
                     f" its own: {load['runs']:,} runs of the corpus ({load['points']:,} metric points, "
                     f"{load['params']:,} params, loaded with `MlflowClient.log_batch` in {load['seconds']:.0f} s);"
                     f" ours holds all {pg['runs']:,}. MLflow's form of `{FILTER_LR}` is `{ml['lr_filter']}` and of"
                     f" `{SORT_ACC_MAX}` is `metrics.accuracy` (see peers). Ours is the slower of warm and after a"
                     " change; MLflow's history row is 3 `get-history` calls (one per metric).")
        lines.append("")
        lines.append(markdown_table(["Query", "ours (PostgreSQL), warm", "after a change", "MLflow (PostgreSQL)",
                                     "ours faster by", "target", "met"], mrows))
        lines.append("")
    w = res.get("workers") or {}
    if not w:
        return "\n".join(lines)
    wrows = []
    for backend, table in w.items():
        for name, by in table.items():
            one, two = (float(by.get(n, by.get(str(n), 0))) for n in (1, 2))  # (str: read back from JSON)
            wrows.append([backend, name, f"{one:.0f}", f"{two:.0f}", fmt_ratio(two / one)])
    lines.append(markdown_table(["backend", "request (wrk)", "1 worker req/s", "2 workers req/s", "2 / 1"], wrows))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:  # a smoke run (tests): few rounds, short wrk, a handful of MLflow runs
        args.reps, args.change_reps, args.seconds, args.mlflow_reps = 5, 3, 1, 3
        args.mlflow_runs = min(args.mlflow_runs, 10)
    if args.mlflow_runs:
        from benchmarks import peers

        if not peers.mlflow_available():
            raise SystemExit(f"--mlflow-runs needs MLflow in {peers.MLFLOW_VENV} (see benchmarks/README.md)")
    root = mirror(args.root.resolve(), args.work)
    base: str = args.database
    sqlite = not args.postgresql_only
    sqlite_args = ("--index-dir", str(args.work / "cold-sqlite"))
    name = "team-quick" if args.quick else "team"
    res: dict[str, Any] = {"machine": machine_info(), "command": command_line(), "cold": {}, "reads": {},
                           "workers": {}}

    def save() -> None:  # after each part: a run stopped early keeps what it measured
        save_result(name, res, render(res))

    with schema(base) as url:
        print("cold index ...", flush=True)
        res["cold"]["postgresql"] = _index(root, "--database", url)
        if sqlite:
            shutil.rmtree(args.work / "cold-sqlite", ignore_errors=True)
            res["cold"]["sqlite"] = _index(root, *sqlite_args)
        print("reads ...", flush=True)
        res["reads"]["postgresql"] = run_reads(root, ("--database", url), args.reps, args.change_reps)
        res["runs"] = res["reads"]["postgresql"]["runs"]
        save()
        if args.mlflow_runs:
            print("mlflow ...", flush=True)
            params = Params(**res["reads"]["postgresql"]["params"])
            res["mlflow"] = run_mlflow(args.root.resolve(), base, params, args.mlflow_runs, args.mlflow_reps,
                                       args.work, args.keep_mlflow)
            save()
        if not args.no_workers:
            print("workers ...", flush=True)
            res["workers"]["postgresql"] = run_workers(root, ("--database", url), args.seconds, args.connections)
            save()
    if sqlite:
        res["reads"]["sqlite"] = run_reads(root, sqlite_args, args.reps, args.change_reps)
        if not args.no_workers:
            res["workers"]["sqlite"] = run_workers(root, sqlite_args, args.seconds, args.connections)
        save()
    if args.root_100k is not None:
        print("growth (100k) ...", flush=True)
        res["growth"] = run_growth(mirror(args.root_100k.resolve(), args.work), base, args.reps, args.change_reps)
    text = render(res)
    save_result(name, res, text)
    print(text)
    return res
