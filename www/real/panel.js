// The real-activations mode: load the shipped sample or a file (checked by the engine before
// anything runs), choose methods and sizes, run in a worker (../real-worker.js), and show the
// table and the compute frontier (../views/real.js). A run's methods are shared between workers,
// one per core as memory allows, by their estimated times; each method is computed exactly as it
// would be alone, so the numbers do not depend on how many workers there are. Links: `real=sample` and the settings that
// differ from the defaults (see LINK_KEYS); a file of one's own cannot travel in a link, so its
// link says `real=file` and asks for the file again.
import { checkSynthetic, inspectTokens, realAuto, realDefaults } from '../engine.js';
import { $, banner, errorText } from '../page/state.js';
import { downloadText } from '../page/files.js';
import { calibration } from '../page/calibrate.mjs';
import { formatDuration } from '../page/format.mjs';
import { LONG_RUN_SECONDS } from '../page/player.js';
import { poolSize } from '../engine-pool.js';
import { hasTruth, parseTokens, renderFeature, renderFrontier, renderRealTable } from '../views/real.js';

const SAMPLE = {
  name: 'smollm2-135m-l15 (SmolLM2-135M, block 15, Pride and Prejudice)',
  npy: new URL('../sample/smollm2-135m-l15.npy', import.meta.url),
  tokens: new URL('../sample/smollm2-135m-l15.tokens.json', import.meta.url),
};

/** The page's defaults: the sample (N = 2 x 576, 400 steps; about 2 min in Chromium on a 2-core machine, its methods shared by two workers, so Run may ask first). */
const DEFAULTS = {
  latents: 1152, steps: 400, l1: 3, lr: 0.001, batch: 256, gap: 128, seed: 0,
  center: true, scale: 'dim', k: 32, h: 1024, t: 3, resample: 200, methods: ['sae', 'topk', 'ito'],
  backend: 'auto',
};
const METHOD_NAMES = ['sae', 'topk', 'batchtopk', 'jumprelu', 'ito', 'lista', 'mlp', 'sc'];
const NUMBER_KEYS = { N: 'latents', steps: 'steps', l1: 'l1', lr: 'lr', batch: 'batch', gap: 'gap', seed: 'seed', k: 'k', h: 'h', T: 't', resample: 'resample' };
const LINK_KEYS = new Set(['real', 'syn', 'methods', 'center', 'scale', 'backend', 'run', ...Object.keys(NUMBER_KEYS)]);
/** Where a run computes: every core's worker on the CPU, one worker on the GPU (WebGPU), or
 * (auto) whichever a trial of the experiment on each estimates faster. */
const BACKENDS = ['auto', 'cpu', 'gpu'];
/** Synthetic activations: true features, dimensions, K and tokens (link `syn=64,32,4,4096`). */
const SYNTHETIC = { atoms: 64, dim: 32, k: 4, tokens: 4096 };
const SYN_FIELDS = { atoms: 'real-syn-atoms', dim: 'real-syn-dim', k: 'real-syn-k', tokens: 'real-syn-tokens' };
/** Settings that show the gap on synthetic activations in seconds (N = the true features): 6.5 s in Chromium on 2 cores at the default sizes. */
const SYNTHETIC_SETTINGS = { steps: 3000, l1: 1, lr: 0.003, t: 3, methods: ['sae', 'topk', 'ito', 'lista'] };
const FIELDS = { latents: 'real-latents', steps: 'real-steps', l1: 'real-l1', lr: 'real-lr', batch: 'real-batch', gap: 'real-gap', seed: 'real-seed', k: 'real-k', h: 'real-h', t: 'real-t', resample: 'real-resample' };
const SCALES = ['dim', 'unit', 'none'];

const real = {
  // {name, blob: the file (or the fetched sample), tokens, dim, tokensText, kind: 'sample' |
  // 'file'}, or for synthetic
  // activations {name, kind: 'synthetic', spec: {atoms, dim, k, tokens}, tokens, dim}.
  source: null,
  // Workers, each holding the activations read once (a RealSource) and computing one
  // experiment (or its part) at a time: {worker, source: the key of the activations it holds
  // (see sourceKey), or null}. The first reads files and times estimates; the others are made
  // for runs whose methods are shared.
  workers: [],
  // The run's parts (per worker, the methods it computes), and per method [its worker, its
  // place in that worker's results].
  parts: [],
  owner: [],
  // Per worker of the run: {done, total, status}, and its results {results, rankings} once in.
  partProgress: [],
  partResults: [],
  // The feature view asked last: {id, method, view (once in), waiting: the workers whose
  // matches are awaited, matched: those in}.
  feature: null,
  nextFeatureId: 1,
  // Activations the worker is reading: {id, name, blob, kind, tokensText, resolve}.
  reading: null,
  nextSourceId: 1,
  // The time estimate of the form's experiment: {id, raw, seconds, training, analysis,
  // analysisMax} once measured, {id} while it is, {id, error} when the engine refuses the
  // config, null with no activations or an incomplete form.
  estimate: null,
  estimateTimer: 0,
  nextEstimateId: 1,
  // Run pressed (or a link's run=1) while the estimate was measured: decide once it is in.
  waitEstimate: false,
  longConfirmed: false,
  // A run from its start to its end, timed to calibrate later estimates.
  timing: null,
  // The number of the last run started (the worker's messages about a run carry it).
  runId: 0,
  results: null,
  running: false,
  rankings: [], // per method: latents by frequency (flat: latent, frequency, ...)
  tokens: null, // the parsed token texts of the source
};

