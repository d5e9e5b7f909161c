//! Property tests: no input makes the parser panic, nor a damaged detector memory the detector,
//! and a hostile user name never moves the source address.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot read its input should fail loudly"
)]

use agent_core::syslog::Context;
use agent_core::{Parsed, Source, Timestamp, parse_line, parse_message};
use proptest::prelude::*;

fn ctx() -> Context {
    Context::new(Timestamp::from_secs(1_795_867_200))
}

/// Real line prefixes, so random tails reach deep into the family parsers.
const PREFIXES: &[&str] = &[
    "Nov 28 06:49:30 web1 sshd[1]: ",
    "2026-11-28T06:55:33.434531+00:00 web1 sshd-session[2]: ",
    "Nov 28 06:49:30 web1 sshd[1]: Failed password for ",
    "Nov 28 06:49:30 web1 sshd[1]: Accepted publickey for ",
    "Nov 28 06:49:30 web1 sshd[1]: Invalid user ",
    "Nov 28 06:49:30 web1 sshd[1]: Connection closed by ",
    "Nov 28 06:49:30 web1 sshd[1]: Received disconnect from ",
    "Nov 28 06:49:30 web1 sshd[1]: message repeated 2 times: [ ",
    "Nov 28 06:49:30 web1 sshd[1]: pam_unix(sshd:auth): authentication failure; ",
    "Nov 28 06:49:30 web1 sudo:  alice : ",
    "Nov 28 06:49:30 web1 su[3]: ",
    "Nov 28 06:49:30 web1 su[3]: FAILED SU (to ",
    "Nov 28 06:49:30 web1 login[4]: FAILED LOGIN ",
    "Nov 28 06:49:30 web1 useradd[5]: new user: ",
    "Nov 28 06:49:30 web1 systemd-logind[6]: New session ",
    "Nov 28 06:49:30 web1 dropbear[7]: ",
    "Nov 28 06:49:30 web1 doas[9]: alice ran command ",
    "Nov 28 06:49:30 web1 doas[9]: failed command for ",
    "<38>1 2026-11-28T06:55:33Z web1 sshd 4242 - [x a=\"",
    "Nov 28 06:49:30 web1 sshd(pam_unix)[8]: ",
    "type=USER_LOGIN msg=audit(1795867200.123:42): pid=1 uid=0 msg='op=login acct=",
    "node=h type=USER_AUTH msg=audit(1795867200.1:7): pid=1 msg='op=PAM:authentication acct=\"",
    "type=ADD_USER msg=audit(1795867200.5:9): pid=1 uid=0 auid=1000 msg='op=",
    "Nov 28 06:49:30 web1 audit[10]: USER_LOGIN pid=10 uid=0 msg='",
    "Nov 28 06:49:30 web1 kernel: audit: type=1112 audit(1795867200.1:3): ",
    "Sat Dec  5 01:42:16 2026 [pid 13443] ",
    "Nov 28 06:49:30 web1 vsftpd[11]: [",
    "Nov 28 06:49:30 web1 proftpd[12]: h (",
    "Nov 28 06:49:30 web1 pure-ftpd: (?@",
    "Nov 28 06:49:30 web1 ftpd[13]: FTP LOGIN FROM ",
    "Nov 28 06:49:30 web1 klogind[14]: login by ",
    "Nov 28 06:49:30 web1 kshd[15]: Executing ",
    "Nov 28 06:49:30 web1 (systemd)[16]: ",
    "Nov 28 06:49:30 web1 sshd[1]: [ID 800047 auth.info] ",
    "Nov 28 06:49:30 <auth.info> web1 sshd[1]: ",
    "[Nov 28 06:49:30] web1 sshd[1]: ",
    "2026-11-28 00:02:02.766049-0700  mac1 sshd[8002]: ",
    "Nov 28 06:49:30 web1 dropbear[7]: [7] Nov 28 06:49:30 ",
    "Nov 28 06:49:30 web1 su: '",
    "Nov 28 06:49:30 alpine1 auth.info sshd[1]: ",
    "Nov 28 06:49:30 alpine1 <86> ",
    "Sat Nov 28 06:49:30 2026 authpriv.info dropbear[7]: ",
    "Sat Nov 28 06:49:30 2026 [1795855770.123] ",
    "Nov 28 06:49:30 web1 sshd[1]: Timeout before authentication for connection from ",
    "Nov 28 06:49:30 web1 sshd[1]: drop connection #0 from [",
    "Nov 28 06:49:30 web1 sshd[1]: error: session process 1 for connection from ",
    "Nov 28 06:49:30 web1 sshd[1]: fatal: Access denied for user ",
    "Nov 28 06:49:30 web1 sshd[1]: /home/a/.ssh/authorized_keys:1: Authentication tried for ",
    "Nov 28 06:49:30 web1 login[4]: invalid password for '",
    "Nov 28 06:49:30 web1 login[4]: root login",
    "Nov 28 06:49:30 web1 login[4]: pam_authenticate call failed: ",
    "Nov 28 06:49:30 web1 systemd-logind[6]: New session '",
    "Nov 28 06:49:30 web1 passwd[5]: Password for ",
    "Nov 28 06:49:30 web1 xrdp-sesman[17]: [INFO ] AUTHFAIL: user=",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_line(&bytes, &ctx());
        let _ = parse_message("sshd".into(), Some(1), &bytes);
    }

    #[test]
    fn real_prefixes_with_arbitrary_tails_never_panic(
        prefix in proptest::sample::select(PREFIXES),
        tail in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut line = prefix.as_bytes().to_vec();
        line.extend_from_slice(&tail);
        if let Parsed::Event(ev) = parse_line(&line, &ctx()) {
            let mut json = String::new();
            agent_core::ecs::write_event(&mut json, &ev, &Default::default()).unwrap();
            prop_assert!(!json.contains(":\"\""), "empty string field in {json}");
        }
    }

    #[test]
    fn printable_tails_never_panic(
        prefix in proptest::sample::select(PREFIXES),
        tail in "[ -~]{0,200}",
    ) {
        let line = format!("{prefix}{tail}");
        let _ = parse_line(line.as_bytes(), &ctx());
    }

    /// Whatever a user name holds, the source is the real one at the end of the line.
    #[test]
    fn hostile_user_names_never_move_the_source(
        user in "[ -~]{0,60}",
        template in 0usize..5,
    ) {
        let line = match template {
            0 => format!("Nov 28 06:49:30 h sshd[1]: Failed password for invalid user {user} from 127.0.0.9 port 4242 ssh2"),
            1 => format!("Nov 28 06:49:30 h sshd[1]: Failed password for {user} from 127.0.0.9 port 4242 ssh2"),
            2 => format!("Nov 28 06:49:30 h sshd[1]: Invalid user {user} from 127.0.0.9 port 4242"),
            3 => format!("Nov 28 06:49:30 h sshd[1]: Connection closed by invalid user {user} 127.0.0.9 port 4242 [preauth]"),
            _ => format!("Nov 28 06:49:30 h sshd[1]: Accepted password for {user} from 127.0.0.9 port 4242 ssh2"),
        };
        if let Parsed::Event(ev) = parse_line(line.as_bytes(), &ctx()) {
            prop_assert_eq!(ev.source, Some(Source::Ip("127.0.0.9".parse().unwrap())), "{}", line);
            prop_assert_eq!(ev.port, Some(4242));
        }
    }
}

