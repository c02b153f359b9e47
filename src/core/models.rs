//! Amortised encoders (SAE, TopK SAE, MLP) with their decoder, losses and hand-written gradients,
//! for a stack of members (seeds or sweep cells) trained together on backend tensors.
//!
//! Batches are column-major with one sample per column: signals X are M x b, codes S are N x b,
//! the dictionary D is M x N with one atom per column, a layer's weight is (out x in); every
//! tensor carries a leading stack dimension (one matrix per member). Losses (means over the
//! batch b):
//! - reconstruction: L = sum (D S - X)^2 / (b M) + lambda * sum |S| / (b N)
//! - supervised (known codes): L = -(1/N) sum_i cos(S_hat[i, :], S[i, :]), the cosine over samples
//!   of each latent's predicted and true activations.

use super::adam::{self, AdamClock};
use super::config::MethodConfig;
use super::rng::Rng;
use super::Matrix;
use crate::compute::{
    AdamScalars, Backend, EncoderTrainJob, EncoderTrainShape, Epilogue, JumpReluScalars, Op, Shape,
    Tensor,
};

/// One member's linear layer, weight (out x in), optional bias, PyTorch's default
/// initialisation: the host values a stack is built from.
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
    crate::compute::normalize_columns_slice(m.as_mut_slice(), rows);
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
#[derive(Clone, Debug, PartialEq)]
pub enum Objective {
    /// Reconstruct X through the dictionary, with an L1 penalty on the codes: one lambda for
    /// every member, or one per member (a sweep's cells stacked along lambda).
    Reconstruction { l1_penalty: Vec<f32> },
    /// Predict the true codes (negative mean cosine per latent).
    Supervised,
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

impl EncoderSpec {
    /// The encoder of a method that has one (a BatchTopK's or JumpReLU's gate comes on top of
    /// its one layer: [`EncoderModel::with_batch_topk`], [`EncoderModel::with_jump_relu`]);
    /// `None` for sparse coding and LISTA.
    pub fn of(method: &MethodConfig) -> Option<Self> {
        let one_layer = |topk: Option<usize>, bias: bool| EncoderSpec {
            hidden: vec![],
            topk,
            bias,
        };
        match method {
            MethodConfig::Sae { bias }
            | MethodConfig::SaeIto { bias, .. }
            | MethodConfig::BatchTopkSae { bias, .. }
            | MethodConfig::JumpReluSae { bias, .. } => Some(one_layer(None, *bias)),
            MethodConfig::TopkSae { k, bias } => Some(one_layer(Some(*k), *bias)),
            MethodConfig::Mlp { hidden, bias } => Some(EncoderSpec {
                hidden: hidden.clone(),
                topk: None,
                bias: *bias,
            }),
            MethodConfig::SparseCoding { .. } | MethodConfig::Lista { .. } => None,
        }
    }
}

/// How to set up the decoder of a new model.
#[derive(Clone, Copy, Debug)]
pub enum DecoderInit<'a> {
    /// A dictionary learned per member, N(0,1) at first.
    Learned,
    /// A given dictionary (stack of 1, shared by every member), never updated.
    Frozen(&'a Tensor),
    None,
}

/// The decoder side of an encoder model.
#[derive(Debug)]
pub enum Decoder {
    /// Learned dictionaries (stack x M x N), re-projected to unit-norm atoms before every step.
    Learned(Tensor),
    /// A given dictionary (1 x M x N), never updated.
    Frozen(Tensor),
    /// No decoder (supervised setting).
    None,
}

impl Decoder {
    pub fn dictionary(&self) -> Option<&Tensor> {
        match self {
            Decoder::Learned(d) | Decoder::Frozen(d) => Some(d),
            Decoder::None => None,
        }
    }
}

/// One layer of the stack: weights (stack x out x in) and biases (stack x out x 1).
#[derive(Debug)]
pub struct StackLayer {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

/// A code-layer gate other than ReLU (or TopK per sample), with its state.
#[derive(Debug)]
pub enum Gate {
    /// BatchTopK: in training the `k` x b largest pre-activations of a batch are kept (see
    /// `Backend::batch_topk`); at inference those above `threshold` (stack x 1 x 1), the running
    /// average of the smallest value kept per training batch (negative until the first step).
    BatchTopk { k: usize, threshold: Tensor },
    /// JumpReLU: s = z where z > theta, else 0, with theta (stack x N x 1, stored over
    /// [`JUMP_THRESHOLD_SCALE`]) trained as a parameter on reconstruction plus lambda x L0, by
    /// straight-through gradients with a rectangle kernel of width `bandwidth`.
    JumpRelu {
        threshold: Tensor,
        bandwidth: f32,
        /// The stored value every threshold starts from.
        initial: f32,
    },
}

/// JumpReLU's thresholds are stored divided by this, so that Adam (whose steps are about the
/// learning rate in the units of what it trains) moves them this many times faster than the
/// weights: directly, or through their log as the published recipe does, at a learning rate
/// of 1e-3 they would rise by at most 0.6 (or a factor e) in the few hundred steps of a
/// playground run, far too slowly for the L0 penalty to act before the end.
pub const JUMP_THRESHOLD_SCALE: f32 = 10.0;

/// Weight of the old value in BatchTopK's running threshold.
pub const BATCH_TOPK_DECAY: f32 = 0.99;

/// Activations and gradient buffers for one batch size, reused across steps.
#[derive(Debug, Default)]
struct Scratch {
    batch: usize,
    /// Post-ReLU output of every layer (the last one is the code S).
    acts: Vec<Tensor>,
    /// Gradient w.r.t. each layer's pre-activation.
    deltas: Vec<Tensor>,
    /// D S, then the scaled residual (the gradient w.r.t. D S).
    recon: Option<Tensor>,
    /// The code layer's pre-activation (JumpReLU's threshold gradient needs it).
    pre: Option<Tensor>,
}

/// Amortised encoders plus decoders for a stack of members, their gradients and Adam state.
#[derive(Debug)]
pub struct EncoderModel {
    pub layers: Vec<StackLayer>,
    /// The top-k of the code layer: one k for every member, or one each (a sweep's cells
    /// stacked along k; [`set_topk_per_member`](Self::set_topk_per_member)).
    pub topk: Option<Vec<usize>>,
    /// The code layer's gate when it is not a ReLU (see [`with_gate`](Self::with_gate)).
    pub gate: Option<Gate>,
    pub decoder: Decoder,
    pub objective: Objective,
    members: usize,
    data_dim: usize,
    grads: Vec<Tensor>,
    moments: Vec<(Tensor, Tensor)>,
    /// One optimiser clock per member (members may differ in learning rate).
    clocks: Vec<AdamClock>,
    scratch: Scratch,
    /// The loss of the last step asked for it (see `compute::loss_value`).
    loss: Tensor,
    /// The training state packed for the backend's fused kernel, once it has been used.
    packed: Option<Packed>,
}

/// A model's parameters and Adam moments packed as [`EncoderTrainJob`] describes, and which
/// copy holds the latest values: fused training advances the packed state alone, and the
/// separate tensors catch up when something reads them ([`EncoderModel::settle`]).
#[derive(Debug)]
struct Packed {
    state: Tensor,
    /// The packed state holds the latest parameters and moments (else the separate tensors
    /// do, and the next fused step packs them again).
    current: bool,
    /// The separate parameter tensors equal the packed ones.
    params_synced: bool,
    /// The separate moment tensors equal the packed ones.
    moments_synced: bool,
}

impl EncoderModel {
    /// A stack of `rngs.len()` members, member i initialised from `rngs[i]` (encoder layers
    /// first, input side first, then a learned dictionary) and trained at `lrs[i]` (or `lrs[0]`
    /// for all).
    #[allow(clippy::too_many_arguments, reason = "the model's whole description")]
    pub fn new(
        backend: &dyn Backend,
        rngs: &mut [Rng],
        spec: &EncoderSpec,
        data_dim: usize,
        num_atoms: usize,
        decoder: DecoderInit<'_>,
        objective: Objective,
        lrs: &[f64],
    ) -> Self {
        let members = rngs.len();
        assert!(members > 0, "a stack needs at least one member");
        let widths: Vec<(usize, usize)> = {
            let mut fan_in = data_dim;
            spec.hidden
                .iter()
                .chain(std::iter::once(&num_atoms))
                .map(|&w| {
                    let pair = (fan_in, w);
                    fan_in = w;
                    pair
                })
                .collect()
        };
        let mut host_layers: Vec<Vec<Layer>> = Vec::with_capacity(members);
        let mut host_dicts: Vec<Matrix> = Vec::new();
        for rng in rngs.iter_mut() {
            host_layers.push(
                widths
                    .iter()
                    .map(|&(i, o)| Layer::init(rng, i, o, spec.bias))
                    .collect(),
            );
            if matches!(decoder, DecoderInit::Learned) {
                host_dicts.push(random_dictionary(rng, data_dim, num_atoms));
            }
        }
        let layers = widths
            .iter()
            .enumerate()
            .map(|(l, &(fan_in, fan_out))| {
                let weights: Vec<f32> = host_layers
                    .iter()
                    .flat_map(|m| m[l].weight.as_slice().iter().copied())
                    .collect();
                let bias = spec.bias.then(|| {
                    let b: Vec<f32> = host_layers
                        .iter()
                        .flat_map(|m| m[l].bias.as_ref().expect("bias").iter().copied())
                        .collect();
                    backend.upload(Shape::new(members, fan_out, 1), &b)
                });
                StackLayer {
                    weight: backend.upload(Shape::new(members, fan_out, fan_in), &weights),
                    bias,
                }
            })
            .collect();
        let decoder = match decoder {
            DecoderInit::Learned => {
                let values: Vec<f32> = host_dicts
                    .iter()
                    .flat_map(|d| d.as_slice().iter().copied())
                    .collect();
                Decoder::Learned(backend.upload(Shape::new(members, data_dim, num_atoms), &values))
            }
            DecoderInit::Frozen(d) => {
                let mut copy = backend.zeros(d.shape());
                backend.copy(d, &mut copy);
                Decoder::Frozen(copy)
            }
            DecoderInit::None => Decoder::None,
        };
        let clocks = AdamClock::per_member(members, lrs);
        let mut model = Self {
            layers,
            topk: spec.topk.map(|k| vec![k]),
            gate: None,
            decoder,
            objective,
            members,
            data_dim,
            grads: Vec::new(),
            moments: Vec::new(),
            clocks,
            scratch: Scratch::default(),
            loss: backend.zeros(crate::compute::loss_shape(members)),
            packed: None,
        };
        model.reset_optimiser(backend);
        model
    }

