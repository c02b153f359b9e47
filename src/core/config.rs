//! The one serde config that describes a whole experiment, its validation and the paper presets.
//!
//! A config is parsed (unchecked), then `validate` turns it into a [`CheckedConfig`]: the only
//! thing the engine accepts. Every rule lives here, so a bad config fails before any work starts
//! with a message that names the field and says what would be accepted.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Schema version of configs, results files and share links.
pub const CONFIG_VERSION: u32 = 1;

/// Size limits, chosen so that one run stays well inside a browser tab's memory (wasm32 has at
/// most 4 GiB and tabs are killed far earlier) and a CLI run cannot be launched by a typo.
pub mod limits {
    pub const MAX_ATOMS: usize = 4096;
    pub const MAX_DATA_DIM: usize = 4096;
    pub const MAX_SAMPLES: usize = 262_144;
    pub const MAX_HIDDEN_WIDTH: usize = 16_384;
    pub const MAX_HIDDEN_LAYERS: usize = 8;
    pub const MAX_METHODS: usize = 16;
    pub const MAX_RUNS: u32 = 64;
    pub const MAX_STEPS: u64 = 10_000_000;
    pub const MAX_INFERENCE_STEPS: u64 = 1_000_000;
    /// f32 values one (method, seed) run may hold at once: 64 Mi floats, 256 MiB.
    pub const MAX_FLOATS_PER_RUN: u64 = 64 << 20;
    /// Evaluations one run may log (each is a record kept by the engine and the page).
    pub const MAX_EVALUATIONS_PER_RUN: u64 = 100_000;
    /// Bytes one logged evaluation costs across the engine (the record), the page (its row
    /// and chart points) and a results file's JSON text: an upper figure.
    pub const BYTES_PER_RECORD: u64 = 1024;
    /// The whole experiment's memory on the page: a browser tab is killed well before wasm32's
    /// 4 GiB, and a tab shares the machine with the rest of the browser.
    pub const PAGE_MEMORY_BUDGET: u64 = 1 << 30;
    /// Seeds must survive a round trip through a JavaScript number (and so a share link).
    pub const MAX_SEED: u64 = (1 << 53) - 1;
}

/// What the experiment gives the methods for free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// The true codes are given: train only an encoder to predict them (supervised).
    KnownCodes,
    /// The true dictionary is given and frozen: only inference is learned or optimised.
    KnownDictionary,
    /// Nothing is known: dictionary and inference are learned together (the paper's main result).
    Unknown,
}

impl Setting {
    pub fn label(self) -> &'static str {
        match self {
            Setting::KnownCodes => "known codes (supervised)",
            Setting::KnownDictionary => "known dictionary",
            Setting::Unknown => "unknown codes and dictionary",
        }
    }
}

/// The synthetic data model: x = sum_j s_j d_j with K-sparse codes s in R^N and atoms d_j in R^M.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// N: number of latent sources (dictionary atoms).
    pub num_atoms: usize,
    /// M: dimension of each measurement.
    pub data_dim: usize,
    /// K: active sources per sample.
    pub sparsity_k: usize,
    /// n: samples in the training set; the test set has as many again.
    pub num_samples: usize,
    /// Standard deviation of Gaussian noise added to every measurement entry (0 = the paper).
    pub noise_std: f64,
    /// Codes are N(0,1) instead of half-normal |N(0,1)| (false = the paper).
    pub signed_codes: bool,
    /// Zipf exponent of feature frequencies: atom i is active with weight 1/(i+1)^skew
    /// (0 = uniform, the paper).
    pub frequency_skew: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            num_atoms: 16,
            data_dim: 8,
            sparsity_k: 3,
            num_samples: 1024,
            noise_std: 0.0,
            signed_codes: false,
            frequency_skew: 0.0,
        }
    }
}

/// A per-sample inference routine: codes for new data given a fixed dictionary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "solver", rename_all = "snake_case", deny_unknown_fields)]
pub enum SolverConfig {
    /// The paper's routine: Adam on u with s = exp(u), u starting at -10, on the training loss.
    Adam {
        #[serde(default = "default_adam_steps")]
        steps: u64,
        #[serde(default = "default_adam_lr")]
        lr: f64,
    },
    /// FISTA on the same L1 objective (non-negative codes unless `nonneg` is false). Without
    /// `tol` it runs exactly `steps` iterations; with it, `steps` is a cap, the penalty is
    /// approached by continuation, and it stops once every sample's duality gap is at most
    /// `tol` times half its squared norm (see [`crate::core::solvers::FistaRun`]).
    Fista {
        #[serde(default = "default_fista_steps")]
        steps: u64,
        #[serde(default = "default_true")]
        nonneg: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tol: Option<f64>,
    },
    /// Orthogonal matching pursuit: greedy K-sparse least squares (k defaults to the data's K).
    Omp {
        #[serde(default)]
        k: Option<usize>,
    },
    /// The paper's Adam on log-codes with a TopK on the codes (the paper's TopK study of sparse
    /// coding). `inside` false: "inference TopK", the L1 objective as [`SolverConfig::Adam`],
    /// then only the k largest codes of each sample kept. `inside` true: "optimise TopK", the
    /// codes optimised on the squared error of the reconstruction from their k largest entries
    /// (TopK inside the forward pass, no L1), and those k kept.
    AdamTopk {
        #[serde(default = "default_adam_steps")]
        steps: u64,
        #[serde(default = "default_adam_lr")]
        lr: f64,
        k: usize,
        #[serde(default)]
        inside: bool,
    },
}

pub(crate) fn default_adam_steps() -> u64 {
    10_000
}
pub(crate) fn default_adam_lr() -> f64 {
    3e-3
}
pub(crate) fn default_fista_steps() -> u64 {
    500
}
fn default_true() -> bool {
    true
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig::Adam {
            steps: default_adam_steps(),
            lr: default_adam_lr(),
        }
    }
}

impl SolverConfig {
    pub fn short_name(&self) -> &'static str {
        match self {
            SolverConfig::Adam { .. } => "adam",
            SolverConfig::Fista { .. } => "fista",
            SolverConfig::Omp { .. } => "omp",
            SolverConfig::AdamTopk { .. } => "adam_topk",
        }
    }

    /// The short name, with "signed" for FISTA without the non-negativity constraint and the
    /// TopK's place and k (comma-separated parts: a sweep names a method by the parts that
    /// stay the same across its cells).
    pub fn label(&self) -> String {
        match self {
            SolverConfig::Fista { nonneg: false, .. } => "fista, signed".to_string(),
            SolverConfig::AdamTopk { k, inside, .. } => format!(
                "{}, k={k}",
                if *inside {
                    "top-k inside"
                } else {
                    "L1 then top-k"
                }
            ),
            other => other.short_name().to_string(),
        }
    }
}

