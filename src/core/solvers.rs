//! Per-sample inference: codes for new signals given fixed dictionaries, for a stack of members.
//!
//! All solvers minimise (or approximate) the training objective per sample,
//! (1/M) |x - D s|^2 + (lambda/N) |s|_1, batched over the columns of X:
//! - [`AdamExp`]: the paper's routine, Adam on u with s = exp(u), u starting at -10, resumable
//!   in bounded increments; a backend with a fused kernel runs many steps per dispatch.
//! - [`fista_stack`]: accelerated proximal gradient on the L1 problem, non-negative or signed.
//! - [`omp`]: orthogonal matching pursuit, a greedy k-sparse least-squares fit (Gram-based batch
//!   variant: D^T D and D^T X once, then small Cholesky solves per sample), on the host.
//!
//! Each reports the FLOPs it executed. The `adam_exp`, `fista` and `infer` functions on host
//! matrices are conveniences for one member (tests, the CLI, the bench).

use super::adam::{AdamClock, AdamHyper};
use super::config::SolverConfig;
use super::flops;
use super::sparse_coding::LOG_CODE_INIT;
use super::Matrix;
use crate::compute::{read_now, AdamExpJob, AdamScalars, Backend, FistaJob, Op, Shape, Tensor};
use nalgebra::{DMatrix, DVector};

/// Codes and the cost of computing them.
#[derive(Clone, Debug)]
pub struct Inferred {
    pub codes: Matrix,
    pub flops: f64,
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
    lrs: Vec<f64>,
    mse_scale: f32,
    l1_scale: Vec<f32>,
    done: u64,
    steps: u64,
    /// A TopK on the codes: keep `k` per sample at the end; `inside`, also in every step's
    /// forward pass (with the L1 term off).
    topk: Option<(usize, bool)>,
    /// The codes with only their k largest kept (TopK inside: the forward pass's codes).
    kept: Option<Tensor>,
}

/// Steps a fused kernel runs per dispatch: long enough to amortise a dispatch, short enough
/// that one stays a few milliseconds and the page's slices stay short.
const FUSED_STEPS_PER_DISPATCH: u64 = 250;

