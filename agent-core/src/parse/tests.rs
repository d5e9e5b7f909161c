//! Dispatch-level tests: whole lines through [`parse_line`], sshd above all.

use core::net::IpAddr;

use super::*;
use crate::event::{Action, Method, Outcome, Source};

use super::test_support::{line, test_context as ctx};

fn event(line: &str) -> LoginEvent<'_> {
    match parse_line(line.as_bytes(), &ctx()) {
        Parsed::Event(e) => e,
        other => panic!("{line:?} gave {other:?}"),
    }
}

fn ip(s: &str) -> Option<Source<'static>> {
    Some(Source::Ip(s.parse::<IpAddr>().unwrap()))
}

fn t(s: &str) -> Option<Text<'_>> {
    Some(Text(s.as_bytes()))
}

const H: &str = "Nov 28 06:49:30 web1 sshd[1234]: ";

fn sshd(msg: &str) -> &'static str {
    Box::leak(format!("{H}{msg}").into_boxed_str())
}

#[test]
fn accepted_password() {
    let line = &sshd("Accepted password for alice from 192.0.2.10 port 50522 ssh2");
    let e = event(line);
    assert_eq!(e.action, Action::AuthSuccess);
    assert_eq!(e.outcome, Outcome::Success);
    assert_eq!(e.user, t("alice"));
    assert_eq!(e.source, ip("192.0.2.10"));
    assert_eq!(e.port, Some(50522));
    assert_eq!(e.method, Some(Method::Password));
    assert_eq!(e.program, "sshd");
    assert_eq!(e.pid, Some(1234));
    assert_eq!(e.hostname, t("web1"));
    assert_eq!(e.count, 1);
}

#[test]
fn accepted_publickey_with_key_and_certificate() {
    let line = &sshd(
        "Accepted publickey for git from 2001:db8::7 port 41000 ssh2: ED25519 SHA256:uFmQ8rPb0a1wYkZ7i9ZPpHfQ1Ik3X6eB3k8m0m8Jx4Q",
    );
    let e = event(line);
    assert_eq!(e.method, Some(Method::Publickey));
    assert_eq!(e.source, ip("2001:db8::7"));
    assert_eq!(e.key_type, t("ED25519"));
    assert_eq!(
        e.key_fingerprint,
        t("SHA256:uFmQ8rPb0a1wYkZ7i9ZPpHfQ1Ik3X6eB3k8m0m8Jx4Q")
    );
    let line = &sshd(
        "Accepted publickey for deploy from 10.1.2.3 port 2222 ssh2: RSA-CERT SHA256:abc ID deploy@ci (serial 7) CA ED25519 SHA256:def",
    );
    let e = event(line);
    assert_eq!(e.key_type, t("RSA-CERT"));
    assert_eq!(e.key_fingerprint, t("SHA256:abc"));
    assert_eq!(e.user, t("deploy"));
}

#[test]
fn other_methods() {
    for (m, want) in [
        ("keyboard-interactive/pam", Method::KeyboardInteractive),
        ("keyboard-interactive", Method::KeyboardInteractive),
        ("gssapi-with-mic", Method::GssapiWithMic),
        ("hostbased", Method::Hostbased),
        ("none", Method::None),
    ] {
        let line = &sshd(&format!("Accepted {m} for bob from 10.0.0.9 port 1 ssh2"));
        assert_eq!(event(line).method, Some(want), "{m}");
        let line = &sshd(&format!("Failed {m} for bob from 10.0.0.9 port 1 ssh2"));
        let e = event(line);
        assert_eq!(
            (e.action, e.method),
            (Action::AuthFailure, Some(want)),
            "{m}"
        );
    }
}

#[test]
fn failed_password_valid_and_invalid_user() {
    let e = event(sshd(
        "Failed password for root from 203.0.113.9 port 41022 ssh2",
    ));
    assert_eq!(e.action, Action::AuthFailure);
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.user, t("root"));
    assert_eq!(e.reason, None);
    let e = event(sshd(
        "Failed password for invalid user oracle from 203.0.113.9 port 41022 ssh2",
    ));
    assert_eq!(e.user, t("oracle"));
    assert_eq!(e.reason, t("invalid user"));
    let e = event(sshd(
        "Failed none for invalid user  from 203.0.113.9 port 1 ssh2",
    ));
    assert_eq!(e.user, None);
    assert_eq!(e.source, ip("203.0.113.9"));
}

