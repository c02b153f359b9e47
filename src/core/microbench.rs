//! Timed steps shared by the native bench and the browser column of the bench, so both sides
//! time the very same code at the same size: one full-batch SAE training step, and one step of
//! the paper's inference-time optimisation (Adam on exp-parametrised codes, the whole test set).

use super::config::DataConfig;
use super::data::Dataset;
use super::flops;
use super::models::{DecoderInit, EncoderModel, EncoderSpec, Objective};
use super::rng::Rng;
use super::run::Clock;
use super::solvers;
use crate::compute::{Backend, Shape, Tensor};

/// What a timed item achieved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub steps_per_sec: f64,
    pub flops_per_step: f64,
}

/// Items both sides time: `sae_train`, `ito_step` and `mlp256_train` (the MLP encoder with
/// h = 256, the page's slowest method at the paper's size) at the size given, and
/// `real_sae_train` at its own: an SAE step at the page's default for real activations
/// ([`REAL_SAE`]).
pub const ITEMS: [&str; 4] = ["sae_train", "ito_step", "mlp256_train", "real_sae_train"];

/// The shapes of `real_sae_train`: the shipped sample's 576 dimensions, the page's default
/// 1,152 latents and minibatches of 256 tokens.
pub const REAL_SAE: DataConfig = DataConfig {
    num_atoms: 1152,
    data_dim: 576,
    sparsity_k: 32,
    num_samples: 256,
    noise_std: 0.0,
    signed_codes: false,
    frequency_skew: 0.0,
};

/// Call `step` until `min_secs` have passed on `clock` (after a warm-up of three calls, or one
/// call if that alone exceeds the budget); calls per second.
pub fn time_calls(clock: Clock, min_secs: f64, mut step: impl FnMut()) -> f64 {
    let t0 = clock();
    step();
    let first = clock() - t0;
    if first >= min_secs {
        return 1.0 / first.max(1e-9);
    }
    step();
    step();
    let start = clock();
    let mut reps = 0u64;
    loop {
        step();
        reps += 1;
        let elapsed = clock() - start;
        if elapsed >= min_secs {
            return reps as f64 / elapsed;
        }
    }
}

/// A matrix as a backend tensor (a stack of 1).
pub fn tensor(backend: &dyn Backend, m: &super::Matrix) -> Tensor {
    backend.upload(Shape::new(1, m.nrows(), m.ncols()), m.as_slice())
}

/// `members` encoders as the bench times them: no biases, learned dictionary, the paper's loss
/// and rate, member i from seed `seed + i`.
pub fn encoder(
    backend: &dyn Backend,
    seed: u64,
    members: usize,
    data: &DataConfig,
    hidden: &[usize],
    topk: Option<usize>,
) -> EncoderModel {
    let mut rngs: Vec<Rng> = (0..members as u64).map(|i| Rng::new(seed + i)).collect();
    let spec = EncoderSpec {
        hidden: hidden.to_vec(),
        topk,
        bias: false,
    };
    EncoderModel::new(
        backend,
        &mut rngs,
        &spec,
        data.data_dim,
        data.num_atoms,
        DecoderInit::Learned,
        Objective::Reconstruction {
            l1_penalty: vec![0.01],
        },
        &[1e-3],
    )
}

/// An encoder of the known-codes setting: trained on the supervised objective against the true
/// codes, with biases (as the paper's), no dictionary.
pub fn supervised_encoder(
    backend: &dyn Backend,
    seed: u64,
    members: usize,
    data: &DataConfig,
    hidden: &[usize],
) -> EncoderModel {
    let mut rngs: Vec<Rng> = (0..members as u64).map(|i| Rng::new(seed + i)).collect();
    let spec = EncoderSpec {
        hidden: hidden.to_vec(),
        topk: None,
        bias: true,
    };
    EncoderModel::new(
        backend,
        &mut rngs,
        &spec,
        data.data_dim,
        data.num_atoms,
        DecoderInit::None,
        Objective::Supervised,
        &[1e-3],
    )
}

