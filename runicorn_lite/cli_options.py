"""Options that several commands share, defined once, with their defaults taken from Settings."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from runicorn_lite import rundir
from runicorn_lite.settings import DEFAULT_ROOT, ENV_PREFIX, SQLITE_SCHEME, Settings, database_problem, sqlite_folder

_GROUP_ROOT = "runicorn_lite.group_root"  # where a group's --root waits for its command


def setting_default(name: str) -> Any:
    """The default of one Settings field, so that no option restates it."""
    for f in dataclasses.fields(Settings):
        if f.name == name:
            if f.default is dataclasses.MISSING:
                raise LookupError(f"Settings.{name} has no plain default")
            return f.default
    raise LookupError(f"Settings has no field {name}")


def envvar(name: str) -> str:
    """The environment variable of an option (``--rate-limit`` → ``RUNICORN_LITE_RATE_LIMIT``)."""
    return ENV_PREFIX + name.upper().replace("-", "_")


root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=envvar("root"),
    show_envvar=True,
    default=None,
    show_default=DEFAULT_ROOT,
    help="Data root: run directories and our .runicorn_lite store.",
)


index_dir_option = click.option(
    "--index-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=envvar("index_dir"),
    show_envvar=True,
    default=None,
    help="Keep our SQLite files (index and primary database) here instead of under the root, so "
         "nothing is written there; needed to serve a read-only root.",
)


database_option = click.option(
    "--database",
    envvar=envvar("database"),
    show_envvar=True,
    default=None,
    metavar="URL",
    help="Keep the index and the primary store in PostgreSQL (postgresql://user@host:port/dbname, any libpq "
         "URL) instead of the SQLite files; sqlite:///DIR names the folder of the SQLite files (as --index-dir).",
)


def check_database(database: str | None) -> str | None:
    """``database`` as given, or a usage error saying what is expected."""
    if database is None or not database.strip():
        return None
    problem = database_problem(database.strip())
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--database")
    return database.strip()


def index_dir_of(index_dir: Path | None, database: str | None) -> Path | None:
    """The SQLite folder that ``--index-dir`` and ``--database`` name together (None: under the
    root, or PostgreSQL); one that contradicts --index-dir is refused."""
    url = check_database(database)
    if url is None or not url.startswith(SQLITE_SCHEME):
        return index_dir
    folder = sqlite_folder(url)
    if index_dir is not None and index_dir.expanduser().resolve() != folder.expanduser().resolve():
        raise click.BadParameter(f"--database names {folder} but --index-dir names {index_dir}; give one",
                                 param_hint="--database")
    return folder


def remember_group_root(ctx: click.Context, root: Path | None) -> None:
    """For a group that takes --root too (``keys --root D list``): keep it for its command."""
    if ctx.get_parameter_source("root") is ParameterSource.COMMANDLINE:
        ctx.find_root().meta[_GROUP_ROOT] = root


def resolve_root(root: Path | None) -> Path:
    """The data root of the running command: its own --root, else its group's, else
    $RUNICORN_LITE_ROOT, else the default (the Settings default reads the environment)."""
    ctx = click.get_current_context()
    if root is not None and ctx.get_parameter_source("root") is ParameterSource.COMMANDLINE:
        return root
    group_root = ctx.find_root().meta.get(_GROUP_ROOT)
    if group_root is not None:
        return Path(group_root)
    return root if root is not None else Settings().root


def _run_dirs_below(folder: Path, limit: int) -> list[Path]:
    """Up to ``limit`` directories below ``folder`` that hold a run's files."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        if rundir.META in filenames or rundir.STATUS in filenames:
            found.append(Path(dirpath))
            dirnames[:] = []
            if len(found) >= limit:
                break
    return found


def storage_of_runs_folder(root: Path) -> Path | None:
    """The Runicorn storage whose ``runs/`` folder ``root`` is, or None.

    Pointed at that folder, the server finds no run (the layout starts one level up) and would
    make its store inside Runicorn's tree.
    """
    if root.name != rundir.RUNS_DIRNAME or not root.is_dir():
        return None
    run_dirs = _run_dirs_below(root, limit=20)
    if any(rundir.location_of(root, run_dir) is not None for run_dir in run_dirs):
        return None  # a storage that happens to be called "runs"
    # Modern layout: <storage>/runs/<project>/.../<id>; legacy: <storage>/<project>/<name>/runs/<id>.
    for storage in (root.parent, root.parent.parent.parent):
        if any(rundir.location_of(storage, run_dir) is not None for run_dir in run_dirs):
            return storage
    return None


def checked_root(root: Path | None) -> tuple[Path, bool]:
    """The command's data root (see :func:`resolve_root`) and whether it exists yet; a
    Runicorn ``runs/`` folder is refused with the storage to give instead."""
    path = resolve_root(root).expanduser().resolve()
    storage = storage_of_runs_folder(path)
    if storage is not None:
        raise click.BadParameter(
            f"{path} is the runs/ folder of a Runicorn storage; give the storage itself: --root {storage}",
            param_hint="--root",
        )
    return path, path.exists()


def say_if_created(root: Path, existed: bool) -> None:
    """Say that the data root was made (a mistyped --root should not pass in silence)."""
    if not existed and root.is_dir():
        click.echo(f"created the data root {root} (it did not exist)", err=True)
