//! Config files: any bytes either fail with an error or give a config that serialises and
//! parses back to itself; validation and the memory estimate never panic on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparse_playground::core::config::ExperimentConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = ExperimentConfig::from_json(text) {
        let back = ExperimentConfig::from_json(&config.to_json_pretty()).expect("round trip");
        assert_eq!(back, config);
        if let Ok(checked) = config.validate() {
            let _ = checked.memory_estimate(4).total_bytes();
        }
    }
});
