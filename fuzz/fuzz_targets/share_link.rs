//! Share links: any text either fails with an error or gives a valid config whose link decodes
//! back to the same config (the round trip the page relies on).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparse_playground::core::share::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(link) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(state) = decode(link) {
        let config = state.config.into_inner();
        let again = encode(&config, &[]);
        let back = decode(&again).expect("an encoded link decodes");
        assert_eq!(back.config.into_inner(), config, "link round trip: {again}");
    }
});
