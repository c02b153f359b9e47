// The config form: reading it into a config, writing a config into it, the method editors.
import { presetConfig, solverDefaults } from '../engine.js';
import { applyConfig } from './player.js';
import { DEFAULT_PRESET, $, clearFieldMarks, markField, state } from './state.js';

export const DATA_FIELDS = ['num_atoms', 'data_dim', 'sparsity_k', 'num_samples', 'noise_std', 'frequency_skew'];

export const TRAIN_FIELDS = ['steps', 'lr', 'l1_penalty', 'log_every'];

// The link's short names of method kinds (`lrs=sc:0.003`), and the config's.
const KIND_TOKENS = { sae: 'sae', topk: 'topk_sae', mlp: 'mlp', sc: 'sparse_coding', ito: 'sae_ito', lista: 'lista' };

/** A form error found before the engine sees the config (the text of a per-kind field). */
export const FORM_ERROR = Symbol('form error');

/**
 * Read the per-kind fields into `train.per_method` (`field` is `lr` or `l1_penalty`). Returns
 * an error message naming the field when the text is not `kind:value` pairs.
 */
function readPerMethod(train, id, field) {
  const per = train.per_method;
  for (const entry of Object.values(per)) delete entry[field];
  const text = $(id).value.trim();
  const help = `train.per_method.${field}: write kind:value pairs such as ${field === 'lr' ? 'sc:3e-3, mlp:1e-4' : 'sc:0.5'} (kinds: ${Object.keys(KIND_TOKENS).join(', ')})`;
  if (text !== '') {
    for (const pair of text.split(/[\s,;]+/).filter(Boolean)) {
      const m = /^([a-z]+):(.+)$/.exec(pair);
      const kind = m && KIND_TOKENS[m[1]];
      if (!kind || (per[kind] && per[kind][field] !== undefined)) return help;
      const value = m[2].trim() === '' ? NaN : Number(m[2]);
      (per[kind] ||= {})[field] = value;
    }
  }
  for (const [kind, entry] of Object.entries(per)) {
    if (entry.lr === undefined && entry.l1_penalty === undefined) delete per[kind];
  }
  return null;
}

function perMethodText(config, field) {
  const per = (config.train && config.train.per_method) || {};
  return Object.entries(KIND_TOKENS)
    .filter(([, kind]) => per[kind] && per[kind][field] != null)
    .map(([token, kind]) => `${token}:${per[kind][field]}`)
    .join(', ');
}

export function numberOf(id) {
  const raw = $(id).value.trim();
  // An empty or unreadable box becomes NaN and is refused by the Rust validation with a message.
  return raw === '' ? NaN : Number(raw);
}

export function methodDefaults(kind) {
  switch (kind) {
    case 'topk_sae': return { kind, k: 3, bias: false };
    case 'mlp': return { kind, hidden: [32], bias: false };
    case 'sparse_coding': return { kind, inference: solverDefaults('adam') };
    case 'sae_ito': return { kind, bias: false, inference: solverDefaults('adam') };
    case 'lista': return { kind, iterations: 3 };
    default: return { kind: 'sae', bias: false };
  }
}

export const KIND_LABELS = {
  sae: 'SAE',
  topk_sae: 'TopK SAE',
  mlp: 'MLP encoder',
  sparse_coding: 'Sparse coding',
  sae_ito: 'SAE + ITO',
  lista: 'LISTA',
};

export function field(labelText, input) {
  const label = document.createElement('label');
  label.append(labelText, input);
  return label;
}

export function numberInput(value, attrs = {}) {
  const input = document.createElement('input');
  input.type = 'number';
  input.value = value == null ? '' : String(value);
  for (const [k, v] of Object.entries(attrs)) input.setAttribute(k, v);
  return input;
}

