//! Any bytes through the compact batch body decoder: no panic, the rendering stays within its
//! bound, and whatever decodes re-encodes to the same bytes (the format is canonical).
#![no_main]

use agent_core::batch::{decode, encode};
use libfuzzer_sys::fuzz_target;

/// What one input may render to: enough for the bodies the fuzzer builds, small enough that a
/// body promising more is refused before anything is allocated for it.
const MAX_OUTPUT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut ndjson = Vec::new();
    if let Ok(events) = decode(data, MAX_OUTPUT, &mut ndjson) {
        assert!(ndjson.len() <= MAX_OUTPUT);
        assert_eq!(ndjson.iter().filter(|&&b| b == b'\n').count(), events);
        let mut again = Vec::new();
        encode(&ndjson, &mut again).expect("a decoded body re-encodes");
        assert_eq!(again, data);
    }
});