/// One method to compare.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodConfig {
    /// s = ReLU(W x [+ b]), decoder = the dictionary.
    Sae {
        #[serde(default)]
        bias: bool,
    },
    /// Keep the k largest pre-activations per sample, then ReLU. In a recovery sweep's base,
    /// k = 0 means each cell's K.
    TopkSae {
        k: usize,
        #[serde(default)]
        bias: bool,
    },
    /// s = ReLU(W_L ... ReLU(W_1 x)), any list of hidden widths.
    Mlp {
        hidden: Vec<usize>,
        #[serde(default)]
        bias: bool,
    },
    /// Per-sample codes s = exp(u) learned jointly with the dictionary; test codes by `inference`.
    /// With a known dictionary this is pure per-sample inference with the true dictionary.
    SparseCoding {
        #[serde(default)]
        inference: SolverConfig,
    },
    /// Train an SAE, then infer test codes on its dictionary by `inference`.
    SaeIto {
        #[serde(default)]
        bias: bool,
        #[serde(default)]
        inference: SolverConfig,
    },
    /// LISTA: `iterations` unrolled ISTA steps with learned weights after the first (0 is an
    /// SAE with a bias), trained end to end with the dictionary (see `core::lista`). On real
    /// activations only, for now.
    Lista { iterations: usize },
    /// BatchTopK SAE: in training, the k x b largest pre-activations of a batch of b are kept
    /// (k per sample on average, spread where the batch needs them); at inference, a
    /// pre-activation is kept where it exceeds a threshold estimated in training (a running
    /// average of the smallest value kept per batch). On real activations.
    BatchTopkSae {
        k: usize,
        #[serde(default)]
        bias: bool,
    },
    /// JumpReLU SAE: s = z where z > theta (one threshold per latent, learned), else 0; trained
    /// on reconstruction plus lambda times L0, with straight-through gradients for the
    /// thresholds through a rectangle kernel of width `bandwidth` (in the units of the
    /// activations). On real activations.
    JumpReluSae {
        #[serde(default = "default_jump_bandwidth")]
        bandwidth: f64,
        #[serde(default)]
        bias: bool,
    },
}

/// JumpReLU's kernel width on activations scaled to a mean squared norm of their dimension,
/// where pre-activations are of order 1: wide enough that a batch of a few hundred tokens puts
/// some pre-activations of most latents inside it.
pub const DEFAULT_JUMP_BANDWIDTH: f64 = 0.05;

fn default_jump_bandwidth() -> f64 {
    DEFAULT_JUMP_BANDWIDTH
}

/// The kinds of method, for training settings that apply to every method of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodKind {
    Sae,
    TopkSae,
    Mlp,
    SparseCoding,
    SaeIto,
    Lista,
    BatchTopkSae,
    JumpReluSae,
}

impl MethodKind {
    pub const ALL: [MethodKind; 8] = [
        MethodKind::Sae,
        MethodKind::TopkSae,
        MethodKind::Mlp,
        MethodKind::SparseCoding,
        MethodKind::SaeIto,
        MethodKind::Lista,
        MethodKind::BatchTopkSae,
        MethodKind::JumpReluSae,
    ];

    /// The kind's token in share links (the first part of its method tokens).
    pub fn token(self) -> &'static str {
        match self {
            MethodKind::Sae => "sae",
            MethodKind::TopkSae => "topk",
            MethodKind::Mlp => "mlp",
            MethodKind::SparseCoding => "sc",
            MethodKind::SaeIto => "ito",
            MethodKind::Lista => "lista",
            MethodKind::BatchTopkSae => "batchtopk",
            MethodKind::JumpReluSae => "jumprelu",
        }
    }

    pub fn from_token(token: &str) -> Option<MethodKind> {
        MethodKind::ALL.into_iter().find(|k| k.token() == token)
    }

    /// The name configs use (`train.per_method` keys, the methods' `kind`).
    pub fn config_name(self) -> &'static str {
        match self {
            MethodKind::Sae => "sae",
            MethodKind::TopkSae => "topk_sae",
            MethodKind::Mlp => "mlp",
            MethodKind::SparseCoding => "sparse_coding",
            MethodKind::SaeIto => "sae_ito",
            MethodKind::Lista => "lista",
            MethodKind::BatchTopkSae => "batch_topk_sae",
            MethodKind::JumpReluSae => "jump_relu_sae",
        }
    }
}

impl MethodConfig {
    /// The k of the method's top-k, if it has one: a TopK SAE's, or its inference's (a TopK
    /// after or inside the paper's inference).
    pub fn topk_k_mut(&mut self) -> Option<&mut usize> {
        match self {
            MethodConfig::TopkSae { k, .. }
            | MethodConfig::SparseCoding {
                inference: SolverConfig::AdamTopk { k, .. },
            }
            | MethodConfig::SaeIto {
                inference: SolverConfig::AdamTopk { k, .. },
                ..
            } => Some(k),
            _ => None,
        }
    }

    pub fn kind(&self) -> MethodKind {
        match self {
            MethodConfig::Sae { .. } => MethodKind::Sae,
            MethodConfig::TopkSae { .. } => MethodKind::TopkSae,
            MethodConfig::Mlp { .. } => MethodKind::Mlp,
            MethodConfig::SparseCoding { .. } => MethodKind::SparseCoding,
            MethodConfig::SaeIto { .. } => MethodKind::SaeIto,
            MethodConfig::Lista { .. } => MethodKind::Lista,
            MethodConfig::BatchTopkSae { .. } => MethodKind::BatchTopkSae,
            MethodConfig::JumpReluSae { .. } => MethodKind::JumpReluSae,
        }
    }

    /// A readable name: used in tables, legends and results files.
    pub fn display_name(&self) -> String {
        match self {
            MethodConfig::Sae { .. } => "SAE".to_string(),
            MethodConfig::TopkSae { k, .. } => format!("TopK SAE (k={k})"),
            MethodConfig::Mlp { hidden, .. } => {
                let widths: Vec<String> = hidden.iter().map(|h| h.to_string()).collect();
                format!("MLP (h={})", widths.join("-"))
            }
            MethodConfig::SparseCoding { inference } => match inference {
                SolverConfig::Adam { .. } => "Sparse coding".to_string(),
                other => format!("Sparse coding ({})", other.label()),
            },
            MethodConfig::SaeIto { inference, .. } => {
                format!("SAE + ITO ({})", inference.label())
            }
            MethodConfig::Lista { iterations } => format!("LISTA (T={iterations})"),
            MethodConfig::BatchTopkSae { k, .. } => format!("BatchTopK SAE (k={k})"),
            MethodConfig::JumpReluSae { .. } => "JumpReLU SAE".to_string(),
        }
    }
}

