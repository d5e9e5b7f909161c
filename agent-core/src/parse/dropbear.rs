//! Dropbear SSH server (`svr-main.c`, `svr-auth.c`, `svr-authpasswd.c`, `svr-authpam.c`,
//! `svr-authpubkey.c`, `svr-session.c`), as on OpenWrt, BusyBox-based systems and initramfs
//! unlockers.
//!
//! Dropbear writes the client as `<host>:<port>` (`svr_ses.addrstring`, `"%s:%s"` from a numeric
//! `getnameinfo`), so an IPv6 client is `2001:db8::1:41234`: the port is after the *last* colon.
//! `[2001:db8::1]:41234` is accepted too. Exit lines put the address in angle brackets first:
//! `Exit before auth from <192.0.2.5:41234>: (user 'root', 3 fails): Max auth tries reached -
//! user 'root'`. A user name (in quotes) is what the client sent and may hold anything, including
//! ` from `: the address is taken from the end of the line, and the name between the first quote
//! and the last `' ` before the address part.
//!
//! Decisions: `Exit (user) from <addr>: ...` (after authentication) is a `Disconnect` with outcome
//! success; `Exit before auth` is a `Disconnect` with outcome failure, except when the reason is
//! `Max auth tries reached`, which is an `AuthFailure`. `Login attempt for nonexistent user` is
//! `InvalidUser` (recent dropbear no longer logs the name). `Auth succeeded with blank password`
//! is method `none` (the SSH `none` request).

use super::Verdict;
use super::fields::{parse_ip, parse_port, rsplit_once, split_once, user};
use crate::event::{Action, LoginEvent, Method, Outcome, Source};
use crate::text::Text;

pub(crate) fn parse(msg: &[u8]) -> Verdict<'_> {
    let msg = strip_own_stamp(msg.trim_ascii());
    match recognise(msg) {
        Some(e) => e.into(),
        None if is_noise(msg) => Verdict::Noise,
        None => Verdict::Unrecognised,
    }
}