/// A full-batch supervised training step (the known-codes setting) of an encoder with
/// `hidden` layers at the size of `data`.
pub fn supervised_train(
    backend: &dyn Backend,
    data: &DataConfig,
    hidden: &[usize],
    clock: Clock,
    min_secs: f64,
) -> Rate {
    let widths = flops::widths(data.data_dim, hidden, data.num_atoms);
    train_rate(
        backend,
        data,
        supervised_encoder(backend, 1, 1, data, hidden),
        true,
        flops::supervised_train_step(&widths, data.num_samples, true, false),
        clock,
        min_secs,
    )
}

/// Full-batch steps of `model` on the signals of `data`'s dataset (against its true codes
/// when `supervised`), timed.
fn train_rate(
    backend: &dyn Backend,
    data: &DataConfig,
    mut model: EncoderModel,
    supervised: bool,
    flops_per_step: f64,
    clock: Clock,
    min_secs: f64,
) -> Rate {
    let ds = Dataset::generate(data, 0);
    let x = tensor(backend, &ds.train_signals);
    let t = supervised.then(|| tensor(backend, &ds.train_codes));
    let steps_per_sec = time_calls(clock, min_secs, || {
        model.train_step(backend, &x, t.as_ref(), false);
        backend.flush();
    });
    Rate {
        steps_per_sec,
        flops_per_step,
    }
}

/// A full-batch SAE training step (no biases, learned dictionary) at the size of `data`.
pub fn sae_train(backend: &dyn Backend, data: &DataConfig, clock: Clock, min_secs: f64) -> Rate {
    encoder_train(backend, data, &[], clock, min_secs)
}

/// A full-batch training step of an encoder with `hidden` layers (no biases, learned
/// dictionary) at the size of `data`.
pub fn encoder_train(
    backend: &dyn Backend,
    data: &DataConfig,
    hidden: &[usize],
    clock: Clock,
    min_secs: f64,
) -> Rate {
    let widths = flops::widths(data.data_dim, hidden, data.num_atoms);
    train_rate(
        backend,
        data,
        encoder(backend, 1, 1, data, hidden, None),
        false,
        flops::encoder_train_step(&widths, data.num_samples, false, false, true),
        clock,
        min_secs,
    )
}

/// Steps of the paper's ITO routine on the whole test set, timed in runs of many steps so the
/// set-up is amortised as in a 10,000-step optimisation.
pub fn ito_step(backend: &dyn Backend, data: &DataConfig, clock: Clock, min_secs: f64) -> Rate {
    let ds = Dataset::generate(data, 0);
    // Enough steps per call that the set-up (allocating and filling the N x n arrays) stays a
    // few percent of the call, as in a real 10,000-step run; the peer times steps alone.
    let inner = if data.num_atoms * data.num_samples > 1_000_000 {
        20
    } else {
        200
    };
    let calls = time_calls(clock, min_secs, || {
        solvers::adam_exp(backend, &ds.dictionary, &ds.test_signals, 0.01, inner, 3e-3);
    });
    Rate {
        steps_per_sec: calls * inner as f64,
        flops_per_step: flops::adam_inference_step(data.data_dim, data.num_atoms, data.num_samples),
    }
}

/// Time `item` (one of [`ITEMS`]) at `data`'s size.
pub fn time_item(
    item: &str,
    backend: &dyn Backend,
    data: &DataConfig,
    clock: Clock,
    min_secs: f64,
) -> Option<Rate> {
    match item {
        "sae_train" => Some(sae_train(backend, data, clock, min_secs)),
        "ito_step" => Some(ito_step(backend, data, clock, min_secs)),
        "mlp256_train" => Some(encoder_train(backend, data, &[256], clock, min_secs)),
        "real_sae_train" => Some(sae_train(backend, &REAL_SAE, clock, min_secs)),
        _ => None,
    }
}
