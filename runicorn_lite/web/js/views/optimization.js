// Optimization runs: asks for a project's API key once (exchanged for the server's session
// cookie, as the shell's sign-in does: the page never keeps the key), lists the key's project's
// runs with the stats panel, and shows one run's score by iteration with the
// best-so-far line, its best params, config and iterations.

import { api, ApiError } from "../api.js";
import { chartsReady, LineChart } from "../charts.js";
import { badge, empty, h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { setQuery } from "../router.js";
import { keyProblem, keyForm as signInForm } from "../signin.js";

const BASE = "/api/iris/optimization";
const LIMIT = 50;
const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
const OPTIMIZERS = ["bayesian", "grid_search", "random_search", "genetic", "gradient_descent"];

function opt(path, params) {
  return api(BASE + path, { params }); // the session cookie stands for the key
}

export function mount(host, { args, query }) {
  let state = new URLSearchParams(query);
  let chart = null;
  let timer = 0;
  let destroyed = false;
  const get = (k, d = "") => state.get(k) ?? d;

  function keyForm(message) {
    document.title = "Optimization · runicorn lite";
    signInForm(host, {
      heading: "Use this key",
      head: h("div.page-head", h("h1", "Optimization runs")),
      intro: ["The optimization API answers per project, to holders of that project's key. Create one with ",
        h("code", "runicorn-lite keys create --project NAME"), "; this browser keeps a session of it until you sign out."],
      message,
      onDone: () => { signedIn = true; render(); },
    });
  }

  async function guarded(fn) {
    try {
      await fn();
    } catch (ex) {
      if (destroyed) return;
      if (ex instanceof ApiError && (ex.status === 401 || (ex.status === 403 && ex.body?.hint))) {
        keyForm(ex.status === 401 ? keyProblem(ex) : `${ex.detail}${ex.body?.hint ? ` — ${ex.body.hint}` : ""}`);
        return;
      }
      if (ex instanceof ApiError && ex.status === 0) return;
      if (ex instanceof ApiError) { replace(host, empty(ex.status === 404 ? "Optimization run not found" : "Cannot load this", ex.detail, h("a.button", { href: "/optimization" }, "All optimization runs"))); return; }
      throw ex;
    }
  }

  // The optimization API answers holders of a key only: without a session the key form comes
  // first, rather than requests that could only be refused.
  let signedIn = null;

  async function render() {
    clearTimeout(timer);
    if (chart) { chart.destroy(); chart = null; }
    if (signedIn === null) {
      try {
        signedIn = Boolean((await api("/api/auth/session")).signed_in);
      } catch {
        signedIn = true; // unreachable: the requests below say so
      }
      if (destroyed) return;
      if (!signedIn) { keyForm(); return; }
    }
    if (args[0]) guarded(showRun); else guarded(showList);
  }

  // ---- the list and the stats panel ----------------------------------------------------------
  async function showList() {
    document.title = "Optimization · runicorn lite";
    const params = {
      status: get("status"), optimizer_type: get("optimizer"), order_by: get("order_by", "created_at"), order: get("order", "desc"),
      limit: LIMIT, offset: get("offset", "0"),
    };
    const [list, stats] = await Promise.all([opt("/runs", params), opt("/stats", {})]);
    if (destroyed) return;
    const change = (k, v) => { if (v) state.set(k, v); else state.delete(k); state.delete("offset"); setQuery(state, { push: true }); render(); };
    const sel = (k, label, values) => h("select", { "aria-label": label, onchange: (ev) => change(k, ev.target.value) },
      h("option", { value: "" }, `any ${label.toLowerCase()}`), values.map((v) => h("option", { value: v, selected: get(k) === v }, v)));
    const sortSel = h("select", { "aria-label": "Sort", onchange: (ev) => { const [o, d] = ev.target.value.split(" "); state.set("order_by", o); state.set("order", d); setQuery(state, { push: true }); render(); } },
      [["created_at desc", "newest first"], ["created_at asc", "oldest first"], ["final_score desc", "best score first"], ["final_score asc", "lowest score first"], ["duration_ms desc", "longest first"], ["duration_ms asc", "shortest first"]]
        .map(([v, l]) => h("option", { value: v, selected: `${params.order_by} ${params.order}` === v }, l)));
    const runs = list.runs || [];
    const pg = list.pagination || { total: runs.length, offset: 0, limit: LIMIT };
    const project = runs[0]?.project_id || stats.metadata?.filters?.projectId || "";
    const offset = Number(pg.offset) || 0;
    replace(host,
      h("div.page-head", h("h1", "Optimization runs"), project ? h("span.muted", "project ", h("code", project)) : null, h("span.grow"),
        h("button.link", { type: "button", onclick: () => keyForm() }, "Use another key")),
      statsPanel(stats),
      h("section.panel",
        h("div.row.wrap.section-head", h("h2", "Runs"), h("span.muted", `${pg.total} total`), h("span.grow"), sel("status", "Status", STATUSES), sel("optimizer", "Optimizer", OPTIMIZERS), sortSel),
        runs.length ? h("div.table-wrap", h("table.grid.opt-runs",
          h("thead", h("tr", ["Run", "Optimizer", "Status", "Final score", "Iterations", "Duration", "Created"].map((t) => h("th", t)))),
          h("tbody", runs.map((r) => h("tr",
            h("td.name", h("a", { href: `/optimization/${encodeURIComponent(r.id)}` }, r.run_name || "(unnamed)"), h("div.id", r.id)),
            h("td", r.optimizer_type), h("td", badge(r.status)), h("td.num.mono", fmt.num(r.final_score)), h("td.num.mono", fmt.num(r.iterations_count)),
            h("td.num", fmt.duration(r.duration_ms == null ? null : r.duration_ms / 1000)), h("td.num", fmt.time(fmt.isoToTs(r.created_at))))))))
          : empty("No optimization runs", "Create one through the API: POST /api/iris/optimization/runs (see the README), or from Python with runicorn_lite.client.OptimizationClient."),
        pg.total > LIMIT ? h("nav.pager",
          h("button", { type: "button", disabled: offset <= 0, onclick: () => { state.set("offset", String(Math.max(0, offset - LIMIT))); setQuery(state, { push: true }); render(); } }, "‹ Prev"),
          h("span.muted", `${offset + 1}–${offset + runs.length} of ${pg.total}`),
          h("button", { type: "button", disabled: !pg.hasMore, onclick: () => { state.set("offset", String(offset + LIMIT)); setQuery(state, { push: true }); render(); } }, "Next ›")) : null));
  }

  function statsPanel(stats) {
    const s = stats.statistics || {};
    const by = stats.byStatus || {};
    const kpi = (label, value) => h("div.kpi", h("div.kpi-val", value), h("div.kpi-label", label));
    return h("section.panel.stats",
      h("div.kpis",
        kpi("runs", fmt.num(s.totalRuns ?? 0)),
        kpi("success rate", s.successRate == null ? fmt.dash : `${s.successRate}%`),
        kpi("mean final score", fmt.num(s.averageImprovement)),
        kpi("mean duration", fmt.duration(s.averageDuration == null ? null : s.averageDuration / 1000))),
      h("div.row.wrap.status-counts", STATUSES.map((st) => h("span.count-chip", badge(st), h("b.mono", fmt.num(by[st] ?? 0))))),
      h("div.two-col",
        h("div", h("h3", "By optimizer"), (stats.byOptimizerType || []).length ? h("div.table-wrap", h("table.grid.compact",
          h("thead", h("tr", ["optimizer", "runs", "success", "mean score", "mean duration"].map((t) => h("th", t)))),
          h("tbody", stats.byOptimizerType.map((o) => h("tr", h("td", o.optimizerType), h("td.num.mono", fmt.num(o.count)), h("td.num.mono", `${o.successRate}%`),
            h("td.num.mono", fmt.num(o.averageScore)), h("td.num", fmt.duration(o.averageDuration == null ? null : o.averageDuration / 1000))))))) : h("p.muted", "No runs yet.")),
        h("div", h("h3", "Top performers"), (stats.topPerformers || []).length ? h("ol.top-list", stats.topPerformers.slice(0, 5).map((t) => h("li",
          h("a", { href: `/optimization/${encodeURIComponent(t.id)}` }, t.run_name || t.id), h("span.muted", ` ${t.optimizer_type} `), h("b.mono", fmt.num(t.final_score))))) : h("p.muted", "No scores yet."))));
  }

  // ---- one run -------------------------------------------------------------------------------
  async function showRun() {
    const body = await opt(`/runs/${encodeURIComponent(args[0])}`, null);
    if (destroyed) return;
    const r = body.run;
    const iterations = body.iterations || [];
    const st = body.stats || {};
    document.title = `${r.run_name || "Optimization run"} · runicorn lite`;
    const maximize = (r.direction || "maximize") !== "minimize";
    const steps = [], scores = [], best = [];
    let b = null;
    for (const it of iterations) {
      steps.push(it.iteration_number);
      scores.push(it.score);
      if (b == null || (maximize ? it.score > b : it.score < b)) b = it.score;
      best.push(b);
    }
    const chartHost = h("div.chart-grid.single");
    const bp = r.best_params || {};
    const kv = (obj) => {
      const entries = Object.entries(obj || {});
      return entries.length ? h("table.kv", h("tbody", entries.map(([k, v]) => h("tr", h("th.mono", { scope: "row" }, k), h("td.mono", fmt.value(v)))))) : h("p.muted", "none");
    };
    replace(host,
      h("div.crumbs", h("a", { href: "/optimization" }, "Optimization runs"), " / ", r.run_name || r.id),
      h("div.row.wrap.title-row", h("h1", r.run_name || "(unnamed)"), badge(r.status), h("code.id", r.id)),
      h("dl.facts", [
        ["Optimizer", r.optimizer_type], ["Direction", maximize ? "maximize" : "minimize"], ["Final score", fmt.num(r.final_score)],
        ["Iterations", fmt.num(r.iterations_count)], ["Duration", fmt.duration(r.duration_ms == null ? null : r.duration_ms / 1000)],
        ["Created", fmt.time(fmt.isoToTs(r.created_at))], ["Completed", fmt.time(fmt.isoToTs(r.completed_at))],
      ].map(([k, v]) => h("div", h("dt", k), h("dd", v)))),
      r.error_message ? h("p.notice", { role: "status" }, r.error_message) : null,
      h("section.panel", h("h2", "Score by iteration"), iterations.length ? chartHost : empty("No iterations yet", "Iterations appear here as the optimizer reports them.")),
      h("div.two-col",
        h("section.panel", h("h2", "Best params"), kv(bp)),
        h("section.panel", h("h2", "Stats"), h("dl.facts.small", [
          ["iterations", fmt.num(st.totalIterations)], ["best", fmt.num(st.bestScore)], ["worst", fmt.num(st.worstScore)],
          ["mean", fmt.num(st.averageScore)], ["mean duration", fmt.duration(st.averageDuration == null ? null : st.averageDuration / 1000)],
        ].map(([k, v]) => h("div", h("dt", k), h("dd", v)))))),
      h("div.two-col",
        h("section.panel", h("h2", "Config"), kv(r.config)),
        h("section.panel", h("h2", "Search space"), kv(r.search_space))),
      iterations.length ? h("section.panel", h("h2", `Iterations (${iterations.length})`), h("div.table-wrap.tall", h("table.grid.compact",
        h("thead", h("tr", h("th", "#"), h("th", "score"), h("th", "params"), h("th", "metrics"), h("th", "duration"))),
        h("tbody", iterations.map((it) => h("tr", { class: it.score === b ? "best-row" : null },
          h("td.num.mono", it.iteration_number), h("td.num.mono", fmt.num(it.score)),
          h("td.mono.wrap", Object.entries(it.params || {}).map(([k, v]) => `${k}=${fmt.value(v)}`).join("  ")),
          h("td.mono.wrap", Object.entries(it.metrics || {}).map(([k, v]) => `${k}=${fmt.value(v)}`).join("  ")),
          h("td.num", fmt.duration(it.duration_ms == null ? null : it.duration_ms / 1000)))))))) : null);
    if (iterations.length) {
      await chartsReady();
      if (destroyed) return;
      chart = new LineChart(chartHost, { title: "score", height: 260 });
      chart.render([
        { key: "score", label: "score", colour: "#868e96", steps, values: scores, times: steps.map(() => null) },
        { key: "best", label: `best so far (${maximize ? "max" : "min"})`, colour: "#4f46e5", steps, values: best, times: steps.map(() => null) },
      ]);
    }
    if (r.status === "running" || r.status === "pending") timer = setTimeout(() => { if (!destroyed) render(); }, 5000);
  }

  render();
  return {
    update(q) { state = new URLSearchParams(q); render(); },
    destroy() { destroyed = true; clearTimeout(timer); if (chart) chart.destroy(); },
  };
}
