"""``GET /api/v2/experiments/{id}/files/{path}``: one file of a run, its type, ETag, Range, and
never anything outside the run directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import assert_error, close_app, copy_fixture, open_app
from starlette.applications import Starlette

import runicorn_lite
from runicorn_lite import rundir
from runicorn_lite.images import encode_png

RUN = "20240101_000000_f11e00"
PNG = encode_png(2, 2, bytes(range(12)), 3)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Starlette, runicorn_lite.Run, Path]]:
    root = tmp_path / "data"
    run = runicorn_lite.init(project="vision", name="resnet", root=root, run_id=RUN)
    run.log({"loss": 1.0}, step=1)
    image = run.log_image("samples", PNG, step=1)
    run.log_text("line one\nline two ✓")
    run.finish()
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the run\n")
    (run.run_dir / "escape.txt").symlink_to(outside)
    (run.run_dir / "media" / "escape-dir").symlink_to(tmp_path)
    (run.run_dir / "inside-link.png").symlink_to(run.run_dir / image)
    (run.run_dir / "page.html").write_text("<script>alert(1)</script>")
    (run.run_dir / "blob.bin").write_bytes(bytes(range(256)) * 4)
    app = open_app(root)
    yield app, run, root
    close_app(app)


def url(rel: str, exp_id: str = RUN) -> str:
    return f"/api/v2/experiments/{exp_id}/files/{rel}"


async def raw_get(app: Starlette, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str],
                                                                                                bytes]:
    """One GET with ``path`` exactly as given (``..`` included): httpx would normalise it away."""
    messages: list[dict[str, Any]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode("utf-8", "surrogateescape"), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"testserver"), *((k.encode(), v.encode()) for k, v in (headers or {}).items())],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    body = b"".join(m.get("body", b"") for m in messages[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


async def test_serves_images_and_logs_with_their_types(world, client_for) -> None:
    app, run, _ = world
    client = client_for(app)
    image = next(p for p in (run.run_dir / "media").iterdir() if p.suffix == ".png").name
    response = await client.get(url(f"media/{image}"))
    assert response.status_code == 200 and response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(PNG)) and response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"].startswith('"') and response.headers["last-modified"].endswith("GMT")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    logs = await client.get(url("logs.txt"))
    assert logs.headers["content-type"] == "text/plain; charset=utf-8"
    assert logs.content == (run.run_dir / "logs.txt").read_bytes() and "line two ✓" in logs.text
    assert (await client.get(url("events.jsonl"))).headers["content-type"].startswith("application/x-ndjson")
    assert (await client.get(url("meta.json"))).json()["id"] == RUN
    assert (await client.get(url("blob.bin"))).headers["content-type"] == "application/octet-stream"
    page = await client.get(url("page.html"))  # never rendered as a page of our origin
    assert page.headers["content-type"] == "text/plain; charset=utf-8"
    assert (await client.get(url("inside-link.png"))).content == PNG  # a symlink that stays inside


async def test_etag_and_last_modified_revalidate(world, client_for) -> None:
    app, _, _ = world
    client = client_for(app)
    first = await client.get(url("logs.txt"))
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for headers in ({"if-none-match": etag}, {"if-none-match": f"W/{etag}"}, {"if-none-match": f'"x", {etag}'},
                    {"if-none-match": "*"}, {"if-modified-since": modified}):
        again = await client.get(url("logs.txt"), headers=headers)
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert (await client.get(url("logs.txt"), headers={"if-none-match": '"other"'})).status_code == 200
    assert (await client.get(url("logs.txt"), headers={"if-modified-since": "garbage"})).status_code == 200
    assert (await client.get(url("logs.txt"), headers={"if-modified-since": "Mon, 01 Jan 1990 00:00:00 GMT"})
            ).status_code == 200
    with open(world[1].run_dir / "logs.txt", "a") as fh:
        fh.write("00:00:00 | grown\n")
    grown = await client.get(url("logs.txt"), headers={"if-none-match": etag})
    assert grown.status_code == 200 and grown.headers["etag"] != etag and grown.text.endswith("grown\n")


async def test_ranges(world, client_for) -> None:
    app, run, _ = world
    client = client_for(app)
    data = (run.run_dir / "blob.bin").read_bytes()
    size = len(data)
    for spec, (start, end) in {"bytes=0-9": (0, 10), "bytes=1000-": (1000, size), "bytes=-24": (size - 24, size),
                               "bytes=1020-99999": (1020, size), "BYTES = 5 - 5": (5, 6),
                               "bytes=-99999": (0, size)}.items():
        response = await client.get(url("blob.bin"), headers={"range": spec})
        assert response.status_code == 206, spec
        assert response.content == data[start:end], spec
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{size}", spec
        assert response.headers["content-length"] == str(end - start)
    for spec in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        response = await client.get(url("blob.bin"), headers={"range": spec})
        assert_error(response, 416, "outside the file")
        assert response.headers["content-range"] == f"bytes */{size}"
    # Malformed, another unit, several ranges: ignored, the whole file (as HTTP allows).
    for spec in ("bytes=x-y", "items=0-1", "bytes=0-1,4-5", "bytes=5-3", "bytes=", "bytes=-", "0-1",
                 "bytes=" + "9" * 5000 + "-", "bytes=99999999999999999999-"):
        response = await client.get(url("blob.bin"), headers={"range": spec})
        assert response.status_code == 200 and response.content == data, spec
    etag = (await client.get(url("blob.bin"))).headers["etag"]
    assert (await client.get(url("blob.bin"), headers={"range": "bytes=0-1", "if-range": etag})).status_code == 206
    stale = await client.get(url("blob.bin"), headers={"range": "bytes=0-1", "if-range": '"stale"'})
    assert stale.status_code == 200 and stale.content == data
    head = await client.head(url("blob.bin"), headers={"range": "bytes=0-9"})
    assert head.status_code == 206 and head.headers["content-length"] == "10" and head.content == b""


@pytest.mark.parametrize("path", [
    "../meta.json", "../../../../../../etc/passwd", "media/../../x", "%2e%2e/%2e%2e/etc/passwd",
    "%2E%2E/secret.txt", "..%2fsecret.txt", "..\\..\\secret.txt", "/etc/passwd", "//etc/passwd",
    "logs.txt%00.png", "%00", "media", "media/", "escape.txt", "media/escape-dir/secret.txt", "nothing.txt",
    "C:/Windows/win.ini", "",
])
async def test_nothing_outside_the_run_directory(world, path: str) -> None:
    app, _, _ = world
    from urllib.parse import unquote

    status, headers, body = await raw_get(app, "/api/v2/experiments/" + RUN + "/files/" + unquote(path))
    assert status == 404, (path, status, body[:200])
    assert b"outside the run" not in body and b"root:" not in body
    assert headers["content-type"].startswith("application/json")


async def test_literal_dot_segments_over_the_wire(world, client_for) -> None:
    # What a client that does not normalise sends, percent-encoded or not, lands on the same 404.
    app, _, _ = world
    client = client_for(app)
    for path in ("%2e%2e/%2e%2e/%2e%2e/secret.txt", "media%2f..%2f..%2fsecret.txt", "%2fetc%2fpasswd", "a%00b"):
        response = await client.get(url(path))
        assert_error(response, 404)


async def test_unknown_and_deleted_runs(world, client_for) -> None:
    app, _run, _ = world
    client = client_for(app)
    assert (await client.get(url("logs.txt", "20991231_000000_000000"))).json() == {
        "detail": "Experiment 20991231_000000_000000 not found"}
    assert_error(await client.get(url("logs.txt", "..")), 404)
    assert_error(await client.get(url("logs.txt", "a%00b")), 404)
    await client.post("/api/v2/experiments/batch-delete", json={"exp_ids": [RUN]})
    assert (await client.get(url("logs.txt"))).status_code == 200  # soft-deleted runs keep their files


async def test_real_runicorn_images(tmp_path: Path, client_for) -> None:
    root = copy_fixture("runicorn_07_assets", tmp_path / "data")
    app = open_app(root)
    try:
        client = client_for(app)
        run_id = "20250303_100001_07f001"
        run_dir = next(loc.run_dir for loc in rundir.iter_runs(root) if loc.run_id == run_id)
        for image in rundir.read_events(run_dir / rundir.EVENTS).images:
            response = await client.get(url(image["path"], run_id))
            assert response.status_code == 200 and response.headers["content-type"] == "image/png"
            assert response.content == (run_dir / image["path"]).read_bytes()
        env = await client.get(url("environment.json", run_id))
        assert env.json()["python_version"]
    finally:
        close_app(app)


def test_a_growing_file_is_served_as_opened(world) -> None:
    from starlette.testclient import TestClient

    app, run, _ = world
    path = run.run_dir / "logs.txt"
    before = path.read_bytes()
    with TestClient(app) as client, client.stream("GET", url("logs.txt")) as response:
        with open(path, "ab") as fh:
            fh.write(b"x" * 100_000)
        body = b"".join(response.iter_bytes())
    assert body == before and response.headers["content-length"] == str(len(before))
    assert os.path.getsize(path) == len(before) + 100_000
