"""``serve --runicorn-ui``: Runicorn's web UI bundle read from a folder or a wheel and served at
``/`` in place of ours, as Runicorn's viewer serves it (any other path answers index.html), with
``/api`` still ours. (The real 0.7.2 bundle in Chromium: tests/browser/test_runicorn_ui.py.)"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pytest
from api_helpers import assert_error
from click.testing import CliRunner

from runicorn_lite.api import runicorn_ui
from runicorn_lite.cli import main

INDEX = b'<!doctype html><script type="module" src="/assets/index-abc123.js"></script>'
SCRIPT = b"console.log('runicorn');" * 50


@pytest.fixture
def webui(tmp_path: Path) -> Path:
    """A folder laid out as the runicorn package's webui/ (and its VERSION.txt beside it)."""
    folder = tmp_path / "runicorn" / "webui"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_bytes(INDEX)
    (folder / "assets" / "index-abc123.js").write_bytes(SCRIPT)
    (folder / "favicon.ico").write_bytes(b"\x00\x00\x01\x00")
    (folder.parent / "VERSION.txt").write_text("0.7.2\n")
    return folder


def test_bundle_from_a_folder_or_a_wheel(webui: Path, tmp_path: Path) -> None:
    for source in (webui, webui.parent):
        bundle = runicorn_ui.load(source)
        assert bundle.version == "0.7.2" and bundle.index == INDEX and bundle.files["assets/index-abc123.js"] == SCRIPT
    wheel = tmp_path / "runicorn-0.7.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path in webui.rglob("*"):
            if path.is_file():
                zf.write(path, "runicorn/webui/" + path.relative_to(webui).as_posix())
        zf.writestr("runicorn/VERSION.txt", "0.7.2")
        zf.writestr("runicorn/sdk.py", "raise SystemExit('never run')")
    bundle = runicorn_ui.load(wheel)
    assert bundle.version == "0.7.2" and set(bundle.files) == {"index.html", "assets/index-abc123.js", "favicon.ico"}
    not_a_wheel = tmp_path / "x.whl"
    not_a_wheel.write_bytes(b"garbage")
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    for bad in (not_a_wheel, empty):
        with pytest.raises(runicorn_ui.BundleError):
            runicorn_ui.load(bad)


async def test_served_in_place_of_our_web_app(make_app, client_for, webui: Path) -> None:
    client = client_for(make_app(runicorn_ui=True, runicorn_ui_bundle=webui))
    for path in ("/", "/runs/20250303_100001_07f001", "/performance", "/assets", "/assets/123"):
        page = await client.get(path)
        assert page.status_code == 200 and page.content == INDEX, path
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-cache"
    again = await client.get("/", headers={"if-none-match": page.headers["etag"]})
    assert again.status_code == 304
    script = await client.get("/assets/index-abc123.js", headers={"accept-encoding": "gzip"})
    assert script.content == SCRIPT and script.headers["content-encoding"] == "gzip"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "immutable" in script.headers["cache-control"]
    assert gzip.decompress(runicorn_ui.load(webui).gzipped("assets/index-abc123.js")) == SCRIPT
    assert (await client.get("/favicon.ico")).content == b"\x00\x00\x01\x00"
    # /api stays ours: its routes, its JSON errors
    assert (await client.get("/api/health")).json()["status"] == "ok"
    assert_error(await client.get("/api/no-such-route"), 404, "/openapi.json")
    assert_error(await client.post("/api/runs/20250303_100001_07f001"), 405)
    assert (await client.get("/openapi.json")).status_code == 200


def test_serve_without_a_bundle_says_what_to_do(tmp_path: Path) -> None:
    bogus = tmp_path / "runicorn.whl"
    bogus.write_bytes(b"not a zip")
    result = CliRunner().invoke(main, ["serve", "--root", str(tmp_path / "data"), "--port", "0",
                                       "--runicorn-ui-bundle", str(bogus)])
    assert result.exit_code == 1, result.output
    assert "cannot serve Runicorn's web UI" in result.output and "not a readable wheel" in result.output
