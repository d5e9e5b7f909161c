//! PAM module lines, whichever program wrote them: `pam_<module>(<service>:<type>): <message>`.
//!
//! The messages come from Linux-PAM's modules (`pam_unix`'s `support.c`, `pam_unix_auth.c`,
//! `pam_unix_acct.c`, `pam_unix_passwd.c`, `pam_unix_sess.c`; `pam_faillock`, `pam_tally2`),
//! from SSSD's `pam_sss`, nss-pam-ldapd's `pam_ldap` and pam-krb5. Old syslogs put the module in
//! the tag instead (`sshd(pam_unix)[42]: session opened for user root by (uid=0)`): that is
//! [`parse_legacy`], sharing the same message code. `unix_chkpwd`'s own lines are
//! [`parse_chkpwd`].
//!
//! Decisions, so that one fact is reported the same way whichever line carries it:
//! - `user` is the `user=` key, which pam_unix writes *last*, after two spaces, and which may hold
//!   anything a client typed (spaces, `rhost=`): it is everything after the first ` user=` key.
//!   When `user=` is absent (pam_unix leaves it out for unknown users) `user` stays `None`:
//!   `logname`/`ruser` name somebody else.
//! - For the su family of services (`su`, `su-l`, `runuser`, `runuser-l`) the account whose
//!   password is checked is the *target*: `target_user` is `user=` and `user` is `ruser=` (the
//!   invoker), as su's own `FAILED SU (to T) U` line says.
//! - Session lines of the sudo and su services (`sudo`, `sudo-i`, `su`, `su-l`, ...) open a session
//!   *as* the target: `target_user` is the session's user and `user` the invoker named after `by`
//!   (absent when PAM could not tell, as in `by (uid=1001)`); `uid` is then the invoker's uid so
//!   that `user.id` describes `user.name`. For every other service `user`/`uid` are the session's.
//! - `uid=` on an `authentication failure` line is the uid of the *calling process* (0 for sshd
//!   and login), not of the user: it is used only for the sudo and su services, where the caller is
//!   the `user`.
//! - `tty=ssh` (sshd's placeholder PAM_TTY) and `NODEVssh` are not terminals: dropped. `/dev/` is
//!   stripped so PAM's `/dev/pts/1` matches su's and sudo's `pts/1`.
//! - `pam_succeed_if`'s `requirement ... not met by user` is Noise: gdm and others test a
//!   condition on every login (`user ingroup nopasswdlogin`), so it is not a failure by itself;
//!   the failure, if any, is reported by pam_unix and the program.

use super::Verdict;
use super::fields::{kv, parse_source, parse_u32, rsplit_once, split_once, user, word};
use crate::event::{Action, LoginEvent, Outcome};
use crate::text::Text;

/// `pam_<module>(<service>:<type>): <message>`, also `pam_<module>: <message>` (no service) and
/// `pam_<module>[pid]: <message>`. `program` is the basename of the program that wrote the line;
/// it stands in for the service when the line does not name one.
pub(crate) fn parse<'a>(program: &'a [u8], msg: &'a [u8]) -> Verdict<'a> {
    let Some(rest) = msg.strip_prefix(b"pam_") else {
        return Verdict::Unrecognised;
    };
    let end = rest
        .iter()
        .position(|&c| matches!(c, b'(' | b':' | b' ' | b'['))
        .unwrap_or(rest.len());
    let module = &rest[..end];
    let mut rest = &rest[end..];
    let mut service = program;
    if let Some(r) = rest.strip_prefix(b"(") {
        let Some((inside, after)) = split_once(r, b")") else {
            return Verdict::Unrecognised;
        };
        service = match memchr::memchr(b':', inside) {
            Some(i) => &inside[..i],
            None => inside,
        };
        rest = after;
    }
    // `pam_foo[123]: ...` as some modules log through their own ident.
    if let Some(r) = rest.strip_prefix(b"[") {
        rest = match split_once(r, b"]") {
            Some((_, after)) => after,
            None => r,
        };
    }
    let body = match rest.strip_prefix(b":") {
        Some(b) => b.trim_ascii_start(),
        None => rest.trim_ascii_start(),
    };
    module_message(module, service, body)
}

/// Old syslogs: `sshd(pam_unix)[42]: <message>`: the module is in the tag and the program is
/// the service.
pub(crate) fn parse_legacy<'a>(service: &'a [u8], module: &'a [u8], msg: &'a [u8]) -> Verdict<'a> {
    let module = module.strip_prefix(b"pam_").unwrap_or(module);
    module_message(module, service, msg.trim_ascii_start())
}

/// `unix_chkpwd`, pam_unix's setuid helper, logging for itself.
pub(crate) fn parse_chkpwd(msg: &[u8]) -> Verdict<'_> {
    if let Some(rest) = msg.strip_prefix(b"password check failed for user (") {
        let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        e.user = user(rest.strip_suffix(b")").unwrap_or(rest));
        e.reason = Some(Text(b"password check failed"));
        return e.into();
    }
    if let Some(rest) = msg.strip_prefix(b"could not obtain user info (") {
        let mut e = LoginEvent::new(Action::InvalidUser, Outcome::Failure);
        e.user = user(rest.strip_suffix(b")").unwrap_or(rest));
        return e.into();
    }
    match unix(b"unix_chkpwd", msg) {
        Verdict::Unrecognised if msg.starts_with(b"unable to") => Verdict::Noise,
        v => v,
    }
}

