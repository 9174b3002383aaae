"""What the browser tests share: finding Chromium, the page wrapper that records console errors,
the data written for the session, and Playwright's auto-waiting ``expect``."""

from __future__ import annotations

import io
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import ServerProcess

from runicorn_lite import sdk

try:
    from playwright.sync_api import expect as _expect
except ImportError:  # pragma: no cover - the browser fixture reports it
    _expect = None


def expect(target: Any, message: str | None = None) -> Any:
    assert _expect is not None, "playwright is not installed"
    # the tests' Page wrapper (console recording) hands over the Playwright page it wraps
    return _expect(getattr(target, "wrapped", target), message)


REQUIRED = os.environ.get("RUNICORN_LITE_BROWSER_TESTS", "").lower() == "required"


# ---- the data root ------------------------------------------------------------------------------

LR = {"resnet50": [0.1, 0.03, 0.01], "vit-base": [0.001, 0.0003]}


def png(width: int, height: int, shade: int) -> bytes:
    """A small PNG, as a training script would log a sample."""
    from PIL import Image  # a test dependency; the SDK itself does not need Pillow

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 90, 255 - shade)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_sdk_runs(root: Path) -> list[str]:
    """SDK runs with configs, curves, tags, descriptions and (for the first) images and the
    environment; returns their ids."""
    ids = []
    for name, lrs in LR.items():
        for i, lr in enumerate(lrs):
            batch = 64 if name == "resnet50" else 128
            config = {"lr": lr, "batch_size": batch, "optim": {"name": "sgd", "momentum": 0.9}}
            run = sdk.init(project="vision", name=name, root=root, tags=["sweep"] + (["baseline"] if i == 0 else []),
                           description=f"{name} with lr={lr}", config=config, capture_env=not ids)
            run.set_primary_metric("accuracy", mode="max")
            for step in range(1, 401):
                decay = math.exp(-(0.01 + lr) * step)
                run.log({"loss": 2.0 * decay + 0.05, "accuracy": 0.95 * (1 - decay)}, step=step)
                if not ids and step % 100 == 0:
                    run.log_image("samples", png(32, 24, step // 2), step=step, caption=f"epoch {step // 100}")
            run.log_text(f"epoch done: lr={lr}")
            run.finish("failed" if name == "vit-base" and i == 1 else "finished")
            ids.append(run.id)
    return ids


@dataclass
class Site:
    """The served root, its runs and the server's address."""

    root: Path
    url: str
    sdk_ids: list[str]
    server: ServerProcess
    extra: dict[str, Any] = field(default_factory=dict)


def create_key(root: Path, project: str) -> str:
    """A new optimization API key, made by the CLI as a user would."""
    out = subprocess.run(
        [sys.executable, "-m", "runicorn_lite", "keys", "create", "--root", str(root), "--project", project],
        capture_output=True, text=True, check=True,
    ).stdout
    match = re.search(r"sk_live_[A-Za-z0-9_\-]+", out)
    assert match, out
    return match.group(0)


class Page:
    """A Playwright page that records console errors and uncaught exceptions."""

    def __init__(self, page: Any, base: str) -> None:
        self.wrapped = page
        self.page = page
        self.base = base
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        text = f"{msg.text} [{where}]"
        if any(p.search(text) for p in self.allowed):
            return
        self.errors.append(text)

    def expect_console(self, pattern: str) -> None:
        """Announce a console error this test provokes on purpose (a 404, a refused connection)."""
        self.allowed.append(re.compile(pattern))

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.page, name)


# Hover a grid over the scatter's plot area, in the page: which runs can be reached, and where
# their ring is drawn (relative to the plot area).
_HOVER_GRID = """(over) => {
  const r = over.getBoundingClientRect();
  const seen = {};
  for (let y = 1; y < r.height; y += 3) {
    for (let x = 1; x < r.width; x += 3) {
      over.dispatchEvent(new MouseEvent("mousemove", { clientX: r.left + x, clientY: r.top + y, bubbles: true }));
      const tip = over.closest(".scatter").querySelector(".tip");
      if (tip.hidden) continue;
      const label = tip.querySelector("strong").textContent;
      const ring = over.querySelector(".pick-ring");
      seen[label] = [parseFloat(ring.style.left), parseFloat(ring.style.top), r.width, r.height];
    }
  }
  return seen;
}"""


def reachable_points(page: Any, over: Any) -> dict[str, list[float]]:
    """Hover a grid over a scatter's plot area (``.u-over``), in the page: the label of every
    point the tooltip can name, with where its ring is drawn (x, y, and the area's width and
    height, relative to the area)."""
    seen: dict[str, list[float]] = page.evaluate(_HOVER_GRID, over.element_handle())
    return seen
