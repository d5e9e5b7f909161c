//! OpenSSH's sshd, and its per-connection processes `sshd-session` (9.8+) and `sshd-auth` (10.0+).
//!
//! The messages come from OpenSSH's `auth.c` (`auth_log`: `Accepted|Failed|Partial|Postponed
//! <method> for [invalid user ]<user> from <ip> port <port> ssh2[: <key info>]`), `sshd.c`,
//! `packet.c` (`Connection closed by [authenticating |invalid ]user <user> <ip> port <port>`) and
//! `auth-pam.c`. Older spellings (`illegal user`, no port, `Disconnecting: Too many ...`) are
//! accepted too. A user name can hold spaces and the words `from` and `port`: sources are read
//! from the end of the line.

use super::Verdict;
use super::fields::{
    Tail, kv, parse_source, parse_u32, rsplit_once, split_addr_port, split_from, split_from_port,
    split_once, strip_suffix, user, word,
};
use crate::event::{Action, LoginEvent, Method, Outcome, Source};
use crate::text::Text;

pub(crate) fn parse(msg: &[u8]) -> Verdict<'_> {
    let msg = strip_suffix(msg.trim_ascii_end(), b" [preauth]");
    let msg = strip_suffix(msg, b" [net]");
    // `error: ` / `fatal: ` lead some messages; the words after them decide.
    let body = msg
        .strip_prefix(b"error: ")
        .or_else(|| msg.strip_prefix(b"fatal: "))
        .unwrap_or(msg);
    // FreeBSD's base sshd prefixes OpenSSH's function names: `Fssh_ssh_dispatch_run_fatal: ...`.
    let body = body.strip_prefix(b"Fssh_").unwrap_or(body);
    let Some(&first) = body.first() else {
        return Verdict::Unrecognised;
    };
    let verdict: Option<LoginEvent<'_>> = match first {
        b'A' if body.starts_with(b"Accepted key ") => return Verdict::Noise,
        b'A' if body.starts_with(b"Accepted ") => {
            auth_log(&body[9..], Action::AuthSuccess, Outcome::Success)
        }
        b'A' if body.starts_with(b"Address ") => break_in(body),
        b'F' if body.starts_with(b"Failed ") => {
            auth_log(&body[7..], Action::AuthFailure, Outcome::Failure)
        }
        b'P' if body.starts_with(b"Partial ") => {
            auth_log(&body[8..], Action::Other, Outcome::Unknown).map(|mut e| {
                e.reason = Some(Text(b"partial authentication"));
                e
            })
        }
        b'P' if body.starts_with(b"Postponed ") => {
            auth_log(&body[10..], Action::Other, Outcome::Unknown).map(|mut e| {
                e.reason = Some(Text(b"postponed"));
                e
            })
        }
        b'P' if body.starts_with(b"PAM ") => pam_more_failures(&body[4..]),
        b'P' if body.starts_with(b"PAM: pam_setcred(): ") => {
            let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
            e.reason = Some(Text(&body[5..]));
            Some(e)
        }
        b'P' if body.starts_with(b"PAM: ") => pam_error(&body[5..]),
        b'A' if body.starts_with(b"Access denied for user ") => pam_account_denied(&body[23..]),
        b'A' if body.starts_with(b"Authentication tried for ") => key_from_refused(&body[25..]),
        b'/' => {
            split_once(body, b": Authentication tried for ").and_then(|(_, r)| key_from_refused(r))
        }
        b'I' if body.starts_with(b"Invalid user ") => invalid_user(&body[13..]),
        b'I' if body.starts_with(b"Illegal user ") => invalid_user(&body[13..]),
        b'i' if body.starts_with(b"input_userauth_request: invalid user ") => {
            let mut e = LoginEvent::new(Action::InvalidUser, Outcome::Failure);
            e.user = user(&body[37..]);
            Some(e)
        }
        b'C' if body.starts_with(b"Connection closed by ") => {
            closed(&body[21..], Text(b"connection closed"))
        }
        b'C' if body.starts_with(b"Connection reset by ") => {
            closed(&body[20..], Text(b"connection reset"))
        }
        b'C' if body.starts_with(b"Connection from ") => connection_from(&body[16..]),
        b'D' if body.starts_with(b"Disconnected from ") => {
            closed(&body[18..], Text(b"disconnected"))
        }
        b'D' if body.starts_with(b"Disconnecting ") => disconnecting(&body[14..]),
        b'D' if body.starts_with(b"Disconnecting: ") => disconnecting_old(&body[15..]),
        b'D' if body.starts_with(b"Did not receive identification string from ") => {
            scan(&body[43..], Text(b"no identification string"))
        }
        b'R' if body.starts_with(b"Received disconnect from ") => received_disconnect(&body[25..]),
        b'R' if body.starts_with(b"ROOT LOGIN REFUSED FROM ") => root_refused(&body[24..]),
        b'T' if body.starts_with(b"Timeout before authentication for connection from ") => {
            listener_timeout(&body[50..])
        }
        b'T' if body.starts_with(b"Timeout before authentication for ") => {
            scan(&body[34..], Text(b"timeout before authentication"))
        }
        b'U' if body.starts_with(b"User ") => not_allowed(&body[5..]),
        b'U' if body.starts_with(b"Unable to negotiate with ") => unable_to_negotiate(&body[25..]),
        b'A' if body.starts_with(b"Authentication refused: ") => {
            let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
            e.method = Some(Method::Publickey);
            e.reason = user(&body[24..]);
            Some(e)
        }
        b's' if body.starts_with(b"subsystem request for ") => subsystem(&body[22..]),
        b's' if body.starts_with(b"ssh_dispatch_run_fatal: Connection from ") => probe(&body[40..]),
        b'P' if body.starts_with(b"Protocol major versions differ for ") => probe(&body[35..]),
        b'(' if body.starts_with(b"(pam_") => {
            // Old PAM: `sshd[42]: (pam_unix) authentication failure; ...`.
            let Some((module, rest)) = split_once(&body[1..], b") ") else {
                return Verdict::Unrecognised;
            };
            return super::pam::parse_legacy(b"sshd", module, rest);
        }
        b'B' if body.starts_with(b"Bad protocol version identification ") => {
            bad_protocol(&body[36..])
        }
        b'b' if body.starts_with(b"banner exchange: Connection from ") => {
            banner_exchange(&body[33..])
        }
        b'm' if body.starts_with(b"maximum authentication attempts exceeded for ") => {
            max_attempts(&body[45..])
        }
        b'r' if body.starts_with(b"reverse mapping checking ") => break_in(body),
        b'd' if body.starts_with(b"drop connection #") => drop_connection(&body[17..]),
        b'T' if body.starts_with(b"Timeout, client not responding from ") => {
            closed(&body[36..], Text(b"client not responding"))
        }
        b'r' if body.starts_with(b"refused connect from ") => refused_connect(&body[21..]),
        b'S' if body.starts_with(b"Session process ") => preauth_crash(&body[16..]),
        b's' if body.starts_with(b"session process ") => preauth_crash(&body[16..]),
        _ => None,
    };
    match verdict {
        Some(e) => Verdict::Event(e),
        None if is_noise(body) => Verdict::Noise,
        None => Verdict::Unrecognised,
    }
}

