"""The `keys` click group: create / list / revoke, and what the server sees of them (on either
backend: on PostgreSQL the commands find the database in RUNICORN_LITE_DATABASE)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import backends
import pytest
from click.testing import CliRunner
from opt_helpers import new_database, release_database

from runicorn_lite.db.backend import Backend
from runicorn_lite.optimization.cli import keys
from runicorn_lite.optimization.keys import KeyChecker, hash_key, list_keys
from runicorn_lite.optimization.store import open_primary
from runicorn_lite.settings import Settings


@pytest.fixture(autouse=True)
def _database(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The store of the backend under test, where the commands look for it."""
    url = new_database()
    if url is None:
        monkeypatch.delenv("RUNICORN_LITE_DATABASE", raising=False)
    else:
        monkeypatch.setenv("RUNICORN_LITE_DATABASE", url)
    yield
    release_database(url)


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(keys, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _db(root: Path) -> Backend:
    return open_primary(Settings(root=root))


def test_create_list_revoke(tmp_path: Path) -> None:
    code, out, err = _run(
        "create", "--project", "proj_123", "--label", "laptop", "--root", str(tmp_path)
    )
    assert code == 0, err
    key = out.strip()
    assert key.startswith("sk_live_") and len(key) == 48
    assert "cannot be shown again" in err

    db = _db(tmp_path)
    try:
        [info] = list_keys(db)
        # Only the hash is stored: the key itself appears nowhere in the database file.
        assert info.project_id == "proj_123" and info.label == "laptop"
        if backends.current() == "sqlite":
            assert key.encode() not in Settings(root=tmp_path).primary_path.read_bytes()
        stored = db.read(lambda c: c.execute(
            "SELECT id, prefix, key_hash, project_id, label, created_at FROM api_keys").fetchall())
        assert len(stored) == 1 and key not in stored[0]
        assert db.read(
            lambda c: c.execute("SELECT key_hash FROM api_keys").fetchone()[0]
        ) == hash_key(key)
        checker = KeyChecker(db)
        assert checker.lookup(key) is not None

        code, out, _ = _run("list", "--root", str(tmp_path))
        assert code == 0
        assert "PREFIX" in out and "LAST USED" in out and "REVOKED" in out
        assert info.prefix in out and "proj_123" in out and "laptop" in out and key not in out

        code, out, _ = _run("revoke", info.prefix, "--root", str(tmp_path))
        assert code == 0 and "Revoked" in out
        assert checker.lookup(key) is None
        code, out, _ = _run("revoke", info.id, "--root", str(tmp_path))
        assert code == 0 and "already revoked" in out
        _, out, _ = _run("list", "--root", str(tmp_path))
        revoked_at = list_keys(db)[0].revoked_at
        assert revoked_at is not None and revoked_at in out
    finally:
        db.close()


def test_root_from_environment_and_errors(tmp_path: Path) -> None:
    env = {"RUNICORN_LITE_ROOT": str(tmp_path)}
    code, out, _ = _run("create", "--project", "p", env=env)
    assert code == 0
    key = out.strip()
    code, _, err = _run("revoke", "key_doesnotexist", env=env)
    assert code == 1 and "no key matches" in err
    _run("create", "--project", "p", env=env)
    code, _, err = _run("revoke", "sk_live_", env=env)
    assert code == 1
    code, _, err = _run("create", "--project", "   ", env=env)
    assert code == 2 and "project must not be empty" in err
    code, out, _ = _run("revoke", key, env=env)  # the full key works too
    assert code == 0 and "Revoked" in out


def test_every_option_has_help() -> None:
    for name, command in keys.commands.items():
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{name} --{param.name} has no help"
    code, out, _ = _run("--help")
    assert code == 0 and "create" in out and "revoke" in out


@pytest.mark.sqlite_only  # the root picks the SQLite file; on PostgreSQL the URL is the store
def test_root_on_the_group_or_the_command(tmp_path: Path) -> None:
    group_root, command_root = tmp_path / "group", tmp_path / "command"
    code, out, err = _run("--root", str(group_root), "create", "--project", "g")
    assert code == 0, err
    code, out, _ = _run("--root", str(group_root), "list")
    assert code == 0 and " g " in out
    # The command's own --root wins over the group's.
    code, _, err = _run(
        "--root", str(group_root), "create", "--project", "c", "--root", str(command_root)
    )
    assert code == 0, err
    for root, projects in ((command_root, ["c"]), (group_root, ["g"])):
        db = _db(root)
        try:
            assert [k.project_id for k in list_keys(db)] == projects
        finally:
            db.close()


@pytest.mark.sqlite_only  # as above
def test_group_root_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_root, group_root = tmp_path / "env", tmp_path / "group"
    monkeypatch.setenv("RUNICORN_LITE_ROOT", str(env_root))
    code, _, err = _run("--root", str(group_root), "create", "--project", "g")
    assert code == 0, err
    code, _, err = _run("create", "--project", "e")
    assert code == 0, err
    for root, projects in ((group_root, ["g"]), (env_root, ["e"])):
        db = _db(root)
        try:
            assert [k.project_id for k in list_keys(db)] == projects
        finally:
            db.close()


def test_an_unreachable_database_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    monkeypatch.setenv("RUNICORN_LITE_DATABASE", "postgresql://root@127.0.0.1:1/teamdb")
    result = CliRunner().invoke(keys, ["list", "--root", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1:1/teamdb" in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_revoke_by_a_unique_start_of_the_prefix(tmp_path: Path) -> None:
    code, out, err = _run("create", "--project", "short", "--root", str(tmp_path))
    assert code == 0, err
    key = out.strip()
    code, out, err = _run("revoke", key[:12], "--root", str(tmp_path))
    assert code == 0 and "Revoked" in out, err
    db = _db(tmp_path)
    try:
        assert KeyChecker(db).lookup(key) is None
    finally:
        db.close()
