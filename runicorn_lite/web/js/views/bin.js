// The recycle bin: soft-deleted runs (V2's list with include_deleted=only), restored or emptied
// for good (batch-purge) from here.

import { ApiError, v2 } from "../api.js";
import { badge, confirmDialog, empty, h, replace, toast } from "../dom.js";
import * as fmt from "../format.js";
import { onAny } from "../live.js";

const PAGE = 1000; // the list's largest page: a bin holds fewer runs than that, or shows the first

export function mount(host) {
  let runs = [];
  let total = 0;
  const selected = new Set();
  let destroyed = false;

  async function load() {
    let body;
    try {
      body = await v2("/experiments", { params: { include_deleted: "only", per_page: PAGE } });
    } catch (err) {
      if (err instanceof ApiError && err.status === 0) return;
      throw err;
    }
    if (destroyed) return;
    runs = body.experiments.sort((a, b) => (b.deleted_at - a.deleted_at) || (a.id < b.id ? 1 : -1));
    total = body.total;
    for (const id of [...selected]) if (!runs.some((r) => r.id === id)) selected.delete(id);
    render();
  }

  function render() {
    document.title = "Recycle bin · runicorn lite";
    const head = h("div.page-head", h("h1", "Recycle bin"), h("span.count", `${total} run${total === 1 ? "" : "s"}${total > runs.length ? `, the ${runs.length} deleted last shown` : ""}`));
    if (!runs.length) {
      replace(host, head, empty("The recycle bin is empty", "Runs you delete land here, and can be restored until the bin is emptied.", h("a.button", { href: "/runs" }, "Back to the runs")));
      return;
    }
    const ids = [...selected];
    const all = runs.length > 0 && runs.every((r) => selected.has(r.id));
    replace(host, head,
      h("div.row.actions",
        ids.length ? h("strong", `${ids.length} selected`) : h("span.muted", "Select runs to restore them."),
        h("button.primary", { type: "button", disabled: !ids.length, onclick: () => restore(ids) }, "Restore"),
        h("span.grow"),
        h("button.danger", { type: "button", onclick: emptyBin }, "Empty recycle bin")),
      h("div.table-wrap", h("table.grid",
        h("thead", h("tr",
          h("th.cb", h("input", { type: "checkbox", "aria-label": "Select every run", checked: all, onchange: (ev) => { runs.forEach((r) => (ev.target.checked ? selected.add(r.id) : selected.delete(r.id))); render(); } })),
          ["Run", "Status", "Deleted", "Reason", "Created"].map((t) => h("th", { scope: "col", class: ["Deleted", "Created"].includes(t) ? "num" : null }, t)))),
        h("tbody", runs.map((r) => h("tr", { class: selected.has(r.id) ? "sel" : null },
          h("td.cb", h("input", { type: "checkbox", "aria-label": `Select ${r.id}`, checked: selected.has(r.id), onchange: (ev) => { if (ev.target.checked) selected.add(r.id); else selected.delete(r.id); render(); } })),
          h("td.name", h("a", { href: `/runs/${encodeURIComponent(r.id)}` }, r.alias || r.path || `${r.project} / ${r.name}`), h("div.id", r.id)),
          h("td", badge(r.status)),
          h("td.num", { title: fmt.time(r.deleted_at, true) }, fmt.ago(r.deleted_at)),
          h("td", r.delete_reason || fmt.dash),
          h("td.num", fmt.time(r.created_at))))))));
  }

  async function restore(ids) {
    try {
      const res = await v2("/experiments/batch-restore", { method: "POST", body: { exp_ids: ids } });
      toast(`Restored ${res.restored} run${res.restored === 1 ? "" : "s"}`);
      ids.forEach((id) => selected.delete(id));
      await load();
    } catch (err) {
      toast(err.detail || String(err), "error");
    }
  }

  async function emptyBin() {
    const ok = await confirmDialog("Empty the recycle bin?", `This deletes the ${total} run director${total === 1 ? "y" : "ies"} from disk for good. It cannot be undone.`, "Delete for good");
    if (!ok) return;
    try {
      // A page of the bin at a time, until it is empty or a page removes nothing (those runs
      // could not be removed: the answer says why).
      for (;;) {
        const page = await v2("/experiments", { params: { include_deleted: "only", per_page: PAGE } });
        if (!page.experiments.length) break;
        const res = await v2("/experiments/batch-purge", { method: "POST", body: { exp_ids: page.experiments.map((e) => e.id), confirm: true } });
        if (res.failed) throw new Error(`${res.failed} run${res.failed === 1 ? "" : "s"} could not be removed: ${Object.values(res.errors)[0]}`);
      }
      toast("The recycle bin is empty");
      await load();
    } catch (err) {
      toast(err.detail || String(err), "error");
    }
  }

  const off = onAny(["experiment", "removed", "reset"], (d) => { if (!d || !d.id || d.deleted_at !== undefined || runs.some((r) => r.id === d.id)) load(); });
  load();
  return { destroy() { destroyed = true; off(); } };
}