/// Modules that log nothing about who authenticated: their lines are Noise whatever they say.
const NOISE_MODULES: &[&[u8]] = &[
    b"systemd",
    b"systemd_home",
    b"limits",
    b"env",
    b"lastlog",
    b"lastlog2",
    b"motd",
    b"keyinit",
    b"loginuid",
    b"selinux",
    b"namespace",
    b"umask",
    b"mail",
    b"xauth",
    b"mkhomedir",
    b"gnome_keyring",
    b"kwallet",
    b"kwallet5",
    b"cap",
    b"group",
    b"echo",
    b"warn",
    b"permit",
    b"rootok",
    b"ck_connector",
    b"tty_audit",
    b"ecryptfs",
    b"fprintd",
    b"exec",
    b"succeed_if",
    b"winbind",
    b"deny",
];

fn module_message<'a>(module: &'a [u8], service: &'a [u8], body: &'a [u8]) -> Verdict<'a> {
    let verdict = match module {
        b"unix" | b"unix2" => unix(service, body),
        b"sss" => sss(service, body),
        b"ldap" => ldap(service, body),
        b"krb5" => krb5(service, body),
        b"faillock" | b"tally" | b"tally2" => lockout(body),
        b"access" => access(body),
        b"listfile" => listfile(body),
        b"securetty" => securetty(body),
        b"nologin" => nologin(body),
        _ if body.starts_with(b"call failed: ") => call_failed(module, &body[13..]),
        _ => Verdict::Unrecognised,
    };
    match verdict {
        Verdict::Unrecognised if NOISE_MODULES.contains(&module) => Verdict::Noise,
        v => v,
    }
}

/// BusyBox login (`loginutils/login.c`): `pam_<call> call failed: <pam_strerror> (<code>)` after
/// any PAM call that failed; `rest` is after `call failed: `. It names no user. A refused
/// authentication, account or session is a failed login; `start`, `set_item` and `get_item` are
/// internal errors.
fn call_failed<'a>(call: &[u8], rest: &'a [u8]) -> Verdict<'a> {
    if !matches!(
        call,
        b"authenticate" | b"acct_mgmt" | b"open_session" | b"setcred"
    ) {
        return Verdict::Noise;
    }
    let why = match rsplit_once(rest, b" (") {
        Some((w, code)) if code.ends_with(b")") => w,
        _ => rest,
    };
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.reason = user(why);
    e.into()
}

/// sudo and su services: the session is opened *as* the target for an invoker.
fn is_switch_service(service: &[u8]) -> bool {
    is_su_service(service) || matches!(service, b"sudo" | b"sudo-i")
}

/// The su family: the password checked is the target's.
fn is_su_service(service: &[u8]) -> bool {
    matches!(service, b"su" | b"su-l" | b"runuser" | b"runuser-l")
}

/// `pam_unix`'s messages.
fn unix<'a>(service: &'a [u8], body: &'a [u8]) -> Verdict<'a> {
    let Some(&first) = body.first() else {
        return Verdict::Unrecognised;
    };
    let e = match first {
        b'a' if body.starts_with(b"authentication failure;") => {
            auth_kv(service, &body[23..], Action::AuthFailure, Outcome::Failure)
        }
        b'a' if body.starts_with(b"auth could not identify password for [") => {
            let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
            e.user = user(bracketed(&body[38..]));
            e.reason = Some(Text(b"could not identify password"));
            e
        }
        b'a' if body.starts_with(b"account ") => return account_expired(&body[8..]),
        b'b' if body.starts_with(b"bad username [") => {
            let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
            e.user = user(bracketed(&body[14..]));
            e.reason = Some(Text(b"bad username"));
            e
        }
        b'c' if body.starts_with(b"check pass; user unknown") => {
            let mut e = LoginEvent::new(Action::InvalidUser, Outcome::Failure);
            e.reason = Some(Text(b"user unknown"));
            e
        }
        b'c' if body.starts_with(b"conversation failed") => return Verdict::Noise,
        b's' if body.starts_with(b"session opened for user ") => {
            session_opened(service, &body[24..])
        }
        b's' if body.starts_with(b"session closed for user ") => {
            let mut e = LoginEvent::new(Action::SessionClose, Outcome::Success);
            let who = user(body[24..].trim_ascii_end());
            if is_switch_service(service) {
                e.target_user = who;
            } else {
                e.user = who;
            }
            e
        }
        b'p' if body.starts_with(b"password changed for ") => {
            let mut e = LoginEvent::new(Action::AccountChange, Outcome::Success);
            e.target_user = user(body[21..].trim_ascii_end());
            e.reason = Some(Text(b"password changed"));
            e
        }
        b'p' if body.starts_with(b"password for user ") => return Verdict::Noise,
        b'e' if body.starts_with(b"expired password for user ") => {
            // `expired password for user bob (password aged)`: a forced change, not a refusal.
            let rest = &body[26..];
            let (who, why) = match rsplit_once(rest, b" (") {
                Some((w, why)) => (w, why.strip_suffix(b")").unwrap_or(why)),
                None => (rest, &b""[..]),
            };
            let mut e = LoginEvent::new(Action::Other, Outcome::Unknown);
            e.user = user(who);
            e.reason = Some(if why.is_empty() {
                Text(b"expired password")
            } else {
                Text(why)
            });
            e
        }
        b'u' if body.starts_with(b"user \"") => {
            // `user "bob" does not exist in /etc/passwd` (chauthtok).
            let Some((who, _)) = rsplit_once(&body[6..], b"\" does not exist") else {
                return Verdict::Unrecognised;
            };
            let mut e = LoginEvent::new(Action::InvalidUser, Outcome::Failure);
            e.user = user(who);
            e
        }
        b'0'..=b'9' => {
            // `2 more authentication failures; logname= ... user=root`.
            let (n, rest) = word(body);
            let Some(n) = parse_u32(n) else {
                return Verdict::Unrecognised;
            };
            let Some((_, kvs)) = split_once(rest, b";") else {
                return Verdict::Unrecognised;
            };
            if !rest.starts_with(b"more authentication failure") {
                return Verdict::Unrecognised;
            }
            let mut e = auth_kv(service, kvs, Action::AuthFailure, Outcome::Failure);
            e.count = n.max(1);
            e.reason = Some(Text(b"more authentication failures"));
            e
        }
        _ => return Verdict::Unrecognised,
    };
    e.into()
}

