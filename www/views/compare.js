// Comparing experiments: every finished experiment is kept in a list (in this browser, the last
// few), named by what differs from the one on screen ("K=6", "runs=2, lr=0.003"). Pinned ones
// are drawn on the curves as dashed overlays and listed in the summary table, so "K=3 against
// K=6" needs no copying of numbers. The comparison exports as one JSON file, which Load
// results reads back with its pins.
import { encodeLink, normalizeResults } from '../engine.js';
import { $, banner, errorText, state } from '../page/state.js';

const HISTORY_KEY = 'sparse-playground/v1/history';
const MAX_KEPT = 8;

// What a label compares, in the link's words.
const FIELDS = [
  ['setting', (c) => c.setting],
  ['N', (c) => c.data.num_atoms],
  ['M', (c) => c.data.data_dim],
  ['K', (c) => c.data.sparsity_k],
  ['n', (c) => c.data.num_samples],
  ['noise', (c) => c.data.noise_std],
  ['signed', (c) => (c.data.signed_codes ? 1 : 0)],
  ['skew', (c) => c.data.frequency_skew],
  ['steps', (c) => c.train.steps],
  ['lr', (c) => c.train.lr],
  ['l1', (c) => c.train.l1_penalty],
  ['lrs', (c) => perKind(c, 'lr')],
  ['l1s', (c) => perKind(c, 'l1_penalty')],
  ['batch', (c) => c.train.batch_size ?? 'full'],
  ['log', (c) => c.train.log_every],
  ['evals', (c) => (c.train.eval_steps || []).join('-') || 'every'],
  ['runs', (c) => c.runs],
  ['seed', (c) => c.seed],
];

/** A config's per-kind learning rates or lambdas, as the link writes them ("none" if none). */
function perKind(c, field) {
  const per = c.train.per_method || {};
  const pairs = Object.keys(per).sort().filter((k) => per[k][field] != null).map((k) => `${k}:${per[k][field]}`);
  return pairs.join(',') || 'none';
}

/** The methods of a config as a short text (the names, in order). */
function methodNames(results) {
  return results.methods.map((m) => m.name).join(', ');
}

/**
 * What differs in `results`' experiment from the one on screen, in link words and the other
 * experiment's values: "K=6", "lr=0.003, runs=2".
 */
export function diffLabel(config, results = null) {
  if (!state.config) return 'experiment';
  const out = [];
  for (const [key, get] of FIELDS) {
    const mine = get(config);
    if (mine !== get(state.config)) out.push(`${key}=${mine}`);
  }
  if (JSON.stringify(config.methods) !== JSON.stringify(state.config.methods)) {
    out.push(results ? `methods: ${methodNames(results)}` : 'other methods');
  }
  return out.length ? out.join(', ') : 'same experiment';
}

function persist() {
  try {
    const kept = state.history.map((e) => ({ id: e.id, json: e.json, pinned: e.pinned, saved: e.saved }));
    localStorage.setItem(HISTORY_KEY, JSON.stringify(kept));
  } catch {
    // Storage full or unavailable: the list still works for this visit.
  }
}

/** The list kept by this browser, read once at start. */
export function loadHistory() {
  try {
    const raw = localStorage.getItem(HISTORY_KEY);
    const kept = raw ? JSON.parse(raw) : [];
    state.history = kept
      .map((e) => {
        try {
          const json = normalizeResults(e.json);
          return { id: e.id, json, results: JSON.parse(json), pinned: !!e.pinned, saved: e.saved };
        } catch {
          return null;
        }
      })
      .filter(Boolean);
  } catch {
    state.history = [];
  }
}