/// Optimisation of everything that is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimiser steps per method.
    pub steps: u64,
    /// Adam learning rate for training.
    pub lr: f64,
    /// lambda in loss = mean (x_hat - x)^2 + lambda * mean |s|.
    pub l1_penalty: f64,
    /// Samples per step; `None` = full batch (the paper).
    pub batch_size: Option<usize>,
    /// Evaluate on the test set every this many steps (and at the first and last step).
    pub log_every: u64,
    /// Evaluate at exactly these steps instead (and at the first and last step), strictly
    /// increasing: spaced where the curves bend rather than evenly. Empty: every `log_every`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eval_steps: Vec<u64>,
    /// A learning rate or lambda for every method of a kind, instead of `lr` and `l1_penalty`
    /// (the paper trains sparse coding at 3e-3 beside SAEs at 1e-3 in its scaling study, its
    /// MLPs at 1e-4 in the bias study, and sparse coding at lambda 0.5 in the TopK study).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_method: BTreeMap<MethodKind, TrainOverride>,
}

/// What `TrainConfig::per_method` changes for one kind of method; at least one is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l1_penalty: Option<f64>,
}

impl TrainConfig {
    /// The Adam learning rate that trains methods of `kind`.
    pub fn lr_for(&self, kind: MethodKind) -> f64 {
        self.per_method
            .get(&kind)
            .and_then(|o| o.lr)
            .unwrap_or(self.lr)
    }

    /// The lambda of methods of `kind`, in training and in their test-code inference.
    pub fn l1_for(&self, kind: MethodKind) -> f64 {
        self.per_method
            .get(&kind)
            .and_then(|o| o.l1_penalty)
            .unwrap_or(self.l1_penalty)
    }

    /// The step of the first evaluation after `step` (the last step when none comes before).
    pub fn next_evaluation_after(&self, step: u64) -> u64 {
        let total = self.steps;
        if self.eval_steps.is_empty() {
            let every = self.log_every.max(1);
            return ((step / every) + 1).saturating_mul(every).min(total);
        }
        self.eval_steps
            .iter()
            .copied()
            .find(|&e| e > step)
            .unwrap_or(total)
            .min(total)
    }

    /// Evaluations after step 0 (to the last step, which is always evaluated).
    pub fn evaluations_after_start(&self) -> u64 {
        let total = self.steps;
        if self.eval_steps.is_empty() {
            return total.div_ceil(self.log_every.max(1));
        }
        let inside = self.eval_steps.iter().filter(|&&e| e < total).count() as u64;
        inside + u64::from(total > 0)
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 20_000,
            lr: 1e-3,
            l1_penalty: 0.01,
            batch_size: None,
            log_every: 1000,
            eval_steps: Vec::new(),
            per_method: BTreeMap::new(),
        }
    }
}

/// Metric options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// |s| above this counts as active for L0 and dead latents (exp-parametrised codes are never
    /// exactly zero).
    pub l0_threshold: f64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { l0_threshold: 1e-3 }
    }
}

/// Everything one experiment needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    pub version: u32,
    pub setting: Setting,
    pub data: DataConfig,
    pub methods: Vec<MethodConfig>,
    pub train: TrainConfig,
    pub metrics: MetricsConfig,
    /// Seed of the data; run r initialises its models from seed + r.
    pub seed: u64,
    /// Independent runs (seeds) per method.
    pub runs: u32,
}

/// Every field's default is the paper's main experiment (the unknown-codes-and-dictionary
/// preset, paper-exact).
impl Default for ExperimentConfig {
    fn default() -> Self {
        Preset::UnknownZD.config()
    }
}

/// The paper's three main experiments, each exactly as the paper ran it and as a quick version
/// that tells the same story in well under a minute on one core (fewer seeds, shorter runs, a
/// shorter inference, evaluations placed where the curves bend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    KnownZ,
    KnownD,
    UnknownZD,
    QuickKnownZ,
    QuickKnownD,
    QuickUnknownZD,
}

