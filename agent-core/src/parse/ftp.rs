//! FTP daemons: vsftpd, ProFTPD, Pure-FTPd and the classic BSD/Linux `ftpd` (also wu-ftpd).
//!
//! - vsftpd (`logging.c`, `vsf_log_common`): `[<user>] OK LOGIN: Client "<ip>"`, `FAIL LOGIN`,
//!   `CONNECT: Client "<ip>"`, anonymous `[ftp] OK LOGIN: Client "<ip>", anon password "<pw>"`;
//!   in its own log file each line starts `<ctime date> [pid <n>] ` (see [`vsftpd_log_line`]),
//!   through syslog (`syslog_enable=YES`) the same message follows `vsftpd[<pid>]: `.
//! - ProFTPD (`mod_auth.c`, `pr_log_auth`, every line prefixed `<server> (<host>[<ip>]) - `):
//!   `USER <u>: Login successful.`, `ANON <u>: Login successful.`, `USER <u> (Login failed):
//!   <why>`, `USER <u>: no such user found from <host> [<ip>] to <ip>:<port>`, `Maximum login
//!   attempts (<n>) exceeded, connection refused`, `SECURITY VIOLATION: Root login attempted`,
//!   `FTP session opened.`/`FTP session closed.`.
//! - Pure-FTPd (`messages_en.h`, each line prefixed `(<user>|?@<host>) [<LEVEL>] `): `New
//!   connection from <host>`, `<u> is now logged in`, `Authentication failed for user [<u>]`,
//!   `Logout.`.
//! - ftpd (FreeBSD/NetBSD/OpenBSD `libexec/ftpd/ftpd.c`, netkit-ftpd, wu-ftpd): `connection
//!   from <host>[ (<ip>)]`, `FTP LOGIN FROM <host>[ [<ip>]] as <u>` (BSD) or `FTP LOGIN FROM
//!   <host>, <u>` (wu-ftpd), `ANONYMOUS FTP LOGIN FROM <host>, <password>`, `FTP LOGIN FAILED
//!   FROM <host>, <u>`, `FTP LOGIN REFUSED FROM <host>, <u>`, `repeated login failures from
//!   <host>`, `failed login from <host>`.
//!
//! The user name is what the client sent after `USER` and may hold anything; the address is
//! what the daemon saw, so it is read from its fixed place.

use super::Verdict;
use super::fields::{parse_ip, parse_source, rsplit_once, split_once, user, word};
use crate::event::{Action, LoginEvent, Method, Outcome, Source};
use crate::text::Text;

/// The FTP daemons' program names.
pub(crate) fn is_ftp_program(name: &[u8]) -> bool {
    matches!(
        name,
        b"vsftpd" | b"proftpd" | b"pure-ftpd" | b"ftpd" | b"in.ftpd" | b"wu-ftpd" | b"wu.ftpd"
    )
}

pub(crate) fn parse<'a>(name: &'a [u8], msg: &'a [u8]) -> Verdict<'a> {
    let msg = msg.trim_ascii();
    let e = match name {
        b"vsftpd" => vsftpd(msg),
        b"proftpd" => proftpd(msg),
        b"pure-ftpd" => pure_ftpd(msg),
        _ => ftpd(msg),
    };
    match e {
        Some(e) => e.into(),
        None if is_noise(name, msg) => Verdict::Noise,
        None => Verdict::Unrecognised,
    }
}

fn is_noise(name: &[u8], msg: &[u8]) -> bool {
    match name {
        b"vsftpd" => {
            // Transfers, directory changes and the like: `[u] OK UPLOAD: ...`.
            let body = match msg.strip_prefix(b"[") {
                Some(r) => split_once(r, b"] ").map_or(r, |(_, b)| b),
                None => msg,
            };
            // With `log_ftp_protocol=YES` every command and response is logged too.
            body.starts_with(b"OK ")
                || body.starts_with(b"FAIL ")
                || body.starts_with(b"FTP command: ")
                || body.starts_with(b"FTP response: ")
                || body.starts_with(b"DEBUG: ")
        }
        b"proftpd" => true,
        b"pure-ftpd" => true,
        _ => msg.starts_with(b"FTP session closed") || msg.starts_with(b"getpeername"),
    }
}

