// The player: applying a config, starting the engine (./engine-pool.js), Run / Pause / Step /
// Cancel, the engine's messages, the status line and the controls' state.
import { formatDuration } from './format.mjs';
import { EnginePool, poolSize } from '../engine-pool.js';
import { memoryEstimate, presetConfig, validateConfig } from '../engine.js';
import { calibration } from './calibrate.mjs';
import { downloadText, save } from './files.js';
import { FORM_ERROR, clearFieldErrors, fieldError, showConfigError, writeForm } from './form.js';
import { updateLink } from './link.js';
import { $, F, FIELDS, banner, errorText, state } from './state.js';
import { renderCharts } from '../views/curves.js';
import { fillViewSelectors, renderViews } from '../views/learned.js';
import { renderTable } from '../views/table.js';
import { kindColors } from '../charts.js';
import { addToHistory, renderCompare } from '../views/compare.js';

/** The workers an experiment is computed in: each holds its own copy of the data. */
function workersFor(config) {
  const units = (config.methods ? config.methods.length : 0) * Number(config.runs);
  return Number.isFinite(units) && units >= 1 ? poolSize(units) : 1;
}

/**
 * Validate `config` (in Rust); if valid, show it, put it in the URL and start a fresh experiment
 * with it. If not, say why and keep the last valid experiment as it was.
 */
export function applyConfig(config, { fromForm = false, keepResults = false } = {}) {
  let checked;
  try {
    if (config[FORM_ERROR]) throw new Error(config[FORM_ERROR]);
    checked = validateConfig(config, workersFor(config));
  } catch (e) {
    if (!fromForm) throw e;
    // Keep the user's text in the form so it can be corrected; structural edits are redrawn.
    if (config.methods.length !== $('methods').children.length) writeForm(config);
    // The message goes to the field it is about; Run waits until the form is valid again, so
    // nothing runs that the form does not show.
    showConfigError(`Not applied: ${fieldError(errorText(e))}`);
    updateControls();
    return false;
  }
  clearFieldErrors();
  showConfigError('');
  const structural = !state.config || JSON.stringify(state.config.methods) !== JSON.stringify(checked.methods);
  state.config = checked;
  if (!fromForm || structural) writeForm(checked);
  else $('eval_steps').value = (checked.train.eval_steps || []).join(', ');
  updateLink();
  markPresets(checked);
  startExperiment(keepResults);
  return true;
}

// Each preset's validated config as JSON, made once (what an experiment is compared with).
const presetJson = new Map();

/** Mark the preset button whose experiment the form shows (none after an edit). */
export function markPresets(checked) {
  const shown = JSON.stringify(checked);
  state.preset = null;
  for (const button of document.querySelectorAll('[data-preset]')) {
    const name = button.dataset.preset;
    if (!presetJson.has(name)) {
      const config = presetConfig(name);
      presetJson.set(name, JSON.stringify(validateConfig(config, workersFor(config))));
    }
    const same = presetJson.get(name) === shown;
    if (same) state.preset = name;
    button.setAttribute('aria-pressed', String(same));
  }
}

/** Say in the footer what computes, and show why it is not what was asked for. */
export function showBackend(info) {
  if (!info) return;
  const note = $('backend-note');
  if (info.kind === 'gpu') {
    const a = info.adapter || {};
    note.textContent = `GPU: ${a.name || info.name} (WebGPU${a.software ? ', a software adapter' : ''})`;
  } else {
    const n = info.workers || 1;
    note.textContent = `CPU: WebAssembly in ${n} worker${n === 1 ? '' : 's'}`;
  }
  // Auto's comparison of the two on this experiment (both speeds), when it made one.
  if (/^auto: /.test(info.notice || '')) {
    note.textContent += ` · ${info.notice.slice('auto: '.length)}`;
  }
  document.body.dataset.backend = info.kind;
  $('banners').querySelector('[data-id="backend"]')?.remove();
  // A fallback is news when the GPU was asked for, or was there and failed (its probe, its
  // buffers); a browser without WebGPU or with a software adapter computing on the CPU under
  // `auto` is the expected case, shown in the footer only.
  const tried = /probe|lost|error|binds at most/.test(info.notice || '') && !/^auto: /.test(info.notice);
  if (info.notice && (state.backend === 'gpu' || tried)) {
    banner('info', `Computing on the CPU: ${info.notice}`, 'backend');
  }
}

