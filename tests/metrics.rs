//! MCC properties: invariances, a brute-force optimum on small sizes, rectangular cases.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use sparse_playground::core::metrics::{
    abs_correlations, code_mcc, dict_mcc, match_correlations, reconstruction, sparsity,
};
use sparse_playground::core::rng::Rng;
use sparse_playground::core::Matrix;

fn random(rows: usize, cols: usize, seed: u64) -> Matrix {
    let mut rng = Rng::new(seed);
    Matrix::from_fn(rows, cols, |_, _| rng.normal() as f32)
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for pos in 0..=p.len() {
            let mut q = p.clone();
            q.insert(pos, n - 1);
            out.push(q);
        }
    }
    out
}

#[test]
fn identical_codes_score_one() {
    let s = random(8, 200, 1);
    let m = code_mcc(&s, &s).unwrap();
    assert!((m.mcc - 1.0).abs() < 1e-5, "{}", m.mcc);
    for (i, j, c) in m.pairs {
        assert_eq!(Some(i), j);
        assert!(c > 0.9999);
    }
}

#[test]
fn invariant_to_permutation_scale_sign_and_offset() {
    let s = random(6, 300, 2);
    let perm = [3usize, 0, 5, 1, 4, 2];
    let mut t = Matrix::zeros(6, 300);
    for (new, &old) in perm.iter().enumerate() {
        let scale = if new % 2 == 0 { 2.5 } else { -0.3 };
        for c in 0..300 {
            t[(new, c)] = scale * s[(old, c)] + 7.0;
        }
    }
    let m = code_mcc(&s, &t).unwrap();
    assert!((m.mcc - 1.0).abs() < 1e-4, "{}", m.mcc);
    for (i, j, _) in &m.pairs {
        assert_eq!(perm[j.unwrap()], *i);
    }
}

#[test]
fn matches_brute_force_on_small_sizes() {
    for seed in 0..20 {
        let n = 2 + (seed as usize % 5);
        let a = random(n, 40, seed);
        let p = random(n, 40, seed + 1000);
        let corr = abs_correlations(&a, &p).unwrap();
        let best = permutations(n)
            .into_iter()
            .map(|perm| (0..n).map(|i| f64::from(corr[(i, perm[i])])).sum::<f64>() / n as f64)
            .fold(0.0, f64::max);
        let got = match_correlations(&corr).unwrap().mcc;
        assert!(
            (got - best).abs() < 1e-6,
            "seed {seed}: {got} vs brute force {best}"
        );
    }
}

#[test]
fn dead_latents_count_zero_and_fewer_latents_leave_truth_unmatched() {
    let s = random(4, 100, 3);
    // Inferred: copies of latents 0 and 1, plus a dead (constant) latent.
    let mut p = Matrix::zeros(3, 100);
    for c in 0..100 {
        p[(0, c)] = s[(0, c)];
        p[(1, c)] = s[(1, c)];
        p[(2, c)] = 0.0;
    }
    let m = code_mcc(&s, &p).unwrap();
    // Two perfect matches out of four true latents; the dead latent adds 0; one truth unmatched.
    assert!((m.mcc - 0.5).abs() < 0.05, "{}", m.mcc);
    assert_eq!(m.pairs.iter().filter(|p| p.1.is_none()).count(), 1);
}

#[test]
fn extra_latents_are_ignored() {
    let s = random(3, 100, 4);
    let noise = random(5, 100, 5);
    let mut p = Matrix::zeros(8, 100);
    for c in 0..100 {
        for r in 0..3 {
            p[(r + 5, c)] = s[(r, c)];
        }
        for r in 0..5 {
            p[(r, c)] = noise[(r, c)];
        }
    }
    assert!((code_mcc(&s, &p).unwrap().mcc - 1.0).abs() < 1e-5);
}

