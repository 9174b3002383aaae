"""What the V2 API shows of the runs under a root: the app in process (httpx.ASGITransport) over
that root, its index freshly scanned by the real indexer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from runicorn_lite.app import create_app
from runicorn_lite.settings import Settings


@dataclass
class Shown:
    """One run as the V2 API answers for it."""

    experiment: dict[str, Any]
    params: dict[str, Any]
    detail: dict[str, Any]
    rows: list[dict[str, Any]]  # metrics/fast, every point
    series: dict[str, dict[str, Any]]  # /compare's columnar series of this run (steps, values, times)

    @property
    def status(self) -> str:
        return str(self.experiment["status"])

    def curve(self, metric: str) -> dict[int, float]:
        """step → value of one metric."""
        s = self.series[metric]
        return dict(zip(s["steps"], s["values"], strict=True))


async def _fetch(root: Path, ids: list[str] | None) -> tuple[list[dict[str, Any]], dict[str, Shown]]:
    app = create_app(Settings(root=root), ingest=False)
    try:
        app.state.ctx.indexer.scan()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            listing = (await c.get("/api/v2/experiments", params={"per_page": 100})).json()["experiments"]
            out = {}
            for exp_id in ids if ids is not None else [e["id"] for e in listing]:
                detail = await c.get(f"/api/v2/experiments/{exp_id}")
                assert detail.status_code == 200, detail.text
                fast = await c.get(f"/api/v2/experiments/{exp_id}/metrics/fast")
                assert fast.status_code == 200, fast.text
                compare = await c.get("/api/v2/compare", params={"ids": exp_id, "downsample": 100000})
                assert compare.status_code == 200, compare.text
                body = detail.json()
                out[exp_id] = Shown(
                    experiment=body["experiment"], params=body["params"], detail=body, rows=fast.json()["rows"],
                    series={name: runs[exp_id] for name, runs in compare.json()["series"].items() if exp_id in runs},
                )
            return listing, out
    finally:
        app.state.optimization.state.api.close()
        app.state.ctx.index.close()


def shown(root: Path, exp_id: str) -> Shown:
    """The run ``exp_id`` as the V2 API shows it."""
    return asyncio.run(_fetch(root, [exp_id]))[1][exp_id]


def shown_all(root: Path) -> dict[str, Shown]:
    """Every run under ``root`` as the V2 API shows it, by id."""
    return asyncio.run(_fetch(root, None))[1]
