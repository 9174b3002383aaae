"""Which settings won: params and metric summaries in the list, the filter= expression box (its
error shown at its position), sorting on a param, the params-vs-metric scatter, and a run's
params, environment and images."""

from __future__ import annotations

import re

import httpx

from .helpers import expect, reachable_points


def ids_in_order(site, **params) -> list[str]:
    body = httpx.get(site.url + "/api/v2/experiments", params=params, timeout=10).json()
    return [e["id"] for e in body["experiments"]]


def test_filter_expression_and_its_syntax_error(page, site) -> None:
    page.expect_console(r"status of 400")
    page.goto("/")
    box = page.get_by_role("textbox", name="Filter expression")
    box.fill("params.lr < x")
    box.press("Enter")
    error = page.locator(".filter-err")
    expect(error).to_contain_text("Filter error:")
    expect(error).to_contain_text("Malformed number 'x'")
    # the caret stands under the offending character
    expect(error.locator("pre.caret")).to_have_text("params.lr < x\n            ^")
    expect(box).to_have_attribute("aria-invalid", "true")

    box.fill("params.lr <= 0.01 and metrics.accuracy.max > 0.5")
    box.press("Enter")
    expect(error).to_be_hidden()
    want = ids_in_order(site, filter="params.lr <= 0.01 and metrics.accuracy.max > 0.5")
    assert len(want) >= 2
    expect(page.locator("table.runs-table tbody .id")).to_have_text(want)
    expect(page).to_have_url(re.compile(r"filter=params\.lr"))
    # the same filter survives a reload, in the box and in the rows
    page.reload()
    expect(box).to_have_value("params.lr <= 0.01 and metrics.accuracy.max > 0.5")
    expect(page.locator("table.runs-table tbody .id")).to_have_text(want)


def test_sort_by_a_param_column(page, site) -> None:
    page.goto("/?project=vision")
    header = page.get_by_role("columnheader", name="param lr", exact=True)
    expect(header).to_be_visible()
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(page).to_have_url(re.compile(r"sort=params\.lr"))
    want = ids_in_order(site, project="vision", order_by="params.lr", order_desc="true")
    expect(page.locator("table.runs-table tbody .id")).to_have_text(want)
    cells = page.locator("table.runs-table tbody tr").first.locator("td")
    expect(cells.filter(has_text=re.compile(r"^0\.1$"))).to_have_count(1)


def test_params_vs_metric_scatter_opens_a_run(page, site) -> None:
    page.goto("/?project=vision")
    page.get_by_role("button", name="Plot params vs metric").click()
    panel = page.get_by_role("region", name="Params versus metric")
    expect(panel.get_by_role("heading", name="Which settings won?")).to_be_visible()
    expect(page).to_have_url(re.compile(r"sx=.+&sy=.+|sy=.+&sx=.+"))
    panel.get_by_role("combobox", name="Param on the x axis").select_option("lr")
    panel.get_by_role("combobox", name="Metric on the y axis").select_option("accuracy.max")
    expect(panel).to_contain_text("5 runs with both values · log x")
    expect(panel.locator("canvas")).to_have_count(1)
    # hovering a point names its run; clicking opens it
    over = panel.locator(".u-over")
    box = over.bounding_box()
    points = reachable_points(page, over)
    assert len(points) == 5
    x, y, _w, _h = next(iter(points.values()))
    page.mouse.move(box["x"] + x, box["y"] + y)
    expect(panel.locator(".tip")).to_contain_text("vision /")
    page.mouse.down()
    page.mouse.up()
    expect(page).to_have_url(re.compile(r"/runs/\d{8}_\d{6}_[0-9a-f]{6}$"))


def test_run_page_shows_params_environment_and_images(page, site) -> None:
    first = site.sdk_ids[0]
    page.goto(f"/runs/{first}")
    params = page.locator("#params")
    expect(params.locator("tr", has_text="optim.momentum")).to_contain_text("0.9")
    expect(params.locator("tr", has_text="batch_size")).to_contain_text("64")
    params.get_by_text("Raw config (assets.json)").click()
    expect(params.locator("pre")).to_contain_text('"args"')
    env = page.locator("#environment")
    expect(env.get_by_role("row", name=re.compile(r"^python 3\.\d+"))).to_be_visible()
    expect(env.get_by_text(re.compile(r"\d+ pip packages"))).to_be_visible()
    summary = page.locator("#summary")
    expect(summary.locator("tr", has_text="accuracy")).to_contain_text("400")

    gallery = page.locator("#images")
    expect(gallery.get_by_role("heading")).to_have_text("Images (4)")
    card = gallery.locator("figure.image-card")
    expect(card.locator("figcaption")).to_contain_text("step 400")
    image = card.locator("img")
    expect(image).to_have_attribute("alt", "samples at step 400")
    assert page.evaluate("(img) => img.complete && img.naturalWidth", image.element_handle()) == 32
    slider = card.get_by_role("slider", name="Step of samples")
    slider.focus()
    page.keyboard.press("Home")
    expect(card.locator("figcaption")).to_contain_text("step 100 · epoch 1")
    expect(image).to_have_attribute("alt", "samples at step 100")
