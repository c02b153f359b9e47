//! Per-sample inference: codes for new signals given fixed dictionaries, for a stack of members.
//!
//! All solvers minimise (or approximate) the training objective per sample,
//! (1/M) |x - D s|^2 + (lambda/N) |s|_1, batched over the columns of X:
//! - [`AdamExp`]: the paper's routine, Adam on u with s = exp(u), u starting at -10, resumable
//!   in bounded increments; a backend with a fused kernel runs many steps per dispatch.
//! - [`FistaRun`]: accelerated proximal gradient on the L1 problem, non-negative or signed,
//!   for a fixed count or to a duality-gap tolerance (with continuation), resumable.
//! - [`omp`]: orthogonal matching pursuit, a greedy k-sparse least-squares fit (Gram-based batch
//!   variant: D^T D and D^T X once, then small Cholesky solves per sample), on the host.
//!
//! Each reports the FLOPs it executed. The `adam_exp`, `fista` and `infer` functions on host
//! matrices are conveniences for one member (tests, the CLI, the bench).

use super::adam::AdamClock;
use super::config::SolverConfig;
use super::flops;
use super::sparse_coding::LOG_CODE_INIT;
use super::Matrix;
use crate::compute::{
    read_now, AdamExpJob, AdamScalars, Backend, BackendError, Epilogue, FistaJob, Op, Readback,
    Shape, Tensor,
};
use nalgebra::{DMatrix, DVector};

/// Codes and the cost of computing them.
#[derive(Clone, Debug)]
pub struct Inferred {
    pub codes: Matrix,
    pub flops: f64,
    /// How a convergence-tested solver ended (FISTA with a tolerance).
    pub stats: Option<SolverStats>,
}

/// The paper's inference as a resumable computation on a stack of dictionaries: `run`
/// advances it by a bounded number of steps, so a caller with a time budget (the browser's
/// worker) can interleave it with other work; the result does not depend on how the steps are
/// split.
#[derive(Debug)]
pub struct AdamExp {
    dict: Tensor,
    log_codes: Tensor,
    codes: Tensor,
    recon: Tensor,
    grad: Tensor,
    m: Tensor,
    v: Tensor,
    clocks: Vec<AdamClock>,
    mse_scale: f32,
    l1_scale: Vec<f32>,
    done: u64,
    steps: u64,
    /// A TopK on the codes: keep `k` per sample at the end; `inside`, also in every step's
    /// forward pass (with the L1 term off).
    topk: Option<(Vec<usize>, bool)>,
    /// The codes with only their k largest kept (TopK inside: the forward pass's codes).
    kept: Option<Tensor>,
}

/// Steps a fused kernel runs per dispatch: long enough to amortise a dispatch, short enough
/// that one stays a few milliseconds and the page's slices stay short.
const FUSED_STEPS_PER_DISPATCH: u64 = 250;

impl AdamExp {
    /// Set up `steps` steps of inference for the columns of `x` (stack of 1 or of `dict`'s)
    /// through the dictionaries `dict` (stack x M x N), at learning rate `lrs[i]` and penalty
    /// `l1_penalty[i]` for member i (one entry for all).
    pub fn new(
        backend: &dyn Backend,
        dict: Tensor,
        x: &Tensor,
        l1_penalty: &[f32],
        steps: u64,
        lrs: &[f64],
    ) -> Self {
        let (members, dim, n_atoms, n) = (dict.stack(), dict.rows(), dict.cols(), x.cols());
        let code_shape = Shape::new(members, n_atoms, n);
        let mut log_codes = backend.zeros(code_shape);
        backend.fill(&mut log_codes, LOG_CODE_INIT);
        let mut codes = backend.zeros(code_shape);
        backend.exp(&log_codes, &mut codes);
        Self {
            dict,
            log_codes,
            codes,
            recon: backend.zeros(Shape::new(members, dim, n)),
            grad: backend.zeros(code_shape),
            m: backend.zeros(code_shape),
            v: backend.zeros(code_shape),
            clocks: AdamClock::per_member(members, lrs),
            // The training loss's gradient w.r.t. the codes: (2 / (n M)) D^T (D S - X) for the
            // squared error, plus the L1 term the fused step adds. The loss itself is never
            // needed here.
            mse_scale: 2.0 / (n * dim) as f32,
            l1_scale: l1_penalty
                .iter()
                .map(|l| l / (n * n_atoms) as f32)
                .collect(),
            done: 0,
            steps,
            topk: None,
            kept: None,
        }
    }

