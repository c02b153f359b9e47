//! Experiments on real activations (a language model's residual stream, say), where no ground
//! truth exists: methods train on the activations as they would on synthetic signals, and the
//! amortisation gap is measured directly, as the distance of each method's codes from the
//! per-sample optimum under the same dictionary.
//!
//! The steps: the activations are split by token into a training and a held-out set (seeded
//! shuffle), centred and scaled with statistics of the training set only ([`prepare`]); every
//! method trains on minibatches of the training set, with evaluations of the held-out set on the
//! way; then an analysis on `gap.tokens` held-out tokens, per method and under its own learned
//! dictionary D, of one objective for all methods,
//!
//! f(S) = (1/(nM)) |X - D S|^2 + (lambda/(nN)) |S|_1,
//!
//! (the training loss of the L1 methods; lambda is `gap.l1_penalty`, by default the training
//! penalty): at the method's own codes, at the optimum (FISTA to a duality-gap tolerance), and at
//! the points of the compute frontier: FISTA warm-started from the encoder's codes for a few
//! iterations, and FISTA from zero for as many. The amortisation gap is f(own) / f(optimum) - 1.

use super::config::{
    check_non_negative_finite, check_positive_finite, check_size, limits, ConfigError,
    MethodConfig, MetricsConfig, SolverConfig, TrainConfig,
};
use super::flops;
use super::lista::{self, ListaModel};
use super::metrics;
use super::models::{DecoderInit, EncoderModel, EncoderSpec, Objective};
use super::results::BackendInfo;
use super::rng::Rng;
use super::run::{stream_id, Batcher};
use super::solvers::{AdamExp, FistaRun, SolverStats};
use super::sparse_coding::SparseCodingModel;
use super::Matrix;
use crate::compute::{read_when_done, Backend, BackendError, Fetch, Shape, Tensor};
use crate::formats::activations::Activations;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Version of real-activation configs and results files.
pub const REAL_VERSION: u32 = 1;
/// Stream of the split's shuffle (model streams are named by method, as in synthetic runs).
const SPLIT_STREAM: u64 = 7;
/// The most latents a dictionary may have (the paper's LLM dictionary has 16,896).
pub const MAX_LATENTS: usize = 65_536;
/// The most unrolled iterations of a LISTA encoder.
pub const MAX_LISTA_ITERATIONS: usize = 64;

/// How the activations are scaled after centring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// As they are.
    None,
    /// One factor for all so that the mean squared norm of a token is the dimension (entries
    /// of about unit variance), as the usual SAE libraries normalise.
    Dim,
    /// One factor for all so that the mean squared norm is 1.
    Unit,
}

/// What is done to the activations before training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Preprocess {
    /// Subtract the training set's mean activation.
    pub center: bool,
    pub scale: Scaling,
    /// Fraction of tokens held out (drawn by a seeded shuffle of the tokens).
    pub test_fraction: f64,
    /// Use only this many tokens (the first ones of the shuffle); none: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self {
            center: true,
            scale: Scaling::Dim,
            test_fraction: 0.2,
            max_tokens: None,
        }
    }
}

/// The analysis of the amortisation gap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GapConfig {
    /// Held-out tokens analysed (the first ones of the held-out set; fewer if it has fewer).
    pub tokens: usize,
    /// The objective's lambda; none: the training penalty (`train.l1_penalty`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l1_penalty: Option<f64>,
    /// The optimum's tolerance: every token's duality gap at most this times half its squared
    /// norm.
    pub tol: f64,
    /// The optimum's iteration cap.
    pub max_iterations: u64,
    /// FISTA iterations of the frontier's points (warm-started from the encoder's codes, and
    /// from zero).
    pub iterations: Vec<u64>,
}

impl Default for GapConfig {
    fn default() -> Self {
        Self {
            tokens: 256,
            l1_penalty: None,
            tol: 1e-4,
            max_iterations: 5_000,
            iterations: vec![1, 3, 10, 30, 100],
        }
    }
}

/// Everything one experiment on real activations needs, but the activations themselves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealConfig {
    pub version: u32,
    /// What the activations are (a file name, or the shipped sample's name): recorded, not
    /// read.
    pub source: String,
    pub preprocess: Preprocess,
    /// Latents of every dictionary (N).
    pub latents: usize,
    /// SAE, TopK SAE, MLP encoder, sparse coding, SAE + inference and LISTA.
    pub methods: Vec<MethodConfig>,
    pub train: TrainConfig,
    pub schedule: Schedule,
    pub gap: GapConfig,
    pub metrics: MetricsConfig,
    /// Seed of the split and of every model's initialisation and minibatches.
    pub seed: u64,
}

/// Dead latents and warm-ups, as the SAE libraries train on real activations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Schedule {
    /// Every this many steps (0: never), up to three quarters of training, latents active on
    /// none of `probe_tokens` training tokens are resampled: each gets the direction of a
    /// training token drawn with probability proportional to its squared reconstruction error
    /// (squared), as its atom and (scaled to 0.2 of the live rows' mean norm) its encoder row,
    /// a zero bias and zero Adam moments. One-layer encoders (SAE, TopK SAE, SAE + inference)
    /// and LISTA; MLPs and sparse coding are left as they are.
    pub resample_every: u64,
    pub probe_tokens: usize,
    /// The learning rate rises linearly from 0 to its value over this many steps.
    pub lr_warmup: u64,
    /// The L1 penalty rises linearly from 0 to its value over this many steps.
    pub l1_warmup: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            resample_every: 200,
            probe_tokens: 1024,
            lr_warmup: 0,
            l1_warmup: 0,
        }
    }
}

/// Latents resampled at a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resampled {
    pub step: u64,
    pub latents: usize,
}

impl Default for RealConfig {
    fn default() -> Self {
        Self {
            version: REAL_VERSION,
            source: String::new(),
            preprocess: Preprocess::default(),
            latents: 0,
            methods: vec![
                MethodConfig::Sae { bias: true },
                MethodConfig::TopkSae { k: 32, bias: true },
                MethodConfig::SaeIto {
                    bias: true,
                    inference: SolverConfig::Fista {
                        steps: 5_000,
                        nonneg: true,
                        tol: Some(1e-3),
                    },
                },
            ],
            train: TrainConfig {
                steps: 1_000,
                lr: 1e-3,
                l1_penalty: 3.0,
                batch_size: Some(256),
                log_every: 100,
                eval_steps: Vec::new(),
                per_method: Default::default(),
            },
            schedule: Schedule::default(),
            gap: GapConfig::default(),
            metrics: MetricsConfig::default(),
            seed: 0,
        }
    }
}

impl RealConfig {
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de)
            .map_err(|e| ConfigError::invalid(e.path().to_string(), e.inner().to_string()))
    }

    /// The gap's lambda.
    pub fn gap_l1(&self) -> f64 {
        self.gap.l1_penalty.unwrap_or(self.train.l1_penalty)
    }

    /// Check the config against activations of `tokens` x `dim`.
    pub fn validate(&self, tokens: usize, dim: usize) -> Result<(), ConfigError> {
        if self.version != REAL_VERSION {
            return Err(ConfigError::invalid(
                "version",
                format!(
                    "this build reads version {REAL_VERSION}, got {}",
                    self.version
                ),
            ));
        }
        let p = &self.preprocess;
        if !(p.test_fraction.is_finite() && p.test_fraction > 0.0 && p.test_fraction <= 0.5) {
            return Err(ConfigError::invalid(
                "preprocess.test_fraction",
                format!("must be above 0 and at most 0.5, got {}", p.test_fraction),
            ));
        }
        if let Some(m) = p.max_tokens {
            check_size("preprocess.max_tokens", m, 16, usize::MAX)?;
        }
        let (train_n, test_n) = split_sizes(tokens, p);
        if train_n < 2 || test_n < 1 {
            return Err(ConfigError::invalid(
                "preprocess.test_fraction",
                format!("{tokens} tokens leave {train_n} to train on and {test_n} held out"),
            ));
        }
        check_size("latents", self.latents, 1, MAX_LATENTS)?;
        if self.methods.is_empty() {
            return Err(ConfigError::invalid(
                "methods",
                "choose at least one method",
            ));
        }
        for (i, m) in self.methods.iter().enumerate() {
            let field = format!("methods[{i}]");
            match m {
                MethodConfig::Sae { .. } => {}
                MethodConfig::TopkSae { k, .. } | MethodConfig::BatchTopkSae { k, .. } => {
                    if *k == 0 || *k > self.latents {
                        return Err(ConfigError::invalid(
                            format!("{field}.k"),
                            format!(
                                "must be between 1 and the {} latents, got {k}",
                                self.latents
                            ),
                        ));
                    }
                }
                MethodConfig::Mlp { hidden, .. } => {
                    if hidden.is_empty() {
                        return Err(ConfigError::invalid(
                            format!("{field}.hidden"),
                            "an MLP needs at least one hidden layer",
                        ));
                    }
                    for (j, &h) in hidden.iter().enumerate() {
                        check_size(&format!("{field}.hidden[{j}]"), h, 1, MAX_LATENTS)?;
                    }
                }
                MethodConfig::JumpReluSae { bandwidth, .. } => {
                    if !(bandwidth.is_finite() && *bandwidth > 0.0 && *bandwidth <= 10.0) {
                        return Err(ConfigError::invalid(
                            format!("{field}.bandwidth"),
                            format!("must be a number in (0, 10], got {bandwidth}"),
                        ));
                    }
                }
                MethodConfig::Lista { iterations } => {
                    check_size(
                        &format!("{field}.iterations"),
                        *iterations,
                        0,
                        MAX_LISTA_ITERATIONS,
                    )?;
                }
                MethodConfig::SparseCoding { inference }
                | MethodConfig::SaeIto { inference, .. } => {
                    validate_solver(&format!("{field}.inference"), inference)?;
                }
            }
        }
        let t = &self.train;
        if t.steps == 0 || t.steps > limits::MAX_STEPS {
            return Err(ConfigError::invalid(
                "train.steps",
                format!(
                    "must be between 1 and {}, got {}",
                    limits::MAX_STEPS,
                    t.steps
                ),
            ));
        }
        check_positive_finite("train.lr", t.lr, 10.0)?;
        check_non_negative_finite("train.l1_penalty", t.l1_penalty, 1e3)?;
        for (kind, o) in &t.per_method {
            let field = format!("train.per_method.{}", kind.config_name());
            if let Some(lr) = o.lr {
                check_positive_finite(&format!("{field}.lr"), lr, 10.0)?;
            }
            if let Some(l1) = o.l1_penalty {
                check_non_negative_finite(&format!("{field}.l1_penalty"), l1, 1e3)?;
            }
        }
        if let Some(b) = t.batch_size {
            check_size("train.batch_size", b, 1, train_n)?;
        }
        if t.log_every == 0 {
            return Err(ConfigError::invalid(
                "train.log_every",
                "must be at least 1",
            ));
        }
        if !t.eval_steps.is_empty() {
            return Err(ConfigError::invalid(
                "train.eval_steps",
                "real-activation runs evaluate every train.log_every steps",
            ));
        }
        let sc = &self.schedule;
        for (field, v) in [
            ("schedule.resample_every", sc.resample_every),
            ("schedule.lr_warmup", sc.lr_warmup),
            ("schedule.l1_warmup", sc.l1_warmup),
        ] {
            if v > limits::MAX_STEPS {
                return Err(ConfigError::invalid(
                    field,
                    format!("must be at most {}, got {v}", limits::MAX_STEPS),
                ));
            }
        }
        if sc.resample_every > 0 {
            check_size("schedule.probe_tokens", sc.probe_tokens, 1, 1 << 20)?;
        }
        let g = &self.gap;
        check_size("gap.tokens", g.tokens, 1, 1 << 20)?;
        if let Some(l1) = g.l1_penalty {
            check_positive_finite("gap.l1_penalty", l1, 1e3)?;
        } else if t.l1_penalty <= 0.0 {
            return Err(ConfigError::invalid(
                "gap.l1_penalty",
                "the gap's objective needs a positive lambda: set gap.l1_penalty or \
                 train.l1_penalty",
            ));
        }
        if !(g.tol.is_finite() && g.tol > 0.0 && g.tol < 1.0) {
            return Err(ConfigError::invalid(
                "gap.tol",
                format!("must be between 0 and 1 (exclusive), got {}", g.tol),
            ));
        }
        if g.max_iterations == 0 || g.max_iterations > limits::MAX_INFERENCE_STEPS {
            return Err(ConfigError::invalid(
                "gap.max_iterations",
                format!(
                    "must be between 1 and {}, got {}",
                    limits::MAX_INFERENCE_STEPS,
                    g.max_iterations
                ),
            ));
        }
        if g.iterations.len() > 16
            || g.iterations
                .iter()
                .any(|&k| k == 0 || k > limits::MAX_INFERENCE_STEPS)
        {
            return Err(ConfigError::invalid(
                "gap.iterations",
                "at most 16 counts, each between 1 and the inference cap",
            ));
        }
        let _ = dim;
        Ok(())
    }

    /// Floats the experiment holds at once (data, every method's parameters, moments and
    /// scratch, the analysis), for the memory budget.
    pub fn floats(&self, tokens: usize, dim: usize) -> u64 {
        let used = self.preprocess.max_tokens.map_or(tokens, |m| m.min(tokens)) as u64;
        let (train_n, test_n) = split_sizes(tokens, &self.preprocess);
        let (n, d) = (self.latents as u64, dim as u64);
        let full_batch = self.train.batch_size.is_none_or(|b| b >= train_n);
        let batch = if full_batch {
            train_n as u64
        } else {
            self.train.batch_size.map_or(used, |b| b as u64)
        };
        let gap = self.gap.tokens as u64;
        // The held-out tokens on the host and the device; the training tokens are read from
        // the activations (counted by the caller) but for full-batch training and sparse
        // coding, which keep them all on the device.
        let mut total = 2 * test_n as u64 * d;
        if full_batch
            || self
                .methods
                .iter()
                .any(|m| matches!(m, MethodConfig::SparseCoding { .. }))
        {
            total += train_n as u64 * d;
        }
        for m in &self.methods {
            let widths = match m {
                MethodConfig::Mlp { hidden, .. } => flops::widths(dim, hidden, self.latents),
                _ => vec![dim, self.latents],
            };
            let params: u64 = widths.windows(2).map(|w| (w[0] * w[1] + w[1]) as u64).sum();
            let acts: u64 = widths.iter().skip(1).map(|&w| w as u64).sum::<u64>() * batch;
            total += 4 * (params + d * n) + 3 * acts + 2 * d * batch;
            if matches!(m, MethodConfig::SparseCoding { .. }) {
                total += 3 * n * used;
            }
            if let MethodConfig::Lista { iterations } = m {
                total += 4 * n * n + (*iterations as u64 + 3) * n * batch;
            }
            total += 6 * n * gap + 2 * d * gap;
        }
        total
    }
}

