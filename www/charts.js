// Line charts of a metric against steps or FLOPs: one line per method (mean over seeds) with a
// band of mean +/- one standard deviation. uPlot draws them live; the same data also render to
// a standalone SVG, and the canvas plus a legend to a PNG, for export.
import uPlot from 'uplot';

// Okabe-Ito: distinguishable with the common colour-vision deficiencies.
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#B8A000'];

export function colorOf(i) {
  return PALETTE[i % PALETTE.length];
}

/**
 * One hue per kind of method, the same in every view (charts, tables, maps, exports): an SAE
 * is always blue, sparse coding always purple. Keys are the configs' `kind` names.
 */
export const KIND_COLORS = {
  sae: '#0072B2',
  topk_sae: '#D55E00',
  mlp: '#009E73',
  sparse_coding: '#CC79A7',
  sae_ito: '#E69F00',
  lista: '#56B4E9',
  batch_topk_sae: '#8A6D00',
  jump_relu_sae: '#4D4D4D',
};

/** `hex` mixed towards black (f < 0) or white (f > 0) by |f|. */
function shade(hex, f) {
  const n = parseInt(hex.slice(1), 16);
  const mix = (c) => Math.round(f < 0 ? c * (1 + f) : c + (255 - c) * f);
  const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map(mix);
  return `#${((1 << 24) | (r << 16) | (g << 8) | b).toString(16).slice(1)}`;
}

/**
 * Colours of a list of methods given by kind: each kind's hue; a second, third, ... method of
 * the same kind (MLPs of two widths) gets a darker, then lighter, shade of it. Unknown kinds
 * fall back to the palette by position.
 */
export function kindColors(kinds) {
  const seen = new Map();
  return kinds.map((kind, i) => {
    const base = KIND_COLORS[kind];
    if (!base) return colorOf(i);
    const n = seen.get(kind) ?? 0;
    seen.set(kind, n + 1);
    return shade(base, [0, -0.4, 0.4, -0.65, 0.6][n % 5]);
  });
}

function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

export function formatNumber(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  if (a >= 100) return v.toFixed(0);
  return v.toPrecision(3);
}

/** A title's font size, at most `max`, that fits `room` pixels (about 0.6 em per character). */
export function titleSize(text, room, max) {
  return Math.max(8, Math.min(max, room / (0.6 * Math.max(1, text.length)))).toFixed(1);
}

/**
 * A parameter value as a person would write it (16, 0.05, 0.001, 3e-4): the shortest form
 * with at most four significant digits, no trailing zeros. For grid values and axis labels,
 * where formatNumber's fixed precision would print 16.0 or 0.0500.
 */
export function formatValue(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return String(Number(v.toPrecision(4))).replace('e+', 'e');
  return String(Number(v.toPrecision(4)));
}

/** Labels only the powers of ten of a log axis (uPlot also returns the minor ticks). */
function logLabel(v) {
  if (!(v > 0)) return '';
  const e = Math.round(Math.log10(v));
  if (Math.abs(v / 10 ** e - 1) > 1e-9) return '';
  return e >= -2 && e <= 3 ? String(10 ** e) : `1e${e}`;
}

/**
 * One chart. `setData` takes {xs, xLabel, otherLabel, xLog, series: [{name, color, dash, mean,
 * lo, hi, other}]}, where the arrays are aligned with xs and hold null where a method has no
 * point (`other` is the other x quantity at each point, FLOPs against steps or steps against
 * FLOPs, for the hover readout; `dash` draws an overlay of a pinned experiment dashed).
 *
 * The legend's entries are buttons that hide and show their series; hovering (or moving the
 * cursor with the keyboard-focusable plot) reads out every series at that x; a table of the
 * same numbers sits under the chart for screen readers and for reading exact values.
 */