/** Tokens listed in a feature view. */
const TOP_TOKENS = 12;

function fistaToConvergence() {
  return { solver: 'fista', steps: 5000, nonneg: true, tol: 1e-3 };
}

/** The form's settings (numbers unparsed where empty or invalid: the engine says why). */
function readSettings() {
  const s = {};
  for (const [key, id] of Object.entries(FIELDS)) s[key] = $(id).value === '' ? NaN : Number($(id).value);
  s.center = $('real-center').checked;
  s.scale = $('real-scale').value;
  s.backend = $('real-backend').value;
  s.methods = METHOD_NAMES.filter((m) => $(`real-m-${m}`).checked);
  return s;
}

function writeSettings(s) {
  for (const [key, id] of Object.entries(FIELDS)) $(id).value = String(s[key]);
  $('real-center').checked = s.center;
  $('real-scale').value = s.scale;
  $('real-backend').value = s.backend;
  for (const m of METHOD_NAMES) $(`real-m-${m}`).checked = s.methods.includes(m);
}

/** The engine's config for the settings (the engine validates it when the run starts). */
function configFor(s) {
  const cfg = JSON.parse(realDefaults());
  cfg.source = real.source ? real.source.name : '';
  cfg.latents = s.latents;
  cfg.train.steps = s.steps;
  cfg.train.l1_penalty = s.l1;
  cfg.train.lr = s.lr;
  cfg.train.batch_size = s.batch;
  cfg.train.log_every = Math.max(1, Math.round(s.steps / 6));
  cfg.gap.tokens = s.gap;
  cfg.schedule.resample_every = s.resample;
  cfg.seed = s.seed;
  cfg.preprocess.center = s.center;
  cfg.preprocess.scale = s.scale;
  cfg.methods = s.methods.map((m) => {
    switch (m) {
      case 'sae': return { kind: 'sae', bias: true };
      case 'topk': return { kind: 'topk_sae', k: s.k, bias: true };
      case 'ito': return { kind: 'sae_ito', bias: true, inference: fistaToConvergence() };
      case 'mlp': return { kind: 'mlp', hidden: [s.h], bias: true };
      case 'lista': return { kind: 'lista', iterations: s.t };
      case 'batchtopk': return { kind: 'batch_topk_sae', k: s.k, bias: true };
      case 'jumprelu': return { kind: 'jump_relu_sae', bias: true };
      default: return { kind: 'sparse_coding', inference: fistaToConvergence() };
    }
  });
  return cfg;
}

/** Why Run cannot start, or '' when it can. */
function whyNot(s) {
  if (!real.source) return 'Load the sample or a file first.';
  if (!s.methods.length) return 'Choose at least one method.';
  for (const [key, id] of Object.entries(FIELDS)) {
    if (!Number.isFinite(s[key])) return `${$(id).labels[0].textContent.trim()}: enter a number.`;
  }
  if (real.estimate && real.estimate.error) return `Not valid: ${real.estimate.error}`;
  return '';
}

/** The form's field that an engine error names (`methods[1].k`, `train.batch_size`), if any. */
const ERROR_FIELDS = [
  [/\.k\b/, 'real-k'], [/\.iterations\b/, 'real-t'], [/\.hidden/, 'real-h'], [/^latents\b/, 'real-latents'],
  [/train\.steps/, 'real-steps'], [/train\.lr/, 'real-lr'], [/train\.l1_penalty/, 'real-l1'],
  [/train\.batch_size/, 'real-batch'], [/gap\./, 'real-gap'], [/schedule\.resample_every/, 'real-resample'],
];
function fieldOfError(message) {
  const found = ERROR_FIELDS.find(([re]) => re.test(message || ''));
  return found ? found[1] : null;
}

function updateControls() {
  const why = real.running ? '' : whyNot(readSettings());
  $('real-run').disabled = real.running || !!why;
  $('real-run-why').hidden = !why;
  $('real-run-why').textContent = why;
  const bad = real.estimate && real.estimate.error ? fieldOfError(real.estimate.error) : null;
  for (const id of Object.values(FIELDS)) {
    if (id === bad) $(id).setAttribute('aria-invalid', 'true');
    else $(id).removeAttribute('aria-invalid');
  }
  showEstimate();
  $('real-cancel').disabled = !real.running;
  $('real-export').disabled = !real.results;
  $('real-sample').disabled = real.running;
  $('real-file').disabled = real.running;
  document.body.dataset.realState = real.running ? 'running' : real.results ? 'finished' : real.source ? 'ready' : 'empty';
}

