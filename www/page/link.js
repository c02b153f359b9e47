// Share links: the URL hash holds the experiment (schema and parsing in Rust), lesson links
// hide controls (`<key>_hide=1`), the backend asked for travels as `backend=`.
import { decodeLink, encodeLink, presetConfig } from '../engine.js';
import { loadSaved } from './files.js';
import { DEFAULT_PRESET, $, banner, errorText, state } from './state.js';

// Lesson links, as in TensorFlow Playground: `<key>_hide=1` hides the control of that link key
// (its value still applies), so a teacher can share a cut-down page. Links made from such a
// page keep the keys.
export const HIDEABLE = {
  presets: '.presets',
  setting: '#setting',
  N: '#num_atoms',
  M: '#data_dim',
  K: '#sparsity_k',
  n: '#num_samples',
  noise: '#noise_std',
  skew: '#frequency_skew',
  signed: '#signed_codes',
  seed: '#seed',
  methods: '#methods',
  steps: '#steps',
  lr: '#lr',
  l1: '#l1_penalty',
  lrs: '#lr_per_method',
  l1s: '#l1_per_method',
  batch: '#batch_size',
  log: '#log_every',
  runs: '#runs',
  l0: '#l0_threshold',
  backend: '#backend',
};

/** The link keys a link's extra pairs ask to hide (`key_hide` with any value but 0 or false). */
export function hiddenKeys(extra) {
  return extra
    .filter(([k, v]) => k.endsWith('_hide') && v !== '0' && v !== 'false')
    .map(([k]) => k.slice(0, -'_hide'.length))
    .filter((k) => Object.hasOwn(HIDEABLE, k));
}

/** Show every control, then hide those of `state.hidden`, and any fieldset left empty. */
export function applyHidden() {
  for (const el of document.querySelectorAll('[data-lesson-hidden]')) {
    el.hidden = false;
    delete el.dataset.lessonHidden;
  }
  const hide = (el) => {
    el.hidden = true;
    el.dataset.lessonHidden = '1';
  };
  for (const key of state.hidden) {
    const el = document.querySelector(HIDEABLE[key]);
    if (!el) continue;
    // A control hides with its label; the method list and the setting with their fieldset.
    hide(['methods', 'setting'].includes(key) ? el.closest('fieldset') : el.closest('label') || el);
  }
  for (const set of document.querySelectorAll('#config fieldset')) {
    const labels = Array.from(set.querySelectorAll(':scope > label'));
    if (labels.length && labels.every((l) => l.hidden)) hide(set);
  }
}

/** The `_hide` pairs every link made from this page carries. */
export function hiddenExtra() {
  const extra = state.hidden.map((k) => [`${k}_hide`, '1']);
  // The backend asked for travels with the link (auto is the default and left out).
  if (state.backend !== 'auto') extra.push(['backend', state.backend]);
  return extra;
}

export const BACKENDS = ['auto', 'cpu', 'gpu'];

export function linkFor(autorun) {
  const extra = hiddenExtra();
  if (autorun) extra.push(['run', '1']);
  const hash = encodeLink(state.config, extra);
  const url = new URL(window.location.href);
  url.hash = hash;
  return url.toString();
}

export function updateLink() {
  const hash = encodeLink(state.config, hiddenExtra());
  history.replaceState(null, '', `#${hash}`);
  $('share-link').value = linkFor($('link-autorun').checked);
}

export async function copyLink() {
  const link = linkFor($('link-autorun').checked);
  $('share-link').value = link;
  try {
    await navigator.clipboard.writeText(link);
    banner('info', 'Link copied: it reproduces this experiment exactly (same data, same initialisation).', 'copy');
  } catch {
    $('share-link').select();
    banner('info', 'Select the link next to the button and copy it (the clipboard is not available here).', 'copy');
  }
}

/** The config a page load starts from: the link, else the last finished run, else the paper. */
export function initialConfig() {
  const hash = window.location.hash.slice(1);
  if (hash) {
    try {
      const decoded = decodeLink(hash);
      state.hidden = hiddenKeys(decoded.extra);
      state.autorun = decoded.extra.some(([k, v]) => k === 'run' && v === '1');
      const backend = decoded.extra.find(([k]) => k === 'backend');
      if (backend) {
        if (BACKENDS.includes(backend[1])) {
          state.backend = backend[1];
        } else {
          banner('error', `backend=${backend[1]} is not a backend this page knows (auto, cpu or gpu); using auto.`, 'backend');
          state.backend = 'auto';
        }
      }
      // The last finished run of this very experiment survives a reload: show it, do not redo it.
      const saved = loadSaved();
      if (saved && encodeLink(saved.config, []) === encodeLink(decoded.config, [])) {
        state.autorun = false;
        return { config: decoded.config, saved };
      }
      return { config: decoded.config };
    } catch (e) {
      banner('error', `This link could not be read: ${errorText(e)}. Showing the default experiment instead.`, 'link');
      return { config: presetConfig(DEFAULT_PRESET) };
    }
  }
  const saved = loadSaved();
  if (saved) return { config: saved.config, saved };
  return { config: presetConfig(DEFAULT_PRESET) };
}
