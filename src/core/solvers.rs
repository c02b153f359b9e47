//! Per-sample inference: codes for new signals given a fixed dictionary.
//!
//! All solvers minimise (or approximate) the training objective per sample,
//! (1/M) |x - D s|^2 + (lambda/N) |s|_1, batched over the columns of X:
//! - `adam_exp`: the paper's routine, Adam on u with s = exp(u), u starting at -10.
//! - `fista`: accelerated proximal gradient on the L1 problem, non-negative or signed.
//! - `omp`: orthogonal matching pursuit, a greedy k-sparse least-squares fit (Gram-based batch
//!   variant: D^T D and D^T X once, then small Cholesky solves per sample).
//!
//! Each returns the codes (N x n) and the FLOPs it executed.

use super::adam::{AdamClock, AdamHyper, AdamState};
use super::config::SolverConfig;
use super::flops;
use super::lanes::relu;
use super::sparse_coding::LOG_CODE_INIT;
use super::Matrix;
use crate::compute::{gemm_into, Compute, Operand};
use nalgebra::{DMatrix, DVector};

/// Codes and the cost of computing them.
#[derive(Clone, Debug)]
pub struct Inferred {
    pub codes: Matrix,
    pub flops: f64,
}

/// Run the configured solver. `default_k` is the data's K (OMP's default sparsity).
pub fn infer(
    backend: &dyn Compute,
    solver: &SolverConfig,
    dict: &Matrix,
    x: &Matrix,
    l1_penalty: f32,
    default_k: usize,
) -> Inferred {
    match *solver {
        SolverConfig::Adam { steps, lr } => adam_exp(backend, dict, x, l1_penalty, steps, lr),
        SolverConfig::Fista { steps, nonneg } => fista(backend, dict, x, l1_penalty, steps, nonneg),
        SolverConfig::Omp { k } => omp(backend, dict, x, k.unwrap_or(default_k)),
    }
}

/// The paper's inference: Adam (PyTorch semantics) on log-codes for `steps` steps.
pub fn adam_exp(
    backend: &dyn Compute,
    dict: &Matrix,
    x: &Matrix,
    l1_penalty: f32,
    steps: u64,
    lr: f64,
) -> Inferred {
    let mut solver = AdamExp::new(backend, dict.clone(), x, l1_penalty, steps, lr);
    solver.run(backend, x, steps);
    solver.finish()
}

/// The paper's inference as a resumable computation: `run` advances it by a bounded number of
/// steps, so a caller with a time budget (the browser's worker) can interleave it with other
/// work; the result does not depend on how the steps are split.
#[derive(Clone, Debug)]
pub struct AdamExp {
    dict: Matrix,
    log_codes: Matrix,
    codes: Matrix,
    recon: Matrix,
    grad: Matrix,
    state: AdamState,
    clock: AdamClock,
    mse_scale: f32,
    l1_scale: f32,
    done: u64,
    steps: u64,
}

impl AdamExp {
    /// Set up `steps` steps of inference for the columns of `x` through `dict`.
    pub fn new(
        backend: &dyn Compute,
        dict: Matrix,
        x: &Matrix,
        l1_penalty: f32,
        steps: u64,
        lr: f64,
    ) -> Self {
        let (dim, n_atoms, n) = (dict.nrows(), dict.ncols(), x.ncols());
        let log_codes = Matrix::from_element(n_atoms, n, LOG_CODE_INIT);
        let mut codes = Matrix::zeros(n_atoms, n);
        backend.exp(log_codes.as_slice(), codes.as_mut_slice());
        Self {
            dict,
            log_codes,
            codes,
            recon: Matrix::zeros(dim, n),
            grad: Matrix::zeros(n_atoms, n),
            state: AdamState::new(n_atoms * n),
            clock: AdamClock::new(AdamHyper::with_lr(lr)),
            // The training loss's gradient w.r.t. the codes: (2 / (n M)) D^T (D S - X) for the
            // squared error, plus the L1 term the fused step adds. The loss itself is never
            // needed here.
            mse_scale: 2.0 / (n * dim) as f32,
            l1_scale: l1_penalty / (n * n_atoms) as f32,
            done: 0,
            steps,
        }
    }

    /// Run at most `max_steps` more steps on the same `x` as `new`; returns how many ran.
    pub fn run(&mut self, backend: &dyn Compute, x: &Matrix, max_steps: u64) -> u64 {
        assert_eq!(
            x.shape(),
            self.recon.shape(),
            "AdamExp::run: not the set-up signals"
        );
        let todo = max_steps.min(self.steps - self.done);
        for _ in 0..todo {
            self.recon.copy_from(x);
            gemm_into(
                backend,
                1.0,
                (&self.dict).into(),
                (&self.codes).into(),
                -1.0,
                &mut self.recon,
            );
            gemm_into(
                backend,
                self.mse_scale,
                Operand::from(&self.dict).t(),
                (&self.recon).into(),
                0.0,
                &mut self.grad,
            );
            let scalars = self.clock.tick();
            self.state.update_log_codes(
                backend,
                self.log_codes.as_mut_slice(),
                self.codes.as_mut_slice(),
                self.grad.as_slice(),
                self.l1_scale,
                scalars,
            );
        }
        self.done += todo;
        todo
    }