/** The link of the current settings: only what differs from the defaults. */
export function realLink(autorun = false) {
  const s = readSettings();
  const kind = real.source ? real.source.kind : 'sample';
  const parts = [`real=${kind}`];
  if (kind === 'synthetic') parts.push(`syn=${synSpecText(real.source.spec)}`);
  const shortKey = Object.fromEntries(Object.entries(NUMBER_KEYS).map(([k, v]) => [v, k]));
  for (const key of Object.keys(FIELDS)) {
    if (Number.isFinite(s[key]) && s[key] !== DEFAULTS[key]) parts.push(`${shortKey[key]}=${s[key]}`);
  }
  if (s.center !== DEFAULTS.center) parts.push(`center=${s.center ? 1 : 0}`);
  if (s.scale !== DEFAULTS.scale) parts.push(`scale=${s.scale}`);
  if (s.methods.join(',') !== DEFAULTS.methods.join(',')) parts.push(`methods=${s.methods.join(',')}`);
  if (s.backend !== DEFAULTS.backend) parts.push(`backend=${s.backend}`);
  if (autorun) parts.push('run=1');
  return parts.join('&');
}

function updateLink() {
  const link = realLink();
  $('real-share-link').value = `${window.location.href.split('#')[0]}#${link}`;
  history.replaceState(null, '', `#${link}`);
}

export function isRealLink(hash) {
  return /(^|&)real=/.test(hash);
}

/** Settings from a link, or an error naming the key that is wrong. */
export function parseRealLink(hash) {
  const s = { ...DEFAULTS, methods: [...DEFAULTS.methods] };
  let source = 'sample';
  let spec = null;
  let run = false;
  const seen = new Set();
  for (const pair of hash.split('&').filter(Boolean)) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1));
    if (!LINK_KEYS.has(key)) throw new Error(`unknown key \`${key}\` (this page reads ${[...LINK_KEYS].join(', ')})`);
    if (seen.has(key)) throw new Error(`\`${key}\` appears twice`);
    seen.add(key);
    if (key === 'real') {
      if (!['sample', 'file', 'synthetic'].includes(value)) throw new Error(`real=${value}: expected sample, file or synthetic`);
      source = value;
    } else if (key === 'syn') {
      const v = value.split(',').map(Number);
      if (v.length !== 4 || !v.every((x) => Number.isInteger(x) && x > 0)) {
        throw new Error(`syn=${value}: expected four whole numbers, true features,dimensions,K,tokens`);
      }
      spec = { atoms: v[0], dim: v[1], k: v[2], tokens: v[3] };
    } else if (key in NUMBER_KEYS) {
      const v = Number(value);
      if (value === '' || !Number.isFinite(v)) throw new Error(`${key}=${value}: expected a number`);
      s[NUMBER_KEYS[key]] = v;
    } else if (key === 'methods') {
      const list = value.split(',').filter(Boolean);
      const bad = list.find((m) => !METHOD_NAMES.includes(m));
      if (bad || !list.length) throw new Error(`methods=${value}: expected some of ${METHOD_NAMES.join(', ')}`);
      s.methods = list;
    } else if (key === 'center') {
      if (value !== '0' && value !== '1') throw new Error(`center=${value}: expected 0 or 1`);
      s.center = value === '1';
    } else if (key === 'scale') {
      if (!SCALES.includes(value)) throw new Error(`scale=${value}: expected ${SCALES.join(', ')}`);
      s.scale = value;
    } else if (key === 'backend') {
      if (!BACKENDS.includes(value)) throw new Error(`backend=${value}: expected ${BACKENDS.join(' or ')}`);
      s.backend = value;
    } else if (key === 'run') {
      if (value !== '1') throw new Error(`run=${value}: expected 1`);
      run = true;
    }
  }
  if (spec && source !== 'synthetic') throw new Error('`syn` goes with real=synthetic');
  return { settings: s, source, run, spec: source === 'synthetic' ? spec || { ...SYNTHETIC } : null };
}

function synSpecText(spec) {
  return [spec.atoms, spec.dim, spec.k, spec.tokens].join(',');
}

/** Make synthetic activations of `spec` the source (checked by the engine first). */
function useSynthetic(spec) {
  let info;
  try {
    info = checkSynthetic(spec.atoms, spec.dim, spec.k, spec.tokens);
  } catch (e) {
    banner('error', `These synthetic activations cannot be made: ${errorText(e)}${real.source ? ` (still using ${real.source.name})` : ''}`, 'real-synthetic');
    return false;
  }
  for (const [key, id] of Object.entries(SYN_FIELDS)) $(id).value = String(spec[key]);
  $('real-synthetic-box').open = true;
  const name = `synthetic: ${spec.atoms} true features in ${spec.dim} dimensions, K = ${spec.k}`;
  real.source = { name, kind: 'synthetic', spec: { ...spec }, tokens: info.tokens, dim: info.dim };
  real.tokens = null;
  dropWorkers(1);
  clearResults();
  $('real-source').textContent = `${name}: ${info.tokens.toLocaleString()} tokens × ${info.dim}, drawn from the seed; their true features are known, so code MCC is scored too`;
  setStatus('Ready: press Run.');
  requestEstimate(0);
  updateControls();
  updateLink();
  return true;
}

