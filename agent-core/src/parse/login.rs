//! login's own lines (console and telnet logins), in the implementations found in the wild:
//!
//! - shadow-utils (`src/login.c`, Debian, Ubuntu): `ROOT LOGIN  on '/dev/tty1'[ from 'host']`,
//!   `'alice' logged in  on '/dev/tty1'` (with `LOG_OK_LOGINS`), `FAILED LOGIN (1) on '/dev/tty1'[
//!   from 'host'] FOR 'root', Authentication failure`, `TOO MANY LOGIN TRIES (3) on '/dev/tty1'
//!   FOR 'root'`; `UNKNOWN` stands for a user name that does not exist.
//! - util-linux (`login-utils/login.c`, Fedora, RHEL, Arch): `ROOT LOGIN ON tty1[ FROM host]`,
//!   `LOGIN ON tty1 BY alice[ FROM host]`, `FAILED LOGIN 1 FROM tty1 FOR root, Authentication
//!   failure`, `TOO MANY LOGIN TRIES (3) FROM host FOR root, ...`, `FAILED LOGIN SESSION FROM
//!   tty1 FOR root, ...`; `FROM` names the remote host, or the tty for a local login; `(unknown)`
//!   stands for a user name that does not exist.
//! - BSD-derived logins: `ROOT LOGIN ttyp0[ FROM host]`.
//! - BusyBox (`loginutils/login.c`, Alpine, OpenWrt): `root login on 'tty1'[ from 'host']`,
//!   `invalid password for 'alice' on 'tty1'[ from 'host']` (after the third failed attempt;
//!   `UNKNOWN` for a name that does not exist); with PAM also `pam_authenticate call failed:
//!   Authentication failure (7)` (read by the PAM module).
//!
//! Decisions: a `ROOT LOGIN`/`LOGIN ON`/`logged in` line is an `AuthSuccess` (login writes it
//! once the password was accepted; the session itself is PAM's `session opened` line). The number
//! in `FAILED LOGIN (N)` is the attempt's index, not a count of failures, so `count` stays 1.
//! `UNKNOWN` and `(unknown)` make an `InvalidUser` with no user name. `TOO MANY LOGIN TRIES` is an
//! `AuthFailure` with that reason.

use super::Verdict;
use super::fields::{parse_source, rsplit_once, split_once, user, word};
use super::pam::looks_like_tty;
use crate::event::{Action, LoginEvent, Outcome};
use crate::text::Text;

pub(crate) fn parse(msg: &[u8]) -> Verdict<'_> {
    let msg = msg.trim_ascii();
    let e = if let Some(rest) = msg.strip_prefix(b"ROOT LOGIN ") {
        root_login(rest)
    } else if let Some(rest) = msg.strip_prefix(b"LOGIN ON ") {
        login_on(rest)
    } else if let Some(rest) = msg.strip_prefix(b"FAILED LOGIN SESSION ") {
        failed(rest, Text(b"failed login session"))
    } else if let Some(rest) = msg.strip_prefix(b"FAILED LOGIN ") {
        failed(skip_count(rest), Text(b""))
    } else if let Some(rest) = msg.strip_prefix(b"TOO MANY LOGIN TRIES ") {
        failed(skip_count(rest), Text(b"too many login tries"))
    } else if let Some(rest) = msg.strip_prefix(b"ILLEGAL ROOT LOGIN ") {
        let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        e.user = Some(Text(b"root"));
        e.reason = Some(Text(b"illegal root login"));
        set_where(&mut e, rest);
        Some(e)
    } else if msg.starts_with(b"'") {
        logged_in(msg)
    } else if let Some(rest) = msg.strip_prefix(b"root login") {
        // BusyBox: `root login on 'tty1'[ from 'host']`.
        root_login(rest)
    } else if let Some(rest) = msg.strip_prefix(b"invalid password for '") {
        busybox_failed(rest)
    } else {
        None
    };
    match e {
        Some(e) => e.into(),
        None if is_noise(msg) => Verdict::Noise,
        None => Verdict::Unrecognised,
    }
}

