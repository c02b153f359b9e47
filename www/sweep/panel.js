// Sweep mode: the sweep form (presets, axes, seeds, the recovery options, the base experiment),
// its link, the run controls over a pool of workers (./pool.js), the figures (../views/sweep.js),
// exports, loading results made by the CLI (shards merge), and resuming after a reload: every
// finished unit is kept in this browser under the sweep's link, so a reload (or a crash) redoes
// only the cells not yet done.
import {
  decodeSweepLink,
  encodeSweepLink,
  mergeSweepResults,
  solverDefaults,
  sweepCellConfig,
  sweepPresetConfig,
  sweepResultsJson,
  validateSweep,
} from '../engine.js';
import { downloadURL } from '../charts.js';
import { poolSize } from '../engine-pool.js';
import { downloadText } from '../page/files.js';
import { calibration } from '../page/calibrate.mjs';
import { formatDuration, formatRate } from '../page/format.mjs';
import { $, banner, clearFieldMarks, errorText, markField } from '../page/state.js';
import { attachSvgReadout } from '../readout.js';
import { estimateSweep } from './estimate.js';
import { svgToPng } from '../svgplot.js';
import { paramLabel, sweepFigures, sweepTable } from '../views/sweep.js';
import { METRICS, SweepModel, metricsFor } from './model.js';
import { SweepPool } from './pool.js';

export const DEFAULT_SWEEP = 'phase';
const STORE_PREFIX = 'sparse-playground/v1/sweep/';
const STORE_INDEX = 'sparse-playground/v1/sweeps';
const STORE_KEEP = 4;
const RENDER_EVERY_MS = 300;
const STATUS_EVERY_MS = 250;

// Amortised encoders a recovery sweep can train in each cell (the base experiment's methods).
const ENCODERS = [
  { id: 'sae', text: 'SAE', make: () => ({ kind: 'sae', bias: false }), match: (m) => m.kind === 'sae' },
  { id: 'topk_sae', text: 'TopK SAE (k = K)', make: () => ({ kind: 'topk_sae', k: 0, bias: false }), match: (m) => m.kind === 'topk_sae' },
  { id: 'mlp', text: 'MLP encoder, hidden', make: (h) => ({ kind: 'mlp', hidden: [h], bias: false }), match: (m) => m.kind === 'mlp' },
];
const ENCODER_STEPS = 2000;
const MLP_HIDDEN = 64;

const PARAMS = ['N', 'M', 'K', 'n', 'noise', 'l1', 'k', 'h', 'steps', 'lr', 'bias', 'solver_steps', 'delta', 'rho'];

// FISTA in a recovery sweep stops on a duality gap, at most `steps` iterations: the phase
// preset's solver is the default (a fixed count would draw a false boundary).
function recoveryFista(steps, nonneg) {
  const base = sweepPresetConfig('phase').recovery.solvers[0];
  return { ...base, steps: steps ?? base.steps, nonneg };
}

const SOLVERS = [
  { id: 'fista', text: 'FISTA, non-negative', make: (steps) => recoveryFista(steps, true), match: (s) => s.solver === 'fista' && s.nonneg },
  { id: 'fista-signed', text: 'FISTA, signed', make: (steps) => recoveryFista(steps, false), match: (s) => s.solver === 'fista' && !s.nonneg },
  { id: 'omp', text: 'OMP (greedy, K atoms)', make: () => solverDefaults('omp'), match: (s) => s.solver === 'omp' },
  { id: 'adam', text: 'Adam on log-codes (the paper\'s)', make: (steps) => ({ ...solverDefaults('adam'), ...(steps !== undefined ? { steps } : {}) }), match: (s) => s.solver === 'adam' },
];

export const sweep = {
  checked: null, // validateSweep's answer for the sweep shown
  model: null,
  pool: new SweepPool((e) => onPoolEvent(e)),
  playing: false,
  formInvalid: '', // why the form shows a value the engine refused (Run waits for a valid form)
  source: 'live', // 'live', 'stored' (restored after a reload) or 'loaded' (a results file)
  ui: { metric: null, diffA: 0, diffB: 1 },
  fractions: [],
  rate: 0,
  rateDone: 0,
  rateTime: 0,
  lastRender: 0,
  renderTimer: null,
  saveTimer: null,
  figures: [],
  autorun: false,
  cursors: new Map(), // figure id -> the keyboard cursor of its readout, across renders
  // The time of the units still to do, measured before Run (see ./estimate.js): undefined
  // while measured, null when unknown; whether a long sweep was confirmed; the probe's stop.
  estimate: null,
  longConfirmed: false,
  stopEstimate: null,
  shapes: new Map(), // cell -> "M = .., K = .., N = .." of the sweep shown
  backend: 'auto', // asked for: auto, cpu or gpu (the link's `backend`)
  backendInfo: null, // where the units compute (the engine's answer), while a pool runs
};

const BACKENDS = ['auto', 'cpu', 'gpu'];

/** The signal dimension M, sparsity K and latents N cell `cell` ran (what its axes resolve to). */
function shapeText(cell) {
  if (!sweep.shapes.has(cell)) {
    let text = '';
    try {
      const d = sweepCellConfig(sweep.model.config, cell).data;
      text = `M = ${d.data_dim}, K = ${d.sparsity_k}, N = ${d.num_atoms}`;
    } catch {
      text = ''; // an invalid cell says why in its own text
    }
    sweep.shapes.set(cell, text);
  }
  return sweep.shapes.get(cell);
}

/**
 * Validate for this page: the rules, then the memory of the units computed at once (one per
 * worker of the pool, which never has more workers than the sweep has units).
 */
function check(config) {
  return validateSweep(config, poolSize(Infinity));
}

/** The link of the sweep shown (the part after #), with `extra` pairs. */
export function sweepLink(extra = []) {
  return encodeSweepLink(sweep.checked.config, extra);
}