function setStatus(text) {
  $('real-status').textContent = text;
}

/**
 * Read activations in the worker (the page keeps only the file's Blob, and never reads it)
 * and keep them once the engine has checked them; an error keeps what was loaded
 * before. Resolves to whether they were taken.
 */
function useActivations(name, blob, kind, tokensText) {
  const id = real.nextSourceId++;
  setStatus(`Reading ${name}…`);
  return new Promise((resolve) => {
    real.reading = { id, name, blob, kind, tokensText, resolve };
    postSource(blob, id);
  });
}

/** The worker's answer about activations it read: `{id, info}` or `{id, error}`. */
function onSourceRead(msg) {
  const r = real.reading;
  if (!r || r.id !== msg.id) {
    // The current activations sent again (to a new worker): only a failure matters.
    if (msg.error) banner('error', `The activations could not be read again: ${msg.error}`, 'real-file');
    return;
  }
  real.reading = null;
  const refuse = (why) => {
    banner('error', `These activations cannot be used. ${r.name}: ${why}${real.source ? ` (still using ${real.source.name})` : ''}`, 'real-file');
    setStatus(real.source ? 'Ready: press Run.' : 'Load the sample or a file of activations.');
    // The worker keeps the last activations it read well; if those are not the page's, the
    // page's are sent again before the next estimate or run.
    if (!msg.error && real.workers[0]) real.workers[0].source = null;
    r.resolve(false);
  };
  if (msg.error) return refuse(msg.error);
  let contexts = null;
  if (r.tokensText) {
    try {
      contexts = inspectTokens(r.tokensText, msg.info.tokens);
    } catch (e) {
      return refuse(errorText(e));
    }
  }
  real.source = { name: r.name, blob: r.blob, kind: r.kind, tokens: msg.info.tokens, dim: msg.info.dim, tokensText: r.tokensText };
  real.workers[0].source = r.blob;
  // Workers made for earlier runs hold the old activations: they go (and their memory).
  dropWorkers(1);
  real.tokens = parseTokens(r.tokensText);
  clearResults();
  const info = msg.info;
  $('real-source').textContent =
    `${r.name}: ${info.tokens.toLocaleString()} tokens × ${info.dim} (${info.dtype}${info.tensor ? `, tensor ${info.tensor}` : ''})` +
    (contexts != null ? `, token texts in ${contexts} contexts` : '');
  setStatus('Ready: press Run.');
  requestEstimate(0);
  updateControls();
  updateLink();
  r.resolve(true);
}

/**
 * Files dropped on the mode: a .json is token texts, anything else activations (the engine
 * says if it is neither .npy nor .safetensors). Both at once: the texts go with the activations.
 */
async function dropFiles(files) {
  if (real.running || !files.length) return;
  const texts = files.find((f) => /\.json$/i.test(f.name));
  const acts = files.find((f) => f !== texts);
  const tokensText = texts ? await texts.text() : null;
  if (acts) useActivations(acts.name, acts, 'file', tokensText);
  else if (texts && real.source && real.source.blob) useTokens(tokensText);
  else if (texts) banner('error', 'Token texts go with activations: drop or choose the activations first.', 'real-file');
}

/** Token texts for the activations already loaded (checked against their rows). */
function useTokens(text) {
  let contexts;
  try {
    contexts = inspectTokens(text, real.source.tokens);
  } catch (e) {
    banner('error', `These token texts cannot be used: ${errorText(e)}`, 'real-tokens-file');
    return;
  }
  real.source = { ...real.source, tokensText: text };
  real.tokens = parseTokens(text);
  const shown = $('real-source').textContent.replace(/, token texts in \d+ contexts$/, '');
  $('real-source').textContent = `${shown}, token texts in ${contexts} contexts`;
}

/** Worker `i`, made when first needed or after it failed (and given the activations later). */
function ensureWorker(i = 0) {
  while (real.workers.length <= i) real.workers.push(null);
  if (!real.workers[i]) {
    const entry = { worker: new Worker(new URL('../real-worker.js', import.meta.url), { type: 'module' }), source: null };
    entry.worker.onmessage = (event) => onWorkerMessage(entry, event.data);
    real.workers[i] = entry;
  }
  return real.workers[i];
}

/** End the workers from the `from`-th on. */
function dropWorkers(from) {
  for (const entry of real.workers.splice(from)) {
    if (entry) entry.worker.terminate();
  }
}

function post(message, i = 0) {
  ensureWorker(i).worker.postMessage(message);
}

/** A file to the first worker, which reads it piece by piece (a Blob passes by reference). */
function postSource(blob, id) {
  post({ type: 'source', id, blob });
}

/** What identifies the activations a worker holds: a file's Blob, or synthetic activations'
 * sizes with the seed they are drawn from (a new seed, new activations). */
function sourceKey() {
  return real.source.kind === 'synthetic' ? `${synSpecText(real.source.spec)}/${readSettings().seed}` : real.source.blob;
}