fn is_noise(msg: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"DIALUP ",
        b"TIOCSCTTY failed",
        b"Couldn't ",
        b"unable to determine TTY name",
        b"cannot ",
        b"FATAL: ",
    ];
    PREFIXES.iter().any(|p| msg.starts_with(p))
}

/// `(3) rest` or `3 rest` -> `rest`.
fn skip_count(rest: &[u8]) -> &[u8] {
    let (n, after) = word(rest);
    let n = n.strip_prefix(b"(").unwrap_or(n);
    let n = n.strip_suffix(b")").unwrap_or(n);
    if !n.is_empty() && n.iter().all(u8::is_ascii_digit) {
        after
    } else {
        rest
    }
}

/// After `ROOT LOGIN `: shadow's ` on '/dev/tty1'[ from 'host']`, util-linux's `ON tty1[ FROM
/// host]`, BSD's `tty1[ FROM host]`.
fn root_login(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let mut e = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
    e.user = Some(Text(b"root"));
    let rest = rest.trim_ascii_start();
    if rest.is_empty() {
        return Some(e);
    }
    set_where(&mut e, rest);
    Some(e)
}

/// After `LOGIN ON `: `tty1 BY alice[ FROM host]` (util-linux, `pw_name`: a real account).
fn login_on(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (tty, after) = split_once(rest, b" BY ")?;
    let mut e = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
    e.tty = tty_field(tty);
    let (who, host) = match rsplit_once(after, b" FROM ") {
        Some((w, h)) => (w, Some(h)),
        None => (after, None),
    };
    e.user = user(who);
    if let Some(h) = host {
        e.source = parse_source(h);
    }
    Some(e)
}

/// BusyBox, after `invalid password for '`: `<user>' on '<tty>'[ from '<host>']`, logged when the
/// third attempt failed (only the last name tried is named). `UNKNOWN` stands for a name that
/// does not exist. The name is typed: the last `' on '` ends it.
fn busybox_failed(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (who, place) = rsplit_once(rest, b"' on '")?;
    let unknown = who == b"UNKNOWN";
    let mut e = LoginEvent::new(
        if unknown {
            Action::InvalidUser
        } else {
            Action::AuthFailure
        },
        Outcome::Failure,
    );
    if !unknown {
        e.user = user(who);
    }
    e.reason = Some(Text(b"invalid password"));
    // `place` follows the separator `' on '`; hand `on '<tty>'[ from '<host>']` to `set_where`.
    let at = rest.len() - place.len() - b"on '".len();
    set_where(&mut e, &rest[at..]);
    Some(e)
}

/// shadow: `'alice' logged in  on '/dev/tty1'[ from 'host']`.
fn logged_in(msg: &[u8]) -> Option<LoginEvent<'_>> {
    let rest = msg.strip_prefix(b"'")?;
    let (who, place) = rsplit_once(rest, b"' logged in")?;
    let mut e = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
    e.user = user(who);
    set_where(&mut e, place.trim_ascii_start());
    Some(e)
}

/// Where a login happened, in any of the forms: `on '/dev/tty1'[ from 'host']`, `ON tty1[ FROM
/// host]`, `FROM host-or-tty`, `tty1[ FROM host]`. Sets `tty` and `source`.
fn set_where<'a>(e: &mut LoginEvent<'a>, s: &'a [u8]) {
    let s = s.trim_ascii();
    if let Some(r) = s.strip_prefix(b"on '") {
        let (t, after) = split_once(r, b"'").unwrap_or((r, b""));
        e.tty = tty_field(t);
        if let Some(h) = after.trim_ascii_start().strip_prefix(b"from '") {
            let h = h.strip_suffix(b"'").unwrap_or(h);
            e.source = parse_source(h);
        }
        return;
    }
    if let Some(r) = s.strip_prefix(b"from '") {
        let h = r.strip_suffix(b"'").unwrap_or(r);
        e.source = parse_source(h);
        return;
    }
    if let Some(r) = s.strip_prefix(b"FROM ") {
        set_host_or_tty(e, r);
        return;
    }
    let s = s.strip_prefix(b"ON ").unwrap_or(s);
    let (t, after) = match split_once(s, b" FROM ") {
        Some((t, h)) => (t, Some(h)),
        None => (s, None),
    };
    e.tty = tty_field(t);
    if let Some(h) = after {
        e.source = parse_source(h);
    }
}