impl AdamExp {
    /// Set up `steps` steps of inference for the columns of `x` (stack of 1 or of `dict`'s)
    /// through the dictionaries `dict` (stack x M x N), at learning rate `lrs[i]` for member i
    /// (one entry for all).
    pub fn new(
        backend: &dyn Backend,
        dict: Tensor,
        x: &Tensor,
        l1_penalty: f32,
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
            clocks: (0..members)
                .map(|i| {
                    AdamClock::new(AdamHyper::with_lr(lrs[if lrs.len() == 1 { 0 } else { i }]))
                })
                .collect(),
            lrs: lrs.to_vec(),
            // The training loss's gradient w.r.t. the codes: (2 / (n M)) D^T (D S - X) for the
            // squared error, plus the L1 term the fused step adds. The loss itself is never
            // needed here.
            mse_scale: 2.0 / (n * dim) as f32,
            l1_scale: vec![l1_penalty / (n * n_atoms) as f32],
            done: 0,
            steps,
            topk: None,
            kept: None,
        }
    }

    /// The same inference with a TopK on the codes (see [`SolverConfig::AdamTopk`]): `inside`
    /// false keeps the `k` largest codes of each sample once the L1 optimisation is over;
    /// `inside` true optimises the squared error of the reconstruction from those k codes (no
    /// L1; the gradient reaches only the codes kept) and keeps them at the end.
    pub fn with_topk(mut self, backend: &dyn Backend, k: usize, inside: bool) -> Self {
        self.topk = Some((k, inside));
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
        if let Some((k, _)) = self.topk {
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
                first_step: self.done + todo - left,
                lrs: &self.lrs,
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
        let forward = match (self.topk, self.kept.as_mut()) {
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

/// FISTA on (1/(nM)) |X - D S|^2 + (lambda/(nN)) |S|_1 for a stack of dictionaries `dict`
/// (stack x M x N, with `hosts` their host copies for the step sizes) and signals `x`: the
/// codes (stack x N x n) and the FLOPs per member.
pub fn fista_stack(
    backend: &dyn Backend,
    dict: &Tensor,
    hosts: &[Matrix],
    x: &Tensor,
    l1_penalty: f32,
    steps: u64,
    nonneg: bool,
) -> (Tensor, f64) {
    let (members, dim, n_atoms, n) = (dict.stack(), dict.rows(), dict.cols(), x.cols());
    assert_eq!(hosts.len(), members, "one host dictionary per member");
    // Gradient of the smooth part: (2/(nM)) D^T (D Y - X); Lipschitz constant (2/(nM)) eig.
    let grad_scale = 2.0 / (n * dim) as f64;
    let (step, threshold): (Vec<f32>, Vec<f32>) = hosts
        .iter()
        .map(|d| {
            let step = 1.0 / (grad_scale * lipschitz_bound(d));
            (
                (step * grad_scale) as f32,
                (step * f64::from(l1_penalty) / (n * n_atoms) as f64) as f32,
            )
        })
        .unzip();
    let code_shape = Shape::new(members, n_atoms, n);
    let mut s = backend.zeros(code_shape);
    let mut s_prev = backend.zeros(code_shape);
    let mut y = backend.zeros(code_shape);
    let mut momentum = Vec::with_capacity(steps as usize);
    let mut t = 1.0f64;
    for _ in 0..steps {
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        momentum.push(((t - 1.0) / t_next) as f32);
        t = t_next;
    }
    let mut job = FistaJob {
        dict,
        x,
        s: &mut s,
        s_prev: &mut s_prev,
        y: &mut y,
        step: &step,
        threshold: &threshold,
        momentum: &momentum,
        nonneg,
    };
    if !backend.fista_fused(&mut job) {
        let mut recon = backend.zeros(Shape::new(members, dim, n));
        for &mom in &momentum {
            // r = g (D y - x), then s = y - D^T r and the proximal step.
            backend.gemm(1.0, Op::n(dict), Op::n(&y), 0.0, &mut recon);
            backend.residual(&mut recon, x, &step);
            std::mem::swap(&mut s, &mut s_prev);
            backend.copy(&y, &mut s);
            backend.gemm(-1.0, Op::t(dict), Op::n(&recon), 1.0, &mut s);
            backend.fista_update(&mut s, &s_prev, &mut y, &threshold, mom, nonneg);
        }
    }
    let flops = steps as f64 * flops::fista_iteration(dim, n_atoms, n)
        + 100.0 * 4.0 * (dim * n_atoms) as f64;
    (s, flops)
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
        SolverConfig::Fista { steps, nonneg } => fista(backend, dict, x, l1_penalty, steps, nonneg),
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
    let mut solver = AdamExp::new(backend, d, &xt, l1_penalty, steps, &[lr]);
    if let Some((k, inside)) = topk {
        solver = solver.with_topk(backend, k, inside);
    }
    solver.run(backend, &xt, steps);
    let codes = read_now(backend, solver.codes()).expect("read the codes back");
    Inferred {
        flops: solver.flops(),
        codes: to_matrix(solver.codes(), codes),
    }
}

/// FISTA for one member on host matrices.
pub fn fista(
    backend: &dyn Backend,
    dict: &Matrix,
    x: &Matrix,
    l1_penalty: f32,
    steps: u64,
    nonneg: bool,
) -> Inferred {
    let d = backend.upload(Shape::new(1, dict.nrows(), dict.ncols()), dict.as_slice());
    let xt = backend.upload(Shape::new(1, x.nrows(), x.ncols()), x.as_slice());
    let (s, flops) = fista_stack(
        backend,
        &d,
        std::slice::from_ref(dict),
        &xt,
        l1_penalty,
        steps,
        nonneg,
    );
    let codes = read_now(backend, &s).expect("read the codes back");
    Inferred {
        codes: to_matrix(&s, codes),
        flops,
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
    Inferred { codes, flops }
}
