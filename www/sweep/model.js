// The results model of a sweep: the checked config (from Rust's validateSweep: the methods'
// labels and each cell's values), the units done so far (the CLI's UnitResult objects), and
// the per-cell summaries the views draw (mean and spread over seeds). Views read it and draw;
// they never change it.
import { colorOf, kindColors } from '../charts.js';
import { csvText } from '../page/files.js';

/** Metrics a sweep can show, by kind, with how to read them off a method's outcome. */
export const METRICS = {
  success_rate: { label: 'Success rate', get: (o) => o.recovery?.success_rate, range: [0, 1] },
  mean_relative_error: { label: 'Mean relative error |ŝ − s| / |s|', get: (o) => o.recovery?.mean_relative_error, log: true },
  iterations: { label: 'Solver iterations (to its stopping test)', get: (o) => o.recovery?.iterations, log: true },
  code_mcc: { label: 'Code MCC', get: (o) => o.record?.code_mcc, range: [0, 1] },
  dict_mcc: { label: 'Dictionary MCC', get: (o) => o.record?.dict_mcc, range: [0, 1] },
  test_mse: { label: 'Test MSE', get: (o) => o.record?.test_mse, log: true },
  nmse: { label: 'Normalised MSE', get: (o) => o.record?.nmse, log: true },
  l0: { label: 'L0 (active latents per sample)', get: (o) => o.record?.l0 },
  dead_latents: { label: 'Dead latents', get: (o) => o.record?.dead_latents },
  total_flops: {
    label: 'Total FLOPs (training + inference)',
    get: (o) => (o.record ? o.record.train_flops + o.record.infer_flops : undefined),
    log: true,
  },
};

export function metricsFor(kind) {
  return kind === 'recovery'
    ? ['success_rate', 'code_mcc', 'mean_relative_error', 'iterations']
    : ['code_mcc', 'dict_mcc', 'test_mse', 'nmse', 'l0', 'dead_latents', 'total_flops'];
}

export class SweepModel {
  /** `checked`: validateSweep's answer. */
  constructor(checked) {
    this.config = checked.config;
    this.cells = checked.cells;
    this.seeds = checked.config.seeds;
    this.methods = checked.methods;
    this.colors = kindColors(checked.methodKinds || []);
    // Every axis and every cell's value on it (the CSV), and the axes the figures lay out: an
    // axis taken with the one before it (`with_previous`) moves with that axis, so the figures
    // show it beside that axis's values rather than as a dimension of its own.
    const axes = checked.config.axes;
    this.allParams = axes.map((a) => a.param);
    this.allCellValues = checked.cellValues;
    const lead = axes.map((a, i) => i).filter((i) => !axes[i].with_previous);
    this.axes = lead.map((i) => axes[i]);
    this.params = this.axes.map((a) => a.param);
    this.cellValues = checked.cellValues.map((row) => lead.map((i) => row[i]));
    this.companions = new Map(lead.map((i, k) => {
      const end = k + 1 < lead.length ? lead[k + 1] : axes.length;
      return [axes[i].param, axes.slice(i + 1, end)];
    }));
    this.units = new Map(); // "cell:seed" -> UnitResult
    this.json = new Map(); // "cell:seed" -> its JSON text, as the engine gave it
    this.perCell = new Array(this.cells).fill(0);
    this.version = 0;
  }

  /** Method `m`'s colour: its kind's hue, as in every other view. */
  methodColor(m) {
    return this.colors[m] ?? colorOf(m);
  }


  get kind() {
    return this.config.kind;
  }

  get unitCount() {
    return this.cells * this.seeds;
  }

  get unitsDone() {
    return this.units.size;
  }

  get cellsDone() {
    return this.perCell.filter((n) => n >= this.seeds).length;
  }

  has(cell, seed) {
    return this.units.has(`${cell}:${seed}`);
  }

  /** Add units' results (JSON texts); those already present are ignored. */
  addJson(texts) {
    for (const text of texts) {
      const u = JSON.parse(text);
      const key = `${u.cell}:${u.seed}`;
      if (this.units.has(key) || u.cell >= this.cells) continue;
      this.units.set(key, u);
      this.json.set(key, text);
      this.perCell[u.cell] += 1;
    }
    this.version += 1;
  }