    /// Zero gradients and Adam moments, one of each per parameter.
    fn reset_optimiser(&mut self, backend: &dyn Backend) {
        let shapes: Vec<Shape> = self.params().iter().map(|p| p.shape()).collect();
        self.grads = shapes.iter().map(|&s| backend.zeros(s)).collect();
        self.moments = shapes
            .iter()
            .map(|&s| (backend.zeros(s), backend.zeros(s)))
            .collect();
    }

    /// Each member's own k for the top-k of the code layer (a model built with a top-k).
    pub fn set_topk_per_member(&mut self, ks: Vec<usize>) {
        assert!(self.topk.is_some(), "a model with a top-k");
        assert!(
            ks.len() == 1 || ks.len() == self.members,
            "one k, or one per member"
        );
        self.topk = Some(ks);
    }

    /// A BatchTopK code layer keeping `k` latents per sample on average (a new model's: one
    /// layer, trained on its reconstruction).
    pub fn with_batch_topk(mut self, backend: &dyn Backend, k: usize) -> Self {
        assert!(
            self.layers.len() == 1 && self.topk.is_none(),
            "a one-layer encoder"
        );
        let mut threshold = backend.zeros(Shape::new(self.members, 1, 1));
        backend.fill(&mut threshold, -1.0);
        self.gate = Some(Gate::BatchTopk { k, threshold });
        self
    }

