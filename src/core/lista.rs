//! LISTA: an encoder that unrolls T iterations of (non-negative) ISTA with learned weights,
//! trained end to end with its dictionary. It sits between the SAE (T = 0: one linear map and a
//! ReLU) and full per-sample inference (ISTA run to convergence):
//!
//! c = W x + b,   h_0 = ReLU(c),   h_t = ReLU(c + S h_{t-1})  (t = 1..T),   codes = h_T,
//!
//! where ISTA itself would have W = D^T / L, S = I - D^T D / L and b = -lambda' / L. Here W, S
//! and b are free parameters (W starts like an SAE's encoder, S at 0, so training starts from an
//! SAE), learned on the same loss as the SAE, (1/(bM)) |X - D S|^2 + (lambda/(bN)) |S|_1, with
//! the dictionary D re-projected to unit-norm atoms before every step. Gradients are written
//! by hand (back through the T iterations) from the backend's kernels, so the model runs on
//! every backend; `tests/gradients.rs` checks them against finite differences.

use super::adam::{self, AdamClock};
use super::models::{random_dictionary, reconstruction_backward, Layer};
use super::rng::Rng;
use crate::compute::{Backend, Epilogue, Op, Shape, Tensor};

/// The activations of one batch size, reused across steps.
#[derive(Debug)]
struct Scratch {
    batch: usize,
    /// W x + b.
    c: Tensor,
    /// h_0 .. h_T.
    h: Vec<Tensor>,
    /// Gradient w.r.t. the current h_t (then its pre-activation), and the next one down.
    g: Tensor,
    g_next: Tensor,
    recon: Tensor,
    /// A column of ones (batch x 1), to sum a gradient's columns into a bias gradient.
    ones: Tensor,
}

/// A stack of LISTA encoders with their dictionaries, gradients and Adam state.
#[derive(Debug)]
pub struct ListaModel {
    /// W: stack x N x M.
    pub weight: Tensor,
    /// S: stack x N x N.
    pub lateral: Tensor,
    /// b: stack x N x 1.
    pub bias: Tensor,
    /// D: stack x M x N.
    pub dictionary: Tensor,
    /// T, the unrolled iterations after the first.
    pub iterations: usize,
    /// Lambda: one for every member, or one per member.
    l1_penalty: Vec<f32>,
    members: usize,
    grads: Vec<Tensor>,
    moments: Vec<(Tensor, Tensor)>,
    clocks: Vec<AdamClock>,
    scratch: Option<Scratch>,
    loss: Tensor,
}

impl ListaModel {
    /// A stack of `rngs.len()` members: W and b drawn like an SAE's encoder layer, S = 0, the
    /// dictionary N(0,1) (then unit atoms), member i trained at `lrs[i]` (or `lrs[0]` for all).
    #[allow(clippy::too_many_arguments, reason = "the model's whole description")]
    pub fn new(
        backend: &dyn Backend,
        rngs: &mut [Rng],
        data_dim: usize,
        num_atoms: usize,
        iterations: usize,
        l1_penalty: &[f32],
        lrs: &[f64],
    ) -> Self {
        let members = rngs.len();
        assert!(members > 0, "a stack needs at least one member");
        assert!(
            l1_penalty.len() == 1 || l1_penalty.len() == members,
            "one lambda, or one per member"
        );
        let (mut w, mut b, mut d) = (Vec::new(), Vec::new(), Vec::new());
        for rng in rngs.iter_mut() {
            let layer = Layer::init(rng, data_dim, num_atoms, true);
            w.extend_from_slice(layer.weight.as_slice());
            b.extend(layer.bias.expect("asked for a bias"));
            d.extend_from_slice(random_dictionary(rng, data_dim, num_atoms).as_slice());
        }
        let mut dictionary = backend.upload(Shape::new(members, data_dim, num_atoms), &d);
        backend.normalize_columns(&mut dictionary);
        let params = [
            Shape::new(members, num_atoms, data_dim),
            Shape::new(members, num_atoms, num_atoms),
            Shape::new(members, num_atoms, 1),
            Shape::new(members, data_dim, num_atoms),
        ];
        Self {
            weight: backend.upload(params[0], &w),
            lateral: backend.zeros(params[1]),
            bias: backend.upload(params[2], &b),
            dictionary,
            iterations,
            l1_penalty: l1_penalty.to_vec(),
            members,
            grads: params.iter().map(|&s| backend.zeros(s)).collect(),
            moments: params
                .iter()
                .map(|&s| (backend.zeros(s), backend.zeros(s)))
                .collect(),
            clocks: AdamClock::per_member(members, lrs),
            scratch: None,
            loss: backend.zeros(crate::compute::loss_shape(members)),
        }
    }

