//! Runs advance in bounded increments: `advance(n)` does at most n optimiser steps (plus the
//! evaluations that fall inside them) and returns a small progress record, so a UI can animate,
//! pause and cancel, and the CLI drives the very same API from its worker threads.
//!
//! Seeds: the data come from `config.seed`; run r initialises every model from `config.seed + r`,
//! on a stream named by the encoder's architecture, so SAE and SAE + ITO of the same run start
//! from (and train to) the same SAE, and adding a method never changes another's numbers.

use super::config::{CheckedConfig, MethodConfig, Setting, SolverConfig};
use super::data::Dataset;
use super::flops;
use super::metrics;
use super::models::{DecoderInit, EncoderModel, EncoderSpec, Objective};
use super::results::{LogRecord, MethodResults, Results, RunLog};
use super::rng::Rng;
use super::solvers;
use super::sparse_coding::SparseCodingModel;
use super::Matrix;
use crate::compute::Compute;
use std::sync::Arc;

/// Seconds on a monotonic clock; injected so the core never touches platform timers.
pub type Clock = fn() -> f64;

/// The native monotonic clock (seconds since the first call).
#[cfg(not(target_arch = "wasm32"))]
pub fn default_clock() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// wasm32 has no `Instant`: the browser layer passes `performance.now()` through
/// [`Experiment::with_clock`]; without it, wall times read 0.
#[cfg(target_arch = "wasm32")]
pub fn default_clock() -> f64 {
    0.0
}

/// A stream id from a name (FNV-1a), so model streams do not depend on method order.
fn stream_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | 1 // never stream 0, which the data use
}

/// What a call to `advance` did.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub method_index: usize,
    pub run_index: u32,
    pub step: u64,
    pub total_steps: u64,
    /// Log records appended by this call.
    pub new_records: usize,
    pub done: bool,
}

enum Learner {
    Encoder(Box<EncoderModel>),
    SparseCoding(Box<SparseCodingModel>),
    /// Known dictionary, per-sample inference: nothing is trained.
    InferenceOnly,
}

/// Samples of each minibatch: shuffled once per epoch; an incomplete tail is skipped.
struct Batcher {
    order: Vec<u32>,
    pos: usize,
    size: usize,
    rng: Rng,
    x: Matrix,
    s: Matrix,
}

impl Batcher {
    fn next_indices(&mut self) -> &[u32] {
        if self.pos + self.size > self.order.len() {
            self.rng.shuffle(&mut self.order);
            self.pos = 0;
        }
        let out = &self.order[self.pos..self.pos + self.size];
        self.pos += self.size;
        out
    }
}

/// The last evaluation's codes and dictionary, for views of what was learned.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub step: u64,
    /// Inferred test codes, N' x n.
    pub codes: Matrix,
    /// The dictionary used to decode (unit-norm atoms), if the method has one.
    pub dictionary: Option<Matrix>,
    pub code_matching: Option<metrics::Matching>,
    pub dict_matching: Option<metrics::Matching>,
}

/// One method trained from one seed.
pub struct MethodRun {
    pub method_index: usize,
    pub name: String,
    pub method: MethodConfig,
    pub run_index: u32,
    pub seed: u64,
    config: Arc<CheckedConfig>,
    data: Arc<Dataset>,
    backend: Arc<dyn Compute>,
    learner: Learner,
    widths: Vec<usize>,
    batcher: Option<Batcher>,
    step: u64,
    train_flops_per_step: f64,
    wall_s: f64,
    last_loss: Option<f64>,
    log: Vec<LogRecord>,
    snapshot: Option<Snapshot>,
    /// An evaluation whose inference is still running (see `advance`).
    pending: Option<solvers::AdamExp>,
    /// Inference steps run by evaluations so far (finished and pending).
    inference_steps_done: u64,
    /// Why this run stopped early (training diverged, codes could not be scored): a stopped
    /// run is done, keeps the records it logged before, and reports this message.
    failure: Option<String>,
}