export function methodEditor(method, index) {
  const box = document.createElement('div');
  box.className = 'method';
  box.dataset.kind = method.kind;
  const head = document.createElement('div');
  head.className = 'row';
  const title = document.createElement('strong');
  title.textContent = `${index + 1}. ${KIND_LABELS[method.kind]}`;
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.textContent = 'Remove';
  remove.setAttribute('aria-label', `Remove method ${index + 1} (${KIND_LABELS[method.kind]})`);
  remove.addEventListener('click', () => {
    const config = readForm();
    config.methods.splice(index, 1);
    applyConfig(config, { fromForm: true });
  });
  head.append(title, remove);
  box.append(head);
  const get = {};
  if (method.kind === 'topk_sae') {
    const k = numberInput(method.k, { min: 1, step: 1, 'data-field': 'k' });
    box.append(field('k (kept per sample)', k));
    get.k = () => Number(k.value);
  }
  if (method.kind === 'lista') {
    const t = numberInput(method.iterations, { min: 0, max: 64, step: 1, 'data-field': 'iterations' });
    t.title = 'Unrolled ISTA iterations after the first: 0 is an SAE with a bias; more sit closer to full per-sample inference';
    box.append(field('Iterations T', t));
    get.iterations = () => (t.value.trim() === '' ? NaN : Number(t.value));
  }
  if (method.kind === 'mlp') {
    const hidden = document.createElement('input');
    hidden.type = 'text';
    hidden.value = method.hidden.join('-');
    hidden.dataset.field = 'hidden';
    hidden.title = 'Hidden widths separated by dashes, e.g. 32 or 256-256';
    box.append(field('Hidden widths', hidden));
    // Widths separated by dashes; anything else goes to the engine as text, whose refusal the
    // form turns into a message about this field (see fieldError).
    get.hidden = () => (/^\s*\d+(\s*-\s*\d+)*\s*$/.test(hidden.value) ? hidden.value.split('-').map(Number) : hidden.value);
  }
  if (['sae', 'topk_sae', 'mlp', 'sae_ito'].includes(method.kind)) {
    const bias = document.createElement('input');
    bias.type = 'checkbox';
    bias.checked = !!method.bias;
    bias.dataset.field = 'bias';
    const label = document.createElement('label');
    label.className = 'check';
    label.append(bias, ' Biases');
    box.append(label);
    get.bias = () => bias.checked;
  }
  if (method.kind === 'sparse_coding' || method.kind === 'sae_ito') {
    const inf = method.inference;
    const solver = document.createElement('select');
    solver.dataset.field = 'solver';
    const choices = [
      ['adam', 'Adam on exp-codes (paper)'],
      ['adam_topk', 'Adam on exp-codes + TopK'],
      ['fista', 'FISTA (L1)'],
      ['omp', 'OMP (K-sparse)'],
    ];
    for (const [value, text] of choices) {
      const o = document.createElement('option');
      o.value = value;
      o.textContent = text;
      solver.append(o);
    }
    solver.value = inf.solver;
    solver.addEventListener('change', () => {
      const config = readForm();
      config.methods[index].inference = solver.value === 'adam_topk'
        ? { ...solverDefaults('adam'), solver: 'adam_topk', k: 3, inside: false }
        : solverDefaults(solver.value);
      applyConfig(config, { fromForm: true });
    });
    box.append(field('Inference', solver));
    const parts = {};
    const adam = inf.solver === 'adam' || inf.solver === 'adam_topk';
    if (adam || inf.solver === 'fista') {
      parts.steps = numberInput(inf.steps, { min: 1, step: 1, 'data-field': 'solver-steps' });
      box.append(field('Solver steps', parts.steps));
    }
    if (adam) {
      parts.lr = numberInput(inf.lr, { min: 0, step: 'any', 'data-field': 'solver-lr' });
      box.append(field('Solver learning rate', parts.lr));
    }
    if (inf.solver === 'adam_topk') {
      parts.k = numberInput(inf.k, { min: 1, step: 1, 'data-field': 'solver-topk' });
      box.append(field('Codes kept per sample (k)', parts.k));
      parts.inside = document.createElement('input');
      parts.inside.type = 'checkbox';
      parts.inside.checked = !!inf.inside;
      parts.inside.dataset.field = 'solver-inside';
      const label = document.createElement('label');
      label.className = 'check';
      label.title = 'Off: L1 inference, then the k largest codes kept. On: the codes optimised on the error of the reconstruction from their k largest (no L1).';
      label.append(parts.inside, ' TopK inside the optimisation');
      box.append(label);
    }
    if (inf.solver === 'fista') {
      parts.signed = document.createElement('input');
      parts.signed.type = 'checkbox';
      parts.signed.checked = inf.nonneg === false;
      const label = document.createElement('label');
      label.className = 'check';
      label.append(parts.signed, ' Signed codes');
      box.append(label);
    }
    if (inf.solver === 'omp') {
      parts.k = numberInput(inf.k, { min: 1, step: 1, placeholder: 'K', 'data-field': 'solver-k' });
      box.append(field('Atoms per sample (empty = K)', parts.k));
    }
    get.inference = () => {
      if (inf.solver === 'adam') return { solver: 'adam', steps: Number(parts.steps.value), lr: Number(parts.lr.value) };
      if (inf.solver === 'adam_topk') {
        return {
          solver: 'adam_topk',
          steps: Number(parts.steps.value),
          lr: Number(parts.lr.value),
          k: Number(parts.k.value),
          inside: parts.inside.checked,
        };
      }
      if (inf.solver === 'fista') return { solver: 'fista', steps: Number(parts.steps.value), nonneg: !parts.signed.checked };
      const k = parts.k.value.trim();
      return { solver: 'omp', k: k === '' ? null : Number(k) };
    };
  }
  box.readMethod = () => {
    const out = { kind: method.kind };
    for (const [key, fn] of Object.entries(get)) out[key] = fn();
    return out;
  };
  return box;
}

