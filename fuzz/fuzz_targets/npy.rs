//! `.npy` arrays: any bytes either fail with an error or give an array whose size matches its
//! shape and whose values are finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparse_playground::formats::npy;

fuzz_target!(|data: &[u8]| {
    if let Ok(array) = npy::parse(data) {
        assert_eq!(array.values.len(), array.rows * array.cols);
        assert!(array.values.iter().all(|v| v.is_finite()));
        let _ = array.into_columns();
    }
});
