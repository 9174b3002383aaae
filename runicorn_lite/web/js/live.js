// The live event stream (`/api/v2/events`, Server-Sent Events), one per page, shared by the views.
// Read with fetch rather than EventSource so that a server that goes away is noticed at once (the
// banner), reconnection backs off on our terms, and Last-Event-ID is sent on every reconnect.
// Event types: experiment, metrics, removed, reset (also sent here after an outage: refetch).

import { isOnline, onConnection, reportReachable, reportUnauthorized, reportUnreachable, whenSignedIn } from "./api.js";

const handlers = new Map();
let started = false;
let lastId = null;
let mode = "connecting"; // connecting | live | offline
const modeListeners = new Set();

/** fn(data, type) for events of ``type``; returns an unsubscribe function. */
export function on(type, fn) {
  if (!handlers.has(type)) handlers.set(type, new Set());
  handlers.get(type).add(fn);
  start();
  return () => handlers.get(type).delete(fn);
}

/** Subscribes fn to several types at once. */
export function onAny(types, fn) {
  const offs = types.map((t) => on(t, fn));
  return () => offs.forEach((off) => off());
}

export function onMode(fn) {
  modeListeners.add(fn);
  fn(mode);
  return () => modeListeners.delete(fn);
}

function setMode(m) {
  if (m === mode) return;
  mode = m;
  for (const fn of modeListeners) fn(m);
}

function emit(type, data) {
  for (const fn of handlers.get(type) || []) {
    try {
      fn(data, type);
    } catch (err) {
      console.error(err);
    }
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function start() {
  if (started) return;
  started = true;
  loop();
  // After an outage, views refetch what they show (events may have been missed).
  onConnection((up) => { if (up) emit("reset", {}); });
}

async function loop() {
  let backoff = 500;
  for (;;) {
    if (!isOnline()) {
      setMode("offline");
      await sleep(1000);
      continue;
    }
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastId != null) headers["Last-Event-ID"] = lastId;
      const response = await fetch("/api/v2/events", { headers, cache: "no-store" });
      if (response.status === 401) {
        // No session (any more): wait for the sign-in instead of knocking every second.
        const signed = whenSignedIn();
        reportUnauthorized("Sign in to follow the runs live");
        setMode("connecting");
        await signed;
        continue;
      }
      if (!response.ok || !response.body) throw new Error(`events: ${response.status}`);
      reportReachable();
      setMode("live");
      backoff = 500;
      await read(response.body);
      // The server closed the stream (restart, shutdown): it is probably going away.
      throw new Error("stream closed");
    } catch {
      setMode("connecting");
      // A failed connect means the server is down; let the API module probe until it is back.
      try {
        const r = await fetch("/api/health", { cache: "no-store" });
        if (!r.ok) throw new Error();
      } catch {
        reportUnreachable();
      }
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 5000);
    }
  }
}

async function read(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "message", data = [], id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (id != null) lastId = id;
        if (data.length) {
          let parsed = null;
          try {
            parsed = JSON.parse(data.join("\n"));
          } catch {
            parsed = data.join("\n");
          }
          emit(event, parsed);
        }
        event = "message"; data = []; id = null;
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? "" : line.slice(colon + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "event") event = val;
      else if (field === "data") data.push(val);
      else if (field === "id") id = val;
    }
  }
}
