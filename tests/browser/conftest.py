"""The web app in a real Chromium: one browser and one server process for the whole session.

The server is ``runicorn-lite serve --port 0`` on a data root filled by our SDK and by copies of
the runs the real Runicorn SDK wrote (tests/fixtures). Every page fails its test on an uncaught
error or a console error that the test did not announce (``page.expect_console(...)``).

Chromium: ``$RUNICORN_LITE_CHROMIUM`` or ``chromium`` on the PATH. Without one the tests skip and
the summary says so in a warning line; with ``RUNICORN_LITE_BROWSER_TESTS=required`` (set by CI)
they fail instead of skipping.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from devbrowser import CHROMIUM_ARGS, find_chromium
from support import ServerProcess, copy_fixture

from .helpers import REQUIRED, Page, Site, write_sdk_runs

_missing: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _missing:
        terminalreporter.write_sep("!", "BROWSER TESTS SKIPPED", yellow=True, bold=True)
        terminalreporter.write_line(
            f"WARNING: the web app was NOT tested in a browser: {_missing[0]}. "
            "Install Chromium (apt-get install chromium) or set RUNICORN_LITE_CHROMIUM.",
            yellow=True,
            bold=True,
        )


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"browser tests are required here, but {reason}", pytrace=False)
    if not _missing:
        _missing.append(reason)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    executable = find_chromium()
    if executable is None:
        _unavailable("no Chromium was found")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS), headless=True)
        yield b
        b.close()


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One real server over SDK runs and the real Runicorn fixtures (both layouts)."""
    root = tmp_path_factory.mktemp("web") / "data"
    root.mkdir()
    ids = write_sdk_runs(root)
    copy_fixture("runicorn_07", root)
    copy_fixture("runicorn_053", root)
    server = ServerProcess(root)
    try:
        server.wait_ready()
        yield Site(root=root, url=server.url, sdk_ids=ids, server=server)
    finally:
        server.stop()


# ---- pages --------------------------------------------------------------------------------------


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Page]:
    """A fresh browser context (own storage) on the session's server, 1280×860."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    context.set_default_timeout(10_000)
    p = Page(context.new_page(), site.url)
    yield p
    errors = list(p.errors)
    context.close()
    assert not errors, "console errors or uncaught exceptions in the page:\n" + "\n".join(errors)
