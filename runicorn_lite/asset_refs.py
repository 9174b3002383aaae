"""The assets of a run as Runicorn 0.7.2 counts them, for the recycle bin's "delete for good"
preview (``GET /api/runs/{id}/assets/refs``): which of the run's assets no other run refers to
(they go with it) and which are shared.

Runicorn's viewer derives them from each run's ``assets.json`` into its database: the code
snapshot, a non-empty config, each dataset, pretrained model and output. One asset is one
(type, fingerprint); runs whose assets.json give the same one share it. The config's
fingerprint, when it has none of its own, is its JSON with sorted keys. An asset without a
fingerprint is the run's alone. Here the same is read from the files.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runicorn_lite import rundir


@dataclass(frozen=True)
class Asset:
    role: str
    asset_type: str
    name: str | None
    fingerprint: str | None


def _fingerprint(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return None


def assets_of(assets: dict[str, Any] | None) -> list[Asset]:
    """The assets an ``assets.json`` declares, in Runicorn's order."""
    if not isinstance(assets, dict):
        return []
    out: list[Asset] = []
    code = assets.get("code")
    if isinstance(code, dict) and isinstance(code.get("snapshot"), dict):
        snapshot_fp = _fingerprint(code["snapshot"].get("fingerprint"))
        out.append(Asset("code", "code_snapshot", "code_snapshot.zip", snapshot_fp))
    config = assets.get("config")
    if isinstance(config, dict) and config:
        fp = _fingerprint(config.get("fingerprint")) or json.dumps(config, ensure_ascii=False, sort_keys=True)
        out.append(Asset("config", "config", None, fp))
    for key, role, name_keys in (("datasets", "dataset", ("name",)), ("pretrained", "pretrained", ("name",)),
                                 ("outputs", "output", ("name", "key"))):
        items = assets.get(key)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            name = next((item[k] for k in name_keys if item.get(k)), None) or f"{role}_{i}"
            out.append(Asset(role, role, str(name), _fingerprint(item.get("fingerprint"))))
    return out


def _asset_id(asset: Asset, run_id: str, position: int) -> str:
    """A stable id: one per (type, fingerprint), or per run and position without a fingerprint."""
    key = f"{asset.asset_type}\0{asset.fingerprint}" if asset.fingerprint else f"{run_id}\0{position}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "runicorn-lite-asset:" + key))


def asset_refs(root: Path, run_dir: Path, run_id: str) -> dict[str, Any]:
    """The body of ``GET /api/runs/{id}/assets/refs`` for the run in ``run_dir``."""
    own = assets_of(rundir.read_assets(run_dir))
    counts: dict[tuple[str, str | None], int] = {}
    wanted = {(a.asset_type, a.fingerprint) for a in own if a.fingerprint}
    if wanted:  # how many runs (soft-deleted ones too) refer to each of them
        for loc in rundir.iter_runs(root):
            found = {(a.asset_type, a.fingerprint) for a in assets_of(rundir.read_assets(loc.run_dir))
                     if a.fingerprint}
            for key in found & wanted:
                counts[key] = counts.get(key, 0) + 1
    orphaned: list[dict[str, Any]] = []
    shared: list[dict[str, Any]] = []
    for position, asset in enumerate(own):
        refs = max(counts.get((asset.asset_type, asset.fingerprint), 1), 1) if asset.fingerprint else 1
        entry = {"asset_id": _asset_id(asset, run_id, position), "asset_type": asset.asset_type, "name": asset.name,
                 "fingerprint": asset.fingerprint, "role": asset.role, "ref_count": refs}
        (orphaned if refs <= 1 else shared).append(entry)
    return {"run_id": run_id, "orphaned_assets": orphaned, "shared_assets": shared, "orphaned_count": len(orphaned),
            "shared_count": len(shared)}