    /// A JumpReLU code layer: thresholds start at `initial`, the kernel is `bandwidth` wide
    /// (a new model's: one layer, trained on its reconstruction).
    pub fn with_jump_relu(mut self, backend: &dyn Backend, bandwidth: f32, initial: f32) -> Self {
        assert!(
            self.layers.len() == 1 && self.topk.is_none(),
            "a one-layer encoder"
        );
        let mut threshold = backend.zeros(Shape::new(self.members, self.code_width(), 1));
        let initial = initial / JUMP_THRESHOLD_SCALE;
        backend.fill(&mut threshold, initial);
        self.gate = Some(Gate::JumpRelu {
            threshold,
            bandwidth,
            initial,
        });
        self.reset_optimiser(backend);
        self
    }

    /// Where JumpReLU's thresholds sit in [`params`](Self::params), and their initial stored
    /// value (theta / [`JUMP_THRESHOLD_SCALE`]).
    pub fn jump_threshold(&self) -> Option<(usize, f32)> {
        match &self.gate {
            Some(Gate::JumpRelu { initial, .. }) => Some((
                self.layers
                    .iter()
                    .map(|l| 1 + usize::from(l.bias.is_some()))
                    .sum(),
                *initial,
            )),
            _ => None,
        }
    }

    pub fn members(&self) -> usize {
        self.members
    }

