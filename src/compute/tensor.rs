//! Device-resident tensors and the `Backend` trait the science is written against.
//!
//! A [`Tensor`] is a stack of equally shaped column-major matrices (`stack` x `rows` x `cols`)
//! that lives where its backend computes: host memory for the CPU, a storage buffer for the GPU.
//! Models, optimiser state, data and codes stay there across steps; kernels are enqueued
//! without waiting, and the host sees values only through an explicit, asynchronous
//! [`Backend::read`] (at evaluations). One call of a kernel works on every matrix of the stack:
//! runs of the same method and shapes (the seeds of a preset, the cells of a sweep) advance
//! together, one dispatch per kernel on the GPU.
//!
//! Broadcast: where a kernel says so, an input with a stack of 1 is used by every member (the
//! data shared by the seeds of one experiment). Per-member scalars (`&[f32]`, `&[AdamScalars]`)
//! have one entry per member, or one for all.

use super::AdamScalars;
use std::sync::{Arc, Mutex};

/// Shape of a stacked tensor: `stack` matrices of `rows` x `cols`, column-major, contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub stack: usize,
    pub rows: usize,
    pub cols: usize,
}

impl Shape {
    pub const fn new(stack: usize, rows: usize, cols: usize) -> Self {
        Self { stack, rows, cols }
    }

    /// Values in one matrix of the stack.
    pub const fn matrix_len(&self) -> usize {
        self.rows * self.cols
    }

    /// Values in the whole stack.
    pub const fn len(&self) -> usize {
        self.stack * self.rows * self.cols
    }

    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same matrices with another stack size.
    pub const fn with_stack(self, stack: usize) -> Self {
        Self { stack, ..self }
    }
}

/// Where a tensor's values live. Only the backend that made a tensor reads its storage.
pub(crate) enum Store {
    Host(Vec<f32>),
    Device(super::gpu::DeviceBuffer),
}

/// A stack of matrices owned by a backend (see the module documentation). Opaque: the science
/// holds tensors and hands them to kernels; values come back through [`Backend::read`].
pub struct Tensor {
    shape: Shape,
    pub(crate) store: Store,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = match self.store {
            Store::Host(_) => "host",
            Store::Device(_) => "device",
        };
        write!(
            f,
            "Tensor({} x {} x {}, {place})",
            self.shape.stack, self.shape.rows, self.shape.cols
        )
    }
}

impl Tensor {
    pub(crate) fn new(shape: Shape, store: Store) -> Self {
        Self { shape, store }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn stack(&self) -> usize {
        self.shape.stack
    }

    pub fn rows(&self) -> usize {
        self.shape.rows
    }

    pub fn cols(&self) -> usize {
        self.shape.cols
    }

    /// The host values of a CPU tensor. A device tensor here is a bug (a tensor handed to a
    /// backend that did not make it).
    pub(crate) fn host(&self) -> &[f32] {
        match &self.store {
            Store::Host(v) => v,
            Store::Device(_) => panic!("a device tensor was given to the CPU backend"),
        }
    }

    pub(crate) fn host_mut(&mut self) -> &mut [f32] {
        match &mut self.store {
            Store::Host(v) => v,
            Store::Device(_) => panic!("a device tensor was given to the CPU backend"),
        }
    }

    pub(crate) fn device(&self) -> &super::gpu::DeviceBuffer {
        match &self.store {
            Store::Device(b) => b,
            Store::Host(_) => panic!("a host tensor was given to the GPU backend"),
        }
    }
}

/// What [`Backend::gemm_epilogue`] does to each value c of a product before storing it: the
/// elementwise step that follows the product in a layer or a gradient, in the same f32
/// arithmetic as the separate operations it stands for.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// c + bias (stack x rows x 1, or 1 x rows x 1 for every member) when there is one, then
    /// max(., 0) with NaN to 0 when `relu`: a layer's pre-activation and ReLU
    /// ([`Backend::add_bias`], [`Backend::relu`]).
    Activation {
        bias: Option<&'a Tensor>,
        relu: bool,
    },
    /// (c - x) * scale[member] (x per member or broadcast; one scale, or one per member): a
    /// scaled residual ([`Backend::residual`]).
    Residual { x: &'a Tensor, scale: &'a [f32] },
    /// c + l1[member] * sign(out) when `l1` is given, then 0 wherever `through_relu` and
    /// out <= 0: the gradient at a ReLU's output carried to its input
    /// ([`Backend::l1_subgradient`], [`Backend::relu_backward`]; `out` has c's shape).
    Gradient {
        out: &'a Tensor,
        l1: Option<&'a [f32]>,
        through_relu: bool,
    },
}

