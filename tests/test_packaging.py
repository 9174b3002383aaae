"""The installed package: a wheel built from the checkout carries every file the server needs
(no backend involved, so outside the API tests that run once per backend)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[1] / "runicorn_lite" / "web"


@pytest.mark.e2e
def test_the_wheel_carries_every_file_of_the_app(tmp_path: Path) -> None:
    """A non-editable install gets the app's subfolders (package data is listed by folder)."""
    repo = WEB.parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(repo)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("runicorn_lite-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {f"runicorn_lite/web/{p.relative_to(WEB).as_posix()}" for p in WEB.rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert wanted - names == set()
