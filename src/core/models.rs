//! Amortised encoders (SAE, TopK SAE, MLP) with their decoder, losses and hand-written gradients.
//!
//! Batches are column-major with one sample per column: signals X are M x b, codes S are N x b,
//! the dictionary D is M x N with one atom per column, a layer's weight is (out x in).
//! Losses (means over the batch b):
//! - reconstruction: L = sum (D S - X)^2 / (b M) + lambda * sum |S| / (b N)
//! - supervised (known codes): L = -(1/N) sum_i cos(S_hat[i, :], S[i, :]), the cosine over samples
//!   of each latent's predicted and true activations.

use super::adam::{AdamClock, AdamHyper, AdamState};
use super::lanes::sum_map;
use super::rng::Rng;
use super::Matrix;
use crate::compute::{gemm_into, Compute, Operand};

/// Floor on vector norms in the cosine loss (PyTorch's `cosine_similarity` eps).
const COSINE_EPS: f64 = 1e-8;

/// One linear layer, weight (out x in), optional bias, PyTorch's default initialisation.
#[derive(Clone, Debug)]
pub struct Layer {
    pub weight: Matrix,
    pub bias: Option<Vec<f32>>,
}

impl Layer {
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, like `torch.nn.Linear`.
    pub fn init(rng: &mut Rng, fan_in: usize, fan_out: usize, bias: bool) -> Self {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let weight = Matrix::from_fn(fan_out, fan_in, |_, _| 0.0);
        let mut layer = Self {
            weight,
            bias: bias.then(|| vec![0.0; fan_out]),
        };
        // Fill row-major like torch does (row = output unit), so that the draw order is the
        // natural reading order of the weight matrix.
        for r in 0..fan_out {
            for c in 0..fan_in {
                layer.weight[(r, c)] = rng.uniform_range(-bound, bound) as f32;
            }
        }
        if let Some(b) = layer.bias.as_mut() {
            for v in b.iter_mut() {
                *v = rng.uniform_range(-bound, bound) as f32;
            }
        }
        layer
    }
}

/// Rescale every column of `m` to unit L2 norm (columns of norm 0 are left alone).
pub fn normalize_columns(m: &mut Matrix) {
    let rows = m.nrows();
    for col in m.as_mut_slice().chunks_mut(rows) {
        let norm = col
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            let inv = (1.0 / norm) as f32;
            col.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// A dictionary with N(0,1) entries (the paper's initialisation for learned dictionaries).
pub fn random_dictionary(rng: &mut Rng, data_dim: usize, num_atoms: usize) -> Matrix {
    let mut d = Matrix::zeros(data_dim, num_atoms);
    for v in d.as_mut_slice() {
        *v = rng.normal() as f32;
    }
    d
}

/// What the model is trained on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Objective {
    /// Reconstruct X through the dictionary, with an L1 penalty on the codes.
    Reconstruction { l1_penalty: f32 },
    /// Predict the true codes (negative mean cosine per latent).
    Supervised,
}

/// The decoder side of an encoder model.
#[derive(Clone, Debug)]
pub enum Decoder {
    /// Learned dictionary, re-projected to unit-norm atoms before every training step.
    Learned(Matrix),
    /// A given dictionary, never updated.
    Frozen(Matrix),
    /// No decoder (supervised setting).
    None,
}

impl Decoder {
    pub fn dictionary(&self) -> Option<&Matrix> {
        match self {
            Decoder::Learned(d) | Decoder::Frozen(d) => Some(d),
            Decoder::None => None,
        }
    }
}

/// Encoder architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderSpec {
    /// Hidden widths (empty for an SAE).
    pub hidden: Vec<usize>,
    /// Keep only the k largest pre-activations of the code layer.
    pub topk: Option<usize>,
    pub bias: bool,
}

/// Per-batch activations and gradient buffers, reused across steps of the same batch size.
#[derive(Clone, Debug, Default)]
struct Scratch {
    batch: usize,
    /// Post-ReLU output of every layer (the last one is the code S).
    acts: Vec<Matrix>,
    /// Gradient w.r.t. each layer's pre-activation.
    deltas: Vec<Matrix>,
    /// D S, then the gradient w.r.t. it.
    recon: Matrix,
}

/// An amortised encoder plus decoder, its gradients and Adam state.
#[derive(Clone, Debug)]
pub struct EncoderModel {
    pub layers: Vec<Layer>,
    pub topk: Option<usize>,
    pub decoder: Decoder,
    pub objective: Objective,
    grads: Vec<Vec<f32>>,
    adam: Vec<AdamState>,
    clock: AdamClock,
    scratch: Scratch,
}

