//! Syslog headers: where a line's timestamp, host, program and pid end and its message begins.
//!
//! Formats, each detected from the line itself (an optional `<PRI>` may lead any of them):
//! - RFC 3164, as traditional syslogd, rsyslog's `RSYSLOG_TraditionalFileFormat` and journalctl's
//!   `short` write it: `Nov 28 06:49:30 host prog[pid]: msg`, also with a fraction of a second
//!   (`short-precise`) and with a year (`Nov 28 2026 06:49:30`, `2026 Nov 28 06:49:30`).
//!   The year, when absent, comes from [`Context::reference`]; the zone from
//!   [`Context::utc_offset`].
//! - RFC 3339 timestamps, as Debian 12's rsyslog writes by default
//!   (`2026-11-28T06:55:33.434531+00:00 host prog[pid]: msg`) and journalctl's `short-iso` and
//!   `short-iso-precise` (`+0000` offsets).
//! - RFC 5424 (`<34>1 2026-11-28T06:55:33.434Z host app procid msgid [sd] msg`), nil values as `-`.
//!
//! The tag may be `prog[pid]:`, `prog:`, `prog(module)[pid]:` (old PAM lines such as
//! `sshd(pam_unix)[42]:`) or `/usr/sbin/prog[pid]:`. The host field may be empty or missing
//! entirely.

use core::fmt;

use crate::text::Text;
use crate::time::{Civil, Timestamp, infer_year};

/// What a parser needs to know that a line does not say: the time it is read at and the zone its
/// writer used for year-less, zone-less timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Context {
    /// A time near when the line was written (now, or the file's mtime), for the year of
    /// RFC 3164 lines.
    pub reference: Timestamp,
    /// Seconds east of UTC that zone-less timestamps are in. Defaults to 0 (UTC).
    pub utc_offset: i32,
}

impl Context {
    /// A context for lines written around `reference`, in UTC.
    pub const fn new(reference: Timestamp) -> Self {
        Context {
            reference,
            utc_offset: 0,
        }
    }
}

/// Which header format a line was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `Nov 28 06:49:30 host prog: msg` (year inferred).
    Rfc3164,
    /// RFC 3164 with an explicit year.
    Rfc3164WithYear,
    /// An RFC 3339 / ISO 8601 timestamp leads the line.
    Rfc3339,
    /// RFC 5424.
    Rfc5424,
}

/// The parsed header of one line; `message` is the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header format.
    pub format: Format,
    /// When, in UTC.
    pub timestamp: Timestamp,
    /// The host field; `None` when empty, missing or `-`.
    pub hostname: Option<Text<'a>>,
    /// The program (tag without pid), e.g. `sshd`; may be empty for `last message repeated`.
    pub program: Text<'a>,
    /// The pid from `prog[pid]`, when numeric.
    pub pid: Option<u32>,
    /// The part in parentheses of `prog(module)[pid]:`, e.g. `pam_unix`.
    pub module: Option<Text<'a>>,
    /// The message after `prog[pid]: `.
    pub message: &'a [u8],
}

/// Why a line has no recognisable syslog header. Carries no copy of the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// Nothing but white space.
    Empty,
    /// The line does not start with a timestamp in any known format.
    NoTimestamp,
    /// A timestamp was there but named an impossible date or time.
    BadTimestamp,
    /// No `prog:` tag after the host.
    NoTag,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::Empty => "empty line",
            HeaderError::NoTimestamp => "no syslog timestamp at the start of the line",
            HeaderError::BadTimestamp => "impossible date or time in the syslog timestamp",
            HeaderError::NoTag => "no program tag after the syslog timestamp and host",
        })
    }
}

impl core::error::Error for HeaderError {}

/// Strips one trailing `\n` and any `\r` before it.
#[inline]
pub fn trim_line_end(mut line: &[u8]) -> &[u8] {
    if let [rest @ .., b'\n'] = line {
        line = rest;
    }
    while let [rest @ .., b'\r'] = line {
        line = rest;
    }
    line
}

/// Parses the header of one line (a trailing newline is allowed).
pub(crate) fn parse_header<'a>(line: &'a [u8], ctx: &Context) -> Result<Header<'a>, HeaderError> {
    let line = trim_line_end(line);
    let mut rest = trim_start(line);
    if rest.is_empty() {
        return Err(HeaderError::Empty);
    }
    if rest[0] == b'<'
        && let Some(after) = skip_pri(rest)
    {
        rest = after;
        if let Some(after_version) = rfc5424_version(rest) {
            return parse_5424(after_version);
        }
    } else if let Some(after) = skip_facility_level(rest) {
        // `<auth.info> Nov 28 ...`, as some relays prefix the priority by name.
        rest = trim_start(after);
    }
    // `[Nov 28 06:49:30] host ...` or `[2026-11-28 06:49:30] host ...`: a relay's bracketed date.
    if let [b'[', inner @ ..] = rest
        && let Ok((format, timestamp, after_ts)) = parse_timestamp(inner, ctx)
        && let [b']', after @ ..] = after_ts
    {
        return finish_3164(format, timestamp, after);
    }
    let (format, timestamp, after_ts) = parse_timestamp(rest, ctx)?;
    finish_3164(format, timestamp, after_ts)
}