    /// Trainable tensors in a fixed order: per layer weight then bias, JumpReLU's thresholds,
    /// then a learned dictionary.
    pub fn params(&self) -> Vec<&Tensor> {
        let mut out: Vec<&Tensor> = Vec::new();
        for layer in &self.layers {
            out.push(&layer.weight);
            if let Some(b) = &layer.bias {
                out.push(b);
            }
        }
        if let Some(Gate::JumpRelu { threshold, .. }) = &self.gate {
            out.push(threshold);
        }
        if let Decoder::Learned(d) = &self.decoder {
            out.push(d);
        }
        out
    }

    pub fn params_mut(&mut self) -> Vec<&mut Tensor> {
        let mut out: Vec<&mut Tensor> = Vec::new();
        for layer in &mut self.layers {
            out.push(&mut layer.weight);
            if let Some(b) = &mut layer.bias {
                out.push(b);
            }
        }
        if let Some(Gate::JumpRelu { threshold, .. }) = &mut self.gate {
            out.push(threshold);
        }
        if let Decoder::Learned(d) = &mut self.decoder {
            out.push(d);
        }
        out
    }

    /// Gradients of the last `loss_and_grad` call, in `params` order.
    pub fn grads(&self) -> &[Tensor] {
        &self.grads
    }

    /// The parameters (in `params` order) with Adam's first and second moments of each, all up
    /// to date and editable (after fused training they are unpacked first, and the next fused
    /// step packs them again): e.g. to resample dead latents and reset their moments.
    pub fn params_and_moments_mut(
        &mut self,
        backend: &dyn Backend,
    ) -> Vec<(&mut Tensor, &mut Tensor, &mut Tensor)> {
        self.settle_all(backend);
        let mut params: Vec<&mut Tensor> = Vec::new();
        for layer in &mut self.layers {
            params.push(&mut layer.weight);
            if let Some(b) = &mut layer.bias {
                params.push(b);
            }
        }
        if let Some(Gate::JumpRelu { threshold, .. }) = &mut self.gate {
            params.push(threshold);
        }
        if let Decoder::Learned(d) = &mut self.decoder {
            params.push(d);
        }
        params
            .into_iter()
            .zip(self.moments.iter_mut())
            .map(|(p, (m, v))| (p, m, v))
            .collect()
    }

    /// Train at learning rate `lr` from the next step on (a warm-up's schedule).
    pub fn set_lr(&mut self, lr: f64) {
        for c in &mut self.clocks {
            c.hyper.lr = lr;
        }
    }

    /// The loss (see `compute::loss_value`) of the last step that asked for it.
    pub fn loss(&self) -> &Tensor {
        &self.loss
    }

    pub fn dictionary(&self) -> Option<&Tensor> {
        self.decoder.dictionary()
    }

    fn code_width(&self) -> usize {
        self.layers[self.layers.len() - 1].weight.rows()
    }

    fn ensure_scratch(&mut self, backend: &dyn Backend, batch: usize) {
        if self.scratch.batch == batch && !self.scratch.acts.is_empty() {
            return;
        }
        let s = self.members;
        let make = |l: &StackLayer| backend.zeros(Shape::new(s, l.weight.rows(), batch));
        self.scratch = Scratch {
            batch,
            acts: self.layers.iter().map(make).collect(),
            deltas: self.layers.iter().map(make).collect(),
            recon: self
                .decoder
                .dictionary()
                .map(|_| backend.zeros(Shape::new(s, self.data_dim, batch))),
            pre: matches!(self.gate, Some(Gate::JumpRelu { .. }))
                .then(|| backend.zeros(Shape::new(s, self.code_width(), batch))),
        };
    }

