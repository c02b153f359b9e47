// A sweep's time before it starts, measured on this machine: a throwaway worker of the pool's
// kind (../sweep-worker.js) computes a few of the units still to do, spread over the grid, for
// about PROBE_MS; its units per second, times the workers the pool will have, gives the time
// of all the units still to do. Its results are dropped, so nothing of the sweep is computed
// before Run.
//
// With a GPU asked for (auto or gpu) the throwaway worker first chooses as the pool's first
// worker will: on the CPU the estimate is the pool's, as above; on a GPU it is given every unit,
// as the pool's GPU worker is (they compute in stacks, so a few units would not time the
// stacks the sweep makes), and timed from its first progress (its pipelines compiled) for at
// least GPU_PROBE_MS and until a stack has finished since (a stack's progress counts solver
// iterations against their cap, so a stack that converges early would look slow), or for at
// most GPU_PATIENCE_MS in all: the time to the first progress plus all the units at the rate
// since.

const PROBE_MS = 400;
const PROBE_UNITS = 16;
const GPU_PROBE_MS = 800;
const GPU_PATIENCE_MS = 6000;

/**
 * Start timing `config` on `units` ([[cell, seed]], in the order the pool takes them) for a
 * pool of `workers` on `backend` ('auto', 'cpu' or 'gpu'); `done(seconds, backend)` gets the
 * estimate (null when it could not tell) and, where a GPU was asked for, the chooser's
 * backendInfo (where the units will compute). Returns a function that abandons the probe.
 */
export function estimateSweep(config, units, workers, backend, done) {
  if (backend === 'cpu') return estimateOnCpu(config, units, workers, (seconds) => done(seconds, null));
  let onCpu = null;
  let chosen = null;
  let start = 0;
  // Units finished, and the stack under way's progress in units.
  let results = 0;
  let current = 0;
  // When the first progress showed (the warm-up's end), and the work done then.
  let warm = null;
  const measure = () => {
    const now = performance.now();
    if (!warm) return probe.end(null);
    const rate = (results + current - warm.work) / ((now - warm.at) / 1000);
    probe.end(rate > 0 && Number.isFinite(rate) ? (warm.at - start) / 1000 + units.length / rate : null);
  };
  const check = () => {
    if (results > warm.results || performance.now() - start > GPU_PATIENCE_MS) probe.worker.postMessage({ type: 'pause' });
    else probe.timer = setTimeout(check, 100);
  };
  const progressed = () => {
    if (warm || results + current <= 0) return;
    warm = { at: performance.now(), work: results + current, results };
    clearTimeout(probe.timer);
    probe.timer = setTimeout(check, GPU_PROBE_MS);
  };
  const probe = probeWorker({ type: 'init', config, parallel: workers, backend, cpuWorkers: workers }, (msg) => {
    switch (msg.type) {
      case 'ready':
        chosen = msg.backend;
        if (chosen.kind !== 'gpu') {
          // The pool will compute on the CPU: time it as the CPU's pool.
          probe.stop();
          onCpu = estimateOnCpu(config, units, workers, (seconds) => done(seconds, chosen));
          return;
        }
        start = performance.now();
        probe.worker.postMessage({ type: 'units', units: Int32Array.from(units.flat()) });
        probe.worker.postMessage({ type: 'play' });
        probe.timer = setTimeout(() => probe.worker.postMessage({ type: 'pause' }), GPU_PATIENCE_MS);
        break;
      case 'results':
        results += msg.results.length;
        current = 0;
        progressed();
        break;
      case 'progress':
        current = msg.pending > 0 ? (msg.fraction || 0) * (msg.units || 1) : 0;
        progressed();
        break;
      case 'idle':
        // Every unit done before the time was up.
        probe.end((performance.now() - start) / 1000);
        break;
      case 'paused':
        measure();
        break;
      default:
        break;
    }
  }, (seconds) => done(seconds, chosen));
  return () => {
    probe.stop();
    if (onCpu) onCpu();
  };
}

/**
 * A throwaway sweep worker started with `init`: its messages go to `handle` (an error, or the
 * worker failing, ends the probe with null). `end(seconds)` stops it and hands `seconds` to
 * `done`, once; `stop()` stops it without a word.
 */
function probeWorker(init, handle, done) {
  const probe = {
    worker: new Worker(new URL('../sweep-worker.js', import.meta.url), { type: 'module' }),
    timer: null,
    finished: false,
    stop() {
      if (this.finished) return;
      this.finished = true;
      clearTimeout(this.timer);
      this.worker.terminate();
    },
    end(seconds) {
      if (this.finished) return;
      this.stop();
      done(seconds);
    },
  };
  probe.worker.onmessage = (event) => {
    if (probe.finished) return;
    if (event.data.type === 'error') probe.end(null);
    else handle(event.data);
  };
  probe.worker.onerror = (event) => {
    event.preventDefault();
    probe.end(null);
  };
  probe.worker.postMessage(init);
  return probe;
}

/** The CPU pool's time: a worker computes a spread sample of the units for PROBE_MS. */
function estimateOnCpu(config, units, workers, done) {
  let start = 0;
  let results = 0;
  let fraction = 0;
  const measure = () => {
    const elapsed = (performance.now() - start) / 1000;
    const rate = (results + fraction) / elapsed;
    probe.end(rate > 0 && Number.isFinite(rate) ? units.length / (rate * Math.max(1, workers)) : null);
  };
  // Spread over the grid: every k-th unit of the order the pool takes them in.
  const step = Math.max(1, Math.floor(units.length / PROBE_UNITS));
  const sample = units.filter((_, i) => i % step === 0).slice(0, PROBE_UNITS);
  const probe = probeWorker({ type: 'init', config, parallel: 1 }, (msg) => {
    switch (msg.type) {
      case 'ready':
        start = performance.now();
        probe.worker.postMessage({ type: 'units', units: Int32Array.from(sample.flat()) });
        probe.worker.postMessage({ type: 'play' });
        probe.timer = setTimeout(() => probe.worker.postMessage({ type: 'pause' }), PROBE_MS);
        break;
      case 'results':
        results += msg.results.length;
        break;
      case 'progress':
        fraction = msg.fraction || 0;
        break;
      case 'idle':
        fraction = 0;
        measure(); // every sampled unit done before the time was up
        break;
      case 'paused':
        if (Number.isFinite(msg.fraction)) fraction = msg.fraction;
        measure();
        break;
      default:
        break;
    }
  }, done);
  return () => probe.stop();
}