    /// The same inference with a TopK on the codes (see [`SolverConfig::AdamTopk`]): `inside`
    /// false keeps the `k` largest codes of each sample once the L1 optimisation is over;
    /// `inside` true optimises the squared error of the reconstruction from those k codes (no
    /// L1; the gradient reaches only the codes kept) and keeps them at the end. `k`: one for
    /// every member, or one per member.
    pub fn with_topk(mut self, backend: &dyn Backend, k: &[usize], inside: bool) -> Self {
        assert!(
            k.len() == 1 || k.len() == self.clocks.len(),
            "one k, or one per member"
        );
        self.topk = Some((k.to_vec(), inside));
        if inside {
            self.l1_scale = vec![0.0];
            self.kept = Some(backend.zeros(self.codes.shape()));
        }
        if self.steps == 0 {
            self.finish(backend);
        }
        self
    }

    /// Once every step has run: the codes keep only their k largest entries per sample.
    fn finish(&mut self, backend: &dyn Backend) {
        if let Some((k, _)) = &self.topk {
            backend.topk_columns(&mut self.codes, k);
        }
    }

    /// Run at most `max_steps` more steps on the same `x` as `new`; returns how many ran.
    pub fn run(&mut self, backend: &dyn Backend, x: &Tensor, max_steps: u64) -> u64 {
        assert_eq!(
            (x.rows(), x.cols()),
            (self.recon.rows(), self.recon.cols()),
            "AdamExp::run: not the set-up signals"
        );
        let todo = max_steps.min(self.steps - self.done);
        let mut left = todo;
        while left > 0 {
            let chunk = left.min(FUSED_STEPS_PER_DISPATCH);
            let scalars: Vec<AdamScalars> = (0..chunk)
                .flat_map(|_| {
                    self.clocks
                        .iter_mut()
                        .map(AdamClock::tick)
                        .collect::<Vec<_>>()
                })
                .collect();
            let mut job = AdamExpJob {
                dict: &self.dict,
                x,
                log_codes: &mut self.log_codes,
                codes: &mut self.codes,
                m: &mut self.m,
                v: &mut self.v,
                mse_scale: self.mse_scale,
                l1_scale: &self.l1_scale,
                scalars: &scalars,
                steps: chunk as usize,
            };
            let inside = matches!(self.topk, Some((_, true)));
            if inside || !backend.adam_exp_fused(&mut job) {
                let members = self.clocks.len();
                for step in scalars.chunks(members) {
                    self.step(backend, x, step);
                }
            }
            left -= chunk;
        }
        self.done += todo;
        if todo > 0 && self.done == self.steps {
            self.finish(backend);
        }
        todo
    }

    /// One step kernel by kernel: the reference every fused kernel is tested against. With
    /// the TopK inside, the forward pass reconstructs from the k largest codes and the gradient
    /// is zero on the others (s = e^u > 0, so the codes kept are exactly the positive entries).
    fn step(&mut self, backend: &dyn Backend, x: &Tensor, scalars: &[AdamScalars]) {
        let forward = match (&self.topk, self.kept.as_mut()) {
            (Some((k, true)), Some(kept)) => {
                backend.copy(&self.codes, kept);
                backend.topk_columns(kept, k);
                &*kept
            }
            _ => &self.codes,
        };
        backend.copy(x, &mut self.recon);
        backend.gemm(
            1.0,
            Op::n(&self.dict),
            Op::n(forward),
            -1.0,
            &mut self.recon,
        );
        backend.gemm(
            self.mse_scale,
            Op::t(&self.dict),
            Op::n(&self.recon),
            0.0,
            &mut self.grad,
        );
        if let Some(kept) = self.kept.as_ref() {
            backend.relu_backward(&mut self.grad, kept);
        }
        backend.adam_log_codes(
            &mut self.log_codes,
            &mut self.codes,
            &self.grad,
            &mut self.m,
            &mut self.v,
            &self.l1_scale,
            scalars,
        );
    }

    pub fn is_done(&self) -> bool {
        self.done >= self.steps
    }

    pub fn steps_done(&self) -> u64 {
        self.done
    }

    /// The dictionaries the codes are inferred through.
    pub fn dictionary(&self) -> &Tensor {
        &self.dict
    }