/// `<auth.info>` or `<authpriv.notice>` (a priority written as `facility.level`, as FreeBSD's
/// `syslogd -vv` and some relays write it); returns what follows the `>`.
fn skip_facility_level(rest: &[u8]) -> Option<&[u8]> {
    let inner = rest.strip_prefix(b"<")?;
    let close = inner.iter().take(24).position(|&b| b == b'>')?;
    let (facility, level) = inner[..close].split_at(memchr::memchr(b'.', &inner[..close])?);
    let ok = |w: &[u8]| !w.is_empty() && w.iter().all(|b| b.is_ascii_alphanumeric());
    (ok(facility) && ok(&level[1..])).then_some(&inner[close + 1..])
}

/// After the timestamp: `[host ]tag: message`.
fn finish_3164(
    format: Format,
    timestamp: Timestamp,
    rest: &[u8],
) -> Result<Header<'_>, HeaderError> {
    // Exactly one space follows the timestamp; a second one means an empty host field.
    let rest = match rest {
        [b' ', b' ', more @ ..] => {
            let more = trim_start(more);
            // An empty host field, or (macOS `log show --style syslog`) two spaces before it.
            match finish_tag(format, timestamp, None, more) {
                Ok(h) => return Ok(h),
                Err(_) => more,
            }
        }
        [b' ', more @ ..] => more,
        _ => return Err(HeaderError::NoTimestamp),
    };
    // FreeBSD `syslogd -v`/`-vv`: `<4.6>` or `<auth.info>` between the time and the host.
    let rest = match rest {
        [b'<', ..] => match skip_facility_level(rest).or_else(|| skip_pri(rest)) {
            Some(after) => trim_start(after),
            None => rest,
        },
        _ => rest,
    };
    let (first, after_first) = split_word(rest);
    if first.is_empty() {
        return Err(HeaderError::NoTag);
    }
    if looks_like_tag(first) {
        // No host field at all: `Nov 28 06:49:30 sshd[1]: msg`.
        return finish_tag(format, timestamp, None, rest);
    }
    let host = if first == b"-" {
        None
    } else {
        Some(Text(first))
    };
    let after_host = trim_start(after_first);
    finish_tag(format, timestamp, host, after_host)
}

fn finish_tag<'a>(
    format: Format,
    timestamp: Timestamp,
    hostname: Option<Text<'a>>,
    rest: &'a [u8],
) -> Result<Header<'a>, HeaderError> {
    let tag = match parse_tag(rest) {
        Some(tag) => Some(tag),
        None => busybox_tag(rest),
    };
    let Some(tag) = tag else {
        // syslogd's own `last message repeated N times` and `-- MARK --` lines have no tag.
        if rest.starts_with(b"last message repeated ") || rest.starts_with(b"-- MARK --") {
            return Ok(Header {
                format,
                timestamp,
                hostname,
                program: Text(b""),
                pid: None,
                module: None,
                message: rest,
            });
        }
        return Err(HeaderError::NoTag);
    };
    Ok(Header {
        format,
        timestamp,
        hostname,
        program: Text(tag.program),
        pid: tag.pid,
        module: tag.module,
        message: skip_solaris_id(tag.message),
    })
}

/// BusyBox syslogd writes `facility.priority` (or `<N>`) between the host and the tag: the tag
/// after it. Tried only when the tag does not parse, and kept out of line, so that other lines
/// pay nothing for it.
#[cold]
#[inline(never)]
fn busybox_tag(rest: &[u8]) -> Option<Tag<'_>> {
    parse_tag(skip_busybox_priority(rest)?)
}

/// BusyBox syslogd's `auth.info ` or `<86> ` before the tag (`parse_fac_prio_20`: the
/// facility and priority names of `<syslog.h>`, or the number when the facility has no name);
/// what follows it.
fn skip_busybox_priority(rest: &[u8]) -> Option<&[u8]> {
    const FACILITIES: &[&[u8]] = &[
        b"auth",
        b"authpriv",
        b"cron",
        b"daemon",
        b"ftp",
        b"kern",
        b"lpr",
        b"mail",
        b"mark",
        b"news",
        b"security",
        b"syslog",
        b"user",
        b"uucp",
        b"local0",
        b"local1",
        b"local2",
        b"local3",
        b"local4",
        b"local5",
        b"local6",
        b"local7",
    ];
    const PRIORITIES: &[&[u8]] = &[
        b"alert", b"crit", b"debug", b"emerg", b"err", b"error", b"info", b"none", b"notice",
        b"panic", b"warn", b"warning",
    ];
    let (word, after) = split_word(rest);
    let known = match memchr::memchr(b'.', word) {
        Some(dot) => FACILITIES.contains(&&word[..dot]) && PRIORITIES.contains(&&word[dot + 1..]),
        None => word.first() == Some(&b'<') && skip_pri(word).is_some_and(<[u8]>::is_empty),
    };
    known.then(|| trim_start(after))
}