function shareUrl() {
  const extra = $('sweep-link-autorun').checked ? [['run', '1']] : [];
  if (sweep.backend !== 'auto') extra.push(['backend', sweep.backend]);
  const url = new URL(window.location.href);
  url.hash = sweepLink(extra);
  return url.toString();
}

function updateLink() {
  history.replaceState(null, '', `#${sweepLink()}`);
  $('sweep-share-link').value = shareUrl();
}

/**
 * Show `config` (a sweep config object): validate it (in Rust), stop what ran, restore the
 * units this browser kept for it, redraw. `fromForm`: an edit, whose error goes beside the
 * form and keeps the sweep shown; otherwise errors throw.
 */
export function setSweep(config, { fromForm = false, autorun = false, target = null } = {}) {
  let checked;
  try {
    checked = check(config);
  } catch (e) {
    if (!fromForm) throw e;
    formError(errorText(e), target);
    return false;
  }
  clearFormErrors();
  showError('');
  sweep.pool.terminate();
  sweep.playing = false;
  sweep.checked = checked;
  sweep.model = new SweepModel(checked);
  sweep.source = 'live';
  sweep.rate = 0;
  sweep.fractions = [];
  const kept = loadStored();
  if (kept.length) {
    sweep.model.addJson(kept);
    sweep.source = 'stored';
  }
  const metrics = metricsFor(checked.config.kind);
  if (!metrics.includes(sweep.ui.metric)) sweep.ui.metric = metrics[0];
  const labels = checked.methods;
  const find = (prefix, other) => {
    const i = labels.findIndex((l) => l.startsWith(prefix));
    return i >= 0 ? i : other;
  };
  sweep.ui.diffA = Math.min(find('Sparse coding', 0), labels.length - 1);
  sweep.ui.diffB = find('SAE', sweep.ui.diffA === 0 ? 1 : 0);
  if (sweep.ui.diffB === sweep.ui.diffA) sweep.ui.diffB = sweep.ui.diffA === 0 ? 1 : 0;
  writeForm();
  updateLink();
  startEstimate();
  document.body.dataset.sweepState = sweep.model.unitsDone === sweep.model.unitCount ? 'finished' : 'ready';
  render(true);
  updateControls();
  setStatus();
  if (kept.length && sweep.model.unitsDone < sweep.model.unitCount) {
    banner('info', `Kept from before: ${sweep.model.unitsDone} of ${sweep.model.unitCount} units of this sweep. Run computes only the rest.`, 'sweep-restore');
  }
  if (autorun && sweep.model.unitsDone < sweep.model.unitCount) play();
  return true;
}

// Sweeps estimated above this ask before they start, naming the estimate.
const LONG_SWEEP_SECONDS = 120;

/** Measure the units still to do (see ./estimate.js); a sweep waiting for it starts after. */
function startEstimate() {
  if (sweep.stopEstimate) sweep.stopEstimate();
  sweep.stopEstimate = null;
  sweep.longConfirmed = false;
  sweep.autorun = false;
  $('sweep-long-run').hidden = true;
  delete document.body.dataset.sweepEstimate;
  delete document.body.dataset.sweepEstimateOn;
  const remaining = sweep.model.remainingUnits();
  if (!remaining.length) {
    sweep.estimate = null;
    return;
  }
  sweep.estimate = undefined;
  sweep.rawEstimate = null;
  sweep.timing = null;
  const model = sweep.model;
  sweep.estimateGpu = null;
  sweep.stopEstimate = estimateSweep(sweep.checked.config, remaining, poolSize(remaining.length), sweep.backend, (seconds, chosen) => {
    if (sweep.model !== model) return;
    sweep.stopEstimate = null;
    // Where the units will compute: a GPU (the chooser settled on one) or the CPU's pool.
    sweep.estimateGpu = chosen && chosen.kind === 'gpu' ? chosen : null;
    // The trial's figure, scaled by what this machine's earlier sweeps took against theirs.
    sweep.rawEstimate = seconds;
    sweep.estimate = Number.isFinite(seconds) ? seconds * calibration.scale(estimateKind()) : seconds;
    document.body.dataset.sweepEstimateOn = sweep.estimateGpu ? 'gpu' : 'cpu';
    document.body.dataset.sweepEstimate = String(sweep.estimate);
    setStatus();
    if (sweep.autorun) {
      sweep.autorun = false;
      play();
    }
  });
}

/** The calibration of the estimate's kind: GPU sweeps and CPU ones are scaled apart. */
function estimateKind() {
  return sweep.estimateGpu ? 'sweep-gpu' : 'sweep';
}

/** Where the estimate was timed, in words. */
function estimatePlace() {
  return sweep.estimateGpu ? `on the GPU (${sweep.estimateGpu.name})` : 'on this machine';
}

/** "Run anyway" on a long sweep. */
function confirmLongSweep() {
  sweep.longConfirmed = true;
  $('sweep-long-run').hidden = true;
  play();
}

export function openSweepPreset(name, options = {}) {
  return setSweep(sweepPresetConfig(name), options);
}

/** Open a sweep link (throws when it cannot be read). */
export function openSweepLink(hash) {
  const { config, extra } = decodeSweepLink(hash);
  const autorun = extra.some(([k, v]) => k === 'run' && v === '1');
  const asked = extra.find(([k]) => k === 'backend');
  if (asked && !BACKENDS.includes(asked[1])) {
    banner('error', `backend=${asked[1]} is not a backend this page knows (auto, cpu or gpu); using auto.`, 'sweep-backend');
  }
  setBackend(asked && BACKENDS.includes(asked[1]) ? asked[1] : 'auto');
  setSweep(config, { autorun });
}

/** Whether the address's hash is the sweep shown (so a hashchange is ours). */
export function isCurrentSweep(hash) {
  return !!sweep.checked && hash === sweepLink();
}

// --- Storage: finished units kept per sweep link, the few most recent sweeps.