/** Give worker `i` the current activations if it does not hold them. */
function sendSource(i = 0) {
  if (!real.source) return;
  const key = sourceKey();
  const entry = ensureWorker(i);
  if (entry.source === key) return;
  if (real.source.kind === 'synthetic') {
    post({ type: 'synthetic', ...real.source.spec, seed: readSettings().seed }, i);
  } else {
    post({ type: 'source', id: 0, blob: real.source.blob }, i);
  }
  entry.source = key;
}

/** Memory the workers of one run may hold together: each holds the activations and the
 * state of its methods (the engine's estimate of one worker's need). */
const POOL_MEMORY = 2 * 1024 ** 3;

/**
 * Share the methods between workers: one per core (at most one per method), fewer where
 * memory is short; the longest method first, each to the worker with the least work so far.
 * Returns the parts (per worker, its methods in the config's order) and the seconds of the
 * longest part.
 */
export function planParts(perMethod, memory, cores = poolSize(perMethod.length)) {
  const byMemory = memory > 0 ? Math.max(1, Math.floor(POOL_MEMORY / memory)) : 1;
  const size = Math.max(1, Math.min(cores, byMemory, perMethod.length));
  const parts = Array.from({ length: size }, () => ({ methods: [], seconds: 0 }));
  const order = perMethod.map((_, i) => i).sort((a, b) => perMethod[b] - perMethod[a] || a - b);
  for (const m of order) {
    const least = parts.reduce((best, p) => (p.seconds < best.seconds ? p : best));
    least.methods.push(m);
    least.seconds += perMethod[m];
  }
  const used = parts.filter((p) => p.methods.length);
  return { parts: used.map((p) => p.methods.sort((a, b) => a - b)), seconds: Math.max(...used.map((p) => p.seconds)) };
}

/** Time the form's experiment on a short trial in the worker, `delay` ms after the last edit. */
function requestEstimate(delay = 400) {
  clearTimeout(real.estimateTimer);
  real.estimate = null;
  real.longConfirmed = false;
  if (!real.source || real.running || whyNot(readSettings())) {
    showEstimate();
    return;
  }
  const id = real.nextEstimateId++;
  real.estimate = { id };
  showEstimate();
  real.estimateTimer = setTimeout(() => {
    if (!real.estimate || real.estimate.id !== id) return;
    sendSource();
    const s = readSettings();
    post({ type: 'estimate', id, config: JSON.stringify(configFor(s)), backend: s.backend });
  }, delay);
}

/** The estimate beside Run: what the run should take, or that it is being timed. */
function showEstimate() {
  const el = $('real-estimate');
  const e = real.estimate;
  delete document.body.dataset.realEstimate;
  delete document.body.dataset.realEstimateOn;
  if (!e || e.error || real.running) {
    el.textContent = '';
    el.hidden = true;
    return;
  }
  el.hidden = false;
  if (e.seconds === undefined) {
    el.textContent = 'Timing a short trial…';
    return;
  }
  document.body.dataset.realEstimate = String(e.seconds);
  document.body.dataset.realEstimateOn = e.on;
  const scale = e.raw > 0 ? e.seconds / e.raw : 1;
  const work = e.training + e.analysis;
  const most = work > 0 ? (e.seconds * (e.training + e.analysisMax)) / work : e.seconds;
  // On the GPU one worker computes every method, one after another.
  const shared = e.parts.length > 1 && e.on === 'cpu';
  const where = e.on === 'gpu' ? `on the GPU (${e.adapter})` : 'on this machine';
  el.textContent =
    `About ${formatDuration(e.seconds)} ${where}` +
    (shared ? `, its ${e.parts.flat().length} methods shared by ${e.parts.length} workers` : '') +
    `: training ${formatDuration(e.training * scale)}, the gap's analysis ${formatDuration(e.analysis * scale)}` +
    (shared ? ' of work in all' : '') +
    (most > e.seconds * 1.2 ? ` (up to ${formatDuration(most)} if its solvers need every iteration they may take).` : '.') +
    (e.notice ? ` ${e.notice.replace(/^auto: /, 'Auto: ').replace(/^./, (c) => c.toUpperCase())}.` : '');
}

/** The estimate the worker timed (`RealSource.estimateOn`'s `{cpu, gpu, adapter, why}`), for
 * the backend asked for: where the run will compute, its calibrated seconds there, and why
 * (auto's comparison with both figures, or why the GPU cannot). The CPU's figure is the longest
 * of its workers' shares; the GPU's, every method one after another. */
function chooseEstimate(id, backend, reply) {
  const cpu = reply.cpu && planParts(reply.cpu.per_method, reply.cpu.memory);
  const cpuSeconds = cpu && cpu.seconds * calibration.scale('real');
  const gpuSeconds = reply.gpu && reply.gpu.seconds * calibration.scale('real-gpu');
  let on = reply.gpu ? 'gpu' : 'cpu';
  let notice = null;
  if (reply.why) {
    notice = backend === 'auto' ? `auto: ${reply.why}; computing on the CPU` : `the GPU was asked for but ${reply.why}; computing on the CPU`;
  } else if (backend === 'auto' && reply.gpu && reply.cpu) {
    const choice = realAuto(gpuSeconds, cpuSeconds, cpu.parts.length, reply.adapter);
    on = choice.gpu ? 'gpu' : 'cpu';
    notice = choice.notice;
  }
  const e = on === 'gpu' ? reply.gpu : reply.cpu;
  return {
    id, on, notice, adapter: reply.adapter,
    raw: on === 'gpu' ? reply.gpu.seconds : cpu.seconds,
    seconds: on === 'gpu' ? gpuSeconds : cpuSeconds,
    parts: on === 'gpu' ? [e.per_method.map((_, i) => i)] : cpu.parts,
    training: e.training, analysis: e.analysis, analysisMax: e.analysis_max,
  };
}

