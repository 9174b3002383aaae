// DOM building. Text from data only ever becomes text nodes (never HTML), and styles are set
// through the CSSOM, which the Content-Security-Policy allows where style attributes are not.

const PROPS = new Set(["value", "checked", "disabled", "hidden", "selected", "open", "indeterminate", "tabIndex", "min", "max", "step"]);

/** h("button.primary", {onclick, title}, "text", child, [more]) → Element. */
export function h(spec, props, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (props && (typeof props !== "object" || props instanceof Node || Array.isArray(props))) {
    children.unshift(props);
    props = null;
  }
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className += (el.className ? " " : "") + value;
    else if (key === "style") Object.assign(el.style, value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Appends children (strings become text nodes; null/false are skipped; arrays are flattened). */
export function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces every child of ``el``. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** An empty state: a title, a line of help and optional extra content (code, buttons). */
export function empty(title, help, ...extra) {
  return h("div.empty", { role: "status" }, h("h2", title), help ? h("p", help) : null, ...extra);
}

/** A status badge with the status colour. */
export function badge(status) {
  return h(`span.badge.s-${status || "unknown"}`, status || "unknown");
}

/** A modal confirmation; resolves true when the user confirms. */
export function confirmDialog(title, text, action = "Delete", danger = true) {
  return new Promise((resolve) => {
    const dlg = h("dialog.confirm", { "aria-label": title },
      h("h2", title), h("p", text),
      h("div.row.end",
        h("button", { type: "button", onclick: () => dlg.close("no") }, "Cancel"),
        h(`button.${danger ? "danger" : "primary"}`, { type: "button", onclick: () => dlg.close("yes") }, action)));
    dlg.addEventListener("close", () => { dlg.remove(); resolve(dlg.returnValue === "yes"); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

let toastTimer = 0;
/** A short message at the bottom of the window. */
export function toast(text, kind = "info") {
  let el = document.getElementById("toast");
  if (!el) {
    el = h("div#toast.toast", { role: "status", "aria-live": "polite" });
    el.id = "toast";
    document.body.append(el);
  }
  el.className = `toast t-${kind} show`;
  el.textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 4000);
}

/** Calls fn at most once per ``ms`` (trailing call kept), so bursts of events cost one refresh. */
export function throttle(fn, ms) {
  let timer = 0, last = 0, pending = false;
  const run = () => { timer = 0; last = performance.now(); pending = false; fn(); };
  const wrapped = () => {
    if (timer) { pending = true; return; }
    const wait = Math.max(0, last + ms - performance.now());
    timer = setTimeout(run, wait);
  };
  wrapped.cancel = () => { clearTimeout(timer); timer = 0; pending = false; };
  wrapped.pending = () => pending || !!timer;
  return wrapped;
}

/** A stable colour for the i-th series (distinct for the first ten, then hashed hues). */
const PALETTE = ["#4f46e5", "#e8590c", "#0ca678", "#d6336c", "#1c7ed6", "#f59f00", "#7048e8", "#2b8a3e", "#c92a2a", "#15aabf"];
export function colour(i) {
  return i < PALETTE.length ? PALETTE[i] : `hsl(${(i * 137.508) % 360} 65% 45%)`;
}
