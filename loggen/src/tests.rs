//! Tests of the whole generator: determinism, exact counts, line shape, the mix and the burst.

use super::*;

fn run(opts: &Options) -> (Stats, String) {
    let mut out = Vec::new();
    let stats = generate(&mut out, opts).expect("writing to a Vec cannot fail");
    (stats, String::from_utf8(out).expect("loggen writes ASCII"))
}

fn opts(lines: u64, seed: u64, format: Format) -> Options {
    Options {
        lines,
        seed,
        format,
        ..Options::default()
    }
}

#[test]
fn same_seed_same_bytes() {
    for format in [Format::Rfc3164, Format::Rfc3339] {
        let a = run(&opts(20_000, 42, format));
        let b = run(&opts(20_000, 42, format));
        assert_eq!(a, b);
        let c = run(&opts(20_000, 43, format));
        assert_ne!(a.1, c.1, "another seed, other bytes");
    }
}

#[test]
fn a_prefix_is_a_prefix() {
    // Stopping early must not change what came before.
    let (_, short) = run(&opts(1_000, 9, Format::Rfc3339));
    let (_, long) = run(&opts(5_000, 9, Format::Rfc3339));
    assert!(long.starts_with(&short));
}

#[test]
fn line_count_is_exact() {
    for lines in [0, 1, 2, 17, 999, 3_001, 12_345] {
        let (stats, text) = run(&opts(lines, lines, Format::Rfc3164));
        assert_eq!(stats.lines, lines);
        assert_eq!(text.lines().count() as u64, lines);
        assert_eq!(stats.bytes, text.len() as u64);
        assert!(text.is_empty() || text.ends_with('\n'));
    }
}

/// Checks `TIMESTAMP HOST TAG: MESSAGE` and returns the timestamp.
fn header<'a>(line: &'a str, format: Format, hosts: &[&str]) -> &'a str {
    let (stamp, rest) = match format {
        Format::Rfc3164 => {
            // `Nov 28 06:49:30 ` or `Nov  8 06:49:30 `
            let (stamp, rest) = line.split_at(16);
            let b = stamp.as_bytes();
            assert!(clock::MONTHS.contains(&&stamp[..3]), "month in {line:?}");
            assert_eq!(b[3], b' ', "{line:?}");
            assert!(b[4] == b' ' || (b'1'..=b'3').contains(&b[4]), "{line:?}");
            assert!(
                b[5].is_ascii_digit() && b[5] != b'0' || b[4] != b' ',
                "{line:?}"
            );
            for i in [7, 8, 10, 11, 13, 14] {
                assert!(b[i].is_ascii_digit(), "{line:?}");
            }
            assert_eq!(
                (b[6], b[9], b[12], b[15]),
                (b' ', b':', b':', b' '),
                "{line:?}"
            );
            (stamp, rest)
        }
        Format::Rfc3339 => {
            // `2026-11-28T06:55:33.434531+00:00 `
            let (stamp, rest) = line.split_at(33);
            for (i, c) in stamp.bytes().enumerate() {
                let expect_digit = !matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 26 | 29 | 32);
                assert_eq!(c.is_ascii_digit(), expect_digit, "{line:?} at {i}");
            }
            assert_eq!(&stamp[26..], "+00:00 ", "{line:?}");
            assert_eq!(
                (&stamp[4..5], &stamp[7..8], &stamp[10..11], &stamp[19..20]),
                ("-", "-", "T", "."),
                "{line:?}"
            );
            (stamp, rest)
        }
    };
    let (host, rest) = rest.split_once(' ').expect("host");
    assert!(hosts.contains(&host), "{line:?}");
    let (tag, msg) = rest.split_once(": ").expect("tag");
    if tag != "sudo" {
        let (program, pid) = tag.split_once('[').expect("pid");
        assert!(
            ["sshd", "CRON", "systemd-logind", "su"].contains(&program),
            "{line:?}"
        );
        let pid = pid.strip_suffix(']').expect("]");
        let pid: u64 = pid.parse().expect("numeric pid");
        assert!((300..4_194_304).contains(&pid), "{line:?}");
    }
    assert!(!msg.is_empty() && !msg.contains('\n'), "{line:?}");
    stamp
}

