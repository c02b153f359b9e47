// The real-activations results: a table per method (explained variance, L0, dead latents, the
// amortisation gap and how close its codes are to the optimal ones) and the compute frontier
// (each point's excess objective over the optimum of its dictionary against inference FLOPs
// per token). On synthetic activations, whose true features are known, the table adds code and
// dictionary MCC and the frontier can show code MCC. Both read the CLI's results JSON
// (`core::real::RealResults`).
import { formatNumber, kindColors, renderSVG } from '../charts.js';

/** The table, one row per method. */
export function renderRealTable(table, results) {
  const truth = hasTruth(results);
  const head = ['Method', 'Explained variance', 'L0', 'Dead latents', 'Objective', 'Optimum', 'Gap', 'Cosine to optimal codes', 'Support overlap', 'Inference FLOPs / token', 'Optimum iterations'];
  if (truth) head.push('Code MCC', 'Code MCC at the optimum', 'Dictionary MCC');
  const thead = document.createElement('thead');
  const hr = document.createElement('tr');
  for (const h of head) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = h;
    hr.append(th);
  }
  thead.append(hr);
  const tbody = document.createElement('tbody');
  const colors = kindColors(results.methods.map((m) => m.method.kind));
  results.methods.forEach((m, i) => {
    const tr = document.createElement('tr');
    tr.dataset.method = m.name;
    const name = document.createElement('th');
    name.scope = 'row';
    const swatch = document.createElement('span');
    swatch.textContent = '■ ';
    swatch.style.color = colors[i];
    swatch.setAttribute('aria-hidden', 'true');
    name.append(swatch, m.name);
    tr.append(name);
    const g = m.report;
    const cells = g
      ? [
          g.own.explained_variance,
          g.own.l0,
          g.own.dead_latents,
          g.own.objective,
          g.optimum.objective,
          g.amortisation_gap,
          g.code_cosine,
          g.support_jaccard,
          g.own.flops_per_token,
          `${g.optimum_solver.iterations}${g.optimum_solver.converged ? '' : ' (cap)'}`,
          ...(truth ? [g.own.code_mcc ?? '–', g.optimum.code_mcc ?? '–', g.dict_mcc ?? '–'] : []),
        ]
      : [];
    if (!g) {
      const td = document.createElement('td');
      td.colSpan = head.length - 1;
      td.textContent = m.error ? `stopped: ${m.error}` : 'not finished';
      tr.append(td);
    }
    cells.forEach((v, c) => {
      const td = document.createElement('td');
      td.className = 'num';
      td.textContent = typeof v === 'number' ? (c === 2 ? String(v) : formatNumber(v)) : v;
      if (c === 5) td.dataset.gap = String(v);
      if (c === 10) td.dataset.codeMcc = String(v);
      tr.append(td);
    });
    tbody.append(tr);
  });
  table.replaceChildren(thead, tbody);
}

/** Whether the results were scored against a known truth (synthetic activations). */
export function hasTruth(results) {
  return results.methods.some((m) => m.report && typeof m.report.own.code_mcc === 'number');
}

/** Excess objective f / f* - 1, floored where it is below what the optimum's tolerance resolves. */
const FLOOR = 1e-5;
function excess(point, optimum) {
  return Math.max(FLOOR, point.objective / optimum - 1);
}

/**
 * The frontier as chart data: per method, its encoder and the warm-started points (solid), and
 * FISTA from zero on its dictionary with its own inference (dashed). `y` is 'excess' (f / f* - 1)
 * 'ev' (explained variance with each token's codes cut to the method's matched L0) or 'mcc' (code
 * MCC against the true codes, on synthetic activations).
 */
export function frontierData(results, y = 'excess') {
  const colors = kindColors(results.methods.map((m) => m.method.kind));
  const done = results.methods.map((m, i) => [m, i]).filter(([m]) => m.report);
  const xs = [...new Set(done.flatMap(([m]) => m.report.frontier.map((p) => p.flops_per_token)))].sort((a, b) => a - b);
  const series = [];
  for (const [m, i] of done) {
    const g = m.report;
    const line = (kinds, name, dash) => {
      const pts = g.frontier.filter((p) => kinds.includes(p.kind));
      if (!pts.length) return;
      const mean = xs.map((x) => {
        const p = pts.find((q) => q.flops_per_token === x);
        if (!p) return null;
        if (y === 'ev') return p.explained_variance_at_l0 ?? null;
        if (y === 'mcc') return p.code_mcc ?? null;
        return excess(p, g.optimum.objective);
      });
      series.push({ name, color: colors[i], dash, mean, lo: mean.map(() => null), hi: mean.map(() => null) });
    };
    line(['encoder', 'warm'], m.name, false);
    line(['cold', 'inference'], `${m.name}: FISTA from 0`, true);
  }
  return { xs, xLog: true, xLabel: 'inference FLOPs per token', series };
}

function iterations(results) {
  const ks = results.config.gap.iterations;
  return ks.length > 1 ? `${ks.slice(0, -1).join(', ')} or ${ks[ks.length - 1]}` : String(ks[0]);
}

