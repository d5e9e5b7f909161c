//! Any bytes as a saved detector memory: no panic, the detector keeps working, and what it saves
//! after a restore restores to the same memory.
#![no_main]

use agent_core::detect::Detector;
use agent_core::syslog::Context;
use agent_core::{Parsed, Timestamp, parse_line};
use libfuzzer_sys::fuzz_target;

type Small = Detector<16, 8, 16>;

fn saved(d: &Small) -> Vec<u8> {
    let mut v = Vec::new();
    d.save_state(|b| v.extend_from_slice(b));
    v
}

fuzz_target!(|data: &[u8]| {
    let mut d = Small::new(Default::default());
    if d.restore_state(data).is_ok() {
        let once = saved(&d);
        let mut again = Small::new(Default::default());
        again.restore_state(&once).expect("a saved memory restores");
        assert_eq!(saved(&again), once);
    }
    let ctx = Context::new(Timestamp::from_secs(1_795_867_200));
    let line = b"Nov 28 07:00:00 web1 sshd[1]: Failed password for u1 from 198.51.100.2 port 1 ssh2";
    if let Parsed::Event(ev) = parse_line(line, &ctx) {
        d.observe(&ev);
    }
});
