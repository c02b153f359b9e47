// Heat maps drawn as canvas pixels, with row and column axes and a colour bar. Signed values use
// a diverging blue-white-red scale symmetric about zero (readable with red-green deficiencies);
// magnitudes in [0, 1] use a sequential white-to-blue scale.

function lerp(a, b, t) {
  return Math.round(a + (b - a) * t);
}

const BLUE = [33, 102, 172];
const RED = [178, 24, 43];
const WHITE = [247, 247, 247];

/** RGB for v in [-1, 1] on the diverging scale. */
export function diverging(v) {
  const t = Math.max(-1, Math.min(1, v));
  const end = t < 0 ? BLUE : RED;
  const a = Math.abs(t);
  return [lerp(WHITE[0], end[0], a), lerp(WHITE[1], end[1], a), lerp(WHITE[2], end[2], a)];
}

/** RGB for v in [0, 1] on the sequential scale. */
export function sequential(v) {
  const t = Math.max(0, Math.min(1, v));
  return [lerp(WHITE[0], BLUE[0], t), lerp(WHITE[1], BLUE[1], t), lerp(WHITE[2], BLUE[2], t)];
}

function ticksFor(n) {
  if (n <= 1) return [0];
  const step = n <= 10 ? 1 : n <= 20 ? 2 : n <= 50 ? 5 : Math.ceil(n / 10);
  const out = [];
  for (let i = 0; i < n; i += step) out.push(i);
  return out;
}

/**
 * Draw `rows x cols` values, `value(r, c)`, into `canvas`.
 * opts: {title, xLabel, yLabel, scale: 'diverging' | 'sequential', vmax, strip: optional
 * per-column values in [0, 1] drawn as a sequential strip under the map, stripLabel}.
 */