// The engine: one worker on the GPU, a pool of workers (one per core) on the CPU.
export const engine = new EnginePool((msg) => onWorkerMessage(msg));

export function onWorkerError(message) {
  state.playing = false;
  banner('error', `The engine stopped: ${message}. Press Reset to start again.`, 'engine');
  document.body.dataset.state = 'error';
  updateControls();
}

/** A new set of runs: `kinds` (the methods' config kinds) give each method its colour. */
export function clearRuns(names, runs, kinds = state.kinds) {
  state.names = names;
  state.kinds = kinds;
  state.colors = kindColors(kinds);
  state.runs = runs;
  state.rows = names.map(() => Array.from({ length: runs }, () => []));
  state.snapshot = null;
}

// Experiments estimated above this are not built when a link or an edit asks for them, only
// when Run is pressed: opening a link must never allocate hundreds of MiB before the user has
// seen what it describes.
export const BUILD_ON_RUN_BYTES = 128 * 1024 * 1024;

// Runs estimated above this ask before they start, naming the estimate.
export const LONG_RUN_SECONDS = 120;
// The estimate times a copy of the experiment in each worker: only for experiments small
// enough that a second copy costs little.
const ESTIMATE_MAX_BYTES = 64 * 1024 * 1024;

export function startExperiment(keepResults = false, { build = false } = {}) {
  const estimate = memoryEstimate(state.config, workersFor(state.config));
  state.deferred = !build && estimate.bytes > BUILD_ON_RUN_BYTES;
  if (state.deferred) {
    engine.terminate();
    state.ready = false;
    state.playing = false;
    state.finished = false;
    state.done = 0;
    state.trained = 0;
    if (!keepResults) {
      state.source = 'live';
      state.loadedJson = null;
    }
    document.body.dataset.state = 'deferred';
    $('status').textContent = `This experiment needs about ${estimate.text} of memory: it is built when you press Run.`;
    updateControls();
    return;
  }
  state.ready = false;
  state.playing = false;
  state.finished = false;
  state.cancelled = false;
  state.done = 0;
  state.trained = 0;
  state.evaluating = false;
  state.rate = 0;
  if (!keepResults) {
    state.source = 'live';
    state.loadedJson = null;
  }
  document.body.dataset.state = 'loading';
  // The time estimate (see 'estimate'): undefined while it is measured, null when unknown.
  const estimating = estimate.bytes <= ESTIMATE_MAX_BYTES;
  state.estimate = estimating ? undefined : null;
  state.rawEstimate = null;
  state.timing = null;
  delete document.body.dataset.estimate;
  delete document.body.dataset.estimateRaw;
  state.longConfirmed = false;
  state.waitEstimate = false;
  hideLongRun();
  updateControls();
  engine.start(state.config, state.backend, { estimate: estimating });
}

/** Ask before a long run: its estimate, and a choice to run it or not. */
function askLongRun() {
  const box = $('long-run');
  $('long-run-text').textContent = `This run is estimated to take about ${formatDuration(state.estimate)} on this machine (timed on a short trial of this experiment). Run it now?`;
  box.hidden = false;
  $('long-run-yes').focus();
}

export function hideLongRun() {
  $('long-run').hidden = true;
}

/** "Run anyway": start the run the estimate held back. */
export function confirmLongRun() {
  state.longConfirmed = true;
  hideLongRun();
  play();
}

/** "Not now": nothing starts. */
export function declineLongRun() {
  hideLongRun();
  state.autorun = false;
  updateControls();
  $('play').focus();
}