/// Solaris' `[ID 800047 auth.info] ` message prefix (the message catalogue id and priority).
fn skip_solaris_id(msg: &[u8]) -> &[u8] {
    let Some(inner) = msg.strip_prefix(b"[ID ") else {
        return msg;
    };
    let Some(close) = inner.iter().take(48).position(|&b| b == b']') else {
        return msg;
    };
    let (id, _) = split_word(&inner[..close]);
    if id.is_empty() || !id.iter().all(u8::is_ascii_digit) {
        return msg;
    }
    trim_start(&inner[close + 1..])
}

struct Tag<'a> {
    program: &'a [u8],
    pid: Option<u32>,
    module: Option<Text<'a>>,
    message: &'a [u8],
}

/// `prog[pid]: msg`, `prog: msg`, `prog(module)[pid]: msg`, `prog[pid] msg` (no colon, as some
/// busybox syslogds write).
// Always inlined: it is on every line's path, and the second caller (the cold `busybox_tag`)
// would otherwise make the compiler keep it out of line, the `Tag` returned through memory.
#[inline(always)]
fn parse_tag(rest: &[u8]) -> Option<Tag<'_>> {
    // systemd's user manager and its PAM helper name themselves `(systemd)` and `(sd-pam)`.
    if let [b'(', inner @ ..] = rest
        && let Some(close) = inner.iter().take(32).position(|&b| b == b')')
        && close > 0
        && inner[..close]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        let after = &inner[close + 1..];
        let (pid, after) = match after {
            [b'[', more @ ..] => {
                let end = memchr::memchr(b']', more)?;
                (parse_u32(&more[..end]), &more[end + 1..])
            }
            _ => (None, after),
        };
        let message = match after {
            [b':', b' ', msg @ ..] => msg,
            [b':', msg @ ..] => msg,
            _ => return None,
        };
        return Some(Tag {
            program: &inner[..close],
            pid,
            module: None,
            message,
        });
    }
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'[' | b':' | b' ' | b'('))?;
    let program = &rest[..end];
    if program.is_empty() {
        return None;
    }
    let mut after = &rest[end..];
    let mut module = None;
    if let [b'(', more @ ..] = after {
        let close = memchr::memchr(b')', more)?;
        module = Some(Text(&more[..close]));
        after = &more[close + 1..];
    }
    let mut pid = None;
    let mut had_pid = false;
    if let [b'[', more @ ..] = after {
        let close = memchr::memchr(b']', more)?;
        pid = parse_u32(&more[..close]);
        after = &more[close + 1..];
        had_pid = true;
    }
    let message = match after {
        [b':', b' ', msg @ ..] => msg,
        [b':'] => &[][..],
        [b':', msg @ ..] => msg,
        [b' ', msg @ ..] if had_pid => msg,
        _ => return None,
    };
    Some(Tag {
        program,
        pid,
        module,
        message,
    })
}

/// A first word that is a tag rather than a host: ends with `:` or has `[`, and is not itself an
/// address (rsyslog writes a peer's address as the host, and IPv6 addresses contain colons).
fn looks_like_tag(word: &[u8]) -> bool {
    if memchr::memchr(b'[', word).is_some() {
        return true;
    }
    match word {
        [head @ .., b':'] => {
            if memchr::memchr(b':', head).is_some() {
                // `fe80::` is an address; `sshd:` is a tag.
                crate::parse::fields::parse_ip(word).is_none()
            } else {
                true
            }
        }
        _ => false,
    }
}

fn skip_pri(line: &[u8]) -> Option<&[u8]> {
    let close = line.iter().take(5).position(|&b| b == b'>')?;
    let digits = &line[1..close];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(&line[close + 1..])
}

/// RFC 5424's `VERSION SP` right after the PRI; returns what follows.
fn rfc5424_version(rest: &[u8]) -> Option<&[u8]> {
    let space = rest.iter().take(4).position(|&b| b == b' ')?;
    let version = &rest[..space];
    if version.is_empty() || !version.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(&rest[space + 1..])
}

fn parse_5424(rest: &[u8]) -> Result<Header<'_>, HeaderError> {
    let (ts_word, rest) = split_word(rest);
    let timestamp = if ts_word == b"-" {
        Timestamp::default()
    } else {
        let (ts, tail) = parse_iso(ts_word, 0)?;
        if !tail.is_empty() {
            return Err(HeaderError::BadTimestamp);
        }
        ts
    };
    let (host, rest) = split_word(skip_space(rest));
    let (app, rest) = split_word(skip_space(rest));
    let (procid, rest) = split_word(skip_space(rest));
    let (_msgid, rest) = split_word(skip_space(rest));
    let rest = skip_structured_data(skip_space(rest)).ok_or(HeaderError::NoTag)?;
    let mut message = skip_space(rest);
    if let [0xEF, 0xBB, 0xBF, more @ ..] = message {
        message = more;
    }
    let nil = |w: &'_ [u8]| w.is_empty() || w == b"-";
    if nil(app) {
        return Err(HeaderError::NoTag);
    }
    Ok(Header {
        format: Format::Rfc5424,
        timestamp,
        hostname: if nil(host) { None } else { Some(Text(host)) },
        program: Text(app),
        pid: parse_u32(procid),
        module: None,
        message,
    })
}