impl Epilogue<'_> {
    /// The operations this epilogue stands for, on a product already in `c`, each as its own
    /// kernel (the default [`Backend::gemm_epilogue`]; the reference a fused one is tested on).
    pub fn apply_apart(self, backend: &(impl Backend + ?Sized), c: &mut Tensor) {
        match self {
            Epilogue::Activation { bias, relu } => {
                if let Some(bias) = bias {
                    backend.add_bias(c, bias);
                }
                if relu {
                    backend.relu(c);
                }
            }
            Epilogue::Residual { x, scale } => backend.residual(c, x, scale),
            Epilogue::Gradient {
                out,
                l1,
                through_relu,
            } => {
                if let Some(l1) = l1 {
                    backend.l1_subgradient(c, out, l1);
                }
                if through_relu {
                    backend.relu_backward(c, out);
                }
            }
        }
    }
}

/// A tensor operand of a product, used as stored or transposed (every matrix of the stack).
#[derive(Clone, Copy, Debug)]
pub struct Op<'a> {
    pub tensor: &'a Tensor,
    pub transposed: bool,
}

impl<'a> Op<'a> {
    /// The matrices as stored.
    pub fn n(tensor: &'a Tensor) -> Self {
        Self {
            tensor,
            transposed: false,
        }
    }

    /// The matrices transposed (no copy).
    pub fn t(tensor: &'a Tensor) -> Self {
        Self {
            tensor,
            transposed: true,
        }
    }

    /// (rows, cols) of op(A).
    pub fn shape(&self) -> (usize, usize) {
        let s = self.tensor.shape();
        if self.transposed {
            (s.cols, s.rows)
        } else {
            (s.rows, s.cols)
        }
    }
}

/// Why a backend could not go on: no adapter, a failed parity probe, a lost device, an
/// allocation the device refused. The CPU backend never fails.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Values on their way back from a backend: ready at once on the CPU, after the GPU's copy and
/// map complete otherwise (natively when the backend is polled, in a browser when the worker
/// yields to its event loop; nothing ever blocks for it). `.await` it where waiting is fine.
#[derive(Debug)]
pub struct Readback(ReadState);

/// Where a pending read's values arrive, and who to wake then.
#[derive(Debug, Default)]
pub(crate) struct ReadSlot {
    pub(crate) values: Option<Result<Vec<f32>, BackendError>>,
    pub(crate) waker: Option<std::task::Waker>,
}

impl ReadSlot {
    /// Deliver the values and wake a waiting task.
    pub(crate) fn deliver(slot: &Mutex<ReadSlot>, values: Result<Vec<f32>, BackendError>) {
        if let Ok(mut s) = slot.lock() {
            s.values = Some(values);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }
}

#[derive(Debug)]
enum ReadState {
    Ready(Vec<f32>),
    Pending(Arc<Mutex<ReadSlot>>),
    Taken,
}

impl Readback {
    pub fn ready(values: Vec<f32>) -> Self {
        Self(ReadState::Ready(values))
    }

    /// A read whose values `slot` will receive.
    pub(crate) fn pending(slot: Arc<Mutex<ReadSlot>>) -> Self {
        Self(ReadState::Pending(slot))
    }

    pub fn is_ready(&self) -> bool {
        match &self.0 {
            ReadState::Ready(_) => true,
            ReadState::Pending(slot) => slot.lock().map(|s| s.values.is_some()).unwrap_or(true),
            ReadState::Taken => false,
        }
    }

