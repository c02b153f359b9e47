// Time estimates calibrated on the machine that runs them. An estimate times a short trial of
// the work in isolation; the page then runs it beside its own drawing, messages and the other
// workers, which costs a factor the trial cannot see (measured on a 2-core VM: an experiment
// 1.8x its trial's estimate, a sweep about 3x). Each run that goes from start to end without
// a pause records its ratio of actual to estimated time in this browser; later estimates are
// scaled by the median of the last few. Pure functions below, storage in `calibration`.

const KEEP = 5;

/** The median of the recorded ratios (1 with none), for scaling a raw estimate. */
export function scaleOf(ratios) {
  const ok = (ratios || []).filter((r) => Number.isFinite(r) && r > 0).sort((a, b) => a - b);
  if (!ok.length) return 1;
  const mid = ok.length >> 1;
  return ok.length % 2 ? ok[mid] : (ok[mid - 1] + ok[mid]) / 2;
}

/**
 * The ratios after a run of `seconds` that was estimated (uncalibrated) at `raw`: runs too
 * short to time (under 3 s) or off by more than 10x either way (a tab in the background, a
 * machine asleep) are not recorded; the last KEEP are kept.
 */
export function recordRatio(ratios, raw, seconds) {
  const list = (ratios || []).filter((r) => Number.isFinite(r) && r > 0);
  if (!(raw > 0) || !(seconds >= 3)) return list;
  const ratio = seconds / raw;
  if (ratio < 0.1 || ratio > 10) return list;
  return [...list, ratio].slice(-KEEP);
}

/** Stored ratios per kind of work ('experiment' or 'sweep'), in this browser. */
export const calibration = {
  key: (kind) => `sparse-playground/v1/estimate-ratios/${kind}`,
  read(kind) {
    try {
      const v = JSON.parse(localStorage.getItem(this.key(kind)) || '[]');
      return Array.isArray(v) ? v : [];
    } catch {
      return [];
    }
  },
  scale(kind) {
    return scaleOf(this.read(kind));
  },
  record(kind, raw, seconds) {
    try {
      localStorage.setItem(this.key(kind), JSON.stringify(recordRatio(this.read(kind), raw, seconds)));
    } catch {
      // Storage full or refused: estimates stay uncalibrated.
    }
  },
};