    pub fn members(&self) -> usize {
        self.members
    }

    /// W, S, b and D, in the order of [`grads`](Self::grads).
    pub fn params(&self) -> Vec<&Tensor> {
        vec![&self.weight, &self.lateral, &self.bias, &self.dictionary]
    }

    pub fn params_mut(&mut self) -> Vec<&mut Tensor> {
        vec![
            &mut self.weight,
            &mut self.lateral,
            &mut self.bias,
            &mut self.dictionary,
        ]
    }

    pub fn grads(&self) -> &[Tensor] {
        &self.grads
    }

    /// W, S, b and D, each with Adam's first and second moments, editable.
    pub fn params_and_moments_mut(&mut self) -> Vec<(&mut Tensor, &mut Tensor, &mut Tensor)> {
        let params = vec![
            &mut self.weight,
            &mut self.lateral,
            &mut self.bias,
            &mut self.dictionary,
        ];
        params
            .into_iter()
            .zip(self.moments.iter_mut())
            .map(|(p, (m, v))| (p, m, v))
            .collect()
    }

    /// Train at learning rate `lr` and L1 penalty `l1` from the next step on (warm-ups).
    pub fn set_schedule(&mut self, lr: f64, l1: f32) {
        for c in &mut self.clocks {
            c.hyper.lr = lr;
        }
        self.l1_penalty = vec![l1];
    }

    /// The loss of the last step that asked for it (see `compute::loss_value`).
    pub fn loss(&self) -> &Tensor {
        &self.loss
    }

    fn ensure_scratch(&mut self, backend: &dyn Backend, batch: usize) {
        if self.scratch.as_ref().is_some_and(|s| s.batch == batch) {
            return;
        }
        let (n, m) = (self.weight.rows(), self.weight.cols());
        let codes = Shape::new(self.members, n, batch);
        self.scratch = Some(Scratch {
            batch,
            c: backend.zeros(codes),
            h: (0..=self.iterations)
                .map(|_| backend.zeros(codes))
                .collect(),
            g: backend.zeros(codes),
            g_next: backend.zeros(codes),
            recon: backend.zeros(Shape::new(self.members, m, batch)),
            ones: backend.upload(Shape::new(1, batch, 1), &vec![1.0; batch]),
        });
    }

    /// The forward pass into `c` and `h` (x may have a stack of 1).
    fn forward(&self, backend: &dyn Backend, x: &Tensor, c: &mut Tensor, h: &mut [Tensor]) {
        backend.gemm(1.0, Op::n(&self.weight), Op::n(x), 0.0, c);
        backend.add_bias(c, &self.bias);
        backend.copy(c, &mut h[0]);
        backend.relu(&mut h[0]);
        for t in 1..h.len() {
            let (done, rest) = h.split_at_mut(t);
            backend.copy(c, &mut rest[0]);
            backend.gemm(
                1.0,
                Op::n(&self.lateral),
                Op::n(&done[t - 1]),
                1.0,
                &mut rest[0],
            );
            backend.relu(&mut rest[0]);
        }
    }

    /// Codes for a batch of signals (stack x N x b).
    pub fn encode(&self, backend: &dyn Backend, x: &Tensor) -> Tensor {
        let shape = Shape::new(self.members, self.weight.rows(), x.cols());
        let mut c = backend.zeros(shape);
        let mut h: Vec<Tensor> = (0..=self.iterations)
            .map(|_| backend.zeros(shape))
            .collect();
        self.forward(backend, x, &mut c, &mut h);
        h.pop().expect("at least h_0")
    }

