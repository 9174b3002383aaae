"""The page follows the files: a run written while the page is open appears and its curve grows
without a reload; a server that goes away is shown by a banner that leaves when it is back."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from support import ServerProcess

from runicorn_lite import sdk

from .helpers import expect

LIVE_TIMEOUT = 15_000  # ms: events arrive in well under a second; a server without them polls


def test_a_run_written_while_the_page_is_open_appears_and_grows(page, site) -> None:
    page.goto("/?project=live")
    expect(page.get_by_role("heading", name="No runs match these filters")).to_be_visible()
    run = sdk.init(project="live", name="stream", root=site.root, tags=["live"])
    try:
        for step in range(1, 21):
            run.log({"loss": 1.0 / step}, step=step)
        run.flush()
        row = page.locator("tr", has_text=run.id)
        expect(row).to_be_visible(timeout=LIVE_TIMEOUT)
        expect(row.locator(".badge")).to_have_text("running")

        row.get_by_role("link").click()
        expect(page).to_have_url(re.compile(rf"/runs/{run.id}$"))
        sub = page.locator("figure.chart .chart-sub")
        expect(sub).to_have_text("20 points")
        for step in range(21, 51):
            run.log({"loss": 1.0 / step}, step=step)
        run.flush()
        expect(sub).to_have_text("50 points", timeout=LIVE_TIMEOUT)
        # the log follows live (V2 logs by offset)
        run.log_text("still going")
        run.flush()
        expect(page.locator("pre.log")).to_contain_text("still going", timeout=LIVE_TIMEOUT)
    finally:
        run.finish("finished")
    expect(page.locator(".facts .badge")).to_have_text("finished", timeout=LIVE_TIMEOUT)


def test_banner_while_the_server_is_away(page, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    with sdk.init(project="p", name="n", root=root) as run:
        run.log({"loss": 1.0}, step=1)
    server = ServerProcess(root)
    again = None
    try:
        server.wait_ready()
        page.base = server.url
        page.expect_console(r"ERR_CONNECTION_REFUSED|Failed to fetch|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET")
        page.goto("/")
        expect(page.locator("tr", has_text=run.id)).to_be_visible()
        banner = page.get_by_role("alert").filter(has_text="The server cannot be reached")
        expect(banner).to_be_hidden()

        port = server.url.rsplit(":", 1)[1]
        server.stop()
        expect(banner).to_be_visible(timeout=LIVE_TIMEOUT)
        # what was loaded stays on screen
        expect(page.locator("tr", has_text=run.id)).to_be_visible()

        again = ServerProcess(root, "--port", port)
        assert again.url == server.url
        expect(banner).to_be_hidden(timeout=LIVE_TIMEOUT)
        assert httpx.get(again.url + "/api/health", timeout=5).status_code == 200
    finally:
        server.stop()
        if again is not None:
            again.stop()