/// Known sshd lines that carry nothing login-relevant.
fn is_noise(body: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"Server listening on ",
        b"Received signal ",
        b"Received SIGHUP",
        b"Starting session: ",
        b"Close session: ",
        b"User child is on pid ",
        b"Changed root directory to ",
        b"Transferred: ",
        b"kex_exchange_identification: ",
        b"Nasty PTR record ",
        b"AuthorizedKeysCommand",
        b"Read error from remote host ",
        b"Connection reset by peer",
        b"ssh_dispatch_run_fatal: ",
        b"userauth_pubkey: ",
        b"srclimit_penalise: ",
        b"Server will not fork when running in debugging mode",
        b"debug",
        b"Set /proc/self/oom_score_adj",
        b"Exiting on signal",
        b"Attempt to write login records by non-root user",
        b"Could not load host key",
        b"PAM adding faulty module",
        b"Failed to release session",
        b"pam_",
        b"rexec line ",
        b"PAM service(",
        b"Invalid proposal",
        b"SSH: Server;Ltype:",
        b"send_error: ",
        b"cleanup_exit",
        b"mm_",
        b"monitor_",
        b"session_",
        b"channel ",
        b"error in libcrypto",
        b"Connection timed out",
        b"Protocol major versions differ",
        b"beginning MaxStartups throttling",
        b"exited MaxStartups throttling",
        b"in MaxStartups throttling",
        b"Bad remote protocol version identification",
        b"Could not get shadow information",
        b"connect_to ",
        b"Accepted certificate ID ",
        b"Certificate invalid",
        b"Authorized to ",
        b"/etc/ssh/",
        b"Bind to port ",
        b"Authentication key ",
        b"packet_write_wait",
        b"ssh_msg_send",
        b"Read from socket failed",
        b"Write failed",
        b"Unsafe AuthorizedKeysCommand",
    ];
    PREFIXES.iter().any(|p| body.starts_with(p))
}