export class LineChart {
  constructor(container, { title, yLabel, yLog = false, yRange = null }) {
    this.container = container;
    this.title = title;
    this.yLabel = yLabel;
    this.yLog = yLog;
    this.yRange = yRange;
    this.plot = null;
    this.shape = '';
    this.data = null;
    this.hidden = new Set(); // names of series the legend switched off
    container.setAttribute('role', 'figure');
    const h = document.createElement('h3');
    h.id = `${container.id}-title`;
    h.textContent = title;
    container.setAttribute('aria-labelledby', h.id);
    const actions = document.createElement('span');
    actions.className = 'actions';
    for (const kind of ['PNG', 'SVG']) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = kind;
      b.setAttribute('aria-label', `Download the ${title} chart as ${kind}`);
      b.addEventListener('click', () => this.download(kind));
      actions.append(b);
    }
    h.append(actions);
    this.body = document.createElement('div');
    this.body.className = 'plot';
    this.readout = document.createElement('div');
    this.readout.className = 'readout';
    this.readout.setAttribute('aria-live', 'polite');
    this.readout.hidden = true;
    this.legend = document.createElement('div');
    this.legend.className = 'legend';
    this.legend.setAttribute('role', 'group');
    this.legend.setAttribute('aria-label', `${title}: show or hide series`);
    this.table = document.createElement('details');
    this.table.className = 'data-table';
    const summary = document.createElement('summary');
    summary.textContent = 'Data table';
    this.tableBody = document.createElement('div');
    this.table.append(summary, this.tableBody);
    this.table.addEventListener('toggle', () => this.renderTable());
    container.append(h, this.body, this.readout, this.legend, this.table);
    new ResizeObserver(() => {
      if (this.plot) this.plot.setSize(this.size());
    }).observe(container);
  }

  size() {
    return { width: Math.max(260, this.container.clientWidth - 4), height: 240 };
  }

  setData(data) {
    this.data = data;
    const shape = `${data.xLog}|${data.series.map((s) => `${s.name}/${s.dash ? 1 : 0}`).join('|')}`;
    const columns = [data.xs];
    for (const s of data.series) columns.push(s.mean, s.lo, s.hi);
    if (this.plot && shape === this.shape) {
      this.plot.setData(columns);
    } else {
      if (this.plot) this.plot.destroy();
      this.shape = shape;
      this.plot = new uPlot(this.options(data), columns, this.body);
      const canvas = this.body.querySelector('canvas');
      if (canvas) {
        canvas.setAttribute('role', 'img');
        canvas.setAttribute('aria-label', this.describe());
      }
    }
    data.series.forEach((s, i) => this.applyShown(i, !this.hidden.has(s.name)));
    this.legend.replaceChildren(
      ...data.series.map((s, i) => {
        const item = document.createElement('button');
        item.type = 'button';
        item.className = 'legend-item';
        item.setAttribute('aria-pressed', String(!this.hidden.has(s.name)));
        item.title = 'Show or hide this series';
        const swatch = document.createElement('i');
        swatch.style.background = s.color;
        if (s.dash) swatch.className = 'dashed';
        item.append(swatch, s.name);
        item.addEventListener('click', () => {
          const shown = this.hidden.has(s.name);
          if (shown) this.hidden.delete(s.name);
          else this.hidden.add(s.name);
          item.setAttribute('aria-pressed', String(shown));
          this.applyShown(i, shown);
        });
        return item;
      }),
    );
    this.body.dataset.points = String(data.xs.length);
    if (this.table.open) this.renderTable();
  }

  /** Show or hide series `i` (its line and its band). */
  applyShown(i, shown) {
    if (!this.plot) return;
    const base = 1 + 3 * i;
    for (const k of [base, base + 1, base + 2]) {
      if (this.plot.series[k] && this.plot.series[k].show !== shown) this.plot.setSeries(k, { show: shown });
    }
  }

  describe() {
    const d = this.data;
    const names = d.series.map((s) => s.name).join(', ');
    return `${this.title} against ${d.xLabel}${d.xLog ? ' (log scale)' : ''} for ${names}; the data table below the chart lists the values.`;
  }

  /** The values at the cursor: x, and per visible series mean, spread and the other x. */
  showReadout(u) {
    const idx = u.cursor.idx;
    const d = this.data;
    if (idx == null || !d) {
      this.readout.hidden = true;
      return;
    }
    const lines = [`${d.xLabel}: ${formatNumber(d.xs[idx])}`];
    for (const s of d.series) {
      if (this.hidden.has(s.name) || s.mean[idx] == null) continue;
      const std = s.hi[idx] != null && s.lo[idx] != null ? (s.hi[idx] - s.lo[idx]) / 2 : null;
      const spread = std ? ` ± ${formatNumber(std)}` : '';
      const other = s.other && s.other[idx] != null ? ` · ${d.otherLabel} ${formatNumber(s.other[idx])}` : '';
      lines.push(`${s.name}: ${formatNumber(s.mean[idx])}${spread}${other}`);
    }
    this.readout.textContent = lines.join('\n');
    this.readout.hidden = lines.length < 2;
  }

  renderTable() {
    const d = this.data;
    if (!this.table.open || !d) return;
    const table = document.createElement('table');
    const caption = document.createElement('caption');
    caption.textContent = `${this.title}: mean ± std over seeds`;
    const head = document.createElement('tr');
    for (const text of [d.xLabel, ...d.series.map((s) => s.name)]) {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = text;
      head.append(th);
    }
    const rows = d.xs.map((x, i) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = formatNumber(x);
      tr.append(th);
      for (const s of d.series) {
        const td = document.createElement('td');
        const std = s.hi[i] != null && s.lo[i] != null ? (s.hi[i] - s.lo[i]) / 2 : null;
        td.textContent = s.mean[i] == null ? '–' : `${formatNumber(s.mean[i])}${std ? ` ± ${formatNumber(std)}` : ''}`;
        tr.append(td);
      }
      return tr;
    });
    table.append(caption, head, ...rows);
    this.tableBody.replaceChildren(table);
  }

  options(data) {
    const series = [{ label: data.xLabel }];
    const bands = [];
    data.series.forEach((s, i) => {
      const base = 1 + 3 * i;
      series.push(
        {
          label: s.name,
          stroke: s.color,
          width: 2,
          dash: s.dash ? [6, 4] : undefined,
          spanGaps: true,
          points: { show: data.xs.length < 40, size: 4 },
        },
        { label: `${s.name} (mean - std)`, stroke: 'transparent', spanGaps: true, points: { show: false } },
        { label: `${s.name} (mean + std)`, stroke: 'transparent', spanGaps: true, points: { show: false } },
      );
      bands.push({ series: [base + 2, base + 1], fill: withAlpha(s.color, s.dash ? 0.07 : 0.15) });
    });
    const y = this.yLog ? { distr: 3 } : {};
    if (this.yRange) y.range = (u, min, max) => [Math.min(this.yRange[0], min), Math.max(this.yRange[1], max)];
    return {
      ...this.size(),
      legend: { show: false },
      scales: { x: { time: false, distr: data.xLog ? 3 : 1 }, y },
      axes: [
        { label: data.xLabel, values: (u, ticks) => ticks.map(data.xLog ? logLabel : formatNumber) },
        { label: this.yLabel, values: (u, ticks) => ticks.map(this.yLog ? logLabel : formatNumber), size: 60 },
      ],
      series,
      bands,
      cursor: { drag: { x: true, y: false } },
      hooks: { setCursor: [(u) => this.showReadout(u)] },
    };
  }

  /** The chart as a PNG data URL at the display's pixel ratio: title, plot, legend. */
  toPNG() {
    const src = this.plot.ctx.canvas;
    const ratio = src.width / this.plot.width;
    const legendRows = Math.ceil(this.data.series.length / 3);
    const out = document.createElement('canvas');
    out.width = src.width;
    out.height = src.height + Math.round((30 + 18 * legendRows) * ratio);
    const ctx = out.getContext('2d');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.scale(ratio, ratio);
    ctx.fillStyle = '#1b1f24';
    ctx.font = '600 14px system-ui, sans-serif';
    ctx.fillText(this.title, 8, 18);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(src, 0, Math.round(26 * ratio));
    ctx.scale(ratio, ratio);
    ctx.font = '12px system-ui, sans-serif';
    this.data.series.forEach((s, i) => {
      const x = 8 + (i % 3) * 150;
      const y = src.height / ratio + 40 + Math.floor(i / 3) * 18;
      ctx.fillStyle = s.color;
      ctx.fillRect(x, y - 5, 14, 3);
      ctx.fillStyle = '#1b1f24';
      ctx.fillText(s.name, x + 18, y);
    });
    return out.toDataURL('image/png');
  }

  /** The chart drawn from its data at `width` x `height` pixels, as a PNG data URL. */
  async toPNGSized(width, height) {
    const svg = renderSVG(this.visibleData(), { title: this.title, yLabel: this.yLabel, yLog: this.yLog, width, height });
    const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
    try {
      const img = new Image();
      img.src = url;
      await img.decode();
      const out = document.createElement('canvas');
      out.width = width;
      out.height = height;
      out.getContext('2d').drawImage(img, 0, 0, width, height);
      return out.toDataURL('image/png');
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  /** The data without the series the legend hides. */
  visibleData() {
    return { ...this.data, series: this.data.series.filter((s) => !this.hidden.has(s.name)) };
  }

  /** The chart as standalone SVG text, drawn from the data rather than the canvas. */
  toSVG() {
    return renderSVG(this.visibleData(), {
      title: this.title,
      yLabel: this.yLabel,
      yLog: this.yLog,
      width: 640,
      height: 360,
    });
  }

  /**
   * Download as PNG or SVG. PNG: at the display's pixel ratio (`size` 'screen'), or drawn at a
   * chosen size ('1280x720', '1920x1080').
   */
  async download(kind, size = LineChart.pngSize) {
    if (!this.data) return;
    const name = `${this.title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}.${kind.toLowerCase()}`;
    if (kind === 'PNG') {
      const m = /^(\d+)x(\d+)$/.exec(size || '');
      downloadURL(m ? await this.toPNGSized(Number(m[1]), Number(m[2])) : this.toPNG(), name);
    } else {
      const blob = new Blob([this.toSVG()], { type: 'image/svg+xml' });
      const url = URL.createObjectURL(blob);
      downloadURL(url, name);
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    }
  }
}

/** The PNG size every chart exports at (the page's "PNG size" control sets it). */
LineChart.pngSize = 'screen';

export function downloadURL(url, name) {
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

/** A tick label: as formatNumber, without trailing zeros (0.001, 1, 5e+7, not 0.00100, 1.00, 5.00e+7). */
export function formatTick(v) {
  const text = formatNumber(v);
  if (!text.includes('.')) return text;
  return text.replace(/(\.\d*?)0+(?=e|$)/, '$1').replace(/\.(?=e|$)/, '');
}

export function niceTicks(min, max, count) {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

/**
 * Ticks of a log axis: the powers of ten in [min, max] where three or more fall inside; else
 * (a range of a decade or so, e.g. the FLOPs of a sweep's cells) 1-2-5 steps where two do,
 * else every integer multiple of a power of ten. The chart drops labels that would overlap.
 */
export function logTicks(min, max) {
  for (const mantissas of [[1], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    const ticks = [];
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
      for (const k of mantissas) {
        const t = +(k * 10 ** e).toPrecision(12);
        if (t >= min * 0.999 && t <= max * 1.001) ticks.push(t);
      }
    }
    const enough = mantissas.length === 1 ? 3 : mantissas.length === 3 ? 2 : 1;
    if (ticks.length >= enough) return ticks;
  }
  return [min, max];
}

export function escapeXML(s) {
  return String(s).replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * A self-contained SVG line chart with bands, axes, ticks and a legend; `markers` draws each
 * point as a dot (for sweeps, whose points are few and each a cell), `lines: false` leaves
 * the points unjoined (a scatter).
 */
export function renderSVG(data, { title, yLabel, yLog, width, height, markers = false, lines = true, tags = false }) {
  // Legend columns as wide as the longest name, as many as the width holds.
  const longest = Math.max(0, ...data.series.map((s) => s.name.length));
  const colW = Math.min(190, Math.max(80, longest * 6.2 + 28));
  const cols = Math.max(1, Math.min(3, Math.floor((width - 64 - 8) / colW)));
  const m = { left: 64, right: 16, top: 32, bottom: 48 + 16 * Math.ceil(data.series.length / cols) };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const finite = (v) => v != null && Number.isFinite(v) && (!yLog || v > 0);
  const xsOk = data.xs.filter((x) => Number.isFinite(x) && (!data.xLog || x > 0));
  let ys = [];
  for (const s of data.series) ys = ys.concat(s.lo, s.hi, s.mean).filter(finite);
  let xmin = Math.min(...xsOk);
  let xmax = Math.max(...xsOk);
  let ymin = Math.min(...ys);
  let ymax = Math.max(...ys);
  if (!yLog && ymin === ymax) { ymin -= 0.5; ymax += 0.5; }
  if (markers) {
    // Dots are drawn whole: a margin of 4% of the range (in log space on log axes) on each side.
    const pad = (lo, hi, log) => {
      if (log) {
        const f = 10 ** (0.04 * (Math.log10(hi / lo) || 1));
        return [lo / f, hi * f];
      }
      const d = 0.04 * (hi - lo || 1);
      return [lo - d, hi + d];
    };
    [xmin, xmax] = pad(xmin, xmax, data.xLog);
    [ymin, ymax] = pad(ymin, ymax, yLog);
  }
  const tx = data.xLog ? Math.log10 : (v) => v;
  const ty = yLog ? Math.log10 : (v) => v;
  const sx = (v) => m.left + ((tx(v) - tx(xmin)) / (tx(xmax) - tx(xmin) || 1)) * w;
  const sy = (v) => m.top + h - ((ty(v) - ty(ymin)) / (ty(ymax) - ty(ymin) || 1)) * h;
  const parts = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11">`);
  parts.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  parts.push(`<text x="${m.left}" y="18" font-size="${titleSize(title, width - m.left - 4, 14)}" font-weight="600">${escapeXML(title)}</text>`);
  // Ticks at given values with their own labels (a sweep axis of a few values, biases
  // off/on), else nice ones.
  const xLabels = new Map((data.xTicks || []).map((t) => [t.value, t.label]));
  const xt = data.xTicks ? data.xTicks.map((t) => t.value) : data.xLog ? logTicks(xmin, xmax) : niceTicks(xmin, xmax, 6);
  const yt = yLog ? logTicks(ymin, ymax) : niceTicks(ymin, ymax, 5);
  let labelEnd = -Infinity;
  for (const t of xt) {
    const x = sx(t).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${m.top}" y2="${m.top + h}" stroke="#e3e6ea"/>`);
    // Labels at the right edge end there instead of running past the image; a label that
    // would overlap the one before it is left out (its grid line stays).
    const text = xLabels.get(t) ?? formatTick(t);
    const half = 3.3 * text.length;
    const anchor = sx(t) > width - 36 ? 'end' : 'middle';
    const start = anchor === 'end' ? sx(t) - 2 * half : sx(t) - half;
    if (start < labelEnd + 6) continue;
    labelEnd = start + 2 * half;
    parts.push(`<text x="${x}" y="${m.top + h + 14}" text-anchor="${anchor}">${escapeXML(text)}</text>`);
  }
  for (const t of yt) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${m.left}" x2="${m.left + w}" y1="${y}" y2="${y}" stroke="#e3e6ea"/>`);
    parts.push(`<text x="${m.left - 6}" y="${y}" dy="4" text-anchor="end">${formatTick(t)}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${w}" height="${h}" fill="none" stroke="#9aa4b1"/>`);
  parts.push(`<text x="${m.left + w / 2}" y="${m.top + h + 32}" text-anchor="middle">${escapeXML(data.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${m.top + h / 2}) rotate(-90)" text-anchor="middle">${escapeXML(yLabel)}</text>`);
  const placedTags = [];
  data.series.forEach((s) => {
    const idx = data.xs.map((x, i) => i).filter((i) => xsOk.includes(data.xs[i]));
    const band = idx.filter((i) => finite(s.lo[i]) && finite(s.hi[i]));
    if (band.length > 1) {
      const upper = band.map((i) => `${sx(data.xs[i]).toFixed(1)},${sy(s.hi[i]).toFixed(1)}`);
      const lower = band.reverse().map((i) => `${sx(data.xs[i]).toFixed(1)},${sy(s.lo[i]).toFixed(1)}`);
      parts.push(`<polygon points="${upper.concat(lower).join(' ')}" fill="${s.color}" fill-opacity="0.15"/>`);
    }
    const line = idx.filter((i) => finite(s.mean[i])).map((i) => `${sx(data.xs[i]).toFixed(1)},${sy(s.mean[i]).toFixed(1)}`);
    const dash = s.dash ? ' stroke-dasharray="6 4"' : '';
    if (line.length && lines) parts.push(`<polyline points="${line.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    if (markers) {
      for (const p of line) {
        const [x, y] = p.split(',');
        parts.push(`<circle cx="${x}" cy="${y}" r="3" fill="${s.color}"/>`);
      }
    }
    if (tags && s.tags) {
      // Each point's own label (a series' `tags`) beside it. Points drawn on top of each
      // other share one label ("0.01, 0.001"); a label that would cover one already placed
      // is left out (the data table has every value).
      const groups = [];
      for (const i of idx.filter((j) => finite(s.mean[j]) && s.tags[j] != null)) {
        const [x, y] = [sx(data.xs[i]), sy(s.mean[i])];
        const g = groups.find((o) => Math.abs(o.x - x) < 6 && Math.abs(o.y - y) < 6);
        if (g) g.text.push(s.tags[i]);
        else groups.push({ x, y, text: [s.tags[i]] });
      }
      for (const g of groups) {
        const text = g.text.join(', ');
        const tw = 5.6 * text.length;
        // Above right of the point, else below right, above left, below left; inside the plot.
        const spots = [[1, -1], [1, 1], [-1, -1], [-1, 1]].map(([sxn, syn]) => {
          const x0 = sxn > 0 ? g.x + 5 : g.x - 5 - tw;
          const base = syn < 0 ? g.y - 5 : g.y + 13;
          return { x0, x1: x0 + tw, y0: base - 10, y1: base + 2, base };
        }).filter((b) => b.x0 >= m.left && b.x1 <= m.left + w && b.y0 >= m.top && b.y1 <= m.top + h);
        const box = spots.find((b) => !placedTags.some((o) => o.x0 < b.x1 && b.x0 < o.x1 && o.y0 < b.y1 && b.y0 < o.y1));
        if (!box) continue;
        placedTags.push(box);
        parts.push(`<text x="${box.x0.toFixed(1)}" y="${box.base.toFixed(1)}" font-size="10" fill="${s.color}" data-point-tag="">${escapeXML(text)}</text>`);
      }
    }
  });
  data.series.forEach((s, i) => {
    const x = m.left + (i % cols) * colW;
    const y = height - m.bottom + 48 + Math.floor(i / cols) * 16;
    parts.push(`<rect x="${x}" y="${y - 5}" width="14" height="3" fill="${s.color}"/>`);
    parts.push(`<text x="${x + 18}" y="${y}">${escapeXML(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