/// Skips `-` or one or more `[id param="value" ...]` elements (values may escape `"`, `\` and
/// `]` with a backslash).
fn skip_structured_data(rest: &[u8]) -> Option<&[u8]> {
    if let [b'-', more @ ..] = rest {
        return Some(more);
    }
    let mut i = 0;
    if rest.first() != Some(&b'[') {
        return None;
    }
    while rest.get(i) == Some(&b'[') {
        i += 1;
        let mut in_quotes = false;
        loop {
            match *rest.get(i)? {
                b'\\' if in_quotes => i += 2,
                b'"' => {
                    in_quotes = !in_quotes;
                    i += 1;
                }
                b']' if !in_quotes => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
    }
    rest.get(i..)
}

/// Parses the leading timestamp of a non-5424 line; returns what follows it.
fn parse_timestamp<'a>(
    rest: &'a [u8],
    ctx: &Context,
) -> Result<(Format, Timestamp, &'a [u8]), HeaderError> {
    let first = *rest.first().ok_or(HeaderError::Empty)?;
    if first.is_ascii_digit() {
        if rest.get(4) == Some(&b'-') {
            let (ts, tail) = parse_iso(rest, ctx.utc_offset)?;
            return Ok((Format::Rfc3339, ts, tail));
        }
        // `2026 Nov 28 06:49:30`
        if rest.get(4) == Some(&b' ') {
            let year = parse_digits(&rest[..4]).ok_or(HeaderError::NoTimestamp)? as i32;
            let month = month_number(&rest[5..]).ok_or(HeaderError::NoTimestamp)?;
            let after_month = rest.get(8..).and_then(|r| r.strip_prefix(b" "));
            let (mut civil, tail) = parse_day_time(after_month.ok_or(HeaderError::NoTimestamp)?)?;
            civil.year = year;
            civil.month = month;
            let ts =
                Timestamp::from_civil(&civil, ctx.utc_offset).ok_or(HeaderError::BadTimestamp)?;
            return Ok((Format::Rfc3164WithYear, ts, tail));
        }
        return Err(HeaderError::NoTimestamp);
    }
    let month = month_number(rest).ok_or(HeaderError::NoTimestamp)?;
    if rest.get(3) != Some(&b' ') {
        return Err(HeaderError::NoTimestamp);
    }
    // `Nov 28 06:49:30` or `Nov  8 06:49:30` or `Nov 28 2026 06:49:30`
    let after_month = &rest[4..];
    let (day, after_day) = parse_day(after_month)?;
    if let [y0, y1, y2, y3, b' ', more @ ..] = after_day
        && [y0, y1, y2, y3].iter().all(|b| b.is_ascii_digit())
    {
        {
            let year = parse_digits(&[*y0, *y1, *y2, *y3]).ok_or(HeaderError::NoTimestamp)?;
            let (mut civil, tail) = parse_time(more)?;
            civil.year = year as i32;
            civil.month = month;
            civil.day = day;
            let ts =
                Timestamp::from_civil(&civil, ctx.utc_offset).ok_or(HeaderError::BadTimestamp)?;
            return Ok((Format::Rfc3164WithYear, ts, tail));
        }
    }
    let (mut civil, tail) = parse_time(after_day)?;
    civil.month = month;
    civil.day = day;
    // `Nov 28 06:49:30 2026 host ...` (syslog-ng's and some appliances' form).
    let (format, ts, tail) = match tail {
        [b' ', y0, y1, y2, y3, b' ', ..] if [y0, y1, y2, y3].iter().all(|b| b.is_ascii_digit()) => {
            civil.year = parse_digits(&tail[1..5]).ok_or(HeaderError::NoTimestamp)? as i32;
            let ts =
                Timestamp::from_civil(&civil, ctx.utc_offset).ok_or(HeaderError::BadTimestamp)?;
            (Format::Rfc3164WithYear, ts, &tail[5..])
        }
        _ => {
            let ts = infer_year(&civil, ctx.utc_offset, ctx.reference)
                .ok_or(HeaderError::BadTimestamp)?;
            (Format::Rfc3164, ts, tail)
        }
    };
    Ok((format, ts, tail))
}

/// A `ctime(3)` date with the weekday, `Sat Dec  5 01:42:16 2026`, at the start of `line` (as
/// vsftpd's own log writes it); the time and what follows the year.
pub(crate) fn parse_ctime_prefix<'a>(
    line: &'a [u8],
    ctx: &Context,
) -> Option<(Timestamp, &'a [u8])> {
    let [w0, w1, w2, b' ', rest @ ..] = line else {
        return None;
    };
    if !(w0.is_ascii_uppercase() && w1.is_ascii_lowercase() && w2.is_ascii_lowercase()) {
        return None;
    }
    match parse_timestamp(rest, ctx) {
        Ok((Format::Rfc3164WithYear, ts, tail)) => Some((ts, tail)),
        _ => None,
    }
}

