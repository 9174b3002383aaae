#!/usr/bin/env python3
"""Record what the real Runicorn 0.7.2 viewer answers to the calls its web UI makes, for the
body comparison in tests/api/test_api_runicorn_ui.py (which then needs no Runicorn server).

    python3 -m venv /tmp/rn072 && /tmp/rn072/bin/pip install runicorn==0.7.2
    .venv/bin/python scripts/record_runicorn_ui_bodies.py /tmp/rn072/bin/runicorn

It builds the data root of tests/api/runicorn_ui_calls.py (the real 0.7.2 fixtures and two
runs of our SDK) in a temporary folder, starts ``runicorn viewer`` on it with a throw-away HOME
(so nothing of the machine's Runicorn settings is read or written), plays every call in order
and writes tests/fixtures/runicorn_ui_bodies.json. The data root's path in the answers is
written as ``<ROOT>``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "api"))
from runicorn_ui_calls import BODIES, CALLS, build_root, resolve, rooted


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def answer(call: dict[str, Any], response: httpx.Response, root: str) -> dict[str, Any]:
    out: dict[str, Any] = {"status": response.status_code}
    kind = call["kind"] if response.is_success else "json"
    if kind == "json":
        out["body"] = rooted(response.json(), root)
    elif kind == "bytes":
        out["content_type"] = response.headers.get("content-type")
        out["content_disposition"] = response.headers.get("content-disposition")
        out["sha256"] = hashlib.sha256(response.content).hexdigest()
        out["size"] = len(response.content)
    elif kind == "zip":
        out["content_type"] = response.headers.get("content-type")
        out["content_disposition"] = response.headers.get("content-disposition")
        with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
            out["names"] = sorted(zf.namelist())
    return out


def ws_answer(url: str) -> dict[str, Any]:
    messages: list[str] = []
    with connect(url, open_timeout=5) as ws:
        try:
            while True:
                message = ws.recv(timeout=3)
                messages.append(message if isinstance(message, str) else message.decode())
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
        except TimeoutError:
            code = None
    return {"messages": messages, "close_code": code}


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runicorn = sys.argv[1]
    version = subprocess.run([runicorn.replace("/runicorn", "/python"), "-c",
                              "import importlib.metadata as m; print(m.version('runicorn'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        root = build_root(Path(tmp) / "root").resolve()
        home = Path(tmp) / "home"
        home.mkdir()
        port = free_port()
        env = {**os.environ, "HOME": str(home)}
        viewer = subprocess.Popen([runicorn, "viewer", "--storage", str(root), "--host", "127.0.0.1",
                                   "--port", str(port), "--log-level", "WARNING"], env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=30) as client:
                for _ in range(300):
                    try:
                        if client.get("/api/health").is_success:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                # Runicorn marks a run whose process is gone as failed from a background task;
                # its manual check makes that happen now, as our server does when it reads.
                client.post("/api/status/check")
                recorded = []
                for call in CALLS:
                    path = resolve(call["path"], str(root),
                                   lambda run_id: client.get(f"/api/runs/{run_id}/images").json()["images"][0]["path"])
                    if call["kind"] == "ws":
                        result = ws_answer(base.replace("http", "ws") + path)
                    else:
                        response = client.request(call["method"], path, json=call["body"])
                        result = answer(call, response, str(root))
                    recorded.append({"name": call["name"], **result})
                    print(f"{result.get('status', 'ws')} {call['name']}")
        finally:
            viewer.terminate()
            viewer.wait(10)
    document = {"runicorn": version, "recorded_with": "scripts/record_runicorn_ui_bodies.py", "calls": recorded}
    BODIES.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {BODIES}")


if __name__ == "__main__":
    main()
