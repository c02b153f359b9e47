// The worker of the real-activations mode (./real/panel.js). It reads the activations once into a
// RealSource, estimates experiments on them from a short trial, and runs one at a time as a
// RealRunner, advanced in slices of about SLICE_MS so that messages (Cancel, an estimate) are
// handled between them. Messages in:
//   {type: 'source', id, blob, tensor}             activations read from a file (a Blob, read in
//                                                  pieces; they replace those before if they read well)
//   {type: 'synthetic', atoms, dim, k, tokens, seed}  or synthetic ones with a known truth
//   {type: 'estimate', id, config: JSON text, backend}  a time estimate of that experiment for
//                                                  choosing where it runs ('cpu', 'gpu' or
//                                                  'auto': RealSource.estimateOn)
//   {type: 'start', run, config: JSON text, only, backend}  run it (`run` numbers it in the
//                                                  replies): all its methods, or those of `only`
//                                                  (indices in the config's list) when workers
//                                                  share them; on the CPU, or with backend 'gpu'
//                                                  on WebGPU (the CPU if it cannot: a 'backend'
//                                                  reply says which and why); `notice`, why
//                                                  there (auto's choice), goes into the results
//   {type: 'cancel'}                               stop the run (its results are dropped)
//   {type: 'feature', id, method, latent, top, atom}  (after the results) a feature view of a
//                                                  method computed here; with `atom`, its decoder
//                                                  atom too, to match in the other workers
//   {type: 'match', id, atom, except}              the best match of an atom in each method
//                                                  computed here but `except`
// Messages out: 'backend' ({run, info: {kind, name, notice}}, before a GPU run's first
// progress), 'source' ({id, info: {tokens, dim, dtype, tensor}} or {id, error}), 'estimate'
// ({id, estimate: {cpu, gpu, adapter, why}}, cpu and gpu each {seconds, training, analysis,
// analysis_max, per_method, memory} or null, or {id, error}),
// 'progress' ({run, done, total, status}), 'results' ({run, json, rankings: per method computed
// here the latents by frequency, flat}), 'feature' ({id, json, atom}), 'match' ({id, json}) and
// 'error'. The runner stays after the results, for the feature views.
// The engine is imported dynamically and messages wait for it, as in ./worker.js.
let engine = null;
const pending = [];
const SLICE_MS = 50;
const PROGRESS_EVERY_MS = 150;

let source = null;
let runner = null;
let finished = false;
let lastProgress = 0;
// Each run's slices carry its number, so a slice queued before a cancel does not run the next.
let generation = 0;
// The page's number of the run under way, sent back with its progress and results.
let runId = 0;
// The methods of the run computed here (indices in its config's list).
let only = [];
// Where the run under way computes ({kind, name, notice}; null on the CPU by default).
let backend = null;

function fail(error) {
  const message = error && error.message ? error.message : String(error);
  self.postMessage({ type: 'error', message });
}

const channel = new MessageChannel();
channel.port1.onmessage = (event) => {
  if (event.data === generation) loop();
};

function progress() {
  const [done, total] = runner.progress();
  const where = backend && backend.kind === 'gpu' ? ` (on the GPU: ${backend.name})` : '';
  self.postMessage({ type: 'progress', run: runId, done, total, status: runner.status() + where });
}

function loop() {
  if (!runner || finished) return;
  try {
    finished = runner.runFor(SLICE_MS);
    const now = performance.now();
    if (finished || now - lastProgress > PROGRESS_EVERY_MS) {
      lastProgress = now;
      progress();
    }
    if (finished) {
      const json = runner.resultsJson();
      const rankings = only.map((m) => runner.featuresByFrequency(m));
      self.postMessage({ type: 'results', run: runId, json, rankings });
      return;
    }
    channel.port2.postMessage(generation);
  } catch (e) {
    fail(e);
  }
}

function dropRunner() {
  generation += 1;
  if (runner) runner.free();
  runner = null;
  finished = false;
}

/** Bytes read from a Blob at a time: the file never exists whole in JavaScript's memory. */
const CHUNK_BYTES = 8 << 20;

/** Read a file's Blob piece by piece into the engine; the new activations replace the old only
 * once they are read well. */
