//! The synthetic data model: K-sparse codes, unit-norm Gaussian atoms, x = sum_j s_j d_j.
//!
//! Generation runs in f64 with only IEEE-exact operations (+, *, /, sqrt) plus `libm`, and draws
//! from one seeded stream in a fixed order, so the same config gives bit-identical data natively
//! and on wasm32. [`Dataset::checksum`] pins that down in tests on both targets.

use super::config::DataConfig;
use super::rng::Rng;
use super::Matrix;

/// Stream of the data generator (model initialisation uses other streams of the same seed).
const DATA_STREAM: u64 = 0;

/// Ground truth plus a train/test split. Batches are stored one sample per column.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// True dictionary, M x N, one unit-norm atom per column.
    pub dictionary: Matrix,
    /// True training codes, N x n.
    pub train_codes: Matrix,
    /// Training signals, M x n.
    pub train_signals: Matrix,
    /// True test codes, N x n.
    pub test_codes: Matrix,
    /// Test signals, M x n.
    pub test_signals: Matrix,
}

impl Dataset {
    /// Generate the dataset for `config` from `seed`: atoms first, then 2n samples (train, test).
    pub fn generate(config: &DataConfig, seed: u64) -> Self {
        let (n_atoms, dim, n) = (config.num_atoms, config.data_dim, config.num_samples);
        let mut rng = Rng::with_stream(seed, DATA_STREAM);

        // Atoms: i.i.d. N(0,1) entries, each atom scaled to unit L2 norm.
        let mut dict = vec![0f64; dim * n_atoms];
        for atom in dict.chunks_mut(dim) {
            for v in atom.iter_mut() {
                *v = rng.normal();
            }
            let norm = libm::sqrt(atom.iter().map(|v| v * v).sum::<f64>());
            if norm > 0.0 {
                atom.iter_mut().for_each(|v| *v /= norm);
            }
        }

        // Zipf-like activation weights; uniform (the paper) when the skew is 0.
        let weights: Vec<f64> = (0..n_atoms)
            .map(|i| {
                if config.frequency_skew == 0.0 {
                    1.0
                } else {
                    libm::pow(i as f64 + 1.0, -config.frequency_skew)
                }
            })
            .collect();

        let mut codes = vec![0f64; n_atoms * 2 * n];
        let mut signals = vec![0f64; dim * 2 * n];
        let mut pool: Vec<u32> = (0..n_atoms as u32).collect();
        let mut pool_weights = weights.clone();
        for sample in 0..2 * n {
            let code = &mut codes[sample * n_atoms..(sample + 1) * n_atoms];
            // Support: K distinct atoms. Uniform: partial Fisher-Yates. Skewed: successive
            // weighted draws without replacement.
            for (i, slot) in pool.iter_mut().enumerate() {
                *slot = i as u32;
            }
            pool_weights.copy_from_slice(&weights);
            for j in 0..config.sparsity_k {
                let pick = if config.frequency_skew == 0.0 {
                    j + rng.below((n_atoms - j) as u32) as usize
                } else {
                    let total: f64 = pool_weights[j..].iter().sum();
                    let mut target = rng.uniform() * total;
                    let mut chosen = n_atoms - 1;
                    for (idx, w) in pool_weights.iter().enumerate().skip(j) {
                        if target < *w {
                            chosen = idx;
                            break;
                        }
                        target -= w;
                    }
                    chosen
                };
                pool.swap(j, pick);
                pool_weights.swap(j, pick);
                let z = rng.normal();
                code[pool[j] as usize] = if config.signed_codes { z } else { z.abs() };
            }
            let x = &mut signals[sample * dim..(sample + 1) * dim];
            for (atom_idx, &s) in code.iter().enumerate() {
                if s != 0.0 {
                    let atom = &dict[atom_idx * dim..(atom_idx + 1) * dim];
                    for (xi, di) in x.iter_mut().zip(atom) {
                        *xi += s * di;
                    }
                }
            }
            if config.noise_std > 0.0 {
                for xi in x.iter_mut() {
                    *xi += config.noise_std * rng.normal();
                }
            }
        }

        let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let split = |buf: &[f64], rows: usize| {
            let (train, test) = buf.split_at(rows * n);
            (
                Matrix::from_vec(rows, n, to_f32(train)),
                Matrix::from_vec(rows, n, to_f32(test)),
            )
        };
        let (train_codes, test_codes) = split(&codes, n_atoms);
        let (train_signals, test_signals) = split(&signals, dim);
        Dataset {
            dictionary: Matrix::from_vec(dim, n_atoms, to_f32(&dict)),
            train_codes,
            train_signals,
            test_codes,
            test_signals,
        }
    }

    /// FNV-1a over the bits of every generated number, in a fixed order: identical on every
    /// platform exactly when the data are bit-identical.
    pub fn checksum(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for m in [
            &self.dictionary,
            &self.train_codes,
            &self.train_signals,
            &self.test_codes,
            &self.test_signals,
        ] {
            for v in m.as_slice() {
                for byte in v.to_bits().to_le_bytes() {
                    hash ^= u64::from(byte);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        hash
    }

    pub fn num_atoms(&self) -> usize {
        self.dictionary.ncols()
    }
    pub fn data_dim(&self) -> usize {
        self.dictionary.nrows()
    }
    pub fn num_samples(&self) -> usize {
        self.train_signals.ncols()
    }
}