    /// The values, once they are there (`None` before); each read gives its values once.
    pub fn take(&mut self) -> Option<Result<Vec<f32>, BackendError>> {
        if !self.is_ready() {
            return None;
        }
        match std::mem::replace(&mut self.0, ReadState::Taken) {
            ReadState::Ready(v) => Some(Ok(v)),
            ReadState::Pending(slot) => Some(match slot.lock() {
                Ok(mut s) => s
                    .values
                    .take()
                    .unwrap_or_else(|| Err(BackendError("a read-back was lost".into()))),
                Err(_) => Err(BackendError("a read-back lock was poisoned".into())),
            }),
            ReadState::Taken => None,
        }
    }
}

impl std::future::Future for Readback {
    type Output = Result<Vec<f32>, BackendError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if let ReadState::Pending(slot) = &self.0 {
            if let Ok(mut s) = slot.lock() {
                if s.values.is_none() {
                    s.waker = Some(cx.waker().clone());
                    return std::task::Poll::Pending;
                }
            }
        }
        match self.take() {
            Some(v) => std::task::Poll::Ready(v),
            None => std::task::Poll::Ready(Err(BackendError("read twice".into()))),
        }
    }
}

/// Which kind of machine a backend computes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Cpu,
    Gpu,
}

/// The kernels the science is written against, on stacked, backend-owned tensors. Shapes are
/// checked by every implementation (a mismatch is a bug in the caller: it panics).
///
/// Kernels enqueue work; only [`read`](Backend::read) brings values back, and only
/// [`flush`](Backend::flush) (or a read) guarantees the work is submitted.
#[allow(
    clippy::too_many_arguments,
    reason = "kernels take their tensors and per-member scalars by name"
)]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Name for logs, results files and benchmark tables (the adapter, for a GPU).
    fn name(&self) -> String;

    fn kind(&self) -> BackendKind;

    /// A tensor with these values (all matrices of the stack, one after the other).
    fn upload(&self, shape: Shape, values: &[f32]) -> Tensor;

    /// A tensor of zeros.
    fn zeros(&self, shape: Shape) -> Tensor;

    /// Overwrite every value of `t`.
    fn write(&self, t: &mut Tensor, values: &[f32]);

    /// Start reading `t` back (see [`Readback`]).
    fn read(&self, t: &Tensor) -> Readback;

    /// Start reading several tensors back together, as they are at this point of the work:
    /// on a GPU one staging buffer, one submission and one mapping for all of them (an
    /// evaluation's codes, dictionaries, reconstructions and loss), so they arrive together.
    fn read_many(&self, ts: &[&Tensor]) -> Vec<Readback> {
        ts.iter().map(|t| self.read(t)).collect()
    }

    /// Submit everything enqueued so far.
    fn flush(&self) {}

    /// Let finished device work deliver its reads (natively; a browser does it on its own).
    fn poll(&self) {}

    /// Whether the device still has a full queue of submitted work: a driver with a time
    /// budget should yield instead of enqueueing more (a GPU keeps at most a couple of
    /// submissions in flight, so Pause stays responsive).
    fn busy(&self) -> bool {
        false
    }

    /// Block until every read started so far is ready (natively only; tests and the CLI).
    fn wait(&self) {}

    /// The first error the device reported since it was made (lost, out of memory), if any.
    fn health(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// dst <- src (src may have a stack of 1: broadcast).
    fn copy(&self, src: &Tensor, dst: &mut Tensor);

    /// Every value of `t` set to `value`.
    fn fill(&self, t: &mut Tensor, value: f32);

    /// A block of every member: `len` values of `src` from `src_at` within each member's
    /// matrix to `dst` from `dst_at` within each member's (equal stacks). How training state
    /// is packed for a fused kernel and unpacked again.
    fn copy_block(&self, src: &Tensor, src_at: usize, dst: &mut Tensor, dst_at: usize, len: usize);

    /// c <- alpha op(a) op(b) + beta c for every matrix of the stack; a or b may have a stack
    /// of 1 (broadcast). `beta = 0` ignores c's old contents (NaN included).
    fn gemm(&self, alpha: f32, a: Op<'_>, b: Op<'_>, beta: f32, c: &mut Tensor);

    /// c <- epilogue(alpha op(a) op(b)) (see [`Epilogue`]). The default runs the product and
    /// then the operations the epilogue stands for; a GPU applies it as it stores the product,
    /// saving a dispatch and a pass over c for each of them.
    fn gemm_epilogue(
        &self,
        alpha: f32,
        a: Op<'_>,
        b: Op<'_>,
        c: &mut Tensor,
        epilogue: Epilogue<'_>,
    ) {
        self.gemm(alpha, a, b, 0.0, c);
        epilogue.apply_apart(self, c);
    }

    /// out[:, j] += bias for every column j (bias: stack x rows x 1).
    fn add_bias(&self, out: &mut Tensor, bias: &Tensor);

    /// out (stack x rows x 1) <- the sum of src's columns.
    fn sum_columns(&self, src: &Tensor, out: &mut Tensor);

    /// max(x, 0) in place (NaN becomes 0).
    fn relu(&self, t: &mut Tensor);

    /// grad <- grad where out > 0, else 0 (back through a ReLU whose output is `out`).
    fn relu_backward(&self, grad: &mut Tensor, out: &Tensor);

    /// Keep the k largest entries of every column, zero the rest (ties towards the lower row;
    /// NaN is never kept; k at least the rows keeps the column as it is). `k`: one for every
    /// member, or one per member.
    fn topk_columns(&self, t: &mut Tensor, k: &[usize]);

    /// BatchTopK's training activation: per member, keep the `keep` largest positive entries of
    /// the whole matrix (every entry equal to the smallest kept one is kept too), zero the rest;
    /// then `threshold` (stack x 1 x 1) <- `decay` * threshold + (1 - decay) * the smallest
    /// kept value (that value itself while `threshold` is negative, i.e. never set; 0 when
    /// nothing is kept): the running estimate of the threshold BatchTopK encodes with at
    /// inference.
    fn batch_topk(&self, t: &mut Tensor, keep: usize, threshold: &mut Tensor, decay: f32);

    /// t <- t where t > max(scale * theta, 0), else 0 (NaN becomes 0): the JumpReLU gate, and
    /// BatchTopK's inference. `theta` is stack x rows x 1 (a threshold per row) or stack x 1 x 1
    /// (one per member).
    fn threshold_rows(&self, t: &mut Tensor, theta: &Tensor, scale: f32);

    /// JumpReLU's straight-through gradient of its thresholds, stored as u with theta = s.scale
    /// x u (u: stack x rows x 1), into `out` (the gradient with respect to u, same shape), with
    /// the rectangle kernel of width `s.bandwidth`: out[i] = (s.scale / s.bandwidth) x the sum,
    /// over the columns j with |pre[i, j] - theta[i]| < s.bandwidth / 2, of
    /// (-theta[i] x grad[i, j] - s.l0), where `pre` is the pre-activation and `grad` the loss's
    /// gradient with respect to the gate's output.
    fn jump_relu_threshold_grad(
        &self,
        pre: &Tensor,
        grad: &Tensor,
        theta: &Tensor,
        s: JumpReluScalars,
        out: &mut Tensor,
    );

    /// out <- e^x.
    fn exp(&self, x: &Tensor, out: &mut Tensor);

    /// grad <- grad * s elementwise (the chain rule through s = e^u).
    fn mul(&self, grad: &mut Tensor, s: &Tensor);

    /// One Adam step of `param` from `grad` with moments `m`, `v`.
    fn adam(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        s: &[AdamScalars],
    );

    /// The fused step of exp-parametrised codes: with `grad_s` the smooth loss's gradient with
    /// respect to the codes s = e^u, add `l1_scale * sign(s)`, multiply by s, one Adam step on
    /// u, and refresh `codes` = e^u.
    fn adam_log_codes(
        &self,
        log_codes: &mut Tensor,
        codes: &mut Tensor,
        grad_s: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        l1_scale: &[f32],
        s: &[AdamScalars],
    );

    /// Every column rescaled to unit L2 norm (columns of norm 0 are left alone).
    fn normalize_columns(&self, t: &mut Tensor);

    /// recon <- (recon - x) * scale (x may have a stack of 1).
    fn residual(&self, recon: &mut Tensor, x: &Tensor, scale: &[f32]);

    /// grad <- grad + scale * sign(codes) (the L1 term's subgradient, 0 at 0).
    fn l1_subgradient(&self, grad: &mut Tensor, codes: &Tensor, scale: &[f32]);

    /// out (stack x 2 x 1, see [`loss_value`]) <- the reconstruction loss of each member from its scaled residual
    /// `r` = mse_scale (D S - X) and codes S: sum(r^2) / (mse_scale^2 b M) + l1 sum|S| / (b N).
    fn reconstruction_loss(
        &self,
        scaled_residual: &Tensor,
        codes: &Tensor,
        mse_scale: &[f32],
        l1_penalty: &[f32],
        out: &mut Tensor,
    );

    /// The supervised loss: minus the mean over latents of the cosine (across samples) between
    /// each row of `pred` and of `target` (target may have a stack of 1). Writes its gradient
    /// with respect to `pred` into `grad` and the loss into `loss` (stack x 2 x 1, see [`loss_value`]).
    fn cosine_loss(&self, pred: &Tensor, target: &Tensor, grad: &mut Tensor, loss: &mut Tensor);

    /// dst[:, j] <- src[:, idx[j]] per member (src may have a stack of 1); `idx` holds column
    /// numbers made by [`Backend::upload_indices`].
    fn gather_columns(&self, src: &Tensor, idx: &Tensor, dst: &mut Tensor);

    /// One Adam step of the columns `idx` of `param` (and of its moments) from `grad`, whose
    /// column j is the gradient of column idx[j] (minibatched per-sample codes).
    fn adam_columns(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        idx: &Tensor,
        s: &[AdamScalars],
    );

    /// Column indices as a tensor (stack x len x 1) for the gather kernels.
    fn upload_indices(&self, stack: usize, indices: &[u32]) -> Tensor;

    /// One FISTA iteration's proximal and momentum update, given s_new = y - g D^T (D y - x)
    /// already in `s`: s <- prox(s) (soft threshold by `threshold`, clipped at 0 when
    /// `nonneg`), then y <- s + momentum (s - s_prev); `threshold` and `momentum` per member (or
    /// one for all).
    fn fista_update(
        &self,
        s: &mut Tensor,
        s_prev: &Tensor,
        y: &mut Tensor,
        threshold: &[f32],
        momentum: &[f32],
        nonneg: bool,
    );

    /// Run `steps` steps of the paper's inference (Adam on log-codes through the fixed `dict`)
    /// in one go, if this backend has a fused kernel for these shapes; `false` leaves the
    /// caller to run the steps kernel by kernel. `scalars[t * members + i]` are member i's Adam
    /// scalars of step t.
    fn adam_exp_fused(&self, _job: &mut AdamExpJob<'_>) -> bool {
        false
    }

    /// As [`Backend::adam_exp_fused`] for FISTA iterations. A GPU also takes the shapes past
    /// its fused kernel when `job.skip` names converged members: its own kernel-by-kernel
    /// iterations then leave them alone.
    fn fista_fused(&self, _job: &mut FistaJob<'_>) -> bool {
        false
    }

    /// Whether [`Backend::encoder_train_fused`] runs training steps of this shape.
    fn encoder_train_fits(&self, _shape: &EncoderTrainShape) -> bool {
        false
    }

    /// Run `job.steps` full-batch training steps of an encoder (one layer, or an MLP with one
    /// hidden layer) with its decoder in one go (each step: learned atoms to unit norm, forward, backward, Adam), on state
    /// packed as [`EncoderTrainJob`] describes; `false` (the default) leaves the caller to run
    /// the steps kernel by kernel. Only asked when [`Backend::encoder_train_fits`] said yes.
    fn encoder_train_fused(&self, _job: &mut EncoderTrainJob<'_>) -> bool {
        false
    }

    /// Whether [`Backend::sparse_coding_train_fused`] runs full-batch training steps of sparse
    /// coding with `latents` atoms of `dim` values on `batch` samples.
    fn sparse_coding_train_fits(&self, _latents: usize, _dim: usize, _batch: usize) -> bool {
        false
    }

    /// Run `job.steps` full-batch training steps of sparse coding in one go (each step: atoms
    /// to unit norm, the reconstruction's gradients, Adam on the dictionary and on every
    /// sample's log-codes), on state packed as [`SparseCodingTrainJob`] describes; `false`
    /// (the default) leaves the caller to run the steps kernel by kernel. Only asked when
    /// [`Backend::sparse_coding_train_fits`] said yes.
    fn sparse_coding_train_fused(&self, _job: &mut SparseCodingTrainJob<'_>) -> bool {
        false
    }
}

