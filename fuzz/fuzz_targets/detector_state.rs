//! Any bytes as a saved detector memory: no panic, the detector keeps working, and what it saves
//! after a restore restores to the same memory. Tried on small tables (quick to mutate into
//! shape) and, when the bytes have the default tables' shape, on those (seed:
//! `agent-core/testdata/detector-memory-v2.bin`, which also takes the older format's way in).
#![no_main]

use agent_core::detect::{Detector, StateError};
use agent_core::syslog::Context;
use agent_core::{Parsed, Timestamp, parse_line};
use libfuzzer_sys::fuzz_target;

fn saved<const S: usize, const U: usize, const P: usize>(d: &Detector<S, U, P>) -> Vec<u8> {
    let mut v = Vec::new();
    d.save_state(|b| v.extend_from_slice(b));
    v
}

/// Restores `data` into a fresh detector of this shape, checks the round trip, feeds a line.
fn check<const S: usize, const U: usize, const P: usize>(data: &[u8]) -> Result<(), StateError> {
    let mut d = Box::new(Detector::<S, U, P>::new(Default::default()));
    let restored = d.restore_state(data);
    if restored.is_ok() {
        let once = saved(&d);
        let mut again = Box::new(Detector::<S, U, P>::new(Default::default()));
        again.restore_state(&once).expect("a saved memory restores");
        assert_eq!(saved(&again), once);
    }
    let ctx = Context::new(Timestamp::from_secs(1_795_867_200));
    let line =
        b"Nov 28 07:00:00 web1 sshd[1]: Failed password for u1 from 198.51.100.2 port 1 ssh2";
    if let Parsed::Event(ev) = parse_line(line, &ctx) {
        d.observe(&ev);
    }
    restored
}

fuzz_target!(|data: &[u8]| {
    if check::<16, 8, 16>(data) == Err(StateError::Shape) {
        let _ = check::<1024, 256, 1024>(data);
    }
});
