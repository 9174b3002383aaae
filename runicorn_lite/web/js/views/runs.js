// Runs: the V2 list with params and metric summaries, filters (status, project, tags, search,
// dates, a filter= expression), sorting on any column, a column chooser, paging, selection →
// compare / delete / restore, CSV export of the current filter, a params-vs-metric scatter, the
// analysis tools (groups, parallel coordinates, importance: analysis.js), and live updates from
// the event stream. Every bit of state lives in the URL.

import { ApiError, qs, v2 } from "../api.js";
import { chartsReady, scatter } from "../charts.js";
import { append, badge, confirmDialog, empty, h, replace, throttle, toast } from "../dom.js";
import * as fmt from "../format.js";
import { onAny } from "../live.js";
import { navigate, setQuery } from "../router.js";
import { filterParams as paramsOf, pageParams, PER_PAGE } from "../query.js";
import { analysisTools } from "./analysis.js";
import { autoColumns } from "./runs_columns.js";

const STATUSES = ["running", "finished", "failed", "interrupted"];
const STATUS_COLOURS = { running: "#1c7ed6", finished: "#2b8a3e", failed: "#e03131", interrupted: "#f08c00" };
const AGGS = ["last", "min", "max"];
const FIRST_ROWS = 30;
const FIXED = [
  { key: "status", label: "Status", sort: "status" },
  { key: "name", label: "Run", sort: "name" },
  { key: "created", label: "Created", sort: "created_at" },
  { key: "duration", label: "Duration" },
  { key: "best", label: "Best metric", sort: "best_metric_value" },
  { key: "tags", label: "Tags" },
  { key: "id", label: "ID" },
];
const FILTER_KEYS = ["q", "status", "project", "tags", "after", "before", "filter", "deleted"];
const ASC_FIRST = new Set(["name", "project"]);
const MENU_METRICS = 200; // metrics the column chooser lists