/// `auth_log`: `<method>[/<submethod>] for [invalid user ]<user> from <ip> port <port>
/// ssh2[: <key type> <fingerprint>...]`. `rest` starts at the method.
fn auth_log(rest: &[u8], action: Action, outcome: Outcome) -> Option<LoginEvent<'_>> {
    let (method_word, rest) = word(rest);
    let rest = rest.strip_prefix(b"for ")?;
    // Split the key info off at the *last* ` ssh2` (a user name may contain ` ssh2`).
    let (tail_part, extra) = split_protocol(rest);
    let tail = split_from_port(tail_part).or_else(|| split_from(tail_part))?;
    let mut e = LoginEvent::new(action, outcome);
    e.method = Method::from_sshd(method_word);
    let mut head = tail.head;
    let mut valid = true;
    for prefix in [&b"invalid user "[..], b"illegal user "] {
        if let Some(h) = head.strip_prefix(prefix) {
            head = h;
            valid = false;
        }
    }
    if head == b"invalid user" || head == b"illegal user" {
        head = b"";
        valid = false;
    }
    e.user = user(head);
    if !valid && action == Action::AuthFailure {
        e.reason = Some(Text(b"invalid user"));
    }
    set_tail(&mut e, &tail);
    if let Some(extra) = extra {
        let (key_type, rest) = word(extra);
        let (fingerprint, _) = word(rest);
        if !key_type.is_empty() && !fingerprint.is_empty() {
            e.key_type = Some(Text(key_type));
            e.key_fingerprint = Some(Text(fingerprint));
        }
    }
    if e.method.is_none() {
        e.reason = Some(Text(method_word));
    }
    Some(e)
}

/// Splits `... port N ssh2: extra` into (`... port N`, `Some(extra)`); without ` ssh2` the whole
/// input is the tail (old sshd, or `ssh1`).
fn split_protocol(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    for proto in [&b" ssh2"[..], b" ssh1"] {
        if let Some(i) = memchr::memmem::rfind(s, proto) {
            let after = &s[i + proto.len()..];
            if after.is_empty() {
                return (&s[..i], None);
            }
            if let Some(extra) = after.strip_prefix(b": ") {
                return (&s[..i], Some(extra));
            }
        }
    }
    (s, None)
}

fn set_tail<'a>(e: &mut LoginEvent<'a>, tail: &Tail<'a>) {
    e.source = Some(tail.source);
    e.port = tail.port;
}

/// `Invalid user <user> from <ip>[ port <port>]`.
fn invalid_user(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let tail = split_from_port(rest).or_else(|| split_from(rest))?;
    let mut e = LoginEvent::new(Action::InvalidUser, Outcome::Failure);
    e.user = user(tail.head);
    set_tail(&mut e, &tail);
    Some(e)
}