#[test]
fn every_line_has_a_syslog_header() {
    let hosts = ["web1", "db-2.internal"];
    for format in [Format::Rfc3164, Format::Rfc3339] {
        let o = Options {
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            ..opts(30_000, 5, format)
        };
        let (_, text) = run(&o);
        for line in text.lines() {
            header(line, format, &hosts);
        }
    }
}

#[test]
fn time_never_goes_backwards() {
    let (_, text) = run(&opts(50_000, 11, Format::Rfc3339));
    let mut last = "";
    for line in text.lines() {
        let stamp = header(line, Format::Rfc3339, &["web1"]);
        // Fixed width and one offset: string order is time order.
        assert!(stamp >= last, "{stamp} after {last}");
        last = stamp;
    }
    let first = text.lines().next().expect("lines");
    assert!(first.starts_with("2026-11-28T00:00:0"), "{first}");
}

#[test]
fn rfc3164_pads_days_below_ten() {
    // From 2026-12-08T20:00:00Z into the next day.
    let o = Options {
        start: DEFAULT_START + 10 * 86_400 + 20 * 3_600,
        ..opts(100_000, 2, Format::Rfc3164)
    };
    let (_, text) = run(&o);
    assert!(text.starts_with("Dec  8 20:00:0"), "{}", &text[..40]);
    assert!(text.contains("\nDec  9 "));
}

#[test]
fn the_mix_holds_every_kind_of_line() {
    let (_, text) = run(&opts(100_000, 1, Format::Rfc3164));
    let expected = [
        "]: Accepted password for ",
        "]: Accepted publickey for ",
        " ssh2: ED25519 SHA256:",
        " ssh2: RSA SHA256:",
        " ssh2: ECDSA SHA256:",
        "]: Failed password for root from ",
        "]: Failed password for invalid user ",
        "]: Invalid user ",
        "]: Invalid user  from ",
        "]: Connection closed by authenticating user root ",
        "]: Connection closed by invalid user ",
        "]: Disconnected from user ",
        ":11: disconnected by user",
        "]: Disconnected from authenticating user root ",
        "]: pam_unix(sshd:session): session opened for user ",
        "]: pam_unix(sshd:session): session closed for user ",
        "]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=",
        "]: error: maximum authentication attempts exceeded for root from ",
        ": Too many authentication failures [preauth]",
        "]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=",
        "]: PAM 1 more authentication failure; ",
        " port 22 rdomain \"\"",
        "]: Server listening on 0.0.0.0 port 22.",
        "]: Received signal 15; terminating.",
        "CRON[",
        "]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
        "]: pam_unix(cron:session): session closed for user root",
        "systemd-logind[",
        "]: Removed session ",
        "sudo:    alice : TTY=pts/",
        " ; USER=root ; COMMAND=",
        "sudo: pam_unix(sudo:session): session opened for user root(uid=0) by ",
        "sudo: pam_unix(sudo:session): session closed for user root",
        " : 3 incorrect password attempts ; TTY=",
        " : user NOT in sudoers ; TTY=",
        "]: (to root) ",
        "]: pam_unix(su-l:session): session opened for user root(uid=0) by ",
        "]: FAILED SU (to root) ",
        "]: pam_unix(su:auth): authentication failure; logname=",
        " from 2001:db8:",
        " from fe80::",
        "%eth0 port ",
        " from 10.",
        " from 192.0.2.",
        " from 198.51.100.",
        " from 203.0.113.",
        "]: message repeated ",
    ];
    let missing: Vec<_> = expected.iter().filter(|s| !text.contains(*s)).collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
    // Scanners dominate, as on any server with port 22 open to the internet.
    let failed = text.matches("]: Failed password for ").count();
    let accepted = text.matches("]: Accepted ").count();
    assert!(
        failed > 10 * accepted,
        "{failed} failed vs {accepted} accepted"
    );
}

#[test]
fn repeated_messages_use_the_rsyslog_layout() {
    let (_, text) = run(&opts(50_000, 3, Format::Rfc3164));
    let line = text
        .lines()
        .find(|l| l.contains("message repeated"))
        .expect("a folded line");
    let (_, msg) = line.split_once("]: ").expect("tag");
    let rest = msg.strip_prefix("message repeated ").expect("prefix");
    let (n, rest) = rest.split_once(" times: [ ").expect("count");
    assert!(n.parse::<u32>().expect("number") >= 2);
    assert!(rest.starts_with("Failed password for root from ") && rest.ends_with(" ssh2]"));
}