#[test]
fn failed_publickey_verbose() {
    let e = event(sshd(
        "Failed publickey for alice from 127.0.0.3 port 5 ssh2: RSA SHA256:Zm9vYmFy",
    ));
    assert_eq!(e.action, Action::AuthFailure);
    assert_eq!(e.key_type, t("RSA"));
}

#[test]
fn hostile_user_name_cannot_plant_a_source() {
    let e = event(sshd(
        "Failed password for invalid user test from 10.10.1.2 port 55555 ssh2 from 127.0.0.1 port 58946 ssh2",
    ));
    assert_eq!(e.source, ip("127.0.0.1"));
    assert_eq!(e.port, Some(58946));
    assert_eq!(e.user, t("test from 10.10.1.2 port 55555 ssh2"));
    let e = event(sshd(
        "Invalid user x from 1.2.3.4 port 22 from 127.0.0.2 port 40000",
    ));
    assert_eq!(e.source, ip("127.0.0.2"));
    assert_eq!(e.user, t("x from 1.2.3.4 port 22"));
    let e = event(sshd(
        "Connection closed by invalid user a 9.9.9.9 port 1 127.0.0.5 port 777 [preauth]",
    ));
    assert_eq!(e.source, ip("127.0.0.5"));
    assert_eq!(e.port, Some(777));
    assert_eq!(e.user, t("a 9.9.9.9 port 1"));
}

#[test]
fn invalid_user_forms() {
    let e = event(sshd("Invalid user admin from 198.51.100.4 port 39822"));
    assert_eq!(e.action, Action::InvalidUser);
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.user, t("admin"));
    assert_eq!(e.port, Some(39822));
    let e = event(sshd("Invalid user admin from 198.51.100.4"));
    assert_eq!(e.port, None);
    assert_eq!(e.source, ip("198.51.100.4"));
    let e = event(sshd("Invalid user  from 198.51.100.4 port 1"));
    assert_eq!(e.user, None);
    let e = event(sshd("Illegal user test from 198.51.100.4"));
    assert_eq!(e.action, Action::InvalidUser);
    let e = event(sshd("input_userauth_request: invalid user test [preauth]"));
    assert_eq!((e.action, e.user), (Action::InvalidUser, t("test")));
}

#[test]
fn connection_closed_and_disconnected() {
    let e = event(sshd(
        "Connection closed by authenticating user root 203.0.113.9 port 40012 [preauth]",
    ));
    assert_eq!(e.action, Action::Disconnect);
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.user, t("root"));
    assert_eq!(e.port, Some(40012));
    let e = event(sshd(
        "Connection closed by invalid user oracle 203.0.113.9 port 1 [preauth]",
    ));
    assert_eq!(e.user, t("oracle"));
    let e = event(sshd(
        "Connection closed by 203.0.113.9 port 40012 [preauth]",
    ));
    assert_eq!((e.user, e.outcome), (None, Outcome::Unknown));
    let e = event(sshd("Disconnected from user alice 192.0.2.10 port 50522"));
    assert_eq!((e.user, e.outcome), (t("alice"), Outcome::Success));
    let e = event(sshd(
        "Disconnected from authenticating user root 203.0.113.9 port 1 [preauth]",
    ));
    assert_eq!((e.user, e.outcome), (t("root"), Outcome::Failure));
    let e = event(sshd(
        "Disconnected from invalid user x ::1 port 3 [preauth]",
    ));
    assert_eq!(e.source, ip("::1"));
    let e = event(sshd(
        "Connection reset by authenticating user root 1.2.3.4 port 9 [preauth]",
    ));
    assert_eq!(e.reason, t("connection reset"));
}