/// Full-batch training steps of sparse coding that a fused kernel advances. Each step matches
/// the kernel-by-kernel
/// [`SparseCodingModel::train_step`](crate::core::sparse_coding::SparseCodingModel::train_step).
#[derive(Debug)]
pub struct SparseCodingTrainJob<'a> {
    /// Per member three blocks of dim x latents values (column-major): the dictionary, Adam's
    /// m and Adam's v (stack x 3 dim latents x 1).
    pub dict: &'a mut Tensor,
    /// Per member three blocks of latents x batch values (column-major): the log-codes, Adam's
    /// m and Adam's v (stack x 3 latents batch x 1).
    pub codes: &'a mut Tensor,
    /// The signals (stack of 1 or per member), dim x batch.
    pub x: &'a Tensor,
    pub latents: usize,
    pub dim: usize,
    /// 2 / (batch dim), the reconstruction term's gradient scale.
    pub mse_scale: f32,
    /// Per member (or one for all): the L1 penalty and its gradient scale penalty / (batch N).
    pub l1_penalty: &'a [f32],
    pub l1_scale: &'a [f32],
    /// Adam's scalars per step and member (step-major), the same for the dictionary and the
    /// codes.
    pub scalars: &'a [AdamScalars],
    pub steps: usize,
    /// Where the last step's loss goes (stack x 2 x 1) when `want_loss`.
    pub loss: &'a mut Tensor,
    pub want_loss: bool,
}