    /// The codes after the steps run so far (stack x N x n).
    pub fn codes(&self) -> &Tensor {
        &self.codes
    }

    /// FLOPs of the steps run so far, per member.
    pub fn flops(&self) -> f64 {
        let (dim, n_atoms, n) = (self.dict.rows(), self.dict.cols(), self.codes.cols());
        self.done as f64 * flops::adam_inference_step(dim, n_atoms, n) + (n_atoms * n) as f64
    }

    /// Give up the codes and the dictionary.
    pub fn into_parts(self) -> (Tensor, Tensor) {
        (self.codes, self.dict)
    }
}

/// Largest eigenvalue of D^T D by power iteration, padded by 2% so the FISTA step stays below
/// 1/L (power iteration approaches the top eigenvalue from below). On the host: it needs one
/// M x N dictionary, which evaluations read back anyway.
pub fn lipschitz_bound(dict: &Matrix) -> f64 {
    let n_atoms = dict.ncols();
    let mut v = DVector::<f64>::from_element(n_atoms, 1.0 / (n_atoms as f64).sqrt());
    let d = dict.map(f64::from);
    let mut lambda = 0.0;
    for _ in 0..100 {
        let w = d.tr_mul(&(&d * &v));
        let norm = w.norm();
        if norm == 0.0 || !norm.is_finite() {
            return 1.0;
        }
        lambda = norm;
        v = w / norm;
    }
    lambda * 1.02
}

/// Iterations between two convergence checks of a convergence-tested FISTA (each check reads
/// the codes back and costs about one iteration on the host).
pub const FISTA_CHECK_EVERY: u64 = 25;
/// Continuation of a convergence-tested FISTA: the first stage's penalty is this fraction of
/// the smallest penalty whose solution is 0 (the largest entry of D^T x), each later stage's is
/// the previous one's times `CONTINUATION_FACTOR`, down to the target; stages before the last
/// stop at `CONTINUATION_LOOSE` times the tolerance. Tuned on the phase preset's cells: with the
/// tiny penalty of a recovery experiment, plain FISTA needs 1,000 to 15,000 iterations below the
/// l1 curve; this needs 250 to 1,300.
const CONTINUATION_START: f64 = 0.1;
const CONTINUATION_FACTOR: f64 = 0.1;
const CONTINUATION_LOOSE: f64 = 10.0;

/// How a convergence-tested solver ended for one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SolverStats {
    /// Iterations run (up to the check that found it converged, or the cap).
    pub iterations: u64,
    /// Whether every sample's duality gap met the tolerance before the cap.
    pub converged: bool,
}

/// FISTA on (1/(nM)) |X - D S|^2 + (lambda/(nN)) |S|_1 for a stack of dictionaries, as a
/// resumable computation like [`AdamExp`]: `run` advances it by a bounded number of iterations.
///
/// Without a tolerance it runs exactly `steps` iterations. With one (`tol`), `steps` is a cap:
/// every [`FISTA_CHECK_EVERY`] iterations the codes come back to the host, which computes each
/// sample's duality gap (the dual point is the residual scaled into the dual feasible set) and
/// stops a member once every sample's gap is at most `tol` times half its squared norm; the
/// penalty is approached by continuation (see `CONTINUATION_START`), each stage restarting that
/// member's momentum. Members are independent: each has its own momentum and stages, and a
/// member that converges keeps the codes of that check, so stacking does not change results.
#[derive(Debug)]
pub struct FistaRun {
    dict: Tensor,
    hosts: Vec<Matrix>,
    /// The signals on the host (one for all members, or one each); only with a tolerance.
    x_hosts: Vec<Matrix>,
    s: Tensor,
    s_prev: Tensor,
    y: Tensor,
    /// Per member: the gradient step and the step over the penalty's scale (threshold =
    /// `step_over_penalty` x the stage's lambda).
    grad_step: Vec<f32>,
    step_over_penalty: Vec<f64>,
    /// Per member: lambda, the penalty the last stage reaches.
    lambda: Vec<f64>,
    stage_lambda: Vec<f64>,
    momentum_t: Vec<f64>,
    nonneg: bool,
    steps: u64,
    tol: Option<f64>,
    done: u64,
    since_check: u64,
    pending: Option<Readback>,
    /// Per member: the iteration it converged at and its codes then.
    finished: Vec<Option<(u64, Vec<f32>)>>,
    complete: bool,
    checks: u64,
}

