// Parallel coordinates of the current filter (analysis.md §5): chosen params and one metric as
// axes, one line a run, coloured by the metric. Dragging along an axis brushes a range, which
// narrows the filter in the URL (a clause and-ed to it), so the list, the plot and every link
// show the narrowed runs. Drawn in SVG; no chart library.

import { ApiError, v2 } from "../api.js";
import { empty, h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { andFilter } from "./groups.js";

const NS = "http://www.w3.org/2000/svg";
const HEIGHT = 300;
const PAD = { top: 26, bottom: 22, side: 56 };
// Low → high metric: blue, teal, yellow (viridis-like, readable on white).
const STOPS = [[68, 1, 84], [33, 145, 140], [253, 231, 37]];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) el.setAttribute(k, String(v));
  for (const c of children) if (c != null) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export function colourAt(t) {
  const x = Math.max(0, Math.min(1, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const c = STOPS[i].map((a, k) => Math.round(a + (STOPS[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** An axis over values (numbers: linear, or log when positive and spanning ≥ 50x; else categories). */
function axisOf(field, label, values) {
  const numeric = values.every((v) => typeof v === "number");
  if (!numeric) {
    const cats = [...new Set(values.map(String))].sort();
    const pos = (v) => (cats.length === 1 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1));
    return { field, label, cats, pos, ticks: cats.map((c) => [pos(c), c]) };
  }
  let lo = Math.min(...values), hi = Math.max(...values);
  const log = lo > 0 && hi / lo >= 50;
  const f = log ? Math.log10 : (v) => v;
  if (lo === hi) { lo -= 0.5; hi += 0.5; }
  const a = f(lo), b = f(hi);
  const pos = (v) => (f(v) - a) / (b - a);
  const inv = (t) => (log ? Math.pow(10, a + t * (b - a)) : a + t * (b - a));
  const ticks = [0, 0.5, 1].map((t) => [t, fmt.num(inv(t))]);
  return { field, label, pos, inv, ticks, log };
}

/** A clause keeping an axis's values between two positions (0 = bottom, 1 = top). */
function brushClause(axis, t0, t1) {
  const lo = Math.min(t0, t1), hi = Math.max(t0, t1);
  const f = axis.field.startsWith("params.") ? `params.\`${axis.field.slice(7).replaceAll("`", "``")}\`` : axis.field;
  if (axis.cats) {
    const inside = axis.cats.filter((c) => { const p = axis.pos(c); return p >= lo - 1e-9 && p <= hi + 1e-9; });
    if (!inside.length) return null;
    return `${f} in (${inside.map((c) => `'${c.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`).join(", ")})`;
  }
  const round = (v) => Number(v.toPrecision(6));
  return `${f} >= ${round(axis.inv(lo))} and ${f} <= ${round(axis.inv(hi))}`;
}

/**
 * Draws the plot into ``host`` from the runs of ``params`` (the list's filter). ``keys``: param
 * keys of the axes; ``metric``: "name.agg"; ``onBrush(filter)`` gets the narrowed filter text.
 */
export async function parallelCoordinates(host, { params, keys, metric, onBrush }) {
  const i = metric.lastIndexOf(".");
  const [name, agg] = [metric.slice(0, i), metric.slice(i + 1)];
  let data;
  try {
    data = await v2("/experiments", { params: { ...params, include: "params,metrics", page: 1, per_page: 1000 } });
  } catch (err) {
    if (err instanceof ApiError) { replace(host, h("p.notice", err.detail)); return; }
    throw err;
  }
  const runs = [];
  for (const r of data.experiments) {
    const m = (r.metrics || {})[name];
    const y = m ? m[agg] : null;
    const p = r.params || {};
    if (y == null || keys.some((k) => p[k] == null)) continue;
    runs.push({ id: r.id, values: [...keys.map((k) => (typeof p[k] === "boolean" ? Number(p[k]) : p[k])), y] });
  }
  const note = h("p.muted.pc-note", `${runs.length.toLocaleString("en-US")} runs with every axis`
    + (data.total > data.experiments.length ? ` (of the first ${data.experiments.length.toLocaleString("en-US")})` : "")
    + " · drag along an axis to narrow the filter");
  if (!runs.length) { replace(host, note, empty("Nothing to draw", "No run of this filter has every chosen param and the metric.")); return; }
  const axes = [...keys.map((k, j) => axisOf(`params.${k}`, k, runs.map((r) => r.values[j]))),
    axisOf(`metrics.${name}.${agg}`, `${name} (${agg})`, runs.map((r) => r.values[keys.length]))];
  const width = Math.max(320, host.clientWidth || 800);
  const x = (j) => PAD.side + (j * (width - 2 * PAD.side)) / Math.max(1, axes.length - 1);
  const y = (t) => PAD.top + (1 - t) * (HEIGHT - PAD.top - PAD.bottom);
  const metricAxis = axes[axes.length - 1];
  const lines = svg("g", { class: "pc-lines" });
  for (const r of runs) {
    const pts = r.values.map((v, j) => `${x(j).toFixed(1)},${y(axes[j].pos(v)).toFixed(1)}`).join(" ");
    lines.append(svg("polyline", { points: pts, stroke: colourAt(metricAxis.pos(r.values[axes.length - 1])), "data-id": r.id }));
  }
  const root = svg("svg", { width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img",
    "aria-label": `Parallel coordinates of ${keys.join(", ")} and ${name} (${agg})` }, lines);
  axes.forEach((axis, j) => {
    const g = svg("g", { class: "pc-axis", "data-field": axis.field });
    g.append(svg("line", { x1: x(j), x2: x(j), y1: y(0), y2: y(1) }));
    g.append(svg("text", { x: x(j), y: 14, "text-anchor": "middle", class: "pc-label" }, axis.label + (axis.log ? " (log)" : "")));
    for (const [t, text] of axis.ticks) g.append(svg("text", { x: x(j) - 6, y: y(t) + 4, "text-anchor": "end", class: "pc-tick" }, text));
    const sel = svg("rect", { x: x(j) - 8, width: 16, y: 0, height: 0, class: "pc-brush", visibility: "hidden" });
    const hit = svg("rect", { x: x(j) - 14, width: 28, y: y(1), height: y(0) - y(1), class: "pc-hit", "aria-label": `Brush ${axis.label}` });
    g.append(sel, hit);
    hit.addEventListener("pointerdown", (ev) => {
      ev.preventDefault();
      const top = root.getBoundingClientRect().top;
      const start = ev.clientY - top;
      const move = (e) => {
        const cur = e.clientY - top;
        sel.setAttribute("y", String(Math.max(y(1), Math.min(start, cur))));
        sel.setAttribute("height", String(Math.abs(cur - start)));
        sel.setAttribute("visibility", "visible");
      };
      const up = (e) => {
        window.removeEventListener("pointermove", move);
        window.removeEventListener("pointerup", up);
        const end = e.clientY - top;
        if (Math.abs(end - start) < 4) { sel.setAttribute("visibility", "hidden"); return; }
        const t = (py) => Math.max(0, Math.min(1, 1 - (py - PAD.top) / (HEIGHT - PAD.top - PAD.bottom)));
        const clause = brushClause(axis, t(start), t(end));
        if (clause) onBrush(andFilter(params.filter, clause));
      };
      window.addEventListener("pointermove", move);
      window.addEventListener("pointerup", up);
    });
    root.append(g);
  });
  const legend = h("div.pc-legend", h("span.muted", `${name} (${agg}): `), fmt.num(Math.min(...runs.map((r) => r.values[keys.length]))),
    h("span.pc-ramp"), fmt.num(Math.max(...runs.map((r) => r.values[keys.length]))));
  replace(host, note, h("div.pc-wrap", root), legend);
}
