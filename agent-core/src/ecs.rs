//! ECS JSON: one event as one line of JSON, the schema of `ARCHITECTURE.md`.
//!
//! The writer targets any [`core::fmt::Write`] (a `String`, a fixed `heapless::String`, a
//! formatter), allocates nothing itself, nests objects the ECS way (`{"user":{"name":..}}`),
//! leaves out every field it does not know (never an empty string), and replaces invalid UTF-8
//! with U+FFFD.

use core::fmt::{self, Write};
use core::net::IpAddr;

use crate::event::{LoginEvent, Source};
use crate::text::Text;
use crate::time::Timestamp;

/// A member's key as written, `,"name":`, the comma left out before an object's first member.
/// Made by [`k!`] at compile time, so a key is one `write_str`.
#[derive(Clone, Copy)]
struct Key(&'static str);

/// The [`Key`] of member `name` (a literal that needs no JSON escape).
macro_rules! k {
    ($name:literal) => {
        Key(concat!(",\"", $name, "\":"))
    };
}

/// What goes on an event besides what its line said: who shipped it and where it was read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// `host.hostname` when the line has no host field of its own.
    pub hostname: Option<Text<'a>>,
    /// `host.id` (`/etc/machine-id`).
    pub host_id: Option<&'a str>,
    /// `agent.id`: the agent's UUID.
    pub agent_id: Option<&'a str>,
    /// `agent.version`.
    pub agent_version: Option<&'a str>,
    /// `event.provider`: which kind of source read it (`file`, `journald`, `utmp`).
    pub provider: Option<&'a str>,
    /// `event.sequence`: the agent's running count of events.
    pub sequence: Option<u64>,
    /// `log.file.path`.
    pub log_path: Option<Text<'a>>,
    /// `log.offset`: the byte offset of the line's start.
    pub log_offset: Option<u64>,
    /// `message`: the original line.
    pub message: Option<Text<'a>>,
    /// `authtrail.original_timestamp`: the line's own time when it was outside the wire
    /// contract's range and `@timestamp` holds the time the agent read the line instead
    /// ([`crate::wire::conform`]).
    pub original_timestamp: Option<Timestamp>,
}

/// Room for a hex-encoded user name once decoded, bytes (a longer one is written as it came,
/// in hex).
const HEX_FIELD_BUF: usize = 1024;

/// Writes `ev` as one JSON object (no trailing newline).
pub fn write_event<W: Write + ?Sized>(
    w: &mut W,
    ev: &LoginEvent<'_>,
    env: &Envelope<'_>,
) -> fmt::Result {
    write_event_to(&mut Plain(w), ev, env)
}

/// What a value the writer wrote is, for [`Out::value_end`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// A string (its quotes included in what was written).
    Str,
    /// A number, the member's key (unquoted) beside it.
    Num(&'static str),
    /// The top-level `message` string (quotes included).
    Msg,
}

/// Where the ECS writer writes: text, and where each value starts and ends, so that the
/// compact body's encoder learns a document's values as they are written instead of reading
/// the text again (`batch::Holes`). A plain [`Write`] ignores the marks ([`Plain`]).
pub(crate) trait Out: Write {
    /// A value starts here (a string at its opening quote).
    #[inline(always)]
    fn value_start(&mut self) {}
    /// The value started last ends here (a string after its closing quote).
    #[inline(always)]
    fn value_end(&mut self, v: Value) {
        let _ = v;
    }
}

/// A [`Write`] as an [`Out`] that ignores the marks.
struct Plain<'w, W: ?Sized>(&'w mut W);

impl<W: Write + ?Sized> Write for Plain<'_, W> {
    #[inline(always)]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_str(s)
    }
    #[inline(always)]
    fn write_char(&mut self, c: char) -> fmt::Result {
        self.0.write_char(c)
    }
}

impl<W: Write + ?Sized> Out for Plain<'_, W> {}

