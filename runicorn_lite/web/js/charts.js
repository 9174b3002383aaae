// Charts on uPlot (vendored, a global loaded before the modules): line charts of metric curves
// with a legend that reads values under the cursor, drag-to-zoom, smoothing, log-y and a step or
// time x axis; and a scatter of one param against one metric. The server downsamples every curve
// to about as many points as the chart has pixels, so uPlot never draws more than a few thousand.

import { h, replace } from "./dom.js";
import * as fmt from "./format.js";

let uPlot = globalThis.uPlot;
let loading = null;

/**
 * Loads uPlot (a classic script beside this module) once; views that chart await it, so a page
 * without charts (the runs list) does not parse it before its first rows.
 */
export function chartsReady() {
  if (uPlot) return Promise.resolve();
  loading ||= new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = new URL("../vendor/uplot/uPlot.iife.min.js", import.meta.url).href;
    s.onload = () => { uPlot = globalThis.uPlot; resolve(); };
    s.onerror = () => reject(new Error("the chart library could not be loaded"));
    document.head.append(s);
  });
  return loading;
}
const AXIS = { stroke: "#5c6370", grid: { stroke: "#eceef2", width: 1 }, ticks: { stroke: "#dde1e7", width: 1, size: 4 }, font: "11px system-ui, sans-serif" };

/** Points a chart of this element's width should ask the server for (about one per pixel). */
export function pointsFor(el) {
  return Math.max(200, Math.min(4000, Math.round((el.clientWidth || 600) * (window.devicePixelRatio > 1 ? 1.5 : 1))));
}

/** TensorBoard's smoothing: an exponential moving average, debiased at the start. */
export function ema(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let last = 0, n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v == null || !Number.isFinite(v)) { out[i] = null; continue; }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

