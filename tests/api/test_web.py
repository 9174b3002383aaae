"""The web app's files as the server sends them: one shell for every view URL, versioned assets
cached for good, a Content-Security-Policy without inline script, and a size budget."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from runicorn_lite.api.web import APP_PATHS, load_bundle

WEB = Path(__file__).resolve().parents[2] / "runicorn_lite" / "web"
BUDGET_GZIP = 150 * 1024


async def test_every_view_url_answers_the_shell_with_a_strict_csp(make_app, client_for) -> None:
    client = client_for(make_app())
    for path in APP_PATHS:
        url = path.replace("{exp_id}", "20250101_000000_abcdef")
        url = url.replace("{run_id}", "0f4a9c52-0000-4000-8000-000000000000")
        r = await client.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-cache"
    html = r.text
    # no inline script: every <script> has a src, and no on...= handler attributes
    assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", html))
    assert not re.search(r"\son[a-z]+\s*=", html)


async def test_shell_revalidates_with_its_etag(make_app, client_for) -> None:
    client = client_for(make_app())
    first = await client.get("/")
    etag = first.headers["etag"]
    again = await client.get("/", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["content-security-policy"]
    other = await client.get("/", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200


async def test_assets_are_versioned_immutable_and_gzipped(make_app, client_for) -> None:
    client = client_for(make_app())
    html = (await client.get("/")).text
    urls = re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)
    assert {u.rsplit("/", 1)[-1] for u in urls} >= {"main.js", "app.css", "runs.js", "uPlot.min.css"}
    version = load_bundle().version
    # the chart library is loaded by the views that chart, from the same versioned folder
    urls.append(f"/assets/{version}/vendor/uplot/uPlot.iife.min.js")
    for url in urls:
        assert url.startswith(f"/assets/{version}/")
        r = await client.get(url, headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200, url
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["vary"] == "Accept-Encoding"
    js = await client.get(f"/assets/{version}/js/views/run.js", headers={"Accept-Encoding": "identity"})
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "content-encoding" not in js.headers
    assert js.content == (WEB / "js" / "views" / "run.js").read_bytes()


async def test_unknown_or_stale_assets(make_app, client_for) -> None:
    client = client_for(make_app())
    version = load_bundle().version
    stale = await client.get("/assets/000000000000/app.css")
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    for bad in ("/assets/{v}/nope.js", "/assets/{v}/../api/web.py", "/assets/{v}/%2e%2e/__init__.py",
                "/assets/{v}/index.html", "/assets/{v}/__init__.py"):
        r = await client.get(bad.format(v=version))
        assert r.status_code == 404, bad


def test_no_html_from_strings_in_the_app() -> None:
    """Data reaches the page as text nodes: nothing in the app parses strings as HTML."""
    for path in sorted((WEB / "js").rglob("*.js")):
        source = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in source, f"{path.name} uses {sink}"


def test_bundle_fits_the_size_budget() -> None:
    """Every JS and CSS file the app can load, gzipped, within 150 KB."""
    files = [p for p in WEB.rglob("*") if p.suffix in (".js", ".css")]
    total = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
    assert len(files) >= 10
    assert total <= BUDGET_GZIP, f"{total / 1024:.1f} KB gzipped"


def test_uplot_is_vendored_with_its_licence() -> None:
    vendor = WEB / "vendor" / "uplot"
    assert "MIT" in (vendor / "LICENSE").read_text()
    assert re.match(r"uPlot \d+\.\d+\.\d+ from the npm package", (vendor / "VERSION").read_text())
