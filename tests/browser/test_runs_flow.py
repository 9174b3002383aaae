"""The runs list and a run, driven as a person does: filter, sort, open, zoom, back, reload."""

from __future__ import annotations

import re

import httpx

from .helpers import expect


def api_total(site, **params) -> dict:
    return httpx.get(site.url + "/api/v2/experiments", params=params, timeout=10).json()


def test_runs_view_lists_sdk_and_real_runicorn_runs(page, site) -> None:
    page.goto("/")
    total = api_total(site)["total"]
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.locator(".count")).to_have_text(f"{total} runs")
    rows = page.locator("table.runs-table tbody tr")
    expect(rows).to_have_count(total)
    # our SDK's runs, the real 0.7.2 SDK's (modern layout) and 0.5.3's (legacy layout)
    expect(page.get_by_role("link", name="vision / resnet50").first).to_be_visible()
    for run_id in ("20250302_090001_07a001", "20250301_090001_05a001"):
        expect(page.locator("tr", has_text=run_id)).to_have_count(1)
    assert page.title() == "Runs · runicorn lite"


def test_filter_sort_open_zoom_back_reload(page, site) -> None:  # noqa: PLR0915 - one user's walk
    page.goto("/")
    # filter by status: the URL says so and every row is a failed run
    page.get_by_role("button", name="failed").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    failed = api_total(site, status="failed")["total"]
    expect(page.locator("table.runs-table tbody tr")).to_have_count(failed)
    assert failed >= 1
    for text in page.locator("table.runs-table tbody td:nth-child(2) .badge").all_inner_texts():
        assert text == "failed"
    # reload keeps the filter (the URL is the state)
    page.reload()
    expect(page.get_by_role("button", name="failed")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("table.runs-table tbody tr")).to_have_count(failed)
    page.get_by_role("button", name="failed").click()
    expect(page).not_to_have_url(re.compile(r"status="))

    # search narrows to our vision runs
    page.get_by_role("searchbox", name="Search runs").fill("resnet50")
    expect(page).to_have_url(re.compile(r"q=resnet50"))
    expect(page.locator("table.runs-table tbody tr")).to_have_count(3)

    # sort by best metric, both directions, with a visible indicator
    header = page.get_by_role("columnheader", name="Best metric")
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(page).to_have_url(re.compile(r"sort=best_metric_value"))
    want = [e["id"] for e in api_total(site, search="resnet50", order_by="best_metric_value")["experiments"]]
    expect(page.locator("table.runs-table tbody .id")).to_have_text(want)
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("table.runs-table tbody .id")).to_have_text(list(reversed(want)))
    list_url = page.url

    # open the best run
    page.get_by_role("link", name="vision / resnet50").last.click()
    expect(page).to_have_url(re.compile(rf"/runs/{want[0]}$"))
    expect(page.get_by_role("heading", name="resnet50", level=1)).to_be_visible()
    charts = page.locator("figure.chart")
    expect(charts).to_have_count(2)
    expect(page.locator("figure.chart canvas")).to_have_count(2)
    expect(charts.first.locator(".chart-sub")).to_have_text("400 points")

    # zoom by dragging across the first chart: the URL holds the range, the charts refetch it
    over = charts.first.locator(".u-over")
    box = over.bounding_box()
    with page.expect_response(re.compile(r"step_range=\d+%3A\d+|step_range=\d+:\d+")) as fetched:
        page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
    assert fetched.value.ok
    expect(page).to_have_url(re.compile(r"zoom=\d+%3A\d+|zoom=\d+:\d+"))
    lo, hi = map(int, re.search(r"zoom=(\d+)(?:%3A|:)(\d+)", page.url).groups())
    assert 50 < lo < hi < 300, (lo, hi)
    expect(page.get_by_role("button", name="Reset zoom")).to_be_visible()
    # the legend reads the value under the cursor
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2)
    expect(charts.first.locator(".lg-at")).to_have_text(re.compile(r"step \d+"))
    # reload keeps the zoom; double-click resets it
    page.reload()
    expect(page.get_by_role("button", name="Reset zoom")).to_be_visible()
    page.locator("figure.chart .u-over").first.dblclick()
    expect(page).not_to_have_url(re.compile(r"zoom="))

    # back returns to the sorted, searched list (zooming replaced the run's history entry)
    page.go_back()
    expect(page).to_have_url(list_url)
    expect(page.locator("table.runs-table tbody .id")).to_have_text(list(reversed(want)))


def test_keyboard_search_and_open(page, site) -> None:
    page.goto("/")
    expect(page.locator("table.runs-table tbody tr").first).to_be_visible()
    page.locator("body").press("/")
    expect(page.get_by_role("searchbox", name="Search runs")).to_be_focused()
    page.keyboard.type("vit-base")
    expect(page.locator("table.runs-table tbody tr")).to_have_count(2)
    link = page.get_by_role("link", name="vision / vit-base").first
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/runs/\d{8}_\d{6}_[0-9a-f]{6}$"))
    expect(page.get_by_role("heading", name="vit-base", level=1)).to_be_visible()


def test_unknown_run_says_not_found(page, site) -> None:
    page.expect_console(r"status of 404")
    page.goto("/runs/20990101_000000_abcdef")
    expect(page.get_by_role("heading", name="Run not found")).to_be_visible()
    expect(page.get_by_text("No run with the id 20990101_000000_abcdef")).to_be_visible()



def test_chart_controls_smoothing_log_y_and_time_axis(page, site) -> None:
    run_id = site.sdk_ids[1]
    page.goto(f"/runs/{run_id}")
    charts = page.locator("figure.chart")
    expect(charts.locator("canvas")).to_have_count(2)
    loss = charts.filter(has=page.locator(".chart-title", has_text="loss"))
    raw_last = float(loss.locator(".lg-val").inner_text())

    slider = page.get_by_role("slider", name="Smoothing")
    slider.focus()
    page.keyboard.press("End")  # the keyboard moves it like any range input
    expect(page).to_have_url(re.compile(r"smooth=0\.99"))
    smoothed_last = float(loss.locator(".lg-val").inner_text())
    assert smoothed_last > raw_last  # a falling curve's average lags above its last point

    page.get_by_role("checkbox", name="log y").check()
    expect(page).to_have_url(re.compile(r"logy=1"))
    expect(charts.locator("canvas")).to_have_count(2)

    with page.expect_response(re.compile(r"/api/v2/compare\?")):
        page.get_by_role("combobox", name="x axis").select_option("time")
    expect(page).to_have_url(re.compile(r"x=time"))
    expect(loss.locator(".u-over")).to_be_visible()
    box = loss.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(loss.locator(".lg-at")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))

    # all of it survives a reload
    page.reload()
    expect(page.get_by_role("slider", name="Smoothing")).to_have_value("0.99")
    expect(page.get_by_role("checkbox", name="log y")).to_be_checked()
    expect(page.get_by_role("combobox", name="x axis")).to_have_value("time")