/// `[name]` with the closing bracket optional (the text may have been cut).
fn bracketed(s: &[u8]) -> &[u8] {
    let s = s.trim_ascii_end();
    s.strip_suffix(b"]").unwrap_or(s)
}

/// `account bob has expired (account expired)`, `account bob has expired (failed to change
/// password)`: refused at the account stage.
fn account_expired(rest: &[u8]) -> Verdict<'_> {
    let Some((who, why)) = rsplit_once(rest, b" has expired") else {
        return Verdict::Unrecognised;
    };
    let why = why.trim_ascii();
    let why = why
        .strip_prefix(b"(")
        .and_then(|w| w.strip_suffix(b")"))
        .unwrap_or(&b"account expired"[..]);
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.user = user(who);
    e.reason = Some(Text(if why.is_empty() {
        b"account expired"
    } else {
        why
    }));
    e.into()
}

/// The `logname=X uid=N euid=N tty=T ruser=R rhost=H  user=U` list after `authentication
/// failure;` (pam_unix, pam_sss, pam-krb5).
fn auth_kv<'a>(
    service: &'a [u8],
    kvs: &'a [u8],
    action: Action,
    outcome: Outcome,
) -> LoginEvent<'a> {
    let mut e = LoginEvent::new(action, outcome);
    // `user=` is the last key and may hold spaces; the keys before it hold no client text, so
    // the first ` user=` key is the real one (` ruser=` does not match: an `r` precedes it).
    let (keys, who) = match split_once(kvs, b" user=") {
        Some((keys, u)) => (keys, user(u.trim_ascii_end())),
        None => (kvs, None),
    };
    e.source = kv(keys, b"rhost=").and_then(parse_source);
    e.tty = kv(keys, b"tty=").and_then(tty);
    if is_su_service(service) {
        e.target_user = who;
        e.user = kv(keys, b"ruser=").and_then(user);
    } else {
        e.user = who;
    }
    if is_switch_service(service) {
        e.uid = kv(keys, b"uid=").and_then(parse_u32);
    }
    e
}

/// A PAM tty: `/dev/` stripped; sshd's `ssh`/`NODEVssh` placeholders and empty values dropped.
pub(crate) fn tty(b: &[u8]) -> Option<Text<'_>> {
    let b = b.strip_prefix(b"/dev/").unwrap_or(b);
    if b.is_empty() || b == b"ssh" || b == b"NODEVssh" {
        None
    } else {
        Some(Text(b))
    }
}

/// `session opened for user U(uid=N) by V(uid=M)` (Linux-PAM 1.5+), `session opened for user U
/// by V(uid=M)` (older), `... by (uid=M)` when the login name is unknown. `rest` follows
/// `for user `.
fn session_opened<'a>(service: &'a [u8], rest: &'a [u8]) -> LoginEvent<'a> {
    let rest = rest.trim_ascii_end();
    // The invoker part comes last and holds a real login name; the session user is an existing
    // account. Split at the last ` by `.
    let (who, by) = match rsplit_once(rest, b" by ") {
        Some((w, b)) => (w, Some(b)),
        None => (rest, None),
    };
    let (who, who_uid) = name_uid(who);
    let (invoker, invoker_uid) = match by {
        Some(b) => name_uid(b),
        None => (&b""[..], None),
    };
    let mut e = LoginEvent::new(Action::SessionOpen, Outcome::Success);
    if is_switch_service(service) {
        e.target_user = user(who);
        e.user = user(invoker);
        e.uid = invoker_uid;
    } else {
        e.user = user(who);
        e.uid = who_uid;
    }
    e
}

/// `name(uid=N)` -> (`name`, `Some(N)`); `name` -> (`name`, `None`).
fn name_uid(s: &[u8]) -> (&[u8], Option<u32>) {
    if let Some(inner) = s.strip_suffix(b")")
        && let Some((name, uid)) = rsplit_once(inner, b"(uid=")
    {
        return (name, parse_u32(uid));
    }
    (s, None)
}