/// Who a `packet.c` connection id names: `[authenticating |invalid ]user <user> <ip> port <p>`
/// or just `<ip> port <p>`; returns the user, whether authentication had finished, and the tail.
fn connection_id(rest: &[u8]) -> Option<(Option<Text<'_>>, Option<bool>, Tail<'_>)> {
    let Some(tail) = split_addr_port(rest) else {
        // Older sshd: `Connection closed by 192.0.2.1` (no port).
        let source = parse_source(rest)?;
        return Some((
            None,
            None,
            Tail {
                head: b"",
                source,
                port: None,
            },
        ));
    };
    let head = tail.head;
    let (who, authenticated) = if let Some(u) = head.strip_prefix(b"authenticating user ") {
        (user(u), Some(false))
    } else if let Some(u) = head.strip_prefix(b"invalid user ") {
        (user(u), Some(false))
    } else if head == b"invalid user" || head == b"authenticating user" {
        (None, Some(false))
    } else if let Some(u) = head.strip_prefix(b"user ") {
        (user(u), Some(true))
    } else if head.is_empty() {
        (None, None)
    } else {
        return None;
    };
    Some((who, authenticated, tail))
}

/// `Connection closed by ...`, `Connection reset by ...`, `Disconnected from ...`.
fn closed<'a>(rest: &'a [u8], reason: Text<'static>) -> Option<LoginEvent<'a>> {
    let (who, authenticated, tail) = connection_id(rest)?;
    let outcome = match authenticated {
        Some(true) => Outcome::Success,
        Some(false) => Outcome::Failure,
        None => Outcome::Unknown,
    };
    let mut e = LoginEvent::new(Action::Disconnect, outcome);
    e.user = who;
    e.reason = Some(reason);
    set_tail(&mut e, &tail);
    Some(e)
}

/// `Disconnecting authenticating user root 1.2.3.4 port 5: Too many authentication failures`.
fn disconnecting(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (id, why) = split_once(rest, b": ")?;
    let (who, _, tail) = connection_id(id)?;
    let mut e = LoginEvent::new(Action::Disconnect, Outcome::Failure);
    e.user = who;
    e.reason = Some(Text(why));
    set_tail(&mut e, &tail);
    if why.starts_with(b"Too many authentication failures") {
        e.action = Action::AuthFailure;
    }
    Some(e)
}

/// Older sshd (`packet.c` `logit("Disconnecting: %.100s", buf)`, before the connection id):
/// `Disconnecting: Too many authentication failures for root`, or any other reason (`Change of
/// username or service not allowed: ...`, `Packet corrupt`), a refused connection.
fn disconnecting_old(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let why = b"Too many authentication failures";
    let Some(after) = rest.strip_prefix(&why[..]) else {
        let mut e = LoginEvent::new(Action::Disconnect, Outcome::Failure);
        e.reason = Some(user(rest)?);
        return Some(e);
    };
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.reason = Some(Text(why));
    if let Some(u) = after.strip_prefix(b" for ") {
        let u = u.strip_prefix(b"invalid user ").unwrap_or(u);
        e.user = user(u);
    }
    Some(e)
}

/// `maximum authentication attempts exceeded for [invalid user ]<user> from <ip> port <p> ssh2`.
fn max_attempts(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (tail_part, _) = split_protocol(rest);
    let tail = split_from_port(tail_part).or_else(|| split_from(tail_part))?;
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    let head = tail.head;
    let head = head.strip_prefix(b"invalid user ").unwrap_or(head);
    e.user = user(head);
    e.reason = Some(Text(b"maximum authentication attempts exceeded"));
    set_tail(&mut e, &tail);
    Some(e)
}