/// OpenWrt's logd as `logread` writes it (ubox `log/logread.c`, to the `log_file` of
/// `/etc/config/system` or standard output): `"%s %s%s.%s%s %s\n"`, a `ctime` date, `[secs.ms] `
/// with `-t`, `facility.priority`, ` kernel:` for the kernel's lines, then the message with its
/// tag. There is no host name.
#[cold]
#[inline(never)]
pub(crate) fn parse_logread<'a>(line: &'a [u8], ctx: &Context) -> Option<Header<'a>> {
    let (timestamp, rest) = parse_ctime_prefix(trim_line_end(line), ctx)?;
    let rest = rest.strip_prefix(b" ")?;
    let rest = match rest {
        [b'[', more @ ..] => {
            let close = memchr::memchr(b']', more)?;
            if close == 0
                || !more[..close]
                    .iter()
                    .all(|b| b.is_ascii_digit() || *b == b'.')
            {
                return None;
            }
            trim_start(&more[close + 1..])
        }
        _ => rest,
    };
    let rest = skip_busybox_priority(rest)?;
    finish_tag(Format::Rfc3164WithYear, timestamp, None, rest).ok()
}

/// `28 ` or ` 8 ` or `8 `: a day of month then one space; returns the day and what follows
/// the space.
fn parse_day(rest: &[u8]) -> Result<(u8, &[u8]), HeaderError> {
    match rest {
        [b' ', d, b' ', more @ ..] if d.is_ascii_digit() => Ok((d - b'0', more)),
        [d, b' ', more @ ..] if d.is_ascii_digit() => Ok((d - b'0', more)),
        [d0, d1, b' ', more @ ..] if d0.is_ascii_digit() && d1.is_ascii_digit() => {
            Ok(((d0 - b'0') * 10 + (d1 - b'0'), more))
        }
        _ => Err(HeaderError::NoTimestamp),
    }
}

fn parse_day_time(rest: &[u8]) -> Result<(Civil, &[u8]), HeaderError> {
    let (day, after) = parse_day(rest)?;
    let (mut civil, tail) = parse_time(after)?;
    civil.day = day;
    Ok((civil, tail))
}

/// `HH:MM:SS[.fraction]`.
fn parse_time(rest: &[u8]) -> Result<(Civil, &[u8]), HeaderError> {
    let [h0, h1, b':', m0, m1, b':', s0, s1, tail @ ..] = rest else {
        return Err(HeaderError::NoTimestamp);
    };
    let two = |a: u8, b: u8| -> Result<u8, HeaderError> {
        if a.is_ascii_digit() && b.is_ascii_digit() {
            Ok((a - b'0') * 10 + (b - b'0'))
        } else {
            Err(HeaderError::NoTimestamp)
        }
    };
    let (nanos, tail) = parse_fraction(tail);
    Ok((
        Civil {
            year: 0,
            month: 0,
            day: 0,
            hour: two(*h0, *h1)?,
            minute: two(*m0, *m1)?,
            second: two(*s0, *s1)?,
            nanos,
        },
        tail,
    ))
}

/// `.123456` (or `,123`) after seconds; nanoseconds and what follows. Digits past nine are
/// ignored.
fn parse_fraction(rest: &[u8]) -> (u32, &[u8]) {
    let [b'.' | b',', digits @ ..] = rest else {
        return (0, rest);
    };
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return (0, rest);
    }
    let mut nanos: u32 = 0;
    for (i, d) in digits[..n].iter().enumerate().take(9) {
        let _ = i;
        nanos = nanos * 10 + u32::from(d - b'0');
    }
    for _ in n..9 {
        nanos *= 10;
    }
    (nanos, &digits[n..])
}