/** Keep a finished experiment's results (JSON text) in the list, newest first. */
export function addToHistory(json, { pinned = false } = {}) {
  const normalized = normalizeResults(json);
  const results = JSON.parse(normalized);
  const key = encodeLink(results.config, []);
  state.history = state.history.filter((e) => encodeLink(e.results.config, []) !== key);
  state.history.unshift({
    id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`,
    json: normalized,
    results,
    pinned,
    saved: new Date().toISOString(),
  });
  state.history = state.history.slice(0, MAX_KEPT);
  persist();
  renderCompare();
}

/** Pinned experiments other than the one on screen. */
export function pinned() {
  const current = state.config ? encodeLink(state.config, []) : '';
  return state.history.filter((e) => e.pinned && encodeLink(e.results.config, []) !== current);
}

/** Per method of a results file: mean and std over runs at every evaluation step. */
export function resultCurves(results, metric, xMode) {
  return results.methods.map((method) => {
    const bySteps = new Map();
    for (const run of method.runs) {
      for (const rec of run.log) {
        if (!bySteps.has(rec.step)) bySteps.set(rec.step, []);
        bySteps.get(rec.step).push(rec);
      }
    }
    const points = [];
    for (const [step, recs] of [...bySteps.entries()].sort((a, b) => a[0] - b[0])) {
      const v = recs.map((r) => r[metric]).filter((x) => x != null && Number.isFinite(x));
      if (!v.length) continue;
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
      const flops = recs[0].train_flops + recs[0].infer_flops;
      const x = xMode === 'flops' ? flops : step;
      points.push({ x, mean, std, other: xMode === 'flops' ? step : flops });
    }
    return { name: method.name, points };
  });
}

/** Rows for the summary table: each pinned experiment's methods, from their final summaries. */
export function pinnedRows() {
  const rows = [];
  for (const e of pinned()) {
    const label = diffLabel(e.results.config, e.results);
    for (const m of e.results.methods) rows.push({ name: `${m.name} · ${label}`, summary: m.final, methodName: m.name });
  }
  return rows;
}

/** The comparison as one file: every pinned experiment and the one on screen. */
export function comparisonJson(currentJson) {
  const parts = pinned().map((e) => e.results);
  if (currentJson) parts.unshift(JSON.parse(currentJson));
  return JSON.stringify({ version: 1, comparison: parts }, null, 2);
}

/** Read a comparison file (from `comparisonJson`): every part joins the list, pinned. */
export function loadComparison(text) {
  const parsed = JSON.parse(text);
  if (!parsed || !Array.isArray(parsed.comparison)) return false;
  for (const part of parsed.comparison.slice().reverse()) addToHistory(JSON.stringify(part), { pinned: true });
  return true;
}

let onChange = () => {};

/** What to redraw when pins change (the curves and the table). */
export function onPinsChange(fn) {
  onChange = fn;
}

export function renderCompare() {
  const list = $('compare-list');
  if (!list) return;
  const current = state.config ? encodeLink(state.config, []) : '';
  const items = state.history.map((e) => {
    const li = document.createElement('li');
    const same = encodeLink(e.results.config, []) === current;
    const label = document.createElement('label');
    label.className = 'check';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = e.pinned;
    box.disabled = same;
    box.addEventListener('change', () => {
      e.pinned = box.checked;
      persist();
      onChange();
    });
    const name = same ? 'this experiment' : diffLabel(e.results.config, e.results);
    const when = new Date(e.saved).toLocaleTimeString();
    label.append(box, ` ${name}`);
    const meta = document.createElement('span');
    meta.className = 'muted';
    meta.textContent = ` (${e.results.methods.length} methods, finished ${when})`;
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = 'Remove';
    remove.setAttribute('aria-label', `Remove ${name} from the list`);
    remove.addEventListener('click', () => {
      state.history = state.history.filter((x) => x !== e);
      persist();
      renderCompare();
      onChange();
    });
    li.append(label, meta, ' ', remove);
    li.dataset.pinned = String(e.pinned && !same);
    return li;
  });
  list.replaceChildren(...items);
  $('compare-empty').hidden = items.length > 0;
  $('export-compare').disabled = pinned().length === 0;
}

/** Load a file that may be a comparison: returns true when it was one. */
export function tryLoadComparison(text, name) {
  try {
    if (!loadComparison(text)) return false;
    banner('info', `Loaded the comparison in ${name}: its experiments are pinned below.`, 'load');
    onChange();
    return true;
  } catch (e) {
    banner('error', `${name} is not a comparison this page can read: ${errorText(e)}`, 'load');
    return true;
  }
}
