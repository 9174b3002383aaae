// The runs view's analysis tools (analysis.md §5), kept out of runs.js: "Group by" (the table
// becomes one row per group), parallel coordinates whose brush narrows the filter, and the
// importance panel. Their state is in the URL like everything else: group=<fields>,
// pc=<param keys>&pcm=<metric.agg>, imp=<metric.agg>.

import { h, replace } from "../dom.js";
import { fieldLabel, GROUP_ATTRIBUTES, GroupTable } from "./groups.js";

const AGGS = ["last", "min", "max", "first"];

/**
 * ``get(k)``/``commit(changes, opts)``: the view's URL state; ``filterParams()``: the list's
 * parameters; ``known()``: {params, metrics} seen on the page; ``columns()``: {params, metrics}
 * of the shown columns (param keys; {label, agg}).
 */
export function analysisTools({ get, commit, filterParams, known, columns }) {
  const groupSel = h("select", { "aria-label": "Group by", onchange: (ev) => { addGroup(ev.target.value); ev.target.value = ""; } });
  const groupChips = h("span.group-chips");
  const pcBtn = h("button", { type: "button", "aria-expanded": "false", onclick: () => togglePc() }, "Parallel coordinates");
  const impBtn = h("button", { type: "button", "aria-expanded": "false", onclick: () => toggleImp() }, "Importance");
  const groupsEl = h("div.groups-view", { hidden: true });
  const pcPanel = h("section.panel.pc-panel", { hidden: true, "aria-label": "Parallel coordinates" });
  const impPanel = h("section.panel.imp-panel", { hidden: true, "aria-label": "Parameter importance" });
  const table = new GroupTable(groupsEl);

  const fields = () => get("group").split(",").filter(Boolean);
  const defaultMetric = () => {
    const c = columns().metrics[0];
    if (c) return `${c.label}.${c.agg}`;
    const m = [...known().metrics].sort()[0];
    return m ? `${m}.last` : "";
  };

  function addGroup(f) {
    if (!f || fields().includes(f)) return;
    commit({ group: [...fields(), f].slice(0, 5).join(","), page: null });
  }

  function togglePc() {
    if (get("pc")) { commit({ pc: null, pcm: null }, { reload: false }); refresh(); return; }
    const keys = (columns().params.length ? columns().params : [...known().params].sort()).slice(0, 5);
    if (!keys.length || !defaultMetric()) return;
    commit({ pc: keys.join(","), pcm: defaultMetric() }, { reload: false });
    refresh();
  }

  function toggleImp() {
    if (get("imp")) commit({ imp: null }, { reload: false });
    else if (defaultMetric()) commit({ imp: defaultMetric() }, { reload: false });
    refresh();
  }

  function metricSelect(value, label, onChange) {
    const names = [...new Set([...known().metrics, value.slice(0, value.lastIndexOf("."))])].filter(Boolean).sort();
    return h("select", { "aria-label": label, onchange: (ev) => onChange(ev.target.value) },
      names.flatMap((m) => AGGS.map((a) => h("option", { value: `${m}.${a}`, selected: `${m}.${a}` === value }, `${m} (${a})`))));
  }

  function renderControls() {
    const have = new Set(fields());
    replace(groupSel, h("option", { value: "" }, have.size ? "then by…" : "Group by…"),
      [...known().params].sort().filter((k) => !have.has(`params.${k}`)).map((k) => h("option", { value: `params.${k}` }, k)),
      GROUP_ATTRIBUTES.filter((f) => !have.has(f)).map((f) => h("option", { value: f }, fieldLabel(f))));
    replace(groupChips, fields().map((f) => h("span.run-chip", h("span.mono", fieldLabel(f)),
      h("button.x", { type: "button", "aria-label": `Stop grouping by ${fieldLabel(f)}`,
        onclick: () => commit({ group: fields().filter((x) => x !== f).join(","), page: null }) }, "×"))));
    pcBtn.setAttribute("aria-expanded", String(!!get("pc")));
    impBtn.setAttribute("aria-expanded", String(!!get("imp")));
  }

  let pcDrawn = "", impDrawn = "";
  const filterKey = () => JSON.stringify(filterParams());

  function renderPc() {
    const keys = get("pc").split(",").filter(Boolean);
    const sig = `${filterKey()}|${get("pc")}|${get("pcm")}`;
    if (sig === pcDrawn && keys.length) return; // the same plot: live refreshes leave it be
    pcDrawn = keys.length ? sig : "";
    pcPanel.hidden = !keys.length;
    if (!keys.length) { replace(pcPanel); return; }
    const chosen = new Set(keys);
    const axes = h("details.menu", h("summary", { class: "button" }, `Axes (${keys.length})`), h("div.menu-body",
      [...new Set([...known().params, ...keys])].sort().map((k) => h("label.check", h("input", { type: "checkbox", checked: chosen.has(k),
        onchange: (ev) => {
          const next = ev.target.checked ? [...keys, k] : keys.filter((x) => x !== k);
          if (next.length) { commit({ pc: next.join(",") }, { reload: false }); refresh(); }
        } }), h("span.mono", k)))));
    const area = h("div.pc-area");
    replace(pcPanel, h("div.row.wrap", h("h2", "Parallel coordinates"), axes,
      h("label.inline", "colour ", metricSelect(get("pcm") || defaultMetric(), "Metric axis", (v) => { commit({ pcm: v }, { reload: false }); refresh(); })),
      h("span.grow"), h("button.link", { type: "button", onclick: togglePc }, "Close")), area);
    // loaded when first opened: the list's first paint does not wait for it
    import("./parcoords.js").then(({ parallelCoordinates }) => parallelCoordinates(area, {
      params: filterParams(), keys, metric: get("pcm") || defaultMetric(), onBrush: (filter) => commit({ filter, page: null }) }));
  }

  function renderImp() {
    const metric = get("imp");
    const sig = `${filterKey()}|${metric}`;
    if (sig === impDrawn && metric) return;
    impDrawn = metric ? sig : "";
    impPanel.hidden = !metric;
    if (!metric) { replace(impPanel); return; }
    const area = h("div.imp-area", h("span.muted", "Weighing…"));
    replace(impPanel, h("div.row.wrap", h("h2", "Which params matter?"),
      h("label.inline", "for ", metricSelect(metric, "Importance metric", (v) => { commit({ imp: v }, { reload: false }); refresh(); })),
      h("span.grow"), h("button.link", { type: "button", onclick: toggleImp }, "Close")), area);
    import("./importance.js").then(({ importancePanel }) => importancePanel(area, { params: filterParams(), metric }));
  }

  /** Redraws every tool from the URL state (after the list loaded or a tool changed). */
  function refresh() {
    renderControls();
    groupsEl.hidden = !fields().length;
    if (fields().length) table.load({ fields: fields(), metricCols: columns().metrics, params: filterParams() });
    renderPc();
    renderImp();
  }

  return { controls: [groupSel, groupChips, pcBtn, impBtn], panels: [pcPanel, impPanel], groupsEl, grouped: () => fields().length > 0, refresh };
}
