// The page's entry point: wires the form, the run controls, exports, links and the views to
// their modules (./page/, ./views/), then opens what the address asks for. The engine runs in
// Web Workers (./worker.js through ./page/player.js); the page loads the same wasm module for
// link, config and results-file checks (all implemented in Rust).
import { encodeLink, engineVersion, isSweepLink, presetConfig } from './engine.js';
import { downloadText, exportCsv, exportJson, showResults } from './page/files.js';
import { methodDefaults, readForm, showConfigError, writeForm } from './page/form.js';
import { applyHidden, copyLink, hiddenExtra, initialConfig, linkFor, updateLink } from './page/link.js';
import {
  applyConfig,
  cancel,
  clearRuns,
  confirmLongRun,
  declineLongRun,
  engine,
  pause,
  play,
  scheduleRender,
  startExperiment,
  updateControls,
} from './page/player.js';
import { DEFAULT_PRESET, $, banner, errorText, state } from './page/state.js';
import { changeView } from './views/learned.js';
import { comparisonJson, loadHistory, onPinsChange, tryLoadComparison } from './views/compare.js';
import { LineChart } from './charts.js';
import {
  DEFAULT_SWEEP,
  initSweepPanel,
  isCurrentSweep,
  loadSweepResults,
  openSweepLink,
  openSweepPreset,
  pause as pauseSweep,
  sweep,
  sweepLink,
} from './sweep/panel.js';
import { initRealPanel, isRealLink, leaveReal, openRealLink, realLink } from './real/panel.js';

/**
 * Show one experiment, sweeps or real activations: the others' controls hide and their
 * computation pauses (a real-activation run is cancelled).
 */
function showMode(mode) {
  for (const m of ['experiment', 'sweep', 'real']) {
    $(`${m}-aside`).hidden = m !== mode;
    $(`${m}-view`).hidden = m !== mode;
    $(`mode-${m}`).setAttribute('aria-pressed', String(m === mode));
  }
  if (mode !== 'sweep') pauseSweep();
  if (mode !== 'real') leaveReal();
  if (mode !== 'experiment' && state.playing) pause();
  document.body.dataset.mode = mode;
}

$('mode-sweep').addEventListener('click', () => {
  if (document.body.dataset.mode === 'sweep') return;
  showMode('sweep');
  if (sweep.checked) history.replaceState(null, '', `#${sweepLink()}`);
  else openSweepPreset(DEFAULT_SWEEP);
});
$('mode-experiment').addEventListener('click', () => {
  if (document.body.dataset.mode === 'experiment') return;
  showMode('experiment');
  if (state.config) updateLink();
  else applyConfig(presetConfig(DEFAULT_PRESET));
});
$('mode-real').addEventListener('click', () => {
  if (document.body.dataset.mode === 'real') return;
  showMode('real');
  history.replaceState(null, '', `#${realLink()}`);
});
initSweepPanel();
initRealPanel();

// The intro: shown until dismissed, then only on demand (the header's "What is this?").
const INTRO_KEY = 'sparse-playground/v1/intro-dismissed';
function showIntro(show) {
  $('intro').hidden = !show;
  $('intro-show').hidden = show;
}
function introDismissed() {
  try {
    return localStorage.getItem(INTRO_KEY) === '1';
  } catch {
    return false; // storage blocked: show it
  }
}
showIntro(!introDismissed());
$('intro-dismiss').addEventListener('click', () => {
  try {
    localStorage.setItem(INTRO_KEY, '1');
  } catch {
    // storage blocked: hidden for this visit only
  }
  showIntro(false);
  $('play').focus();
});
$('intro-show').addEventListener('click', () => {
  if (document.body.dataset.mode !== 'experiment') $('mode-experiment').click();
  showIntro(true);
  $('intro').scrollIntoView({ block: 'nearest' });
});

function onFormChange(event) {
  if (event.target.id === 'add-method' || event.target.id === 'backend') return;
  applyConfig(readForm(), { fromForm: true });
}