export function renderFrontier(figure, results, y = 'excess') {
  const data = frontierData(results, y);
  if (!data.series.length) {
    figure.replaceChildren();
    return;
  }
  const width = Math.max(360, Math.min(900, figure.clientWidth || 720));
  const ev = y === 'ev';
  const mcc = y === 'mcc';
  const svg = renderSVG(data, {
    title: mcc
      ? 'Compute frontier: code MCC against the true features, against inference FLOPs'
      : ev
        ? "Compute frontier: explained variance at the encoder's L0 against inference FLOPs"
        : 'Compute frontier: excess objective over the optimum (f / f* − 1) against inference FLOPs',
    yLabel: mcc ? 'code MCC' : ev ? 'explained variance, codes cut to the matched L0' : 'f / f* − 1 (log)',
    yLog: !ev && !mcc,
    width,
    height: 420,
    markers: true,
  });
  const caption = document.createElement('figcaption');
  caption.className = 'muted small';
  const budgets = results.methods
    .filter((m) => m.report && m.report.matched_l0)
    .map((m) => `${m.name} ${m.report.matched_l0}`)
    .join(', ');
  const what = mcc
    ? 'Each point\'s codes matched one to one to the true features that made these synthetic activations (the Hungarian matching of their correlations over the analysed tokens), and the mean correlation of the pairs: the paper\'s code MCC. Higher is better; the objective\'s optimum need not be the truth.'
    : ev
    ? `Each point's explained variance with every token's codes cut to its largest k, k the method's encoder's mean L0 rounded up (its own inference's without an encoder: ${budgets}), so more inference cannot buy variance with more active latents.`
    : `Values below ${FLOOR} (about the optimum's tolerance) are drawn at ${FLOOR}.`;
  caption.textContent = `Solid: the encoder's codes (its leftmost point, the amortisation gap), then FISTA started from them for ${iterations(results)} iterations. Dashed: FISTA from zero on the same dictionary, for as many iterations, and the method's own inference where it has one. Each method is scored under its own dictionary on ${results.methods.find((m) => m.report)?.report.tokens ?? 0} held-out tokens. ${what}`;
  figure.dataset.y = y;
  const holder = document.createElement('div');
  holder.innerHTML = svg; // built from escaped text by ../charts.js
  figure.replaceChildren(holder, caption);
  figure.dataset.series = String(data.series.length);
}

/** Token texts parsed once: {tokens, context_starts}, or null without them. */
export function parseTokens(text) {
  if (!text) return null;
  try {
    const t = JSON.parse(text);
    return Array.isArray(t.tokens) && Array.isArray(t.context_starts) ? t : null;
  } catch {
    return null;
  }
}

/** The context of row `row`: up to `before` earlier tokens of its context, then the token. */
function contextOf(tokens, row, before) {
  const starts = tokens.context_starts;
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= row) lo = mid;
    else hi = mid - 1;
  }
  const from = Math.max(starts[lo], row - before);
  // Line breaks shown as ↵, so every context stays on one line.
  const shown = (s) => s.replace(/\n/g, '↵');
  return { text: shown(tokens.tokens.slice(from, row).join('')), token: shown(tokens.tokens[row]) };
}

function histogramSVG(view) {
  const w = 320;
  const h = 90;
  const max = Math.max(1, ...view.histogram);
  const bw = w / view.histogram.length;
  const bars = view.histogram
    .map((c, i) => `<rect x="${(i * bw + 1).toFixed(1)}" y="${(h - 16 - (c / max) * (h - 24)).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${((c / max) * (h - 24)).toFixed(1)}" fill="#0072B2"/>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="Histogram of the feature's activations where active" font-family="system-ui, sans-serif" font-size="10">${bars}<line x1="0" x2="${w}" y1="${h - 16}" y2="${h - 16}" stroke="#9aa4b1"/><text x="0" y="${h - 3}">0</text><text x="${w}" y="${h - 3}" text-anchor="end">${formatNumber(view.max)}</text></svg>`;
}

/**
 * One feature: how often and how strongly it fires, its top tokens in context (with the token
 * texts) and its neighbours, each a button calling `pick(method, latent)`.
 */
export function renderFeature(container, view, tokens, pick) {
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  };
  const head = el('p');
  head.append(
    el('b', `${view.name}, feature ${view.latent}`),
    ` of ${view.latents}: active on ${(100 * view.frequency).toFixed(1)}% of ${view.tokens} held-out tokens, ` +
      `mean ${formatNumber(view.mean_active)} where active, largest ${formatNumber(view.max)}.`,
  );
  const grid = el('div', null, 'feature-grid');
  const topBox = el('div');
  topBox.append(el('h3', tokens ? 'Top tokens in context' : 'Top tokens (rows of the file: no token texts loaded)'));
  const list = el('ol', null, 'contexts');
  list.dataset.role = 'top-tokens';
  for (const t of view.top) {
    const li = el('li');
    li.append(el('span', formatNumber(t.value), 'act'));
    if (tokens) {
      const c = contextOf(tokens, t.row, 12);
      li.append(c.text, el('mark', c.token));
    } else {
      li.append(`row ${t.row}`);
    }
    list.append(li);
  }
  if (!view.top.length) list.append(el('li', 'Never active on these tokens (a dead feature).'));
  topBox.append(list);
  const side = el('div');
  side.append(el('h3', 'Activations where active'));
  const hist = el('div');
  hist.innerHTML = histogramSVG(view); // numbers only
  side.append(hist);
  const neighbours = (title, items, role) => {
    side.append(el('h3', title));
    const ul = el('ul', null, 'contexts');
    ul.dataset.role = role;
    for (const n of items) {
      const li = el('li');
      const b = el('button', `${n.name} #${n.latent}`, 'link');
      b.type = 'button';
      b.addEventListener('click', () => pick(n.method, n.latent));
      li.append(b, el('span', `cos ${n.cosine.toFixed(3)}`, 'act'));
      ul.append(li);
    }
    if (!items.length) ul.append(el('li', 'None.'));
    side.append(ul);
  };
  neighbours('Nearest features (decoder cosine)', view.nearest, 'nearest');
  neighbours('The same feature in the other methods', view.matched, 'matched');
  grid.append(topBox, side);
  container.replaceChildren(head, grid);
}