impl FistaRun {
    /// Set up FISTA for the columns of `x` (stack of 1 or of `dict`'s) through `dict` (stack x
    /// M x N, with `hosts` its host copies, for the step sizes and the gaps); `x_hosts` are the
    /// signals on the host (needed with a tolerance only: one, or one per member);
    /// `l1_penalty` is lambda, one for all members or one per member.
    #[allow(
        clippy::too_many_arguments,
        reason = "the solver's whole configuration"
    )]
    pub fn new(
        backend: &dyn Backend,
        dict: Tensor,
        hosts: Vec<Matrix>,
        x_hosts: Vec<Matrix>,
        x: &Tensor,
        l1_penalty: &[f32],
        steps: u64,
        nonneg: bool,
        tol: Option<f64>,
    ) -> Self {
        let (members, dim, n_atoms, n) = (dict.stack(), dict.rows(), dict.cols(), x.cols());
        assert_eq!(hosts.len(), members, "one host dictionary per member");
        assert!(
            l1_penalty.len() == 1 || l1_penalty.len() == members,
            "one lambda, or one per member"
        );
        if tol.is_some() {
            assert!(
                x_hosts.len() == 1 || x_hosts.len() == members,
                "host signals: one, or one per member"
            );
        }
        // Gradient of the smooth part: (2/(nM)) D^T (D Y - X); Lipschitz constant (2/(nM)) eig.
        let grad_scale = 2.0 / (n * dim) as f64;
        let (grad_step, step_over_penalty): (Vec<f32>, Vec<f64>) = hosts
            .iter()
            .map(|d| {
                let step = 1.0 / (grad_scale * lipschitz_bound(d));
                ((step * grad_scale) as f32, step / (n * n_atoms) as f64)
            })
            .unzip();
        let lambda: Vec<f64> = (0..members)
            .map(|m| f64::from(l1_penalty[if l1_penalty.len() == 1 { 0 } else { m }]))
            .collect();
        let stage_lambda = match tol {
            None => lambda.clone(),
            Some(_) => (0..members)
                .map(|m| {
                    let x = &x_hosts[if x_hosts.len() == 1 { 0 } else { m }];
                    let corr = hosts[m].tr_mul(x);
                    let top = corr
                        .iter()
                        .fold(0f32, |acc, &v| acc.max(if nonneg { v } else { v.abs() }));
                    // In lambda's units: mu = lambda M / (2N) is the penalty of 1/2 |x - Ds|^2.
                    let lambda_max = f64::from(top) * 2.0 * n_atoms as f64 / dim as f64;
                    (CONTINUATION_START * lambda_max).max(lambda[m])
                })
                .collect(),
        };
        let code_shape = Shape::new(members, n_atoms, n);
        Self {
            s: backend.zeros(code_shape),
            s_prev: backend.zeros(code_shape),
            y: backend.zeros(code_shape),
            dict,
            hosts,
            x_hosts,
            grad_step,
            step_over_penalty,
            lambda,
            stage_lambda,
            momentum_t: vec![1.0; members],
            nonneg,
            steps,
            tol,
            done: 0,
            since_check: 0,
            pending: None,
            finished: vec![None; members],
            complete: steps == 0,
            checks: 0,
        }
    }

    /// Start from `codes` (the codes' shape, e.g. an encoder's codes) instead of zero: the
    /// frontier's "encoder, then k iterations" points.
    pub fn warm_start(&mut self, backend: &dyn Backend, codes: &Tensor) {
        assert_eq!(
            codes.shape(),
            self.s.shape(),
            "warm-start codes of the codes' shape"
        );
        assert_eq!(self.done, 0, "warm start before the first iteration");
        backend.copy(codes, &mut self.s);
        backend.copy(codes, &mut self.s_prev);
        backend.copy(codes, &mut self.y);
    }

    fn thresholds(&self) -> Vec<f32> {
        self.step_over_penalty
            .iter()
            .zip(&self.stage_lambda)
            .map(|(sp, l)| (sp * l) as f32)
            .collect()
    }

    /// Whether a convergence check's read-back is on its way: `run` does nothing until it is
    /// in (the driver should poll the device, or wait for it natively).
    pub fn waiting(&self) -> bool {
        self.pending.as_ref().is_some_and(|r| !r.is_ready())
    }

    /// Run at most `max_steps` more iterations on the same `x` as `new` (fewer while a check's
    /// read-back is on its way); returns how many ran.
    pub fn run(
        &mut self,
        backend: &dyn Backend,
        x: &Tensor,
        max_steps: u64,
    ) -> Result<u64, BackendError> {
        let members = self.dict.stack();
        let mut ran = 0;
        while !self.complete {
            if let Some(read) = self.pending.as_mut() {
                match read.take() {
                    None => break,
                    Some(values) => {
                        self.pending = None;
                        self.check(backend, &values?);
                        continue;
                    }
                }
            }
            if ran >= max_steps {
                break;
            }
            let mut chunk = (max_steps - ran).min(self.steps - self.done);
            if self.tol.is_some() {
                chunk = chunk.min(FISTA_CHECK_EVERY - self.since_check);
            }
            let mut momentum = Vec::with_capacity(chunk as usize * members);
            for _ in 0..chunk {
                for t in &mut self.momentum_t {
                    let t_next = (1.0 + (1.0 + 4.0 * *t * *t).sqrt()) / 2.0;
                    momentum.push(((*t - 1.0) / t_next) as f32);
                    *t = t_next;
                }
            }
            self.iterate(backend, x, &momentum, chunk as usize);
            ran += chunk;
            self.done += chunk;
            self.since_check += chunk;
            let at_end = self.done == self.steps;
            if self.tol.is_some() && (self.since_check == FISTA_CHECK_EVERY || at_end) {
                self.since_check = 0;
                self.pending = Some(backend.read(&self.s));
                backend.flush();
            } else if at_end {
                self.complete = true;
            }
        }
        Ok(ran)
    }

    fn iterate(&mut self, backend: &dyn Backend, x: &Tensor, momentum: &[f32], iterations: usize) {
        let threshold = self.thresholds();
        // Converged members keep the codes of their check: a stack runs on for the others only
        // (a fused kernel leaves them alone; a stack on a GPU pays for its slowest member's
        // iterations, not for every member's).
        let skip: Vec<bool> = self.finished.iter().map(Option::is_some).collect();
        let skip = if skip.iter().any(|&s| s) {
            &skip[..]
        } else {
            &[]
        };
        let mut job = FistaJob {
            dict: &self.dict,
            x,
            s: &mut self.s,
            s_prev: &mut self.s_prev,
            y: &mut self.y,
            step: &self.grad_step,
            threshold: &threshold,
            momentum,
            nonneg: self.nonneg,
            iterations,
            skip,
        };
        if backend.fista_fused(&mut job) {
            return;
        }
        let members = self.dict.stack();
        let (dim, n) = (self.dict.rows(), x.cols());
        let mut recon = backend.zeros(Shape::new(members, dim, n));
        for mom in momentum.chunks(members) {
            // r = g (D y - x), then s = y - D^T r and the proximal step.
            let residual = Epilogue::Residual {
                x,
                scale: &self.grad_step,
            };
            backend.gemm_epilogue(1.0, Op::n(&self.dict), Op::n(&self.y), &mut recon, residual);
            std::mem::swap(&mut self.s, &mut self.s_prev);
            backend.copy(&self.y, &mut self.s);
            backend.gemm(-1.0, Op::t(&self.dict), Op::n(&recon), 1.0, &mut self.s);
            backend.fista_update(
                &mut self.s,
                &self.s_prev,
                &mut self.y,
                &threshold,
                mom,
                self.nonneg,
            );
        }
    }

    /// A convergence check on the codes read back (`values`, stack x N x n): members whose
    /// stage converged move to the next stage (restarting their momentum) or finish.
    fn check(&mut self, backend: &dyn Backend, values: &[f32]) {
        let tol = self.tol.expect("checks run only with a tolerance");
        self.checks += 1;
        let (dim, n_atoms) = (self.dict.rows(), self.dict.cols());
        let per = values.len() / self.hosts.len();
        for m in 0..self.hosts.len() {
            if self.finished[m].is_some() {
                continue;
            }
            let codes = &values[m * per..(m + 1) * per];
            let s = Matrix::from_column_slice(n_atoms, per / n_atoms, codes);
            let x = &self.x_hosts[if self.x_hosts.len() == 1 { 0 } else { m }];
            let mu = self.stage_lambda[m] * dim as f64 / (2.0 * n_atoms as f64);
            let last = self.stage_lambda[m] <= self.lambda[m];
            let stage_tol = if last { tol } else { tol * CONTINUATION_LOOSE };
            if lasso_gaps_within(&self.hosts[m], x, &s, mu, self.nonneg, stage_tol) {
                if last {
                    self.finished[m] = Some((self.done, codes.to_vec()));
                } else {
                    self.stage_lambda[m] =
                        (self.stage_lambda[m] * CONTINUATION_FACTOR).max(self.lambda[m]);
                    self.momentum_t[m] = 1.0;
                }
            }
        }
        if self.done == self.steps || self.finished.iter().all(Option::is_some) {
            // Each member's codes of the check it converged at; the others' last codes.
            let mut out = Vec::with_capacity(values.len());
            for (m, done) in self.finished.iter().enumerate() {
                match done {
                    Some((_, codes)) => out.extend_from_slice(codes),
                    None => out.extend_from_slice(&values[m * per..(m + 1) * per]),
                }
            }
            self.s = backend.upload(self.s.shape(), &out);
            self.complete = true;
        }
    }

    pub fn is_done(&self) -> bool {
        self.complete
    }

    /// Iterations run so far (every member runs them; see [`FistaRun::stats`]).
    pub fn steps_done(&self) -> u64 {
        self.done
    }

    /// The cap less the iterations run: at the end, those a converged run did not need.
    pub fn unused_steps(&self) -> u64 {
        self.steps - self.done
    }

    /// The dictionaries' values on the host (stack x M x N), as read back for the run.
    pub fn host_dictionaries(&self) -> Vec<f32> {
        self.hosts
            .iter()
            .flat_map(|d| d.as_slice().iter().copied())
            .collect()
    }

    /// The codes (stack x N x n): at the end, each member's final codes.
    pub fn codes(&self) -> &Tensor {
        &self.s
    }

    /// FLOPs per member of the iterations and checks so far, and of the step size.
    pub fn flops(&self) -> f64 {
        self.flops_of(self.done, self.checks)
    }

    fn flops_of(&self, iterations: u64, checks: u64) -> f64 {
        let (dim, n_atoms, n) = (self.dict.rows(), self.dict.cols(), self.s.cols());
        iterations as f64 * flops::fista_iteration(dim, n_atoms, n)
            + checks as f64 * 4.0 * (dim * n_atoms * n) as f64
            + 100.0 * 4.0 * (dim * n_atoms) as f64
    }

    /// FLOPs of each member: a member that converged counts the iterations and checks up to
    /// the check it converged at (the stack runs on for the others), the rest as [`flops`].
    ///
    /// [`flops`]: Self::flops
    pub fn member_flops(&self) -> Vec<f64> {
        self.finished
            .iter()
            .map(|f| match f {
                Some((at, _)) => self.flops_of(*at, at.div_ceil(FISTA_CHECK_EVERY)),
                None => self.flops(),
            })
            .collect()
    }

    /// Per member, how it ended (with a tolerance only; at the end).
    pub fn stats(&self) -> Option<Vec<SolverStats>> {
        self.tol?;
        Some(
            self.finished
                .iter()
                .map(|f| match f {
                    Some((at, _)) => SolverStats {
                        iterations: *at,
                        converged: true,
                    },
                    None => SolverStats {
                        iterations: self.done,
                        converged: false,
                    },
                })
                .collect(),
        )
    }

    /// Give up the codes and the dictionary.
    pub fn into_parts(self) -> (Tensor, Tensor) {
        (self.s, self.dict)
    }
}

