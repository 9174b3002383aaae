"""From a walk through the web app as a new user would, on demo runs (the ones `runicorn-lite
demo` writes, about twenty params each): the runs table fits 1280 px and tells a metric column
from a param column; the optimization view fits a 390 px phone and the tab bar shows that it
scrolls; a wrong key is answered in plain words."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ServerProcess, wait_for

from runicorn_lite import sdk
from runicorn_lite.client import OptimizationClient
from runicorn_lite.demo import write_demo_runs

from .helpers import create_key, expect


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root: Path = tmp_path_factory.mktemp("walk") / "data"
    write_demo_runs(root, runs=16, steps=20, rng=random.Random(11))
    server = ServerProcess(root)
    try:
        server.wait_ready()
        key = create_key(root, "vision-tuning")
        with OptimizationClient(key, base_url=server.url) as client:
            for name, kind in (("resnet50 lr/wd search", "bayesian"), ("vit grid", "grid_search")):
                run = client.runs.create(run_name=name, optimizer_type=kind, config={"epochs": 30})
                client.iterations.create_many(run["id"], [
                    {"iteration_number": i, "params": {"lr": 10 ** -i}, "score": 0.5 + i / 10, "duration_ms": 40_000}
                    for i in range(1, 5)
                ])
                client.runs.update(run["id"], status="completed")
        yield {"url": server.url, "key": key, "root": root}
    finally:
        server.stop()


def _page(browser: Any, demo: dict[str, Any], width: int) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and "401" not in m.text and errors.append(m.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    return page


def test_default_runs_columns_fit_1280_and_metrics_differ_from_params(browser, demo) -> None:
    page = _page(browser, demo, 1280)
    page.goto(demo["url"] + "/")
    expect(page.locator("table.runs-table tbody tr")).to_have_count(16)
    page.wait_for_timeout(300)
    table, wrap = page.evaluate(
        "[document.querySelector('table.runs-table').scrollWidth, document.querySelector('.table-wrap').clientWidth]")
    assert table <= wrap, f"the runs table is {table}px wide in a {wrap}px frame"
    expect(page.get_by_role("columnheader", name="Created")).to_be_in_viewport()
    metric = page.locator("th.c-metric").first
    param = page.locator("th.c-param").first
    expect(param).to_contain_text("param")
    background = "(el) => getComputedStyle(el).backgroundColor"
    colours = {metric.evaluate(background), param.evaluate(background),
               page.locator("th.c-created, th.c-status").first.evaluate(background)}
    assert len(colours) == 3, colours  # metric, param and other columns: three looks
    assert not page.errors
    page.context.close()


def test_optimization_fits_a_phone_and_the_tab_bar_shows_it_scrolls(browser, demo) -> None:
    page = _page(browser, demo, 390)
    page.goto(demo["url"] + "/runs")
    nav = page.get_by_role("navigation", name="Views")
    expect(nav).to_have_attribute("data-more", "right")  # tabs lie past the right edge
    assert nav.evaluate("(el) => getComputedStyle(el).maskImage") != "none"
    nav.evaluate("(el) => el.scrollTo({ left: el.scrollWidth })")
    expect(nav).to_have_attribute("data-more", "left")
    page.goto(demo["url"] + "/optimization")
    page.get_by_label("API key").fill(demo["key"])
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("table.opt-runs tbody tr")).to_have_count(2)
    page.wait_for_timeout(300)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the optimization view is {overflow}px wider than the phone"
    # The current tab is scrolled into view.
    assert page.get_by_role("link", name="Optimization", exact=True).evaluate(
        "(a) => { const r = a.getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth; }")
    assert not page.errors
    page.context.close()


@pytest.mark.parametrize(("typed", "says"), [
    ("not-a-key", "That is not an API key: keys start with sk_live_"),
    ("sk_live_0000000000000000000000000000", "This key is not valid here"),
])
def test_a_wrong_key_gets_a_plain_message(browser, demo, typed: str, says: str) -> None:
    page = _page(browser, demo, 1280)
    page.goto(demo["url"] + "/optimization")
    page.get_by_label("API key").fill(typed)
    page.get_by_role("button", name="Use this key").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(says)
    text = alert.inner_text()
    assert "Authorization" not in text and "header" not in text.lower() and "Bearer" not in text
    page.context.close()


def test_a_run_with_a_thousand_metrics_charts_the_first_and_offers_the_rest(browser, demo) -> None:
    with sdk.init(project="wide", name="many-metrics", root=demo["root"]) as run:
        for step in range(1, 4):
            run.log({f"layer{i:04d}.grad_norm": i / (step + 1) for i in range(1500)}, step=step)
    wait_for(lambda: httpx.get(f"{demo['url']}/api/v2/experiments/{run.id}", timeout=10).status_code == 200)
    page = _page(browser, demo, 1280)
    page.goto(f"{demo['url']}/runs/{run.id}")
    expect(page.locator(".chart-grid[data-ready]")).to_have_count(1)
    expect(page.locator("figure.chart")).to_have_count(24)
    expect(page.get_by_text("24 of 1,000 metrics charted")).to_be_visible()  # 1,500 logged: the index keeps 1,000
    picker = page.get_by_label("Chart another metric")
    picker.fill("layer0500.grad_norm")
    picker.dispatch_event("change")
    expect(page.locator("figure.chart")).to_have_count(25)
    expect(page).to_have_url(re.compile(r"m=layer0500\.grad_norm"))
    # The runs view lists it, its column chooser too (200 metrics listed, then a note).
    page.goto(f"{demo['url']}/?project=wide")
    expect(page.locator("table.runs-table tbody tr")).to_have_count(1)
    page.get_by_text("Columns").click()
    expect(page.get_by_text("…and 800 more")).to_be_visible()
    assert not page.errors
    page.context.close()