fn recognise(msg: &[u8]) -> Option<LoginEvent<'_>> {
    if let Some(rest) = sp(msg, b"Child connection from ") {
        let mut e = LoginEvent::new(Action::Connection, Outcome::Unknown);
        set_addr(&mut e, rest).map(|()| e)
    } else if let Some(rest) = sp(msg, b"Password auth succeeded for ") {
        password(rest, Action::AuthSuccess, Outcome::Success)
    } else if let Some(rest) = sp(msg, b"PAM password auth succeeded for ") {
        password(rest, Action::AuthSuccess, Outcome::Success)
    } else if let Some(rest) = sp(msg, b"Bad password attempt for ") {
        password(rest, Action::AuthFailure, Outcome::Failure)
    } else if let Some(rest) = sp(msg, b"Bad PAM password attempt for ") {
        password(rest, Action::AuthFailure, Outcome::Failure)
    } else if let Some(rest) = sp(msg, b"Too-long password attempt for ") {
        password(rest, Action::AuthFailure, Outcome::Failure).map(|mut e| {
            e.reason = Some(Text(b"too-long password"));
            e
        })
    } else if let Some(rest) = sp(msg, b"Auth succeeded with blank password for ") {
        password(rest, Action::AuthSuccess, Outcome::Success).map(|mut e| {
            e.method = Some(Method::None);
            e.reason = Some(Text(b"blank password"));
            e
        })
    } else if let Some(rest) = sp(msg, b"Login attempt for nonexistent user") {
        nonexistent(rest)
    } else if let Some(rest) = sp(msg, b"Login attempt with wrong user ") {
        let (who, addr) = rsplit_once(rest, b" from ")?;
        let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        set_addr(&mut e, addr)?;
        e.user = user(who);
        e.reason = Some(Text(b"wrong user for a non-root server"));
        Some(e)
    } else if let Some(rest) = sp(msg, b"Pubkey auth succeeded for ") {
        pubkey(rest, Action::AuthSuccess, Outcome::Success)
    } else if let Some(rest) = sp(msg, b"Pubkey auth bad signature for ") {
        pubkey(rest, Action::AuthFailure, Outcome::Failure).map(|mut e| {
            e.reason = Some(Text(b"bad signature"));
            e
        })
    } else if let Some(rest) = sp(msg, b"Pubkey auth attempt with unknown algo for ") {
        password(rest, Action::AuthFailure, Outcome::Failure).map(|mut e| {
            e.method = Some(Method::Publickey);
            e.reason = Some(Text(b"unknown key algorithm"));
            e
        })
    } else if let Some(rest) = sp(msg, b"Exit before auth") {
        exit_before_auth(rest)
    } else if let Some(rest) = sp(msg, b"Exit (") {
        exit_after_auth(rest)
    } else if let Some(rest) = sp(msg, b"Early exit") {
        let mut e = LoginEvent::new(Action::Disconnect, Outcome::Failure);
        let rest = match rest.strip_prefix(b" from <") {
            Some(r) => {
                let (addr, after) = split_once(r, b">")?;
                set_addr(&mut e, addr)?;
                after
            }
            None => rest,
        };
        let why = rest.strip_prefix(b": ").unwrap_or(rest);
        e.reason = user(why);
        // `Early exit: Terminated by signal` in the listener has no client: Noise.
        e.source.map(|_| e)
    } else if let Some(rest) = sp(msg, b"Max auth tries reached - user ") {
        max_tries(rest)
    } else if let Some(rest) = sp(msg, b"User account ") {
        refused_user(rest, b" is locked", Text(b"account locked"))
    } else if let Some(rest) = sp(msg, b"User ") {
        refused_user(
            rest,
            b" has blank password, rejected",
            Text(b"blank password"),
        )
        .or_else(|| {
            refused_user(
                rest,
                b" has invalid shell, rejected",
                Text(b"invalid shell"),
            )
        })
    } else if msg == b"root login rejected" {
        let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        e.reason = Some(Text(b"root login rejected"));
        Some(e)
    } else if let Some(rest) = sp(msg, b"Logins are restricted to the group ") {
        let (_, after) = split_once(rest, b" but user ")?;
        let (who, _) = rsplit_once(after, b" is not a member")?;
        let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        e.user = user(unquote(who));
        e.reason = Some(Text(b"not in the allowed group"));
        Some(e)
    } else {
        None
    }
}

/// `prefix` at the start of `msg`, the first letter in either case: dropbear before 0.50 wrote
/// its messages in lower case (`bad password attempt for`, `exit before auth`).
fn sp<'a>(msg: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (&first, rest) = prefix.split_first()?;
    match msg.split_first() {
        Some((&c, tail)) if c.eq_ignore_ascii_case(&first) => tail.strip_prefix(rest),
        _ => None,
    }
}

/// Dropbear's own stderr format, `[<pid>] <Mon DD HH:MM:SS> <message>` (`svr-main.c`
/// `svr_dropbear_log` with `-E`), when a supervisor sends that stderr to syslog: the repeated
/// pid and date are dropped.
fn strip_own_stamp(msg: &[u8]) -> &[u8] {
    let Some(rest) = msg.strip_prefix(b"[") else {
        return msg;
    };
    let Some((pid, after)) = split_once(rest, b"] ") else {
        return msg;
    };
    if pid.is_empty() || !pid.iter().all(u8::is_ascii_digit) {
        return msg;
    }
    // `Nov 28 06:56:00 ` (the day may be space-padded).
    match after {
        [
            m0,
            m1,
            m2,
            b' ',
            d0,
            d1,
            b' ',
            h0,
            h1,
            b':',
            _,
            _,
            b':',
            _,
            _,
            b' ',
            rest @ ..,
        ] if m0.is_ascii_uppercase()
            && m1.is_ascii_lowercase()
            && m2.is_ascii_lowercase()
            && (d0.is_ascii_digit() || *d0 == b' ')
            && d1.is_ascii_digit()
            && h0.is_ascii_digit()
            && h1.is_ascii_digit() =>
        {
            rest
        }
        _ => msg,
    }
}