impl EncoderModel {
    /// Initialise from `rng`: encoder layers first (input side first), then a learned dictionary.
    pub fn new(
        rng: &mut Rng,
        spec: &EncoderSpec,
        data_dim: usize,
        num_atoms: usize,
        decoder: DecoderInit<'_>,
        objective: Objective,
        lr: f64,
    ) -> Self {
        let mut layers = Vec::with_capacity(spec.hidden.len() + 1);
        let mut fan_in = data_dim;
        for &width in spec.hidden.iter().chain(std::iter::once(&num_atoms)) {
            layers.push(Layer::init(rng, fan_in, width, spec.bias));
            fan_in = width;
        }
        let decoder = match decoder {
            DecoderInit::Learned => Decoder::Learned(random_dictionary(rng, data_dim, num_atoms)),
            DecoderInit::Frozen(d) => Decoder::Frozen(d.clone()),
            DecoderInit::None => Decoder::None,
        };
        let mut model = Self {
            layers,
            topk: spec.topk,
            decoder,
            objective,
            grads: Vec::new(),
            adam: Vec::new(),
            clock: AdamClock::new(AdamHyper::with_lr(lr)),
            scratch: Scratch::default(),
        };
        let sizes: Vec<usize> = model.params().iter().map(|p| p.len()).collect();
        model.grads = sizes.iter().map(|&n| vec![0.0; n]).collect();
        model.adam = sizes.iter().map(|&n| AdamState::new(n)).collect();
        model
    }

    /// Trainable tensors in a fixed order: per layer weight then bias, then a learned dictionary.
    pub fn params(&self) -> Vec<&[f32]> {
        let mut out: Vec<&[f32]> = Vec::new();
        for layer in &self.layers {
            out.push(layer.weight.as_slice());
            if let Some(b) = &layer.bias {
                out.push(b);
            }
        }
        if let Decoder::Learned(d) = &self.decoder {
            out.push(d.as_slice());
        }
        out
    }

    pub fn params_mut(&mut self) -> Vec<&mut [f32]> {
        let mut out: Vec<&mut [f32]> = Vec::new();
        for layer in &mut self.layers {
            out.push(layer.weight.as_mut_slice());
            if let Some(b) = &mut layer.bias {
                out.push(b);
            }
        }
        if let Decoder::Learned(d) = &mut self.decoder {
            out.push(d.as_mut_slice());
        }
        out
    }

    /// Gradients of the last `loss_and_grad` call, in `params` order.
    pub fn grads(&self) -> &[Vec<f32>] {
        &self.grads
    }

    pub fn num_params(&self) -> usize {
        self.params().iter().map(|p| p.len()).sum()
    }

    pub fn dictionary(&self) -> Option<&Matrix> {
        self.decoder.dictionary()
    }

    fn ensure_scratch(&mut self, batch: usize, data_dim: usize) {
        if self.scratch.batch == batch && !self.scratch.acts.is_empty() {
            return;
        }
        self.scratch = Scratch {
            batch,
            acts: self
                .layers
                .iter()
                .map(|l| Matrix::zeros(l.weight.nrows(), batch))
                .collect(),
            deltas: self
                .layers
                .iter()
                .map(|l| Matrix::zeros(l.weight.nrows(), batch))
                .collect(),
            recon: Matrix::zeros(data_dim, batch),
        };
    }