async function readSource(msg) {
  let next;
  try {
    const blob = msg.blob;
    const builder = new engine.RealSourceBuilder(blob.size);
    try {
      for (let at = 0; at < blob.size; at += CHUNK_BYTES) {
        builder.push(new Uint8Array(await blob.slice(at, Math.min(blob.size, at + CHUNK_BYTES)).arrayBuffer()));
      }
    } catch (e) {
      builder.free();
      throw e;
    }
    next = builder.finish(msg.tensor || undefined);
  } catch (e) {
    self.postMessage({ type: 'source', id: msg.id, error: e && e.message ? e.message : String(e) });
    return;
  }
  dropRunner();
  if (source) source.free();
  source = next;
  self.postMessage({ type: 'source', id: msg.id, info: source.describe() });
}

/** Time `msg.config` for choosing where it runs: on the CPU at once, on the GPU (asked for, or
 * auto's rival) on a trial that yields to the device. */
async function estimate(msg) {
  let reply;
  try {
    if (!source) throw new Error('no activations to estimate on');
    const backend = msg.backend || 'cpu';
    const timed = backend === 'cpu' ? { cpu: source.estimate(msg.config), gpu: null } : await source.estimateOn(msg.config, backend);
    reply = { type: 'estimate', id: msg.id, estimate: timed };
  } catch (e) {
    reply = { type: 'estimate', id: msg.id, error: e && e.message ? e.message : String(e) };
  }
  self.postMessage(reply);
}

function handle(msg) {
  try {
    switch (msg.type) {
      case 'source':
        return readSource(msg);
      case 'synthetic':
        dropRunner();
        if (source) source.free();
        source = null;
        source = engine.RealSource.synthetic(msg.atoms, msg.dim, msg.k, msg.tokens, msg.seed);
        break;
      case 'estimate':
        return estimate(msg);
      case 'start': {
        if (!source) throw new Error('no activations to run on');
        dropRunner();
        const part = msg.only ? Uint32Array.from(msg.only) : undefined;
        only = msg.only || JSON.parse(msg.config).methods.map((_, i) => i);
        runId = msg.run;
        backend = null;
        if (msg.backend === 'gpu' || msg.notice) {
          // The GPU is asked for, checked and probed asynchronously; a cancel or new activations
          // meanwhile (a new generation) drop the runner it makes.
          const made = generation;
          engine.RealRunner.create(source, msg.config, part, msg.backend, msg.notice || undefined).then((r) => {
            if (made !== generation) {
              r.free();
              return;
            }
            runner = r;
            backend = r.backendInfo();
            self.postMessage({ type: 'backend', run: runId, info: backend });
            progress();
            channel.port2.postMessage(generation);
          }, fail);
          break;
        }
        runner = new engine.RealRunner(source, msg.config, part);
        progress();
        channel.port2.postMessage(generation);
        break;
      }
      case 'cancel':
        dropRunner();
        break;
      case 'feature':
        if (!runner || !finished) throw new Error('feature views come after the run');
        self.postMessage({
          type: 'feature',
          id: msg.id,
          json: runner.featureView(msg.method, msg.latent, msg.top),
          atom: msg.atom ? runner.atom(msg.method, msg.latent) : null,
        });
        break;
      case 'match':
        if (!runner || !finished) throw new Error('matches come after the run');
        self.postMessage({ type: 'match', id: msg.id, json: runner.matches(msg.atom, msg.except) });
        break;
      default:
        throw new Error(`unknown message ${msg.type}`);
    }
  } catch (e) {
    fail(e);
  }
}

// Messages are handled in order, each after the one before has finished (reading a file is
// asynchronous, and what follows it needs it).
let queue = Promise.resolve();
function enqueue(msg) {
  queue = queue.then(() => handle(msg));
}

self.onmessage = (event) => {
  if (engine) enqueue(event.data);
  else pending.push(event.data);
};

import('./engine.js')
  .then((loaded) => {
    engine = loaded;
    for (const msg of pending.splice(0)) enqueue(msg);
  })
  .catch((e) => fail(new Error(`the engine could not start: ${e && e.message ? e.message : e}`)));

self.addEventListener('error', (event) => fail(event.error || event.message));
self.addEventListener('unhandledrejection', (event) => fail(event.reason));
