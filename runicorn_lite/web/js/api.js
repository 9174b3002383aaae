// The API client: one place that talks HTTP, turns error bodies into ApiError, and knows whether
// the server can be reached (the app shows a banner while it cannot, and refreshes once it can).

export class ApiError extends Error {
  constructor(status, detail, body = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

let online = true;
let probing = false;
const listeners = new Set();

/** fn(online: boolean) on every change of reachability. */
export function onConnection(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function isOnline() {
  return online;
}

function setOnline(value) {
  if (value === online) return;
  online = value;
  for (const fn of listeners) fn(value);
  if (!value) probe();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// While the server is away, one small request every 1.5 s tells when it is back.
async function probe() {
  if (probing) return;
  probing = true;
  while (!online) {
    await sleep(1500);
    try {
      const r = await fetch("/api/health", { cache: "no-store" });
      if (r.ok) setOnline(true);
    } catch {
      // still away
    }
  }
  probing = false;
}

/** Marks the server unreachable (the live stream reports its own failures here). */
export function reportUnreachable() {
  setOnline(false);
}

export function reportReachable() {
  setOnline(true);
}

// ---- signing in ---------------------------------------------------------------------------------
// A 401 from V1/V2 means the server wants a key (serve --auth keys) and this page has no live
// session: the shell shows the sign-in form, and whoever waits (the event stream) resumes once
// signed in.

const authListeners = new Set();
let signInWaiters = [];

/** fn(detail) when a request was refused for want of a key. */
export function onUnauthorized(fn) {
  authListeners.add(fn);
  return () => authListeners.delete(fn);
}

export function reportUnauthorized(detail) {
  for (const fn of authListeners) fn(detail);
}

/** Resolves at the next sign-in. */
export function whenSignedIn() {
  return new Promise((resolve) => signInWaiters.push(resolve));
}

export function signedIn(who) {
  const waiters = signInWaiters;
  signInWaiters = [];
  for (const resolve of waiters) resolve(who);
}

/** URLSearchParams of the entries that have a value. */
export function qs(params) {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v == null || v === "" || (Array.isArray(v) && !v.length)) continue;
    out.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  return out;
}

const early = new Map();

/** Starts a GET now, to be taken by the first ``api()`` call for the same URL. */
export function prefetch(path, params) {
  const url = `${path}?${qs(params)}`;
  if (!early.has(url)) early.set(url, api(path, { params }));
}

/**
 * A JSON request. Throws ApiError(status, detail) for an error answer, and
 * ApiError(0, "…unreachable…") when the server cannot be reached.
 */
export async function api(path, { params, method = "GET", body, headers = {}, signal } = {}) {
  const query = params ? qs(params).toString() : "";
  const url = query ? `${path}?${query}` : path;
  if (method === "GET" && early.has(url)) {
    const started = early.get(url);
    early.delete(url);
    return started;
  }
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    setOnline(false);
    throw new ApiError(0, "The server cannot be reached");
  }
  setOnline(true);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = (data && (data.detail || data.error)) || `${response.status} ${response.statusText}`;
    // (The optimization view asks for its own key; the session endpoint answers its own form.)
    if (response.status === 401 && !path.startsWith("/api/iris/") && !path.startsWith("/api/auth/")) reportUnauthorized(String(detail));
    throw new ApiError(response.status, String(detail), data);
  }
  return data;
}

/** Shorthand for the V2 API. */
export const v2 = (path, opts) => api(`/api/v2${path}`, opts);