    /// Whether the parameter tensors hold the latest values (false after fused training until
    /// [`settle`](Self::settle)).
    pub fn settled(&self) -> bool {
        self.packed
            .as_ref()
            .is_none_or(|p| !p.current || p.params_synced)
    }

    /// The shape a fused training kernel would see, for encoders with at most one hidden
    /// layer and no learned gate, trained on their reconstruction (learned or frozen
    /// dictionary) or, given true codes, on the supervised objective.
    fn fused_shape(&self, batch: usize, supervised: bool) -> Option<EncoderTrainShape> {
        if self.layers.len() > 2 || self.gate.is_some() {
            return None;
        }
        let learned = match (&self.objective, &self.decoder) {
            (Objective::Reconstruction { .. }, Decoder::Learned(_)) if !supervised => true,
            (Objective::Reconstruction { .. }, Decoder::Frozen(_)) if !supervised => false,
            (Objective::Supervised, Decoder::None) if supervised => false,
            _ => return None,
        };
        Some(EncoderTrainShape {
            latents: self.code_width(),
            dim: self.data_dim,
            batch,
            hidden: (self.layers.len() == 2).then(|| self.layers[0].weight.rows()),
            bias: self.layers[0].bias.is_some(),
            learned,
            topk: self.topk.as_ref().and_then(|ks| ks.iter().copied().max()),
            supervised,
        })
    }

    /// Pack the parameters and moments (the current values) for the fused kernel.
    fn pack(&mut self, backend: &dyn Backend, shape: &EncoderTrainShape) {
        let plen = shape.param_len();
        let mut state = match self.packed.take() {
            Some(p) if p.state.rows() == 4 * plen => p.state,
            _ => backend.zeros(Shape::new(self.members, 4 * plen, 1)),
        };
        let mut at = 0;
        for (param, (m, v)) in self.params().into_iter().zip(&self.moments) {
            let len = param.shape().matrix_len();
            backend.copy_block(param, 0, &mut state, at, len);
            backend.copy_block(m, 0, &mut state, plen + at, len);
            backend.copy_block(v, 0, &mut state, 2 * plen + at, len);
            at += len;
        }
        assert_eq!(at, plen, "the packed layout covers every parameter");
        self.packed = Some(Packed {
            state,
            current: true,
            params_synced: true,
            moments_synced: true,
        });
    }

    /// Bring the parameter tensors up to date after fused training: what encoding, the
    /// dictionary and reads of the parameters need (a few copies, and nothing when they are).
    pub fn settle(&mut self, backend: &dyn Backend) {
        self.unpack(backend, false);
    }

    /// Parameters and moments back into their own tensors, which hold the latest values from
    /// then on (before kernel-by-kernel steps).
    fn settle_all(&mut self, backend: &dyn Backend) {
        self.unpack(backend, true);
        if let Some(p) = self.packed.as_mut() {
            p.current = false;
        }
    }

    fn unpack(&mut self, backend: &dyn Backend, moments: bool) {
        let Some(mut packed) = self.packed.take() else {
            return;
        };
        if packed.current {
            let plen = packed.state.rows() / 4;
            let copy_params = !packed.params_synced;
            let copy_moments = moments && !packed.moments_synced;
            let mut moment_list = std::mem::take(&mut self.moments);
            let mut at = 0;
            for (param, (m, v)) in self.params_mut().into_iter().zip(&mut moment_list) {
                let len = param.shape().matrix_len();
                if copy_params {
                    backend.copy_block(&packed.state, at, param, 0, len);
                }
                if copy_moments {
                    backend.copy_block(&packed.state, plen + at, m, 0, len);
                    backend.copy_block(&packed.state, 2 * plen + at, v, 0, len);
                }
                at += len;
            }
            self.moments = moment_list;
            packed.params_synced = true;
            packed.moments_synced |= moments;
        }
        self.packed = Some(packed);
    }

