//! Message parsers: from a syslog line (or a bare message and its program) to a [`Parsed`]
//! verdict, usually a [`LoginEvent`].
//!
//! Dispatch is by program name, then by the message's leading words; no regex and no allocation.
//! Each program family has its own module. PAM lines (`pam_unix(sshd:auth): ...`) are recognised
//! for whichever program wrote them.

pub(crate) mod fields;

mod account;
mod audit;
mod doas;
mod dropbear;
mod ftp;
mod kerberos;
mod login;
mod logind;
mod pam;
mod sshd;
mod su;
mod sudo;
mod xrdp;

use core::fmt;

use crate::event::LoginEvent;
use crate::syslog::{self, Context, Header, HeaderError};
use crate::text::Text;
use crate::time::Timestamp;

/// The verdict on one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A login-relevant event.
    Event(LoginEvent<'a>),
    /// syslogd's `last message repeated N times`: the previous line happened `count` more times.
    /// The parser keeps no state; the caller owns the previous event.
    RepeatLast {
        /// How many more times.
        count: u32,
        /// The line's header, for its time and host.
        header: Header<'a>,
    },
    /// A line from a program authtrail watches that carries nothing to report (known noise such
    /// as `Server listening on` or `pam_systemd: Failed to connect to system bus`).
    Noise {
        /// The program that wrote it.
        program: Text<'a>,
    },
    /// A line from a program authtrail watches that no parser recognised: worth a look.
    Unrecognised {
        /// The program that wrote it.
        program: Text<'a>,
    },
    /// A line from a program authtrail does not watch.
    Foreign {
        /// The program that wrote it.
        program: Text<'a>,
    },
    /// Not a syslog line.
    Malformed(HeaderError),
}

impl<'a> Parsed<'a> {
    /// The event, if this is one.
    pub fn event(&self) -> Option<&LoginEvent<'a>> {
        match self {
            Parsed::Event(e) => Some(e),
            _ => None,
        }
    }

    /// A short name of the verdict kind, for summaries.
    pub const fn kind(&self) -> &'static str {
        match self {
            Parsed::Event(_) => "event",
            Parsed::RepeatLast { .. } => "repeat",
            Parsed::Noise { .. } => "noise",
            Parsed::Unrecognised { .. } => "unrecognised",
            Parsed::Foreign { .. } => "foreign",
            Parsed::Malformed(_) => "malformed",
        }
    }
}

/// What a family parser says about a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "returned by value on the parse path, where boxing would allocate"
)]
pub(crate) enum Verdict<'a> {
    Event(LoginEvent<'a>),
    Noise,
    Unrecognised,
}

impl<'a> From<LoginEvent<'a>> for Verdict<'a> {
    fn from(e: LoginEvent<'a>) -> Self {
        Verdict::Event(e)
    }
}

impl<'a> From<Option<LoginEvent<'a>>> for Verdict<'a> {
    fn from(e: Option<LoginEvent<'a>>) -> Self {
        match e {
            Some(e) => Verdict::Event(e),
            None => Verdict::Unrecognised,
        }
    }
}

/// Parses one raw log line: the syslog header, then the message.
pub fn parse_line<'a>(line: &'a [u8], ctx: &Context) -> Parsed<'a> {
    if audit::looks_raw(line) {
        return parse_audit_raw(syslog::trim_line_end(line));
    }
    let header = match syslog::parse_header(line, ctx) {
        Ok(h) => h,
        // OpenWrt's `logread` file: a `ctime` date, then `facility.priority` and the tag.
        Err(e) => match syslog::parse_logread(line, ctx) {
            Some(h) => h,
            None => return headerless_line(line, ctx, e),
        },
    };
    if header.program.is_empty() {
        if let Some(count) = last_message_repeated(header.message) {
            return Parsed::RepeatLast { count, header };
        }
        return Parsed::Foreign {
            program: header.program,
        };
    }
    let mut parsed = parse_with_module(header.program, header.module, header.pid, header.message);
    if let Parsed::Event(ev) = &mut parsed {
        ev.timestamp = Some(header.timestamp);
        ev.hostname = header.hostname;
    }
    parsed
}

/// A line no syslog header fits: ausearch's separators, vsftpd's own log, or malformed.
#[cold]
fn headerless_line<'a>(line: &'a [u8], ctx: &Context, e: HeaderError) -> Parsed<'a> {
    // ausearch's default output separates events with `----` and `time->...` lines.
    let bare = syslog::trim_line_end(line);
    if bare == b"----" || bare.starts_with(b"time->") {
        return Parsed::Noise {
            program: Text(b"audit"),
        };
    }
    vsftpd_log_line(line, ctx).unwrap_or(Parsed::Malformed(e))
}