#[test]
fn received_disconnect_forms() {
    let e = event(sshd(
        "Received disconnect from 192.0.2.10 port 50522:11: disconnected by user",
    ));
    assert_eq!(e.action, Action::Disconnect);
    assert_eq!(e.source, ip("192.0.2.10"));
    assert_eq!(e.port, Some(50522));
    assert_eq!(e.reason, t("disconnected by user"));
    let e = event(sshd(
        "Received disconnect from 203.0.113.9 port 1:11: Bye Bye [preauth]",
    ));
    assert_eq!(e.reason, t("Bye Bye"));
    let e = event(sshd(
        "Received disconnect from 203.0.113.9: 11: Bye Bye [preauth]",
    ));
    assert_eq!(e.source, ip("203.0.113.9"));
    assert_eq!(e.port, None);
    let e = event(sshd(
        "error: Received disconnect from 203.0.113.9 port 4:3: com.jcraft.jsch.JSchException: Auth fail [preauth]",
    ));
    assert_eq!(e.port, Some(4));
}

#[test]
fn too_many_failures() {
    let e = event(sshd(
        "error: maximum authentication attempts exceeded for root from 203.0.113.9 port 41022 ssh2 [preauth]",
    ));
    assert_eq!(e.action, Action::AuthFailure);
    assert_eq!(e.user, t("root"));
    assert_eq!(e.reason, t("maximum authentication attempts exceeded"));
    let e = event(sshd(
        "error: maximum authentication attempts exceeded for invalid user test from 203.0.113.9 port 1 ssh2 [preauth]",
    ));
    assert_eq!(e.user, t("test"));
    let e = event(sshd(
        "Disconnecting authenticating user root 203.0.113.9 port 41022: Too many authentication failures [preauth]",
    ));
    assert_eq!(e.action, Action::AuthFailure);
    assert_eq!(e.user, t("root"));
    assert_eq!(e.port, Some(41022));
    let e = event(sshd(
        "Disconnecting invalid user test 203.0.113.9 port 1: Too many authentication failures [preauth]",
    ));
    assert_eq!(e.user, t("test"));
    let e = event(sshd(
        "Disconnecting: Too many authentication failures for root [preauth]",
    ));
    assert_eq!((e.action, e.user), (Action::AuthFailure, t("root")));
    // OpenSSH before the connection id (packet.c `logit("Disconnecting: %.100s", buf)`, 7.4 of
    // RHEL/CentOS 7): any other reason is a refused connection with that reason.
    let e = event(sshd(
        "Disconnecting: Change of username or service not allowed: (root,ssh-connection) -> (admin,ssh-connection) [preauth]",
    ));
    assert_eq!(
        (e.action, e.outcome),
        (Action::Disconnect, Outcome::Failure)
    );
    assert_eq!(
        e.reason,
        t(
            "Change of username or service not allowed: (root,ssh-connection) -> (admin,ssh-connection)"
        )
    );
    let e = event(sshd("Disconnecting: Packet corrupt [preauth]"));
    assert_eq!(e.reason, t("Packet corrupt"));
    let e = event(sshd(
        "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
    ));
    assert_eq!(e.count, 2);
    assert_eq!(e.user, t("root"));
    assert_eq!(e.source, ip("203.0.113.9"));
    let e = event(sshd(
        "PAM 1 more authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=host.example.org",
    ));
    assert_eq!(e.count, 1);
    assert_eq!(e.source, Some(Source::Domain(Text(b"host.example.org"))));
    assert_eq!(e.user, None);
}

#[test]
fn pam_error_and_not_allowed_and_root_refused() {
    let e = event(sshd(
        "error: PAM: Authentication failure for root from 203.0.113.9",
    ));
    assert_eq!((e.action, e.user), (Action::AuthFailure, t("root")));
    assert_eq!(e.source, ip("203.0.113.9"));
    let e = event(sshd(
        "error: PAM: Authentication failure for illegal user x from gw.example.net",
    ));
    assert_eq!((e.action, e.user), (Action::InvalidUser, t("x")));
    assert_eq!(e.source, Some(Source::Domain(Text(b"gw.example.net"))));
    let e = event(sshd(
        "User bob from 192.0.2.10 not allowed because not listed in AllowUsers",
    ));
    assert_eq!(e.action, Action::AuthFailure);
    assert_eq!(e.user, t("bob"));
    assert_eq!(e.reason, t("not listed in AllowUsers"));
    let e = event(sshd(
        "User root from 192.0.2.10 not allowed because listed in DenyUsers",
    ));
    assert_eq!(e.reason, t("listed in DenyUsers"));
    let e = event(sshd("ROOT LOGIN REFUSED FROM 192.0.2.10 port 4"));
    assert_eq!((e.user, e.port), (t("root"), Some(4)));
    let e = event(sshd("ROOT LOGIN REFUSED FROM 192.0.2.10"));
    assert_eq!(e.source, ip("192.0.2.10"));
}