/// SSSD's `pam_sss`.
fn sss<'a>(service: &'a [u8], body: &'a [u8]) -> Verdict<'a> {
    if let Some(kvs) = body.strip_prefix(b"authentication failure;") {
        return auth_kv(service, kvs, Action::AuthFailure, Outcome::Failure).into();
    }
    if let Some(kvs) = body.strip_prefix(b"authentication success;") {
        return auth_kv(service, kvs, Action::AuthSuccess, Outcome::Success).into();
    }
    // `received for user bob: 7 (Authentication failure)` (auth) and `Access denied for user
    // bob: 6 (Permission denied)` (account). The user name comes before the last `: <code> (`.
    let (rest, account) = if let Some(r) = body.strip_prefix(b"received for user ") {
        (r, false)
    } else if let Some(r) = body.strip_prefix(b"Access denied for user ") {
        (r, true)
    } else if body.starts_with(b"system info:") || body.starts_with(b"Request to sssd failed") {
        return Verdict::Noise;
    } else {
        return Verdict::Unrecognised;
    };
    let Some((who, status)) = rsplit_once(rest, b": ") else {
        return Verdict::Unrecognised;
    };
    let (code, text) = word(status);
    let Some(code) = parse_u32(code) else {
        return Verdict::Unrecognised;
    };
    let text = text.trim_ascii_end();
    let text = text
        .strip_prefix(b"(")
        .and_then(|t| t.strip_suffix(b")"))
        .unwrap_or(text);
    let action = match code {
        // PAM_USER_UNKNOWN
        10 if !account => Action::InvalidUser,
        _ => Action::AuthFailure,
    };
    let mut e = LoginEvent::new(action, Outcome::Failure);
    e.user = user(who);
    e.reason = user(text);
    e.into()
}

/// nss-pam-ldapd's `pam_ldap`: `<pam_strerror text>; user=<name>`.
fn ldap<'a>(service: &'a [u8], body: &'a [u8]) -> Verdict<'a> {
    if let Some(kvs) = body.strip_prefix(b"authentication failure;") {
        return auth_kv(service, kvs, Action::AuthFailure, Outcome::Failure).into();
    }
    let Some((why, who)) = split_once(body, b"; user=") else {
        return Verdict::Unrecognised;
    };
    let action = if why.starts_with(b"User not known") {
        Action::InvalidUser
    } else {
        Action::AuthFailure
    };
    let mut e = LoginEvent::new(action, Outcome::Failure);
    e.user = user(who.trim_ascii_end());
    e.reason = user(why);
    e.into()
}

/// pam-krb5: `authentication failure; logname=... rhost=...` and `user bob authenticated as
/// bob@EXAMPLE.ORG`.
fn krb5<'a>(service: &'a [u8], body: &'a [u8]) -> Verdict<'a> {
    if let Some(kvs) = body.strip_prefix(b"authentication failure;") {
        return auth_kv(service, kvs, Action::AuthFailure, Outcome::Failure).into();
    }
    if let Some(rest) = body.strip_prefix(b"user ")
        && let Some((who, _principal)) = rsplit_once(rest, b" authenticated as ")
    {
        let mut e = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
        e.user = user(who);
        return e.into();
    }
    Verdict::Unrecognised
}

/// pam_faillock / pam_tally2: `Consecutive login failures for user bob account temporarily
/// locked`; pam_tally(2): `user bob (1001) tally 4, deny 3`.
fn lockout(body: &[u8]) -> Verdict<'_> {
    if let Some(rest) = body.strip_prefix(b"Consecutive login failures for user ") {
        let who = match rsplit_once(rest, b" account temporarily locked") {
            Some((w, _)) => w,
            None => rest.trim_ascii_end(),
        };
        let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        e.user = user(who);
        e.reason = Some(Text(b"account temporarily locked"));
        return e.into();
    }
    // `user bob (1001) tally 4, deny 3`: the name is before the last ` (`.
    if let Some(rest) = body.strip_prefix(b"user ")
        && let Some((who, after)) = rsplit_once(rest, b" (")
        && let Some((uid, tally)) = split_once(after, b") ")
        && tally.starts_with(b"tally ")
    {
        let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        e.user = user(who);
        e.uid = parse_u32(uid);
        e.reason = Some(Text(b"account locked (tally)"));
        return e.into();
    }
    Verdict::Noise
}

/// pam_access: `access denied for user `bob' from `1.2.3.4'`.
fn access(body: &[u8]) -> Verdict<'_> {
    let Some(rest) = body.strip_prefix(b"access denied for user `") else {
        return Verdict::Noise;
    };
    let Some((who, origin)) = rsplit_once(rest, b"' from `") else {
        return Verdict::Unrecognised;
    };
    let origin = origin.trim_ascii_end();
    let origin = origin.strip_suffix(b"'").unwrap_or(origin);
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.user = user(who);
    // The origin is a host, an address or a tty.
    match parse_source(origin) {
        Some(s) if !looks_like_tty(origin) => e.source = Some(s),
        _ => e.tty = tty(origin),
    }
    e.reason = Some(Text(b"access denied"));
    e.into()
}

/// pam_listfile: `Refused user bob for service sshd`.
fn listfile(body: &[u8]) -> Verdict<'_> {
    let Some(rest) = body.strip_prefix(b"Refused user ") else {
        return Verdict::Noise;
    };
    let who = match rsplit_once(rest, b" for service ") {
        Some((w, _)) => w,
        None => rest,
    };
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.user = user(who);
    e.reason = Some(Text(b"refused by pam_listfile"));
    e.into()
}

/// pam_securetty: `access denied: tty 'ttyS0' is not secure !`.
fn securetty(body: &[u8]) -> Verdict<'_> {
    let Some(rest) = body.strip_prefix(b"access denied: tty '") else {
        return Verdict::Noise;
    };
    let Some((t, _)) = rsplit_once(rest, b"' is not secure") else {
        return Verdict::Unrecognised;
    };
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.tty = tty(t);
    e.reason = Some(Text(b"tty is not secure"));
    e.into()
}

/// pam_nologin refuses everyone but root while `/etc/nologin` exists; it logs nothing about the
/// user, so only its refusal line is kept.
fn nologin(body: &[u8]) -> Verdict<'_> {
    if body.starts_with(b"Refused user ") {
        return listfile(body);
    }
    Verdict::Noise
}

