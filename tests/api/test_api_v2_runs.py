"""What V2 gained so that the web app never calls V1: PATCH of a run, the recycle bin as a list
(``include_deleted=only``), permanent deletion, the log's tail, summary.json in the detail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import Corpus, assert_error, close_app, copy_runs, ids, open_app
from starlette.applications import Starlette

B = "20240612_080000_"
E1, E5, E12 = B + "c0ffe1", B + "c0ffe5", B + "c0ffec"  # E12 is in the recycle bin
UNKNOWN = "20991231_000000_000000"


@pytest.fixture
def root(corpus: Corpus, tmp_path: Path) -> Path:
    return copy_runs(corpus.root, tmp_path / "data")


@pytest.fixture
def app(root: Path) -> Iterator[Starlette]:
    app = open_app(root)
    yield app
    close_app(app)


@pytest.fixture
def client(app, client_for):  # type: ignore[no-untyped-def]
    return client_for(app)


def _dir(corpus: Corpus, root: Path, exp_id: str) -> Path:
    spec = corpus.by_id(exp_id)
    return root / "runs" / spec.path / spec.id


async def test_patch_writes_meta_then_the_index(client, corpus: Corpus, root: Path) -> None:
    edit = {"alias": "  best so far ", "tags": [" a", "b", "a", ""], "description": "line 1\nline 2"}
    r = await client.patch(f"/api/v2/experiments/{E1}", json=edit)
    assert r.status_code == 200, r.text
    row = r.json()["experiment"]
    assert (row["id"], row["alias"], row["tags"], row["description"]) == (E1, "best so far", ["a", "b"],
                                                                          "line 1\nline 2")
    meta = json.loads((_dir(corpus, root, E1) / "meta.json").read_text())
    assert (meta["alias"], meta["tags"], meta["description"]) == ("best so far", ["a", "b"], "line 1\nline 2")
    listed = (await client.get("/api/v2/experiments", params={"tags": "b"})).json()
    assert ids(listed) == [E1]
    assert (await client.get("/api/v2/experiments", params={"search": "best so far"})).json()["total"] == 1
    # Absent or null: left as it is; empty: cleared.
    r = await client.patch(f"/api/v2/experiments/{E1}", json={"alias": "", "tags": None})
    assert (r.json()["experiment"]["alias"], r.json()["experiment"]["tags"]) == (None, ["a", "b"])
    # A deleted run can be edited too (the bin shows it).
    r = await client.patch(f"/api/v2/experiments/{E12}", json={"description": "kept for the record"})
    assert r.status_code == 200 and r.json()["experiment"]["deleted_at"] is not None


@pytest.mark.parametrize(("body", "status", "contains"), [
    ({"alias": 3}, 400, "Field 'alias'"),
    ({"alais": "x"}, 400, "Unknown field 'alais'"),
    ({"tags": "a,b"}, 400, "Field 'tags'"),
    ({"description": "a\x00b"}, 400, "control character"),
    ([1], 400, "JSON object"),
])
async def test_patch_refuses_bad_bodies(client, body: Any, status: int, contains: str) -> None:
    assert_error(await client.patch(f"/api/v2/experiments/{E1}", json=body), status, contains)


async def test_patch_unknown_or_malformed_id_and_allowed_methods(client) -> None:
    assert_error(await client.patch(f"/api/v2/experiments/{UNKNOWN}", json={"alias": "x"}), 404,
                 f"Experiment {UNKNOWN} not found")
    assert_error(await client.patch("/api/v2/experiments/..%2f..%2fetc", json={"alias": "x"}), 404)
    r = await client.delete(f"/api/v2/experiments/{E1}")
    assert r.status_code == 405 and set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "PATCH"}


async def test_include_deleted_only_lists_the_recycle_bin(client) -> None:
    r = await client.post("/api/v2/experiments/batch-delete", json={"exp_ids": [E5]})
    assert r.status_code == 200
    for extra in ({}, {"filter": "metrics.loss.count >= 0"}, {"order_by": "metrics.loss.min"}, {"search": "bert"}):
        body = (await client.get("/api/v2/experiments", params={"include_deleted": "only", **extra})).json()
        expected = [E5] if "search" in extra else [E5, E12]
        assert sorted(ids(body)) == sorted(expected) and body["total"] == len(expected), (extra, body)
        assert all(e["deleted_at"] is not None for e in body["experiments"])
    everything = (await client.get("/api/v2/experiments", params={"include_deleted": "TRUE"})).json()
    assert everything["total"] == 12
    detail = assert_error(await client.get("/api/v2/experiments", params={"include_deleted": "maybe"}), 400)
    assert "true, false or only" in detail
    assert_error(await client.get("/api/v2/experiments?include_deleted="), 400, "include_deleted")
    schema = (await client.get("/openapi.json")).json()["paths"]["/api/v2/experiments"]["get"]["parameters"]
    assert {"type": "string", "enum": ["only"]} in next(p for p in schema if p["name"] == "include_deleted")[
        "schema"]["anyOf"]


async def test_batch_purge_removes_only_deleted_runs(client, corpus: Corpus, root: Path) -> None:
    assert_error(await client.post("/api/v2/experiments/batch-purge", json={"exp_ids": [E12]}), 400, "confirm=true")
    assert_error(await client.post("/api/v2/experiments/batch-purge", json={"exp_ids": [], "confirm": True}), 400)
    r = await client.post("/api/v2/experiments/batch-purge", json={"exp_ids": [E12, E1, UNKNOWN], "confirm": True})
    assert r.status_code == 200, r.text
    assert r.json() == {"purged": 1, "failed": 2, "results": {E12: True, E1: False, UNKNOWN: False},
                        "errors": {E1: "run not deleted: delete it first", UNKNOWN: "run not found"}}
    assert not _dir(corpus, root, E12).exists() and _dir(corpus, root, E1).exists()
    assert (await client.get("/api/v2/experiments", params={"include_deleted": "only"})).json()["total"] == 0
    assert (await client.get(f"/api/v2/experiments/{E12}")).status_code == 404


async def test_logs_tail_then_follow_by_offset(client, corpus: Corpus, root: Path) -> None:
    logs = _dir(corpus, root, E1) / "logs.txt"
    logs.write_bytes(b"".join(f"line {i}\n".encode() for i in range(50)) + b"half a li")
    r = await client.get(f"/api/v2/experiments/{E1}/logs", params={"tail": 3})
    body = r.json()
    assert body["text"] == "line 47\nline 48\nline 49\n" and not body["reset"]
    assert body["next_offset"] == logs.stat().st_size - len(b"half a li")  # the unfinished line waits
    with logs.open("ab") as fh:
        fh.write(b"ne\nnext\n")
    body = (await client.get(f"/api/v2/experiments/{E1}/logs", params={"offset": body["next_offset"]})).json()
    assert body["text"] == "half a line\nnext\n" and body["next_offset"] == logs.stat().st_size
    again = (await client.get(f"/api/v2/experiments/{E1}/logs", params={"offset": body["next_offset"]})).json()
    assert again["text"] == "" and again["next_offset"] == body["next_offset"]
    logs.write_bytes(b"new file\n")  # replaced: shorter than the offset
    body = (await client.get(f"/api/v2/experiments/{E1}/logs", params={"offset": again["next_offset"]})).json()
    assert body["reset"] and body["text"] == "new file\n"
    logs.unlink()
    assert (await client.get(f"/api/v2/experiments/{E1}/logs")).json()["text"] == ""
    assert_error(await client.get(f"/api/v2/experiments/{E1}/logs", params={"offset": -1}), 400, "offset")
    assert_error(await client.get(f"/api/v2/experiments/{E1}/logs", params={"tail": "x"}), 400, "tail")
    assert_error(await client.get(f"/api/v2/experiments/{UNKNOWN}/logs"), 404)


async def test_detail_carries_summary_json(client, corpus: Corpus, root: Path) -> None:
    (_dir(corpus, root, E1) / "summary.json").write_text('{"epochs": 10, "best_metric_value": 0.9}')
    detail = (await client.get(f"/api/v2/experiments/{E1}")).json()
    assert detail["summary"] == {"epochs": 10, "best_metric_value": 0.9}
