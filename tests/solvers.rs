//! Per-sample solvers recover planted codes in the solvable regime (M well above K log(N/K)).
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::compute::CpuBackend;
use sparse_playground::core::config::DataConfig;
use sparse_playground::core::metrics::code_mcc;
use sparse_playground::core::solvers::{adam_exp, fista, lipschitz_bound, omp};
use sparse_playground::Dataset;

fn solvable(seed: u64, signed: bool) -> Dataset {
    let cfg = DataConfig {
        num_atoms: 32,
        data_dim: 24,
        sparsity_k: 3,
        num_samples: 200,
        signed_codes: signed,
        ..Default::default()
    };
    Dataset::generate(&cfg, seed)
}

fn max_abs_error(a: &sparse_playground::core::Matrix, b: &sparse_playground::core::Matrix) -> f32 {
    a.as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn omp_recovers_planted_codes() {
    for signed in [false, true] {
        let d = solvable(11, signed);
        let out = omp(&d.dictionary, &d.test_signals, 3);
        // Greedy selection can pick a wrong atom on a coherent draw; nearly every sample must be
        // recovered to float precision, and the codes as a whole almost perfectly.
        let exact = (0..d.test_codes.ncols())
            .filter(|&c| {
                let diff = d.test_codes.column(c) - out.codes.column(c);
                diff.abs().max() < 1e-3
            })
            .count();
        assert!(
            exact * 100 >= 97 * d.test_codes.ncols(),
            "signed={signed}: {exact}/200 exact"
        );
        assert!(code_mcc(&d.test_codes, &out.codes).unwrap().mcc > 0.98);
        assert!(out.flops > 0.0);
    }
}

#[test]
fn fista_recovers_support_and_scores_high_mcc() {
    let b = CpuBackend::new(1);
    for signed in [false, true] {
        let d = solvable(12, signed);
        // A small penalty: the L1 solution is then close to the planted codes.
        let out = fista(&b, &d.dictionary, &d.test_signals, 1e-3, 2000, !signed);
        let m = code_mcc(&d.test_codes, &out.codes).unwrap().mcc;
        assert!(m > 0.98, "signed={signed}: MCC {m}");
        let err = max_abs_error(&out.codes, &d.test_codes);
        assert!(err < 0.1, "signed={signed}: max error {err}");
        if !signed {
            assert!(out.codes.as_slice().iter().all(|v| *v >= 0.0));
        }
    }
}

#[test]
fn paper_adam_inference_recovers_codes() {
    let b = CpuBackend::new(1);
    let d = solvable(13, false);
    let out = adam_exp(&b, &d.dictionary, &d.test_signals, 1e-3, 3000, 3e-2);
    let m = code_mcc(&d.test_codes, &out.codes).unwrap().mcc;
    assert!(m > 0.95, "MCC {m}");
    assert!(
        out.codes.as_slice().iter().all(|v| *v > 0.0),
        "exp codes are positive"
    );
}

#[test]
fn lipschitz_bound_is_an_upper_bound_close_to_the_top_eigenvalue() {
    let d = solvable(14, false);
    let gram = d.dictionary.transpose() * &d.dictionary;
    let eig = nalgebra::SymmetricEigen::new(gram.map(f64::from))
        .eigenvalues
        .max();
    let bound = lipschitz_bound(&d.dictionary);
    assert!(
        bound >= eig && bound < eig * 1.05,
        "bound {bound} vs eigenvalue {eig}"
    );
}
