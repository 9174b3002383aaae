// Signing in with an API key: the key goes to the server once (POST /api/auth/session), which
// answers with an HttpOnly session cookie that every later request, the event stream and the
// log WebSocket carry. The page never keeps the key (nor can it read the cookie).

import { api, ApiError, signedIn } from "./api.js";
import { h, replace } from "./dom.js";

/** POSTs the key; resolves with what the session may see, or throws ApiError. */
export async function signIn(key) {
  const who = await api("/api/auth/session", { method: "POST", body: { key } });
  signedIn(who);
  return who;
}

export async function signOut() {
  await api("/api/auth/session", { method: "DELETE" });
}

/** A refused key in plain words: what is wrong with it and what to do (not how to send a header). */
export function keyProblem(ex) {
  if (ex.status === 401 && /format/i.test(ex.detail)) return "That is not an API key: keys start with sk_live_. Copy the whole key that runicorn-lite keys create printed.";
  if (ex.status === 401) return "This key is not valid here: it may be mistyped, revoked, or made for another data folder. Check it, or create a new one with runicorn-lite keys create --project NAME.";
  if (ex.status === 429) return "Too many wrong keys from this browser. Wait a minute, then try again.";
  if (ex.status === 0) return "The server cannot be reached.";
  return ex.detail;
}

/**
 * Renders a key form into ``host``: ``heading``, ``intro`` (text or nodes), an error
 * ``message`` to show at once; ``onDone(who)`` runs once the server accepted the key.
 */
export function keyForm(host, { heading = "Sign in", intro, message, onDone, head = null }) {
  const input = h("input.mono", { type: "password", name: "key", placeholder: "sk_live_…", "aria-label": "API key", autocomplete: "off", size: 40 });
  const err = h("p.notice", { role: "alert", hidden: !message }, message || "");
  const form = h("form.panel.key-form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      let who;
      try {
        who = await signIn(key);
      } catch (ex) {
        err.textContent = ex instanceof ApiError ? keyProblem(ex) : String(ex);
        err.hidden = false;
        return;
      } finally {
        input.value = ""; // the key leaves the page as soon as it is sent
      }
      onDone(who);
    },
  },
  h("h2", "API key"),
  h("p", ...(Array.isArray(intro) ? intro : [intro])),
  h("div.row.wrap", h("label.inline.key-label", "Key ", input), h("button.primary", { type: "submit" }, heading)), err);
  replace(host, head, form);
  input.focus();
}