$('config').addEventListener('change', onFormChange);
$('config').addEventListener('submit', (e) => e.preventDefault());
$('add-method').addEventListener('change', (e) => {
  const kind = e.target.value;
  e.target.value = '';
  if (!kind) return;
  const config = readForm();
  config.methods.push(methodDefaults(kind));
  applyConfig(config, { fromForm: true });
});
for (const button of document.querySelectorAll('[data-preset]')) {
  button.addEventListener('click', () => applyConfig(presetConfig(button.dataset.preset)));
}
// On a phone the form stands above the charts: Run shows them (the run bar stays on top).
const PHONE = window.matchMedia('(max-width: 900px)');
function showOnPhone(target) {
  if (!PHONE.matches) return;
  const smooth = !window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  target.scrollIntoView({ block: 'start', behavior: smooth ? 'smooth' : 'auto' });
}
$('play').addEventListener('click', () => {
  if (state.playing) {
    pause();
    return;
  }
  play();
  if (state.playing || state.autorun) showOnPhone(document.querySelector('.charts'));
});
$('long-run-yes').addEventListener('click', () => {
  confirmLongRun();
  if (state.playing || state.autorun) showOnPhone(document.querySelector('.charts'));
});
$('long-run-no').addEventListener('click', declineLongRun);
$('sweep-play').addEventListener('click', () => {
  if (sweep.playing) showOnPhone($('sweep-figures'));
});
// The skip link: straight to the Run button of the mode shown (its toolbar while Run waits).
$('skip-run').addEventListener('click', (e) => {
  e.preventDefault();
  const [button, bar] = {
    sweep: ['sweep-play', 'sweep-run-controls'],
    real: ['real-run', 'real-run-controls'],
  }[document.body.dataset.mode] || ['play', 'run-controls'];
  const run = $(button);
  (run.disabled ? $(bar) : run).focus();
});
$('step').addEventListener('click', () => {
  if (!state.ready) return;
  if (state.source === 'loaded') {
    state.source = 'live';
    clearRuns(state.names, state.runs);
  }
  state.playing = true; // until the step's evaluations are in; Pause stops it
  engine.step();
  updateControls();
});
function reset() {
  $('banners').querySelector('[data-id="engine"]')?.remove();
  $('banners').querySelector('[data-id="reset"]')?.remove();
  startExperiment();
  scheduleRender();
}

// Reset throws away the experiment's progress: with work done, it asks first (in the page,
// not a blocking dialog), and the run goes on meanwhile.
$('reset').addEventListener('click', () => {
  const hasWork = state.source === 'live' && state.done > 0;
  if (!hasWork) {
    reset();
    return;
  }
  const box = banner(
    'info',
    `Reset discards ${state.trained.toLocaleString()} training steps of this experiment (${
      state.finished ? 'finished' : 'in progress'
    }). `,
    'reset',
  );
  box.querySelector('button')?.remove();
  const yes = document.createElement('button');
  yes.type = 'button';
  yes.textContent = 'Reset anyway';
  yes.addEventListener('click', reset);
  const no = document.createElement('button');
  no.type = 'button';
  no.textContent = 'Keep it';
  no.addEventListener('click', () => box.remove());
  box.append(yes, ' ', no);
  no.focus();
});
$('cancel').addEventListener('click', cancel);
$('copy-link').addEventListener('click', copyLink);
$('link-autorun').addEventListener('change', () => {
  if (state.config) $('share-link').value = linkFor($('link-autorun').checked);
});
$('export-json').addEventListener('click', exportJson);
$('export-compare').addEventListener('click', () => {
  const current = state.source === 'loaded'
    ? state.loadedJson
    : state.history.find((e) => encodeLink(e.results.config, []) === encodeLink(state.config, []))?.json;
  downloadText(comparisonJson(current), 'sparse-playground-comparison.json', 'application/json');
});
$('png-size').addEventListener('change', (e) => {
  LineChart.pngSize = e.target.value;
});
loadHistory();
onPinsChange(() => scheduleRender());
$('export-csv').addEventListener('click', exportCsv);
$('x-axis').addEventListener('change', scheduleRender);
$('view-method').addEventListener('change', changeView);
$('view-run').addEventListener('change', changeView);
$('load-json').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  e.target.value = '';
  if (!file) return;
  try {
    const text = await file.text();
    if (tryLoadComparison(text, file.name)) return;
    if (isSweepResults(text)) {
      showMode('sweep');
      pause();
      const merged = loadSweepResults([text]);
      banner('info', `Loaded ${file.name}: ${merged.units.length} units of a sweep.`, 'load');
      return;
    }
    showResults(text);
    banner('info', `Loaded ${file.name}.`, 'load');
  } catch (err) {
    banner('error', `${file.name} is not a results file this page can read: ${errorText(err)}`, 'load');
  }
});
// The address's hash holds the experiment, so the metric definitions ("?" links) open in place
// instead of navigating to #def-...: following them would read as a malformed link and reset
// the page.
document.addEventListener('click', (e) => {
  const link = e.target.closest('a[href^="#def-"]');
  if (!link) return;
  e.preventDefault();
  showDefinition(link.getAttribute('href').slice(1));
});
function showDefinition(id) {
  const term = document.getElementById(id);
  if (!term) return;
  $('definitions').open = true;
  for (const el of document.querySelectorAll('.defs .current')) el.classList.remove('current');
  term.classList.add('current');
  term.tabIndex = -1;
  const smooth = !window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  term.scrollIntoView({ block: 'center', behavior: smooth ? 'smooth' : 'auto' });
  term.focus({ preventScroll: true });
}
window.addEventListener('hashchange', () => {
  const hash = window.location.hash.slice(1);
  if (document.body.dataset.mode === 'sweep' && isCurrentSweep(hash)) return;
  if (document.body.dataset.mode === 'real' && hash === realLink()) return;
  if (document.body.dataset.mode === 'experiment' && state.config && hash === encodeLink(state.config, hiddenExtra())) return;
  openFromLocation();
});