export function onWorkerMessage(msg) {
  switch (msg.type) {
    case 'ready': {
      state.ready = true;
      state.total = msg.total;
      state.trainTotal = msg.trainTotal;
      state.trueDictionary = msg.trueDictionary;
      state.trueCodes = msg.trueCodes;
      $('checksum').textContent = msg.checksum;
      if (state.source !== 'loaded' && !msg.resumed) clearRuns(Array.from(msg.names), msg.config.runs, msg.config.methods.map((m) => m.kind));
      showBackend(msg.backend);
      fillViewSelectors();
      // A new engine inspects run (0, 0) until told otherwise: tell it which run the page
      // shows, or its snapshots (of another run) are dropped and the views stay empty.
      engine.view(state.view.method, state.view.run);
      document.body.dataset.state = 'ready';
      document.body.dataset.checksum = msg.checksum;
      setStatus();
      updateControls();
      scheduleRender();
      if (state.autorun) {
        if (state.estimate === undefined) {
          state.waitEstimate = true; // run once the estimate is in: a long run asks first
        } else {
          state.autorun = false;
          play();
        }
      }
      break;
    }
    case 'estimate': {
      // The trial's figure, scaled by what this machine's earlier runs took against theirs.
      state.rawEstimate = msg.seconds;
      state.estimate = Number.isFinite(msg.seconds) ? msg.seconds * calibration.scale('experiment') : msg.seconds;
      document.body.dataset.estimate = String(state.estimate);
      document.body.dataset.estimateRaw = String(msg.seconds);
      setStatus();
      if (state.waitEstimate) {
        state.waitEstimate = false;
        state.autorun = false;
        play();
      }
      break;
    }
    case 'progress': {
      if (state.source === 'loaded') break;
      const rec = msg.records;
      for (let o = 0; o + FIELDS.length <= rec.length; o += FIELDS.length) {
        const row = rec.subarray(o, o + FIELDS.length);
        state.rows[row[F.method]][row[F.run]].push(row);
      }
      // A change of phase shows at once; the counts while a run computes at most every
      // STATUS_EVERY_MS (each redraw of the bar and the line costs the main thread a frame).
      const changed = msg.playing !== state.playing || msg.evaluating !== state.evaluating || msg.finished;
      state.done = msg.done;
      state.total = msg.total;
      state.trained = msg.trained;
      state.trainTotal = msg.trainTotal;
      state.evaluating = msg.evaluating;
      state.rate = msg.rate;
      state.playing = msg.playing;
      if (msg.finished && !state.finished) {
        state.finished = true;
        engine.requestResults('save');
        if (state.timing && !state.timing.paused && state.rawEstimate > 0) {
          calibration.record('experiment', state.rawEstimate, (performance.now() - state.timing.start) / 1000);
        }
        state.timing = null;
      }
      document.body.dataset.state = state.finished ? 'finished' : state.playing ? 'running' : 'paused';
      const now = performance.now();
      if (changed || !state.playing || now - lastStatus >= STATUS_EVERY_MS) {
        lastStatus = now;
        setStatus();
        updateControls();
      }
      scheduleRender();
      break;
    }
    case 'snapshot':
      if (msg.method === state.view.method && msg.run === state.view.run) {
        state.snapshot = msg.snapshot;
        renderViews();
      }
      break;
    case 'results':
      if (msg.reason === 'export') {
        downloadText(msg.json, 'sparse-playground-results.json', 'application/json');
      } else {
        save(msg.json);
        // A finished experiment joins the list it can be compared from (a cancelled one too:
        // what it logged is a result, and its name says how far it got).
        try {
          addToHistory(msg.json);
        } catch (e) {
          banner('info', `This run could not be added to the comparison list: ${errorText(e)}`, 'history');
        }
      }
      break;
    case 'error':
      onWorkerError(msg.message);
      break;
    case 'notice':
      banner('info', msg.text, 'backend');
      break;
    case 'reset-runs':
      for (const [m, r] of msg.runs) {
        if (state.rows[m] && state.rows[m][r]) state.rows[m][r] = [];
      }
      scheduleRender();
      break;
    default:
      break;
  }
}

export function play() {
  if (state.deferred) {
    state.autorun = true; // build it now, then run (see 'ready')
    startExperiment(state.source === 'loaded', { build: true });
    return;
  }
  if (state.formInvalid) {
    document.querySelector('#config [aria-invalid="true"]')?.focus();
    return;
  }
  if (state.finished) return;
  if (!state.ready) {
    // The engine is still being built (an edit restarts it when its field loses focus, which
    // happens on the very click that lands here): run as soon as it is ready.
    state.autorun = true;
    updateControls();
    return;
  }
  if (state.done === 0 && state.source !== 'loaded' && !state.longConfirmed) {
    if (state.estimate === undefined) {
      // The estimate comes a moment after the engine is ready: wait for it.
      state.autorun = true;
      state.waitEstimate = true;
      updateControls();
      return;
    }
    if (state.estimate > LONG_RUN_SECONDS) {
      askLongRun();
      return;
    }
  }
  hideLongRun();
  if (state.source === 'loaded') {
    state.source = 'live';
    state.loadedJson = null;
    clearRuns(state.names, state.runs);
  }
  // A run timed from its start to its end without a pause calibrates later estimates.
  if (state.done === 0) state.timing = { start: performance.now(), paused: false };
  state.playing = true;
  engine.play();
  document.body.dataset.state = 'running';
  updateControls();
}