/// Whether every sample's duality gap of min 1/2 |x - D s|^2 + mu |s|_1 (s >= 0 when `nonneg`)
/// at the codes `s` is at most `tol` times half its squared norm. The dual point is the
/// residual scaled into the dual feasible set (|D^T theta| <= mu, or D^T theta <= mu for
/// non-negative codes), so the gap bounds the distance of the objective from its optimum.
pub fn lasso_gaps_within(
    dict: &Matrix,
    x: &Matrix,
    s: &Matrix,
    mu: f64,
    nonneg: bool,
    tol: f64,
) -> bool {
    let residual = x - dict * s;
    let corr = dict.tr_mul(&residual);
    (0..x.ncols()).all(|j| {
        let (xj, rj) = (x.column(j), residual.column(j));
        let half_norm: f64 = 0.5 * xj.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>();
        let half_res: f64 = 0.5 * rj.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>();
        let l1: f64 = s.column(j).iter().map(|v| f64::from(v.abs())).sum();
        let primal = half_res + mu * l1;
        let top = corr.column(j).iter().fold(0f64, |acc, &v| {
            acc.max(if nonneg {
                f64::from(v)
            } else {
                f64::from(v.abs())
            })
        });
        let scale = if top > mu { mu / top } else { 1.0 };
        // D(theta) = 1/2 |x|^2 - 1/2 |x - theta|^2 with theta = scale r.
        let dual: f64 = half_norm
            - 0.5
                * xj.iter()
                    .zip(rj.iter())
                    .map(|(a, b)| (f64::from(*a) - scale * f64::from(*b)).powi(2))
                    .sum::<f64>();
        let gap = primal - dual;
        gap.is_finite() && gap <= tol * half_norm
    })
}

