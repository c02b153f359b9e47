// A sweep computed by a pool of Web Workers (../sweep-worker.js), one per core: the units
// (cell, seed) still to do are dealt a few at a time to whichever worker has room, so a slow
// cell never holds the others back, and every finished unit is reported at once. Units are
// independent (each regenerates its data and initialisation from the seed), so the numbers
// do not depend on the pool's size or on the order.
//
// Events out (to `onEvent`): {type: 'results', results: [UnitResult JSON]}, {type: 'progress',
// fractions} (how far the units under way are), {type: 'finished'} and {type: 'error', message}.
// `pause()` answers with a promise that settles when every worker has stopped.
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

  /** Start computing `units` ([[cell, seed]], in the order wanted) of the checked `config`. */
  start(config, units) {
    this.terminate();
    this.generation += 1;
    const gen = this.generation;
    this.remaining = units.slice();
    this.playing = true;
    if (!units.length) {
      this.playing = false;
      queueMicrotask(() => this.onEvent({ type: 'finished' }));
      return;
    }
    const size = poolSize(units.length);
    this.workers = Array.from({ length: size }, (_, index) => {
      const worker = new Worker(new URL('../sweep-worker.js', import.meta.url), { type: 'module' });
      const entry = { worker, index, inFlight: 0, fraction: 0 };
      worker.onmessage = (event) => {
        if (gen === this.generation) this.receive(entry, event.data);
      };
      worker.onerror = (event) => {
        event.preventDefault();
        if (gen === this.generation) this.fail(event.message || 'a sweep worker failed');
      };
      worker.postMessage({ type: 'init', config, parallel: size });
      worker.postMessage({ type: 'play' });
      this.refill(entry);
      return entry;
    });
  }

  /** Give `entry` units until it holds IN_FLIGHT. */
  refill(entry) {
    const take = Math.max(0, IN_FLIGHT - entry.inFlight);
    const batch = this.remaining.splice(0, take);
    if (!batch.length) return;
    entry.inFlight += batch.length;
    entry.worker.postMessage({ type: 'units', units: Int32Array.from(batch.flat()) });
  }

  receive(entry, msg) {
    switch (msg.type) {
      case 'ready':
        break;
      case 'results':
        entry.inFlight -= msg.results.length;
        entry.fraction = 0;
        this.refill(entry);
        this.onEvent({ type: 'results', results: msg.results });
        this.checkFinished();
        break;
      case 'progress':
        entry.fraction = msg.pending > 0 ? msg.fraction : 0;
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