export async function loadSample() {
  setStatus('Loading the sample…');
  try {
    const [npy, tokens] = await Promise.all([fetch(SAMPLE.npy), fetch(SAMPLE.tokens)]);
    if (!npy.ok || !tokens.ok) throw new Error(`HTTP ${npy.ok ? tokens.status : npy.status}`);
    return await useActivations(SAMPLE.name, await npy.blob(), 'sample', await tokens.text());
  } catch (e) {
    banner('error', `The sample could not be loaded: ${errorText(e)}`, 'real-file');
    setStatus('The sample could not be loaded.');
    return false;
  }
}

/** New activations or a new run: the last results go (they were of other data or settings). */
function clearResults() {
  real.results = null;
  $('real-table').replaceChildren();
  $('real-frontier').replaceChildren();
  $('real-features').hidden = true;
}

/** Run pressed: start now, or once the estimate is in, or ask first when it is long. */
function start() {
  const s = readSettings();
  if (whyNot(s) || real.running) return;
  if (!real.longConfirmed) {
    if (!real.estimate) requestEstimate(0);
    if (real.estimate && real.estimate.seconds === undefined && !real.estimate.error) {
      real.waitEstimate = true;
      setStatus('Timing a short trial before the run…');
      return;
    }
    if (real.estimate && real.estimate.seconds > LONG_RUN_SECONDS) {
      askLongRun();
      return;
    }
  }
  launch(s);
}

function askLongRun() {
  const where = real.estimate.on === 'gpu' ? 'on the GPU' : 'on this machine';
  $('real-long-run-text').textContent = `This run is estimated to take about ${formatDuration(real.estimate.seconds)} ${where} (timed on a short trial of it). Run it now?`;
  $('real-long-run').hidden = false;
  $('real-long-run-yes').focus();
}

function hideLongRun() {
  $('real-long-run').hidden = true;
}

function launch(s) {
  hideLongRun();
  real.longConfirmed = false;
  const config = configFor(s);
  const count = config.methods.length;
  // Where the estimate chose (for auto) or found it can compute (the GPU asked for); without
  // one, what was asked for (auto without a trial: the CPU).
  const e = real.estimate && real.estimate.seconds !== undefined && !real.estimate.error ? real.estimate : null;
  const on = e ? e.on : s.backend === 'gpu' ? 'gpu' : 'cpu';
  // The estimate's parts, if it is of these methods; else (and on the GPU, which computes the
  // methods one after another) one worker computes them all.
  const planned = on === 'cpu' && e && e.parts;
  const parts = planned && planned.flat().length === count ? planned : [config.methods.map((_, i) => i)];
  real.parts = parts;
  real.owner = [];
  parts.forEach((part, w) => part.forEach((m, at) => (real.owner[m] = [w, at])));
  real.partProgress = parts.map(() => ({ done: 0, total: 0, status: '' }));
  real.partResults = parts.map(() => null);
  real.feature = null;
  dropWorkers(parts.length);
  document.body.dataset.realWorkers = String(parts.length);
  document.body.dataset.realBackend = on === 'gpu' ? 'choosing' : 'cpu';
  real.running = true;
  real.waitEstimate = false;
  clearResults();
  $('real-progress').value = 0;
  setStatus('Starting…');
  updateControls();
  // A run with an estimate, from its start to its end, calibrates later estimates.
  real.timing = e && e.raw > 0 ? { start: performance.now(), raw: e.raw, kind: on === 'gpu' ? 'real-gpu' : 'real' } : null;
  real.runId += 1;
  const json = JSON.stringify(config);
  parts.forEach((part, w) => {
    sendSource(w);
    post({ type: 'start', run: real.runId, config: json, only: parts.length > 1 ? part : null, backend: on, notice: e ? e.notice : null }, w);
  });
}

/** A worker's results: once every part's are in, merged in the config's order and shown. */
function onResults(w, msg) {
  real.partResults[w] = { results: JSON.parse(msg.json), rankings: msg.rankings };
  if (real.partResults.some((r) => !r)) return;
  real.running = false;
  if (real.timing) calibration.record(real.timing.kind, real.timing.raw, (performance.now() - real.timing.start) / 1000);
  real.timing = null;
  const part = ([worker]) => real.partResults[worker];
  real.results = { ...real.partResults[0].results, methods: real.owner.map((o) => part(o).results.methods[o[1]]) };
  real.rankings = real.owner.map((o) => part(o).rankings[o[1]]);
  $('real-progress').value = 1;
  setStatus('Done: the table, the frontier and the features below.');
  render();
  showFeatures();
  updateControls();
}

