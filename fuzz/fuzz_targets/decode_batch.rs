//! Any bytes through the compact batch body decoder: no panic, the rendering stays within its
//! bound, and whatever decodes re-encodes to the same bytes (the format is canonical). The
//! readers the collector uses agree with `decode` on what it accepts: `decode_with` shows each
//! document once and as rendered, `decode_each` shows the same documents one at a time within
//! its buffer (or says one is longer), `event_count` says how many, and `render_accepted`
//! (which skips the canonical check) renders the same bytes; on any other input none of them
//! panics.
#![no_main]

use agent_core::batch::{
    DecodeError, decode, decode_each, decode_with, encode, event_count, render_accepted,
};
use libfuzzer_sys::fuzz_target;

/// What one input may render to: enough for the bodies the fuzzer builds, small enough that a
/// body promising more is refused before anything is allocated for it.
const MAX_OUTPUT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut ndjson = Vec::new();
    let decoded = decode(data, MAX_OUTPUT, &mut ndjson);

    let mut visited = Vec::new();
    let mut shown = 0usize;
    let with = decode_with(data, MAX_OUTPUT, &mut visited, &mut |doc| {
        shown += 1;
        assert!(doc.holes.iter().all(|&(a, b)| a <= b && b as usize <= doc.line.len()));
    });
    assert_eq!(with.is_ok(), decoded.is_ok(), "decode_with and decode disagree");

    // One document at a time, in a buffer of a fixed size it never grows past.
    let mut line = Vec::with_capacity(4096);
    let capacity = line.capacity();
    let mut each_docs = Vec::new();
    let each = decode_each(data, MAX_OUTPUT, &mut line, &mut |doc| {
        each_docs.extend_from_slice(doc.line);
        each_docs.push(b'\n');
    });
    assert_eq!(line.capacity(), capacity, "decode_each grew its buffer");
    if each != Err(DecodeError::DocumentTooLong) {
        assert_eq!(
            each.is_ok(),
            decoded.is_ok(),
            "decode_each and decode disagree"
        );
    }

    let mut rendered = Vec::new();
    let accepted = render_accepted(data, MAX_OUTPUT, &mut rendered);
    let _ = event_count(data);

    if let Ok(events) = decoded {
        assert!(ndjson.len() <= MAX_OUTPUT);
        assert_eq!(ndjson.iter().filter(|&&b| b == b'\n').count(), events);
        assert_eq!(with.ok(), Some(events));
        assert_eq!(visited, ndjson);
        if each.is_ok() {
            assert_eq!(each_docs, ndjson);
        } else {
            assert!(ndjson.split(|&b| b == b'\n').any(|l| l.len() >= capacity));
        }
        assert_eq!(shown, events);
        assert_eq!(event_count(data).ok(), Some(events));
        assert_eq!(accepted.ok(), Some(events));
        assert_eq!(rendered, ndjson);
        let mut again = Vec::new();
        encode(&ndjson, &mut again).expect("a decoded body re-encodes");
        assert_eq!(again, data);
    }
});