/** Whether a file's text is a sweep's results (the CLI's `sweep` or `merge` output). */
function isSweepResults(text) {
  try {
    const v = JSON.parse(text);
    return !!v && typeof v === 'object' && 'sweep' in v && Array.isArray(v.units);
  } catch {
    return false;
  }
}
document.addEventListener('keydown', (e) => {
  // Space toggles the run when focus is not in a control that uses it.
  if (e.code === 'Space' && e.target === document.body) {
    e.preventDefault();
    const mode = document.body.dataset.mode;
    $(mode === 'sweep' ? 'sweep-play' : mode === 'real' ? 'real-run' : 'play').click();
  }
});

$('engine-version').textContent = engineVersion();
$('backend-note').textContent = navigator.gpu ? 'WebGPU available' : 'no WebGPU in this browser: CPU';
$('backend').addEventListener('change', (e) => {
  state.backend = e.target.value;
  if (!state.config) return;
  updateLink();
  startExperiment();
  scheduleRender();
});

/**
 * Open what the address asks for: a sweep link, an experiment link, the last finished run, or
 * the paper's main preset.
 */
function openFromLocation() {
  const hash = window.location.hash.slice(1);
  if (hash && isRealLink(hash)) {
    showMode('real');
    openRealLink(hash).catch((e) => {
      banner('error', `This link could not be opened: ${errorText(e)}.`, 'link');
    });
    return;
  }
  if (hash && isSweepLink(hash)) {
    showMode('sweep');
    try {
      openSweepLink(hash);
    } catch (e) {
      banner('error', `This sweep link could not be opened: ${errorText(e)}. Showing the phase-diagram preset instead.`, 'link');
      openSweepPreset(DEFAULT_SWEEP);
    }
    return;
  }
  showMode('experiment');
  state.hidden = [];
  state.backend = 'auto';
  const initial = initialConfig();
  applyHidden();
  $('backend').value = state.backend;
  if (initial.saved) {
    try {
      showResults(initial.saved.json, 'storage');
      banner('info', `Restored your last finished run (saved ${new Date(initial.saved.saved).toLocaleString()}).`, 'restore');
      return;
    } catch {
      // Fall through to a fresh experiment.
    }
  }
  try {
    applyConfig(initial.config);
  } catch (e) {
    if (errorText(e).startsWith('memory:')) {
      // Too large for this page: show what the link asks for, say what to reduce, build
      // nothing. An edit that brings it within the budget starts it as usual.
      writeForm(initial.config);
      showConfigError(`Not run: ${errorText(e)}`);
      banner('error', 'This link asks for more memory than the page allows; nothing was built. Reduce the experiment in the form.', 'link');
      document.body.dataset.state = 'refused';
      updateControls();
      return;
    }
    banner('error', `This link describes an experiment that cannot run: ${errorText(e)}. Showing the default experiment instead.`, 'link');
    applyConfig(presetConfig(DEFAULT_PRESET));
  }
}

openFromLocation();

if ('serviceWorker' in navigator && window.location.protocol.startsWith('http')) {
  navigator.serviceWorker.register(new URL('./sw.js', window.location.href)).catch(() => {
    // Offline support is a convenience; the page works the same without it.
  });
}