/// The scalars of JumpReLU's threshold gradient (see `Backend::jump_relu_threshold_grad`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JumpReluScalars {
    /// Width of the rectangle kernel, in the units of the pre-activations.
    pub bandwidth: f32,
    /// The L0 penalty's weight on each active entry.
    pub l0: f32,
    /// theta = scale x the stored parameter.
    pub scale: f32,
}

/// What decides whether a fused training kernel fits a one-layer encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderTrainShape {
    pub latents: usize,
    pub dim: usize,
    pub batch: usize,
    /// The width of the hidden ReLU layer of an MLP encoder (one hidden layer), `None` for a
    /// one-layer encoder.
    pub hidden: Option<usize>,
    /// Biases on every layer (or none).
    pub bias: bool,
    /// A learned dictionary (in the packed state), else a frozen one.
    pub learned: bool,
    /// The top-k of the codes, if any (the largest k where members differ; the job has each
    /// member's): with it a backend can bound the work of a step (a software adapter's loop
    /// guard allows only so many iterations per dispatch).
    pub topk: Option<usize>,
    /// The supervised objective of the known-codes setting (the cosine loss against true
    /// codes, no decoder: `learned` is false and no frozen dictionary is given), else the
    /// reconstruction.
    pub supervised: bool,
}

impl EncoderTrainShape {
    /// Values of one block of the packed state, in the order of `EncoderModel::params`: per
    /// layer (input side first) its weight (out x in, column-major) and bias (out) if any, then
    /// the learned dictionary (dim x latents, column-major) if any.
    pub fn param_len(&self) -> usize {
        let bias = |out: usize| if self.bias { out } else { 0 };
        let layers = match self.hidden {
            None => self.latents * self.dim + bias(self.latents),
            Some(h) => h * self.dim + bias(h) + self.latents * h + bias(self.latents),
        };
        layers
            + if self.learned {
                self.latents * self.dim
            } else {
                0
            }
    }
}

