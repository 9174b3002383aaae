"""The web app on V2 alone: every request of every view (and of editing, deleting, the recycle
bin, emptying it, the log) is recorded, and none goes to V1 (``/api/runs…``, whose every lookup
walks the whole tree). Also: the image link follows the slider, and a run page opened before its
run exists shows the run when it appears."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import httpx
from support import wait_for

from runicorn_lite import sdk

from .helpers import expect

LIVE_TIMEOUT = 15_000
V1 = re.compile(r"^/api/(runs|recycle-bin|projects|environment)(/|$)")


def _record(page) -> list[str]:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    page.on("request", lambda r: seen.append(urlparse(r.url).path + ("?" + urlparse(r.url).query if
                                                                      urlparse(r.url).query else "")))
    page.on("websocket", lambda ws: seen.append(urlparse(ws.url).path))
    return seen


def test_no_view_and_no_action_calls_v1(page, site) -> None:
    seen = _record(page)
    first = site.sdk_ids[0]
    for path, heading in [("/", "Runs"), (f"/runs/{first}", None), (f"/compare?ids={','.join(site.sdk_ids[:3])}",
                          None), ("/overview", "Overview"), ("/bin", "Recycle bin"), ("/optimization", None),
                          ("/?view=plot", "Runs")]:
        page.goto(path)
        expect(page.get_by_role("heading", level=1).first).to_be_visible()
        if heading:
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        page.wait_for_timeout(300)  # the view's own requests
    # The run page's log and summary.json come from V2.
    page.goto(f"/runs/{first}")
    expect(page.locator("pre.log")).to_contain_text("epoch done: lr=0.1")

    # Edit, delete, find in the bin, restore, delete again, empty the bin: a run of its own.
    with sdk.init(project="bin", name="throwaway", root=site.root) as run:
        run.log({"loss": 1.0}, step=1)
        run.log_text("hello from the bin")
    wait_for(lambda: httpx.get(f"{site.url}/api/v2/experiments/{run.id}", timeout=10).status_code == 200)
    page.goto(f"/runs/{run.id}")
    expect(page.get_by_role("heading", name="throwaway", level=1)).to_be_visible(timeout=LIVE_TIMEOUT)
    page.get_by_role("button", name="Edit alias, tags and description").click()
    page.get_by_role("textbox", name="Alias").fill("to-be-purged")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="to-be-purged", level=1)).to_be_visible()
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("This run is in the recycle bin")).to_be_visible()
    page.goto("/bin")
    row = page.locator("tr", has_text=run.id)
    expect(row).to_contain_text("to-be-purged")
    expect(row).to_contain_text("deleted in the web app")
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(page.locator(".toast")).to_have_text("Restored 1 run")
    expect(page.locator("tr", has_text=run.id)).to_have_count(0)
    page.goto(f"/runs/{run.id}")
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("This run is in the recycle bin")).to_be_visible()
    page.goto("/bin")
    expect(page.locator("tr", has_text=run.id)).to_have_count(1)
    page.get_by_role("button", name="Empty recycle bin").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete for good").click()
    expect(page.get_by_role("heading", name="The recycle bin is empty")).to_be_visible()
    assert not run.run_dir.exists()

    v1 = [u for u in seen if V1.match(u)]
    assert not v1, f"the web app called V1: {v1}"
    assert any(u.startswith(f"/api/v2/experiments/{first}/logs") for u in seen), seen
    assert any("include_deleted=only" in u for u in seen), seen


def test_image_link_opens_the_image_the_slider_shows(page, site) -> None:
    page.goto(f"/runs/{site.sdk_ids[0]}")
    card = page.locator("#images figure.image-card")
    link = card.get_by_role("link")
    expect(card.locator("img")).to_have_attribute("alt", "samples at step 400")
    last = link.get_attribute("href")
    assert last == card.locator("img").get_attribute("src")
    card.get_by_role("slider", name="Step of samples").focus()
    page.keyboard.press("Home")
    expect(card.locator("img")).to_have_attribute("alt", "samples at step 100")
    first = card.locator("img").get_attribute("src")
    assert first != last
    expect(link).to_have_attribute("href", first)


def test_a_run_page_opened_before_its_run_exists_shows_it_when_it_appears(page, site) -> None:
    run_id = "20991231_235959_c0ffee"
    page.expect_console(r"404")  # the first look for the run finds nothing
    page.goto(f"/runs/{run_id}")
    expect(page.get_by_role("heading", name="Run not found")).to_be_visible()
    with sdk.init(project="late", name="arrives", root=site.root, run_id=run_id) as run:
        run.log({"loss": 0.5}, step=1)
        run.log({"loss": 0.25}, step=2)
    expect(page.get_by_role("heading", name="arrives", level=1)).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(page.locator("figure.chart .chart-sub")).to_have_text("2 points", timeout=LIVE_TIMEOUT)
    assert httpx.get(f"{site.url}/api/v2/experiments/{run_id}", timeout=10).status_code == 200


def test_an_open_chart_appends_the_points_the_event_stream_carries(page, site) -> None:
    run = sdk.init(project="live", name="appends", root=site.root)
    try:
        for step in range(1, 21):
            run.log({"loss": 1.0 / step}, step=step)
        run.flush()
        wait_for(lambda: httpx.get(f"{site.url}/api/v2/experiments/{run.id}", timeout=10).status_code == 200)
        seen = _record(page)
        page.goto(f"/runs/{run.id}")
        sub = page.locator("figure.chart .chart-sub")
        expect(sub).to_have_text("20 points")
        fetched = sum(u.startswith("/api/v2/compare") for u in seen)
        for step in range(21, 31):
            run.log({"loss": 1.0 / step}, step=step)
        run.flush()
        expect(sub).to_have_text("30 points", timeout=LIVE_TIMEOUT)
        assert sum(u.startswith("/api/v2/compare") for u in seen) == fetched  # appended, not refetched
        run.log({"loss": 5.0}, step=30)  # a step logged again: the curve is fetched again
        run.flush()
        for _ in range(150):  # (the page's events reach `seen` while Playwright waits, not in time.sleep)
            if sum(u.startswith("/api/v2/compare") for u in seen) > fetched:
                break
            page.wait_for_timeout(100)
        assert sum(u.startswith("/api/v2/compare") for u in seen) > fetched
        expect(sub).to_have_text("30 points")
    finally:
        run.finish()
