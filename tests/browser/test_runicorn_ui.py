"""Runicorn 0.7.2's own web UI, unchanged, against our server (``serve --runicorn-ui``).

The bundle is the one the ``runicorn==0.7.2`` package ships: read from the installed package
when there is one, else from its wheel, fetched once with ``pip download --no-deps`` into a
cache (the package's dependencies are not needed to serve its files). Every page fails its test
on a console error, an uncaught exception, or an ``/api`` answer that is not 2xx.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ServerProcess, copy_fixture, wait_for

from runicorn_lite import rundir
from runicorn_lite.api.runicorn_ui import installed_webui

from .helpers import REQUIRED, Page, expect, write_sdk_runs

VERSION = "0.7.2"
CACHE = Path(os.environ.get("RUNICORN_LITE_TEST_CACHE") or Path.home() / ".cache" / "runicorn-lite-tests")
F = "20250303_100001_07f001"  # a real 0.7.2 run with config and images
# Runicorn's UI is 3 MB of JavaScript: on a loaded machine its first render takes seconds.
WAIT_MS = 30_000


def _wheel() -> Path:
    """runicorn 0.7.2's wheel, downloaded into the cache on first use."""
    found = sorted(CACHE.glob(f"runicorn-{VERSION}-*.whl"))
    if found:
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                           "--no-deps", f"runicorn=={VERSION}", "-d", str(CACHE)],
                          check=False, capture_output=True, text=True)
    found = sorted(CACHE.glob(f"runicorn-{VERSION}-*.whl"))
    if done.returncode != 0 or not found:
        message = f"runicorn {VERSION}'s wheel could not be downloaded: {done.stderr.strip()[-500:]}"
        if REQUIRED:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found[0]


