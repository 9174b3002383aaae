// Overview: counts by status and project, success rate, durations and the last 30 days of runs.

import { ApiError, v2 } from "../api.js";
import { badge, empty, h, replace, throttle } from "../dom.js";
import * as fmt from "../format.js";
import { onAny } from "../live.js";

const STATUSES = ["running", "finished", "failed", "interrupted"];

export function mount(host) {
  let destroyed = false;

  async function load() {
    let a;
    try {
      a = await v2("/analytics/summary");
    } catch (err) {
      if (err instanceof ApiError && err.status === 0) return;
      throw err;
    }
    if (destroyed) return;
    render(a);
  }

  function bar(byStatus, total, scale) {
    return h("div.sbar", { role: "img", "aria-label": STATUSES.map((s) => `${byStatus[s] || 0} ${s}`).join(", "),
      style: { width: `${Math.max(2, (total / scale) * 100)}%` } },
    STATUSES.filter((s) => byStatus[s]).map((s) => h(`span.s-${s}`, { style: { flexGrow: String(byStatus[s]) }, title: `${byStatus[s]} ${s}` })));
  }

  function render(a) {
    document.title = "Overview · runicorn lite";
    const head = h("div.page-head", h("h1", "Overview"));
    if (!a.total_experiments) {
      replace(host, head, empty("No runs yet", "Log a run with the SDK (or write sample runs with runicorn-lite demo --runs 50), and the totals appear here.", h("a.button", { href: "/runs" }, "Go to the runs")));
      return;
    }
    const kpi = (label, value, href) => h(href ? "a.kpi" : "div.kpi", href ? { href } : null, h("div.kpi-val", value), h("div.kpi-label", label));
    const maxProject = Math.max(...a.projects.map((p) => p.count), 1);
    const days = lastDays(30, a.recent_activity);
    const maxDay = Math.max(...days.map((d) => d.count), 1);
    replace(host, head,
      h("section.panel", h("div.kpis",
        kpi("runs", fmt.num(a.total_experiments), "/runs"),
        ...STATUSES.map((s) => kpi(s, fmt.num(a.by_status[s] || 0), `/runs?status=${s}`)),
        kpi("success rate", `${a.success_rate}%`),
        kpi("mean duration", fmt.duration(a.average_duration_s)),
        kpi("data points", fmt.num(a.total_data_points))),
      h("div.status-strip", bar(a.by_status, a.total_experiments, a.total_experiments))),
      h("div.two-col",
        h("section.panel", h("h2", "Projects"), h("table.grid.compact.projects",
          h("thead", h("tr", h("th", "project"), h("th.num", "runs"), h("th", "status"), h("th.num", "best"))),
          h("tbody", a.projects.map((p) => h("tr",
            h("td", h("a", { href: `/runs?project=${encodeURIComponent(p.project)}` }, p.project)),
            h("td.num.mono", fmt.num(p.count)),
            h("td.bar-cell", bar(p.by_status, p.count, maxProject)),
            h("td.num.mono", fmt.num(p.best_metric_max))))))),
        h("section.panel", h("h2", "Last 30 days"),
          h("div.days", { role: "img", "aria-label": `Runs per day over the last 30 days, ${days.reduce((n, d) => n + d.count, 0)} in all` },
            days.map((d) => h("div.day", { title: `${d.date}: ${d.count} runs (${d.finished} finished, ${d.failed} failed)` },
              h("div.day-bar", { style: { height: `${(d.count / maxDay) * 100}%` } },
                h("span.s-failed", { style: { flexGrow: String(d.failed) } }),
                h("span.s-other", { style: { flexGrow: String(Math.max(0, d.count - d.finished - d.failed)) } }),
                h("span.s-finished", { style: { flexGrow: String(d.finished) } }))))),
          h("div.row.days-axis", h("span.muted", days[0].date), h("span.grow"), h("span.muted", days[days.length - 1].date)),
          h("div.row.legend-row", ["finished", "failed"].map((s) => h("span.count-chip", badge(s))), h("span.count-chip", h("span.badge.s-other", "other"))))));
  }

  function lastDays(n, recent) {
    const by = new Map(recent.map((d) => [d.date, d]));
    const out = [];
    const today = Math.floor(Date.now() / 86400000);
    for (let i = n - 1; i >= 0; i--) {
      const date = new Date((today - i) * 86400000).toISOString().slice(0, 10);
      out.push(by.get(date) || { date, count: 0, finished: 0, failed: 0 });
    }
    return out;
  }

  const refresh = throttle(load, 3000);
  const off = onAny(["experiment", "removed", "reset"], refresh);
  load();
  return { destroy() { destroyed = true; off(); refresh.cancel(); } };
}
