"""The routes Runicorn 0.7.2's web UI calls answer as the real viewer answers them.

Every call of ``runicorn_ui_calls.CALLS`` is played, in order, against our app on the same data
the real viewer saw, and compared with the viewer's answer recorded in
tests/fixtures/runicorn_ui_bodies.json (``scripts/record_runicorn_ui_bodies.py``). Answers that
hold clocks, machine readings or paths of the recording machine are compared in shape (the same
keys) plus the values that must agree; everything else is compared exactly. Where we
deliberately differ from Runicorn (a live run is never deleted for good; no GPU collector), the
test below says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import close_app, open_app
from runicorn_ui_calls import BODIES, CALLS, S1, S2, build_root, resolve, rooted
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from runicorn_lite import rundir

RECORDED = json.loads(BODIES.read_text())
MEDIA_NAME = re.compile(r"\d{13}_[0-9a-f]{6}_")  # the SDK's media file names hold a clock and random hex


def media(value: Any) -> Any:
    """``value`` with the SDK's generated media names made comparable."""
    if isinstance(value, str):
        return MEDIA_NAME.sub("<MEDIA>_", value)
    if isinstance(value, list):
        return [media(v) for v in value]
    if isinstance(value, dict):
        return {media(k): media(v) for k, v in value.items()}
    return value


def shape(value: Any) -> Any:
    """The keys of ``value``, recursively (lists by their first item; leaves by JSON kind)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    return "number" if isinstance(value, int | float) else type(value).__name__


@pytest.fixture(scope="module")
def ui_app(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Starlette]:
    app = open_app(build_root(tmp_path_factory.mktemp("ui") / "root").resolve())
    yield app
    close_app(app)


def play(client: TestClient, call: dict[str, Any], root: str) -> dict[str, Any]:
    """Our answer to ``call``, recorded as the script records the real viewer's."""
    path = resolve(call["path"], root,
                   lambda run_id: client.get(f"/api/runs/{run_id}/images").json()["images"][0]["path"])
    if call["kind"] == "ws":
        messages: list[str] = []
        with client.websocket_connect(path) as ws:
            try:
                while True:
                    messages.append(ws.receive_text())
            except WebSocketDisconnect as exc:
                return {"messages": messages, "close_code": exc.code}
    response = client.request(call["method"], path, json=call["body"])
    out: dict[str, Any] = {"status": response.status_code}
    kind = call["kind"] if response.is_success else "json"
    if kind == "json":
        out["body"] = rooted(response.json(), root)
    else:
        out["content_type"] = response.headers.get("content-type")
        out["content_disposition"] = response.headers.get("content-disposition")
        if kind == "bytes":
            out["sha256"] = hashlib.sha256(response.content).hexdigest()
            out["size"] = len(response.content)
        else:
            with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
                out["names"] = sorted(zf.namelist())
    return out


