//! Any bytes as a bare message of one program (the first byte picks which), and as a headerless
//! line: the audit, FTP, Kerberos, su and dropbear parsers and the sshd fallback never panic, and
//! an event always renders to JSON without an empty string field.
#![no_main]

use agent_core::{Parsed, parse_headerless_sshd, parse_message};
use libfuzzer_sys::fuzz_target;

const PROGRAMS: &[&str] = &[
    "audit", "kernel", "vsftpd", "proftpd", "pure-ftpd", "ftpd", "klogind", "kshd", "su",
    "dropbear", "sshd", "audisp-syslog",
];

fn check(ev: &agent_core::LoginEvent<'_>) {
    let mut json = String::new();
    agent_core::ecs::write_event(&mut json, ev, &Default::default())
        .expect("writing to a String cannot fail");
    assert!(!json.contains(":\"\""), "empty string field: {json}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, msg)) = data.split_first() else {
        return;
    };
    let program = PROGRAMS[usize::from(pick) % PROGRAMS.len()];
    if let Parsed::Event(ev) = parse_message(program.into(), Some(1), msg) {
        check(&ev);
    }
    if let Some(ev) = parse_headerless_sshd(msg) {
        check(&ev);
    }
});
