// Numbers for people in status lines: durations and rates. Pure functions (no engine, no DOM),
// so that node can test them directly (tests/e2e/format.mjs).

/** A time left: "45 s", "2 min 5 s", "1 h 3 min"; rounded up to the unit shown, never "60 s". */
export function formatDuration(s) {
  if (!Number.isFinite(s) || s < 0) return '–';
  const secs = Math.ceil(s);
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) {
    const m = Math.floor(secs / 60);
    const r = secs % 60;
    return r ? `${m} min ${r} s` : `${m} min`;
  }
  const mins = Math.ceil(secs / 60);
  const h = Math.floor(mins / 60);
  const r = mins % 60;
  return r ? `${h} h ${r} min` : `${h} h`;
}

/** A rate: two significant digits below 100, whole numbers with separators above ("110", "2,300"). */
export function formatRate(v) {
  if (!Number.isFinite(v) || v < 0) return '–';
  if (v >= 100) return Math.round(v).toLocaleString('en-US');
  return String(Number(v.toPrecision(2)));
}