/** The feature view asked last, shown once its matches in the other workers' methods are in. */
function showFeature() {
  const f = real.feature;
  if (!f || !f.view || f.waiting.size) return;
  const view = { ...f.view, matched: [...f.view.matched, ...f.matched].sort((a, b) => a.method - b.method) };
  renderFeature($('real-feature-view'), view, real.tokens, pickFeature);
  $('real-feature-view').dataset.shown = `${view.method}:${view.latent}`;
}

function onWorkerMessage(entry, msg) {
  const w = real.workers.indexOf(entry);
  if (w < 0) return;
  if (msg.type === 'source') {
    onSourceRead(msg);
  } else if (msg.type === 'estimate') {
    if (!real.estimate || real.estimate.id !== msg.id) return;
    if (msg.error) {
      real.estimate = { id: msg.id, error: msg.error };
    } else {
      real.estimate = chooseEstimate(msg.id, readSettings().backend, msg.estimate);
    }
    updateControls();
    if (real.waitEstimate) {
      real.waitEstimate = false;
      if (real.estimate.error) setStatus(`Not run: ${real.estimate.error}`);
      else start();
    }
  } else if ((msg.type === 'progress' || msg.type === 'results' || msg.type === 'backend') && msg.run !== real.runId) {
    // From a run cancelled since.
  } else if (msg.type === 'backend') {
    // Where a run asked to compute on the GPU does: there, or on the CPU with the reason.
    document.body.dataset.realBackend = msg.info.kind;
    // Auto's choice was said beside Run; a GPU asked for and not had is said here.
    if (msg.info.notice && !/^auto: /.test(msg.info.notice)) banner('info', msg.info.notice, 'real-backend');
    else $('banners').querySelector('[data-id="real-backend"]')?.remove();
  } else if (msg.type === 'progress') {
    real.partProgress[w] = { done: msg.done, total: msg.total, status: msg.status };
    const done = real.partProgress.reduce((sum, p) => sum + p.done, 0);
    const total = real.partProgress.reduce((sum, p) => sum + p.total, 0);
    $('real-progress').value = total ? done / total : 0;
    const under = real.partProgress.map((p) => p.status).filter((t) => t && t !== 'done');
    setStatus(under.length ? `${under.join('; ').replace(/^./, (c) => c.toUpperCase())}…` : 'Done.');
  } else if (msg.type === 'results') {
    onResults(w, msg);
  } else if (msg.type === 'feature') {
    const f = real.feature;
    if (!f || f.id !== msg.id) return;
    f.view = JSON.parse(msg.json);
    for (const other of f.waiting) post({ type: 'match', id: f.id, atom: msg.atom, except: f.method }, other);
    showFeature();
  } else if (msg.type === 'match') {
    const f = real.feature;
    if (!f || f.id !== msg.id) return;
    f.matched.push(...JSON.parse(msg.json));
    f.waiting.delete(w);
    showFeature();
  } else if (msg.type === 'error' && !real.running) {
    // A feature view the worker could not make; the run's results stay.
    $('real-feature-view').textContent = msg.message;
  } else if (msg.type === 'error') {
    // The workers are replaced (and given the activations again) at the next estimate or run.
    real.running = false;
    real.timing = null;
    real.waitEstimate = false;
    dropWorkers(0);
    setStatus(`Not run: ${msg.message}`);
    banner('error', `The experiment could not run: ${msg.message}`, 'real-run');
    updateControls();
  }
}

/** The feature section, once results are in: methods that trained, their most active latents. */
function showFeatures() {
  const select = $('real-feature-method');
  select.replaceChildren(
    ...real.results.methods.map((m, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = m.name;
      o.disabled = !real.rankings[i] || !real.rankings[i].length;
      return o;
    }),
  );
  const first = real.rankings.findIndex((r) => r && r.length);
  $('real-features').hidden = first < 0;
  if (first >= 0) pickFeature(first, real.rankings[first][0]);
}

/** Show feature `latent` of method `method` (asked of the worker that computed it, which holds
 * its codes; its matches in the methods of other workers are asked of them). */
function pickFeature(method, latent) {
  const owner = real.results && real.owner[method];
  if (!owner || !real.workers[owner[0]]) return;
  $('real-feature-method').value = String(method);
  $('real-feature').value = String(latent);
  $('real-feature').max = String(real.results.config.latents - 1);
  const top = $('real-feature-top');
  const ranking = real.rankings[method] || [];
  top.replaceChildren();
  for (let i = 0; i < Math.min(10, ranking.length / 2); i++) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'link';
    b.textContent = `#${ranking[2 * i]}`;
    b.title = `active on ${(100 * ranking[2 * i + 1]).toFixed(1)}% of held-out tokens`;
    b.addEventListener('click', () => pickFeature(method, ranking[2 * i]));
    top.append(b);
  }
  const others = real.parts.map((_, w) => w).filter((w) => w !== owner[0] && real.workers[w]);
  const id = real.nextFeatureId++;
  real.feature = { id, method, view: null, waiting: new Set(others), matched: [] };
  post({ type: 'feature', id, method, latent, top: TOP_TOKENS, atom: others.length > 0 }, owner[0]);
}

