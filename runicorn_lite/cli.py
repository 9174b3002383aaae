"""``runicorn-lite``: thin click commands that build settings and call into the package."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from runicorn_lite.cli_options import (
    check_database,
    checked_root,
    database_option,
    envvar,
    index_dir_option,
    root_option,
    say_if_created,
    setting_default,
)
from runicorn_lite.http.hosts import is_loopback, parse_allowed_hosts
from runicorn_lite.optimization.cli import keys
from runicorn_lite.settings import Settings
from runicorn_lite.storelock import StoreLock, StoreLocked
from runicorn_lite.version import __version__

if TYPE_CHECKING:
    import uvicorn

    from runicorn_lite.ingest import IndexState

F = TypeVar("F", bound=Callable[..., Any])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runicorn-lite")
def main() -> None:
    """runicorn-lite: a fast local experiment tracker for Runicorn run directories."""


def _make_server(
    config: uvicorn.Config,
    sock: socket.socket,
    settings: Settings,
    state: IndexState,
    on_shutdown: Callable[[], None] | None = None,
    *,
    announce: bool = True,
) -> uvicorn.Server:
    """A uvicorn.Server that says where it listens and what it serves once it accepts
    connections, how many runs it found once the start-up scan is done, and calls
    ``on_shutdown`` as it starts to stop."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not announce:  # one worker of several: the first says it for all
                return
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            click.echo(f"runicorn-lite listening on http://{shown}:{port}")
            where = f" (index in {settings.store_dir})" if settings.index_dir is not None else ""
            if settings.postgres_url is not None:
                from runicorn_lite.db.postgres import describe_url

                where = f" (index in PostgreSQL at {describe_url(settings.postgres_url)})"
            workers = f"; {settings.workers} workers" if settings.workers > 1 else ""
            click.echo(f"data folder: {settings.root}{where}{workers}")
            sys.stdout.flush()
            threading.Thread(target=self._say_runs_found, name="runicorn-lite-first-scan", daemon=True).start()

        def _say_runs_found(self) -> None:
            while not state.scans_completed:
                if self.should_exit:
                    return
                time.sleep(0.1)
            found = state.runs_in_index
            hint = "" if found else " (write some with `runicorn-lite demo`, or give --root a Runicorn storage)"
            click.echo(f"{found} runs found under {settings.root}{hint}")
            sys.stdout.flush()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # uvicorn waits for open responses before the app's lifespan hears of the stop, and
            # a live event stream never ends by itself: end the streams first, or every stop
            # with a browser open would wait out the graceful timeout.
            if on_shutdown is not None:
                on_shutdown()
            await super().shutdown(sockets=sockets)

    return Server(config)


def _option(name: str, **kwargs: Any) -> Callable[[F], F]:
    """A --name option whose default is the Settings field's and whose environment variable
    is shown in --help."""
    decls = kwargs.pop("decls", (f"--{name}",))
    field = kwargs.pop("field", name.split("/")[0].removeprefix("--").replace("-", "_"))
    kwargs.setdefault("default", setting_default(field))
    return click.option(*decls, envvar=envvar(field), show_envvar=True, show_default=True, **kwargs)


@main.command()
@root_option
@index_dir_option
@database_option
@_option("workers", type=click.IntRange(1, 64),
         help="Processes answering on the address; one of them ingests at a time, another takes over if it dies.")
@_option("host", help="Address to bind. Keep 127.0.0.1 unless you mean to share.")
@_option("port", decls=("-p", "--port"), type=click.IntRange(0, 65535), help="Port; 0 picks a free one.")
@_option("watch", decls=("--watch/--no-watch",),
         help="Follow file events after the start-up scan; with --no-watch only the periodic "
              "rescan keeps the index current.")
@_option("rescan-interval", type=click.FloatRange(0, 86400),
         help="Seconds between full rescans (a fallback for unreliable file events; longer when a "
              "walk of the tree would cost more than 5% of a core); 0 turns them off, and with "
              "--no-watch freezes the index after start-up.")