/// Full-batch training steps of a one-layer encoder (SAE or TopK SAE) or an MLP encoder with
/// one hidden layer that a fused kernel advances. `state` (stack x 4P x 1, P = [`EncoderTrainShape::param_len`]) holds per member
/// four blocks of P values in the same order: the parameters, Adam's m, Adam's v, and room
/// for the gradient. Each step matches the kernel-by-kernel
/// [`EncoderModel::train_step`](crate::core::models::EncoderModel::train_step).
#[derive(Debug)]
pub struct EncoderTrainJob<'a> {
    pub shape: EncoderTrainShape,
    pub state: &'a mut Tensor,
    /// The frozen dictionary (stack of 1 or per member) when the shape's is not learned and
    /// the objective is the reconstruction.
    pub frozen: Option<&'a Tensor>,
    /// The true codes (stack of 1 or per member, latents x batch) of the supervised objective.
    pub targets: Option<&'a Tensor>,
    /// The signals (stack of 1 or per member), `shape.batch` columns.
    pub x: &'a Tensor,
    /// 2 / (batch dim), the reconstruction term's gradient scale.
    pub mse_scale: f32,
    /// Per member (or one for all): the L1 penalty and its gradient scale penalty / (batch N).
    pub l1_penalty: &'a [f32],
    pub l1_scale: &'a [f32],
    /// Per member (or one for all): the top-k's k, when the shape has a top-k.
    pub topk: &'a [usize],
    /// Adam's scalars per step and member (step-major).
    pub scalars: &'a [AdamScalars],
    pub steps: usize,
    /// Where the last step's loss goes (stack x 2 x 1) when `want_loss`.
    pub loss: &'a mut Tensor,
    pub want_loss: bool,
}

