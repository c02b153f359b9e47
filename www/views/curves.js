// The live curves: code MCC, dictionary MCC and test MSE against steps or FLOPs, mean and
// spread over seeds per method.
import { LineChart, kindColors } from '../charts.js';
import { $, F, methodColor, state } from '../page/state.js';
import { diffLabel, pinned, resultCurves } from './compare.js';

export const charts = {
  code_mcc: new LineChart($('chart-code_mcc'), { title: 'Code MCC', yLabel: 'code MCC', yRange: [0, 1] }),
  dict_mcc: new LineChart($('chart-dict_mcc'), { title: 'Dictionary MCC', yLabel: 'dictionary MCC', yRange: [0, 1] }),
  test_mse: new LineChart($('chart-test_mse'), { title: 'Test MSE', yLabel: 'test MSE', yLog: true }),
};

export function stats(values) {
  const v = values.filter((x) => Number.isFinite(x));
  if (!v.length) return null;
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return { mean, std };
}

/** Per method: evaluation points (by step) with the metric's mean and std over seeds. */
export function curves(metric, xMode) {
  return state.names.map((name, m) => {
    const bySteps = new Map();
    for (const run of state.rows[m] || []) {
      for (const row of run) {
        const step = row[F.step];
        if (!bySteps.has(step)) bySteps.set(step, []);
        bySteps.get(step).push(row);
      }
    }
    const points = [];
    for (const [step, rows] of [...bySteps.entries()].sort((a, b) => a[0] - b[0])) {
      const s = stats(rows.map((r) => r[F[metric]]));
      if (!s) continue;
      const flops = rows[0][F.train_flops] + rows[0][F.infer_flops];
      const x = xMode === 'flops' ? flops : step;
      points.push({ x, ...s, other: xMode === 'flops' ? step : flops });
    }
    return { name, points };
  });
}

/** Why a chart has nothing to draw: the setting has no such metric, or no evaluation is in. */
function emptyText(metric) {
  const knownCodes = state.config && state.config.setting === 'known_codes';
  if (knownCodes && metric === 'dict_mcc') return 'No dictionary in the known-codes setting.';
  if (knownCodes && metric === 'test_mse') {
    return 'No reconstruction in the known-codes setting: the encoders are trained to predict the codes, with no decoder.';
  }
  return 'No evaluations yet.';
}

export function renderCharts() {
  const xMode = $('x-axis').value;
  for (const [metric, chart] of Object.entries(charts)) {
    // This experiment's methods, then every pinned experiment's, dashed and named by what
    // differs.
    const perMethod = curves(metric, xMode).map((c, m) => ({ ...c, color: methodColor(m), dash: false }));
    for (const e of pinned()) {
      const label = diffLabel(e.results.config, e.results);
      const theirs = kindColors(e.results.methods.map((m) => m.method.kind));
      for (const c of resultCurves(e.results, metric, xMode)) {
        const at = state.names.indexOf(c.name);
        const color = at >= 0 ? methodColor(at) : theirs[e.results.methods.findIndex((m) => m.name === c.name)];
        perMethod.push({ name: `${c.name} · ${label}`, points: c.points, color, dash: true });
      }
    }
    const xsSet = new Set();
    for (const c of perMethod) for (const p of c.points) if (xMode !== 'flops' || p.x > 0) xsSet.add(p.x);
    const xs = [...xsSet].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const series = perMethod
      .filter((c) => c.points.length)
      .map((c) => {
        const mean = new Array(xs.length).fill(null);
        const lo = new Array(xs.length).fill(null);
        const hi = new Array(xs.length).fill(null);
        const other = new Array(xs.length).fill(null);
        for (const p of c.points) {
          const i = index.get(p.x);
          if (i === undefined) continue;
          const pos = (v) => (metric === 'test_mse' && !(v > 0) ? null : v);
          mean[i] = pos(p.mean);
          lo[i] = pos(p.mean - p.std);
          hi[i] = pos(p.mean + p.std);
          other[i] = p.other;
        }
        return { name: c.name, color: c.color, dash: c.dash, mean, lo, hi, other };
      });
    const wrap = chart.container;
    if (!series.length) {
      wrap.dataset.empty = 'true';
      if (chart.plot) {
        chart.plot.destroy();
        chart.plot = null;
        chart.shape = '';
      }
      chart.legend.textContent = emptyText(metric);
      continue;
    }
    wrap.dataset.empty = 'false';
    chart.setData({
      xs,
      series,
      xLog: xMode === 'flops',
      xLabel: xMode === 'flops' ? 'total FLOPs (training + inference)' : 'training steps',
      otherLabel: xMode === 'flops' ? 'step' : 'FLOPs',
    });
  }
}
