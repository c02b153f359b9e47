//! The browser boundary of sweeps: presets, validation against the page's memory budget, links,
//! the theoretical curves, results files, and [`SweepRunner`], a handle that computes a queue
//! of units (cell, seed) in bounded slices inside a worker. A pool of such workers shares a
//! sweep's units; each finished unit crosses as JSON (the CLI's `UnitResult`), so the page's
//! results file is the CLI's.

use super::{clock_seconds, set, to_js};
use crate::compute::{Backend, BackendKind};
use crate::core::config::{human_bytes, limits};
use crate::core::results::BackendInfo;
use crate::core::select::{self, BackendChoice};
use crate::core::share;
use crate::core::sweep::{
    stack_cap, stack_groups, SweepConfig, SweepPreset, SweepResults, Unit, UnitResult, UnitRun,
    UnitStack,
};
use crate::core::theory;
use crate::CpuBackend;
use js_sys::{Array, Int32Array, Object};
use std::collections::VecDeque;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

fn sweep_from_js(config: JsValue) -> Result<SweepConfig, JsError> {
    let value: serde_json::Value = serde_wasm_bindgen::from_value(config)
        .map_err(|e| JsError::new(&format!("could not read the sweep: {e}")))?;
    SweepConfig::from_json(&value.to_string()).map_err(|e| JsError::new(&e.to_string()))
}

/// Validate for this page: the sweep's rules, then the units computed at once (one per
/// worker: at most `max_workers`, and never more than the sweep has units) within the page's
/// memory budget. Returns one unit's estimated bytes.
fn check_sweep_for_page(sweep: &SweepConfig, max_workers: usize) -> Result<u64, JsError> {
    sweep.validate().map_err(|e| JsError::new(&e.to_string()))?;
    let workers = max_workers.clamp(1, sweep.units().len().max(1));
    let per_unit = sweep.unit_memory_bytes();
    let need = per_unit.saturating_mul(workers as u64);
    if need > limits::PAGE_MEMORY_BUDGET {
        return Err(JsError::new(&format!(
            "memory: {} unit(s) at once need about {} ({} each), over this page's budget of {}; \
             make the largest cell smaller (N, M, n or the methods' widths)",
            workers,
            human_bytes(need),
            human_bytes(per_unit),
            human_bytes(limits::PAGE_MEMORY_BUDGET)
        )));
    }
    Ok(per_unit)
}

/// The sweep presets' names.
#[wasm_bindgen(js_name = sweepPresets)]
pub fn sweep_presets() -> Array {
    SweepPreset::ALL
        .into_iter()
        .map(|p| JsValue::from_str(p.name()))
        .collect()
}

/// A sweep preset's config as a plain object.
#[wasm_bindgen(js_name = sweepPresetConfig)]
pub fn sweep_preset_config(name: &str) -> Result<JsValue, JsError> {
    let preset = SweepPreset::from_name(name).map_err(|e| JsError::new(&e.to_string()))?;
    to_js(&preset.config())
}

/// Check a sweep for this page whose pool has at most `max_workers` workers (it uses one per
/// unit up to that); returns `{config, cells, units,
/// unitBytes, unitMemory, methods, methodKinds, cellValues}` (the config with every default
/// filled in, the methods' labels and kinds, each cell's value per axis, the first axis
/// slowest), or throws the first
/// problem (a memory problem starts with `memory:`).
#[wasm_bindgen(js_name = validateSweep)]
pub fn validate_sweep(config: JsValue, max_workers: usize) -> Result<JsValue, JsError> {
    let sweep = sweep_from_js(config)?;
    let per_unit = check_sweep_for_page(&sweep, max_workers)?;
    let obj = Object::new();
    set(&obj, "config", to_js(&sweep)?);
    set(&obj, "cells", sweep.cell_count() as f64);
    set(&obj, "units", sweep.units().len() as f64);
    set(&obj, "unitBytes", per_unit as f64);
    set(&obj, "unitMemory", human_bytes(per_unit));
    set(&obj, "methods", to_js(&sweep.method_labels())?);
    let kinds: Vec<&str> = sweep
        .method_kinds()
        .into_iter()
        .map(|k| k.config_name())
        .collect();
    set(&obj, "methodKinds", to_js(&kinds)?);
    set(&obj, "cellValues", {
        let rows: Vec<Vec<f64>> = (0..sweep.cell_count())
            .map(|c| sweep.cell_values(c).into_iter().map(|(_, v)| v).collect())
            .collect();
        to_js(&rows)?
    });
    Ok(obj.into())
}

