//! su's own lines, in the three implementations found in the wild:
//!
//! - util-linux (`login-utils/su-common.c`, Debian, Fedora, RHEL 7+): `(to root) alice on pts/0`
//!   and `FAILED SU (to root) bob on pts/1`; the tty is `none` without a terminal.
//! - shadow-utils (`src/su.c`, `libmisc/sulog.c`, older Debian and Slackware): `Successful su for
//!   root by alice`, `FAILED su for root by bob`, with `SYSLOG_SU_ENAB` also `+ pts/0
//!   alice:root` / `- pts/1 bob:root`, and from old releases `BAD SU bob to root on /dev/pts/1`
//!   and `Authentication failed for root`.
//! - BusyBox (`loginutils/su.c`): `+ pts/0 alice:root` / `- pts/0 bob:root`.
//! - BSD (FreeBSD/NetBSD/OpenBSD `usr.bin/su/su.c`): `alice to root on /dev/ttyp1` (`"%s to
//!   %s%s", username, user, ontty()`) and `BAD SU bob to root on /dev/ttyp1`.
//! - Solaris (`cmd/su/su.c`): `'su root' succeeded for alice on /dev/pts/2`, `'su root' failed
//!   for bob on /dev/pts/3`.
//! - IRIX-style: `ttyq4 changing from alice to root`, `failed: ttyq4 changing from bob to root`.
//!
//! `user` is the invoker, `target_user` the account switched to. The target is what the invoker
//! typed (it may not exist and may hold anything), the invoker and tty are what the system knows;
//! so each form is split from the side of the known fields.

use super::Verdict;
use super::fields::{rsplit_once, split_once, user, word};
use crate::event::{Action, LoginEvent, Outcome};
use crate::text::Text;

pub(crate) fn parse(msg: &[u8]) -> Verdict<'_> {
    let msg = msg.trim_ascii_end();
    let e = if let Some(rest) = msg.strip_prefix(b"(to ") {
        util_linux(rest, Outcome::Success)
    } else if let Some(rest) = msg.strip_prefix(b"FAILED SU (to ") {
        util_linux(rest, Outcome::Failure)
    } else if let Some(rest) = msg.strip_prefix(b"Successful su for ") {
        for_by(rest, Outcome::Success)
    } else if let Some(rest) = msg.strip_prefix(b"FAILED su for ") {
        for_by(rest, Outcome::Failure)
    } else if let Some(rest) = msg.strip_prefix(b"+ ") {
        sulog(rest, Outcome::Success)
    } else if let Some(rest) = msg.strip_prefix(b"- ") {
        sulog(rest, Outcome::Failure)
    } else if let Some(rest) = msg.strip_prefix(b"BAD SU ") {
        bad_su(rest)
    } else if let Some(rest) = msg.strip_prefix(b"failed: ") {
        changing_from(rest, Outcome::Failure)
    } else if let Some(rest) = msg.strip_prefix(b"'su ") {
        solaris(rest)
    } else if let Some(e) = changing_from(msg, Outcome::Success) {
        Some(e)
    } else if let Some(rest) = msg.strip_prefix(b"Authentication failed for ") {
        let mut e = LoginEvent::new(Action::Su, Outcome::Failure);
        e.target_user = user(rest);
        e.reason = Some(Text(b"authentication failed"));
        Some(e)
    } else {
        bsd(msg)
    };
    match e {
        Some(e) => e.into(),
        None if is_noise(msg) => Verdict::Noise,
        None => Verdict::Unrecognised,
    }
}

/// Known su lines that report nothing (`pam_*` lines go to the PAM parser before this).
fn is_noise(msg: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"cannot open session",
        b"Warning: ",
        b"cannot set groups",
        b"failed to ",
    ];
    PREFIXES.iter().any(|p| msg.starts_with(p))
}

/// `<target>) <invoker> on <tty>` after `(to `.
fn util_linux(rest: &[u8], outcome: Outcome) -> Option<LoginEvent<'_>> {
    let (head, tty) = rsplit_once(rest, b" on ")?;
    let (target, invoker) = rsplit_once(head, b") ")?;
    let mut e = LoginEvent::new(Action::Su, outcome);
    e.target_user = user(target);
    e.user = user(invoker);
    e.tty = tty_field(tty);
    Some(e)
}

