//! Generator properties and the pinned checksum (the browser test checks the same value).
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::core::config::{DataConfig, Preset};
use sparse_playground::Dataset;

/// Checksum of the paper preset's data (N=16, M=8, K=3, n=1024, seed 20240926). The wasm32 test
/// (tests/web.rs) pins the same constant: equal values mean bit-identical data on both targets.
pub const PAPER_CHECKSUM: u64 = 0x892b_83e1_3c16_5a75;

#[test]
fn paper_preset_checksum_is_pinned() {
    let cfg = Preset::UnknownZD.config();
    let data = Dataset::generate(&cfg.data, cfg.seed);
    assert_eq!(
        data.checksum(),
        PAPER_CHECKSUM,
        "got {:016x}",
        data.checksum()
    );
}

#[test]
fn codes_are_k_sparse_nonnegative_and_signals_match() {
    let cfg = DataConfig {
        num_atoms: 20,
        data_dim: 10,
        sparsity_k: 4,
        num_samples: 300,
        ..Default::default()
    };
    let d = Dataset::generate(&cfg, 5);
    assert_eq!(d.dictionary.shape(), (10, 20));
    assert_eq!(d.train_codes.shape(), (20, 300));
    assert_eq!(d.test_signals.shape(), (10, 300));
    for j in 0..20 {
        let norm: f32 = d
            .dictionary
            .column(j)
            .iter()
            .map(|v| v * v)
            .sum::<f32>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    for codes in [&d.train_codes, &d.test_codes] {
        for col in codes.column_iter() {
            assert_eq!(col.iter().filter(|v| **v != 0.0).count(), 4);
            assert!(col.iter().all(|v| *v >= 0.0));
        }
    }
    let recon = &d.dictionary * &d.train_codes;
    let err = (recon - &d.train_signals).abs().max();
    assert!(err < 1e-5, "x = D s, error {err}");
}

#[test]
fn options_signed_noise_and_skew_behave() {
    let base = DataConfig {
        num_atoms: 10,
        data_dim: 6,
        sparsity_k: 2,
        num_samples: 4000,
        ..Default::default()
    };
    let signed = Dataset::generate(
        &DataConfig {
            signed_codes: true,
            ..base.clone()
        },
        1,
    );
    assert!(signed.train_codes.iter().any(|v| *v < 0.0));

    let noisy = Dataset::generate(
        &DataConfig {
            noise_std: 0.1,
            ..base.clone()
        },
        1,
    );
    let clean = Dataset::generate(&base, 1);
    let resid = &noisy.dictionary * &noisy.train_codes - &noisy.train_signals;
    let std =
        (resid.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / resid.len() as f64).sqrt();
    assert!((std - 0.1).abs() < 0.01, "noise std {std}");
    assert_eq!(
        noisy.dictionary, clean.dictionary,
        "noise leaves the dictionary alone"
    );

    let skewed = Dataset::generate(
        &DataConfig {
            frequency_skew: 1.5,
            ..base.clone()
        },
        1,
    );
    let freq = |i: usize| {
        skewed
            .train_codes
            .row(i)
            .iter()
            .filter(|v| **v != 0.0)
            .count()
    };
    assert!(
        freq(0) > 3 * freq(9),
        "atom 0 active {} times, atom 9 {}",
        freq(0),
        freq(9)
    );
    for col in skewed.train_codes.column_iter() {
        assert_eq!(col.iter().filter(|v| **v != 0.0).count(), 2);
    }
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let cfg = DataConfig::default();
    let a = Dataset::generate(&cfg, 42);
    let b = Dataset::generate(&cfg, 42);
    let c = Dataset::generate(&cfg, 43);
    assert_eq!(a.checksum(), b.checksum());
    assert_ne!(a.checksum(), c.checksum());
}