/// The experiment cell `cell` runs for seed 0, with every default filled in; throws why the
/// cell is invalid if it is.
#[wasm_bindgen(js_name = sweepCellConfig)]
pub fn sweep_cell_config(config: JsValue, cell: usize) -> Result<JsValue, JsError> {
    let sweep = sweep_from_js(config)?;
    if cell >= sweep.cell_count() {
        return Err(JsError::new(&format!(
            "cell {cell} is outside the sweep's {} cells",
            sweep.cell_count()
        )));
    }
    let checked = sweep
        .unit_config(Unit { cell, seed: 0 })
        .map_err(|e| JsError::new(&e.to_string()))?;
    to_js(&*checked)
}

/// The share link (the part after `#`) of a sweep, plus `extra` `[key, value]` pairs.
#[wasm_bindgen(js_name = encodeSweepLink)]
pub fn encode_sweep_link(config: JsValue, extra: JsValue) -> Result<String, JsError> {
    let sweep = sweep_from_js(config)?;
    sweep.validate().map_err(|e| JsError::new(&e.to_string()))?;
    let extra = super::link_extra(extra)?;
    let pairs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(share::encode_sweep(&sweep, &pairs))
}

/// Parse a sweep link: `{config, extra}`, or throws what was wrong.
#[wasm_bindgen(js_name = decodeSweepLink)]
pub fn decode_sweep_link(link: &str) -> Result<JsValue, JsError> {
    #[derive(serde::Serialize)]
    struct Decoded<'a> {
        config: &'a SweepConfig,
        extra: &'a [(String, String)],
    }
    let (config, extra) = share::decode_sweep(link).map_err(|e| JsError::new(&e.to_string()))?;
    to_js(&Decoded {
        config: &config,
        extra: &extra,
    })
}

/// Whether a link describes a sweep rather than one experiment.
#[wasm_bindgen(js_name = isSweepLink)]
pub fn is_sweep_link(link: &str) -> bool {
    share::is_sweep_link(link)
}

/// The weak-threshold curves of l1 recovery (Donoho-Tanner) at `points` values of delta:
/// `{delta: [], signed: [], nonneg: []}`.
#[wasm_bindgen(js_name = theoryCurves)]
pub fn theory_curves(points: usize) -> Result<JsValue, JsError> {
    if points == 0 || points > 100_000 {
        return Err(JsError::new("points must be between 1 and 100,000"));
    }
    let rows = theory::curves(points);
    let obj = Object::new();
    let column = |f: fn(&(f64, f64, f64)) -> f64| -> JsValue {
        rows.iter()
            .map(|r| JsValue::from_f64(f(r)))
            .collect::<Array>()
            .into()
    };
    set(&obj, "delta", column(|r| r.0));
    set(&obj, "signed", column(|r| r.1));
    set(&obj, "nonneg", column(|r| r.2));
    Ok(obj.into())
}

