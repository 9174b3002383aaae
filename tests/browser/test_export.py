"""Export as a person does it: the runs of the current filter as CSV, and a run's points."""

from __future__ import annotations

import csv
import io

import httpx

from .helpers import expect


def test_export_the_current_filter_as_csv(page, site) -> None:
    page.goto("/?project=vision&sort=params.lr&asc=1")
    expect(page.locator("table.runs-table tbody tr")).to_have_count(5)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    assert download.value.suggested_filename == "experiments.csv"
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
    want = httpx.get(site.url + "/api/v2/experiments",
                     params={"project": "vision", "order_by": "params.lr", "order_desc": "false"}, timeout=10).json()
    assert [r["id"] for r in rows] == [e["id"] for e in want["experiments"]]
    assert [float(r["params.lr"]) for r in rows] == sorted(float(r["params.lr"]) for r in rows)
    assert {"metrics.accuracy.last", "metrics.loss.min", "params.optim.name"} <= set(rows[0])


def test_download_a_runs_points_as_csv(page, site) -> None:
    run_id = site.sdk_ids[0]
    page.goto(f"/runs/{run_id}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Metrics CSV").click()
    lines = download.value.path().read_text(encoding="utf-8").splitlines()
    assert lines[0] == "global_step,accuracy,loss"
    assert len(lines) == 1 + 400