fn validate_solver(field: &str, solver: &SolverConfig) -> Result<(), ConfigError> {
    match solver {
        SolverConfig::Fista { steps, .. } | SolverConfig::Adam { steps, .. }
            if *steps == 0 || *steps > limits::MAX_INFERENCE_STEPS =>
        {
            Err(ConfigError::invalid(
                format!("{field}.steps"),
                format!(
                    "must be between 1 and {}, got {steps}",
                    limits::MAX_INFERENCE_STEPS
                ),
            ))
        }
        SolverConfig::Fista { tol: Some(t), .. } if !(t.is_finite() && *t > 0.0 && *t < 1.0) => {
            Err(ConfigError::invalid(
                format!("{field}.tol"),
                format!("must be between 0 and 1 (exclusive), got {t}"),
            ))
        }
        SolverConfig::Fista { .. } => Ok(()),
        SolverConfig::Adam { lr, .. } => check_positive_finite(&format!("{field}.lr"), *lr, 10.0),
        other => Err(ConfigError::invalid(
            field,
            format!(
                "{} is not available on real activations: choose fista or adam",
                other.short_name()
            ),
        )),
    }
}

/// Tokens used, and of those how many train and how many are held out.
/// The training and held-out token counts of a split of `tokens` tokens.
pub(crate) fn split_sizes(tokens: usize, p: &Preprocess) -> (usize, usize) {
    let used = p.max_tokens.map_or(tokens, |m| m.min(tokens));
    let test = ((used as f64 * p.test_fraction).round() as usize).clamp(1, used);
    (used - test, test)
}

/// The activations split, centred and scaled; one token per column.
#[derive(Clone, Debug)]
pub struct RealData {
    pub train: Matrix,
    pub test: Matrix,
    /// The row of the file each training and held-out column came from.
    pub train_rows: Vec<usize>,
    pub test_rows: Vec<usize>,
    /// The mean subtracted (training set), if centred.
    pub mean: Option<Vec<f32>>,
    /// The factor every (centred) value was multiplied by.
    pub scale: f64,
    /// FNV-1a of the file's values as read (f32 bits), to tell files apart in results.
    pub checksum: u64,
}

/// The tokens of one side of the split, read from the activations as they are needed: column
/// `c` is row `rows[c]` of the file, centred and scaled exactly as [`prepare`] writes it. The
/// training tokens of an experiment stay in this form, so that minibatches stream from the
/// activations instead of from a second, preprocessed copy of them.
#[derive(Clone, Debug)]
pub struct Tokens {
    acts: Arc<Activations>,
    rows: Vec<usize>,
    mean: Option<Vec<f32>>,
    scale: f64,
}

impl Tokens {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.acts.dim
    }

    /// The row of the file each column comes from.
    pub fn rows(&self) -> &[usize] {
        &self.rows
    }

    /// Columns `cols`, preprocessed, as a dim x cols.len() column-major array.
    pub fn gather(&self, cols: impl IntoIterator<Item = usize>) -> Vec<f32> {
        let mut out = Vec::new();
        for c in cols {
            let row = self.acts.row(self.rows[c]);
            match &self.mean {
                // The same operations as `prepare`: the centred value in f32, then the scale.
                Some(m) => out.extend(
                    row.iter()
                        .zip(m)
                        .map(|(v, m)| (f64::from(v - m) * self.scale) as f32),
                ),
                None => out.extend(row.iter().map(|v| (f64::from(*v) * self.scale) as f32)),
            }
        }
        out
    }

    /// All of them as a matrix.
    pub fn matrix(&self) -> Matrix {
        Matrix::from_vec(self.dim(), self.len(), self.gather(0..self.len()))
    }
}

/// The split of `acts` as `p` says, with the statistics of its training tokens: the training
/// and held-out tokens as [`Tokens`], and the checksum of the file's values.
pub fn split(acts: Arc<Activations>, p: &Preprocess, seed: u64) -> (Tokens, Tokens, u64) {
    let mut order: Vec<usize> = (0..acts.tokens).collect();
    Rng::with_stream(seed, SPLIT_STREAM).shuffle(&mut order);
    let (train_n, test_n) = split_sizes(acts.tokens, p);
    let test_rows: Vec<usize> = order[..test_n].to_vec();
    let train_rows: Vec<usize> = order[test_n..test_n + train_n].to_vec();
    let dim = acts.dim;
    let mean: Option<Vec<f32>> = p.center.then(|| {
        let mut sum = vec![0f64; dim];
        for &r in &train_rows {
            for (s, &v) in sum.iter_mut().zip(acts.row(r)) {
                *s += f64::from(v);
            }
        }
        sum.iter().map(|s| (s / train_n as f64) as f32).collect()
    });
    let mean_sq_norm: f64 = train_rows
        .iter()
        .map(|&r| {
            let row = acts.row(r);
            match &mean {
                Some(m) => row
                    .iter()
                    .zip(m)
                    .map(|(v, m)| f64::from(v - m).powi(2))
                    .sum::<f64>(),
                None => row.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>(),
            }
        })
        .sum::<f64>()
        / train_n as f64;
    let scale = match p.scale {
        Scaling::None => 1.0,
        _ if mean_sq_norm <= 0.0 => 1.0,
        Scaling::Dim => (dim as f64 / mean_sq_norm).sqrt(),
        Scaling::Unit => (1.0 / mean_sq_norm).sqrt(),
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in &acts.values {
        for b in v.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let tokens = |rows: Vec<usize>| Tokens {
        acts: Arc::clone(&acts),
        rows,
        mean: mean.clone(),
        scale,
    };
    (tokens(train_rows), tokens(test_rows), h)
}

/// Split, centre and scale `acts` as `p` says; statistics from the training tokens only.
pub fn prepare(acts: &Activations, p: &Preprocess, seed: u64) -> RealData {
    let (train, test, checksum) = split(Arc::new(acts.clone()), p, seed);
    RealData {
        train: train.matrix(),
        test: test.matrix(),
        train_rows: train.rows.clone(),
        test_rows: test.rows.clone(),
        mean: train.mean.clone(),
        scale: train.scale,
        checksum,
    }
}

/// The objective and the usual SAE figures of codes under a dictionary, on the host.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeScore {
    /// (1/(nM)) |X - D S|^2 + (lambda/(nN)) |S|_1.
    pub objective: f64,
    /// Mean squared error per entry.
    pub mse: f64,
    /// 1 - |X - D S|^2 / |X - mean X|^2.
    pub explained_variance: f64,
    /// Mean active latents per token.
    pub l0: f64,
    /// Latents active on none of the tokens scored.
    pub dead_latents: usize,
}

/// Score codes `s` (N x n) of signals `x` (M x n) under `dict` (M x N).
pub fn score_codes(
    dict: &Matrix,
    x: &Matrix,
    s: &Matrix,
    l1: f64,
    l0_threshold: f64,
) -> Result<CodeScore, metrics::MetricError> {
    metrics::check_scorable("the codes", s)?;
    let x_hat = dict * s;
    let rec = metrics::reconstruction(&x_hat, x)?;
    let sp = metrics::sparsity(s, l0_threshold)?;
    let l1_mean = s.iter().map(|v| f64::from(v.abs())).sum::<f64>() / s.len() as f64;
    Ok(CodeScore {
        objective: rec.mse + l1 * l1_mean,
        mse: rec.mse,
        explained_variance: 1.0 - rec.nmse,
        l0: sp.l0,
        dead_latents: sp.dead_latents,
    })
}

/// How close codes `a` are to codes `b` (both N x n): the mean over tokens of the cosine of
/// the two code vectors (1 where both are zero), and the mean Jaccard index of their supports.
pub fn code_agreement(a: &Matrix, b: &Matrix, threshold: f64) -> (f64, f64) {
    let n = a.ncols().max(1);
    let (mut cos_sum, mut jac_sum) = (0.0, 0.0);
    for j in 0..a.ncols() {
        let (ca, cb) = (a.column(j), b.column(j));
        let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
        let (mut both, mut either) = (0usize, 0usize);
        for (&u, &v) in ca.iter().zip(cb.iter()) {
            let (u, v) = (f64::from(u), f64::from(v));
            dot += u * v;
            na += u * u;
            nb += v * v;
            let (au, av) = (u.abs() > threshold, v.abs() > threshold);
            both += usize::from(au && av);
            either += usize::from(au || av);
        }
        cos_sum += match (na > 0.0, nb > 0.0) {
            (false, false) => 1.0,
            (true, true) => dot / (na.sqrt() * nb.sqrt()),
            _ => 0.0,
        };
        jac_sum += if either == 0 {
            1.0
        } else {
            both as f64 / either as f64
        };
    }
    (cos_sum / n as f64, jac_sum / n as f64)
}

/// Which point of the frontier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointKind {
    /// The encoder's codes.
    Encoder,
    /// The method's own inference (sparse coding, SAE + inference).
    Inference,
    /// FISTA warm-started from the encoder's codes.
    Warm,
    /// FISTA from zero.
    Cold,
    /// FISTA to the tolerance.
    Optimum,
}

/// One point of the compute frontier: codes of the held-out tokens at a cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrontierPoint {
    pub kind: PointKind,
    /// FISTA iterations (0 for encoder codes).
    pub iterations: u64,
    /// Inference FLOPs per token.
    pub flops_per_token: f64,
    #[serde(flatten)]
    pub score: CodeScore,
    /// Explained variance with each token's codes cut to their `matched_l0` largest (see
    /// [`GapReport::matched_l0`]): what more inference buys at the same sparsity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explained_variance_at_l0: Option<f64>,
    /// Code MCC against the true codes of the analysed tokens, where they are known (synthetic
    /// activations, [`synthetic_activations`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_mcc: Option<f64>,
}

/// Explained variance of codes `s` (N x n) through `dict` on `x`, each token's codes cut to
/// their `k` largest in magnitude.
pub fn explained_variance_at_l0(dict: &Matrix, x: &Matrix, s: &Matrix, k: usize) -> f64 {
    let mut cut = s.clone();
    let mut order: Vec<usize> = Vec::with_capacity(s.nrows());
    for mut col in cut.column_iter_mut() {
        if col.iter().filter(|v| **v != 0.0).count() <= k {
            continue;
        }
        order.clear();
        order.extend(0..col.len());
        order.select_nth_unstable_by(k, |&a, &b| col[b].abs().total_cmp(&col[a].abs()));
        for &i in &order[k..] {
            col[i] = 0.0;
        }
    }
    metrics::reconstruction(&(dict * &cut), x).map_or(f64::NAN, |r| 1.0 - r.nmse)
}

