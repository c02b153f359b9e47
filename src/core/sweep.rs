//! Sweeps: one experiment over a grid of parameters, several seeds per cell, and the recovery
//! experiment of compressed sensing (Donoho-Tanner) as a sweep over delta = M/N and rho = K/M.
//!
//! A sweep is a base experiment, axes (each a parameter and its values; the grid is their
//! product), seeds per cell, and its kind:
//! - `experiment`: every cell runs the base experiment's methods with the cell's values; each
//!   seed regenerates the data and the initialisation (the paper's scaling study), and each
//!   method's final evaluation is kept;
//! - `recovery`: every cell draws a random Gaussian dictionary (known to the solvers) and
//!   K-sparse codes, and measures per solver (and per amortised encoder trained in the cell on
//!   the known dictionary) the fraction of test signals recovered: relative error of the code
//!   under a tolerance, or the exact support.
//!
//! The unit of work is one (cell, seed): a [`UnitRun`] advances in bounded increments like an
//! experiment, so a page can pause it, and units are independent, so they spread over threads,
//! workers, shards of a batch job; [`SweepResults::merge`] joins shards.

use super::config::{
    limits, preset_named, CheckedConfig, ConfigError, ExperimentConfig, MethodConfig, MethodKind,
    Preset, Setting, SolverConfig, TrainOverride, CONFIG_VERSION,
};
use super::data::Dataset;
use super::results::{BackendInfo, LogRecord};
use super::run::{
    method_names, Clock, DataTensors, Experiment, Grouping, Member, MemberSpec, StackRun,
};
use super::Matrix;
use crate::compute::Backend;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most cells one sweep may have, and most units (cells x seeds).
pub const MAX_CELLS: usize = 10_000;
pub const MAX_UNITS: usize = 100_000;
/// Most values one axis may take.
pub const MAX_AXIS_VALUES: usize = 256;

/// A parameter a sweep varies, named as in share links.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Param {
    /// Atoms N.
    N,
    /// Dimension M.
    M,
    /// Active atoms per sample K.
    K,
    /// Samples n (train = test; the trials of a recovery cell).
    #[serde(rename = "n")]
    Samples,
    #[serde(rename = "noise")]
    Noise,
    /// The L1 penalty lambda, of every method (it replaces the base's per-method lambdas).
    #[serde(rename = "l1")]
    Lambda,
    /// k of every TopK SAE.
    #[serde(rename = "k")]
    TopkK,
    /// The width of every MLP's hidden layers.
    #[serde(rename = "h")]
    Hidden,
    #[serde(rename = "steps")]
    Steps,
    /// The training learning rate, of every method (it replaces the base's per-method ones).
    #[serde(rename = "lr")]
    Lr,
    /// Biases of every encoder on (1) or off (0).
    #[serde(rename = "bias")]
    Bias,
    /// Iterations of every per-sample solver (Adam or FISTA).
    #[serde(rename = "solver_steps")]
    SolverSteps,
    /// delta = M / N (M = round(delta N)).
    #[serde(rename = "delta")]
    Delta,
    /// rho = K / M (K = round(rho M)).
    #[serde(rename = "rho")]
    Rho,
}

impl Param {
    pub const ALL: [Param; 14] = [
        Param::N,
        Param::M,
        Param::K,
        Param::Samples,
        Param::Noise,
        Param::Lambda,
        Param::TopkK,
        Param::Hidden,
        Param::Steps,
        Param::Lr,
        Param::Bias,
        Param::SolverSteps,
        Param::Delta,
        Param::Rho,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Param::N => "N",
            Param::M => "M",
            Param::K => "K",
            Param::Samples => "n",
            Param::Noise => "noise",
            Param::Lambda => "l1",
            Param::TopkK => "k",
            Param::Hidden => "h",
            Param::Steps => "steps",
            Param::Lr => "lr",
            Param::Bias => "bias",
            Param::SolverSteps => "solver_steps",
            Param::Delta => "delta",
            Param::Rho => "rho",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether its values must be whole numbers.
    fn whole(self) -> bool {
        matches!(
            self,
            Param::N
                | Param::M
                | Param::K
                | Param::Samples
                | Param::TopkK
                | Param::Hidden
                | Param::Steps
                | Param::Bias
                | Param::SolverSteps
        )
    }
}

/// One axis of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    pub param: Param,
    pub values: Vec<f64>,
    /// Take the values together with the axis before it (as many values, the i-th with the
    /// i-th) instead of multiplying the grid: the paper's width study runs (N, M, K) in
    /// {(16, 8, 3), (32, 16, 6), (64, 16, 6)}, three shapes rather than all their combinations.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_previous: bool,
}

impl Axis {
    pub fn new(param: Param, values: Vec<f64>) -> Self {
        Axis {
            param,
            values,
            with_previous: false,
        }
    }
}

/// What a sweep measures per cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepKind {
    /// The base experiment's methods, their final evaluation.
    #[default]
    Experiment,
    /// Recovery of planted codes through a known random dictionary.
    Recovery,
}

/// When a recovered code counts as a success.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "criterion", rename_all = "snake_case", deny_unknown_fields)]
pub enum Success {
    /// |s_hat - s| / |s| below `tol` (1e-2 by default).
    RelativeError {
        #[serde(default = "default_tol")]
        tol: f64,
    },
    /// The support of s_hat (entries above 1e-3 of its largest) is exactly that of s.
    Support,
    /// The K largest entries of s_hat (K: the number of atoms s uses) are exactly the support
    /// of s: the criterion for amortised encoders, whose codes are rarely exactly sparse and
    /// rarely within 1% of the true values, but can still pick the right atoms.
    TopSupport,
}

fn default_tol() -> f64 {
    1e-2
}

impl Default for Success {
    fn default() -> Self {
        Success::RelativeError { tol: default_tol() }
    }
}

/// The solvers of a recovery sweep (amortised encoders come from the base's methods).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryConfig {
    pub solvers: Vec<SolverConfig>,
    /// How the solvers' codes are scored.
    pub success: Success,
    /// How the amortised encoders' codes are scored.
    #[serde(default = "default_encoder_success")]
    pub encoder_success: Success,
}

fn default_encoder_success() -> Success {
    Success::TopSupport
}

