// A sweep's time before it starts, measured on this machine: a throwaway worker of the pool's
// kind (../sweep-worker.js) computes a few of the units still to do, spread over the grid, for
// about PROBE_MS; its units per second, times the workers the pool will have, gives the time
// of all the units still to do. Its results are dropped, so nothing of the sweep is computed
// before Run.

const PROBE_MS = 400;
const PROBE_UNITS = 16;

/**
 * Start timing `config` on `units` ([[cell, seed]], in the order the pool takes them) for a
 * pool of `workers`; `done(seconds)` gets the estimate (null when it could not tell). Returns a
 * function that abandons the probe.
 */
export function estimateSweep(config, units, workers, done) {
  let finished = false;
  const worker = new Worker(new URL('../sweep-worker.js', import.meta.url), { type: 'module' });
  let start = 0;
  let results = 0;
  let fraction = 0;
  let timer = null;
  const end = (seconds) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    worker.terminate();
    done(seconds);
  };
  const measure = () => {
    const elapsed = (performance.now() - start) / 1000;
    const rate = (results + fraction) / elapsed;
    end(rate > 0 && Number.isFinite(rate) ? units.length / (rate * Math.max(1, workers)) : null);
  };
  // Spread over the grid: every k-th unit of the order the pool takes them in.
  const step = Math.max(1, Math.floor(units.length / PROBE_UNITS));
  const sample = units.filter((_, i) => i % step === 0).slice(0, PROBE_UNITS);
  worker.onmessage = (event) => {
    const msg = event.data;
    switch (msg.type) {
      case 'ready':
        start = performance.now();
        worker.postMessage({ type: 'units', units: Int32Array.from(sample.flat()) });
        worker.postMessage({ type: 'play' });
        timer = setTimeout(() => worker.postMessage({ type: 'pause' }), PROBE_MS);
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
      case 'error':
        end(null);
        break;
      default:
        break;
    }
  };
  worker.onerror = (event) => {
    event.preventDefault();
    end(null);
  };
  worker.postMessage({ type: 'init', config, parallel: 1 });
  return () => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    worker.terminate();
  };
}
