//! The compute-backend trait: the few kernels the science is written against.
//!
//! Models, solvers and metrics call these instead of looping over big matrices themselves, so a
//! faster backend (threads, SIMD, later WebGPU) slips in without touching the science. The CPU
//! implementation is the reference every other backend is tested against.

mod cpu;
mod small;

pub use cpu::{CpuBackend, SmallKernel};

use crate::core::Matrix;

/// A read-only column-major matrix operand, optionally used transposed.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    pub data: &'a [f32],
    /// Rows and columns of the stored matrix (before any transpose).
    pub rows: usize,
    pub cols: usize,
    pub transposed: bool,
}

impl<'a> Operand<'a> {
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "operand storage does not match its shape"
        );
        Self {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            transposed: !self.transposed,
            ..self
        }
    }

    /// Shape as used: (rows, cols) of op(A).
    pub fn shape(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
}

impl<'a> From<&'a Matrix> for Operand<'a> {
    fn from(m: &'a Matrix) -> Self {
        Operand::new(m.as_slice(), m.nrows(), m.ncols())
    }
}

/// Scalars of one Adam step, PyTorch's semantics: computed once per step in f64.
#[derive(Clone, Copy, Debug)]
pub struct AdamScalars {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// lr / (1 - beta1^t).
    pub step_size: f32,
    /// sqrt(1 - beta2^t).
    pub bias2_sqrt: f32,
}

/// The kernels. Shapes are checked by the implementation (a mismatch is a bug: it panics).
pub trait Compute: Send + Sync + std::fmt::Debug {
    /// Name for logs and benchmark tables.
    fn name(&self) -> String;

    /// c <- alpha * op(a) * op(b) + beta * c, with c (rows, cols) = op(a).rows x op(b).cols.
    /// `beta = 0` ignores c's old contents (NaN included).
    #[allow(
        clippy::too_many_arguments,
        reason = "the BLAS shape: scalars, two operands, the output and its shape"
    )]
    fn gemm(
        &self,
        alpha: f32,
        a: Operand<'_>,
        b: Operand<'_>,
        beta: f32,
        c: &mut [f32],
        c_rows: usize,
        c_cols: usize,
    );

    /// One Adam update of `param` in place from `grad`, moments `m`, `v`.
    fn adam_update(
        &self,
        param: &mut [f32],
        grad: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        s: AdamScalars,
    );

    /// max(x, 0) in place (NaN becomes 0, as with `f32::max`).
    fn relu(&self, data: &mut [f32]);

    /// Back through a ReLU: zero `grad[i]` wherever `out[i]`, the ReLU's output, is not
    /// positive.
    fn relu_backward(&self, grad: &mut [f32], out: &[f32]);

    /// e^x elementwise, `out[i] = exp(x[i])`.
    fn exp(&self, x: &[f32], out: &mut [f32]);

    /// One Adam step on log-codes u, where the codes are s = e^u, fused into one pass (the
    /// paper's inference loop is bound by passes over N x n arrays, not by its two products):
    /// with `grad_s` the gradient of the smooth loss w.r.t. s, the L1 term adds
    /// `l1_scale * sign(s)`, the chain rule multiplies by s, Adam updates u (moments `m`, `v`),
    /// and `codes` becomes e^u for the next step.
    #[allow(
        clippy::too_many_arguments,
        reason = "the codes, their moments and the scalars"
    )]
    fn adam_log_codes(
        &self,
        log_codes: &mut [f32],
        codes: &mut [f32],
        grad_s: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        l1_scale: f32,
        s: AdamScalars,
    );

    /// Keep the `k` largest entries of every column of a column-major (rows x cols) matrix and
    /// zero the rest. Ties are broken towards the lower row index; NaN entries are never kept.
    fn topk_columns(&self, data: &mut [f32], rows: usize, cols: usize, k: usize);
}

/// Convenience: `c = alpha * op(a) op(b) + beta * c` on [`Matrix`] values.
pub fn gemm_into(
    backend: &dyn Compute,
    alpha: f32,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    c: &mut Matrix,
) {
    let (rows, cols) = (c.nrows(), c.ncols());
    backend.gemm(alpha, a, b, beta, c.as_mut_slice(), rows, cols);
}