/// A small detector's memory after a brute force, a spray and a few logins.
fn saved_memory() -> Vec<u8> {
    let mut d = agent_core::detect::Detector::<16, 8, 16>::new(Default::default());
    for k in 0..60u32 {
        let line = match k % 4 {
            0 => format!(
                "Nov 28 06:49:{:02} web1 sshd[1]: Accepted password for u{} from 2001:db8::{k:x} port 1 ssh2",
                k % 60,
                k % 3
            ),
            _ => format!(
                "Nov 28 06:49:{:02} web1 sshd[1]: Failed password for u{} from 198.51.100.{} port 1 ssh2",
                k % 60,
                k % 7,
                k % 5
            ),
        };
        if let Parsed::Event(ev) = parse_line(line.as_bytes(), &ctx()) {
            d.observe(&ev);
        }
    }
    let mut v = Vec::new();
    d.save_state(|b| v.extend_from_slice(b));
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// A damaged memory file is refused or restored; either way the detector keeps working.
    #[test]
    fn damaged_detector_memory_never_panics(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = saved_memory();
        for (at, x) in edits {
            let i = at % bytes.len();
            bytes[i] ^= x.max(1);
        }
        bytes.truncate(bytes.len() - cut % 8);
        let mut d = agent_core::detect::Detector::<16, 8, 16>::new(Default::default());
        let _ = d.restore_state(&bytes);
        for line in [
            "Nov 28 07:00:00 web1 sshd[1]: Failed password for u1 from 198.51.100.2 port 1 ssh2",
            "Nov 28 07:00:01 web1 sshd[1]: Accepted password for u1 from 198.51.100.2 port 1 ssh2",
        ] {
            if let Parsed::Event(ev) = parse_line(line.as_bytes(), &ctx()) {
                d.observe(&ev);
            }
        }
    }
}