/// `[<user>] OK LOGIN: Client "<ip>"[, anon password "<pw>"]`, `FAIL LOGIN`, `CONNECT`.
fn vsftpd(msg: &[u8]) -> Option<LoginEvent<'_>> {
    let (who, body) = match msg.strip_prefix(b"[") {
        // The user is in brackets and may hold `] `: the message starts at the last `] ` before
        // the verb.
        Some(r) => {
            let (who, body) = rsplit_once(r, b"] ")
                .filter(|(_, b)| b.starts_with(b"OK ") || b.starts_with(b"FAIL "))
                .or_else(|| split_once(r, b"] "))?;
            (Some(who), body)
        }
        None => (None, msg),
    };
    let (mut e, rest) = if let Some(r) = body.strip_prefix(b"OK LOGIN: Client \"") {
        (LoginEvent::new(Action::AuthSuccess, Outcome::Success), r)
    } else if let Some(r) = body.strip_prefix(b"FAIL LOGIN: Client \"") {
        (LoginEvent::new(Action::AuthFailure, Outcome::Failure), r)
    } else if let Some(r) = body.strip_prefix(b"CONNECT: Client \"") {
        (LoginEvent::new(Action::Connection, Outcome::Unknown), r)
    } else {
        return None;
    };
    let (addr, after) = split_once(rest, b"\"")?;
    e.source = Some(Source::Ip(parse_ip(addr)?));
    if e.action != Action::Connection {
        e.user = who.and_then(user);
        e.method = Some(Method::Password);
        if after.starts_with(b", anon password ") {
            e.reason = Some(Text(b"anonymous"));
        }
    }
    Some(e)
}

/// The `<server> (<host>[<ip>]) - ` prefix, then the message.
fn proftpd(msg: &[u8]) -> Option<LoginEvent<'_>> {
    let (prefix, body) = split_once(msg, b") - ")?;
    let (_, client) = rsplit_once(prefix, b" (")?;
    let ip = client
        .strip_suffix(b"]")
        .and_then(|c| rsplit_once(c, b"["))
        .map(|(_, ip)| ip);
    let source = ip.and_then(parse_ip).map(Source::Ip);
    let mut e = if let Some(r) = body.strip_prefix(b"USER ") {
        if let Some((u, _)) = rsplit_once(r, b": Login successful.") {
            let mut e = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
            e.user = user(u);
            e.method = Some(Method::Password);
            e
        } else if let Some((u, why)) = rsplit_once(r, b" (Login failed): ") {
            let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
            e.user = user(u);
            e.reason = user(why.trim_ascii());
            e.method = Some(Method::Password);
            e
        } else if let Some((u, _)) = rsplit_once(r, b": no such user found from ") {
            let mut e = LoginEvent::new(Action::InvalidUser, Outcome::Failure);
            e.user = user(u);
            e
        } else {
            return None;
        }
    } else if let Some(r) = body.strip_prefix(b"ANON ") {
        let (u, _) = rsplit_once(r, b": Login successful.")?;
        let mut e = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
        e.user = user(u);
        e.reason = Some(Text(b"anonymous"));
        e
    } else if body.starts_with(b"Maximum login attempts") {
        let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        e.reason = Some(Text(b"maximum login attempts exceeded"));
        e
    } else if body.starts_with(b"SECURITY VIOLATION: Root login attempted") {
        let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        e.user = Some(Text(b"root"));
        e.reason = Some(Text(b"root login attempted"));
        e
    } else if body.starts_with(b"FTP session opened") {
        LoginEvent::new(Action::Connection, Outcome::Unknown)
    } else if body.starts_with(b"FTP session closed") {
        LoginEvent::new(Action::Disconnect, Outcome::Unknown)
    } else {
        return None;
    };
    e.source = source;
    Some(e)
}

/// `(<user>|?@<host>) [<LEVEL>] <message>`.
fn pure_ftpd(msg: &[u8]) -> Option<LoginEvent<'_>> {
    let r = msg.strip_prefix(b"(")?;
    let (id, body) = split_once(r, b") [")?;
    let (_, body) = split_once(body, b"] ")?;
    let (who, host) = rsplit_once(id, b"@")?;
    let source = parse_source(host);
    let mut e = if let Some(h) = body.strip_prefix(b"New connection from ") {
        let mut e = LoginEvent::new(Action::Connection, Outcome::Unknown);
        e.source = parse_source(h).or(source);
        return Some(e);
    } else if let Some((u, _)) = rsplit_once(body, b" is now logged in") {
        let mut e = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
        e.user = user(u);
        e.method = Some(Method::Password);
        e
    } else if body.starts_with(b"Anonymous user logged in") {
        let mut e = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
        e.user = Some(Text(b"ftp"));
        e.reason = Some(Text(b"anonymous"));
        e
    } else if let Some(r) = body.strip_prefix(b"Authentication failed for user [") {
        let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        e.user = user(r.strip_suffix(b"]").unwrap_or(r));
        e.method = Some(Method::Password);
        e
    } else if body.starts_with(b"Logout") {
        let mut e = LoginEvent::new(Action::SessionClose, Outcome::Success);
        e.user = if who == b"?" { None } else { user(who) };
        e
    } else {
        return None;
    };
    e.source = source;
    Some(e)
}

