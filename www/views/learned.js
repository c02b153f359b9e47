// What was learned: true and matched learned atoms, the Gram matrix, true and inferred codes
// of the run in view.
import { drawHeatmap, drawMessage } from '../heatmap.js';
import { attachCanvasReadout } from '../readout.js';
import { engine } from '../page/player.js';
import { $, state } from '../page/state.js';

export function fillViewSelectors() {
  const method = $('view-method');
  const run = $('view-run');
  method.replaceChildren(
    ...state.names.map((name, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = name;
      return o;
    }),
  );
  run.replaceChildren(
    ...Array.from({ length: state.runs }, (_, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = `${i + 1} (seed ${state.config.seed + i})`;
      return o;
    }),
  );
  state.view = {
    method: Math.min(state.view.method, state.names.length - 1),
    run: Math.min(state.view.run, state.runs - 1),
  };
  method.value = String(state.view.method);
  run.value = String(state.view.run);
  renderViews();
}

export function changeView() {
  state.view = { method: Number($('view-method').value), run: Number($('view-run').value) };
  state.snapshot = null;
  renderViews();
  if (state.ready) engine.view(state.view.method, state.view.run);
}

export function renderViews() {
  for (const id of ['heat-true', 'heat-learned', 'heat-gram', 'heat-codes-true', 'heat-codes']) attachCanvasReadout($(id));
  const cfg = state.config;
  if (!cfg || !state.trueDictionary) return;
  const N = cfg.data.num_atoms;
  const M = cfg.data.data_dim;
  const D = state.trueDictionary;
  drawHeatmap($('heat-true'), M, N, (r, c) => D[c * M + r], {
    title: 'True dictionary', xLabel: 'atom', yLabel: 'coordinate',
  });
  const snap = state.snapshot;
  // The true codes are known from the start: show them before any evaluation.
  const trueCodes = snap ? snap.trueCodes : state.trueCodes;
  const samples = snap ? snap.samples : state.trueCodes ? state.trueCodes.length / N : 0;
  if (trueCodes && samples > 0) {
    drawHeatmap($('heat-codes-true'), N, samples, (r, c) => trueCodes[c * N + r], {
      title: 'True codes', xLabel: 'test sample', yLabel: 'latent',
    });
  } else {
    drawMessage($('heat-codes-true'), 'Appears when the engine is ready.');
  }
  if (!snap) {
    const why = state.source === 'loaded'
      ? 'Results files hold curves, not dictionaries: run to see them.'
      : 'Appears after the first evaluation.';
    for (const id of ['heat-learned', 'heat-gram', 'heat-codes']) drawMessage($(id), why);
    $('view-status').textContent = '';
    return;
  }
  $('view-status').textContent = `at step ${snap.step.toLocaleString()}`;
  if (snap.dictionary) {
    const L = snap.latents;
    const learned = snap.dictionary;
    drawHeatmap($('heat-learned'), M, N, (r, c) => {
      const j = snap.dictMatch[c];
      return j < 0 ? NaN : snap.dictSign[c] * learned[j * M + r];
    }, {
      title: 'Learned atoms, matched', xLabel: 'true atom', yLabel: 'coordinate',
      strip: Array.from(snap.dictCorr), stripLabel: '|corr|',
    });
    drawHeatmap($('heat-gram'), L, L, (r, c) => snap.gram[c * L + r], {
      title: 'Learned Gram matrix', xLabel: 'learned atom', yLabel: 'learned atom', vmax: 1,
    });
  } else {
    drawMessage($('heat-learned'), 'This method has no dictionary in this setting.');
    drawMessage($('heat-gram'), 'No dictionary.');
  }
  const S = snap.samples;
  const L = snap.latents;
  drawHeatmap($('heat-codes'), N, S, (r, c) => {
    const j = snap.codeMatch[r];
    return j < 0 ? NaN : snap.codes[c * L + j];
  }, {
    title: 'Inferred codes, matched', xLabel: 'test sample', yLabel: 'true latent',
  });
}
