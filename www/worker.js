// The engine runs here, off the main thread, so the page never freezes. The worker advances the
// experiment in slices of about SLICE_MS, posting new log records (a transferred Float64Array)
// and, now and then, a snapshot of what the selected run has learned. On a GPU a slice only
// enqueues work; the engine yields while the device still has a full queue, so a slice stays
// short and the browser resolves the device's reads between slices. Messages in:
//   {type: 'init', config, backend, only, parallelRuns, cpuWorkers, estimate}
//                                 build the experiment (validated in Rust) on the backend asked
//                                 for (auto, cpu, gpu), for the runs `only` ([[method, run]]);
//                                 with `estimate`, time a copy of it and post 'estimate'
//   {type: 'play'} / {type: 'pause'}
//   {type: 'step'}                every run goes to its next evaluation (in slices; pausable)
//   {type: 'view', method, run}   choose which run's snapshot to send
//   {type: 'results'}             ask for the results JSON
// Messages out: 'ready', 'estimate' ({seconds}: this share's time from the start on this
// machine, or null), 'progress', 'snapshot', 'results', 'error', and 'backend-failed' (the
// GPU was lost: the runs listed as `unfinished` must be redone elsewhere; the finished ones are
// in `resultsJson`).
// The engine is imported dynamically: a static import would delay this module's evaluation
// until the wasm is instantiated, and messages the page sends meanwhile would be lost. The
// handler is installed at once and queues messages until the engine is there.
let Playground = null;
const pending = [];

const SLICE_MS = 40;
const SNAPSHOT_EVERY_MS = 400;
const CODE_SAMPLES = 12;

let pg = null;
// Incremented by every 'init': a build that finishes after a newer 'init' is discarded.
let generation = 0;
// What the slice loop is doing: 'play' (run to the end), 'step' (every run to its next
// evaluation, see Playground.beginStep) or null (paused).
let mode = null;
let view = { method: 0, run: 0 };
let lastSnapshot = 0;
let stepsAtLastRate = 0;
let timeAtLastRate = 0;
let rate = 0;

function fail(error) {
  mode = null;
  const message = error && error.message ? error.message : String(error);
  self.postMessage({ type: 'error', message });
}

/** Restart the rate estimate from now (after a pause, the idle time must not count). */
function restartRate() {
  stepsAtLastRate = pg.workDone();
  timeAtLastRate = performance.now();
}

function sendProgress() {
  const records = pg.takeRecords();
  const now = performance.now();
  // Rates and time left count work (training plus the evaluations' inference steps): an
  // evaluation of the paper's inference is 10,000 steps, and the bar must move through it.
  const done = pg.workDone();
  if (now - timeAtLastRate > 250) {
    const instant = ((done - stepsAtLastRate) * 1000) / Math.max(now - timeAtLastRate, 1);
    rate = rate === 0 ? instant : 0.7 * rate + 0.3 * instant;
    stepsAtLastRate = done;
    timeAtLastRate = now;
  }
  self.postMessage(
    {
      type: 'progress',
      done,
      total: pg.workTotal(),
      trained: pg.stepsDone(),
      trainTotal: pg.stepsTotal(),
      evaluating: pg.isEvaluating(),
      finished: pg.isDone(),
      playing: mode !== null,
      rate,
      records,
    },
    [records.buffer],
  );
}

function sendSnapshot(force) {
  const now = performance.now();
  if (!force && now - lastSnapshot < SNAPSHOT_EVERY_MS) return;
  lastSnapshot = now;
  const snapshot = pg.snapshot(view.method, view.run, CODE_SAMPLES);
  self.postMessage({ type: 'snapshot', method: view.method, run: view.run, snapshot });
}

// Run `fn` after the messages already queued (a task, without setTimeout's clamping).
const channel = new MessageChannel();
const afterYield = [];
channel.port1.onmessage = () => afterYield.shift()?.();
function yieldThen(fn) {
  afterYield.push(fn);
  channel.port2.postMessage(0);
}

