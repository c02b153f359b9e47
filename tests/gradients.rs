//! Every hand-written gradient against central finite differences (in f32, so checks are made
//! along random directions and on single coordinates with a relative tolerance).
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::compute::{loss_value, read_now, Backend, CpuBackend, Shape, Tensor};
use sparse_playground::core::models::{
    DecoderInit, EncoderModel, EncoderSpec, Objective, JUMP_THRESHOLD_SCALE,
};
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

/// A tensor's values on the host (the CPU backend reads at once).
fn host(b: &dyn Backend, t: &Tensor) -> Vec<f32> {
    read_now(b, t).unwrap()
}

/// Add `delta` to element `i` of `t`.
fn nudge(b: &dyn Backend, t: &mut Tensor, i: usize, delta: f32) {
    let mut v = host(b, t);
    v[i] += delta;
    b.write(t, &v);
}

fn up(b: &dyn Backend, m: &Matrix) -> Tensor {
    b.upload(Shape::new(1, m.nrows(), m.ncols()), m.as_slice())
}

fn check_encoder(spec: EncoderSpec, decoder: &str, seed: u64) {
    let data = small_data(seed);
    let backend = CpuBackend::new(1);
    let b: &dyn Backend = &backend;
    let true_dict = up(b, &data.dictionary);
    let (init, objective) = match decoder {
        "learned" => (
            DecoderInit::Learned,
            Objective::Reconstruction {
                l1_penalty: vec![0.05],
            },
        ),
        "frozen" => (
            DecoderInit::Frozen(&true_dict),
            Objective::Reconstruction {
                l1_penalty: vec![0.05],
            },
        ),
        _ => (DecoderInit::None, Objective::Supervised),
    };
    let mut model = EncoderModel::new(
        b,
        &mut [Rng::new(seed + 100)],
        &spec,
        4,
        6,
        init,
        objective,
        &[1e-3],
    );
    let x = up(b, &data.train_signals);
    let s = up(b, &data.train_codes);
    // Move away from the initialisation so that most units are active and gradients are generic.
    for _ in 0..20 {
        model.train_step(b, &x, Some(&s), false);
    }
    let sizes: Vec<usize> = model.params().iter().map(|p| p.shape().len()).collect();
    let model = std::cell::RefCell::new(model);
    check(
        || {
            let mut m = model.borrow_mut();
            m.loss_and_grad(b, &x, Some(&s), true);
            let loss = loss_value(&host(b, m.loss()), 0);
            (loss, m.grads().iter().map(|g| host(b, g)).collect())
        },
        |p, i, delta| {
            let mut m = model.borrow_mut();
            nudge(b, m.params_mut()[p], i, delta);
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
    let b: &dyn Backend = &backend;
    let mut model = SparseCodingModel::new(b, &mut [Rng::new(7)], 4, 6, 24, &[0.05], &[1e-2]);
    // Start the codes away from exp(-10) so that the code gradients are not vanishingly small.
    let start: Vec<f32> = (0..6 * 24).map(|i| -1.0 + 0.1 * (i % 7) as f32).collect();
    b.write(&mut model.log_codes, &start);
    let x = up(b, &data.train_signals);
    let sizes = vec![
        model.log_codes.shape().len(),
        model.dictionary.shape().len(),
    ];
    let model = std::cell::RefCell::new(model);
    check(
        || {
            let mut m = model.borrow_mut();
            let (d_log, d_dict) = m.loss_and_grad_full(b, &x);
            let loss = loss_value(&host(b, m.loss()), 0);
            (loss, vec![host(b, &d_log), host(b, &d_dict)])
        },
        |p, i, delta| {
            let mut m = model.borrow_mut();
            if p == 0 {
                nudge(b, &mut m.log_codes, i, delta);
            } else {
                nudge(b, &mut m.dictionary, i, delta);
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
    let b: &dyn Backend = &backend;
    let spec = EncoderSpec {
        hidden: vec![16],
        topk: None,
        bias: false,
    };
    let mut model = EncoderModel::new(
        b,
        &mut [Rng::new(8)],
        &spec,
        4,
        6,
        DecoderInit::Learned,
        Objective::Reconstruction {
            l1_penalty: vec![0.01],
        },
        &[1e-2],
    );
    let x = up(b, &data.train_signals);
    model.train_step(b, &x, None, true);
    let first = loss_value(&host(b, model.loss()), 0);
    for _ in 0..300 {
        model.train_step(b, &x, None, true);
    }
    let last = loss_value(&host(b, model.loss()), 0);
    assert!(last < 0.5 * first, "loss went from {first} to {last}");
}

/// LISTA's gradients through its unrolled iterations (W, S, b and the dictionary), after a few
/// steps so that S is no longer zero.
#[test]
fn lista_gradients() {
    use sparse_playground::core::lista::ListaModel;
    for (iterations, seed) in [(0, 31), (1, 32), (3, 33)] {
        let data = small_data(seed);
        let backend = CpuBackend::new(1);
        let b: &dyn Backend = &backend;
        let mut model =
            ListaModel::new(b, &mut [Rng::new(seed)], 4, 6, iterations, &[0.05], &[1e-2]);
        let x = up(b, &data.train_signals);
        for _ in 0..20 {
            model.train_step(b, &x, false);
        }
        let sizes: Vec<usize> = model.params().iter().map(|p| p.shape().len()).collect();
        let model = std::cell::RefCell::new(model);
        check(
            || {
                let mut m = model.borrow_mut();
                m.loss_and_grad(b, &x, true);
                let loss = loss_value(&host(b, m.loss()), 0);
                (loss, m.grads().iter().map(|g| host(b, g)).collect())
            },
            |p, i, delta| {
                let mut m = model.borrow_mut();
                nudge(b, m.params_mut()[p], i, delta);
            },
            &sizes,
            seed,
        );
    }
}

/// A JumpReLU SAE (4 x 6, bias) after 20 steps on `x`.
fn jump_relu_model(b: &dyn Backend, x: &Tensor, lambda: f32, bandwidth: f32) -> EncoderModel {
    let spec = EncoderSpec {
        hidden: vec![],
        topk: None,
        bias: true,
    };
    let mut model = EncoderModel::new(
        b,
        &mut [Rng::new(41)],
        &spec,
        4,
        6,
        DecoderInit::Learned,
        Objective::Reconstruction {
            l1_penalty: vec![lambda],
        },
        &[1e-2],
    )
    .with_jump_relu(b, bandwidth, bandwidth);
    for _ in 0..20 {
        model.train_step(b, x, None, false);
    }
    model
}

/// JumpReLU: the encoder, bias and dictionary gradients against finite differences of the
/// reconstruction (its L0 penalty is flat in them away from the thresholds, which sit in the
/// widest gap between each latent's pre-activations so that no step crosses one).
#[test]
fn jump_relu_gradients() {
    let data = small_data(41);
    let backend = CpuBackend::new(1);
    let b: &dyn Backend = &backend;
    let x = up(b, &data.train_signals);
    let mut model = jump_relu_model(b, &x, 0.5, 0.1);
    let (theta_at, _) = model.jump_threshold().expect("a JumpReLU model");
    assert_eq!(theta_at, 2, "W, b, then the thresholds");
    // z = W x + b on the host (W is 6 x 4 column-major, x 4 x 24).
    let (w, bias) = (host(b, model.params()[0]), host(b, model.params()[1]));
    let xs = data.train_signals.clone();
    let theta: Vec<f32> = (0..6)
        .map(|i| {
            let mut z: Vec<f32> = (0..xs.ncols())
                .map(|c| bias[i] + (0..4).map(|r| w[r * 6 + i] * xs[(r, c)]).sum::<f32>())
                .filter(|v| *v > 0.0)
                .collect();
            // Between 0 and a value past the largest, so a latent may also end inactive.
            let top = z.iter().copied().fold(0.0, f32::max);
            z.extend([0.0, top + 0.5]);
            z.sort_by(f32::total_cmp);
            let (lo, hi) = z
                .windows(2)
                .map(|p| (p[0], p[1]))
                .max_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)))
                .expect("two values at least");
            assert!(
                hi - lo > 0.02,
                "latent {i}: no room for a threshold in {z:?}"
            );
            0.5 * (lo + hi) / JUMP_THRESHOLD_SCALE
        })
        .collect();
    b.write(model.params_mut()[theta_at], &theta);
    let sizes: Vec<usize> = model.params().iter().map(|p| p.shape().len()).collect();
    let smooth: Vec<usize> = (0..sizes.len()).filter(|&p| p != theta_at).collect();
    let model = std::cell::RefCell::new(model);
    check(
        || {
            let mut m = model.borrow_mut();
            m.loss_and_grad(b, &x, None, true);
            let loss = loss_value(&host(b, m.loss()), 0);
            let grads = m.grads();
            (loss, smooth.iter().map(|&p| host(b, &grads[p])).collect())
        },
        |p, i, delta| {
            let mut m = model.borrow_mut();
            nudge(b, m.params_mut()[smooth[p]], i, delta);
        },
        &smooth.iter().map(|&p| sizes[p]).collect::<Vec<_>>(),
        41,
    );
}

/// JumpReLU's thresholds: their straight-through gradient against what it stands for, the
/// central difference of the true loss (reconstruction + lambda' x L0, lambda' = lambda / (b N))
/// over a step of half the kernel's width, which crosses the pre-activations the kernel counts.
#[test]
fn jump_relu_threshold_gradient_is_the_true_loss_over_the_kernel() {
    let cfg = sparse_playground::core::config::DataConfig {
        num_atoms: 6,
        data_dim: 4,
        sparsity_k: 2,
        num_samples: 600,
        ..Default::default()
    };
    let data = Dataset::generate(&cfg, 41);
    let backend = CpuBackend::new(1);
    let b: &dyn Backend = &backend;
    let (lambda, bandwidth) = (0.5_f32, 0.1_f32);
    let x = up(b, &data.train_signals);
    let mut m = jump_relu_model(b, &x, lambda, bandwidth);
    let (theta_at, _) = m.jump_threshold().expect("a JumpReLU model");
    let theta: Vec<f32> = (0..6)
        .map(|i| (0.15 + 0.05 * i as f32) / JUMP_THRESHOLD_SCALE)
        .collect();
    b.write(m.params_mut()[theta_at], &theta);
    let batch = data.train_signals.ncols();
    let true_loss = |m: &mut EncoderModel| -> f64 {
        m.loss_and_grad(b, &x, None, true);
        let active = host(b, &m.encode(b, &x))
            .iter()
            .filter(|v| **v != 0.0)
            .count();
        loss_value(&host(b, m.loss()), 0) + f64::from(lambda) * active as f64 / (batch * 6) as f64
    };
    m.loss_and_grad(b, &x, None, false);
    let ste = host(b, &m.grads()[theta_at]);
    // Half the kernel's width in theta, in the stored units.
    let h = 0.5 * bandwidth / JUMP_THRESHOLD_SCALE;
    let mut numeric = Vec::new();
    for i in 0..6 {
        nudge(b, m.params_mut()[theta_at], i, h);
        let plus = true_loss(&mut m);
        nudge(b, m.params_mut()[theta_at], i, -2.0 * h);
        let minus = true_loss(&mut m);
        nudge(b, m.params_mut()[theta_at], i, h);
        numeric.push((plus - minus) / f64::from(2.0 * h));
    }
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let diff: Vec<f64> = ste
        .iter()
        .zip(&numeric)
        .map(|(s, n)| f64::from(*s) - n)
        .collect();
    assert!(
        norm(&numeric) > 1e-3,
        "the step crosses pre-activations: {numeric:?}"
    );
    assert!(
        norm(&diff) < 0.1 * norm(&numeric),
        "straight-through {ste:?} against central differences {numeric:?}"
    );
    // At this lambda most thresholds are pushed up: the L0 penalty outweighs what their
    // latents add to the reconstruction.
    assert!(ste.iter().filter(|g| **g < 0.0).count() >= 4, "{ste:?}");
}