/// `Received disconnect from <ip> port <p>:<code>: <reason>` (also old `<ip>: <code>: <reason>`).
fn received_disconnect(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let mut e = LoginEvent::new(Action::Disconnect, Outcome::Unknown);
    // The address and port come first here and hold no user text, so split from the left.
    let (addr, after) = word(rest);
    if after.starts_with(b"port ") {
        let (port_code, reason) = split_once(&after[5..], b": ").unwrap_or((&after[5..], b""));
        let port = port_code.split(|&b| b == b':').next()?;
        e.source = Some(parse_source(addr)?);
        e.port = Some(super::fields::parse_port(port)?);
        e.reason = super::fields::user(reason);
    } else {
        // `1.2.3.4: 11: Bye Bye`
        let addr = addr.strip_suffix(b":")?;
        e.source = Some(parse_source(addr)?);
        if let Some((_, why)) = split_once(after, b": ") {
            e.reason = user(why);
        }
    }
    Some(e)
}

/// `Connection from <ip> port <p> on <ip> port <p>[ rdomain "<d>"]`.
fn connection_from(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (addr, after) = word(rest);
    let after = after.strip_prefix(b"port ")?;
    let (port, _) = word(after);
    let mut e = LoginEvent::new(Action::Connection, Outcome::Unknown);
    e.source = Some(parse_source(addr)?);
    e.port = Some(super::fields::parse_port(port)?);
    Some(e)
}

/// `User <user> from <host> not allowed because <reason>`; `auth.c` leaves out ` from <host>`
/// for the reasons about the account itself (`account is locked`, `shell ... does not exist`).
fn not_allowed(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (who_from, why) = rsplit_once(rest, b" not allowed because ")?;
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.reason = Some(Text(why));
    match split_from(who_from) {
        Some(tail) => {
            e.user = user(tail.head);
            set_tail(&mut e, &tail);
        }
        None => e.user = user(who_from),
    }
    Some(e)
}

/// tcp_wrappers (`libwrap`, sshd built with it): `refused connect from <host> (<ip>)`.
fn refused_connect(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (host, ip) = match split_once(rest, b" (") {
        Some((h, ip)) => (h, ip.strip_suffix(b")")),
        None => (rest, None),
    };
    let mut e = LoginEvent::new(Action::Connection, Outcome::Failure);
    e.source = match ip.and_then(super::fields::parse_ip) {
        Some(ip) => Some(Source::Ip(ip)),
        None => Some(parse_source(host)?),
    };
    e.reason = Some(Text(b"refused by tcp_wrappers"));
    Some(e)
}

/// `ROOT LOGIN REFUSED FROM <ip>[ port <p>]`.
fn root_refused(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (addr, after) = word(rest);
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.user = Some(Text(b"root"));
    e.reason = Some(Text(b"root login refused"));
    e.source = Some(parse_source(addr)?);
    if let Some(p) = after.strip_prefix(b"port ") {
        e.port = super::fields::parse_port(word(p).0);
    }
    Some(e)
}

/// `PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root`.
fn pam_more_failures(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (n, after) = word(rest);
    let n = parse_u32(n)?;
    if !after.starts_with(b"more authentication failure") {
        return None;
    }
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.count = n.max(1);
    e.reason = Some(Text(b"PAM authentication failures"));
    if let Some(rhost) = kv(after, b"rhost=") {
        e.source = parse_source(rhost);
    }
    // `user=` is last and may hold spaces.
    if let Some((_, u)) = rsplit_once(after, b" user=") {
        e.user = user(u);
    }
    Some(e)
}

/// `error: PAM: Authentication failure for [illegal user ]<user> from <host>` and
/// `error: PAM: User not known to the underlying authentication module for illegal user <u> from <h>`.
fn pam_error(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (why, after) = split_once(rest, b" for ")?;
    let tail = split_from(after)?;
    let mut head = tail.head;
    let mut action = Action::AuthFailure;
    for prefix in [&b"illegal user "[..], b"invalid user "] {
        if let Some(h) = head.strip_prefix(prefix) {
            head = h;
            action = Action::InvalidUser;
        }
    }
    let mut e = LoginEvent::new(action, Outcome::Failure);
    e.user = user(head);
    e.reason = Some(Text(why));
    e.method = Some(Method::KeyboardInteractive);
    set_tail(&mut e, &tail);
    Some(e)
}