    /// `steps` full-batch training steps on `x` (the last one leaving its loss in
    /// [`loss`](Self::loss) when `want_loss`): in one fused kernel per few hundred steps where
    /// the backend has one for this model (one-layer encoders and MLPs with one hidden layer, on
    /// their reconstruction or the supervised objective), else step by step. The numbers are the same either way (up to the order of sums); after
    /// fused steps, [`settle`](Self::settle) before reading the parameters.
    pub fn train_steps(
        &mut self,
        backend: &dyn Backend,
        x: &Tensor,
        target_codes: Option<&Tensor>,
        steps: usize,
        want_loss: bool,
    ) {
        if steps == 0 {
            return;
        }
        let fused = self
            .fused_shape(x.cols(), target_codes.is_some())
            .filter(|shape| backend.encoder_train_fits(shape));
        if let Some(shape) = fused {
            if !self.packed.as_ref().is_some_and(|p| p.current) {
                self.pack(backend, &shape);
            }
            let mut clocks = self.clocks.clone();
            let scalars: Vec<AdamScalars> = (0..steps)
                .flat_map(|_| clocks.iter_mut().map(AdamClock::tick).collect::<Vec<_>>())
                .collect();
            // The same f32 arithmetic as `reconstruction_backward` (the supervised objective
            // has neither term).
            let (mse_scale, l1_penalty, l1_scale) = match &self.objective {
                Objective::Reconstruction { l1_penalty } => (
                    2.0 / (shape.batch * shape.dim) as f32,
                    l1_penalty.clone(),
                    l1_penalty
                        .iter()
                        .map(|l| l / (shape.batch * shape.latents) as f32)
                        .collect(),
                ),
                Objective::Supervised => (0.0, vec![0.0], vec![0.0]),
            };
            let packed = self.packed.as_mut().expect("packed just now");
            let frozen = match &self.decoder {
                Decoder::Frozen(d) => Some(d),
                _ => None,
            };
            let mut job = EncoderTrainJob {
                shape,
                state: &mut packed.state,
                frozen,
                targets: target_codes,
                x,
                mse_scale,
                l1_penalty: &l1_penalty,
                l1_scale: &l1_scale,
                topk: self.topk.as_deref().unwrap_or(&[]),
                scalars: &scalars,
                steps,
                loss: &mut self.loss,
                want_loss,
            };
            if backend.encoder_train_fused(&mut job) {
                packed.params_synced = false;
                packed.moments_synced = false;
                self.clocks = clocks;
                return;
            }
        }
        for i in 0..steps {
            self.train_step(backend, x, target_codes, want_loss && i + 1 == steps);
        }
    }

    /// Codes for a batch of signals (stack x N x b; `x` may have a stack of 1): the encoder's
    /// inference.
    pub fn encode(&self, backend: &dyn Backend, x: &Tensor) -> Tensor {
        assert!(self.settled(), "encode after fused training needs settle()");
        let last = self.layers.len() - 1;
        let mut h: Option<Tensor> = None;
        for (l, layer) in self.layers.iter().enumerate() {
            let input = h.as_ref().unwrap_or(x);
            let mut out = backend.zeros(Shape::new(self.members, layer.weight.rows(), x.cols()));
            match (&self.gate, l == last) {
                (Some(gate), true) => {
                    pre_activation(backend, layer, input, &mut out, false);
                    match gate {
                        Gate::BatchTopk { threshold, .. } => {
                            backend.threshold_rows(&mut out, threshold, 1.0);
                        }
                        Gate::JumpRelu { threshold, .. } => {
                            backend.threshold_rows(&mut out, threshold, JUMP_THRESHOLD_SCALE);
                        }
                    }
                }
                _ => forward_layer(
                    backend,
                    layer,
                    input,
                    &mut out,
                    if l == last {
                        self.topk.as_deref()
                    } else {
                        None
                    },
                ),
            }
            h = Some(out);
        }
        h.expect("an encoder has at least one layer")
    }

