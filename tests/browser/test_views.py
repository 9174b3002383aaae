"""The other views: overview, optimization runs (with an API key), the recycle bin's and an empty
root's empty states, the column chooser and the params-vs-metric plot, and a narrow window."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from support import ServerProcess

from runicorn_lite.client import OptimizationClient

from .helpers import create_key, expect


def test_overview_counts_by_status_and_project(page, site) -> None:
    summary = httpx.get(site.url + "/api/v2/analytics/summary", timeout=10).json()
    page.goto("/overview")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    runs_kpi = page.get_by_role("link", name=re.compile(r"^\S+ runs$"))
    expect(runs_kpi).to_have_text(re.compile(rf"^{summary['total_experiments']}\s*runs$"))
    failed = summary["by_status"]["failed"]
    expect(page.get_by_role("link", name=re.compile(r"failed$"))).to_have_text(re.compile(rf"^{failed}\s*failed$"))
    projects = page.locator("table.projects tbody tr")
    expect(projects).to_have_count(len(summary["projects"]))
    expect(projects.first).to_contain_text(summary["projects"][0]["project"])
    expect(page.locator(".day")).to_have_count(30)
    # a project leads to its runs
    projects.filter(has_text="vision").get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/runs\?project=vision$"))
    expect(page.get_by_role("combobox", name="Project")).to_have_value("vision")


@pytest.fixture(scope="module")
def optimization(site) -> dict:
    """A key of project "tuning" and two optimization runs made through the Python client."""
    key = create_key(site.root, "tuning")
    with OptimizationClient(key, base_url=site.url) as client:
        best = client.runs.create(run_name="lr search", optimizer_type="bayesian", config={"epochs": 3},
                                  search_space={"lr": [0.0001, 0.1]})
        client.iterations.create_many(best["id"], [
            {"iteration_number": i, "params": {"lr": lr}, "score": score, "duration_ms": 1000 + i}
            for i, (lr, score) in enumerate([(0.1, 0.61), (0.03, 0.74), (0.01, 0.83), (0.003, 0.79), (0.001, 0.7)])
        ])
        client.runs.update(best["id"], status="completed")
        other = client.runs.create(run_name="grid", optimizer_type="grid_search", config={})
    return {"key": key, "best": best["id"], "other": other["id"]}


def test_optimization_asks_for_a_key_then_lists_runs_and_stats(page, site, optimization) -> None:
    page.expect_console(r"status of 401")
    page.goto("/optimization")
    box = page.get_by_label("API key")
    expect(box).to_be_visible()
    box.fill("sk_live_not_a_real_key")
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("alert")).to_contain_text("This key is not valid here")
    box.fill(optimization["key"])
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("heading", name="Optimization runs")).to_be_visible()
    expect(page.get_by_text("project tuning")).to_be_visible()
    table = page.locator("table.opt-runs")
    expect(table.get_by_role("link", name="lr search")).to_be_visible()
    expect(table.get_by_role("link", name="grid")).to_be_visible()
    expect(page.locator(".kpi").first).to_contain_text("2")
    expect(page.locator(".stats")).to_contain_text("bayesian")

    # the key is kept for the tab's session: a reload does not ask again
    page.reload()
    expect(table.get_by_role("link", name="lr search")).to_be_visible()

    table.get_by_role("link", name="lr search").click()
    expect(page).to_have_url(re.compile(rf"/optimization/{optimization['best']}$"))
    expect(page.get_by_role("heading", name="lr search", level=1)).to_be_visible()
    chart = page.locator("figure.chart")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart.locator(".lg")).to_have_text([re.compile(r"^score"), re.compile(r"^best so far \(max\)\s*0\.83$")])
    best_params = page.locator("section", has=page.get_by_role("heading", name="Best params"))
    expect(best_params).to_contain_text("lr")
    expect(best_params).to_contain_text("0.01")
    expect(page.locator("tr.best-row")).to_contain_text("0.83")

    # filtering the list by status lives in the URL
    page.get_by_role("link", name="Optimization runs").first.click()
    page.get_by_role("combobox", name="Status").select_option("completed")
    expect(page).to_have_url(re.compile(r"status=completed"))
    expect(table.get_by_role("link", name="grid")).to_have_count(0)
    expect(table.get_by_role("link", name="lr search")).to_be_visible()

    page.get_by_role("button", name="Use another key").click()
    expect(page.get_by_label("API key")).to_be_visible()


def test_column_chooser_and_params_vs_metric_plot(page, site) -> None:
    page.goto("/?project=vision")
    expect(page.locator("table.runs-table tbody tr")).to_have_count(5)
    page.get_by_text("Columns").click()
    page.get_by_role("checkbox", name="Duration").uncheck()
    expect(page.get_by_role("columnheader", name="Duration")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"cols="))
    page.reload()
    expect(page.get_by_role("columnheader", name="Duration")).to_have_count(0)
    page.get_by_text("Columns").click()
    page.get_by_role("button", name="Reset to automatic").click()
    expect(page.get_by_role("columnheader", name="Duration")).to_have_count(1)


def test_recycle_bin_empty_state(page) -> None:
    page.goto("/bin")
    expect(page.get_by_role("heading", name="Recycle bin", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="The recycle bin is empty")).to_be_visible()


def test_empty_root_says_how_to_log_a_first_run(page, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        server.wait_ready()
        page.base = server.url
        page.goto("/")
        expect(page.get_by_role("heading", name="No runs yet")).to_be_visible()
        expect(page.locator(".empty pre")).to_contain_text("runicorn_lite.init(")
        expect(page.get_by_text("runicorn-lite demo --runs 50")).to_be_visible()
        page.get_by_role("link", name="Overview").click()
        expect(page.get_by_role("heading", name="No runs yet")).to_be_visible()
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/", "/overview", "/bin", "/compare", "/optimization"])
def test_narrow_window_has_no_page_wide_overflow(browser, site, path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 800})
    try:
        p = context.new_page()
        p.goto(site.url + path)
        expect(p.get_by_role("heading", level=1)).to_be_visible()
        # Not "networkidle": the page keeps its live event stream (/api/v2/events) open for good.
        p.wait_for_load_state("load")
        p.wait_for_timeout(1000)  # the views' own requests and rendering
        overflow = p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than the window"
    finally:
        context.close()
