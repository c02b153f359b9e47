//! The compute layer: the kernels the science is written against.
//!
//! Two levels. [`Backend`] (in `tensor.rs`) is what models, solvers and runs use: kernels on
//! stacked, backend-owned [`Tensor`]s, implemented by the CPU (host memory, the reference) and
//! by the GPU through wgpu (`gpu/`, WGSL kernels beside their host code). [`Compute`] is the
//! CPU's own slice-level kernel set (products, Adam, exp, ReLU, top-k) that its tensors run
//! on, also used by the host-side metrics and the bench's per-product table.

mod cpu;
mod cpu_tensor;
pub mod gpu;
mod small;
mod tensor;

pub use cpu::{CpuBackend, SmallKernel};
pub use cpu_tensor::normalize_columns_slice;
pub use tensor::{
    loss_shape, loss_value, per_member, AdamExpJob, Backend, BackendError, BackendKind,
    EncoderTrainJob, EncoderTrainShape, Epilogue, FistaJob, JumpReluScalars, Op, Readback, Shape,
    SparseCodingTrainJob, Tensor,
};

/// Values on their way back from a backend: there at once on the CPU; on a GPU once the
/// device's copy is done (in a browser, only after the worker yields to its event loop, so a
/// driver polls them instead of waiting).
pub enum Fetch {
    Reading(Readback),
    Host(Vec<f32>),
}

impl std::fmt::Debug for Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fetch::Reading(_) => f.write_str("Fetch::Reading"),
            Fetch::Host(v) => write!(f, "Fetch::Host({} values)", v.len()),
        }
    }
}

impl Fetch {
    /// Start reading `t` back.
    pub fn read(backend: &dyn Backend, t: &Tensor) -> Self {
        Fetch::Reading(backend.read(t))
    }

    /// The values once they are there.
    pub fn poll(&mut self) -> Result<Option<&[f32]>, BackendError> {
        if let Fetch::Reading(read) = self {
            match read.take() {
                None => return Ok(None),
                Some(values) => *self = Fetch::Host(values?),
            }
        }
        match self {
            Fetch::Host(v) => Ok(Some(v)),
            Fetch::Reading(_) => Ok(None),
        }
    }

    /// The values of a fetch that [`poll`](Self::poll) found there.
    pub fn into_host(self) -> Vec<f32> {
        match self {
            Fetch::Host(v) => v,
            Fetch::Reading(_) => unreachable!("a fetch is taken only once polled ready"),
        }
    }
}

/// Read a tensor back and wait for it: at once on the CPU; natively on a GPU by blocking until
/// the copy is done. Never on a GPU in a browser (nothing may block there): tests, the CLI and
/// host conveniences only.
pub fn read_now(backend: &dyn Backend, t: &Tensor) -> Result<Vec<f32>, BackendError> {
    let mut read = backend.read(t);
    backend.flush();
    loop {
        if let Some(values) = read.take() {
            return values;
        }
        if cfg!(target_arch = "wasm32") {
            return Err(BackendError(
                "a GPU read cannot be waited for in a browser".to_string(),
            ));
        }
        backend.wait();
    }
}

/// One turn of a native loop that drives `backend` (the CLI's runs, a sweep's units): after a
/// turn that left the work where it was (`moved` false: every stack waits for the device, most
/// often for an evaluation's read-back), or that filled the queue, block until the device is
/// done instead of polling again. A loop that polled spent a whole core on it, and on a
/// software adapter that core is taken from the kernels: lavapipe trained an MLP with 256
/// hidden units at half speed on two cores. Never in a browser (nothing may block there).
pub fn settle(backend: &dyn Backend, moved: bool) {
    if cfg!(target_arch = "wasm32") {
        return;
    }
    if backend.busy() || !moved {
        backend.wait();
    }
}

/// Read a tensor back once the device has done everything before the read: natively by
/// waiting for the device, in a browser by yielding until the copy is mapped.
pub async fn read_when_done(backend: &dyn Backend, t: &Tensor) -> Result<Vec<f32>, BackendError> {
    let read = backend.read(t);
    backend.flush();
    backend.wait();
    read.await
}

/// The output of `future` if it completes at its first poll (work on the CPU never waits);
/// `None` if it would have to wait.
#[cfg(target_arch = "wasm32")]
pub fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// The dot products the host-side metrics need, on this thread.
pub(crate) fn host_backend() -> CpuBackend {
    CpuBackend::with_small_kernel(1, SmallKernel::detect())
}

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
#[derive(Clone, Copy, Debug, PartialEq)]
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
