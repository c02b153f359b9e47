// The engine as the page sees it: one experiment, computed by one Web Worker on the GPU or by a
// pool of workers on the CPU (one per core), with the messages of ./worker.js merged into one
// stream. On the CPU each worker builds only its share of the (method, run) pairs; every run
// is computed exactly as it would be alone (the data and each run's initialisation come from
// the seed), so the numbers do not depend on the pool size. If the GPU is lost mid-run, the
// finished runs are kept and the others are redone on a CPU pool.
//
// Messages out (to `onMessage`): 'ready', 'progress', 'snapshot', 'results', 'error' as from a
// single worker, plus 'notice' ({text}: a fallback the page should show) and 'reset-runs'
// ({runs: [[method, run]]}: drop what was shown of these runs, they start again).
import { mergeResults } from './engine.js';

/** Cores to use for a CPU pool: the machine's, at most `units` and at most 8. */
export function poolSize(units) {
  const cores = (typeof navigator !== 'undefined' && navigator.hardwareConcurrency) || 2;
  return Math.max(1, Math.min(cores, units, 8));
}

/**
 * Shares of the (method, run) pairs for `size` workers: run 0 of every method first, dealt
 * round-robin, so every method's first run starts at once somewhere.
 */
export function shares(methods, runs, size, only = null) {
  const units = [];
  for (let r = 0; r < runs; r += 1) {
    for (let m = 0; m < methods; m += 1) units.push([m, r]);
  }
  const wanted = only ? units.filter(([m, r]) => only.some(([om, or]) => om === m && or === r)) : units;
  const out = Array.from({ length: Math.min(size, wanted.length) || 1 }, () => []);
  wanted.forEach((u, i) => out[i % out.length].push(u));
  return out;
}

/** Whether a pool entry computes run `run` of method `method`. */
function holds(entry, method, run) {
  return !entry.spec.only || entry.spec.only.some(([m, r]) => m === method && r === run);
}