fn is_noise(msg: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"Not backgrounding",
        b"Running in background",
        b"Failed listening on",
        b"Premature exit",
        b"Generated hostkey",
        b"Generating ",
        b"Failed loading ",
        b"Early exit",
        b"Exit from ",
        b"Failed reading ",
        b"Disallowed ",
        b"Warning: ",
        b"Too many groups for user",
        b"successfully loaded and initialized pubkey plugin",
    ];
    PREFIXES.iter().any(|p| msg.starts_with(p))
}

/// `'name'` -> `name` (either quote may be missing if the line was cut).
fn unquote(s: &[u8]) -> &[u8] {
    let s = s.strip_prefix(b"'").unwrap_or(s);
    s.strip_suffix(b"'").unwrap_or(s)
}

/// Sets `source` and `port` from `<host>:<port>` or `[<v6>]:<port>`; `None` if either is bad.
fn set_addr<'a>(e: &mut LoginEvent<'a>, addr: &'a [u8]) -> Option<()> {
    let (host, port) = rsplit_once(addr.trim_ascii(), b":")?;
    let ip = parse_ip(host)?;
    e.port = Some(parse_port(port)?);
    e.source = Some(Source::Ip(ip));
    Some(())
}

/// Splits `'<user>' from <addr>[, extra auth required]` into the quoted part and sets the
/// address.
fn user_from<'a>(e: &mut LoginEvent<'a>, rest: &'a [u8]) -> Option<&'a [u8]> {
    let (rest, partial) = match rest.strip_suffix(b", extra auth required") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (head, addr) = rsplit_once(rest, b" from ")?;
    set_addr(e, addr)?;
    if partial {
        e.action = Action::Other;
        e.outcome = Outcome::Unknown;
        e.reason = Some(Text(b"partial authentication, extra auth required"));
    }
    Some(head)
}

/// `'<user>' from <addr>` for the password messages.
fn password(rest: &[u8], action: Action, outcome: Outcome) -> Option<LoginEvent<'_>> {
    let mut e = LoginEvent::new(action, outcome);
    let head = user_from(&mut e, rest)?;
    e.user = user(unquote(head));
    e.method = Some(Method::Password);
    Some(e)
}

/// `'<user>' with <type> key <fingerprint> from <addr>` (2020+), `'<user>' with key <fingerprint>
/// from <addr>` (older, the fingerprint may be `md5 0f:..`).
fn pubkey(rest: &[u8], action: Action, outcome: Outcome) -> Option<LoginEvent<'_>> {
    let mut e = LoginEvent::new(action, outcome);
    let head = user_from(&mut e, rest)?;
    let (quoted, key) = rsplit_once(head, b"' with ")?;
    e.user = user(quoted.strip_prefix(b"'").unwrap_or(quoted));
    e.method = Some(Method::Publickey);
    let (key_type, fingerprint) = match key.strip_prefix(b"key ") {
        Some(fp) => (&b""[..], fp),
        None => split_once(key, b" key ")?,
    };
    e.key_type = user(key_type);
    e.key_fingerprint = user(fingerprint);
    Some(e)
}

/// After `Login attempt for nonexistent user`: ` from <addr>` or ` '<name>' from <addr>`.
fn nonexistent(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let mut e = LoginEvent::new(Action::InvalidUser, Outcome::Failure);
    let (head, addr) = if let Some(addr) = rest.strip_prefix(b" from ") {
        // A name cannot be there: the address is all that follows.
        (&b""[..], addr)
    } else {
        rsplit_once(rest, b" from ")?
    };
    set_addr(&mut e, addr)?;
    e.user = user(unquote(head.trim_ascii()));
    Some(e)
}

