// The page: the config form, run controls, live charts, the summary table, the dictionary views,
// share links and export. The engine itself runs in ./worker.js; the page loads the same wasm
// module for link, config and results-file checks (all implemented in Rust).
import {
  decodeLink,
  encodeLink,
  engineVersion,
  memoryEstimate,
  normalizeResults,
  presetConfig,
  recordFields,
  solverDefaults,
  validateConfig,
} from './engine.js';
import { LineChart, colorOf, downloadURL, formatNumber } from './charts.js';
import { EnginePool } from './engine-pool.js';
import { drawHeatmap, drawMessage } from './heatmap.js';

const STORAGE_KEY = 'sparse-playground/v1/last-results';
const FIELDS = Array.from(recordFields());
const F = Object.fromEntries(FIELDS.map((name, i) => [name, i]));
const $ = (id) => document.getElementById(id);


const state = {
  config: null, // the validated config shown in the form
  worker: null,
  ready: false,
  playing: false,
  finished: false,
  cancelled: false,
  names: [],
  runs: 1,
  rows: [], // rows[method][run] = array of Float64Array records
  done: 0,
  total: 0,
  trained: 0,
  trainTotal: 0,
  evaluating: false,
  rate: 0,
  source: 'live', // 'live' or 'loaded' (a results file)
  loadedJson: null,
  trueDictionary: null,
  hidden: [], // link keys whose controls a lesson link hides (`<key>_hide=1`)
  snapshot: null,
  view: { method: 0, run: 0 },
  autorun: false,
  backend: 'auto', // what the user asked for: auto, cpu or gpu (the `backend` link key)
  deferred: false, // a large experiment waits for Run before it is built
  renderQueued: false,
};

// ---------------------------------------------------------------- banners and errors

