// A sweep computed by a pool of Web Workers (../sweep-worker.js), one per core: the units
// (cell, seed) still to do are dealt a few at a time to whichever worker has room, so a slow
// cell never holds the others back, and every finished unit is reported at once. Units are
// independent (each regenerates its data and initialisation from the seed), so the numbers
// do not depend on the pool's size or on the order.
//
// With a GPU asked for (auto or gpu), one worker chooses first: if it settles on a GPU it
// takes every unit and computes them in stacks (units that differ only in their data, seed,
// lambda, learning rate and TopK's k as one stack per method); if it settles on the CPU, the rest of the pool joins it.
//
// Events out (to `onEvent`): {type: 'results', results: [UnitResult JSON]}, {type: 'progress',
// fractions} (how far the units under way are, in units), {type: 'backend', backend} (where the
// units compute, as the engine's backendInfo, once chosen or when a GPU stops), {type:
// 'finished'} and {type: 'error', message}. `pause()` answers with a promise that settles when
// every worker has stopped.
import { poolSize } from '../engine-pool.js';

// Units sent ahead to each worker, so it never waits for the page between two units.
const IN_FLIGHT = 2;

export class SweepPool {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.workers = [];
    this.remaining = [];
    this.generation = 0;
    this.playing = false;
  }

  get size() {
    return this.workers.length;
  }

  /**
   * Start computing `units` ([[cell, seed]], in the order wanted) of the checked `config` on
   * `backend` ('auto', 'cpu' or 'gpu').
   */
  start(config, units, backend = 'cpu') {
    this.terminate();
    this.generation += 1;
    const gen = this.generation;
    this.remaining = units.slice();
    this.playing = true;
    this.backend = null;
    if (!units.length) {
      this.playing = false;
      queueMicrotask(() => this.onEvent({ type: 'finished' }));
      return;
    }
    const size = poolSize(units.length);
    const spawn = (index, asked) => {
      const worker = new Worker(new URL('../sweep-worker.js', import.meta.url), { type: 'module' });
      const entry = { worker, index, inFlight: 0, fraction: 0, room: IN_FLIGHT, ready: asked === 'cpu' };
      worker.onmessage = (event) => {
        if (gen === this.generation) this.receive(entry, event.data);
      };
      worker.onerror = (event) => {
        event.preventDefault();
        if (gen === this.generation) this.fail(event.message || 'a sweep worker failed');
      };
      worker.postMessage({ type: 'init', config, parallel: size, backend: asked, cpuWorkers: size });
      if (this.playing) worker.postMessage({ type: 'play' });
      return entry;
    };
    // Once a worker knows its backend: a GPU takes everything, else the CPU pool fills up.
    this.chosen = (entry, info) => {
      this.backend = info;
      this.onEvent({ type: 'backend', backend: info });
      entry.ready = true;
      if (info.kind === 'gpu') {
        entry.room = Infinity;
      } else {
        for (let i = this.workers.length; i < size; i++) {
          const extra = spawn(i, 'cpu');
          this.workers.push(extra);
          this.refill(extra);
        }
      }
      this.refill(entry);
    };
    if (backend === 'cpu') {
      this.workers = Array.from({ length: size }, (_, index) => spawn(index, 'cpu'));
      for (const entry of this.workers) this.refill(entry);
    } else {
      this.workers = [spawn(0, backend)];
    }
  }

  /** Give `entry` units until it holds its room (IN_FLIGHT; every unit for a GPU). */
  refill(entry) {
    if (!entry.ready) return;
    const take = Math.max(0, entry.room - entry.inFlight);
    const batch = this.remaining.splice(0, take);
    if (!batch.length) return;
    entry.inFlight += batch.length;
    entry.worker.postMessage({ type: 'units', units: Int32Array.from(batch.flat()) });
  }

  receive(entry, msg) {
    switch (msg.type) {
      case 'ready':
        if (!entry.ready) this.chosen(entry, msg.backend);
        else if (!this.backend) {
          this.backend = msg.backend;
          this.onEvent({ type: 'backend', backend: msg.backend });
        }
        break;
      case 'backend':
        this.backend = msg.backend;
        this.onEvent({ type: 'backend', backend: msg.backend });
        break;
      case 'results':
        entry.inFlight -= msg.results.length;
        entry.fraction = 0;
        this.refill(entry);
        this.onEvent({ type: 'results', results: msg.results });
        this.checkFinished();
        break;
      case 'progress':
        entry.fraction = msg.pending > 0 ? msg.fraction * (msg.units || 1) : 0;
        this.onEvent({ type: 'progress', fractions: this.workers.map((w) => w.fraction) });
        break;
      case 'idle':
        entry.fraction = 0;
        this.refill(entry);
        this.checkFinished();
        break;
      case 'paused':
        entry.paused = true;
        this.checkPaused();
        break;
      case 'error':
        this.fail(msg.message);
        break;
      default:
        break;
    }
  }

  checkFinished() {
    if (this.remaining.length === 0 && this.workers.every((w) => w.inFlight === 0)) {
      this.playing = false;
      this.terminate();
      this.onEvent({ type: 'finished' });
    }
  }

  fail(message) {
    this.playing = false;
    this.terminate();
    this.onEvent({ type: 'error', message });
  }

  /**
   * Pause every worker. The promise settles once each has answered, so every unit finished
   * before the pause has been reported (or at once when the pool stops or has no workers).
   */
  pause() {
    this.playing = false;
    for (const w of this.workers) {
      w.paused = false;
      w.worker.postMessage({ type: 'pause' });
    }
    const done = new Promise((resolve) => {
      this.onPaused = resolve;
    });
    this.checkPaused();
    return done;
  }

  checkPaused() {
    if (this.onPaused && this.workers.every((w) => w.paused)) {
      const resolve = this.onPaused;
      this.onPaused = null;
      resolve();
    }
  }

  resume() {
    this.playing = true;
    for (const w of this.workers) w.worker.postMessage({ type: 'play' });
  }

  /** Stop every worker now; the units under way are dropped (finished ones were reported). */
  terminate() {
    this.generation += 1;
    for (const w of this.workers) w.worker.terminate();
    this.workers = [];
    this.checkPaused();
  }
}