#[test]
fn dictionary_mcc_uses_atoms_as_columns() {
    let d = random(8, 16, 6);
    let mut shuffled = Matrix::zeros(8, 16);
    for j in 0..16 {
        let src = (j * 5) % 16;
        for r in 0..8 {
            shuffled[(r, j)] = -d[(r, src)];
        }
    }
    assert!((dict_mcc(&d, &shuffled).unwrap().mcc - 1.0).abs() < 1e-5);
    let other = random(8, 16, 7);
    assert!(dict_mcc(&d, &other).unwrap().mcc < 0.9);
}

#[test]
fn reconstruction_and_sparsity() {
    let x = random(3, 50, 8);
    let r = reconstruction(&x, &x).unwrap();
    assert_eq!(r.mse, 0.0);
    assert_eq!(r.nmse, 0.0);
    let zeros = Matrix::zeros(3, 50);
    let r = reconstruction(&zeros, &x).unwrap();
    assert!(
        r.nmse >= 1.0,
        "predicting 0 explains no variance: {}",
        r.nmse
    );
    let mut codes = Matrix::zeros(4, 2);
    codes[(0, 0)] = 1.0;
    codes[(1, 0)] = 1e-5;
    codes[(1, 1)] = -2.0;
    let s = sparsity(&codes, 1e-3).unwrap();
    assert_eq!(s.l0, 1.0);
    assert_eq!(s.dead_latents, 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn mcc_is_between_zero_and_one_and_symmetric_for_square(seed in 0u64..10_000, n in 1usize..7, m in 1usize..7) {
        let a = random(n, 30, seed);
        let p = random(m, 30, seed + 1);
        let ab = code_mcc(&a, &p).unwrap().mcc;
        prop_assert!((0.0..=1.0 + 1e-9).contains(&ab));
        if n == m {
            let ba = code_mcc(&p, &a).unwrap().mcc;
            prop_assert!((ab - ba).abs() < 1e-5);
        }
    }
}

/// Non-finite or empty input is an error, never a score: a diverged model (NaN codes) must not
/// read as a perfect correlation, and a zero-width array must not panic.
#[test]
fn non_finite_and_empty_inputs_are_errors() {
    use sparse_playground::core::metrics::{index_matched_correlation, MetricError};
    let s = random(4, 50, 9);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut p = s.clone();
        p[(2, 7)] = bad;
        assert!(matches!(
            code_mcc(&s, &p),
            Err(MetricError::NonFinite { .. })
        ));
        assert!(code_mcc(&p, &s).is_err());
        assert!(abs_correlations(&s, &p).is_err());
        assert!(index_matched_correlation(&s, &p).is_err());
        assert!(sparsity(&p, 1e-3).is_err());
        assert!(reconstruction(&p, &s).is_err());
        let mut d = random(4, 6, 3);
        d[(1, 1)] = bad;
        assert!(dict_mcc(&random(4, 6, 4), &d).is_err());
        let mut corr = Matrix::from_element(3, 3, 0.5);
        corr[(0, 0)] = bad;
        assert!(match_correlations(&corr).is_err());
    }
    // An all-NaN model: the old clamp `abs().min(1.0)` scored this 1.0.
    let nan = Matrix::from_element(4, 50, f32::NAN);
    assert!(code_mcc(&s, &nan).is_err());
    for (rows, cols) in [(0, 50), (4, 0), (0, 0)] {
        let empty = Matrix::zeros(rows, cols);
        assert!(matches!(
            sparsity(&empty, 1e-3),
            Err(MetricError::Empty { .. })
        ));
        assert!(code_mcc(&s, &empty).is_err());
        assert!(code_mcc(&empty, &s).is_err());
    }
    // Different sample counts are an error, not a panic.
    assert!(matches!(
        code_mcc(&s, &random(4, 49, 1)),
        Err(MetricError::SampleMismatch { .. })
    ));
    assert!(dict_mcc(&random(4, 6, 1), &random(5, 6, 2)).is_err());
}