/// `fatal: Access denied for user <user> by PAM account configuration` (`auth2.c`
/// `userauth_finish`; older releases `error:`): the PAM account stage refused a user whose
/// credentials were right; `rest` starts at the user.
fn pam_account_denied(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (who, _) = rsplit_once(rest, b" by PAM account configuration")?;
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.user = user(who);
    e.reason = Some(Text(b"access denied by PAM account configuration"));
    Some(e)
}

/// After `[<file>:<line>: ]Authentication tried for `: `<user> with correct key but not from a
/// permitted host (host=<name>, ip=<ip>[, required=<patterns>]).` (`auth_authorise_keyopts`):
/// the key's `from=` option refused the address.
fn key_from_refused(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (who, peer) = rsplit_once(
        rest,
        b" with correct key but not from a permitted host (host=",
    )?;
    let (_, ip) = rsplit_once(peer, b", ip=")?;
    let ip = match memchr::memchr2(b',', b')', ip) {
        Some(end) => &ip[..end],
        None => ip,
    };
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.user = user(who);
    e.source = super::fields::parse_ip(ip).map(Source::Ip);
    e.method = Some(Method::Publickey);
    e.reason = Some(Text(b"key not from a permitted host"));
    Some(e)
}

/// `Did not receive identification string from <ip> port <p>`, `Timeout before authentication
/// for <ip> port <p>`: a connection that never tried to log in.
fn scan<'a>(rest: &'a [u8], reason: Text<'static>) -> Option<LoginEvent<'a>> {
    let (addr, after) = word(rest);
    let mut e = LoginEvent::new(Action::Disconnect, Outcome::Failure);
    e.source = Some(parse_source(addr)?);
    if let Some(p) = after.strip_prefix(b"port ") {
        e.port = super::fields::parse_port(word(p).0);
    }
    e.reason = Some(reason);
    Some(e)
}

/// `Unable to negotiate with <ip> port <p>: no matching ...`.
fn unable_to_negotiate(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (id, why) = split_once(rest, b": ").unwrap_or((rest, b""));
    let tail = split_addr_port(id)?;
    let mut e = LoginEvent::new(Action::Connection, Outcome::Failure);
    set_tail(&mut e, &tail);
    let why = match split_once(why, b". Their offer") {
        Some((w, _)) => w,
        None => why,
    };
    e.reason = user(why);
    Some(e)
}

/// `Bad protocol version identification '<text>' from <ip> port <p>`.
fn bad_protocol(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let tail = split_from_port(rest).or_else(|| split_from(rest))?;
    let mut e = LoginEvent::new(Action::Connection, Outcome::Failure);
    set_tail(&mut e, &tail);
    e.reason = Some(Text(b"bad protocol version identification"));
    Some(e)
}

/// `banner exchange: Connection from <ip> port <p>: invalid format`.
fn banner_exchange(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (id, why) = rsplit_once(rest, b": ")?;
    let tail = split_addr_port(id)?;
    if !tail.head.is_empty() {
        return None;
    }
    let mut e = LoginEvent::new(Action::Connection, Outcome::Failure);
    set_tail(&mut e, &tail);
    e.reason = user(why);
    Some(e)
}

/// `subsystem request for <name> by user <user>` (`session.c`): an authenticated user opened a
/// subsystem (sftp). Older sshd leaves out ` by user <user>`.
fn subsystem(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (name, who) = match split_once(rest, b" by user ") {
        Some((n, u)) => (n, user(u)),
        None => (rest, None),
    };
    let mut e = LoginEvent::new(Action::Other, Outcome::Success);
    e.user = who;
    e.reason = user(name);
    Some(e)
}