impl Preset {
    pub const ALL: [Preset; 6] = [
        Preset::KnownZ,
        Preset::KnownD,
        Preset::UnknownZD,
        Preset::QuickKnownZ,
        Preset::QuickKnownD,
        Preset::QuickUnknownZD,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::KnownZ => "known-z",
            Preset::KnownD => "known-d",
            Preset::UnknownZD => "unknown-zd",
            Preset::QuickKnownZ => "quick-known-z",
            Preset::QuickKnownD => "quick-known-d",
            Preset::QuickUnknownZD => "quick-unknown-zd",
        }
    }

    pub fn from_name(name: &str) -> Result<Self, ConfigError> {
        preset_named(Self::ALL, Preset::name, name, "preset")
    }

    /// The paper-exact preset of a setting.
    pub fn paper(setting: Setting) -> Self {
        match setting {
            Setting::KnownCodes => Preset::KnownZ,
            Setting::KnownDictionary => Preset::KnownD,
            Setting::Unknown => Preset::UnknownZD,
        }
    }

    /// The quick preset of a setting.
    pub fn quick(setting: Setting) -> Self {
        match setting {
            Setting::KnownCodes => Preset::QuickKnownZ,
            Setting::KnownDictionary => Preset::QuickKnownD,
            Setting::Unknown => Preset::QuickUnknownZD,
        }
    }

    pub fn is_quick(self) -> bool {
        matches!(
            self,
            Preset::QuickKnownZ | Preset::QuickKnownD | Preset::QuickUnknownZD
        )
    }

    /// The preset's config. Paper-exact: N=16, M=8, K=3, n=1024, lambda=0.01, Adam at 1e-3,
    /// full batch, 5 seeds; known codes (data seed 20240625): SAE and MLPs h in {32, 256, 1024}
    /// with biases, 20,000 steps; known dictionary (the same data): SAE, MLPs h in {32, 256}
    /// and per-sample inference (Adam on log-codes at 1e-3 for 20,000 iterations), evaluated
    /// every 100; unknown codes and dictionary (data seed 20240926): SAE, SAE + ITO, MLPs h in
    /// {32, 256} and sparse coding, 40,000 steps evaluated every 500, test codes re-inferred by
    /// 10,000 Adam steps at 3e-3 at every evaluation.
    pub fn config(self) -> ExperimentConfig {
        let mlp = |h: usize, bias: bool| MethodConfig::Mlp {
            hidden: vec![h],
            bias,
        };
        let adam = |steps: u64, lr: f64| SolverConfig::Adam { steps, lr };
        let paper_inference = SolverConfig::default();
        let (setting, methods, steps, log_every, seed) = match self {
            // Supervised encoders use biases, as in the paper's known-Z experiment.
            Preset::KnownZ => (
                Setting::KnownCodes,
                vec![
                    MethodConfig::Sae { bias: true },
                    mlp(32, true),
                    mlp(256, true),
                    mlp(1024, true),
                ],
                20_000,
                500,
                20_240_625,
            ),
            Preset::KnownD => (
                Setting::KnownDictionary,
                vec![
                    MethodConfig::Sae { bias: false },
                    mlp(32, false),
                    mlp(256, false),
                    MethodConfig::SparseCoding {
                        inference: adam(20_000, 1e-3),
                    },
                ],
                20_000,
                100,
                20_240_625,
            ),
            Preset::UnknownZD => (
                Setting::Unknown,
                vec![
                    MethodConfig::Sae { bias: false },
                    MethodConfig::SaeIto {
                        bias: false,
                        inference: paper_inference.clone(),
                    },
                    mlp(32, false),
                    mlp(256, false),
                    MethodConfig::SparseCoding {
                        inference: paper_inference,
                    },
                ],
                40_000,
                500,
                20_240_926,
            ),
            Preset::QuickKnownZ => (
                Setting::KnownCodes,
                vec![
                    MethodConfig::Sae { bias: true },
                    mlp(32, true),
                    mlp(256, true),
                ],
                3_000,
                500,
                20_240_625,
            ),
            Preset::QuickKnownD => (
                Setting::KnownDictionary,
                vec![
                    MethodConfig::Sae { bias: false },
                    mlp(32, false),
                    mlp(256, false),
                    MethodConfig::SparseCoding {
                        inference: adam(3_000, 1e-2),
                    },
                ],
                3_000,
                500,
                20_240_625,
            ),
            Preset::QuickUnknownZD => (
                Setting::Unknown,
                vec![
                    MethodConfig::Sae { bias: false },
                    MethodConfig::SaeIto {
                        bias: false,
                        inference: adam(2_000, 1e-2),
                    },
                    mlp(32, false),
                    mlp(256, false),
                    MethodConfig::SparseCoding {
                        inference: adam(2_000, 1e-2),
                    },
                ],
                6_000,
                1_000,
                20_240_926,
            ),
        };
        let (runs, lr, eval_steps) = if self.is_quick() {
            // Evaluations where the curves bend: dense early, sparse late.
            let schedule: Vec<u64> = [
                50, 100, 200, 400, 700, 1_000, 1_500, 2_000, 3_000, 4_000, 5_000,
            ]
            .into_iter()
            .filter(|&e| e < steps)
            .collect();
            (2, 3e-3, schedule)
        } else {
            (5, 1e-3, Vec::new())
        };
        ExperimentConfig {
            version: CONFIG_VERSION,
            setting,
            data: DataConfig::default(),
            methods,
            train: TrainConfig {
                steps,
                lr,
                log_every,
                eval_steps,
                ..TrainConfig::default()
            },
            metrics: MetricsConfig::default(),
            seed,
            runs,
        }
    }
}

/// Why a config was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read the config: {0}")]
    Parse(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A config that passed [`ExperimentConfig::validate`]; the engine takes nothing else.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedConfig(ExperimentConfig);

impl std::ops::Deref for CheckedConfig {
    type Target = ExperimentConfig;
    fn deref(&self) -> &ExperimentConfig {
        &self.0
    }
}

impl CheckedConfig {
    pub fn into_inner(self) -> ExperimentConfig {
        self.0
    }
}

impl fmt::Display for ExperimentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} | N={} M={} K={} n={} | {} steps, lr {}, lambda {} | {} run(s) from seed {}",
            self.setting.label(),
            self.data.num_atoms,
            self.data.data_dim,
            self.data.sparsity_k,
            self.data.num_samples,
            self.train.steps,
            self.train.lr,
            self.train.l1_penalty,
            self.runs,
            self.seed
        )?;
        for (kind, o) in &self.train.per_method {
            write!(f, " | {}", kind.token())?;
            if let Some(lr) = o.lr {
                write!(f, " lr {lr}")?;
            }
            if let Some(l1) = o.l1_penalty {
                write!(f, " lambda {l1}")?;
            }
        }
        Ok(())
    }
}

/// The preset among `all` called `name`, or an error listing the names (`what` names the kind
/// of preset in the message).
pub(crate) fn preset_named<P: Copy, const N: usize>(
    all: [P; N],
    name_of: fn(P) -> &'static str,
    name: &str,
    what: &str,
) -> Result<P, ConfigError> {
    all.into_iter()
        .find(|&p| name_of(p) == name)
        .ok_or_else(|| {
            ConfigError::invalid(
                "preset",
                format!(
                    "unknown {what} `{name}`; expected one of {}",
                    all.map(name_of).join(", ")
                ),
            )
        })
}