/// The state of a run of the paper's inference that a fused kernel advances.
#[derive(Debug)]
pub struct AdamExpJob<'a> {
    pub dict: &'a Tensor,
    pub x: &'a Tensor,
    pub log_codes: &'a mut Tensor,
    pub codes: &'a mut Tensor,
    pub m: &'a mut Tensor,
    pub v: &'a mut Tensor,
    pub mse_scale: f32,
    pub l1_scale: &'a [f32],
    /// Per step, per member (step-major).
    pub scalars: &'a [AdamScalars],
    pub steps: usize,
}

/// The state of FISTA iterations that a fused kernel advances.
#[derive(Debug)]
pub struct FistaJob<'a> {
    pub dict: &'a Tensor,
    pub x: &'a Tensor,
    pub s: &'a mut Tensor,
    pub s_prev: &'a mut Tensor,
    pub y: &'a mut Tensor,
    /// Per member: the gradient step g and the soft threshold.
    pub step: &'a [f32],
    pub threshold: &'a [f32],
    /// Per iteration (iteration-major): one momentum for every member, or one per member.
    pub momentum: &'a [f32],
    pub nonneg: bool,
    /// Iterations to run (`momentum` holds `iterations` or `iterations x members` values).
    pub iterations: usize,
    /// Members whose codes no longer matter (converged: their codes were kept at a check);
    /// a backend may leave them as they are. Empty: every member runs.
    pub skip: &'a [bool],
}

impl FistaJob<'_> {
    /// Momenta per iteration: 1 (shared) or `members`.
    pub fn momentum_stride(&self, members: usize) -> usize {
        if self.iterations > 0 && self.momentum.len() == self.iterations * members {
            members
        } else {
            assert_eq!(
                self.momentum.len(),
                self.iterations,
                "fista: one momentum per iteration, or one per iteration and member"
            );
            1
        }
    }
}

/// Per-member values expanded to `members` entries (a single entry applies to all).
pub fn per_member<T: Copy>(values: &[T], members: usize) -> impl Iterator<Item = T> + '_ {
    assert!(
        values.len() == members || values.len() == 1,
        "per-member values: {} for {members} members",
        values.len()
    );
    (0..members).map(move |i| values[if values.len() == 1 { 0 } else { i }])
}

/// The shapes `Backend::jump_relu_threshold_grad` takes (panics naming the one that differs):
/// `grad` as `pre`, `theta` and `out` one value per row of it.
pub fn check_jump_relu_shapes(pre: &Tensor, grad: &Tensor, theta: &Tensor, out: &Tensor) {
    let s = pre.shape();
    let rows = Shape::new(s.stack, s.rows, 1);
    for (what, got, want) in [
        ("grad", grad.shape(), s),
        ("theta", theta.shape(), rows),
        ("out", out.shape(), rows),
    ] {
        assert_eq!(
            got, want,
            "jump_relu_threshold_grad ({what}): shapes differ"
        );
    }
}

/// Shape of a loss tensor for `members`: per member a pair (hi, lo) of f32 whose sum is the loss
/// (a backend computing in f64 keeps its precision; one computing in f32 writes lo = 0).
pub fn loss_shape(members: usize) -> Shape {
    Shape::new(members, 2, 1)
}

/// Member `i`'s loss from the values of a read-back loss tensor.
pub fn loss_value(values: &[f32], i: usize) -> f64 {
    f64::from(values[2 * i]) + f64::from(values[2 * i + 1])
}