/// [`write_event`], marking each value on `w`: the one ECS writer for NDJSON and for the
/// compact body's encoder.
pub(crate) fn write_event_to<O: Out + ?Sized>(
    w: &mut O,
    ev: &LoginEvent<'_>,
    env: &Envelope<'_>,
) -> fmt::Result {
    let mut top = Obj::open(w)?;
    if let Some(ts) = ev.timestamp {
        top.key(k!("@timestamp"))?;
        top.value(Value::Str, |w| write_timestamp(w, ts))?;
    }

    top.object(k!("event"))?;
    {
        let mut o = Obj::open_nested(top.w);
        o.str(k!("kind"), "event")?;
        o.key(k!("category"))?;
        o.w.write_char('[')?;
        o.value(Value::Str, |w| {
            w.write_char('"')?;
            w.write_str(ev.category().as_str())?;
            w.write_char('"')
        })?;
        o.w.write_char(']')?;
        o.str(k!("action"), ev.action.as_str())?;
        o.str(k!("outcome"), ev.outcome.as_str())?;
        o.opt_text(k!("reason"), ev.reason)?;
        o.opt_u64(k!("sequence"), env.sequence)?;
        o.opt_str(k!("provider"), env.provider)?;
        o.close()?;
    }

    write_host_and_agent(&mut top, ev.hostname.or(env.hostname), env)?;

    if ev.user.is_some() || ev.uid.is_some() || ev.target_user.is_some() {
        top.object(k!("user"))?;
        let mut o = Obj::open_nested(top.w);
        let mut buf = [0u8; HEX_FIELD_BUF];
        o.opt_text(
            k!("name"),
            ev.user.map(|u| u.decoded_if(ev.user_hex, &mut buf)),
        )?;
        if let Some(uid) = ev.uid {
            o.key(k!("id"))?;
            o.value(Value::Str, |w| {
                w.write_char('"')?;
                w.write_str(itoa::Buffer::new().format(uid))?;
                w.write_char('"')
            })?;
        }
        if let Some(target) = ev.target_user {
            o.object(k!("target"))?;
            let mut t = Obj::open_nested(o.w);
            let mut buf = [0u8; HEX_FIELD_BUF];
            t.text(k!("name"), target.decoded_if(ev.target_user_hex, &mut buf))?;
            t.close()?;
        }
        o.close()?;
    }

    if ev.source.is_some() || ev.port.is_some() {
        top.object(k!("source"))?;
        let mut o = Obj::open_nested(top.w);
        match ev.source {
            Some(Source::Ip(ip)) => {
                o.key(k!("ip"))?;
                o.value(Value::Str, |w| write_ip(w, ip))?;
            }
            Some(Source::Domain(d)) => o.text(k!("domain"), d)?,
            None => {}
        }
        o.opt_u64(k!("port"), ev.port.map(u64::from))?;
        o.close()?;
    }

    top.object(k!("process"))?;
    {
        let mut o = Obj::open_nested(top.w);
        o.text(k!("name"), ev.program)?;
        o.opt_u64(k!("pid"), ev.pid.map(u64::from))?;
        o.close()?;
    }

    top.object(k!("authtrail"))?;
    {
        let mut o = Obj::open_nested(top.w);
        o.opt_str(k!("method"), ev.method.map(|m| m.as_str()))?;
        if ev.key_type.is_some() || ev.key_fingerprint.is_some() {
            o.object(k!("key"))?;
            let mut key = Obj::open_nested(o.w);
            key.opt_text(k!("type"), ev.key_type)?;
            key.opt_text(k!("fingerprint"), ev.key_fingerprint)?;
            key.close()?;
        }
        o.opt_text(k!("tty"), ev.tty)?;
        o.opt_text(k!("command"), ev.command)?;
        o.opt_u64(k!("count"), Some(u64::from(ev.count)))?;
        if let Some(ts) = env.original_timestamp {
            o.key(k!("original_timestamp"))?;
            o.value(Value::Str, |w| write_timestamp(w, ts))?;
        }
        o.close()?;
    }

    write_log_and_message(top, env)
}