/// The per-token budget of the frontier's matched explained variance: the mean L0 of the
/// method's first codes (its encoder's, or its own inference's), rounded up.
fn matched_budget(l0: f64) -> usize {
    l0.ceil().max(1.0) as usize
}

/// The analysis of one method under its own dictionary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GapReport {
    /// Tokens analysed.
    pub tokens: usize,
    /// The objective's lambda.
    pub l1_penalty: f64,
    /// The method's own codes.
    pub own: FrontierPoint,
    pub optimum: FrontierPoint,
    /// How the optimum's FISTA ended.
    pub optimum_solver: SolverStats,
    /// How the method's own inference ended, where it is FISTA with a tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_solver: Option<SolverStats>,
    /// f(own) / f(optimum) - 1.
    pub amortisation_gap: f64,
    /// Mean cosine between the method's codes and the optimal codes, per token.
    pub code_cosine: f64,
    /// Mean Jaccard index of their supports.
    pub support_jaccard: f64,
    /// Every point, cheapest first.
    pub frontier: Vec<FrontierPoint>,
    /// The active latents per token every frontier point's `explained_variance_at_l0` allows:
    /// the method's encoder's mean L0 (its own inference's without an encoder), rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_l0: Option<usize>,
    /// Dictionary MCC of the method's dictionary against the true one, where it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dict_mcc: Option<f64>,
}

/// One evaluation of the held-out set during training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealRecord {
    pub step: u64,
    pub train_loss: Option<f64>,
    /// The encoder's codes on every held-out token (none for sparse coding, which infers its
    /// codes only in the analysis).
    pub test: Option<CodeScore>,
    pub train_flops: f64,
    pub wall_s: f64,
}

/// One method's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealMethodResult {
    pub method: MethodConfig,
    pub name: String,
    pub seed: u64,
    /// Of the method's own codes on the analysed tokens (copied from the report).
    pub explained_variance: Option<f64>,
    pub l0: Option<f64>,
    pub dead_latents: Option<usize>,
    pub amortisation_gap: Option<f64>,
    /// Code MCC of its own codes and dictionary MCC, on synthetic activations (known truth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_mcc: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dict_mcc: Option<f64>,
    pub log: Vec<RealRecord>,
    /// Dead latents resampled during training.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resampled: Vec<Resampled>,
    pub report: Option<GapReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the activations were.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub name: String,
    pub tokens: usize,
    pub dim: usize,
    pub dtype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<String>,
    /// FNV-1a of the values (hex).
    pub checksum: String,
    pub train_tokens: usize,
    pub test_tokens: usize,
    pub scale: f64,
}

/// A results file of an experiment on real activations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealResults {
    pub version: u32,
    pub kind: String,
    pub config: RealConfig,
    pub source: SourceInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendInfo>,
    pub methods: Vec<RealMethodResult>,
}

impl RealResults {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results serialise")
    }
}

enum Learner {
    Encoder(Box<EncoderModel>),
    SparseCoding(Box<SparseCodingModel>),
    Lista(Box<ListaModel>),
}

impl Learner {
    /// The encoder's codes of `x` (none for sparse coding, which has no encoder).
    fn encode(&self, b: &dyn Backend, x: &Tensor) -> Option<Tensor> {
        match self {
            Learner::Encoder(m) => Some(m.encode(b, x)),
            Learner::Lista(m) => Some(m.encode(b, x)),
            Learner::SparseCoding(_) => None,
        }
    }

    fn loss(&self) -> &Tensor {
        match self {
            Learner::Encoder(m) => m.loss(),
            Learner::SparseCoding(m) => m.loss(),
            Learner::Lista(m) => m.loss(),
        }
    }

    /// The learning rate and L1 penalty of the next steps.
    fn set_schedule(&mut self, lr: f64, l1: f32) {
        match self {
            Learner::Encoder(m) => {
                m.set_lr(lr);
                m.objective = Objective::Reconstruction {
                    l1_penalty: vec![l1],
                };
            }
            Learner::SparseCoding(m) => m.set_schedule(lr, l1),
            Learner::Lista(m) => m.set_schedule(lr, l1),
        }
    }
}

/// A solver of the analysis under way.
enum Solver {
    Fista(Box<FistaRun>),
    Adam(Box<AdamExp>),
}

impl Solver {
    fn run(&mut self, b: &dyn Backend, x: &Tensor, budget: u64) -> Result<u64, BackendError> {
        match self {
            Solver::Fista(f) => f.run(b, x, budget),
            Solver::Adam(a) => Ok(a.run(b, x, budget)),
        }
    }

    fn is_done(&self) -> bool {
        match self {
            Solver::Fista(f) => f.is_done(),
            Solver::Adam(a) => a.is_done(),
        }
    }

    /// Whether the solver waits for a read-back before it can go on.
    fn waiting(&self) -> bool {
        match self {
            Solver::Fista(f) => f.waiting(),
            Solver::Adam(_) => false,
        }
    }

    fn codes(&self) -> &Tensor {
        match self {
            Solver::Fista(f) => f.codes(),
            Solver::Adam(a) => a.codes(),
        }
    }

    fn flops(&self) -> f64 {
        match self {
            Solver::Fista(f) => f.flops(),
            Solver::Adam(a) => a.flops(),
        }
    }
}

/// The analysis of one method, job by job.
struct Analysis {
    dict: Tensor,
    dict_host: Matrix,
    /// The encoder's codes of the analysed tokens (encoder methods and SAE + inference).
    encoder: Option<(Tensor, Matrix)>,
    encoder_flops: f64,
    jobs: Vec<(PointKind, u64)>,
    current: Option<(PointKind, u64, Solver)>,
    points: Vec<(FrontierPoint, Option<Matrix>)>,
    /// See [`GapReport::matched_l0`]: set by the first point scored.
    matched_l0: Option<usize>,
    optimum_stats: Option<SolverStats>,
    /// How the method's own FISTA ended (sparse coding and SAE + inference with a tolerance).
    own_stats: Option<SolverStats>,
}

struct RealRun {
    method: MethodConfig,
    name: String,
    seed: u64,
    learner: Learner,
    widths: Vec<usize>,
    bias: bool,
    topk: bool,
    batcher: Option<(Batcher, Tensor, Tensor)>,
    step: u64,
    train_flops_per_step: f64,
    log: Vec<RealRecord>,
    analysis: Option<Analysis>,
    report: Option<GapReport>,
    error: Option<String>,
    wall_s: f64,
    /// What the feature views read, once training is over.
    features: Option<FeatureData>,
    /// The learning rate and L1 penalty at full strength (warm-ups scale them).
    lr: f64,
    l1: f32,
    resampled: Vec<Resampled>,
    /// The draws of resampling.
    resample_rng: Rng,
    /// Solver iterations of the analysis done so far.
    analysed: u64,
    /// Reads the run waits for before it goes on (see [`Wait`]).
    wait: Option<Wait>,
}

/// Where a run goes after a slice of training steps, in order: resampling when due, the
/// evaluation of a log step, the analysis' start once training is over.
#[derive(Clone, Copy, Debug, PartialEq)]
enum After {
    Resample,
    Log,
    Analysis,
    /// Back to training (or, for resampling timed alone, nothing).
    Train,
}

/// A matrix on its way back: its values and (rows, cols).
type FetchMatrix = (Fetch, usize, usize);

/// Reads a run waits for, and what they are for. On the CPU they are there at once and the
/// run goes on in the same call; from a GPU they arrive once the device's copy is done, which
/// the CLI waits for and the page does not (a browser cannot block): the run stops here and
/// goes on where it stopped when a later `advance` finds them in.
enum Wait {
    /// An evaluation: the training loss (at a log step), the encoder's codes of the held-out
    /// tokens and the dictionary; then `next`.
    Evaluation {
        loss: Option<Fetch>,
        codes: Option<FetchMatrix>,
        dict: FetchMatrix,
        wall_s: f64,
        next: After,
    },
    /// Resampling's probe: its tokens and the encoder's codes of them.
    Probe {
        probe: Matrix,
        codes: FetchMatrix,
        next: After,
    },
    /// Resampling's edit, for the dead latents the probe found: the dictionary, and every
    /// parameter with its two Adam moments.
    State {
        probe: Matrix,
        codes: Matrix,
        dead: Vec<usize>,
        dict: FetchMatrix,
        state: Vec<[Fetch; 3]>,
        next: After,
    },
    /// The analysis' start: the dictionary (kept on the device for the solvers), the
    /// encoder's codes of the analysed tokens (kept too, to warm-start FISTA) and of every
    /// held-out token (for the feature views).
    Analysis {
        dict: Tensor,
        dict_host: FetchMatrix,
        encoder: Option<(Tensor, FetchMatrix)>,
        features: Option<FetchMatrix>,
    },
    /// The codes of the analysis' point just computed.
    Point(Fetch),
}

impl Wait {
    /// Whether every read is in (an error if the device failed one).
    fn ready(&mut self) -> Result<bool, BackendError> {
        let mut ready = true;
        let mut check = |f: &mut Fetch| -> Result<(), BackendError> {
            ready &= f.poll()?.is_some();
            Ok(())
        };
        match self {
            Wait::Evaluation {
                loss, codes, dict, ..
            } => {
                if let Some(l) = loss {
                    check(l)?;
                }
                if let Some((c, _, _)) = codes {
                    check(c)?;
                }
                check(&mut dict.0)?;
            }
            Wait::Probe { codes, .. } => check(&mut codes.0)?,
            Wait::State { dict, state, .. } => {
                check(&mut dict.0)?;
                for f in state.iter_mut().flatten() {
                    check(f)?;
                }
            }
            Wait::Analysis {
                dict_host,
                encoder,
                features,
                ..
            } => {
                check(&mut dict_host.0)?;
                if let Some((_, (c, _, _))) = encoder {
                    check(c)?;
                }
                if let Some((c, _, _)) = features {
                    check(c)?;
                }
            }
            Wait::Point(codes) => check(codes)?,
        }
        Ok(ready)
    }
}

/// A matrix read back (a fetch found ready).
fn host_matrix((fetch, rows, cols): FetchMatrix) -> Matrix {
    Matrix::from_vec(rows, cols, fetch.into_host())
}

/// Start reading a tensor back as a matrix (one member).
fn fetch_matrix(b: &dyn Backend, t: &Tensor) -> FetchMatrix {
    (Fetch::read(b, t), t.rows(), t.cols())
}

/// A method's unit-norm dictionary and its codes of held-out tokens (the encoder's on the whole
/// held-out set; sparse coding's own inference on the analysed tokens), with their file rows.
struct FeatureData {
    dict: Matrix,
    codes: Matrix,
    rows: Vec<usize>,
}

/// A held-out token where a feature is active.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopToken {
    /// The token's row in the activation file (its text is row `row` of the token texts).
    pub row: usize,
    pub value: f64,
}

/// Another feature and the cosine of its decoder atom with this one's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// The method it belongs to (index in the config) and its name.
    pub method: usize,
    pub name: String,
    pub latent: usize,
    pub cosine: f64,
}

/// One learned feature: where it fires, how often and how strongly, and its neighbours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    pub method: usize,
    pub name: String,
    pub latent: usize,
    pub latents: usize,
    /// Held-out tokens scored.
    pub tokens: usize,
    /// Fraction of them where the feature is active (above the L0 threshold).
    pub frequency: f64,
    /// Mean activation where active, and the largest.
    pub mean_active: f64,
    pub max: f64,
    /// Counts of the active values in equal bins from 0 to `max`.
    pub histogram: Vec<u32>,
    /// The most activating tokens, largest first.
    pub top: Vec<TopToken>,
    /// The nearest other features of the same dictionary by decoder cosine, nearest first.
    pub nearest: Vec<Neighbour>,
    /// The best-matching feature of each other method (largest decoder cosine).
    pub matched: Vec<Neighbour>,
}

/// Bins of a feature view's histogram, and neighbours listed.
pub const FEATURE_BINS: usize = 20;
pub const FEATURE_NEIGHBOURS: usize = 8;

