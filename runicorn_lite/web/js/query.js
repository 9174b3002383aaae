// The runs list's API parameters from its URL, shared by the runs view and the shell (which
// starts that request while the view's code is still loading).

import { dayToTs } from "./format.js";

export const PER_PAGE = 100;

/** The list parameters of the current filter and sort (no paging). */
export function filterParams(state) {
  const get = (k) => state.get(k) ?? "";
  const p = {
    search: get("q"), status: get("status"), project: get("project"), tags: get("tags"),
    created_after: dayToTs(get("after")), created_before: dayToTs(get("before"), true),
    filter: get("filter"), order_by: get("sort") || "created_at", order_desc: get("asc") === "1" ? "false" : "true",
  };
  if (get("deleted") === "1") p.include_deleted = "true";
  return p;
}

/** The parameters of one page of the list, with params and metric summaries. */
export function pageParams(state) {
  return { ...filterParams(state), include: "params,metrics", page: Math.max(1, parseInt(state.get("page") || "1", 10) || 1), per_page: PER_PAGE };
}