/// The `host` and `agent` objects, each left out when empty.
fn write_host_and_agent<W: Out + ?Sized>(
    top: &mut Obj<'_, W>,
    hostname: Option<Text<'_>>,
    env: &Envelope<'_>,
) -> fmt::Result {
    if hostname.is_some() || env.host_id.is_some() {
        top.object(k!("host"))?;
        let mut o = Obj::open_nested(&mut *top.w);
        o.opt_text(k!("hostname"), hostname)?;
        o.opt_str(k!("id"), env.host_id)?;
        o.close()?;
    }
    if env.agent_id.is_some() || env.agent_version.is_some() {
        top.object(k!("agent"))?;
        let mut o = Obj::open_nested(&mut *top.w);
        o.opt_str(k!("id"), env.agent_id)?;
        o.opt_str(k!("version"), env.agent_version)?;
        o.close()?;
    }
    Ok(())
}

/// The `log` object and `message`, then the closing brace: the end of events and alerts alike.
fn write_log_and_message<W: Out + ?Sized>(mut top: Obj<'_, W>, env: &Envelope<'_>) -> fmt::Result {
    if env.log_path.is_some() || env.log_offset.is_some() {
        top.object(k!("log"))?;
        let mut o = Obj::open_nested(top.w);
        if let Some(path) = env.log_path {
            o.object(k!("file"))?;
            let mut f = Obj::open_nested(o.w);
            f.text(k!("path"), path)?;
            f.close()?;
        }
        o.opt_u64(k!("offset"), env.log_offset)?;
        o.close()?;
    }

    if let Some(message) = env.message.filter(|m| !m.is_empty()) {
        top.key(k!("message"))?;
        top.value(Value::Msg, |w| write_json_string(w, message))?;
    }
    top.close()
}

/// Writes `s` as a JSON string (with quotes), escaping what JSON requires and replacing invalid
/// UTF-8 with U+FFFD.
pub(crate) fn write_json_string<W: Write + ?Sized>(w: &mut W, s: Text<'_>) -> fmt::Result {
    w.write_char('"')?;
    match core::str::from_utf8(s.as_bytes()) {
        // Nearly every field is valid UTF-8: one validation pass, no chunking.
        Ok(valid) => escape_str(w, valid)?,
        Err(_) => {
            for chunk in s.utf8_chunks() {
                escape_str(w, chunk.valid())?;
                if !chunk.invalid().is_empty() {
                    w.write_char('\u{FFFD}')?;
                }
            }
        }
    }
    w.write_char('"')
}

/// What a byte becomes inside a JSON string: 0 for itself, `u` for `\u00XX`, or the letter
/// written after a backslash. JSON requires the escapes of `"`, `\` and the C0 controls; DEL is
/// escaped too, and bytes from 0x80 up (parts of UTF-8 sequences) are copied.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x7f] = b'u';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t
};

/// Nonzero when any of the eight bytes of `v` needs an escape (exact as a yes/no for the word,
/// though not which byte: a borrow can mark a byte above a true hit).
#[inline(always)]
const fn escape_mask(v: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    /// The high bit of a byte below `n` (n <= 0x80), the classic `hasless`.
    #[inline(always)]
    const fn below(x: u64, n: u8) -> u64 {
        x.wrapping_sub(ONES * n as u64) & !x & HIGH
    }
    below(v, 0x20)
        | below(v ^ (ONES * b'"' as u64), 1)
        | below(v ^ (ONES * b'\\' as u64), 1)
        | below(v ^ (ONES * 0x7f), 1)
}

/// Writes the inside of a JSON string: runs of bytes that need no escape go out in one write.
fn escape_str<W: Write + ?Sized>(w: &mut W, s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Sixteen bytes at a time while none needs an escape.
        // (Two words, not one u128: faster on x86-64.)
        if let Some((lo, hi)) = two_words(&bytes[i..])
            && escape_mask(lo) | escape_mask(hi) == 0
        {
            i += 16;
            continue;
        }
        // Up to sixteen bytes one by one, then back to whole blocks.
        let end = bytes.len().min(i + 16);
        while i < end {
            let b = bytes[i];
            let e = ESCAPE[usize::from(b)];
            if e != 0 {
                // `i` is at an ASCII byte, so both slices end on char boundaries.
                w.write_str(&s[start..i])?;
                write_escape(w, b, e)?;
                start = i + 1;
            }
            i += 1;
        }
    }
    w.write_str(&s[start..])
}

