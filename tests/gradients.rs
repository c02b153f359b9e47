//! Every hand-written gradient against central finite differences (in f32, so checks are made
//! along random directions and on single coordinates with a relative tolerance).
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::compute::CpuBackend;
use sparse_playground::core::models::{DecoderInit, EncoderModel, EncoderSpec, Objective};
use sparse_playground::core::rng::Rng;
use sparse_playground::core::sparse_coding::SparseCodingModel;
use sparse_playground::core::Matrix;
use sparse_playground::Dataset;

/// Small enough that random perturbations rarely cross a ReLU kink (at 2e-3 they do, and MLP
/// checks drift by a few percent), large enough to stay well above f32 rounding of the loss.
const EPS: f32 = 2e-4;

fn small_data(seed: u64) -> Dataset {
    let cfg = sparse_playground::core::config::DataConfig {
        num_atoms: 6,
        data_dim: 4,
        sparsity_k: 2,
        num_samples: 24,
        ..Default::default()
    };
    Dataset::generate(&cfg, seed)
}

/// Compare analytic gradients with finite differences of `loss` along `dirs` random directions
/// and on `coords` random single coordinates of every parameter tensor.
fn check<F, G>(mut loss_and_grad: F, mut perturb: G, sizes: &[usize], seed: u64)
where
    F: FnMut() -> (f64, Vec<Vec<f32>>),
    G: FnMut(usize, usize, f32),
{
    let mut rng = Rng::new(seed);
    let (_, grads) = loss_and_grad();
    for (p, &size) in sizes.iter().enumerate() {
        // Directional derivative along a random direction of this tensor.
        let dir: Vec<f32> = (0..size).map(|_| rng.normal() as f32).collect();
        let analytic: f64 = grads[p]
            .iter()
            .zip(&dir)
            .map(|(g, d)| f64::from(*g) * f64::from(*d))
            .sum();
        for (i, d) in dir.iter().enumerate() {
            perturb(p, i, EPS * d);
        }
        let plus = loss_and_grad().0;
        for (i, d) in dir.iter().enumerate() {
            perturb(p, i, -2.0 * EPS * d);
        }
        let minus = loss_and_grad().0;
        for (i, d) in dir.iter().enumerate() {
            perturb(p, i, EPS * d);
        }
        let numeric = (plus - minus) / (2.0 * f64::from(EPS));
        let scale = analytic.abs().max(numeric.abs()).max(1e-4);
        assert!(
            (analytic - numeric).abs() / scale < 2e-2,
            "tensor {p}: directional derivative analytic {analytic:e} vs numeric {numeric:e}"
        );
        // A few single coordinates with a clearly non-zero gradient.
        for _ in 0..3 {
            let i = rng.below(size as u32) as usize;
            let g = f64::from(grads[p][i]);
            perturb(p, i, EPS);
            let plus = loss_and_grad().0;
            perturb(p, i, -2.0 * EPS);
            let minus = loss_and_grad().0;
            perturb(p, i, EPS);
            let numeric = (plus - minus) / (2.0 * f64::from(EPS));
            let scale = g.abs().max(numeric.abs());
            if scale > 1e-3 {
                assert!(
                    (g - numeric).abs() / scale < 5e-2,
                    "tensor {p}[{i}]: analytic {g:e} vs numeric {numeric:e}"
                );
            }
        }
    }
}

