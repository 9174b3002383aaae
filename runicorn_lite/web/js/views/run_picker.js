// Which metrics a run page charts: all of them, or, for a run with many, the first MAX_CHARTS
// (by name) and those picked from the rest (the URL's m=, a comma list).

import { h } from "../dom.js";
import * as fmt from "../format.js";

export const MAX_CHARTS = 24;

/** The metric names to chart, or null for all of them (the compare request then names none). */
export function charted(detail, picked) {
  const all = detail?.metrics_summary?.available_metrics || [];
  if (all.length <= MAX_CHARTS) return null;
  const known = new Set(all);
  return [...new Set([...all.slice(0, MAX_CHARTS), ...picked.split(",").filter((n) => known.has(n))])];
}

/** A search box over the metrics not charted; ``onPick(m)`` gets the new value of m=. */
export function picker(detail, picked, id, onPick) {
  const all = detail?.metrics_summary?.available_metrics || [];
  const names = charted(detail, picked);
  if (!names) return null;
  const shown = new Set(names);
  const listId = `more-metrics-${id}`;
  const input = h("input", { type: "search", list: listId, placeholder: "metric name", "aria-label": "Chart another metric" });
  input.addEventListener("change", () => {
    const name = input.value.trim();
    if (!all.includes(name) || shown.has(name)) return;
    onPick([...picked.split(",").filter(Boolean), name].join(","));
  });
  return h("label.inline", `${fmt.num(names.length)} of ${fmt.num(all.length)} metrics charted; add `, input,
    h("datalist", { id: listId }, all.filter((n) => !shown.has(n)).map((n) => h("option", { value: n }))));
}
