"""Changing runs from the page: alias, tags and description in place; delete, the recycle bin,
restore; a deleted run's own page says where it is."""

from __future__ import annotations

import re

import httpx

from .helpers import expect

# Runs written by the real Runicorn 0.7.2 SDK (tests/fixtures/runicorn_07).
EDITED = "20250302_090004_07a004"
DELETED = "20250302_090003_07a003"


def detail(site, run_id: str) -> dict:
    return httpx.get(f"{site.url}/api/v2/experiments/{run_id}", timeout=10).json()["experiment"]


def test_alias_tags_description_edited_in_place(page, site) -> None:
    page.goto(f"/runs/{EDITED}")
    page.get_by_role("button", name="Edit alias, tags and description").click()
    page.get_by_role("textbox", name="Alias").fill("best-so-far")
    page.get_by_role("textbox", name="Tags").fill("keep,  reviewed ,")
    page.get_by_role("textbox", name="Description").fill("the one to beat")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="best-so-far", level=1)).to_be_visible()
    expect(page.locator(".meta-edit .tag")).to_have_text(["keep", "reviewed"])
    expect(page.locator(".description")).to_have_text("the one to beat")
    # it is in the run's files, hence in the index and the list
    e = detail(site, EDITED)
    assert (e["alias"], e["tags"], e["description"]) == ("best-so-far", ["keep", "reviewed"], "the one to beat")
    page.goto("/?q=best-so-far")
    expect(page.locator("tr", has_text=EDITED).locator(".alias")).to_have_text("best-so-far")
    # Escape leaves the editor without saving
    page.goto(f"/runs/{EDITED}")
    page.get_by_role("button", name="Edit alias, tags and description").click()
    page.get_by_role("textbox", name="Alias").fill("not saved")
    page.keyboard.press("Escape")
    expect(page.get_by_role("heading", name="best-so-far", level=1)).to_be_visible()


def test_delete_then_restore_through_the_recycle_bin(page, site) -> None:
    page.goto(f"/?q={DELETED}")
    row = page.locator("tr", has_text=DELETED)
    expect(row).to_have_count(1)
    row.get_by_role("checkbox").check()
    expect(page).to_have_url(re.compile(rf"sel={DELETED}"))
    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete 1 run?")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator(".toast")).to_have_text("Moved 1 run to the recycle bin")
    expect(page.get_by_role("heading", name="No runs match these filters")).to_be_visible()
    assert detail(site, DELETED)["deleted_at"] is not None

    # its own URL says where it is, after a reload too
    page.goto(f"/runs/{DELETED}")
    expect(page.get_by_text("This run is in the recycle bin")).to_be_visible()
    page.reload()
    expect(page.get_by_text("This run is in the recycle bin")).to_be_visible()

    page.get_by_role("link", name="Recycle bin").click()
    expect(page).to_have_url(re.compile(r"/bin$"))
    bin_row = page.locator("tr", has_text=DELETED)
    expect(bin_row).to_contain_text("deleted in the web app")
    bin_row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(page.locator(".toast")).to_have_text("Restored 1 run")
    expect(page.locator("tr", has_text=DELETED)).to_have_count(0)
    assert detail(site, DELETED)["deleted_at"] is None

    page.goto(f"/runs/{DELETED}")
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    expect(page.get_by_text("This run is in the recycle bin")).to_be_hidden()


def test_delete_and_restore_from_the_run_page(page, site) -> None:
    page.goto(f"/runs/{DELETED}")
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("This run is in the recycle bin")).to_be_visible()
    page.get_by_role("button", name="Restore it").click()
    expect(page.get_by_text("This run is in the recycle bin")).to_be_hidden()
    assert detail(site, DELETED)["deleted_at"] is None


def test_cancelled_delete_keeps_the_run(page, site) -> None:
    page.goto(f"/runs/{DELETED}")
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert detail(site, DELETED)["deleted_at"] is None