    /// Gradients of the loss on a batch (into `grads`), and the loss (into `loss`) when
    /// `want_loss`.
    pub fn loss_and_grad(&mut self, backend: &dyn Backend, x: &Tensor, want_loss: bool) {
        self.ensure_scratch(backend, x.cols());
        let mut sc = self.scratch.take().expect("made above");
        self.forward(backend, x, &mut sc.c, &mut sc.h);
        let [g_w, g_s, g_b, g_d] = &mut self.grads[..] else {
            unreachable!("four parameters")
        };
        reconstruction_backward(
            backend,
            &self.dictionary,
            &sc.h[self.iterations],
            x,
            &self.l1_penalty,
            &mut sc.recon,
            &mut sc.g,
            true,
            Some(g_d),
            want_loss.then_some(&mut self.loss),
        );
        // Back through h_T .. h_0: at each, the gradient w.r.t. the pre-activation (c + S h)
        // goes to W and b (through c, which every iteration adds) and, past h_0, to S and on
        // down through S^T.
        // The gradient at h_t arrives carried back through h_t's ReLU: the products that make
        // it mask it as they store it.
        for t in (0..=self.iterations).rev() {
            let beta = if t == self.iterations { 0.0 } else { 1.0 };
            backend.gemm(1.0, Op::n(&sc.g), Op::t(x), beta, g_w);
            backend.gemm(1.0, Op::n(&sc.g), Op::n(&sc.ones), beta, g_b);
            if t > 0 {
                backend.gemm(1.0, Op::n(&sc.g), Op::t(&sc.h[t - 1]), beta, g_s);
                let gradient = Epilogue::Gradient {
                    out: &sc.h[t - 1],
                    l1: None,
                    through_relu: true,
                };
                let (lateral, g) = (Op::t(&self.lateral), Op::n(&sc.g));
                backend.gemm_epilogue(1.0, lateral, g, &mut sc.g_next, gradient);
                std::mem::swap(&mut sc.g, &mut sc.g_next);
            } else if self.iterations == 0 {
                backend.fill(g_s, 0.0);
            }
        }
        self.scratch = Some(sc);
    }

    /// One optimiser step on a batch: re-project the dictionary, compute gradients, Adam.
    pub fn train_step(&mut self, backend: &dyn Backend, x: &Tensor, want_loss: bool) {
        backend.normalize_columns(&mut self.dictionary);
        self.loss_and_grad(backend, x, want_loss);
        let (grads, mut moments) = (
            std::mem::take(&mut self.grads),
            std::mem::take(&mut self.moments),
        );
        let mut clocks = std::mem::take(&mut self.clocks);
        adam::step_all(
            backend,
            &mut clocks,
            self.params_mut(),
            &grads,
            &mut moments,
        );
        (self.grads, self.moments, self.clocks) = (grads, moments, clocks);
    }

    /// The dictionaries as they decode: unit-norm atoms.
    pub fn normalized_dictionary(&self, backend: &dyn Backend) -> Tensor {
        let mut d = backend.zeros(self.dictionary.shape());
        backend.copy(&self.dictionary, &mut d);
        backend.normalize_columns(&mut d);
        d
    }
}

/// FLOPs of LISTA's forward pass per token: W x + b, then T times S h added, and the ReLUs.
pub fn forward_flops(data_dim: usize, num_atoms: usize, iterations: usize) -> f64 {
    let (m, n, t) = (data_dim as f64, num_atoms as f64, iterations as f64);
    2.0 * n * m + 2.0 * n + t * (2.0 * n * n + 2.0 * n)
}

/// FLOPs of one training step on `batch` tokens: the forward pass, the loss and the decoder's
/// gradients, and back through the iterations (about twice the forward's products).
pub fn train_step_flops(data_dim: usize, num_atoms: usize, iterations: usize, batch: usize) -> f64 {
    let (m, n, b) = (data_dim as f64, num_atoms as f64, batch as f64);
    let forward = forward_flops(data_dim, num_atoms, iterations) * b;
    let decoder = 3.0 * 2.0 * m * n * b;
    let backward = 2.0 * forward;
    let adam = 10.0 * (n * m + n * n + n + m * n);
    forward + decoder + backward + adam
}