function fade(colour, alpha) {
  if (colour.startsWith("#")) {
    const n = parseInt(colour.slice(1), 16);
    return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${alpha})`;
  }
  return colour.replace(/^hsl\((.*)\)$/, `hsl($1 / ${alpha})`);
}

function lastIndexWithValue(arr) {
  for (let i = arr.length - 1; i >= 0; i--) if (arr[i] != null) return i;
  return -1;
}

/**
 * One metric's chart: curves of one or more series (runs), a legend with the values under the
 * cursor, zoom by dragging (``onZoom(min, max)``), double-click to reset (``onReset()``).
 */
export class LineChart {
  constructor(host, { title, syncKey, onZoom, onReset, height = 220, subtitle } = {}) {
    this.onZoom = onZoom;
    this.onReset = onReset;
    this.height = height;
    this.syncKey = syncKey;
    this.plotEl = h("div.plot");
    this.legendEl = h("div.legend", { "aria-live": "off" });
    this.noteEl = h("div.chart-note", { hidden: true });
    this.subtitleEl = h("span.chart-sub", subtitle || "");
    this.el = h("figure.chart", h("figcaption", h("span.chart-title", title), this.subtitleEl), h("div.plot-wrap", this.plotEl, this.noteEl), this.legendEl);
    host.append(this.el);
    this.u = null;
    this.signature = "";
    this.state = null;
    this.hidden = new Set();
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.plotEl);
  }

  setSubtitle(text) {
    this.subtitleEl.textContent = text || "";
  }

  resize() {
    if (!this.u) return;
    const width = this.plotEl.clientWidth;
    if (width && Math.abs(width - this.u.width) > 2) this.u.setSize({ width, height: this.height });
  }

  /** series: [{key, label, colour, steps, values, times}]; opts: {smoothing, logY, xMode, zoom}. */
  render(series, { smoothing = 0, logY = false, xMode = "step", zoom = null } = {}) {
    this.state = { series, smoothing, logY, xMode };
    const useTime = xMode === "time";
    const tables = [];
    const meta = [];
    const withData = series.filter((s) => s.steps.length);
    for (const raw of [true, false]) {
      if (raw && !smoothing) continue;
      for (const s of withData) {
        const xs = useTime ? s.times : s.steps;
        let ys = raw || !smoothing ? s.values : ema(s.values, smoothing);
        const px = [], py = [];
        for (let i = 0; i < xs.length; i++) {
          const x = xs[i];
          if (x == null) continue;
          let y = ys[i];
          if (y != null && (!Number.isFinite(y) || (logY && y <= 0))) y = null;
          px.push(x); py.push(y);
        }
        tables.push([px, py]);
        meta.push({ s, raw: raw && !!smoothing });
        if (!raw && s.lo && s.hi) {
          // A band (mean ± std of a group): its upper and lower edges, filled between.
          for (const edge of ["hi", "lo"]) {
            const ey = [];
            for (let i = 0; i < xs.length; i++) {
              if (xs[i] == null) continue;
              const y = s[edge][i];
              ey.push(y != null && Number.isFinite(y) && !(logY && y <= 0) ? y : null);
            }
            tables.push([px, ey]);
            meta.push({ s, edge });
          }
        }
      }
    }
    const empty = !tables.length || tables.every((t) => !t[0].length);
    this.noteEl.hidden = !empty;
    this.noteEl.textContent = empty ? (useTime && withData.length ? "No timestamps for these points" : "No points yet") : "";
    if (empty) {
      this.destroyPlot();
      this.renderLegend(null);
      return;
    }
    const data = tables.length === 1 ? [tables[0][0], tables[0][1]] : uPlot.join(tables);
    const signature = JSON.stringify([logY, useTime, meta.map((m) => [m.s.key, m.raw, m.edge, m.s.colour])]);
    this.meta = meta;
    if (signature !== this.signature || !this.u) {
      this.destroyPlot();
      this.signature = signature;
      this.u = new uPlot(this.options(meta, logY, useTime), data, this.plotEl);
      for (const key of this.hidden) this.toggle(key, false);
    } else {
      this.u.setData(data, !zoom);
    }
    if (zoom && Number.isFinite(zoom[0]) && Number.isFinite(zoom[1]) && zoom[1] > zoom[0]) {
      this.u.setScale("x", { min: zoom[0], max: zoom[1] });
    }
    this.renderLegend(this.u.cursor.idx);
  }

  options(meta, logY, useTime) {
    const self = this;
    return {
      width: this.plotEl.clientWidth || 400,
      height: this.height,
      legend: { show: false },
      padding: [8, 10, 0, 2],
      scales: { x: { time: useTime }, y: logY ? { distr: 3 } : { auto: true } },
      axes: [
        { ...AXIS, size: useTime ? 46 : 30, values: useTime ? undefined : (u, splits) => splits.map((v) => (v == null ? "" : fmt.num(v))) },
        { ...AXIS, size: 56, values: (u, splits) => splits.map((v) => (v == null ? "" : fmt.num(v))) },
      ],
      cursor: {
        drag: { x: true, y: false, setScale: false },
        sync: this.syncKey ? { key: this.syncKey } : undefined,
        points: { size: 6 },
        bind: {
          dblclick: () => () => { if (self.onReset) self.onReset(); return null; },
        },
      },
      series: [
        { label: useTime ? "time" : "step" },
        ...meta.map(({ s, raw, edge }) => ({
          label: edge ? `${s.label} (${edge === "hi" ? "+" : "−"}std)` : raw ? `${s.label} (raw)` : s.label,
          stroke: edge ? fade(s.colour, 0.35) : raw ? fade(s.colour, 0.28) : s.colour,
          width: edge ? 0.5 : raw ? 1 : 1.6,
          spanGaps: !edge,
          points: { show: false },
        })),
      ],
      bands: meta.flatMap((m, i) => (m.edge === "hi" ? [{ series: [i + 1, i + 2], fill: fade(m.s.colour, 0.16) }] : [])),
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const min = u.posToVal(u.select.left, "x");
            const max = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            if (self.onZoom) self.onZoom(min, max);
          },
        ],
        setCursor: [(u) => self.renderLegend(u.cursor.idx)],
      },
    };
  }

  setZoom(zoom) {
    if (!this.u) return;
    if (zoom) this.u.setScale("x", { min: zoom[0], max: zoom[1] });
    else {
      const xs = this.u.data[0];
      if (xs.length) this.u.setScale("x", { min: xs[0], max: xs[xs.length - 1] });
    }
  }

  toggle(key, show) {
    if (!this.u) return;
    this.meta.forEach((m, i) => { if (m.s.key === key) this.u.setSeries(i + 1, { show }); });
  }

  renderLegend(idx) {
    if (!this.u || !this.meta) { replace(this.legendEl); return; }
    const u = this.u;
    const useTime = this.state.xMode === "time";
    const rows = [];
    const at = idx != null ? u.data[0][idx] : null;
    this.meta.forEach((m, i) => {
      if (m.raw || m.edge) return;
      const ys = u.data[i + 1];
      const j = idx != null ? idx : lastIndexWithValue(ys);
      const v = j >= 0 ? ys[j] : null;
      const off = this.hidden.has(m.s.key);
      rows.push(h("button.lg", {
        type: "button",
        class: off ? "off" : null,
        title: off ? "Show this curve" : "Hide this curve",
        "aria-pressed": String(!off),
        onclick: () => {
          if (this.hidden.has(m.s.key)) this.hidden.delete(m.s.key); else this.hidden.add(m.s.key);
          this.toggle(m.s.key, !this.hidden.has(m.s.key));
          this.renderLegend(this.u.cursor.idx);
        },
      }, h("i.sw", { style: { background: m.s.colour } }), h("span.lg-name", m.s.label), h("span.lg-val", fmt.num(v))));
    });
    const head = at != null ? (useTime ? fmt.time(at, true) : `step ${fmt.num(at)}`) : "last";
    replace(this.legendEl, h("span.lg-at", head), ...rows);
  }

  destroyPlot() {
    if (this.u) this.u.destroy();
    this.u = null;
    this.signature = "";
  }

  destroy() {
    this.resizer.disconnect();
    this.destroyPlot();
    this.el.remove();
  }
}

/** [min, max] widened by ``frac`` of the span on each side (multiplicatively on a log scale). */
function padded(min, max, frac, log) {
  if (min == null || max == null) return [min, max];
  if (log && min > 0) {
    const f = Math.pow(max / min, frac) || 1.2;
    return min === max ? [min / 1.2, max * 1.2] : [min / f, max * f];
  }
  const span = max - min || Math.abs(max) || 1;
  return [min - span * frac, max + span * frac];
}

/**
 * A scatter of points [{x, y, label, colour, group}] (x numbers or category strings), with a
 * tooltip naming the point nearest the cursor (in both axes: many runs of a sweep share an x)
 * and ``onPick(point)`` on click. The scales leave room around the extreme points.
 */
export function scatter(host, points, { xLabel, yLabel, groups, onPick, logX = false }) {
  const categorical = points.some((p) => typeof p.x !== "number");
  const cats = categorical ? [...new Set(points.map((p) => String(p.x)))].sort() : null;
  const xOf = (p) => (categorical ? cats.indexOf(String(p.x)) : p.x);
  const sorted = points.filter((p) => (categorical || Number.isFinite(p.x)) && Number.isFinite(p.y) && (!logX || p.x > 0))
    .map((p) => ({ ...p, px: xOf(p) })).sort((a, b) => a.px - b.px);
  const xs = sorted.map((p) => p.px);
  const data = [xs, ...groups.map((g) => sorted.map((p) => (p.group === g.key ? p.y : null)))];
  const tip = h("div.tip", { hidden: true });
  const ring = h("div.pick-ring", { hidden: true });
  const plot = h("div.plot");
  const present = new Set(points.map((p) => p.group));
  const key = h("div.legend", groups.filter((g) => present.has(g.key)).map((g) => h("span.lg", h("i.sw.round", { style: { background: g.colour } }), g.label)),
    h("span.muted", "· click a point to open its run"));
  const wrap = h("div.scatter", plot, tip, key);
  host.append(wrap);
  let picked = null;
  // The point nearest the cursor in pixels (both axes), within a reach; null when none is.
  const nearest = (u2) => {
    const { left, top } = u2.cursor;
    if (left == null || left < 0) return null;
    let best = null, bestD = 24 * 24;
    for (const p of sorted) {
      const dx = u2.valToPos(p.px, "x") - left, dy = u2.valToPos(p.y, "y") - top;
      const d = dx * dx + dy * dy;
      if (d < bestD) { bestD = d; best = p; }
    }
    return best;
  };
  const u = new uPlot({
    width: plot.clientWidth || host.clientWidth || 600,
    height: 260,
    padding: [10, 12, 0, 4],
    legend: { show: false },
    scales: {
      x: { time: false, distr: logX ? 3 : 1, range: categorical ? [-0.5, Math.max(0.5, cats.length - 0.5)] : (u2, min, max) => padded(min, max, 0.04, logX) },
      y: { range: (u2, min, max) => padded(min, max, 0.06, false) },
    },
    axes: [
      { ...AXIS, space: 70, label: xLabel, labelSize: 18, labelFont: "600 11px system-ui", splits: categorical ? () => cats.map((_, i) => i) : undefined,
        values: (u2, splits) => splits.map((v) => (v == null ? "" : categorical ? cats[v] ?? "" : fmt.num(v))) },
      { ...AXIS, label: yLabel, labelSize: 18, labelFont: "600 11px system-ui", size: 56, values: (u2, splits) => splits.map((v) => (v == null ? "" : fmt.num(v))) },
    ],
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    series: [{}, ...groups.map((g) => ({ label: g.label, stroke: g.colour, fill: fade(g.colour, 0.75), paths: () => null, points: { show: true, size: 8, width: 1, fill: fade(g.colour, 0.75) } }))],
    hooks: {
      setCursor: [(u2) => {
        const p = nearest(u2);
        picked = p;
        tip.hidden = !p;
        ring.hidden = !p;
        if (!p) return;
        const x = u2.valToPos(p.px, "x"), y = u2.valToPos(p.y, "y");
        ring.style.left = `${x}px`;
        ring.style.top = `${y}px`;
        replace(tip, h("strong", p.label), h("br"), `${xLabel} = ${fmt.value(p.x)}`, h("br"), `${yLabel} = ${fmt.num(p.y)}`);
        tip.style.left = `${Math.min(x + 60, u2.over.clientWidth - 120)}px`;
        tip.style.top = `${Math.max(0, y - 10)}px`;
      }],
    },
  }, data, plot);
  u.over.append(ring);
  u.over.addEventListener("click", () => {
    if (picked && onPick) onPick(picked);
  });
  const ro = new ResizeObserver(() => { const w = plot.clientWidth; if (w && Math.abs(w - u.width) > 2) u.setSize({ width: w, height: 260 }); });
  ro.observe(plot);
  return { destroy() { ro.disconnect(); u.destroy(); wrap.remove(); }, count: sorted.length };
}