pub(crate) fn check_size(
    field: &str,
    value: usize,
    min: usize,
    max: usize,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_positive_finite(field: &str, value: f64, max: f64) -> Result<(), ConfigError> {
    if !value.is_finite() || value <= 0.0 || value > max {
        return Err(ConfigError::invalid(
            field,
            format!("must be a finite number above 0 and at most {max}, got {value}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_non_negative_finite(
    field: &str,
    value: f64,
    max: f64,
) -> Result<(), ConfigError> {
    if !value.is_finite() || value < 0.0 || value > max {
        return Err(ConfigError::invalid(
            field,
            format!("must be a finite number from 0 to {max}, got {value}"),
        ));
    }
    Ok(())
}

/// A serde message in the words of someone filling in a form: "must be a whole number, got 1.5"
/// rather than "invalid type: floating point `1.5`, expected u64".
fn plain_serde_message(message: &str) -> String {
    let quoted = |s: &str| s.split('`').nth(1).map(str::to_string).unwrap_or_default();
    let whole = [
        "expected u64",
        "expected usize",
        "expected u32",
        "expected u8",
    ];
    let number = ["expected f64", "expected f32"];
    if message.starts_with("invalid type: floating point")
        && whole.iter().any(|w| message.contains(w))
    {
        let got = quoted(message);
        if got == "NaN" || got.contains("inf") {
            return "must be a whole number".to_string();
        }
        return format!("must be a whole number, got {got}");
    }
    if message.starts_with("invalid value: integer") && whole.iter().any(|w| message.contains(w)) {
        return format!("must be a whole number from 0 up, got {}", quoted(message));
    }
    if message.starts_with("invalid type: null") {
        return if whole.iter().any(|w| message.contains(w)) {
            "must be a whole number".to_string()
        } else if number.iter().any(|w| message.contains(w)) {
            "must be a number".to_string()
        } else {
            "is missing a value".to_string()
        };
    }
    if message.starts_with("invalid type: string") {
        let got = message
            .split('"')
            .nth(1)
            .map(|s| format!(", got \"{s}\""))
            .unwrap_or_default();
        if whole.iter().any(|w| message.contains(w)) {
            return format!("must be a whole number{got}");
        }
        if number.iter().any(|w| message.contains(w)) {
            return format!("must be a number{got}");
        }
        if message.contains("expected a boolean") {
            return format!("must be true or false{got}");
        }
    }
    if message.contains("expected a boolean") {
        return "must be true or false".to_string();
    }
    message.to_string()
}

/// Objects where the schema has structs, arrays only where it has lists (`methods` and an MLP's
/// `hidden` widths).
fn check_json_shape(value: &serde_json::Value) -> Result<(), ConfigError> {
    use serde_json::Value;
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let must_be_object = |field: &str, v: &Value| -> Result<(), ConfigError> {
        if v.is_object() {
            Ok(())
        } else {
            Err(ConfigError::invalid(
                field,
                format!("must be a JSON object {{...}}, got {}", kind(v)),
            ))
        }
    };
    let Value::Object(top) = value else {
        return Err(ConfigError::Parse(format!(
            "a config must be a JSON object {{\"setting\": ..., \"methods\": [...], ...}}, got {}",
            kind(value)
        )));
    };
    for section in ["data", "train", "metrics"] {
        if let Some(v) = top.get(section) {
            must_be_object(section, v)?;
        }
    }
    if let Some(methods) = top.get("methods") {
        let Value::Array(list) = methods else {
            return Err(ConfigError::invalid(
                "methods",
                format!("must be a list of methods [...], got {}", kind(methods)),
            ));
        };
        for (i, m) in list.iter().enumerate() {
            must_be_object(&format!("methods[{i}]"), m)?;
            if let Some(inference) = m.get("inference") {
                must_be_object(&format!("methods[{i}].inference"), inference)?;
            }
        }
    }
    Ok(())
}

impl DataConfig {
    /// Sizes within the limits, K at most N, noise and skew finite.
    pub fn check(&self) -> Result<(), ConfigError> {
        use limits::*;
        check_size("data.num_atoms", self.num_atoms, 1, MAX_ATOMS)?;
        check_size("data.data_dim", self.data_dim, 1, MAX_DATA_DIM)?;
        check_size("data.num_samples", self.num_samples, 2, MAX_SAMPLES)?;
        if self.sparsity_k == 0 || self.sparsity_k > self.num_atoms {
            return Err(ConfigError::invalid(
                "data.sparsity_k",
                format!(
                    "K must be between 1 and N = {} (active sources cannot outnumber sources), got {}",
                    self.num_atoms, self.sparsity_k
                ),
            ));
        }
        check_non_negative_finite("data.noise_std", self.noise_std, 1e3)?;
        check_non_negative_finite("data.frequency_skew", self.frequency_skew, 10.0)
    }
}

impl ExperimentConfig {
    /// Parse JSON text; unknown keys and method kinds are errors that say what is accepted.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        Self::from_value(value)
    }

    /// Build from an already parsed JSON value (the browser boundary converts its objects to
    /// one). The value's shape is checked first: serde would otherwise read `[]` (or any array
    /// where an object belongs) as a struct with every field defaulted, and a mistyped file
    /// would silently become the default experiment.
    pub fn from_value(value: serde_json::Value) -> Result<Self, ConfigError> {
        check_json_shape(&value)?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let message = plain_serde_message(&e.inner().to_string());
            if path.is_empty() || path == "." {
                ConfigError::Parse(message)
            } else {
                ConfigError::invalid(path, message)
            }
        })
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config always serialises")
    }

    /// Check every rule; return the config in the only form the engine accepts.
    pub fn validate(&self) -> Result<CheckedConfig, ConfigError> {
        use limits::*;
        if self.version != CONFIG_VERSION {
            return Err(ConfigError::invalid(
                "version",
                format!(
                    "this build reads version {CONFIG_VERSION}, got {}",
                    self.version
                ),
            ));
        }
        let d = &self.data;
        d.check()?;

        let t = &self.train;
        if t.steps > MAX_STEPS {
            return Err(ConfigError::invalid(
                "train.steps",
                format!("must be at most {MAX_STEPS}, got {}", t.steps),
            ));
        }
        check_positive_finite("train.lr", t.lr, 10.0)?;
        check_non_negative_finite("train.l1_penalty", t.l1_penalty, 1e3)?;
        for (kind, o) in &t.per_method {
            let field = format!("train.per_method.{}", kind.config_name());
            if o.lr.is_none() && o.l1_penalty.is_none() {
                return Err(ConfigError::invalid(
                    &field,
                    "sets neither lr nor l1_penalty: remove it",
                ));
            }
            if let Some(lr) = o.lr {
                check_positive_finite(&format!("{field}.lr"), lr, 10.0)?;
            }
            if let Some(l1) = o.l1_penalty {
                check_non_negative_finite(&format!("{field}.l1_penalty"), l1, 1e3)?;
            }
        }
        if let Some(b) = t.batch_size {
            check_size("train.batch_size", b, 1, d.num_samples)?;
        }
        if t.log_every == 0 {
            return Err(ConfigError::invalid(
                "train.log_every",
                "must be at least 1",
            ));
        }
        if let Some((i, _)) = t
            .eval_steps
            .iter()
            .enumerate()
            .find(|&(i, &e)| e == 0 || e > t.steps || (i > 0 && e <= t.eval_steps[i - 1]))
        {
            return Err(ConfigError::invalid(
                format!("train.eval_steps[{i}]"),
                format!(
                    "evaluation steps must increase strictly and lie between 1 and the {} \
                     training steps, got {:?}",
                    t.steps, t.eval_steps
                ),
            ));
        }
        if self.evaluations_per_run() > MAX_EVALUATIONS_PER_RUN {
            return Err(ConfigError::invalid(
                "train.log_every",
                format!(
                    "{} steps evaluated every {} would log {} evaluations per run; at most \
                     {MAX_EVALUATIONS_PER_RUN} are kept: raise the evaluation interval",
                    t.steps,
                    t.log_every,
                    self.evaluations_per_run()
                ),
            ));
        }
        check_non_negative_finite("metrics.l0_threshold", self.metrics.l0_threshold, 1e6)?;
        if self.runs == 0 || self.runs > MAX_RUNS {
            return Err(ConfigError::invalid(
                "runs",
                format!("must be between 1 and {MAX_RUNS}, got {}", self.runs),
            ));
        }
        if self.seed > MAX_SEED || self.seed.saturating_add(u64::from(self.runs)) > MAX_SEED {
            return Err(ConfigError::invalid(
                "seed",
                format!(
                    "seed + runs must stay at most 2^53 - 1 = {MAX_SEED}, got seed {} with {} run(s)",
                    self.seed, self.runs
                ),
            ));
        }
        if self.methods.is_empty() {
            return Err(ConfigError::invalid(
                "methods",
                "choose at least one method",
            ));
        }
        if self.methods.len() > MAX_METHODS {
            return Err(ConfigError::invalid(
                "methods",
                format!("at most {MAX_METHODS} methods, got {}", self.methods.len()),
            ));
        }
        for (i, m) in self.methods.iter().enumerate() {
            self.validate_method(&format!("methods[{i}]"), m)?;
        }
        Ok(CheckedConfig(self.clone()))
    }

    fn validate_method(&self, field: &str, method: &MethodConfig) -> Result<(), ConfigError> {
        use limits::*;
        let d = &self.data;
        match method {
            MethodConfig::Sae { .. } => {}
            MethodConfig::BatchTopkSae { .. } | MethodConfig::JumpReluSae { .. } => {
                return Err(ConfigError::invalid(
                    format!("{field}.kind"),
                    format!(
                        "{} runs on real activations (the page's third mode, or run \
                         --activations) for now; choose sae, topk_sae, mlp, sparse_coding or \
                         sae_ito here",
                        method.display_name()
                    ),
                ));
            }
            MethodConfig::Lista { iterations } => {
                if self.setting != Setting::Unknown {
                    return Err(ConfigError::invalid(
                        format!("{field}.kind"),
                        "LISTA learns its dictionary with its encoder: it runs in the setting \
                         with both codes and dictionary unknown (and on real activations)",
                    ));
                }
                if *iterations > crate::core::real::MAX_LISTA_ITERATIONS {
                    return Err(ConfigError::invalid(
                        format!("{field}.iterations"),
                        format!(
                            "must be between 0 and {}, got {iterations}",
                            crate::core::real::MAX_LISTA_ITERATIONS
                        ),
                    ));
                }
            }
            MethodConfig::TopkSae { k, .. } => {
                if *k == 0 || *k > d.num_atoms {
                    return Err(ConfigError::invalid(
                        format!("{field}.k"),
                        format!("TopK needs 1 <= k <= N = {}, got {k}", d.num_atoms),
                    ));
                }
            }
            MethodConfig::Mlp { hidden, .. } => {
                if hidden.is_empty() || hidden.len() > MAX_HIDDEN_LAYERS {
                    return Err(ConfigError::invalid(
                        format!("{field}.hidden"),
                        format!(
                            "list 1 to {MAX_HIDDEN_LAYERS} hidden widths, got {}",
                            hidden.len()
                        ),
                    ));
                }
                for (j, &h) in hidden.iter().enumerate() {
                    check_size(&format!("{field}.hidden[{j}]"), h, 1, MAX_HIDDEN_WIDTH)?;
                }
            }
            MethodConfig::SparseCoding { inference } | MethodConfig::SaeIto { inference, .. } => {
                if self.setting == Setting::KnownCodes {
                    return Err(ConfigError::invalid(
                        format!("{field}.kind"),
                        format!(
                            "{} needs a dictionary, which the known-codes setting does not learn; \
                             choose sae, topk_sae or mlp there",
                            method.display_name()
                        ),
                    ));
                }
                if matches!(method, MethodConfig::SaeIto { .. })
                    && self.setting == Setting::KnownDictionary
                {
                    return Err(ConfigError::invalid(
                        format!("{field}.kind"),
                        "with a known dictionary, SAE + ITO is the same as sparse_coding \
                         (inference on the true dictionary): use sparse_coding",
                    ));
                }
                self.validate_solver(&format!("{field}.inference"), inference)?;
            }
        }
        let floats = self.estimate_floats(method);
        if floats > MAX_FLOATS_PER_RUN {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "{} at this size needs about {} MiB per run, over the {} MiB limit; \
                     reduce N, M, n, the batch size or the hidden widths",
                    method.display_name(),
                    (floats * 4) >> 20,
                    (MAX_FLOATS_PER_RUN * 4) >> 20
                ),
            ));
        }
        Ok(())
    }

    fn validate_solver(&self, field: &str, solver: &SolverConfig) -> Result<(), ConfigError> {
        match solver {
            SolverConfig::Adam { steps, lr } => {
                if *steps == 0 || *steps > limits::MAX_INFERENCE_STEPS {
                    return Err(ConfigError::invalid(
                        format!("{field}.steps"),
                        format!(
                            "must be between 1 and {}, got {steps}",
                            limits::MAX_INFERENCE_STEPS
                        ),
                    ));
                }
                check_positive_finite(&format!("{field}.lr"), *lr, 10.0)
            }
            SolverConfig::Fista { steps, tol, .. } => {
                if *steps == 0 || *steps > limits::MAX_INFERENCE_STEPS {
                    return Err(ConfigError::invalid(
                        format!("{field}.steps"),
                        format!(
                            "must be between 1 and {}, got {steps}",
                            limits::MAX_INFERENCE_STEPS
                        ),
                    ));
                }
                match tol {
                    Some(t) if !(t.is_finite() && *t > 0.0 && *t < 1.0) => {
                        Err(ConfigError::invalid(
                            format!("{field}.tol"),
                            format!("must be a number between 0 and 1 (exclusive), got {t}"),
                        ))
                    }
                    _ => Ok(()),
                }
            }
            SolverConfig::AdamTopk { steps, lr, k, .. } => {
                self.validate_solver(
                    field,
                    &SolverConfig::Adam {
                        steps: *steps,
                        lr: *lr,
                    },
                )?;
                let n_atoms = self.data.num_atoms;
                if *k == 0 || *k > n_atoms {
                    return Err(ConfigError::invalid(
                        format!("{field}.k"),
                        format!("the TopK keeps 1 <= k <= N = {n_atoms} codes, got {k}"),
                    ));
                }
                Ok(())
            }
            SolverConfig::Omp { k } => {
                let max_k = self.data.num_atoms.min(self.data.data_dim);
                match k {
                    Some(k) if *k == 0 || *k > max_k => Err(ConfigError::invalid(
                        format!("{field}.k"),
                        format!("OMP needs 1 <= k <= min(N, M) = {max_k}, got {k}"),
                    )),
                    None if self.data.sparsity_k > max_k => Err(ConfigError::invalid(
                        format!("{field}.k"),
                        format!(
                            "OMP defaults to k = K = {}, above min(N, M) = {max_k}: set k",
                            self.data.sparsity_k
                        ),
                    )),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Upper estimate of the f32 values one run of `method` holds, the shared data excluded:
    /// what it keeps between steps (parameters with their gradients and Adam moments, a
    /// batch's activations, the snapshot of its last evaluation) and what one evaluation
    /// holds on top while it infers and scores test codes.
    pub fn run_floats(&self, method: &MethodConfig) -> RunFloats {
        let d = &self.data;
        let (n_atoms, dim, n) = (d.num_atoms as u64, d.data_dim as u64, d.num_samples as u64);
        let batch = self.train.batch_size.map_or(n, |b| b as u64);
        // The snapshot: inferred test codes and the dictionary used.
        let snapshot = n * n_atoms + dim * n_atoms;
        // Scoring: standardised true and inferred codes, the correlation matrix, the
        // reconstruction, the dictionary's transposes and its normalised copy.
        let scoring = 2 * n * n_atoms + n_atoms * n_atoms + n * dim + 4 * dim * n_atoms;
        let infer = |s: &SolverConfig| match s {
            SolverConfig::Adam { .. } => 6 * n * n_atoms + n * dim + dim * n_atoms,
            SolverConfig::Fista { .. } => 4 * n * n_atoms + n * dim + 2 * n_atoms,
            SolverConfig::Omp { .. } => 3 * n * n_atoms + n_atoms * n_atoms,
            SolverConfig::AdamTopk { .. } => 7 * n * n_atoms + n * dim + dim * n_atoms,
        };
        // An encoder: parameters x 4 (value, gradient, two moments), activations and their
        // gradients for a batch, the decoder; an evaluation encodes all n test samples.
        let encoder = |hidden: &[u64], decoder: u64| {
            let mut prev = dim;
            let mut params = 0;
            let mut acts = 0;
            for &w in hidden.iter().chain(std::iter::once(&n_atoms)) {
                params += prev * w + w;
                acts += w;
                prev = w;
            }
            let hidden_sum: u64 = hidden.iter().sum();
            RunFloats {
                persistent: 4 * params + decoder + 2 * acts * batch + dim * batch + snapshot,
                transient: (hidden_sum + n_atoms) * n + scoring,
            }
        };
        let decoder = match self.setting {
            Setting::Unknown => 4 * dim * n_atoms,
            Setting::KnownDictionary => dim * n_atoms,
            Setting::KnownCodes => 0,
        };
        match method {
            MethodConfig::Sae { .. } | MethodConfig::TopkSae { .. } => encoder(&[], decoder),
            MethodConfig::Mlp { hidden, .. } => encoder(
                &hidden.iter().map(|&h| h as u64).collect::<Vec<_>>(),
                decoder,
            ),
            // With the true dictionary nothing is trained: per-sample inference only.
            MethodConfig::SparseCoding { inference }
                if self.setting == Setting::KnownDictionary =>
            {
                RunFloats {
                    persistent: snapshot,
                    transient: infer(inference) + scoring,
                }
            }
            MethodConfig::SparseCoding { inference } => RunFloats {
                // Dictionary with gradient and moments; log-codes with moments; a batch's
                // codes, code gradients, reconstruction and signals.
                persistent: 4 * dim * n_atoms
                    + 3 * n * n_atoms
                    + 2 * batch * (n_atoms + dim)
                    + snapshot,
                transient: infer(inference) + scoring,
            },
            MethodConfig::SaeIto { inference, .. } => {
                let sae = encoder(&[], decoder);
                RunFloats {
                    persistent: sae.persistent,
                    transient: sae.transient + infer(inference),
                }
            }
            // Refused by `validate` in synthetic experiments: sized as an SAE.
            MethodConfig::BatchTopkSae { .. } | MethodConfig::JumpReluSae { .. } => {
                encoder(&[], decoder)
            }
            // An SAE with N x N lateral weights (with gradient and moments) and T more code
            // tensors of the batch (h_1 .. h_T) in training, as many again to encode.
            MethodConfig::Lista { iterations } => {
                let sae = encoder(&[], decoder);
                let codes = n_atoms * batch.max(n);
                RunFloats {
                    persistent: sae.persistent + 4 * n_atoms * n_atoms,
                    transient: sae.transient + (*iterations as u64 + 2) * codes,
                }
            }
        }
    }

    /// f32 values of one run at its peak (see [`run_floats`](Self::run_floats)).
    pub fn estimate_floats(&self, method: &MethodConfig) -> u64 {
        let r = self.run_floats(method);
        r.persistent + r.transient
    }

    /// The most values any one tensor of one run holds (codes and log-codes of every sample, a
    /// batch's activations, a layer's weights): what one GPU binding must hold per member.
    pub fn largest_tensor_floats(&self) -> u64 {
        let d = &self.data;
        let (n_atoms, dim, n) = (d.num_atoms as u64, d.data_dim as u64, d.num_samples as u64);
        let batch = self.train.batch_size.map_or(n, |b| b as u64);
        let mut largest = (n * n_atoms).max(n * dim).max(dim * n_atoms);
        for m in &self.methods {
            if let MethodConfig::Mlp { hidden, .. } = m {
                let mut prev = dim;
                for &h in hidden {
                    let h = h as u64;
                    largest = largest.max(h * batch.max(n)).max(h * prev);
                    prev = h;
                }
                largest = largest.max(n_atoms * prev);
            }
        }
        largest
    }

    /// Evaluations one run logs: at step 0, every `log_every` steps and at the last step.
    pub fn evaluations_per_run(&self) -> u64 {
        self.train.evaluations_after_start() + 2
    }

    /// Upper estimate of the memory the whole experiment needs at once when at most
    /// `parallel_runs` runs evaluate at the same time (the CLI's threads, the page's workers):
    /// the data (and the f64 buffers they are generated in), what every run of every method
    /// keeps, the evaluations in flight, and the log records (as the engine keeps them and as
    /// a page holds them again for its charts and results file). Computed from the config
    /// alone, before anything is allocated.
    pub fn memory_estimate(&self, parallel_runs: usize) -> MemoryEstimate {
        self.memory_estimate_spread(parallel_runs, 1)
    }

    /// [`memory_estimate`](Self::memory_estimate) where `data_copies` processes each hold the
    /// data: the page's workers each generate their own copy (the command line's threads
    /// share one).
    pub fn memory_estimate_spread(
        &self,
        parallel_runs: usize,
        data_copies: usize,
    ) -> MemoryEstimate {
        let d = &self.data;
        let (n_atoms, dim, n) = (d.num_atoms as u64, d.data_dim as u64, d.num_samples as u64);
        // f32 data (train and test codes and signals, the dictionary) plus the f64 buffers
        // of generation, alive together while the data are made.
        let data = 4 * (2 * n * (n_atoms + dim) + dim * n_atoms) + 8 * (2 * n * (n_atoms + dim));
        let runs = u64::from(self.runs);
        let total_runs = runs * self.methods.len() as u64;
        let mut largest: Option<(String, u64)> = None;
        let mut persistent = 0u64;
        let mut transient = 0u64;
        for m in &self.methods {
            let r = self.run_floats(m);
            persistent = persistent.saturating_add(4 * r.persistent * runs);
            transient = transient.max(4 * r.transient);
            let per_run = 4 * (r.persistent + r.transient);
            if largest.as_ref().is_none_or(|(_, b)| per_run > *b) {
                largest = Some((m.display_name(), per_run));
            }
        }
        let in_flight = (parallel_runs.max(1) as u64).min(total_runs);
        let records = self
            .evaluations_per_run()
            .saturating_mul(total_runs)
            .saturating_mul(limits::BYTES_PER_RECORD);
        let (largest_method, largest_run_bytes) = largest.unwrap_or_default();
        let data_copies = data_copies.max(1) as u64;
        MemoryEstimate {
            data_bytes: data.saturating_mul(data_copies),
            data_copies,
            model_bytes: persistent.saturating_add(transient.saturating_mul(in_flight)),
            record_bytes: records,
            largest_method,
            largest_run_bytes,
        }
    }
}

/// f32 values one run holds (see [`ExperimentConfig::run_floats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunFloats {
    /// Kept between steps.
    pub persistent: u64,
    /// Held on top while an evaluation infers and scores test codes.
    pub transient: u64,
}

/// What [`ExperimentConfig::memory_estimate`] found, in bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    /// Every copy of the data together.
    pub data_bytes: u64,
    /// How many processes hold the data (the page's workers; 1 on the command line).
    pub data_copies: u64,
    /// Every (method, run), summed.
    pub model_bytes: u64,
    pub record_bytes: u64,
    /// The method whose single run needs the most, and how much.
    pub largest_method: String,
    pub largest_run_bytes: u64,
}

impl MemoryEstimate {
    pub fn total_bytes(&self) -> u64 {
        self.data_bytes
            .saturating_add(self.model_bytes)
            .saturating_add(self.record_bytes)
    }
}

/// Bytes as a short human size: `512 KiB`, `3.4 MiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// Where an experiment runs, for the wording of a refusal: the page's budget is fixed, the
/// command line's can be raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetScope {
    Page,
    CommandLine,
}

