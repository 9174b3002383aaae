"""Signing in on a server with ``--auth keys``: the page asks for a key once, holds an HttpOnly
session cookie (never the key), and then shows the key's project only, live events and the log
tail included; signing out asks again."""

from __future__ import annotations

import re
from pathlib import Path

from support import ServerProcess

from runicorn_lite import sdk

from .helpers import expect

LIVE_TIMEOUT = 15_000


def _key(root: Path, store: Path, project: str) -> str:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "runicorn_lite", "keys", "create", "--root", str(root),
                          "--index-dir", str(store), "--project", project], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_sign_in_then_runs_live_events_and_logs(page, tmp_path: Path) -> None:  # noqa: PLR0915 - one user's walk
    root, store = tmp_path / "data", tmp_path / "store"
    with sdk.init(project="vision", name="seen", root=root) as run:
        run.log({"loss": 1.0}, step=1)
    with sdk.init(project="hidden", name="never-shown", root=root) as hidden:
        hidden.log({"loss": 1.0}, step=1)
    server = ServerProcess(root, "--index-dir", str(store), "--auth", "keys")
    try:
        server.wait_ready()
        key = _key(root, store, "vision")
        page.base = server.url
        page.expect_console(r"status of 401")
        page.goto("/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        box = page.get_by_label("API key")
        box.fill("sk_live_not_a_real_key")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("This key is not valid here")
        page.screenshot(path=str(tmp_path / "sign-in.png"))
        box.fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("tr", has_text=run.id)).to_be_visible()
        expect(page.locator("tr", has_text=hidden.id)).to_have_count(0)
        expect(page.locator("#account")).to_contain_text("project vision")
        # The key is nowhere in the page: the browser holds an HttpOnly cookie of a session.
        cookies = page.context.cookies()
        assert [c["name"] for c in cookies] == ["runicorn_lite_session"]
        assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict" and key not in cookies[0]["value"]
        assert key not in page.content()
        assert page.evaluate("document.cookie") == ""
        assert page.evaluate("JSON.stringify(sessionStorage) + JSON.stringify(localStorage)") == "{}{}"

        # Live: a run that starts now appears, its log follows over the WebSocket.
        live = sdk.init(project="vision", name="live", root=root)
        other = sdk.init(project="hidden", name="live-hidden", root=root)
        try:
            live.log({"loss": 0.5}, step=1)
            other.log({"loss": 0.5}, step=1)
            live.flush()
            other.flush()
            row = page.locator("tr", has_text=live.id)
            expect(row).to_be_visible(timeout=LIVE_TIMEOUT)
            row.get_by_role("link").click()
            expect(page).to_have_url(re.compile(rf"/runs/{live.id}$"))
            live.log_text("epoch 1 done")
            live.flush()
            expect(page.locator("pre.log")).to_contain_text("epoch 1 done", timeout=LIVE_TIMEOUT)
            page.screenshot(path=str(tmp_path / "signed-in-run.png"))
            page.goto("/")
            expect(page.locator("tr", has_text=live.id)).to_be_visible()
            expect(page.locator("tr", has_text=other.id)).to_have_count(0)
            # A reload keeps the session.
            page.reload()
            expect(page.locator("tr", has_text=run.id)).to_be_visible()
        finally:
            live.finish()
            other.finish()

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.reload()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    finally:
        server.stop()