#[test]
fn connection_from_verbose() {
    let e = event(sshd(
        "Connection from 127.0.0.2 port 40000 on 127.0.0.1 port 2222 rdomain \"\"",
    ));
    assert_eq!(e.action, Action::Connection);
    assert_eq!(e.source, ip("127.0.0.2"));
    assert_eq!(e.port, Some(40000));
    assert_eq!(e.category(), crate::event::Category::Network);
}

#[test]
fn scans_and_negotiation_failures() {
    let e = event(sshd(
        "Did not receive identification string from 203.0.113.9 port 5",
    ));
    assert_eq!((e.action, e.port), (Action::Disconnect, Some(5)));
    let e = event(sshd(
        "Unable to negotiate with 203.0.113.9 port 5: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]",
    ));
    assert_eq!(e.reason, t("no matching key exchange method found"));
    let e = event(sshd(
        "banner exchange: Connection from 203.0.113.9 port 5: invalid format",
    ));
    assert_eq!(e.source, ip("203.0.113.9"));
    let e = event(sshd(
        "Bad protocol version identification 'GET / HTTP/1.1' from 203.0.113.9 port 5",
    ));
    assert_eq!(e.port, Some(5));
    let e = event(sshd(
        "drop connection #3 from [203.0.113.9]:5 on [10.0.0.1]:22 past MaxStartups",
    ));
    assert_eq!(e.source, ip("203.0.113.9"));
    let e = event(sshd(
        "fatal: Timeout before authentication for 203.0.113.9 port 5",
    ));
    assert_eq!(e.reason, t("timeout before authentication"));
}

/// OpenSSH 9.8+ `sshd.c`: the listener names a connection `connection from <raddr> to <laddr>`
/// (`child_register`), logs `Timeout before authentication for <id>, pid = <pid>` when a preauth
/// child exits with `EXIT_LOGIN_GRACE` (`child_reap`; the signal handler's old message was removed
/// for CVE-2024-6387), and `drop connection #N from [ip]:port on [ip]:port <reason>` where the
/// reason is `past Maxstartups` or a `PerSourcePenalties` one (`srclimit.c`: `penalty: failed
/// authentication`, `penalty: exceeded LoginGraceTime`, ...).
#[test]
fn openssh_9_8_listener_lines() {
    let e = event(sshd(
        "Timeout before authentication for connection from 203.0.113.9 to 10.0.0.1, pid = 4242",
    ));
    assert_eq!(
        (e.action, e.outcome),
        (Action::Disconnect, Outcome::Failure)
    );
    assert_eq!(e.source, ip("203.0.113.9"));
    assert_eq!(e.port, None);
    assert_eq!(e.reason, t("timeout before authentication"));
    // A connection that is not TCP has no `to <laddr>`.
    let e = event(sshd(
        "Timeout before authentication for connection from 2001:db8::9, pid = 4242",
    ));
    assert_eq!(e.source, ip("2001:db8::9"));

    let e = event(sshd(
        "drop connection #0 from [203.0.113.9]:50022 on [10.0.0.1]:22 penalty: failed authentication",
    ));
    assert_eq!(
        (e.action, e.outcome),
        (Action::Disconnect, Outcome::Failure)
    );
    assert_eq!(e.source, ip("203.0.113.9"));
    assert_eq!(e.port, Some(50022));
    assert_eq!(e.reason, t("penalty: failed authentication"));
    let e = event(sshd(
        "drop connection #4 from [2001:db8::9]:50022 on [2001:db8::1]:22 penalty: exceeded LoginGraceTime",
    ));
    assert_eq!(e.source, ip("2001:db8::9"));
    assert_eq!(e.reason, t("penalty: exceeded LoginGraceTime"));
    let e = event(sshd(
        "drop connection #10 from [203.0.113.9]:50022 on [10.0.0.1]:22 past Maxstartups",
    ));
    assert_eq!(e.reason, t("past Maxstartups"));

    // A preauth process that crashed (ERROR level), as an exploit attempt can make it.
    let e = event(sshd(
        "Session process 4242 unpriv child crash for connection from 203.0.113.9 to 10.0.0.1",
    ));
    assert_eq!((e.action, e.outcome), (Action::Other, Outcome::Failure));
    assert_eq!(e.source, ip("203.0.113.9"));
    let e = event(sshd(
        "error: session process 4242 for connection from 203.0.113.9 to 10.0.0.1 killed by signal 11 (early)",
    ));
    assert_eq!((e.action, e.outcome), (Action::Other, Outcome::Failure));
    assert_eq!(e.source, ip("203.0.113.9"));
    assert!(matches!(
        line(sshd(
            "error: in MaxStartups throttling for 00:05:01, 31 connections dropped"
        )),
        Parsed::Noise { .. }
    ));
}