/// util-linux's `FROM x`: the remote host, or the tty name for a local login.
fn set_host_or_tty<'a>(e: &mut LoginEvent<'a>, x: &'a [u8]) {
    if looks_like_tty(x) {
        e.tty = tty_field(x);
    } else {
        e.source = parse_source(x);
    }
}

/// The failures, after the count: `<where> FOR <user>, <reason>` (util-linux) or `<where> FOR
/// '<user>'[, <reason>]` (shadow). `<where>` holds no typed text; the user does, so the where part
/// ends at the first ` FOR ` and the reason at the last `, `.
fn failed<'a>(rest: &'a [u8], fixed_reason: Text<'static>) -> Option<LoginEvent<'a>> {
    let (place, who_why) = if let Some(r) = rest.strip_prefix(b"FOR ") {
        (&b""[..], r)
    } else {
        split_once(rest, b" FOR ")?
    };
    let (who, why) = if let Some(q) = who_why.strip_prefix(b"'") {
        match rsplit_once(q, b"', ") {
            Some((w, why)) => (w, why),
            None => (q.strip_suffix(b"'").unwrap_or(q), &b""[..]),
        }
    } else {
        match rsplit_once(who_why, b", ") {
            Some((w, why)) => (w, why),
            None => (who_why, &b""[..]),
        }
    };
    let unknown = who == b"UNKNOWN" || who == b"(unknown)";
    let action = if unknown {
        Action::InvalidUser
    } else {
        Action::AuthFailure
    };
    let mut e = LoginEvent::new(action, Outcome::Failure);
    if !unknown {
        e.user = user(who);
    }
    e.reason = if fixed_reason.is_empty() {
        user(why)
    } else {
        Some(fixed_reason)
    };
    set_where(&mut e, place);
    Some(e)
}

