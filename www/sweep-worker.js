// One worker of a sweep's pool (./sweep/pool.js): it computes the units (cell, seed) it is
// given, in slices of about SLICE_MS so 'pause' is handled between them, and posts each
// finished unit's results (the CLI's UnitResult, as JSON text) at once. Messages in:
//   {type: 'init', config, parallel}   check the sweep (the page's memory budget counts
//                                      `parallel` units at once) and make a runner
//   {type: 'units', units: Int32Array} queue units, flat as cell, seed, cell, seed, ...
//   {type: 'play'} / {type: 'pause'} (answered with {type: 'paused', fraction} once nothing more
//                                      is coming; `fraction`: how far the unit under way is)
// Messages out: 'ready', 'results' ({results: [json]}), 'progress' ({fraction: how far the
// unit under way is, pending}), 'idle' (nothing queued: send more) and 'error'.
// As in ./worker.js, the engine is imported dynamically and messages wait for it.
let SweepRunner = null;
const pending = [];

const SLICE_MS = 50;
const PROGRESS_EVERY_MS = 200;

let runner = null;
let playing = false;
let looping = false;
let lastProgress = 0;

function fail(error) {
  playing = false;
  const message = error && error.message ? error.message : String(error);
  self.postMessage({ type: 'error', message });
}

const channel = new MessageChannel();
channel.port1.onmessage = () => loop();

function loop() {
  looping = false;
  if (!playing || !runner) return;
  try {
    const empty = runner.runFor(SLICE_MS);
    const results = runner.takeResults();
    if (results.length) self.postMessage({ type: 'results', results });
    const now = performance.now();
    if (now - lastProgress > PROGRESS_EVERY_MS || empty) {
      lastProgress = now;
      self.postMessage({ type: 'progress', fraction: runner.currentFraction(), pending: runner.pending() });
    }
    if (empty) {
      self.postMessage({ type: 'idle' });
      return;
    }
    // Yield through a message to ourselves (not setTimeout, clamped to 4 ms when nested).
    looping = true;
    channel.port2.postMessage(0);
  } catch (e) {
    fail(e);
  }
}

function kick() {
  if (playing && runner && !looping) {
    looping = true;
    channel.port2.postMessage(0);
  }
}

function handle(msg) {
  try {
    switch (msg.type) {
      case 'init':
        if (runner) runner.free();
        runner = new SweepRunner(msg.config, msg.parallel || 1);
        self.postMessage({ type: 'ready' });
        break;
      case 'units':
        if (!runner) throw new Error('units before init');
        runner.addUnits(msg.units);
        kick();
        break;
      case 'play':
        playing = true;
        kick();
        break;
      case 'pause':
        playing = false;
        // Every result of the slices before this one is already posted: the page knows, on
        // this answer, that nothing more comes from this worker until 'play'.
        self.postMessage({ type: 'paused', fraction: runner ? runner.currentFraction() : 0 });
        break;
      default:
        fail(new Error(`unknown message ${msg.type}`));
    }
  } catch (e) {
    fail(e);
  }
}

self.onmessage = (event) => {
  if (SweepRunner) handle(event.data);
  else pending.push(event.data);
};

import('./engine.js')
  .then((engine) => {
    SweepRunner = engine.SweepRunner;
    for (const msg of pending.splice(0)) handle(msg);
  })
  .catch((e) => fail(new Error(`the engine could not start: ${e && e.message ? e.message : e}`)));

self.addEventListener('error', (event) => fail(event.error || event.message));
self.addEventListener('unhandledrejection', (event) => fail(event.reason));
