//! Any bytes through the compact event decoder: no panic, and whatever decodes re-encodes to the
//! same bytes (the format is canonical).
#![no_main]

use agent_core::encode::{decode, encode_to_vec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((event, extra)) = decode(data) {
        let again = encode_to_vec(&event, &extra).expect("a decoded event re-encodes");
        assert_eq!(again, data);
    }
});