@_option("rate-limit", decls=("--rate-limit/--no-rate-limit",),
         help="Enforce the V2 document's per-client rate limits.")
@_option("read-limit", type=click.IntRange(1), help="Optimization API reads per project per 60 s.")
@_option("write-limit", type=click.IntRange(1), help="Optimization API writes per project per 60 s.")
@_option("iterations-limit", type=click.IntRange(1), help="Optimization API iteration posts per project per 60 s.")
@_option("events-keepalive", type=click.FloatRange(0.05, 3600),
         help="Seconds of quiet after which a live event stream (/api/v2/events) sends a keep-alive comment.")
@_option("runicorn-ui", decls=("--runicorn-ui/--no-runicorn-ui",),
         help="Serve Runicorn's own web UI (from the installed runicorn package) at / in place of ours; "
              "/api stays ours.")
@click.option("--runicorn-ui-bundle", type=click.Path(exists=True, path_type=Path), default=None,
              envvar=envvar("runicorn_ui_bundle"), show_envvar=True,
              help="Read Runicorn's web UI from this runicorn wheel (pip download --no-deps runicorn==0.7.2) "
                   "or webui folder instead of the installed package; implies --runicorn-ui.")
@click.option("--allowed-hosts", default=None, envvar=envvar("allowed_hosts"), show_envvar=True,
              help="Comma-separated host names (name or name:port) this server answers to besides loopback "
                   "names; required when --host is not a loopback address.")
@click.option("--auth", type=click.Choice(["keys", "none"]), default=None, envvar=envvar("auth"), show_envvar=True,
              help="keys: every /api request needs an API key or a session. Default: none on a loopback "
                   "bind, keys otherwise.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, envvar=envvar("log_level"), show_envvar=True, help="Log level.")
@click.option("--access-log/--no-access-log", default=False, show_default=True, envvar=envvar("access_log"),
              show_envvar=True, help="Log every request.")
def serve(root: Path | None, index_dir: Path | None, database: str | None, workers: int, host: str, port: int,
          watch: bool, rescan_interval: float, rate_limit: bool, read_limit: int, write_limit: int,
          iterations_limit: int, events_keepalive: float, runicorn_ui: bool, runicorn_ui_bundle: Path | None,
          allowed_hosts: str | None, auth: str | None, log_level: str, access_log: bool) -> None:
    """Start the server: index the root in the background, then serve V1, V2 and the optimization API."""
    names, auth = _exposure(host, allowed_hosts, auth)
    settings = _settings(
        root, index_dir=index_dir, database=check_database(database), workers=workers, host=host, port=port,
        watch=watch, rescan_interval=rescan_interval, rate_limit=rate_limit, read_limit=read_limit,
        write_limit=write_limit, iterations_limit=iterations_limit, events_keepalive=events_keepalive,
        allowed_hosts=names, auth=auth,
        runicorn_ui=runicorn_ui or runicorn_ui_bundle is not None, runicorn_ui_bundle=runicorn_ui_bundle,
    )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if auth == "none" and not is_loopback(host):
        logging.getLogger("runicorn_lite").warning(
            "serving %s beyond this machine with --auth none: anyone who reaches it reads and changes every run "
            "(uploads still need a key)", host,
        )
    _check_reachable(settings)
    # On SQLite one server keeps a store; servers of one PostgreSQL database share it (one of
    # them ingests at a time: ingest/lease.py).
    lock = _lock_store(settings, "serve") if settings.postgres_url is None else None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} on {host} is already in use (another server?); choose another with --port N, "
                "or --port 0 for any free port"
            ) from exc
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    bound_host, bound_port = sock.getsockname()[:2]
    settings = dataclasses.replace(settings, port=bound_port)  # --port 0: the Host check needs the real one
    if lock is not None:
        lock.describe(f"serve on http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}")
    if settings.read_only:
        logging.getLogger("runicorn_lite").warning(
            "%s is read-only: serving it read-only (changes to runs answer 403)", settings.root
        )

    if settings.runicorn_ui:  # a bundle that cannot be read stops the start here, once
        from runicorn_lite.api.runicorn_ui import BundleError, load

        try:
            ui = load(settings.runicorn_ui_bundle)
        except BundleError as exc:
            sock.close()
            raise click.ClickException(f"cannot serve Runicorn's web UI: {exc}") from None
        click.echo(f"Runicorn's web UI {ui.version or '(version unknown)'}, read from {ui.source}")

    def run_worker(index: int) -> None:
        import uvicorn

        from runicorn_lite.app import create_app

        app = create_app(settings)
        config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                                timeout_graceful_shutdown=5)
        server = _make_server(config, sock, settings, app.state.ctx.indexer.state, app.state.ctx.events.close,
                              announce=index == 0)
        server.run(sockets=[sock])

    if workers == 1:
        run_worker(0)
        return
    from runicorn_lite.supervisor import supervise

    sys.exit(supervise(workers, run_worker))