function storeKey() {
  return STORE_PREFIX + sweepLink();
}

function loadStored() {
  try {
    const raw = localStorage.getItem(storeKey());
    if (!raw) return [];
    const { units } = JSON.parse(raw);
    return Array.isArray(units) ? units.filter((u) => typeof u === 'string') : [];
  } catch {
    return [];
  }
}

function saveSoon() {
  if (sweep.saveTimer) return;
  sweep.saveTimer = setTimeout(() => {
    sweep.saveTimer = null;
    saveNow();
  }, 1000);
}

function saveNow() {
  if (!sweep.model) return;
  const key = storeKey();
  const value = JSON.stringify({ saved: new Date().toISOString(), units: Array.from(sweep.model.json.values()) });
  let index = [];
  try {
    index = JSON.parse(localStorage.getItem(STORE_INDEX) || '[]').filter((k) => typeof k === 'string');
  } catch {
    index = [];
  }
  index = [key, ...index.filter((k) => k !== key)];
  for (let attempt = 0; attempt < STORE_KEEP; attempt += 1) {
    try {
      while (index.length > STORE_KEEP) localStorage.removeItem(index.pop());
      localStorage.setItem(key, value);
      localStorage.setItem(STORE_INDEX, JSON.stringify(index));
      return;
    } catch {
      // Full: forget the oldest other sweep and try again.
      if (index.length <= 1) break;
      localStorage.removeItem(index.pop());
    }
  }
  banner('info', 'This browser\'s storage is full: the cells done will not survive a reload (export the results JSON to keep them).', 'sweep-storage');
}

function forgetStored() {
  try {
    localStorage.removeItem(storeKey());
  } catch {
    // Nothing to forget.
  }
}

// --- Running.

export function play() {
  if (!sweep.model) return;
  if (sweep.playing) return;
  const remaining = sweep.model.remainingUnits();
  if (!remaining.length) return;
  if (sweep.pool.size === 0 && !sweep.longConfirmed) {
    if (sweep.estimate === undefined) {
      sweep.autorun = true; // the estimate is a moment away: start (or ask) once it is in
      setStatus();
      return;
    }
    if (sweep.estimate > LONG_SWEEP_SECONDS) {
      $('sweep-long-run-text').textContent = `This sweep is estimated to take about ${formatDuration(sweep.estimate)} ${estimatePlace()} (timed on ${sweep.estimateGpu ? 'its first stack of cells' : 'a few of its cells'}). Run it now?`;
      $('sweep-long-run').hidden = false;
      $('sweep-long-run-yes').focus();
      return;
    }
  }
  $('sweep-long-run').hidden = true;
  sweep.playing = true;
  if (sweep.source === 'stored') sweep.source = 'live';
  sweep.rate = 0;
  sweep.rateDone = sweep.model.unitsDone;
  sweep.rateTime = performance.now();
  $('banners').querySelector('[data-id="sweep-restore"]')?.remove();
  if (sweep.pool.size > 0 && !sweep.pool.playing) {
    sweep.pool.resume();
  } else {
    // The units estimated, timed from here to the end without a pause, calibrate later ones.
    sweep.timing = sweep.rawEstimate > 0 ? { start: performance.now(), paused: false, raw: sweep.rawEstimate, kind: estimateKind() } : null;
    sweep.backendInfo = null;
    sweep.pool.start(sweep.checked.config, remaining, sweep.backend);
  }
  document.body.dataset.sweepState = 'running';
  updateControls();
  setStatus();
}

export function pause() {
  if (!sweep.playing) return;
  if (sweep.timing) sweep.timing.paused = true;
  sweep.playing = false;
  const stopped = sweep.pool.pause();
  updateControls();
  // The workers finish the slice they are in (tens of milliseconds); the state says 'paused'
  // once they have, so the count shown is the count kept.
  stopped.then(() => {
    if (sweep.playing || document.body.dataset.sweepState !== 'running') return;
    document.body.dataset.sweepState = 'paused';
    saveNow();
    // Draw now: a unit reported in the last slice may still wait for the throttled redraw,
    // and the picture should show exactly the cells kept.
    render(true);
    updateControls();
    setStatus();
  });
}

/** Stop the workers (their memory is freed); the cells done stay, Run does the rest. */
export function cancel() {
  sweep.playing = false;
  sweep.pool.terminate();
  sweep.fractions = [];
  document.body.dataset.sweepState = 'cancelled';
  saveNow();
  render(true);
  updateControls();
  setStatus();
}

function startOver() {
  sweep.pool.terminate();
  sweep.playing = false;
  forgetStored();
  sweep.model = new SweepModel(sweep.checked);
  sweep.source = 'live';
  document.body.dataset.sweepState = 'ready';
  render(true);
  updateControls();
  setStatus();
}

/** The backend asked for (a link, the select): shown in the select, used by the next Run. */
function setBackend(value) {
  sweep.backend = value;
  $('sweep-backend').value = value;
}

/** Where the units compute, as the engine says: the status line and, if not as asked, why. */
function showBackend(info) {
  const wasGpu = sweep.backendInfo?.kind === 'gpu';
  sweep.backendInfo = info;
  document.body.dataset.sweepBackend = info.kind;
  $('banners').querySelector('[data-id="sweep-backend"]')?.remove();
  // Why not the GPU asked for, why auto took it (both speeds), or why it stopped.
  if (info.notice && (sweep.backend === 'gpu' || info.kind === 'gpu' || wasGpu)) {
    banner('info', `Sweep: ${info.notice}`, 'sweep-backend');
  }
}

