// The runs table's columns when the URL does not choose them: the metrics of the page's runs,
// then the params that tell them apart (hyperparameters first; seeds, trial numbers and notes
// left out), then times, tags and the id; the view leaves some out when they do not fit.

// Params most people sweep, shown first.
const PREFERRED = [/(^|\.)(lr|learning_rate)$/, /batch_size$/, /(^|\.)(optim(izer)?(\.name)?)$/, /epochs$/, /weight_decay$/, /dropout$/, /(^|\.)model\./];

/** Column keys for ``rows`` (list rows with params and metrics), without the first ``drop`` of
 * those that give way when the table is too wide for the window. */
export function autoColumns(rows, drop = 0) {
  const paramVals = new Map();
  const metricCount = new Map();
  for (const r of rows) {
    for (const [k, v] of Object.entries(r.params || {})) {
      if (!paramVals.has(k)) paramVals.set(k, new Set());
      paramVals.get(k).add(JSON.stringify(v));
    }
    for (const m of Object.keys(r.metrics || {})) metricCount.set(m, (metricCount.get(m) || 0) + 1);
  }
  const distinct = (k) => paramVals.get(k).size;
  let params = [...paramVals.keys()].filter((k) => distinct(k) > 1 && !/(^|\.)(seed|trial|notes?|ids?|comment)$/i.test(k));
  if (!params.length) params = [...paramVals.keys()];
  const rank = (k) => {
    const i = PREFERRED.findIndex((re) => re.test(k));
    return [i < 0 ? PREFERRED.length : i, k.split(".").length, k];
  };
  params.sort((a, b) => { const ra = rank(a), rb = rank(b); return ra[0] - rb[0] || ra[1] - rb[1] || ra[2].localeCompare(rb[2]); });
  const metrics = [...metricCount.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 3).map(([m]) => `metrics.${m}.last`);
  const chosen = ["status", "name", "best", ...metrics, ...params.slice(0, 4).map((k) => `params.${k}`), "created", "duration", "tags", "id"];
  // Too wide for the window: tags give way first, then the ID column (the id goes under the
  // name), then params and metrics from the last, then the duration.
  const order = ["tags", "id", ...chosen.filter((k) => k.startsWith("params.")).reverse(), ...metrics.slice(1).reverse(), "duration"];
  const left = new Set(order.slice(0, drop));
  return chosen.filter((k) => !left.has(k));
}
