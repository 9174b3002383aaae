"""The calls of Runicorn 0.7.2's web UI that the body comparison replays, and the data root they
run on: the real 0.7.2 fixtures (tests/fixtures/runicorn_07, runicorn_07_assets) and two runs
written by our SDK with fixed ids.

``scripts/record_runicorn_ui_bodies.py`` plays these calls, in this order, against the real
``runicorn viewer`` and writes its answers to tests/fixtures/runicorn_ui_bodies.json; the test
plays them against our server on the same data and compares. Calls change state (a soft delete,
a permanent delete, a new folder, saved widths), so the order matters and each call sees what
the calls before it did, on both servers alike.

Paths may hold ``{ROOT}`` (the data root) and ``{IMAGE0:<id>}`` (the first path the server's
``/images`` gives for that run). ``compare`` says how the test compares an answer: ``exact``
(after the root is replaced by ``<ROOT>``), ``keys`` (the same keys, recursively), or a name the
test knows for answers that hold clocks and machine readings.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import runicorn_lite
from runicorn_lite.images import encode_png

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BODIES = FIXTURES / "runicorn_ui_bodies.json"
F, G, H = "20250303_100001_07f001", "20250303_100002_07f002", "20250303_100003_07f003"
A07, C07, E07 = "20250302_090001_07a001", "20250302_090003_07a003", "20250302_090005_07a005"
S1, S2 = "20251001_120000_5d0001", "20251001_120001_5d0002"
UNKNOWN = "20991231_000000_abcdef"


def build_root(root: Path) -> Path:
    """The real 0.7.2 runs and two of our SDK's runs (one with images) in one data root."""
    for name in ("runicorn_07", "runicorn_07_assets"):
        shutil.copytree(FIXTURES / name, root, dirs_exist_ok=True)
    run = runicorn_lite.init(path="sdk/vision", root=root, run_id=S1, alias="sdk-images",
                             config={"lr": 0.01, "batch_size": 32})
    for step in range(1, 6):
        run.log({"loss": 1.0 / step, "acc": 1 - 1.0 / step}, step=step)
    run.log_image("samples", encode_png(2, 2, bytes(range(12))), step=5, caption="a sample")
    run.log_text("epoch done")
    run.finish()
    run = runicorn_lite.init(path="sdk/vision", root=root, run_id=S2)
    run.log({"loss": 2.0}, step=1)
    run.finish("failed")
    return root


def resolve(path: str, root: str, first_image: Callable[[str], str]) -> str:
    """The call's path with ``{ROOT}`` and ``{IMAGE0:<id>}`` filled in, URL-encoded as the UI
    sends them (``first_image(id)`` asks the server under test for the run's first image)."""
    while "{IMAGE0:" in path:
        start = path.index("{IMAGE0:")
        end = path.index("}", start)
        path = path[:start] + quote(first_image(path[start + 8:end]), safe="") + path[end + 1:]
    return path.replace("{ROOT}", quote(root, safe=""))


def rooted(value: Any, root: str) -> Any:
    """``value`` with the data root's path written as ``<ROOT>`` in every string."""
    if isinstance(value, str):
        return value.replace(root, "<ROOT>")
    if isinstance(value, list):
        return [rooted(v, root) for v in value]
    if isinstance(value, dict):
        return {rooted(k, root): rooted(v, root) for k, v in value.items()}
    return value


def call(name: str, method: str, path: str, body: Any = None, *, kind: str = "json",
         compare: str = "exact") -> dict[str, Any]:
    return {"name": name, "method": method, "path": path, "body": body, "kind": kind, "compare": compare}