function onPoolEvent(e) {
  switch (e.type) {
    case 'backend':
      showBackend(e.backend);
      setStatus();
      break;
    case 'results':
      sweep.model.addJson(e.results);
      saveSoon();
      render(false);
      setStatus();
      break;
    case 'progress':
      sweep.fractions = e.fractions;
      // The bar between units, at most every STATUS_EVERY_MS (each redraw costs a frame).
      if (performance.now() - (sweep.lastStatus || 0) >= STATUS_EVERY_MS) setStatus();
      break;
    case 'finished':
      sweep.playing = false;
      sweep.fractions = [];
      if (sweep.timing && !sweep.timing.paused) calibration.record(sweep.timing.kind, sweep.timing.raw, (performance.now() - sweep.timing.start) / 1000);
      sweep.timing = null;
      document.body.dataset.sweepState = 'finished';
      saveNow();
      render(true);
      updateControls();
      setStatus();
      break;
    case 'error':
      sweep.playing = false;
      document.body.dataset.sweepState = 'error';
      banner('error', `The sweep stopped: ${e.message}. The cells done are kept; Run continues.`, 'sweep-engine');
      saveNow();
      updateControls();
      setStatus();
      break;
    default:
      break;
  }
}

function setStatus() {
  sweep.lastStatus = performance.now();
  const m = sweep.model;
  if (!m) return;
  const partial = sweep.fractions.reduce((a, b) => a + b, 0);
  const done = m.unitsDone + (sweep.playing ? partial : 0);
  $('sweep-progress').max = m.unitCount;
  $('sweep-progress').value = done;
  const now = performance.now();
  if (sweep.playing && now - sweep.rateTime > 1000) {
    const instant = ((done - sweep.rateDone) * 1000) / (now - sweep.rateTime);
    sweep.rate = sweep.rate === 0 ? instant : 0.7 * sweep.rate + 0.3 * instant;
    sweep.rateDone = done;
    sweep.rateTime = now;
  }
  const unitsText = m.seeds > 1 ? ` (${m.unitsDone} / ${m.unitCount} cell-seeds)` : '';
  let text = `${m.cellsDone} / ${m.cells} cells${unitsText}`;
  if (sweep.playing && sweep.rate > 0) {
    const perCell = `${formatRate(m.seeds > 1 ? sweep.rate / m.seeds : sweep.rate)} cells/s`;
    text += ` · ${perCell} · ${formatDuration((m.unitCount - done) / sweep.rate)} left`;
  }
  const invalid = Array.from({ length: m.cells }, (_, c) => m.invalid(c)).filter(Boolean).length;
  if (invalid) text += ` · ${invalid} invalid cell${invalid === 1 ? '' : 's'} (grey)`;
  const info = sweep.backendInfo;
  if (sweep.playing && info) {
    text += info.kind === 'gpu' ? ` · on the GPU (${info.name}), up to ${info.maxMembers} cells per stack` : ' · on the CPU';
  }
  if (m.unitsDone === m.unitCount) text += ' · done';
  else if (!sweep.playing && m.unitsDone > 0) {
    const why = { loaded: 'loaded from a file', stored: 'kept from before; Run does the rest' };
    text += ` · ${why[sweep.source] || 'paused'}`;
  }
  if (!sweep.playing && sweep.pool.size === 0 && m.unitsDone < m.unitCount) {
    if (sweep.estimate === undefined) text += ' · timing a few cells…';
    else if (Number.isFinite(sweep.estimate)) text += ` · about ${formatDuration(sweep.estimate)} ${estimatePlace()}`;
  }
  $('sweep-status').textContent = text;
}

function updateControls() {
  const m = sweep.model;
  const complete = !!m && m.unitsDone === m.unitCount;
  const play = $('sweep-play');
  play.disabled = !m || complete || !!sweep.formInvalid;
  const why = $('sweep-play-why');
  why.textContent = sweep.formInvalid ? `Fix the marked field to run: ${sweep.formInvalid}` : '';
  why.hidden = !sweep.formInvalid;
  play.textContent = sweep.playing ? 'Pause' : m && m.unitsDone > 0 && !complete ? 'Resume sweep' : 'Run sweep';
  play.setAttribute('aria-pressed', String(sweep.playing));
  $('sweep-cancel').disabled = !sweep.playing && sweep.pool.size === 0;
  $('sweep-clear').disabled = !m || m.unitsDone === 0;
  $('sweep-export-json').disabled = !m || m.unitsDone === 0;
  $('sweep-export-csv').disabled = !m || m.unitsDone === 0;
}

// --- Figures.

function render(now) {
  if (now) {
    clearTimeout(sweep.renderTimer);
    sweep.renderTimer = null;
    draw();
    return;
  }
  if (sweep.renderTimer) return;
  // Redraws while units arrive take at most a tenth of the main thread, which the workers
  // share the cores with: the wait grows with the last draw's cost (a 20 x 20 phase map with
  // its contours and readouts is tens of milliseconds; every 300 ms it kept the main thread
  // busy a third of a sweep on 2 cores).
  const every = Math.max(RENDER_EVERY_MS, 9 * (sweep.drawMs || 0));
  const wait = Math.max(0, every - (performance.now() - sweep.lastRender));
  sweep.renderTimer = setTimeout(() => {
    sweep.renderTimer = null;
    requestAnimationFrame(draw);
  }, wait);
}

function draw() {
  const start = performance.now();
  sweep.lastRender = start;
  try {
    drawFigures();
  } finally {
    sweep.drawMs = performance.now() - start;
  }
}

