// Heat maps of a sweep as self-contained SVG (the text is what the page shows and what the SVG
// export downloads; the PNG export rasterises the same text): one cell per grid point, a
// colour bar, ticks at the grid's values, and overlays (theory curves, contours) placed in the
// grid's own coordinates. Presentation attributes only, never style attributes: the page's
// Content-Security-Policy forbids inline styles.
import { escapeXML, formatNumber, formatTick, formatValue, titleSize } from './charts.js';
import { diverging, sequential } from './heatmap.js';

/**
 * Where value `v` falls on an axis whose cells are centred on `values` (sorted or not, cell i
 * centred at i + 0.5): piecewise linear between neighbouring centres, in log space when the
 * values grow geometrically (N = 16, 32, 64...), extrapolated past the ends.
 */
export function axisPosition(values, v) {
  const n = values.length;
  if (n === 1) return 0.5 + (v - values[0]);
  const order = values.map((x, i) => [x, i]).sort((a, b) => a[0] - b[0]);
  const logScale = order[0][0] > 0 && order[n - 1][0] / order[0][0] >= 8 && isGeometric(order.map((o) => o[0]));
  const t = (x) => (logScale ? Math.log(x) : x);
  const tv = t(v);
  let k = 0;
  while (k < n - 2 && tv > t(order[k + 1][0])) k += 1;
  const [a, ia] = order[k];
  const [b, ib] = order[k + 1];
  const f = (tv - t(a)) / (t(b) - t(a) || 1);
  return ia + 0.5 + f * (ib - ia);
}

function isGeometric(sorted) {
  const ratios = [];
  for (let i = 1; i < sorted.length; i += 1) ratios.push(sorted[i] / sorted[i - 1]);
  return ratios.every((r) => r > 1.2);
}

/** RGB text of value `v` on `scale` between vmin and vmax. */
function colour(v, { scale, vmin, vmax }) {
  if (scale === 'diverging') {
    const m = Math.max(Math.abs(vmin), Math.abs(vmax)) || 1;
    const [r, g, b] = diverging(v / m);
    return `rgb(${r},${g},${b})`;
  }
  const [r, g, b] = sequential((v - vmin) / (vmax - vmin || 1));
  return `rgb(${r},${g},${b})`;
}

/** Black or white text on the cell colour of `v`. */
function inkOn(v, spec) {
  const t = spec.scale === 'diverging'
    ? Math.abs(v) / (Math.max(Math.abs(spec.vmin), Math.abs(spec.vmax)) || 1)
    : (v - spec.vmin) / (spec.vmax - spec.vmin || 1);
  return t > 0.6 ? '#fff' : '#1b1f24';
}

/**
 * A heat map as SVG text.
 * spec: {title, xLabel, yLabel, xs, ys (the axis values; y grows upwards), cell(ix, iy) ->
 * {value, note} | {invalid: reason} | null (not computed yet), cellIndex(ix, iy) (optional: the
 * cell's number, kept on its rect as data-cell), scale ('sequential' |
 * 'diverging'), vmin, vmax, colorLabel, labels (print values in the cells), overlays:
 * [{points: [[x, y]] in data units or `index: true` for grid units, color, dash, width,
 * label}], width, height}.
 */
