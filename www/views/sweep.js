// The figures of a sweep, chosen by its shape, drawn from the results model (../sweep/model.js)
// as SVG text (../svgplot.js, ../charts.js) that the SVG and PNG exports reuse:
// - a recovery sweep over delta and rho: a phase diagram per method, with the weak-threshold
//   curves of l1 recovery for signed and non-negative codes and the empirical 50% contour;
// - two axes or more: a heat map per method over the last two axes (one per value of the
//   others), a difference map between two chosen methods, and M = K ln(N/K) on (N, M) maps;
// - one axis: the metric against it per method, and for experiments the paper's views,
//   L0 against MSE (the Pareto front of the L1 sweep) and code MCC against total FLOPs.
import { escapeXML, formatNumber, formatValue, renderSVG } from '../charts.js';
import { theoryCurves } from '../engine.js';
import { heatmapSvg, levelCrossings } from '../svgplot.js';
import { METRICS } from '../sweep/model.js';

const PARAM_LABELS = {
  N: 'atoms N',
  M: 'dimension M',
  K: 'active K',
  n: 'samples n',
  noise: 'noise std',
  l1: 'L1 penalty λ',
  k: 'TopK k',
  h: 'MLP width h',
  steps: 'training steps',
  lr: 'learning rate',
  bias: 'biases (0 off, 1 on)',
  solver_steps: 'solver iterations',
  delta: 'δ = M / N',
  rho: 'ρ = K / M',
};

export function paramLabel(p) {
  return PARAM_LABELS[p] || p;
}

/** An axis of the figures, with the axes taken with it: "atoms N (with M 8, 16, 16; K 3, 6, 6)". */
function axisLabel(model, p) {
  const with_ = model.companions.get(p) || [];
  if (!with_.length) return paramLabel(p);
  return `${paramLabel(p)} (with ${with_.map((a) => `${a.param} ${a.values.map(formatValue).join(', ')}`).join('; ')})`;
}

let theory = null;
function theoryPoints() {
  if (!theory) theory = theoryCurves(200);
  return theory;
}

/** Every combination of the values of `params` (indices into the model's axes). */
function combinations(model, params) {
  let combos = [[]];
  for (const p of params) {
    const values = model.axes[model.params.indexOf(p)].values;
    combos = combos.flatMap((c) => values.map((v) => [...c, [p, v]]));
  }
  return combos;
}

function comboText(combo) {
  return combo.map(([p, v]) => `${p} = ${formatValue(v)}`).join(', ');
}

/** The cell with `x`, `y` and the combo's values. */
function cellFor(model, combo, px, x, py, y) {
  const values = model.params.map((p) => {
    if (p === px) return x;
    if (p === py) return y;
    return combo.find(([q]) => q === p)[1];
  });
  return model.cellAt(values);
}

function range(model, metric, cells, methods) {
  const info = METRICS[metric];
  if (info.range) return info.range;
  let lo = Infinity;
  let hi = -Infinity;
  for (const cell of cells) {
    for (const m of methods) {
      const s = model.stat(cell, m, metric);
      if (s && Number.isFinite(s.mean)) {
        lo = Math.min(lo, s.mean);
        hi = Math.max(hi, s.mean);
      }
    }
  }
  return lo <= hi ? [lo, hi > lo ? hi : lo + 1] : [0, 1];
}

function cellEntry(model, cell, m, metric) {
  if (cell < 0) return null;
  const why = model.invalid(cell);
  if (why) return { invalid: why };
  const s = model.stat(cell, m, metric);
  if (!s) return null;
  const seeds = model.seeds > 1 ? `${s.n} seed${s.n === 1 ? '' : 's'}, std ${formatNumber(s.std)}` : '';
  const failed = s.failed ? `${s.failed} diverged` : '';
  const conv = model.kind === 'recovery' ? model.convergence(cell, m) : { unconverged: 0 };
  const capped = conv.unconverged
    ? `the solver stopped at its cap unconverged in ${conv.unconverged} of ${conv.tested} seed${conv.tested === 1 ? '' : 's'}`
    : '';
  return {
    value: s.mean,
    note: [seeds, failed, capped].filter(Boolean).join(', ') || (s.n ? '' : 'diverged'),
    mark: conv.unconverged ? 'unconverged' : undefined,
  };
}