def _drop_index(settings: Settings) -> None:
    """Delete the index (the SQLite file, or the index's tables in PostgreSQL)."""
    url = settings.postgres_url
    if url is None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{settings.index_path}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    from runicorn_lite.db.pg_schema import drop_index
    from runicorn_lite.db.postgres import PgConn

    with psycopg.connect(url) as conn:
        drop_index(PgConn(conn))


def _check_reachable(settings: Settings) -> None:
    """Exit 1 with one line naming the host and the cause when PostgreSQL cannot be reached."""
    if settings.postgres_url is None:
        return
    from runicorn_lite.db.postgres import DatabaseUnavailable, check_reachable

    try:
        check_reachable(settings.postgres_url)
    except DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@root_option
@index_dir_option
@database_option
@click.option("--rebuild", is_flag=True, envvar=envvar("rebuild"), show_envvar=True,
              help="Delete the index and build it again from the files (never the primary store).")
@click.option("--silent", is_flag=True, envvar=envvar("silent"), show_envvar=True, help="No progress output.")
def index(root: Path | None, index_dir: Path | None, database: str | None, rebuild: bool, silent: bool) -> None:
    """Index the run directories under the root once, then exit."""
    from runicorn_lite.ingest import IndexKeeper, open_store

    settings = _settings(root, index_dir=index_dir, database=check_database(database))
    _check_reachable(settings)
    # PostgreSQL is shared by its servers (ingest/lease.py): no local lock, and every write is
    # logged for them. SQLite: one process keeps a store.
    lock = _lock_store(settings, "index") if settings.postgres_url is None else None
    if rebuild:
        _drop_index(settings)
    # A damaged index is moved aside and rebuilt (one warning line), never a traceback.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    db, indexer = open_store(settings)
    indexer.shared = settings.postgres_url is not None
    try:
        keeper = IndexKeeper(indexer)
        start = time.perf_counter()
        if silent:
            state = keeper.scan()
        else:
            # The bar's length is the number of runs found so far (runs are read as the walk
            # finds them); it advances with the runs (re)indexed and is full when the scan is done.
            with click.progressbar(length=0, label="indexing", show_pos=True, file=sys.stderr) as bar:

                def progress(seen: int, indexed: int) -> None:
                    bar.length = seen
                    bar.update(indexed - bar.pos)

                state = keeper.scan(progress=progress)
                bar.length = state.runs_seen
                bar.update(state.runs_seen - bar.pos)
            click.echo(
                f"{state.runs_in_index} runs in the index ({state.runs_indexed} (re)indexed) "
                f"in {time.perf_counter() - start:.2f} s"
            )
    finally:
        indexer.store.close()
        db.close()
        if lock is not None:
            lock.release()


@main.command()
@root_option
@click.option("--runs", type=click.IntRange(1, 100_000), default=24, show_default=True, envvar=envvar("demo_runs"),
              show_envvar=True, help="How many sample runs to write.")
@click.option("--steps", type=click.IntRange(1, 1_000_000), default=100, show_default=True,
              envvar=envvar("demo_steps"), show_envvar=True, help="Steps per run.")
@click.option("--seed", type=int, default=0, show_default=True, envvar=envvar("demo_seed"), show_envvar=True,
              help="Random seed.")