function banner(kind, text, id) {
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

function errorText(e) {
  return e && e.message ? e.message : String(e);
}

// ---------------------------------------------------------------- the config form

const DATA_FIELDS = ['num_atoms', 'data_dim', 'sparsity_k', 'num_samples', 'noise_std', 'frequency_skew'];
const TRAIN_FIELDS = ['steps', 'lr', 'l1_penalty', 'log_every'];

function numberOf(id) {
  const raw = $(id).value.trim();
  // An empty or unreadable box becomes NaN and is refused by the Rust validation with a message.
  return raw === '' ? NaN : Number(raw);
}


function methodDefaults(kind) {
  switch (kind) {
    case 'topk_sae': return { kind, k: 3, bias: false };
    case 'mlp': return { kind, hidden: [32], bias: false };
    case 'sparse_coding': return { kind, inference: solverDefaults('adam') };
    case 'sae_ito': return { kind, bias: false, inference: solverDefaults('adam') };
    default: return { kind: 'sae', bias: false };
  }
}

const KIND_LABELS = {
  sae: 'SAE',
  topk_sae: 'TopK SAE',
  mlp: 'MLP encoder',
  sparse_coding: 'Sparse coding',
  sae_ito: 'SAE + ITO',
};

function field(labelText, input) {
  const label = document.createElement('label');
  label.append(labelText, input);
  return label;
}

function numberInput(value, attrs = {}) {
  const input = document.createElement('input');
  input.type = 'number';
  input.value = value == null ? '' : String(value);
  for (const [k, v] of Object.entries(attrs)) input.setAttribute(k, v);
  return input;
}

function methodEditor(method, index) {
  const box = document.createElement('div');
  box.className = 'method';
  box.dataset.kind = method.kind;
  const head = document.createElement('div');
  head.className = 'row';
  const title = document.createElement('strong');
  title.textContent = `${index + 1}. ${KIND_LABELS[method.kind]}`;
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.textContent = 'Remove';
  remove.setAttribute('aria-label', `Remove method ${index + 1} (${KIND_LABELS[method.kind]})`);
  remove.addEventListener('click', () => {
    const config = readForm();
    config.methods.splice(index, 1);
    applyConfig(config, { fromForm: true });
  });
  head.append(title, remove);
  box.append(head);
  const get = {};
  if (method.kind === 'topk_sae') {
    const k = numberInput(method.k, { min: 1, step: 1, 'data-field': 'k' });
    box.append(field('k (kept per sample)', k));
    get.k = () => Number(k.value);
  }
  if (method.kind === 'mlp') {
    const hidden = document.createElement('input');
    hidden.type = 'text';
    hidden.value = method.hidden.join('-');
    hidden.dataset.field = 'hidden';
    hidden.title = 'Hidden widths separated by dashes, e.g. 32 or 256-256';
    box.append(field('Hidden widths', hidden));
    get.hidden = () => hidden.value.split(/[-,\s]+/).filter(Boolean).map(Number);
  }
  if (['sae', 'topk_sae', 'mlp', 'sae_ito'].includes(method.kind)) {
    const bias = document.createElement('input');
    bias.type = 'checkbox';
    bias.checked = !!method.bias;
    bias.dataset.field = 'bias';
    const label = document.createElement('label');
    label.className = 'check';
    label.append(bias, ' Biases');
    box.append(label);
    get.bias = () => bias.checked;
  }
  if (method.kind === 'sparse_coding' || method.kind === 'sae_ito') {
    const inf = method.inference;
    const solver = document.createElement('select');
    solver.dataset.field = 'solver';
    for (const [value, text] of [['adam', 'Adam on exp-codes (paper)'], ['fista', 'FISTA (L1)'], ['omp', 'OMP (K-sparse)']]) {
      const o = document.createElement('option');
      o.value = value;
      o.textContent = text;
      solver.append(o);
    }
    solver.value = inf.solver;
    solver.addEventListener('change', () => {
      const config = readForm();
      config.methods[index].inference = solverDefaults(solver.value);
      applyConfig(config, { fromForm: true });
    });
    box.append(field('Inference', solver));
    const parts = {};
    if (inf.solver === 'adam' || inf.solver === 'fista') {
      parts.steps = numberInput(inf.steps, { min: 1, step: 1, 'data-field': 'solver-steps' });
      box.append(field('Solver steps', parts.steps));
    }
    if (inf.solver === 'adam') {
      parts.lr = numberInput(inf.lr, { min: 0, step: 'any', 'data-field': 'solver-lr' });
      box.append(field('Solver learning rate', parts.lr));
    }
    if (inf.solver === 'fista') {
      parts.signed = document.createElement('input');
      parts.signed.type = 'checkbox';
      parts.signed.checked = inf.nonneg === false;
      const label = document.createElement('label');
      label.className = 'check';
      label.append(parts.signed, ' Signed codes');
      box.append(label);
    }
    if (inf.solver === 'omp') {
      parts.k = numberInput(inf.k, { min: 1, step: 1, placeholder: 'K', 'data-field': 'solver-k' });
      box.append(field('Atoms per sample (empty = K)', parts.k));
    }
    get.inference = () => {
      if (inf.solver === 'adam') return { solver: 'adam', steps: Number(parts.steps.value), lr: Number(parts.lr.value) };
      if (inf.solver === 'fista') return { solver: 'fista', steps: Number(parts.steps.value), nonneg: !parts.signed.checked };
      const k = parts.k.value.trim();
      return { solver: 'omp', k: k === '' ? null : Number(k) };
    };
  }
  box.readMethod = () => {
    const out = { kind: method.kind };
    for (const [key, fn] of Object.entries(get)) out[key] = fn();
    return out;
  };
  return box;
}

function readForm() {
  const base = state.config || presetConfig('unknown-zd');
  const data = { ...base.data };
  for (const id of DATA_FIELDS) data[id] = numberOf(id);
  data.signed_codes = $('signed_codes').checked;
  const train = { ...base.train };
  for (const id of TRAIN_FIELDS) train[id] = numberOf(id);
  const batch = $('batch_size').value.trim();
  train.batch_size = batch === '' ? null : Number(batch);
  return {
    version: base.version,
    setting: $('setting').value,
    data,
    methods: Array.from($('methods').children).map((box) => box.readMethod()),
    train,
    metrics: { l0_threshold: numberOf('l0_threshold') },
    seed: numberOf('seed'),
    runs: numberOf('runs'),
  };
}

function writeForm(config) {
  $('setting').value = config.setting;
  for (const id of DATA_FIELDS) $(id).value = String(config.data[id]);
  $('signed_codes').checked = config.data.signed_codes;
  for (const id of TRAIN_FIELDS) $(id).value = String(config.train[id]);
  $('batch_size').value = config.train.batch_size == null ? '' : String(config.train.batch_size);
  $('l0_threshold').value = String(config.metrics.l0_threshold);
  $('seed').value = String(config.seed);
  $('runs').value = String(config.runs);
  $('methods').replaceChildren(...config.methods.map(methodEditor));
}

function showConfigError(message) {
  const box = $('config-error');
  box.hidden = !message;
  box.textContent = message || '';
}

/**
 * Validate `config` (in Rust); if valid, show it, put it in the URL and start a fresh experiment
 * with it. If not, say why and keep the last valid experiment as it was.
 */
function applyConfig(config, { fromForm = false, keepResults = false } = {}) {
  let checked;
  try {
    checked = validateConfig(config);
  } catch (e) {
    showConfigError(`Not applied: ${errorText(e)}`);
    if (!fromForm) throw e;
    // Keep the user's text in the form so it can be corrected; structural edits are redrawn.
    if (config.methods.length !== $('methods').children.length) writeForm(config);
    return false;
  }
  showConfigError('');
  const structural = !state.config || JSON.stringify(state.config.methods) !== JSON.stringify(checked.methods);
  state.config = checked;
  if (!fromForm || structural) writeForm(checked);
  updateLink();
  startExperiment(keepResults);
  return true;
}

// ---------------------------------------------------------------- share links

// Lesson links, as in TensorFlow Playground: `<key>_hide=1` hides the control of that link key
// (its value still applies), so a teacher can share a cut-down page. Links made from such a
// page keep the keys.
const HIDEABLE = {
  presets: '.presets',
  setting: '#setting',
  N: '#num_atoms',
  M: '#data_dim',
  K: '#sparsity_k',
  n: '#num_samples',
  noise: '#noise_std',
  skew: '#frequency_skew',
  signed: '#signed_codes',
  seed: '#seed',
  methods: '#methods',
  steps: '#steps',
  lr: '#lr',
  l1: '#l1_penalty',
  batch: '#batch_size',
  log: '#log_every',
  runs: '#runs',
  l0: '#l0_threshold',
  backend: '#backend',
};

/** The link keys a link's extra pairs ask to hide (`key_hide` with any value but 0 or false). */
function hiddenKeys(extra) {
  return extra
    .filter(([k, v]) => k.endsWith('_hide') && v !== '0' && v !== 'false')
    .map(([k]) => k.slice(0, -'_hide'.length))
    .filter((k) => Object.hasOwn(HIDEABLE, k));
}

/** Show every control, then hide those of `state.hidden`, and any fieldset left empty. */
function applyHidden() {
  for (const el of document.querySelectorAll('[data-lesson-hidden]')) {
    el.hidden = false;
    delete el.dataset.lessonHidden;
  }
  const hide = (el) => {
    el.hidden = true;
    el.dataset.lessonHidden = '1';
  };
  for (const key of state.hidden) {
    const el = document.querySelector(HIDEABLE[key]);
    if (!el) continue;
    // A control hides with its label; the method list and the setting with their fieldset.
    hide(['methods', 'setting'].includes(key) ? el.closest('fieldset') : el.closest('label') || el);
  }
  for (const set of document.querySelectorAll('#config fieldset')) {
    const labels = Array.from(set.querySelectorAll(':scope > label'));
    if (labels.length && labels.every((l) => l.hidden)) hide(set);
  }
}

/** The `_hide` pairs every link made from this page carries. */
function hiddenExtra() {
  const extra = state.hidden.map((k) => [`${k}_hide`, '1']);
  // The backend asked for travels with the link (auto is the default and left out).
  if (state.backend !== 'auto') extra.push(['backend', state.backend]);
  return extra;
}

const BACKENDS = ['auto', 'cpu', 'gpu'];

/** Say in the footer what computes, and show why it is not what was asked for. */
function showBackend(info) {
  if (!info) return;
  const note = $('backend-note');
  if (info.kind === 'gpu') {
    const a = info.adapter || {};
    note.textContent = `GPU: ${a.name || info.name} (WebGPU${a.software ? ', a software adapter' : ''})`;
  } else {
    const n = info.workers || 1;
    note.textContent = `CPU: WebAssembly in ${n} worker${n === 1 ? '' : 's'}`;
  }
  document.body.dataset.backend = info.kind;
  $('banners').querySelector('[data-id="backend"]')?.remove();
  // A fallback is news when the GPU was asked for, or was there and failed (its probe, its
  // buffers); a browser without WebGPU or with a software adapter computing on the CPU under
  // `auto` is the expected case, shown in the footer only.
  const tried = /probe|lost|error|binds at most/.test(info.notice || '');
  if (info.notice && (state.backend === 'gpu' || tried)) {
    banner('info', `Computing on the CPU: ${info.notice}`, 'backend');
  }
}

function linkFor(autorun) {
  const extra = hiddenExtra();
  if (autorun) extra.push(['run', '1']);
  const hash = encodeLink(state.config, extra);
  const url = new URL(window.location.href);
  url.hash = hash;
  return url.toString();
}

function updateLink() {
  const hash = encodeLink(state.config, hiddenExtra());
  history.replaceState(null, '', `#${hash}`);
  $('share-link').value = linkFor($('link-autorun').checked);
}

async function copyLink() {
  const link = linkFor($('link-autorun').checked);
  $('share-link').value = link;
  try {
    await navigator.clipboard.writeText(link);
    banner('info', 'Link copied: it reproduces this experiment exactly (same data, same initialisation).', 'copy');
  } catch {
    $('share-link').select();
    banner('info', 'Select the link next to the button and copy it (the clipboard is not available here).', 'copy');
  }
}

/** The config a page load starts from: the link, else the last finished run, else the paper. */
function initialConfig() {
  const hash = window.location.hash.slice(1);
  if (hash) {
    try {
      const decoded = decodeLink(hash);
      state.hidden = hiddenKeys(decoded.extra);
      state.autorun = decoded.extra.some(([k, v]) => k === 'run' && v === '1');
      const backend = decoded.extra.find(([k]) => k === 'backend');
      if (backend) {
        if (BACKENDS.includes(backend[1])) {
          state.backend = backend[1];
        } else {
          banner('error', `backend=${backend[1]} is not a backend this page knows (auto, cpu or gpu); using auto.`, 'backend');
          state.backend = 'auto';
        }
      }
      // The last finished run of this very experiment survives a reload: show it, do not redo it.
      const saved = loadSaved();
      if (saved && encodeLink(saved.config, []) === encodeLink(decoded.config, [])) {
        state.autorun = false;
        return { config: decoded.config, saved };
      }
      return { config: decoded.config };
    } catch (e) {
      banner('error', `This link could not be read: ${errorText(e)}. Showing the default experiment instead.`, 'link');
      return { config: presetConfig('unknown-zd') };
    }
  }
  const saved = loadSaved();
  if (saved) return { config: saved.config, saved };
  return { config: presetConfig('unknown-zd') };
}

// ---------------------------------------------------------------- the worker

// The engine: one worker on the GPU, a pool of workers (one per core) on the CPU.
const engine = new EnginePool((msg) => onWorkerMessage(msg));

function onWorkerError(message) {
  state.playing = false;
  banner('error', `The engine stopped: ${message}. Press Reset to start again.`, 'engine');
  document.body.dataset.state = 'error';
  updateControls();
}

function clearRuns(names, runs) {
  state.names = names;
  state.runs = runs;
  state.rows = names.map(() => Array.from({ length: runs }, () => []));
  state.snapshot = null;
}

// Experiments estimated above this are not built when a link or an edit asks for them, only
// when Run is pressed: opening a link must never allocate hundreds of MiB before the user has
// seen what it describes.
const BUILD_ON_RUN_BYTES = 128 * 1024 * 1024;

function startExperiment(keepResults = false, { build = false } = {}) {
  const estimate = memoryEstimate(state.config);
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
  updateControls();
  engine.start(state.config, state.backend);
}

function onWorkerMessage(msg) {
  switch (msg.type) {
    case 'ready': {
      state.ready = true;
      state.total = msg.total;
      state.trainTotal = msg.trainTotal;
      state.trueDictionary = msg.trueDictionary;
      $('checksum').textContent = msg.checksum;
      if (state.source !== 'loaded' && !msg.resumed) clearRuns(Array.from(msg.names), msg.config.runs);
      showBackend(msg.backend);
      fillViewSelectors();
      document.body.dataset.state = 'ready';
      document.body.dataset.checksum = msg.checksum;
      setStatus();
      updateControls();
      scheduleRender();
      if (state.autorun) {
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
      }
      document.body.dataset.state = state.finished ? 'finished' : state.playing ? 'running' : 'paused';
      setStatus();
      updateControls();
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

function play() {
  if (state.deferred) {
    state.autorun = true; // build it now, then run (see 'ready')
    startExperiment(state.source === 'loaded', { build: true });
    return;
  }
  if (!state.ready || state.finished) return;
  if (state.source === 'loaded') {
    state.source = 'live';
    state.loadedJson = null;
    clearRuns(state.names, state.runs);
  }
  state.playing = true;
  engine.play();
  document.body.dataset.state = 'running';
  updateControls();
}

function pause() {
  state.playing = false;
  engine.pause();
  updateControls();
}

function cancel() {
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

function updateControls() {
  const live = state.ready;
  $('play').disabled = !(live || state.deferred) || state.finished;
  $('play').textContent = state.playing ? 'Pause' : state.done > 0 && !state.finished ? 'Resume' : 'Run';
  $('play').setAttribute('aria-pressed', String(state.playing));
  $('step').disabled = !live || state.playing || state.finished;
  $('reset').disabled = !state.config;
  $('cancel').disabled = !live || state.finished || state.done === 0;
  const hasRows = state.rows.some((m) => m.some((r) => r.length));
  $('export-json').disabled = !hasRows;
  $('export-csv').disabled = !hasRows;
}

function setStatus() {
  const p = $('progress');
  if (state.source === 'loaded') {
    p.value = 1;
    $('status').textContent = 'Showing results loaded from a file. Run to recompute them here.';
    return;
  }
  p.max = Math.max(1, state.total);
  p.value = state.done;
  // The bar and the time left count all the work; the text also says how far training is
  // and when test codes are being inferred (training waits for that).
  const pct = state.total ? ((100 * state.done) / state.total).toFixed(1) : '0';
  let text = `${pct}% · ${state.trained.toLocaleString()} / ${state.trainTotal.toLocaleString()} training steps`;
  if (state.evaluating && !state.finished) text += ' · inferring test codes';
  if (state.playing && state.rate > 0) {
    const left = (state.total - state.done) / state.rate;
    text += ` · ${Math.round(state.rate).toLocaleString()} steps/s · ${formatDuration(left)} left`;
  }
  if (state.finished) text += state.cancelled ? ' · cancelled' : ' · done';
  $('status').textContent = text;
}

function formatDuration(s) {
  if (!Number.isFinite(s)) return '–';
  if (s < 60) return `${Math.ceil(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

// ---------------------------------------------------------------- charts and table

const charts = {
  code_mcc: new LineChart($('chart-code_mcc'), { title: 'Code MCC', yLabel: 'code MCC', yRange: [0, 1] }),
  dict_mcc: new LineChart($('chart-dict_mcc'), { title: 'Dictionary MCC', yLabel: 'dictionary MCC', yRange: [0, 1] }),
  test_mse: new LineChart($('chart-test_mse'), { title: 'Test MSE', yLabel: 'test MSE', yLog: true }),
};

function scheduleRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    renderCharts();
    renderTable();
  });
}

function stats(values) {
  const v = values.filter((x) => Number.isFinite(x));
  if (!v.length) return null;
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return { mean, std };
}

/** Per method: evaluation points (by step) with the metric's mean and std over seeds. */
function curves(metric, xMode) {
  return state.names.map((name, m) => {
    const bySteps = new Map();
    for (const run of state.rows[m] || []) {
      for (const row of run) {
        const step = row[F.step];
        if (!bySteps.has(step)) bySteps.set(step, []);
        bySteps.get(step).push(row);
      }
    }
    const points = [];
    for (const [step, rows] of [...bySteps.entries()].sort((a, b) => a[0] - b[0])) {
      const s = stats(rows.map((r) => r[F[metric]]));
      if (!s) continue;
      const x = xMode === 'flops' ? rows[0][F.train_flops] + rows[0][F.infer_flops] : step;
      points.push({ x, ...s });
    }
    return { name, points };
  });
}

function renderCharts() {
  const xMode = $('x-axis').value;
  for (const [metric, chart] of Object.entries(charts)) {
    const perMethod = curves(metric, xMode);
    const xsSet = new Set();
    for (const c of perMethod) for (const p of c.points) if (xMode !== 'flops' || p.x > 0) xsSet.add(p.x);
    const xs = [...xsSet].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const series = perMethod
      .filter((c) => c.points.length)
      .map((c) => {
        const mean = new Array(xs.length).fill(null);
        const lo = new Array(xs.length).fill(null);
        const hi = new Array(xs.length).fill(null);
        for (const p of c.points) {
          const i = index.get(p.x);
          if (i === undefined) continue;
          const pos = (v) => (metric === 'test_mse' && !(v > 0) ? null : v);
          mean[i] = pos(p.mean);
          lo[i] = pos(p.mean - p.std);
          hi[i] = pos(p.mean + p.std);
        }
        return { name: c.name, color: colorOf(state.names.indexOf(c.name)), mean, lo, hi };
      });
    const wrap = chart.container;
    if (!series.length) {
      wrap.dataset.empty = 'true';
      if (chart.plot) {
        chart.plot.destroy();
        chart.plot = null;
        chart.shape = '';
      }
      chart.legend.textContent = metric === 'dict_mcc' && state.config && state.config.setting === 'known_codes'
        ? 'No dictionary in the known-codes setting.'
        : 'No evaluations yet.';
      continue;
    }
    wrap.dataset.empty = 'false';
    chart.setData({ xs, series, xLog: xMode === 'flops', xLabel: xMode === 'flops' ? 'total FLOPs (training + inference)' : 'training steps' });
  }
}

function lastRows(m) {
  return (state.rows[m] || []).map((run) => run[run.length - 1]).filter(Boolean);
}

function renderTable() {
  const body = $('summary').tBodies[0];
  const cells = (m) => {
    const rows = lastRows(m);
    const cell = (key, digits) => {
      const s = stats(rows.map((r) => r[F[key]]));
      if (!s) return '–';
      if (digits === 'int') return s.mean.toFixed(1);
      if (digits === 'sci') return formatNumber(s.mean);
      return rows.length > 1 ? `${s.mean.toFixed(3)} ± ${s.std.toFixed(3)}` : s.mean.toFixed(3);
    };
    return [
      cell('code_mcc'),
      cell('dict_mcc'),
      cell('test_mse', 'sci'),
      cell('l0', 'int'),
      cell('dead_latents', 'int'),
      cell('train_flops', 'sci'),
      cell('infer_flops', 'sci'),
      cell('wall_s', 'int'),
    ];
  };
  body.replaceChildren(
    ...state.names.map((name, m) => {
      const tr = document.createElement('tr');
      const th = document.createElement('td');
      const swatch = document.createElement('span');
      swatch.textContent = '■ ';
      swatch.style.color = colorOf(m);
      swatch.setAttribute('aria-hidden', 'true');
      th.append(swatch, name);
      tr.append(th);
      for (const text of cells(m)) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
}

// ---------------------------------------------------------------- dictionaries and codes

function fillViewSelectors() {
  const method = $('view-method');
  const run = $('view-run');
  method.replaceChildren(
    ...state.names.map((name, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = name;
      return o;
    }),
  );
  run.replaceChildren(
    ...Array.from({ length: state.runs }, (_, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = `${i + 1} (seed ${state.config.seed + i})`;
      return o;
    }),
  );
  state.view = {
    method: Math.min(state.view.method, state.names.length - 1),
    run: Math.min(state.view.run, state.runs - 1),
  };
  method.value = String(state.view.method);
  run.value = String(state.view.run);
  renderViews();
}

function changeView() {
  state.view = { method: Number($('view-method').value), run: Number($('view-run').value) };
  state.snapshot = null;
  renderViews();
  if (state.ready) engine.view(state.view.method, state.view.run);
}

function renderViews() {
  const cfg = state.config;
  if (!cfg || !state.trueDictionary) return;
  const N = cfg.data.num_atoms;
  const M = cfg.data.data_dim;
  const D = state.trueDictionary;
  drawHeatmap($('heat-true'), M, N, (r, c) => D[c * M + r], {
    title: 'True dictionary', xLabel: 'atom', yLabel: 'coordinate',
  });
  const snap = state.snapshot;
  const ids = ['heat-learned', 'heat-gram', 'heat-codes-true', 'heat-codes'];
  if (!snap) {
    const why = state.source === 'loaded'
      ? 'Results files hold curves, not dictionaries: run to see them.'
      : 'Appears after the first evaluation.';
    for (const id of ids) drawMessage($(id), why);
    $('view-status').textContent = '';
    return;
  }
  $('view-status').textContent = `at step ${snap.step.toLocaleString()}`;
  if (snap.dictionary) {
    const L = snap.latents;
    const learned = snap.dictionary;
    drawHeatmap($('heat-learned'), M, N, (r, c) => {
      const j = snap.dictMatch[c];
      return j < 0 ? NaN : snap.dictSign[c] * learned[j * M + r];
    }, {
      title: 'Learned atoms, matched', xLabel: 'true atom', yLabel: 'coordinate',
      strip: Array.from(snap.dictCorr), stripLabel: '|corr|',
    });
    drawHeatmap($('heat-gram'), L, L, (r, c) => snap.gram[c * L + r], {
      title: 'Learned Gram matrix', xLabel: 'learned atom', yLabel: 'learned atom', vmax: 1,
    });
  } else {
    drawMessage($('heat-learned'), 'This method has no dictionary in this setting.');
    drawMessage($('heat-gram'), 'No dictionary.');
  }
  const S = snap.samples;
  drawHeatmap($('heat-codes-true'), N, S, (r, c) => snap.trueCodes[c * N + r], {
    title: 'True codes', xLabel: 'test sample', yLabel: 'latent',
  });
  const L = snap.latents;
  drawHeatmap($('heat-codes'), N, S, (r, c) => {
    const j = snap.codeMatch[r];
    return j < 0 ? NaN : snap.codes[c * L + j];
  }, {
    title: 'Inferred codes, matched', xLabel: 'test sample', yLabel: 'true latent',
  });
}

// ---------------------------------------------------------------- export, import, persistence

function downloadText(text, name, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  downloadURL(url, name);
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function exportJson() {
  if (state.source === 'loaded' && state.loadedJson) {
    downloadText(state.loadedJson, 'sparse-playground-results.json', 'application/json');
  } else if (engine.size > 0) {
    engine.requestResults('export');
  }
}

/**
 * A text cell for CSV: quoted, and neutralised when a spreadsheet would read it as a formula
 * (a leading =, +, -, @, tab or carriage return; names come from results files anyone can
 * write), by a leading apostrophe as OWASP recommends.
 */
function csvText(text) {
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return `"${safe.replace(/"/g, '""')}"`;
}

function exportCsv() {
  const cfg = state.config;
  const lines = [['method', 'seed', ...FIELDS.slice(2)].join(',')];
  state.names.forEach((name, m) => {
    (state.rows[m] || []).forEach((run, r) => {
      for (const row of run) {
        const values = FIELDS.slice(2).map((f) => (Number.isFinite(row[F[f]]) ? String(row[F[f]]) : ''));
        lines.push([csvText(name), cfg.seed + r, ...values].join(','));
      }
    });
  });
  downloadText(`${lines.join('\n')}\n`, 'sparse-playground-curves.csv', 'text/csv');
}

/** Show a results file (CLI or page). Throws with the reason when it is not one. */
function showResults(json) {
  const normalized = normalizeResults(json);
  const results = JSON.parse(normalized);
  state.source = 'loaded';
  state.loadedJson = normalized;
  const config = results.config;
  const names = results.methods.map((m) => m.name);
  clearRuns(names, config.runs);
  results.methods.forEach((method, m) => {
    method.runs.forEach((run) => {
      const r = run.seed - config.seed;
      if (r < 0 || r >= config.runs) return;
      for (const rec of run.log) {
        const row = new Float64Array(FIELDS.length);
        for (const f of FIELDS) row[F[f]] = rec[f] == null ? NaN : rec[f];
        row[F.method] = m;
        row[F.run] = r;
        state.rows[m][r].push(row);
      }
    });
  });
  applyConfig(config, { keepResults: true });
  setStatus();
  updateControls();
  scheduleRender();
}

function save(json) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ saved: new Date().toISOString(), json }));
  } catch (e) {
    banner('info', `This run could not be kept for the next visit: ${errorText(e)}`, 'storage');
  }
}