/// An experiment on real activations, advanced in bounded slices (training steps, then the
/// analysis' solver iterations).
pub struct RealExperiment {
    config: RealConfig,
    /// The training tokens (read from the activations as needed) and the held-out ones.
    train: Tokens,
    test: Matrix,
    test_rows: Vec<usize>,
    source: SourceInfo,
    backend: Arc<dyn Backend>,
    /// The training tokens in the device's memory, only where a method needs all of them at
    /// once (full-batch training, sparse coding's per-token codes); minibatches are gathered
    /// from `train` on the host.
    train_x: Option<Tensor>,
    test_x: Tensor,
    gap_x: Tensor,
    gap_host: Matrix,
    runs: Vec<RealRun>,
    /// The index in the config's methods of each run: all of them, or the part this
    /// experiment computes (see [`RealExperiment::new_part`]).
    methods: Vec<usize>,
    clock: fn() -> f64,
    /// The true dictionary and the true codes of the analysed tokens, where known.
    truth: Option<GapTruth>,
    /// Whether reads from the device are waited for (natively) or polled (see
    /// [`RealExperiment::polling`]).
    block: bool,
}

/// What synthetic activations were made of: the true dictionary (dims x atoms, unit atoms)
/// and every token's true codes (atoms x tokens, in the file's row order).
#[derive(Clone, Debug, PartialEq)]
pub struct Truth {
    pub dictionary: Matrix,
    pub codes: Matrix,
}

/// The truth of the analysed tokens.
#[derive(Clone, Debug)]
struct GapTruth {
    dictionary: Matrix,
    codes: Matrix,
}

/// Code MCC of `codes` (latents x analysed tokens) against the truth, if there is one.
fn truth_mcc(truth: Option<&GapTruth>, codes: &Matrix) -> Option<f64> {
    truth.and_then(|t| metrics::code_mcc(&t.codes, codes).ok().map(|m| m.mcc))
}

/// Activations with a known truth: `data.num_samples` tokens of the paper's data model
/// (x = D s, K of the N unit atoms active per token, non-negative codes unless `signed_codes`,
/// noise as configured) from `seed`, and the truth they were made of. Experiments on them
/// score every frontier point by code MCC and every dictionary by dictionary MCC.
pub fn synthetic_activations(data: &super::config::DataConfig, seed: u64) -> (Activations, Truth) {
    let set = super::data::Dataset::generate(data, seed);
    // The M x n signals, a column per token, are the tokens x M array of a file, row-major.
    let acts = Activations {
        tokens: data.num_samples,
        dim: data.data_dim,
        values: set.train_signals.as_slice().to_vec(),
        dtype: "float32",
        tensor: None,
    };
    let truth = Truth {
        dictionary: set.dictionary,
        codes: set.train_codes,
    };
    (acts, truth)
}

impl std::fmt::Debug for RealExperiment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealExperiment")
            .field("source", &self.source)
            .field("methods", &self.runs.len())
            .finish()
    }
}

impl RealExperiment {
    /// Check `config` against the activations, prepare them and set every method up (on a
    /// copy of `acts`; [`RealExperiment::new_shared`] takes them without one).
    pub fn new(
        config: RealConfig,
        acts: &Activations,
        backend: Arc<dyn Backend>,
        clock: fn() -> f64,
    ) -> Result<Self, ConfigError> {
        Self::new_shared(config, Arc::new(acts.clone()), backend, clock)
    }

    /// As [`RealExperiment::new`], keeping `acts` (shared, not copied): the training tokens
    /// are read from them for every minibatch, centred and scaled on the way.
    pub fn new_shared(
        config: RealConfig,
        acts: Arc<Activations>,
        backend: Arc<dyn Backend>,
        clock: fn() -> f64,
    ) -> Result<Self, ConfigError> {
        let all: Vec<usize> = (0..config.methods.len()).collect();
        Self::new_part(config, acts, backend, clock, &all)
    }

    /// As [`RealExperiment::new_shared`], computing only the methods `only` (indices in the
    /// config's list, increasing), so that workers can share an experiment's methods. Each
    /// method is computed exactly as in the whole experiment: its initialisation, minibatches
    /// and resampling come from the seed and its index, and the held-out tokens from the seed.
    /// Results, feature views and rankings name methods by their index in the config.
    pub fn new_part(
        config: RealConfig,
        acts: Arc<Activations>,
        backend: Arc<dyn Backend>,
        clock: fn() -> f64,
        only: &[usize],
    ) -> Result<Self, ConfigError> {
        config.validate(acts.tokens, acts.dim)?;
        let count = config.methods.len();
        if only.is_empty()
            || only.windows(2).any(|w| w[0] >= w[1])
            || only.iter().any(|&i| i >= count)
        {
            return Err(ConfigError::invalid(
                "methods",
                format!(
                    "the part to compute, {only:?}, must be increasing indices of the {count} \
                     methods"
                ),
            ));
        }
        let (train, test_tokens, checksum) =
            split(Arc::clone(&acts), &config.preprocess, config.seed);
        let test = test_tokens.matrix();
        let dim = acts.dim;
        let b = &*backend;
        let up = |m: &Matrix| b.upload(Shape::new(1, m.nrows(), m.ncols()), m.as_slice());
        let gap_n = config.gap.tokens.min(test.ncols());
        let gap_host = test.columns(0, gap_n).into_owned();
        let runs: Vec<RealRun> = only
            .iter()
            .map(|&i| new_run(b, &config, train.len(), &config.methods[i], i, dim))
            .collect();
        // Only full-batch training and sparse coding read every training token at each step.
        let all_at_once = runs
            .iter()
            .any(|r| r.batcher.is_none() || matches!(r.learner, Learner::SparseCoding(_)));
        let train_x = all_at_once.then(|| up(&train.matrix()));
        let source = SourceInfo {
            name: config.source.clone(),
            tokens: acts.tokens,
            dim,
            dtype: acts.dtype.to_string(),
            tensor: acts.tensor.clone(),
            checksum: format!("{checksum:016x}"),
            train_tokens: train.len(),
            test_tokens: test.ncols(),
            scale: train.scale,
        };
        Ok(Self {
            train_x,
            test_x: up(&test),
            gap_x: up(&gap_host),
            gap_host,
            runs,
            methods: only.to_vec(),
            config,
            test_rows: test_tokens.rows,
            train,
            test,
            source,
            backend,
            clock,
            truth: None,
            block: cfg!(not(target_arch = "wasm32")),
        })
    }

    /// Never wait for a read from the device: a run whose reads are not in yet stops where it
    /// is, `advance` returns, and a later call goes on once they are (the page's GPU path:
    /// a browser cannot block). The default in a browser; natively, reads are waited for.
    pub fn polling(mut self) -> Self {
        self.block = false;
        self
    }

    /// Whether the run under way waits for reads from the device (the driver should let the
    /// device work, or the browser deliver them, before advancing again).
    pub fn waiting(&self) -> bool {
        self.runs
            .iter()
            .find(|r| r.report.is_none() && r.error.is_none())
            .is_some_and(|r| {
                let solver = r.analysis.as_ref().and_then(|a| a.current.as_ref());
                r.wait.is_some() || solver.is_some_and(|(_, _, s)| s.waiting())
            })
    }

    /// Score against `truth` (of the activations this experiment was made from): code MCC at
    /// every frontier point and dictionary MCC per method. Before any work is done.
    pub fn with_truth(mut self, truth: &Truth) -> Result<Self, String> {
        let (dim, tokens) = (self.source.dim, self.source.tokens);
        if truth.dictionary.nrows() != dim
            || truth.codes.ncols() != tokens
            || truth.codes.nrows() != truth.dictionary.ncols()
        {
            return Err(format!(
                "the truth ({} x {} dictionary, {} x {} codes) does not fit {tokens} tokens of \
                 {dim} dimensions",
                truth.dictionary.nrows(),
                truth.dictionary.ncols(),
                truth.codes.nrows(),
                truth.codes.ncols()
            ));
        }
        let n = self.gap_host.ncols();
        let rows = &self.test_rows[..n];
        self.truth = Some(GapTruth {
            dictionary: truth.dictionary.clone(),
            codes: Matrix::from_fn(truth.codes.nrows(), n, |r, c| truth.codes[(r, rows[c])]),
        });
        Ok(self)
    }

    /// The row of the file of each held-out token, in the order they are scored.
    pub fn test_rows(&self) -> &[usize] {
        &self.test_rows
    }

    pub fn source(&self) -> &SourceInfo {
        &self.source
    }

    pub fn is_done(&self) -> bool {
        self.runs
            .iter()
            .all(|r| r.report.is_some() || r.error.is_some())
    }

    /// Training steps done and to do, over all methods (the analysis is counted apart).
    pub fn progress(&self) -> (u64, u64) {
        let done = self.runs.iter().map(|r| r.step).sum();
        (done, self.config.train.steps * self.runs.len() as u64)
    }

    /// All the work, done and to do, in FLOPs: every method's training steps and its
    /// analysis's solver iterations (those of the solvers that stop on a tolerance counted as
    /// the estimate counts them, and a method's share full once its analysis is over), for a
    /// progress bar that does not stop at the end of training.
    pub fn work(&self) -> (f64, f64) {
        let per_iteration = flops::fista_iteration(
            self.gap_host.nrows(),
            self.config.latents,
            self.gap_host.ncols(),
        );
        let steps = self.config.train.steps as f64;
        let (mut done, mut total) = (0.0, 0.0);
        for r in &self.runs {
            let training = steps * r.train_flops_per_step;
            let analysis = self.config.analysis_iterations(&r.method).0 as f64 * per_iteration;
            total += training + analysis;
            done += if r.report.is_some() || r.error.is_some() {
                training + analysis
            } else {
                r.step as f64 * r.train_flops_per_step
                    + (r.analysed as f64 * per_iteration).min(0.99 * analysis)
            };
        }
        (done, total)
    }

    /// What is under way, in words (for a status line).
    pub fn status(&self) -> String {
        let steps = self.config.train.steps;
        let Some(r) = self
            .runs
            .iter()
            .find(|r| r.report.is_none() && r.error.is_none())
        else {
            return "done".to_string();
        };
        if r.step < steps {
            return format!("training {}: step {} of {steps}", r.name, r.step);
        }
        let what = match r.analysis.as_ref().and_then(|a| a.current.as_ref()) {
            Some((PointKind::Inference, _, _)) => "its own inference".to_string(),
            Some((PointKind::Optimum, _, _)) => "the optimum (FISTA to convergence)".to_string(),
            Some((PointKind::Warm, k, _)) => format!("{k} FISTA iterations from its codes"),
            Some((PointKind::Cold, k, _)) => format!("{k} FISTA iterations from zero"),
            _ => "its codes".to_string(),
        };
        format!("measuring the gap of {}: {what}", r.name)
    }

    /// Do at most about `budget` units of work (training steps or solver iterations) on the
    /// first method that has work left; returns the units done (0 when everything is done).
    pub fn advance(&mut self, budget: u64) -> Result<u64, BackendError> {
        let Some(i) = self
            .runs
            .iter()
            .position(|r| r.report.is_none() && r.error.is_none())
        else {
            return Ok(0);
        };
        let start = (self.clock)();
        let done = if self.runs[i].wait.is_some() {
            // Reads in: the run goes on where it stopped (one unit of work); else nothing.
            u64::from(self.resolve(i)?)
        } else if self.runs[i].step < self.config.train.steps {
            self.train(i, budget.max(1))?
        } else {
            self.analyse(i, budget.max(1))?
        };
        self.runs[i].wall_s += (self.clock)() - start;
        Ok(done)
    }

    /// Advance everything to the end.
    pub fn run_to_end(&mut self, mut on_progress: impl FnMut(&Self)) -> Result<(), BackendError> {
        while !self.is_done() {
            self.advance(200)?;
            on_progress(self);
        }
        Ok(())
    }

    /// Go on with run `i` as far as its reads allow: each wait found ready is finished, which
    /// may start the next. Natively (unless [`polling`](Self::polling)) waits for the device;
    /// else returns false while a read is not in.
    fn resolve(&mut self, i: usize) -> Result<bool, BackendError> {
        loop {
            let Some(wait) = self.runs[i].wait.as_mut() else {
                return Ok(true);
            };
            if !wait.ready()? {
                if !self.block {
                    self.backend.poll();
                    return Ok(false);
                }
                if cfg!(target_arch = "wasm32") {
                    return Err(BackendError(
                        "a GPU read cannot be waited for in a browser".to_string(),
                    ));
                }
                self.backend.wait();
                continue;
            }
            let wait = self.runs[i].wait.take().expect("checked above");
            self.finish(i, wait)?;
        }
    }

    /// Start waiting for `wait`'s reads, and go on at once where they are in.
    fn begin(&mut self, i: usize, wait: Wait) -> Result<(), BackendError> {
        self.backend.flush();
        self.runs[i].wait = Some(wait);
        self.resolve(i).map(|_| ())
    }