@pytest.fixture(scope="module")
def ui_site(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[dict[str, Any]]:
    """Our server with Runicorn's web UI over SDK runs and the real 0.7.2 runs."""
    root = tmp_path_factory.mktemp("runicorn-ui") / "data"
    root.mkdir()
    ids = write_sdk_runs(root)
    copy_fixture("runicorn_07", root)
    copy_fixture("runicorn_07_assets", root)
    webui = installed_webui()
    args = ["--runicorn-ui"] if webui is not None else ["--runicorn-ui-bundle", str(_wheel())]
    server = ServerProcess(root, *args)
    try:
        server.wait_ready()
        yield {"root": root, "url": server.url, "ids": ids, "server": server}
    finally:
        server.stop()


class UIPage(Page):
    """A page of Runicorn's UI that also records every /api answer that is not 2xx."""

    def __init__(self, page: Any, base: str) -> None:
        super().__init__(page, base)
        page.on("response", self._response)

    def _response(self, response: Any) -> None:
        path = response.url.removeprefix(self.base)
        if path.startswith("/api") and not 200 <= response.status < 300:
            self.errors.append(f"{response.request.method} {path} answered {response.status}")


@pytest.fixture(scope="module")
def ui_context(browser: Any, ui_site: dict[str, Any]) -> Iterator[Any]:
    """One browser context for the module, so that the UI's 3 MB of scripts are fetched and
    compiled once (they are served as immutable) rather than for every page."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


@pytest.fixture
def ui(ui_context: Any, ui_site: dict[str, Any]) -> Iterator[UIPage]:
    page = UIPage(ui_context.new_page(), ui_site["url"])
    yield page
    errors = list(page.errors)
    page.close()
    assert not errors, "console errors, uncaught exceptions or failed /api calls:\n" + "\n".join(errors)


def _rows(ui: UIPage) -> Any:
    return ui.locator("main .ant-table-tbody tr.ant-table-row")  # not the recycle bin's table


def _select(ui: UIPage, *texts: str) -> None:
    for text in texts:
        _rows(ui).filter(has_text=text).locator(".ant-checkbox-input").check()


def _check_in_bin(modal: Any, text: str) -> None:
    """Tick a run in the recycle bin. The bin shows what it last loaded, then reloads: a tick
    given before the reload is dropped with the old rows, so tick once it has settled."""
    box = modal.locator(".ant-table-row").filter(has_text=text).locator(".ant-checkbox-input")
    for _ in range(10):
        expect(modal.locator(".ant-spin-spinning")).to_have_count(0, timeout=WAIT_MS)
        box.click()
        modal.page.wait_for_timeout(300)
        if box.is_checked():
            return
    raise AssertionError(f"the bin's row {text} could not be ticked")


def test_runs_list_and_path_tree(ui: UIPage, ui_site: dict[str, Any]) -> None:
    ui.goto("/")
    expect(_rows(ui).first).to_be_visible(timeout=WAIT_MS)
    tree = ui.locator(".ant-tree")
    expect(tree.get_by_text("vision", exact=True)).to_be_visible(timeout=WAIT_MS)  # our SDK's runs
    expect(tree.get_by_text("resnet", exact=True)).to_be_visible(timeout=WAIT_MS)  # the real 0.7.2 runs
    # the counts of the tree come from the index: cv holds 5 runs
    cv = tree.locator(".ant-tree-treenode").filter(has_text=re.compile(r"^cv\s*5$"))
    expect(cv).to_have_count(1, timeout=WAIT_MS)
    tree.get_by_text("resnet", exact=True).click()
    expect(_rows(ui)).to_have_count(2, timeout=WAIT_MS)
    # a new folder made from the tree is there after a reload
    ui.locator(".anticon-plus").first.click()
    ui.locator(".ant-modal input").first.fill("ablations/new-folder")
    ui.locator(".ant-modal .ant-btn-primary").click()
    ui.reload()
    expect(tree.get_by_text("ablations", exact=True)).to_be_visible(timeout=WAIT_MS)
    assert (ui_site["root"] / "runs" / "ablations" / "new-folder").is_dir()


def test_a_run_with_charts_images_logs_and_assets(ui: UIPage, ui_site: dict[str, Any]) -> None:
    run_id = ui_site["ids"][0]  # the SDK run with images, a config and a log line
    ui.goto(f"/runs/{run_id}")
    expect(ui.locator("canvas").first).to_be_visible(timeout=WAIT_MS)  # its charts
    ui.get_by_role("tab", name="Images").click()
    image = ui.locator("img[src*='/assets/download']").first
    expect(image).to_be_visible(timeout=WAIT_MS)
    wait_for(lambda: ui.evaluate("img => img.complete && img.naturalWidth > 0", image.element_handle()))
    ui.get_by_role("tab", name="Live Logs").click()
    expect(ui.get_by_text(re.compile("epoch done: lr=0.1"))).to_be_visible(timeout=WAIT_MS)
    ui.get_by_role("tab", name="Assets").click()
    expect(ui.get_by_text("batch_size").first).to_be_visible(timeout=WAIT_MS)


def test_a_real_runicorn_run_shows_its_images(ui: UIPage) -> None:
    ui.goto(f"/runs/{F}")
    ui.get_by_role("tab", name="Images").click()
    image = ui.locator("img[src*='/assets/download']").first
    expect(image).to_be_visible(timeout=WAIT_MS)
    wait_for(lambda: ui.evaluate("img => img.complete && img.naturalWidth > 0", image.element_handle()))


def test_compare_two_runs(ui: UIPage, ui_site: dict[str, Any]) -> None:
    a, b = ui_site["ids"][:2]
    ui.goto("/")
    _select(ui, a[-6:], b[-6:])
    ui.get_by_role("button", name="Compare (2)").click()
    expect(ui.get_by_text("Comparing 2 runs")).to_be_visible(timeout=WAIT_MS)
    expect(ui.locator("canvas").first).to_be_visible(timeout=WAIT_MS)  # the common metrics, overlaid


def test_export_selected_runs(ui: UIPage, ui_site: dict[str, Any]) -> None:
    a, b = ui_site["ids"][2:4]
    ui.goto("/")
    _select(ui, a[-6:], b[-6:])
    with ui.expect_download() as download:
        ui.get_by_role("button", name="Export (2)").click()
    assert re.fullmatch(r"runicorn_export_2runs_\d{8}_\d{6}\.zip", download.value.suggested_filename)
    with zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())) as zf:
        names = zf.namelist()
    assert f"runs/vision/vit-base/{b}/meta.json" in names or f"runs/vision/resnet50/{b}/meta.json" in names
    assert any(n.endswith(f"{a}/events.jsonl") for n in names)


def test_recycle_bin_restore_then_delete_for_good(ui: UIPage, ui_site: dict[str, Any]) -> None:
    run_id = ui_site["ids"][-1]
    short = run_id[-6:]
    ui.goto("/")
    _select(ui, short)
    ui.get_by_role("button", name="Delete (1)").click()
    ui.get_by_role("button", name="Move to Bin").click()
    expect(_rows(ui).filter(has_text=short)).to_have_count(0, timeout=WAIT_MS)
    assert any(loc.run_id == run_id for loc in rundir.iter_runs(ui_site["root"]))  # only marked deleted
    # restore it from the bin
    ui.get_by_role("button", name="Recycle Bin").click()
    modal = ui.locator(".ant-modal").filter(has_text="Restore Selected")
    _check_in_bin(modal, short)
    modal.get_by_role("button", name="Restore Selected").click()
    expect(modal.locator(".ant-table-row").filter(has_text=short)).to_have_count(0, timeout=WAIT_MS)
    modal.get_by_role("button", name="Cancel").click()
    expect(modal).to_be_hidden(timeout=WAIT_MS)
    expect(_rows(ui).filter(has_text=short)).to_have_count(1, timeout=WAIT_MS)
    # delete it again, then for good
    _select(ui, short)
    ui.get_by_role("button", name="Delete (1)").click()
    ui.get_by_role("button", name="Move to Bin").click()
    expect(_rows(ui).filter(has_text=short)).to_have_count(0, timeout=WAIT_MS)
    ui.get_by_role("button", name="Recycle Bin").click()
    _check_in_bin(modal, short)
    modal.get_by_role("button", name="Delete Permanently").click()
    ui.get_by_role("button", name="Yes, Delete Permanently").click()
    expect(modal.locator(".ant-table-row").filter(has_text=short)).to_have_count(0, timeout=WAIT_MS)
    wait_for(lambda: not any(loc.run_id == run_id for loc in rundir.iter_runs(ui_site["root"])), timeout=15)


def test_settings_show_the_server(ui: UIPage, ui_site: dict[str, Any]) -> None:
    ui.goto("/")
    ui.locator(".anticon-setting").first.click()
    drawer = ui.locator(".ant-drawer")
    for tab in ("Storage", "Performance", "System Info"):
        drawer.get_by_role("tab", name=tab).click()
        expect(drawer.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
    shown = drawer.locator(".ant-tabs-tabpane-active")
    expect(shown.get_by_text("SQLite-backed").first).to_be_visible(timeout=WAIT_MS)
    expect(shown.get_by_text(str(ui_site["root"])).first).to_be_visible(timeout=WAIT_MS)


def test_performance_page(ui: UIPage) -> None:
    ui.goto("/performance")
    expect(ui.get_by_text(re.compile("CPU")).first).to_be_visible(timeout=WAIT_MS)


def test_diagnostics_page_follows_the_server_log(ui: UIPage) -> None:
    ui.goto("/diagnostics")
    expect(ui.get_by_text(re.compile("serving .* with Runicorn's web UI")).first).to_be_visible(timeout=WAIT_MS)


def test_assets_and_remote_pages(ui: UIPage) -> None:
    ui.goto("/assets")
    expect(ui.get_by_text("Assets").first).to_be_visible(timeout=WAIT_MS)
    ui.goto("/remote")
    expect(ui.get_by_text("Remote").first).to_be_visible(timeout=WAIT_MS)