function loadSaved() {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const { saved, json } = JSON.parse(raw);
    const results = JSON.parse(normalizeResults(json));
    return { saved, json, config: results.config };
  } catch {
    localStorage.removeItem(STORAGE_KEY);
    return null;
  }
}

// ---------------------------------------------------------------- wiring

function onFormChange(event) {
  if (event.target.id === 'add-method' || event.target.id === 'backend') return;
  applyConfig(readForm(), { fromForm: true });
}

$('config').addEventListener('change', onFormChange);
$('config').addEventListener('submit', (e) => e.preventDefault());
$('add-method').addEventListener('change', (e) => {
  const kind = e.target.value;
  e.target.value = '';
  if (!kind) return;
  const config = readForm();
  config.methods.push(methodDefaults(kind));
  applyConfig(config, { fromForm: true });
});
for (const button of document.querySelectorAll('[data-preset]')) {
  button.addEventListener('click', () => applyConfig(presetConfig(button.dataset.preset)));
}
$('play').addEventListener('click', () => (state.playing ? pause() : play()));
$('step').addEventListener('click', () => {
  if (!state.ready) return;
  if (state.source === 'loaded') {
    state.source = 'live';
    clearRuns(state.names, state.runs);
  }
  state.playing = true; // until the step's evaluations are in; Pause stops it
  engine.step();
  updateControls();
});
$('reset').addEventListener('click', () => {
  $('banners').querySelector('[data-id="engine"]')?.remove();
  startExperiment();
  scheduleRender();
});
$('cancel').addEventListener('click', cancel);
$('copy-link').addEventListener('click', copyLink);
$('link-autorun').addEventListener('change', () => {
  if (state.config) $('share-link').value = linkFor($('link-autorun').checked);
});
$('export-json').addEventListener('click', exportJson);
$('export-csv').addEventListener('click', exportCsv);
$('x-axis').addEventListener('change', scheduleRender);
$('view-method').addEventListener('change', changeView);
$('view-run').addEventListener('change', changeView);
$('load-json').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  e.target.value = '';
  if (!file) return;
  try {
    showResults(await file.text());
    banner('info', `Loaded ${file.name}.`, 'load');
  } catch (err) {
    banner('error', `${file.name} is not a results file this page can read: ${errorText(err)}`, 'load');
  }
});
// The address's hash holds the experiment, so the metric definitions ("?" links) open in place
// instead of navigating to #def-...: following them would read as a malformed link and reset
// the page.
document.addEventListener('click', (e) => {
  const link = e.target.closest('a[href^="#def-"]');
  if (!link) return;
  e.preventDefault();
  showDefinition(link.getAttribute('href').slice(1));
});
function showDefinition(id) {
  const term = document.getElementById(id);
  if (!term) return;
  $('definitions').open = true;
  for (const el of document.querySelectorAll('.defs .current')) el.classList.remove('current');
  term.classList.add('current');
  term.tabIndex = -1;
  const smooth = !window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  term.scrollIntoView({ block: 'center', behavior: smooth ? 'smooth' : 'auto' });
  term.focus({ preventScroll: true });
}
window.addEventListener('hashchange', () => {
  const hash = window.location.hash.slice(1);
  if (state.config && hash === encodeLink(state.config, hiddenExtra())) return;
  openFromLocation();
});
document.addEventListener('keydown', (e) => {
  // Space toggles the run when focus is not in a control that uses it.
  if (e.code === 'Space' && e.target === document.body) {
    e.preventDefault();
    $('play').click();
  }
});