export function mount(host, { query }) {
  let state = new URLSearchParams(query);
  let rows = [];
  let total = 0;
  let controller = null;
  let knownParams = new Set();
  let knownMetrics = new Set();
  let plot = null;
  let projects = [];
  let restFrame = 0;
  let autoDrop = 0; // automatic columns left out so that the table fits the window

  const get = (k, d = "") => state.get(k) ?? d;
  const sortKey = () => get("sort", "created_at");
  const asc = () => get("asc") === "1";
  const page = () => Math.max(1, parseInt(get("page", "1"), 10) || 1);
  const selected = () => new Set((get("sel") || "").split(",").filter(Boolean));
  const hasFilters = () => FILTER_KEYS.some((k) => state.get(k));

  // ---- layout --------------------------------------------------------------------------------
  const search = h("input", { type: "search", placeholder: "Search name, project, tags, id…  ( / )", "aria-label": "Search runs", "data-search": "", value: get("q") });
  const statusBtns = STATUSES.map((s) => h(`button.chip.s-${s}`, { type: "button", "aria-pressed": "false", dataset: { status: s }, onclick: () => toggleStatus(s) }, h("i.sdot"), s));
  const projectSel = h("select", { "aria-label": "Project" }, h("option", { value: "" }, "All projects"));
  const tagsIn = h("input", { type: "text", placeholder: "tags (a, b)", "aria-label": "Tags", size: 12, value: get("tags") });
  const afterIn = h("input", { type: "date", "aria-label": "Created from", value: get("after") });
  const beforeIn = h("input", { type: "date", "aria-label": "Created until", value: get("before") });
  const deletedCb = h("input", { type: "checkbox", checked: get("deleted") === "1" });
  const filterIn = h("input.mono", { type: "text", placeholder: "params.lr < 0.01 and metrics.accuracy.max > 0.9", "aria-label": "Filter expression", spellcheck: "false", autocomplete: "off", value: get("filter") });
  const filterErr = h("div.filter-err", { role: "alert", hidden: true });
  const notice = h("div.notice", { role: "alert", hidden: true });
  const countEl = h("span.count", { "aria-live": "polite" });
  const selBar = h("div.selbar");
  const colsMenu = h("details.menu", { ontoggle: () => renderColumnsMenu() }, h("summary", { class: "button" }, "Columns"), h("div.menu-body"));
  const plotBtn = h("button", { type: "button", "aria-expanded": "false", onclick: () => togglePlot() }, "Plot params vs metric");
  const exportA = h("a.button", { download: "experiments.csv", title: "Every run of the current filter, with params and metric summaries" }, "Export CSV");
  const plotPanel = h("section.panel.plot-panel", { hidden: true, "aria-label": "Params versus metric" });
  const table = h("table.grid.runs-table");
  const tableWrap = h("div.table-wrap", table);
  const pager = h("nav.pager", { "aria-label": "Pages" });

  const form = h("form.filters", {
    role: "search",
    onsubmit: (ev) => { ev.preventDefault(); applyFilters(); },
  },
  h("div.row.wrap", search, h("div.chips", { role: "group", "aria-label": "Status" }, statusBtns), projectSel, tagsIn),
  h("div.row.wrap.filter-row", h("label.filter-label", { for: "filter-expr" }, "Filter"), filterIn,
    h("label.inline", "From ", afterIn), h("label.inline", "to ", beforeIn), h("label.inline", deletedCb, " deleted too"),
    h("button.primary", { type: "submit" }, "Apply"), h("button.link", { type: "button", onclick: clearFilters }, "Clear all")),
  filterErr);
  filterIn.id = "filter-expr";
  filterIn.addEventListener("keydown", (ev) => { if (ev.key === "Escape") { filterIn.value = ""; applyFilters(); } });
  // Cancelled when the view goes: a trailing call after Enter opened a run would put ?q= on its URL.
  const onSearch = throttle(() => { if (search.value !== get("q")) applyFilters(); }, 400);
  search.addEventListener("input", onSearch);
  for (const el of [projectSel, afterIn, beforeIn, deletedCb]) el.addEventListener("change", applyFilters);

  const analysis = analysisTools({
    get, commit: (changes, opts) => { commit(changes, opts); if ("filter" in changes) syncInputs(); }, filterParams: () => filterParams(),
    known: () => ({ params: knownParams, metrics: knownMetrics }),
    columns: () => {
      const cols = columns();
      return { params: cols.filter((c) => c.kind === "param").map((c) => c.label), metrics: cols.filter((c) => c.kind === "metric") };
    },
  });

  replace(host, h("div.page-head", h("h1", "Runs"), countEl),
    form, notice,
    h("div.row.actions", selBar, h("span.grow"), ...analysis.controls, colsMenu, plotBtn, exportA),
    plotPanel, ...analysis.panels, analysis.groupsEl, tableWrap, pager);

  // ---- state → URL ---------------------------------------------------------------------------
  function commit(changes, { push = true, reload = true } = {}) {
    const next = new URLSearchParams(state);
    for (const [k, v] of Object.entries(changes)) {
      if (v == null || v === "" || v === false) next.delete(k); else next.set(k, v === true ? "1" : String(v));
    }
    state = next;
    setQuery(next, { push });
    if (reload) load();
  }

  function applyFilters() {
    const statuses = statusBtns.filter((b) => b.getAttribute("aria-pressed") === "true").map((b) => b.dataset.status);
    commit({
      q: search.value.trim(), status: statuses.join(","), project: projectSel.value, tags: tagsIn.value.trim(),
      after: afterIn.value, before: beforeIn.value, deleted: deletedCb.checked, filter: filterIn.value.trim(), page: null,
    });
  }

  function clearFilters() {
    search.value = ""; tagsIn.value = ""; afterIn.value = ""; beforeIn.value = ""; filterIn.value = "";
    projectSel.value = ""; deletedCb.checked = false;
    statusBtns.forEach((b) => b.setAttribute("aria-pressed", "false"));
    commit(Object.fromEntries([...FILTER_KEYS, "page"].map((k) => [k, null])));
  }

  function toggleStatus(s) {
    const b = statusBtns.find((x) => x.dataset.status === s);
    b.setAttribute("aria-pressed", b.getAttribute("aria-pressed") === "true" ? "false" : "true");
    applyFilters();
  }

  function syncInputs() {
    search.value = get("q"); tagsIn.value = get("tags"); afterIn.value = get("after"); beforeIn.value = get("before");
    filterIn.value = get("filter"); deletedCb.checked = get("deleted") === "1";
    const st = new Set(get("status").split(",").filter(Boolean));
    statusBtns.forEach((b) => b.setAttribute("aria-pressed", String(st.has(b.dataset.status))));
    ensureProjectOption(get("project"));
    projectSel.value = get("project");
  }

  function ensureProjectOption(p) {
    if (p && ![...projectSel.options].some((o) => o.value === p)) projectSel.append(h("option", { value: p }, p));
  }

  /** The list parameters of the current filter (without paging). */
  const filterParams = () => paramsOf(state);

  // ---- loading -------------------------------------------------------------------------------
  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    exportA.href = `/api/v2/experiments.csv?${qs(filterParams())}`;
    try {
      const data = await v2("/experiments", { params: pageParams(state), signal });
      if (signal.aborted) return;
      rows = data.experiments;
      autoDrop = 0;
      total = data.total;
      filterErr.hidden = true;
      notice.hidden = true;
      filterIn.removeAttribute("aria-invalid");
      render();
      if (plot || get("sx")) renderPlot();
      analysis.refresh();
    } catch (err) {
      if (err.name === "AbortError") return;
      showError(err);
    }
  }

  function showError(err) {
    if (!(err instanceof ApiError)) throw err;
    if (err.status === 0) return; // the banner says it; keep what is shown
    const expr = get("filter");
    if (err.status === 400 && expr && /filter|position|character|expression/i.test(err.detail)) {
      filterIn.setAttribute("aria-invalid", "true");
      const m = err.detail.match(/(?:position|character|column|char|offset)\s+(\d+)/i);
      const parts = [h("strong", "Filter error: "), err.detail];
      if (m) {
        // the server counts characters from 0
        const pos = Math.max(0, Math.min(expr.length, parseInt(m[1], 10)));
        parts.push(h("pre.caret", h("span", expr), "\n", h("span.mark", `${" ".repeat(pos)}^`)));
      }
      replace(filterErr, ...parts);
      filterErr.hidden = false;
      rows = []; total = 0;
      render();
      countEl.textContent = "";
      return;
    }
    replace(notice, err.detail);
    notice.hidden = false;
  }

  // ---- columns -------------------------------------------------------------------------------
  function columns() {
    const chosen = get("cols") ? get("cols").split(",") : autoColumns(rows, autoDrop);
    const s = sortKey();
    if ((s.startsWith("params.") || s.startsWith("metrics.")) && !chosen.includes(s)) chosen.push(s);
    return chosen.map(columnDef).filter(Boolean);
  }

  function columnDef(key) {
    const fixed = FIXED.find((c) => c.key === key);
    if (fixed) return fixed;
    if (key.startsWith("params.")) return { key, label: key.slice(7), kind: "param", sort: key };
    const m = key.match(/^metrics\.(.+)\.(last|min|max|first|count)$/);
    if (m) return { key, label: m[1], agg: m[2], kind: "metric", sort: key };
    return null;
  }

  function renderColumnsMenu() {
    for (const r of rows) {
      Object.keys(r.params || {}).forEach((k) => knownParams.add(k));
      Object.keys(r.metrics || {}).forEach((k) => knownMetrics.add(k));
    }
    // Built when it is open: a run may hold a thousand metrics, five checkboxes each.
    if (!colsMenu.open) return;
    const metricNames = [...knownMetrics].sort();
    const shown = new Set(columns().map((c) => c.key));
    const box = (key, label) => h("label.check", h("input", { type: "checkbox", checked: shown.has(key), onchange: (ev) => setColumn(key, ev.target.checked) }), label);
    const body = colsMenu.querySelector(".menu-body");
    replace(body,
      h("div.menu-group", h("h3", "Run"), FIXED.filter((c) => c.key !== "name").map((c) => box(c.key, c.label))),
      h("div.menu-group", h("h3", "Params"), knownParams.size ? [...knownParams].sort().map((k) => box(`params.${k}`, h("span.mono", k))) : h("p.muted", "No params on this page")),
      h("div.menu-group", h("h3", "Metrics"), knownMetrics.size ? metricNames.slice(0, MENU_METRICS).map((m) => h("div.agg-row", h("span.mono", m), AGGS.map((a) => box(`metrics.${m}.${a}`, a)))) : h("p.muted", "No metrics on this page"),
        metricNames.length > MENU_METRICS ? h("p.muted", `…and ${metricNames.length - MENU_METRICS} more: sort or filter by metrics.<name> to show one`) : null),
      h("div.row", h("button.link", { type: "button", onclick: () => commit({ cols: null }, { push: false }) }, "Reset to automatic")));
  }

  function setColumn(key, on) {
    const keys = columns().map((c) => c.key);
    const next = on ? [...keys.filter((k) => k !== key), key] : keys.filter((k) => k !== key);
    if (!next.includes("name")) next.splice(1, 0, "name");
    commit({ cols: next.join(",") }, { push: false, reload: false });
    render();
  }

  // ---- rendering -----------------------------------------------------------------------------
  function render() {
    const cols = columns();
    const sel = selected();
    countEl.textContent = `${total.toLocaleString("en-US")} run${total === 1 ? "" : "s"}${hasFilters() ? " match" : ""}`;
    renderColumnsMenu();
    renderSelection(sel);
    const pageIds = rows.map((r) => r.id);
    const allOnPage = pageIds.length > 0 && pageIds.every((id) => sel.has(id));
    const headCb = h("input", { type: "checkbox", "aria-label": "Select every run on this page", checked: allOnPage,
      indeterminate: !allOnPage && pageIds.some((id) => sel.has(id)),
      onchange: (ev) => { const s = selected(); pageIds.forEach((id) => (ev.target.checked ? s.add(id) : s.delete(id))); setSelection(s); } });
    const thead = h("thead", h("tr", h("th.cb", headCb), cols.map(headerCell)));
    // The rows a window shows first, the rest a frame later: the first paint lays out less.
    const tbody = h("tbody", rows.slice(0, FIRST_ROWS).map((r) => rowEl(r, cols, sel)));
    replace(table, thead, tbody);
    if (!get("cols") && rows.length && tableWrap.clientWidth && table.scrollWidth > tableWrap.clientWidth + 1 && autoDrop < 12) {
      autoDrop++;
      render();
      return;
    }
    cancelAnimationFrame(restFrame);
    if (rows.length > FIRST_ROWS) {
      const rest = rows.slice(FIRST_ROWS);
      restFrame = requestAnimationFrame(() => { if (tbody.isConnected) append(tbody, rest.map((r) => rowEl(r, cols, sel))); });
    }
    tableWrap.hidden = !rows.length || analysis.grouped();
    if (analysis.grouped()) { replace(pager); return; }
    if (!rows.length) {
      const stateEl = hasFilters() || page() > 1
        ? empty("No runs match these filters", "Change or clear the filters to see more runs.", h("button", { type: "button", onclick: clearFilters }, "Clear filters"))
        : firstRunHelp();
      replace(pager, stateEl);
      return;
    }
    const pages = Math.max(1, Math.ceil(total / PER_PAGE));
    const p = page();
    const from = (p - 1) * PER_PAGE + 1;
    replace(pager,
      h("button", { type: "button", disabled: p <= 1, onclick: () => commit({ page: 1 }), "aria-label": "First page" }, "«"),
      h("button", { type: "button", disabled: p <= 1, onclick: () => commit({ page: p - 1 }), "aria-label": "Previous page" }, "‹ Prev"),
      h("span.muted", `${from.toLocaleString("en-US")}–${(from + rows.length - 1).toLocaleString("en-US")} of ${total.toLocaleString("en-US")} · page ${p} of ${pages.toLocaleString("en-US")}`),
      h("button", { type: "button", disabled: p >= pages, onclick: () => commit({ page: p + 1 }), "aria-label": "Next page" }, "Next ›"),
      h("button", { type: "button", disabled: p >= pages, onclick: () => commit({ page: pages }), "aria-label": "Last page" }, "»"));
  }

  function headerCell(c) {
    const active = c.sort && c.sort === sortKey();
    const dir = active ? (asc() ? "ascending" : "descending") : null;
    // Params and metrics are told apart at a glance: each kind has its tint (app.css) and its tag.
    const label = c.kind === "param" ? [h("span.col-kind", { title: "a param: from the run's config" }, "param"), h("span.mono", { title: `param ${c.label}` }, c.label)]
      : c.kind === "metric" ? [h("span.mono.metric-h", { title: `metric ${c.label}, ${c.agg} value` }, c.label), h("span.col-kind", c.agg)]
        : c.label;
    const numeric = c.kind || ["created", "duration", "best"].includes(c.key);
    const th = h(`th.c-${c.kind || c.key}`, { class: numeric ? "num" : null, "aria-sort": dir || (c.sort ? "none" : null), scope: "col" });
    if (!c.sort) return replace(th, label);
    return replace(th, h("button.sort", {
      type: "button",
      title: `Sort by ${c.kind ? c.key : c.label}`,
      onclick: () => {
        if (active) commit({ asc: asc() ? null : "1", page: null });
        else commit({ sort: c.sort === "created_at" ? null : c.sort, asc: ASC_FIRST.has(c.sort) ? "1" : null, page: null });
      },
    }, label, h("span.arrow", { "aria-hidden": "true" }, active ? (asc() ? "▲" : "▼") : "↕")));
  }

  function rowEl(r, cols, sel) {
    const checked = sel.has(r.id);
    const tr = h("tr", { class: [checked ? "sel" : "", r.deleted_at ? "deleted" : ""].join(" ").trim() || null, dataset: { id: r.id } },
      h("td.cb", h("input", { type: "checkbox", checked, "aria-label": `Select ${fmt.runTitle(r)} (${r.id})`,
        onchange: (ev) => { const s = selected(); if (ev.target.checked) s.add(r.id); else s.delete(r.id); setSelection(s); } })),
      cols.map((c) => cell(r, c, cols)));
    return tr;
  }

  function cell(r, c, cols) {
    switch (c.key) {
      case "status":
        return h("td", badge(r.status), r.deleted_at ? h("span.badge.s-deleted", "deleted") : null);
      case "name":
        return h("td.name", h("a", { href: `/runs/${encodeURIComponent(r.id)}` }, h("span.proj", `${r.project} / `), h("b", r.name)),
          r.alias ? h("span.alias", r.alias) : null,
          cols.some((x) => x.key === "id") ? null : h("div.id", r.id)); // no ID column: the id under the name
      case "id":
        return h("td.id", r.id);
      case "created":
        return h("td.num", { title: fmt.time(r.created_at, true) }, fmt.time(r.created_at));
      case "duration":
        return h("td.num", fmt.duration(fmt.runDuration(r)));
      case "best":
        return h("td.num", r.best_metric_value == null ? fmt.dash : [h("span.muted", `${r.best_metric_name} `), fmt.num(r.best_metric_value)]);
      case "tags":
        return h("td.tags", (r.tags || []).map((t) => h("span.tag", t)));
      default:
        if (c.kind === "param") {
          const params = r.params || {};
          const has = Object.prototype.hasOwnProperty.call(params, c.label);
          const v = params[c.label];
          return h(`td.mono.k-param${typeof v === "number" || !has ? ".num" : ""}`, { title: has ? fmt.value(v) : "not set" }, has ? fmt.value(v) : fmt.dash);
        }
        {
          const m = (r.metrics || {})[c.label];
          return h("td.num.mono.k-metric", m ? fmt.num(m[c.agg]) : fmt.dash);
        }
    }
  }

  function firstRunHelp() {
    return empty("No runs yet", "Log a first run from Python, and it appears here by itself:",
      h("pre.code", [
        "import runicorn_lite",
        "",
        'with runicorn_lite.init(project="demo", name="first-run", config={"lr": 0.01}) as run:',
        "    for step in range(1, 101):",
        '        run.log({"loss": 1 / step}, step=step)',
      ].join("\n")),
      h("p", "Or write sample runs: ", h("code", "runicorn-lite demo --runs 50"), ". Runs written by the Runicorn SDK show up too."));
  }

  // ---- selection and actions -----------------------------------------------------------------
  function setSelection(s) {
    commit({ sel: [...s].join(",") }, { push: false, reload: false });
    render();
  }

  function renderSelection(sel) {
    const ids = [...sel];
    if (!ids.length) {
      replace(selBar, h("span.muted", "Select runs to compare, delete or restore."));
      return;
    }
    const deletedShown = rows.some((r) => sel.has(r.id) && r.deleted_at);
    replace(selBar,
      h("strong", `${ids.length} selected`),
      h("button.primary", { type: "button", disabled: ids.length < 2 || ids.length > 50, title: "Compare 2 to 50 runs",
        onclick: () => navigate(`/compare?ids=${ids.map(encodeURIComponent).join(",")}`) }, `Compare ${ids.length}`),
      h("button.danger", { type: "button", onclick: () => removeRuns(ids) }, "Delete"),
      deletedShown ? h("button", { type: "button", onclick: () => restoreRuns(ids) }, "Restore") : null,
      h("button.link", { type: "button", onclick: () => setSelection(new Set()) }, "Clear selection"));
  }

  async function removeRuns(ids) {
    const ok = await confirmDialog(`Delete ${ids.length} run${ids.length === 1 ? "" : "s"}?`,
      "They move to the recycle bin; you can restore them from there.", "Delete");
    if (!ok) return;
    try {
      const res = await v2("/experiments/batch-delete", { method: "POST", body: { exp_ids: ids, reason: "deleted in the web app" } });
      toast(`Moved ${res.deleted} run${res.deleted === 1 ? "" : "s"} to the recycle bin`);
      commit({ sel: null });
    } catch (err) {
      toast(err.detail || String(err), "error");
    }
  }

  async function restoreRuns(ids) {
    try {
      const res = await v2("/experiments/batch-restore", { method: "POST", body: { exp_ids: ids } });
      toast(`Restored ${res.restored} run${res.restored === 1 ? "" : "s"}`);
      commit({ sel: null });
    } catch (err) {
      toast(err.detail || String(err), "error");
    }
  }

  // ---- params vs metric ----------------------------------------------------------------------
  function togglePlot() {
    if (get("sx")) commit({ sx: null, sy: null }, { reload: false });
    else {
      const cols = columns();
      const sx = cols.find((c) => c.kind === "param")?.key.slice(7) || [...knownParams][0];
      const best = rows.find((r) => r.best_metric_name)?.best_metric_name;
      const sy = best && knownMetrics.has(best) ? `${best}.max` : (cols.find((c) => c.kind === "metric") ? `${cols.find((c) => c.kind === "metric").label}.last` : "");
      if (!sx || !sy) { toast("These runs have no params or metrics to plot"); return; }
      commit({ sx, sy }, { reload: false });
    }
    renderPlot();
  }

  let plotSeq = 0;
  async function renderPlot() {
    const sx = get("sx"), sy = get("sy");
    plotBtn.setAttribute("aria-expanded", String(!!sx));
    if (plot) { plot.destroy(); plot = null; }
    if (!sx) { plotPanel.hidden = true; replace(plotPanel); return; }
    plotPanel.hidden = false;
    const seq = ++plotSeq;
    const [metric, agg] = splitMetric(sy);
    const xSel = h("select", { "aria-label": "Param on the x axis", onchange: (ev) => { commit({ sx: ev.target.value }, { reload: false }); renderPlot(); } },
      [...knownParams].sort().map((k) => h("option", { value: k, selected: k === sx }, k)));
    const ySel = h("select", { "aria-label": "Metric on the y axis", onchange: (ev) => { commit({ sy: ev.target.value }, { reload: false }); renderPlot(); } },
      [...knownMetrics].sort().flatMap((m) => ["last", "min", "max", "first"].map((a) => h("option", { value: `${m}.${a}`, selected: `${m}.${a}` === sy }, `${m} (${a})`))));
    const note = h("span.muted");
    const area = h("div.plot-area");
    replace(plotPanel, h("div.row.wrap", h("h2", "Which settings won?"), h("label.inline", "x ", xSel), h("label.inline", "y ", ySel), note,
      h("span.grow"), h("button.link", { type: "button", onclick: togglePlot }, "Close")), area);
    try {
      const [data] = await Promise.all([
        v2("/experiments", { params: { ...filterParams(), include: "params,metrics", page: 1, per_page: 1000 } }), chartsReady()]);
      if (seq !== plotSeq) return;
      const points = [];
      for (const r of data.experiments) {
        const x = (r.params || {})[sx];
        const m = (r.metrics || {})[metric];
        const y = m ? m[agg] : undefined;
        if (x === undefined || x === null || y == null) continue;
        points.push({ x: typeof x === "boolean" ? Number(x) : x, y, label: `${r.project} / ${r.name} · ${r.id}`, id: r.id, group: r.status });
      }
      const numeric = points.every((p) => typeof p.x === "number");
      const xs = points.map((p) => p.x);
      const logX = numeric && xs.length > 1 && Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) >= 50;
      const groups = STATUSES.map((s) => ({ key: s, label: s, colour: STATUS_COLOURS[s] }));
      note.textContent = `${points.length.toLocaleString("en-US")} runs with both values` +
        (data.total > data.experiments.length ? ` (of the first ${data.experiments.length.toLocaleString("en-US")})` : "") + (logX ? " · log x" : "");
      if (!points.length) { replace(area, empty("Nothing to plot", `No run of this filter has both ${sx} and ${metric}.`)); return; }
      plot = scatter(area, points, { xLabel: sx, yLabel: `${metric} (${agg})`, groups, logX, onPick: (p) => navigate(`/runs/${encodeURIComponent(p.id)}`) });
    } catch (err) {
      if (err instanceof ApiError) replace(area, h("p.notice", err.detail));
      else throw err;
    }
  }

  function splitMetric(sy) {
    const i = sy.lastIndexOf(".");
    return i < 0 ? [sy, "last"] : [sy.slice(0, i), sy.slice(i + 1)];
  }

  // ---- projects for the select ---------------------------------------------------------------
  v2("/analytics/summary").then((a) => {
    projects = (a.projects || []).map((p) => p.project).sort();
    const cur = get("project");
    replace(projectSel, h("option", { value: "" }, "All projects"), projects.map((p) => h("option", { value: p }, p)));
    ensureProjectOption(cur);
    projectSel.value = cur;
  }).catch(() => {});

  // ---- live ----------------------------------------------------------------------------------
  const refresh = throttle(() => load(), 1000);
  const off = onAny(["experiment", "metrics", "removed", "reset"], (data, type) => {
    if (type === "metrics" && data && data.id && !rows.some((r) => r.id === data.id)) return;
    refresh();
  });

  syncInputs();
  document.title = "Runs · runicorn lite";
  load();

  return {
    update(query) {
      state = new URLSearchParams(query);
      syncInputs();
      load();
    },
    destroy() {
      off();
      refresh.cancel();
      onSearch.cancel();
      if (controller) controller.abort();
      if (plot) plot.destroy();
    },
  };
}