/// OpenSSH portable with PAM (`auth2.c` `userauth_finish`, `auth-pam.c`): when the PAM account
/// stage refuses a user whose credentials were right (expired account, pam_access, sssd HBAC),
/// sshd logs `fatal: Access denied for user <user> by PAM account configuration [preauth]`;
/// `sshpam_setcred` failing logs `fatal: PAM: pam_setcred(): <pam_strerror>`.
#[test]
fn pam_account_refusal_and_setcred() {
    let e = event(sshd(
        "fatal: Access denied for user deploy by PAM account configuration [preauth]",
    ));
    assert_eq!(
        (e.action, e.outcome),
        (Action::AuthFailure, Outcome::Failure)
    );
    assert_eq!(e.user, t("deploy"));
    assert_eq!(e.reason, t("access denied by PAM account configuration"));
    // A name holding the words: the last ` by PAM account configuration` ends it.
    let e = event(sshd(
        "fatal: Access denied for user a by PAM account configuration by PAM account configuration",
    ));
    assert_eq!(e.user, t("a by PAM account configuration"));
    let e = event(sshd("fatal: PAM: pam_setcred(): Authentication failure"));
    assert_eq!(
        (e.action, e.outcome),
        (Action::AuthFailure, Outcome::Failure)
    );
    assert_eq!(e.reason, t("pam_setcred(): Authentication failure"));
}

/// OpenSSH 8.2+ `auth-options.c`/`auth2-pubkeyfile.c` `auth_authorise_keyopts`: `"%s:
/// Authentication tried for %.100s with correct key but not from a permitted host (host=%.200s,
/// ip=%.200s, required=%.200s)."`, the first `%s` being `<authorized_keys file>:<line>`; older
/// releases (`auth-options.c`) wrote it without the location and without `required=`. The key
/// was right; its `from=` option refused the address.
#[test]
fn key_not_from_a_permitted_host() {
    for msg in [
        "/home/backup/.ssh/authorized_keys:1: Authentication tried for backup with correct key but not from a permitted host (host=203.0.113.9, ip=203.0.113.9, required=10.0.0.0/8).",
        "Authentication tried for backup with correct key but not from a permitted host (host=gw.example.net, ip=203.0.113.9).",
    ] {
        let e = event(sshd(msg));
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure),
            "{msg}"
        );
        assert_eq!(e.user, t("backup"), "{msg}");
        assert_eq!(e.source, ip("203.0.113.9"), "{msg}");
        assert_eq!(e.method, Some(Method::Publickey), "{msg}");
        assert_eq!(e.reason, t("key not from a permitted host"), "{msg}");
    }
}

#[test]
fn ipv6_scope_and_mapped_addresses() {
    let e = event(sshd(
        "Accepted password for a from fe80::1%eth0 port 5 ssh2",
    ));
    assert_eq!(e.source, ip("fe80::1"));
    let e = event(sshd(
        "Accepted password for a from ::ffff:192.0.2.1 port 5 ssh2",
    ));
    assert_eq!(e.source, ip("192.0.2.1"));
    let e = event(sshd(
        "Accepted password for a from gw.example.net port 5 ssh2",
    ));
    assert_eq!(e.source, Some(Source::Domain(Text(b"gw.example.net"))));
}