impl CheckedConfig {
    /// Refuse the experiment when its [`memory estimate`](ExperimentConfig::memory_estimate)
    /// exceeds `budget_bytes`, with a message that says how much it needs and what to reduce.
    pub fn check_memory(
        &self,
        budget_bytes: u64,
        parallel_runs: usize,
        scope: BudgetScope,
    ) -> Result<MemoryEstimate, ConfigError> {
        // The page's workers each generate the data; the command line's threads share it.
        let copies = match scope {
            BudgetScope::Page => parallel_runs,
            BudgetScope::CommandLine => 1,
        };
        let estimate = self.memory_estimate_spread(parallel_runs, copies);
        let total = estimate.total_bytes();
        if total <= budget_bytes {
            return Ok(estimate);
        }
        let runs = self.methods.len() as u64 * u64::from(self.runs);
        let mut advice = format!(
            "this experiment needs about {} of memory ({} method(s) x {} run(s) = {runs} runs; \
             the largest, {}, needs {} per run; the data {}",
            human_bytes(total),
            self.methods.len(),
            self.runs,
            estimate.largest_method,
            human_bytes(estimate.largest_run_bytes),
            human_bytes(estimate.data_bytes),
        );
        if estimate.data_copies > 1 {
            let _ = std::fmt::Write::write_fmt(
                &mut advice,
                format_args!(" (a copy in each of {} workers)", estimate.data_copies),
            );
        }
        if estimate.record_bytes > total / 4 {
            let _ = std::fmt::Write::write_fmt(
                &mut advice,
                format_args!(
                    "; the logs of {} evaluations per run {}",
                    self.evaluations_per_run(),
                    human_bytes(estimate.record_bytes)
                ),
            );
        }
        advice.push_str(&match scope {
            BudgetScope::Page => format!(
                "), over the {} this page allows; reduce the runs, the methods, N, M, n or \
                 the hidden widths (or raise the evaluation interval), or run it with the \
                 command-line tool",
                human_bytes(budget_bytes)
            ),
            BudgetScope::CommandLine => format!(
                "), over the memory budget of {}; reduce the runs, the methods, N, M, n or \
                 the hidden widths, or raise the budget with --memory-budget",
                human_bytes(budget_bytes)
            ),
        });
        Err(ConfigError::invalid("memory", advice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip() {
        for p in Preset::ALL {
            let cfg = p.config();
            cfg.validate().unwrap();
            let back = ExperimentConfig::from_json(&cfg.to_json_pretty()).unwrap();
            assert_eq!(back, cfg);
            assert_eq!(Preset::from_name(p.name()).unwrap(), p);
        }
    }

    #[test]
    fn partial_json_fills_defaults() {
        let cfg = ExperimentConfig::from_json(
            r#"{"setting":"known_dictionary","methods":[{"kind":"sae"}],"data":{"num_atoms":32}}"#,
        )
        .unwrap();
        assert_eq!(cfg.data.num_atoms, 32);
        assert_eq!(cfg.data.data_dim, 8);
        assert_eq!(cfg.train.lr, 1e-3);
        cfg.validate().unwrap();
    }
}