/** What a success is under `criterion` (a recovery config's `success` or `encoder_success`). */
export function criterionText(criterion) {
  switch (criterion?.criterion) {
    case 'support': return 'its nonzero entries (above 1e-3 of its largest) are exactly the true support';
    case 'top_support': return 'its K largest entries are exactly the true support';
    case 'relative_error': return `relative error |ŝ − s| / |s| below ${formatValue(criterion.tol)}`;
    default: return 'relative error below 0.01';
  }
}

/**
 * What a solver's stopping test did over the cells in `cells` for method `m`: a sentence for a
 * caption ('' when the method has no stopping test).
 */
function convergenceText(model, cells, m, solver) {
  let tested = 0;
  let unconverged = 0;
  let cellsUnconverged = 0;
  let iterations = 0;
  let counted = 0;
  for (const cell of cells) {
    if (cell < 0) continue;
    const c = model.convergence(cell, m);
    tested += c.tested;
    unconverged += c.unconverged;
    if (c.unconverged) cellsUnconverged += 1;
    const it = model.stat(cell, m, 'iterations');
    if (it && it.n) {
      iterations += it.mean;
      counted += 1;
    }
  }
  if (solver?.solver === 'fista' && solver.tol == null) {
    return ` FISTA ran a fixed ${solver.steps} iterations with no convergence test: cells may fail only because it stopped early.`;
  }
  if (!tested) return '';
  const test = solver?.tol != null
    ? `stops when every trial's duality gap is below ${formatValue(solver.tol)} of half its squared norm, at most ${solver.steps.toLocaleString('en-US')} iterations`
    : 'stops on its convergence test';
  const mean = counted ? `; ${Math.round(iterations / counted).toLocaleString('en-US')} iterations per cell on average` : '';
  const status = unconverged
    ? `it reached its cap unconverged in ${cellsUnconverged} of the ${counted} cells done (marked with a dark corner)`
    : `it converged in all ${counted} cells done`;
  return ` The solver ${test}: ${status}${mean}.`;
}