export function drawHeatmap(canvas, rows, cols, value, opts) {
  const ctx = canvas.getContext('2d');
  const W = canvas.width;
  const H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W, H);
  const left = 34;
  const top = 20;
  const right = 64;
  const stripH = opts.strip ? 14 : 0;
  const bottom = 30 + (opts.strip ? stripH + 6 : 0);
  const cell = Math.max(1, Math.floor(Math.min((W - left - right) / cols, (H - top - bottom) / rows)));
  const w = cell * cols;
  const h = cell * rows;
  const scale = opts.scale === 'sequential' ? sequential : diverging;
  let vmax = opts.vmax;
  if (!(vmax > 0)) {
    vmax = 0;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) vmax = Math.max(vmax, Math.abs(value(r, c)) || 0);
    if (vmax === 0) vmax = 1;
  }
  const img = ctx.createImageData(w, h);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = value(r, c);
      const rgb = Number.isFinite(v) ? scale(v / vmax) : [200, 200, 200];
      for (let y = r * cell; y < (r + 1) * cell; y++) {
        for (let x = c * cell; x < (c + 1) * cell; x++) {
          const o = 4 * (y * w + x);
          img.data[o] = rgb[0];
          img.data[o + 1] = rgb[1];
          img.data[o + 2] = rgb[2];
          img.data[o + 3] = 255;
        }
      }
    }
  }
  ctx.putImageData(img, left, top);
  ctx.strokeStyle = '#9aa4b1';
  ctx.strokeRect(left - 0.5, top - 0.5, w + 1, h + 1);
  ctx.fillStyle = '#1b1f24';
  ctx.font = '600 12px system-ui, sans-serif';
  ctx.fillText(opts.title || '', left, 13);
  ctx.font = '10px system-ui, sans-serif';
  ctx.textAlign = 'right';
  for (const r of ticksFor(rows)) ctx.fillText(String(r), left - 4, top + r * cell + cell / 2 + 3);
  ctx.textAlign = 'center';
  for (const c of ticksFor(cols)) ctx.fillText(String(c), left + c * cell + cell / 2, top + h + 11);
  let below = top + h + 14;
  if (opts.strip) {
    below += 4;
    for (let c = 0; c < cols; c++) {
      const rgb = sequential(opts.strip[c]);
      ctx.fillStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
      ctx.fillRect(left + c * cell, below, cell, stripH);
    }
    ctx.strokeRect(left - 0.5, below - 0.5, w + 1, stripH + 1);
    ctx.fillStyle = '#1b1f24';
    ctx.textAlign = 'left';
    // The strip's own scale: its label, then a small bar from 0 (white) to 1 (blue).
    ctx.fillText(opts.stripLabel || '', left + w + 4, below + 10);
    const sx = left + w + 8 + ctx.measureText(opts.stripLabel || '').width;
    const sw = Math.max(0, Math.min(24, W - sx - 14));
    if (sw >= 8) {
      for (let i = 0; i < sw; i++) {
        const rgb = sequential(i / (sw - 1));
        ctx.fillStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
        ctx.fillRect(sx + i, below + 2, 1, stripH - 4);
      }
      ctx.strokeRect(sx - 0.5, below + 1.5, sw + 1, stripH - 3);
      ctx.fillStyle = '#1b1f24';
      ctx.font = '9px system-ui, sans-serif';
      ctx.fillText('0', sx, below + stripH + 8);
      ctx.textAlign = 'right';
      ctx.fillText('1', sx + sw, below + stripH + 8);
      ctx.font = '10px system-ui, sans-serif';
      ctx.textAlign = 'left';
    }
    below += stripH + 2;
  }
  ctx.textAlign = 'center';
  ctx.fillText(opts.xLabel || '', left + w / 2, below + 12);
  ctx.save();
  ctx.translate(10, top + h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(opts.yLabel || '', 0, 0);
  ctx.restore();
  // Colour bar.
  const bx = left + w + 14;
  const bh = Math.max(40, Math.min(h, 160));
  const lo = opts.scale === 'sequential' ? 0 : -1;
  for (let y = 0; y < bh; y++) {
    const t = 1 - y / (bh - 1);
    const rgb = scale(lo + (1 - lo) * t);
    ctx.fillStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
    ctx.fillRect(bx, top + y, 10, 1);
  }
  ctx.strokeRect(bx - 0.5, top - 0.5, 11, bh + 1);
  ctx.fillStyle = '#1b1f24';
  ctx.textAlign = 'left';
  const fmt = (v) => (Math.abs(v) >= 100 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : v.toPrecision(2));
  ctx.fillText(fmt(vmax), bx + 13, top + 8);
  ctx.fillText(fmt(lo * vmax), bx + 13, top + bh);
  canvas.dataset.drawn = `${rows}x${cols}`;
  // What ../readout.js reads out: the cell under the pointer or the keyboard cursor.
  const readable = (v) => (Number.isFinite(v) ? fmt(v) : 'no value');
  canvas.heatGrid = {
    left,
    top,
    cell,
    rows,
    cols,
    text: (r, c) => {
      const strip = opts.strip ? `; ${opts.stripLabel || 'strip'} ${readable(opts.strip[c])}` : '';
      return `${opts.title || 'Heat map'}: ${opts.yLabel || 'row'} ${r}, ${opts.xLabel || 'column'} ${c}: ${readable(value(r, c))}${strip}`;
    },
  };
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `${opts.title || 'Heat map'}, ${rows} × ${cols} (${opts.yLabel || 'rows'} × ${opts.xLabel || 'columns'}), colour scale ${fmt(lo * vmax)} to ${fmt(vmax)}: focus it and use the arrow keys to read values`);
}

/** Clear a canvas and write a short message in it. */
export function drawMessage(canvas, text) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = '#5b6470';
  ctx.font = '12px system-ui, sans-serif';
  ctx.textAlign = 'left';
  ctx.fillText(text, 8, 20);
  canvas.dataset.drawn = '';
  canvas.heatGrid = null;
  canvas.setAttribute('aria-label', text);
}
