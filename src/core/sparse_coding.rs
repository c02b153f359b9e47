//! Sparse coding: a learned dictionary and one free code per training sample, s = exp(u), for a
//! stack of members trained together.
//!
//! u starts at -10 (codes positive and never exactly zero); the dictionary starts N(0,1) and is
//! re-projected to unit-norm atoms before every step; Adam updates both on the reconstruction
//! loss. With minibatches only the batch's codes move (their Adam moments too), the dictionary's
//! moments every step.
//!
//! Full-batch steps go to a backend's fused kernel where it has one (many steps per dispatch on
//! state packed per member); the tensors above catch up at [`SparseCodingModel::settle`].

use super::adam::AdamClock;
use super::models::{random_dictionary, reconstruction_backward};
use super::rng::Rng;
use crate::compute::{AdamScalars, Backend, Shape, SparseCodingTrainJob, Tensor};

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
    /// Lambda: one for every member, or one per member.
    pub l1_penalty: Vec<f32>,
    members: usize,
    dict_grad: Tensor,
    dict_moments: (Tensor, Tensor),
    code_moments: (Tensor, Tensor),
    clocks: Vec<AdamClock>,
    scratch: Option<Scratch>,
    loss: Tensor,
    packed: Option<Packed>,
}

/// The state a fused kernel advances: per member [D | m | v] and [U | m | v].
#[derive(Debug)]
struct Packed {
    dict: Tensor,
    codes: Tensor,
    /// The packed values are newer than the tensors of the model.
    ahead: bool,
}

