// The summary table: each method's last evaluation, mean and spread over seeds.
import { formatNumber } from '../charts.js';
import { $, F, methodColor, state } from '../page/state.js';
import { pinnedRows } from './compare.js';
import { stats } from './curves.js';
import reference from '../reference/paper-size.json';
import { orderDisagreements } from '../page/order.mjs';

/**
 * Whether a method's curves have settled: over the last quarter of its training, the mean
 * code MCC moved by more than 0.02 or the training loss fell by more than 5%. Short runs can
 * mislead (sparse coding, for one, dips early before it overtakes), so the table says so.
 */
export function trend(m) {
  const runs = (state.rows[m] || []).filter((r) => r.length);
  if (!runs.length) return { settled: null, text: '–' };
  const steps = [...new Set(runs.flatMap((r) => r.map((row) => row[F.step])))].sort((a, b) => a - b);
  if (steps.length < 3) return { settled: null, text: 'too few evaluations to tell' };
  const last = steps[steps.length - 1];
  const earlier = steps.find((st) => st >= 0.75 * last && st < last) ?? steps[steps.length - 2];
  const at = (step, key) => stats(runs.map((r) => r.find((row) => row[F.step] === step)).filter(Boolean).map((row) => row[F[key]]));
  const mccNow = at(last, 'code_mcc');
  const mccThen = at(earlier, 'code_mcc');
  const lossNow = at(last, 'train_loss');
  const lossThen = at(earlier, 'train_loss');
  const dMcc = mccNow && mccThen ? mccNow.mean - mccThen.mean : 0;
  const lossDrop = lossNow && lossThen && lossThen.mean > 0 ? (lossThen.mean - lossNow.mean) / lossThen.mean : 0;
  const parts = [];
  if (Math.abs(dMcc) > 0.02) parts.push(`code MCC ${dMcc > 0 ? '+' : ''}${dMcc.toFixed(3)}`);
  if (lossDrop > 0.05) parts.push(`loss −${(100 * lossDrop).toFixed(0)}%`);
  if (!parts.length) return { settled: true, text: 'settled' };
  return {
    settled: false,
    text: `still changing: ${parts.join(', ')} since step ${earlier.toLocaleString()}`,
  };
}

export function lastRows(m) {
  return (state.rows[m] || []).map((run) => run[run.length - 1]).filter(Boolean);
}

/** The first cell of a row: a colour swatch, the name, and a note under it (the trend). */
function methodCell(mark, color, name, noteText, changing) {
  const td = document.createElement('td');
  const swatch = document.createElement('span');
  swatch.textContent = mark;
  swatch.style.color = color;
  swatch.setAttribute('aria-hidden', 'true');
  const note = document.createElement('span');
  note.className = changing ? 'trend changing' : 'trend';
  note.textContent = noteText;
  td.append(swatch, name, note);
  return td;
}

export function renderTable() {
  const body = $('summary').tBodies[0];
  const cells = (m) => {
    const rows = lastRows(m);
    const cell = (key, digits) => {
      const s = stats(rows.map((r) => r[F[key]]));
      if (!s) return '–';
      if (digits === 'int') return s.mean.toFixed(1);
      if (digits === 'sci') return formatNumber(s.mean);
      return rows.length > 1 ? `${s.mean.toFixed(3)} ± ${s.std.toFixed(3)}` : s.mean.toFixed(3);
    };
    return [
      cell('code_mcc'),
      cell('dict_mcc'),
      cell('test_mse', 'sci'),
      cell('l0', 'int'),
      cell('dead_latents', 'int'),
      cell('train_flops', 'sci'),
      cell('infer_flops', 'sci'),
      cell('wall_s', 'int'),
    ];
  };
  body.replaceChildren(
    ...state.names.map((name, m) => {
      const tr = document.createElement('tr');
      // The trend sits under the method's name, where it is read with the numbers (a last
      // column was off screen on a laptop, behind the table's horizontal scroll).
      const t = trend(m);
      tr.append(methodCell('■ ', methodColor(m), name, t.text, t.settled === false));
      for (const text of cells(m)) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
    ...pinnedRows().map((row) => {
      const tr = document.createElement('tr');
      tr.className = 'pinned';
      tr.append(methodCell('┅ ', methodColor(Math.max(0, state.names.indexOf(row.methodName))), row.name, 'pinned', false));
      const f = row.summary || {};
      const fmt = (s, kind) => {
        if (!s) return '–';
        if (kind === 'int') return s.mean.toFixed(1);
        if (kind === 'sci') return formatNumber(s.mean);
        return `${s.mean.toFixed(3)} ± ${s.std.toFixed(3)}`;
      };
      for (const text of [
        fmt(f.code_mcc),
        fmt(f.dict_mcc),
        fmt(f.test_mse, 'sci'),
        fmt(f.l0, 'int'),
        fmt(f.dead_latents, 'int'),
        fmt(f.train_flops, 'sci'),
        fmt(f.infer_flops, 'sci'),
        fmt(f.wall_s, 'int'),
      ]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
  paperSizeNote();
}

/**
 * A quick preset is a short version of a paper-size run: beside its table, say what the
 * paper-size run measured (with the CLI: www/reference/paper-size.json) and, once the run is
 * over, whether the two order the methods alike by code MCC, naming each pair they do not.
 */
export function paperSizeNote() {
  const note = $('paper-size-note');
  const name = state.preset && state.preset.startsWith('quick-') ? state.preset.slice(6) : null;
  const ref = name && reference.experiments[name];
  if (!ref) {
    note.hidden = true;
    return null;
  }
  const seeds = ref.config.runs;
  const steps = ref.config.train.steps.toLocaleString('en-US');
  const here = new Map();
  state.names.forEach((method, m) => {
    const s = stats(lastRows(m).map((r) => r[F.code_mcc]));
    if (s) here.set(method, s.mean);
  });
  const inRun = ref.methods.filter((r) => state.names.includes(r.name));
  if (!inRun.length) {
    note.hidden = true;
    return null;
  }
  const list = [...inRun]
    .sort((a, b) => b.code_mcc.mean - a.code_mcc.mean)
    .map((r) => `${r.name} ${r.code_mcc.mean.toFixed(3)}`)
    .join(' > ');
  let text = `At the paper's size (${seeds} seeds, ${steps} steps; measured with the CLI) the final code MCC orders these methods ${list}.`;
  let swapped = [];
  if (state.finished && here.size > 1) {
    swapped = orderDisagreements(ref.methods, here);
    const said = swapped.map(
      ({ hi, lo, close }) =>
        `${lo.name} ends above ${hi.name} here (${lo.here.toFixed(3)} against ${hi.here.toFixed(3)}), below it at the paper's size (${lo.code_mcc.mean.toFixed(3)} against ${hi.code_mcc.mean.toFixed(3)}${close ? ', within the seeds\u2019 spread' : ''})`,
    );
    text += swapped.length
      ? ` This quick run is too short to settle ${swapped.length === 1 ? 'one pair' : `${swapped.length} pairs`}: ${said.join('; ')}. Run the paper-exact preset to see it.`
      : ' This quick run orders them the same way.';
  }
  note.textContent = text;
  note.hidden = false;
  return swapped;
}