impl std::fmt::Debug for MethodRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodRun")
            .field("name", &self.name)
            .field("run_index", &self.run_index)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl MethodRun {
    pub fn new(
        config: Arc<CheckedConfig>,
        data: Arc<Dataset>,
        backend: Arc<dyn Compute>,
        method_index: usize,
        name: String,
        run_index: u32,
    ) -> Self {
        let method = config.methods[method_index].clone();
        let seed = config.seed + u64::from(run_index);
        let (dim, n_atoms, n) = (data.data_dim(), data.num_atoms(), data.num_samples());
        let lr = config.train.lr;
        let l1 = config.train.l1_penalty as f32;
        let batch = config.train.batch_size.unwrap_or(n);
        let setting = config.setting;
        let (spec, arch_key) = match &method {
            MethodConfig::Sae { bias } | MethodConfig::SaeIto { bias, .. } => (
                Some(EncoderSpec {
                    hidden: vec![],
                    topk: None,
                    bias: *bias,
                }),
                format!("sae/bias={bias}"),
            ),
            MethodConfig::TopkSae { k, bias } => (
                Some(EncoderSpec {
                    hidden: vec![],
                    topk: Some(*k),
                    bias: *bias,
                }),
                format!("topk/k={k}/bias={bias}"),
            ),
            MethodConfig::Mlp { hidden, bias } => (
                Some(EncoderSpec {
                    hidden: hidden.clone(),
                    topk: None,
                    bias: *bias,
                }),
                format!("mlp/{hidden:?}/bias={bias}"),
            ),
            MethodConfig::SparseCoding { .. } => (None, "sparse-coding".to_string()),
        };
        let mut rng = Rng::with_stream(seed, stream_id(&arch_key));
        let mut widths = vec![dim, n_atoms];
        let (learner, train_flops_per_step) = match (&spec, setting) {
            (Some(spec), _) => {
                widths = flops::widths(dim, &spec.hidden, n_atoms);
                let (decoder, objective) = match setting {
                    Setting::KnownCodes => (DecoderInit::None, Objective::Supervised),
                    Setting::KnownDictionary => (
                        DecoderInit::Frozen(&data.dictionary),
                        Objective::Reconstruction { l1_penalty: l1 },
                    ),
                    Setting::Unknown => (
                        DecoderInit::Learned,
                        Objective::Reconstruction { l1_penalty: l1 },
                    ),
                };
                let model = EncoderModel::new(&mut rng, spec, dim, n_atoms, decoder, objective, lr);
                let topk = spec.topk.is_some();
                let per_step = match setting {
                    Setting::KnownCodes => {
                        flops::supervised_train_step(&widths, batch, spec.bias, topk)
                    }
                    Setting::KnownDictionary => {
                        flops::encoder_train_step(&widths, batch, spec.bias, topk, false)
                    }
                    Setting::Unknown => {
                        flops::encoder_train_step(&widths, batch, spec.bias, topk, true)
                    }
                };
                (Learner::Encoder(Box::new(model)), per_step)
            }
            (None, Setting::KnownDictionary) => (Learner::InferenceOnly, 0.0),
            (None, _) => (
                Learner::SparseCoding(Box::new(SparseCodingModel::new(
                    &mut rng, dim, n_atoms, n, l1, lr,
                ))),
                flops::sparse_coding_train_step(dim, n_atoms, batch),
            ),
        };
        let batcher = match (config.train.batch_size, &learner) {
            (Some(b), Learner::Encoder(_) | Learner::SparseCoding(_)) if b < n => Some(Batcher {
                order: (0..n as u32).collect(),
                pos: n, // shuffle before the first batch
                size: b,
                rng: Rng::with_stream(seed, stream_id(&format!("{arch_key}/batches"))),
                x: Matrix::zeros(dim, b),
                s: Matrix::zeros(n_atoms, b),
            }),
            _ => None,
        };
        Self {
            method_index,
            name,
            method,
            run_index,
            seed,
            config,
            data,
            backend,
            learner,
            widths,
            batcher,
            step: 0,
            train_flops_per_step,
            wall_s: 0.0,
            last_loss: None,
            log: Vec::new(),
            snapshot: None,
            pending: None,
            inference_steps_done: 0,
            failure: None,
        }
    }

    pub fn total_steps(&self) -> u64 {
        self.config.train.steps
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn is_done(&self) -> bool {
        self.failure.is_some()
            || (self.step >= self.total_steps() && !self.log.is_empty() && self.pending.is_none())
    }

    /// Why the run stopped early, if it did (e.g. training diverged).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    pub fn log(&self) -> &[LogRecord] {
        &self.log
    }

    /// Whether an evaluation's inference is running (training waits for it).
    pub fn is_evaluating(&self) -> bool {
        self.pending.is_some()
    }

    /// Steps and learning rate of the paper's Adam inference, if this method's evaluations run
    /// it (per-sample inference through a dictionary, with the Adam solver): the one condition
    /// for both `begin_evaluation` and the work count.
    fn adam_inference(&self) -> Option<(u64, f64)> {
        let SolverConfig::Adam { steps, lr } = self.inference_solver().cloned().unwrap_or_default()
        else {
            return None;
        };
        let infers = match &self.learner {
            // An encoder infers per sample only as SAE + ITO, and only with a decoder.
            Learner::Encoder(model) => {
                self.inference_solver().is_some() && model.dictionary().is_some()
            }
            Learner::SparseCoding(_) | Learner::InferenceOnly => true,
        };
        infers.then_some((steps, lr))
    }

    /// All the work of this run in units of one step: training steps plus the inference steps
    /// of its evaluations (one inference step costs about what one training step does). With
    /// nothing trained, only the first evaluation infers; later ones repeat it.
    pub fn work_total(&self) -> u64 {
        let total = self.total_steps();
        let evaluations = match self.learner {
            Learner::InferenceOnly => 1,
            _ => 1 + total.div_ceil(self.config.train.log_every),
        };
        let per_eval = self.adam_inference().map_or(0, |(steps, _)| steps);
        total.saturating_add(evaluations.saturating_mul(per_eval))
    }

    /// The work done so far, in the units of [`MethodRun::work_total`] (all of it once the
    /// run has stopped early: nothing is left to do).
    pub fn work_done(&self) -> u64 {
        if self.failure.is_some() {
            return self.work_total();
        }
        self.step.saturating_add(self.inference_steps_done)
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    pub fn wall_s(&self) -> f64 {
        self.wall_s
    }

    /// Spend at most `max_steps` steps of work (at least one): training steps, and the steps of
    /// the paper's inference when an evaluation runs it (10,000 of them, each as costly as a
    /// training step, so they advance in the same bounded increments instead of blocking a
    /// caller's time slice). Evaluates at step 0, every `log_every` steps and at the last step;
    /// training waits while an evaluation is pending, so the results do not depend on how the
    /// work is split.
    pub fn advance(&mut self, max_steps: u64, clock: Clock) -> Progress {
        self.advance_until(max_steps, u64::MAX, clock)
    }

    /// As [`advance`](Self::advance), but training stops at step `stop_at` (an evaluation due
    /// there still runs): how a UI's single step goes to the next evaluation in bounded slices.
    pub fn advance_until(&mut self, max_steps: u64, stop_at: u64, clock: Clock) -> Progress {
        let start = clock();
        let before = self.log.len();
        let mut budget = max_steps.max(1);
        if self.failure.is_some() {
            return self.progress(0);
        }
        if self.log.is_empty() && self.pending.is_none() {
            self.begin_evaluation(start, clock);
        }
        budget -= self.continue_evaluation(budget, start, clock);
        let total = self.total_steps();
        let limit = total.min(stop_at);
        let log_every = self.config.train.log_every;
        while self.pending.is_none() && self.failure.is_none() && budget > 0 && self.step < limit {
            let next_log = ((self.step / log_every) + 1)
                .saturating_mul(log_every)
                .min(total);
            let until = next_log.min(limit).min(self.step.saturating_add(budget));
            while self.step < until && self.failure.is_none() {
                self.train_one();
                self.step += 1;
                budget -= 1;
            }
            if self.failure.is_some() {
                break;
            }
            if self.step == next_log {
                self.begin_evaluation(start, clock);
                budget -= self.continue_evaluation(budget, start, clock);
            }
        }
        self.wall_s += clock() - start;
        self.progress(self.log.len() - before)
    }

    fn progress(&self, new_records: usize) -> Progress {
        Progress {
            method_index: self.method_index,
            run_index: self.run_index,
            step: self.step,
            total_steps: self.total_steps(),
            new_records,
            done: self.is_done(),
        }
    }

    /// The training step whose evaluation comes next: the current one while its evaluation is
    /// running, else the next multiple of `log_every` (or the last step).
    pub fn next_evaluation_step(&self) -> u64 {
        let total = self.total_steps();
        if self.pending.is_some() || self.step >= total {
            return self.step.min(total);
        }
        let log_every = self.config.train.log_every;
        ((self.step / log_every) + 1)
            .saturating_mul(log_every)
            .min(total)
    }

    /// Whether this run has trained to `stop_at` (or to its end) and logged the evaluation due
    /// there.
    pub fn reached(&self, stop_at: u64) -> bool {
        self.is_done() || (self.step >= stop_at && self.pending.is_none() && !self.log.is_empty())
    }

    fn train_one(&mut self) {
        let backend = &*self.backend;
        let supervised = self.config.setting == Setting::KnownCodes;
        let data = &*self.data;
        let loss = match (&mut self.learner, self.batcher.as_mut()) {
            (Learner::InferenceOnly, _) => return,
            (Learner::Encoder(model), None) => model.train_step(
                backend,
                &data.train_signals,
                supervised.then_some(&data.train_codes),
            ),
            (Learner::Encoder(model), Some(batcher)) => {
                let idx: Vec<u32> = batcher.next_indices().to_vec();
                gather_columns(&data.train_signals, &idx, &mut batcher.x);
                if supervised {
                    gather_columns(&data.train_codes, &idx, &mut batcher.s);
                }
                model.train_step(backend, &batcher.x, supervised.then_some(&batcher.s))
            }
            (Learner::SparseCoding(model), None) => {
                model.train_step(backend, &data.train_signals, None)
            }
            (Learner::SparseCoding(model), Some(batcher)) => {
                let idx: Vec<u32> = batcher.next_indices().to_vec();
                model.train_step(backend, &data.train_signals, Some(&idx))
            }
        };
        self.last_loss = Some(loss);
        if !loss.is_finite() {
            self.failure = Some(format!(
                "training diverged at step {} (the training loss is {loss}); lower the learning \
                 rate",
                self.step + 1
            ));
        }
    }

    fn inference_solver(&self) -> Option<&SolverConfig> {
        match &self.method {
            MethodConfig::SparseCoding { inference } | MethodConfig::SaeIto { inference, .. } => {
                Some(inference)
            }
            _ => None,
        }
    }

    /// Run the pending evaluation's inference for at most `budget` steps, and score it when it
    /// is done. Returns the steps spent.
    fn continue_evaluation(&mut self, budget: u64, start: f64, clock: Clock) -> u64 {
        let Some(solver) = self.pending.as_mut() else {
            return 0;
        };
        let spent = solver.run(&*self.backend, &self.data.test_signals, budget);
        self.inference_steps_done += spent;
        if solver.is_done() {
            let solver = self.pending.take().expect("pending evaluation");
            let dictionary = solver.dictionary().clone();
            let inferred = solver.finish();
            self.score(
                inferred.codes,
                Some(dictionary),
                inferred.flops,
                start,
                clock,
            );
        }
        spent
    }

    /// Evaluate on the test set: at once for encoders and the fast solvers, or by leaving the
    /// paper's Adam inference pending for `continue_evaluation`.
    fn begin_evaluation(&mut self, start: f64, clock: Clock) {
        // With nothing trained, every evaluation is the same: reuse the first.
        if let (Learner::InferenceOnly, Some(last)) = (&self.learner, self.log.last()) {
            let mut record = last.clone();
            record.step = self.step;
            record.wall_s = self.wall_s + (clock() - start);
            self.log.push(record);
            return;
        }
        let backend = &*self.backend;
        let data = &*self.data;
        let cfg = &*self.config;
        let x_test = &data.test_signals;
        let n = x_test.ncols();
        let l1 = cfg.train.l1_penalty as f32;
        let k = cfg.data.sparsity_k;
        if let Some((steps, lr)) = self.adam_inference() {
            // The dictionary the codes are inferred through.
            let dict = match &self.learner {
                Learner::Encoder(model) => model
                    .normalized_dictionary()
                    .expect("adam_inference checked the decoder"),
                Learner::SparseCoding(model) => model.normalized_dictionary(),
                Learner::InferenceOnly => data.dictionary.clone(),
            };
            self.pending = Some(solvers::AdamExp::new(backend, dict, x_test, l1, steps, lr));
            return;
        }
        let (codes, dictionary, infer_flops) = match &self.learner {
            Learner::Encoder(model) => {
                let dictionary = model.normalized_dictionary();
                match (self.inference_solver(), &dictionary) {
                    (Some(solver), Some(dict)) => {
                        let inferred = solvers::infer(backend, solver, dict, x_test, l1, k);
                        (inferred.codes, dictionary, inferred.flops)
                    }
                    _ => {
                        let spec_bias = model.layers[0].bias.is_some();
                        let fl = flops::encoder_forward(
                            &self.widths,
                            n,
                            spec_bias,
                            model.topk.is_some(),
                        );
                        (model.encode(backend, x_test), dictionary, fl)
                    }
                }
            }
            Learner::SparseCoding(model) => {
                let dict = model.normalized_dictionary();
                let solver = self.inference_solver().cloned().unwrap_or_default();
                let inferred = solvers::infer(backend, &solver, &dict, x_test, l1, k);
                (inferred.codes, Some(dict), inferred.flops)
            }
            Learner::InferenceOnly => {
                let solver = self.inference_solver().cloned().unwrap_or_default();
                let inferred = solvers::infer(backend, &solver, &data.dictionary, x_test, l1, k);
                (
                    inferred.codes,
                    Some(data.dictionary.clone()),
                    inferred.flops,
                )
            }
        };
        self.score(codes, dictionary, infer_flops, start, clock);
    }

    /// Score inferred test codes (and the dictionary, if any) and log them.
    fn score(
        &mut self,
        codes: Matrix,
        dictionary: Option<Matrix>,
        infer_flops: f64,
        start: f64,
        clock: Clock,
    ) {
        if let Some(loss) = self.last_loss.filter(|l| !l.is_finite()) {
            self.failure = Some(format!(
                "training diverged before step {} (the training loss is {loss}); \
                 lower the learning rate",
                self.step
            ));
            return;
        }
        match self.metrics(&codes, dictionary.as_ref()) {
            Ok(scored) => self.log_scored(scored, codes, dictionary, infer_flops, start, clock),
            Err(e) => {
                self.failure = Some(format!(
                    "stopped at step {}: {e}; lower the learning rate or the L1 penalty",
                    self.step
                ));
            }
        }
    }

    /// Every metric of one evaluation, or why the codes or dictionary cannot be scored.
    fn metrics(
        &self,
        codes: &Matrix,
        dictionary: Option<&Matrix>,
    ) -> Result<Scored, metrics::MetricError> {
        let backend = &*self.backend;
        let data = &*self.data;
        let cfg = &*self.config;
        let x_test = &data.test_signals;
        let n = x_test.ncols();
        let sparsity = metrics::sparsity(codes, cfg.metrics.l0_threshold)?;
        let (code_mcc, code_matching) = if cfg.setting == Setting::KnownCodes {
            (
                metrics::index_matched_correlation(&data.test_codes, codes)?,
                None,
            )
        } else {
            let m = metrics::code_mcc(backend, &data.test_codes, codes)?;
            (m.mcc, Some(m))
        };
        let dict_matching = dictionary
            .map(|d| metrics::dict_mcc(backend, &data.dictionary, d))
            .transpose()?;
        let recon = dictionary
            .map(|d| {
                let mut x_hat = Matrix::zeros(x_test.nrows(), n);
                crate::compute::gemm_into(backend, 1.0, d.into(), codes.into(), 0.0, &mut x_hat);
                metrics::reconstruction(&x_hat, x_test)
            })
            .transpose()?;
        Ok(Scored {
            sparsity,
            code_mcc,
            code_matching,
            dict_matching,
            recon,
        })
    }

    fn log_scored(
        &mut self,
        scored: Scored,
        codes: Matrix,
        dictionary: Option<Matrix>,
        infer_flops: f64,
        start: f64,
        clock: Clock,
    ) {
        let Scored {
            sparsity,
            code_mcc,
            code_matching,
            dict_matching,
            recon,
        } = scored;
        let record = LogRecord {
            step: self.step,
            code_mcc,
            dict_mcc: dict_matching.as_ref().map(|m| m.mcc),
            test_mse: recon.map(|r| r.mse),
            nmse: recon.map(|r| r.nmse).filter(|v| v.is_finite()),
            l0: sparsity.l0,
            dead_latents: sparsity.dead_latents,
            train_loss: self.last_loss,
            train_flops: self.train_flops_per_step * self.step as f64,
            infer_flops,
            wall_s: self.wall_s + (clock() - start),
        };
        self.log.push(record);
        self.snapshot = Some(Snapshot {
            step: self.step,
            codes,
            dictionary,
            code_matching,
            dict_matching,
        });
    }
}

/// The metrics of one evaluation, before they are logged.
struct Scored {
    sparsity: metrics::Sparsity,
    code_mcc: f64,
    code_matching: Option<metrics::Matching>,
    dict_matching: Option<metrics::Matching>,
    recon: Option<metrics::Reconstruction>,
}

fn gather_columns(src: &Matrix, idx: &[u32], dst: &mut Matrix) {
    let rows = src.nrows();
    for (j, &i) in idx.iter().enumerate() {
        let i = i as usize;
        dst.as_mut_slice()[j * rows..(j + 1) * rows]
            .copy_from_slice(&src.as_slice()[i * rows..(i + 1) * rows]);
    }
}

/// Every method of a config, each from every seed, over one shared dataset.
pub struct Experiment {
    config: Arc<CheckedConfig>,
    data: Arc<Dataset>,
    runs: Vec<MethodRun>,
    clock: Clock,
}

impl std::fmt::Debug for Experiment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Experiment")
            .field("config", &*self.config)
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

impl Experiment {
    /// Generate the data and initialise every (method, seed) run. Cheap relative to training.
    pub fn new(config: CheckedConfig, backend: Arc<dyn Compute>) -> Self {
        let data = Arc::new(Dataset::generate(&config.data, config.seed));
        let config = Arc::new(config);
        let names = method_names(&config.methods);
        let mut runs = Vec::new();
        for (m, name) in names.iter().enumerate() {
            for r in 0..config.runs {
                runs.push(MethodRun::new(
                    config.clone(),
                    data.clone(),
                    backend.clone(),
                    m,
                    name.clone(),
                    r,
                ));
            }
        }
        Self {
            config,
            data,
            runs,
            clock: default_clock,
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn config(&self) -> &CheckedConfig {
        &self.config
    }

    pub fn data(&self) -> &Dataset {
        &self.data
    }

    pub fn runs(&self) -> &[MethodRun] {
        &self.runs
    }

    pub fn runs_mut(&mut self) -> &mut [MethodRun] {
        &mut self.runs
    }

    pub fn is_done(&self) -> bool {
        self.runs.iter().all(MethodRun::is_done)
    }

    /// Advance every unfinished run by at most `max_steps` steps, one after another.
    pub fn step(&mut self, max_steps: u64) -> Vec<Progress> {
        let clock = self.clock;
        self.runs
            .iter_mut()
            .filter(|r| !r.is_done())
            .map(|r| r.advance(max_steps, clock))
            .collect()
    }

    /// Per run, the training step of its next evaluation (see
    /// [`MethodRun::next_evaluation_step`]): the stops of a single step in a UI.
    pub fn next_evaluation_steps(&self) -> Vec<u64> {
        self.runs
            .iter()
            .map(MethodRun::next_evaluation_step)
            .collect()
    }

    /// Advance every run that has not reached its stop (`stops[i]` for run i) by at most
    /// `max_steps` steps of work, training no run past its stop.
    pub fn step_until(&mut self, max_steps: u64, stops: &[u64]) -> Vec<Progress> {
        assert_eq!(stops.len(), self.runs.len(), "one stop per run");
        let clock = self.clock;
        self.runs
            .iter_mut()
            .zip(stops)
            .filter(|(r, &stop)| !r.reached(stop))
            .map(|(r, &stop)| r.advance_until(max_steps, stop, clock))
            .collect()
    }

    /// Whether every run has reached its stop (see [`Experiment::step_until`]).
    pub fn reached(&self, stops: &[u64]) -> bool {
        self.runs
            .iter()
            .zip(stops)
            .all(|(r, &stop)| r.reached(stop))
    }

    /// Training steps done and to do over all runs.
    pub fn progress(&self) -> (u64, u64) {
        let done = self.runs.iter().map(MethodRun::step).sum();
        let total = self.runs.iter().map(MethodRun::total_steps).sum();
        (done, total)
    }

    /// Work done and to do over all runs, training and evaluation inference alike, in steps
    /// (for progress bars and time left: the paper's test-code inference is 10,000 steps per
    /// evaluation, often more than the training itself).
    pub fn work(&self) -> (u64, u64) {
        let done = self.runs.iter().map(MethodRun::work_done).sum();
        let total = self.runs.iter().map(MethodRun::work_total).sum();
        (done, total)
    }

    /// Everything logged so far in the results schema.
    pub fn results(&self) -> Results {
        let names = method_names(&self.config.methods);
        let methods = names
            .into_iter()
            .enumerate()
            .map(|(m, name)| {
                let runs: Vec<RunLog> = self
                    .runs
                    .iter()
                    .filter(|r| r.method_index == m)
                    .map(|r| RunLog {
                        seed: r.seed,
                        log: r.log.clone(),
                        error: r.failure.clone(),
                    })
                    .collect();
                MethodResults::new(name, self.config.methods[m].clone(), runs)
            })
            .collect();
        Results::new((**self.config).clone(), self.data.checksum(), methods)
    }
}

/// Display names, made unique with a " #2" suffix when a method appears twice.
pub fn method_names(methods: &[MethodConfig]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(methods.len());
    for m in methods {
        let base = m.display_name();
        let mut name = base.clone();
        let mut i = 2;
        while out.contains(&name) {
            name = format!("{base} #{i}");
            i += 1;
        }
        out.push(name);
    }
    out
}