    /// Gradients of the loss on a batch (into `grads`), and the loss itself (into `loss`) when
    /// `want_loss` (the supervised loss is always computed). `target_codes` is needed (only)
    /// by the supervised objective.
    pub fn loss_and_grad(
        &mut self,
        backend: &dyn Backend,
        x: &Tensor,
        target_codes: Option<&Tensor>,
        want_loss: bool,
    ) {
        let batch = x.cols();
        self.ensure_scratch(backend, batch);
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let (done, rest) = self.scratch.acts.split_at_mut(l);
            let input = if l == 0 { x } else { &done[l - 1] };
            let out = &mut rest[0];
            match (&mut self.gate, l == last) {
                (Some(Gate::BatchTopk { k, threshold }), true) => {
                    pre_activation(backend, layer, input, out, false);
                    backend.batch_topk(out, *k * batch, threshold, BATCH_TOPK_DECAY);
                }
                (Some(Gate::JumpRelu { threshold, .. }), true) => {
                    pre_activation(backend, layer, input, out, false);
                    let pre = self.scratch.pre.as_mut().expect("JumpReLU scratch");
                    backend.copy(out, pre);
                    backend.threshold_rows(out, threshold, JUMP_THRESHOLD_SCALE);
                }
                _ => forward_layer(
                    backend,
                    layer,
                    input,
                    out,
                    if l == last {
                        self.topk.as_deref()
                    } else {
                        None
                    },
                ),
            }
        }
        // Gradient w.r.t. the code S goes into deltas[last].
        let theta_index = self.jump_threshold().map(|(index, _)| index);
        let codes = &self.scratch.acts[last];
        match &self.objective {
            Objective::Reconstruction { l1_penalty } => {
                let dict = self
                    .decoder
                    .dictionary()
                    .expect("a reconstruction objective needs a decoder");
                // JumpReLU's penalty is on L0, through its thresholds (below), not L1.
                let jump = match &self.gate {
                    Some(Gate::JumpRelu {
                        threshold,
                        bandwidth,
                        ..
                    }) => Some((threshold, *bandwidth)),
                    _ => None,
                };
                let (grads_head, dict_grad) = match &self.decoder {
                    Decoder::Learned(_) => {
                        let n = self.grads.len();
                        let (head, last) = self.grads.split_at_mut(n - 1);
                        (head, Some(&mut last[0]))
                    }
                    _ => (&mut self.grads[..], None),
                };
                reconstruction_backward(
                    backend,
                    dict,
                    codes,
                    x,
                    if jump.is_some() { &[0.0] } else { l1_penalty },
                    self.scratch
                        .recon
                        .as_mut()
                        .expect("scratch has a reconstruction"),
                    &mut self.scratch.deltas[last],
                    jump.is_none(),
                    dict_grad,
                    want_loss.then_some(&mut self.loss),
                );
                if let (Some((threshold, bandwidth)), Some(index)) = (jump, theta_index) {
                    let scalars = JumpReluScalars {
                        bandwidth,
                        // JumpReLU trains on activations, a stack of one.
                        l0: l1_penalty[0] / (batch * codes.rows()) as f32,
                        scale: JUMP_THRESHOLD_SCALE,
                    };
                    backend.jump_relu_threshold_grad(
                        self.scratch.pre.as_ref().expect("JumpReLU scratch"),
                        &self.scratch.deltas[last],
                        threshold,
                        scalars,
                        &mut grads_head[index],
                    );
                }
            }
            Objective::Supervised => {
                let target = target_codes.expect("the supervised objective needs true codes");
                backend.cosine_loss(
                    codes,
                    target,
                    &mut self.scratch.deltas[last],
                    &mut self.loss,
                );
            }
        }
        // Back through the layers: delta_l = dL/d(pre-activation of layer l).
        let mut grad_idx = 0;
        let mut layer_grad_start = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            layer_grad_start.push(grad_idx);
            grad_idx += 1 + usize::from(layer.bias.is_some());
        }
        // Whether deltas[l] is already carried back through layer l's ReLU: the products
        // that make it do so as they store it, except JumpReLU's (its threshold gradient
        // needs the gradient at the gate's output) and the supervised objective's.
        let mut through =
            matches!(self.objective, Objective::Reconstruction { .. }) && theta_index.is_none();
        for l in (0..=last).rev() {
            // ReLU (and TopK) pass gradient only where the output is positive.
            if !through {
                backend.relu_backward(&mut self.scratch.deltas[l], &self.scratch.acts[l]);
            }
            let delta = &self.scratch.deltas[l];
            let input = if l == 0 { x } else { &self.scratch.acts[l - 1] };
            let gi = layer_grad_start[l];
            let layer = &self.layers[l];
            backend.gemm(1.0, Op::n(delta), Op::t(input), 0.0, &mut self.grads[gi]);
            if layer.bias.is_some() {
                backend.sum_columns(delta, &mut self.grads[gi + 1]);
            }
            if l > 0 {
                let (lower, upper) = self.scratch.deltas.split_at_mut(l);
                let gradient = Epilogue::Gradient {
                    out: &self.scratch.acts[l - 1],
                    l1: None,
                    through_relu: true,
                };
                backend.gemm_epilogue(
                    1.0,
                    Op::t(&layer.weight),
                    Op::n(&upper[0]),
                    &mut lower[l - 1],
                    gradient,
                );
                through = true;
            }
        }
    }