/// The classic ftpd's messages.
fn ftpd(msg: &[u8]) -> Option<LoginEvent<'_>> {
    if let Some(r) = msg.strip_prefix(b"connection from ") {
        let mut e = LoginEvent::new(Action::Connection, Outcome::Unknown);
        e.source = Some(host_ip(r)?);
        return Some(e);
    }
    if let Some(r) = msg.strip_prefix(b"ANONYMOUS FTP LOGIN FROM ") {
        // `<host>, <password>` (the password is the client's e-mail address: not a user).
        let (host, _) = split_once(r, b", ").unwrap_or((r, b""));
        let mut e = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
        e.source = Some(host_ip(host)?);
        e.user = Some(Text(b"anonymous"));
        e.reason = Some(Text(b"anonymous"));
        return Some(e);
    }
    if let Some(r) = msg.strip_prefix(b"FTP LOGIN FROM ") {
        let r = strip_class(r);
        let (host, u) = split_once(r, b" as ").or_else(|| split_once(r, b", "))?;
        let mut e = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
        e.source = Some(host_ip(host)?);
        e.user = user(u);
        e.method = Some(Method::Password);
        return Some(e);
    }
    for (prefix, reason) in [
        (&b"FTP LOGIN FAILED FROM "[..], &b""[..]),
        (b"FTP LOGIN REFUSED FROM ", b"login refused"),
    ] {
        if let Some(r) = msg.strip_prefix(prefix) {
            let (host, u) = split_once(r, b", ").unwrap_or((r, b""));
            let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
            e.source = Some(host_ip(host)?);
            e.user = user(u);
            e.reason = user(reason);
            e.method = Some(Method::Password);
            return Some(e);
        }
    }
    for (prefix, reason) in [
        (
            &b"repeated login failures from "[..],
            Some(Text(b"repeated login failures")),
        ),
        (b"failed login from ", None),
    ] {
        if let Some(r) = msg.strip_prefix(prefix) {
            let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
            e.source = Some(host_ip(r)?);
            e.reason = reason;
            return Some(e);
        }
    }
    None
}

/// NetBSD's ` (class: <c>, type: <t>)` after the user.
fn strip_class(s: &[u8]) -> &[u8] {
    match rsplit_once(s, b" (class: ") {
        Some((head, _)) => head,
        None => s,
    }
}

/// `<host>`, `<host> (<ip>)`, `<host> [<ip>]`: the address when given, else the host.
fn host_ip(s: &[u8]) -> Option<Source<'_>> {
    let s = s.trim_ascii();
    let (host, rest) = word(s);
    let inner = rest
        .strip_prefix(b"(")
        .and_then(|r| r.strip_suffix(b")"))
        .or_else(|| rest.strip_prefix(b"[").and_then(|r| r.strip_suffix(b"]")));
    if let Some(ip) = inner.and_then(parse_ip) {
        return Some(Source::Ip(ip));
    }
    parse_source(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::fields::v4;
    use crate::parse::test_support::event;

    fn ev<'a>(name: &'a str, msg: &'a str) -> LoginEvent<'a> {
        event(parse(name.as_bytes(), msg.as_bytes()), msg)
    }

    #[test]
    fn vsftpd_user_with_bracket_and_quote() {
        let e = ev("vsftpd", "[a] b] FAIL LOGIN: Client \"192.0.2.1\"");
        assert_eq!(e.user, Some(Text(b"a] b")));
        assert_eq!(e.source, Some(Source::Ip(v4(192, 0, 2, 1))));
        assert_eq!(e.action, Action::AuthFailure);
    }

    #[test]
    fn ftpd_forms() {
        let e = ev("ftpd", "connection from gw.example.net (192.0.2.9)");
        assert_eq!(e.source, Some(Source::Ip(v4(192, 0, 2, 9))));
        let e = ev("ftpd", "FTP LOGIN FROM gw.example.net [192.0.2.9], bob");
        assert_eq!(e.user, Some(Text(b"bob")));
        assert_eq!(e.source, Some(Source::Ip(v4(192, 0, 2, 9))));
        let e = ev(
            "ftpd",
            "FTP LOGIN FROM 192.0.2.9 as bob (class: real, type: REAL)",
        );
        assert_eq!(e.user, Some(Text(b"bob")));
    }
}
