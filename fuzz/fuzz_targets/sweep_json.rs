//! Sweep configs (`sweep --config`) and sweep results files (the page's "Load sweep results",
//! `merge`): any bytes either fail with an error or give a sweep, or results, whose JSON reads
//! back the same; results merge with themselves into the same file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparse_playground::core::sweep::{SweepConfig, SweepResults};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sweep) = SweepConfig::from_json(text) {
        let back = SweepConfig::from_json(&sweep.to_json_pretty()).expect("a written sweep reads back");
        assert_eq!(back, sweep);
    }
    if let Ok(results) = SweepResults::from_json(text) {
        let json = results.to_json();
        let back = SweepResults::from_json(&json).expect("written sweep results read back");
        assert_eq!(back.to_json(), json);
        let merged = SweepResults::merge(vec![results.clone(), results]).expect("a file merges with itself");
        assert_eq!(merged.units.len(), back.units.len());
    }
});