/// The solver of recovery experiments: FISTA run to a duality-gap tolerance of 1e-5 (of half
/// each signal's squared norm), at most 10,000 iterations. A fixed count draws a false phase
/// boundary: 500 iterations at N = 256 leave cells far below the l1 curve unconverged.
pub fn recovery_fista(nonneg: bool) -> SolverConfig {
    SolverConfig::Fista {
        steps: 10_000,
        nonneg,
        tol: Some(1e-5),
    }
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            solvers: vec![recovery_fista(true)],
            success: Success::default(),
            encoder_success: default_encoder_success(),
        }
    }
}

/// A whole sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SweepConfig {
    pub version: u32,
    pub kind: SweepKind,
    /// The experiment every cell starts from (its `runs` is ignored: see `seeds`).
    pub base: ExperimentConfig,
    pub axes: Vec<Axis>,
    /// Seeds per cell: seed s regenerates the data and the initialisation from base.seed + s.
    pub seeds: u32,
    pub recovery: RecoveryConfig,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepPreset::QuickScaling.config()
    }
}

/// One unit of work: a cell and a seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Unit {
    pub cell: usize,
    pub seed: u32,
}

impl SweepConfig {
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        if !value.is_object() {
            return Err(ConfigError::Parse(
                "a sweep must be a JSON object {\"kind\": ..., \"base\": {...}, \"axes\": [...]}"
                    .into(),
            ));
        }
        if let Some(base) = value.get("base") {
            ExperimentConfig::from_value(base.clone())
                .map_err(|e| ConfigError::invalid("base", e.to_string()))?;
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::invalid(
                if path == "." { "sweep".into() } else { path },
                e.inner().to_string(),
            )
        })
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a sweep always serialises")
    }

    /// Cells in the grid (the product of the axes' lengths; 1 without axes).
    pub fn cell_count(&self) -> usize {
        self.axes
            .iter()
            .filter(|a| !a.with_previous)
            .map(|a| a.values.len())
            .try_fold(1usize, usize::checked_mul)
            .unwrap_or(usize::MAX)
    }

    /// Every unit, cell by cell, seed by seed.
    pub fn units(&self) -> Vec<Unit> {
        (0..self.cell_count())
            .flat_map(|cell| (0..self.seeds).map(move |seed| Unit { cell, seed }))
            .collect()
    }

    /// The units of shard `index` of `count` (every count-th unit from `index`).
    pub fn shard(&self, index: usize, count: usize) -> Vec<Unit> {
        self.units()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % count.max(1) == index)
            .map(|(_, u)| u)
            .collect()
    }

    /// The values of cell `cell`, one per axis (the first axis varies slowest; an axis taken
    /// with the one before it moves with it).
    pub fn cell_values(&self, cell: usize) -> Vec<(Param, f64)> {
        let mut rest = cell;
        let mut out = vec![(Param::N, 0.0); self.axes.len()];
        let mut end = self.axes.len();
        while end > 0 {
            // The group ending at `end`: its first axis and those taken with it.
            let start = (0..end)
                .rev()
                .find(|&i| !self.axes[i].with_previous)
                .unwrap_or(0);
            let len = self.axes[start].values.len().max(1);
            let index = rest % len;
            rest /= len;
            for i in start..end {
                let axis = &self.axes[i];
                out[i] = (axis.param, axis.values[index.min(axis.values.len() - 1)]);
            }
            end = start;
        }
        out
    }

    /// The experiment of a unit: the base with the cell's values, one run from base.seed +
    /// seed; for a recovery sweep, the known-dictionary setting with the solvers as methods
    /// after the base's encoders. Invalid cells (K above N, say) are errors that say why.
    pub fn unit_config(&self, unit: Unit) -> Result<CheckedConfig, ConfigError> {
        let mut cfg = self.base.clone();
        cfg.runs = 1;
        cfg.seed = self
            .base
            .seed
            .checked_add(u64::from(unit.seed))
            .ok_or_else(|| ConfigError::invalid("seed", "seed overflow"))?;
        let values = self.cell_values(unit.cell);
        let get = |p: Param| values.iter().find(|(q, _)| *q == p).map(|(_, v)| *v);
        for &(param, v) in &values {
            let whole = || v as usize;
            match param {
                Param::N => cfg.data.num_atoms = whole(),
                Param::M => cfg.data.data_dim = whole(),
                Param::K => cfg.data.sparsity_k = whole(),
                Param::Samples => cfg.data.num_samples = whole(),
                Param::Noise => cfg.data.noise_std = v,
                Param::Lambda => {
                    cfg.train.l1_penalty = v;
                    for o in cfg.train.per_method.values_mut() {
                        o.l1_penalty = None;
                    }
                    cfg.train.per_method.retain(|_, o| o.lr.is_some());
                }
                Param::Steps => {
                    cfg.train.steps = v as u64;
                    cfg.train.eval_steps.clear();
                    cfg.train.log_every = (v as u64).max(1);
                }
                Param::Lr => {
                    cfg.train.lr = v;
                    for o in cfg.train.per_method.values_mut() {
                        o.lr = None;
                    }
                    cfg.train.per_method.retain(|_, o| o.l1_penalty.is_some());
                }
                Param::TopkK | Param::Hidden | Param::Bias | Param::SolverSteps => {}
                Param::Delta | Param::Rho => {}
            }
        }
        // delta and rho after N: M = round(delta N), K = round(rho M), both at least 1.
        if let Some(delta) = get(Param::Delta) {
            cfg.data.data_dim = ((delta * cfg.data.num_atoms as f64).round() as usize).max(1);
        }
        if let Some(rho) = get(Param::Rho) {
            cfg.data.sparsity_k = ((rho * cfg.data.data_dim as f64).round() as usize).max(1);
        }
        if self.kind == SweepKind::Recovery {
            cfg.setting = Setting::KnownDictionary;
            cfg.methods.retain(|m| {
                matches!(
                    m,
                    MethodConfig::Sae { .. }
                        | MethodConfig::TopkSae { .. }
                        | MethodConfig::Mlp { .. }
                )
            });
            // A TopK SAE with k = 0 keeps the cell's K largest (as OMP takes K atoms), so one
            // config serves every sparsity of a phase diagram; a k axis still sets k.
            for m in &mut cfg.methods {
                if let MethodConfig::TopkSae { k, .. } = m {
                    if *k == 0 {
                        *k = cfg.data.sparsity_k;
                    }
                }
            }
            for s in &self.recovery.solvers {
                cfg.methods.push(MethodConfig::SparseCoding {
                    inference: s.clone(),
                });
            }
            if cfg
                .methods
                .iter()
                .all(|m| matches!(m, MethodConfig::SparseCoding { .. }))
            {
                // Solvers alone train nothing: one evaluation at step 0.
                cfg.train.steps = 0;
                cfg.train.eval_steps.clear();
            }
        }
        for m in &mut cfg.methods {
            for &(param, v) in &values {
                let w = v as usize;
                if param == Param::TopkK {
                    if let Some(k) = m.topk_k_mut() {
                        *k = w;
                    }
                }
                match (param, &mut *m) {
                    (Param::Hidden, MethodConfig::Mlp { hidden, .. }) => {
                        hidden.iter_mut().for_each(|h| *h = w)
                    }
                    (
                        Param::Bias,
                        MethodConfig::Sae { bias }
                        | MethodConfig::TopkSae { bias, .. }
                        | MethodConfig::Mlp { bias, .. }
                        | MethodConfig::SaeIto { bias, .. },
                    ) => *bias = w != 0,
                    (
                        Param::SolverSteps,
                        MethodConfig::SparseCoding { inference }
                        | MethodConfig::SaeIto { inference, .. },
                    ) => match inference {
                        SolverConfig::Adam { steps, .. }
                        | SolverConfig::AdamTopk { steps, .. }
                        | SolverConfig::Fista { steps, .. } => *steps = v as u64,
                        SolverConfig::Omp { .. } => {}
                    },
                    _ => {}
                }
            }
        }
        cfg.validate()
    }

    /// Check the sweep's own rules (sizes, values, seeds) and that at least one cell is a
    /// valid experiment. Invalid cells are allowed (they are reported, not run).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version != CONFIG_VERSION {
            return Err(ConfigError::invalid(
                "version",
                format!(
                    "this build reads version {CONFIG_VERSION}, got {}",
                    self.version
                ),
            ));
        }
        if self.seeds == 0 || self.seeds > limits::MAX_RUNS {
            return Err(ConfigError::invalid(
                "seeds",
                format!(
                    "must be between 1 and {}, got {}",
                    limits::MAX_RUNS,
                    self.seeds
                ),
            ));
        }
        for (i, axis) in self.axes.iter().enumerate() {
            let field = format!("axes[{i}]");
            if axis.values.is_empty() || axis.values.len() > MAX_AXIS_VALUES {
                return Err(ConfigError::invalid(
                    &field,
                    format!("{}: give 1 to {MAX_AXIS_VALUES} values", axis.param.name()),
                ));
            }
            if self.axes[..i].iter().any(|a| a.param == axis.param) {
                return Err(ConfigError::invalid(
                    &field,
                    format!("{} is swept twice", axis.param.name()),
                ));
            }
            for &v in &axis.values {
                let ok = v.is_finite() && v >= 0.0 && (!axis.param.whole() || v.fract() == 0.0);
                if !ok {
                    let what = if axis.param.whole() {
                        "whole numbers from 0 up"
                    } else {
                        "finite numbers from 0 up"
                    };
                    return Err(ConfigError::invalid(
                        &field,
                        format!("{} takes {what}, got {v}", axis.param.name()),
                    ));
                }
            }
            if axis.with_previous {
                let Some(lead) = self.axes[..i].iter().rev().find(|a| !a.with_previous) else {
                    return Err(ConfigError::invalid(
                        &field,
                        format!(
                            "{} is the first axis: there is no axis before it to take values with",
                            axis.param.name()
                        ),
                    ));
                };
                if lead.values.len() != axis.values.len() {
                    return Err(ConfigError::invalid(
                        &field,
                        format!(
                            "{} takes its values with {}: give {} values, got {}",
                            axis.param.name(),
                            lead.param.name(),
                            lead.values.len(),
                            axis.values.len()
                        ),
                    ));
                }
            }
            if matches!(axis.param, Param::Delta | Param::Rho) && self.kind != SweepKind::Recovery {
                return Err(ConfigError::invalid(
                    &field,
                    "delta and rho are axes of a recovery sweep",
                ));
            }
            if matches!(axis.param, Param::Delta | Param::Rho) {
                if let Some(v) = axis.values.iter().find(|v| !(**v > 0.0 && **v <= 1.0)) {
                    return Err(ConfigError::invalid(
                        &field,
                        format!(
                            "{} is a fraction (M/N, K/M): between 0 (exclusive) and 1, got {v}",
                            axis.param.name()
                        ),
                    ));
                }
            }
        }
        let cells = self.cell_count();
        if cells > MAX_CELLS {
            return Err(ConfigError::invalid(
                "axes",
                format!("{cells} cells; at most {MAX_CELLS}"),
            ));
        }
        if cells.saturating_mul(self.seeds as usize) > MAX_UNITS {
            return Err(ConfigError::invalid(
                "seeds",
                format!(
                    "{cells} cells x {} seeds is over {MAX_UNITS} units",
                    self.seeds
                ),
            ));
        }
        if self.kind == SweepKind::Recovery
            && self.recovery.solvers.is_empty()
            && !self.base.methods.iter().any(|m| {
                matches!(
                    m,
                    MethodConfig::Sae { .. }
                        | MethodConfig::TopkSae { .. }
                        | MethodConfig::Mlp { .. }
                )
            })
        {
            return Err(ConfigError::invalid(
                "recovery.solvers",
                "a recovery sweep needs a solver or an encoder",
            ));
        }
        if self.kind == SweepKind::Recovery
            && self.base.train.steps == 0
            && !self.axes.iter().any(|a| a.param == Param::Steps)
            && self.base.methods.iter().any(|m| {
                matches!(
                    m,
                    MethodConfig::Sae { .. }
                        | MethodConfig::TopkSae { .. }
                        | MethodConfig::Mlp { .. }
                )
            })
        {
            return Err(ConfigError::invalid(
                "base.train.steps",
                "the encoders train in each cell: give them at least 1 training step",
            ));
        }
        if let Success::RelativeError { tol } = self.recovery.success {
            if !(tol.is_finite() && tol > 0.0) {
                return Err(ConfigError::invalid(
                    "recovery.success.tol",
                    format!("must be a finite number above 0, got {tol}"),
                ));
            }
        }
        let first_error = (0..cells)
            .map(|cell| self.unit_config(Unit { cell, seed: 0 }))
            .try_fold(None, |first, r| match r {
                Ok(_) => Err(()),
                Err(e) => Ok(first.or(Some(e))),
            });
        match first_error {
            Err(()) => Ok(()),
            Ok(e) => Err(e.unwrap_or_else(|| ConfigError::invalid("axes", "no cell"))),
        }
    }

    /// The methods every unit reports, in order, named for the whole sweep: the parts of a
    /// name in parentheses that change from cell to cell are left out ("MLP (h=16)" and
    /// "MLP (h=32)" of a width sweep are "MLP"; "Sparse coding (L1 then top-k, k=3)" of a
    /// TopK sweep is "Sparse coding (L1 then top-k)").
    /// The kind of each method of [`method_labels`](Self::method_labels), in the same order
    /// (the page colours methods by kind).
    pub fn method_kinds(&self) -> Vec<super::config::MethodKind> {
        (0..self.cell_count())
            .find_map(|cell| self.unit_config(Unit { cell, seed: 0 }).ok())
            .map(|cfg| cfg.methods.iter().map(MethodConfig::kind).collect())
            .unwrap_or_default()
    }

    pub fn method_labels(&self) -> Vec<String> {
        // Per method: the name before the parentheses and the parts inside that every cell
        // shares so far.
        let mut labels: Vec<Option<(String, Vec<String>)>> = Vec::new();
        for cell in 0..self.cell_count() {
            let Ok(cfg) = self.unit_config(Unit { cell, seed: 0 }) else {
                continue;
            };
            let names = super::run::method_names(&cfg.methods);
            if labels.len() < names.len() {
                labels.resize(names.len(), None);
            }
            for (i, name) in names.into_iter().enumerate() {
                let (head, parts) = split_name(&name);
                match &mut labels[i] {
                    Some((_, shared)) => shared.retain(|p| parts.contains(p)),
                    slot @ None => *slot = Some((head, parts)),
                }
            }
        }
        labels
            .into_iter()
            .map(|l| match l {
                Some((head, parts)) if parts.is_empty() => head,
                Some((head, parts)) => format!("{head} ({})", parts.join(", ")),
                None => String::new(),
            })
            .collect()
    }

    /// The largest memory one unit needs (the biggest cell), for budgets of parallel units.
    pub fn unit_memory_bytes(&self) -> u64 {
        (0..self.cell_count())
            .filter_map(|cell| self.unit_config(Unit { cell, seed: 0 }).ok())
            .map(|c| c.memory_estimate(1).total_bytes())
            .max()
            .unwrap_or(0)
    }
}