/// FISTA run to its end on this thread (see [`FistaRun`]): the codes (stack x N x n), the
/// FLOPs per member and, with a tolerance, how each member ended. Blocks on a GPU's reads:
/// not for the browser.
#[allow(
    clippy::too_many_arguments,
    reason = "the solver's whole configuration"
)]
pub fn fista_stack(
    backend: &dyn Backend,
    dict: Tensor,
    hosts: &[Matrix],
    x: &Tensor,
    x_hosts: &[Matrix],
    l1_penalty: f32,
    steps: u64,
    nonneg: bool,
    tol: Option<f64>,
) -> Result<(Tensor, f64, Option<Vec<SolverStats>>), BackendError> {
    let mut run = FistaRun::new(
        backend,
        dict,
        hosts.to_vec(),
        x_hosts.to_vec(),
        x,
        &[l1_penalty],
        steps,
        nonneg,
        tol,
    );
    while !run.is_done() {
        let ran = run.run(backend, x, u64::MAX)?;
        if !run.is_done() {
            if ran == 0 && cfg!(target_arch = "wasm32") {
                return Err(BackendError(
                    "a GPU read cannot be waited for in a browser".to_string(),
                ));
            }
            backend.wait();
        }
    }
    let (flops, stats) = (run.flops(), run.stats());
    Ok((run.s, flops, stats))
}
/// Run the configured solver for one member on host matrices. `default_k` is the data's K
/// (OMP's default sparsity).
pub fn infer(
    backend: &dyn Backend,
    solver: &SolverConfig,
    dict: &Matrix,
    x: &Matrix,
    l1_penalty: f32,
    default_k: usize,
) -> Inferred {
    match *solver {
        SolverConfig::Adam { steps, lr } => adam_exp(backend, dict, x, l1_penalty, steps, lr),
        SolverConfig::Fista { steps, nonneg, tol } => {
            fista(backend, dict, x, l1_penalty, steps, nonneg, tol)
        }
        SolverConfig::Omp { k } => omp(dict, x, k.unwrap_or(default_k)),
        SolverConfig::AdamTopk {
            steps,
            lr,
            k,
            inside,
        } => adam_exp_topk(backend, dict, x, l1_penalty, steps, lr, Some((k, inside))),
    }
}