/// `YYYY-MM-DDTHH:MM:SS[.frac][Z|+HH:MM|+HHMM]`; a space may stand for `T`; without a zone the
/// time is in `default_offset`.
fn parse_iso(rest: &[u8], default_offset: i32) -> Result<(Timestamp, &[u8]), HeaderError> {
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        mo0,
        mo1,
        b'-',
        d0,
        d1,
        b'T' | b't' | b' ',
        tail @ ..,
    ] = rest
    else {
        return Err(HeaderError::NoTimestamp);
    };
    let year = parse_digits(&[*y0, *y1, *y2, *y3]).ok_or(HeaderError::NoTimestamp)? as i32;
    let month = parse_digits(&[*mo0, *mo1]).ok_or(HeaderError::NoTimestamp)? as u8;
    let day = parse_digits(&[*d0, *d1]).ok_or(HeaderError::NoTimestamp)? as u8;
    let (mut civil, tail) = parse_time(tail)?;
    civil.year = year;
    civil.month = month;
    civil.day = day;
    let (offset, tail) = match tail {
        [b'Z' | b'z', more @ ..] => (0, more),
        [sign @ (b'+' | b'-'), h0, h1, b':', m0, m1, more @ ..]
        | [sign @ (b'+' | b'-'), h0, h1, m0, m1, more @ ..] => {
            let h = parse_digits(&[*h0, *h1]).ok_or(HeaderError::BadTimestamp)? as i32;
            let m = parse_digits(&[*m0, *m1]).ok_or(HeaderError::BadTimestamp)? as i32;
            if h > 23 || m > 59 {
                return Err(HeaderError::BadTimestamp);
            }
            let secs = h * 3600 + m * 60;
            (if *sign == b'-' { -secs } else { secs }, more)
        }
        _ => (default_offset, tail),
    };
    let ts = Timestamp::from_civil(&civil, offset).ok_or(HeaderError::BadTimestamp)?;
    Ok((ts, tail))
}