def differences(compare: str, theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """What does not agree between the real viewer's answer and ours, under ``compare``."""
    theirs, ours = media(theirs), media(ours)
    if theirs.get("status") != ours.get("status"):
        return [f"status {ours.get('status')} != {theirs.get('status')}: {ours}"]
    if "body" not in theirs:  # files, zips, WebSocket frames
        for answer in (theirs, ours):  # the media type (we add the charset of JSON)
            if answer.get("content_type"):
                answer["content_type"] = answer["content_type"].split(";")[0]
        if "content_disposition" in theirs:  # the export's name holds the time of the export
            theirs["content_disposition"] = re.sub(r"\d", "#", theirs["content_disposition"] or "")
            ours["content_disposition"] = re.sub(r"\d", "#", ours["content_disposition"] or "")
        return [] if theirs == ours else [f"{ours} != {theirs}"]
    if compare not in COMPARISONS:
        raise AssertionError(f"unknown comparison {compare!r}")
    return COMPARISONS[compare](theirs["body"], ours["body"])


def _equal(a: Any, b: Any) -> list[str]:
    return [] if a == b else [f"{b} != {a}"]


def _same_keys(a: Any, b: Any) -> list[str]:
    return [] if shape(a) == shape(b) else [f"keys {shape(b)} != {shape(a)}"]


def _asset_refs(a: Any, b: Any) -> list[str]:
    """Ids are random uuids in Runicorn's database."""
    for body in (a, b):
        for asset in body.get("orphaned_assets", []) + body.get("shared_assets", []):
            asset.pop("asset_id")
    return _equal(a, b)


def _health(a: Any, b: Any) -> list[str]:
    """Every field of Runicorn's health is there (ours has more)."""
    problems = []
    if not set(a) <= set(b) or b["storage"] != a["storage"] or shape(b["cache"]) != shape(a["cache"]):
        problems.append(f"health {b} lacks what {a} has")
    fields = ("mode", "label", "available")
    if {k: b["storage_backend"][k] for k in fields} != {k: a["storage_backend"][k] for k in fields}:
        problems.append(f"storage_backend {b['storage_backend']} != {a['storage_backend']}")
    return problems


def _config(a: Any, b: Any) -> list[str]:
    """Runicorn names its config file and the recording HOME."""
    same = set(a) == set(b) and (a["storage"], a["user_root_dir"]) == (b["storage"], b["user_root_dir"])
    return [] if same else [f"{b} != {a}"]


def _gpu_history(a: Any, b: Any) -> list[str]:
    """No collector here: not enabled; otherwise the same."""
    same = (a["available"], a["samples"], set(a)) == (b["available"], b["samples"], set(b))
    return [] if same else [f"{b} != {a}"]


def _recycle_bin(a: Any, b: Any) -> list[str]:
    """Runicorn moves the run to runs/.recycle; we mark it in place: the same runs."""
    same = [r["id"] for r in a["deleted_runs"]] == [r["id"] for r in b["deleted_runs"]]
    return [] if same else [f"{b} != {a}"]


def _storage_stats(a: Any, b: Any) -> list[str]:
    """Sizes differ (runicorn.db, our index); counts agree."""
    problems = []
    if shape(a) != shape(b) or (a["storage_root"], a["archive"]) != (b["storage_root"], b["archive"]):
        problems.append(f"{b} != {a}")
    if (a["runs"]["runs_count"], a["runs"]["paths_count"]) != (b["runs"]["runs_count"], b["runs"]["paths_count"]):
        problems.append(f"runs {b['runs']} != {a['runs']}")
    return problems


def _diagnostics_sources(a: Any, b: Any) -> list[str]:
    """Its log files vs our log in memory."""
    ids = [s["id"] for s in b["sources"]]
    same = (set(a) == set(b) and b["defaultSource"] in ids and a["remoteMode"] == b["remoteMode"]
            and all(set(s) == set(a["sources"][0]) for s in b["sources"]))
    return [] if same else [f"{b} != {a}"]


# How each call's JSON bodies are compared (the recording names one per call).
COMPARISONS: dict[str, Callable[[Any, Any], list[str]]] = {
    "exact": _equal,
    "keys": _same_keys,
    "asset refs": _asset_refs,
    "health": _health,
    "config": _config,
    "gpu history": _gpu_history,
    "recycle bin": _recycle_bin,
    "system monitor": _same_keys,  # readings of two moments: the same fields
    "storage stats": _storage_stats,
    "diagnostics sources": _diagnostics_sources,
}


def test_recorded_from_the_real_viewer() -> None:
    assert RECORDED["runicorn"] == "0.7.2"
    assert [c["name"] for c in RECORDED["calls"]] == [c["name"] for c in CALLS]


def test_every_call_answers_as_the_real_viewer(ui_app: Starlette) -> None:
    root = str(ui_app.state.ctx.root)
    mismatches = []
    with TestClient(ui_app) as client:
        for call, recorded in zip(CALLS, RECORDED["calls"], strict=True):
            ours = play(client, call, root)
            compare = "asset refs" if call["path"].endswith("/assets/refs") else call["compare"]
            theirs = {k: v for k, v in recorded.items() if k != "name"}
            mismatches += [f"{call['name']}: {p}" for p in differences(compare, theirs, ours)]
    assert not mismatches, "\n".join(mismatches)
    # what the calls did to the files: the folder is there, the run removed for good is gone
    assert (Path(root) / "runs" / "new" / "empty folder").is_dir()
    assert not any(loc.run_id == S2 for loc in rundir.iter_runs(Path(root)))
    assert any(loc.run_id == S1 for loc in rundir.iter_runs(Path(root)))