    /// Forward pass into the scratch activations; returns nothing, the code is the last act.
    fn forward_scratch(&mut self, backend: &dyn Compute, x: &Matrix) {
        self.ensure_scratch(x.ncols(), x.nrows());
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let (done, rest) = self.scratch.acts.split_at_mut(l);
            let out = &mut rest[0];
            let input: Operand<'_> = if l == 0 {
                x.into()
            } else {
                (&done[l - 1]).into()
            };
            forward_layer(
                backend,
                layer,
                input,
                out,
                if l == last { self.topk } else { None },
            );
        }
    }

    /// Codes for a batch of signals (N x b): the encoder's inference.
    pub fn encode(&self, backend: &dyn Compute, x: &Matrix) -> Matrix {
        let mut codes = Matrix::zeros(self.layers[self.layers.len() - 1].weight.nrows(), x.ncols());
        self.encode_into(backend, x, &mut codes);
        codes
    }

    /// As [`encode`](Self::encode), into `codes` (N x b, overwritten), so repeated inference
    /// reuses its output instead of allocating and zeroing it every time.
    pub fn encode_into(&self, backend: &dyn Compute, x: &Matrix, codes: &mut Matrix) {
        let last = self.layers.len() - 1;
        assert_eq!(
            codes.shape(),
            (self.layers[last].weight.nrows(), x.ncols()),
            "encode_into: codes must be N x b"
        );
        let mut h: Option<Matrix> = None;
        for (l, layer) in self.layers.iter().enumerate() {
            let input = h.as_ref().unwrap_or(x);
            if l == last {
                forward_layer(backend, layer, input.into(), codes, self.topk);
            } else {
                let mut out = Matrix::zeros(layer.weight.nrows(), x.ncols());
                forward_layer(backend, layer, input.into(), &mut out, None);
                h = Some(out);
            }
        }
    }

    /// Loss on a batch and all gradients (into `grads`). `target_codes` is needed (only) by the
    /// supervised objective.
    pub fn loss_and_grad(
        &mut self,
        backend: &dyn Compute,
        x: &Matrix,
        target_codes: Option<&Matrix>,
    ) -> f64 {
        self.forward_scratch(backend, x);
        let last = self.layers.len() - 1;
        let batch = x.ncols();
        let loss;
        // Gradient w.r.t. the code S goes into deltas[last], then through the ReLU mask.
        {
            let (acts, deltas, recon) = (
                &self.scratch.acts,
                &mut self.scratch.deltas,
                &mut self.scratch.recon,
            );
            let codes = &acts[last];
            let d_codes = &mut deltas[last];
            match self.objective {
                Objective::Reconstruction { l1_penalty } => {
                    let dict = self
                        .decoder
                        .dictionary()
                        .expect("a reconstruction objective needs a decoder");
                    let dict_grad = match &self.decoder {
                        Decoder::Learned(_) => self.grads.last_mut().map(|g| g.as_mut_slice()),
                        _ => None,
                    };
                    loss = reconstruction_backward(
                        backend, dict, codes, x, l1_penalty, recon, d_codes, dict_grad,
                    );
                }
                Objective::Supervised => {
                    let target = target_codes.expect("the supervised objective needs true codes");
                    loss = cosine_loss_backward(codes, target, d_codes);
                }
            }
        }
        // Back through the layers: delta_l = dL/d(pre-activation of layer l).
        let mut grad_idx = 0;
        let mut layer_grad_start = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            layer_grad_start.push(grad_idx);
            grad_idx += 1 + usize::from(layer.bias.is_some());
        }
        for l in (0..=last).rev() {
            // ReLU (and TopK) pass gradient only where the output is positive.
            backend.relu_backward(
                self.scratch.deltas[l].as_mut_slice(),
                self.scratch.acts[l].as_slice(),
            );
            let delta = &self.scratch.deltas[l];
            let input: Operand<'_> = if l == 0 {
                x.into()
            } else {
                (&self.scratch.acts[l - 1]).into()
            };
            let gi = layer_grad_start[l];
            let layer = &self.layers[l];
            let (out_dim, in_dim) = (layer.weight.nrows(), layer.weight.ncols());
            backend.gemm(
                1.0,
                delta.into(),
                input.t(),
                0.0,
                &mut self.grads[gi],
                out_dim,
                in_dim,
            );
            if layer.bias.is_some() {
                let gb = &mut self.grads[gi + 1];
                gb.fill(0.0);
                for col in delta.as_slice().chunks(out_dim) {
                    for (g, d) in gb.iter_mut().zip(col) {
                        *g += d;
                    }
                }
            }
            if l > 0 {
                let (lower, upper) = self.scratch.deltas.split_at_mut(l);
                gemm_into(
                    backend,
                    1.0,
                    Operand::from(&layer.weight).t(),
                    (&upper[0]).into(),
                    0.0,
                    &mut lower[l - 1],
                );
            }
        }
        debug_assert_eq!(batch, self.scratch.batch);
        loss
    }

    /// One optimiser step on a batch: re-project the dictionary, compute gradients, Adam.
    pub fn train_step(
        &mut self,
        backend: &dyn Compute,
        x: &Matrix,
        target_codes: Option<&Matrix>,
    ) -> f64 {
        if let Decoder::Learned(d) = &mut self.decoder {
            normalize_columns(d);
        }
        let loss = self.loss_and_grad(backend, x, target_codes);
        let scalars = self.clock.tick();
        let grads = std::mem::take(&mut self.grads);
        let mut adam = std::mem::take(&mut self.adam);
        for ((param, grad), state) in self.params_mut().into_iter().zip(&grads).zip(&mut adam) {
            state.update(backend, param, grad, scalars);
        }
        self.grads = grads;
        self.adam = adam;
        loss
    }

    /// The dictionary as it is used for decoding (unit-norm atoms for a learned one).
    pub fn normalized_dictionary(&self) -> Option<Matrix> {
        self.decoder.dictionary().map(|d| {
            let mut d = d.clone();
            if matches!(self.decoder, Decoder::Learned(_)) {
                normalize_columns(&mut d);
            }
            d
        })
    }
}

/// How to set up the decoder of a new model.
#[derive(Clone, Copy, Debug)]
pub enum DecoderInit<'a> {
    Learned,
    Frozen(&'a Matrix),
    None,
}