#[test]
fn sshd_session_and_sshd_auth_programs() {
    for prog in ["sshd-session", "sshd-auth", "/usr/sbin/sshd"] {
        let line = format!(
            "2026-11-28T06:55:33.434531+00:00 web1 {prog}[77]: Accepted password for alice from 192.0.2.10 port 5 ssh2"
        );
        let e = event(&line);
        assert_eq!(e.action, Action::AuthSuccess, "{prog}");
        assert_eq!(
            e.program.as_bytes(),
            prog.rsplit('/').next().unwrap().as_bytes()
        );
    }
}

#[test]
fn message_repeated_counts() {
    let e = event(sshd(
        "message repeated 3 times: [ Failed password for root from 203.0.113.9 port 41022 ssh2]",
    ));
    assert_eq!(e.action, Action::AuthFailure);
    assert_eq!(e.count, 3);
    assert_eq!(e.user, t("root"));
    assert_eq!(e.port, Some(41022));
}

#[test]
fn last_message_repeated_is_handed_to_the_caller() {
    match parse_line(
        b"Nov 28 06:49:30 web1 last message repeated 5 times",
        &ctx(),
    ) {
        Parsed::RepeatLast { count, header } => {
            assert_eq!(count, 5);
            assert_eq!(header.hostname, t("web1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn noise_unrecognised_foreign() {
    assert!(matches!(
        parse_line(
            sshd("Server listening on 0.0.0.0 port 22.").as_bytes(),
            &ctx()
        ),
        Parsed::Noise { .. }
    ));
    assert!(matches!(
        parse_line(sshd("Something new in OpenSSH 11").as_bytes(), &ctx()),
        Parsed::Unrecognised { .. }
    ));
    assert!(matches!(
        parse_line(b"Nov 28 06:49:30 web1 kernel: [1.0] eth0 up", &ctx()),
        Parsed::Foreign { .. }
    ));
    assert!(matches!(
        parse_line(b"garbage", &ctx()),
        Parsed::Malformed(_)
    ));
}

#[test]
fn bare_message_for_journald() {
    let p = parse_message(
        Text(b"sshd"),
        Some(9),
        b"Accepted publickey for a from 10.0.0.1 port 2 ssh2: ED25519 SHA256:x",
    );
    let e = p.event().copied().unwrap();
    assert_eq!(e.pid, Some(9));
    assert_eq!(e.timestamp, None);
    assert_eq!(e.key_type, t("ED25519"));
}

#[test]
fn invalid_utf8_and_nul_bytes_do_not_panic_or_misparse() {
    let line = b"Nov 28 06:49:30 web1 sshd[1]: Invalid user r\xffo\x00t from 127.0.0.1 port 2\n";
    let p = parse_line(line, &ctx());
    let e = p.event().copied().unwrap();
    assert_eq!(e.user, Some(Text(b"r\xffo\x00t")));
    assert_eq!(e.source, ip("127.0.0.1"));
}

#[test]
fn megabyte_lines_do_not_panic() {
    let mut line = sshd("Invalid user ").as_bytes().to_vec();
    line.extend(core::iter::repeat_n(b'a', 4 << 20));
    line.extend_from_slice(b" from 127.0.0.1 port 2");
    let e = parse_line(&line, &ctx()).event().copied().unwrap();
    assert_eq!(e.user.unwrap().len(), 4 << 20);
    let junk = vec![b'x'; 2 << 20];
    let _ = parse_line(&junk, &ctx());
}

/// Found by the `parse_line` fuzz target: a tag ending in `/` has an empty basename, and a PAM
/// line under it (PAM lines are read under any program) became an event whose `process.name`
/// was the empty string, which the schema never carries.
#[test]
fn a_tag_ending_in_a_slash_names_a_program_all_the_same() {
    for (line, program) in [
        (
            "Nov  6 00:00:50 host /usr/sbin/: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
            "sbin",
        ),
        (
            "Nov  6 00:00:50 host /: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
            "/",
        ),
    ] {
        let e = event(line);
        assert_eq!(e.program, Text(program.as_bytes()), "{line}");
        let mut json = String::new();
        crate::ecs::write_event(&mut json, &e, &Default::default()).unwrap();
        assert!(!json.contains(":\"\""), "{json}");
    }
}
