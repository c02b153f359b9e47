//! Sparse coding: a learned dictionary and one free code per training sample, s = exp(u), for a
//! stack of members trained together.
//!
//! u starts at -10 (codes positive and never exactly zero); the dictionary starts N(0,1) and is
//! re-projected to unit-norm atoms before every step; Adam updates both on the reconstruction
//! loss. With minibatches only the batch's codes move (their Adam moments too), the dictionary's
//! moments every step.

use super::adam::AdamClock;
use super::models::{random_dictionary, reconstruction_backward};
use super::rng::Rng;
use crate::compute::{AdamScalars, Backend, Shape, Tensor};

/// Initial value of every log-code.
pub const LOG_CODE_INIT: f32 = -10.0;

/// Tensors of one batch size, reused across steps.
#[derive(Debug)]
struct Scratch {
    batch: usize,
    codes: Tensor,
    recon: Tensor,
    d_codes: Tensor,
    /// A minibatch's signals and log-codes, gathered per member.
    x_batch: Option<Tensor>,
    log_batch: Option<Tensor>,
}

#[derive(Debug)]
pub struct SparseCodingModel {
    /// stack x M x N dictionaries.
    pub dictionary: Tensor,
    /// stack x N x n log-codes of the training samples.
    pub log_codes: Tensor,
    pub l1_penalty: f32,
    members: usize,
    dict_grad: Tensor,
    dict_moments: (Tensor, Tensor),
    code_moments: (Tensor, Tensor),
    clocks: Vec<AdamClock>,
    scratch: Option<Scratch>,
    loss: Tensor,
}

impl SparseCodingModel {
    /// A stack of `rngs.len()` members; member i's dictionary is drawn from `rngs[i]`.
    pub fn new(
        backend: &dyn Backend,
        rngs: &mut [Rng],
        data_dim: usize,
        num_atoms: usize,
        num_samples: usize,
        l1_penalty: f32,
        lrs: &[f64],
    ) -> Self {
        let members = rngs.len();
        let dict: Vec<f32> = rngs
            .iter_mut()
            .flat_map(|rng| {
                random_dictionary(rng, data_dim, num_atoms)
                    .as_slice()
                    .to_vec()
            })
            .collect();
        let dict_shape = Shape::new(members, data_dim, num_atoms);
        let code_shape = Shape::new(members, num_atoms, num_samples);
        let mut log_codes = backend.zeros(code_shape);
        backend.fill(&mut log_codes, LOG_CODE_INIT);
        Self {
            dictionary: backend.upload(dict_shape, &dict),
            log_codes,
            l1_penalty,
            members,
            dict_grad: backend.zeros(dict_shape),
            dict_moments: (backend.zeros(dict_shape), backend.zeros(dict_shape)),
            code_moments: (backend.zeros(code_shape), backend.zeros(code_shape)),
            clocks: AdamClock::per_member(members, lrs),
            scratch: None,
            loss: backend.zeros(crate::compute::loss_shape(members)),
        }
    }

    pub fn members(&self) -> usize {
        self.members
    }

    fn ensure_scratch(&mut self, backend: &dyn Backend, batch: usize, minibatch: bool) {
        if self.scratch.as_ref().is_some_and(|s| s.batch == batch) {
            return;
        }
        let (s, dim, n_atoms) = (self.members, self.dictionary.rows(), self.dictionary.cols());
        self.scratch = Some(Scratch {
            batch,
            codes: backend.zeros(Shape::new(s, n_atoms, batch)),
            recon: backend.zeros(Shape::new(s, dim, batch)),
            d_codes: backend.zeros(Shape::new(s, n_atoms, batch)),
            x_batch: minibatch.then(|| backend.zeros(Shape::new(s, dim, batch))),
            log_batch: minibatch.then(|| backend.zeros(Shape::new(s, n_atoms, batch))),
        });
    }