function cancel() {
  for (const entry of real.workers) {
    if (entry) entry.worker.postMessage({ type: 'cancel' });
  }
  real.running = false;
  real.timing = null;
  real.waitEstimate = false;
  setStatus('Cancelled.');
  updateControls();
}

function render() {
  if (!real.results) return;
  const truth = hasTruth(real.results);
  $('real-frontier-mcc').disabled = !truth;
  if (!truth && $('real-frontier-y').value === 'mcc') $('real-frontier-y').value = 'excess';
  renderRealTable($('real-table'), real.results);
  renderFrontier($('real-frontier'), real.results, $('real-frontier-y').value);
}

/** Open a link of this mode: settings into the form, the sample loaded, a run if it says so. */
export async function openRealLink(hash) {
  const { settings, source, run, spec } = parseRealLink(hash);
  writeSettings(settings);
  requestEstimate(0);
  updateControls();
  if (source === 'synthetic') {
    const same = real.source && real.source.kind === 'synthetic' && synSpecText(real.source.spec) === synSpecText(spec);
    if (!same && !useSynthetic(spec)) return;
    if (run) start();
    return;
  }
  if (source === 'file') {
    if (!real.source || real.source.kind !== 'file') {
      setStatus('This link was made with a file of activations: choose it again above.');
    }
    return;
  }
  if (!real.source || real.source.kind !== 'sample') {
    if (!(await loadSample())) return;
  }
  if (run) start();
}

/** Leave the mode: a run under way stops (its worker is ended). */
export function leaveReal() {
  if (real.running) cancel();
  real.waitEstimate = false;
  hideLongRun();
}

export function initRealPanel() {
  $('real-sample').addEventListener('click', () => loadSample());
  $('real-synthetic').addEventListener('click', () => {
    const spec = Object.fromEntries(Object.entries(SYN_FIELDS).map(([key, id]) => [key, Number($(id).value)]));
    if (!Object.values(spec).every((v) => Number.isInteger(v) && v > 0)) {
      banner('error', 'Synthetic activations: enter whole numbers above 0 for the true features, dimensions, K and tokens.', 'real-synthetic');
      return;
    }
    // Settings under which the gap shows in code MCC within a minute: one latent per true
    // feature, TopK's k the true K.
    const s = { ...readSettings(), ...SYNTHETIC_SETTINGS, latents: spec.atoms, k: spec.k };
    writeSettings(s);
    useSynthetic(spec);
  });
  $('real-file').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const tokensFile = $('real-tokens-file').files[0];
    const tokensText = tokensFile ? await tokensFile.text() : null;
    useActivations(file.name, file, 'file', tokensText);
  });
  // Files dropped on the mode: activations (.npy, .safetensors) and token texts (.json).
  for (const zone of [$('real-aside'), $('real-view')]) {
    zone.addEventListener('dragover', (e) => {
      if (!e.dataTransfer || ![...e.dataTransfer.types].includes('Files')) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = real.running ? 'none' : 'copy';
      document.body.classList.add('real-drop');
    });
    zone.addEventListener('dragleave', () => document.body.classList.remove('real-drop'));
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      document.body.classList.remove('real-drop');
      dropFiles([...(e.dataTransfer ? e.dataTransfer.files : [])]);
    });
  }
  $('real-tokens-file').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    if (!file || !real.source || !real.source.blob) return;
    useTokens(await file.text());
  });
  for (const el of document.querySelectorAll('#real-aside input, #real-aside select')) {
    if (el.type === 'file') continue;
    el.addEventListener('input', () => {
      requestEstimate();
      updateControls();
      if (real.source) updateLink();
    });
  }
  $('real-run').addEventListener('click', start);
  $('real-frontier-y').addEventListener('change', render);
  $('real-feature-method').addEventListener('change', (e) => {
    const m = Number(e.target.value);
    if (real.rankings[m] && real.rankings[m].length) pickFeature(m, real.rankings[m][0]);
  });
  $('real-feature').addEventListener('change', (e) => {
    const latent = Number(e.target.value);
    const max = real.results ? real.results.config.latents - 1 : 0;
    if (Number.isInteger(latent) && latent >= 0 && latent <= max) pickFeature(Number($('real-feature-method').value), latent);
    else $('real-feature-view').textContent = `Feature numbers go from 0 to ${max}.`;
  });
  $('real-cancel').addEventListener('click', cancel);
  $('real-long-run-yes').addEventListener('click', () => {
    real.longConfirmed = true;
    start();
  });
  $('real-long-run-no').addEventListener('click', () => {
    hideLongRun();
    $('real-run').focus();
  });
  $('real-copy-link').addEventListener('click', () => {
    updateLink();
    navigator.clipboard?.writeText($('real-share-link').value).catch(() => {});
  });
  $('real-export').addEventListener('click', () => {
    if (real.results) downloadText(JSON.stringify(real.results, null, 2), 'real-activations-results.json', 'application/json');
  });
  writeSettings(DEFAULTS);
  updateControls();
}