/// The first sixteen bytes of `b` as two words, when it has sixteen.
#[inline(always)]
fn two_words(b: &[u8]) -> Option<(u64, u64)> {
    let (lo, rest) = b.split_first_chunk::<8>()?;
    let hi = rest.first_chunk::<8>()?;
    Some((u64::from_ne_bytes(*lo), u64::from_ne_bytes(*hi)))
}

/// Writes the escape of byte `b`, `e` being its [`ESCAPE`] entry.
#[cold]
fn write_escape<W: Write + ?Sized>(w: &mut W, b: u8, e: u8) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    w.write_char('\\')?;
    if e == b'u' {
        w.write_str("u00")?;
        w.write_char(char::from(HEX[usize::from(b >> 4)]))?;
        w.write_char(char::from(HEX[usize::from(b & 0xf)]))
    } else {
        w.write_char(char::from(e))
    }
}

/// Writes `ts` as a JSON string in RFC 3339 UTC, the same text as [`Timestamp::rfc3339`]
/// without going through `core::fmt`.
pub(crate) fn write_timestamp<W: Write + ?Sized>(w: &mut W, ts: Timestamp) -> fmt::Result {
    let c = ts.to_civil();
    let Ok(year) = u16::try_from(c.year) else {
        return write!(w, "\"{}\"", ts.rfc3339());
    };
    if year > 9999 {
        return write!(w, "\"{}\"", ts.rfc3339());
    }
    // `"YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ"`
    let mut buf = [0u8; 32];
    buf[0] = b'"';
    put_digits(&mut buf[1..5], u32::from(year));
    buf[5] = b'-';
    put_digits(&mut buf[6..8], u32::from(c.month));
    buf[8] = b'-';
    put_digits(&mut buf[9..11], u32::from(c.day));
    buf[11] = b'T';
    put_digits(&mut buf[12..14], u32::from(c.hour));
    buf[14] = b':';
    put_digits(&mut buf[15..17], u32::from(c.minute));
    buf[17] = b':';
    put_digits(&mut buf[18..20], u32::from(c.second));
    let mut len = 20;
    let (fraction, digits) = crate::time::fraction(c.nanos);
    if digits > 0 {
        buf[len] = b'.';
        put_digits(&mut buf[len + 1..len + 1 + digits], fraction);
        len += 1 + digits;
    }
    buf[len] = b'Z';
    buf[len + 1] = b'"';
    len += 2;
    w.write_str(core::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
}

/// Fills `out` with the last `out.len()` decimal digits of `v`, zero-padded.
fn put_digits(out: &mut [u8], mut v: u32) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Writes `ip` as a JSON string; IPv4 without `core::fmt` (the same text as its `Display`).
fn write_ip<W: Write + ?Sized>(w: &mut W, ip: IpAddr) -> fmt::Result {
    let IpAddr::V4(v4) = ip else {
        return write!(w, "\"{ip}\"");
    };
    // `"255.255.255.255"`
    let mut buf = [0u8; 17];
    buf[0] = b'"';
    let mut len = 1;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        let digits = match octet {
            0..=9 => 1,
            10..=99 => 2,
            _ => 3,
        };
        put_digits(&mut buf[len..len + digits], u32::from(octet));
        len += digits;
    }
    buf[len] = b'"';
    w.write_str(core::str::from_utf8(&buf[..=len]).map_err(|_| fmt::Error)?)
}

/// A JSON object being written: tracks whether a comma is due.
struct Obj<'w, W: Out + ?Sized> {
    w: &'w mut W,
    first: bool,
}

impl<'w, W: Out + ?Sized> Obj<'w, W> {
    fn open(w: &'w mut W) -> Result<Self, fmt::Error> {
        w.write_char('{')?;
        Ok(Obj { w, first: true })
    }

    /// For an object whose `{` was written by [`Obj::object`].
    fn open_nested(w: &'w mut W) -> Self {
        Obj { w, first: true }
    }

    #[inline]
    fn key(&mut self, k: Key) -> fmt::Result {
        let k = if self.first { &k.0[1..] } else { k.0 };
        self.first = false;
        self.w.write_str(k)
    }

    /// Starts a nested object; write it with `Obj::open_nested(self.w)` and close it.
    fn object(&mut self, k: Key) -> fmt::Result {
        self.key(k)?;
        self.w.write_char('{')
    }