export function heatmapSvg(spec) {
  const width = spec.width || 360;
  const height = spec.height || 320;
  // One legend row per labelled overlay, and one for the key of cells without a value.
  const legendRows = (spec.overlays || []).filter((o) => o.label).length + 1;
  const m = { left: 58, right: 64, top: 30, bottom: 44 + 15 * legendRows };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const nx = spec.xs.length;
  const ny = spec.ys.length;
  const cw = w / nx;
  const ch = h / ny;
  const px = (gx) => m.left + gx * cw;
  const py = (gy) => m.top + h - gy * ch;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11" role="img" aria-label="${escapeXML(spec.title)}">`);
  out.push(`<title>${escapeXML(spec.title)}</title>`);
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="${m.left}" y="18" font-size="${titleSize(spec.title, width - m.left - 4, 13)}" font-weight="600">${escapeXML(spec.title)}</text>`);
  const uid = Math.random().toString(36).slice(2, 9);
  const clip = `clip${uid}`;
  // Cells without a value are hatched, so that none of them reads as the low end of the
  // colour scale (a cell where every signal failed is white, not "not yet computed").
  const hatch = `hatch${uid}`;
  const fills = {
    pending: `url(#${hatch})`,
    invalid: '#9aa4b1',
    failed: '#f6d5d5',
  };
  out.push(
    `<defs><clipPath id="${clip}"><rect x="${m.left}" y="${m.top}" width="${w}" height="${h}"/></clipPath>`
      + `<pattern id="${hatch}" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)">`
      + `<rect width="6" height="6" fill="#fff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#c3c9d1" stroke-width="2.5"/></pattern></defs>`,
  );
  const fontCell = Math.min(11, Math.max(7, Math.min(cw / 3.2, ch / 1.6)));
  const seen = new Set();
  for (let iy = 0; iy < ny; iy += 1) {
    for (let ix = 0; ix < nx; ix += 1) {
      const c = spec.cell(ix, iy);
      const x = px(ix).toFixed(2);
      const y = py(iy + 1).toFixed(2);
      const where = `${spec.xLabel} ${formatValue(spec.xs[ix])}, ${spec.yLabel} ${formatValue(spec.ys[iy])}`;
      const box = `x="${x}" y="${y}" width="${cw.toFixed(2)}" height="${ch.toFixed(2)}"`;
      // The cell's text, as its tooltip and for ../readout.js (hover, tap and keyboard).
      const cellRect = (attrs, text) => {
        const index = spec.cellIndex ? spec.cellIndex(ix, iy) : -1;
        const at = `data-ix="${ix}" data-iy="${iy}"${index >= 0 ? ` data-cell="${index}"` : ''} data-readout="${escapeXML(text)}"`;
        return `<rect ${attrs} ${at}><title>${escapeXML(text)}</title></rect>`;
      };
      if (!c) {
        seen.add('pending');
        out.push(cellRect(`${box} fill="${fills.pending}" data-state="pending"`, `${where}: not computed yet`));
      } else if (c.invalid) {
        seen.add('invalid');
        out.push(cellRect(`${box} fill="${fills.invalid}" data-state="invalid"`, `${where}: not a valid experiment (${c.invalid})`));
      } else if (!Number.isFinite(c.value)) {
        seen.add('failed');
        out.push(cellRect(`${box} fill="${fills.failed}" data-state="failed"`, `${where}: ${c.note || 'no result'}`));
      } else {
        out.push(cellRect(
          `x="${x}" y="${y}" width="${(cw + 0.3).toFixed(2)}" height="${(ch + 0.3).toFixed(2)}" fill="${colour(c.value, spec)}" data-state="done" data-value="${c.value}"`,
          `${where}: ${formatNumber(c.value)}${c.note ? ` (${c.note})` : ''}`,
        ));
        if (c.mark) {
          // A flagged cell (a solver stopped at its cap): a dark corner, keyed below the map.
          seen.add(c.mark);
          const k = Math.min(cw, ch) * 0.45;
          out.push(`<path d="M${x} ${y}h${k.toFixed(2)}L${x} ${(Number(y) + k).toFixed(2)}z" fill="#222" pointer-events="none" data-mark="${escapeXML(c.mark)}"/>`);
        }
        if (spec.labels && cw > 22 && ch > 12) {
          out.push(`<text x="${(px(ix) + cw / 2).toFixed(1)}" y="${(py(iy) - ch / 2 + fontCell / 3).toFixed(1)}" text-anchor="middle" font-size="${fontCell.toFixed(1)}" fill="${inkOn(c.value, spec)}" pointer-events="none" data-cell-label="">${formatNumber(c.value)}</text>`);
        }
      }
    }
  }
  // Ticks at the grid's values (thinned to about 10 per axis).
  const every = (n) => Math.max(1, Math.ceil(n / 10));
  for (let ix = 0; ix < nx; ix += every(nx)) {
    out.push(`<text x="${(px(ix) + cw / 2).toFixed(1)}" y="${m.top + h + 13}" text-anchor="middle">${formatValue(spec.xs[ix])}</text>`);
  }
  for (let iy = 0; iy < ny; iy += every(ny)) {
    out.push(`<text x="${m.left - 4}" y="${(py(iy) - ch / 2 + 4).toFixed(1)}" text-anchor="end">${formatValue(spec.ys[iy])}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${w}" height="${h}" fill="none" stroke="#9aa4b1"/>`);
  out.push(`<text x="${m.left + w / 2}" y="${m.top + h + 28}" text-anchor="middle">${escapeXML(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(14 ${m.top + h / 2}) rotate(-90)" text-anchor="middle">${escapeXML(spec.yLabel)}</text>`);
  // Overlays, clipped to the plot.
  let legendY = m.top + h + 44;
  for (const o of spec.overlays || []) {
    const pts = o.points
      .map(([x, y]) => (o.index ? [x, y] : [axisPosition(spec.xs, x), axisPosition(spec.ys, y)]))
      .filter(([gx, gy]) => Number.isFinite(gx) && Number.isFinite(gy))
      .map(([gx, gy]) => `${px(gx).toFixed(1)},${py(gy).toFixed(1)}`);
    const dash = o.dash ? ` stroke-dasharray="${o.dash}"` : '';
    if (pts.length > 1) {
      out.push(`<polyline clip-path="url(#${clip})" points="${pts.join(' ')}" fill="none" stroke="${o.color}" stroke-width="${o.width || 2}"${dash} data-overlay="${escapeXML(o.id || o.label || '')}"/>`);
    }
    if (o.label) {
      out.push(`<line x1="${m.left}" x2="${m.left + 22}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="${o.color}" stroke-width="${o.width || 2}"${dash}/>`);
      out.push(`<text x="${m.left + 28}" y="${legendY}">${escapeXML(o.label)}</text>`);
      legendY += 15;
    }
  }
  // What the cells without a colour mean, for the states this map has.
  const stateText = {
    pending: 'not computed yet',
    invalid: 'not a valid experiment',
    failed: 'failed (no finite result)',
    unconverged: 'solver not converged',
  };
  fills.unconverged = '#222';
  let keyX = m.left;
  for (const state of ['pending', 'invalid', 'failed', 'unconverged'].filter((s) => seen.has(s))) {
    out.push(`<rect x="${keyX}" y="${legendY - 10}" width="12" height="12" fill="${fills[state]}" stroke="#9aa4b1" data-key="${state}"/>`);
    out.push(`<text x="${keyX + 16}" y="${legendY}">${stateText[state]}</text>`);
    keyX += 16 + 6 * stateText[state].length + 12;
  }
  // Colour bar.
  const bx = m.left + w + 14;
  const steps = 40;
  for (let i = 0; i < steps; i += 1) {
    const v = spec.vmin + ((i + 0.5) / steps) * (spec.vmax - spec.vmin);
    const y = m.top + h - ((i + 1) / steps) * h;
    out.push(`<rect x="${bx}" y="${y.toFixed(2)}" width="12" height="${(h / steps + 0.3).toFixed(2)}" fill="${colour(v, spec)}"/>`);
  }
  out.push(`<rect x="${bx}" y="${m.top}" width="12" height="${h}" fill="none" stroke="#9aa4b1"/>`);
  out.push(`<text x="${bx + 15}" y="${m.top + 8}">${formatTick(spec.vmax)}</text>`);
  out.push(`<text x="${bx + 15}" y="${m.top + h}">${formatTick(spec.vmin)}</text>`);
  if (spec.colorLabel) {
    out.push(`<text transform="translate(${bx + 30} ${m.top + h / 2}) rotate(90)" text-anchor="middle">${escapeXML(spec.colorLabel)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n');
}

/**
 * Where a grid crosses `level` going up the y axis, column by column: the points (in grid
 * units) of the empirical transition, e.g. the 50% success contour of a phase diagram. A
 * column contributes only when it is complete, starts at or above the level and falls below
 * it; the crossing is interpolated between the two cell centres.
 */
export function levelCrossings(nx, ny, value, level) {
  const points = [];
  for (let ix = 0; ix < nx; ix += 1) {
    const col = [];
    for (let iy = 0; iy < ny; iy += 1) col.push(value(ix, iy));
    if (col.some((v) => v == null || !Number.isFinite(v))) continue;
    if (col[0] < level) {
      points.push([ix + 0.5, 0]);
      continue;
    }
    const k = col.findIndex((v) => v < level);
    if (k < 0) {
      points.push([ix + 0.5, ny]);
      continue;
    }
    const f = (col[k - 1] - level) / (col[k - 1] - col[k] || 1);
    points.push([ix + 0.5, k - 0.5 + f]);
  }
  return points;
}

/** Rasterise SVG text to a PNG blob at `scale` times its size. */
export async function svgToPng(svgText, scale = 2) {
  const blobUrl = URL.createObjectURL(new Blob([svgText], { type: 'image/svg+xml' }));
  try {
    const img = new Image();
    img.src = blobUrl;
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = Math.round(img.width * scale);
    canvas.height = Math.round(img.height * scale);
    const ctx = canvas.getContext('2d');
    ctx.scale(scale, scale);
    ctx.drawImage(img, 0, 0);
    return await new Promise((resolve, reject) => {
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('the PNG could not be made'))), 'image/png');
    });
  } finally {
    URL.revokeObjectURL(blobUrl);
  }
}