export function pause() {
  if (state.timing) state.timing.paused = true;
  state.playing = false;
  engine.pause();
  updateControls();
}

export function cancel() {
  // Keep what was logged; the run stops here and its results are saved as they are.
  state.playing = false;
  state.finished = true;
  state.cancelled = true;
  engine.pause();
  engine.requestResults('save');
  document.body.dataset.state = 'finished';
  setStatus();
  updateControls();
}

export function updateControls() {
  const live = state.ready;
  $('play').disabled = !state.config || state.finished || state.formInvalid;
  $('play').textContent = state.playing
    ? 'Pause'
    : !live && state.autorun && !state.deferred
      ? 'Starting…'
      : state.done > 0 && !state.finished
        ? 'Resume'
        : 'Run';
  $('play').setAttribute('aria-pressed', String(state.playing));
  $('step').disabled = !live || state.playing || state.finished;
  $('reset').disabled = !state.config;
  $('cancel').disabled = !live || state.finished || state.done === 0;
  const hasRows = state.rows.some((m) => m.some((r) => r.length));
  $('export-json').disabled = !hasRows;
  $('export-csv').disabled = !hasRows;
}

export function setStatus() {
  const p = $('progress');
  if (state.source === 'loaded') {
    p.value = 1;
    $('status').textContent = state.loadedFrom === 'storage'
      ? 'Showing your last finished run, kept by this browser. Run to compute it again.'
      : 'Showing results loaded from a file. Run to recompute them here.';
    return;
  }
  p.max = Math.max(1, state.total);
  p.value = state.done;
  // The bar and the time left count all the work; the text also says how far training is
  // and when test codes are being inferred (training waits for that).
  const pct = state.total ? ((100 * state.done) / state.total).toFixed(1) : '0';
  let text = `${pct}% · ${state.trained.toLocaleString()} / ${state.trainTotal.toLocaleString()} training steps`;
  // Paused says so, also in the middle of an evaluation (which resumes where it stopped).
  const paused = !state.playing && !state.finished && state.done > 0;
  if (state.evaluating && !state.finished) {
    text += paused ? ' · paused while inferring test codes' : ' · inferring test codes';
  } else if (paused) {
    text += ' · paused';
  }
  if (state.playing && state.rate > 0) {
    const left = (state.total - state.done) / state.rate;
    text += ` · ${Math.round(state.rate).toLocaleString()} steps/s · ${formatDuration(left)} left`;
  }
  if (state.finished) text += state.cancelled ? ' · cancelled' : ' · done';
  if (state.done === 0 && !state.playing && !state.finished) {
    if (state.estimate === undefined && state.ready) text += ' · timing a short trial…';
    else if (Number.isFinite(state.estimate)) text += ` · about ${formatDuration(state.estimate)} on this machine`;
  }
  $('status').textContent = text;
}

// While a run computes, the charts and the table are redrawn at most every RENDER_EVERY_MS,
// or less often when a redraw is costly, so that redraws take at most a tenth of the main
// thread. Every worker reports after each 40 ms slice, and redrawing at every frame kept the
// main thread busy 89% of the time (CDP's TaskDuration over a run of the quick unknown-Z&D
// preset on 2 cores), a core taken from the 2 workers.
const RENDER_EVERY_MS = 400;
let lastRender = -Infinity;
let renderMs = 0;
const STATUS_EVERY_MS = 250;
let lastStatus = -Infinity;

let renderTimer = null;

function drawNow() {
  clearTimeout(renderTimer);
  renderTimer = null;
  state.renderQueued = false;
  lastRender = performance.now();
  renderCharts();
  renderTable();
  renderCompare();
  renderMs = performance.now() - lastRender;
}

export function scheduleRender() {
  if (!(state.playing && !state.finished)) {
    // Finished, paused or loaded: drawn in the same task that says so, a pending redraw
    // included, so what the page states is what it shows.
    drawNow();
    return;
  }
  if (state.renderQueued) return;
  state.renderQueued = true;
  const every = Math.max(RENDER_EVERY_MS, 9 * renderMs);
  const wait = Math.max(0, lastRender + every - performance.now());
  renderTimer = setTimeout(() => requestAnimationFrame(() => state.renderQueued && drawNow()), wait);
}