fn to_matrix(t: &Tensor, values: Vec<f32>) -> Matrix {
    Matrix::from_vec(t.rows(), t.cols(), values)
}

/// The paper's inference for one member on host matrices.
pub fn adam_exp(
    backend: &dyn Backend,
    dict: &Matrix,
    x: &Matrix,
    l1_penalty: f32,
    steps: u64,
    lr: f64,
) -> Inferred {
    adam_exp_topk(backend, dict, x, l1_penalty, steps, lr, None)
}

/// The paper's inference with a TopK `(k, inside)` on the codes (see [`AdamExp::with_topk`])
/// for one member on host matrices.
pub fn adam_exp_topk(
    backend: &dyn Backend,
    dict: &Matrix,
    x: &Matrix,
    l1_penalty: f32,
    steps: u64,
    lr: f64,
    topk: Option<(usize, bool)>,
) -> Inferred {
    let d = backend.upload(Shape::new(1, dict.nrows(), dict.ncols()), dict.as_slice());
    let xt = backend.upload(Shape::new(1, x.nrows(), x.ncols()), x.as_slice());
    let mut solver = AdamExp::new(backend, d, &xt, &[l1_penalty], steps, &[lr]);
    if let Some((k, inside)) = topk {
        solver = solver.with_topk(backend, &[k], inside);
    }
    solver.run(backend, &xt, steps);
    let codes = read_now(backend, solver.codes()).expect("read the codes back");
    Inferred {
        flops: solver.flops(),
        codes: to_matrix(solver.codes(), codes),
        stats: None,
    }
}

