//! Sparse coding: a learned dictionary and one free code per training sample, s = exp(u).
//!
//! u starts at -10 (codes positive and never exactly zero); the dictionary starts N(0,1) and is
//! re-projected to unit-norm atoms before every step; Adam updates both on the reconstruction
//! loss. With minibatches only the batch's codes move (their Adam moments too), the dictionary's
//! moments every step.

use super::adam::{AdamClock, AdamHyper, AdamState};
use super::models::{normalize_columns, random_dictionary, reconstruction_backward};
use super::rng::Rng;
use super::Matrix;
use crate::compute::Compute;

/// Initial value of every log-code.
pub const LOG_CODE_INIT: f32 = -10.0;

#[derive(Clone, Debug)]
pub struct SparseCodingModel {
    /// M x N dictionary.
    pub dictionary: Matrix,
    /// N x n log-codes of the training samples.
    pub log_codes: Matrix,
    pub l1_penalty: f32,
    dict_adam: AdamState,
    code_adam: AdamState,
    clock: AdamClock,
    // Scratch for one batch.
    codes: Matrix,
    recon: Matrix,
    d_codes: Matrix,
    dict_grad: Vec<f32>,
    x_batch: Matrix,
}

impl SparseCodingModel {
    pub fn new(
        rng: &mut Rng,
        data_dim: usize,
        num_atoms: usize,
        num_samples: usize,
        l1_penalty: f32,
        lr: f64,
    ) -> Self {
        Self {
            dictionary: random_dictionary(rng, data_dim, num_atoms),
            log_codes: Matrix::from_element(num_atoms, num_samples, LOG_CODE_INIT),
            l1_penalty,
            dict_adam: AdamState::new(data_dim * num_atoms),
            code_adam: AdamState::new(num_atoms * num_samples),
            clock: AdamClock::new(AdamHyper::with_lr(lr)),
            codes: Matrix::zeros(0, 0),
            recon: Matrix::zeros(0, 0),
            d_codes: Matrix::zeros(0, 0),
            dict_grad: vec![0.0; data_dim * num_atoms],
            x_batch: Matrix::zeros(0, 0),
        }
    }

    fn ensure_scratch(&mut self, batch: usize) {
        let (dim, n_atoms) = self.dictionary.shape();
        if self.codes.shape() != (n_atoms, batch) {
            self.codes = Matrix::zeros(n_atoms, batch);
            self.recon = Matrix::zeros(dim, batch);
            self.d_codes = Matrix::zeros(n_atoms, batch);
            self.x_batch = Matrix::zeros(dim, batch);
        }
    }

    /// Loss over all training samples and its gradients: returns (loss, dL/du (N x n), dL/dD).
    pub fn loss_and_grad_full(
        &mut self,
        backend: &dyn Compute,
        x: &Matrix,
    ) -> (f64, Matrix, Vec<f32>) {
        let n = x.ncols();
        self.ensure_scratch(n);
        backend.exp(self.log_codes.as_slice(), self.codes.as_mut_slice());
        let loss = reconstruction_backward(
            backend,
            &self.dictionary,
            &self.codes,
            x,
            self.l1_penalty,
            &mut self.recon,
            &mut self.d_codes,
            Some(&mut self.dict_grad),
        );
        let mut d_log = self.d_codes.clone();
        for (g, &s) in d_log.as_mut_slice().iter_mut().zip(self.codes.as_slice()) {
            *g *= s;
        }
        (loss, d_log, self.dict_grad.clone())
    }

    /// One Adam step on the dictionary and the codes of `batch` (all samples when `None`).
    pub fn train_step(&mut self, backend: &dyn Compute, x: &Matrix, batch: Option<&[u32]>) -> f64 {
        normalize_columns(&mut self.dictionary);
        let n_atoms = self.dictionary.ncols();
        let b = batch.map_or(x.ncols(), <[u32]>::len);
        self.ensure_scratch(b);
        let x_used: &Matrix = match batch {
            None => {
                backend.exp(self.log_codes.as_slice(), self.codes.as_mut_slice());
                x
            }
            Some(idx) => {
                let dim = x.nrows();
                for (j, &i) in idx.iter().enumerate() {
                    let i = i as usize;
                    self.x_batch.as_mut_slice()[j * dim..(j + 1) * dim]
                        .copy_from_slice(&x.as_slice()[i * dim..(i + 1) * dim]);
                    backend.exp(
                        &self.log_codes.as_slice()[i * n_atoms..(i + 1) * n_atoms],
                        &mut self.codes.as_mut_slice()[j * n_atoms..(j + 1) * n_atoms],
                    );
                }
                &self.x_batch
            }
        };
        let loss = reconstruction_backward(
            backend,
            &self.dictionary,
            &self.codes,
            x_used,
            self.l1_penalty,
            &mut self.recon,
            &mut self.d_codes,
            Some(&mut self.dict_grad),
        );
        // Chain rule through s = exp(u): dL/du = dL/ds * s.
        for (g, &s) in self
            .d_codes
            .as_mut_slice()
            .iter_mut()
            .zip(self.codes.as_slice())
        {
            *g *= s;
        }
        let scalars = self.clock.tick();
        self.dict_adam.update(
            backend,
            self.dictionary.as_mut_slice(),
            &self.dict_grad,
            scalars,
        );
        match batch {
            None => self.code_adam.update(
                backend,
                self.log_codes.as_mut_slice(),
                self.d_codes.as_slice(),
                scalars,
            ),
            Some(idx) => {
                for (j, &i) in idx.iter().enumerate() {
                    let i = i as usize;
                    self.code_adam.update_range(
                        backend,
                        self.log_codes.as_mut_slice(),
                        &self.d_codes.as_slice()[j * n_atoms..(j + 1) * n_atoms],
                        i * n_atoms..(i + 1) * n_atoms,
                        scalars,
                    );
                }
            }
        }
        loss
    }

    /// The training codes exp(u), N x n.
    pub fn train_codes(&self, backend: &dyn Compute) -> Matrix {
        let mut s = self.log_codes.clone();
        backend.exp(self.log_codes.as_slice(), s.as_mut_slice());
        s
    }

    /// The dictionary as used for decoding: unit-norm atoms.
    pub fn normalized_dictionary(&self) -> Matrix {
        let mut d = self.dictionary.clone();
        normalize_columns(&mut d);
        d
    }
}