/// shadow's sulog: `<target> by <invoker>`.
fn for_by(rest: &[u8], outcome: Outcome) -> Option<LoginEvent<'_>> {
    let (target, invoker) = rsplit_once(rest, b" by ")?;
    let mut e = LoginEvent::new(Action::Su, outcome);
    e.target_user = user(target);
    e.user = user(invoker);
    Some(e)
}

/// `<tty> <invoker>:<target>` after `+ ` or `- ` (shadow with SYSLOG_SU_ENAB, BusyBox).
fn sulog(rest: &[u8], outcome: Outcome) -> Option<LoginEvent<'_>> {
    let (tty, names) = word(rest);
    let (invoker, target) = split_once(names, b":")?;
    if tty.is_empty() {
        return None;
    }
    let mut e = LoginEvent::new(Action::Su, outcome);
    e.user = user(invoker);
    e.target_user = user(target);
    e.tty = tty_field(tty);
    Some(e)
}

/// `<invoker> to <target> on <tty>` after `BAD SU ` (also without ` on <tty>`).
fn bad_su(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (head, tty) = match rsplit_once(rest, b" on ") {
        Some((h, t)) => (h, Some(t)),
        None => (rest, None),
    };
    let (invoker, target) = split_once(head, b" to ")?;
    let mut e = LoginEvent::new(Action::Su, Outcome::Failure);
    e.user = user(invoker);
    e.target_user = user(target);
    e.tty = tty.and_then(tty_field);
    Some(e)
}

/// `<tty> changing from <invoker> to <target>`.
fn changing_from(rest: &[u8], outcome: Outcome) -> Option<LoginEvent<'_>> {
    let (tty, names) = split_once(rest, b" changing from ")?;
    if tty.is_empty() || memchr::memchr(b' ', tty).is_some() {
        return None;
    }
    let (invoker, target) = rsplit_once(names, b" to ")?;
    let mut e = LoginEvent::new(Action::Su, outcome);
    e.user = user(invoker);
    e.target_user = user(target);
    e.tty = tty_field(tty);
    Some(e)
}

/// After `'su `: `<target>' succeeded|failed for <invoker> on <tty>`.
fn solaris(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (target, after) = split_once(rest, b"' ")?;
    let (outcome, after) = if let Some(a) = after.strip_prefix(b"succeeded for ") {
        (Outcome::Success, a)
    } else {
        (Outcome::Failure, after.strip_prefix(b"failed for ")?)
    };
    let (invoker, tty) = match rsplit_once(after, b" on ") {
        Some((i, t)) => (i, Some(t)),
        None => (after, None),
    };
    let mut e = LoginEvent::new(Action::Su, outcome);
    e.user = user(invoker);
    e.target_user = user(target);
    e.tty = tty.and_then(tty_field);
    Some(e)
}

/// BSD's success line `<invoker> to <target>[ on <tty>]`: the invoker is a login name (one
/// word), the tty a device path.
fn bsd(msg: &[u8]) -> Option<LoginEvent<'_>> {
    let (head, tty) = match rsplit_once(msg, b" on ") {
        Some((h, t)) if t.starts_with(b"/dev/") => (h, Some(t)),
        _ => (msg, None),
    };
    let (invoker, target) = split_once(head, b" to ")?;
    if invoker.is_empty() || memchr::memchr(b' ', invoker).is_some() || target.is_empty() {
        return None;
    }
    let mut e = LoginEvent::new(Action::Su, Outcome::Success);
    e.user = user(invoker);
    e.target_user = user(target);
    e.tty = tty.and_then(tty_field);
    Some(e)
}