/// After `Exit before auth`: ` from <addr>: (user 'x', N fails): why`, ` from <addr>: why`,
/// or the old ` (user 'x', N fails): why` / `: why`.
fn exit_before_auth(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let mut e = LoginEvent::new(Action::Disconnect, Outcome::Failure);
    let rest = match rest.strip_prefix(b" from <") {
        Some(r) => {
            let (addr, after) = split_once(r, b">")?;
            set_addr(&mut e, addr)?;
            after
        }
        None => rest,
    };
    let rest = rest.strip_prefix(b":").unwrap_or(rest).trim_ascii_start();
    let why = if let Some(r) = rest.strip_prefix(b"(user '") {
        // The name is a real account (dropbear only keeps existing users' names).
        let (who, after) = split_once(r, b"', ")?;
        e.user = user(who);
        let (_, why) = split_once(after, b"):")?;
        why.trim_ascii_start()
    } else {
        rest
    };
    if let Some(u) = sp(why, b"Max auth tries reached") {
        e.action = Action::AuthFailure;
        e.reason = Some(Text(b"max auth tries reached"));
        if e.user.is_none()
            && let Some(u) = u.strip_prefix(b" - user ")
        {
            let u = unquote(u);
            if u != b"is invalid" {
                e.user = user(u);
            }
        }
    } else {
        e.reason = user(why);
    }
    Some(e)
}

/// After `Exit (`: `<user>) from <addr>: why` or the old `<user>): why`.
fn exit_after_auth(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (who, after) = split_once(rest, b")")?;
    let mut e = LoginEvent::new(Action::Disconnect, Outcome::Success);
    e.user = user(who);
    let after = match after.strip_prefix(b" from <") {
        Some(r) => {
            let (addr, after) = split_once(r, b">")?;
            set_addr(&mut e, addr)?;
            after
        }
        None => after,
    };
    let why = after.strip_prefix(b":").unwrap_or(after).trim_ascii_start();
    e.reason = user(why);
    Some(e)
}

/// `Max auth tries reached - user '<name>'[ from <addr>]`, logged on its own by some builds.
fn max_tries(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.reason = Some(Text(b"max auth tries reached"));
    let who = match rsplit_once(rest, b" from ") {
        Some((w, addr)) if set_addr(&mut e, addr).is_some() => w,
        _ => rest,
    };
    let who = unquote(who);
    if who != b"is invalid" {
        e.user = user(who);
    }
    Some(e)
}