/// A line with no syslog header that is a known sshd message (tools, tests and `sshd -e` print
/// them bare): its event, as sshd's. Only messages that give an event count: a bare `Server
/// listening on` says too little to be sure of the program. The caller says so to the user.
pub fn parse_headerless_sshd(line: &[u8]) -> Option<LoginEvent<'_>> {
    let line = syslog::trim_line_end(line);
    match parse_message(Text(b"sshd"), None, line) {
        Parsed::Event(ev) => Some(ev),
        _ => None,
    }
}

/// vsftpd's own log file (`vsftpd_log_file`): `Sat Dec  5 01:42:16 2026 [pid 13442] [u] OK
/// LOGIN: Client "127.0.0.2"` (`logging.c`: a `ctime` date, then the pid, then the message it
/// also sends to syslog).
fn vsftpd_log_line<'a>(line: &'a [u8], ctx: &Context) -> Option<Parsed<'a>> {
    let (timestamp, rest) = syslog::parse_ctime_prefix(syslog::trim_line_end(line), ctx)?;
    let Some(rest) = rest.strip_prefix(b" [pid ") else {
        // The xferlog (wu-ftpd format) vsftpd and others write beside it: `<ctime> <secs>
        // <host> <bytes> <file> ...`, transfers only.
        let (secs, _) = fields::word(rest.trim_ascii_start());
        return (!secs.is_empty() && secs.iter().all(u8::is_ascii_digit)).then_some(
            Parsed::Noise {
                program: Text(b"xferlog"),
            },
        );
    };
    let (pid, message) = fields::split_once(rest, b"] ")?;
    let pid = syslog::parse_u32(pid)?;
    let mut parsed = parse_with_module(Text(b"vsftpd"), None, Some(pid), message);
    if let Parsed::Event(ev) = &mut parsed {
        ev.timestamp = Some(timestamp);
    }
    Some(parsed)
}

/// A raw audit record (`audit.log`, `ausearch --format raw`): its time is in the record.
fn parse_audit_raw(line: &[u8]) -> Parsed<'_> {
    let Some(raw) = audit::split_raw(line) else {
        return Parsed::Malformed(HeaderError::NoTimestamp);
    };
    match audit::record(raw.kind, raw.body) {
        Verdict::Event(mut ev) => {
            ev.timestamp = Some(Timestamp {
                secs: raw.secs,
                nanos: raw.millis * 1_000_000,
            });
            ev.hostname = raw.node;
            if ev.program.is_empty() {
                ev.program = Text(b"audit");
            }
            Parsed::Event(ev)
        }
        Verdict::Noise => Parsed::Noise {
            program: Text(b"audit"),
        },
        Verdict::Unrecognised => Parsed::Unrecognised {
            program: Text(b"audit"),
        },
    }
}

/// Parses a bare message whose program and pid are known from elsewhere (journald's
/// `SYSLOG_IDENTIFIER` and `_PID`). The event has no timestamp or host name: the caller sets them.
pub fn parse_message<'a>(program: Text<'a>, pid: Option<u32>, message: &'a [u8]) -> Parsed<'a> {
    parse_with_module(program, None, pid, syslog::trim_line_end(message))
}

fn parse_with_module<'a>(
    program: Text<'a>,
    module: Option<Text<'a>>,
    pid: Option<u32>,
    message: &'a [u8],
) -> Parsed<'a> {
    let name = basename(program.as_bytes());
    // Audit records through journald (`audit[pid]: USER_LOGIN ...`), the kernel's printk, or a
    // relay of the raw file under any tag.
    let message = if name == b"kernel" {
        skip_kernel_uptime(message)
    } else {
        message
    };
    if name == b"audit"
        || audit::looks_raw(message)
        || (name == b"kernel" && message.starts_with(b"audit: type="))
    {
        return match audit::parse_journal(message) {
            Verdict::Event(mut ev) => {
                if ev.program.is_empty() {
                    ev.program = Text(name);
                }
                if ev.pid.is_none() {
                    ev.pid = pid;
                }
                Parsed::Event(ev)
            }
            Verdict::Noise => Parsed::Noise { program },
            Verdict::Unrecognised => Parsed::Unrecognised { program },
        };
    }
    if !is_watched(name) && !message.starts_with(b"pam_") && module.is_none() {
        return Parsed::Foreign { program };
    }
    // rsyslog's `message repeated N times: [ msg]`.
    let (count, message) = match message_repeated(message) {
        Some((n, inner)) => (n, inner),
        None => (1, message),
    };
    let verdict = match module {
        Some(m) if m.as_bytes().starts_with(b"pam_") => {
            pam::parse_legacy(name, m.as_bytes(), message)
        }
        _ => dispatch(name, message),
    };
    match verdict {
        Verdict::Event(mut ev) => {
            ev.program = Text(name);
            ev.pid = pid;
            ev.count = ev.count.saturating_mul(count).max(1);
            Parsed::Event(ev)
        }
        Verdict::Noise => Parsed::Noise { program },
        Verdict::Unrecognised => Parsed::Unrecognised { program },
    }
}

