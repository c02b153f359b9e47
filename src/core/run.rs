//! Runs advance in bounded increments: `advance(n)` does at most n optimiser steps (plus the
//! evaluations that fall inside them) and returns a small progress record, so a UI can animate,
//! pause and cancel, and the CLI drives the very same API from its worker threads.
//!
//! Runs of one method with the same shapes form a [`StackRun`]: their parameters, optimiser
//! state and codes are stacked tensors on the backend and every step is one kernel call per
//! operation for all of them. How runs are grouped is a choice of the driver ([`Grouping`]):
//! one stack per method suits a GPU, one stack per run suits CPU threads. The numbers do not
//! depend on it (every kernel treats the members of a stack independently).
//!
//! Evaluations read back only what they score (codes, dictionaries, the last training loss),
//! asynchronously: a stack whose reads are not back yet waits without blocking, and the host
//! scores each member with the metrics when they arrive.
//!
//! Seeds: the data come from `config.seed`; run r initialises every model from `config.seed + r`,
//! on a stream named by the encoder's architecture, so SAE and SAE + ITO of the same run start
//! from (and train to) the same SAE, and adding a method never changes another's numbers.

use super::config::{CheckedConfig, MethodConfig, Setting, SolverConfig};
use super::data::Dataset;
use super::flops;
use super::lista::{self, ListaModel};
use super::metrics;
use super::models::{DecoderInit, EncoderModel, EncoderSpec, Objective};
use super::results::{LogRecord, MethodResults, Results, RunLog};
use super::rng::Rng;
use super::solvers;
use super::sparse_coding::SparseCodingModel;
use super::Matrix;
use crate::compute::{Backend, BackendError, BackendKind, Fetch, Shape, Tensor};
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
pub(crate) fn stream_id(name: &str) -> u64 {
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
    pub step: u64,
    pub total_steps: u64,
    /// Log records appended by this call (over all members).
    pub new_records: usize,
    pub done: bool,
}

/// The data as backend tensors: stacks of 1 shared by every stack of an experiment, or one
/// matrix per member where each member has data of its own (a sweep's stacked units).
#[derive(Debug)]
pub struct DataTensors {
    pub train_signals: Tensor,
    pub test_signals: Tensor,
    /// Only in the known-codes setting (the targets).
    pub train_codes: Option<Tensor>,
    /// Only in the known-dictionary setting (the frozen decoder).
    pub dictionary: Option<Tensor>,
}

impl DataTensors {
    pub fn upload(backend: &dyn Backend, data: &Dataset, setting: Setting) -> Self {
        let up = |m: &Matrix| backend.upload(Shape::new(1, m.nrows(), m.ncols()), m.as_slice());
        Self {
            train_signals: up(&data.train_signals),
            test_signals: up(&data.test_signals),
            train_codes: (setting == Setting::KnownCodes).then(|| up(&data.train_codes)),
            dictionary: (setting == Setting::KnownDictionary).then(|| up(&data.dictionary)),
        }
    }

    /// The data of every member, member `i`'s matrices at member `i` of each tensor (the
    /// datasets must have the same shapes).
    pub fn upload_stacked(backend: &dyn Backend, data: &[Arc<Dataset>], setting: Setting) -> Self {
        assert!(!data.is_empty(), "a stack needs at least one member");
        let up = |pick: fn(&Dataset) -> &Matrix| {
            let first = pick(&data[0]);
            let (rows, cols) = first.shape();
            let mut values = Vec::with_capacity(rows * cols * data.len());
            for d in data {
                let m = pick(d);
                assert_eq!(
                    m.shape(),
                    (rows, cols),
                    "stacked datasets share their shapes"
                );
                values.extend_from_slice(m.as_slice());
            }
            backend.upload(Shape::new(data.len(), rows, cols), &values)
        };
        Self {
            train_signals: up(|d| &d.train_signals),
            test_signals: up(|d| &d.test_signals),
            train_codes: (setting == Setting::KnownCodes).then(|| up(|d| &d.train_codes)),
            dictionary: (setting == Setting::KnownDictionary).then(|| up(|d| &d.dictionary)),
        }
    }
}

/// One member of a stack as it is built: a run of the method, its seed, and its data (the
/// members of an experiment's stack share one dataset; a sweep's stacked units each have
/// their own).
#[derive(Clone, Debug)]
pub struct MemberSpec {
    pub run_index: u32,
    pub seed: u64,
    pub data: Arc<Dataset>,
    /// K of the member's data (OMP's default number of atoms).
    pub sparsity_k: usize,
    /// The member's own experiment, which may differ from the stack's in its training rates
    /// (its method's learning rate and lambda are `train.lr_for`/`l1_for` of it) and in the k
    /// of its method's top-k: a sweep's cells stacked along lambda, lr or k.
    pub config: Arc<CheckedConfig>,
}

/// The name of a method's architecture, which names the random streams of its initialisation
/// and minibatches (SAE and SAE + ITO share one, so that they train the very same SAE).
fn arch_key(method: &MethodConfig) -> String {
    match method {
        MethodConfig::Sae { bias } | MethodConfig::SaeIto { bias, .. } => {
            format!("sae/bias={bias}")
        }
        MethodConfig::TopkSae { k, bias } => format!("topk/k={k}/bias={bias}"),
        MethodConfig::Mlp { hidden, bias } => format!("mlp/{hidden:?}/bias={bias}"),
        MethodConfig::SparseCoding { .. } => "sparse-coding".to_string(),
        MethodConfig::Lista { iterations } => format!("lista/T={iterations}"),
        MethodConfig::BatchTopkSae { .. } | MethodConfig::JumpReluSae { .. } => {
            unreachable!("validate() refuses real-activation methods in synthetic experiments")
        }
    }
}

/// `values` as one entry when they are all equal (what every member shares), else as they are.
fn one_or_each<T: Copy + PartialEq>(values: Vec<T>) -> Vec<T> {
    match values.first() {
        Some(&v) if values.iter().all(|&w| w == v) => vec![v],
        _ => values,
    }
}

enum Learner {
    Encoder(Box<EncoderModel>),
    SparseCoding(Box<SparseCodingModel>),
    /// LISTA with its learned dictionary (the setting with both unknown).
    Lista(Box<ListaModel>),
    /// Known dictionary, per-sample inference: nothing is trained.
    InferenceOnly,
}

/// Samples of each minibatch for one member: shuffled once per epoch; an incomplete tail is
/// skipped.
pub(crate) struct Batcher {
    order: Vec<u32>,
    pos: usize,
    size: usize,
    rng: Rng,
}

