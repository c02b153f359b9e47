//! The browser boundary (wasm32 only): a handle over the engine's step API.
//!
//! A config goes in once, through serde-wasm-bindgen; progress comes out as flat `Float64Array`
//! rows (one per evaluation, fields named by [`record_fields`]) and views of what was learned as
//! typed arrays. Everything heavier than a number crosses as a typed array or a JSON string the
//! page can download as is. Errors are `JsError`s with the engine's own messages; a panic is
//! turned into a console error with a stack by `console_error_panic_hook` and, in the worker,
//! into a visible message on the page.

use crate::core::config::{
    human_bytes, limits, BudgetScope, CheckedConfig, ExperimentConfig, Preset, SolverConfig,
};
use crate::core::results::{LogRecord, Results};
use crate::core::run::Experiment;
use crate::core::select::{self, BackendChoice};
use crate::core::share;
use crate::core::Matrix;
use crate::CpuBackend;
use js_sys::{Array, Float32Array, Float64Array, Int32Array, Object, Reflect};
use serde::Serialize;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

pub mod real;
pub mod sweep;

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`, present on windows and workers alike.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

fn clock_seconds() -> f64 {
    performance_now() / 1000.0
}

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// The engine's version, shown in the page footer and written into results files.
#[wasm_bindgen(js_name = engineVersion)]
pub fn engine_version() -> String {
    format!("sparse-playground {}", env!("CARGO_PKG_VERSION"))
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()))
}

fn config_from_js(config: JsValue) -> Result<ExperimentConfig, JsError> {
    let value: serde_json::Value = serde_wasm_bindgen::from_value(config)
        .map_err(|e| JsError::new(&format!("could not read the config: {e}")))?;
    ExperimentConfig::from_value(value).map_err(|e| JsError::new(&e.to_string()))
}

/// The paper preset `known-z`, `known-d` or `unknown-zd` as a plain object.
#[wasm_bindgen(js_name = presetConfig)]
pub fn preset_config(name: &str) -> Result<JsValue, JsError> {
    let preset = Preset::from_name(name).map_err(|e| JsError::new(&e.to_string()))?;
    to_js(&preset.config())
}

/// The inference solver `adam`, `fista` or `omp` with the engine's defaults, so the page never
/// restates them.
#[wasm_bindgen(js_name = solverDefaults)]
pub fn solver_defaults(kind: &str) -> Result<JsValue, JsError> {
    let solver: SolverConfig = serde_json::from_value(serde_json::json!({ "solver": kind }))
        .map_err(|e| JsError::new(&format!("unknown solver `{kind}`: {e}")))?;
    to_js(&solver)
}

/// Validate a config for this page: every rule of the engine, then the page's memory budget
/// for the whole experiment (`parallel_runs` runs evaluating at once, one per worker).
fn check_for_page(cfg: &ExperimentConfig, parallel_runs: usize) -> Result<CheckedConfig, JsError> {
    let checked = cfg.validate().map_err(|e| JsError::new(&e.to_string()))?;
    checked
        .check_memory(limits::PAGE_MEMORY_BUDGET, parallel_runs, BudgetScope::Page)
        .map_err(|e| JsError::new(&e.to_string()))?;
    Ok(checked)
}

/// Check a config; returns it with every default filled in, or throws the first problem
/// (including an experiment too large for the page's memory budget).
/// `workers`: the pool the page will compute it in (each worker generates the data and
/// evaluates one run at a time); 1 when not given.
#[wasm_bindgen(js_name = validateConfig)]
pub fn validate_config(config: JsValue, workers: Option<u32>) -> Result<JsValue, JsError> {
    let cfg = config_from_js(config)?;
    let checked = check_for_page(&cfg, workers.unwrap_or(1).max(1) as usize)?;
    to_js(&*checked)
}

/// The memory a valid config needs on this page with `workers` workers (1 when not given),
/// before anything is built: `{bytes, text}` (`text` is a short size such as "12 MiB").
#[wasm_bindgen(js_name = memoryEstimate)]
pub fn memory_estimate(config: JsValue, workers: Option<u32>) -> Result<JsValue, JsError> {
    let cfg = config_from_js(config)?;
    let checked = cfg.validate().map_err(|e| JsError::new(&e.to_string()))?;
    let workers = workers.unwrap_or(1).max(1) as usize;
    let bytes = checked
        .memory_estimate_spread(workers, workers)
        .total_bytes();
    let obj = Object::new();
    set(&obj, "bytes", bytes as f64);
    set(&obj, "text", human_bytes(bytes));
    Ok(obj.into())
}

/// The extra `[key, value]` pairs a link is written with (`run=1`, hidden controls); none when
/// `extra` is undefined or null.
pub(crate) fn link_extra(extra: JsValue) -> Result<Vec<(String, String)>, JsError> {
    if extra.is_undefined() || extra.is_null() {
        return Ok(Vec::new());
    }
    serde_wasm_bindgen::from_value(extra)
        .map_err(|e| JsError::new(&format!("extra link keys: {e}")))
}

/// The share link (the part after `#`) for a config, plus `extra` `[key, value]` pairs.
#[wasm_bindgen(js_name = encodeLink)]
pub fn encode_link(config: JsValue, extra: JsValue) -> Result<String, JsError> {
    let cfg = config_from_js(config)?;
    cfg.validate().map_err(|e| JsError::new(&e.to_string()))?;
    let extra = link_extra(extra)?;
    let pairs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(share::encode(&cfg, &pairs))
}