    /// What a wait was for, with its reads in.
    fn finish(&mut self, i: usize, wait: Wait) -> Result<(), BackendError> {
        match wait {
            Wait::Evaluation {
                loss,
                codes,
                dict,
                wall_s,
                next,
            } => {
                let cfg = &self.config;
                let run = &mut self.runs[i];
                let loss = loss.map(|l| crate::compute::loss_value(&l.into_host(), 0));
                if let Some(loss) = loss.filter(|l| !l.is_finite()) {
                    run.error = Some(format!(
                        "training diverged before step {} (the training loss is {loss}); lower \
                         the learning rate",
                        run.step
                    ));
                    return Ok(());
                }
                let test = match codes {
                    Some(codes) => match score_codes(
                        &host_matrix(dict),
                        &self.test,
                        &host_matrix(codes),
                        cfg.gap_l1(),
                        cfg.metrics.l0_threshold,
                    ) {
                        Ok(score) => Some(score),
                        Err(e) => {
                            run.error = Some(format!(
                                "stopped at step {}: {e}; lower the learning rate or the L1 \
                                 penalty",
                                run.step
                            ));
                            return Ok(());
                        }
                    },
                    None => None,
                };
                run.log.push(RealRecord {
                    step: run.step,
                    train_loss: loss,
                    test,
                    train_flops: run.train_flops_per_step * run.step as f64,
                    wall_s,
                });
                self.after_steps(i, next)
            }
            Wait::Probe { probe, codes, next } => {
                let codes = host_matrix(codes);
                let threshold = self.config.metrics.l0_threshold as f32;
                let dead: Vec<usize> = (0..codes.nrows())
                    .filter(|&j| codes.row(j).iter().all(|v| v.abs() <= threshold))
                    .collect();
                if dead.is_empty() {
                    return self.after_steps(i, next);
                }
                let b = &*self.backend;
                let run = &mut self.runs[i];
                let d = dictionary(b, &mut run.learner);
                let state = learner_state(b, &mut run.learner);
                let mut tensors: Vec<&Tensor> = vec![&d];
                tensors.extend(state.iter().flat_map(|(p, m, v)| [&**p, &**m, &**v]));
                let mut reads = b.read_many(&tensors).into_iter().map(Fetch::Reading);
                let mut read = || reads.next().expect("one read per tensor");
                let dict = (read(), d.rows(), d.cols());
                let state = state.iter().map(|_| [read(), read(), read()]).collect();
                let wait = Wait::State {
                    probe,
                    codes,
                    dead,
                    dict,
                    state,
                    next,
                };
                self.begin(i, wait)
            }
            Wait::State {
                probe,
                codes,
                dead,
                dict,
                state,
                next,
            } => {
                let b = &*self.backend;
                let run = &mut self.runs[i];
                let state = state.into_iter().map(|f| f.map(Fetch::into_host)).collect();
                let latents =
                    rewrite_dead(b, run, &probe, &codes, &dead, &host_matrix(dict), state);
                if latents > 0 {
                    run.resampled.push(Resampled {
                        step: run.step,
                        latents,
                    });
                }
                self.after_steps(i, next)
            }
            Wait::Analysis {
                dict,
                dict_host,
                encoder,
                features,
            } => {
                let run = &mut self.runs[i];
                let dict_host = host_matrix(dict_host);
                let encoder = encoder.map(|(t, m)| (t, host_matrix(m)));
                let gap_host = &self.gap_host;
                let analysis = analysis_from(
                    &self.config,
                    run,
                    dict,
                    dict_host,
                    encoder,
                    gap_host,
                    self.truth.as_ref(),
                );
                if let Some(codes) = features {
                    run.features = Some(FeatureData {
                        dict: analysis.dict_host.clone(),
                        codes: host_matrix(codes),
                        rows: self.test_rows.clone(),
                    });
                }
                run.analysis = Some(analysis);
                Ok(())
            }
            Wait::Point(codes) => {
                self.score_point(i, codes.into_host());
                Ok(())
            }
        }
    }

    /// After a slice of run `i`'s training, from `from` on: resampling when due, the
    /// evaluation of a log step, the analysis' start once training is over; each starts its
    /// reads and goes on from the next when they are in.
    fn after_steps(&mut self, i: usize, from: After) -> Result<(), BackendError> {
        let cfg = &self.config;
        let steps = cfg.train.steps;
        let b = &*self.backend;
        let run = &mut self.runs[i];
        if run.error.is_some() {
            return Ok(());
        }
        let step = run.step;
        if from == After::Resample {
            let every = cfg.schedule.resample_every;
            if every > 0 && step % every == 0 && step * 4 <= steps * 3 && step < steps {
                if let Some(wait) = begin_resample(b, cfg, run, &self.train, After::Log) {
                    return self.begin(i, wait);
                }
            }
        }
        if matches!(from, After::Resample | After::Log)
            && (step % cfg.train.log_every == 0 || step == steps)
        {
            let wall_s = run.wall_s;
            let wait = begin_evaluation(b, run, &self.test_x, true, wall_s, After::Analysis);
            return self.begin(i, wait);
        }
        if from != After::Train && step == steps {
            let wait = begin_analysis(b, run, &self.test_x, &self.gap_x);
            return self.begin(i, wait);
        }
        Ok(())
    }

    fn train(&mut self, i: usize, budget: u64) -> Result<u64, BackendError> {
        if self.runs[i].step == 0 && self.runs[i].log.is_empty() {
            let b = &*self.backend;
            let wait =
                begin_evaluation(b, &mut self.runs[i], &self.test_x, false, 0.0, After::Train);
            self.begin(i, wait)?;
            if self.runs[i].wait.is_some() || self.runs[i].error.is_some() {
                return Ok(0);
            }
        }
        let cfg = &self.config;
        let b = &*self.backend;
        let run = &mut self.runs[i];
        let log_every = cfg.train.log_every;
        let steps = cfg.train.steps;
        let next_log = ((run.step / log_every + 1) * log_every).min(steps);
        let sched = &cfg.schedule;
        let next_resample = match sched.resample_every {
            0 => u64::MAX,
            every => (run.step / every + 1) * every,
        };
        let count = budget
            .min(next_log - run.step)
            .min(next_resample - run.step);
        for k in 0..count {
            let want_loss = run.step + k + 1 == next_log;
            if sched.lr_warmup > 0 || sched.l1_warmup > 0 {
                let ramp = |over: u64| match over {
                    0 => 1.0,
                    _ => ((run.step + k + 1) as f64 / over as f64).min(1.0),
                };
                let (lr, l1) = (
                    run.lr * ramp(sched.lr_warmup),
                    run.l1 * ramp(sched.l1_warmup) as f32,
                );
                run.learner.set_schedule(lr, l1);
            }
            let all = || {
                self.train_x
                    .as_ref()
                    .expect("made for full-batch training and sparse coding")
            };
            // A minibatch streams from the activations: its tokens read, centred and scaled
            // on the host, then written to the batch's tensor.
            let stream = |batcher: &mut Batcher, x: &mut Tensor| {
                let cols = batcher.next_indices().iter().map(|&c| c as usize);
                b.write(x, &self.train.gather(cols));
            };
            match (&mut run.learner, &mut run.batcher) {
                (Learner::Encoder(model), None) => model.train_step(b, all(), None, want_loss),
                (Learner::Encoder(model), Some((batcher, _, x))) => {
                    stream(batcher, x);
                    model.train_step(b, x, None, want_loss);
                }
                (Learner::SparseCoding(model), None) => model.train_step(b, all(), None, want_loss),
                (Learner::SparseCoding(model), Some((batcher, idx, _))) => {
                    let size = write_indices(b, batcher, idx);
                    model.train_step(b, all(), Some((idx, size)), want_loss);
                }
                (Learner::Lista(model), None) => model.train_step(b, all(), want_loss),
                (Learner::Lista(model), Some((batcher, _, x))) => {
                    stream(batcher, x);
                    model.train_step(b, x, want_loss);
                }
            }
        }
        run.step += count;
        self.after_steps(i, After::Resample)?;
        Ok(count)
    }

    fn analyse(&mut self, i: usize, budget: u64) -> Result<u64, BackendError> {
        let cfg = &self.config;
        let b = &*self.backend;
        let l1 = cfg.gap_l1();
        let n = self.gap_host.ncols();
        let run = &mut self.runs[i];
        let Some(a) = run.analysis.as_mut() else {
            return Ok(0);
        };
        if a.current.is_none() {
            let Some((kind, iterations)) = a.jobs.first().copied() else {
                run.report = Some(finish_analysis(a, l1, n, self.truth.as_ref()));
                if run.features.is_none() {
                    // Sparse coding: its own codes of the analysed tokens.
                    let own = a
                        .points
                        .iter()
                        .find(|(p, _)| p.kind == PointKind::Inference);
                    if let Some((_, Some(codes))) = own {
                        run.features = Some(FeatureData {
                            dict: a.dict_host.clone(),
                            codes: codes.clone(),
                            rows: self.test_rows[..n].to_vec(),
                        });
                    }
                }
                run.analysis = None;
                return Ok(1);
            };
            a.jobs.remove(0);
            let host = vec![a.dict_host.clone()];
            let solver = match (kind, &run.method) {
                (PointKind::Inference, MethodConfig::SparseCoding { inference })
                | (PointKind::Inference, MethodConfig::SaeIto { inference, .. }) => {
                    own_solver(b, a, inference, &self.gap_x, &self.gap_host, cfg)
                }
                (PointKind::Optimum, _) => Solver::Fista(Box::new(FistaRun::new(
                    b,
                    a.dict.clone_on(b),
                    host,
                    vec![self.gap_host.clone()],
                    &self.gap_x,
                    &[l1 as f32],
                    cfg.gap.max_iterations,
                    true,
                    Some(cfg.gap.tol),
                ))),
                (PointKind::Warm | PointKind::Cold, _) => {
                    let mut f = FistaRun::new(
                        b,
                        a.dict.clone_on(b),
                        host,
                        Vec::new(),
                        &self.gap_x,
                        &[l1 as f32],
                        iterations,
                        true,
                        None,
                    );
                    if kind == PointKind::Warm {
                        let (codes, _) = a.encoder.as_ref().expect("warm points need an encoder");
                        f.warm_start(b, codes);
                    }
                    Solver::Fista(Box::new(f))
                }
                (PointKind::Encoder | PointKind::Inference, _) => {
                    unreachable!("encoder points are scored when the analysis starts")
                }
            };
            a.current = Some((kind, iterations, solver));
        }
        let (_, _, solver) = a.current.as_mut().expect("set above");
        let ran = solver.run(b, &self.gap_x, budget)?;
        run.analysed += ran;
        if !solver.is_done() {
            if solver.waiting() {
                // A convergence check's read-back: waited for natively, polled in a browser
                // (nothing else would deliver it while the driver only advances).
                if !self.block {
                    b.poll();
                } else if cfg!(target_arch = "wasm32") {
                    return Err(BackendError(
                        "a GPU read cannot be waited for in a browser".to_string(),
                    ));
                } else {
                    b.wait();
                }
            }
            return Ok(ran.max(1));
        }
        let codes = Fetch::read(b, solver.codes());
        self.begin(i, Wait::Point(codes))?;
        Ok(ran.max(1))
    }

    /// Score the codes of run `i`'s analysis point just computed, and put it on the frontier.
    fn score_point(&mut self, i: usize, values: Vec<f32>) {
        let cfg = &self.config;
        let l1 = cfg.gap_l1();
        let threshold = cfg.metrics.l0_threshold;
        let n = self.gap_host.ncols();
        let (dim, latents) = (self.gap_host.nrows(), cfg.latents);
        let fista_per_token = flops::fista_iteration(dim, latents, 1);
        let run = &mut self.runs[i];
        let a = run
            .analysis
            .as_mut()
            .expect("a point is scored during the analysis");
        let (kind, iterations, solver) = a.current.as_ref().expect("the point's solver");
        let codes = Matrix::from_vec(latents, n, values);
        let (kind, iterations) = (*kind, *iterations);
        let mut stats = None;
        if let (PointKind::Inference, Solver::Fista(f)) = (kind, solver) {
            a.own_stats = f.stats().and_then(|s| s.first().copied());
        }
        let flops_per_token = match (kind, solver) {
            (PointKind::Optimum, Solver::Fista(f)) => {
                stats = f.stats().and_then(|s| s.first().copied());
                stats.map_or(0, |s| s.iterations) as f64 * fista_per_token
            }
            (PointKind::Warm, _) => a.encoder_flops + iterations as f64 * fista_per_token,
            (PointKind::Cold, _) => iterations as f64 * fista_per_token,
            _ => solver.flops() / n as f64,
        };
        let iterations = match (kind, solver) {
            (PointKind::Inference, Solver::Fista(f)) => f.steps_done(),
            (PointKind::Inference, Solver::Adam(a)) => a.steps_done(),
            (PointKind::Optimum, _) => stats.map_or(0, |s| s.iterations),
            _ => iterations,
        };
        a.current = None;
        if stats.is_some() {
            a.optimum_stats = stats;
        }
        match score_codes(&a.dict_host, &self.gap_host, &codes, l1, threshold) {
            Ok(score) => {
                let keep = matches!(kind, PointKind::Inference | PointKind::Optimum);
                let k = *a.matched_l0.get_or_insert(matched_budget(score.l0));
                let ev_k = explained_variance_at_l0(&a.dict_host, &self.gap_host, &codes, k);
                let code_mcc = truth_mcc(self.truth.as_ref(), &codes);
                a.points.push((
                    FrontierPoint {
                        kind,
                        iterations,
                        flops_per_token,
                        score,
                        explained_variance_at_l0: Some(ev_k),
                        code_mcc,
                    },
                    keep.then_some(codes),
                ));
            }
            Err(e) => run.error = Some(format!("the analysis failed: {e}")),
        }
    }

