// Compare 2–50 runs: overlaid curves per metric (legend with the values under the cursor, zoom by
// drag), the params table with differing params highlighted and an "only differences" toggle, and
// the metric summary table; grouped by a param, each group's mean with a ± std band.

import { ApiError, v2 } from "../api.js";
import { chartsReady, LineChart, pointsFor } from "../charts.js";
import { badge, colour, empty, h, replace, throttle } from "../dom.js";
import * as fmt from "../format.js";
import { on } from "../live.js";
import { setQuery } from "../router.js";
import { groupBands, groupSelect } from "./groups.js";

const MAX_RUNS = 50;
const LOWER_IS_BETTER = /loss|err|perplex|mse|mae|rmse|wer|cer|latency|time|regret/i;
const HIGHER_IS_BETTER = /acc|f1|precision|recall|auc|score|bleu|rouge|map|iou|reward|return|dice/i;

export function mount(host, { query }) {
  let state = new URLSearchParams(query);
  let data = null;
  let charts = new Map();
  let controller = null;
  let destroyed = false;

  const get = (k, d = "") => state.get(k) ?? d;
  const ids = () => [...new Set(get("ids").split(",").map((s) => s.trim()).filter(Boolean))];
  const smoothing = () => Math.min(0.99, Math.max(0, parseFloat(get("smooth", "0")) || 0));
  const xMode = () => (get("x") === "time" ? "time" : "step");
  const zoom = () => {
    const m = get("zoom").match(/^(-?[\d.e+-]+):(-?[\d.e+-]+)$/);
    return m ? [parseFloat(m[1]), parseFloat(m[2])] : null;
  };

  function set(changes, { push = false } = {}) {
    for (const [k, v] of Object.entries(changes)) { if (v == null || v === "") state.delete(k); else state.set(k, v); }
    setQuery(state, { push });
  }

  const headEl = h("div");
  const runsEl = h("div.run-chips");
  const bar = h("div.row.wrap.chart-bar");
  const grid = h("div.chart-grid");
  const paramsEl = h("div");
  const metricsEl = h("div");
  const addBox = h("input", { type: "search", placeholder: "Add a run: search by name, tag, id…", "aria-label": "Add a run", "data-search": "", autocomplete: "off" });
  const addList = h("ul.suggest", { role: "listbox", hidden: true });

  function layout() {
    replace(host, headEl,
      h("section.panel", h("div.row.wrap", runsEl, h("div.add-run", addBox, addList))),
      h("section.panel", { id: "charts" }, h("div.row.wrap.section-head", h("h2", "Curves"), bar), grid),
      h("section.panel", { id: "params" }, paramsEl),
      h("section.panel", { id: "metrics" }, h("h2", "Metric summary"), metricsEl));
  }

  async function load() {
    const list = ids();
    document.title = "Compare · runicorn lite";
    if (list.length < 1) {
      replace(host, h("div.page-head", h("h1", "Compare")),
        empty("Pick runs to compare", "Select 2 to 50 runs in the runs list and press Compare, or add them here by name.",
          h("a.button.primary", { href: "/runs" }, "Go to the runs")),
        h("div.add-run.center", addBox, addList));
      return;
    }
    if (!host.contains(grid)) layout();
    replace(headEl, h("div.page-head", h("h1", `Compare ${list.length} run${list.length === 1 ? "" : "s"}`),
      list.length > MAX_RUNS ? h("span.notice", `Only the first ${MAX_RUNS} are compared.`) : null));
    if (controller) controller.abort();
    controller = new AbortController();
    const z = zoom();
    try {
      [data] = await Promise.all([v2("/compare", {
        params: {
          ids: list.slice(0, MAX_RUNS).join(","),
          downsample: pointsFor(charts.size ? [...charts.values()][0].plotEl : grid),
          step_range: z && xMode() === "step" ? `${Math.floor(z[0])}:${Math.ceil(z[1])}` : null,
          group_by: get("group") || null,
        },
        signal: controller.signal,
      }), chartsReady()]);
    } catch (err) {
      if (err.name === "AbortError" || destroyed) return;
      if (err instanceof ApiError && err.status === 0) return;
      if (err instanceof ApiError) {
        replace(grid, empty(err.status === 404 ? "A run is missing" : "Cannot compare these runs", err.detail,
          h("a.button", { href: "/runs" }, "Back to the runs")));
        replace(runsEl, list.map((id) => chip({ id, name: id, project: "?" }, 0, list)));
        return;
      }
      throw err;
    }
    if (destroyed) return;
    renderRuns();
    renderBar();
    renderCharts();
    renderParams();
    renderMetrics();
  }

  function runColour(i) {
    return colour(i);
  }

  function chip(e, i, list) {
    return h("span.run-chip", h("i.sw", { style: { background: runColour(i) } }),
      h("a", { href: `/runs/${encodeURIComponent(e.id)}` }, e.alias || `${e.project} / ${e.name}`),
      e.status ? badge(e.status) : null,
      h("button.x", { type: "button", "aria-label": `Remove ${e.alias || e.name} from the comparison`,
        onclick: () => { set({ ids: list.filter((x) => x !== e.id).join(",") }, { push: true }); load(); } }, "×"));
  }

  function renderRuns() {
    const list = data.experiments.map((e) => e.id);
    replace(runsEl, data.experiments.map((e, i) => chip(e, i, list)));
  }

  function renderBar() {
    const smooth = h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: smoothing(), "aria-label": "Smoothing" });
    const out = h("output.mono", smoothing().toFixed(2));
    smooth.addEventListener("input", () => { out.textContent = Number(smooth.value).toFixed(2); set({ smooth: smooth.value > 0 ? smooth.value : null }); renderCharts(); });
    const logy = h("input", { type: "checkbox", checked: get("logy") === "1", onchange: (ev) => { set({ logy: ev.target.checked ? "1" : null }); renderCharts(); } });
    const xSel = h("select", { "aria-label": "x axis", onchange: (ev) => { set({ x: ev.target.value === "time" ? "time" : null, zoom: null }); load(); } },
      h("option", { value: "step", selected: xMode() === "step" }, "step"), h("option", { value: "time", selected: xMode() === "time" }, "time"));
    replace(bar, groupSelect(data, get("group"), (v) => { set({ group: v || null }, { push: true }); load(); }),
      h("label.inline", "Smoothing ", smooth, out), h("label.inline", logy, " log y"), h("label.inline", "x ", xSel),
      zoom() ? h("button", { type: "button", onclick: resetZoom }, "Reset zoom") : h("span.muted.hint", "Drag to zoom; double-click resets"));
  }

  function renderCharts() {
    const names = Object.keys(data.series).sort();
    for (const name of [...charts.keys()]) if (!names.includes(name)) { charts.get(name).destroy(); charts.delete(name); }
    if (!names.length) { replace(grid, empty("No metrics", "None of these runs has logged a metric yet.")); charts.clear(); return; }
    if (grid.querySelector(".empty")) replace(grid);
    for (const name of names) {
      let c = charts.get(name);
      if (!c) {
        c = new LineChart(grid, { title: name, syncKey: "compare", onZoom: zoomTo, onReset: resetZoom, height: 240 });
        charts.set(name, c);
      }
      const series = data.groups ? groupBands(data, name, runColour) : data.experiments.map((e, i) => {
        const s = data.series[name][e.id];
        return s ? { key: e.id, label: e.alias || `${e.name} · ${e.id.slice(-6)}`, colour: runColour(i), ...s } : null;
      }).filter(Boolean);
      c.render(series, { smoothing: smoothing(), logY: get("logy") === "1", xMode: xMode(), zoom: zoom() });
    }
    grid.dataset.ready = "1";
  }

  function zoomTo(min, max) {
    set({ zoom: `${+min.toFixed(3)}:${+max.toFixed(3)}` });
    for (const c of charts.values()) c.setZoom([min, max]);
    renderBar();
    if (xMode() === "step") load();
  }

  function resetZoom() {
    set({ zoom: null });
    for (const c of charts.values()) c.setZoom(null);
    renderBar();
    load();
  }

  function renderParams() {
    const exps = data.experiments;
    const differ = new Set(data.params_differ || []);
    const keys = [...new Set(exps.flatMap((e) => Object.keys(e.params || {})))].sort();
    const only = get("diff") === "1";
    const shown = only ? keys.filter((k) => differ.has(k)) : keys;
    const toggle = h("input", { type: "checkbox", checked: only, onchange: (ev) => { set({ diff: ev.target.checked ? "1" : null }); renderParams(); } });
    const head = h("div.row.wrap.section-head", h("h2", "Params"), h("span.muted", `${differ.size} of ${keys.length} differ`), h("span.grow"), h("label.inline", toggle, " only differences"));
    if (!keys.length) { replace(paramsEl, head, h("p.muted", "None of these runs recorded params.")); return; }
    replace(paramsEl, head, h("div.table-wrap", h("table.grid.compare-table",
      h("thead", h("tr", h("th", "param"), exps.map((e, i) => runHeader(e, i)))),
      h("tbody", shown.map((k) => h("tr", { class: differ.has(k) ? "differs" : null },
        h("th.mono", { scope: "row" }, k, differ.has(k) ? h("span.sr", " (differs)") : null),
        exps.map((e) => {
          const p = e.params || {};
          return h("td.mono", Object.prototype.hasOwnProperty.call(p, k) ? fmt.value(p[k]) : fmt.dash);
        })))))));
  }

  function runHeader(e, i, cls = null) {
    return h("th", { scope: "col", class: cls }, h("i.sw", { style: { background: runColour(i) } }), h("a", { href: `/runs/${encodeURIComponent(e.id)}` }, e.alias || e.name), h("div.id", e.id));
  }

  function renderMetrics() {
    const exps = data.experiments;
    const names = [...new Set(exps.flatMap((e) => Object.keys(e.metrics || {})))].sort();
    if (!names.length) { replace(metricsEl, h("p.muted", "No metric summaries.")); return; }
    replace(metricsEl, h("div.table-wrap", h("table.grid.compare-table",
      h("thead", h("tr", h("th", "metric"), exps.map((e, i) => runHeader(e, i, "num")))),
      h("tbody", names.flatMap((n) => ["last", "min", "max"].map((agg, j) => {
        const vals = exps.map((e) => (e.metrics || {})[n]?.[agg]);
        const finite = vals.filter((v) => typeof v === "number");
        // The best run, for metrics whose direction the name tells, on the one aggregate that
        // direction names: the lowest min of a loss, the highest max of an accuracy.
        const lower = LOWER_IS_BETTER.test(n);
        const higher = HIGHER_IS_BETTER.test(n);
        const best = lower && agg === "min" ? Math.min(...finite) : higher && agg === "max" ? Math.max(...finite) : null;
        return h("tr", { class: j === 0 ? "group-start" : null }, h("th.mono", { scope: "row" }, j === 0 ? n : "", h("span.col-kind", agg)),
          vals.map((v) => h("td.num.mono", { class: best != null && finite.length > 1 && v === best ? "best" : null, title: best != null && v === best ? "best of these runs" : null }, fmt.num(v))));
      }))))));
  }

  // ---- adding runs by search -----------------------------------------------------------------
  const suggest = throttle(async () => {
    const q = addBox.value.trim();
    if (q.length < 2) { addList.hidden = true; return; }
    try {
      const res = await v2("/experiments", { params: { search: q, per_page: 8 } });
      const have = new Set(ids());
      replace(addList, res.experiments.filter((e) => !have.has(e.id)).map((e) => h("li", h("button", { type: "button", role: "option",
        onclick: () => { addBox.value = ""; addList.hidden = true; set({ ids: [...ids(), e.id].join(",") }, { push: true }); load(); } },
      badge(e.status), ` ${e.project} / ${e.name} `, h("span.id", e.id)))));
      addList.hidden = !addList.children.length;
    } catch {
      addList.hidden = true;
    }
  }, 250);
  addBox.addEventListener("input", suggest);
  addBox.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown") { const b = addList.querySelector("button"); if (b) { ev.preventDefault(); b.focus(); } }
    if (ev.key === "Escape") addList.hidden = true;
  });
  addList.addEventListener("keydown", (ev) => {
    const items = [...addList.querySelectorAll("button")];
    const i = items.indexOf(document.activeElement);
    if (ev.key === "ArrowDown" && i < items.length - 1) { ev.preventDefault(); items[i + 1].focus(); }
    if (ev.key === "ArrowUp") { ev.preventDefault(); (i > 0 ? items[i - 1] : addBox).focus(); }
  });

  // Curves of running runs grow without reload.
  const refresh = throttle(load, 1000);
  const offs = [
    on("metrics", (d) => { if (d && ids().includes(d.id)) refresh(); }),
    on("experiment", (d) => { if (d && ids().includes(d.id)) refresh(); }),
    on("reset", () => refresh()),
  ];

  load();
  return {
    update(q) {
      const before = `${get("ids")}|${get("group")}`;
      state = new URLSearchParams(q);
      if (`${get("ids")}|${get("group")}` !== before || !data) load();
      else { renderBar(); renderCharts(); renderParams(); }
    },
    destroy() {
      destroyed = true;
      offs.forEach((off) => off());
      refresh.cancel();
      suggest.cancel();
      if (controller) controller.abort();
      for (const c of charts.values()) c.destroy();
    },
  };
}