/// How one method did in one unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodOutcome {
    pub name: String,
    /// The final evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<LogRecord>,
    /// A recovery sweep's measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryOutcome>,
    /// Why the method has no result (training diverged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The recovery of one method in one unit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryOutcome {
    /// Fraction of test signals recovered (by `criterion`).
    pub success_rate: f64,
    /// Mean over test signals of |s_hat - s| / |s|.
    pub mean_relative_error: f64,
    /// The criterion the method was scored by (the sweep's `success` for solvers, its
    /// `encoder_success` for encoders).
    #[serde(default)]
    pub criterion: Success,
    /// A convergence-tested solver's iterations and whether it converged before its cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converged: Option<bool>,
}

/// "Name (a, b)" as ("Name", ["a", "b"]).
fn split_name(name: &str) -> (String, Vec<String>) {
    match name.strip_suffix(')').and_then(|n| n.split_once(" (")) {
        Some((head, inner)) => (
            head.to_string(),
            inner.split(", ").map(str::to_string).collect(),
        ),
        None => (name.to_string(), Vec::new()),
    }
}

/// The results of one unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitResult {
    pub cell: usize,
    pub seed: u32,
    /// Why the cell is not a valid experiment (then `methods` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
    #[serde(default)]
    pub methods: Vec<MethodOutcome>,
}