    /// Loss over all training samples and its gradients, without a step: (dL/du, dL/dD) left
    /// in the returned tensors and the loss in [`loss`](Self::loss). For gradient checks.
    pub fn loss_and_grad_full(&mut self, backend: &dyn Backend, x: &Tensor) -> (Tensor, Tensor) {
        let n = x.cols();
        self.ensure_scratch(backend, n, false);
        let sc = self.scratch.as_mut().expect("scratch");
        backend.exp(&self.log_codes, &mut sc.codes);
        reconstruction_backward(
            backend,
            &self.dictionary,
            &sc.codes,
            x,
            &[self.l1_penalty],
            &mut sc.recon,
            &mut sc.d_codes,
            Some(&mut self.dict_grad),
            Some(&mut self.loss),
        );
        let mut d_log = backend.zeros(sc.d_codes.shape());
        backend.copy(&sc.d_codes, &mut d_log);
        backend.mul(&mut d_log, &sc.codes);
        let mut d_dict = backend.zeros(self.dict_grad.shape());
        backend.copy(&self.dict_grad, &mut d_dict);
        (d_log, d_dict)
    }

    /// Train at learning rate `lr` and L1 penalty `l1` from the next step on (warm-ups).
    pub fn set_schedule(&mut self, lr: f64, l1: f32) {
        for c in &mut self.clocks {
            c.hyper.lr = lr;
        }
        self.l1_penalty = l1;
    }

    /// The loss (see `compute::loss_value`) of the last step that asked for it.
    pub fn loss(&self) -> &Tensor {
        &self.loss
    }

    /// One Adam step on the dictionary and the codes of the batch `idx` (column numbers per
    /// member from [`Backend::upload_indices`], `batch` of them), or of all samples when
    /// `None`. With `want_loss`, the step's loss is left in [`loss`](Self::loss).
    pub fn train_step(
        &mut self,
        backend: &dyn Backend,
        x: &Tensor,
        batch: Option<(&Tensor, usize)>,
        want_loss: bool,
    ) {
        backend.normalize_columns(&mut self.dictionary);
        let b = batch.map_or(x.cols(), |(_, len)| len);
        self.ensure_scratch(backend, b, batch.is_some());
        let sc = self.scratch.as_mut().expect("scratch");
        let x_used: &Tensor = match batch {
            None => {
                backend.exp(&self.log_codes, &mut sc.codes);
                x
            }
            Some((idx, _)) => {
                let xb = sc.x_batch.as_mut().expect("minibatch scratch");
                let lb = sc.log_batch.as_mut().expect("minibatch scratch");
                backend.gather_columns(x, idx, xb);
                backend.gather_columns(&self.log_codes, idx, lb);
                backend.exp(lb, &mut sc.codes);
                xb
            }
        };
        reconstruction_backward(
            backend,
            &self.dictionary,
            &sc.codes,
            x_used,
            &[self.l1_penalty],
            &mut sc.recon,
            &mut sc.d_codes,
            Some(&mut self.dict_grad),
            want_loss.then_some(&mut self.loss),
        );
        // Chain rule through s = exp(u): dL/du = dL/ds * s.
        backend.mul(&mut sc.d_codes, &sc.codes);
        let scalars: Vec<AdamScalars> = self.clocks.iter_mut().map(AdamClock::tick).collect();
        let (dm, dv) = &mut self.dict_moments;
        backend.adam(&mut self.dictionary, &self.dict_grad, dm, dv, &scalars);
        let (cm, cv) = &mut self.code_moments;
        match batch {
            None => backend.adam(&mut self.log_codes, &sc.d_codes, cm, cv, &scalars),
            Some((idx, _)) => {
                backend.adam_columns(&mut self.log_codes, &sc.d_codes, cm, cv, idx, &scalars)
            }
        }
    }

    /// The training codes exp(u), stack x N x n.
    pub fn train_codes(&self, backend: &dyn Backend) -> Tensor {
        let mut s = backend.zeros(self.log_codes.shape());
        backend.exp(&self.log_codes, &mut s);
        s
    }

    /// The dictionaries as used for decoding: unit-norm atoms.
    pub fn normalized_dictionary(&self, backend: &dyn Backend) -> Tensor {
        let mut d = backend.zeros(self.dictionary.shape());
        backend.copy(&self.dictionary, &mut d);
        backend.normalize_columns(&mut d);
        d
    }
}
