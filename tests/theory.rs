//! The Donoho-Tanner weak thresholds against the published check values (the Magni package's
//! tests) and their shape.
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::core::theory::{curves, point, rho_at, Signs};

#[test]
#[allow(clippy::approx_constant)] // 0.318 is a published rho value, not 1/pi
fn published_check_values() {
    for (delta, signed, nonneg) in [(0.19, 0.238, 0.318), (0.5, 0.386, 0.558)] {
        let s = rho_at(delta, Signs::Signed);
        let n = rho_at(delta, Signs::NonNegative);
        assert!(
            (s - signed).abs() < 1.5e-3,
            "signed at {delta}: {s} vs {signed}"
        );
        assert!(
            (n - nonneg).abs() < 1.5e-3,
            "non-negative at {delta}: {n} vs {nonneg}"
        );
    }
}

#[test]
fn curves_rise_from_0_to_1_and_the_simplex_lies_above() {
    let rows = curves(100);
    assert_eq!(rows.len(), 100);
    let mut last = (0.0, 0.0);
    for &(delta, s, n) in &rows {
        assert!(
            (0.0..=1.0).contains(&s) && (0.0..=1.0).contains(&n),
            "{delta}: {s} {n}"
        );
        assert!(
            s >= last.0 - 1e-12 && n >= last.1 - 1e-12,
            "monotone at {delta}"
        );
        if delta < 1.0 {
            assert!(
                n > s,
                "non-negative codes are easier at {delta}: {n} vs {s}"
            );
        }
        last = (s, n);
    }
    assert_eq!(rho_at(1.0, Signs::Signed), 1.0);
    assert_eq!(rho_at(0.0, Signs::NonNegative), 0.0);
    // The parametric form traces the same curve the inversion reads.
    for z in [0.1, 0.5, 1.0, 2.0, 3.0] {
        for signs in [Signs::Signed, Signs::NonNegative] {
            let (delta, rho) = point(z, signs);
            assert!((rho_at(delta, signs) - rho).abs() < 1e-9);
        }
    }
}
