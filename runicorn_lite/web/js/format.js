// How numbers, times and durations read everywhere in the app.

const DASH = "–";

/** A metric or param number: 4–5 significant digits, exponent form for very large/small. */
export function num(v) {
  if (v == null || v === "") return DASH;
  if (typeof v === "boolean") return String(v);
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e12) return v.toLocaleString("en-US");
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3).replace(/\.?0+e/, "e");
  return String(Number(v.toPrecision(5)));
}

/** A param value as text (strings as they are, others as JSON). */
export function value(v) {
  if (v === undefined) return DASH;
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : num(v);
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

const pad = (n) => String(n).padStart(2, "0");

/** Unix seconds → local "2025-01-14 15:30". */
export function time(ts, seconds = false) {
  if (ts == null) return DASH;
  const d = new Date(ts * 1000);
  const s = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return seconds ? `${s}:${pad(d.getSeconds())}` : s;
}

/** ISO-8601 text → unix seconds (or null). */
export function isoToTs(iso) {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t / 1000;
}

/** Unix seconds → "3 min ago". */
export function ago(ts) {
  if (ts == null) return DASH;
  const s = Date.now() / 1000 - ts;
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  if (s < 86400 * 30) return `${Math.round(s / 86400)} d ago`;
  return time(ts).slice(0, 10);
}

/** Seconds → "1h 02m", "3m 05s", "12.3s". */
export function duration(s) {
  if (s == null || !Number.isFinite(s) || s < 0) return DASH;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(Math.round(s % 60))}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${pad(m % 60)}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

/** A run's duration: ended − started, or up to now while it runs. */
export function runDuration(e) {
  const end = e.ended_at ?? (e.status === "running" ? Date.now() / 1000 : null);
  return end == null || e.created_at == null ? null : end - e.created_at;
}

/** "project / name", the way a run is named in lists. */
export function runTitle(e) {
  return e.alias || `${e.project} / ${e.name}`;
}

/** YYYY-MM-DD (local) → unix seconds at the start (or end) of that day. */
export function dayToTs(day, endOfDay = false) {
  if (!day) return null;
  const [y, m, d] = day.split("-").map(Number);
  if (!y || !m || !d) return null;
  const t = new Date(y, m - 1, d, endOfDay ? 23 : 0, endOfDay ? 59 : 0, endOfDay ? 59 : 0).getTime();
  return t / 1000;
}

export const dash = DASH;
