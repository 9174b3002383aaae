// The app shell: which view a URL shows (router.js moves between them), the header's health
// line, and the banner shown while the server cannot be reached.

import { api, onConnection, onUnauthorized, prefetch } from "./api.js";
import { empty, h, replace } from "./dom.js";
import { onMode } from "./live.js";
import { pageParams } from "./query.js";
import { navigate, onNavigate } from "./router.js";
import { keyForm, signOut } from "./signin.js";

const ROUTES = [
  [/^\/(?:runs)?$/, "runs", () => import("./views/runs.js")],
  [/^\/runs\/([^/]+)$/, "runs", () => import("./views/run.js")],
  [/^\/compare$/, "compare", () => import("./views/compare.js")],
  [/^\/overview$/, "overview", () => import("./views/overview.js")],
  [/^\/bin$/, "bin", () => import("./views/bin.js")],
  [/^\/optimization(?:\/([^/]+))?$/, "optimization", () => import("./views/optimization.js")],
];

const main = document.getElementById("main");
let current = null; // {key, view, loader}
let renderSeq = 0;

async function render() {
  if (signingIn) return; // the sign-in form stays until a key is accepted
  const seq = ++renderSeq;
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const query = new URLSearchParams(location.search);
  const route = ROUTES.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll("header nav a")) {
    const active = route && a.dataset.view === route[1];
    if (active) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!route) {
    destroy();
    document.title = "Not found · runicorn lite";
    replace(main, empty("Page not found", `Nothing lives at ${path}.`, h("a.button", { href: "/" }, "Go to the runs")));
    return;
  }
  const [re, , loader] = route;
  const args = (path.match(re) || []).slice(1).map((s) => (s == null ? s : decodeURIComponent(s)));
  const key = `${re}|${args.join("|")}`;
  if (current && current.key === key && current.view.update) {
    current.view.update(query);
    return;
  }
  // The view being left stops first (its timers, its writes to the URL): while the next view's
  // module loads, the URL is already the next view's, and a late write would land on it.
  destroy();
  const module = await loader();
  if (seq !== renderSeq) return;
  const host = h("div.view");
  replace(main, host);
  current = { key, view: module.mount(host, { args, query }) || {} };
}

function destroy() {
  if (current && current.view.destroy) current.view.destroy();
  current = null;
}

// Same-origin links navigate inside the app (modified clicks and downloads keep their default).
document.addEventListener("click", (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = ev.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  if (url.hash && url.pathname === location.pathname && url.search === location.search) return;
  ev.preventDefault();
  navigate(url.href);
  if (!url.hash) main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
});
window.addEventListener("popstate", render);
onNavigate(render);

// "/" focuses the view's search box, as in most list UIs.
document.addEventListener("keydown", (ev) => {
  if (ev.key !== "/" || ev.target.closest("input, textarea, select, [contenteditable]")) return;
  const box = main.querySelector("[data-search]");
  if (box) { ev.preventDefault(); box.focus(); }
});

// ---- header: health line and the unreachable-server banner ----------------------------------

const healthEl = document.getElementById("health");
const banner = document.getElementById("banner");
let liveMode = "connecting";

async function refreshHealth() {
  try {
    const body = await api("/api/health");
    const idx = body.index || {};
    const runs = idx.runs_in_index ?? idx.runs ?? null;
    const parts = [];
    if (runs != null) parts.push(`${runs.toLocaleString("en-US")} runs indexed`);
    if (idx.scanning) parts.push("indexing…");
    parts.push(`v${body.version}`);
    const dot = h(`span.dot.m-${liveMode}`, { title: liveTitle(liveMode) });
    replace(healthEl, dot, parts.join(" · "));
  } catch {
    // the banner says it
  }
}

function liveTitle(mode) {
  return {
    live: "Live: updates arrive as runs write",
    connecting: "Connecting to live updates…",
    offline: "Server unreachable",
  }[mode] || mode;
}

onMode((mode) => {
  liveMode = mode;
  const dot = healthEl.querySelector(".dot");
  if (dot) { dot.className = `dot m-${mode}`; dot.title = liveTitle(mode); }
});

onConnection((up) => {
  banner.hidden = up;
  if (!up) {
    replace(banner, h("strong", "The server cannot be reached."),
      ` Is runicorn-lite still running at ${location.host}? Retrying… the page shows the last data it loaded.`);
  } else {
    refreshHealth();
  }
});

// On a narrow screen the tab bar scrolls: its cut-off edge fades (data-more) while tabs lie past
// it, so "Rec…" reads as "there is more this way", and the current tab is scrolled into view.
const tabs = document.querySelector('nav[aria-label="Views"]');
function markTabs() {
  const right = tabs.scrollLeft + tabs.clientWidth < tabs.scrollWidth - 1;
  const left = tabs.scrollLeft > 1;
  const more = right && left ? "both" : right ? "right" : left ? "left" : null;
  if (more) tabs.dataset.more = more; else delete tabs.dataset.more;
}
tabs.addEventListener("scroll", markTabs, { passive: true });
window.addEventListener("resize", markTabs);
new MutationObserver(() => {
  tabs.querySelector('[aria-current="page"]')?.scrollIntoView({ block: "nearest", inline: "nearest" });
  markTabs();
}).observe(tabs, { attributes: true, subtree: true, attributeFilter: ["aria-current"] });
markTabs();

// ---- signing in (serve --auth keys) ------------------------------------------------------------

const account = document.getElementById("account");
let signingIn = false;

function showSignIn(message) {
  if (signingIn) return;
  signingIn = true;
  destroy();
  renderSeq++; // a view still loading must not replace the form
  document.title = "Sign in · runicorn lite";
  const host = h("div.view");
  replace(main, host);
  keyForm(host, {
    heading: "Sign in",
    head: h("div.page-head", h("h1", "Sign in")),
    intro: ["This server shows its runs to holders of an API key. Ask its keeper for one, or create one where it runs with ",
      h("code", "runicorn-lite keys create --project NAME"), " (", h("code", "--all-projects"),
      " for every project). The key is sent once; this browser then holds a session until you sign out."],
    message,
    onDone: (who) => {
      signingIn = false;
      showAccount(who);
      render();
      refreshHealth();
    },
  });
}

function showAccount(who) {
  if (!who || who.auth !== "keys" || !who.signed_in) { replace(account); return; }
  const scope = who.all_projects ? "all projects" : `project ${who.project}`;
  replace(account, h("span.muted", who.read_only ? `${scope} (read-only)` : scope), " ",
    h("button.link", { type: "button", onclick: async () => { await signOut(); showAccount(null); showSignIn(); } }, "Sign out"));
}

onUnauthorized((detail) => showSignIn(signingIn ? undefined : detail));

async function start() {
  let who = null;
  try {
    who = await api("/api/auth/session");
  } catch {
    // unreachable: the banner says it, and the views retry
  }
  showAccount(who);
  if (who && who.auth === "keys" && !who.signed_in) { showSignIn(); return; }
  // The runs list is the first view most visits show: ask for its rows while its code loads.
  if (/^\/(runs)?\/?$/.test(location.pathname)) prefetch("/api/v2/experiments", pageParams(new URLSearchParams(location.search)));
  render();
}

start();
refreshHealth();
setInterval(refreshHealth, 10000);