/// A sweep's results file (the CLI's schema) from its config and the units done so far (each
/// a `UnitResult` JSON text, as [`SweepRunner::take_results`] gives them), with where they
/// were computed (`{kind, name, notice}`, or undefined).
#[wasm_bindgen(js_name = sweepResultsJson)]
pub fn sweep_results_json(
    config: JsValue,
    units: Vec<String>,
    backend: JsValue,
) -> Result<String, JsError> {
    let sweep = sweep_from_js(config)?;
    let units = units
        .iter()
        .map(|u| serde_json::from_str::<UnitResult>(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| JsError::new(&format!("a unit's results: {e}")))?;
    let mut results = SweepResults::new(sweep, units);
    if !backend.is_undefined() && !backend.is_null() {
        results.backend = Some(
            serde_wasm_bindgen::from_value::<BackendInfo>(backend)
                .map_err(|e| JsError::new(&format!("the backend: {e}")))?,
        );
    }
    // Round-trip through the reader so the page never writes a file it would refuse.
    SweepResults::from_json(&results.to_json()).map_err(|e| JsError::new(&e))?;
    Ok(results.to_json())
}

/// Read a sweep results file (from the CLI or the page) or several shards of one sweep and
/// return one normalised JSON text; throws what is wrong.
#[wasm_bindgen(js_name = mergeSweepResults)]
pub fn merge_sweep_results(parts: Vec<String>) -> Result<String, JsError> {
    let parsed = parts
        .iter()
        .map(|p| SweepResults::from_json(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| JsError::new(&e))?;
    SweepResults::merge(parsed)
        .map(|r| r.to_json())
        .map_err(|e| JsError::new(&e))
}

/// A queue of a sweep's units computed in bounded slices on this thread (a worker's share):
/// on the CPU one unit at a time; on a GPU in stacks of the queued units that differ only in
/// their data, seed, training rates and TopK's k ([`UnitStack`], as the CLI computes them), so a
/// phase diagram's row, a cell's seeds or a lambda or k axis is one stack per method.
#[wasm_bindgen]
pub struct SweepRunner {
    sweep: SweepConfig,
    queue: VecDeque<Unit>,
    current: Option<Current>,
    finished: Vec<String>,
    units_done: u32,
    chunk: u64,
    /// The GPU the units compute on, and most units per stack; `None`: the CPU.
    gpu: Option<(Arc<dyn Backend>, usize)>,
    /// On a GPU: the queued units grouped into stacks, to compute in turn.
    stacks: VecDeque<Vec<Unit>>,
    report: SweepBackend,
}

/// What a runner computes now.
enum Current {
    Unit(UnitRun),
    Stack(UnitStack),
}

/// The backend a runner computes on, for the page: `kind` (cpu or gpu), `name`, the adapter,
/// why it is not the one asked for (or why the GPU stopped), and the units per stack at most.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SweepBackend {
    requested: String,
    kind: BackendKind,
    name: String,
    notice: Option<String>,
    adapter: Option<crate::compute::gpu::AdapterSummary>,
    max_members: usize,
}

/// Options of [`SweepRunner::create`].
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
struct SweepOptions {
    /// auto, cpu or gpu.
    backend: Option<String>,
    /// Units computed at once over the whole pool (for the memory budget).
    parallel: Option<usize>,
    /// Workers the CPU alternative would have (auto compares the GPU against all of them).
    cpu_workers: Option<usize>,
}

impl std::fmt::Debug for SweepRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SweepRunner")
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

fn cpu_report(requested: String, notice: Option<String>) -> SweepBackend {
    SweepBackend {
        requested,
        kind: BackendKind::Cpu,
        name: "CPU (one unit per worker)".to_string(),
        notice,
        adapter: None,
        max_members: 1,
    }
}

#[wasm_bindgen]
impl SweepRunner {
    /// Check the sweep for `parallel` workers at once (the page's memory budget); no unit yet.
    /// Computes on the CPU.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue, parallel: usize) -> Result<SweepRunner, JsError> {
        let sweep = sweep_from_js(config)?;
        check_sweep_for_page(&sweep, parallel)?;
        Ok(Self::on(sweep, None, cpu_report("cpu".to_string(), None)))
    }

    /// As the constructor, choosing the backend (`options.backend`: `auto` (default), `cpu`
    /// or `gpu`, chosen as for one experiment (`Playground.create`), judged on the sweep's
    /// largest unit stacked as its units will be; `auto` against the CPU in
    /// `options.cpuWorkers` workers), with the memory budget counting `options.parallel` units
    /// at once (on a GPU: the units of one stack).
    pub async fn create(config: JsValue, options: JsValue) -> Result<SweepRunner, JsError> {
        let sweep = sweep_from_js(config)?;
        let options: SweepOptions = if options.is_undefined() || options.is_null() {
            SweepOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options)
                .map_err(|e| JsError::new(&format!("SweepRunner.create options: {e}")))?
        };
        let parallel = options.parallel.unwrap_or(1).max(1);
        let per_unit = check_sweep_for_page(&sweep, parallel)?;
        let requested = options.backend.unwrap_or_else(|| "auto".into());
        let choice = BackendChoice::parse(&requested).map_err(|e| JsError::new(&e))?;
        if choice == BackendChoice::Cpu {
            return Ok(Self::on(sweep, None, cpu_report(requested, None)));
        }
        let Some(probe) = sweep.probe_config() else {
            return Ok(Self::on(sweep, None, cpu_report(requested, None)));
        };
        let pool = options.cpu_workers.unwrap_or(1).max(1);
        let chosen = select::choose(choice, 1, pool, &probe, clock_seconds).await;
        if chosen.backend.kind() != BackendKind::Gpu {
            return Ok(Self::on(sweep, None, cpu_report(requested, chosen.notice)));
        }
        // A stack holds its units' data and tensors at once: as many as the budget allows.
        let budget = usize::try_from(limits::PAGE_MEMORY_BUDGET / per_unit.max(1))
            .unwrap_or(usize::MAX)
            .max(1);
        let max_members = stack_cap(chosen.grouping).min(budget);
        let report = SweepBackend {
            requested,
            kind: BackendKind::Gpu,
            name: chosen.backend.name(),
            notice: chosen.notice,
            adapter: chosen.adapter,
            max_members,
        };
        Ok(Self::on(sweep, Some((chosen.backend, max_members)), report))
    }

    fn on(
        sweep: SweepConfig,
        gpu: Option<(Arc<dyn Backend>, usize)>,
        report: SweepBackend,
    ) -> Self {
        SweepRunner {
            sweep,
            queue: VecDeque::new(),
            current: None,
            finished: Vec::new(),
            units_done: 0,
            chunk: 16,
            gpu,
            stacks: VecDeque::new(),
            report,
        }
    }

    /// `{requested, kind, name, notice, adapter, maxMembers}`: the backend the units compute
    /// on (see [`SweepRunner::create`]); after a GPU failure, the CPU and why.
    #[wasm_bindgen(js_name = backendInfo)]
    pub fn backend_info(&self) -> Result<JsValue, JsError> {
        to_js(&self.report)
    }

    /// Queue units, given flat as `[cell, seed, cell, seed, ...]`. Throws on a unit outside
    /// the sweep.
    #[wasm_bindgen(js_name = addUnits)]
    pub fn add_units(&mut self, flat: Int32Array) -> Result<(), JsError> {
        let flat = flat.to_vec();
        if flat.len() % 2 != 0 {
            return Err(JsError::new("units come as cell, seed pairs"));
        }
        let cells = self.sweep.cell_count();
        for pair in flat.chunks(2) {
            let (cell, seed) = (pair[0], pair[1]);
            if cell < 0 || seed < 0 || cell as usize >= cells || seed as u32 >= self.sweep.seeds {
                return Err(JsError::new(&format!(
                    "unit (cell {cell}, seed {seed}) is outside the sweep"
                )));
            }
            self.queue.push_back(Unit {
                cell: cell as usize,
                seed: seed as u32,
            });
        }
        Ok(())
    }

    /// Units queued or under way.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.stacks.iter().map(Vec::len).sum::<usize>() + self.current_units()
    }

    /// Units finished by this runner.
    #[wasm_bindgen(js_name = unitsDone)]
    pub fn units_done(&self) -> u32 {
        self.units_done
    }

    /// How far the unit (or stack of units) under way is, from 0 to 1 (0 when none is).
    #[wasm_bindgen(js_name = currentFraction)]
    pub fn current_fraction(&self) -> f64 {
        let (done, total) = match &self.current {
            None => return 0.0,
            Some(Current::Unit(run)) => run.work(),
            Some(Current::Stack(stack)) => stack.work(),
        };
        if total == 0 {
            0.0
        } else {
            done as f64 / total as f64
        }
    }

    /// Units under way at once (the units of the stack under way on a GPU).
    #[wasm_bindgen(js_name = currentUnits)]
    pub fn current_units(&self) -> usize {
        match &self.current {
            None => 0,
            Some(Current::Unit(_)) => 1,
            Some(Current::Stack(stack)) => stack.units().len(),
        }
    }

    /// The next thing to compute: on a GPU the next stack of queued units (the queue is
    /// grouped by [`stack_groups`] once per batch of units added), else the front unit alone.
    fn next(&mut self) -> Option<Current> {
        let Some((device, most)) = self.gpu.clone() else {
            let front = self.queue.pop_front()?;
            return Some(Current::Unit(UnitRun::new(
                &self.sweep,
                front,
                Arc::new(CpuBackend::new(1)),
                clock_seconds,
            )));
        };
        if self.stacks.is_empty() {
            let queued: Vec<Unit> = self.queue.drain(..).collect();
            self.stacks = stack_groups(&self.sweep, &queued, most).into();
        }
        let group = self.stacks.pop_front()?;
        Some(
            match UnitStack::new(&self.sweep, &group, device.clone(), clock_seconds) {
                Ok(stack) => Current::Stack(stack),
                // Not a valid experiment (a group of its own): reported, not run.
                Err(_) => Current::Unit(UnitRun::new(&self.sweep, group[0], device, clock_seconds)),
            },
        )
    }

    /// The GPU stopped: its stack's units and every unit not started go back to the queue, and
    /// compute on the CPU, the notice saying why.
    fn fall_back_to_cpu(&mut self, units: &[Unit], failure: &str) {
        let waiting: Vec<Unit> = self.stacks.drain(..).flatten().collect();
        for &u in units.iter().chain(&waiting).rev() {
            self.queue.push_front(u);
        }
        self.gpu = None;
        let requested = std::mem::take(&mut self.report.requested);
        self.report = cpu_report(
            requested,
            Some(format!(
                "the GPU stopped ({failure}); the units not finished compute on the CPU"
            )),
        );
    }

    /// Compute for about `budget_ms` milliseconds; returns whether the queue is empty.
    #[wasm_bindgen(js_name = runFor)]
    pub fn run_for(&mut self, budget_ms: f64) -> bool {
        let budget = if budget_ms.is_finite() {
            budget_ms.clamp(1.0, 10_000.0) / 1000.0
        } else {
            0.05
        };
        let start = clock_seconds();
        while clock_seconds() - start < budget {
            if let (Some((device, _)), Some(Current::Stack(stack))) = (&self.gpu, &self.current) {
                // The device has a full queue, or the stack waits for its reads: yield, so
                // the worker's event loop delivers them and Pause lands at once; smaller
                // chunks next time keep a submission to a few milliseconds.
                if device.busy() {
                    self.chunk = (self.chunk * 3 / 4).max(1);
                    break;
                }
                if stack.is_evaluating() && clock_seconds() - start > budget / 4.0 {
                    break;
                }
            }
            if self.current.is_none() {
                // Each unit on its own single-threaded CPU backend (the worker is the
                // thread), or a stack of units on the GPU.
                let Some(next) = self.next() else { break };
                self.current = Some(next);
            }
            let t0 = clock_seconds();
            let chunk = self.chunk;
            let (done, failure) = match self.current.as_mut().expect("something is under way") {
                Current::Unit(run) => (run.advance(chunk), None),
                Current::Stack(stack) => {
                    let done = stack.advance(chunk);
                    (done, stack.backend_failure().map(str::to_string))
                }
            };
            let took = clock_seconds() - t0;
            if took < budget / 8.0 {
                // A GPU's steps are enqueued, not run, within `took`: cap its chunk.
                let cap = if self.gpu.is_some() { 2048 } else { 1 << 20 };
                self.chunk = (self.chunk * 2).min(cap);
            } else if took > budget / 2.0 && self.chunk > 1 {
                self.chunk /= 2;
            }
            if let Some(failure) = failure {
                if let Some(Current::Stack(stack)) = self.current.take() {
                    self.fall_back_to_cpu(stack.units(), &failure);
                }
                continue;
            }
            if done {
                let results = match self.current.take().expect("something is under way") {
                    Current::Unit(run) => vec![run.result()],
                    Current::Stack(stack) => stack.results(),
                };
                for result in results {
                    self.finished.push(
                        serde_json::to_string(&result).expect("a unit's results always serialise"),
                    );
                    self.units_done += 1;
                }
            }
        }
        self.pending() == 0
    }

    /// The results of the units finished since the last call, each a `UnitResult` JSON text.
    #[wasm_bindgen(js_name = takeResults)]
    pub fn take_results(&mut self) -> Vec<String> {
        std::mem::take(&mut self.finished)
    }
}
