//! Results files (the page's "Load results"): any bytes either fail with an error or give
//! results whose JSON parses back to the same results.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparse_playground::core::results::Results;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(results) = Results::from_json(text) {
        let _ = results.config.validate();
        let json = results.to_json();
        let back = Results::from_json(&json).expect("written results read back");
        assert_eq!(back.to_json(), json);
    }
});
