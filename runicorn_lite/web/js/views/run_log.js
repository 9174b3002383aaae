// A run's log on its page: the last lines of logs.txt, then what the run appends, read through
// V2's log endpoint by byte offset (no V1 WebSocket): polled while the run is running, and at
// once when the live stream says the run changed.

import { ApiError, v2 } from "../api.js";

const MAX_LOG_LINES = 5000;
const TAIL_LINES = 1000;
const POLL_MS = 1000;

/**
 * Fills ``pre`` with the log of run ``id`` and follows it while ``running()``; scrolls to the end
 * while ``followCb`` is checked. Returns {poke() (read now), stop()}.
 */
export function followLog(pre, followCb, id, running) {
  let offset = null;
  let timer = null;
  let busy = false;
  let stopped = false;
  let lines = 0;

  function append(text, reset) {
    if (reset || offset === null) {
      pre.textContent = "";
      lines = 0;
    }
    if (!text) {
      if (!lines) pre.textContent = "(no output yet)";
      return;
    }
    if (!lines) pre.textContent = "";
    pre.append(document.createTextNode(text));
    lines += (text.match(/\n/g) || []).length;
    // Text nodes are whole answers: drop the oldest while the log holds too many lines.
    while (lines > MAX_LOG_LINES && pre.childNodes.length > 1) {
      lines -= (pre.firstChild.textContent.match(/\n/g) || []).length;
      pre.firstChild.remove();
    }
    if (followCb.checked) pre.scrollTop = pre.scrollHeight;
  }

  async function read() {
    if (busy || stopped) return;
    busy = true;
    try {
      for (;;) {
        const params = offset === null ? { tail: TAIL_LINES } : { offset };
        const body = await v2(`/experiments/${encodeURIComponent(id)}/logs`, { params });
        if (stopped) return;
        const first = offset === null;
        append(body.text, body.reset || first);
        const more = body.next_offset < body.size && body.next_offset > (offset ?? -1) && body.text.length > 0;
        offset = body.next_offset;
        if (!more) break; // the rest of a long file comes in the next answers at once
      }
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    } finally {
      busy = false;
    }
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (!stopped && running()) timer = setTimeout(read, POLL_MS);
  }

  read();
  return {
    poke() { if (!busy) { clearTimeout(timer); read(); } },
    stop() { stopped = true; clearTimeout(timer); },
  };
}
