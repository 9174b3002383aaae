"""Compare: pick three runs in the list, see their curves overlaid with a legend that reads the
values under the cursor, zoom, the params table with differences marked and the toggle that
keeps only those, the metric summary; remove and add runs."""

from __future__ import annotations

import re

import httpx

from .helpers import expect


def test_select_three_runs_and_compare_them(page, site) -> None:
    page.goto("/?project=vision&q=resnet50")
    rows = page.locator("table.runs-table tbody tr")
    expect(rows).to_have_count(3)
    ids = page.locator("table.runs-table tbody .id").all_inner_texts()
    for i in range(3):
        rows.nth(i).get_by_role("checkbox").check()
    expect(page.get_by_text("3 selected")).to_be_visible()
    page.get_by_role("button", name="Compare 3").click()
    expect(page).to_have_url(re.compile(re.escape("/compare?ids=" + ",".join(ids)) + "$"))
    expect(page.get_by_role("heading", name="Compare 3 runs")).to_be_visible()

    charts = page.locator("figure.chart")
    expect(charts).to_have_count(2)
    accuracy = charts.filter(has=page.locator(".chart-title", has_text="accuracy"))
    expect(accuracy.locator(".lg")).to_have_count(3)
    # the legend reads each run's value under the cursor
    box = accuracy.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    expect(accuracy.locator(".lg-at")).to_have_text(re.compile(r"^step \d+$"))
    step = int(accuracy.locator(".lg-at").inner_text().split()[1])
    values = [float(v) for v in accuracy.locator(".lg-val").all_inner_texts()]
    params = {"ids": ",".join(ids), "metric_names": "accuracy"}
    body = httpx.get(site.url + "/api/v2/compare", params=params, timeout=10).json()
    for run_id, shown in zip(ids, values, strict=True):
        series = body["series"]["accuracy"][run_id]
        want = series["values"][series["steps"].index(step)]
        assert abs(shown - want) <= abs(want) * 1e-4, (run_id, step, shown, want)
    # clicking a legend entry hides that curve
    first = accuracy.locator(".lg").first
    first.click()
    expect(first).to_have_attribute("aria-pressed", "false")

    # zoom by drag: the range is in the URL and fetched for every run
    with page.expect_response(re.compile(r"/api/v2/compare\?.*step_range=")) as fetched:
        page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2, steps=4)
        page.mouse.up()
    assert fetched.value.ok
    expect(page).to_have_url(re.compile(r"zoom="))

    # params: lr differs, optim.momentum does not; "only differences" keeps lr
    params = page.locator("#params")
    expect(params).to_contain_text("differ")
    expect(params.locator("tr.differs", has_text="lr")).to_have_count(1)
    expect(params.locator("tr", has_text="optim.momentum")).not_to_have_class(re.compile("differs"))
    params.get_by_role("checkbox", name="only differences").check()
    expect(params.locator("tr", has_text="optim.momentum")).to_have_count(0)
    expect(params.locator("tr", has_text="lr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"diff=1"))

    summary = page.locator("#metrics")
    expect(summary.locator("tbody tr")).to_have_count(6)  # accuracy and loss × last/min/max
    expect(summary.locator("td.best").first).to_be_visible()

    # remove one run; reload keeps the rest
    page.get_by_role("button", name=re.compile(r"^Remove .* from the comparison$")).first.click()
    expect(page.get_by_role("heading", name="Compare 2 runs")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Compare 2 runs")).to_be_visible()
    expect(page.locator("#params").get_by_role("checkbox", name="only differences")).to_be_checked()


def test_add_a_run_by_search_from_the_empty_compare_page(page, site) -> None:
    page.goto("/compare")
    expect(page.get_by_role("heading", name="Pick runs to compare")).to_be_visible()
    page.get_by_role("searchbox", name="Add a run").fill("vit-base")
    options = page.get_by_role("listbox").get_by_role("option")
    expect(options).to_have_count(2)
    options.first.click()
    expect(page.get_by_role("heading", name="Compare 1 run")).to_be_visible()
    page.get_by_role("searchbox", name="Add a run").fill("vit-base")
    expect(options).to_have_count(1)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Compare 2 runs")).to_be_visible()
    expect(page.locator("figure.chart .lg")).to_have_count(4)


def test_compare_with_an_unknown_run_says_which(page) -> None:
    page.expect_console(r"status of 404")
    page.goto("/compare?ids=20990101_000000_abcdef")
    expect(page.get_by_role("heading", name="A run is missing")).to_be_visible()
    expect(page.get_by_text("Experiment 20990101_000000_abcdef not found")).to_be_visible()