/// A sweep's results file: the sweep and every unit done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepResults {
    pub version: u32,
    pub engine: String,
    pub sweep: SweepConfig,
    /// Where the units were computed (absent in the page's files, which compute on the CPU
    /// pool, and in merges of shards computed on different backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendInfo>,
    pub units: Vec<UnitResult>,
}

impl SweepResults {
    pub fn new(sweep: SweepConfig, mut units: Vec<UnitResult>) -> Self {
        units.sort_by_key(|u| (u.cell, u.seed));
        Self {
            version: CONFIG_VERSION,
            engine: format!("sparse-playground {}", env!("CARGO_PKG_VERSION")),
            sweep,
            backend: None,
            units,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results always serialise")
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not a sweep results file: {e}"))?;
        let sweep = value
            .get("sweep")
            .ok_or("not a sweep results file: no `sweep`")?;
        SweepConfig::from_json(&sweep.to_string())
            .map_err(|e| format!("not a sweep results file: its sweep: {e}"))?;
        let results: SweepResults =
            serde_json::from_value(value).map_err(|e| format!("not a sweep results file: {e}"))?;
        let cells = results.sweep.cell_count();
        if let Some(u) = results
            .units
            .iter()
            .find(|u| u.cell >= cells || u.seed >= results.sweep.seeds)
        {
            return Err(format!(
                "not a sweep results file: unit (cell {}, seed {}) is outside its sweep",
                u.cell, u.seed
            ));
        }
        Ok(results)
    }

    /// Join the results of shards of one sweep: every unit once (the first copy).
    pub fn merge(parts: Vec<SweepResults>) -> Result<SweepResults, String> {
        let mut parts = parts.into_iter();
        let first = parts.next().ok_or("nothing to merge")?;
        let sweep = first.sweep.clone();
        let mut backend = first.backend;
        let mut units = first.units;
        for part in parts {
            if part.sweep != sweep {
                return Err("the results are of different sweeps (their configs differ)".into());
            }
            if part.backend.as_ref().map(|b| (&b.kind, &b.name))
                != backend.as_ref().map(|b| (&b.kind, &b.name))
            {
                backend = None;
            }
            for u in part.units {
                if !units.iter().any(|v| v.cell == u.cell && v.seed == u.seed) {
                    units.push(u);
                }
            }
        }
        let mut merged = SweepResults::new(sweep, units);
        merged.backend = backend;
        Ok(merged)
    }
}

/// One unit being computed, in bounded increments.
pub struct UnitRun {
    pub unit: Unit,
    scoring: Scoring,
    experiment: Option<Experiment>,
    invalid: Option<String>,
}

impl std::fmt::Debug for UnitRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitRun")
            .field("unit", &self.unit)
            .finish_non_exhaustive()
    }
}