/// A tty as su writes it: `pts/0`, `/dev/pts/0`, `none` or `???` when there is none.
fn tty_field(t: &[u8]) -> Option<Text<'_>> {
    let t = t.strip_prefix(b"/dev/").unwrap_or(t);
    match t {
        b"" | b"none" | b"???" | b"unknown" => None,
        t => Some(Text(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::{event, test_context};
    use crate::parse::{Parsed, parse_line};

    fn ev(msg: &str) -> LoginEvent<'_> {
        event(parse(msg.as_bytes()), msg)
    }

    fn check(e: &LoginEvent<'_>, outcome: Outcome, who: &str, target: &str, tty: Option<&str>) {
        assert_eq!(e.action, Action::Su);
        assert_eq!(e.outcome, outcome);
        assert_eq!(e.user, Some(Text(who.as_bytes())));
        assert_eq!(e.target_user, Some(Text(target.as_bytes())));
        assert_eq!(e.tty, tty.map(|t| Text(t.as_bytes())));
    }

    #[test]
    fn util_linux_forms() {
        check(
            &ev("(to root) alice on pts/0"),
            Outcome::Success,
            "alice",
            "root",
            Some("pts/0"),
        );
        check(
            &ev("FAILED SU (to root) bob on pts/1"),
            Outcome::Failure,
            "bob",
            "root",
            Some("pts/1"),
        );
        check(
            &ev("(to atbob) root on none"),
            Outcome::Success,
            "root",
            "atbob",
            None,
        );
        check(
            &ev("FAILED SU (to x) y on none"),
            Outcome::Failure,
            "y",
            "x",
            None,
        );
    }

    #[test]
    fn shadow_forms() {
        check(
            &ev("Successful su for root by alice"),
            Outcome::Success,
            "alice",
            "root",
            None,
        );
        check(
            &ev("FAILED su for root by bob"),
            Outcome::Failure,
            "bob",
            "root",
            None,
        );
        check(
            &ev("+ pts/0 alice:root"),
            Outcome::Success,
            "alice",
            "root",
            Some("pts/0"),
        );
        check(
            &ev("- pts/1 bob:root"),
            Outcome::Failure,
            "bob",
            "root",
            Some("pts/1"),
        );
        check(
            &ev("BAD SU bob to root on /dev/pts/1"),
            Outcome::Failure,
            "bob",
            "root",
            Some("pts/1"),
        );
        let e = ev("Authentication failed for root");
        assert_eq!((e.action, e.outcome), (Action::Su, Outcome::Failure));
        assert_eq!(e.target_user, Some(Text(b"root")));
        assert_eq!(e.user, None);
    }

    #[test]
    fn busybox_through_dispatch() {
        let ctx = test_context();
        let Parsed::Event(e) = parse_line(b"Nov 28 07:00:00 router su: + pts/0 alice:root", &ctx)
        else {
            panic!()
        };
        check(&e, Outcome::Success, "alice", "root", Some("pts/0"));
        assert_eq!(e.program, Text(b"su"));
        let Parsed::Event(e) = parse_line(
            b"2026-11-28T07:58:04.816999+00:00 testhost su[4684]: FAILED SU (to atbob) atalice on pts/1",
            &ctx,
        ) else {
            panic!()
        };
        check(&e, Outcome::Failure, "atalice", "atbob", Some("pts/1"));
        assert_eq!(e.pid, Some(4684));
    }

    #[test]
    fn hostile_targets() {
        // The target is typed by the invoker: split from the known side.
        check(
            &ev("(to x) mallory on pts/7) root on pts/0"),
            Outcome::Success,
            "root",
            "x) mallory on pts/7",
            Some("pts/0"),
        );
        check(
            &ev("Successful su for a by b by alice"),
            Outcome::Success,
            "alice",
            "a by b",
            None,
        );
        check(
            &ev("+ pts/0 alice:ro:ot"),
            Outcome::Success,
            "alice",
            "ro:ot",
            Some("pts/0"),
        );
    }

    #[test]
    fn unrecognised_and_cut() {
        assert_eq!(parse(b"hello"), Verdict::Unrecognised);
        assert_eq!(parse(b"(to root) alice"), Verdict::Unrecognised);
        assert_eq!(parse(b"+ "), Verdict::Unrecognised);
        assert_eq!(parse(b"- pts/0"), Verdict::Unrecognised);
        assert_eq!(parse(b"BAD SU bob"), Verdict::Unrecognised);
        let m = b"FAILED SU (to root) bob on pts/1";
        for i in 0..m.len() {
            let _ = parse(&m[..i]);
        }
    }
}
