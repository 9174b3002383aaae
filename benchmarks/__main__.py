"""``python -m benchmarks <command> [options]`` — see benchmarks/README.md."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from benchmarks.common import WORK, machine_info


def _corpus_arg(p: argparse.ArgumentParser, default: str = "corpus-10k") -> None:
    p.add_argument("--root", type=Path, default=WORK / default,
                   help=f"corpus written by `generate` (default benchmarks/.work/{default})")


def main(argv: list[str] | None = None) -> None:  # noqa: C901, PLR0912, PLR0915 - one subcommand's options and call each, read as a table
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write a reproducible corpus through our SDK")
    g.add_argument("--runs", type=int, default=10_000)
    g.add_argument("--steps", type=int, default=100, help="steps per run (3 metrics each)")
    g.add_argument("--out", type=Path, default=WORK / "corpus-10k")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    g.add_argument("--real-runicorn", action="store_true",
                   help="also write a small corpus with the real runicorn SDK (needs benchmarks/.work/venv-runicorn)")
    g.add_argument("--real-runs", type=int, default=50)
    g.add_argument("--quick", action="store_true", help="30 runs x 20 steps")

    a = sub.add_parser("api", help="V1 vs V2 vs /api/health on our server; compare of long runs; a huge run's memory")
    _corpus_arg(a)
    a.add_argument("--sections", default="runs,compare,huge",
                   help="comma list of: runs (the --root corpus), compare (long runs), huge (one 1M-step run)")
    a.add_argument("--v1-reps", type=int, default=5)
    a.add_argument("--v2-reps", type=int, default=200, help="rounds of the repeated-request passes")
    a.add_argument("--change-reps", type=int, default=100, help="rounds of the after-a-change pass")
    a.add_argument("--warmup", type=int, default=3)
    a.add_argument("--long-root", type=Path, default=None,
                   help="corpus of long runs for compare (default benchmarks/.work/corpus-long, made on first use)")
    a.add_argument("--long-runs", type=int, default=10)
    a.add_argument("--long-steps", type=int, default=100_000)
    a.add_argument("--compare-reps", type=int, default=50)
    a.add_argument("--huge-root", type=Path, default=None,
                   help="corpus of one huge run (default benchmarks/.work/corpus-huge, made on first use)")
    a.add_argument("--huge-steps", type=int, default=1_000_000)
    a.add_argument("--huge-reps", type=int, default=3)
    a.add_argument("--seed", type=int, default=42, help="seed of the long and huge corpora")
    a.add_argument("--quick", action="store_true",
                   help="2 repetitions, 1 warm-up; 3 long runs of 2,000 steps, a huge run of 20,000")

    p = sub.add_parser("peers", help="the same queries against the real Runicorn viewer and MLflow")
    _corpus_arg(p)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--slow-reps", type=int, default=5, help="repetitions of queries that take > 0.5 s")
    p.add_argument("--mlflow-runs", type=int, default=10_000,
                   help="runs loaded into MLflow (fewer than the corpus: an evenly spread subset)")
    p.add_argument("--only", choices=("runicorn", "mlflow"), default=None)
    p.add_argument("--no-long", action="store_true", help="leave out the long runs (compare vs MLflow history)")
    p.add_argument("--long-root", type=Path, default=None,
                   help="corpus of long runs (default benchmarks/.work/corpus-long, made on first use)")
    p.add_argument("--long-runs", type=int, default=10)
    p.add_argument("--long-steps", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=42, help="seed of the long corpus")
    p.add_argument("--quick", action="store_true", help="2 repetitions, 20 runs in MLflow, 3 long runs of 2,000 steps")

    i = sub.add_parser("ingest", help="cold index, start-up scan, rescan, live latency")
    _corpus_arg(i)
    i.add_argument("--events", type=int, default=150, help="live events to time")
    i.add_argument("--interval", type=float, default=0.1, help="seconds between live events")
    i.add_argument("--readers", type=int, default=2, help="threads of V2 read load during the live test")
    i.add_argument("--quick", action="store_true")

    lo = sub.add_parser("load", help="optimization API under concurrent clients")
    lo.add_argument("--root", type=Path, default=WORK / "opt-load")
    lo.add_argument("--runs", type=int, default=100_000)
    lo.add_argument("--iterations", type=int, default=1_000_000)
    lo.add_argument("--clients", default="16,64")
    lo.add_argument("--requests", type=int, default=3000, help="requests per operation and concurrency")
    lo.add_argument("--quick", action="store_true")
    lo.add_argument("--reuse", action="store_true", help="keep an existing pre-filled database")
    lo.add_argument("--workers", type=int, default=1, help="server worker processes (serve --workers)")
    lo.add_argument("--database", default=None,
                    help="a PostgreSQL server (libpq URL): the primary store there, in databases of the"
                         " benchmark's own (bench_load_pristine, and a copy per run that is dropped after)")

    s = sub.add_parser("scale", help="V2 queries at 1k / 10k / 100k experiments, with a log-log plot")
    s.add_argument("--sizes", default="1000,10000,100000")
    s.add_argument("--steps", default="100,100,20", help="steps per run for each size")
    s.add_argument("--reps", type=int, default=100, help="rounds repeating each request on an unchanged index")
    s.add_argument("--change-reps", type=int, default=50, help="rounds right after a change of the index")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--seeds", default=None, help="a seed for each size (comma-separated), instead of --seed")
    s.add_argument("--database", default=None,
                   help="serve from this PostgreSQL server (libpq URL): a database bench_scale_<size> per size,"
                        " made when missing and kept")
    s.add_argument("--plot", type=Path, default=Path(__file__).parent / "scale.png")
    s.add_argument("--quick", action="store_true")

    t = sub.add_parser("team", help="PostgreSQL beside SQLite (cold index, V2 reads vs health) and 1 vs 2 workers")
    _corpus_arg(t)
    t.add_argument("--database", default="postgresql://root@127.0.0.1:5432/root",
                   help="PostgreSQL to use (a schema of its own is made and dropped)")
    t.add_argument("--reps", type=int, default=100, help="rounds of the repeated-request pass")
    t.add_argument("--change-reps", type=int, default=50, help="rounds of the after-a-change pass")
    t.add_argument("--seconds", type=int, default=10, help="seconds of each wrk measurement")
    t.add_argument("--connections", type=int, default=16, help="wrk connections")
    t.add_argument("--work", type=Path, default=WORK / "team")
    t.add_argument("--root-100k", type=Path, default=None,
                   help="a corpus of 100k runs: the V2 reads on PostgreSQL there too (growth 10k → 100k)")
    t.add_argument("--mlflow-runs", type=int, default=0,
                   help="load N runs into MLflow's tracking server on the same PostgreSQL and compare (0: skip)")
    t.add_argument("--mlflow-reps", type=int, default=20, help="repetitions of each MLflow request")
    t.add_argument("--keep-mlflow", action="store_true",
                   help="keep MLflow's loaded database for the next run (else it is dropped)")
    t.add_argument("--postgresql-only", action="store_true", help="leave out the SQLite columns")
    t.add_argument("--no-workers", action="store_true", help="leave out the wrk part (1 vs 2 workers)")
    t.add_argument("--quick", action="store_true")

    from benchmarks import dbthreads, events, export, files, ratelimit, soak, uploads

    dbthreads.add_parser(sub)
    ratelimit.add_parser(sub)
    files.add_parser(sub)
    soak.add_parser(sub)
    export.add_parser(sub)
    events.add_parser(sub)
    uploads.add_parser(sub)

    from benchmarks import browser as browser_bench

    browser_bench.add_parser(sub, _corpus_arg)

    from benchmarks import analysis, newrun

    analysis.add_parser(sub, _corpus_arg)
    newrun.add_parser(sub, _corpus_arg)

    args = parser.parse_args(argv)
    machine_info()  # stamp date and commit now, before anything is measured
    # A SIGTERM (timeout, CI) unwinds normally, so the servers we started are stopped (atexit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.command == "generate":
        from benchmarks import generate

        runs, steps = (30, 20) if args.quick else (args.runs, args.steps)
        generate.main(args.out, runs, args.seed, steps, args.workers)
        if args.real_runicorn:
            from benchmarks import peers

            peers.generate_real(args.out.parent / (args.out.name + "-real"), args.real_runs, args.seed)
    elif args.command == "api":
        from benchmarks import api

        api.main(args)
    elif args.command == "peers":
        from benchmarks import peers

        peers.main(args)
    elif args.command == "ingest":
        from benchmarks import ingest

        ingest.main(args)
    elif args.command == "load":
        from benchmarks import load

        load.main(args)
    elif args.command == "dbthreads":
        dbthreads.main(args)
    elif args.command == "ratelimit":
        ratelimit.main(args)
    elif args.command == "files":
        files.main(args)
    elif args.command == "soak":
        soak.main(args)
    elif args.command == "browser":
        browser_bench.main(args)
    elif args.command == "export":
        export.main(args)
    elif args.command == "events":
        events.main(args)
    elif args.command == "team":
        from benchmarks import team

        team.main(args)
    elif args.command == "uploads":
        uploads.main(args)
    elif args.command == "analysis":
        analysis.main(args)
    elif args.command == "newrun":
        newrun.main(args)
    elif args.command == "scale":
        from benchmarks import scale

        scale.main(args)


if __name__ == "__main__":
    main()
