// The page's state (one object, no other module-level mutable globals), the record fields,
// and the banners that report errors and notices.
import { recordFields } from '../engine.js';
import { colorOf } from '../charts.js';

/** What the page opens with when the address names nothing: the quick main experiment. */
// The known-dictionary setting shows the amortisation gap plainly within seconds: per-sample
// inference with the true dictionary far above the SAE.
export const DEFAULT_PRESET = 'quick-known-d';

export const STORAGE_KEY = 'sparse-playground/v1/last-results';

export const FIELDS = Array.from(recordFields());

export const F = Object.fromEntries(FIELDS.map((name, i) => [name, i]));

export const $ = (id) => document.getElementById(id);

export const state = {
  config: null, // the validated config shown in the form
  worker: null,
  ready: false,
  playing: false,
  finished: false,
  cancelled: false,
  names: [],
  kinds: [], // the methods' config kinds, parallel to names
  colors: [], // one per method, by kind (../charts.js kindColors)
  runs: 1,
  rows: [], // rows[method][run] = array of Float64Array records
  done: 0,
  total: 0,
  trained: 0,
  trainTotal: 0,
  evaluating: false,
  rate: 0,
  source: 'live', // 'live' or 'loaded' (a results file)
  loadedFrom: 'file', // where loaded results came from: 'file' or 'storage'
  loadedJson: null,
  trueDictionary: null,
  history: [], // finished experiments to compare with: {id, json, results, pinned, saved}
  trueCodes: null, // N x samples of the first test samples, known before any evaluation
  hidden: [], // link keys whose controls a lesson link hides (`<key>_hide=1`)
  snapshot: null,
  view: { method: 0, run: 0 },
  autorun: false,
  preset: null, // the preset whose experiment the form shows (markPresets), else null
  rawEstimate: null, // the trial's estimate before calibration (./calibrate.mjs)
  timing: null, // {start, paused} of a run timed from its start, for the calibration
  // The run's estimated time from the start in seconds (undefined while measured, null when
  // unknown), whether a long one was confirmed, and whether a run waits for the estimate.
  estimate: null,
  longConfirmed: false,
  waitEstimate: false,
  backend: 'auto', // what the user asked for: auto, cpu or gpu (the `backend` link key)
  deferred: false, // a large experiment waits for Run before it is built
  formInvalid: false, // the form shows a value the engine refused: nothing runs until it is fixed
  renderQueued: false,
};

export function banner(kind, text, id) {
  if (id) $('banners').querySelector(`[data-id="${id}"]`)?.remove();
  const div = document.createElement('div');
  div.className = `banner ${kind}`;
  if (id) div.dataset.id = id;
  div.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  div.textContent = text;
  const close = document.createElement('button');
  close.type = 'button';
  close.textContent = 'Dismiss';
  close.style.marginLeft = '12px';
  close.addEventListener('click', () => div.remove());
  div.append(close);
  $('banners').append(div);
  return div;
}

export function errorText(e) {
  return e && e.message ? e.message : String(e);
}

/**
 * Mark `control` invalid with `text` beside it (an alert the control is described by), scrolled
 * into view: how both forms show a refused field. `clearFieldMarks(scope)` undoes it.
 */
export function markField(control, text, id) {
  const note = document.createElement('span');
  note.className = 'field-error';
  note.id = id;
  note.setAttribute('role', 'alert');
  note.textContent = text;
  control.setAttribute('aria-invalid', 'true');
  control.setAttribute('aria-describedby', note.id);
  (control.closest('label') || control).after(note);
  const smooth = !window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  note.scrollIntoView({ block: 'nearest', behavior: smooth ? 'smooth' : 'auto' });
}

export function clearFieldMarks(scope) {
  for (const el of document.querySelectorAll(`${scope} [aria-invalid="true"]`)) {
    el.removeAttribute('aria-invalid');
    el.removeAttribute('aria-describedby');
  }
  for (const el of document.querySelectorAll(`${scope} .field-error`)) el.remove();
}

/** Method `m`'s colour: its kind's hue, the same in every view. */
export function methodColor(m) {
  return state.colors[m] ?? colorOf(m);
}
