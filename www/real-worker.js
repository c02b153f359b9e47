// The worker of the real-activations mode (./real/panel.js): it builds a RealRunner from the
// activations' bytes and a config, and advances it in slices of about SLICE_MS so Cancel is
// handled between them. Messages in:
//   {type: 'start', bytes: ArrayBuffer, tensor, config: JSON text}
//   {type: 'feature', method, latent, top}  (after the results) a feature view of a method
// Messages out: 'progress' ({done, total, status}), 'results' ({json, rankings: per method the
// latents by frequency, flat}), 'feature' ({json}) and 'error'. The runner stays after the
// results, for the feature views.
// The engine is imported dynamically and messages wait for it, as in ./worker.js.
let RealRunner = null;
const pending = [];
const SLICE_MS = 50;
const PROGRESS_EVERY_MS = 150;

let runner = null;
let finished = false;
let lastProgress = 0;

function fail(error) {
  const message = error && error.message ? error.message : String(error);
  self.postMessage({ type: 'error', message });
}

const channel = new MessageChannel();
channel.port1.onmessage = () => loop();

function progress() {
  const [done, total] = runner.progress();
  self.postMessage({ type: 'progress', done, total, status: runner.status() });
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
      const count = JSON.parse(json).methods.length;
      const rankings = [];
      for (let m = 0; m < count; m++) rankings.push(runner.featuresByFrequency(m));
      self.postMessage({ type: 'results', json, rankings });
      return;
    }
    channel.port2.postMessage(0);
  } catch (e) {
    fail(e);
  }
}

function handle(msg) {
  try {
    if (msg.type === 'feature') {
      if (!runner || !finished) throw new Error('feature views come after the run');
      self.postMessage({ type: 'feature', json: runner.featureView(msg.method, msg.latent, msg.top) });
      return;
    }
    if (msg.type !== 'start') throw new Error(`unknown message ${msg.type}`);
    if (runner) runner.free();
    runner = null;
    finished = false;
    runner = new RealRunner(new Uint8Array(msg.bytes), msg.tensor || undefined, msg.config);
    progress();
    channel.port2.postMessage(0);
  } catch (e) {
    fail(e);
  }
}

self.onmessage = (event) => {
  if (RealRunner) handle(event.data);
  else pending.push(event.data);
};

import('./engine.js')
  .then((engine) => {
    RealRunner = engine.RealRunner;
    for (const msg of pending.splice(0)) handle(msg);
  })
  .catch((e) => fail(new Error(`the engine could not start: ${e && e.message ? e.message : e}`)));

self.addEventListener('error', (event) => fail(event.error || event.message));
self.addEventListener('unhandledrejection', (event) => fail(event.reason));