    /// One optimiser step on a batch: re-project the dictionary, compute gradients, Adam.
    /// With `want_loss`, the step's loss is left in [`loss`](Self::loss).
    pub fn train_step(
        &mut self,
        backend: &dyn Backend,
        x: &Tensor,
        target_codes: Option<&Tensor>,
        want_loss: bool,
    ) {
        self.settle_all(backend);
        if let Decoder::Learned(d) = &mut self.decoder {
            backend.normalize_columns(d);
        }
        self.loss_and_grad(backend, x, target_codes, want_loss);
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

    /// The dictionaries as they decode (unit-norm atoms for learned ones): stack x M x N, or
    /// 1 x M x N for a frozen one.
    pub fn normalized_dictionary(&self, backend: &dyn Backend) -> Option<Tensor> {
        assert!(
            self.settled(),
            "the dictionary after fused training needs settle()"
        );
        self.decoder.dictionary().map(|d| {
            let mut out = backend.zeros(d.shape());
            backend.copy(d, &mut out);
            if matches!(self.decoder, Decoder::Learned(_)) {
                backend.normalize_columns(&mut out);
            }
            out
        })
    }

    /// Width of the code layer (N).
    pub fn num_latents(&self) -> usize {
        self.code_width()
    }
}

/// out = W input + b, then ReLU when `relu` (one product with its epilogue).
fn pre_activation(
    backend: &dyn Backend,
    layer: &StackLayer,
    input: &Tensor,
    out: &mut Tensor,
    relu: bool,
) {
    let epilogue = Epilogue::Activation {
        bias: layer.bias.as_ref(),
        relu,
    };
    backend.gemm_epilogue(1.0, Op::n(&layer.weight), Op::n(input), out, epilogue);
}

/// out = act(W input + b), act = ReLU, or TopK then ReLU on the code layer.
fn forward_layer(
    backend: &dyn Backend,
    layer: &StackLayer,
    input: &Tensor,
    out: &mut Tensor,
    topk: Option<&[usize]>,
) {
    pre_activation(backend, layer, input, out, topk.is_none());
    if let Some(k) = topk {
        backend.topk_columns(out, k);
        backend.relu(out);
    }
}

/// Reconstruction loss of codes through `dict` (the stacks may broadcast): writes dL/dS into
/// `d_codes` (carried back through the ReLU whose output the codes are, when `through_relu`:
/// zero where a code is not positive), dL/dD into `dict_grad` if asked, and the loss into
/// `loss` if asked. `recon` is scratch (stack x M x b) and ends as the scaled residual.
#[allow(
    clippy::too_many_arguments,
    reason = "the loss's inputs and its three outputs"
)]
pub fn reconstruction_backward(
    backend: &dyn Backend,
    dict: &Tensor,
    codes: &Tensor,
    x: &Tensor,
    l1_penalty: &[f32],
    recon: &mut Tensor,
    d_codes: &mut Tensor,
    through_relu: bool,
    dict_grad: Option<&mut Tensor>,
    loss: Option<&mut Tensor>,
) {
    let (dim, batch) = (x.rows(), x.cols());
    let num_atoms = codes.rows();
    let mse_scale = 2.0 / (batch * dim) as f32;
    // dL/d(DS) = mse_scale * (DS - X), stored over DS.
    let residual = Epilogue::Residual {
        x,
        scale: &[mse_scale],
    };
    backend.gemm_epilogue(1.0, Op::n(dict), Op::n(codes), recon, residual);
    let l1_scale: Vec<f32> = l1_penalty
        .iter()
        .map(|l| l / (batch * num_atoms) as f32)
        .collect();
    let gradient = Epilogue::Gradient {
        out: codes,
        l1: Some(&l1_scale),
        through_relu,
    };
    backend.gemm_epilogue(1.0, Op::t(dict), Op::n(recon), d_codes, gradient);
    if let Some(loss) = loss {
        backend.reconstruction_loss(recon, codes, &[mse_scale], l1_penalty, loss);
    }
    if let Some(gd) = dict_grad {
        backend.gemm(1.0, Op::n(recon), Op::t(codes), 0.0, gd);
    }
}