    pub fn is_done(&self) -> bool {
        self.done >= self.steps
    }

    /// The dictionary the codes are inferred through.
    pub fn dictionary(&self) -> &Matrix {
        &self.dict
    }

    /// The codes after the steps run so far, and their FLOPs.
    pub fn finish(self) -> Inferred {
        let (dim, n_atoms) = self.dict.shape();
        let n = self.codes.ncols();
        Inferred {
            codes: self.codes,
            flops: self.done as f64 * flops::adam_inference_step(dim, n_atoms, n)
                + (n_atoms * n) as f64,
        }
    }
}

/// Largest eigenvalue of D^T D by power iteration, padded by 2% so the FISTA step stays below
/// 1/L (power iteration approaches the top eigenvalue from below).
pub fn lipschitz_bound(backend: &dyn Compute, dict: &Matrix) -> f64 {
    let n_atoms = dict.ncols();
    let mut v = Matrix::from_element(n_atoms, 1, 1.0 / (n_atoms as f32).sqrt());
    let mut dv = Matrix::zeros(dict.nrows(), 1);
    let mut w = Matrix::zeros(n_atoms, 1);
    let mut lambda = 0.0;
    for _ in 0..100 {
        gemm_into(backend, 1.0, dict.into(), (&v).into(), 0.0, &mut dv);
        gemm_into(
            backend,
            1.0,
            Operand::from(dict).t(),
            (&dv).into(),
            0.0,
            &mut w,
        );
        let norm = w
            .as_slice()
            .iter()
            .map(|a| f64::from(*a).powi(2))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            return 1.0;
        }
        lambda = norm;
        for (vi, wi) in v.as_mut_slice().iter_mut().zip(w.as_slice()) {
            *vi = (f64::from(*wi) / norm) as f32;
        }
    }
    lambda * 1.02
}

/// FISTA on (1/(nM)) |X - D S|^2 + (lambda/(nN)) |S|_1 (the per-sample problems, batched).
pub fn fista(
    backend: &dyn Compute,
    dict: &Matrix,
    x: &Matrix,
    l1_penalty: f32,
    steps: u64,
    nonneg: bool,
) -> Inferred {
    let (dim, n_atoms, n) = (dict.nrows(), dict.ncols(), x.ncols());
    let eig = lipschitz_bound(backend, dict);
    // Gradient of the smooth part: (2/(nM)) D^T (D Y - X); Lipschitz constant (2/(nM)) eig.
    let grad_scale = 2.0 / (n * dim) as f64;
    let step = 1.0 / (grad_scale * eig);
    let threshold = (step * f64::from(l1_penalty) / (n * n_atoms) as f64) as f32;
    let mut s = Matrix::zeros(n_atoms, n);
    let mut s_prev = Matrix::zeros(n_atoms, n);
    let mut y = Matrix::zeros(n_atoms, n);
    let mut recon = Matrix::zeros(dim, n);
    let mut t = 1.0f64;
    // Combined factor: the gradient step (step * grad_scale) applied to D^T (D Y - X).
    let g = (step * grad_scale) as f32;
    for _ in 0..steps {
        recon.copy_from(x);
        gemm_into(backend, 1.0, dict.into(), (&y).into(), -1.0, &mut recon);
        std::mem::swap(&mut s, &mut s_prev);
        // s = y - g * D^T r, then the proximal step.
        s.copy_from(&y);
        gemm_into(
            backend,
            -g,
            Operand::from(dict).t(),
            (&recon).into(),
            1.0,
            &mut s,
        );
        for v in s.as_mut_slice() {
            *v = if nonneg {
                relu(*v - threshold)
            } else {
                v.signum() * relu(v.abs() - threshold)
            };
        }
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        let momentum = ((t - 1.0) / t_next) as f32;
        for ((yi, &si), &pi) in y
            .as_mut_slice()
            .iter_mut()
            .zip(s.as_slice())
            .zip(s_prev.as_slice())
        {
            *yi = si + momentum * (si - pi);
        }
        t = t_next;
    }
    Inferred {
        codes: s,
        flops: steps as f64 * flops::fista_iteration(dim, n_atoms, n)
            + 100.0 * 4.0 * (dim * n_atoms) as f64,
    }
}

/// Orthogonal matching pursuit with at most `k` atoms per sample (stops early on an exact fit).
pub fn omp(backend: &dyn Compute, dict: &Matrix, x: &Matrix, k: usize) -> Inferred {
    let (dim, n_atoms, n) = (dict.nrows(), dict.ncols(), x.ncols());
    let k = k.min(n_atoms).min(dim);
    let mut gram = Matrix::zeros(n_atoms, n_atoms);
    gemm_into(
        backend,
        1.0,
        Operand::from(dict).t(),
        dict.into(),
        0.0,
        &mut gram,
    );
    let mut corr = Matrix::zeros(n_atoms, n);
    gemm_into(
        backend,
        1.0,
        Operand::from(dict).t(),
        x.into(),
        0.0,
        &mut corr,
    );
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
