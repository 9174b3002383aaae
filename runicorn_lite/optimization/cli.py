"""``runicorn-lite keys ...``: create, list and revoke API keys of the optimization API.

Keys live in the primary database under ``--root``; a running server sees a new or revoked key
on its next request (it reads SQLite per request).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from runicorn_lite.cli_options import (
    checked_root,
    envvar,
    index_dir_option,
    remember_group_root,
    root_option,
    say_if_created,
)
from runicorn_lite.db import StoreError
from runicorn_lite.db.backend import Backend
from runicorn_lite.optimization.keys import KeyCommandError, create_key, list_keys, revoke_key
from runicorn_lite.optimization.store import describe, open_primary
from runicorn_lite.settings import Settings

_GROUP_INDEX_DIR = "runicorn_lite.keys.index_dir"  # the group's --index-dir, for its command


@contextmanager
def _primary(root: Path | None) -> Iterator[Backend]:
    root, existed = checked_root(root)
    index_dir = click.get_current_context().find_root().meta.get(_GROUP_INDEX_DIR)
    settings = Settings(root=root, index_dir=index_dir) if index_dir is not None else Settings(root=root)
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
@root_option
@index_dir_option
@click.pass_context
def keys(ctx: click.Context, root: Path | None, index_dir: Path | None) -> None:
    """Manage API keys of the optimization runs API."""
    remember_group_root(ctx, root)
    ctx.find_root().meta[_GROUP_INDEX_DIR] = index_dir


@keys.command("create")
@click.option("--project", required=True, envvar=envvar("key_project"), show_envvar=True,
              help="Project the key gives access to.")
@click.option("--label", default=None, envvar=envvar("key_label"), show_envvar=True,
              help="Free-text note to recognise the key by.")
@root_option
def create_command(project: str, label: str | None, root: Path | None) -> None:
    """Create a key and print it (it is shown only this once)."""
    with _primary(root) as db:
        try:
            key, info = create_key(db, project, label)
        except KeyCommandError as exc:
            raise click.UsageError(str(exc)) from exc
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(key)
    click.echo(
        f"Created key {info.id} ({info.prefix}…) for project {info.project_id!r}. "
        "Store it now: it cannot be shown again.",
        err=True,
    )


@keys.command("list")
@root_option
def list_command(root: Path | None) -> None:
    """List keys: id, prefix, project, label, created, last used, revoked."""
    with _primary(root) as db:
        try:
            rows = list_keys(db)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
    if not rows:
        click.echo(
            "No API keys. Create one with: runicorn-lite keys create --project NAME", err=True
        )
        return
    header = ("ID", "PREFIX", "PROJECT", "LABEL", "CREATED", "LAST USED", "REVOKED")
    table = [header] + [
        (
            k.id,
            k.prefix + "…",
            k.project_id,
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
@root_option
def revoke_command(key_id_or_prefix: str, root: Path | None) -> None:
    """Revoke a key, named by its id (key_…), its prefix (sk_live_…) or the key itself."""
    with _primary(root) as db:
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
