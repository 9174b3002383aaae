// System: the run's sys/… metrics (init(system_metrics=True)) against wall time, grouped by what
// they measure: CPU and memory, the process's memory, disk and network traffic since the run
// started, and for GPUs utilisation, memory, temperature and power (one line per GPU).

import { ApiError, v2 } from "../api.js";
import { chartsReady, LineChart, pointsFor } from "../charts.js";
import { colour, h, replace } from "../dom.js";

export const SYSTEM_PREFIX = "sys/";
export const isSystemMetric = (name) => name.startsWith(SYSTEM_PREFIX);

const GROUPS = [
  { title: "CPU and memory (%)", test: (m) => m === "sys/cpu_percent" || m === "sys/memory_percent" },
  { title: "Process memory (MB)", test: (m) => m === "sys/process_rss_mb" },
  { title: "Disk since start (MB)", test: (m) => m.startsWith("sys/disk_") },
  { title: "Network since start (MB)", test: (m) => m.startsWith("sys/net_") },
  { title: "GPU utilisation (%)", test: (m) => /^sys\/gpu\d+\/utilization$/.test(m) },
  { title: "GPU memory used (MB)", test: (m) => /^sys\/gpu\d+\/memory_used_mb$/.test(m) },
  { title: "GPU temperature (°C)", test: (m) => /^sys\/gpu\d+\/temperature_c$/.test(m) },
  { title: "GPU power (W)", test: (m) => /^sys\/gpu\d+\/power_w$/.test(m) },
];

const LABELS = {
  "sys/cpu_percent": "CPU", "sys/memory_percent": "memory", "sys/process_rss_mb": "RSS",
  "sys/disk_read_mb": "read", "sys/disk_write_mb": "written", "sys/net_sent_mb": "sent", "sys/net_recv_mb": "received",
};

function label(metric) {
  return LABELS[metric] || metric.slice(SYSTEM_PREFIX.length).replace(/\/[a-z_]+$/, "");
}

/** The chart groups of these metric names: [{title, metrics}], known groups first. */
export function groupsOf(names) {
  const left = names.filter(isSystemMetric).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const out = [];
  for (const g of GROUPS) {
    const metrics = left.filter(g.test);
    if (metrics.length) out.push({ title: g.title, metrics });
  }
  for (const m of left) if (!out.some((g) => g.metrics.includes(m))) out.push({ title: m, metrics: [m] });
  return out;
}

/** The System section of run `id`: `el` to place, `update(names)` with the run's metric names. */
export function systemSection(id) {
  const grid = h("div.chart-grid");
  const el = h("section.panel", { id: "system", hidden: true },
    h("div.row.wrap.section-head", h("h2", "System"), h("span.muted.hint", "against time · drag to zoom, double-click resets")), grid);
  let charts = new Map();
  let controller = null;
  let zoom = null;

  function setZoom(z) {
    zoom = z;
    for (const c of charts.values()) c.setZoom(z);
  }

  async function update(names) {
    const groups = groupsOf(names || []);
    el.hidden = !groups.length;
    const link = document.querySelector('.subnav a[href="#system"]');
    if (link) link.hidden = !groups.length;
    if (!groups.length) return;
    if (controller) controller.abort();
    controller = new AbortController();
    let data;
    try {
      [data] = await Promise.all([v2("/compare", {
        params: { ids: id, metric_names: groups.flatMap((g) => g.metrics).join(","), downsample: pointsFor(grid) },
        signal: controller.signal,
      }), chartsReady()]);
    } catch (err) {
      if (err.name === "AbortError" || err instanceof ApiError) return;
      throw err;
    }
    const titles = new Set(groups.map((g) => g.title));
    for (const [title, c] of charts) if (!titles.has(title)) { c.destroy(); charts.delete(title); }
    if (!charts.size) replace(grid);
    for (const g of groups) {
      let c = charts.get(g.title);
      if (!c) {
        c = new LineChart(grid, { title: g.title, syncKey: `system-${id}`, height: 180,
          onZoom: (min, max) => setZoom([min, max]), onReset: () => setZoom(null) });
        charts.set(g.title, c);
      }
      const series = g.metrics.map((m, i) => ({ key: m, label: label(m), colour: colour(i), ...(data.series[m]?.[id] || { steps: [], values: [], times: [] }) }));
      c.render(series, { xMode: "time", zoom });
    }
    grid.dataset.ready = "1";
  }

  function destroy() {
    if (controller) controller.abort();
    for (const c of charts.values()) c.destroy();
    charts = new Map();
  }

  return { el, update, destroy };
}