/// FISTA for one member on host matrices (a tolerance makes `steps` a cap; see [`FistaRun`]).
pub fn fista(
    backend: &dyn Backend,
    dict: &Matrix,
    x: &Matrix,
    l1_penalty: f32,
    steps: u64,
    nonneg: bool,
    tol: Option<f64>,
) -> Inferred {
    let d = backend.upload(Shape::new(1, dict.nrows(), dict.ncols()), dict.as_slice());
    let xt = backend.upload(Shape::new(1, x.nrows(), x.ncols()), x.as_slice());
    let (s, flops, stats) = fista_stack(
        backend,
        d,
        std::slice::from_ref(dict),
        &xt,
        std::slice::from_ref(x),
        l1_penalty,
        steps,
        nonneg,
        tol,
    )
    .expect("FISTA on this thread");
    let codes = read_now(backend, &s).expect("read the codes back");
    Inferred {
        codes: to_matrix(&s, codes),
        flops,
        stats: stats.map(|s| s[0]),
    }
}

/// Orthogonal matching pursuit with at most `k` atoms per sample (stops early on an exact fit),
/// on the host (greedy and branchy per sample: it does not pay on a GPU at these sizes).
pub fn omp(dict: &Matrix, x: &Matrix, k: usize) -> Inferred {
    let (dim, n_atoms, n) = (dict.nrows(), dict.ncols(), x.ncols());
    let k = k.min(n_atoms).min(dim);
    let gram = dict.tr_mul(dict);
    let corr = dict.tr_mul(x);
    let mut codes = Matrix::zeros(n_atoms, n);
    let mut flops = 2.0 * (n_atoms * dim * (n_atoms + n)) as f64;
    let mut support: Vec<usize> = Vec::with_capacity(k);
    let mut alpha = vec![0f64; n_atoms];
    for sample in 0..n {
        let c0: Vec<f64> = corr.column(sample).iter().map(|v| f64::from(*v)).collect();
        support.clear();
        alpha.copy_from_slice(&c0);
        let mut coef = DVector::<f64>::zeros(0);
        let norm0: f64 = x.column(sample).iter().map(|v| f64::from(*v).powi(2)).sum();
        for _ in 0..k {
            // Most correlated atom with the current residual, among atoms not yet chosen.
            let mut best = None;
            let mut best_val = 0.0;
            for (j, &a) in alpha.iter().enumerate() {
                if !support.contains(&j) && a.abs() > best_val {
                    best_val = a.abs();
                    best = Some(j);
                }
            }
            flops += n_atoms as f64;
            let Some(j) = best else { break };
            if best_val <= 1e-7 * norm0.sqrt().max(1e-30) {
                break;
            }
            support.push(j);
            let size = support.len();
            let sub = DMatrix::<f64>::from_fn(size, size, |a, b| {
                f64::from(gram[(support[a], support[b])])
            });
            let rhs = DVector::<f64>::from_fn(size, |a, _| c0[support[a]]);
            match sub.cholesky() {
                Some(ch) => coef = ch.solve(&rhs),
                None => {
                    // Atoms (numerically) dependent: drop the new one and stop.
                    support.pop();
                    break;
                }
            }
            flops += flops::omp_solve(size);
            // alpha = D^T r = c0 - G[:, T] coef.
            for (jj, a) in alpha.iter_mut().enumerate() {
                let mut acc = c0[jj];
                for (t, &idx) in support.iter().enumerate() {
                    acc -= f64::from(gram[(jj, idx)]) * coef[t];
                }
                *a = acc;
            }
            flops += 2.0 * (n_atoms * size) as f64;
        }
        for (t, &idx) in support.iter().enumerate() {
            codes[(idx, sample)] = coef[t] as f32;
        }
    }
    Inferred {
        codes,
        flops,
        stats: None,
    }
}