export function readForm() {
  const base = state.config || presetConfig(DEFAULT_PRESET);
  const data = { ...base.data };
  for (const id of DATA_FIELDS) data[id] = numberOf(id);
  data.signed_codes = $('signed_codes').checked;
  const train = { ...base.train };
  for (const id of TRAIN_FIELDS) train[id] = numberOf(id);
  const batch = $('batch_size').value.trim();
  train.batch_size = batch === '' ? null : Number(batch);
  // Evaluation steps: whole numbers separated by commas, spaces or dashes; anything else goes to
  // the engine as text, whose refusal names this field.
  const evals = $('eval_steps').value.trim();
  train.eval_steps = evals === '' ? [] : /^\d+([\s,;-]+\d+)*$/.test(evals) ? evals.split(/[\s,;-]+/).map(Number) : evals;
  // Shortening the run keeps the evaluations that still fall inside it.
  if (Array.isArray(train.eval_steps) && Number.isFinite(train.steps)) {
    train.eval_steps = train.eval_steps.filter((e) => e < train.steps);
  }
  train.per_method = structuredClone(base.train.per_method || {});
  const perError = readPerMethod(train, 'lr_per_method', 'lr') || readPerMethod(train, 'l1_per_method', 'l1_penalty');
  const config = {
    version: base.version,
    setting: $('setting').value,
    data,
    methods: Array.from($('methods').children).map((box) => box.readMethod()),
    train,
    metrics: { l0_threshold: numberOf('l0_threshold') },
    seed: numberOf('seed'),
    runs: numberOf('runs'),
  };
  if (perError) config[FORM_ERROR] = perError;
  return config;
}