function loop() {
  if (!mode || !pg) return;
  try {
    const t0 = performance.now();
    const finished = mode === 'play' ? pg.runFor(SLICE_MS) : pg.stepFor(SLICE_MS);
    const idle = performance.now() - t0 < 1; // nothing to do now (a GPU with a full queue)
    if (finished) mode = null;
    sendProgress();
    const failure = pg.backendFailure();
    if (failure) {
      mode = null;
      self.postMessage({
        type: 'backend-failed',
        message: failure,
        unfinished: pg.unfinishedRuns(),
        finishedWork: pg.finishedWork(),
        resultsJson: pg.resultsJson(),
      });
      return;
    }
    sendSnapshot(finished);
    // Yield to the event loop so 'pause' and 'view' messages (and WebGPU's reads) are handled
    // between slices. A message to ourselves, not setTimeout: nested timers are clamped to
    // 4 ms, a tenth of every slice.
    if (mode) {
      if (idle) setTimeout(loop, 2);
      else yieldThen(loop);
    }
  } catch (e) {
    fail(e);
  }
}

// Messages that arrive while an experiment is being built wait for it.
const afterReady = [];

function handle(msg) {
  if (msg.type !== 'init' && !pg && generation > 0) {
    afterReady.push(msg);
    return;
  }
  try {
    switch (msg.type) {
      case 'init': {
        mode = null;
        if (pg) pg.free();
        pg = null;
        generation += 1;
        const mine = generation;
        Playground.create(msg.config, {
          backend: msg.backend || 'auto',
          only: msg.only || null,
          parallelRuns: msg.parallelRuns || 1,
          cpuWorkers: msg.cpuWorkers || 1,
        })
          .then((built) => {
            if (mine !== generation) {
              built.free(); // a newer experiment was asked for meanwhile
              return;
            }
            pg = built;
            view = { method: 0, run: 0 };
            rate = 0;
            stepsAtLastRate = 0;
            timeAtLastRate = performance.now();
            self.postMessage({
              type: 'ready',
              config: pg.config(),
              names: pg.methodNames(),
              checksum: pg.dataChecksum(),
              total: pg.workTotal(),
              trainTotal: pg.stepsTotal(),
              trueDictionary: pg.trueDictionary(),
              trueCodes: pg.trueCodes(CODE_SAMPLES),
              backend: pg.backendInfo(),
            });
            for (const queued of afterReady.splice(0)) handle(queued);
            if (msg.estimate) {
              // After the messages already queued: a run asked for meanwhile is not delayed.
              yieldThen(() => {
                if (mine !== generation) return;
                const seconds = pg && mode === null && pg.workDone() === 0 ? pg.estimateSeconds() : null;
                self.postMessage({ type: 'estimate', seconds: seconds ?? null });
              });
            }
          })
          .catch((e) => {
            if (mine === generation) fail(e);
          });
        break;
      }
      case 'play':
        if (pg && mode !== 'play' && !pg.isDone()) {
          const idle = mode === null;
          mode = 'play';
          if (idle) {
            restartRate();
            loop();
          }
        }
        break;
      case 'pause':
        mode = null;
        if (pg) sendProgress();
        break;
      case 'step':
        if (pg && mode === null && !pg.isDone()) {
          mode = 'step';
          pg.beginStep();
          restartRate();
          loop();
        } else if (pg) {
          sendProgress(); // nothing to step: the page learns it is not running
        }
        break;
      case 'view':
        view = { method: msg.method | 0, run: msg.run | 0 };
        if (pg) sendSnapshot(true);
        break;
      case 'results':
        if (pg) self.postMessage({ type: 'results', json: pg.resultsJson(), reason: msg.reason });
        break;
      default:
        fail(new Error(`unknown message ${msg.type}`));
    }
  } catch (e) {
    fail(e);
  }
}

self.onmessage = (event) => {
  if (Playground) handle(event.data);
  else pending.push(event.data);
};

import('./engine.js')
  .then((engine) => {
    Playground = engine.Playground;
    for (const msg of pending.splice(0)) handle(msg);
  })
  .catch((e) => fail(new Error(`the engine could not start: ${e && e.message ? e.message : e}`)));

// A Rust panic surfaces as a RuntimeError ("unreachable"); report it instead of dying silently.
self.addEventListener('error', (event) => fail(event.error || event.message));
self.addEventListener('unhandledrejection', (event) => fail(event.reason));