fn dispatch<'a>(name: &'a [u8], msg: &'a [u8]) -> Verdict<'a> {
    if msg.starts_with(b"pam_") {
        return pam::parse(name, msg);
    }
    match name {
        b"sshd" | b"sshd-session" | b"sshd-auth" => sshd::parse(msg),
        b"sudo" => sudo::parse(msg),
        b"doas" => doas::parse(msg),
        b"su" => su::parse(msg),
        b"login" => login::parse(msg),
        b"systemd-logind" => logind::parse(msg),
        b"dropbear" => dropbear::parse(msg),
        b"klogind" | b"kshd" | b"krlogind" | b"krshd" => kerberos::parse(msg),
        _ if ftp::is_ftp_program(name) => ftp::parse(name, msg),
        b"unix_chkpwd" => pam::parse_chkpwd(msg),
        b"xrdp-sesman" | b"xrdp-sesexec" => xrdp::parse(msg),
        _ if account::is_account_program(name) => account::parse(name, msg),
        // cron and other PAM users: only their PAM lines (handled above) matter.
        _ => Verdict::Noise,
    }
}

/// The programs whose lines authtrail reads (besides any program's PAM lines).
pub(crate) fn is_watched(name: &[u8]) -> bool {
    matches!(
        name,
        b"sshd"
            | b"sshd-session"
            | b"sshd-auth"
            | b"sudo"
            | b"doas"
            | b"su"
            | b"login"
            | b"systemd-logind"
            | b"dropbear"
            | b"klogind"
            | b"kshd"
            | b"krlogind"
            | b"krshd"
            | b"unix_chkpwd"
            | b"xrdp-sesman"
            | b"xrdp-sesexec"
    ) || account::is_account_program(name)
        || ftp::is_ftp_program(name)
}

/// The kernel's `[   12.345678] ` uptime stamp, as rsyslog's imklog may keep it.
fn skip_kernel_uptime(msg: &[u8]) -> &[u8] {
    if let [b'[', rest @ ..] = msg
        && let Some(close) = memchr::memchr(b']', rest)
        && close <= 20
        && rest[..close]
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b' ' | b'.'))
    {
        return rest[close + 1..].trim_ascii_start();
    }
    msg
}

/// `/usr/sbin/sshd` -> `sshd`; a tag ending in `/` names its last component, and one of
/// slashes only is kept whole (a program name is never empty).
#[inline]
fn basename(program: &[u8]) -> &[u8] {
    match memchr::memrchr(b'/', program) {
        None => program,
        Some(i) if i + 1 < program.len() => &program[i + 1..],
        Some(_) => match program.iter().rposition(|&b| b != b'/') {
            Some(end) => basename(&program[..=end]),
            None => program,
        },
    }
}

/// rsyslog's reduction: `message repeated 3 times: [ Failed password for ...]`.
fn message_repeated(msg: &[u8]) -> Option<(u32, &[u8])> {
    let rest = msg.strip_prefix(b"message repeated ")?;
    let space = memchr::memchr(b' ', rest)?;
    let n = syslog::parse_u32(&rest[..space])?;
    let rest = rest[space..].strip_prefix(b" times: [")?;
    let rest = rest.strip_suffix(b"]").unwrap_or(rest);
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    Some((n.max(1), rest))
}

/// syslogd's `last message repeated N times`.
fn last_message_repeated(msg: &[u8]) -> Option<u32> {
    let rest = msg.strip_prefix(b"last message repeated ")?;
    let space = memchr::memchr(b' ', rest)?;
    let n = syslog::parse_u32(&rest[..space])?;
    rest[space..].starts_with(b" time").then_some(n)
}

impl fmt::Display for Parsed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parsed::Event(e) => write!(f, "{} by {}", e.action, e.program),
            Parsed::RepeatLast { count, .. } => write!(f, "last message repeated {count} times"),
            Parsed::Noise { program } => write!(f, "noise from {program}"),
            Parsed::Unrecognised { program } => write!(f, "unrecognised line from {program}"),
            Parsed::Foreign { program } => write!(f, "line from unwatched program {program}"),
            Parsed::Malformed(e) => write!(f, "malformed line: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;

/// What the family modules' tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Parsed, Verdict, parse_line};
    use crate::event::LoginEvent;
    use crate::syslog::Context;
    use crate::time::Timestamp;

    /// The context test lines are read in: now is 2026-11-28T12:00:00Z.
    pub(crate) fn test_context() -> Context {
        Context::new(Timestamp::from_secs(1_795_867_200))
    }

    /// A whole syslog line through [`parse_line`], in [`test_context`].
    pub(crate) fn line(l: &str) -> Parsed<'_> {
        parse_line(l.as_bytes(), &test_context())
    }

    /// The event a family parser gave for `msg`; any other verdict fails the test.
    pub(crate) fn event<'a>(verdict: Verdict<'a>, msg: &str) -> LoginEvent<'a> {
        match verdict {
            Verdict::Event(e) => e,
            v => panic!("{msg:?}: {v:?}"),
        }
    }
}