CALLS: list[dict[str, Any]] = [
    # every page's frame
    call("health", "GET", "/api/health", compare="health"),
    call("config", "GET", "/api/config", compare="config"),
    call("gpu telemetry", "GET", "/api/gpu/telemetry"),
    call("gpu config", "GET", "/api/gpu/telemetry/config", compare="keys"),
    call("gpu history", "GET", "/api/gpu/telemetry/history", compare="gpu history"),
    # runs page: the path tree
    call("paths with stats", "GET", "/api/paths?include_stats=true"),
    call("paths", "GET", "/api/paths"),
    call("path tree", "GET", "/api/paths/tree"),
    call("column widths, none saved", "GET", "/api/config/column-widths?table=experiments&size=1300x900"),
    call("save column widths", "POST", "/api/config/column-widths",
         {"table": "experiments", "size": "1300x900", "widths": {"path": 240, "alias": 120},
          "window_width": 1300, "window_height": 900}),
    call("column widths, saved", "GET", "/api/config/column-widths?table=experiments&size=1300x900"),
    call("column widths, other size", "GET", "/api/config/column-widths?table=experiments&size=800x600"),
    call("reset column widths", "DELETE", "/api/config/column-widths?table=experiments&size=1300x900"),
    call("column widths, after reset", "GET", "/api/config/column-widths?table=experiments&size=1300x900"),
    call("save column widths again", "POST", "/api/config/column-widths",
         {"table": "experiments", "size": "1300x900", "widths": {"path": 200}}),
    call("reset column widths of a table", "POST", "/api/config/column-widths/reset?table=experiments"),
    call("column widths, table reset", "GET", "/api/config/column-widths?table=experiments&size=1300x900"),
    call("create a folder", "POST", "/api/paths/create", {"path": " /new/empty folder/ "}),
    call("create it again", "POST", "/api/paths/create", {"path": "new/empty folder"}),
    call("create with ..", "POST", "/api/paths/create", {"path": "new/../../x"}),
    call("create with nothing", "POST", "/api/paths/create", {"path": "  "}),
    call("create with bad characters", "POST", "/api/paths/create", {"path": "a|b"}),
    call("paths with the new folder", "GET", "/api/paths?include_stats=true"),
    # a run: images through the download route, assets
    call("images", "GET", f"/api/runs/{F}/images"),
    call("download an image", "GET", f"/api/runs/{F}/assets/download?path={{IMAGE0:{F}}}", kind="bytes"),
    call("download our SDK's image", "GET", f"/api/runs/{S1}/assets/download?path={{IMAGE0:{S1}}}", kind="bytes"),
    call("download with a name", "GET",
         f"/api/runs/{S1}/assets/download?path={{IMAGE0:{S1}}}&filename=../sample.png", kind="bytes"),
    call("download assets.json", "GET",
         f"/api/runs/{S1}/assets/download?path={{ROOT}}/runs/sdk/vision/{S1}/assets.json", kind="bytes"),
    call("download a folder", "GET",
         f"/api/runs/{S1}/assets/download?path={{ROOT}}/runs/sdk/vision/{S1}/media", kind="zip"),
    call("download outside the root", "GET", f"/api/runs/{F}/assets/download?path=/etc/passwd"),
    call("download with ..", "GET",
         f"/api/runs/{F}/assets/download?path={{ROOT}}/runs/../../../../etc/passwd"),
    call("download another run's file", "GET",
         f"/api/runs/{F}/assets/download?path={{ROOT}}/runs/sdk/vision/{S1}/logs.txt"),
    call("download a missing file", "GET",
         f"/api/runs/{F}/assets/download?path={{ROOT}}/runs/cv/resnet/sweep/{F}/nothing.png"),
    call("download from an unknown run", "GET", f"/api/runs/{UNKNOWN}/assets/download?path={{ROOT}}/x"),
    call("asset refs", "GET", f"/api/runs/{F}/assets/refs"),
    call("asset refs of an unknown run", "GET", f"/api/runs/{UNKNOWN}/assets/refs"),
    call("asset refs of a bad id", "GET", "/api/runs/bad%20id/assets/refs"),
    # export
    call("export two runs", "POST", "/api/runs/export", {"run_ids": [F, S1]}, kind="zip"),
    call("export nothing", "POST", "/api/runs/export", {"run_ids": []}),
    call("export an unknown run", "POST", "/api/runs/export", {"run_ids": [F, UNKNOWN]}),
    # recycle bin: delete, preview, delete for good
    call("soft delete", "POST", "/api/runs/soft-delete", {"run_ids": [S2, E07]}, compare="keys"),
    call("paths after the soft delete", "GET", "/api/paths?include_stats=true"),
    call("asset refs of a deleted run", "GET", f"/api/runs/{S2}/assets/refs"),
    call("export a deleted run", "POST", "/api/runs/export", {"run_ids": [S2]}),
    call("permanent delete, dry run", "POST", "/api/runs/permanent-delete", {"run_ids": [S2], "dry_run": True}),
    call("permanent delete, unknown run", "POST", "/api/runs/permanent-delete", {"run_ids": [UNKNOWN]}),
    call("permanent delete, bad id", "POST", "/api/runs/permanent-delete", {"run_ids": ["../x"]}),
    call("permanent delete, no ids", "POST", "/api/runs/permanent-delete", {"run_ids": []}),
    call("permanent delete, too many", "POST", "/api/runs/permanent-delete",
         {"run_ids": [f"20250101_000000_{i:06x}" for i in range(51)]}),
    call("permanent delete", "POST", "/api/runs/permanent-delete", {"run_ids": [S2]}),
    call("recycle bin after", "GET", "/api/recycle-bin", compare="recycle bin"),
    call("paths after the permanent delete", "GET", "/api/paths?include_stats=true"),
    # settings, performance, assets, remote, diagnostics
    call("dismissed alerts, none", "GET", "/api/config/dismissed-alerts"),
    call("dismiss", "POST", "/api/config/dismissed-alerts/dismiss", {"alert_id": "remote.intro"}),
    call("dismiss another", "POST", "/api/config/dismissed-alerts/dismiss", {"alert_id": "assets.help"}),
    call("dismiss it again", "POST", "/api/config/dismissed-alerts/dismiss", {"alert_id": "remote.intro"}),
    call("dismissed alerts", "GET", "/api/config/dismissed-alerts"),
    call("undismiss", "POST", "/api/config/dismissed-alerts/undismiss", {"alert_id": "remote.intro"}),
    call("dismissed alerts after undismiss", "GET", "/api/config/dismissed-alerts"),
    call("clear dismissed", "POST", "/api/config/dismissed-alerts/clear", {}),
    call("dismissed alerts after clear", "GET", "/api/config/dismissed-alerts"),
    call("system monitor", "GET", "/api/system/monitor", compare="system monitor"),
    call("storage stats", "GET", "/api/storage/stats", compare="storage stats"),
    call("remote sessions", "GET", "/api/remote/viewer/sessions"),
    call("saved connections", "GET", "/api/remote/connections/saved"),
    call("diagnostics sources", "GET", "/api/diagnostics/sources", compare="diagnostics sources"),
    call("diagnostics log of an unknown source", "GET", "/api/diagnostics/logs/ws?source=nope", kind="ws"),
]