/// `/dev/tty1` -> `tty1`; nothing for an empty or placeholder name.
fn tty_field(t: &[u8]) -> Option<Text<'_>> {
    let t = t.trim_ascii();
    let t = t.strip_prefix(b"/dev/").unwrap_or(t);
    match t {
        b"" | b"UNKNOWN" | b"???" | b"<unknown>" => None,
        t => Some(Text(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use crate::parse::fields::v4;
    use crate::parse::test_support::{event, test_context};
    use crate::parse::{Parsed, parse_line};

    fn ev(msg: &str) -> LoginEvent<'_> {
        event(parse(msg.as_bytes()), msg)
    }

    fn t(s: &str) -> Option<Text<'_>> {
        Some(Text(s.as_bytes()))
    }

    #[test]
    fn root_login_forms() {
        for (msg, tty, src) in [
            ("ROOT LOGIN  on '/dev/tty1'", "tty1", None),
            (
                "ROOT LOGIN  on '/dev/pts/3' from 'gw.example.net'",
                "pts/3",
                Some(Source::Domain(Text(b"gw.example.net"))),
            ),
            ("ROOT LOGIN ON tty1", "tty1", None),
            (
                "ROOT LOGIN ON pts/0 FROM 192.0.2.4",
                "pts/0",
                Some(Source::Ip(v4(192, 0, 2, 4))),
            ),
            (
                "ROOT LOGIN ttyp0 FROM host.example",
                "ttyp0",
                Some(Source::Domain(Text(b"host.example"))),
            ),
            ("ROOT LOGIN console", "console", None),
        ] {
            let e = ev(msg);
            assert_eq!(
                (e.action, e.outcome),
                (Action::AuthSuccess, Outcome::Success),
                "{msg}"
            );
            assert_eq!(e.user, t("root"), "{msg}");
            assert_eq!(e.tty, t(tty), "{msg}");
            assert_eq!(e.source, src, "{msg}");
        }
    }

    #[test]
    fn user_login_forms() {
        let e = ev("LOGIN ON tty1 BY alice");
        assert_eq!(e.action, Action::AuthSuccess);
        assert_eq!(e.user, t("alice"));
        assert_eq!(e.tty, t("tty1"));
        assert_eq!(e.source, None);
        let e = ev("LOGIN ON pts/0 BY alice FROM 2001:db8::7");
        assert_eq!(e.user, t("alice"));
        assert_eq!(e.source, Some(Source::Ip("2001:db8::7".parse().unwrap())));
        let e = ev("'alice' logged in  on '/dev/tty2'");
        assert_eq!(e.action, Action::AuthSuccess);
        assert_eq!(e.user, t("alice"));
        assert_eq!(e.tty, t("tty2"));
        let e = ev("'alice' logged in  on '/dev/pts/1' from '198.51.100.2'");
        assert_eq!(e.source, Some(Source::Ip(v4(198, 51, 100, 2))));
    }

    #[test]
    fn shadow_failures() {
        let e = ev("FAILED LOGIN (1) on '/dev/pts/1' FOR 'atbob', Authentication failure");
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!(e.user, t("atbob"));
        assert_eq!(e.tty, t("pts/1"));
        assert_eq!(e.reason, t("Authentication failure"));
        assert_eq!(e.count, 1);
        let e = ev(
            "FAILED LOGIN (1) on '/dev/tty1' FOR 'UNKNOWN', User not known to the underlying authentication module",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::InvalidUser, Outcome::Failure)
        );
        assert_eq!(e.user, None);
        assert_eq!(e.tty, t("tty1"));
        assert_eq!(
            e.reason,
            t("User not known to the underlying authentication module")
        );
        let e = ev(
            "FAILED LOGIN (2) on '/dev/pts/4' from '203.0.113.8' FOR 'root', Authentication failure",
        );
        assert_eq!(e.source, Some(Source::Ip(v4(203, 0, 113, 8))));
        assert_eq!(e.tty, t("pts/4"));
        assert_eq!(e.user, t("root"));
        let e = ev("TOO MANY LOGIN TRIES (3) on '/dev/tty1' FOR 'root'");
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, t("root"));
        assert_eq!(e.tty, t("tty1"));
        assert_eq!(e.reason, t("too many login tries"));
    }

    #[test]
    fn util_linux_failures() {
        let e = ev("FAILED LOGIN 1 FROM tty1 FOR root, Authentication failure");
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, t("root"));
        assert_eq!(e.tty, t("tty1"));
        assert_eq!(e.source, None);
        assert_eq!(e.reason, t("Authentication failure"));
        let e = ev("FAILED LOGIN 2 FROM 192.0.2.33 FOR bob, Authentication failure");
        assert_eq!(e.source, Some(Source::Ip(v4(192, 0, 2, 33))));
        assert_eq!(e.tty, None);
        let e = ev(
            "FAILED LOGIN 1 FROM tty3 FOR (unknown), User not known to the underlying authentication module",
        );
        assert_eq!(e.action, Action::InvalidUser);
        assert_eq!(e.user, None);
        let e = ev(
            "TOO MANY LOGIN TRIES (5) FROM pts/2 FOR root, Have exhausted maximum number of retries for service",
        );
        assert_eq!(e.user, t("root"));
        assert_eq!(e.tty, t("pts/2"));
        let e = ev("FAILED LOGIN SESSION FROM tty1 FOR root, Authentication failure");
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.reason, t("failed login session"));
    }

    #[test]
    fn hostile_user_names() {
        // Typed names come after FOR: the where part cannot be planted.
        let e = ev(
            "FAILED LOGIN (1) on '/dev/tty1' FOR 'x FOR y from '6.6.6.6'', Authentication failure",
        );
        assert_eq!(e.user, t("x FOR y from '6.6.6.6'"));
        assert_eq!(e.source, None);
        assert_eq!(e.tty, t("tty1"));
        let e = ev("FAILED LOGIN 1 FROM tty1 FOR a, b, Authentication failure");
        assert_eq!(e.user, t("a, b"));
        assert_eq!(e.reason, t("Authentication failure"));
    }

    #[test]
    fn other_lines() {
        assert_eq!(parse(b"DIALUP AT ttyS0 BY alice"), Verdict::Noise);
        assert_eq!(parse(b"something"), Verdict::Unrecognised);
        assert_eq!(parse(b"FAILED LOGIN "), Verdict::Unrecognised);
        assert_eq!(parse(b"LOGIN ON tty1"), Verdict::Unrecognised);
        let e = ev("ILLEGAL ROOT LOGIN  on '/dev/ttyS1'");
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.tty, t("ttyS1"));
        let m = b"FAILED LOGIN (1) on '/dev/pts/4' from '203.0.113.8' FOR 'root', Authentication failure";
        for i in 0..m.len() {
            let _ = parse(&m[..i]);
        }
    }

    /// BusyBox `loginutils/login.c` (Alpine's, OpenWrt's and most embedded systems' login):
    /// `syslog(LOG_INFO, "root login%s", fromhost)` after a root login, `syslog(LOG_WARNING,
    /// "invalid password for '%s'%s", username, fromhost)` when the third attempt failed, where
    /// `fromhost` is ` on '<tty>'[ from '<host>']` (`skip_dev_pfx`: no `/dev/`) and an unknown
    /// name is logged as `UNKNOWN`; with PAM, `"pam_%s call failed: %s (%d)"` before it.
    #[test]
    fn busybox_login() {
        let e = ev("root login on 'tty1'");
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthSuccess, Outcome::Success)
        );
        assert_eq!((e.user, e.tty, e.source), (t("root"), t("tty1"), None));
        let e = ev("root login on 'pts/0' from '203.0.113.8'");
        assert_eq!(e.tty, t("pts/0"));
        assert_eq!(e.source, Some(Source::Ip(v4(203, 0, 113, 8))));

        let e = ev("invalid password for 'alice' on 'ttyS0'");
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!((e.user, e.tty), (t("alice"), t("ttyS0")));
        assert_eq!(e.reason, t("invalid password"));
        let e = ev("invalid password for 'UNKNOWN' on 'pts/1' from 'gw.example.net'");
        assert_eq!(e.action, Action::InvalidUser);
        assert_eq!(e.user, None);
        assert_eq!(e.source, Some(Source::Domain(Text(b"gw.example.net"))));
        // A typed name holding the separator: the last `' on '` ends it.
        let e = ev("invalid password for 'x' on 'evil' on 'tty2'");
        assert_eq!((e.user, e.tty), (t("x' on 'evil"), t("tty2")));

        let ctx = test_context();
        let Parsed::Event(e) = parse_line(
            b"Nov 28 07:58:17 alpine1 authpriv.warn login[2101]: pam_authenticate call failed: Authentication failure (7)",
            &ctx,
        ) else {
            panic!()
        };
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!(e.reason, t("Authentication failure"));
        assert_eq!(e.program, Text(b"login"));
        assert!(matches!(
            parse_line(
                b"Nov 28 07:58:17 alpine1 login[2101]: pam_set_item(TTY) call failed: Bad item passed to pam_*_item() (29)",
                &ctx
            ),
            Parsed::Noise { .. }
        ));
    }

    #[test]
    fn through_dispatch() {
        let ctx = test_context();
        let Parsed::Event(e) = parse_line(
            b"2026-11-28T07:58:15.047160+00:00 testhost login[5084]: FAILED LOGIN (1) on '/dev/pts/1' FOR 'atbob', Authentication failure",
            &ctx,
        ) else {
            panic!()
        };
        assert_eq!(e.program, Text(b"login"));
        assert_eq!(e.pid, Some(5084));
        assert_eq!(e.user, t("atbob"));
        let Parsed::Event(e) = parse_line(
            b"Nov 28 07:58:17 testhost login[5293]: FAILED LOGIN (1) on '/dev/pts/0' FOR 'UNKNOWN', Authentication failure",
            &ctx,
        ) else {
            panic!()
        };
        assert_eq!(e.action, Action::InvalidUser);
    }
}