impl UnitRun {
    pub fn new(sweep: &SweepConfig, unit: Unit, backend: Arc<dyn Backend>, clock: Clock) -> Self {
        match sweep.unit_config(unit) {
            Ok(cfg) => Self {
                unit,
                scoring: Scoring::of(sweep),
                experiment: Some(
                    Experiment::build(cfg, backend, Grouping::PerRun, None).with_clock(clock),
                ),
                invalid: None,
            },
            Err(e) => Self {
                unit,
                scoring: Scoring::of(sweep),
                experiment: None,
                invalid: Some(e.to_string()),
            },
        }
    }

    pub fn is_done(&self) -> bool {
        self.experiment.as_ref().is_none_or(Experiment::is_done)
    }

    /// Work done and to do, in steps (see [`Experiment::work`]).
    pub fn work(&self) -> (u64, u64) {
        self.experiment.as_ref().map_or((0, 0), Experiment::work)
    }

    /// Advance by at most `max_steps` steps of work per method; returns whether it is done.
    pub fn advance(&mut self, max_steps: u64) -> bool {
        if let Some(exp) = self.experiment.as_mut() {
            if !exp.is_done() {
                exp.step(max_steps);
            }
        }
        self.is_done()
    }

    /// Run to the end on this thread (on a GPU, waiting for the queue between slices so
    /// that it never holds more than a slice of work); stops early when the backend fails.
    pub fn run_to_end(&mut self) {
        loop {
            let before = self.work().0;
            if self.advance(10_000) {
                break;
            }
            let Some(exp) = &self.experiment else { break };
            if exp.backend_failure().is_some() {
                break;
            }
            crate::compute::settle(exp.backend().as_ref(), self.work().0 != before);
        }
    }

    /// Why the backend stopped this unit (a lost device, an allocation that failed).
    pub fn backend_failure(&self) -> Option<&str> {
        self.experiment.as_ref()?.backend_failure()
    }

    /// The unit's results (at the end: each method's last evaluation and recovery).
    pub fn result(&self) -> UnitResult {
        let Some(exp) = &self.experiment else {
            return UnitResult {
                cell: self.unit.cell,
                seed: self.unit.seed,
                invalid: self.invalid.clone(),
                methods: Vec::new(),
            };
        };
        let methods = exp
            .runs()
            .map(|run| {
                let method = exp.config().methods.get(run.method_index);
                self.scoring
                    .outcome(run.name, method, run.member, exp.data())
            })
            .collect();
        UnitResult {
            cell: self.unit.cell,
            seed: self.unit.seed,
            invalid: None,
            methods,
        }
    }
}

/// How a sweep scores its units' methods.
#[derive(Clone, Copy, Debug)]
struct Scoring {
    kind: SweepKind,
    success: Success,
    encoder_success: Success,
}

impl Scoring {
    fn of(sweep: &SweepConfig) -> Self {
        Self {
            kind: sweep.kind,
            success: sweep.recovery.success,
            encoder_success: sweep.recovery.encoder_success,
        }
    }

    /// One method's outcome in one unit: its last evaluation and, for recovery, the success
    /// rate of its last codes against the unit's data.
    fn outcome(
        &self,
        name: &str,
        method: Option<&MethodConfig>,
        member: &Member,
        data: &Dataset,
    ) -> MethodOutcome {
        let record = member.log().last().cloned();
        let criterion = if matches!(method, Some(MethodConfig::SparseCoding { .. })) {
            self.success
        } else {
            self.encoder_success
        };
        let recovery = (self.kind == SweepKind::Recovery)
            .then(|| member.snapshot())
            .flatten()
            .map(|snap| {
                let mut out = recovery(&data.test_codes, &snap.codes, criterion);
                if let Some(stats) = record.as_ref().and_then(|r| r.solver) {
                    out.iterations = Some(stats.iterations);
                    out.converged = Some(stats.converged);
                }
                out
            });
        MethodOutcome {
            name: name.to_string(),
            record,
            recovery,
            error: member.failure().map(str::to_string),
        }
    }
}

/// What two units' experiments must share to be computed as members of one stack: everything
/// but the seed, how their data are drawn (K, noise, skew), the training rates (learning rates
/// and lambdas) and the k of top-k methods, which each member takes for itself, so their
/// shapes, models and schedules are the same; `None` for an invalid unit.
pub fn stack_key(sweep: &SweepConfig, unit: Unit) -> Option<String> {
    sweep.unit_config(unit).ok().and_then(key_of)
}

/// [`stack_key`] of a unit's config.
fn key_of(cfg: CheckedConfig) -> Option<String> {
    let mut cfg = cfg.into_inner();
    cfg.seed = 0;
    cfg.data.sparsity_k = 0;
    cfg.data.noise_std = 0.0;
    cfg.data.frequency_skew = 0.0;
    // Each member trains at its own rates and with its own top-k (`MemberSpec::config`).
    cfg.train.lr = 0.0;
    cfg.train.l1_penalty = 0.0;
    cfg.train.per_method.clear();
    for k in cfg.methods.iter_mut().filter_map(MethodConfig::topk_k_mut) {
        *k = 0;
    }
    serde_json::to_string(&cfg).ok()
}

/// `units` in groups that can each be one [`UnitStack`] of at most `max_members` units (those
/// with the same [`stack_key`], in the order of their first unit); an invalid unit is a group
/// of its own.
pub fn stack_groups(sweep: &SweepConfig, units: &[Unit], max_members: usize) -> Vec<Vec<Unit>> {
    let mut groups: Vec<Vec<Unit>> = Vec::new();
    let mut open: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for &unit in units {
        let Some(key) = stack_key(sweep, unit) else {
            groups.push(vec![unit]);
            continue;
        };
        match open.get(&key) {
            Some(&g) if groups[g].len() < max_members.max(1) => groups[g].push(unit),
            _ => {
                open.insert(key, groups.len());
                groups.push(vec![unit]);
            }
        }
    }
    groups
}