/// Parse a share link: `{config, extra: [[key, value], ...]}`, or throws what was wrong.
#[wasm_bindgen(js_name = decodeLink)]
pub fn decode_link(link: &str) -> Result<JsValue, JsError> {
    #[derive(Serialize)]
    struct Decoded<'a> {
        config: &'a ExperimentConfig,
        extra: &'a [(String, String)],
    }
    let state = share::decode(link).map_err(|e| JsError::new(&e.to_string()))?;
    to_js(&Decoded {
        config: &state.config,
        extra: &state.extra,
    })
}

/// Check a results file (from the CLI or the page) and return it normalised as JSON text:
/// every optional field present, the config valid.
#[wasm_bindgen(js_name = normalizeResults)]
pub fn normalize_results(json: &str) -> Result<String, JsError> {
    let results = Results::from_json(json).map_err(|e| JsError::new(&e))?;
    results
        .config
        .validate()
        .map_err(|e| JsError::new(&format!("the results file's config is invalid: {e}")))?;
    Ok(results.to_json())
}

/// Join results files of one experiment computed in parts (the page's worker pool, a CLI's
/// shards): JSON texts in, one JSON text out. Throws when they describe different experiments.
#[wasm_bindgen(js_name = mergeResults)]
pub fn merge_results(parts: Vec<String>) -> Result<String, JsError> {
    let parsed = parts
        .iter()
        .map(|p| Results::from_json(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| JsError::new(&e))?;
    Results::merge(parsed)
        .map(|r| r.to_json())
        .map_err(|e| JsError::new(&e))
}

/// Steps per second of a bench item (see `core::microbench::ITEMS`) at the paper's size
/// (N=16, M=8, K=3, n=1024; `real_sae_train` at its own) on this thread: the browser column of
/// `sparse-playground bench`. Times for at least `min_secs` seconds.
#[wasm_bindgen(js_name = benchSteps)]
pub fn bench_steps(item: &str, min_secs: f64) -> Result<f64, JsError> {
    if !(min_secs.is_finite() && min_secs > 0.0 && min_secs <= 600.0) {
        return Err(JsError::new(
            "min_secs must be a number of seconds in (0, 600]",
        ));
    }
    let backend = CpuBackend::new(1);
    let data = crate::core::config::DataConfig::default();
    crate::core::microbench::time_item(item, &backend, &data, clock_seconds, min_secs)
        .map(|r| r.steps_per_sec)
        .ok_or_else(|| {
            JsError::new(&format!(
                "unknown bench item `{item}`; expected one of {}",
                crate::core::microbench::ITEMS.join(", ")
            ))
        })
}

/// Names of the columns of [`Playground::take_records`] rows, in order.
const RECORD_FIELDS: [&str; 13] = [
    "method",
    "run",
    "step",
    "code_mcc",
    "dict_mcc",
    "test_mse",
    "nmse",
    "l0",
    "dead_latents",
    "train_loss",
    "train_flops",
    "infer_flops",
    "wall_s",
];

#[wasm_bindgen(js_name = recordFields)]
pub fn record_fields() -> Array {
    RECORD_FIELDS.iter().map(|f| JsValue::from_str(f)).collect()
}

fn push_record(out: &mut Vec<f64>, method: usize, run: u32, r: &LogRecord) {
    let opt = |v: Option<f64>| v.unwrap_or(f64::NAN);
    out.extend_from_slice(&[
        method as f64,
        f64::from(run),
        r.step as f64,
        r.code_mcc,
        opt(r.dict_mcc),
        opt(r.test_mse),
        opt(r.nmse),
        r.l0,
        r.dead_latents as f64,
        opt(r.train_loss),
        r.train_flops,
        r.infer_flops,
        r.wall_s,
    ]);
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

fn f32_array(m: &Matrix) -> Float32Array {
    Float32Array::from(m.as_slice())
}

/// One experiment: every method from every seed over one dataset, advanced on demand.
#[wasm_bindgen]
pub struct Playground {
    exp: Experiment,
    /// Log records already handed out, per run.
    emitted: Vec<usize>,
    /// Steps per `Experiment::step` call inside [`Playground::run_for`], adapted to the budget.
    chunk: u64,
    /// Per stack, where the single step under way stops (see [`Playground::begin_step`]).
    stops: Option<Vec<u64>>,
    /// The backend's kind, name, adapter and why it is not the one asked for.
    backend: BackendReport,
    /// The (method, run) pairs of this worker's share (all when `None`), for the time estimate.
    share: Option<Vec<(usize, u32)>>,
}

/// What the page shows about the backend.
#[derive(Clone, Debug, Serialize)]
struct BackendReport {
    /// What was asked for: auto, cpu or gpu.
    requested: String,
    kind: crate::compute::BackendKind,
    name: String,
    notice: Option<String>,
    adapter: Option<crate::compute::gpu::AdapterSummary>,
}

/// Options of [`Playground::create`].
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
struct CreateOptions {
    /// auto, cpu or gpu.
    backend: Option<String>,
    /// Only these (method, run) pairs: a worker of a pool builds its share.
    only: Option<Vec<(usize, u32)>>,
    /// Runs evaluating at once over the whole pool (for the memory budget).
    parallel_runs: Option<usize>,
    /// Workers the CPU alternative would have (auto compares the GPU against all of them).
    cpu_workers: Option<usize>,
}

impl std::fmt::Debug for Playground {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playground")
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

#[wasm_bindgen]
impl Playground {
    /// Validate the config, generate the data and initialise every run on the CPU. Throws on a
    /// bad config.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<Playground, JsError> {
        let cfg = config_from_js(config)?;
        let checked = check_for_page(&cfg, 1)?;
        let backend = Arc::new(CpuBackend::new(1));
        let report = BackendReport {
            requested: "cpu".into(),
            kind: crate::compute::BackendKind::Cpu,
            name: crate::compute::Backend::name(&*backend),
            notice: None,
            adapter: None,
        };
        let exp = Experiment::new(checked, backend).with_clock(clock_seconds);
        Ok(Self::wrap(exp, report, None))
    }

    /// As the constructor, choosing the backend (`options.backend`: `auto` (default), `cpu` or
    /// `gpu`: WebGPU when an adapter exists, is not a software one (for `auto`), passes a
    /// parity probe and (for `auto`) runs this experiment faster than the CPU would in
    /// `options.cpuWorkers` workers; else the CPU, with a notice saying why), optionally for a share of the
    /// runs only (`options.only`: `[[method, run], ...]`, a worker of a pool), with the memory
    /// budget counting `options.parallelRuns` evaluations at once.
    pub async fn create(config: JsValue, options: JsValue) -> Result<Playground, JsError> {
        let cfg = config_from_js(config)?;
        let options: CreateOptions = if options.is_undefined() || options.is_null() {
            CreateOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options)
                .map_err(|e| JsError::new(&format!("Playground.create options: {e}")))?
        };
        let checked = check_for_page(&cfg, options.parallel_runs.unwrap_or(1).max(1))?;
        let requested = options.backend.unwrap_or_else(|| "auto".into());
        let choice = BackendChoice::parse(&requested).map_err(|e| JsError::new(&e))?;
        // The CPU alternative is a pool of workers, one run each at once.
        let pool = options.cpu_workers.unwrap_or(1).max(1);
        let chosen = select::choose(choice, 1, pool, &checked, clock_seconds).await;
        let report = BackendReport {
            requested,
            kind: chosen.backend.kind(),
            name: chosen.backend.name(),
            notice: chosen.notice.clone(),
            adapter: chosen.adapter.clone(),
        };
        let mut exp = Experiment::build(
            checked,
            chosen.backend,
            chosen.grouping,
            options.only.as_deref(),
        )
        .with_clock(clock_seconds);
        exp.set_notice(chosen.notice);
        Ok(Self::wrap(exp, report, options.only))
    }

    fn wrap(
        exp: Experiment,
        backend: BackendReport,
        share: Option<Vec<(usize, u32)>>,
    ) -> Playground {
        let emitted = vec![0; exp.runs().count()];
        Playground {
            exp,
            emitted,
            chunk: 1,
            stops: None,
            backend,
            share,
        }
    }

    /// Seconds this worker's share of the experiment should take from the start, on this
    /// machine: a throwaway copy of the same runs, each stack timed on the CPU for its part of
    /// about a quarter of a second and its whole work taken at its own rate
    /// (`select::estimate_seconds`). `undefined` on the GPU (whose timing needs the device's queue: `auto` measured it
    /// already) and for experiments too short to tell. Costs about 0.3 s of this worker and a
    /// second copy of the share's memory while it runs.
    #[wasm_bindgen(js_name = estimateSeconds)]
    pub fn estimate_seconds(&self) -> Option<f64> {
        if self.backend.kind != crate::compute::BackendKind::Cpu {
            return None;
        }
        let probe = || {
            let probe = crate::core::select::estimate_seconds(
                self.exp.config(),
                Arc::new(CpuBackend::new(1)),
                crate::core::run::Grouping::PerRun,
                self.share.as_deref(),
                clock_seconds,
            );
            // On the CPU nothing waits for a device: the future is ready at its first poll.
            use std::future::Future as _;
            let mut probe = std::pin::pin!(probe);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match probe.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(Ok(Some(seconds))) => Some(seconds),
                _ => None,
            }
        };
        // The browser first runs new WebAssembly through its baseline compiler and swaps in
        // optimised code once the functions are hot: a first probe times that slower code
        // (measured in Chromium on the quick unknown-Z&D preset: 2 min 8 s estimated for a
        // 66 s run), so it only warms up, and the second one is the estimate.
        probe()?;
        probe()
    }

    /// `{requested, kind, name, notice, adapter}`: the backend in use (`kind` `cpu` or `gpu`),
    /// the adapter of a GPU (`name`, `api`, `deviceType`, `software`), and why it is not the one
    /// requested, if it is not.
    #[wasm_bindgen(js_name = backendInfo)]
    pub fn backend_info(&self) -> Result<JsValue, JsError> {
        to_js(&self.backend)
    }

    /// Why the backend stopped (a lost GPU device, an allocation refused), or null. The runs
    /// not finished then are [`Playground::unfinished_runs`]: redo them elsewhere.
    #[wasm_bindgen(js_name = backendFailure)]
    pub fn backend_failure(&self) -> Option<String> {
        self.exp.backend_failure().map(str::to_string)
    }

    /// The work of the runs that are finished, in the units of [`Playground::work_done`].
    #[wasm_bindgen(js_name = finishedWork)]
    pub fn finished_work(&self) -> f64 {
        self.exp
            .stacks()
            .iter()
            .filter(|s| s.is_done())
            .map(|s| s.work_total() as f64)
            .sum()
    }

    /// `[[method, run], ...]` of the runs not finished.
    #[wasm_bindgen(js_name = unfinishedRuns)]
    pub fn unfinished_runs(&self) -> Result<JsValue, JsError> {
        to_js(&self.exp.unfinished_runs())
    }

    /// The validated config, defaults filled in.
    pub fn config(&self) -> Result<JsValue, JsError> {
        to_js(&**self.exp.config())
    }

    /// Display names of the methods, in config order.
    #[wasm_bindgen(js_name = methodNames)]
    pub fn method_names(&self) -> Array {
        crate::core::run::method_names(&self.exp.config().methods)
            .iter()
            .map(|n| JsValue::from_str(n))
            .collect()
    }

    /// FNV-1a checksum of the generated data, as 16 hex digits (equal to the native one).
    #[wasm_bindgen(js_name = dataChecksum)]
    pub fn data_checksum(&self) -> String {
        format!("{:016x}", self.exp.data().checksum())
    }

    /// Training steps done, summed over runs.
    #[wasm_bindgen(js_name = stepsDone)]
    pub fn steps_done(&self) -> f64 {
        self.exp.progress().0 as f64
    }

    /// Training steps of the whole experiment, summed over runs.
    #[wasm_bindgen(js_name = stepsTotal)]
    pub fn steps_total(&self) -> f64 {
        self.exp.progress().1 as f64
    }

    /// Work done in steps, training and the evaluations' inference alike, summed over runs:
    /// what a progress bar and a time-left estimate should count.
    #[wasm_bindgen(js_name = workDone)]
    pub fn work_done(&self) -> f64 {
        self.exp.work().0 as f64
    }

    /// All the work of the experiment in steps (see [`Playground::work_done`]).
    #[wasm_bindgen(js_name = workTotal)]
    pub fn work_total(&self) -> f64 {
        self.exp.work().1 as f64
    }

    /// Whether some run is inferring test codes for an evaluation right now.
    #[wasm_bindgen(js_name = isEvaluating)]
    pub fn is_evaluating(&self) -> bool {
        self.exp.is_evaluating()
    }

    #[wasm_bindgen(js_name = isDone)]
    pub fn is_done(&self) -> bool {
        self.exp.is_done()
    }

    /// Advance every unfinished run by at most `max_steps` steps of work (training steps, or
    /// inference steps of an evaluation under way). Returns whether all are done.
    pub fn step(&mut self, max_steps: u32) -> bool {
        self.exp.step(u64::from(max_steps.max(1)));
        self.exp.is_done()
    }

    /// Advance for about `budget_ms` milliseconds (at least one step), in chunks sized so the
    /// budget is not overshot by much. Returns whether all runs are done.
    #[wasm_bindgen(js_name = runFor)]
    pub fn run_for(&mut self, budget_ms: f64) -> bool {
        self.stops = None;
        self.advance_for(budget_ms);
        self.exp.is_done()
    }

    /// Start a single step: every run goes to its next evaluation (training to the next
    /// multiple of the evaluation interval, then inferring and scoring test codes), advanced
    /// by [`Playground::step_for`] in bounded slices.
    #[wasm_bindgen(js_name = beginStep)]
    pub fn begin_step(&mut self) {
        self.stops = Some(self.exp.next_evaluation_steps());
    }

    /// Advance the single step begun by [`Playground::begin_step`] for about `budget_ms`
    /// milliseconds. Returns whether it is complete (every run evaluated at its stop); true
    /// as well when no step was begun.
    #[wasm_bindgen(js_name = stepFor)]
    pub fn step_for(&mut self, budget_ms: f64) -> bool {
        if self.stops.is_none() {
            return true;
        }
        self.advance_for(budget_ms);
        let complete = self
            .stops
            .as_deref()
            .is_none_or(|stops| self.exp.reached(stops));
        if complete {
            self.stops = None;
        }
        complete
    }

    /// Advance for about `budget_ms`, towards the stops of a single step if one is under way.
    fn advance_for(&mut self, budget_ms: f64) {
        let budget = if budget_ms.is_finite() {
            budget_ms.clamp(1.0, 10_000.0) / 1000.0
        } else {
            0.05
        };
        let start = clock_seconds();
        let gpu = self.exp.backend().kind() == crate::compute::BackendKind::Gpu;
        loop {
            if gpu && self.exp.backend().busy() {
                // The device still has a full queue: submitting more would only delay Pause.
                // Yield; smaller chunks next time keep a submission to a few milliseconds.
                self.chunk = (self.chunk * 3 / 4).max(1);
                break;
            }
            let pending = match &self.stops {
                Some(stops) => !self.exp.reached(stops),
                None => !self.exp.is_done(),
            };
            if !pending {
                break;
            }
            let t0 = clock_seconds();
            match self.stops.take() {
                Some(stops) => {
                    self.exp.step_until(self.chunk, &stops);
                    self.stops = Some(stops);
                }
                None => {
                    self.exp.step(self.chunk);
                }
            }
            let took = clock_seconds() - t0;
            // Aim for chunks of about a quarter of the budget.
            if took < budget / 8.0 {
                // A GPU's steps are enqueued, not run, within `took`: cap its chunk.
                let cap = if gpu { 2048 } else { 1 << 20 };
                self.chunk = (self.chunk * 2).min(cap);
            } else if took > budget / 2.0 && self.chunk > 1 {
                self.chunk /= 2;
            }
            if clock_seconds() - start >= budget {
                break;
            }
        }
    }

    /// Every log record not handed out before, as rows of `recordFields()` (NaN = not
    /// applicable, e.g. no dictionary MCC in the known-codes setting).
    #[wasm_bindgen(js_name = takeRecords)]
    pub fn take_records(&mut self) -> Float64Array {
        let mut out = Vec::new();
        for (i, run) in self.exp.runs().enumerate() {
            let log = run.member.log();
            for r in &log[self.emitted[i]..] {
                push_record(&mut out, run.method_index, run.member.run_index, r);
            }
            self.emitted[i] = log.len();
        }
        Float64Array::from(out.as_slice())
    }

    /// Everything so far in the CLI's results schema, as JSON text.
    #[wasm_bindgen(js_name = resultsJson)]
    pub fn results_json(&self) -> String {
        self.exp.results().to_json()
    }

    /// The true codes of the first `samples` test samples (N x samples, column-major): known
    /// from the start, shown before any evaluation.
    #[wasm_bindgen(js_name = trueCodes)]
    pub fn true_codes(&self, samples: usize) -> Float32Array {
        let codes = &self.exp.data().test_codes;
        f32_array(&codes.columns(0, samples.min(codes.ncols())).into_owned())
    }

    /// The true dictionary (M x N, column-major, one atom per column).
    #[wasm_bindgen(js_name = trueDictionary)]
    pub fn true_dictionary(&self) -> Float32Array {
        f32_array(&self.exp.data().dictionary)
    }

    /// What run `run` of method `method` has learned at its last evaluation, or `null` before
    /// the first. Fields: `step`, `atoms` (N), `latents` (N'), `dim` (M), `samples`;
    /// `dictionary` (M x N' column-major, or null), `gram` (N' x N'), `dictMatch` /
    /// `codeMatch` (Int32Array, per true atom the matched learned index or -1), `dictCorr` /
    /// `codeCorr` (|correlation| per true atom), `dictSign` (+1/-1 per true atom, to align the
    /// learned atom with the true one), `trueCodes` (N x samples) and `codes` (N' x samples) for
    /// the first `samples` test samples.
    pub fn snapshot(&self, method: usize, run: u32, samples: usize) -> JsValue {
        let Some(r) = self.exp.run(method, run) else {
            return JsValue::NULL;
        };
        let Some(snap) = r.member.snapshot() else {
            return JsValue::NULL;
        };
        let data = self.exp.data();
        let n_true = data.num_atoms();
        let latents = snap.codes.nrows();
        let samples = samples.min(snap.codes.ncols());
        let obj = Object::new();
        set(&obj, "step", snap.step as f64);
        set(&obj, "atoms", n_true as f64);
        set(&obj, "latents", latents as f64);
        set(&obj, "dim", data.data_dim() as f64);
        set(&obj, "samples", samples as f64);
        let matching_arrays = |m: &Option<crate::core::metrics::Matching>| {
            let mut idx = vec![-1i32; n_true];
            let mut corr = vec![0f64; n_true];
            if let Some(m) = m {
                for &(t, l, c) in &m.pairs {
                    if t < n_true {
                        idx[t] = l.map_or(-1, |l| l as i32);
                        corr[t] = c;
                    }
                }
            }
            (idx, corr)
        };
        match &snap.dictionary {
            Some(d) => {
                set(&obj, "dictionary", f32_array(d));
                set(&obj, "gram", f32_array(&(d.transpose() * d)));
                let (idx, corr) = matching_arrays(&snap.dict_matching);
                let sign: Vec<f32> = idx
                    .iter()
                    .enumerate()
                    .map(|(t, &l)| {
                        if l < 0 {
                            return 1.0;
                        }
                        let dot = data.dictionary.column(t).dot(&d.column(l as usize));
                        if dot < 0.0 {
                            -1.0
                        } else {
                            1.0
                        }
                    })
                    .collect();
                set(&obj, "dictMatch", Int32Array::from(idx.as_slice()));
                set(&obj, "dictCorr", Float64Array::from(corr.as_slice()));
                set(&obj, "dictSign", Float32Array::from(sign.as_slice()));
            }
            None => {
                for key in ["dictionary", "gram", "dictMatch", "dictCorr", "dictSign"] {
                    set(&obj, key, JsValue::NULL);
                }
            }
        }
        let (idx, corr) = if snap.code_matching.is_none() && latents == n_true {
            // Known codes: latent i is trained to predict true code i, no matching needed.
            ((0..n_true as i32).collect(), vec![f64::NAN; n_true])
        } else {
            matching_arrays(&snap.code_matching)
        };
        set(&obj, "codeMatch", Int32Array::from(idx.as_slice()));
        set(&obj, "codeCorr", Float64Array::from(corr.as_slice()));
        let true_codes = data.test_codes.columns(0, samples).into_owned();
        let codes = snap.codes.columns(0, samples).into_owned();
        set(&obj, "trueCodes", f32_array(&true_codes));
        set(&obj, "codes", f32_array(&codes));
        obj.into()
    }
}