/// `tty1`, `pts/0`, `console`, `ttyS0`, `:0`: terminal names as PAM and login write them.
pub(crate) fn looks_like_tty(b: &[u8]) -> bool {
    let b = b.strip_prefix(b"/dev/").unwrap_or(b);
    b.starts_with(b"tty")
        || b.starts_with(b"pts/")
        || b.starts_with(b"hvc")
        || b.starts_with(b":")
        || b == b"console"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use crate::parse::fields::v4;
    use crate::parse::test_support::{event, line, test_context};
    use crate::parse::{Parsed, parse_line};
    use core::net::IpAddr;

    fn ev<'a>(program: &'a str, msg: &'a str) -> LoginEvent<'a> {
        event(parse(program.as_bytes(), msg.as_bytes()), msg)
    }

    fn verdict<'a>(program: &'a str, msg: &'a str) -> Verdict<'a> {
        parse(program.as_bytes(), msg.as_bytes())
    }

    fn line_ev(l: &str) -> LoginEvent<'_> {
        match line(l) {
            Parsed::Event(e) => e,
            p => panic!("{l:?}: {p:?}"),
        }
    }

    #[test]
    fn unix_auth_failure_sshd() {
        let e = ev(
            "sshd",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!(e.user, Some(Text(b"root")));
        assert_eq!(e.target_user, None);
        assert_eq!(e.source, Some(Source::Ip(v4(203, 0, 113, 5))));
        assert_eq!(e.tty, None, "tty=ssh is a placeholder");
        assert_eq!(e.uid, None, "uid= is sshd's own");
        assert_eq!(e.method, None);
    }

    #[test]
    fn unix_auth_failure_without_user_or_rhost() {
        let e = ev(
            "sshd",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=::1 ",
        );
        assert_eq!(e.user, None);
        assert_eq!(
            e.source,
            Some(Source::Ip(IpAddr::V6(core::net::Ipv6Addr::LOCALHOST)))
        );
        let e = ev(
            "passwd",
            "pam_unix(passwd:chauthtok): authentication failure; logname= uid=1004 euid=0 tty= ruser= rhost=  user=atdave",
        );
        assert_eq!(e.user, Some(Text(b"atdave")));
        assert_eq!(e.source, None);
        assert_eq!(e.tty, None);
    }

    #[test]
    fn unix_auth_failure_host_name_and_mapped() {
        let e = ev(
            "sshd",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=gw.example.net  user=bob",
        );
        assert_eq!(e.source, Some(Source::Domain(Text(b"gw.example.net"))));
        let e = ev(
            "sshd",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=::ffff:192.0.2.7  user=bob",
        );
        assert_eq!(e.source, Some(Source::Ip(v4(192, 0, 2, 7))));
    }

    #[test]
    fn unix_auth_failure_hostile_user() {
        // A typed user name holding spaces, a fake rhost and a second `user=`.
        let e = ev(
            "sshd",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.0.0.1  user=x rhost=6.6.6.6 user=root",
        );
        assert_eq!(e.source, Some(Source::Ip(v4(10, 0, 0, 1))));
        assert_eq!(e.user, Some(Text(b"x rhost=6.6.6.6 user=root")));
        // A garbage rhost is no source.
        let e = ev(
            "sshd",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=a%b  user=bob",
        );
        assert_eq!(e.source, None);
    }

    #[test]
    fn unix_auth_failure_sudo_and_su() {
        let e = ev(
            "sudo",
            "pam_unix(sudo:auth): authentication failure; logname= uid=1001 euid=0 tty=/dev/pts/0 ruser=atalice rhost=  user=atalice",
        );
        assert_eq!(e.user, Some(Text(b"atalice")));
        assert_eq!(e.target_user, None);
        assert_eq!(e.uid, Some(1001));
        assert_eq!(e.tty, Some(Text(b"pts/0")));
        assert_eq!(e.source, None);
        let e = ev(
            "su",
            "pam_unix(su:auth): authentication failure; logname= uid=1001 euid=0 tty=/dev/pts/1 ruser=atalice rhost=  user=root",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!(e.user, Some(Text(b"atalice")));
        assert_eq!(e.target_user, Some(Text(b"root")));
        assert_eq!(e.uid, Some(1001));
        assert_eq!(e.tty, Some(Text(b"pts/1")));
        let e = ev(
            "su",
            "pam_unix(su-l:auth): authentication failure; logname= uid=1002 euid=0 tty=/dev/pts/1 ruser=atbob rhost=  user=atalice",
        );
        assert_eq!(e.user, Some(Text(b"atbob")));
        assert_eq!(e.target_user, Some(Text(b"atalice")));
    }

    #[test]
    fn unix_auth_failure_login() {
        let e = ev(
            "login",
            "pam_unix(login:auth): authentication failure; logname=atalice uid=0 euid=0 tty=/dev/pts/1 ruser= rhost=  user=atbob",
        );
        assert_eq!(e.user, Some(Text(b"atbob")));
        assert_eq!(e.tty, Some(Text(b"pts/1")));
        assert_eq!(e.uid, None);
    }

    #[test]
    fn unix_more_failures() {
        let e = ev(
            "sshd",
            "pam_unix(sshd:auth): 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.9  user=root",
        );
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.count, 2);
        assert_eq!(e.user, Some(Text(b"root")));
        assert_eq!(e.source, Some(Source::Ip(v4(198, 51, 100, 9))));
    }

    #[test]
    fn unix_session_opened_forms() {
        let e = ev(
            "sshd",
            "pam_unix(sshd:session): session opened for user atalice(uid=1001) by (uid=0)",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::SessionOpen, Outcome::Success)
        );
        assert_eq!(e.user, Some(Text(b"atalice")));
        assert_eq!(e.uid, Some(1001));
        assert_eq!(e.target_user, None);
        // Older Linux-PAM.
        let e = ev(
            "sshd",
            "pam_unix(sshd:session): session opened for user root by (uid=0)",
        );
        assert_eq!(e.user, Some(Text(b"root")));
        assert_eq!(e.uid, None);
        let e = ev(
            "systemd",
            "pam_unix(systemd-user:session): session opened for user alice(uid=1000) by alice(uid=0)",
        );
        assert_eq!(e.user, Some(Text(b"alice")));
        assert_eq!(e.uid, Some(1000));
        let e = ev(
            "CRON",
            "pam_unix(cron:session): session opened for user root(uid=0) by root(uid=0)",
        );
        assert_eq!(e.user, Some(Text(b"root")));
    }

    #[test]
    fn unix_session_sudo_su_target() {
        let e = ev(
            "sudo",
            "pam_unix(sudo:session): session opened for user root(uid=0) by (uid=1001)",
        );
        assert_eq!(e.action, Action::SessionOpen);
        assert_eq!(e.target_user, Some(Text(b"root")));
        assert_eq!(e.user, None);
        assert_eq!(e.uid, Some(1001));
        let e = ev(
            "sudo",
            "pam_unix(sudo-i:session): session opened for user root(uid=0) by alice(uid=1000)",
        );
        assert_eq!(e.target_user, Some(Text(b"root")));
        assert_eq!(e.user, Some(Text(b"alice")));
        assert_eq!(e.uid, Some(1000));
        let e = ev(
            "su",
            "pam_unix(su-l:session): session opened for user atbob(uid=1002) by atalice(uid=1001)",
        );
        assert_eq!(e.target_user, Some(Text(b"atbob")));
        assert_eq!(e.user, Some(Text(b"atalice")));
        // Old form.
        let e = ev(
            "su",
            "pam_unix(su:session): session opened for user root by alice(uid=1000)",
        );
        assert_eq!(e.target_user, Some(Text(b"root")));
        assert_eq!(e.user, Some(Text(b"alice")));
        assert_eq!(e.uid, Some(1000));
        let e = ev("su", "pam_unix(su:session): session closed for user atbob");
        assert_eq!(e.action, Action::SessionClose);
        assert_eq!(e.target_user, Some(Text(b"atbob")));
        assert_eq!(e.user, None);
    }

    #[test]
    fn unix_session_closed() {
        let e = ev(
            "sshd",
            "pam_unix(sshd:session): session closed for user atalice",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::SessionClose, Outcome::Success)
        );
        assert_eq!(e.user, Some(Text(b"atalice")));
        assert_eq!(e.target_user, None);
        assert!(matches!(
            verdict("sshd", "pam_unix(sshd:session): session closed for user "),
            Verdict::Event(LoginEvent { user: None, .. })
        ));
    }

    #[test]
    fn unix_user_unknown_and_bad_names() {
        let e = ev("sshd", "pam_unix(sshd:auth): check pass; user unknown");
        assert_eq!(
            (e.action, e.outcome),
            (Action::InvalidUser, Outcome::Failure)
        );
        assert_eq!(e.user, None);
        let e = ev("sshd", "pam_unix(sshd:auth): bad username [x y]");
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, Some(Text(b"x y")));
        let e = ev(
            "sudo",
            "pam_unix(sudo:auth): auth could not identify password for [atalice]",
        );
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, Some(Text(b"atalice")));
        let e = ev(
            "passwd",
            "pam_unix(passwd:chauthtok): user \"bob\" does not exist in /etc/passwd",
        );
        assert_eq!(e.action, Action::InvalidUser);
        assert_eq!(e.user, Some(Text(b"bob")));
        assert_eq!(
            verdict("sudo", "pam_unix(sudo:auth): conversation failed"),
            Verdict::Noise
        );
    }

    #[test]
    fn unix_password_and_account() {
        let e = ev(
            "chpasswd",
            "pam_unix(chpasswd:chauthtok): password changed for atalice",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AccountChange, Outcome::Success)
        );
        assert_eq!(e.target_user, Some(Text(b"atalice")));
        assert_eq!(e.user, None);
        let e = ev(
            "sshd",
            "pam_unix(sshd:account): account bob has expired (account expired)",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!(e.user, Some(Text(b"bob")));
        assert_eq!(e.reason, Some(Text(b"account expired")));
        let e = ev(
            "login",
            "pam_unix(login:account): expired password for user bob (password aged)",
        );
        assert_eq!(e.action, Action::Other);
        assert_eq!(e.user, Some(Text(b"bob")));
        assert_eq!(e.reason, Some(Text(b"password aged")));
        assert_eq!(
            verdict(
                "sshd",
                "pam_unix(sshd:account): password for user bob will expire in 3 days"
            ),
            Verdict::Noise
        );
        assert_eq!(
            verdict("sshd", "pam_unix(sshd:auth): something new"),
            Verdict::Unrecognised
        );
    }

    #[test]
    fn noise_modules() {
        for m in [
            "pam_systemd(sshd:session): Failed to connect to system bus: No such file or directory",
            "pam_limits(sudo:session): Could not set limit for 'core' to soft=0, hard=-1: Operation not permitted; uid=1001,euid=0",
            "pam_env(sshd:session): deprecated reading of user environment enabled",
            "pam_lastlog(login:session): unable to open /var/log/lastlog: No such file",
            "pam_motd(sshd:session): anything",
            "pam_keyinit(su:session): Unable to change UID",
            "pam_succeed_if(sshd:auth): requirement \"uid >= 1000\" not met by user \"root\"",
            "pam_systemd: Failed to connect to system bus",
        ] {
            assert_eq!(verdict("sshd", m), Verdict::Noise, "{m}");
        }
        assert_eq!(
            verdict("sshd", "pam_frobnicate(sshd:auth): hello"),
            Verdict::Unrecognised
        );
        assert_eq!(verdict("sshd", "pam_unix(sshd:auth"), Verdict::Unrecognised);
        assert_eq!(verdict("sshd", "pam_"), Verdict::Unrecognised);
    }

    #[test]
    fn faillock_and_tally() {
        let e = ev(
            "sshd",
            "pam_faillock(sshd:auth): Consecutive login failures for user bob account temporarily locked",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!(e.user, Some(Text(b"bob")));
        assert_eq!(e.reason, Some(Text(b"account temporarily locked")));
        let e = ev(
            "sshd",
            "pam_tally2(sshd:auth): user bob (1001) tally 4, deny 3",
        );
        assert_eq!(e.user, Some(Text(b"bob")));
        assert_eq!(e.uid, Some(1001));
        assert_eq!(
            verdict("sshd", "pam_faillock(sshd:auth): Failed to open tally file"),
            Verdict::Noise
        );
    }

    #[test]
    fn sss_lines() {
        let e = ev(
            "sshd",
            "pam_sss(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4 user=bob",
        );
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, Some(Text(b"bob")));
        assert_eq!(e.source, Some(Source::Ip(v4(1, 2, 3, 4))));
        let e = ev(
            "sshd",
            "pam_sss(sshd:auth): authentication success; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4 user=bob",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthSuccess, Outcome::Success)
        );
        assert_eq!(e.user, Some(Text(b"bob")));
        let e = ev(
            "sshd",
            "pam_sss(sshd:auth): received for user bob: 7 (Authentication failure)",
        );
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, Some(Text(b"bob")));
        assert_eq!(e.reason, Some(Text(b"Authentication failure")));
        let e = ev(
            "sshd",
            "pam_sss(sshd:auth): received for user a: b: 10 (User not known to the underlying authentication module)",
        );
        assert_eq!(e.action, Action::InvalidUser);
        assert_eq!(e.user, Some(Text(b"a: b")));
        let e = ev(
            "sshd",
            "pam_sss(sshd:account): Access denied for user bob: 6 (Permission denied)",
        );
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.reason, Some(Text(b"Permission denied")));
    }

    #[test]
    fn ldap_krb5_access() {
        let e = ev(
            "sshd",
            "pam_ldap(sshd:auth): Authentication failure; user=bob",
        );
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, Some(Text(b"bob")));
        let e = ev(
            "sshd",
            "pam_ldap(sshd:auth): User not known to the underlying authentication module; user=zed",
        );
        assert_eq!(e.action, Action::InvalidUser);
        let e = ev(
            "sshd",
            "pam_krb5(sshd:auth): authentication failure; logname=bob uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.1",
        );
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, None);
        assert_eq!(e.source, Some(Source::Ip(v4(192, 0, 2, 1))));
        let e = ev(
            "sshd",
            "pam_krb5(sshd:auth): user bob authenticated as bob@EXAMPLE.ORG",
        );
        assert_eq!(e.action, Action::AuthSuccess);
        assert_eq!(e.user, Some(Text(b"bob")));
        let e = ev(
            "sshd",
            "pam_access(sshd:account): access denied for user `bob' from `192.0.2.9'",
        );
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, Some(Text(b"bob")));
        assert_eq!(e.source, Some(Source::Ip(v4(192, 0, 2, 9))));
        let e = ev(
            "login",
            "pam_access(login:account): access denied for user `bob' from `tty1'",
        );
        assert_eq!(e.source, None);
        assert_eq!(e.tty, Some(Text(b"tty1")));
        let e = ev(
            "sshd",
            "pam_listfile(sshd:auth): Refused user bob for service sshd",
        );
        assert_eq!(e.user, Some(Text(b"bob")));
        let e = ev(
            "login",
            "pam_securetty(login:auth): access denied: tty 'ttyS0' is not secure !",
        );
        assert_eq!(e.tty, Some(Text(b"ttyS0")));
    }

    #[test]
    fn legacy_module_in_tag() {
        let e = line_ev(
            "Nov 28 06:49:30 old sshd(pam_unix)[1234]: session opened for user root by (uid=0)",
        );
        assert_eq!(e.action, Action::SessionOpen);
        assert_eq!(e.user, Some(Text(b"root")));
        assert_eq!(e.pid, Some(1234));
        let e = line_ev(
            "Nov 28 06:49:31 old sshd(pam_unix)[1234]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=1.2.3.4  user=root",
        );
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, Some(Text(b"root")));
        assert_eq!(e.tty, None);
        assert_eq!(e.source, Some(Source::Ip(v4(1, 2, 3, 4))));
        let e = line_ev(
            "Nov 28 06:49:32 old su(pam_unix)[99]: session opened for user root by alice(uid=500)",
        );
        assert_eq!(e.target_user, Some(Text(b"root")));
        assert_eq!(e.user, Some(Text(b"alice")));
        assert_eq!(
            parse_legacy(b"sshd", b"pam_unix", b"check pass; user unknown"),
            Verdict::Event({
                let mut e = LoginEvent::new(Action::InvalidUser, Outcome::Failure);
                e.reason = Some(Text(b"user unknown"));
                e
            })
        );
    }

    #[test]
    fn chkpwd() {
        let Verdict::Event(e) = parse_chkpwd(b"password check failed for user (root)") else {
            panic!()
        };
        assert_eq!(e.action, Action::AuthFailure);
        assert_eq!(e.user, Some(Text(b"root")));
        let Verdict::Event(e) = parse_chkpwd(b"check pass; user unknown") else {
            panic!()
        };
        assert_eq!(e.action, Action::InvalidUser);
        let e = line_ev("Nov 28 06:49:31 h unix_chkpwd[77]: password check failed for user (a) b)");
        assert_eq!(e.user, Some(Text(b"a) b")));
        assert_eq!(e.program, Text(b"unix_chkpwd"));
    }

    #[test]
    fn through_dispatch() {
        let e = line_ev(
            "2026-11-28T07:58:03.216064+00:00 testhost su: pam_unix(su:auth): authentication failure; logname= uid=1001 euid=0 tty=/dev/pts/1 ruser=atalice rhost=  user=atbob",
        );
        assert_eq!(e.program, Text(b"su"));
        assert_eq!(e.user, Some(Text(b"atalice")));
        assert_eq!(e.target_user, Some(Text(b"atbob")));
        let e = line_ev(
            "Nov 28 07:58:02 testhost sudo: pam_unix(sudo:session): session opened for user root(uid=0) by (uid=1001)",
        );
        assert_eq!(e.target_user, Some(Text(b"root")));
        // A program authtrail does not watch still has its PAM lines read.
        let e = line_ev(
            "Nov 28 07:58:02 testhost CRON[5]: pam_unix(cron:session): session opened for user root(uid=0) by root(uid=0)",
        );
        assert_eq!(e.action, Action::SessionOpen);
        assert_eq!(e.program, Text(b"CRON"));
        assert!(matches!(
            line(
                "Nov 28 07:58:02 testhost sshd[5]: pam_env(sshd:session): deprecated reading of user environment enabled"
            ),
            Parsed::Noise { .. }
        ));
        // rsyslog's repeat reduction multiplies the count.
        let e = line_ev(
            "Nov 28 07:58:02 h sshd[5]: message repeated 2 times: [ pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.1.1.1  user=root]",
        );
        assert_eq!(e.count, 2);
        assert_eq!(e.user, Some(Text(b"root")));
    }

    /// Every line in the fixtures from the families parsed by `pam`, `sudo`, `su`, `login`,
    /// `logind`, `account` and `dropbear` is an event or known noise: the real captures
    /// (`testdata/debian12-*`) and the lines written from documentation and source
    /// (`testdata/docs`, each under a `# source:` comment).
    #[test]
    fn fixture_lines_of_these_families_are_recognised() {
        use crate::syslog::parse_header;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let ctx = test_context();
        let mut checked = 0;
        let Ok(dirs) = std::fs::read_dir(&root) else {
            return;
        };
        for dir in dirs.flatten() {
            let name = dir.file_name();
            let name = name.to_string_lossy();
            let is_docs = name == "docs";
            if !(is_docs || name.starts_with("debian12-")) {
                continue;
            }
            let Ok(files) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                if path.extension().is_none_or(|e| e != "log") {
                    continue;
                }
                let data = std::fs::read(&path).unwrap();
                let mut sourced = false;
                for l in data.split(|&b| b == b'\n') {
                    if l.is_empty() {
                        continue;
                    }
                    if l.starts_with(b"#") {
                        sourced = l.starts_with(b"# source: ");
                        continue;
                    }
                    let shown = String::from_utf8_lossy(l);
                    if is_docs {
                        assert!(
                            sourced,
                            "{}: no `# source:` line before {shown}",
                            path.display()
                        );
                        sourced = false;
                    }
                    let Ok(h) = parse_header(l, &ctx) else {
                        continue;
                    };
                    let prog = h.program.as_bytes();
                    let prog = prog.rsplit(|&b| b == b'/').next().unwrap_or(prog);
                    let ours = matches!(
                        prog,
                        b"su"
                            | b"sudo"
                            | b"doas"
                            | b"login"
                            | b"systemd-logind"
                            | b"dropbear"
                            | b"unix_chkpwd"
                    ) || super::super::account::is_account_program(prog)
                        || h.message.starts_with(b"pam_")
                        || h.module.is_some();
                    if !ours {
                        continue;
                    }
                    checked += 1;
                    match parse_line(l, &ctx) {
                        Parsed::Event(_) | Parsed::Noise { .. } => {}
                        p => panic!("{}: {p:?} for {shown}", path.display()),
                    }
                }
            }
        }
        assert!(checked > 0 || !root.exists());
    }

    #[test]
    fn never_panics_on_cut_lines() {
        let full = b"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root";
        for i in 0..=full.len() {
            let _ = parse(b"sshd", &full[..i]);
        }
        for m in [
            &b"pam_unix(su:session): session opened for user (uid=)"[..],
            b"pam_unix(su:session): session opened for user  by ",
            b"pam_unix(x): 9999999999999 more authentication failures;",
            b"pam_sss(sshd:auth): received for user : x (",
            b"pam_tally2(sshd:auth): user  () tally ",
            b"pam_unix(sshd:auth): account  has expired",
            b"pam_access(sshd:account): access denied for user `",
        ] {
            let _ = parse(b"sshd", m);
        }
    }
}
