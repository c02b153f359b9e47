//! Activation files (`.npy` or `.safetensors`) and token texts: any bytes either fail with an
//! error or give activations whose size matches their shape, with finite values, and token
//! texts that match them one to one with contexts that start in range and in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparse_playground::formats::activations;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a tensor name to ask for (none, or one that may or may not exist).
    let (pick, bytes) = data.split_first().unwrap_or((&0, data));
    let tensor = match pick % 3 {
        0 => None,
        1 => Some("acts"),
        _ => Some("x"),
    };
    if let Ok(a) = activations::parse(bytes, tensor) {
        assert_eq!(a.values.len(), a.tokens * a.dim);
        assert!(a.tokens >= activations::MIN_TOKENS && a.dim >= activations::MIN_DIM);
        assert!(a.values.iter().all(|v| v.is_finite()));
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        for rows in [1usize, 4, 64] {
            if let Ok(t) = activations::parse_tokens(text, rows) {
                assert_eq!(t.tokens.len(), rows);
                assert_eq!(t.context_starts.first(), Some(&0));
                assert!(t.context_starts.windows(2).all(|w| w[0] < w[1]));
                assert!(t.context_starts.iter().all(|&s| s < rows));
                let _ = t.preceding(rows - 1, 8);
            }
        }
    }
});