  /** The units not done, seed-major and cells spread over the grid (see `spreadOrder`). */
  remainingUnits() {
    const order = spreadOrder(this.cells);
    const out = [];
    for (let seed = 0; seed < this.seeds; seed += 1) {
      for (const cell of order) if (!this.has(cell, seed)) out.push([cell, seed]);
    }
    return out;
  }

  /** Why cell `cell` is not a valid experiment, or null. */
  invalid(cell) {
    for (let s = 0; s < this.seeds; s += 1) {
      const u = this.units.get(`${cell}:${s}`);
      if (u && u.invalid) return u.invalid;
    }
    return null;
  }

  /** The value of `param` in `cell` (undefined when it is not an axis). */
  valueOf(cell, param) {
    const i = this.allParams.indexOf(param);
    return i < 0 ? undefined : this.allCellValues[cell][i];
  }

  /** The cell with these values of the laid-out axes (one per axis in `params`), or -1. */
  cellAt(values) {
    let cell = 0;
    for (let i = 0; i < this.params.length; i += 1) {
      const axis = this.axes[i].values;
      const k = axis.indexOf(values[i]);
      if (k < 0) return -1;
      cell = cell * axis.length + k;
    }
    return cell;
  }

  /**
   * Mean, spread and count over the seeds done of `metric` for method `m` in `cell`:
   * {mean, std, n, failed} or null when no seed is done. `failed` counts seeds whose method
   * diverged (they have no value).
   */
  stat(cell, m, metric) {
    const get = METRICS[metric].get;
    const values = [];
    let failed = 0;
    let any = false;
    for (let s = 0; s < this.seeds; s += 1) {
      const u = this.units.get(`${cell}:${s}`);
      if (!u || u.invalid) continue;
      any = true;
      const o = u.methods[m];
      const v = o && !o.error ? get(o) : undefined;
      if (v == null || !Number.isFinite(v)) failed += 1;
      else values.push(v);
    }
    if (!any) return null;
    const n = values.length;
    const mean = n ? values.reduce((a, b) => a + b, 0) / n : NaN;
    const std = n > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
    return { mean, std, n, failed };
  }

  /**
   * How method `m`'s convergence-tested solver ended in `cell`: {tested, unconverged} over the
   * seeds done (tested 0 when it has no stopping test: an encoder, a fixed iteration count).
   */
  convergence(cell, m) {
    let tested = 0;
    let unconverged = 0;
    for (let s = 0; s < this.seeds; s += 1) {
      const rec = this.units.get(`${cell}:${s}`)?.methods?.[m]?.recovery;
      if (rec?.converged == null) continue;
      tested += 1;
      if (!rec.converged) unconverged += 1;
    }
    return { tested, unconverged };
  }

  /** Every unit as CSV rows: axis values, seed, method, then every metric. */
  csv() {
    const metrics = metricsFor(this.kind);
    const lines = [['cell', ...this.allParams, 'seed', 'method', 'invalid', 'error', ...metrics].join(',')];
    const keys = Array.from(this.units.keys()).sort((a, b) => {
      const [ca, sa] = a.split(':').map(Number);
      const [cb, sb] = b.split(':').map(Number);
      return ca - cb || sa - sb;
    });
    for (const key of keys) {
      const u = this.units.get(key);
      const head = [u.cell, ...this.allCellValues[u.cell], u.seed];
      if (u.invalid) {
        lines.push([...head, '', csvText(u.invalid), '', ...metrics.map(() => '')].join(','));
        continue;
      }
      u.methods.forEach((o, m) => {
        const values = metrics.map((k) => {
          const v = METRICS[k].get(o);
          return v == null || !Number.isFinite(v) ? '' : String(v);
        });
        lines.push([...head, csvText(this.methods[m] || o.name), '', o.error ? csvText(o.error) : '', ...values].join(','));
      });
    }
    return `${lines.join('\n')}\n`;
  }
}

/**
 * The cells 0..n-1 in an order that spreads over the grid: bit-reversed indices first (0, n/2,
 * n/4, 3n/4, ...), so a coarse picture of the whole grid appears early and fills in, instead
 * of one row after another.
 */
export function spreadOrder(n) {
  let bits = 0;
  while (1 << bits < n) bits += 1;
  const out = [];
  for (let i = 0; i < 1 << bits; i += 1) {
    let r = 0;
    for (let b = 0; b < bits; b += 1) if (i & (1 << b)) r |= 1 << (bits - 1 - b);
    if (r < n) out.push(r);
  }
  return out;
}
