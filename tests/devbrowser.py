"""Headless Chromium, as the browser tests, the browser benchmark and the screenshot script start
it: Debian's ``chromium`` (or ``$RUNICORN_LITE_CHROMIUM``) driven by Playwright, never a browser
Playwright downloads. One place for the lookup and the flags that let it run as root in a
container whose network is loopback only.
"""

from __future__ import annotations

import os
import shutil

# Without the networking flags Chromium tries services the closed network refuses.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def find_chromium() -> str | None:
    """``$RUNICORN_LITE_CHROMIUM``, else the first Chromium on the PATH, else None."""
    explicit = os.environ.get("RUNICORN_LITE_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None
