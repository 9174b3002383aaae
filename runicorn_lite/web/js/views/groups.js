// Runs grouped by params: in the runs view, one row per group (its key, count and mean ± std of
// the shown metric columns), expandable to its runs; in compare, each group's mean curve with a
// ± std band. Both read GET /api/v2/groups and compare's group_by (analysis.md §2, §3).

import { ApiError, v2 } from "../api.js";
import { badge, empty, h, replace } from "../dom.js";
import * as fmt from "../format.js";

export const GROUP_ATTRIBUTES = ["attributes.status", "attributes.project", "attributes.name"];
const MAX_FIELDS = 5;

/** A field's short label: "lr" for params.lr, "status" for attributes.status. */
export const fieldLabel = (f) => f.replace(/^(params|attributes)\./, "");

/** A group key as text: "optim.name = adam · lr = 0.001". */
export function keyText(key) {
  return Object.entries(key).map(([f, v]) => `${fieldLabel(f)} = ${v === null ? "–" : fmt.value(v)}`).join(" · ");
}

/** A filter clause that matches one value of a field (the whole language: analysis.md §1). */
export function clauseFor(field, v) {
  const f = field.startsWith("params.") ? `params.\`${field.slice(7).replaceAll("`", "``")}\`` : field;
  if (v === null || v === undefined) return `${f} is null`;
  if (typeof v === "number") return `${f} = ${v}`;
  if (typeof v === "boolean") return `${f} = ${v}`;
  return `${f} = '${String(v).replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/** ``filter`` and ``more`` joined with and, each in parentheses when it has an or. */
export function andFilter(filter, more) {
  const wrap = (t) => (/\bor\b/i.test(t) ? `(${t})` : t);
  return [filter, more].filter(Boolean).map(wrap).join(" and ");
}

/** Compare's "Group by" select: none, the params that differ, project and status. */
export function groupSelect(data, current, onChange) {
  const fields = [...(data.params_differ || []).map((k) => `params.${k}`), "attributes.project", "attributes.status"];
  if (current && !fields.includes(current)) fields.unshift(current);
  return h("label.inline", "Group by ", h("select", { "aria-label": "Group runs by", onchange: (ev) => onChange(ev.target.value) },
    h("option", { value: "" }, "none (every run)"),
    fields.map((f) => h("option", { value: f, selected: f === current }, fieldLabel(f)))));
}

/** Compare's curves of one metric by group: each group's mean, its band mean ± std. */
export function groupBands(data, metric, colourOf) {
  const bands = (data.group_series || {})[metric] || {};
  return data.groups.map((g, i) => {
    const b = bands[String(i)];
    if (!b) return null;
    const lo = b.mean.map((m, j) => (m == null || b.std[j] == null ? null : m - b.std[j]));
    const hi = b.mean.map((m, j) => (m == null || b.std[j] == null ? null : m + b.std[j]));
    return { key: `group-${i}`, label: `${keyText(g.key)} (${g.ids.length} run${g.ids.length === 1 ? "" : "s"})`, colour: colourOf(i),
      steps: b.steps, values: b.mean, times: b.steps.map(() => null), lo, hi };
  }).filter(Boolean);
}

/**
 * The runs view's grouped table. ``fields``: the group_by fields; ``metricCols``: [{label, agg}]
 * of the shown metric columns; ``params``: the list's filter parameters.
 */
export class GroupTable {
  constructor(host) {
    this.host = host;
    this.seq = 0;
    this.open = new Set();
  }

  async load({ fields, metricCols, params }) {
    const seq = ++this.seq;
    const metrics = [...new Set(metricCols.map((c) => `${c.label}.${c.agg}`))].slice(0, 10);
    const { order_by: _o, order_desc: _d, ...filters } = params;
    try {
      const data = await v2("/groups", { params: { ...filters, group_by: fields.slice(0, MAX_FIELDS).join(","), metrics: metrics.join(",") || null } });
      if (seq !== this.seq) return;
      this.render(data, fields, metrics, filters);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (seq === this.seq) replace(this.host, h("p.notice", err.detail));
    }
  }

  render(data, fields, metrics, filters) {
    if (!data.groups.length) { replace(this.host, empty("No runs match these filters", "Change or clear the filters to see groups.")); return; }
    const head = h("tr", h("th.cb"), fields.map((f) => h("th", { scope: "col" }, h("span.mono", fieldLabel(f)))),
      h("th.num", { scope: "col" }, "runs"),
      metrics.map((m) => { const i = m.lastIndexOf("."); return h("th.num", { scope: "col" }, h("span.mono.metric-h", m.slice(0, i)), h("span.col-kind", `${m.slice(i + 1)} mean ± std`)); }));
    const body = h("tbody");
    for (const g of data.groups) {
      const id = JSON.stringify(g.key);
      const expanded = this.open.has(id);
      const toggle = h("button.link.expand", { type: "button", "aria-expanded": String(expanded), "aria-label": `Runs of ${keyText(g.key)}`,
        onclick: () => { if (this.open.has(id)) this.open.delete(id); else this.open.add(id); this.render(data, fields, metrics, filters); } }, expanded ? "▾" : "▸");
      body.append(h("tr.group-row", { dataset: { key: id } }, h("td.cb", toggle),
        fields.map((f) => h("td.mono", g.key[f] === null ? h("span.muted", "not set") : fmt.value(g.key[f]))),
        h("td.num", String(g.count)),
        metrics.map((m) => {
          const s = g.metrics[m];
          return h("td.num.mono", { title: s && s.count ? `n=${s.count}, min ${fmt.num(s.min)}, max ${fmt.num(s.max)}` : "no run has it" },
            !s || s.mean == null ? fmt.dash : s.std == null ? fmt.num(s.mean) : `${fmt.num(s.mean)} ± ${fmt.num(s.std)}`);
        })));
      if (expanded) {
        const cell = h("td.group-runs", { colSpan: 2 + fields.length + metrics.length }, h("span.muted", "Loading…"));
        body.append(h("tr.group-members", cell));
        this.members(cell, g, fields, metrics, filters);
      }
    }
    replace(this.host, h("p.muted", `${data.total_runs.toLocaleString("en-US")} runs in ${data.total_groups.toLocaleString("en-US")} group${data.total_groups === 1 ? "" : "s"}`
      + (data.total_groups > data.groups.length ? ` (the first ${data.groups.length} shown)` : "")),
    h("div.table-wrap", h("table.grid.groups-table", h("thead", head), body)));
  }

  async members(cell, g, fields, metrics, filters) {
    const narrowed = andFilter(filters.filter, fields.map((f) => clauseFor(f, g.key[f])).join(" and "));
    try {
      const res = await v2("/experiments", { params: { ...filters, filter: narrowed, include: "metrics", per_page: 100 } });
      replace(cell, h("table.grid.compact", h("tbody", res.experiments.map((r) => h("tr",
        h("td", badge(r.status)), h("td.name", h("a", { href: `/runs/${encodeURIComponent(r.id)}` }, `${r.project} / ${r.name}`)),
        h("td.id", r.id),
        metrics.map((m) => { const i = m.lastIndexOf("."); const s = (r.metrics || {})[m.slice(0, i)]; return h("td.num.mono", s ? fmt.num(s[m.slice(i + 1)]) : fmt.dash); }))))),
      res.total > res.experiments.length ? h("p.muted", `… and ${res.total - res.experiments.length} more`) : null);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      replace(cell, h("p.notice", err.detail));
    }
  }
}
