"""assets.json (0.7.x): the run's config (args/extra), code snapshot, datasets, models, outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runicorn_lite.rundir.jsonfiles import read_json_object
from runicorn_lite.rundir.layout import ASSETS
from runicorn_lite.rundir.writers import atomic_write_json, dir_lock


def empty_assets() -> dict[str, Any]:
    """The assets.json the 0.7.x SDK starts every run with."""
    return {"code": {}, "config": {}, "datasets": [], "pretrained": [], "outputs": []}


def read_assets(run_dir: Path) -> dict[str, Any] | None:
    """The run's assets.json object, or None when it is missing or unreadable."""
    return read_json_object(Path(run_dir) / ASSETS)


def assets_count(assets: object) -> int:
    """How many assets Runicorn's viewer counts in an assets.json: a code snapshot, a non-empty
    config, and every dataset, pretrained model and output."""
    if not isinstance(assets, dict):
        return 0
    code, config = assets.get("code"), assets.get("config")
    n = int(isinstance(code, dict) and isinstance(code.get("snapshot"), dict))
    n += int(isinstance(config, dict) and len(config) > 0)
    for key in ("datasets", "pretrained", "outputs"):
        items = assets.get(key)
        if isinstance(items, list):
            n += len(items)
    return n


def update_config(run_dir: Path, changes: dict[str, Any], *, durable: bool = False) -> dict[str, Any]:
    """Merge ``changes`` (``{"args": {...}, "extra": {...}, ...}``) into assets.json's ``config``.

    ``args`` and ``extra`` are merged key by key (a later value for a key wins); any other part
    of the file is kept. Locked like ``update_meta``; returns the new ``config``.
    """
    run_dir = Path(run_dir)
    with dir_lock(run_dir):
        assets = read_assets(run_dir) or empty_assets()
        config = assets.get("config")
        config = dict(config) if isinstance(config, dict) else {}
        for key, value in changes.items():
            current = config.get(key)
            if isinstance(value, dict) and isinstance(current, dict):
                config[key] = {**current, **value}
            else:
                config[key] = value
        assets["config"] = config
        atomic_write_json(run_dir / ASSETS, assets, durable=durable)
    return config


def append_asset(run_dir: Path, kind: str, entry: dict[str, Any]) -> None:
    """Append ``entry`` to assets.json's list ``kind`` (``datasets``, ``pretrained``, ``outputs``),
    locked like ``update_config``."""
    run_dir = Path(run_dir)
    with dir_lock(run_dir):
        assets = read_assets(run_dir) or empty_assets()
        items = assets.get(kind)
        assets[kind] = [*(items if isinstance(items, list) else []), entry]
        atomic_write_json(run_dir / ASSETS, assets, durable=False)