    /// Writes one value with `write`, marked as `v` (a string's quotes included).
    #[inline(always)]
    fn value(&mut self, v: Value, write: impl FnOnce(&mut W) -> fmt::Result) -> fmt::Result {
        self.w.value_start();
        write(self.w)?;
        self.w.value_end(v);
        Ok(())
    }

    fn str(&mut self, k: Key, v: &str) -> fmt::Result {
        self.key(k)?;
        self.value(Value::Str, |w| {
            w.write_char('"')?;
            escape_str(w, v)?;
            w.write_char('"')
        })
    }

    fn opt_str(&mut self, k: Key, v: Option<&str>) -> fmt::Result {
        match v {
            Some(v) if !v.is_empty() => self.str(k, v),
            _ => Ok(()),
        }
    }

    fn text(&mut self, k: Key, v: Text<'_>) -> fmt::Result {
        self.key(k)?;
        self.value(Value::Str, |w| write_json_string(w, v))
    }

    fn opt_text(&mut self, k: Key, v: Option<Text<'_>>) -> fmt::Result {
        match v {
            Some(v) if !v.is_empty() => self.text(k, v),
            _ => Ok(()),
        }
    }

    fn opt_u64(&mut self, k: Key, v: Option<u64>) -> fmt::Result {
        match v {
            Some(v) => {
                self.key(k)?;
                // The key without `,"` and `":`.
                let name = k.0.get(2..k.0.len() - 2).unwrap_or_default();
                self.value(Value::Num(name), |w| {
                    w.write_str(itoa::Buffer::new().format(v))
                })
            }
            None => Ok(()),
        }
    }

    fn close(self) -> fmt::Result {
        self.w.write_char('}')
    }
}

