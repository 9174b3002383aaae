"""Which settings won, deeper, in Chromium: the scatter picks the nearest point in both axes and
keeps its extremes inside the plot; compare marks the aggregate of the metric's direction and
aligns numbers under their headers (the recycle bin too); group rows, bands, parallel
coordinates whose brush narrows the URL's filter, importance bars (analysis.md §5).

A server of its own over a sweep of 48 runs in which many runs share an lr."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from support import ServerProcess

from runicorn_lite import sdk

from .helpers import Page, expect, reachable_points

LRS = [0.1, 0.03, 0.01, 0.001]
OPTIMS = ["sgd", "adam", "adamw"]


def write_sweep(root: Path) -> list[str]:
    ids = []
    for i in range(48):
        lr, optim, batch = LRS[i % 4], OPTIMS[(i // 4) % 3], [32, 64][(i // 12) % 2]
        # within an lr, each run 0.012 apart: several pixels, so that every point can be hovered
        top = {0.1: 0.45, 0.03: 0.7, 0.01: 0.6, 0.001: 0.5}[lr] + 0.012 * (i // 4)
        run = sdk.init(project="sweep", name=f"grid-{optim}", root=root,
                       config={"lr": lr, "optim": {"name": optim}, "batch_size": batch})
        for step in range(1, 6):
            run.log({"loss": round(1.5 - top * step / 5, 4), "accuracy": round(top * step / 5, 4)}, step=step)
        run.finish()
        ids.append(run.id)
    return ids


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("sweep") / "data"
    root.mkdir()
    ids = write_sweep(root)
    server = ServerProcess(root)
    try:
        server.wait_ready()
        yield {"url": server.url, "ids": ids, "root": root}
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any, sweep: dict[str, Any]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    p = Page(context.new_page(), sweep["url"])
    yield p
    errors = list(p.errors)
    context.close()
    assert not errors, "console errors or uncaught exceptions in the page:\n" + "\n".join(errors)


def api(sweep: dict[str, Any], path: str, **params: Any) -> Any:
    response = httpx.get(sweep["url"] + "/api/v2" + path, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_scatter_reaches_every_run_and_keeps_the_extremes_inside(page: Page, sweep: dict[str, Any]) -> None:
    page.goto("/?project=sweep&sx=lr&sy=accuracy.max")
    panel = page.get_by_role("region", name="Params versus metric")
    expect(panel).to_contain_text("48 runs with both values")
    over = panel.locator(".u-over")
    seen = reachable_points(page, over)
    # every run of the sweep is reachable, though 12 runs share each lr
    assert {label.rsplit(" · ", 1)[1] for label in seen} == set(sweep["ids"])
    for x, y, width, height in seen.values():  # drawn whole: at least a point's radius from the edges
        assert 4 <= x <= width - 4 and 4 <= y <= height - 4, (x, y, width, height)
    # a click opens the run under the cursor (the one the tooltip names)
    label = sorted(seen)[7]
    x, y, _w, _h = seen[label]
    box = over.bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    expect(panel.locator(".tip strong")).to_have_text(label)
    page.mouse.click(box["x"] + x, box["y"] + y)
    expect(page).to_have_url(re.compile(re.escape(f"/runs/{label.rsplit(' · ', 1)[1]}") + "$"))


def test_compare_marks_the_aggregate_of_the_direction_and_aligns_numbers(page: Page, sweep: dict[str, Any]) -> None:
    ids = sweep["ids"][:3]
    page.goto(f"/compare?ids={','.join(ids)}")
    table = page.locator("#metrics table")
    expect(table.locator("td.best")).to_have_count(2)
    # accuracy: only its max row; loss: only its min row
    for metric, agg, best in (("accuracy", "max", max), ("loss", "min", min)):
        rows = table.locator("tbody tr").filter(has=page.locator("th", has_text=re.compile(f"^{metric}{agg}$|^{agg}$")))
        values = {i: api(sweep, f"/experiments/{i}")["metrics"][metric][agg] for i in ids}
        marked = table.locator("td.best").filter(has_text=re.compile(".+"))
        assert rows.count() >= 1
        want = best(values.values())
        assert any(abs(float(t.replace(",", "")) - want) < 1e-3 for t in marked.all_text_contents()), (metric, agg)
    # numbers and their headers line up on the right
    aligns = page.evaluate("""(t) => [...t.querySelectorAll('thead th')].slice(1)
        .concat([...t.querySelectorAll('tbody td')].slice(0, 3)).map((e) => getComputedStyle(e).textAlign)""",
                           table.element_handle())
    assert set(aligns) == {"right"}, aligns


def test_the_recycle_bin_aligns_its_time_columns(page: Page, sweep: dict[str, Any]) -> None:
    victim = sweep["ids"][-1]
    r = httpx.post(sweep["url"] + "/api/v2/experiments/batch-delete", json={"exp_ids": [victim]}, timeout=10)
    assert r.status_code == 200, r.text
    try:
        page.goto("/bin")
        table = page.locator("table.grid")
        expect(table.locator("tbody tr")).to_have_count(1)
        for name in ("Deleted", "Created"):
            col = [t.strip() for t in table.locator("thead th").all_text_contents()].index(name)
            header = table.locator("thead th").nth(col)
            cell = table.locator("tbody tr").first.locator("td").nth(col)
            assert header.evaluate("(e) => getComputedStyle(e).textAlign") == "right"
            assert cell.evaluate("(e) => getComputedStyle(e).textAlign") == "right"
    finally:
        httpx.post(sweep["url"] + "/api/v2/experiments/batch-restore", json={"exp_ids": [victim]}, timeout=10)


def test_group_rows_show_counts_and_mean_std_and_expand_to_their_runs(page: Page, sweep: dict[str, Any]) -> None:
    page.goto("/?project=sweep&cols=name,metrics.accuracy.max&group=params.optim.name")
    want = api(sweep, "/groups", project="sweep", group_by="params.optim.name", metrics="accuracy.max",
               include="ids")
    rows = page.locator("table.groups-table tr.group-row")
    expect(rows).to_have_count(len(want["groups"]))
    expect(page.locator("table.runs-table")).to_be_hidden()
    for i, g in enumerate(want["groups"]):
        s = g["metrics"]["accuracy.max"]
        cells = rows.nth(i).locator("td")
        expect(cells.nth(1)).to_have_text(g["key"]["params.optim.name"])
        expect(cells.nth(2)).to_have_text(str(g["count"]))
        expect(cells.nth(3)).to_have_text(re.compile(r"^0\.\d+ ± 0\.\d+$"))
        mean, std = (float(v) for v in cells.nth(3).inner_text().split(" ± "))
        assert abs(mean - s["mean"]) < 1e-4 and abs(std - s["std"]) < 1e-4 * max(1, s["std"] * 10)
    # expanding a group lists its runs (the filter narrowed by the group's key)
    rows.first.get_by_role("button").click()
    members = page.locator("tr.group-members td.group-runs table tr")
    expect(members).to_have_count(want["groups"][0]["count"])
    got = set(members.locator("td.id").all_text_contents())
    assert got == set(want["groups"][0]["ids"])
    # the grouping is in the URL: a second field through the select, and back
    page.get_by_role("combobox", name="Group by").select_option("params.batch_size")
    expect(page).to_have_url(re.compile(r"group=params\.optim\.name%2Cparams\.batch_size|group=params\.optim\.name,params\.batch_size"))
    expect(rows).to_have_count(6)
    page.go_back()
    expect(rows).to_have_count(3)


def test_compare_by_group_draws_each_groups_mean_with_a_band(page: Page, sweep: dict[str, Any]) -> None:
    ids = sweep["ids"][:12]
    page.goto(f"/compare?ids={','.join(ids)}")
    page.get_by_role("combobox", name="Group runs by").select_option("params.optim.name")
    expect(page).to_have_url(re.compile(r"group=params\.optim\.name"))
    body = api(sweep, "/compare", ids=",".join(ids), group_by="params.optim.name", metric_names="accuracy")
    chart = page.locator("figure.chart", has=page.locator(".chart-title", has_text=re.compile("^accuracy$")))
    legend = chart.locator(".legend button.lg")
    expect(legend).to_have_count(len(body["groups"]))
    for i, g in enumerate(body["groups"]):
        expect(legend.nth(i)).to_contain_text(f"optim.name = {g['key']['params.optim.name']} ({len(g['ids'])} runs)")
        # the legend reads the group's mean at the last step
        last = body["group_series"]["accuracy"][str(i)]["mean"][-1]
        expect(legend.nth(i).locator(".lg-val")).to_have_text(re.compile(re.escape(f"{last:.4g}")[:5]))
    # the band: the mean's series and its two edges per group, filled between
    canvas = chart.locator("canvas")
    expect(canvas).to_have_count(1)
    page.reload()
    expect(chart.locator(".legend button.lg")).to_have_count(len(body["groups"]))


def test_parallel_coordinates_brush_narrows_the_filter_in_the_url(page: Page, sweep: dict[str, Any]) -> None:
    page.goto("/?project=sweep&pc=lr,optim.name,batch_size&pcm=accuracy.max")
    panel = page.get_by_role("region", name="Parallel coordinates")
    lines = panel.locator("polyline")
    expect(lines).to_have_count(48)
    expect(panel.locator(".pc-axis")).to_have_count(4)
    # brush the upper part of the metric axis: the best runs
    hit = panel.locator(".pc-axis[data-field='metrics.accuracy.max'] .pc-hit")
    box = hit.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.3, steps=4)
    page.mouse.up()
    expect(page).to_have_url(re.compile(r"filter=metrics\.accuracy\.max"))
    text = parse_qs(urlparse(page.url).query)["filter"][0]
    assert re.fullmatch(r"metrics\.accuracy\.max >= [\d.]+ and metrics\.accuracy\.max <= [\d.]+", text), text
    want = api(sweep, "/experiments", project="sweep", filter=text, per_page=100)
    assert 0 < want["total"] < 48
    expect(lines).to_have_count(want["total"])
    expect(page.locator("table.runs-table tbody tr")).to_have_count(want["total"])
    # a second brush, on a categorical axis, narrows further (and-ed, in the same box)
    hit = panel.locator(".pc-axis[data-field='params.optim.name'] .pc-hit")
    box = hit.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.6)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] + 2, steps=4)
    page.mouse.up()
    expect(page).to_have_url(re.compile(r"optim\.name%60\+in|optim\.name`%20in|optim\.name%60%20in"))
    narrowed = parse_qs(urlparse(page.url).query)["filter"][0]
    assert narrowed.startswith(text + " and params.`optim.name` in (")
    total = api(sweep, "/experiments", project="sweep", filter=narrowed)["total"]
    expect(lines).to_have_count(total)
    expect(page.get_by_role("textbox", name="Filter expression")).to_have_value(narrowed)


def test_importance_bars_with_the_sign_of_the_correlation(page: Page, sweep: dict[str, Any]) -> None:
    page.goto("/?project=sweep")
    page.get_by_role("button", name="Importance").click()
    expect(page).to_have_url(re.compile(r"imp="))
    panel = page.get_by_role("region", name="Parameter importance")
    panel.get_by_role("combobox", name="Importance metric").select_option("accuracy.max")
    want = api(sweep, "/importance", project="sweep", metric="accuracy.max")
    bars = panel.locator("li.imp-row")
    expect(bars).to_have_count(len(want["params"]))
    for i, p in enumerate(want["params"]):
        expect(bars.nth(i).locator(".imp-key")).to_have_text(p["key"])
        expect(bars.nth(i).locator(".imp-val")).to_have_text(f"{100 * p['importance']:.1f}%")
        sign = "·" if p["correlation"] is None else "+" if p["correlation"] >= 0 else "\u2212"
        expect(bars.nth(i).locator(".corr")).to_have_text(sign)
    assert want["params"][0]["key"] == "lr"
    widths = bars.locator(".imp-bar").evaluate_all("(els) => els.map((e) => e.getBoundingClientRect().width)")
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