/// After `ssh_dispatch_run_fatal: Connection from ` or `Protocol major versions differ for `:
/// `[authenticating |invalid ]user <u> <ip> port <p>: <why>` or `<ip> port <p>: <why>`, a
/// handshake that went wrong: a scanner's or an obfuscated client's probe.
fn probe(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (id, why) = split_once(rest, b": ").unwrap_or((rest, b""));
    let (who, _, tail) = connection_id(id)?;
    let mut e = LoginEvent::new(Action::Connection, Outcome::Failure);
    e.user = who;
    e.reason = user(why);
    set_tail(&mut e, &tail);
    Some(e)
}

/// `drop connection #3 from [1.2.3.4]:5 on [10.0.0.1]:22 <reason>`: `past MaxStartups` (9.7 and
/// older), `past Maxstartups` or a `PerSourcePenalties` reason such as `penalty: failed
/// authentication` (9.8+, `srclimit.c`).
fn drop_connection(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (_, after) = split_once(rest, b" from [")?;
    let (addr, after) = split_once(after, b"]:")?;
    let (port, after) = word(after);
    let mut e = LoginEvent::new(Action::Disconnect, Outcome::Failure);
    e.source = Some(parse_source(addr)?);
    e.port = super::fields::parse_port(port);
    // After ` on [<laddr>]:<lport> `.
    let reason = after
        .strip_prefix(b"on [")
        .and_then(|a| split_once(a, b"]:"))
        .map(|(_, a)| word(a).1);
    e.reason = Some(match reason.and_then(user) {
        Some(r) => r,
        None => Text(b"past MaxStartups"),
    });
    Some(e)
}

/// OpenSSH 9.8+ listener (`sshd.c` `child_reap`), after `Session process ` or `session process `:
/// `<pid> unpriv child crash for connection from <raddr>[ to <laddr>]` and `<pid> for connection
/// from <raddr>[ to <laddr>] killed by signal <n>[ (early)]` (logged at ERROR for a crash signal).
fn preauth_crash(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (_, id) = split_once(rest, b" connection from ")?;
    let (raddr, _) = word(id);
    let raddr = raddr.strip_suffix(b",").unwrap_or(raddr);
    let mut e = LoginEvent::new(Action::Other, Outcome::Failure);
    e.source = Some(Source::Ip(super::fields::parse_ip(raddr)?));
    e.reason = Some(match memchr::memmem::find(rest, b" killed by ") {
        Some(i) => Text(&rest[i + 1..]),
        None => Text(b"unpriv child crash"),
    });
    Some(e)
}

/// OpenSSH 9.8+ listener (`sshd.c` `child_reap`): `Timeout before authentication for connection
/// from <raddr>[ to <laddr>], pid = <pid>`; `rest` starts at `<raddr>`.
fn listener_timeout(rest: &[u8]) -> Option<LoginEvent<'_>> {
    let (id, _) = rsplit_once(rest, b", pid = ")?;
    let raddr = match split_once(id, b" to ") {
        Some((r, _)) => r,
        None => id,
    };
    let mut e = LoginEvent::new(Action::Disconnect, Outcome::Failure);
    e.source = Some(Source::Ip(super::fields::parse_ip(raddr)?));
    e.reason = Some(Text(b"timeout before authentication"));
    Some(e)
}

/// `reverse mapping checking getaddrinfo for <name> [<ip>] failed - POSSIBLE BREAK-IN ATTEMPT!`
/// and `Address <ip> maps to <name>, but this does not map back to the address - POSSIBLE
/// BREAK-IN ATTEMPT!`: DNS that does not match, reported with the address.
fn break_in(body: &[u8]) -> Option<LoginEvent<'_>> {
    let addr = if let Some(rest) = body.strip_prefix(b"Address ") {
        word(rest).0
    } else {
        let (_, after) = split_once(body, b" [")?;
        split_once(after, b"]")?.0
    };
    let mut e = LoginEvent::new(Action::Other, Outcome::Unknown);
    e.source = Some(Source::Ip(super::fields::parse_ip(addr)?));
    e.reason = Some(Text(b"reverse DNS does not match"));
    Some(e)
}
