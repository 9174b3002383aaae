// Metric curves for charts: `/api/v2/compare` answers columnar series with times for one or many
// runs, downsampled per series to the points a chart can show. A server without it (an older
// runicorn-lite) is read through `metrics/fast` instead, which has no times.

import { ApiError, v2 } from "./api.js";

let compareMissing = false;

/**
 * {series: {metric: {runId: {steps, values, times}}}, total_points, experiments?}
 * for ``ids``, restricted to ``metrics`` (all when null) and a step range [lo, hi].
 */
export async function fetchSeries(ids, { metrics = null, downsample = 1000, range = null, signal } = {}) {
  const stepRange = range ? `${range[0] == null ? "" : Math.floor(range[0])}:${range[1] == null ? "" : Math.ceil(range[1])}` : null;
  if (!compareMissing) {
    try {
      return await v2("/compare", {
        params: { ids: ids.join(","), metric_names: metrics, downsample: Math.min(100000, Math.max(2, downsample)), step_range: stepRange },
        signal,
      });
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404 || /Experiment .* not found/.test(err.detail)) throw err;
      compareMissing = true;
    }
  }
  const out = { series: {}, total_points: {} };
  await Promise.all(ids.map(async (id) => {
    const n = Math.max(1, (metrics || []).length || 3);
    const data = await v2(`/experiments/${encodeURIComponent(id)}/metrics/fast`, {
      params: { metric_names: metrics, downsample: Math.min(100000, Math.max(2, downsample * n)), step_range: stepRange }, signal,
    });
    for (const name of data.columns.slice(1)) {
      const steps = [], values = [];
      for (const row of data.rows) {
        if (row[name] === undefined) continue;
        steps.push(row.global_step);
        values.push(row[name]);
      }
      (out.series[name] ||= {})[id] = { steps, values, times: steps.map(() => null) };
      (out.total_points[name] ||= {})[id] = data.total_points;
    }
  }));
  return out;
}

export function hasTimes() {
  return !compareMissing;
}