$('engine-version').textContent = engineVersion();
$('backend-note').textContent = navigator.gpu ? 'WebGPU available' : 'no WebGPU in this browser: CPU';
$('backend').addEventListener('change', (e) => {
  state.backend = e.target.value;
  if (!state.config) return;
  updateLink();
  startExperiment();
  scheduleRender();
});

/** Open what the address asks for: a link, the last finished run, or the paper's main preset. */
function openFromLocation() {
  state.hidden = [];
  state.backend = 'auto';
  const initial = initialConfig();
  applyHidden();
  $('backend').value = state.backend;
  if (initial.saved) {
    try {
      showResults(initial.saved.json);
      banner('info', `Restored your last finished run (saved ${new Date(initial.saved.saved).toLocaleString()}).`, 'restore');
      return;
    } catch {
      // Fall through to a fresh experiment.
    }
  }
  try {
    applyConfig(initial.config);
  } catch (e) {
    if (errorText(e).startsWith('memory:')) {
      // Too large for this page: show what the link asks for, say what to reduce, build
      // nothing. An edit that brings it within the budget starts it as usual.
      writeForm(initial.config);
      showConfigError(`Not run: ${errorText(e)}`);
      banner('error', 'This link asks for more memory than the page allows; nothing was built. Reduce the experiment in the form.', 'link');
      document.body.dataset.state = 'refused';
      updateControls();
      return;
    }
    banner('error', `This link describes an experiment that cannot run: ${errorText(e)}. Showing the default experiment instead.`, 'link');
    applyConfig(presetConfig('unknown-zd'));
  }
}

openFromLocation();

if ('serviceWorker' in navigator && window.location.protocol.startsWith('http')) {
  navigator.serviceWorker.register(new URL('./sw.js', window.location.href)).catch(() => {
    // Offline support is a convenience; the page works the same without it.
  });
}
