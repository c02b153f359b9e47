// Files: results JSON and curve CSV export, loading a results file, keeping the last finished
// run in the browser.
import { downloadURL } from '../charts.js';
import { normalizeResults } from '../engine.js';
import { applyConfig, clearRuns, engine, scheduleRender, setStatus, updateControls } from './player.js';
import { $, F, FIELDS, STORAGE_KEY, banner, errorText, state } from './state.js';

export function downloadText(text, name, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  downloadURL(url, name);
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function exportJson() {
  if (state.source === 'loaded' && state.loadedJson) {
    downloadText(state.loadedJson, 'sparse-playground-results.json', 'application/json');
  } else if (engine.size > 0) {
    engine.requestResults('export');
  }
}

/**
 * A text cell for CSV: quoted, and neutralised when a spreadsheet would read it as a formula
 * (a leading =, +, -, @, tab or carriage return; names come from results files anyone can
 * write), by a leading apostrophe as OWASP recommends.
 */
export function csvText(text) {
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return `"${safe.replace(/"/g, '""')}"`;
}

export function exportCsv() {
  const cfg = state.config;
  const lines = [['method', 'seed', ...FIELDS.slice(2)].join(',')];
  state.names.forEach((name, m) => {
    (state.rows[m] || []).forEach((run, r) => {
      for (const row of run) {
        const values = FIELDS.slice(2).map((f) => (Number.isFinite(row[F[f]]) ? String(row[F[f]]) : ''));
        lines.push([csvText(name), cfg.seed + r, ...values].join(','));
      }
    });
  });
  downloadText(`${lines.join('\n')}\n`, 'sparse-playground-curves.csv', 'text/csv');
}

/** Show a results file (CLI or page). Throws with the reason when it is not one. */
/**
 * Show a results file: `from` says where it came from ('file' for Load results, 'storage' for
 * the last finished run kept by this browser), which the status line repeats.
 */
export function showResults(json, from = 'file') {
  const normalized = normalizeResults(json);
  const results = JSON.parse(normalized);
  state.source = 'loaded';
  state.loadedFrom = from;
  state.loadedJson = normalized;
  const config = results.config;
  const names = results.methods.map((m) => m.name);
  clearRuns(names, config.runs, config.methods.map((m) => m.kind));
  results.methods.forEach((method, m) => {
    method.runs.forEach((run) => {
      const r = run.seed - config.seed;
      if (r < 0 || r >= config.runs) return;
      for (const rec of run.log) {
        const row = new Float64Array(FIELDS.length);
        for (const f of FIELDS) row[F[f]] = rec[f] == null ? NaN : rec[f];
        row[F.method] = m;
        row[F.run] = r;
        state.rows[m][r].push(row);
      }
    });
  });
  applyConfig(config, { keepResults: true });
  setStatus();
  updateControls();
  scheduleRender();
}

export function save(json) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ saved: new Date().toISOString(), json }));
  } catch (e) {
    banner('info', `This run could not be kept for the next visit: ${errorText(e)}`, 'storage');
  }
}

export function loadSaved() {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const { saved, json } = JSON.parse(raw);
    const results = JSON.parse(normalizeResults(json));
    return { saved, json, config: results.config };
  } catch {
    localStorage.removeItem(STORAGE_KEY);
    return null;
  }
}