/** The figures of the sweep in `model` for the choices in `ui` ({metric, diffA, diffB}). */
export function sweepFigures(model, ui) {
  const params = model.params;
  const metric = ui.metric;
  const label = METRICS[metric].label;
  const methods = model.methods.map((_, i) => i);
  const figures = [];
  const allCells = Array.from({ length: model.cells }, (_, i) => i);
  if (model.kind === 'recovery' && params.includes('delta') && params.includes('rho')) {
    const xs = model.axes[params.indexOf('delta')].values;
    const ys = model.axes[params.indexOf('rho')].values;
    const others = params.filter((p) => p !== 'delta' && p !== 'rho');
    const t = theoryPoints();
    const signed = model.config.base.data.signed_codes;
    const N = model.config.base.data.num_atoms;
    // The engine runs the base's encoders first, then one sparse coding per solver.
    const encoders = model.config.base.methods.filter((x) => ['sae', 'topk_sae', 'mlp'].includes(x.kind)).length;
    const steps = others.includes('steps') ? 'the cell\'s' : model.config.base.train.steps;
    for (const combo of combinations(model, others)) {
      for (const m of methods) {
        const cell = (ix, iy) => cellFor(model, combo, 'delta', xs[ix], 'rho', ys[iy]);
        const mean = (ix, iy) => {
          const e = cellEntry(model, cell(ix, iy), m, metric);
          return e && !e.invalid ? e.value : null;
        };
        const overlays = [
          {
            id: 'theory-nonneg',
            points: t.delta.map((d, i) => [d, t.nonneg[i]]),
            color: '#111',
            width: signed ? 1.5 : 2.5,
            dash: signed ? '5 4' : null,
            label: `l1 weak threshold, non-negative codes${signed ? '' : ' (these)'}`,
          },
          {
            id: 'theory-signed',
            points: t.delta.map((d, i) => [d, t.signed[i]]),
            color: '#666',
            width: signed ? 2.5 : 1.5,
            dash: signed ? null : '5 4',
            label: `l1 weak threshold, signed codes${signed ? ' (these)' : ''}`,
          },
        ];
        if (metric === 'success_rate' || metric === 'code_mcc') {
          overlays.push({
            id: 'contour',
            points: levelCrossings(xs.length, ys.length, mean, 0.5),
            index: true,
            color: '#E69F00',
            width: 2.5,
            label: `empirical 50% ${metric === 'success_rate' ? 'success' : 'MCC'} level`,
          });
        }
        const where = comboText(combo);
        const title = `${model.methods[m]}${where ? ` · ${where}` : ''}`;
        figures.push({
          id: `phase-${m}-${where}`,
          kind: 'phase',
          title,
          svg: heatmapSvg({
            title: `${title} · ${label}`,
            xLabel: paramLabel('delta'),
            yLabel: paramLabel('rho'),
            xs,
            ys,
            cell: (ix, iy) => cellEntry(model, cell(ix, iy), m, metric),
            cellIndex: cell,
            scale: 'sequential',
            vmin: 0,
            vmax: METRICS[metric].range ? METRICS[metric].range[1] : range(model, metric, allCells, [m])[1],
            colorLabel: label,
            labels: true,
            overlays,
            width: 420,
            height: 420,
          }),
          caption: `Each cell: ${model.config.base.data.num_samples} test signal(s) x ${model.seeds} seed(s) at N = ${
            combo.find(([p]) => p === 'N')?.[1] ?? N
          }, ${signed ? 'signed' : 'non-negative'} codes. A signal counts as recovered when ${
            criterionText(m < encoders ? model.config.recovery.encoder_success : model.config.recovery.success)
          }.${m < encoders
            ? ` This encoder trained ${steps} step(s) per cell on as many other signals, the dictionary known.`
            : convergenceText(model, xs.flatMap((_, ix) => ys.map((__, iy) => cell(ix, iy))), m, model.config.recovery.solvers[m - encoders])
          } The black curves are l1's weak thresholds as N → ∞ (below them l1 recovers almost every signal); the orange line is where this map crosses 50%.`,
        });
      }
    }
    return figures;
  }
  if (params.length >= 2) {
    const px = params[params.length - 2];
    const py = params[params.length - 1];
    const xs = model.axes[params.length - 2].values;
    const ys = model.axes[params.length - 1].values;
    const others = params.slice(0, -2);
    const combos = combinations(model, others);
    const [lo, hi] = range(model, metric, allCells, methods);
    for (const combo of combos) {
      const cell = (ix, iy) => cellFor(model, combo, px, xs[ix], py, ys[iy]);
      const overlays = scalingCurve(model, combo, px, py, xs, ys);
      const where = comboText(combo);
      for (const m of methods) {
        const title = `${model.methods[m]}${where ? ` · ${where}` : ''}`;
        figures.push({
          id: `map-${m}-${where}`,
          kind: 'map',
          title,
          svg: heatmapSvg({
            title: `${title} · ${label}`,
            xLabel: axisLabel(model, px),
            yLabel: axisLabel(model, py),
            xs,
            ys,
            cell: (ix, iy) => cellEntry(model, cell(ix, iy), m, metric),
            cellIndex: cell,
            scale: 'sequential',
            vmin: lo,
            vmax: hi,
            colorLabel: label,
            labels: true,
            overlays,
          }),
        });
      }
      const [a, b] = [ui.diffA, ui.diffB];
      if (methods.length >= 2 && a !== b && a < methods.length && b < methods.length) {
        const diffTitle = `${model.methods[a]} − ${model.methods[b]}${where ? ` · ${where}` : ''}`;
        figures.push({
          id: `diff-${where}`,
          kind: 'difference',
          title: diffTitle,
          svg: heatmapSvg({
            title: `${diffTitle} · ${label}`,
            xLabel: axisLabel(model, px),
            yLabel: axisLabel(model, py),
            xs,
            ys,
            cellIndex: cell,
            cell: (ix, iy) => {
              const ea = cellEntry(model, cell(ix, iy), a, metric);
              const eb = cellEntry(model, cell(ix, iy), b, metric);
              if (!ea || !eb) return null;
              if (ea.invalid) return ea;
              return { value: ea.value - eb.value, note: `${formatNumber(ea.value)} − ${formatNumber(eb.value)}` };
            },
            scale: 'diverging',
            vmin: -(hi - lo),
            vmax: hi - lo,
            colorLabel: `difference in ${label}`,
            labels: true,
            overlays,
          }),
          caption: `Red: ${model.methods[a]} higher; blue: ${model.methods[b]} higher.`,
        });
      }
    }
    return figures.concat(computeViews(model, ui));
  }
  if (params.length === 1) {
    const p = params[0];
    const xs = model.axes[0].values.slice().sort((x, y) => x - y);
    const xLog = xs[0] > 0 && xs[xs.length - 1] / xs[0] >= 20;
    const series = methods.map((m) => {
      const stats = xs.map((x) => model.stat(model.cellAt([x]), m, metric));
      const mean = stats.map((s) => (s && Number.isFinite(s.mean) ? s.mean : null));
      return {
        name: model.methods[m],
        color: model.methodColor(m),
        mean,
        lo: stats.map((s, i) => (s && s.n > 1 ? mean[i] - s.std : null)),
        hi: stats.map((s, i) => (s && s.n > 1 ? mean[i] + s.std : null)),
      };
    });
    if (series.some((s) => s.mean.some((v) => v != null))) {
      // The ticks of a bias axis say off and on, so its name needs no key.
      const xName = axisLabel(model, p).replace(PARAM_LABELS.bias, 'biases');
      figures.push({
        id: `line-${metric}`,
        kind: 'line',
        title: `${label} against ${xName}`,
        svg: renderSVG(
          { xs, xLog, xLabel: xName, series, xTicks: fewTicks(p, xs) },
          { title: `${label} against ${xName}`, yLabel: label, yLog: METRICS[metric].log, width: 480, height: 340, markers: true },
        ),
        caption: model.seeds > 1 ? 'Bands: ± one standard deviation over seeds.' : '',
      });
    }
    return figures.concat(computeViews(model, ui));
  }
  return figures.concat(computeViews(model, ui));
}

