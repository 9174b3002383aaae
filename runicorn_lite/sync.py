"""``runicorn-lite sync``: send every run under a root that a team server does not hold whole.

Runs written with the server down, or before ``server=`` was set, are mirrored exactly as the
SDK's background uploader does (runicorn_lite/uploader.py): each run's state is asked first,
so a run the server holds completely costs one small request and sends nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from runicorn_lite import rundir
from runicorn_lite.uploader import Mirror, UploadRefused, client_for

ATTEMPTS = 5


@dataclass
class SyncResult:
    complete: list[str] = field(default_factory=list)  # runs (relative dirs) the server holds whole
    failed: dict[str, str] = field(default_factory=dict)  # run -> why not
    sent_runs: int = 0  # runs that needed something
    sent_bytes: int = 0


def runs_under(root: Path) -> list[Path]:
    """The run directories of our layout (``runs/<project>/…/<id>``; not the recycle folder)."""
    return sorted(loc.run_dir for loc in rundir.iter_runs(root) if loc.generation == "modern" and not loc.in_recycle)


def sync_root(root: Path, server: str, api_key: str, progress: Callable[[Path], None] | None = None) -> SyncResult:
    """Mirror every run under ``root``; retries network failures a few times per run."""
    result = SyncResult()
    with client_for(server, api_key, timeout=30.0) as client:
        for run_dir in runs_under(root):
            rel = run_dir.relative_to(root).as_posix()
            mirror = Mirror(client, root, run_dir)
            for attempt in range(ATTEMPTS):
                try:
                    mirror.push()
                    result.complete.append(rel)
                    result.failed.pop(rel, None)
                    break
                except UploadRefused as exc:
                    result.failed[rel] = f"refused: {exc}"
                    break
                except (httpx.HTTPError, OSError) as exc:
                    result.failed[rel] = f"{type(exc).__name__}: {exc}"
                    mirror.server = None
                    time.sleep(min(0.2 * 2**attempt, 3.0) * random.uniform(0.5, 1.5))
            if mirror.sent_bytes:
                result.sent_runs += 1
                result.sent_bytes += mirror.sent_bytes
            if progress is not None:
                progress(run_dir)
    return result
