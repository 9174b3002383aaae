// The importance panel (analysis.md §4, §5): for a chosen metric, how much of its variance each
// param explains (bars), and the sign of its rank correlation with the metric.

import { ApiError, v2 } from "../api.js";
import { empty, h, replace } from "../dom.js";
import * as fmt from "../format.js";

/** Draws the bars into ``host`` for ``metric`` ("name.agg") over the runs of ``params``. */
export async function importancePanel(host, { params, metric }) {
  const { order_by: _o, order_desc: _d, ...filters } = params;
  let data;
  try {
    data = await v2("/importance", { params: { ...filters, metric } });
  } catch (err) {
    if (err instanceof ApiError && err.status !== 0) { replace(host, h("p.notice", err.detail)); return; }
    throw err;
  }
  if (!data.params.length) { replace(host, empty("No params to weigh", "These runs share no param common enough (in at least 10% of them).")); return; }
  const top = Math.max(...data.params.map((p) => p.importance), 1e-9);
  const sign = (c) => (c == null ? h("span.corr.none", { title: "not a number: no rank correlation" }, "·")
    : h(`span.corr.${c >= 0 ? "pos" : "neg"}`, { title: `Spearman correlation ${fmt.num(c)}` }, c >= 0 ? "+" : "−"));
  replace(host,
    h("p.muted", `${data.runs.toLocaleString("en-US")} runs with ${data.metric} · share of its variance each param explains`
      + ` (${data.model || "random forest"}) · + / − : the metric rises / falls with the param`),
    h("ol.importance", { "aria-label": `Importance for ${data.metric}` }, data.params.map((p) => h("li.imp-row", { dataset: { key: p.key } },
      h("span.imp-key.mono", { title: p.key }, p.key),
      sign(p.correlation),
      h("span.imp-track", h("span.imp-bar", { style: { width: `${(100 * p.importance) / top}%` } })),
      h("span.imp-val.num", `${(100 * p.importance).toFixed(1)}%`)))));
}