export function writeForm(config) {
  $('setting').value = config.setting;
  for (const id of DATA_FIELDS) $(id).value = String(config.data[id]);
  $('signed_codes').checked = config.data.signed_codes;
  for (const id of TRAIN_FIELDS) $(id).value = String(config.train[id]);
  $('batch_size').value = config.train.batch_size == null ? '' : String(config.train.batch_size);
  $('eval_steps').value = (config.train.eval_steps || []).join(', ');
  $('lr_per_method').value = perMethodText(config, 'lr');
  $('l1_per_method').value = perMethodText(config, 'l1_penalty');
  $('l0_threshold').value = String(config.metrics.l0_threshold);
  $('seed').value = String(config.seed);
  $('runs').value = String(config.runs);
  $('methods').replaceChildren(...config.methods.map(methodEditor));
}

export function showConfigError(message) {
  const box = $('config-error');
  box.hidden = !message;
  box.textContent = message || '';
}

// Config paths (as the engine names them in its errors) to the form's controls.
const CONTROLS = {
  'data.num_atoms': 'num_atoms',
  'data.data_dim': 'data_dim',
  'data.sparsity_k': 'sparsity_k',
  'data.num_samples': 'num_samples',
  'data.noise_std': 'noise_std',
  'data.frequency_skew': 'frequency_skew',
  'data.signed_codes': 'signed_codes',
  'train.steps': 'steps',
  'train.lr': 'lr',
  'train.l1_penalty': 'l1_penalty',
  'train.batch_size': 'batch_size',
  'train.log_every': 'log_every',
  'train.eval_steps': 'eval_steps',
  'metrics.l0_threshold': 'l0_threshold',
  seed: 'seed',
  runs: 'runs',
  setting: 'setting',
};

// Inside a method: the part of the path after `methods[i].` to the editor's data-field.
const METHOD_FIELDS = { k: 'k', iterations: 'iterations', hidden: 'hidden', bias: 'bias', 'inference.steps': 'solver-steps', 'inference.lr': 'solver-lr', 'inference.k': 'solver-k', 'inference.nonneg': 'solver' };

/** The control a config path names, if the form has one. */
export function controlFor(path) {
  const plain = path.replace(/\[\d+\]$/, '');
  if (CONTROLS[plain]) return $(CONTROLS[plain]);
  const per = /^train\.per_method\.(?:\w+\.)?(lr|l1_penalty)$/.exec(plain);
  if (per) return $(per[1] === 'lr' ? 'lr_per_method' : 'l1_per_method');
  const m = /^methods\[(\d+)\](?:\.(.*))?$/.exec(path);
  if (!m) return null;
  const box = $('methods').children[Number(m[1])];
  if (!box) return null;
  const rest = (m[2] || '').replace(/\[\d+\]$/, '');
  const key = METHOD_FIELDS[rest];
  return (key && box.querySelector(`[data-field="${key}"]`)) || box.querySelector('input, select');
}

/** A control's label in the user's words (the label's own text, without its inputs). */
function labelOf(control) {
  const label = control.closest('label');
  if (!label) return control.getAttribute('aria-label') || control.id;
  return Array.from(label.childNodes)
    .filter((n) => n.nodeType === Node.TEXT_NODE)
    .map((n) => n.textContent)
    .join(' ')
    .replace(/\s+/g, ' ')
    .trim();
}

export function clearFieldErrors() {
  clearFieldMarks('#config');
  state.formInvalid = false;
}

/**
 * Show the engine's refusal `message` ("path: what is wrong") at the control it names: the
 * control marked invalid, the message beside it in the user's words and scrolled into view.
 * Returns the message as shown (for the summary box).
 */
export function fieldError(message) {
  clearFieldErrors();
  state.formInvalid = true;
  const m = /^([\w.[\]]+): ([\s\S]*)$/.exec(message);
  const control = m ? controlFor(m[1]) : null;
  if (!control) return message;
  let text = m[2];
  if (control.dataset.field === 'hidden') {
    text = `list widths from 1 to 16384 separated by dashes, e.g. 32 or 256-256 (got "${control.value}")`;
  }
  markField(control, text, `error-${control.id || control.dataset.field || 'field'}`);
  return `${labelOf(control)}: ${text}`;
}