/// Most units one stack may hold under `grouping`, a backend's choice for the sweep's largest
/// unit (see [`SweepConfig::probe_config`]): 1 on the CPU, which runs units one per thread.
pub fn stack_cap(grouping: Grouping) -> usize {
    match grouping {
        Grouping::PerMethodUpTo(n) => n.max(1),
        Grouping::PerMethod => limits::MAX_RUNS as usize,
        Grouping::PerRun => 1,
    }
}

impl SweepConfig {
    /// The experiment a backend is judged on for this sweep: the unit with the largest
    /// tensor, with as many runs as the sweep's largest stack has units (units of one stack
    /// differ only in their data, seed, rates and k, which costs what runs of one experiment cost; at
    /// most the runs one experiment may have). `None` when no cell is a valid experiment.
    pub fn probe_config(&self) -> Option<CheckedConfig> {
        let largest = (0..self.cell_count())
            .filter_map(|cell| self.unit_config(Unit { cell, seed: 0 }).ok())
            .max_by_key(|c| c.largest_tensor_floats())?;
        let typical = stack_groups(self, &self.units(), limits::MAX_RUNS as usize)
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(1);
        let mut probe = largest.clone().into_inner();
        probe.runs = typical as u32;
        Some(probe.validate().unwrap_or(largest))
    }
}

/// Units of a sweep whose experiments differ only in their seed and data (see [`stack_key`]:
/// the seeds of a cell, cells along K or noise, the cells of a phase diagram at one M),
/// computed together: one stack per method with one member per unit, each member on its own
/// data and scored against it. On a GPU a phase diagram or a scaling grid is then a few
/// stacks, not one dispatch per kernel per unit; the numbers are those of the units run one by
/// one (tested).
pub struct UnitStack {
    units: Vec<Unit>,
    /// Each unit's names of its methods (a TopK SAE's name carries its own k).
    names: Vec<Vec<String>>,
    scoring: Scoring,
    config: Arc<CheckedConfig>,
    data: Vec<Arc<Dataset>>,
    stacks: Vec<StackRun>,
    backend: Arc<dyn Backend>,
    clock: Clock,
}

impl std::fmt::Debug for UnitStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitStack")
            .field("units", &self.units)
            .finish_non_exhaustive()
    }
}