/// Writes a detection [`Alert`](crate::detect::Alert) as one JSON object (no trailing
/// newline): `event.kind` `alert`, `event.action` and `rule.id` the rule, `rule.name` its title,
/// `event.severity`, `message` (and `event.reason`) one plain sentence, `event.start`/`event.end`
/// its evidence, `source.ip`, `user.name`, `user.target.name`, `group.name`, and
/// `authtrail.count` (attempts), `authtrail.users` (distinct user names, when tracked),
/// `authtrail.sources` (distinct sources, distributed spray), `authtrail.scope` (what the count
/// was taken over), `authtrail.evidence` (the `event.sequence` of the events it cites), plus the
/// envelope fields of [`write_event`]. (Placed before the test module, not after it, for
/// clippy's `items_after_test_module`.)
pub fn write_alert<W: Write + ?Sized>(
    w: &mut W,
    alert: &crate::detect::Alert,
    env: &Envelope<'_>,
) -> fmt::Result {
    use crate::detect::{Rule, Scope};

    /// Escapes what is written through it as the inside of a JSON string.
    struct Escaped<'w, W: Write + ?Sized>(&'w mut W);
    impl<W: Write + ?Sized> Write for Escaped<'_, W> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            escape_str(self.0, s)
        }
    }

    // Alerts are rare: the compact body's encoder reads their text (no marks).
    let mut w = Plain(w);
    let mut top = Obj::open(&mut w)?;
    top.key(k!("@timestamp"))?;
    write_timestamp(top.w, alert.end)?;

    top.object(k!("event"))?;
    {
        let mut o = Obj::open_nested(top.w);
        o.str(k!("kind"), "alert")?;
        o.key(k!("category"))?;
        o.w.write_str("[\"")?;
        o.w.write_str(alert.rule.category())?;
        o.w.write_str("\"]")?;
        o.str(k!("action"), alert.rule.as_str())?;
        o.str(k!("outcome"), alert.rule.outcome().as_str())?;
        o.opt_u64(k!("severity"), Some(u64::from(alert.severity)))?;
        o.key(k!("reason"))?;
        o.w.write_char('"')?;
        write!(Escaped(&mut *o.w), "{alert}")?;
        o.w.write_char('"')?;
        o.key(k!("start"))?;
        write_timestamp(o.w, alert.start)?;
        o.key(k!("end"))?;
        write_timestamp(o.w, alert.end)?;
        o.opt_u64(k!("sequence"), env.sequence)?;
        o.opt_str(k!("provider"), env.provider)?;
        o.close()?;
    }

    top.object(k!("rule"))?;
    {
        let mut o = Obj::open_nested(top.w);
        o.str(k!("id"), alert.rule.as_str())?;
        o.str(k!("name"), alert.rule.name())?;
        o.close()?;
    }

    write_host_and_agent(&mut top, env.hostname, env)?;

    if let Some(ip) = alert.source {
        top.object(k!("source"))?;
        let mut o = Obj::open_nested(top.w);
        o.key(k!("ip"))?;
        write_ip(o.w, ip)?;
        o.close()?;
    }

    let named = |n: &Option<crate::detect::UserName>| n.filter(|u| !u.as_text().is_empty());
    let (user, target) = (named(&alert.user), named(&alert.target));
    if user.is_some() || target.is_some() {
        top.object(k!("user"))?;
        let mut o = Obj::open_nested(top.w);
        if let Some(u) = &user {
            o.text(k!("name"), u.as_text())?;
        }
        if let Some(t) = &target {
            o.object(k!("target"))?;
            let mut t_obj = Obj::open_nested(o.w);
            t_obj.text(k!("name"), t.as_text())?;
            t_obj.close()?;
        }
        o.close()?;
    }
    if let Some(g) = named(&alert.group) {
        top.object(k!("group"))?;
        let mut o = Obj::open_nested(top.w);
        o.text(k!("name"), g.as_text())?;
        o.close()?;
    }

    top.object(k!("authtrail"))?;
    {
        let mut o = Obj::open_nested(top.w);
        o.opt_u64(k!("count"), Some(u64::from(alert.count)))?;
        o.opt_u64(k!("users"), Some(u64::from(alert.users)).filter(|&n| n > 0))?;
        o.opt_u64(
            k!("sources"),
            Some(u64::from(alert.sources)).filter(|&n| n > 0),
        )?;
        if alert.rule == Rule::SuccessAfterFailures || alert.scope != Scope::Source {
            o.str(k!("scope"), alert.scope.as_str())?;
        }
        if !alert.cites().is_empty() {
            o.key(k!("evidence"))?;
            for (i, seq) in alert.cites().iter().enumerate() {
                o.w.write_char(if i == 0 { '[' } else { ',' })?;
                write!(o.w, "{seq}")?;
            }
            o.w.write_char(']')?;
        }
        if [user, target].iter().flatten().any(|u| u.is_truncated()) {
            o.key(k!("user_truncated"))?;
            o.w.write_str("true")?;
        }
        o.close()?;
    }

    // The sentence again as `message`, which every consumer shows.
    top.key(k!("message"))?;
    top.w.write_char('"')?;
    write!(Escaped(&mut *top.w), "{alert}")?;
    top.w.write_char('"')?;
    let env = Envelope {
        message: None,
        ..*env
    };
    write_log_and_message(top, &env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Method, Outcome};
    use proptest::prelude::*;

    fn json(ev: &LoginEvent<'_>, env: &Envelope<'_>) -> String {
        let mut s = String::new();
        write_event(&mut s, ev, env).unwrap();
        s
    }

    #[test]
    fn full_event_is_valid_nested_ecs() {
        let mut ev = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
        ev.timestamp = Some(Timestamp::from_secs(1_795_848_570));
        ev.hostname = Some(Text(b"web1"));
        ev.program = Text(b"sshd");
        ev.pid = Some(42);
        ev.user = Some(Text(b"alice"));
        ev.source = Some(Source::Ip("2001:db8::1".parse().unwrap()));
        ev.port = Some(50522);
        ev.method = Some(Method::Publickey);
        ev.key_type = Some(Text(b"ED25519"));
        ev.key_fingerprint = Some(Text(b"SHA256:abc"));
        let env = Envelope {
            agent_id: Some("a-1"),
            log_path: Some(Text(b"/var/log/auth.log")),
            log_offset: Some(7),
            message: Some(Text(b"line \"quoted\"\t\x01\xff")),
            ..Envelope::default()
        };
        assert_eq!(
            json(&ev, &env),
            concat!(
                r#"{"@timestamp":"2026-11-28T06:49:30Z","#,
                r#""event":{"kind":"event","category":["authentication"],"action":"auth_success","outcome":"success"},"#,
                r#""host":{"hostname":"web1"},"agent":{"id":"a-1"},"user":{"name":"alice"},"#,
                r#""source":{"ip":"2001:db8::1","port":50522},"process":{"name":"sshd","pid":42},"#,
                r#""authtrail":{"method":"publickey","key":{"type":"ED25519","fingerprint":"SHA256:abc"},"count":1},"#,
                r#""log":{"file":{"path":"/var/log/auth.log"},"offset":7},"#,
                "\"message\":\"line \\\"quoted\\\"\\t\\u0001\u{FFFD}\"}"
            )
        );
    }

    #[test]
    fn unknown_fields_are_absent_not_empty() {
        let mut ev = LoginEvent::new(Action::Sudo, Outcome::Failure);
        ev.program = Text(b"sudo");
        ev.user = None;
        ev.target_user = Some(Text(b"root"));
        ev.uid = Some(0);
        let s = json(&ev, &Envelope::default());
        assert_eq!(
            s,
            concat!(
                r#"{"event":{"kind":"event","category":["process"],"action":"sudo","outcome":"failure"},"#,
                r#""user":{"id":"0","target":{"name":"root"}},"process":{"name":"sudo"},"authtrail":{"count":1}}"#
            )
        );
        assert!(!s.contains("\"\""));
    }

    /// The byte-at-a-time escaper the fast one replaced: the reference for its output.
    fn escape_reference(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\0'..='\x1f' | '\x7f' => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out
    }

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        escape_str(&mut out, s).unwrap();
        out
    }

    #[test]
    fn every_byte_escapes_as_before_at_every_block_position() {
        for b in 0u8..=0x7f {
            for at in 0..40 {
                let mut s = "a".repeat(40);
                s.insert(at, char::from(b));
                assert_eq!(escaped(&s), escape_reference(&s), "byte {b:#x} at {at}");
            }
        }
        let s = "é\u{7f}ü\"€\\\u{1f}😀\u{80}\u{ff}x".repeat(5);
        assert_eq!(escaped(&s), escape_reference(&s));
    }

    #[test]
    fn invalid_utf8_is_replaced_in_json_strings() {
        let mut out = String::new();
        write_json_string(&mut out, Text(b"a\xffb\xe2\x82\"\xf0\x9f\x98\x80")).unwrap();
        assert_eq!(out, "\"a\u{FFFD}b\u{FFFD}\\\"\u{1F600}\"");
    }

    proptest! {
        #[test]
        fn escape_matches_the_reference(s in any::<String>(), ascii in "[\\x00-\\x7f]{0,80}") {
            prop_assert_eq!(escaped(&s), escape_reference(&s));
            prop_assert_eq!(escaped(&ascii), escape_reference(&ascii));
        }

        #[test]
        fn json_string_matches_lossy_utf8(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut out = String::new();
            write_json_string(&mut out, Text(&bytes)).unwrap();
            let lossy = String::from_utf8_lossy(&bytes);
            prop_assert_eq!(out, format!("\"{}\"", escape_reference(&lossy)));
        }

        #[test]
        fn timestamps_read_as_rfc3339(
            secs in prop_oneof![-400_000_000_000i64..400_000_000_000, 0i64..4_102_444_800],
            nanos in prop_oneof![0u32..2_000_000_000, (0u32..1000).prop_map(|n| n * 1_000_000),
                (0u32..1_000_000).prop_map(|n| n * 1000), Just(0)],
        ) {
            let ts = Timestamp { secs, nanos };
            let mut out = String::new();
            write_timestamp(&mut out, ts).unwrap();
            prop_assert_eq!(out, format!("\"{}\"", ts.rfc3339()));
        }

        #[test]
        fn ips_read_as_display(v4 in any::<[u8; 4]>(), v6 in any::<[u16; 8]>()) {
            for ip in [IpAddr::from(v4), IpAddr::from(v6)] {
                let mut out = String::new();
                write_ip(&mut out, ip).unwrap();
                prop_assert_eq!(out, format!("\"{ip}\""));
            }
        }
    }
}