fn check_encoder(spec: EncoderSpec, decoder: &str, seed: u64) {
    let data = small_data(seed);
    let backend = CpuBackend::new(1);
    let mut rng = Rng::new(seed + 100);
    let (init, objective) = match decoder {
        "learned" => (
            DecoderInit::Learned,
            Objective::Reconstruction { l1_penalty: 0.05 },
        ),
        "frozen" => (
            DecoderInit::Frozen(&data.dictionary),
            Objective::Reconstruction { l1_penalty: 0.05 },
        ),
        _ => (DecoderInit::None, Objective::Supervised),
    };
    let mut model = EncoderModel::new(&mut rng, &spec, 4, 6, init, objective, 1e-3);
    // Move away from the initialisation so that most units are active and gradients are generic.
    for _ in 0..20 {
        model.train_step(&backend, &data.train_signals, Some(&data.train_codes));
    }
    let sizes: Vec<usize> = model.params().iter().map(|p| p.len()).collect();
    let x = data.train_signals.clone();
    let s = data.train_codes.clone();
    let model = std::cell::RefCell::new(model);
    check(
        || {
            let mut m = model.borrow_mut();
            let loss = m.loss_and_grad(&backend, &x, Some(&s));
            (loss, m.grads().to_vec())
        },
        |p, i, delta| {
            model.borrow_mut().params_mut()[p][i] += delta;
        },
        &sizes,
        seed,
    );
}

#[test]
fn sae_gradients() {
    let spec = EncoderSpec {
        hidden: vec![],
        topk: None,
        bias: false,
    };
    check_encoder(spec, "learned", 1);
}

#[test]
fn sae_with_bias_gradients() {
    let spec = EncoderSpec {
        hidden: vec![],
        topk: None,
        bias: true,
    };
    check_encoder(spec, "learned", 2);
}

#[test]
fn sae_with_frozen_dictionary_gradients() {
    let spec = EncoderSpec {
        hidden: vec![],
        topk: None,
        bias: false,
    };
    check_encoder(spec, "frozen", 3);
}

#[test]
fn topk_sae_gradients() {
    let spec = EncoderSpec {
        hidden: vec![],
        topk: Some(2),
        bias: true,
    };
    check_encoder(spec, "learned", 4);
}

#[test]
fn mlp_gradients() {
    let spec = EncoderSpec {
        hidden: vec![7, 5],
        topk: None,
        bias: true,
    };
    check_encoder(spec, "learned", 5);
}

#[test]
fn supervised_cosine_gradients() {
    let spec = EncoderSpec {
        hidden: vec![8],
        topk: None,
        bias: true,
    };
    check_encoder(spec, "supervised", 6);
}

#[test]
fn sparse_coding_gradients() {
    let data = small_data(7);
    let backend = CpuBackend::new(1);
    let mut rng = Rng::new(7);
    let mut model = SparseCodingModel::new(&mut rng, 4, 6, 24, 0.05, 1e-2);
    // Start the codes away from exp(-10) so that the code gradients are not vanishingly small.
    for (i, v) in model.log_codes.as_mut_slice().iter_mut().enumerate() {
        *v = -1.0 + 0.1 * (i % 7) as f32;
    }
    let x = data.train_signals.clone();
    let sizes = vec![model.log_codes.len(), model.dictionary.len()];
    let model = std::cell::RefCell::new(model);
    check(
        || {
            let mut m = model.borrow_mut();
            let (loss, d_log, d_dict) = m.loss_and_grad_full(&backend, &x);
            (loss, vec![d_log.as_slice().to_vec(), d_dict])
        },
        |p, i, delta| {
            let mut m = model.borrow_mut();
            if p == 0 {
                m.log_codes.as_mut_slice()[i] += delta;
            } else {
                m.dictionary.as_mut_slice()[i] += delta;
            }
        },
        &sizes,
        7,
    );
}

#[test]
fn training_reduces_the_loss() {
    let data = small_data(8);
    let backend = CpuBackend::new(1);
    let mut rng = Rng::new(8);
    let spec = EncoderSpec {
        hidden: vec![16],
        topk: None,
        bias: false,
    };
    let mut model = EncoderModel::new(
        &mut rng,
        &spec,
        4,
        6,
        DecoderInit::Learned,
        Objective::Reconstruction { l1_penalty: 0.01 },
        1e-2,
    );
    let first = model.train_step(&backend, &data.train_signals, None);
    let mut last = first;
    for _ in 0..300 {
        last = model.train_step(&backend, &data.train_signals, None);
    }
    assert!(last < 0.5 * first, "loss went from {first} to {last}");
    let _ = Matrix::zeros(1, 1);
}
