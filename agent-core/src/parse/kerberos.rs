//! The Kerberos remote-login daemons of MIT krb5-appl, `klogind` (`bsd/krlogind.c`) and `kshd`
//! (`bsd/krshd.c`), also installed as `krlogind`/`krshd`.
//!
//! - `login by <principal> (<ruser>@<host>) as <user>[ forcing password access]` and `ROOT login
//!   by <principal> (<ruser>@<host>) ` (the local account is root);
//! - `Executing <cmd> for principal <principal> (<ruser>@<addr> (<host>)) as local user <user>`
//!   and `Access as <user> by principal <principal> (<ruser>@<addr> (<host>))` (older:
//!   `(<ruser>@<host>)`);
//! - `Authentication failed from <host>: <reason>` and `User <principal> is not authorized to
//!   login to account <user>`.
//!
//! The remote user and principal are what the client claims; the local account and the peer's
//! address are what the daemon decided, so `user` is the local account.

use super::Verdict;
use super::fields::{parse_source, rsplit_once, split_once, user};
use crate::event::{Action, LoginEvent, Outcome};
use crate::text::Text;

pub(crate) fn parse(msg: &[u8]) -> Verdict<'_> {
    let msg = msg.trim_ascii();
    let e = if let Some(rest) = msg.strip_prefix(b"ROOT login by ") {
        split_once(rest, b" (").and_then(|(_, peer)| login(peer, Some(b"root")))
    } else if let Some(rest) = msg.strip_prefix(b"login by ") {
        let rest = rest
            .strip_suffix(b" forcing password access")
            .unwrap_or(rest);
        rsplit_once(rest, b" as ").and_then(|(who, local)| {
            let (_, peer) = split_once(who, b" (")?;
            login(peer, Some(local))
        })
    } else if let Some(rest) = msg.strip_prefix(b"Executing ") {
        let (cmd, after) = split_once(rest, b" for principal ").unwrap_or((b"", b""));
        rsplit_once(after, b" as local user ").and_then(|(who, local)| {
            let (_, peer) = split_once(who, b" (")?;
            login(peer, Some(local)).map(|mut e| {
                e.command = user(cmd);
                e
            })
        })
    } else if let Some(rest) = msg.strip_prefix(b"Access as ") {
        split_once(rest, b" by principal ").and_then(|(local, who)| {
            let (_, peer) = split_once(who, b" (")?;
            login(peer, Some(local))
        })
    } else if let Some(rest) = msg.strip_prefix(b"Authentication failed from ") {
        let (host, why) = split_once(rest, b": ").unwrap_or((rest, b""));
        parse_source(host).map(|source| {
            let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
            e.source = Some(source);
            e.reason = user(why);
            e
        })
    } else if let Some(rest) = msg.strip_prefix(b"User ") {
        rsplit_once(rest, b" is not authorized to login to account ").map(|(_, local)| {
            let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
            e.user = user(local);
            e.reason = Some(Text(b"not authorized for the account"));
            e
        })
    } else {
        None
    };
    match e {
        Some(e) => e.into(),
        None => Verdict::Unrecognised,
    }
}

/// `<ruser>@<addr>[ (<host>)])` (the text after ` (`): an accepted login as `local`.
fn login<'a>(peer: &'a [u8], local: Option<&'a [u8]>) -> Option<LoginEvent<'a>> {
    let peer = peer.trim_ascii_end();
    let peer = peer.strip_suffix(b")").unwrap_or(peer);
    let (_, host) = rsplit_once(peer, b"@")?;
    // `addr (name)`: the address is what the daemon saw.
    let host = match split_once(host, b" (") {
        Some((addr, _)) => addr,
        None => host,
    };
    let mut e = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
    e.source = parse_source(host);
    e.user = local.and_then(user);
    Some(e)
}