export class EnginePool {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.workers = [];
    this.generation = 0;
    this.frozen = { done: 0, total: 0, trained: 0, trainTotal: 0 };
    this.frozenResults = null;
    this.notice = null;
  }

  /**
   * Build `config` on `backend` ('auto', 'cpu' or 'gpu'); with `estimate`, the workers time a
   * copy of their share and the pool posts {type: 'estimate', seconds} (the slowest share's
   * time, or null where none could tell).
   */
  start(config, backend, { estimate = false } = {}) {
    this.terminate();
    this.generation += 1;
    this.config = config;
    this.backend = backend;
    this.estimate = estimate;
    this.frozen = { done: 0, total: 0, trained: 0, trainTotal: 0 };
    this.frozenResults = null;
    this.notice = null;
    const units = config.methods.length * config.runs;
    if (backend === 'cpu') {
      this.spawnPool(null);
    } else {
      // One worker chooses (and on a GPU computes everything); if it settles on the CPU, the
      // experiment moves to a pool of workers.
      this.spawn([{ only: null, backend, parallelRuns: 1, cpuWorkers: poolSize(units) }], units);
    }
  }

  spawnPool(only) {
    const units = only ? only.length : this.config.methods.length * this.config.runs;
    const size = poolSize(units);
    const parts = shares(this.config.methods.length, this.config.runs, size, only);
    const whole = !only && parts.length === 1;
    this.spawn(
      parts.map((part) => ({ only: whole ? null : part, backend: 'cpu', parallelRuns: parts.length })),
      units,
    );
  }

  spawn(specs) {
    const gen = this.generation;
    this.workers = specs.map((spec, index) => {
      const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
      const entry = { worker, spec, index, ready: null, progress: null, results: null, estimate: undefined };
      worker.onmessage = (event) => {
        if (gen === this.generation) this.receive(entry, event.data);
      };
      worker.onerror = (event) => {
        event.preventDefault();
        if (gen === this.generation) this.onMessage({ type: 'error', message: event.message || 'the engine worker failed' });
      };
      worker.postMessage({
        type: 'init',
        config: this.config,
        backend: spec.backend,
        only: spec.only,
        parallelRuns: spec.parallelRuns,
        cpuWorkers: spec.cpuWorkers,
        estimate: this.estimate,
      });
      return entry;
    });
  }

  get size() {
    return this.workers.length;
  }

  receive(entry, msg) {
    switch (msg.type) {
      case 'ready': {
        entry.ready = msg;
        const choosing = this.workers.length === 1 && entry.spec.backend !== 'cpu';
        if (choosing && msg.backend.kind === 'cpu') {
          const units = this.config.methods.length * this.config.runs;
          if (poolSize(units) > 1) {
            // The chooser settled on the CPU: spread the runs over a pool instead.
            this.notice = msg.backend.notice;
            entry.worker.terminate();
            this.generation += 1;
            this.spawnPool(null);
            return;
          }
        }
        if (this.workers.every((w) => w.ready)) this.emitReady();
        break;
      }
      case 'estimate': {
        entry.estimate = msg.seconds;
        if (this.workers.every((w) => w.estimate !== undefined)) {
          const known = this.workers.map((w) => w.estimate).filter((s) => Number.isFinite(s));
          this.onMessage({ type: 'estimate', seconds: known.length === this.workers.length ? Math.max(...known) : null });
        }
        break;
      }
      case 'progress':
        entry.progress = msg;
        this.emitProgress(msg.records);
        break;
      case 'snapshot':
        // Every worker answers for the run in view; only the one that holds it knows it.
        if (holds(entry, msg.method, msg.run)) this.onMessage(msg);
        break;
      case 'results':
        entry.results = msg.json;
        if (this.workers.every((w) => w.results !== null)) {
          const parts = this.workers.map((w) => w.results);
          if (this.frozenResults) parts.push(this.frozenResults);
          for (const w of this.workers) w.results = null;
          try {
            this.onMessage({ type: 'results', json: parts.length === 1 ? parts[0] : mergeResults(parts), reason: msg.reason });
          } catch (e) {
            this.onMessage({ type: 'error', message: e && e.message ? e.message : String(e) });
          }
        }
        break;
      case 'backend-failed':
        this.fallBack(entry, msg);
        break;
      default:
        this.onMessage(msg);
    }
  }

  /** The GPU was lost: keep what finished, redo the rest on a CPU pool, and say so. */
  fallBack(entry, msg) {
    const unfinished = msg.unfinished.map(([m, r]) => [m, r]);
    const results = JSON.parse(msg.resultsJson);
    const names = entry.ready ? Array.from(entry.ready.names) : [];
    for (const method of results.methods) {
      const m = names.indexOf(method.name);
      method.runs = method.runs.filter(
        (run) => !unfinished.some(([um, ur]) => um === m && this.config.seed + ur === run.seed),
      );
    }
    results.methods = results.methods.filter((m) => m.runs.length > 0);
    this.frozenResults = results.methods.length ? JSON.stringify(results) : null;
    this.frozen = { done: msg.finishedWork, total: msg.finishedWork, trained: 0, trainTotal: 0 };
    const text = `The GPU stopped (${msg.message}). Finished runs are kept; the others start again on the CPU.`;
    this.notice = text;
    this.onMessage({ type: 'notice', text });
    this.onMessage({ type: 'reset-runs', runs: unfinished });
    const wasPlaying = entry.progress ? entry.progress.playing : true;
    this.terminate();
    this.generation += 1;
    this.resumeAfterReady = wasPlaying;
    this.spawnPool(unfinished);
  }

  emitReady() {
    const first = this.workers[0].ready;
    const sum = (key) => this.workers.reduce((a, w) => a + w.ready[key], 0);
    const backend = { ...first.backend };
    backend.workers = this.workers.length;
    if (this.notice && !backend.notice) backend.notice = this.notice;
    this.onMessage({
      type: 'ready',
      config: first.config,
      names: first.names,
      checksum: first.checksum,
      total: sum('total') + this.frozen.total,
      trainTotal: sum('trainTotal') + this.frozen.trainTotal,
      trueDictionary: first.trueDictionary,
      trueCodes: first.trueCodes,
      backend,
      resumed: this.frozen.total > 0,
    });
    if (this.resumeAfterReady) {
      this.resumeAfterReady = false;
      this.play();
    }
  }

  emitProgress(records) {
    const ps = this.workers.map((w) => w.progress).filter(Boolean);
    const sum = (key) => ps.reduce((a, p) => a + p[key], 0);
    this.onMessage({
      type: 'progress',
      done: sum('done') + this.frozen.done,
      total: this.workers.reduce((a, w) => a + (w.progress ? w.progress.total : w.ready ? w.ready.total : 0), 0) + this.frozen.total,
      trained: sum('trained'),
      trainTotal: this.workers.reduce((a, w) => a + (w.ready ? w.ready.trainTotal : 0), 0),
      evaluating: ps.some((p) => p.evaluating),
      finished: ps.length === this.workers.length && ps.every((p) => p.finished),
      playing: ps.some((p) => p.playing),
      rate: sum('rate'),
      records,
    });
  }

  post(msg) {
    for (const w of this.workers) w.worker.postMessage(msg);
  }

  play() {
    this.post({ type: 'play' });
  }

  pause() {
    this.post({ type: 'pause' });
  }

  step() {
    this.post({ type: 'step' });
  }

  /** Show run `run` of method `method` (its holder sends snapshots of it). */
  view(method, run) {
    this.post({ type: 'view', method, run });
  }

  requestResults(reason) {
    for (const w of this.workers) w.results = null;
    this.post({ type: 'results', reason });
  }

  terminate() {
    for (const w of this.workers) w.worker.terminate();
    this.workers = [];
  }
}