/**
 * Ticks at an axis's own values when it has few (biases read "off" and "on", widths 8, 16,
 * 64), rather than nice numbers between them; null (nice ticks) for longer axes.
 */
function fewTicks(p, xs) {
  if (xs.length > 8) return null;
  return xs.map((v) => ({ value: v, label: valueText(p, v) }));
}

/** A value of axis `p` in words: biases are off or on, other values as numbers. */
function valueText(p, v) {
  return p === 'bias' ? (v ? 'on' : 'off') : formatValue(v);
}

/** M = K ln(N/K) (the compressed-sensing measurement bound) on maps over N and M. */
function scalingCurve(model, combo, px, py, xs, ys) {
  if (!((px === 'N' && py === 'M') || (px === 'M' && py === 'N'))) return [];
  const K = combo.find(([p]) => p === 'K')?.[1] ?? model.config.base.data.sparsity_k;
  const Ns = px === 'N' ? xs : ys;
  const lo = Math.min(...Ns) / 2;
  const hi = Math.max(...Ns) * 2;
  const points = [];
  for (let i = 0; i <= 80; i += 1) {
    const N = lo * (hi / lo) ** (i / 80);
    if (N <= K) continue;
    const M = K * Math.log(N / K);
    points.push(px === 'N' ? [N, M] : [M, N]);
  }
  return [{ id: 'scaling-curve', points, color: '#111', width: 2, dash: '6 4', label: `M = K ln(N/K), K = ${K}` }];
}

/**
 * The paper's compute and sparsity views of an experiment sweep: code MCC against total FLOPs
 * (training plus inference) for every cell, and L0 against test MSE (the Pareto view of an L1
 * sweep), one series per method.
 */
