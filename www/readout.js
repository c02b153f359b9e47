// Readouts for heat maps: the cell under the pointer (mouse hover, or a tap with a finger or a
// pen) or under a keyboard cursor (the arrow keys, Home and End once the map has focus) is
// written out in words on a live line under the map, so that no value is only a colour.
//
// Canvas maps (../heatmap.js) leave their grid on the canvas as `heatGrid`: {left, top, cell,
// rows, cols, text(r, c)} in canvas pixels. SVG maps (../svgplot.js) mark every cell with
// data-ix, data-iy and data-readout; `extra(rect)` may add to a cell's text (a sweep cell's M, K
// and N).

/** The readout line of `target`'s figure (made once, after the figure's content). */
function lineFor(target) {
  const host = target.closest('figure') || target.parentElement;
  let line = host.querySelector(':scope > .readout');
  if (!line) {
    line = document.createElement('p');
    line.className = 'readout small';
    line.setAttribute('aria-live', 'polite');
    line.textContent = 'Point at a cell, tap it, or focus the map and use the arrow keys, to read its value.';
    const caption = host.querySelector(':scope > figcaption');
    if (caption) caption.before(line);
    else host.append(line);
  }
  return line;
}

/** The new [row, column] for a key, or null for keys a map does not take. */
function moved(key, r, c, rows, cols) {
  switch (key) {
    case 'ArrowUp': return [Math.max(0, r - 1), c];
    case 'ArrowDown': return [Math.min(rows - 1, r + 1), c];
    case 'ArrowLeft': return [r, Math.max(0, c - 1)];
    case 'ArrowRight': return [r, Math.min(cols - 1, c + 1)];
    case 'Home': return [r, 0];
    case 'End': return [r, cols - 1];
    default: return null;
  }
}

/** Readouts for a canvas heat map (attached once; the grid is read at each event). */
export function attachCanvasReadout(canvas) {
  if (canvas.dataset.readout) return;
  canvas.dataset.readout = 'on';
  canvas.tabIndex = 0;
  const line = lineFor(canvas);
  let cursor = [0, 0];
  const show = (r, c) => {
    const g = canvas.heatGrid;
    if (!g) return;
    cursor = [Math.min(Math.max(0, r), g.rows - 1), Math.min(Math.max(0, c), g.cols - 1)];
    line.textContent = g.text(cursor[0], cursor[1]);
    canvas.dataset.cursor = cursor.join(',');
  };
  const at = (e) => {
    const g = canvas.heatGrid;
    if (!g) return;
    const box = canvas.getBoundingClientRect();
    const x = ((e.clientX - box.left) * canvas.width) / box.width;
    const y = ((e.clientY - box.top) * canvas.height) / box.height;
    const c = Math.floor((x - g.left) / g.cell);
    const r = Math.floor((y - g.top) / g.cell);
    if (r >= 0 && r < g.rows && c >= 0 && c < g.cols) show(r, c);
  };
  canvas.addEventListener('pointermove', at);
  canvas.addEventListener('pointerdown', at);
  canvas.addEventListener('focus', () => show(...cursor));
  canvas.addEventListener('keydown', (e) => {
    const g = canvas.heatGrid;
    const next = g && moved(e.key, cursor[0], cursor[1], g.rows, g.cols);
    if (!next) return;
    e.preventDefault();
    show(...next);
  });
}

/**
 * Readouts for the SVG heat map inside `holder` (drawn anew on every render: call again after
 * each). `state` keeps the cursor across renders; `extra(rect)` adds to a cell's text.
 */
export function attachSvgReadout(holder, state, extra = () => '') {
  const cells = [...holder.querySelectorAll('rect[data-readout]')];
  if (!cells.length) return;
  const nx = 1 + Math.max(...cells.map((c) => Number(c.dataset.ix)));
  const ny = 1 + Math.max(...cells.map((c) => Number(c.dataset.iy)));
  const byPos = new Map(cells.map((c) => [`${c.dataset.ix},${c.dataset.iy}`, c]));
  const svg = holder.querySelector('svg');
  holder.tabIndex = 0;
  holder.setAttribute('role', 'group');
  holder.setAttribute('aria-label', `${svg?.getAttribute('aria-label') ?? 'Heat map'}: point at a cell or use the arrow keys to read it`);
  const line = lineFor(holder);
  const show = (rect) => {
    for (const old of holder.querySelectorAll('rect[data-cursor]')) {
      old.removeAttribute('data-cursor');
      old.removeAttribute('stroke');
      old.removeAttribute('stroke-width');
    }
    rect.setAttribute('data-cursor', '');
    rect.setAttribute('stroke', '#111');
    rect.setAttribute('stroke-width', '2');
    state.ix = Number(rect.dataset.ix);
    state.iy = Number(rect.dataset.iy);
    const more = extra(rect);
    line.textContent = `${rect.dataset.readout}${more ? ` · ${more}` : ''}`;
    holder.dataset.cursor = `${state.ix},${state.iy}`;
  };
  const fromEvent = (e) => {
    const rect = e.target.closest && e.target.closest('rect[data-readout]');
    if (rect) show(rect);
  };
  holder.addEventListener('pointermove', fromEvent);
  holder.addEventListener('pointerdown', fromEvent);
  holder.addEventListener('focus', () => show(byPos.get(`${state.ix ?? 0},${state.iy ?? ny - 1}`) || cells[0]));
  holder.addEventListener('keydown', (e) => {
    // Rows run top to bottom on screen, and iy counts up from the bottom.
    const [r, c] = [ny - 1 - (state.iy ?? ny - 1), state.ix ?? 0];
    const next = moved(e.key, r, c, ny, nx);
    if (!next) return;
    e.preventDefault();
    const rect = byPos.get(`${next[1]},${ny - 1 - next[0]}`);
    if (rect) show(rect);
  });
  if (state.ix !== undefined && holder.contains(document.activeElement)) {
    const rect = byPos.get(`${state.ix},${state.iy}`);
    if (rect) show(rect);
  }
}