impl SparseCodingModel {
    /// A stack of `rngs.len()` members; member i's dictionary is drawn from `rngs[i]`.
    pub fn new(
        backend: &dyn Backend,
        rngs: &mut [Rng],
        data_dim: usize,
        num_atoms: usize,
        num_samples: usize,
        l1_penalty: &[f32],
        lrs: &[f64],
    ) -> Self {
        let members = rngs.len();
        assert!(
            l1_penalty.len() == 1 || l1_penalty.len() == members,
            "one lambda, or one per member"
        );
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
            l1_penalty: l1_penalty.to_vec(),
            members,
            dict_grad: backend.zeros(dict_shape),
            dict_moments: (backend.zeros(dict_shape), backend.zeros(dict_shape)),
            code_moments: (backend.zeros(code_shape), backend.zeros(code_shape)),
            clocks: AdamClock::per_member(members, lrs),
            scratch: None,
            loss: backend.zeros(crate::compute::loss_shape(members)),
            packed: None,
        }
    }

    /// Whether the dictionary, codes and moments are up to date (see [`settle`](Self::settle)).
    pub fn settled(&self) -> bool {
        !self.packed.as_ref().is_some_and(|p| p.ahead)
    }

    /// Bring the dictionary, the codes and their moments up to date after fused steps (six
    /// copies, and nothing when they are).
    pub fn settle(&mut self, backend: &dyn Backend) {
        let Some(p) = self.packed.as_mut() else {
            return;
        };
        if !p.ahead {
            return;
        }
        let (md, cn) = (
            self.dictionary.shape().matrix_len(),
            self.log_codes.shape().matrix_len(),
        );
        let (dm, dv) = &mut self.dict_moments;
        for (i, t) in [&mut self.dictionary, dm, dv].into_iter().enumerate() {
            backend.copy_block(&p.dict, i * md, t, 0, md);
        }
        let (cm, cv) = &mut self.code_moments;
        for (i, t) in [&mut self.log_codes, cm, cv].into_iter().enumerate() {
            backend.copy_block(&p.codes, i * cn, t, 0, cn);
        }
        p.ahead = false;
    }

    /// `steps` full-batch training steps on `x` (the last one leaving its loss in
    /// [`loss`](Self::loss) when `want_loss`): in one fused kernel per few hundred steps where
    /// the backend has one for these shapes, else step by step. The numbers are the same
    /// either way (up to the order of sums); after fused steps, [`settle`](Self::settle) before
    /// reading the dictionary or the codes.
    pub fn train_steps(
        &mut self,
        backend: &dyn Backend,
        x: &Tensor,
        steps: usize,
        want_loss: bool,
    ) {
        if steps == 0 {
            return;
        }
        let (dim, latents, n) = (self.dictionary.rows(), self.dictionary.cols(), x.cols());
        if n == self.log_codes.cols() && backend.sparse_coding_train_fits(latents, dim, n) {
            if !self.packed.as_ref().is_some_and(|p| p.ahead) {
                self.pack(backend);
            }
            let mut clocks = self.clocks.clone();
            let scalars: Vec<AdamScalars> = (0..steps)
                .flat_map(|_| clocks.iter_mut().map(AdamClock::tick).collect::<Vec<_>>())
                .collect();
            // The same f32 arithmetic as `reconstruction_backward`.
            let mse_scale = 2.0 / (n * dim) as f32;
            let l1_scale: Vec<f32> = self
                .l1_penalty
                .iter()
                .map(|l| l / (n * latents) as f32)
                .collect();
            let packed = self.packed.as_mut().expect("packed just now");
            let mut job = SparseCodingTrainJob {
                dict: &mut packed.dict,
                codes: &mut packed.codes,
                x,
                latents,
                dim,
                mse_scale,
                l1_penalty: &self.l1_penalty,
                l1_scale: &l1_scale,
                scalars: &scalars,
                steps,
                loss: &mut self.loss,
                want_loss,
            };
            if backend.sparse_coding_train_fused(&mut job) {
                packed.ahead = true;
                self.clocks = clocks;
                return;
            }
        }
        for i in 0..steps {
            self.train_step(backend, x, None, want_loss && i + 1 == steps);
        }
    }

    /// The current values into the packed state of the fused kernel.
    fn pack(&mut self, backend: &dyn Backend) {
        let members = self.members;
        let (md, cn) = (
            self.dictionary.shape().matrix_len(),
            self.log_codes.shape().matrix_len(),
        );
        let mut p = match self.packed.take() {
            Some(p) if p.codes.rows() == 3 * cn => p,
            _ => Packed {
                dict: backend.zeros(Shape::new(members, 3 * md, 1)),
                codes: backend.zeros(Shape::new(members, 3 * cn, 1)),
                ahead: false,
            },
        };
        let (dm, dv) = &self.dict_moments;
        for (i, t) in [&self.dictionary, dm, dv].into_iter().enumerate() {
            backend.copy_block(t, 0, &mut p.dict, i * md, md);
        }
        let (cm, cv) = &self.code_moments;
        for (i, t) in [&self.log_codes, cm, cv].into_iter().enumerate() {
            backend.copy_block(t, 0, &mut p.codes, i * cn, cn);
        }
        self.packed = Some(p);
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
        self.settle(backend);
        let n = x.cols();
        self.ensure_scratch(backend, n, false);
        let sc = self.scratch.as_mut().expect("scratch");
        backend.exp(&self.log_codes, &mut sc.codes);
        reconstruction_backward(
            backend,
            &self.dictionary,
            &sc.codes,
            x,
            &self.l1_penalty,
            &mut sc.recon,
            &mut sc.d_codes,
            false,
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
        self.l1_penalty = vec![l1];
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
        self.settle(backend);
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
            &self.l1_penalty,
            &mut sc.recon,
            &mut sc.d_codes,
            false,
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
        assert!(
            self.settled(),
            "the codes after fused training need settle()"
        );
        let mut s = backend.zeros(self.log_codes.shape());
        backend.exp(&self.log_codes, &mut s);
        s
    }

    /// The dictionaries as used for decoding: unit-norm atoms.
    pub fn normalized_dictionary(&self, backend: &dyn Backend) -> Tensor {
        assert!(
            self.settled(),
            "the dictionary after fused training needs settle()"
        );
        let mut d = backend.zeros(self.dictionary.shape());
        backend.copy(&self.dictionary, &mut d);
        backend.normalize_columns(&mut d);
        d
    }
}