#[test]
fn source_addresses_parse() {
    let (_, text) = run(&opts(30_000, 8, Format::Rfc3164));
    for line in text.lines() {
        // The address is the word before the last ` port `; an injected user name may hold
        // an earlier one.
        let Some((head, _)) = line.rsplit_once(" port ") else {
            continue;
        };
        let ip = head.rsplit(' ').next().unwrap_or_default();
        let ip = ip.split_once('%').map_or(ip, |(addr, _zone)| addr);
        assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{line:?}");
    }
}

/// Failures from each address before its `Accepted password for root`, per burst found.
fn bursts(text: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let mut failures: Vec<(String, usize)> = Vec::new();
    for line in text.lines() {
        let msg = line.split_once("]: ").map_or("", |(_, m)| m);
        if let Some(rest) = msg
            .strip_prefix("Failed password for ")
            .or_else(|| msg.strip_prefix("Invalid user "))
        {
            let Some((_, rest)) = rest.rsplit_once(" from ") else {
                continue;
            };
            let ip = rest.split(' ').next().unwrap_or_default();
            match failures.iter_mut().find(|(a, _)| a == ip) {
                Some((_, n)) => *n += 1,
                None => failures.push((ip.to_owned(), 1)),
            }
        } else if let Some(rest) = msg.strip_prefix("Accepted password for root from ") {
            let ip = rest.split(' ').next().unwrap_or_default();
            let before = failures.iter().find(|(a, n)| a == ip && *n >= 200);
            found.extend(before.cloned());
        }
    }
    found
}

#[test]
fn a_brute_force_burst_ends_in_a_root_login() {
    let (stats, text) = run(&opts(BURST_EVERY, 1, Format::Rfc3164));
    assert_eq!(stats.bursts, 1);
    let found = bursts(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    // The burst lasts a minute or two.
    let (ip, _) = &found[0];
    let accepted = format!("Accepted password for root from {ip} port ");
    let times: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!(" from {ip} port ")))
        .take_while(|l| !l.contains(&accepted))
        .map(|l| &l[7..15])
        .collect();
    let secs = |hms: &str| -> u32 {
        hms.split(':')
            .map(|p| p.parse::<u32>().expect("digits"))
            .fold(0, |acc, v| acc * 60 + v)
    };
    let span = secs(times[times.len() - 1]) - secs(times[0]);
    assert!((60..=140).contains(&span), "burst over {span} s");
}

#[test]
fn one_burst_per_block_for_every_seed() {
    for seed in 0..4 {
        let (stats, text) = run(&opts(
            2 * BURST_EVERY + MIN_BURST_BLOCK,
            seed,
            Format::Rfc3339,
        ));
        assert_eq!(stats.bursts, 3, "seed {seed}");
        assert_eq!(bursts(&text).len(), 3, "seed {seed}");
    }
    // Too short for a burst.
    let (stats, _) = run(&opts(MIN_BURST_BLOCK - 1, 0, Format::Rfc3164));
    assert_eq!(stats.bursts, 0);
}

#[test]
fn sudo_right_aligns_the_user_name() {
    let (_, text) = run(&opts(50_000, 4, Format::Rfc3164));
    for line in text
        .lines()
        .filter(|l| l.contains(" sudo: ") && l.contains(" : TTY="))
    {
        let (_, rest) = line.split_once(" sudo: ").expect("tag");
        let (user, _) = rest.split_once(" : ").expect("user");
        assert!(
            user.len() >= 8 && user.trim_start().len() == user.trim().len(),
            "{line:?}"
        );
    }
    assert!(text.contains(" sudo:   deploy : TTY="));
}

#[test]
fn bad_host_names_are_refused() {
    for bad in ["", "web 1", "web\n1"] {
        let o = Options {
            hosts: vec![bad.to_owned()],
            ..Options::default()
        };
        let err = generate(&mut Vec::new(), &o).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}

#[test]
fn format_names_round_trip() {
    for f in [Format::Rfc3164, Format::Rfc3339] {
        assert_eq!(f.to_string().parse::<Format>(), Ok(f));
    }
    assert_eq!("RFC3339".parse::<Format>(), Ok(Format::Rfc3339));
    assert!("json".parse::<Format>().is_err());
}
