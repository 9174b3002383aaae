// Run: status and times; alias, tags and description edited in place; one chart per metric
// (downsampled to its width, drag to zoom refetches that range at full resolution, smoothing,
// log-y, step or time on x) that grows while the run runs; params and config, metric summary,
// environment, an image gallery with a step slider, the log following live; delete and restore.

import { ApiError, v2 } from "../api.js";
import { chartsReady, LineChart, pointsFor } from "../charts.js";
import { badge, colour, confirmDialog, empty, h, replace, throttle, toast } from "../dom.js";
import * as fmt from "../format.js";
import { on } from "../live.js";
import { setQuery } from "../router.js";
import { followLog } from "./run_log.js";
import { charted, picker } from "./run_picker.js";
import { appendPoints } from "./run_points.js";
import { isSystemMetric, systemSection } from "./system.js";

export function mount(host, { args, query }) {
  const id = args[0];
  chartsReady();
  let state = new URLSearchParams(query);
  let detail = null;
  let charts = new Map();
  let lastSeries = null;
  let controller = null;
  let log = null;
  let destroyed = false;
  let editing = false;
  let waiting = false; // the run is not there (yet): the page waits for the event stream to show it
  const offs = [];

  const get = (k, d = "") => state.get(k) ?? d;
  const smoothing = () => Math.min(0.99, Math.max(0, parseFloat(get("smooth", "0")) || 0));
  const xMode = () => (get("x") === "time" ? "time" : "step");
  const zoom = () => {
    const m = get("zoom").match(/^(-?[\d.e+-]+):(-?[\d.e+-]+)$/);
    return m ? [parseFloat(m[1]), parseFloat(m[2])] : null;
  };

  const headEl = h("div.run-head");
  const deletedEl = h("div.notice.deleted-note", { role: "status", hidden: true });
  const chartsGrid = h("div.chart-grid");
  const chartBar = h("div.row.wrap.chart-bar");
  const paramsEl = h("div");
  const summaryEl = h("div");
  const envEl = h("div");
  const imagesSection = h("section.panel", { id: "images", hidden: true });
  const system = systemSection(id);
  const logPre = h("pre.log", { tabindex: "0", "aria-label": "Log output" });
  const followCb = h("input", { type: "checkbox", checked: true });

  const layout = () => replace(host, headEl, deletedEl,
    h("nav.subnav", { "aria-label": "Sections" }, ["Charts", "System", "Params", "Summary", "Environment", "Images", "Logs"].map((s) => h("a", { href: `#${s.toLowerCase()}` }, s))),
    h("section.panel", { id: "charts" }, h("div.row.wrap.section-head", h("h2", "Charts"), chartBar), chartsGrid),
    system.el,
    h("div.two-col",
      h("section.panel", { id: "params" }, h("h2", "Params"), paramsEl),
      h("section.panel", { id: "summary" }, h("h2", "Summary"), summaryEl)),
    h("section.panel", { id: "environment" }, h("h2", "Environment"), envEl),
    imagesSection,
    h("section.panel", { id: "logs" }, h("div.row.section-head", h("h2", "Logs"), h("span.grow"), h("label.inline", followCb, " follow")), logPre));
  layout();

  // ---- detail --------------------------------------------------------------------------------
  async function loadDetail() {
    try {
      detail = await v2(`/experiments/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        // Not there, or not yet (a link to a run that is about to start): the live stream's
        // "experiment" event of this id draws the run as soon as it appears.
        document.title = "Run not found · runicorn lite";
        waiting = true;
        if (log) { log.stop(); log = null; }
        replace(host, empty("Run not found", `No run with the id ${id} exists here (yet). This page shows it as soon as it appears; or it was removed from disk, or the link is wrong.`,
          h("a.button", { href: "/runs" }, "Back to the runs"), h("a.button", { href: "/bin" }, "Look in the recycle bin")));
        return false;
      }
      if (err instanceof ApiError && err.status === 0) return false;
      throw err;
    }
    if (destroyed) return false;
    if (waiting) {
      waiting = false;
      layout();
      begin();
    }
    const e = detail.experiment;
    document.title = `${e.project} / ${e.name} · runicorn lite`;
    if (!editing) renderHead();
    renderDeleted();
    renderParams();
    renderSummary();
    renderEnvironment();
    return true;
  }

  function renderHead() {
    const e = detail.experiment;
    const best = e.best_metric_value == null ? fmt.dash : `${e.best_metric_name} = ${fmt.num(e.best_metric_value)}`;
    const facts = [
      ["Status", badge(e.status)],
      ["Created", fmt.time(e.created_at, true)],
      ["Ended", e.ended_at ? fmt.time(e.ended_at, true) : (e.status === "running" ? "running…" : fmt.dash)],
      ["Duration", fmt.duration(fmt.runDuration(e))],
      ["Best", best],
      ["Points", fmt.num(detail.metrics_summary?.total_data_points ?? null)],
      ["Steps", detail.metrics_summary?.step_range ? `${fmt.num(detail.metrics_summary.step_range.min)}–${fmt.num(detail.metrics_summary.step_range.max)}` : fmt.dash],
    ];
    replace(headEl,
      h("div.crumbs", h("a", { href: "/runs" }, "Runs"), " / ", h("a", { href: `/runs?project=${encodeURIComponent(e.project)}` }, e.project), " / ", e.name),
      h("div.row.wrap.title-row",
        h("h1", e.alias || e.name),
        e.alias ? h("span.muted", e.name) : null,
        h("code.id", { title: "Run id" }, e.id),
        h("span.grow"),
        h("a.button", { href: `/api/v2/experiments/${encodeURIComponent(e.id)}/metrics.csv`, download: `${e.id}-metrics.csv` }, "Metrics CSV"),
        h("a.button", { href: `/compare?ids=${encodeURIComponent(e.id)}` }, "Compare…"),
        e.deleted_at
          ? h("button.primary", { type: "button", onclick: restoreRun }, "Restore")
          : h("button.danger", { type: "button", onclick: deleteRun }, "Delete")),
      h("dl.facts", facts.map(([k, v]) => h("div", h("dt", k), h("dd", v)))),
      h("div.meta-edit",
        h("div.row.wrap", h("span.label", "Tags"), (e.tags || []).length ? e.tags.map((t) => h("span.tag", t)) : h("span.muted", "none"),
          h("button.link", { type: "button", onclick: startEdit, "aria-label": "Edit alias, tags and description" }, "Edit")),
        h("p.description", e.description ? e.description : h("span.muted", "No description."))));
  }

  function startEdit() {
    editing = true;
    const e = detail.experiment;
    const alias = h("input", { type: "text", value: e.alias || "", "aria-label": "Alias", placeholder: "a short name for this run" });
    const tags = h("input", { type: "text", value: (e.tags || []).join(", "), "aria-label": "Tags", placeholder: "baseline, fp16" });
    const desc = h("textarea", { rows: 2, "aria-label": "Description", placeholder: "what this run tries" });
    desc.value = e.description || "";
    const err = h("p.notice", { role: "alert", hidden: true });
    const form = h("form.edit-form", {
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await v2(`/experiments/${encodeURIComponent(id)}`, {
            method: "PATCH",
            body: { alias: alias.value.trim(), tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean), description: desc.value },
          });
          editing = false;
          toast("Saved");
          await loadDetail();
          renderHead();
        } catch (ex) {
          err.textContent = ex.detail || String(ex);
          err.hidden = false;
        }
      },
      onkeydown: (ev) => { if (ev.key === "Escape") { editing = false; renderHead(); } },
    },
    h("label", "Alias", alias), h("label", "Tags (comma separated)", tags), h("label", "Description", desc), err,
    h("div.row", h("button.primary", { type: "submit" }, "Save"), h("button", { type: "button", onclick: () => { editing = false; renderHead(); } }, "Cancel")));
    headEl.querySelector(".meta-edit").replaceWith(form);
    alias.focus();
  }

  function renderDeleted() {
    const e = detail.experiment;
    deletedEl.hidden = !e.deleted_at;
    if (e.deleted_at) {
      replace(deletedEl, h("strong", "This run is in the recycle bin"), ` (deleted ${fmt.time(e.deleted_at)}). `,
        "Its data is kept until the bin is emptied. ", h("button", { type: "button", onclick: restoreRun }, "Restore it"));
    }
  }

  async function deleteRun() {
    const ok = await confirmDialog("Delete this run?", "It moves to the recycle bin; you can restore it from there.", "Delete");
    if (!ok) return;
    try {
      await v2("/experiments/batch-delete", { method: "POST", body: { exp_ids: [id], reason: "deleted in the web app" } });
      toast("Moved to the recycle bin");
      await loadDetail();
    } catch (err) {
      toast(err.detail || String(err), "error");
    }
  }

  async function restoreRun() {
    try {
      await v2("/experiments/batch-restore", { method: "POST", body: { exp_ids: [id] } });
      toast("Restored");
      await loadDetail();
    } catch (err) {
      toast(err.detail || String(err), "error");
    }
  }

  // ---- params, summary, environment ----------------------------------------------------------
  function kvTable(entries, { mono = true, filter = false } = {}) {
    const body = h("tbody", entries.map(([k, v]) => h("tr", h("th.mono", { scope: "row" }, k), h(`td${mono ? ".mono" : ""}`, v))));
    const tableEl = h("table.kv", body);
    if (!filter || entries.length < 15) return tableEl;
    const box = h("input", { type: "search", placeholder: `Filter ${entries.length} entries`, "aria-label": "Filter entries",
      oninput: () => { const q = box.value.toLowerCase(); for (const tr of body.rows) tr.hidden = !tr.textContent.toLowerCase().includes(q); } });
    return h("div", box, tableEl);
  }

  function renderParams() {
    const params = detail.params;
    const config = detail.config;
    if (params === undefined && config === undefined) {
      replace(paramsEl, h("p.muted", "This server does not report params."));
      return;
    }
    const entries = Object.entries(params || {}).sort((a, b) => a[0].localeCompare(b[0])).map(([k, v]) => [k, fmt.value(v)]);
    replace(paramsEl,
      entries.length ? kvTable(entries, { filter: true })
        : h("p.muted", "No params. Pass ", h("code", "config={...}"), " to ", h("code", "init"), " or call ", h("code", "run.log_config(args=...)"), "."),
      config ? h("details", h("summary", "Raw config (assets.json)"), h("pre.code", JSON.stringify(config, null, 2))) : null);
  }

  function renderSummary() {
    const metrics = detail.metrics || {};
    const names = Object.keys(metrics).sort();
    const parts = [];
    if (names.length) {
      parts.push(h("div.table-wrap", h("table.grid.compact",
        h("thead", h("tr", h("th", "metric"), ["last", "min", "max", "first", "count", "last step"].map((k) => h("th.num", k)))),
        h("tbody", names.map((n) => {
          const s = metrics[n];
          return h("tr", h("th.mono", { scope: "row" }, n), [s.last, s.min, s.max, s.first, s.count, s.last_step].map((v) => h("td.num.mono", fmt.num(v))));
        })))));
    } else if (detail.metrics === undefined && detail.metrics_summary) {
      parts.push(h("p", `${fmt.num(detail.metrics_summary.total_data_points)} points of ${detail.metrics_summary.available_metrics.join(", ") || "no metric"}.`));
    } else {
      parts.push(h("p.muted", "No metrics logged yet."));
    }
    // summary.json's free-form keys (the detail reads the file).
    const s = detail.summary || {};
    const keys = Object.keys(s).filter((k) => !k.startsWith("best_metric_")).sort();
    if (keys.length) parts.push(h("div.user-summary", h("h3", "summary.json"), kvTable(keys.map((k) => [k, fmt.value(s[k])]))));
    replace(summaryEl, ...parts);
  }

  function renderEnvironment() {
    const env = detail.environment;
    if (!env) {
      replace(envEl, h("p.muted", detail.environment_available ? "Recorded, but this server does not report it yet." :
        "Not recorded. Pass capture_env=True to init to record Python, packages, git and GPU."));
      return;
    }
    const git = env.git_info || {};
    const rows = [
      ["python", env.python_version],
      ["platform", env.platform],
      ["git commit", git.commit],
      ["git branch", git.branch],
      ["git dirty", git.dirty == null ? null : String(git.dirty)],
      ["conda env", env.conda_env],
      ["gpu", env.gpu_info ? (Array.isArray(env.gpu_info) ? env.gpu_info.map((g) => g.name || JSON.stringify(g)).join(", ") : fmt.value(env.gpu_info)) : null],
    ].filter(([, v]) => v != null && v !== "");
    const pkgs = Array.isArray(env.pip_packages) ? env.pip_packages : [];
    replace(envEl, kvTable(rows.map(([k, v]) => [k, String(v)])),
      pkgs.length ? h("details", h("summary", `${pkgs.length} pip packages`), kvTable(pkgs.map((p) => { const [n, ver] = String(p).split("=="); return [n, ver || ""]; }), { filter: true })) : null,
      h("details", h("summary", "Raw environment.json"), h("pre.code", JSON.stringify(env, null, 2))));
  }

  // ---- charts --------------------------------------------------------------------------------
  function renderChartBar() {
    const smooth = h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: smoothing(), "aria-label": "Smoothing" });
    const smoothVal = h("output.mono", smoothing().toFixed(2));
    smooth.addEventListener("input", () => { smoothVal.textContent = Number(smooth.value).toFixed(2); redraw({ smooth: smooth.value > 0 ? smooth.value : null }); });
    const logy = h("input", { type: "checkbox", checked: get("logy") === "1", onchange: (ev) => redraw({ logy: ev.target.checked ? "1" : null }) });
    const xSel = h("select", { "aria-label": "x axis", onchange: (ev) => { set({ x: ev.target.value === "time" ? "time" : null, zoom: null }); loadSeries(); renderChartBar(); } },
      h("option", { value: "step", selected: xMode() === "step" }, "step"),
      h("option", { value: "time", selected: xMode() === "time" }, "time"));
    replace(chartBar,
      h("label.inline", "Smoothing ", smooth, smoothVal),
      h("label.inline", logy, " log y"),
      h("label.inline", "x ", xSel),
      zoom() ? h("button", { type: "button", onclick: resetZoom }, "Reset zoom") : h("span.muted.hint", "Drag on a chart to zoom; double-click resets"),
      metricPicker());
  }

  const chartedNames = () => charted(detail, get("m"));
  const metricPicker = () => picker(detail, get("m"), id, (m) => { set({ m }); renderChartBar(); loadSeries(); });

  function set(changes) {
    for (const [k, v] of Object.entries(changes)) { if (v == null) state.delete(k); else state.set(k, v); }
    setQuery(state);
  }

  function redraw(changes) {
    set(changes);
    drawAll();
  }

  function chartFor(name) {
    let c = charts.get(name);
    if (!c) {
      c = new LineChart(chartsGrid, { title: name, syncKey: `run-${id}`, onZoom: zoomTo, onReset: resetZoom });
      charts.set(name, c);
    }
    return c;
  }

  function drawAll() {
    if (!lastSeries) return;
    const e = detail?.experiment;
    for (const [name, byRun] of Object.entries(lastSeries.series)) {
      if (isSystemMetric(name)) continue;
      const s = byRun[id];
      const c = chartFor(name);
      const total = lastSeries.total_points?.[name]?.[id];
      const shown = s ? s.steps.length : 0;
      c.setSubtitle(total != null ? (shown < total ? `${fmt.num(shown)} of ${fmt.num(total)} points` : `${fmt.num(total)} points`) : "");
      c.render(s ? [{ key: id, label: e ? e.name : id, colour: colour(0), ...s }] : [], { smoothing: smoothing(), logY: get("logy") === "1", xMode: xMode(), zoom: zoom() });
    }
  }

  let seriesSeq = 0;
  let seriesBusy = false; // a fetch of the series is under way: live points wait for its answer
  let budget = 1000; // points per series the charts asked for
  async function loadSeries() {
    if (waiting) return;
    if (controller) controller.abort();
    controller = new AbortController();
    const seq = ++seriesSeq;
    const z = zoom();
    let range = null;
    if (z) range = xMode() === "time" ? timeToSteps(z) : z;
    const names = detail?.metrics_summary?.available_metrics;
    system.update(names);
    if (names && !names.length) {
      replace(chartsGrid, empty("No metrics yet", "Curves appear here as the run logs them: run.log({\"loss\": 0.5}, step=1)."));
      charts = new Map();
      return;
    }
    seriesBusy = true;
    try {
      const width = charts.size ? [...charts.values()][0].plotEl : chartsGrid;
      budget = pointsFor(width);
      // compare with one id: columnar series with times, downsampled to the chart's width
      const [data] = await Promise.all([v2("/compare", {
        params: { ids: id, downsample: budget, metric_names: chartedNames(), step_range: range ? `${range[0] ?? ""}:${range[1] ?? ""}` : null },
        signal: controller.signal,
      }), chartsReady()]);
      if (seq !== seriesSeq || destroyed) return;
      if (!charts.size) replace(chartsGrid);
      lastSeries = data;
      for (const name of [...charts.keys()]) {
        if (!(name in data.series)) { charts.get(name).destroy(); charts.delete(name); }
      }
      drawAll();
      if (!Object.keys(data.series).length) replace(chartsGrid, empty("No metrics yet", "Curves appear here as the run logs them."));
      chartsGrid.dataset.ready = "1";
    } catch (err) {
      if (err.name === "AbortError" || (err instanceof ApiError && err.status === 0)) return;
      if (err instanceof ApiError) toast(err.detail, "error");
      else throw err;
    } finally {
      if (seq === seriesSeq) seriesBusy = false;
    }
  }

  function timeToSteps([lo, hi]) {
    const any = lastSeries && Object.values(lastSeries.series)[0]?.[id];
    if (!any) return null;
    let a = null, b = null;
    any.times.forEach((t, i) => {
      if (t == null) return;
      if (t >= lo && a == null) a = any.steps[i];
      if (t <= hi) b = any.steps[i];
    });
    return [a, b];
  }

  function zoomTo(min, max) {
    const z = xMode() === "step" ? [Math.floor(min), Math.ceil(max)] : [min, max];
    set({ zoom: `${+z[0].toFixed(3)}:${+z[1].toFixed(3)}` });
    for (const c of charts.values()) c.setZoom(z);
    renderChartBar();
    loadSeries();
  }

  function resetZoom() {
    set({ zoom: null });
    for (const c of charts.values()) c.setZoom(null);
    renderChartBar();
    loadSeries();
  }

  // ---- images --------------------------------------------------------------------------------
  async function loadImages() {
    if (!detail || !detail.images_count) {
      imagesSection.hidden = true;
      host.querySelector('.subnav a[href="#images"]').hidden = true;
      return;
    }
    let images;
    try {
      images = (await v2(`/experiments/${encodeURIComponent(id)}/images`)).images || [];
    } catch {
      return;
    }
    imagesSection.hidden = !images.length;
    host.querySelector('.subnav a[href="#images"]').hidden = !images.length;
    const byKey = new Map();
    for (const im of images) {
      if (!byKey.has(im.key)) byKey.set(im.key, []);
      byKey.get(im.key).push(im);
    }
    replace(imagesSection, h("h2", `Images (${images.length})`), h("div.gallery", [...byKey.entries()].map(([key, list]) => imageCard(key, list))));
  }

  function imageCard(key, list) {
    const img = h("img", { alt: key, loading: "lazy" });
    const cap = h("figcaption.mono");
    const slider = h("input", { type: "range", min: 0, max: list.length - 1, step: 1, value: list.length - 1, "aria-label": `Step of ${key}` });
    const link = h("a", { target: "_blank", rel: "noopener" }, img);
    const show = (i) => {
      const im = list[i];
      img.src = im.url;
      link.href = im.url; // the link opens the image the slider shows
      img.alt = `${key} at step ${im.step ?? "?"}`;
      replace(cap, h("strong", key), ` · step ${im.step ?? fmt.dash}`, im.caption ? ` · ${im.caption}` : "", list.length > 1 ? h("span.muted", ` (${i + 1}/${list.length})`) : "");
    };
    slider.addEventListener("input", () => show(Number(slider.value)));
    show(list.length - 1);
    return h("figure.image-card", link, cap, list.length > 1 ? slider : null);
  }

  // ---- logs ----------------------------------------------------------------------------------
  function openLogs() {
    if (destroyed || log) return;
    log = followLog(logPre, followCb, id, () => !destroyed && detail?.experiment.status === "running");
  }

  // ---- live ----------------------------------------------------------------------------------
  const refreshSeries = throttle(loadSeries, 500);
  const refreshDetail = throttle(async () => {
    const before = detail?.metrics_summary?.available_metrics?.join(",");
    if (await loadDetail()) {
      if (detail.metrics_summary?.available_metrics?.join(",") !== before) refreshSeries();
    }
  }, 1000);
  offs.push(on("metrics", (d) => {
    if (!d || d.id !== id) return;
    // The event's points are appended to the curves shown; the page refetches only when it must.
    if (!seriesBusy && !zoom() && appendPoints(lastSeries, id, d, budget)) drawAll();
    else refreshSeries();
    refreshDetail();
  }));
  offs.push(on("experiment", (d) => { if (d && d.id === id) { refreshDetail(); if (log) log.poke(); } }));
  offs.push(on("removed", (d) => { if (d && d.id === id) refreshDetail(); }));
  offs.push(on("reset", () => { refreshDetail(); refreshSeries(); }));

  function destroy() {
    destroyed = true;
    offs.forEach((off) => off());
    refreshSeries.cancel();
    refreshDetail.cancel();
    if (controller) controller.abort();
    system.destroy();
    if (log) log.stop();
    for (const c of charts.values()) c.destroy();
    charts.clear();
  }

  async function begin() {
    renderChartBar();
    await loadSeries();
    loadImages();
    openLogs();
  }

  (async () => {
    replace(chartsGrid, h("p.loading", "Loading…"));
    if (await loadDetail()) begin();
  })();

  return {
    update(q) {
      state = new URLSearchParams(q);
      renderChartBar();
      drawAll();
    },
    destroy,
  };
}
