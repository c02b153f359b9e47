//! The engine compiled to wasm32: bit-identical data (the same checksum as natively) and a run
//! that advances through the step API. Runs under `wasm-pack test --node`.
#![cfg(target_arch = "wasm32")]

use sparse_playground::core::config::{MethodConfig, Preset, SolverConfig};
use sparse_playground::{CpuBackend, Dataset, Experiment};
use std::sync::Arc;
use wasm_bindgen_test::wasm_bindgen_test;

/// Must equal `PAPER_CHECKSUM` in tests/data.rs (the native side).
const PAPER_CHECKSUM: u64 = 0x892b_83e1_3c16_5a75;

#[wasm_bindgen_test]
fn paper_data_is_bit_identical_to_native() {
    let cfg = Preset::UnknownZD.config();
    let data = Dataset::generate(&cfg.data, cfg.seed);
    assert_eq!(
        data.checksum(),
        PAPER_CHECKSUM,
        "got {:016x}",
        data.checksum()
    );
}

#[wasm_bindgen_test]
fn a_run_advances_and_reports_metrics() {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Fista {
                steps: 50,
                nonneg: true,
            },
        },
    ];
    cfg.train.steps = 40;
    cfg.train.log_every = 20;
    cfg.runs = 1;
    let mut exp = Experiment::new(cfg.validate().unwrap(), Arc::new(CpuBackend::new(1)));
    let progress = exp.step(20);
    assert!(progress.iter().all(|p| p.step == 20 && p.new_records == 2));
    exp.step(20);
    assert!(exp.is_done());
    for m in exp.results().methods {
        let last = m.runs[0].log.last().unwrap();
        assert_eq!(last.step, 40);
        assert!(last.code_mcc > 0.0 && last.code_mcc <= 1.0);
    }
}