function drawFigures() {
  const m = sweep.model;
  if (!m) return;
  if (sweep.shapesOf !== m) {
    sweep.shapesOf = m;
    sweep.shapes.clear();
  }
  sweep.figures = sweepFigures(m, sweep.ui);
  const root = $('sweep-figures');
  // A map read by keyboard keeps its focus and cursor through the re-render.
  const focused = root.contains(document.activeElement) ? document.activeElement.closest('figure')?.dataset.id : null;
  root.replaceChildren(
    ...sweep.figures.map((f, i) => {
      const fig = document.createElement('figure');
      fig.dataset.fig = f.kind;
      fig.dataset.id = f.id ?? `${f.kind}-${i}`;
      const h = document.createElement('h3');
      const title = document.createElement('span');
      title.textContent = f.title;
      const actions = document.createElement('span');
      for (const [fmt, text] of [['svg', 'SVG'], ['png', 'PNG']]) {
        const b = document.createElement('button');
        b.type = 'button';
        b.textContent = text;
        b.dataset.export = fmt;
        b.dataset.index = String(i);
        b.setAttribute('aria-label', `${f.title}: download as ${text}`);
        actions.append(b);
      }
      h.append(title, actions);
      const holder = document.createElement('div');
      holder.innerHTML = f.svg; // built from escaped text by ../svgplot.js and ../charts.js
      fig.append(h, holder);
      if (f.caption) {
        const cap = document.createElement('figcaption');
        cap.textContent = f.caption;
        fig.append(cap);
      }
      return fig;
    }),
  );
  for (const fig of root.querySelectorAll('figure')) {
    const holder = fig.querySelector(':scope > div');
    if (!holder.querySelector('rect[data-readout]')) continue;
    const id = fig.dataset.id;
    if (!sweep.cursors.has(id)) sweep.cursors.set(id, {});
    attachSvgReadout(holder, sweep.cursors.get(id), (rect) => (rect.dataset.cell ? shapeText(Number(rect.dataset.cell)) : ''));
    if (id === focused) holder.focus();
  }
  if ($('sweep-table-box').open) $('sweep-table').innerHTML = sweepTable(m, sweep.ui.metric);
  document.body.dataset.sweepCells = String(m.cellsDone);
}

function fileStem() {
  const c = sweep.checked.config;
  const axes = c.axes.map((a) => a.param).join('-') || 'cell';
  return `sparse-playground-sweep-${c.kind}-${axes}`;
}