    /// The run of method `method` (its index in the config), if this experiment computes it.
    fn held(&self, method: usize) -> Result<&RealRun, String> {
        match self.methods.iter().position(|&m| m == method) {
            Some(i) => Ok(&self.runs[i]),
            None if method < self.config.methods.len() => {
                Err(format!("method {method} is computed elsewhere, not here"))
            }
            None => Err(format!(
                "no method {method}: there are {}",
                self.config.methods.len()
            )),
        }
    }

    /// Method `method`'s run and feature data, with `latent` checked against its latents.
    fn features_of(
        &self,
        method: usize,
        latent: usize,
    ) -> Result<(&RealRun, &FeatureData), String> {
        let run = self.held(method)?;
        let f = run.features.as_ref().ok_or_else(|| {
            format!(
                "{} has no features to show before its training ends",
                run.name
            )
        })?;
        let latents = f.dict.ncols();
        if latent >= latents {
            return Err(format!(
                "feature {latent} does not exist: {} has {latents}",
                run.name
            ));
        }
        Ok((run, f))
    }

    /// The unit decoder atom of feature `latent` of method `method`, to match it against the
    /// methods computed elsewhere ([`RealExperiment::matches`]).
    pub fn atom(&self, method: usize, latent: usize) -> Result<Vec<f32>, String> {
        let (_, f) = self.features_of(method, latent)?;
        Ok(f.dict.column(latent).iter().copied().collect())
    }

    /// The best match of `atom` (largest decoder cosine) in each method computed here that has
    /// finished training, but `except`, in the order of the config.
    pub fn matches(&self, atom: &[f32], except: usize) -> Vec<Neighbour> {
        self.runs
            .iter()
            .zip(&self.methods)
            .filter(|&(_, &i)| i != except)
            .filter_map(|(other, &i)| {
                let fo = other.features.as_ref()?;
                if fo.dict.nrows() != atom.len() {
                    return None;
                }
                let (j, cos) = cosines(&fo.dict, atom)
                    .into_iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
                Some(Neighbour {
                    method: i,
                    name: other.name.clone(),
                    latent: j,
                    cosine: cos,
                })
            })
            .collect()
    }

    /// Latents of method `method` ordered by how often they fire on held-out tokens (most
    /// first; dead ones last), once its training is over.
    pub fn features_by_frequency(&self, method: usize) -> Option<Vec<(usize, f64)>> {
        let f = self.held(method).ok()?.features.as_ref()?;
        let threshold = self.config.metrics.l0_threshold as f32;
        let n = f.codes.ncols().max(1) as f64;
        let mut out: Vec<(usize, f64)> = (0..f.codes.nrows())
            .map(|j| {
                let active = f
                    .codes
                    .row(j)
                    .iter()
                    .filter(|v| v.abs() > threshold)
                    .count();
                (j, active as f64 / n)
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Some(out)
    }

    /// Feature `latent` of method `method`: its `top` most activating held-out tokens, its
    /// frequency and histogram, its nearest features and its matches in the other methods.
    pub fn feature_view(
        &self,
        method: usize,
        latent: usize,
        top: usize,
    ) -> Result<FeatureView, String> {
        let (run, f) = self.features_of(method, latent)?;
        let latents = f.dict.ncols();
        let threshold = self.config.metrics.l0_threshold;
        let values: Vec<f64> = f.codes.row(latent).iter().map(|v| f64::from(*v)).collect();
        let active: Vec<f64> = values
            .iter()
            .copied()
            .filter(|v| v.abs() > threshold)
            .collect();
        let max = active.iter().copied().fold(0f64, f64::max);
        let mut histogram = vec![0u32; FEATURE_BINS];
        for v in &active {
            let bin = if max > 0.0 {
                ((v / max) * FEATURE_BINS as f64) as usize
            } else {
                0
            };
            histogram[bin.min(FEATURE_BINS - 1)] += 1;
        }
        let mut order: Vec<usize> = (0..values.len())
            .filter(|&i| values[i].abs() > threshold)
            .collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        let top = order
            .iter()
            .take(top)
            .map(|&i| TopToken {
                row: f.rows[i],
                value: values[i],
            })
            .collect();
        let atom = f.dict.column(latent);
        let own = cosines(&f.dict, atom.as_slice());
        let mut near: Vec<usize> = (0..latents).filter(|&j| j != latent).collect();
        near.sort_by(|&a, &b| own[b].total_cmp(&own[a]).then(a.cmp(&b)));
        let nearest = near
            .into_iter()
            .take(FEATURE_NEIGHBOURS)
            .map(|j| Neighbour {
                method,
                name: run.name.clone(),
                latent: j,
                cosine: own[j],
            })
            .collect();
        let matched = self.matches(atom.as_slice(), method);
        Ok(FeatureView {
            method,
            name: run.name.clone(),
            latent,
            latents,
            tokens: values.len(),
            frequency: active.len() as f64 / values.len().max(1) as f64,
            mean_active: if active.is_empty() {
                0.0
            } else {
                active.iter().sum::<f64>() / active.len() as f64
            },
            max,
            histogram,
            top,
            nearest,
            matched,
        })
    }

    /// The results of the methods computed here (all of them, or the part's, in the config's
    /// order).
    pub fn results(&self, backend: Option<BackendInfo>) -> RealResults {
        RealResults {
            version: REAL_VERSION,
            kind: "real_activations".to_string(),
            config: self.config.clone(),
            source: self.source.clone(),
            backend,
            methods: self
                .runs
                .iter()
                .map(|r| {
                    let own = r.report.as_ref().map(|g| &g.own.score);
                    RealMethodResult {
                        method: r.method.clone(),
                        name: r.name.clone(),
                        seed: r.seed,
                        explained_variance: own.map(|s| s.explained_variance),
                        l0: own.map(|s| s.l0),
                        dead_latents: own.map(|s| s.dead_latents),
                        amortisation_gap: r.report.as_ref().map(|g| g.amortisation_gap),
                        code_mcc: r.report.as_ref().and_then(|g| g.own.code_mcc),
                        dict_mcc: r.report.as_ref().and_then(|g| g.dict_mcc),
                        log: r.log.clone(),
                        resampled: r.resampled.clone(),
                        report: r.report.clone(),
                        error: r.error.clone(),
                    }
                })
                .collect(),
        }
    }
}

/// The cosine of each atom (column) of `dict` with `atom` (both unit vectors), in f64.
fn cosines(dict: &Matrix, atom: &[f32]) -> Vec<f64> {
    dict.column_iter()
        .map(|c| {
            c.iter()
                .zip(atom)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum()
        })
        .collect()
}

/// What an experiment on real activations should take on a backend, from a short trial of it
/// (see [`estimate_seconds`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RealEstimate {
    /// Seconds from the start to the end, expected: training plus analysis.
    pub seconds: f64,
    /// Training, the evaluations on the way and resampling, over all methods.
    pub training: f64,
    /// The analysis of the gap, with the solvers that stop on a tolerance taking their typical
    /// iterations.
    pub analysis: f64,
    /// The analysis if every solver that stops on a tolerance runs to its cap instead.
    pub analysis_max: f64,
    /// Per method, in the config's order: its training and analysis (the expected ones), so
    /// that methods can be shared between workers by time.
    pub per_method: Vec<f64>,
}

/// What the trial measured, per unit of the trial's own sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct RealCosts {
    /// Per method: seconds of one training step, of one evaluation of the held-out tokens
    /// (and of the feature codes at the end, which encode the same tokens), and of one
    /// resampling of dead latents.
    pub methods: Vec<MethodCosts>,
    /// Seconds of one FISTA iteration on the analysed tokens.
    pub fista_iteration: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MethodCosts {
    pub step: f64,
    pub evaluation: f64,
    pub resample: f64,
}

/// How much larger the experiment is than its trial: per training step (tokens per batch), per
/// evaluation (held-out tokens), per resampling (tokens probed) and per solver iteration
/// (analysed tokens). Costs grow linearly in these at every size the page runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrialScale {
    pub step: f64,
    pub evaluation: f64,
    pub resample: f64,
    pub iteration: f64,
}

/// Tokens of the file a trial uses at most (the first ones): its costs are scaled to the rest.
pub const ESTIMATE_TOKENS: usize = 4096;
/// Seconds a trial times each method's steps, and the solver, for.
const ESTIMATE_PART_SECONDS: f64 = 0.08;
/// Iterations FISTA takes to the optimum's tolerance, and to SAE + FISTA's own (looser) one,
/// where the cap allows: what the shipped sample took at the page's defaults (475 to 550 for
/// the optimum at tol 1e-4, 175 for the method's own at 1e-3), rounded up. Other activations
/// may take more, up to the caps, which the estimate gives as its upper end.
const TYPICAL_OPTIMUM_ITERATIONS: u64 = 600;
const TYPICAL_OWN_ITERATIONS: u64 = 300;

impl RealConfig {
    /// Evaluations of the held-out set in a run (at the start, every `log_every` steps and at
    /// the end) and resamplings of dead latents (every `resample_every` steps up to three
    /// quarters of training).
    fn evaluations_and_resamplings(&self) -> (u64, u64) {
        let steps = self.train.steps;
        let evaluations = steps.div_ceil(self.train.log_every.max(1)) + 1;
        let resamplings = match self.schedule.resample_every {
            0 => 0,
            every => (1..)
                .map(|i| i * every)
                .take_while(|&s| s < steps && s * 4 <= steps * 3)
                .count() as u64,
        };
        (evaluations, resamplings)
    }

    /// Solver iterations of one method's analysis, expected and at most: the frontier's
    /// warm-started and cold points, the optimum, and the method's own inference.
    fn analysis_iterations(&self, method: &MethodConfig) -> (u64, u64) {
        let mut ks = self.gap.iterations.clone();
        ks.sort_unstable();
        ks.dedup();
        let points: u64 = ks.iter().sum();
        let encoder = !matches!(method, MethodConfig::SparseCoding { .. });
        let fixed = points * if encoder { 2 } else { 1 };
        let (own, own_max) = match method {
            MethodConfig::SparseCoding { inference } | MethodConfig::SaeIto { inference, .. } => {
                match inference {
                    SolverConfig::Fista {
                        steps,
                        tol: Some(_),
                        ..
                    } => ((*steps).min(TYPICAL_OWN_ITERATIONS), *steps),
                    SolverConfig::Fista { steps, .. } | SolverConfig::Adam { steps, .. } => {
                        (*steps, *steps)
                    }
                    _ => (0, 0),
                }
            }
            _ => (0, 0),
        };
        let cap = self.gap.max_iterations;
        (
            fixed + own + cap.min(TYPICAL_OPTIMUM_ITERATIONS),
            fixed + own_max + cap,
        )
    }

    /// The estimate of this experiment from the costs its trial measured.
    pub fn estimate_from(&self, costs: &RealCosts, scale: &TrialScale) -> RealEstimate {
        let (evaluations, resamplings) = self.evaluations_and_resamplings();
        let steps = self.train.steps as f64;
        let mut training = 0.0;
        let mut analysis = 0.0;
        let mut analysis_max = 0.0;
        let mut per_method = Vec::with_capacity(self.methods.len());
        for (m, c) in self.methods.iter().zip(&costs.methods) {
            let trained = steps * c.step * scale.step
                + evaluations as f64 * c.evaluation * scale.evaluation
                + resamplings as f64 * c.resample * scale.resample;
            let (expected, most) = self.analysis_iterations(m);
            let per = costs.fista_iteration * scale.iteration;
            // Scoring, and the codes the feature views read (one more pass over the held-out set).
            let fixed = c.evaluation * scale.evaluation;
            let analysed = expected as f64 * per + fixed;
            training += trained;
            analysis += analysed;
            analysis_max += most as f64 * per + fixed;
            per_method.push(trained + analysed);
        }
        RealEstimate {
            seconds: training + analysis,
            training,
            analysis,
            analysis_max,
            per_method,
        }
    }
}

