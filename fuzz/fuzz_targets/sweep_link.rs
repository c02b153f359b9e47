//! Sweep links: any text either fails with an error or gives a valid sweep whose link decodes
//! back to the same sweep (the page keeps finished cells under that link).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparse_playground::core::share::{decode_sweep, encode_sweep};

fuzz_target!(|data: &[u8]| {
    let Ok(link) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((sweep, _extra)) = decode_sweep(link) {
        let again = encode_sweep(&sweep, &[]);
        let (back, _) = decode_sweep(&again).expect("an encoded sweep link decodes");
        assert_eq!(back, sweep, "sweep link round trip: {again}");
        // What the page does with a sweep before showing it: count cells and their memory.
        let _ = sweep.unit_memory_bytes();
        let _ = sweep.method_labels();
    }
});
