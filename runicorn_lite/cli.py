"""``runicorn-lite``: thin click commands that build settings and call into the package."""

from __future__ import annotations

import logging
import random
import socket
import sys
import time
from pathlib import Path

import click

from runicorn_lite import __version__
from runicorn_lite.optimization.cli import keys
from runicorn_lite.settings import DEFAULT_HOST, DEFAULT_PORT, Settings, default_root

ROOT_HELP = "Data root: run directories and our .runicorn_lite store (env RUNICORN_LITE_ROOT)."


def root_option(fn):  # type: ignore[no-untyped-def]
    return click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="RUNICORN_LITE_ROOT",
        default=default_root,
        show_default="./runicorn-data",
        help=ROOT_HELP,
    )(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "RUNICORN_LITE"})
@click.version_option(__version__, prog_name="runicorn-lite")
def main() -> None:
    """runicorn-lite: a fast local experiment tracker for Runicorn run directories."""


def _make_server(config, sock: socket.socket):  # type: ignore[no-untyped-def]
    """A uvicorn.Server that prints the bound address once it accepts connections."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):  # type: ignore[no-untyped-def]
            await super().startup(sockets=sockets)
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            click.echo(f"runicorn-lite listening on http://{shown}:{port}")
            sys.stdout.flush()

    return Server(config)


@main.command()
@root_option
@click.option("--host", default=DEFAULT_HOST, show_default=True, envvar="RUNICORN_LITE_HOST",
              help="Address to bind (env RUNICORN_LITE_HOST). Keep 127.0.0.1 unless you mean to share.")
@click.option("-p", "--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              envvar="RUNICORN_LITE_PORT", help="Port; 0 picks a free one (env RUNICORN_LITE_PORT).")
@click.option("--watch/--no-watch", default=True, show_default=True, envvar="RUNICORN_LITE_WATCH",
              help="Follow file events after the start-up scan; with --no-watch only the periodic "
                   "rescan keeps the index current (env RUNICORN_LITE_WATCH).")
@click.option("--rescan-interval", type=click.FloatRange(0, 86400), default=30.0, show_default=True,
              envvar="RUNICORN_LITE_RESCAN_INTERVAL",
              help="Seconds between full rescans (a fallback for unreliable file events); 0 turns them "
                   "off, and with --no-watch freezes the index after start-up (env RUNICORN_LITE_RESCAN_INTERVAL).")
@click.option("--rate-limit/--no-rate-limit", default=False, show_default=True, envvar="RUNICORN_LITE_RATE_LIMIT",
              help="Enforce the V2 document's per-client rate limits (env RUNICORN_LITE_RATE_LIMIT).")
@click.option("--read-limit", type=click.IntRange(1), default=1000, show_default=True, envvar="RUNICORN_LITE_READ_LIMIT",
              help="Optimization API reads per project per 60 s (env RUNICORN_LITE_READ_LIMIT).")
@click.option("--write-limit", type=click.IntRange(1), default=500, show_default=True, envvar="RUNICORN_LITE_WRITE_LIMIT",
              help="Optimization API writes per project per 60 s (env RUNICORN_LITE_WRITE_LIMIT).")
@click.option("--iterations-limit", type=click.IntRange(1), default=2000, show_default=True,
              envvar="RUNICORN_LITE_ITERATIONS_LIMIT",
              help="Optimization API iteration posts per project per 60 s (env RUNICORN_LITE_ITERATIONS_LIMIT).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, envvar="RUNICORN_LITE_LOG_LEVEL", help="Log level (env RUNICORN_LITE_LOG_LEVEL).")
@click.option("--access-log/--no-access-log", default=False, show_default=True, envvar="RUNICORN_LITE_ACCESS_LOG",
              help="Log every request (env RUNICORN_LITE_ACCESS_LOG).")
def serve(root: Path, host: str, port: int, watch: bool, rescan_interval: float, rate_limit: bool,
          read_limit: int, write_limit: int, iterations_limit: int, log_level: str, access_log: bool) -> None:
    """Start the server: index the root in the background, then serve V1, V2 and the optimization API."""
    import uvicorn

    from runicorn_lite.api import create_app

    settings = _settings(
        root, host=host, port=port, watch=watch, rescan_interval=rescan_interval, rate_limit=rate_limit,
        read_limit=read_limit, write_limit=write_limit, iterations_limit=iterations_limit,
        check_host=host in ("127.0.0.1", "localhost", "::1"),
    )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    app = create_app(settings)
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on", timeout_graceful_shutdown=5)
    _make_server(config, sock).run(sockets=[sock])


@main.command()
@root_option
@click.option("--rebuild", is_flag=True, envvar="RUNICORN_LITE_REBUILD",
              help="Delete the index and build it again from the files (env RUNICORN_LITE_REBUILD).")
@click.option("--silent", is_flag=True, envvar="RUNICORN_LITE_SILENT", help="No progress output (env RUNICORN_LITE_SILENT).")
def index(root: Path, rebuild: bool, silent: bool) -> None:
    """Index the run directories under the root once, then exit."""
    from runicorn_lite.db import Database
    from runicorn_lite.db.schema import INDEX_MIGRATIONS
    from runicorn_lite.ingest import Indexer

    settings = _settings(root)
    if rebuild:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{settings.index_path}{suffix}").unlink(missing_ok=True)
    db = Database(settings.index_path, INDEX_MIGRATIONS)
    try:
        indexer = Indexer(settings.root, db)
        start = time.perf_counter()

        def progress(seen: int, indexed: int) -> None:
            # Called once the walk has counted the runs (seen), then after every batch.
            if not silent:
                done = min(1.0, indexed / seen) if seen else 1.0
                bar = "#" * int(done * 30)
                click.echo(f"\r[{bar:<30}] {indexed}/{seen} runs (re)indexed", nl=False, err=True)

        state = indexer.scan(progress=progress)
        if not silent:  # done: a full bar, whether runs needed reading or were unchanged
            click.echo(f"\r[{'#' * 30}] {state.runs_seen}/{state.runs_seen} runs checked  ", err=True)
            click.echo(
                f"{state.runs_in_index} runs in the index ({state.runs_indexed} (re)indexed) "
                f"in {time.perf_counter() - start:.2f} s"
            )
    finally:
        db.close()


@main.command()
@root_option
@click.option("--runs", type=click.IntRange(1, 100_000), default=24, show_default=True, envvar="RUNICORN_LITE_DEMO_RUNS",
              help="How many sample runs to write (env RUNICORN_LITE_DEMO_RUNS).")
@click.option("--steps", type=click.IntRange(1, 1_000_000), default=100, show_default=True,
              envvar="RUNICORN_LITE_DEMO_STEPS", help="Steps per run (env RUNICORN_LITE_DEMO_STEPS).")
@click.option("--seed", type=int, default=0, show_default=True, envvar="RUNICORN_LITE_DEMO_SEED",
              help="Random seed (env RUNICORN_LITE_DEMO_SEED).")
def demo(root: Path, runs: int, steps: int, seed: int) -> None:
    """Write realistic sample runs through the SDK, so there is something to look at."""
    from runicorn_lite.demo import write_demo_runs

    settings = _settings(root)
    written = write_demo_runs(settings.root, runs=runs, steps=steps, rng=random.Random(seed))
    click.echo(f"wrote {written} runs under {settings.root}")


main.add_command(keys)


def _settings(root: Path, **kwargs: object) -> Settings:
    if root.exists() and not root.is_dir():
        raise click.BadParameter(f"{root} is not a directory", param_hint="--root")
    try:
        settings = Settings(root=root, **kwargs)  # type: ignore[arg-type]
        settings.ensure_dirs()
    except OSError as exc:
        raise click.BadParameter(f"cannot use {root}: {exc.strerror or exc}", param_hint="--root") from exc
    return settings