impl Batcher {
    /// Batches of `size` of the samples 0..n, the order drawn from `rng`.
    pub(crate) fn new(n: usize, size: usize, rng: Rng) -> Self {
        Self {
            order: (0..n as u32).collect(),
            pos: n, // shuffle before the first batch
            size,
            rng,
        }
    }

    pub(crate) fn next_indices(&mut self) -> &[u32] {
        if self.pos + self.size > self.order.len() {
            self.rng.shuffle(&mut self.order);
            self.pos = 0;
        }
        let out = &self.order[self.pos..self.pos + self.size];
        self.pos += self.size;
        out
    }
}

/// Minibatches of every member, and the tensors they are gathered into.
struct Minibatches {
    batchers: Vec<Batcher>,
    indices: Tensor,
    /// Gathered signals and (known codes) target codes.
    x: Tensor,
    s: Option<Tensor>,
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

/// One run (a seed) of a stack: what it has logged and learned.
#[derive(Debug)]
pub struct Member {
    pub run_index: u32,
    pub seed: u64,
    log: Vec<LogRecord>,
    snapshot: Option<Snapshot>,
    /// Why this run stopped early (training diverged, codes could not be scored): it keeps
    /// the records it logged before and reports this message.
    failure: Option<String>,
}

impl Member {
    pub fn log(&self) -> &[LogRecord] {
        &self.log
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Why the run stopped early, if it did (e.g. training diverged).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}

/// An evaluation under way.
enum Evaluation {
    /// The paper's inference, advancing in the same bounded increments as training.
    Inferring(Box<solvers::AdamExp>),
    /// FISTA, advancing the same way (with a tolerance, waiting for its checks' read-backs).
    Fista(Box<solvers::FistaRun>),
    /// The dictionaries on their way to the host, where a solver needs them (OMP runs there;
    /// FISTA's step sizes come from their top eigenvalues).
    AwaitDict {
        dict: Tensor,
        read: Fetch,
        solver: SolverConfig,
    },
    /// Codes, dictionaries and reconstructions on their way back, to be scored on the host.
    Reading {
        codes: Fetch,
        latents: usize,
        dict: Option<(Fetch, Shape)>,
        recon: Option<Fetch>,
        /// FLOPs of the inference per member (one value: every member's).
        infer_flops: Vec<f64>,
        /// How a convergence-tested solver ended, per member.
        stats: Option<Vec<solvers::SolverStats>>,
    },
}

/// Runs of one method with the same shapes, advanced together (see the module documentation).
pub struct StackRun {
    pub method_index: usize,
    pub name: String,
    pub method: MethodConfig,
    members: Vec<Member>,
    config: Arc<CheckedConfig>,
    /// Each member's data (one entry when they share it).
    data: Vec<Arc<Dataset>>,
    /// Each member's K (OMP's default).
    sparsity_k: Vec<usize>,
    /// Lambda in training and in test-code inference: one for every member, or one each.
    l1: Vec<f32>,
    /// The k of the method's top-k (its TopK SAE's or its inference's; 0 without one): one for
    /// every member, or one each.
    topk: Vec<usize>,
    tensors: Arc<DataTensors>,
    backend: Arc<dyn Backend>,
    learner: Learner,
    widths: Vec<usize>,
    batches: Option<Minibatches>,
    step: u64,
    train_flops_per_step: f64,
    wall_s: f64,
    evaluation: Option<Evaluation>,
    /// The loss of the training step before the evaluation under way, on its way back.
    loss: Option<Fetch>,
    /// Inference steps run by evaluations so far (finished and pending), per member.
    inference_steps_done: u64,
    /// The backend failed (a lost device): the stack stops, its members keep their logs.
    backend_failure: Option<String>,
    /// Whether the evaluation at step 0 has begun.
    started: bool,
}

impl std::fmt::Debug for StackRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackRun")
            .field("name", &self.name)
            .field("members", &self.members.len())
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl StackRun {
    /// The runs `run_indices` of method `method_index`, as one stack over the experiment's
    /// data.
    pub fn new(
        config: Arc<CheckedConfig>,
        data: Arc<Dataset>,
        tensors: Arc<DataTensors>,
        backend: Arc<dyn Backend>,
        method_index: usize,
        name: String,
        run_indices: &[u32],
    ) -> Self {
        let specs = run_indices
            .iter()
            .map(|&run_index| MemberSpec {
                run_index,
                seed: config.seed + u64::from(run_index),
                data: data.clone(),
                sparsity_k: config.data.sparsity_k,
                config: config.clone(),
            })
            .collect();
        Self::with_members(config, specs, tensors, backend, method_index, name)
    }

    /// Method `method_index` of `config` for the members `specs`, as one stack; `tensors`
    /// hold the members' data (a stack of 1 where they share one dataset, else one matrix per
    /// member in their order). Members with data of their own must differ from `config` only
    /// in their seed and the generation of their data (the shapes, model and training are
    /// `config`'s).
    pub fn with_members(
        config: Arc<CheckedConfig>,
        specs: Vec<MemberSpec>,
        tensors: Arc<DataTensors>,
        backend: Arc<dyn Backend>,
        method_index: usize,
        name: String,
    ) -> Self {
        assert!(!specs.is_empty(), "a stack needs at least one run");
        let shared = specs.iter().all(|m| Arc::ptr_eq(&m.data, &specs[0].data));
        assert!(
            tensors.train_signals.stack() == if shared { 1 } else { specs.len() },
            "the data tensors hold the members' data"
        );
        let data: Vec<Arc<Dataset>> = if shared {
            vec![specs[0].data.clone()]
        } else {
            specs.iter().map(|m| m.data.clone()).collect()
        };
        let method = config.methods[method_index].clone();
        let seeds: Vec<u64> = specs.iter().map(|m| m.seed).collect();
        let members_n = seeds.len();
        let (dim, n_atoms, n) = (
            data[0].data_dim(),
            data[0].num_atoms(),
            data[0].num_samples(),
        );
        let kind = method.kind();
        let lr = one_or_each(specs.iter().map(|m| m.config.train.lr_for(kind)).collect());
        let l1 = one_or_each(
            specs
                .iter()
                .map(|m| m.config.train.l1_for(kind) as f32)
                .collect(),
        );
        let topk = one_or_each(
            specs
                .iter()
                .map(|m| {
                    let mut method = m.config.methods[method_index].clone();
                    method.topk_k_mut().map_or(0, |k| *k)
                })
                .collect(),
        );
        let batch = config.train.batch_size.unwrap_or(n);
        let setting = config.setting;
        // (BatchTopK and JumpReLU SAEs never get here: `arch_key` below says so.)
        let spec = EncoderSpec::of(&method);
        // Each member's streams are named by its own method (a TopK SAE's by its own k).
        let arch_keys: Vec<String> = specs
            .iter()
            .map(|m| arch_key(&m.config.methods[method_index]))
            .collect();
        let mut rngs: Vec<Rng> = seeds
            .iter()
            .zip(&arch_keys)
            .map(|(&seed, key)| Rng::with_stream(seed, stream_id(key)))
            .collect();
        let b = &*backend;
        let mut widths = vec![dim, n_atoms];
        let (learner, train_flops_per_step) = match (&spec, setting) {
            (Some(spec), _) => {
                widths = flops::widths(dim, &spec.hidden, n_atoms);
                let (decoder, objective) = match setting {
                    Setting::KnownCodes => (DecoderInit::None, Objective::Supervised),
                    Setting::KnownDictionary => (
                        DecoderInit::Frozen(
                            tensors
                                .dictionary
                                .as_ref()
                                .expect("the known-dictionary setting uploads it"),
                        ),
                        Objective::Reconstruction {
                            l1_penalty: l1.clone(),
                        },
                    ),
                    Setting::Unknown => (
                        DecoderInit::Learned,
                        Objective::Reconstruction {
                            l1_penalty: l1.clone(),
                        },
                    ),
                };
                let mut model =
                    EncoderModel::new(b, &mut rngs, spec, dim, n_atoms, decoder, objective, &lr);
                if spec.topk.is_some() && topk.len() > 1 {
                    model.set_topk_per_member(topk.clone());
                }
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
            (None, _) if matches!(method, MethodConfig::Lista { .. }) => {
                let &MethodConfig::Lista { iterations } = &method else {
                    unreachable!("matched above")
                };
                (
                    Learner::Lista(Box::new(ListaModel::new(
                        b, &mut rngs, dim, n_atoms, iterations, &l1, &lr,
                    ))),
                    lista::train_step_flops(dim, n_atoms, iterations, batch),
                )
            }
            (None, Setting::KnownDictionary) => (Learner::InferenceOnly, 0.0),
            (None, _) => (
                Learner::SparseCoding(Box::new(SparseCodingModel::new(
                    b, &mut rngs, dim, n_atoms, n, &l1, &lr,
                ))),
                flops::sparse_coding_train_step(dim, n_atoms, batch),
            ),
        };
        let batches = match (config.train.batch_size, &learner) {
            (Some(size), Learner::Encoder(_) | Learner::SparseCoding(_) | Learner::Lista(_))
                if size < n =>
            {
                let batchers = seeds
                    .iter()
                    .zip(&arch_keys)
                    .map(|(&seed, key)| {
                        Batcher::new(
                            n,
                            size,
                            Rng::with_stream(seed, stream_id(&format!("{key}/batches"))),
                        )
                    })
                    .collect();
                let supervised = setting == Setting::KnownCodes;
                Some(Minibatches {
                    batchers,
                    indices: b.upload_indices(members_n, &vec![0; members_n * size]),
                    x: b.zeros(Shape::new(members_n, dim, size)),
                    s: supervised.then(|| b.zeros(Shape::new(members_n, n_atoms, size))),
                })
            }
            _ => None,
        };
        let sparsity_k = specs.iter().map(|m| m.sparsity_k).collect();
        let members = specs
            .iter()
            .map(|m| Member {
                run_index: m.run_index,
                seed: m.seed,
                log: Vec::new(),
                snapshot: None,
                failure: None,
            })
            .collect();
        Self {
            method_index,
            name,
            method,
            members,
            config,
            data,
            sparsity_k,
            l1,
            topk,
            tensors,
            backend,
            learner,
            widths,
            batches,
            step: 0,
            train_flops_per_step,
            wall_s: 0.0,
            evaluation: None,
            loss: None,
            inference_steps_done: 0,
            backend_failure: None,
            started: false,
        }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Member `i`'s data.
    pub fn member_data(&self, i: usize) -> &Dataset {
        &self.data[if self.data.len() == 1 { 0 } else { i }]
    }

    pub fn total_steps(&self) -> u64 {
        self.config.train.steps
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn wall_s(&self) -> f64 {
        self.wall_s
    }

    fn all_failed(&self) -> bool {
        self.members.iter().all(|m| m.failure.is_some())
    }

    pub fn is_done(&self) -> bool {
        self.all_failed()
            || (self.step >= self.total_steps() && self.evaluated() && self.evaluation.is_none())
    }

    /// Whether every member has logged an evaluation (or stopped).
    fn evaluated(&self) -> bool {
        self.started
            && self
                .members
                .iter()
                .all(|m| !m.log.is_empty() || m.failure.is_some())
    }

    /// Whether an evaluation is under way (training waits for it).
    pub fn is_evaluating(&self) -> bool {
        self.evaluation.is_some()
    }

    /// Why the backend stopped this stack (a lost device, an allocation refused), if it did.
    pub fn backend_failure(&self) -> Option<&str> {
        self.backend_failure.as_deref()
    }

    /// Steps, learning rate and TopK of the paper's Adam inference, if this method's
    /// evaluations run it (per-sample inference through a dictionary, with the Adam solver,
    /// with or without a TopK): the one condition for both `begin_evaluation` and the work
    /// count.
    #[allow(clippy::type_complexity)]
    fn adam_inference(&self) -> Option<(u64, f64, Option<(usize, bool)>)> {
        let (steps, lr, topk) = match self.inference_solver().cloned().unwrap_or_default() {
            SolverConfig::Adam { steps, lr } => (steps, lr, None),
            SolverConfig::AdamTopk {
                steps,
                lr,
                k,
                inside,
            } => (steps, lr, Some((k, inside))),
            SolverConfig::Fista { .. } | SolverConfig::Omp { .. } => return None,
        };
        self.infers_per_sample().then_some((steps, lr, topk))
    }

    /// Whether evaluations infer codes per sample through a dictionary (with the method's
    /// solver) rather than encode them.
    fn infers_per_sample(&self) -> bool {
        match &self.learner {
            // An encoder infers per sample only as SAE + ITO, and only with a decoder.
            Learner::Encoder(model) => {
                self.inference_solver().is_some() && model.dictionary().is_some()
            }
            Learner::SparseCoding(_) | Learner::InferenceOnly => true,
            Learner::Lista(_) => false,
        }
    }

    /// One member's work in units of one step: training steps plus the inference steps of its
    /// evaluations (one inference step costs about what one training step does). With
    /// nothing trained, only the first evaluation infers; later ones repeat it.
    fn member_work_total(&self) -> u64 {
        let total = self.total_steps();
        let evaluations = match self.learner {
            Learner::InferenceOnly => 1,
            _ => 1 + self.config.train.evaluations_after_start(),
        };
        let per_eval = match self.inference_solver() {
            // FISTA's iterations (a cap, with a tolerance: what converges early counts as done).
            Some(SolverConfig::Fista { steps, .. }) if self.infers_per_sample() => *steps,
            _ => self.adam_inference().map_or(0, |(steps, _, _)| steps),
        };
        total.saturating_add(evaluations.saturating_mul(per_eval))
    }

    /// All the work of this stack (every member's), in steps.
    pub fn work_total(&self) -> u64 {
        self.member_work_total()
            .saturating_mul(self.members.len() as u64)
    }

    /// The work done so far, in the units of [`StackRun::work_total`] (all of a member's once
    /// it has stopped early, and all of the stack's once it is done).
    pub fn work_done(&self) -> u64 {
        if self.is_done() || self.backend_failure.is_some() {
            return self.work_total();
        }
        let per_member = self.step.saturating_add(self.inference_steps_done);
        let total = self.member_work_total();
        self.members
            .iter()
            .map(|m| {
                if m.failure.is_some() {
                    total
                } else {
                    per_member
                }
            })
            .sum()
    }

    /// Spend at most `max_steps` steps of work (at least one): training steps of the whole
    /// stack, and the steps of the paper's inference when an evaluation runs it (10,000 of
    /// them, each as costly as a training step, so they advance in the same bounded
    /// increments instead of blocking a caller's time slice). Evaluates at step 0, every
    /// `log_every` steps and at the last step; training waits while an evaluation is pending
    /// (including its read-backs), so the results do not depend on how the work is split.
    pub fn advance(&mut self, max_steps: u64, clock: Clock) -> Progress {
        self.advance_until(max_steps, u64::MAX, clock)
    }

    /// As [`advance`](Self::advance), but training stops at step `stop_at` (an evaluation due
    /// there still runs): how a UI's single step goes to the next evaluation in bounded slices.
    pub fn advance_until(&mut self, max_steps: u64, stop_at: u64, clock: Clock) -> Progress {
        let start = clock();
        let before = self.record_count();
        if self.is_done() || self.backend_failure.is_some() {
            return self.progress(0);
        }
        let mut budget = max_steps.max(1);
        if !self.started {
            self.started = true;
            self.begin_evaluation(start, clock);
        }
        budget = budget.saturating_sub(self.continue_evaluation(budget, start, clock));
        let total = self.total_steps();
        let limit = total.min(stop_at);
        while self.evaluation.is_none() && !self.all_failed() && budget > 0 && self.step < limit {
            let next_log = self.config.train.next_evaluation_after(self.step);
            let until = next_log.min(limit).min(self.step.saturating_add(budget));
            while self.step < until {
                let ran = self.train_some(until - self.step, next_log);
                self.step += ran;
                budget -= ran;
            }
            if self.step == next_log {
                self.begin_evaluation(start, clock);
                budget = budget.saturating_sub(self.continue_evaluation(budget, start, clock));
            }
        }
        self.backend.flush();
        if let Err(e) = self.backend.health() {
            self.fail_backend(&e);
        }
        self.wall_s += clock() - start;
        self.progress(self.record_count() - before)
    }

    fn record_count(&self) -> usize {
        self.members.iter().map(|m| m.log.len()).sum()
    }

    fn progress(&self, new_records: usize) -> Progress {
        Progress {
            method_index: self.method_index,
            step: self.step,
            total_steps: self.total_steps(),
            new_records,
            done: self.is_done(),
        }
    }

    fn fail_backend(&mut self, e: &BackendError) {
        self.backend_failure = Some(e.0.clone());
        self.evaluation = None;
    }

    /// The training step whose evaluation comes next: the current one while its evaluation is
    /// running, else the next one of the schedule (`log_every` or `eval_steps`; the last step).
    pub fn next_evaluation_step(&self) -> u64 {
        let total = self.total_steps();
        if self.evaluation.is_some() || self.step >= total {
            return self.step.min(total);
        }
        self.config.train.next_evaluation_after(self.step)
    }

    /// Whether this stack has trained to `stop_at` (or to its end) and logged the evaluation
    /// due there.
    pub fn reached(&self, stop_at: u64) -> bool {
        self.is_done()
            || self.backend_failure.is_some()
            || (self.step >= stop_at && self.evaluation.is_none() && self.evaluated())
    }

    /// Up to `count` training steps (the step before `next_log` leaving its loss): all of
    /// them at once for full-batch encoders and sparse coding (which a backend may fuse), else
    /// one.
    fn train_some(&mut self, count: u64, next_log: u64) -> u64 {
        let t = &*self.tensors;
        let count_usize = usize::try_from(count).unwrap_or(usize::MAX);
        let want_loss = self.step + count == next_log;
        match (&mut self.learner, &self.batches) {
            (Learner::Encoder(model), None) => {
                model.train_steps(
                    &*self.backend,
                    &t.train_signals,
                    t.train_codes.as_ref(),
                    count_usize,
                    want_loss,
                );
                count
            }
            (Learner::SparseCoding(model), None) => {
                model.train_steps(&*self.backend, &t.train_signals, count_usize, want_loss);
                count
            }
            _ => {
                self.train_one(self.step + 1 == next_log);
                1
            }
        }
    }

    fn train_one(&mut self, want_loss: bool) {
        let backend = &*self.backend;
        let t = &*self.tensors;
        let batch = self.batches.as_mut().map(|mb| {
            let size = mb.batchers[0].size;
            let idx: Vec<u32> = mb
                .batchers
                .iter_mut()
                .flat_map(|b| b.next_indices().to_vec())
                .collect();
            backend.write(
                &mut mb.indices,
                &idx.iter().map(|&i| f32::from_bits(i)).collect::<Vec<_>>(),
            );
            (mb, size)
        });
        match (&mut self.learner, batch) {
            (Learner::InferenceOnly, _) => {}
            (Learner::Encoder(model), None) => {
                model.train_step(backend, &t.train_signals, t.train_codes.as_ref(), want_loss)
            }
            (Learner::Encoder(model), Some((mb, _))) => {
                backend.gather_columns(&t.train_signals, &mb.indices, &mut mb.x);
                if let (Some(s), Some(codes)) = (mb.s.as_mut(), t.train_codes.as_ref()) {
                    backend.gather_columns(codes, &mb.indices, s);
                }
                model.train_step(backend, &mb.x, mb.s.as_ref(), want_loss)
            }
            (Learner::SparseCoding(model), None) => {
                model.train_step(backend, &t.train_signals, None, want_loss)
            }
            (Learner::Lista(model), None) => model.train_step(backend, &t.train_signals, want_loss),
            (Learner::Lista(model), Some((mb, _))) => {
                backend.gather_columns(&t.train_signals, &mb.indices, &mut mb.x);
                model.train_step(backend, &mb.x, want_loss)
            }
            (Learner::SparseCoding(model), Some((mb, size))) => model.train_step(
                backend,
                &t.train_signals,
                Some((&mb.indices, size)),
                want_loss,
            ),
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

    /// Advance the evaluation under way: at most `budget` steps of the paper's inference, or
    /// the next stage once read-backs are in; scores and logs it when everything is back.
    /// Returns the inference steps spent.
    fn continue_evaluation(&mut self, budget: u64, start: f64, clock: Clock) -> u64 {
        let backend = Arc::clone(&self.backend);
        let b = &*backend;
        let mut spent = 0;
        loop {
            let Some(evaluation) = self.evaluation.take() else {
                return spent;
            };
            let next = match evaluation {
                Evaluation::Inferring(mut solver) => {
                    if budget > spent {
                        let ran = solver.run(b, &self.tensors.test_signals, budget - spent);
                        spent += ran;
                        self.inference_steps_done += ran;
                    }
                    if !solver.is_done() {
                        self.evaluation = Some(Evaluation::Inferring(solver));
                        return spent;
                    }
                    let infer_flops = solver.flops();
                    let (codes, dict) = solver.into_parts();
                    let recon = reconstruct(b, &dict, &codes);
                    let [codes_read, dict_read, recon_read] =
                        self.read_back(b, [&codes, &dict, &recon]);
                    Evaluation::Reading {
                        stats: None,
                        codes: codes_read,
                        latents: codes.rows(),
                        dict: Some((dict_read, dict.shape())),
                        recon: Some(recon_read),
                        infer_flops: vec![infer_flops],
                    }
                }
                Evaluation::Fista(mut solver) => {
                    let before = solver.steps_done();
                    let ran =
                        solver.run(b, &self.tensors.test_signals, budget.saturating_sub(spent));
                    let ran = match ran {
                        Ok(ran) => ran,
                        Err(e) => {
                            self.fail_backend(&e);
                            return spent;
                        }
                    };
                    spent += ran;
                    self.inference_steps_done += solver.steps_done() - before;
                    if !solver.is_done() {
                        self.evaluation = Some(Evaluation::Fista(solver));
                        return spent;
                    }
                    // Iterations a converged run did not need count as done.
                    self.inference_steps_done += solver.unused_steps();
                    let infer_flops = solver.member_flops();
                    let stats = solver.stats();
                    let dict_values = solver.host_dictionaries();
                    let (codes, dict) = solver.into_parts();
                    let recon = reconstruct(b, &dict, &codes);
                    let [codes_read, recon_read] = self.read_back(b, [&codes, &recon]);
                    Evaluation::Reading {
                        codes: codes_read,
                        latents: codes.rows(),
                        dict: Some((Fetch::Host(dict_values), dict.shape())),
                        recon: Some(recon_read),
                        infer_flops,
                        stats,
                    }
                }
                Evaluation::AwaitDict {
                    dict,
                    mut read,
                    solver,
                } => {
                    let values = match read.poll() {
                        Err(e) => {
                            self.fail_backend(&e);
                            return spent;
                        }
                        Ok(None) => {
                            self.evaluation = Some(Evaluation::AwaitDict { dict, read, solver });
                            return spent;
                        }
                        Ok(Some(v)) => v.to_vec(),
                    };
                    let hosts = split_members(&values, dict.shape());
                    let x = &self.tensors.test_signals;
                    match solver {
                        SolverConfig::Fista { steps, nonneg, tol } => {
                            Evaluation::Fista(Box::new(solvers::FistaRun::new(
                                b,
                                dict,
                                hosts,
                                self.data.iter().map(|d| d.test_signals.clone()).collect(),
                                x,
                                &self.l1,
                                steps,
                                nonneg,
                                tol,
                            )))
                        }
                        SolverConfig::Omp { k } => {
                            let mut codes = Vec::new();
                            let mut recon = Vec::new();
                            let mut flops = Vec::with_capacity(hosts.len());
                            for (i, d) in hosts.iter().enumerate() {
                                let k = k.unwrap_or(self.sparsity_k[i]);
                                let x = &self.member_data(i).test_signals;
                                let inferred = solvers::omp(d, x, k);
                                codes.extend_from_slice(inferred.codes.as_slice());
                                recon.extend_from_slice((d * &inferred.codes).as_slice());
                                flops.push(inferred.flops);
                            }
                            // Everything is on the host but the last training loss.
                            let [] = self.read_back(b, []);
                            Evaluation::Reading {
                                codes: Fetch::Host(codes),
                                latents: dict.cols(),
                                dict: Some((Fetch::Host(values), dict.shape())),
                                recon: Some(Fetch::Host(recon)),
                                infer_flops: flops,
                                stats: None,
                            }
                        }
                        SolverConfig::Adam { .. } | SolverConfig::AdamTopk { .. } => {
                            unreachable!("the paper's inference runs as Evaluation::Inferring")
                        }
                    }
                }
                Evaluation::Reading {
                    mut codes,
                    latents,
                    mut dict,
                    mut recon,
                    infer_flops,
                    stats,
                } => {
                    let mut ready = true;
                    let mut check = |f: &mut Fetch| match f.poll() {
                        Ok(v) => {
                            ready &= v.is_some();
                            Ok(())
                        }
                        Err(e) => Err(e),
                    };
                    let polled = check(&mut codes)
                        .and_then(|()| dict.as_mut().map_or(Ok(()), |(d, _)| check(d)))
                        .and_then(|()| recon.as_mut().map_or(Ok(()), &mut check))
                        .and_then(|()| self.loss.as_mut().map_or(Ok(()), &mut check));
                    if let Err(e) = polled {
                        self.fail_backend(&e);
                        return spent;
                    }
                    if !ready {
                        self.evaluation = Some(Evaluation::Reading {
                            codes,
                            latents,
                            dict,
                            recon,
                            infer_flops,
                            stats,
                        });
                        return spent;
                    }
                    let host = Fetch::into_host;
                    let codes = host(codes);
                    let dict = dict.map(|(d, shape)| (host(d), shape));
                    let recon = recon.map(host);
                    let loss = self.loss.take().map(host);
                    let read = Read {
                        codes,
                        latents,
                        dict,
                        recon,
                        loss,
                        stats,
                    };
                    self.score(read, infer_flops, start, clock);
                    return spent;
                }
            };
            self.evaluation = Some(next);
        }
    }

    /// Evaluate on the test set: encoders encode at once; per-sample solvers start (the paper's
    /// inference advances over later calls, FISTA and OMP wait for the dictionaries).
    fn begin_evaluation(&mut self, start: f64, clock: Clock) {
        // With nothing trained, every evaluation is the same: reuse the first.
        if matches!(self.learner, Learner::InferenceOnly)
            && self.members.iter().all(|m| !m.log.is_empty())
        {
            let wall = self.wall_s + (clock() - start);
            for m in &mut self.members {
                if let Some(mut record) = m.log.last().cloned() {
                    record.step = self.step;
                    record.wall_s = wall;
                    m.log.push(record);
                }
            }
            return;
        }
        let backend = Arc::clone(&self.backend);
        let b = &*backend;
        // After fused training the parameters catch up before they are read.
        match &mut self.learner {
            Learner::Encoder(model) => model.settle(b),
            Learner::SparseCoding(model) => model.settle(b),
            Learner::Lista(_) | Learner::InferenceOnly => {}
        }
        let members = self.members.len();
        let n = self.data[0].test_signals.ncols();
        self.loss = None;
        // The dictionaries the codes are decoded (and inferred) through, one per member.
        let dict: Option<Tensor> = match &self.learner {
            Learner::Encoder(model) => model.normalized_dictionary(b),
            Learner::SparseCoding(model) => Some(model.normalized_dictionary(b)),
            Learner::Lista(model) => Some(model.normalized_dictionary(b)),
            Learner::InferenceOnly => self.tensors.dictionary.as_ref().map(|d| {
                let mut out = b.zeros(d.shape().with_stack(members));
                b.copy(d, &mut out);
                out
            }),
        }
        .map(|d| {
            if d.stack() == members {
                d
            } else {
                let mut out = b.zeros(d.shape().with_stack(members));
                b.copy(&d, &mut out);
                out
            }
        });
        if let Some((steps, lr, topk)) = self.adam_inference() {
            let dict = dict.expect("adam_inference checked the decoder");
            let mut solver =
                solvers::AdamExp::new(b, dict, &self.tensors.test_signals, &self.l1, steps, &[lr]);
            if let Some((_, inside)) = topk {
                solver = solver.with_topk(b, &self.topk, inside);
            }
            self.evaluation = Some(Evaluation::Inferring(Box::new(solver)));
            return;
        }
        let solver = self.inference_solver().cloned();
        self.evaluation = Some(match (&self.learner, solver, dict) {
            (Learner::Lista(model), None, Some(d)) => {
                let codes = model.encode(b, &self.tensors.test_signals);
                let fl =
                    lista::forward_flops(self.data[0].data_dim(), codes.rows(), model.iterations)
                        * n as f64;
                self.read_decoded(b, &codes, &d, fl)
            }
            (Learner::Encoder(model), None, dict) => {
                let codes = model.encode(b, &self.tensors.test_signals);
                let spec_bias = model.layers[0].bias.is_some();
                let fl = flops::encoder_forward(&self.widths, n, spec_bias, model.topk.is_some());
                match dict {
                    Some(d) => self.read_decoded(b, &codes, &d, fl),
                    None => {
                        let [codes_read] = self.read_back(b, [&codes]);
                        Evaluation::Reading {
                            codes: codes_read,
                            latents: codes.rows(),
                            dict: None,
                            recon: None,
                            infer_flops: vec![fl],
                            stats: None,
                        }
                    }
                }
            }
            (_, Some(solver), Some(dict)) => Evaluation::AwaitDict {
                read: Fetch::Reading(b.read(&dict)),
                dict,
                solver,
            },
            (_, _, None) => unreachable!("per-sample solvers always have a dictionary"),
            (_, None, Some(_)) => unreachable!("only encoders evaluate without a solver"),
        });
    }

    /// An encoder's evaluation: its codes decoded through `d`, codes, dictionary and
    /// reconstruction read back together (with the last training loss).
    fn read_decoded(
        &mut self,
        b: &dyn Backend,
        codes: &Tensor,
        d: &Tensor,
        infer_flops: f64,
    ) -> Evaluation {
        let recon = reconstruct(b, d, codes);
        let [codes_read, dict_read, recon_read] = self.read_back(b, [codes, d, &recon]);
        Evaluation::Reading {
            codes: codes_read,
            latents: codes.rows(),
            dict: Some((dict_read, d.shape())),
            recon: Some(recon_read),
            infer_flops: vec![infer_flops],
            stats: None,
        }
    }

    /// Start reading an evaluation's tensors back, with the loss of the last training step
    /// (into `self.loss`), in one read-back.
    fn read_back<const K: usize>(&mut self, b: &dyn Backend, tensors: [&Tensor; K]) -> [Fetch; K] {
        let loss = match &self.learner {
            _ if self.step == 0 => None,
            Learner::Encoder(model) => Some(model.loss()),
            Learner::SparseCoding(model) => Some(model.loss()),
            Learner::Lista(model) => Some(model.loss()),
            Learner::InferenceOnly => None,
        };
        let mut all: Vec<&Tensor> = tensors.to_vec();
        all.extend(loss);
        let has_loss = loss.is_some();
        let mut reads: Vec<Fetch> = b.read_many(&all).into_iter().map(Fetch::Reading).collect();
        self.loss = if has_loss { reads.pop() } else { None };
        reads
            .try_into()
            .unwrap_or_else(|_| unreachable!("one read per tensor"))
    }

    /// Score every member's inferred test codes (and dictionary) and log them; a member whose
    /// loss, codes or dictionary are not finite stops with a message.
    fn score(&mut self, read: Read, infer_flops: Vec<f64>, start: f64, clock: Clock) {
        let n = self.data[0].test_signals.ncols();
        let dim = self.data[0].data_dim();
        let per_codes = read.latents * n;
        let wall = self.wall_s + (clock() - start);
        for i in 0..self.members.len() {
            if self.members[i].failure.is_some() {
                continue;
            }
            let member_codes = Matrix::from_column_slice(
                read.latents,
                n,
                &read.codes[i * per_codes..(i + 1) * per_codes],
            );
            let member_dict = read.dict.as_ref().map(|(values, shape)| {
                let len = shape.matrix_len();
                let at = if shape.stack == 1 { 0 } else { i };
                Matrix::from_column_slice(shape.rows, shape.cols, &values[at * len..(at + 1) * len])
            });
            let member_recon = read.recon.as_ref().map(|values| {
                Matrix::from_column_slice(dim, n, &values[i * dim * n..(i + 1) * dim * n])
            });
            let train_loss = read.loss.as_ref().map(|l| crate::compute::loss_value(l, i));
            if let Some(l) = train_loss.filter(|l| !l.is_finite()) {
                self.members[i].failure = Some(format!(
                    "training diverged before step {} (the training loss is {l}); lower the \
                     learning rate",
                    self.step
                ));
                continue;
            }
            match self.metrics(
                i,
                &member_codes,
                member_dict.as_ref(),
                member_recon.as_ref(),
            ) {
                Ok(scored) => {
                    let record = LogRecord {
                        step: self.step,
                        code_mcc: scored.code_mcc,
                        dict_mcc: scored.dict_matching.as_ref().map(|m| m.mcc),
                        test_mse: scored.recon.map(|r| r.mse),
                        nmse: scored.recon.map(|r| r.nmse).filter(|v| v.is_finite()),
                        l0: scored.sparsity.l0,
                        dead_latents: scored.sparsity.dead_latents,
                        train_loss,
                        train_flops: self.train_flops_per_step * self.step as f64,
                        infer_flops: infer_flops[if infer_flops.len() == 1 { 0 } else { i }],
                        solver: read.stats.as_ref().and_then(|v| v.get(i).copied()),
                        wall_s: wall,
                    };
                    let member = &mut self.members[i];
                    member.log.push(record);
                    member.snapshot = Some(Snapshot {
                        step: self.step,
                        codes: member_codes,
                        dictionary: member_dict,
                        code_matching: scored.code_matching,
                        dict_matching: scored.dict_matching,
                    });
                }
                Err(e) => {
                    self.members[i].failure = Some(format!(
                        "stopped at step {}: {e}; lower the learning rate or the L1 penalty",
                        self.step
                    ));
                }
            }
        }
    }

    /// Every metric of one evaluation of one member, or why it cannot be scored.
    fn metrics(
        &self,
        member: usize,
        codes: &Matrix,
        dictionary: Option<&Matrix>,
        x_hat: Option<&Matrix>,
    ) -> Result<Scored, metrics::MetricError> {
        let data = self.member_data(member);
        let cfg = &*self.config;
        let x_test = &data.test_signals;
        let sparsity = metrics::sparsity(codes, cfg.metrics.l0_threshold)?;
        let (code_mcc, code_matching) = if cfg.setting == Setting::KnownCodes {
            (
                metrics::index_matched_correlation(&data.test_codes, codes)?,
                None,
            )
        } else {
            let m = metrics::code_mcc(&data.test_codes, codes)?;
            (m.mcc, Some(m))
        };
        let dict_matching = dictionary
            .map(|d| metrics::dict_mcc(&data.dictionary, d))
            .transpose()?;
        let recon = x_hat
            .map(|x_hat| metrics::reconstruction(x_hat, x_test))
            .transpose()?;
        Ok(Scored {
            sparsity,
            code_mcc,
            code_matching,
            dict_matching,
            recon,
        })
    }
}

/// What an evaluation read back, on the host.
struct Read {
    codes: Vec<f32>,
    latents: usize,
    dict: Option<(Vec<f32>, Shape)>,
    recon: Option<Vec<f32>>,
    loss: Option<Vec<f32>>,
    stats: Option<Vec<solvers::SolverStats>>,
}

/// D S per member, on the backend (the reconstruction of the test signals).
fn reconstruct(b: &dyn Backend, dict: &Tensor, codes: &Tensor) -> Tensor {
    let mut out = b.zeros(Shape::new(codes.stack(), dict.rows(), codes.cols()));
    b.gemm(
        1.0,
        crate::compute::Op::n(dict),
        crate::compute::Op::n(codes),
        0.0,
        &mut out,
    );
    out
}

/// The matrices of a read-back stack as host matrices.
fn split_members(values: &[f32], shape: Shape) -> Vec<Matrix> {
    values
        .chunks(shape.matrix_len())
        .map(|c| Matrix::from_column_slice(shape.rows, shape.cols, c))
        .collect()
}

/// The metrics of one evaluation, before they are logged.
struct Scored {
    sparsity: metrics::Sparsity,
    code_mcc: f64,
    code_matching: Option<metrics::Matching>,
    dict_matching: Option<metrics::Matching>,
    recon: Option<metrics::Reconstruction>,
}

/// How an experiment's runs are grouped into stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// Every (method, run) alone: CPU threads take whole runs.
    PerRun,
    /// All runs of a method in one stack: one dispatch per kernel for all of them.
    PerMethod,
    /// Runs of a method in stacks of at most this many (a GPU whose buffers cannot hold the
    /// whole method's tensors).
    PerMethodUpTo(usize),
}

impl Grouping {
    /// The grouping that suits a backend.
    pub fn for_backend(kind: BackendKind) -> Self {
        match kind {
            BackendKind::Cpu => Grouping::PerRun,
            BackendKind::Gpu => Grouping::PerMethod,
        }
    }
}

/// Every method of a config, each from every seed, over one shared dataset.
pub struct Experiment {
    config: Arc<CheckedConfig>,
    data: Arc<Dataset>,
    stacks: Vec<StackRun>,
    clock: Clock,
    backend: Arc<dyn Backend>,
    notice: Option<String>,
}

impl std::fmt::Debug for Experiment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Experiment")
            .field("config", &*self.config)
            .field("stacks", &self.stacks)
            .finish_non_exhaustive()
    }
}

/// A member of a stack, with what identifies it.
#[derive(Clone, Copy, Debug)]
pub struct RunRef<'a> {
    pub method_index: usize,
    pub name: &'a str,
    pub member: &'a Member,
}

impl Experiment {
    /// Generate the data and initialise every (method, seed) run, grouped for the backend.
    pub fn new(config: CheckedConfig, backend: Arc<dyn Backend>) -> Self {
        let grouping = Grouping::for_backend(backend.kind());
        Self::build(config, backend, grouping, None)
    }

    /// As [`new`](Self::new) with a chosen grouping, and optionally only some (method, run)
    /// pairs (a worker of a pool builds its share; the numbers are the same as in the whole).
    pub fn build(
        config: CheckedConfig,
        backend: Arc<dyn Backend>,
        grouping: Grouping,
        only: Option<&[(usize, u32)]>,
    ) -> Self {
        let data = Arc::new(Dataset::generate(&config.data, config.seed));
        let tensors = Arc::new(DataTensors::upload(&*backend, &data, config.setting));
        let config = Arc::new(config);
        let names = method_names(&config.methods);
        let mut stacks = Vec::new();
        for (m, name) in names.iter().enumerate() {
            let runs: Vec<u32> = (0..config.runs)
                .filter(|&r| only.is_none_or(|o| o.contains(&(m, r))))
                .collect();
            if runs.is_empty() {
                continue;
            }
            let groups: Vec<Vec<u32>> = match grouping {
                Grouping::PerRun => runs.iter().map(|&r| vec![r]).collect(),
                Grouping::PerMethod => vec![runs],
                Grouping::PerMethodUpTo(max) => {
                    runs.chunks(max.max(1)).map(<[u32]>::to_vec).collect()
                }
            };
            for group in groups {
                stacks.push(StackRun::new(
                    config.clone(),
                    data.clone(),
                    tensors.clone(),
                    backend.clone(),
                    m,
                    name.clone(),
                    &group,
                ));
            }
        }
        Self {
            config,
            data,
            stacks,
            clock: default_clock,
            backend,
            notice: None,
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

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn stacks(&self) -> &[StackRun] {
        &self.stacks
    }

    pub fn stacks_mut(&mut self) -> &mut [StackRun] {
        &mut self.stacks
    }

    /// Every run (member of a stack), stack by stack.
    pub fn runs(&self) -> impl Iterator<Item = RunRef<'_>> + '_ {
        self.stacks.iter().flat_map(|s| {
            s.members.iter().map(move |member| RunRef {
                method_index: s.method_index,
                name: &s.name,
                member,
            })
        })
    }

    /// Run `run` of method `method`, if this experiment holds it.
    pub fn run(&self, method: usize, run: u32) -> Option<RunRef<'_>> {
        self.runs()
            .find(|r| r.method_index == method && r.member.run_index == run)
    }

    /// `(method, run)` of every run not finished (to redo elsewhere when a device fails).
    pub fn unfinished_runs(&self) -> Vec<(usize, u32)> {
        self.stacks
            .iter()
            .filter(|s| !s.is_done())
            .flat_map(|s| {
                s.members()
                    .iter()
                    .map(move |m| (s.method_index, m.run_index))
            })
            .collect()
    }

    pub fn is_done(&self) -> bool {
        self.stacks
            .iter()
            .all(|s| s.is_done() || s.backend_failure.is_some())
    }

    /// Whether some evaluation is under way.
    pub fn is_evaluating(&self) -> bool {
        self.stacks.iter().any(StackRun::is_evaluating)
    }

    /// The first backend failure of any stack (a lost device), if any.
    pub fn backend_failure(&self) -> Option<&str> {
        self.stacks.iter().find_map(StackRun::backend_failure)
    }

    /// Advance every unfinished stack by at most `max_steps` steps, one after another.
    pub fn step(&mut self, max_steps: u64) -> Vec<Progress> {
        let clock = self.clock;
        self.backend.poll();
        self.stacks
            .iter_mut()
            .filter(|s| !s.is_done())
            .map(|s| s.advance(max_steps, clock))
            .collect()
    }

    /// How many stacks the experiment runs (methods, or methods x runs, by its grouping).
    pub fn stack_count(&self) -> usize {
        self.stacks.len()
    }

    /// Advance stack `i` alone by at most `max_steps` steps of work (nothing once it is done).
    pub fn step_stack(&mut self, i: usize, max_steps: u64) {
        let clock = self.clock;
        self.backend.poll();
        let stack = &mut self.stacks[i];
        if !stack.is_done() {
            stack.advance(max_steps, clock);
        }
    }

    /// Work done and in all of stack `i` (see [`Experiment::work`]), and whether it is done.
    pub fn stack_work(&self, i: usize) -> (u64, u64, bool) {
        let s = &self.stacks[i];
        (s.work_done(), s.work_total(), s.is_done())
    }

    /// Per stack, the training step of its next evaluation (see
    /// [`StackRun::next_evaluation_step`]): the stops of a single step in a UI.
    pub fn next_evaluation_steps(&self) -> Vec<u64> {
        self.stacks
            .iter()
            .map(StackRun::next_evaluation_step)
            .collect()
    }

    /// Advance every stack that has not reached its stop (`stops[i]` for stack i) by at most
    /// `max_steps` steps of work, training no stack past its stop.
    pub fn step_until(&mut self, max_steps: u64, stops: &[u64]) -> Vec<Progress> {
        assert_eq!(stops.len(), self.stacks.len(), "one stop per stack");
        let clock = self.clock;
        self.backend.poll();
        self.stacks
            .iter_mut()
            .zip(stops)
            .filter(|(s, &stop)| !s.reached(stop))
            .map(|(s, &stop)| s.advance_until(max_steps, stop, clock))
            .collect()
    }

    /// Whether every stack has reached its stop (see [`Experiment::step_until`]).
    pub fn reached(&self, stops: &[u64]) -> bool {
        self.stacks
            .iter()
            .zip(stops)
            .all(|(s, &stop)| s.reached(stop))
    }

    /// Training steps done and to do over all runs.
    pub fn progress(&self) -> (u64, u64) {
        let runs = |s: &StackRun| s.members.len() as u64;
        let done = self.stacks.iter().map(|s| s.step * runs(s)).sum();
        let total = self.stacks.iter().map(|s| s.total_steps() * runs(s)).sum();
        (done, total)
    }

    /// Work done and to do over all runs, training and evaluation inference alike, in steps
    /// (for progress bars and time left: the paper's test-code inference is 10,000 steps per
    /// evaluation, often more than the training itself).
    pub fn work(&self) -> (u64, u64) {
        let done = self.stacks.iter().map(StackRun::work_done).sum();
        let total = self.stacks.iter().map(StackRun::work_total).sum();
        (done, total)
    }

    /// Everything logged so far in the results schema.
    pub fn results(&self) -> Results {
        let names = method_names(&self.config.methods);
        let methods = names
            .into_iter()
            .enumerate()
            .filter_map(|(m, name)| {
                let mut runs: Vec<(u32, RunLog)> = self
                    .runs()
                    .filter(|r| r.method_index == m)
                    .map(|r| {
                        (
                            r.member.run_index,
                            RunLog {
                                seed: r.member.seed,
                                log: r.member.log.clone(),
                                error: r.member.failure.clone(),
                            },
                        )
                    })
                    .collect();
                if runs.is_empty() {
                    return None;
                }
                runs.sort_by_key(|(r, _)| *r);
                let runs = runs.into_iter().map(|(_, r)| r).collect();
                Some(MethodResults::new(
                    name,
                    self.config.methods[m].clone(),
                    runs,
                ))
            })
            .collect();
        let mut results = Results::new((**self.config).clone(), self.data.checksum(), methods);
        results.backend = Some(super::results::BackendInfo {
            kind: match self.backend.kind() {
                BackendKind::Cpu => "cpu",
                BackendKind::Gpu => "gpu",
            }
            .to_string(),
            name: self.backend.name(),
            notice: self.notice.clone(),
        });
        results
    }

    /// Say why the backend is not the one asked for (recorded in the results).
    pub fn set_notice(&mut self, notice: Option<String>) {
        self.notice = notice;
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