/// Seconds `config` should take on `acts` with `backend`, timed on a trial: the same methods
/// on the first [`ESTIMATE_TOKENS`] tokens, each trained for a few steps (the first with an
/// evaluation before it) and resampled once, then FISTA on the analysed tokens, each part for
/// about [`ESTIMATE_PART_SECONDS`]; the costs are then scaled to the experiment's batches,
/// held-out set and analysed tokens, and multiplied by its steps, evaluations and iterations
/// ([`RealConfig::estimate_from`]). The trial holds a copy of at most `ESTIMATE_TOKENS` tokens.
/// An error is the config's (the same as the run would give).
///
/// Natively this waits for the device; in a browser it works only where nothing waits (the
/// CPU): a GPU's trial there is [`estimate_seconds_async`].
pub fn estimate_seconds(
    config: &RealConfig,
    acts: &Activations,
    backend: Arc<dyn Backend>,
    clock: fn() -> f64,
) -> Result<RealEstimate, String> {
    let trial = estimate_seconds_async(config, acts, backend, clock);
    #[cfg(not(target_arch = "wasm32"))]
    return pollster::block_on(trial);
    #[cfg(target_arch = "wasm32")]
    return crate::compute::ready_now(trial).unwrap_or_else(|| {
        Err("a GPU's trial cannot be waited for in a browser: it is asynchronous".to_string())
    });
}

/// [`estimate_seconds`], yielding while the device works (the page's trial on WebGPU).
pub async fn estimate_seconds_async(
    config: &RealConfig,
    acts: &Activations,
    backend: Arc<dyn Backend>,
    clock: fn() -> f64,
) -> Result<RealEstimate, String> {
    config
        .validate(acts.tokens, acts.dim)
        .map_err(|e| e.to_string())?;
    let (train_r, test_r) = split_sizes(acts.tokens, &config.preprocess);
    let tokens = (train_r + test_r).min(ESTIMATE_TOKENS);
    let trial_acts = Activations {
        tokens,
        dim: acts.dim,
        values: acts.values[..tokens * acts.dim].to_vec(),
        dtype: acts.dtype,
        tensor: acts.tensor.clone(),
    };
    let mut trial = config.clone();
    trial.preprocess.max_tokens = None;
    let (train_p, test_p) = split_sizes(tokens, &trial.preprocess);
    trial.train.batch_size = config.train.batch_size.map(|b| b.min(train_p));
    // No evaluation but the first, no resampling but the one timed, no analysis.
    trial.train.log_every = trial.train.steps;
    trial.schedule.resample_every = 0;
    trial.schedule.lr_warmup = 0;
    trial.schedule.l1_warmup = 0;
    let batch = |size: Option<usize>, train: usize| size.filter(|&s| s < train).unwrap_or(train);
    let gap = |test: usize| config.gap.tokens.min(test).max(1);
    let probed = |train: usize| config.schedule.probe_tokens.min(train).max(1);
    let scale = TrialScale {
        step: batch(config.train.batch_size, train_r) as f64
            / batch(trial.train.batch_size, train_p) as f64,
        evaluation: test_r as f64 / test_p as f64,
        resample: probed(train_r) as f64 / probed(train_p) as f64,
        iteration: gap(test_r) as f64 / gap(test_p) as f64,
    };
    let resampling = config.schedule.resample_every > 0;
    let mut exp = RealExperiment::new_shared(trial, Arc::new(trial_acts), backend, clock)
        .map_err(|e| e.to_string())?
        .polling();
    let steps = exp.config.train.steps;
    let fail = |e: BackendError| e.to_string();
    let mut costs = RealCosts {
        methods: Vec::new(),
        fista_iteration: 0.0,
    };
    for i in 0..exp.runs.len() {
        // The first step, after the evaluation before it.
        let start = clock();
        // (Polled, the evaluation's reads end the first call; the step is the second's.)
        let stepped = exp.train(i, 1).map_err(fail)?;
        exp.settle(i).await.map_err(fail)?;
        if stepped == 0 && exp.runs[i].error.is_none() {
            exp.train(i, 1).map_err(fail)?;
            exp.settle(i).await.map_err(fail)?;
        }
        exp.sync_run(i).await.map_err(fail)?;
        let first = clock() - start;
        let start = clock();
        let (mut timed, mut chunk) = (0u64, 1u64);
        while clock() - start < ESTIMATE_PART_SECONDS && exp.runs[i].step + chunk < steps {
            timed += exp.train(i, chunk).map_err(fail)?;
            exp.sync_run(i).await.map_err(fail)?;
            chunk *= 2;
        }
        let step = if timed > 0 {
            (clock() - start) / timed as f64
        } else {
            first
        };
        let resample_s = if resampling && exp.runs[i].error.is_none() {
            let start = clock();
            let b = &*exp.backend;
            let wait = begin_resample(b, &exp.config, &mut exp.runs[i], &exp.train, After::Train);
            if let Some(wait) = wait {
                exp.begin(i, wait).map_err(fail)?;
                exp.settle(i).await.map_err(fail)?;
            }
            clock() - start
        } else {
            0.0
        };
        costs.methods.push(MethodCosts {
            step,
            evaluation: (first - step).max(0.0),
            resample: resample_s,
        });
    }
    costs.fista_iteration = exp.time_fista(ESTIMATE_PART_SECONDS).await.map_err(fail)?;
    Ok(config.estimate_from(&costs, &scale))
}

impl RealExperiment {
    /// Wait for the device's work on method `i` (a read of its loss).
    async fn sync_run(&self, i: usize) -> Result<(), BackendError> {
        read_when_done(&*self.backend, self.runs[i].learner.loss())
            .await
            .map(|_| ())
    }

    /// Let method `i`'s pending reads (and whatever they lead to) come in and be acted on.
    async fn settle(&mut self, i: usize) -> Result<(), BackendError> {
        while self.runs[i].wait.is_some() {
            if !self.resolve(i)? {
                read_when_done(&*self.backend, self.runs[i].learner.loss()).await?;
            }
        }
        Ok(())
    }

    /// Seconds of one FISTA iteration on the analysed tokens under the first method's
    /// dictionary, timed for about `seconds` after one iteration of warm-up.
    async fn time_fista(&mut self, seconds: f64) -> Result<f64, BackendError> {
        let b = &*self.backend;
        let dict = dictionary(b, &mut self.runs[0].learner);
        let host = Matrix::from_vec(dict.rows(), dict.cols(), read_when_done(b, &dict).await?);
        let mut fista = FistaRun::new(
            b,
            dict,
            vec![host],
            Vec::new(),
            &self.gap_x,
            &[self.config.gap_l1() as f32],
            u64::from(u32::MAX),
            true,
            None,
        );
        fista.run(b, &self.gap_x, 1)?;
        read_when_done(b, fista.codes()).await?;
        let start = (self.clock)();
        let (mut timed, mut chunk) = (0u64, 1u64);
        loop {
            timed += fista.run(b, &self.gap_x, chunk)?;
            read_when_done(b, fista.codes()).await?;
            let elapsed = (self.clock)() - start;
            if elapsed >= seconds || chunk >= 1 << 16 {
                return Ok(elapsed / timed.max(1) as f64);
            }
            chunk *= 2;
        }
    }
}

trait CloneOn {
    fn clone_on(&self, b: &dyn Backend) -> Tensor;
}

impl CloneOn for Tensor {
    fn clone_on(&self, b: &dyn Backend) -> Tensor {
        let mut out = b.zeros(self.shape());
        b.copy(self, &mut out);
        out
    }
}

fn write_indices(b: &dyn Backend, batcher: &mut Batcher, idx: &mut Tensor) -> usize {
    let bits: Vec<f32> = batcher
        .next_indices()
        .iter()
        .map(|&i| f32::from_bits(i))
        .collect();
    b.write(idx, &bits);
    bits.len()
}

fn new_run(
    b: &dyn Backend,
    cfg: &RealConfig,
    n_train: usize,
    method: &MethodConfig,
    index: usize,
    dim: usize,
) -> RealRun {
    let kind = method.kind();
    let lr = cfg.train.lr_for(kind);
    let l1 = cfg.train.l1_for(kind) as f32;
    let latents = cfg.latents;
    let batch = cfg.train.batch_size.filter(|&s| s < n_train);
    let seed = cfg.seed;
    let key = format!("real/{index}/{}", kind.config_name());
    let mut rngs = [Rng::with_stream(seed, stream_id(&key))];
    let spec = EncoderSpec::of(method);
    let used = batch.unwrap_or(n_train);
    let (learner, widths, bias, topk, per_step) = match (&spec, method) {
        (None, MethodConfig::Lista { iterations }) => (
            Learner::Lista(Box::new(ListaModel::new(
                b,
                &mut rngs,
                dim,
                latents,
                *iterations,
                &[l1],
                &[lr],
            ))),
            vec![dim, latents],
            true,
            false,
            lista::train_step_flops(dim, latents, *iterations, used),
        ),
        (Some(spec), _) => {
            let widths = flops::widths(dim, &spec.hidden, latents);
            let mut model = EncoderModel::new(
                b,
                &mut rngs,
                spec,
                dim,
                latents,
                DecoderInit::Learned,
                Objective::Reconstruction {
                    l1_penalty: vec![l1],
                },
                &[lr],
            );
            match method {
                MethodConfig::BatchTopkSae { k, .. } => model = model.with_batch_topk(b, *k),
                MethodConfig::JumpReluSae { bandwidth, .. } => {
                    let bandwidth = *bandwidth as f32;
                    model = model.with_jump_relu(b, bandwidth, bandwidth);
                }
                _ => {}
            }
            // BatchTopK selects over the batch like TopK per sample (its inference is a
            // comparison, like a ReLU's).
            let selects =
                spec.topk.is_some() || matches!(method, MethodConfig::BatchTopkSae { .. });
            let per_step = flops::encoder_train_step(&widths, used, spec.bias, selects, true);
            (
                Learner::Encoder(Box::new(model)),
                widths,
                spec.bias,
                spec.topk.is_some(),
                per_step,
            )
        }
        (None, _) => (
            Learner::SparseCoding(Box::new(SparseCodingModel::new(
                b,
                &mut rngs,
                dim,
                latents,
                n_train,
                &[l1],
                &[lr],
            ))),
            vec![dim, latents],
            false,
            false,
            flops::sparse_coding_train_step(dim, latents, used),
        ),
    };
    let batcher = batch.map(|size| {
        (
            Batcher::new(
                n_train,
                size,
                Rng::with_stream(seed, stream_id(&format!("{key}/batches"))),
            ),
            b.upload_indices(1, &vec![0; size]),
            b.zeros(Shape::new(1, dim, size)),
        )
    });
    RealRun {
        name: method.display_name(),
        method: method.clone(),
        seed,
        learner,
        widths,
        bias,
        topk,
        batcher,
        step: 0,
        train_flops_per_step: per_step,
        log: Vec::new(),
        analysis: None,
        report: None,
        error: None,
        wall_s: 0.0,
        features: None,
        lr,
        l1,
        resampled: Vec::new(),
        resample_rng: Rng::with_stream(seed, stream_id(&format!("{key}/resample"))),
        analysed: 0,
        wait: None,
    }
}

/// Start resampling the latents of `run` that fire on none of a probe of training tokens (see
/// [`Schedule`]): the probe's codes, read back (nothing for learners with more than one
/// layer). [`rewrite_dead`] does the rest once the state is read back too.
fn begin_resample(
    b: &dyn Backend,
    cfg: &RealConfig,
    run: &mut RealRun,
    train: &Tokens,
    next: After,
) -> Option<Wait> {
    let one_layer = match &run.learner {
        Learner::Encoder(m) => m.layers.len() == 1,
        Learner::Lista(_) => true,
        Learner::SparseCoding(_) => false,
    };
    if !one_layer {
        return None;
    }
    let (dim, n) = (train.dim(), train.len());
    let p = cfg.schedule.probe_tokens.min(n);
    let mut cols: Vec<usize> = (0..n).collect();
    run.resample_rng.shuffle(&mut cols);
    cols.truncate(p);
    let probe = Matrix::from_vec(dim, p, train.gather(cols));
    let x = b.upload(Shape::new(1, dim, p), probe.as_slice());
    let codes = run
        .learner
        .encode(b, &x)
        .expect("one-layer learners encode");
    Some(Wait::Probe {
        probe,
        codes: fetch_matrix(b, &codes),
        next,
    })
}

