"""A full disk under the index and the primary database, for real: the store folder is a small
tmpfs filled to the last byte (mounting needs root; elsewhere the test skips and says so).

Health turns ``degraded`` and names the full disk; a change whose files were written but whose
index write failed answers 507 saying so (not a plain 200); the optimization API answers "The
disk is full" (not "busy"); and once space returns, everything catches up by itself.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import ServerProcess, wait_for

import runicorn_lite


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "store"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a real full disk) needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], check=False,
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path) -> Path:
    """Fill the disk to the last byte; the filler file is returned (delete it to free space)."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1):  # big blocks, then the last bytes one by one
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_full_index_disk_is_reported_refused_and_recovered(tmp_path: Path, small_disk: Path) -> None:
    root = tmp_path / "data"
    with runicorn_lite.init(project="p", name="before", root=root) as before:
        before.log({"loss": 1.0}, step=1)
    server = ServerProcess(root, "--index-dir", str(small_disk), "--rescan-interval", "1")
    try:
        server.wait_ready()
        api = server.url
        key = subprocess.run(
            [sys.executable, "-m", "runicorn_lite", "keys", "create", "--root", str(root), "--project", "proj_full"],
            capture_output=True, text=True, check=True, env={**os.environ, "RUNICORN_LITE_INDEX_DIR": str(small_disk)},
        ).stdout.split()[-1]
        assert server.health()["status"] == "ok"
        filler = _fill(small_disk)

        # A run written meanwhile cannot be indexed: health names the full disk.
        with runicorn_lite.init(project="p", name="during", root=root) as during:
            for step in range(1, 200):
                during.log({"loss": 1.0 / step, "acc": step / 200}, step=step)
        health = wait_for(lambda: (h := server.health())["status"] == "degraded" and h, timeout=20)
        assert any("index" in p and "full" in p for p in health["problems"]), health  # type: ignore[index]

        # A PATCH reaches meta.json, not the index: 507 says so.
        r = httpx.patch(f"{api}/api/v2/experiments/{before.id}", json={"alias": "renamed while full"}, timeout=30)
        assert r.status_code == 507, r.text
        assert "written to the run directory" in r.json()["detail"] and "full" in r.json()["detail"]
        assert "renamed while full" in (before.run_dir / "meta.json").read_text()
        r = httpx.post(f"{api}/api/v2/experiments/batch-delete", json={"exp_ids": [before.id]}, timeout=30)
        assert r.status_code == 507, r.text
        assert (before.run_dir / ".deleted").exists()

        # The optimization API names the cause.
        r = httpx.post(f"{api}/api/iris/optimization/runs", headers={"Authorization": f"Bearer {key}"},
                       json={"run_name": "x", "optimizer_type": "bayesian", "config": {}}, timeout=30)
        assert r.status_code == 507, r.text
        assert r.json()["error"] == "The disk is full" and "busy" not in r.text

        # Space returns: the index catches up by itself, and health is ok again.
        filler.unlink()
        started = time.monotonic()
        wait_for(lambda: server.health()["status"] == "ok", timeout=60)
        wait_for(lambda: during.id in {e["id"] for e in httpx.get(f"{api}/api/v2/experiments", timeout=10).json()[
            "experiments"]}, timeout=60)
        everything = httpx.get(f"{api}/api/v2/experiments", params={"include_deleted": "true"}, timeout=10).json()
        rows = {e["id"]: e for e in everything["experiments"]}
        assert rows[before.id]["alias"] == "renamed while full" and rows[before.id]["deleted_at"] is not None
        assert time.monotonic() - started < 60
    finally:
        server.stop()
