// The one module that owns the wasm-bindgen bindings: the page and the worker import the engine
// from here and nowhere else, so the generated names live in a single place. Importing this
// module instantiates the engine (top-level await); webpack emits the .wasm once, content-hashed.
import init from '../pkg/engine.js';

export {
  Playground,
  RealRunner,
  RealSource,
  RealSourceBuilder,
  checkSynthetic,
  SweepRunner,
  decodeLink,
  decodeSweepLink,
  encodeLink,
  encodeSweepLink,
  engineVersion,
  inspectTokens,
  isSweepLink,
  memoryEstimate,
  mergeResults,
  mergeSweepResults,
  normalizeResults,
  presetConfig,
  realAuto,
  realDefaults,
  recordFields,
  solverDefaults,
  sweepCellConfig,
  sweepPresetConfig,
  sweepResultsJson,
  theoryCurves,
  validateConfig,
  validateSweep,
} from '../pkg/engine.js';

await init({ module_or_path: new URL('../pkg/engine_bg.wasm', import.meta.url) });