/// Month number of a three-letter English abbreviation at the start of `s`.
#[inline]
fn month_number(s: &[u8]) -> Option<u8> {
    let m = s.get(..3)?;
    Some(match m {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

/// All-digit bytes as a number (at most 9 digits, so no overflow).
#[inline]
fn parse_digits(d: &[u8]) -> Option<u32> {
    if d.is_empty() || d.len() > 9 {
        return None;
    }
    let mut n: u32 = 0;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    Some(n)
}

/// A decimal `u32` with no sign and no leading/trailing junk.
#[inline]
pub(crate) fn parse_u32(d: &[u8]) -> Option<u32> {
    if d.is_empty() || d.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    u32::try_from(n).ok()
}

#[inline]
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', s) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, &[]),
    }
}

#[inline]
fn skip_space(s: &[u8]) -> &[u8] {
    match s {
        [b' ', rest @ ..] => rest,
        _ => s,
    }
}

#[inline]
fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        // 2026-11-28T12:00:00Z
        Context::new(Timestamp::from_secs(1_795_867_200))
    }

    fn header(line: &str) -> Header<'_> {
        parse_header(line.as_bytes(), &ctx()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    fn ts(h: &Header<'_>) -> String {
        format!("{}", h.timestamp.rfc3339())
    }

    #[test]
    fn rfc3164() {
        let h = header(
            "Nov 28 06:49:30 web1 sshd[1234]: Accepted password for a from ::1 port 1 ssh2\n",
        );
        assert_eq!(h.format, Format::Rfc3164);
        assert_eq!(ts(&h), "2026-11-28T06:49:30Z");
        assert_eq!(h.hostname, Some(Text(b"web1")));
        assert_eq!(h.program, "sshd");
        assert_eq!(h.pid, Some(1234));
        assert!(h.message.starts_with(b"Accepted password"));
    }

    #[test]
    fn rfc3164_space_padded_day_and_no_pid() {
        let h = header(
            "Nov  8 06:49:30 web1 sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
        );
        assert_eq!(ts(&h), "2026-11-08T06:49:30Z");
        assert_eq!(h.program, "sudo");
        assert_eq!(h.pid, None);
        assert_eq!(
            h.message,
            b"   alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls"
        );
    }

    #[test]
    fn rfc3164_year_inferred_from_reference_across_new_year() {
        let ctx = Context::new(Timestamp::from_secs(1_798_848_000)); // 2027-01-01T12:00:00Z
        let h = parse_header(b"Dec 31 23:59:59 h su: x", &ctx).unwrap();
        assert_eq!(format!("{}", h.timestamp.rfc3339()), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn rfc3164_with_year_forms() {
        for line in [
            "Nov 28 2026 06:49:30 web1 sshd[1]: m",
            "2026 Nov 28 06:49:30 web1 sshd[1]: m",
            "Nov 28 06:49:30 2026 web1 sshd[1]: m",
        ] {
            let h = header(line);
            assert_eq!(h.format, Format::Rfc3164WithYear, "{line}");
            assert_eq!(ts(&h), "2026-11-28T06:49:30Z", "{line}");
            assert_eq!(h.hostname, Some(Text(b"web1")), "{line}");
            assert_eq!(h.message, b"m");
        }
    }

    #[test]
    fn short_precise_fraction() {
        let h = header("Nov 28 06:49:30.123456 web1 sshd[1]: m");
        assert_eq!(ts(&h), "2026-11-28T06:49:30.123456Z");
    }

    #[test]
    fn local_zone_offset_applies_to_zoneless_lines() {
        let ctx = Context {
            utc_offset: 3600,
            ..ctx()
        };
        let h = parse_header(b"Nov 28 07:49:30 web1 sshd[1]: m", &ctx).unwrap();
        assert_eq!(format!("{}", h.timestamp.rfc3339()), "2026-11-28T06:49:30Z");
    }

    #[test]
    fn rfc3339_debian12() {
        let h = header("2026-11-28T06:55:33.434531+00:00 web1 sshd[11632]: Accepted password");
        assert_eq!(h.format, Format::Rfc3339);
        assert_eq!(ts(&h), "2026-11-28T06:55:33.434531Z");
        assert_eq!(h.pid, Some(11632));
        let h = header("2026-11-28T07:55:33.434531+01:00 web1 sshd[11632]: x");
        assert_eq!(ts(&h), "2026-11-28T06:55:33.434531Z");
        let h = header("2026-11-28T01:55:33-05:00 web1 sshd[1]: x");
        assert_eq!(ts(&h), "2026-11-28T06:55:33Z");
    }

    #[test]
    fn journald_short_iso_precise() {
        let h = header("2026-11-28T06:55:33.434531+0000 web1 sshd[11632]: x");
        assert_eq!(ts(&h), "2026-11-28T06:55:33.434531Z");
        let h = header("2026-11-28T06:55:33Z web1 sshd[1]: x");
        assert_eq!(ts(&h), "2026-11-28T06:55:33Z");
    }

    #[test]
    fn rfc5424_with_structured_data_and_bom() {
        let h = header(
            "<38>1 2026-11-28T06:55:33.434Z web1 sshd 4242 - [origin ip=\"10.0.0.1\" x=\"a\\]b\"][meta seq=\"1\"] \u{FEFF}Failed password",
        );
        assert_eq!(h.format, Format::Rfc5424);
        assert_eq!(ts(&h), "2026-11-28T06:55:33.434Z");
        assert_eq!(h.hostname, Some(Text(b"web1")));
        assert_eq!(h.program, "sshd");
        assert_eq!(h.pid, Some(4242));
        assert_eq!(h.message, b"Failed password");
        let h = header("<38>1 2026-11-28T06:55:33Z - sudo - - - msg");
        assert_eq!(h.hostname, None);
        assert_eq!(h.pid, None);
        assert_eq!(h.message, b"msg");
    }

    #[test]
    fn pri_before_rfc3164() {
        let h = header("<86>Nov 28 06:49:30 web1 sshd[1]: m");
        assert_eq!(h.program, "sshd");
    }

    #[test]
    fn legacy_pam_module_in_tag() {
        let h = header(
            "Nov 28 06:49:30 web1 sshd(pam_unix)[4321]: session opened for user root by (uid=0)",
        );
        assert_eq!(h.program, "sshd");
        assert_eq!(h.module, Some(Text(b"pam_unix")));
        assert_eq!(h.pid, Some(4321));
        assert!(h.message.starts_with(b"session opened"));
    }

    #[test]
    fn empty_and_missing_host() {
        let h = header("Nov 28 06:49:30  sshd[1]: m");
        assert_eq!(h.hostname, None);
        assert_eq!(h.program, "sshd");
        let h = header("Nov 28 06:49:30 sshd[1]: m");
        assert_eq!(h.hostname, None);
        assert_eq!(h.program, "sshd");
        let h = header("Nov 28 06:49:30 su: m");
        assert_eq!(h.hostname, None);
        assert_eq!(h.program, "su");
        let h = header("Nov 28 06:49:30 2001:db8::1 sshd[1]: m");
        assert_eq!(h.hostname, Some(Text(b"2001:db8::1")));
    }

    #[test]
    fn path_tag_and_last_message_repeated() {
        let h = header("Nov 28 06:49:30 h /usr/sbin/cron[99]: (root) CMD (x)");
        assert_eq!(h.program, "/usr/sbin/cron");
        let h = header("Nov 28 06:49:30 h last message repeated 3 times");
        assert_eq!(h.program, "");
        assert_eq!(h.message, b"last message repeated 3 times");
    }

    #[test]
    fn systemd_user_manager_tags() {
        let h = header(
            "Nov 28 06:49:30 web1 (systemd)[2211]: pam_unix(systemd-user:session): session opened for user alice(uid=1000) by (uid=0)",
        );
        assert_eq!(h.program, "systemd");
        assert_eq!(h.pid, Some(2211));
        assert!(h.message.starts_with(b"pam_unix(systemd-user:session)"));
        let h = header(
            "2026-11-28T06:49:30.1+00:00 web1 (sd-pam)[2212]: pam_unix(systemd-user:session): session closed for user alice",
        );
        assert_eq!(h.program, "sd-pam");
        assert_eq!(h.pid, Some(2212));
    }

    #[test]
    fn macos_log_syslog_style() {
        let h =
            header("2026-11-28 00:14:32.766049-0700  mac1 sshd[721]: Accepted publickey for alice");
        assert_eq!(ts(&h), "2026-11-28T07:14:32.766049Z");
        assert_eq!(h.hostname, Some(Text(b"mac1")));
        assert_eq!(h.program, "sshd");
        assert_eq!(h.pid, Some(721));
    }

    #[test]
    fn solaris_message_id_prefix() {
        let h = header(
            "Nov 28 06:49:30 sol1 sshd[1029]: [ID 800047 auth.info] Accepted keyboard-interactive for bob from 192.0.2.1 port 5 ssh2",
        );
        assert_eq!(h.program, "sshd");
        assert!(h.message.starts_with(b"Accepted keyboard-interactive"));
        let h = header(
            "Nov 28 06:49:30 sol1 su: [ID 366847 auth.notice] 'su root' succeeded for bob on /dev/pts/2",
        );
        assert!(h.message.starts_with(b"'su root'"));
    }

    #[test]
    fn relay_prefixes_and_bracketed_dates() {
        for line in [
            "<auth.info> Nov 28 06:49:30 web1 sshd[1]: m",
            "Nov 28 06:49:30 <auth.info> web1 sshd[1]: m",
            "Nov 28 06:49:30 <4.6> web1 sshd[1]: m",
            "[Nov 28 06:49:30] web1 sshd[1]: m",
            "[2026-11-28 06:49:30] web1 sshd[1]: m",
        ] {
            let h = header(line);
            assert_eq!(ts(&h), "2026-11-28T06:49:30Z", "{line}");
            assert_eq!(h.hostname, Some(Text(b"web1")), "{line}");
            assert_eq!(h.program, "sshd", "{line}");
            assert_eq!(h.message, b"m", "{line}");
        }
    }

    /// BusyBox syslogd (`sysklogd/syslogd.c` `timestamp_and_log`, the default of Alpine Linux
    /// and many embedded systems) writes `"%s %.64s %s %s\n", timestamp, hostname, res, msg`,
    /// where `res` is `parse_fac_prio_20`'s `facility.priority` names (`<N>` for a facility with
    /// no name); `-S` leaves out the host and `res`.
    #[test]
    fn busybox_syslogd_facility_priority_after_host() {
        for (line, program, pid) in [
            (
                "Nov 28 06:49:30 alpine1 authpriv.info sshd[2311]: m",
                "sshd",
                Some(2311),
            ),
            ("Nov  8 06:49:30 alpine1 auth.notice su: m", "su", None),
            (
                "Nov 28 06:49:30 alpine1 authpriv.warn login[7]: m",
                "login",
                Some(7),
            ),
            (
                "Nov 28 06:49:30 alpine1 <86> sshd[2311]: m",
                "sshd",
                Some(2311),
            ),
        ] {
            let h = header(line);
            assert_eq!(h.hostname, Some(Text(b"alpine1")), "{line}");
            assert_eq!(h.program, program, "{line}");
            assert_eq!(h.pid, pid, "{line}");
            assert_eq!(h.message, b"m", "{line}");
        }
        // A word with a dot that is not a facility and level stays a failed tag.
        assert!(parse_header(b"Nov 28 06:49:30 h foo.bar sshd[1]: m", &ctx()).is_err());
    }

    /// OpenWrt's `logread` (ubox `log/logread.c`, the `log_file` writer and standard output):
    /// `"%s %s%s.%s%s %s\n"`: a `ctime` date, `[secs.ms] ` with `-t`, the facility and priority
    /// names, ` kernel:` for kernel lines, then the message with its tag; no host name.
    #[test]
    fn openwrt_logread() {
        for line in [
            "Sat Nov 28 06:49:30 2026 authpriv.info dropbear[1432]: m",
            "Sat Nov 28 06:49:30 2026 [1795855770.123] authpriv.info dropbear[1432]: m",
        ] {
            let h = parse_logread(line.as_bytes(), &ctx()).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(h.format, Format::Rfc3164WithYear, "{line}");
            assert_eq!(ts(&h), "2026-11-28T06:49:30Z", "{line}");
            assert_eq!(h.hostname, None, "{line}");
            assert_eq!(h.program, "dropbear", "{line}");
            assert_eq!(h.pid, Some(1432), "{line}");
            assert_eq!(h.message, b"m", "{line}");
        }
        let h = parse_logread(
            b"Sat Nov 28 06:49:30 2026 kern.info kernel: [   12.5] x",
            &ctx(),
        );
        assert_eq!(h.map(|h| h.program), Some(Text(b"kernel")));
        // vsftpd's own log has a ctime date too, then `[pid N]`: not logread's.
        let vsftpd = b"Sat Nov 28 06:49:30 2026 [pid 13442] [u] OK LOGIN: Client \"127.0.0.2\"";
        assert!(parse_logread(vsftpd, &ctx()).is_none());
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for line in [
            "",
            "   ",
            "hello world",
            "Nov 28 xx:49:30 h p: m",
            "Nov 31 06:49:30 h p: m",
            "2026-13-28T06:55:33Z h p: m",
            "2026-11-28T06:55:33+99:00 h p: m",
            "<13>",
            "<13>1 ",
            "Nov 28 06:49:30",
            "Nov 28 06:49:30 host",
            "Nov 28 06:49:30 host prog[12",
        ] {
            assert!(parse_header(line.as_bytes(), &ctx()).is_err(), "{line:?}");
        }
    }
}