async function exportFigure(index, fmt) {
  const f = sweep.figures[index];
  if (!f) return;
  const name = `${fileStem()}-${f.id.replace(/[^A-Za-z0-9=.-]+/g, '_')}`;
  if (fmt === 'svg') {
    downloadText(f.svg, `${name}.svg`, 'image/svg+xml');
    return;
  }
  try {
    const blob = await svgToPng(f.svg, 2);
    const url = URL.createObjectURL(blob);
    downloadURL(url, `${name}.png`);
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (e) {
    banner('error', `The PNG could not be made: ${errorText(e)}`, 'sweep-png');
  }
}

/** The sweep's results file, in the CLI's schema. */
export function sweepJson() {
  const info = sweep.backendInfo;
  const backend = info ? { kind: info.kind, name: info.name, ...(info.notice ? { notice: info.notice } : {}) } : undefined;
  return sweepResultsJson(sweep.checked.config, Array.from(sweep.model.json.values()), backend);
}

/** Show results files of one sweep (the CLI's, the page's, shards of one sweep). */
export function loadSweepResults(texts) {
  const merged = JSON.parse(mergeSweepResults(texts));
  setSweep(merged.sweep);
  sweep.model.addJson(merged.units.map((u) => JSON.stringify(u)));
  sweep.source = 'loaded';
  saveNow();
  render(true);
  updateControls();
  setStatus();
  document.body.dataset.sweepState = sweep.model.unitsDone === sweep.model.unitCount ? 'finished' : 'ready';
  return merged;
}

// --- The form.

function showError(text) {
  const box = $('sweep-error');
  box.textContent = text;
  box.hidden = !text;
}

// Controls of the sweep form by the engine's path for them.
const SWEEP_FIELDS = {
  seeds: 'sweep-seeds',
  'base.data.num_atoms': 'sweep-N',
  'base.data.num_samples': 'sweep-trials',
  'base.train.steps': 'sweep-enc-steps',
  'recovery.success.tol': 'sweep-tol',
};

/** The control an error about `path` is about (else the one just edited, `target`). */
function controlFor(path, target) {
  const solver = /^recovery\.solvers\[(\d+)\]/.exec(path || '');
  if (solver) {
    const ticked = SOLVERS.filter((s) => document.querySelector(`[data-solver="${s.id}"]`)?.checked);
    const on = ticked[Number(solver[1])];
    const box = on && document.querySelector(`[data-solver-steps="${on.id}"]`);
    if (box) return box;
  }
  const axis = /^axes\[(\d+)\]/.exec(path || '');
  if (axis) {
    const values = document.querySelector(`#sweep-axes [data-axis="${axis[1]}"][data-role="values"]`);
    if (values) return values;
  }
  if (path && SWEEP_FIELDS[path]) return $(SWEEP_FIELDS[path]);
  return target && target.matches?.('#sweep-form input, #sweep-form select, #sweep-form textarea') ? target : null;
}

function clearFormErrors() {
  clearFieldMarks('#sweep-form');
  sweep.formInvalid = '';
  updateControls();
}

/**
 * A refused edit, as the experiment form shows one: the control it is about marked, the
 * message beside it, and Run disabled with the reason beside it until the form is valid (so
 * nothing runs that the form does not show).
 */
function formError(message, target) {
  clearFormErrors();
  const m = /^([\w.[\]]+): ([\s\S]*)$/.exec(message);
  const control = controlFor(m ? m[1] : null, target);
  const text = m && control ? m[2] : message;
  if (control) {
    markField(control, text, `sweep-error-${control.id || control.dataset.solverSteps || control.dataset.axis || 'field'}`);
  }
  sweep.formInvalid = text;
  // The summary names the control in the form's words, not the engine's path.
  const name = control && (control.getAttribute('aria-label') || control.closest('label')?.textContent.trim());
  showError(`Not applied: ${name ? `${name}: ${text}` : message}`);
  updateControls();
}

function writeForm() {
  const c = sweep.checked.config;
  const recovery = c.kind === 'recovery';
  $('sweep-kind').textContent = recovery
    ? 'Recovery: each cell draws a random Gaussian dictionary (known to the solvers) and K-sparse codes, and measures the fraction of test signals each solver recovers.'
    : 'Experiment: each cell runs the base experiment\'s methods with the cell\'s values and keeps their final evaluation; each seed redraws the data and the initialisation.';
  const axes = $('sweep-axes');
  axes.replaceChildren(
    ...c.axes.map((axis, i) => {
      const row = document.createElement('div');
      row.className = 'axis-row';
      const sel = document.createElement('select');
      sel.dataset.axis = String(i);
      sel.dataset.role = 'param';
      sel.setAttribute('aria-label', `Axis ${i + 1}: parameter`);
      for (const p of PARAMS) {
        if (!recovery && (p === 'delta' || p === 'rho')) continue;
        const o = document.createElement('option');
        o.value = p;
        o.textContent = paramLabel(p);
        sel.append(o);
      }
      sel.value = axis.param;
      const input = document.createElement('input');
      input.type = 'text';
      input.dataset.axis = String(i);
      input.dataset.role = 'values';
      input.value = axis.values.map((v) => +v.toPrecision(6)).join(', ');
      input.setAttribute('aria-label', `Axis ${i + 1}: values, separated by commas`);
      input.title = 'Values separated by commas, or a range a:b:count (evenly spaced, both ends included)';
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = '×';
      remove.dataset.axis = String(i);
      remove.dataset.role = 'remove';
      remove.setAttribute('aria-label', `Remove the ${axis.param} axis`);
      row.append(sel, input);
      if (i > 0) {
        // Taken with the axis above: as many values, paired one by one (the paper's (N, M, K)
        // shapes), instead of every combination.
        const withLabel = document.createElement('label');
        withLabel.className = 'with';
        withLabel.title = 'Take these values together with the axis above (as many values, paired one by one) instead of every combination';
        const box = document.createElement('input');
        box.type = 'checkbox';
        box.dataset.axis = String(i);
        box.dataset.role = 'with';
        box.checked = !!axis.with_previous;
        box.setAttribute('aria-label', `Axis ${i + 1}: take its values with axis ${i}`);
        withLabel.append(box, 'paired with the axis above');
        row.append(withLabel);
      }
      row.append(remove);
      return row;
    }),
  );
  const add = $('sweep-add-axis');
  add.replaceChildren(new Option('choose…', ''));
  for (const p of PARAMS) {
    if (c.axes.some((a) => a.param === p)) continue;
    if (!recovery && (p === 'delta' || p === 'rho')) continue;
    add.append(new Option(paramLabel(p), p));
  }
  $('sweep-seeds').value = c.seeds;
  $('sweep-size').textContent = `${sweep.checked.cells} cell(s) × ${c.seeds} seed(s) = ${sweep.checked.units} units; the largest needs about ${sweep.checked.unitMemory}.`;
  $('sweep-recovery').hidden = !recovery;
  if (recovery) {
    $('sweep-N').value = c.base.data.num_atoms;
    $('sweep-trials').value = c.base.data.num_samples;
    $('sweep-signed').checked = !!c.base.data.signed_codes;
    const box = $('sweep-solvers');
    box.replaceChildren(
      ...SOLVERS.map((s) => {
        const on = c.recovery.solvers.find(s.match);
        const label = document.createElement('label');
        label.className = 'check';
        const cb = document.createElement('input');
        cb.type = 'checkbox';
        cb.dataset.solver = s.id;
        cb.checked = !!on;
        label.append(cb, ` ${s.text}`);
        if (s.id !== 'omp') {
          const steps = document.createElement('input');
          steps.type = 'number';
          steps.min = '1';
          steps.step = '1';
          steps.dataset.solverSteps = s.id;
          const solver = on || s.make(undefined);
          steps.value = solver.steps;
          const capped = solver.solver === 'fista' && solver.tol != null;
          steps.setAttribute('aria-label', `${s.text}: ${capped ? 'most iterations' : 'iterations'}`);
          label.append(' ', capped ? 'at most ' : '', steps, ' it.');
          if (capped) {
            label.title = `Stops once every trial's duality gap is below ${solver.tol} of half its squared norm (converged), or at the cap`;
          }
        }
        return label;
      }),
    );
    const encoders = $('sweep-encoders');
    encoders.replaceChildren(
      ...ENCODERS.map((e) => {
        const on = c.base.methods.find(e.match);
        const label = document.createElement('label');
        label.className = 'check';
        const cb = document.createElement('input');
        cb.type = 'checkbox';
        cb.dataset.encoder = e.id;
        cb.checked = !!on;
        label.append(cb, ` ${e.text}`);
        if (e.id === 'mlp') {
          const h = document.createElement('input');
          h.type = 'number';
          h.min = '1';
          h.step = '1';
          h.dataset.encoderHidden = 'mlp';
          h.value = on ? on.hidden[0] : MLP_HIDDEN;
          h.setAttribute('aria-label', 'MLP encoder: hidden width');
          label.append(' ', h);
        }
        return label;
      }),
    );
    const training = c.base.methods.some((m) => ENCODERS.some((e) => e.match(m)));
    $('sweep-enc-steps').value = training && c.base.train.steps > 0 ? c.base.train.steps : ENCODER_STEPS;
    $('sweep-enc-steps').disabled = !training;
    const success = c.recovery.success;
    $('sweep-success').value = success.criterion === 'support' ? 'support' : 'rel';
    $('sweep-tol').value = success.criterion === 'support' ? 0.01 : success.tol;
    $('sweep-tol').disabled = success.criterion === 'support';
    $('sweep-enc-success').value = c.recovery.encoder_success.criterion;
    $('sweep-enc-success').disabled = !training;
  }
  if (document.activeElement !== $('sweep-base')) $('sweep-base').value = JSON.stringify(c.base, null, 2);
  const metric = $('sweep-metric');
  metric.replaceChildren(...metricsFor(c.kind).map((k) => new Option(METRICS[k].label, k)));
  metric.value = sweep.ui.metric;
  const showDiff = c.axes.filter((a) => !a.with_previous).length >= 2 && sweep.checked.methods.length >= 2 && !(recovery && c.axes.some((a) => a.param === 'delta'));
  $('sweep-diff').hidden = !showDiff;
  for (const [id, key] of [['sweep-diff-a', 'diffA'], ['sweep-diff-b', 'diffB']]) {
    const sel = $(id);
    sel.replaceChildren(...sweep.checked.methods.map((name, i) => new Option(name, String(i))));
    sel.value = String(sweep.ui[key]);
  }
  const quick = Object.keys(QUICK_AGAINST_PAPER).find((name) => JSON.stringify(c) === JSON.stringify(sweepPresetConfig(name)));
  $('sweep-note').textContent = recovery
    ? 'Phase diagrams of compressed sensing: x = δ = M/N (how many measurements), y = ρ = K/M (how sparse). Below the curves l1 recovery succeeds with high probability as N grows; the empirical 50% contour shows where it does here. At small N the transition is a wide band, not a sharp edge.'
    : `Hover a cell for its value, seeds and spread; grey cells are not valid experiments (K above N, say); hatched cells are not computed yet.${quick ? ` ${QUICK_AGAINST_PAPER[quick]}` : ''}`;
}

/**
 * What each quick sweep shows against its paper-size preset, checked once with the CLI on a
 * 2-core machine (final code MCC, the orderings of methods; BENCHMARKS.md has the numbers).
 * Shown under the figure while the sweep is exactly the quick preset.
 */
const QUICK_AGAINST_PAPER = {
  'quick-scaling':
    'At the paper’s size (K = 3 and 9, 3 seeds, 50,000 steps; the CLI) sparse coding ends above the SAE and the MLP in 11 of the 12 cells with K = 3 (the twelfth, N = 16 and M = 32, a tie at 0.999 against 1.000). This quick run, one seed of 2,000 steps, has it first in 7 of them and the SAE first at N = 16: too short to show the paper’s result, which needs the paper-size preset.',
  'quick-l1':
    'At the paper’s size (9 values of λ, 3 seeds, 100,000 steps; the CLI) sparse coding leads at every λ, as here; there the MLP also ranks above the SAE at every λ up to 1, which this quick run is too short to show (here the SAE is above the MLP from λ = 0.01).',
  'quick-topk':
    'At the paper’s size (3 seeds, 20,000 steps; the CLI) the order is the same: sparse coding with the top-k after its L1 inference leads at every k, and the top-k inside the code optimisation overtakes the TopK SAE at large k, from k = 8 there and k = 10 here.',
  'quick-bias':
    'At the paper’s size (3 seeds, 100,000 steps; the CLI) the order is the same: without biases the MLP ends above the SAE, with biases the SAE above the MLP.',
  'quick-width':
    'At the paper’s size (3 seeds, 100,000 steps; the CLI) code MCC at N = 16 is flat in the hidden width too (0.60 to 0.65 from h = 16 to 512, within the seeds’ spread), as here; the larger dictionaries there, N = 32 and 64, gain from width up to h = 128 to 256 (0.46 to 0.56, and 0.27 to 0.40), which this quick run does not include.',
};

/** Parse "1, 2, 3" or a range "a:b:count". */
function parseValues(text) {
  const t = text.trim();
  const range = t.match(/^([^:]+):([^:]+):(\d+)$/);
  if (range) {
    const [a, b, n] = [Number(range[1]), Number(range[2]), Number(range[3])];
    if (!Number.isFinite(a) || !Number.isFinite(b) || n < 1 || n > 256) throw new Error(`"${t}" is not a range a:b:count with at most 256 values`);
    return Array.from({ length: n }, (_, i) => (n === 1 ? a : +(a + ((b - a) * i) / (n - 1)).toPrecision(12)));
  }
  const parts = t.split(/[\s,;]+/).filter(Boolean);
  const values = parts.map(Number);
  const bad = parts.find((p, i) => !Number.isFinite(values[i]));
  if (bad !== undefined) throw new Error(`"${bad}" is not a number`);
  if (!values.length) throw new Error('give at least one value');
  return values;
}

function readForm(event) {
  const c = structuredClone(sweep.checked.config);
  const t = event.target;
  if (t.dataset.role === 'param') c.axes[+t.dataset.axis].param = t.value;
  if (t.dataset.role === 'values') c.axes[+t.dataset.axis].values = parseValues(t.value);
  if (t.dataset.role === 'with') c.axes[+t.dataset.axis].with_previous = t.checked;
  if (t.id === 'sweep-add-axis' && t.value) {
    const p = t.value;
    const base = c.base;
    const guess = {
      N: [16, 32, 64], M: [4, 8, 16], K: [1, 3, 5], n: [256, 1024], noise: [0, 0.01, 0.1], l1: [0.001, 0.01, 0.1],
      k: [1, 3, 5], h: [16, 64, 256], steps: [500, 2000], lr: [0.0003, 0.001, 0.003], bias: [0, 1],
      solver_steps: [100, 500, 2000], delta: [0.25, 0.5, 0.75], rho: [0.1, 0.3, 0.5],
    }[p] || [base.data.num_atoms];
    c.axes.push({ param: p, values: guess });
  }
  c.seeds = Number($('sweep-seeds').value);
  if (c.kind === 'recovery') {
    c.base.data.num_atoms = Number($('sweep-N').value);
    c.base.data.num_samples = Number($('sweep-trials').value);
    c.base.data.signed_codes = $('sweep-signed').checked;
    c.recovery.solvers = SOLVERS.filter((s) => document.querySelector(`[data-solver="${s.id}"]`)?.checked).map((s) => {
      const steps = document.querySelector(`[data-solver-steps="${s.id}"]`);
      return s.make(steps ? Number(steps.value) : undefined);
    });
    // Encoders keep their other settings (biases) when they stay ticked.
    const encoders = ENCODERS.filter((e) => document.querySelector(`[data-encoder="${e.id}"]`)?.checked).map((e) => {
      if (e.id === 'mlp') {
        const h = Number(document.querySelector('[data-encoder-hidden="mlp"]').value);
        if (!Number.isInteger(h) || h < 1) throw new Error('the MLP encoder\'s hidden width must be a whole number of at least 1');
        const old = c.base.methods.find(e.match);
        return old ? { ...old, hidden: [h] } : e.make(h);
      }
      return c.base.methods.find(e.match) || e.make();
    });
    c.base.methods = [...c.base.methods.filter((m) => !ENCODERS.some((e) => e.match(m))), ...encoders];
    if (encoders.length) {
      const steps = Number($('sweep-enc-steps').value);
      if (!Number.isInteger(steps) || steps < 1) throw new Error('encoder training steps must be a whole number of at least 1');
      c.base.train.steps = steps;
      c.base.train.log_every = steps;
      c.base.train.eval_steps = [];
    } else {
      c.base.train.steps = 0;
    }
    c.recovery.success = $('sweep-success').value === 'support'
      ? { criterion: 'support' }
      : { criterion: 'relative_error', tol: Number($('sweep-tol').value) };
    const enc = $('sweep-enc-success').value;
    c.recovery.encoder_success = enc === 'relative_error'
      ? { criterion: enc, tol: c.recovery.success.tol ?? 0.01 }
      : { criterion: enc };
  }
  if (t.id === 'sweep-base') c.base = JSON.parse(t.value);
  return c;
}

function onFormChange(event) {
  let config;
  try {
    config = readForm(event);
  } catch (e) {
    formError(errorText(e), event.target);
    return;
  }
  setSweep(config, { fromForm: true, target: event.target });
}

function onFormClick(event) {
  const b = event.target.closest('button[data-role="remove"]');
  if (!b) return;
  const c = structuredClone(sweep.checked.config);
  const i = +b.dataset.axis;
  // An axis taken with the removed one now leads its group.
  if (!c.axes[i].with_previous && c.axes[i + 1]) c.axes[i + 1].with_previous = false;
  c.axes.splice(i, 1);
  setSweep(c, { fromForm: true });
}

/** Wire the sweep controls (once, at start-up). */
export function initSweepPanel() {
  $('sweep-form').addEventListener('change', onFormChange);
  $('sweep-form').addEventListener('click', onFormClick);
  $('sweep-form').addEventListener('submit', (e) => e.preventDefault());
  for (const button of document.querySelectorAll('[data-sweep-preset]')) {
    button.addEventListener('click', () => {
      try {
        // A preset loads its settings; Run starts it (a link with run=1 starts by itself).
        openSweepPreset(button.dataset.sweepPreset, { autorun: false });
      } catch (e) {
        banner('error', `The preset could not open here: ${errorText(e)}`, 'sweep-preset');
      }
    });
  }
  $('sweep-play').addEventListener('click', () => (sweep.playing ? pause() : play()));
  $('sweep-backend').addEventListener('change', (e) => {
    setBackend(e.target.value);
    $('sweep-share-link').value = shareUrl();
    // The time before Run is of the backend asked for.
    if (sweep.model && !sweep.playing && sweep.pool.size === 0) startEstimate();
  });
  $('sweep-long-run-yes').addEventListener('click', confirmLongSweep);
  $('sweep-long-run-no').addEventListener('click', () => {
    $('sweep-long-run').hidden = true;
    sweep.autorun = false;
    $('sweep-play').focus();
  });
  $('sweep-cancel').addEventListener('click', cancel);
  $('sweep-clear').addEventListener('click', startOver);
  $('sweep-metric').addEventListener('change', (e) => {
    sweep.ui.metric = e.target.value;
    render(true);
  });
  $('sweep-diff-a').addEventListener('change', (e) => {
    sweep.ui.diffA = Number(e.target.value);
    render(true);
  });
  $('sweep-diff-b').addEventListener('change', (e) => {
    sweep.ui.diffB = Number(e.target.value);
    render(true);
  });
  $('sweep-table-box').addEventListener('toggle', () => render(true));
  $('sweep-figures').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-export]');
    if (b) exportFigure(Number(b.dataset.index), b.dataset.export);
  });
  $('sweep-link-autorun').addEventListener('change', () => {
    if (sweep.checked) $('sweep-share-link').value = shareUrl();
  });
  $('sweep-copy-link').addEventListener('click', async () => {
    const link = shareUrl();
    $('sweep-share-link').value = link;
    try {
      await navigator.clipboard.writeText(link);
      banner('info', 'Link copied: it reproduces this sweep exactly (same grid, same seeds).', 'copy');
    } catch {
      $('sweep-share-link').select();
      banner('info', 'Select the link next to the button and copy it (the clipboard is not available here).', 'copy');
    }
  });
  $('sweep-export-json').addEventListener('click', () => {
    downloadText(sweepJson(), `${fileStem()}.json`, 'application/json');
  });
  $('sweep-export-csv').addEventListener('click', () => {
    downloadText(sweep.model.csv(), `${fileStem()}.csv`, 'text/csv');
  });
  $('sweep-load').addEventListener('change', async (e) => {
    const files = Array.from(e.target.files);
    e.target.value = '';
    if (!files.length) return;
    try {
      const texts = await Promise.all(files.map((f) => f.text()));
      const merged = loadSweepResults(texts);
      banner('info', `Loaded ${files.map((f) => f.name).join(', ')}: ${merged.units.length} of ${sweep.model.unitCount} units.`, 'load');
    } catch (err) {
      banner('error', `Not sweep results this page can read: ${errorText(err)}`, 'load');
    }
  });
  window.addEventListener('pagehide', () => {
    if (sweep.model && sweep.model.unitsDone) saveNow();
  });
}