/// Every parameter of a one-layer learner with its two Adam moments: W, then (LISTA) S, the
/// bias, (JumpReLU) the thresholds and the dictionary.
fn learner_state<'a>(
    b: &dyn Backend,
    learner: &'a mut Learner,
) -> Vec<(&'a mut Tensor, &'a mut Tensor, &'a mut Tensor)> {
    match learner {
        Learner::Encoder(m) => m.params_and_moments_mut(b),
        Learner::Lista(m) => m.params_and_moments_mut(),
        Learner::SparseCoding(_) => unreachable!("resampling is for one-layer encoders"),
    }
}

/// Point the `dead` latents of `run` (found on `probe`, whose codes are `s`) at probe tokens
/// drawn by their squared error under `dict`, writing every parameter and moment (`state`,
/// read back in [`learner_state`]'s order) with their rows and columns renewed; returns how
/// many latents were resampled.
fn rewrite_dead(
    b: &dyn Backend,
    run: &mut RealRun,
    probe: &Matrix,
    s: &Matrix,
    dead: &[usize],
    d: &Matrix,
    state: Vec<[Vec<f32>; 3]>,
) -> usize {
    let (dim, p) = (probe.nrows(), probe.ncols());
    let latents = s.nrows();
    let residual = probe - d * s;
    // Tokens drawn with probability proportional to their squared error, squared.
    let weights: Vec<f64> = residual
        .column_iter()
        .map(|c| c.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().powi(2))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut directions: Vec<(usize, Vec<f32>)> = Vec::with_capacity(dead.len());
    for &j in dead {
        let pick = if total > 0.0 {
            let mut u = run.resample_rng.uniform() * total;
            weights
                .iter()
                .position(|w| {
                    u -= w;
                    u <= 0.0
                })
                .unwrap_or(p - 1)
        } else {
            run.resample_rng.below(p as u32) as usize
        };
        let v = probe.column(pick);
        let norm = v.norm();
        if norm > 0.0 {
            directions.push((j, v.iter().map(|x| x / norm).collect()));
        }
    }
    let lista = matches!(run.learner, Learner::Lista(_));
    // JumpReLU's thresholds: a resampled latent's starts again where they all started.
    let jump = match &run.learner {
        Learner::Encoder(m) => m.jump_threshold(),
        _ => None,
    };
    let mut tensors = learner_state(b, &mut run.learner);
    // W (N x M, column-major: (j, c) at c N + j): the live rows' mean norm.
    let w_host = &state[0][0];
    let is_dead: Vec<bool> = (0..latents).map(|j| dead.contains(&j)).collect();
    let live_norms: Vec<f64> = (0..latents)
        .filter(|&j| !is_dead[j])
        .map(|j| {
            (0..dim)
                .map(|c| f64::from(w_host[c * latents + j]).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let scale = if live_norms.is_empty() {
        1.0
    } else {
        0.2 * live_norms.iter().sum::<f64>() / live_norms.len() as f64
    } as f32;
    let row = |values: &mut [f32], j: usize, rows: usize, v: Option<&[f32]>| {
        let cols = values.len() / rows;
        for c in 0..cols {
            values[c * rows + j] = v.map_or(0.0, |v| v[c]);
        }
    };
    for (index, ((param, m, v), values)) in tensors.iter_mut().zip(state).enumerate() {
        let (rows, cols) = (param.rows(), param.cols());
        // W, then (LISTA) S, the bias (one column) and the dictionary.
        let role = if index == 0 {
            "encoder"
        } else if jump.is_some_and(|(at, _)| at == index) {
            "threshold"
        } else if lista && index == 1 {
            "lateral"
        } else if cols == 1 {
            "bias"
        } else {
            "dictionary"
        };
        let apply = |values: &mut [f32], moment: bool| {
            for (j, dir) in &directions {
                match role {
                    "encoder" => {
                        let scaled: Vec<f32> = dir.iter().map(|x| x * scale).collect();
                        row(values, *j, rows, (!moment).then_some(&scaled[..]));
                    }
                    "dictionary" => {
                        let col = &mut values[j * rows..(j + 1) * rows];
                        match moment {
                            true => col.fill(0.0),
                            false => col.copy_from_slice(dir),
                        }
                    }
                    "threshold" => {
                        values[*j] = match moment {
                            true => 0.0,
                            false => jump.map_or(0.0, |(_, initial)| initial),
                        }
                    }
                    "lateral" => {
                        row(values, *j, rows, None);
                        values[j * rows..(j + 1) * rows].fill(0.0);
                    }
                    _ => values[*j] = 0.0,
                }
            }
        };
        for ((t, mut values), moment) in [&mut **param, &mut **m, &mut **v]
            .into_iter()
            .zip(values)
            .zip([false, true, true])
        {
            apply(&mut values, moment);
            b.write(t, &values);
        }
    }
    directions.len()
}

/// The learned dictionary with unit-norm atoms (1 x M x N).
fn dictionary(b: &dyn Backend, learner: &mut Learner) -> Tensor {
    match learner {
        Learner::Encoder(m) => {
            m.settle(b);
            m.normalized_dictionary(b).expect("learned dictionaries")
        }
        Learner::SparseCoding(m) => m.normalized_dictionary(b),
        Learner::Lista(m) => m.normalized_dictionary(b),
    }
}

/// Start an evaluation of `run`: the dictionary, the encoder's codes of the held-out tokens
/// and (with `loss`, at a log step) the last training loss, read back together for scoring
/// (one staging buffer on a GPU).
fn begin_evaluation(
    b: &dyn Backend,
    run: &mut RealRun,
    test_x: &Tensor,
    loss: bool,
    wall_s: f64,
    next: After,
) -> Wait {
    let dict = dictionary(b, &mut run.learner);
    let codes = run.learner.encode(b, test_x);
    let mut tensors = vec![&dict];
    tensors.extend(codes.as_ref());
    if loss {
        tensors.push(run.learner.loss());
    }
    let mut reads = b.read_many(&tensors).into_iter().map(Fetch::Reading);
    let mut next_read = || reads.next().expect("one read per tensor");
    Wait::Evaluation {
        dict: (next_read(), dict.rows(), dict.cols()),
        codes: codes.as_ref().map(|c| (next_read(), c.rows(), c.cols())),
        loss: loss.then(next_read),
        wall_s,
        next,
    }
}

/// Start the analysis of `run` once its training is over: the dictionary, the encoder's codes
/// of the analysed tokens and of every held-out token, read back.
fn begin_analysis(b: &dyn Backend, run: &mut RealRun, test_x: &Tensor, gap_x: &Tensor) -> Wait {
    let dict = dictionary(b, &mut run.learner);
    let encoder = run.learner.encode(b, gap_x);
    let features = run.learner.encode(b, test_x);
    let mut tensors = vec![&dict];
    tensors.extend(encoder.iter().chain(features.iter()));
    let mut reads = b.read_many(&tensors).into_iter().map(Fetch::Reading);
    let mut read = |t: &Tensor| {
        (
            reads.next().expect("one read per tensor"),
            t.rows(),
            t.cols(),
        )
    };
    let dict_host = read(&dict);
    let encoder = encoder.map(|codes| {
        let host = read(&codes);
        (codes, host)
    });
    let features = features.map(|c| read(&c));
    Wait::Analysis {
        dict,
        dict_host,
        encoder,
        features,
    }
}

/// The analysis of `run`, its reads in: the encoder's point scored, the solvers' jobs listed.
fn analysis_from(
    cfg: &RealConfig,
    run: &mut RealRun,
    dict: Tensor,
    dict_host: Matrix,
    encoder: Option<(Tensor, Matrix)>,
    gap_host: &Matrix,
    truth: Option<&GapTruth>,
) -> Analysis {
    let encoder_flops = match &run.method {
        MethodConfig::Lista { iterations } => {
            lista::forward_flops(run.widths[0], run.widths[1], *iterations)
        }
        _ => flops::encoder_forward(&run.widths, 1, run.bias, run.topk),
    };
    let mut points = Vec::new();
    let mut matched_l0 = None;
    if let Some((_, host)) = &encoder {
        match score_codes(
            &dict_host,
            gap_host,
            host,
            cfg.gap_l1(),
            cfg.metrics.l0_threshold,
        ) {
            Ok(score) => {
                let k = matched_budget(score.l0);
                matched_l0 = Some(k);
                let ev_k = explained_variance_at_l0(&dict_host, gap_host, host, k);
                points.push((
                    FrontierPoint {
                        kind: PointKind::Encoder,
                        iterations: 0,
                        flops_per_token: encoder_flops,
                        score,
                        explained_variance_at_l0: Some(ev_k),
                        code_mcc: truth_mcc(truth, host),
                    },
                    Some(host.clone()),
                ));
            }
            Err(e) => run.error = Some(format!("the analysis failed: {e}")),
        }
    }
    let mut jobs = Vec::new();
    if matches!(
        run.method,
        MethodConfig::SparseCoding { .. } | MethodConfig::SaeIto { .. }
    ) {
        jobs.push((PointKind::Inference, 0));
    }
    jobs.push((PointKind::Optimum, 0));
    let mut ks = cfg.gap.iterations.clone();
    ks.sort_unstable();
    ks.dedup();
    if encoder.is_some() {
        jobs.extend(ks.iter().map(|&k| (PointKind::Warm, k)));
    }
    jobs.extend(ks.iter().map(|&k| (PointKind::Cold, k)));
    Analysis {
        dict,
        dict_host,
        encoder,
        encoder_flops,
        jobs,
        current: None,
        points,
        matched_l0,
        optimum_stats: None,
        own_stats: None,
    }
}

fn own_solver(
    b: &dyn Backend,
    a: &Analysis,
    inference: &SolverConfig,
    x: &Tensor,
    x_host: &Matrix,
    cfg: &RealConfig,
) -> Solver {
    let l1 = cfg.gap_l1() as f32;
    match inference {
        SolverConfig::Fista { steps, nonneg, tol } => Solver::Fista(Box::new(FistaRun::new(
            b,
            a.dict.clone_on(b),
            vec![a.dict_host.clone()],
            if tol.is_some() {
                vec![x_host.clone()]
            } else {
                Vec::new()
            },
            x,
            &[l1],
            *steps,
            *nonneg,
            *tol,
        ))),
        SolverConfig::Adam { steps, lr } => Solver::Adam(Box::new(AdamExp::new(
            b,
            a.dict.clone_on(b),
            x,
            &[l1],
            *steps,
            &[*lr],
        ))),
        _ => unreachable!("validate() admits FISTA and Adam only"),
    }
}

fn finish_analysis(
    a: &mut Analysis,
    l1: f64,
    tokens: usize,
    truth: Option<&GapTruth>,
) -> GapReport {
    let take = |kind: PointKind, points: &[(FrontierPoint, Option<Matrix>)]| {
        points.iter().position(|(p, _)| p.kind == kind)
    };
    let opt_at = take(PointKind::Optimum, &a.points).expect("the optimum is always computed");
    let own_at = take(PointKind::Inference, &a.points)
        .or_else(|| take(PointKind::Encoder, &a.points))
        .unwrap_or(opt_at);
    let (optimum, opt_codes) = a.points[opt_at].clone();
    let (own, own_codes) = a.points[own_at].clone();
    let (code_cosine, support_jaccard) = match (&own_codes, &opt_codes) {
        (Some(o), Some(p)) => code_agreement(o, p, 1e-3),
        _ => (f64::NAN, f64::NAN),
    };
    let mut frontier: Vec<FrontierPoint> = a.points.iter().map(|(p, _)| p.clone()).collect();
    frontier.sort_by(|x, y| x.flops_per_token.total_cmp(&y.flops_per_token));
    GapReport {
        tokens,
        l1_penalty: l1,
        amortisation_gap: own.score.objective / optimum.score.objective - 1.0,
        own,
        optimum,
        optimum_solver: a.optimum_stats.unwrap_or(SolverStats {
            iterations: 0,
            converged: false,
        }),
        own_solver: a.own_stats,
        code_cosine,
        support_jaccard,
        frontier,
        matched_l0: a.matched_l0,
        dict_mcc: truth.and_then(|t| {
            metrics::dict_mcc(&t.dictionary, &a.dict_host)
                .ok()
                .map(|m| m.mcc)
        }),
    }
}
