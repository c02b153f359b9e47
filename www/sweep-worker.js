// One worker of a sweep's pool (./sweep/pool.js): it computes the units (cell, seed) it is
// given, in slices of about SLICE_MS so 'pause' is handled between them, and posts each
// finished unit's results (the CLI's UnitResult, as JSON text) at once. Messages in:
//   {type: 'init', config, parallel, backend, cpuWorkers}
//                                      check the sweep (the page's memory budget counts
//                                      `parallel` units at once) and make a runner on the
//                                      backend asked for (auto, cpu or gpu: on a GPU the units
//                                      it is given compute in stacks; auto weighs it against
//                                      `cpuWorkers` CPU workers)
//   {type: 'units', units: Int32Array} queue units, flat as cell, seed, cell, seed, ...
//   {type: 'play'} / {type: 'pause'} (answered with {type: 'paused', fraction} once nothing more
//                                      is coming; `fraction`: how far the unit under way is)
// Messages out: 'ready' ({backend: the runner's backendInfo()}), 'results' ({results: [json]}),
// 'progress' ({fraction: how far the unit or stack under way is, units: how many units it
// holds, pending}), 'idle' (nothing queued: send more), 'backend' ({backend}, when it changed:
// a GPU that stopped hands the rest to the CPU) and 'error'.
// As in ./worker.js, the engine is imported dynamically and messages wait for it.
let SweepRunner = null;
const pending = [];

const SLICE_MS = 50;
const PROGRESS_EVERY_MS = 200;

let runner = null;
// A runner being made (choosing a GPU is asynchronous): messages wait for it.
let creating = false;
let notice = null;
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
    const info = runner.backendInfo();
    if (info.notice !== notice) {
      notice = info.notice;
      self.postMessage({ type: 'backend', backend: info });
    }
    const now = performance.now();
    if (now - lastProgress > PROGRESS_EVERY_MS || empty) {
      lastProgress = now;
      self.postMessage({ type: 'progress', fraction: runner.currentFraction(), units: runner.currentUnits(), pending: runner.pending() });
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
      case 'init': {
        if (runner) runner.free();
        runner = null;
        creating = true;
        const options = { backend: msg.backend || 'cpu', parallel: msg.parallel || 1, cpuWorkers: msg.cpuWorkers || 1 };
        SweepRunner.create(msg.config, options)
          .then((made) => {
            runner = made;
            creating = false;
            const info = runner.backendInfo();
            notice = info.notice;
            self.postMessage({ type: 'ready', backend: info });
            while (pending.length && !creating) handle(pending.shift());
          })
          .catch((e) => {
            creating = false;
            fail(e);
          });
        break;
      }
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
  if (SweepRunner && !creating) handle(event.data);
  else pending.push(event.data);
};

import('./engine.js')
  .then((engine) => {
    SweepRunner = engine.SweepRunner;
    // One at a time: an 'init' makes the rest wait for its runner.
    while (pending.length && !creating) handle(pending.shift());
  })
  .catch((e) => fail(new Error(`the engine could not start: ${e && e.message ? e.message : e}`)));

self.addEventListener('error', (event) => fail(event.error || event.message));
self.addEventListener('unhandledrejection', (event) => fail(event.reason));