function computeViews(model) {
  if (model.kind !== 'experiment' || model.unitsDone === 0) return [];
  const cells = Array.from({ length: model.cells }, (_, i) => i);
  // On a one-axis sweep each point is labelled with its value of the axis (which lambda,
  // which k), so a Pareto front reads without the data table.
  const axis = model.params.length === 1 ? model.params[0] : null;
  const tag = (c) => (axis == null ? null : valueText(axis, model.valueOf(c, axis)));
  const scatter = (xMetric, yMetric) => {
    const pts = model.methods.map((_, m) => cells
      .map((c) => [model.stat(c, m, xMetric), model.stat(c, m, yMetric), c])
      .filter(([a, b]) => a && b && Number.isFinite(a.mean) && Number.isFinite(b.mean) && (!METRICS[xMetric].log || a.mean > 0))
      .map(([a, b, c]) => [a.mean, b.mean, tag(c)]));
    // Every point of every method on one sorted x list (cells of one method often share an
    // x, e.g. the FLOPs of a TopK sweep); each series has its own points and nulls elsewhere.
    const all = pts.flatMap((list, m) => list.map(([x, y, t]) => ({ x, y, m, t }))).sort((a, b) => a.x - b.x || a.m - b.m);
    if (!all.length) return null;
    const xs = all.map((p) => p.x);
    const series = pts.map((_, m) => {
      const mean = all.map((p) => (p.m === m ? p.y : null));
      const tags = all.map((p) => (p.m === m ? p.t : null));
      return { name: model.methods[m], color: model.methodColor(m), mean, lo: mean.map(() => null), hi: mean.map(() => null), tags };
    });
    return { xs, series, distinct: new Set(xs).size };
  };
  const out = [];
  const flops = scatter('total_flops', 'code_mcc');
  if (flops) {
    out.push({
      id: 'mcc-flops',
      kind: 'compute',
      title: 'Code MCC against total FLOPs',
      svg: renderSVG(
        { xs: flops.xs, xLog: true, xLabel: METRICS.total_flops.label, series: flops.series },
        { title: 'Code MCC against total FLOPs (every cell)', yLabel: 'Code MCC', width: 480, height: 340, markers: true, lines: false },
      ),
      caption: 'The paper\'s compute view: what each method reaches for the FLOPs it spent training and inferring test codes.',
    });
  }
  if (model.params.length === 1) {
    const pareto = scatter('l0', 'test_mse');
    if (pareto && pareto.distinct > 1) {
      out.push({
        id: 'pareto',
        kind: 'pareto',
        title: 'L0 against test MSE',
        svg: renderSVG(
          { xs: pareto.xs, xLog: false, xLabel: METRICS.l0.label, series: pareto.series },
          { title: 'Sparsity against reconstruction (L0 vs MSE)', yLabel: 'Test MSE', yLog: true, width: 480, height: 340, markers: true, tags: pareto.distinct <= 40 },
        ),
        caption: `One point per value of ${axisLabel(model, model.params[0])}, labelled with it: lower and further left is better.`,
      });
    }
  }
  return out;
}

/** A table of the per-cell means (for screen readers and for reading exact values). */
export function sweepTable(model, metric) {
  const head = [...model.allParams.map((p) => paramLabel(p)), ...model.methods].map((h) => `<th scope="col">${escapeXML(h)}</th>`).join('');
  const rows = [];
  for (let cell = 0; cell < model.cells && rows.length < 2000; cell += 1) {
    const values = model.allCellValues[cell].map((v) => `<td>${formatValue(v)}</td>`).join('');
    const why = model.invalid(cell);
    const cols = model.methods.map((_, m) => {
      if (why) return '<td>invalid</td>';
      const s = model.stat(cell, m, metric);
      return `<td>${s ? (Number.isFinite(s.mean) ? formatNumber(s.mean) : 'diverged') : '–'}</td>`;
    }).join('');
    rows.push(`<tr>${values}${cols}</tr>`);
  }
  return `<table><thead><tr>${head}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}
