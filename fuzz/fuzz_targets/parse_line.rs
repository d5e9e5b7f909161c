//! Any bytes through the line parser and the ECS writer: no panic, and a recognised event always
//! renders to JSON without an empty string field.
#![no_main]

use agent_core::syslog::Context;
use agent_core::{Parsed, Timestamp, parse_line, parse_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = Context::new(Timestamp::from_secs(1_795_867_200));
    if let Parsed::Event(ev) = parse_line(data, &ctx) {
        let mut json = String::new();
        agent_core::ecs::write_event(&mut json, &ev, &Default::default())
            .expect("writing to a String cannot fail");
        assert!(!json.contains(":\"\""), "empty string field: {json}");
    }
    let _ = parse_message("sshd".into(), None, data);
});
