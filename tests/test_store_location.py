"""``--index-dir`` / RUNICORN_LITE_INDEX_DIR: our SQLite files live there and nothing of ours is
written under the root; the keys command finds the primary database there too."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import runicorn_lite
from runicorn_lite.cli import main
from runicorn_lite.settings import STORE_DIRNAME, Settings


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_index_dir_keeps_the_store_out_of_the_root(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    with runicorn_lite.init(project="p", name="n", root=root) as run:
        run.log({"acc": 1.0}, step=1)
    before = _tree(root)
    runner = CliRunner()
    result = runner.invoke(main, ["index", "--root", str(root), "--index-dir", str(elsewhere), "--silent"])
    assert result.exit_code == 0, result.output
    created = runner.invoke(main, ["keys", "--root", str(root), "--index-dir", str(elsewhere), "create",
                                   "--project", "p1"])
    assert created.exit_code == 0, created.output
    assert _tree(root) == before and not (root / STORE_DIRNAME).exists()
    assert {p.name for p in elsewhere.iterdir()} >= {"index.sqlite", "primary.sqlite"}


def test_index_dir_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RUNICORN_LITE_INDEX_DIR", str(tmp_path / "env-store"))
    settings = Settings(root=tmp_path / "data")
    assert settings.index_path == tmp_path / "env-store" / "index.sqlite"
    assert settings.primary_path == tmp_path / "env-store" / "primary.sqlite"
    monkeypatch.delenv("RUNICORN_LITE_INDEX_DIR")
    assert Settings(root=tmp_path / "data").store_dir == tmp_path / "data" / STORE_DIRNAME