def demo(root: Path | None, runs: int, steps: int, seed: int) -> None:
    """Write realistic sample runs through the SDK, so there is something to look at."""
    from runicorn_lite.demo import write_demo_runs

    settings = _settings(root)
    written = write_demo_runs(settings.root, runs=runs, steps=steps, rng=random.Random(seed))
    click.echo(f"wrote {written} runs under {settings.root}")


@main.command()
@root_option
@click.option("--server", required=True, envvar=envvar("server"), show_envvar=True, metavar="URL",
              help="The team server, e.g. http://team:23300.")
@click.option("--api-key", required=True, envvar=envvar("api_key"), show_envvar=True,
              help="A key of the runs' project (or of every project) on that server.")
@click.option("--silent", is_flag=True, help="No progress bar.")
def sync(root: Path | None, server: str, api_key: str, silent: bool) -> None:
    """Upload every run under the root that the server does not hold completely; exit 1 naming
    the runs that could not be sent."""
    from runicorn_lite.sync import runs_under, sync_root

    root_path, _existed = checked_root(root)
    if not root_path.is_dir():
        raise click.BadParameter(f"{root_path} does not exist", param_hint="--root")
    total = len(runs_under(root_path))
    if silent:
        result = sync_root(root_path, server, api_key)
    else:
        with click.progressbar(length=total, label="syncing", show_pos=True, file=sys.stderr) as bar:
            result = sync_root(root_path, server, api_key, progress=lambda _run: bar.update(1))
    click.echo(f"{len(result.complete)} of {total} runs complete on {server} "
               f"({result.sent_runs} needed sending, {result.sent_bytes:,} bytes sent)")
    if result.failed:
        for rel, why in sorted(result.failed.items()):
            click.echo(f"not sent: {rel}: {why}", err=True)
        sys.exit(1)


main.add_command(keys)


def _exposure(host: str, allowed_hosts: str | None, auth: str | None) -> tuple[tuple[str, ...], str]:
    """The allowed host names and the auth mode of a bind; a non-loopback bind without names
    is refused, saying what to add."""
    try:
        names = parse_allowed_hosts(allowed_hosts)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allowed-hosts") from None
    loopback = is_loopback(host)
    if not loopback and not names:
        raise click.UsageError(
            f"--host {host} serves beyond this machine: name the host names clients will use to reach it, "
            f"e.g. --allowed-hosts {socket.gethostname().lower() or 'team.example'} (env {envvar('allowed_hosts')}); "
            "requests for any other name are refused (DNS rebinding)"
        )
    return names, auth or ("none" if loopback else "keys")


def _settings(root: Path | None, **kwargs: Any) -> Settings:
    root, existed = checked_root(root)
    if root.exists() and not root.is_dir():
        raise click.BadParameter(f"{root} is not a directory", param_hint="--root")
    settings = Settings(root=root, **kwargs)
    read_only = not settings.root_is_writable()
    if read_only and settings.index_dir is None and not os.access(settings.store_dir, os.W_OK):
        raise click.ClickException(
            f"{settings.root} is read-only: give --index-dir DIR (env {envvar('index_dir')}) to keep the "
            "index elsewhere and serve it read-only"
        )
    settings = dataclasses.replace(settings, read_only=read_only)
    try:
        settings.ensure_dirs()
    except OSError as exc:
        hint = "--index-dir" if settings.index_dir is not None else "--root"
        raise click.BadParameter(f"cannot use {settings.store_dir}: {exc.strerror or exc}", param_hint=hint) from exc
    say_if_created(settings.root, existed)
    return settings


def _lock_store(settings: Settings, role: str) -> StoreLock:
    """Hold the store for this process, or exit 1 naming the process that holds it."""
    lock = StoreLock(settings.store_dir)
    try:
        lock.acquire(role)
    except StoreLocked as exc:
        raise click.ClickException(
            f"{settings.root} is in use by {exc} (its store: {settings.store_dir})"
        ) from None
    except OSError as exc:
        raise click.ClickException(f"cannot lock {lock.path}: {exc.strerror or exc}") from exc
    return lock
