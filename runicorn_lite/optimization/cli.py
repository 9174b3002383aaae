"""``runicorn-lite keys ...``: create, list and revoke API keys.

Keys live in the primary database of the store that ``--root`` / ``--index-dir`` /
``--database`` name, exactly as ``serve`` finds it (the same options and environment
variables), so a key made for a server is valid on it at once: it reads SQLite per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from runicorn_lite.cli_options import (
    check_database,
    checked_root,
    database_option,
    envvar,
    index_dir_of,
    index_dir_option,
    remember_group_root,
    root_option,
    say_if_created,
)
from runicorn_lite.db import StoreError
from runicorn_lite.db.backend import Backend
from runicorn_lite.optimization.keys import KeyCommandError, create_key, list_keys, revoke_key
from runicorn_lite.optimization.store import describe, open_primary
from runicorn_lite.settings import SQLITE_SCHEME, Settings

_GROUP_INDEX_DIR = "runicorn_lite.keys.index_dir"  # the group's --index-dir, for its command
_GROUP_DATABASE = "runicorn_lite.keys.database"
F = TypeVar("F", bound=Callable[..., Any])


def _store_options(fn: F) -> F:
    """--root, --index-dir and --database on a keys command (each also on the group)."""
    return root_option(index_dir_option(database_option(fn)))


@contextmanager
def _primary(root: Path | None, index_dir: Path | None, database: str | None) -> Iterator[Backend]:
    root, existed = checked_root(root)
    ctx = click.get_current_context()
    if ctx.get_parameter_source("index_dir") is not ParameterSource.COMMANDLINE:
        index_dir = ctx.find_root().meta.get(_GROUP_INDEX_DIR, index_dir)
    if ctx.get_parameter_source("database") is not ParameterSource.COMMANDLINE:
        database = ctx.find_root().meta.get(_GROUP_DATABASE, database)
    index_dir = index_dir_of(index_dir, database)
    url = check_database(database)
    given: dict[str, Any] = {}
    if index_dir is not None:
        given["index_dir"] = index_dir
    if url is not None and not url.startswith(SQLITE_SCHEME):  # PostgreSQL: the server's own store
        given["database"] = url
    settings = Settings(root=root, **given)
    try:
        settings.ensure_dirs()
        say_if_created(root, existed)
        db = open_primary(settings)
    except (OSError, StoreError) as exc:
        raise click.ClickException(f"cannot open the primary database ({describe(settings)}): {exc}") from exc
    if db.damaged is not None:
        db.close()
        raise click.ClickException(
            f"the primary database {settings.primary_path} is damaged ({db.damaged}); it is left as it is: "
            "restore it from a backup, or move it aside to start an empty one"
        )
    try:
        yield db
    finally:
        db.close()


@click.group()
@_store_options
@click.pass_context
def keys(ctx: click.Context, root: Path | None, index_dir: Path | None, database: str | None) -> None:
    """Manage API keys: of one project (the optimization API, and that project's runs), of every
    project, or read-only."""
    remember_group_root(ctx, root)
    if ctx.get_parameter_source("index_dir") is ParameterSource.COMMANDLINE:
        ctx.find_root().meta[_GROUP_INDEX_DIR] = index_dir
    if ctx.get_parameter_source("database") is ParameterSource.COMMANDLINE:
        ctx.find_root().meta[_GROUP_DATABASE] = database


@keys.command("create")
@click.option("--project", default=None, envvar=envvar("key_project"), show_envvar=True,
              help="Project the key gives access to (its runs, its optimization runs).")
@click.option("--all-projects", is_flag=True, help="A key for every project's runs (not the optimization API, "
              "which answers per project).")
@click.option("--read-only", is_flag=True, help="The key can read, never change anything (nor upload).")
@click.option("--label", default=None, envvar=envvar("key_label"), show_envvar=True,
              help="Free-text note to recognise the key by.")
@_store_options
def create_command(project: str | None, all_projects: bool, read_only: bool, label: str | None, root: Path | None,
                   index_dir: Path | None, database: str | None) -> None:
    """Create a key and print it (it is shown only this once)."""
    with _primary(root, index_dir, database) as db:
        try:
            key, info = create_key(db, project, label, all_projects=all_projects, read_only=read_only)
        except KeyCommandError as exc:
            raise click.UsageError(str(exc)) from exc
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(key)
    scope = "every project" if info.all_projects else f"project {info.project_id!r}"
    click.echo(
        f"Created {'read-only ' if info.read_only else ''}key {info.id} ({info.prefix}…) for {scope}. "
        "Store it now: it cannot be shown again.",
        err=True,
    )


@keys.command("list")
@_store_options
def list_command(root: Path | None, index_dir: Path | None, database: str | None) -> None:
    """List keys: id, prefix, project, access, label, created, last used, revoked."""
    with _primary(root, index_dir, database) as db:
        try:
            rows = list_keys(db)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
    if not rows:
        click.echo(
            "No API keys. Create one with: runicorn-lite keys create --project NAME", err=True
        )
        return
    header = ("ID", "PREFIX", "PROJECT", "ACCESS", "LABEL", "CREATED", "LAST USED", "REVOKED")
    table = [header] + [
        (
            k.id,
            k.prefix + "…",
            "(all)" if k.all_projects else k.project_id,
            "read" if k.read_only else "read-write",
            k.label or "-",
            k.created_at,
            k.last_used_at or "never",
            k.revoked_at or "no",
        )
        for k in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@keys.command("revoke")
@click.argument("key_id_or_prefix")
@_store_options
def revoke_command(key_id_or_prefix: str, root: Path | None, index_dir: Path | None, database: str | None) -> None:
    """Revoke a key, named by its id (key_…), its prefix (sk_live_…) or the key itself; its web
    sessions end with it."""
    with _primary(root, index_dir, database) as db:
        try:
            info, was_active = revoke_key(db, key_id_or_prefix)
        except KeyCommandError as exc:
            raise click.ClickException(str(exc)) from exc
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
    if was_active:
        click.echo(f"Revoked key {info.id} ({info.prefix}…) of project {info.project_id!r}.")
    else:
        click.echo(f"Key {info.id} ({info.prefix}…) was already revoked at {info.revoked_at}.")