/// out = act(W input + b), act = ReLU, or TopK then ReLU on the code layer.
fn forward_layer(
    backend: &dyn Compute,
    layer: &Layer,
    input: Operand<'_>,
    out: &mut Matrix,
    topk: Option<usize>,
) {
    gemm_into(backend, 1.0, (&layer.weight).into(), input, 0.0, out);
    let rows = out.nrows();
    let cols = out.ncols();
    if let Some(b) = &layer.bias {
        for col in out.as_mut_slice().chunks_mut(rows) {
            for (v, bi) in col.iter_mut().zip(b) {
                *v += bi;
            }
        }
    }
    if let Some(k) = topk {
        backend.topk_columns(out.as_mut_slice(), rows, cols, k);
    }
    backend.relu(out.as_mut_slice());
}

/// Reconstruction loss of codes through `dict`; writes dL/dS into `d_codes` and, if asked,
/// dL/dD into `dict_grad`. `recon` is scratch (M x b).
#[allow(clippy::too_many_arguments)]
pub fn reconstruction_backward(
    backend: &dyn Compute,
    dict: &Matrix,
    codes: &Matrix,
    x: &Matrix,
    l1_penalty: f32,
    recon: &mut Matrix,
    d_codes: &mut Matrix,
    dict_grad: Option<&mut [f32]>,
) -> f64 {
    let (dim, batch) = (x.nrows(), x.ncols());
    let num_atoms = codes.nrows();
    gemm_into(backend, 1.0, dict.into(), codes.into(), 0.0, recon);
    let mse_scale = 2.0 / (batch * dim) as f32;
    // dL/d(DS) = mse_scale * (DS - X), stored over DS; the squared error is read back from it.
    for (r, &xi) in recon.as_mut_slice().iter_mut().zip(x.as_slice()) {
        *r = (*r - xi) * mse_scale;
    }
    let sq = sum_map(recon.as_slice(), |g| g * g) / f64::from(mse_scale).powi(2);
    let l1_scale = l1_penalty / (batch * num_atoms) as f32;
    gemm_into(
        backend,
        1.0,
        Operand::from(dict).t(),
        (&*recon).into(),
        0.0,
        d_codes,
    );
    for (g, &s) in d_codes.as_mut_slice().iter_mut().zip(codes.as_slice()) {
        // d|s|/ds = sign(s), 0 at 0 (PyTorch's convention); selects, so the pass vectorises.
        let sign = if s > 0.0 {
            1.0
        } else if s < 0.0 {
            -1.0
        } else {
            0.0
        };
        *g += sign * l1_scale;
    }
    let l1 = sum_map(codes.as_slice(), f32::abs);
    if let Some(gd) = dict_grad {
        backend.gemm(
            1.0,
            (&*recon).into(),
            Operand::from(codes).t(),
            0.0,
            gd,
            dim,
            num_atoms,
        );
    }
    sq / (batch * dim) as f64 + f64::from(l1_penalty) * l1 / (batch * num_atoms) as f64
}

/// Negative mean cosine similarity, per latent across samples; writes dL/dS_hat into `d_codes`.
pub fn cosine_loss_backward(pred: &Matrix, target: &Matrix, d_codes: &mut Matrix) -> f64 {
    let n_lat = pred.nrows();
    let mut dot = vec![0f64; n_lat];
    let mut pp = vec![0f64; n_lat];
    let mut tt = vec![0f64; n_lat];
    for (pc, tc) in pred
        .as_slice()
        .chunks(n_lat)
        .zip(target.as_slice().chunks(n_lat))
    {
        for i in 0..n_lat {
            let (p, t) = (f64::from(pc[i]), f64::from(tc[i]));
            dot[i] += p * t;
            pp[i] += p * p;
            tt[i] += t * t;
        }
    }
    let mut loss = 0.0;
    // Per latent: cos = dot / (max(|p|, eps) max(|t|, eps)); the clamped norm is a constant.
    let mut coef_t = vec![0f64; n_lat];
    let mut coef_p = vec![0f64; n_lat];
    for i in 0..n_lat {
        let np = pp[i].sqrt().max(COSINE_EPS);
        let nt = tt[i].sqrt().max(COSINE_EPS);
        let cos = dot[i] / (np * nt);
        loss -= cos / n_lat as f64;
        coef_t[i] = -1.0 / (n_lat as f64 * np * nt);
        coef_p[i] = if pp[i].sqrt() > COSINE_EPS {
            cos / (n_lat as f64 * np * np)
        } else {
            0.0
        };
    }
    for ((gc, pc), tc) in d_codes
        .as_mut_slice()
        .chunks_mut(n_lat)
        .zip(pred.as_slice().chunks(n_lat))
        .zip(target.as_slice().chunks(n_lat))
    {
        for i in 0..n_lat {
            gc[i] = (coef_t[i] * f64::from(tc[i]) + coef_p[i] * f64::from(pc[i])) as f32;
        }
    }
    loss
}
