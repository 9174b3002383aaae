"""``runicorn-lite keys ...``: create, list and revoke API keys of the optimization API.

Keys live in the primary database under ``--root``; a running server sees a new or revoked key
on its next request (it reads SQLite per request).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from runicorn_lite.db import Database, StoreError
from runicorn_lite.optimization.keys import KeyCommandError, create_key, list_keys, revoke_key
from runicorn_lite.optimization.schema import MIGRATIONS
from runicorn_lite.settings import Settings, default_root

_GROUP_ROOT = "runicorn_lite.keys.root"  # where the group's --root waits for its command
_ROOT_HELP = "Data root holding the primary database (env RUNICORN_LITE_ROOT)."
# Accepted on the group and on each command (`keys --root D list` = `keys list --root D`);
# the command's own wins, then the group's, then $RUNICORN_LITE_ROOT, then ./runicorn-data.
_root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="./runicorn-data or $RUNICORN_LITE_ROOT",
    help=_ROOT_HELP,
)


def _resolve_root(root: Path | None) -> Path:
    if root is not None:
        return root
    group_root = click.get_current_context().find_root().meta.get(_GROUP_ROOT)
    return group_root if group_root is not None else default_root()


@contextmanager
def _primary(root: Path | None) -> Iterator[Database]:
    root = _resolve_root(root)
    settings = Settings(root=root)
    try:
        settings.ensure_dirs()
        db = Database(settings.primary_path, MIGRATIONS)
    except (OSError, StoreError) as exc:
        raise click.ClickException(f"cannot open the primary database under {root}: {exc}") from exc
    try:
        yield db
    finally:
        db.close()


@click.group()
@_root_option
@click.pass_context
def keys(ctx: click.Context, root: Path | None) -> None:
    """Manage API keys of the optimization runs API."""
    ctx.find_root().meta[_GROUP_ROOT] = root


@keys.command("create")
@click.option("--project", required=True, envvar="RUNICORN_LITE_KEY_PROJECT",
              help="Project the key gives access to (env RUNICORN_LITE_KEY_PROJECT).")
@click.option("--label", default=None, envvar="RUNICORN_LITE_KEY_LABEL",
              help="Free-text note to recognise the key by (env RUNICORN_LITE_KEY_LABEL).")
@_root_option
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
@_root_option
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
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@keys.command("revoke")
@click.argument("key_id_or_prefix")
@_root_option
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