impl UnitStack {
    /// `units` as one stack per method, or why they cannot be one (an invalid unit, or units
    /// with different [`stack_key`]s).
    pub fn new(
        sweep: &SweepConfig,
        units: &[Unit],
        backend: Arc<dyn Backend>,
        clock: Clock,
    ) -> Result<Self, String> {
        let Some(&first) = units.first() else {
            return Err("a stack needs at least one unit".to_string());
        };
        let configs = units
            .iter()
            .map(|&u| {
                sweep
                    .unit_config(u)
                    .map_err(|e| format!("unit {u:?} is not a valid experiment: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = key_of(configs[0].clone());
        if let Some((u, _)) = units
            .iter()
            .zip(&configs)
            .find(|(_, c)| key_of((*c).clone()) != key)
        {
            return Err(format!(
                "unit {u:?} differs from unit {first:?} in more than its data, seed, rates and k"
            ));
        }
        let data: Vec<Arc<Dataset>> = configs
            .iter()
            .map(|c| Arc::new(Dataset::generate(&c.data, c.seed)))
            .collect();
        let config = Arc::new(configs[0].clone());
        let tensors = Arc::new(if data.len() == 1 {
            DataTensors::upload(&*backend, &data[0], config.setting)
        } else {
            DataTensors::upload_stacked(&*backend, &data, config.setting)
        });
        let specs: Vec<MemberSpec> = configs
            .iter()
            .zip(&data)
            .map(|(c, d)| MemberSpec {
                run_index: 0,
                seed: c.seed,
                data: d.clone(),
                sparsity_k: c.data.sparsity_k,
                config: Arc::new(c.clone()),
            })
            .collect();
        let stacks = method_names(&config.methods)
            .into_iter()
            .enumerate()
            .map(|(m, name)| {
                StackRun::with_members(
                    config.clone(),
                    specs.clone(),
                    tensors.clone(),
                    backend.clone(),
                    m,
                    name,
                )
            })
            .collect();
        Ok(Self {
            units: units.to_vec(),
            names: configs.iter().map(|c| method_names(&c.methods)).collect(),
            scoring: Scoring::of(sweep),
            config,
            data,
            stacks,
            backend,
            clock,
        })
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// Whether some method's evaluation is under way (on a GPU: often waiting for reads).
    pub fn is_evaluating(&self) -> bool {
        self.stacks.iter().any(StackRun::is_evaluating)
    }

    pub fn is_done(&self) -> bool {
        self.stacks
            .iter()
            .all(|s| s.is_done() || s.backend_failure().is_some())
    }

    /// Work done and to do over every unit, in steps (as [`UnitRun::work`] sums).
    pub fn work(&self) -> (u64, u64) {
        let done = self.stacks.iter().map(StackRun::work_done).sum();
        let total = self.stacks.iter().map(StackRun::work_total).sum();
        (done, total)
    }

    /// Advance every method by at most `max_steps` steps of work; returns whether it is done.
    pub fn advance(&mut self, max_steps: u64) -> bool {
        let clock = self.clock;
        self.backend.poll();
        for s in self.stacks.iter_mut().filter(|s| !s.is_done()) {
            s.advance(max_steps, clock);
        }
        self.is_done()
    }

    /// Run to the end on this thread (see [`UnitRun::run_to_end`]).
    pub fn run_to_end(&mut self) {
        loop {
            let before = self.work().0;
            if self.advance(10_000) {
                break;
            }
            if self.backend_failure().is_some() {
                break;
            }
            crate::compute::settle(self.backend.as_ref(), self.work().0 != before);
        }
    }

    /// Why the backend stopped these units (a lost device, an allocation that failed).
    pub fn backend_failure(&self) -> Option<&str> {
        self.stacks.iter().find_map(StackRun::backend_failure)
    }

    /// Each unit's results, in the order of `units`.
    pub fn results(&self) -> Vec<UnitResult> {
        self.units
            .iter()
            .enumerate()
            .map(|(i, unit)| UnitResult {
                cell: unit.cell,
                seed: unit.seed,
                invalid: None,
                methods: self
                    .stacks
                    .iter()
                    .map(|s| {
                        let data = &self.data[if self.data.len() == 1 { 0 } else { i }];
                        self.scoring.outcome(
                            &self.names[i][s.method_index],
                            self.config.methods.get(s.method_index),
                            &s.members()[i],
                            data,
                        )
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Per test signal, whether `inferred` recovers `truth` (columns are samples), and the mean
/// relative error.
pub fn recovery(truth: &Matrix, inferred: &Matrix, success: Success) -> RecoveryOutcome {
    let n = truth.ncols().min(inferred.ncols());
    if n == 0 || truth.nrows() != inferred.nrows() {
        return RecoveryOutcome {
            success_rate: 0.0,
            mean_relative_error: f64::INFINITY,
            criterion: success,
            iterations: None,
            converged: None,
        };
    }
    let mut ok = 0usize;
    let mut total_err = 0.0;
    for j in 0..n {
        let (t, s) = (truth.column(j), inferred.column(j));
        let norm: f64 = t.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
        let diff: f64 = t
            .iter()
            .zip(s.iter())
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum::<f64>()
            .sqrt();
        let rel = if norm > 0.0 { diff / norm } else { diff };
        let rel = if rel.is_finite() { rel } else { f64::INFINITY };
        total_err += rel.min(1e6);
        let hit = match success {
            Success::RelativeError { tol } => rel < tol,
            Success::Support => {
                let peak = s.iter().fold(0f32, |m, v| m.max(v.abs()));
                let cut = 1e-3 * peak.max(f32::MIN_POSITIVE);
                t.iter()
                    .zip(s.iter())
                    .all(|(a, b)| (*a != 0.0) == (b.abs() > cut))
            }
            Success::TopSupport => {
                let k = t.iter().filter(|v| **v != 0.0).count();
                let mut order: Vec<usize> = (0..s.len()).collect();
                order.sort_by(|&a, &b| s[b].abs().total_cmp(&s[a].abs()));
                // The k largest must be the support and strictly above the rest (ties with an
                // atom outside it, all zeros included, do not count as picking the support).
                let inside = order[..k].iter().all(|&i| t[i] != 0.0);
                let separated = k == s.len() || k == 0 || s[order[k - 1]].abs() > s[order[k]].abs();
                inside && separated
            }
        };
        ok += usize::from(hit);
    }
    RecoveryOutcome {
        success_rate: ok as f64 / n as f64,
        mean_relative_error: total_err / n as f64,
        criterion: success,
        iterations: None,
        converged: None,
    }
}

/// The paper's studies, and the Donoho-Tanner experiment, as ready sweeps: each at a size
/// that finishes in minutes in a browser tab, and at the paper's (or the usual) full size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepPreset {
    Phase,
    PhaseFull,
    QuickScaling,
    Scaling,
    QuickL1,
    L1,
    QuickTopk,
    Topk,
    QuickWidth,
    Width,
    QuickBias,
    Bias,
}

impl SweepPreset {
    pub const ALL: [SweepPreset; 12] = [
        SweepPreset::Phase,
        SweepPreset::PhaseFull,
        SweepPreset::QuickScaling,
        SweepPreset::Scaling,
        SweepPreset::QuickL1,
        SweepPreset::L1,
        SweepPreset::QuickTopk,
        SweepPreset::Topk,
        SweepPreset::QuickWidth,
        SweepPreset::Width,
        SweepPreset::QuickBias,
        SweepPreset::Bias,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SweepPreset::Phase => "phase",
            SweepPreset::PhaseFull => "phase-full",
            SweepPreset::QuickScaling => "quick-scaling",
            SweepPreset::Scaling => "scaling",
            SweepPreset::QuickL1 => "quick-l1",
            SweepPreset::L1 => "l1",
            SweepPreset::QuickTopk => "quick-topk",
            SweepPreset::Topk => "topk",
            SweepPreset::QuickWidth => "quick-width",
            SweepPreset::Width => "width",
            SweepPreset::QuickBias => "quick-bias",
            SweepPreset::Bias => "bias",
        }
    }

    pub fn from_name(name: &str) -> Result<Self, ConfigError> {
        preset_named(Self::ALL, SweepPreset::name, name, "sweep preset")
    }

    pub fn config(self) -> SweepConfig {
        let base = |setting: Setting, methods: Vec<MethodConfig>, steps: u64, lr: f64| {
            let mut cfg = Preset::UnknownZD.config();
            cfg.setting = setting;
            cfg.methods = methods;
            cfg.train.steps = steps;
            cfg.train.log_every = steps.max(1);
            cfg.train.eval_steps.clear();
            cfg.train.lr = lr;
            cfg.runs = 1;
            cfg
        };
        let axis = |param: Param, values: &[f64]| Axis::new(param, values.to_vec());
        let grid = |k: usize| (1..=k).map(|i| i as f64 / k as f64).collect::<Vec<_>>();
        let sae = MethodConfig::Sae { bias: false };
        let mlp = |h: usize| MethodConfig::Mlp {
            hidden: vec![h],
            bias: false,
        };
        let sc = |steps: u64, lr: f64| MethodConfig::SparseCoding {
            inference: SolverConfig::Adam { steps, lr },
        };
        let quick = |(mut s, steps, lr): (SweepConfig, u64, f64)| {
            s.base.train.steps = steps;
            s.base.train.log_every = steps;
            s.base.train.lr = lr;
            s
        };
        let mut s = SweepConfig {
            version: CONFIG_VERSION,
            kind: SweepKind::Experiment,
            base: base(Setting::Unknown, vec![sae.clone()], 1000, 1e-3),
            axes: Vec::new(),
            seeds: 3,
            recovery: RecoveryConfig::default(),
        };
        match self {
            SweepPreset::Phase | SweepPreset::PhaseFull => {
                let full = self == SweepPreset::PhaseFull;
                s.kind = SweepKind::Recovery;
                s.base = base(Setting::KnownDictionary, Vec::new(), 0, 1e-3);
                s.base.data.num_atoms = if full { 1000 } else { 256 };
                s.base.data.num_samples = if full { 100 } else { 10 };
                s.base.train.l1_penalty = 1e-3;
                s.axes = vec![
                    axis(Param::Delta, &grid(if full { 30 } else { 20 })),
                    axis(Param::Rho, &grid(if full { 30 } else { 20 })),
                ];
                s.seeds = 1;
                s.recovery.solvers = vec![recovery_fista(true)];
            }
            SweepPreset::QuickScaling | SweepPreset::Scaling => {
                let full = self == SweepPreset::Scaling;
                s.base = base(
                    Setting::Unknown,
                    vec![sae, mlp(32), sc(10_000, 3e-3)],
                    50_000,
                    1e-3,
                );
                // The paper's learning rates: SAE and MLP at 1e-3, sparse coding at 3e-3.
                s.base.train.per_method.insert(
                    MethodKind::SparseCoding,
                    TrainOverride {
                        lr: Some(3e-3),
                        l1_penalty: None,
                    },
                );
                s.axes = vec![
                    axis(Param::K, if full { &[3.0, 9.0] } else { &[3.0] }),
                    axis(Param::N, &[16.0, 32.0, 64.0, 128.0]),
                    axis(Param::M, &[8.0, 16.0, 32.0]),
                ];
                if !full {
                    s.base.methods =
                        vec![MethodConfig::Sae { bias: false }, mlp(32), sc(1000, 1e-2)];
                    // Short runs train every method at 3e-3.
                    s.base.train.per_method.clear();
                    s.base.data.num_samples = 256;
                    s.seeds = 1;
                    s = quick((s, 2000, 3e-3));
                }
            }
            SweepPreset::QuickL1 | SweepPreset::L1 => {
                let full = self == SweepPreset::L1;
                s.base = base(
                    Setting::Unknown,
                    vec![sc(10_000, 3e-3), MethodConfig::Sae { bias: false }, mlp(32)],
                    100_000,
                    3e-3,
                );
                s.axes = vec![axis(
                    Param::Lambda,
                    if full {
                        &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0]
                    } else {
                        &[0.001, 0.01, 0.1, 1.0]
                    },
                )];
                s.base.metrics.l0_threshold = 1e-4;
                if !full {
                    s.base.methods[0] = sc(1000, 1e-2);
                    s.base.data.num_samples = 256;
                    s.seeds = 1;
                    // 6,000 steps: the fewest at which sparse coding leads at every lambda, as
                    // it does at the paper's size (after 2,000 the SAE led at 0.01 and 1).
                    s = quick((s, 6000, 3e-3));
                }
            }
            SweepPreset::QuickTopk | SweepPreset::Topk => {
                let full = self == SweepPreset::Topk;
                // Sparse coding trained with L1, its test codes with the TopK after the L1
                // inference or inside the code optimisation (the k of both follows the axis).
                let sc_topk = |steps: u64, lr: f64, inside: bool| MethodConfig::SparseCoding {
                    inference: SolverConfig::AdamTopk {
                        steps,
                        lr,
                        k: 3,
                        inside,
                    },
                };
                s.base = base(
                    Setting::Unknown,
                    vec![
                        MethodConfig::TopkSae { k: 3, bias: false },
                        sc_topk(10_000, 3e-3, false),
                        sc_topk(10_000, 3e-3, true),
                    ],
                    20_000,
                    1e-3,
                );
                // As in the paper, sparse coding trains (and infers) with lambda 0.5; the TopK
                // SAE keeps the experiment's.
                s.base.train.per_method.insert(
                    MethodKind::SparseCoding,
                    TrainOverride {
                        lr: None,
                        l1_penalty: Some(0.5),
                    },
                );
                s.axes = vec![axis(
                    Param::TopkK,
                    &[1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 10.0, 15.0],
                )];
                if !full {
                    s.base.methods[1] = sc_topk(1000, 1e-2, false);
                    s.base.methods[2] = sc_topk(1000, 1e-2, true);
                    s.base.data.num_samples = 512;
                    s.seeds = 1;
                    s = quick((s, 3000, 3e-3));
                }
            }
            SweepPreset::QuickWidth | SweepPreset::Width => {
                let full = self == SweepPreset::Width;
                s.base = base(Setting::Unknown, vec![mlp(32)], 100_000, 3e-4);
                s.axes = vec![axis(
                    Param::Hidden,
                    if full {
                        &[16.0, 32.0, 64.0, 128.0, 256.0, 512.0]
                    } else {
                        &[16.0, 32.0, 64.0, 128.0]
                    },
                )];
                if full {
                    // The paper's three shapes (N, M, K), each over every width.
                    let with = |param, values: &[f64]| Axis {
                        with_previous: true,
                        ..axis(param, values)
                    };
                    s.axes.splice(
                        0..0,
                        [
                            axis(Param::N, &[16.0, 32.0, 64.0]),
                            with(Param::M, &[8.0, 16.0, 16.0]),
                            with(Param::K, &[3.0, 6.0, 6.0]),
                        ],
                    );
                }
                if !full {
                    s.base.data.num_samples = 512;
                    s.seeds = 1;
                    s = quick((s, 2000, 3e-3));
                }
            }
            SweepPreset::QuickBias | SweepPreset::Bias => {
                let full = self == SweepPreset::Bias;
                s.base = base(
                    Setting::Unknown,
                    vec![MethodConfig::Sae { bias: false }, mlp(64)],
                    100_000,
                    1e-3,
                );
                // The paper trains this study's MLP at 1e-4 (the SAE at 1e-3).
                s.base.train.per_method.insert(
                    MethodKind::Mlp,
                    TrainOverride {
                        lr: Some(1e-4),
                        l1_penalty: None,
                    },
                );
                s.axes = vec![axis(Param::Bias, &[0.0, 1.0])];
                if !full {
                    // Short runs train every method at 3e-3.
                    s.base.train.per_method.clear();
                    s.base.data.num_samples = 512;
                    s.seeds = 1;
                    s = quick((s, 2000, 3e-3));
                }
            }
        }
        s
    }
}