/// `User account 'x' is locked`, `User 'x' has blank password, rejected`, ...
fn refused_user<'a>(
    rest: &'a [u8],
    suffix: &[u8],
    reason: Text<'static>,
) -> Option<LoginEvent<'a>> {
    let (who, _) = rsplit_once(rest, suffix)?;
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.user = user(unquote(who));
    e.reason = Some(reason);
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::fields::v4;
    use crate::parse::test_support::{event, test_context};
    use crate::parse::{Parsed, parse_line};
    use core::net::IpAddr;

    fn ev(msg: &str) -> LoginEvent<'_> {
        event(parse(msg.as_bytes()), msg)
    }

    fn t(s: &str) -> Option<Text<'_>> {
        Some(Text(s.as_bytes()))
    }

    fn ip4() -> Option<Source<'static>> {
        Some(Source::Ip(v4(192, 0, 2, 5)))
    }

    #[test]
    fn child_connection() {
        let e = ev("Child connection from 192.0.2.5:41234");
        assert_eq!(
            (e.action, e.outcome),
            (Action::Connection, Outcome::Unknown)
        );
        assert_eq!(e.source, ip4());
        assert_eq!(e.port, Some(41234));
        let e = ev("Child connection from 2001:db8::1:41234");
        assert_eq!(
            e.source,
            Some(Source::Ip("2001:db8::1".parse::<IpAddr>().unwrap()))
        );
        assert_eq!(e.port, Some(41234));
        let e = ev("Child connection from [2001:db8::2]:22");
        assert_eq!(
            e.source,
            Some(Source::Ip("2001:db8::2".parse::<IpAddr>().unwrap()))
        );
        let e = ev("Child connection from ::ffff:192.0.2.5:41234");
        assert_eq!(e.source, ip4());
        assert_eq!(
            parse(b"Child connection from 192.0.2.5"),
            Verdict::Unrecognised
        );
        assert_eq!(
            parse(b"Child connection from host:99999"),
            Verdict::Unrecognised
        );
    }

    #[test]
    fn password_lines() {
        let e = ev("Password auth succeeded for 'root' from 192.0.2.5:41234");
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthSuccess, Outcome::Success)
        );
        assert_eq!(e.method, Some(Method::Password));
        assert_eq!(e.user, t("root"));
        assert_eq!(e.source, ip4());
        assert_eq!(e.port, Some(41234));
        let e = ev("Bad password attempt for 'root' from 192.0.2.5:41234");
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!(e.method, Some(Method::Password));
        assert_eq!(e.user, t("root"));
        let e = ev("Bad PAM password attempt for 'bob' from 2001:db8::5:2222");
        assert_eq!(e.user, t("bob"));
        assert_eq!(e.port, Some(2222));
        let e = ev("PAM password auth succeeded for 'bob' from 192.0.2.5:1");
        assert_eq!(e.action, Action::AuthSuccess);
        let e = ev("Password auth succeeded for 'root' from 192.0.2.5:41234, extra auth required");
        assert_eq!(e.action, Action::Other);
        assert_eq!(e.source, ip4());
        let e = ev("Auth succeeded with blank password for 'guest' from 192.0.2.5:3");
        assert_eq!(e.method, Some(Method::None));
        let e = ev("Too-long password attempt for 'root' from 192.0.2.5:3");
        assert_eq!(e.action, Action::AuthFailure);
    }

    #[test]
    fn nonexistent_users() {
        let e = ev("Login attempt for nonexistent user from 192.0.2.5:41234");
        assert_eq!(
            (e.action, e.outcome),
            (Action::InvalidUser, Outcome::Failure)
        );
        assert_eq!(e.user, None);
        assert_eq!(e.source, ip4());
        let e = ev("Login attempt for nonexistent user 'x y' from 192.0.2.5:41234");
        assert_eq!(e.user, t("x y"));
        let e = ev("login attempt for nonexistent user from 192.0.2.5:41234");
        assert_eq!(e.action, Action::InvalidUser);
    }

    #[test]
    fn pubkey_lines() {
        let e = ev(
            "Pubkey auth succeeded for 'root' with ssh-ed25519 key SHA256:abcDEF/123+xyz from 192.0.2.5:41234",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthSuccess, Outcome::Success)
        );
        assert_eq!(e.method, Some(Method::Publickey));
        assert_eq!(e.user, t("root"));
        assert_eq!(e.key_type, t("ssh-ed25519"));
        assert_eq!(e.key_fingerprint, t("SHA256:abcDEF/123+xyz"));
        assert_eq!(e.source, ip4());
        let e = ev("Pubkey auth succeeded for 'root' with key md5 0f:1e:2d from 192.0.2.5:41234");
        assert_eq!(e.key_type, None);
        assert_eq!(e.key_fingerprint, t("md5 0f:1e:2d"));
        let e = ev("Pubkey auth bad signature for 'root' with key SHA256:zz from 192.0.2.5:41234");
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!(e.key_fingerprint, t("SHA256:zz"));
        let e = ev("Pubkey auth attempt with unknown algo for 'root' from 192.0.2.5:41234");
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.method, Some(Method::Publickey));
        assert_eq!(e.user, t("root"));
    }

    #[test]
    fn exits() {
        let e = ev("Exit (root) from <192.0.2.5:41234>: Disconnect received");
        assert_eq!(
            (e.action, e.outcome),
            (Action::Disconnect, Outcome::Success)
        );
        assert_eq!(e.user, t("root"));
        assert_eq!(e.source, ip4());
        assert_eq!(e.port, Some(41234));
        assert_eq!(e.reason, t("Disconnect received"));
        let e = ev("Exit (root): Exited normally");
        assert_eq!(e.source, None);
        assert_eq!(e.user, t("root"));
        let e = ev("Exit before auth from <192.0.2.5:41234>: Exited normally");
        assert_eq!(
            (e.action, e.outcome),
            (Action::Disconnect, Outcome::Failure)
        );
        assert_eq!(e.user, None);
        assert_eq!(e.source, ip4());
        let e = ev(
            "Exit before auth from <192.0.2.5:41234>: (user 'root', 10 fails): Max auth tries reached - user 'root'",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!(e.user, t("root"));
        assert_eq!(e.reason, t("max auth tries reached"));
        let e =
            ev("Exit before auth (user 'root', 10 fails): Max auth tries reached - user 'root'");
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.source, None);
        let e = ev(
            "Exit before auth from <192.0.2.5:41234>: Max auth tries reached - user 'is invalid'",
        );
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, None);
        let e = ev("Early exit from <192.0.2.5:1>: Timeout before auth");
        assert_eq!(e.action, Action::Disconnect);
        assert_eq!(parse(b"Early exit: Terminated by signal"), Verdict::Noise);
    }

    #[test]
    fn refusals() {
        let e = ev("Max auth tries reached - user 'root' from 192.0.2.5:41234");
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!(e.user, t("root"));
        assert_eq!(e.source, ip4());
        let e = ev("User account 'x' is locked");
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, t("x"));
        assert_eq!(e.reason, t("account locked"));
        let e = ev("User 'bob' has invalid shell, rejected");
        assert_eq!(e.user, t("bob"));
        let e = ev("User 'bob' has blank password, rejected");
        assert_eq!(e.reason, t("blank password"));
        let e = ev("root login rejected");
        assert_eq!(e.action, Action::AuthFailure);
        let e = ev("Login attempt with wrong user bob from 192.0.2.5:2");
        assert_eq!(e.user, t("bob"));
        let e = ev("Logins are restricted to the group ssh but user 'bob' is not a member");
        assert_eq!(e.user, t("bob"));
    }

    #[test]
    fn hostile_user_names() {
        let e = ev("Bad password attempt for 'x' from 6.6.6.6:1' from 192.0.2.5:41234");
        assert_eq!(e.source, ip4());
        assert_eq!(e.user, t("x' from 6.6.6.6:1"));
        let e = ev(
            "Pubkey auth succeeded for 'a' with ssh-rsa key F from 6.6.6.6:1' with ssh-ed25519 key SHA256:q from 192.0.2.5:9",
        );
        assert_eq!(e.source, ip4());
        assert_eq!(e.key_fingerprint, t("SHA256:q"));
        assert_eq!(e.user, t("a' with ssh-rsa key F from 6.6.6.6:1"));
        // A trailing fake address that does not parse makes the line unrecognised, not wrong.
        assert_eq!(
            parse(b"Bad password attempt for 'x' from 192.0.2.5:41234 from nowhere"),
            Verdict::Unrecognised
        );
        let m = b"Exit before auth from <192.0.2.5:41234>: (user 'root', 10 fails): Max auth tries reached - user 'root'";
        for i in 0..m.len() {
            let _ = parse(&m[..i]);
        }
    }

    #[test]
    fn noise_and_dispatch() {
        assert_eq!(parse(b"Not backgrounding"), Verdict::Noise);
        assert_eq!(parse(b"Running in background"), Verdict::Noise);
        assert_eq!(parse(b"whatever"), Verdict::Unrecognised);
        let ctx = test_context();
        let Parsed::Event(e) = parse_line(
            b"Nov 28 07:00:00 router dropbear[1234]: Bad password attempt for 'root' from 192.0.2.5:41234",
            &ctx,
        ) else {
            panic!()
        };
        assert_eq!(e.program, Text(b"dropbear"));
        assert_eq!(e.pid, Some(1234));
        assert_eq!(e.user, t("root"));
        assert_eq!(e.source, ip4());
    }
}
