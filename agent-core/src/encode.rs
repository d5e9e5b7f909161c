//! A compact, versioned, bounded binary encoding of a [`LoginEvent`], for the memory ring and
//! anything else that must hold events as bytes.
//!
//! [`encode`] writes an event (plus the [`Extra`] facts that are not part of the event itself)
//! into a caller's `&mut [u8]`; [`decode`] reads it back without copying: every text field of the
//! decoded event borrows from the input. Nothing here allocates, except [`encode_to_vec`] (feature
//! `alloc`). [`MAX_ENCODED_LEN`] bounds the size of any encoding, so a buffer of that size always
//! suffices; [`encoded_len`] gives the exact size of one event.
//!
//! # Format, version 1
//!
//! Integers are unsigned LEB128 varints in their shortest form (7 bits a byte, low bits first);
//! `secs` is zigzag-mapped first so that times before 1970 stay short. A *text* is a varint length
//! followed by that many raw bytes (not necessarily UTF-8). Enum tags are one byte.
//!
//! | # | field | present when | encoding |
//! |---|-------|--------------|----------|
//! |   | version | always | one byte, [`VERSION`] |
//! |   | presence | always | varint `u32` bitmap; bit *n* set when field *n* below is present |
//! | 0 | `timestamp` | bit 0 | varint zigzag(`secs`), varint `nanos` (`< 1_000_000_000`) |
//! | 1 | `hostname` | bit 1 | text, at most [`MAX_FIELD_LEN`] |
//! |   | `program` | always | text, at most [`MAX_FIELD_LEN`] |
//! | 2 | `pid` | bit 2 | varint `u32` |
//! |   | `action` | always | tag: `AuthSuccess` 0, `AuthFailure` 1, `InvalidUser` 2, `SessionOpen` 3, `SessionClose` 4, `Disconnect` 5, `Sudo` 6, `Su` 7, `AccountChange` 8, `Connection` 9, `Other` 10 |
//! |   | `outcome` | always | tag: `Success` 0, `Failure` 1, `Unknown` 2 |
//! | 3 | `user` | bit 3 | text, at most [`MAX_FIELD_LEN`] |
//! | 4 | `target_user` | bit 4 | text, at most [`MAX_FIELD_LEN`] |
//! | 5 | `uid` | bit 5 | varint `u32` |
//! | 6 | `source` ([`Source::Ip`]) | bit 6 | tag 4 and 4 bytes, or tag 6 and 16 bytes (network order) |
//! | 7 | `source` ([`Source::Domain`]) | bit 7 (never with bit 6) | text, at most [`MAX_FIELD_LEN`] |
//! | 8 | `port` | bit 8 | varint `u16` |
//! | 9 | `method` | bit 9 | tag: `Password` 0, `Publickey` 1, `KeyboardInteractive` 2, `GssapiWithMic` 3, `Hostbased` 4, `None` 5 |
//! | 10 | `key_type` | bit 10 | text, at most [`MAX_FIELD_LEN`] |
//! | 11 | `key_fingerprint` | bit 11 | text, at most [`MAX_FIELD_LEN`] |
//! | 12 | `tty` | bit 12 | text, at most [`MAX_FIELD_LEN`] |
//! | 13 | `command` | bit 13 | text, at most [`MAX_FIELD_LEN`] |
//! | 14 | `reason` | bit 14 | text, at most [`MAX_FIELD_LEN`] |
//! |   | `count` | always | varint `u32`, at least 1 |
//! | 15 | [`Extra::message`] | bit 15 | text, at most [`MAX_MESSAGE_LEN`] |
//! | 16 | [`Extra::log_offset`] | bit 16 | varint `u64` |
//! | 17 | [`Extra::source_id`] | bit 17 | varint `u32` |
//!
//! The encoding is canonical: [`decode`] accepts exactly the bytes [`encode`] can produce
//! (shortest varints only, no unknown presence bits, no trailing bytes), so re-encoding a decoded
//! event gives back the same bytes. A change to this table is a new [`VERSION`].
//!
//! Errors are small `Copy` values naming a field or an offset, never a copy of the input (a log
//! line can hold a password typed as a user name).

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::{Action, LoginEvent, Method, Outcome, Source};
use crate::text::Text;
use crate::time::Timestamp;

/// The format version, the first byte of every encoding. [`decode`] rejects any other.
pub const VERSION: u8 = 1;

/// The longest text field (`program`, `user`, `source.domain`, ...) in bytes. Longer fields are
/// rejected with [`EncodeError::FieldTooLong`], never cut.
pub const MAX_FIELD_LEN: usize = 1024;

/// The longest [`Extra::message`] (the raw log line) in bytes, the agent's default line bound.
/// A longer message is rejected with [`EncodeError::FieldTooLong`].
pub const MAX_MESSAGE_LEN: usize = 65_536;

/// An upper bound on the length of any encoding: a buffer of this size always holds
/// [`encode`]'s output. It is exact: an event with every field at its longest reaches it.
///
/// Most of it is the message; an event without one takes at most
/// `MAX_ENCODED_LEN - MAX_MESSAGE_LEN - 3` bytes.
pub const MAX_ENCODED_LEN: usize = 1 // version
    + varint_len(bit::ALL as u64) // presence
    + varint_len(u64::MAX) + varint_len(NANOS_PER_SEC as u64 - 1) // timestamp
    + text_max(MAX_FIELD_LEN) // hostname
    + text_max(MAX_FIELD_LEN) // program
    + varint_len(u32::MAX as u64) // pid
    + 1 // action
    + 1 // outcome
    + text_max(MAX_FIELD_LEN) // user
    + text_max(MAX_FIELD_LEN) // target_user
    + varint_len(u32::MAX as u64) // uid
    + max(1 + 16, text_max(MAX_FIELD_LEN)) // source: an IPv6 address or a domain
    + varint_len(u16::MAX as u64) // port
    + 1 // method
    + 5 * text_max(MAX_FIELD_LEN) // key_type, key_fingerprint, tty, command, reason
    + varint_len(u32::MAX as u64) // count
    + text_max(MAX_MESSAGE_LEN) // message
    + varint_len(u64::MAX) // log_offset
    + varint_len(u32::MAX as u64); // source_id

const NANOS_PER_SEC: u32 = 1_000_000_000;

/// Presence bits, in wire order.
mod bit {
    pub(super) const TIMESTAMP: u32 = 1 << 0;
    pub(super) const HOSTNAME: u32 = 1 << 1;
    pub(super) const PID: u32 = 1 << 2;
    pub(super) const USER: u32 = 1 << 3;
    pub(super) const TARGET_USER: u32 = 1 << 4;
    pub(super) const UID: u32 = 1 << 5;
    pub(super) const SOURCE_IP: u32 = 1 << 6;
    pub(super) const SOURCE_DOMAIN: u32 = 1 << 7;
    pub(super) const PORT: u32 = 1 << 8;
    pub(super) const METHOD: u32 = 1 << 9;
    pub(super) const KEY_TYPE: u32 = 1 << 10;
    pub(super) const KEY_FINGERPRINT: u32 = 1 << 11;
    pub(super) const TTY: u32 = 1 << 12;
    pub(super) const COMMAND: u32 = 1 << 13;
    pub(super) const REASON: u32 = 1 << 14;
    pub(super) const MESSAGE: u32 = 1 << 15;
    pub(super) const LOG_OFFSET: u32 = 1 << 16;
    pub(super) const SOURCE_ID: u32 = 1 << 17;
    /// Every bit version 1 defines.
    pub(super) const ALL: u32 = (1 << 18) - 1;
}

/// Field names used in errors (the ECS names of `ARCHITECTURE.md`).
mod name {
    pub(super) const HOSTNAME: &str = "host.hostname";
    pub(super) const PROGRAM: &str = "process.name";
    pub(super) const PID: &str = "process.pid";
    pub(super) const ACTION: &str = "event.action";
    pub(super) const OUTCOME: &str = "event.outcome";
    pub(super) const USER: &str = "user.name";
    pub(super) const TARGET_USER: &str = "user.target.name";
    pub(super) const UID: &str = "user.id";
    pub(super) const SOURCE_IP: &str = "source.ip";
    pub(super) const SOURCE_DOMAIN: &str = "source.domain";
    pub(super) const PORT: &str = "source.port";
    pub(super) const METHOD: &str = "authtrail.method";
    pub(super) const KEY_TYPE: &str = "authtrail.key.type";
    pub(super) const KEY_FINGERPRINT: &str = "authtrail.key.fingerprint";
    pub(super) const TTY: &str = "authtrail.tty";
    pub(super) const COMMAND: &str = "authtrail.command";
    pub(super) const REASON: &str = "event.reason";
    pub(super) const COUNT: &str = "authtrail.count";
    pub(super) const MESSAGE: &str = "message";
    pub(super) const SOURCE_ID: &str = "source_id";
    pub(super) const PRESENCE: &str = "presence";
    pub(super) const NANOS: &str = "@timestamp.nanos";
}

/// What travels with an event but is not part of it: facts about the line it came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extra<'a> {
    /// The original log line (`message`), at most [`MAX_MESSAGE_LEN`] bytes. Defaults to `None`.
    pub message: Option<Text<'a>>,
    /// Byte offset of the line's start in its file (`log.offset`). Defaults to `None`.
    pub log_offset: Option<u64>,
    /// Which configured log source (file, journal) the line came from, as the agent numbers its
    /// sources. Defaults to `None`.
    pub source_id: Option<u32>,
}

impl Extra<'static> {
    /// No extra facts: every field `None`.
    pub const NONE: Extra<'static> = Extra {
        message: None,
        log_offset: None,
        source_id: None,
    };
}

/// Why [`encode`] refused an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is shorter than the encoding, which takes `needed` bytes. A buffer of
    /// [`MAX_ENCODED_LEN`] bytes never gives this error.
    BufferTooSmall {
        /// The exact length of the encoding.
        needed: usize,
    },
    /// A text field is longer than its bound ([`MAX_FIELD_LEN`], or [`MAX_MESSAGE_LEN`] for
    /// `message`). `field` is the ECS name, e.g. `"user.name"`.
    FieldTooLong {
        /// The ECS name of the field.
        field: &'static str,
    },
    /// `count` is 0; an event happened at least once.
    ZeroCount,
    /// The timestamp's `nanos` is 1 000 000 000 or more.
    InvalidNanos,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed } => {
                write!(
                    f,
                    "output buffer too small: the encoding needs {needed} bytes"
                )
            }
            EncodeError::FieldTooLong { field } => {
                write!(f, "field {field} is longer than the encoding allows")
            }
            EncodeError::ZeroCount => f.write_str("event count is 0 (must be at least 1)"),
            EncodeError::InvalidNanos => {
                f.write_str("timestamp nanoseconds out of range (must be below 1000000000)")
            }
        }
    }
}

impl core::error::Error for EncodeError {}

/// Why [`decode`] rejected its input. Offsets are byte positions in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeError {
    /// The first byte is not [`VERSION`].
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// The input ended inside a field (or was empty).
    Truncated {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// The event ended before the input did.
    TrailingBytes {
        /// The first byte after the event.
        offset: usize,
    },
    /// The presence bitmap sets a bit this version does not define, or claims both an IP and a
    /// domain source.
    InvalidPresence {
        /// The bitmap found.
        bits: u32,
    },
    /// An enum tag (action, outcome, method, IP family) has no meaning.
    InvalidTag {
        /// The ECS name of the field.
        field: &'static str,
        /// The tag byte found.
        tag: u8,
        /// Where the tag is.
        offset: usize,
    },
    /// A varint is longer than its shortest form, or longer than 10 bytes, or exceeds 64 bits.
    OverlongVarint {
        /// Where the varint starts.
        offset: usize,
    },
    /// A well-formed varint does not fit its field (a port above 65535, a pid above `u32`).
    IntegerOutOfRange {
        /// The name of the field.
        field: &'static str,
        /// Where the varint starts.
        offset: usize,
    },
    /// A text field's length exceeds its bound ([`MAX_FIELD_LEN`] or [`MAX_MESSAGE_LEN`]).
    FieldTooLong {
        /// The ECS name of the field.
        field: &'static str,
        /// Where the length varint starts.
        offset: usize,
    },
    /// `count` is 0.
    ZeroCount {
        /// Where the count starts.
        offset: usize,
    },
    /// The timestamp's nanoseconds are 1 000 000 000 or more.
    InvalidNanos {
        /// Where the nanoseconds start.
        offset: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownVersion { version } => {
                write!(f, "unknown encoding version {version} (expected {VERSION})")
            }
            DecodeError::Truncated { offset } => write!(f, "input truncated at byte {offset}"),
            DecodeError::TrailingBytes { offset } => {
                write!(f, "trailing bytes after the event at byte {offset}")
            }
            DecodeError::InvalidPresence { bits } => {
                write!(f, "invalid presence bitmap {bits:#x}")
            }
            DecodeError::InvalidTag { field, tag, offset } => {
                write!(f, "invalid tag {tag} for {field} at byte {offset}")
            }
            DecodeError::OverlongVarint { offset } => {
                write!(f, "overlong varint at byte {offset}")
            }
            DecodeError::IntegerOutOfRange { field, offset } => {
                write!(f, "integer out of range for {field} at byte {offset}")
            }
            DecodeError::FieldTooLong { field, offset } => {
                write!(f, "field {field} at byte {offset} is longer than its bound")
            }
            DecodeError::ZeroCount { offset } => write!(f, "event count 0 at byte {offset}"),
            DecodeError::InvalidNanos { offset } => {
                write!(f, "timestamp nanoseconds out of range at byte {offset}")
            }
        }
    }
}

impl core::error::Error for DecodeError {}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Encodes `ev` and `extra` into the front of `out` and returns the number of bytes written.
///
/// A buffer of [`MAX_ENCODED_LEN`] bytes is always large enough; [`encoded_len`] gives the exact
/// size. Allocates nothing.
///
/// # Errors
/// - [`EncodeError::BufferTooSmall`] when `out` is too short (with the length needed);
/// - [`EncodeError::FieldTooLong`] when a text field exceeds [`MAX_FIELD_LEN`] (or the message
///   [`MAX_MESSAGE_LEN`]);
/// - [`EncodeError::ZeroCount`] when `ev.count` is 0;
/// - [`EncodeError::InvalidNanos`] when the timestamp's `nanos` is not below 10⁹.
///
/// On error the contents of `out` are unspecified.
pub fn encode(
    ev: &LoginEvent<'_>,
    extra: &Extra<'_>,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let mut sink = SliceSink { out, pos: 0 };
    match write_event(&mut sink, ev, extra) {
        Ok(()) => Ok(sink.pos),
        // Find out how much was needed, or whether a later field is the real problem.
        Err(EncodeError::BufferTooSmall { .. }) => Err(match encoded_len(ev, extra) {
            Ok(needed) => EncodeError::BufferTooSmall { needed },
            Err(e) => e,
        }),
        Err(e) => Err(e),
    }
}

/// The exact number of bytes [`encode`] writes for `ev` and `extra`, at most
/// [`MAX_ENCODED_LEN`].
///
/// # Errors
/// The same as [`encode`], except never [`EncodeError::BufferTooSmall`].
pub fn encoded_len(ev: &LoginEvent<'_>, extra: &Extra<'_>) -> Result<usize, EncodeError> {
    let mut counter = Counter(0);
    write_event(&mut counter, ev, extra)?;
    Ok(counter.0)
}

/// Encodes `ev` and `extra` into a new `Vec` of exactly the encoded length.
///
/// # Errors
/// The same as [`encode`], except never [`EncodeError::BufferTooSmall`].
#[cfg(feature = "alloc")]
pub fn encode_to_vec(
    ev: &LoginEvent<'_>,
    extra: &Extra<'_>,
) -> Result<alloc::vec::Vec<u8>, EncodeError> {
    let mut v = alloc::vec::Vec::with_capacity(encoded_len(ev, extra)?);
    write_event(&mut v, ev, extra)?;
    Ok(v)
}

/// Where encoded bytes go (postcard's `Flavor`, cut down to what this module needs).
trait Sink {
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError>;
}

/// Writes into a caller's slice.
#[derive(Debug)]
struct SliceSink<'b> {
    out: &'b mut [u8],
    pos: usize,
}

impl Sink for SliceSink<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let dst = self
            .out
            .get_mut(self.pos..)
            .and_then(|rest| rest.get_mut(..bytes.len()))
            // The real length is filled in by `encode`.
            .ok_or(EncodeError::BufferTooSmall { needed: 0 })?;
        dst.copy_from_slice(bytes);
        self.pos += bytes.len();
        Ok(())
    }
}

/// Counts bytes without writing them.
#[derive(Debug)]
struct Counter(usize);

impl Sink for Counter {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0 += bytes.len();
        Ok(())
    }
}

#[cfg(feature = "alloc")]
impl Sink for alloc::vec::Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

fn write_event<S: Sink>(
    s: &mut S,
    ev: &LoginEvent<'_>,
    extra: &Extra<'_>,
) -> Result<(), EncodeError> {
    if ev.count == 0 {
        return Err(EncodeError::ZeroCount);
    }
    if ev.timestamp.is_some_and(|ts| ts.nanos >= NANOS_PER_SEC) {
        return Err(EncodeError::InvalidNanos);
    }

    s.put(&[VERSION])?;
    put_varint(s, u64::from(presence(ev, extra)))?;
    if let Some(ts) = ev.timestamp {
        put_varint(s, zigzag(ts.secs))?;
        put_varint(s, u64::from(ts.nanos))?;
    }
    put_opt_text(s, ev.hostname, name::HOSTNAME, MAX_FIELD_LEN)?;
    put_text(s, ev.program, name::PROGRAM, MAX_FIELD_LEN)?;
    put_opt_varint(s, ev.pid.map(u64::from))?;
    s.put(&[action_tag(ev.action), outcome_tag(ev.outcome)])?;
    // A hex-encoded name is stored decoded: the decoded event carries the plain name.
    let mut buf = [0u8; MAX_FIELD_LEN];
    let user = ev.user.map(|u| u.decoded_if(ev.user_hex, &mut buf));
    put_opt_text(s, user, name::USER, MAX_FIELD_LEN)?;
    let mut buf = [0u8; MAX_FIELD_LEN];
    let target = ev
        .target_user
        .map(|u| u.decoded_if(ev.target_user_hex, &mut buf));
    put_opt_text(s, target, name::TARGET_USER, MAX_FIELD_LEN)?;
    put_opt_varint(s, ev.uid.map(u64::from))?;
    match ev.source {
        Some(Source::Ip(IpAddr::V4(ip))) => {
            s.put(&[4])?;
            s.put(&ip.octets())?;
        }
        Some(Source::Ip(IpAddr::V6(ip))) => {
            s.put(&[6])?;
            s.put(&ip.octets())?;
        }
        Some(Source::Domain(d)) => put_text(s, d, name::SOURCE_DOMAIN, MAX_FIELD_LEN)?,
        None => {}
    }
    put_opt_varint(s, ev.port.map(u64::from))?;
    if let Some(m) = ev.method {
        s.put(&[method_tag(m)])?;
    }
    put_opt_text(s, ev.key_type, name::KEY_TYPE, MAX_FIELD_LEN)?;
    put_opt_text(s, ev.key_fingerprint, name::KEY_FINGERPRINT, MAX_FIELD_LEN)?;
    put_opt_text(s, ev.tty, name::TTY, MAX_FIELD_LEN)?;
    put_opt_text(s, ev.command, name::COMMAND, MAX_FIELD_LEN)?;
    put_opt_text(s, ev.reason, name::REASON, MAX_FIELD_LEN)?;
    put_varint(s, u64::from(ev.count))?;
    put_opt_text(s, extra.message, name::MESSAGE, MAX_MESSAGE_LEN)?;
    put_opt_varint(s, extra.log_offset)?;
    put_opt_varint(s, extra.source_id.map(u64::from))?;
    Ok(())
}

/// The presence bitmap of an event.
fn presence(ev: &LoginEvent<'_>, extra: &Extra<'_>) -> u32 {
    let flag = |present: bool, bit: u32| if present { bit } else { 0 };
    flag(ev.timestamp.is_some(), bit::TIMESTAMP)
        | flag(ev.hostname.is_some(), bit::HOSTNAME)
        | flag(ev.pid.is_some(), bit::PID)
        | flag(ev.user.is_some(), bit::USER)
        | flag(ev.target_user.is_some(), bit::TARGET_USER)
        | flag(ev.uid.is_some(), bit::UID)
        | flag(matches!(ev.source, Some(Source::Ip(_))), bit::SOURCE_IP)
        | flag(
            matches!(ev.source, Some(Source::Domain(_))),
            bit::SOURCE_DOMAIN,
        )
        | flag(ev.port.is_some(), bit::PORT)
        | flag(ev.method.is_some(), bit::METHOD)
        | flag(ev.key_type.is_some(), bit::KEY_TYPE)
        | flag(ev.key_fingerprint.is_some(), bit::KEY_FINGERPRINT)
        | flag(ev.tty.is_some(), bit::TTY)
        | flag(ev.command.is_some(), bit::COMMAND)
        | flag(ev.reason.is_some(), bit::REASON)
        | flag(extra.message.is_some(), bit::MESSAGE)
        | flag(extra.log_offset.is_some(), bit::LOG_OFFSET)
        | flag(extra.source_id.is_some(), bit::SOURCE_ID)
}

#[inline]
fn put_varint<S: Sink>(s: &mut S, mut v: u64) -> Result<(), EncodeError> {
    let mut buf = [0u8; 10];
    let mut n = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[n] = byte;
            n += 1;
            break;
        }
        buf[n] = byte | 0x80;
        n += 1;
    }
    s.put(&buf[..n])
}

#[inline]
fn put_opt_varint<S: Sink>(s: &mut S, v: Option<u64>) -> Result<(), EncodeError> {
    match v {
        Some(v) => put_varint(s, v),
        None => Ok(()),
    }
}

#[inline]
fn put_text<S: Sink>(
    s: &mut S,
    t: Text<'_>,
    field: &'static str,
    max: usize,
) -> Result<(), EncodeError> {
    if t.len() > max {
        return Err(EncodeError::FieldTooLong { field });
    }
    put_varint(s, t.len() as u64)?;
    s.put(t.as_bytes())
}

#[inline]
fn put_opt_text<S: Sink>(
    s: &mut S,
    t: Option<Text<'_>>,
    field: &'static str,
    max: usize,
) -> Result<(), EncodeError> {
    match t {
        Some(t) => put_text(s, t, field, max),
        None => Ok(()),
    }
}

#[inline]
const fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
const fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bytes in the shortest LEB128 encoding of `v`.
const fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Bytes taken by a text of at most `max` bytes.
const fn text_max(max: usize) -> usize {
    varint_len(max as u64) + max
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

// The tag tables are written out both ways (rather than `as u8` or an index into `ALL`) so that
// reordering or adding a variant in `event.rs` cannot silently change the wire format: adding one
// breaks these exhaustive matches.

const fn action_tag(a: Action) -> u8 {
    match a {
        Action::AuthSuccess => 0,
        Action::AuthFailure => 1,
        Action::InvalidUser => 2,
        Action::SessionOpen => 3,
        Action::SessionClose => 4,
        Action::Disconnect => 5,
        Action::Sudo => 6,
        Action::Su => 7,
        Action::AccountChange => 8,
        Action::Connection => 9,
        Action::Other => 10,
    }
}

const fn action_from_tag(tag: u8) -> Option<Action> {
    Some(match tag {
        0 => Action::AuthSuccess,
        1 => Action::AuthFailure,
        2 => Action::InvalidUser,
        3 => Action::SessionOpen,
        4 => Action::SessionClose,
        5 => Action::Disconnect,
        6 => Action::Sudo,
        7 => Action::Su,
        8 => Action::AccountChange,
        9 => Action::Connection,
        10 => Action::Other,
        _ => return None,
    })
}

const fn outcome_tag(o: Outcome) -> u8 {
    match o {
        Outcome::Success => 0,
        Outcome::Failure => 1,
        Outcome::Unknown => 2,
    }
}

const fn outcome_from_tag(tag: u8) -> Option<Outcome> {
    Some(match tag {
        0 => Outcome::Success,
        1 => Outcome::Failure,
        2 => Outcome::Unknown,
        _ => return None,
    })
}

const fn method_tag(m: Method) -> u8 {
    match m {
        Method::Password => 0,
        Method::Publickey => 1,
        Method::KeyboardInteractive => 2,
        Method::GssapiWithMic => 3,
        Method::Hostbased => 4,
        Method::None => 5,
    }
}

const fn method_from_tag(tag: u8) -> Option<Method> {
    Some(match tag {
        0 => Method::Password,
        1 => Method::Publickey,
        2 => Method::KeyboardInteractive,
        3 => Method::GssapiWithMic,
        4 => Method::Hostbased,
        5 => Method::None,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes one event encoded by [`encode`]. Zero-copy: every text field of the event and of the
/// [`Extra`] borrows from `buf`. `buf` must hold exactly one encoding.
///
/// Never panics, whatever the input.
///
/// # Errors
/// [`DecodeError::UnknownVersion`] for a first byte other than [`VERSION`];
/// [`DecodeError::Truncated`] when the input ends early; [`DecodeError::TrailingBytes`] when it
/// goes on after the event; [`DecodeError::InvalidPresence`], [`DecodeError::InvalidTag`],
/// [`DecodeError::OverlongVarint`], [`DecodeError::IntegerOutOfRange`],
/// [`DecodeError::FieldTooLong`], [`DecodeError::ZeroCount`] and [`DecodeError::InvalidNanos`]
/// for bytes [`encode`] would never write.
pub fn decode<'a>(buf: &'a [u8]) -> Result<(LoginEvent<'a>, Extra<'a>), DecodeError> {
    let mut r = Reader::new(buf);

    let version = r.byte()?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion { version });
    }
    let presence = r.varint_u32(name::PRESENCE)?;
    if presence & !bit::ALL != 0
        || presence & (bit::SOURCE_IP | bit::SOURCE_DOMAIN) == bit::SOURCE_IP | bit::SOURCE_DOMAIN
    {
        return Err(DecodeError::InvalidPresence { bits: presence });
    }
    let has = |bit: u32| presence & bit != 0;

    let timestamp = if has(bit::TIMESTAMP) {
        let secs = unzigzag(r.varint()?);
        let offset = r.pos;
        let nanos = r.varint_u32(name::NANOS)?;
        if nanos >= NANOS_PER_SEC {
            return Err(DecodeError::InvalidNanos { offset });
        }
        Some(Timestamp { secs, nanos })
    } else {
        None
    };
    let hostname = r.opt_text(has(bit::HOSTNAME), name::HOSTNAME, MAX_FIELD_LEN)?;
    let program = r.text(name::PROGRAM, MAX_FIELD_LEN)?;
    let pid = r.opt_varint_u32(has(bit::PID), name::PID)?;
    let action = r.tag(name::ACTION, action_from_tag)?;
    let outcome = r.tag(name::OUTCOME, outcome_from_tag)?;
    let user = r.opt_text(has(bit::USER), name::USER, MAX_FIELD_LEN)?;
    let target_user = r.opt_text(has(bit::TARGET_USER), name::TARGET_USER, MAX_FIELD_LEN)?;
    let uid = r.opt_varint_u32(has(bit::UID), name::UID)?;
    let source = if has(bit::SOURCE_IP) {
        Some(Source::Ip(r.ip()?))
    } else if has(bit::SOURCE_DOMAIN) {
        Some(Source::Domain(r.text(name::SOURCE_DOMAIN, MAX_FIELD_LEN)?))
    } else {
        None
    };
    let port = if has(bit::PORT) {
        let offset = r.pos;
        let v = r.varint()?;
        Some(
            u16::try_from(v).map_err(|_| DecodeError::IntegerOutOfRange {
                field: name::PORT,
                offset,
            })?,
        )
    } else {
        None
    };
    let method = if has(bit::METHOD) {
        Some(r.tag(name::METHOD, method_from_tag)?)
    } else {
        None
    };
    let key_type = r.opt_text(has(bit::KEY_TYPE), name::KEY_TYPE, MAX_FIELD_LEN)?;
    let key_fingerprint = r.opt_text(
        has(bit::KEY_FINGERPRINT),
        name::KEY_FINGERPRINT,
        MAX_FIELD_LEN,
    )?;
    let tty = r.opt_text(has(bit::TTY), name::TTY, MAX_FIELD_LEN)?;
    let command = r.opt_text(has(bit::COMMAND), name::COMMAND, MAX_FIELD_LEN)?;
    let reason = r.opt_text(has(bit::REASON), name::REASON, MAX_FIELD_LEN)?;
    let offset = r.pos;
    let count = r.varint_u32(name::COUNT)?;
    if count == 0 {
        return Err(DecodeError::ZeroCount { offset });
    }
    let message = r.opt_text(has(bit::MESSAGE), name::MESSAGE, MAX_MESSAGE_LEN)?;
    let log_offset = if has(bit::LOG_OFFSET) {
        Some(r.varint()?)
    } else {
        None
    };
    let source_id = r.opt_varint_u32(has(bit::SOURCE_ID), name::SOURCE_ID)?;
    r.finish()?;

    let ev = LoginEvent {
        timestamp,
        hostname,
        program,
        pid,
        action,
        outcome,
        user,
        target_user,
        user_hex: false,
        target_user_hex: false,
        uid,
        source,
        port,
        method,
        key_type,
        key_fingerprint,
        tty,
        command,
        reason,
        count,
    };
    let extra = Extra {
        message,
        log_offset,
        source_id,
    };
    Ok((ev, extra))
}

/// A zero-copy cursor over the input (rustls's `Reader`): every read is bounds-checked and
/// reports where it failed; [`Reader::finish`] rejects trailing data.
#[derive(Debug)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    const fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The next `n` bytes, borrowed from the input.
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let truncated = DecodeError::Truncated {
            offset: self.buf.len(),
        };
        let rest = self.buf.get(self.pos..).ok_or(truncated)?;
        let out = rest.get(..n).ok_or(truncated)?;
        self.pos += n;
        Ok(out)
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated {
            offset: self.buf.len(),
        })?;
        self.pos += 1;
        Ok(b)
    }

    /// A LEB128 `u64` in its shortest form.
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let offset = self.pos;
        let overlong = DecodeError::OverlongVarint { offset };
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            // The tenth byte holds bit 63 only, and ends the varint.
            if i == 9 && b > 1 {
                return Err(overlong);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // A final zero byte after others adds nothing: not the shortest form.
                if b == 0 && i > 0 {
                    return Err(overlong);
                }
                return Ok(value);
            }
        }
        Err(overlong)
    }

    fn varint_u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let offset = self.pos;
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| DecodeError::IntegerOutOfRange { field, offset })
    }

    fn opt_varint_u32(
        &mut self,
        present: bool,
        field: &'static str,
    ) -> Result<Option<u32>, DecodeError> {
        if present {
            self.varint_u32(field).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A varint length of at most `max`, then that many bytes.
    fn text(&mut self, field: &'static str, max: usize) -> Result<Text<'a>, DecodeError> {
        let offset = self.pos;
        let len = self.varint()?;
        if len > max as u64 {
            return Err(DecodeError::FieldTooLong { field, offset });
        }
        self.take(len as usize).map(Text)
    }

    fn opt_text(
        &mut self,
        present: bool,
        field: &'static str,
        max: usize,
    ) -> Result<Option<Text<'a>>, DecodeError> {
        if present {
            self.text(field, max).map(Some)
        } else {
            Ok(None)
        }
    }

    fn tag<T>(
        &mut self,
        field: &'static str,
        from_tag: fn(u8) -> Option<T>,
    ) -> Result<T, DecodeError> {
        let offset = self.pos;
        let tag = self.byte()?;
        from_tag(tag).ok_or(DecodeError::InvalidTag { field, tag, offset })
    }

    fn ip(&mut self) -> Result<IpAddr, DecodeError> {
        let offset = self.pos;
        match self.byte()? {
            4 => {
                let mut octets = [0u8; 4];
                octets.copy_from_slice(self.take(4)?);
                Ok(IpAddr::V4(Ipv4Addr::from(octets)))
            }
            6 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(self.take(16)?);
                Ok(IpAddr::V6(Ipv6Addr::from(octets)))
            }
            tag => Err(DecodeError::InvalidTag {
                field: name::SOURCE_IP,
                tag,
                offset,
            }),
        }
    }

    /// Succeeds only when every byte has been read.
    fn finish(self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { offset: self.pos })
        }
    }
}

#[cfg(test)]
// The workspace lint exempts tests: an unwrap here fails the test, which is what we want.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `Accepted publickey for alice from 203.0.113.5 port 52344 ssh2: ED25519 SHA256:...`
    const SSHD_LINE: &[u8] = b"Nov 28 06:49:30 web-01 sshd[12345]: Accepted publickey for alice \
        from 203.0.113.5 port 52344 ssh2: ED25519 SHA256:eC3yBn4bKcGJqF2mBZ1dP3kS0Y3Hc5v+8wQqzq3Xh7M";

    fn sshd_event() -> LoginEvent<'static> {
        LoginEvent {
            timestamp: Some(Timestamp::from_secs(1_795_848_570)),
            hostname: Some(Text(b"web-01")),
            program: Text(b"sshd"),
            pid: Some(12345),
            user: Some(Text(b"alice")),
            source: Some(Source::Ip(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)))),
            port: Some(52344),
            method: Some(Method::Publickey),
            key_type: Some(Text(b"ED25519")),
            key_fingerprint: Some(Text(b"SHA256:eC3yBn4bKcGJqF2mBZ1dP3kS0Y3Hc5v+8wQqzq3Xh7M")),
            ..LoginEvent::new(Action::AuthSuccess, Outcome::Success)
        }
    }

    fn minimal_event() -> LoginEvent<'static> {
        LoginEvent {
            program: Text(b"sshd"),
            ..LoginEvent::new(Action::AuthSuccess, Outcome::Success)
        }
    }

    fn to_vec(ev: &LoginEvent<'_>, extra: &Extra<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_ENCODED_LEN];
        let n = encode(ev, extra, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    fn varint(v: u64) -> Vec<u8> {
        let mut b = [0u8; 10];
        let mut s = SliceSink {
            out: &mut b,
            pos: 0,
        };
        put_varint(&mut s, v).unwrap();
        let n = s.pos;
        b[..n].to_vec()
    }

    /// Version, presence, then the given parts verbatim.
    fn build(presence: u32, parts: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![VERSION];
        v.extend(varint(u64::from(presence)));
        for p in parts {
            v.extend_from_slice(p);
        }
        v
    }

    const PROGRAM: &[u8] = b"\x04sshd";
    const ACTION_OUTCOME: &[u8] = &[0, 0];
    const COUNT_1: &[u8] = &[1];

    #[test]
    fn minimal_event_golden_bytes() {
        let bytes = to_vec(&minimal_event(), &Extra::NONE);
        assert_eq!(bytes, b"\x01\x00\x04sshd\x00\x00\x01");
        assert_eq!(bytes, build(0, &[PROGRAM, ACTION_OUTCOME, COUNT_1]));
        assert_eq!(decode(&bytes).unwrap(), (minimal_event(), Extra::NONE));
    }

    #[test]
    fn typical_sshd_event_size() {
        let ev = sshd_event();
        let plain = to_vec(&ev, &Extra::NONE);
        let extra = Extra {
            message: Some(Text(SSHD_LINE)),
            log_offset: Some(1_234_567),
            source_id: Some(0),
        };
        let full = to_vec(&ev, &extra);
        println!(
            "typical sshd `Accepted publickey` event: {} bytes encoded; with message \
             ({} bytes), log offset and source id: {} bytes",
            plain.len(),
            SSHD_LINE.len(),
            full.len()
        );
        assert_eq!(plain.len(), 100);
        assert_eq!(full.len(), plain.len() + 1 + 2 + SSHD_LINE.len() + 3 + 1);
        assert_eq!(decode(&plain).unwrap(), (ev, Extra::NONE));
        assert_eq!(decode(&full).unwrap(), (ev, extra));
    }

    #[test]
    fn longest_event_reaches_max_encoded_len_exactly() {
        let field = [b'x'; MAX_FIELD_LEN];
        let message = vec![b'm'; MAX_MESSAGE_LEN];
        let t = Some(Text(&field));
        let ev = LoginEvent {
            // zigzag(i64::MIN) is u64::MAX: the longest varint.
            timestamp: Some(Timestamp {
                secs: i64::MIN,
                nanos: NANOS_PER_SEC - 1,
            }),
            hostname: t,
            program: Text(&field),
            pid: Some(u32::MAX),
            user: t,
            target_user: t,
            uid: Some(u32::MAX),
            source: Some(Source::Domain(Text(&field))),
            port: Some(u16::MAX),
            method: Some(Method::None),
            key_type: t,
            key_fingerprint: t,
            tty: t,
            command: t,
            reason: t,
            count: u32::MAX,
            ..LoginEvent::new(Action::Other, Outcome::Unknown)
        };
        let extra = Extra {
            message: Some(Text(&message)),
            log_offset: Some(u64::MAX),
            source_id: Some(u32::MAX),
        };
        assert_eq!(encoded_len(&ev, &extra), Ok(MAX_ENCODED_LEN));
        let mut buf = vec![0u8; MAX_ENCODED_LEN];
        assert_eq!(encode(&ev, &extra, &mut buf), Ok(MAX_ENCODED_LEN));
        assert_eq!(decode(&buf).unwrap(), (ev, extra));
        // The IPv6 alternative is shorter than a longest domain.
        let ev6 = LoginEvent {
            source: Some(Source::Ip(IpAddr::V6(Ipv6Addr::from([0xff; 16])))),
            ..ev
        };
        assert!(encoded_len(&ev6, &extra).unwrap() < MAX_ENCODED_LEN);
        // The bound stated for events without a message.
        assert_eq!(
            encoded_len(&ev, &Extra::NONE),
            Ok(MAX_ENCODED_LEN - MAX_MESSAGE_LEN - 3 - 10 - 5)
        );
    }

    #[test]
    fn encode_rejects_each_field_too_long() {
        let long = [b'x'; MAX_FIELD_LEN + 1];
        let ok = [b'x'; MAX_FIELD_LEN];
        let base = sshd_event();
        type Setter = fn(&mut LoginEvent<'static>, Text<'static>);
        let setters: [(&str, Setter); 10] = [
            ("host.hostname", |e, t| e.hostname = Some(t)),
            ("process.name", |e, t| e.program = t),
            ("user.name", |e, t| e.user = Some(t)),
            ("user.target.name", |e, t| e.target_user = Some(t)),
            ("source.domain", |e, t| e.source = Some(Source::Domain(t))),
            ("authtrail.key.type", |e, t| e.key_type = Some(t)),
            ("authtrail.key.fingerprint", |e, t| {
                e.key_fingerprint = Some(t)
            }),
            ("authtrail.tty", |e, t| e.tty = Some(t)),
            ("authtrail.command", |e, t| e.command = Some(t)),
            ("event.reason", |e, t| e.reason = Some(t)),
        ];
        // Leak once so the setters can take 'static texts.
        let long: &'static [u8] = Box::leak(Box::new(long));
        let ok: &'static [u8] = Box::leak(Box::new(ok));
        for (field, set) in setters {
            let mut ev = base;
            set(&mut ev, Text(ok));
            let bytes = to_vec(&ev, &Extra::NONE);
            assert_eq!(decode(&bytes).unwrap().0, ev, "{field}");
            set(&mut ev, Text(long));
            let mut buf = vec![0u8; MAX_ENCODED_LEN];
            assert_eq!(
                encode(&ev, &Extra::NONE, &mut buf),
                Err(EncodeError::FieldTooLong { field })
            );
            assert_eq!(
                encoded_len(&ev, &Extra::NONE),
                Err(EncodeError::FieldTooLong { field })
            );
        }
    }

    #[test]
    fn encode_rejects_message_too_long() {
        let msg = vec![b'm'; MAX_MESSAGE_LEN + 1];
        let extra = Extra {
            message: Some(Text(&msg)),
            ..Extra::NONE
        };
        assert_eq!(
            encoded_len(&sshd_event(), &extra),
            Err(EncodeError::FieldTooLong { field: "message" })
        );
        let extra = Extra {
            message: Some(Text(&msg[1..])),
            ..Extra::NONE
        };
        assert!(encoded_len(&sshd_event(), &extra).is_ok());
    }

    #[test]
    fn encode_rejects_zero_count_and_bad_nanos() {
        let mut buf = [0u8; 256];
        let ev = LoginEvent {
            count: 0,
            ..sshd_event()
        };
        assert_eq!(
            encode(&ev, &Extra::NONE, &mut buf),
            Err(EncodeError::ZeroCount)
        );
        let ev = LoginEvent {
            timestamp: Some(Timestamp {
                secs: 0,
                nanos: NANOS_PER_SEC,
            }),
            ..sshd_event()
        };
        assert_eq!(
            encode(&ev, &Extra::NONE, &mut buf),
            Err(EncodeError::InvalidNanos)
        );
    }

    #[test]
    fn encode_reports_buffer_too_small_with_needed_length() {
        let ev = sshd_event();
        let needed = encoded_len(&ev, &Extra::NONE).unwrap();
        let mut buf = vec![0u8; needed];
        assert_eq!(encode(&ev, &Extra::NONE, &mut buf), Ok(needed));
        for short in 0..needed {
            assert_eq!(
                encode(&ev, &Extra::NONE, &mut buf[..short]),
                Err(EncodeError::BufferTooSmall { needed }),
                "{short}"
            );
        }
        // A field that is too long wins over a buffer that is too small, wherever it is.
        let long = [b'r'; MAX_FIELD_LEN + 1];
        let ev = LoginEvent {
            reason: Some(Text(&long)),
            ..ev
        };
        assert_eq!(
            encode(&ev, &Extra::NONE, &mut buf[..4]),
            Err(EncodeError::FieldTooLong {
                field: "event.reason"
            })
        );
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn encode_to_vec_matches_encode() {
        let ev = sshd_event();
        assert_eq!(
            encode_to_vec(&ev, &Extra::NONE).unwrap(),
            to_vec(&ev, &Extra::NONE)
        );
        let ev = LoginEvent { count: 0, ..ev };
        assert_eq!(
            encode_to_vec(&ev, &Extra::NONE),
            Err(EncodeError::ZeroCount)
        );
    }

    #[test]
    fn varint_and_zigzag_edges() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let bytes = varint(v);
            assert_eq!(bytes.len(), varint_len(v), "{v}");
            let mut r = Reader::new(&bytes);
            assert_eq!(r.varint(), Ok(v));
            assert_eq!(r.finish(), Ok(()));
        }
        assert_eq!(varint(300), [0xac, 0x02]);
        for v in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn decode_rejects_unknown_version() {
        let mut bytes = to_vec(&minimal_event(), &Extra::NONE);
        for version in [0, 2, 0xff] {
            bytes[0] = version;
            assert_eq!(decode(&bytes), Err(DecodeError::UnknownVersion { version }));
        }
    }

    #[test]
    fn decode_rejects_every_truncation() {
        let extra = Extra {
            message: Some(Text(SSHD_LINE)),
            log_offset: Some(u64::MAX),
            source_id: Some(7),
        };
        let bytes = to_vec(&sshd_event(), &extra);
        for end in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..end]),
                Err(DecodeError::Truncated { offset: end }),
                "{end}"
            );
        }
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut bytes = to_vec(&minimal_event(), &Extra::NONE);
        let len = bytes.len();
        bytes.push(0);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::TrailingBytes { offset: len })
        );
        // Two encodings back to back are not one.
        let mut two = to_vec(&sshd_event(), &Extra::NONE);
        let first = two.len();
        two.extend(to_vec(&sshd_event(), &Extra::NONE));
        assert_eq!(
            decode(&two),
            Err(DecodeError::TrailingBytes { offset: first })
        );
    }

    #[test]
    fn decode_rejects_invalid_presence() {
        for bits in [
            1 << 18,
            1 << 31,
            bit::ALL + 1,
            bit::SOURCE_IP | bit::SOURCE_DOMAIN,
        ] {
            let bytes = build(bits, &[PROGRAM, ACTION_OUTCOME, COUNT_1]);
            assert_eq!(decode(&bytes), Err(DecodeError::InvalidPresence { bits }));
        }
        // A presence above u32 is out of range, not a bitmap.
        let mut bytes = vec![VERSION];
        bytes.extend(varint(1 << 32));
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::IntegerOutOfRange {
                field: "presence",
                offset: 1
            })
        );
    }

    #[test]
    fn decode_rejects_invalid_tags() {
        let bytes = build(0, &[PROGRAM, &[11, 0], COUNT_1]);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::InvalidTag {
                field: "event.action",
                tag: 11,
                offset: 7
            })
        );
        let bytes = build(0, &[PROGRAM, &[0, 3], COUNT_1]);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::InvalidTag {
                field: "event.outcome",
                tag: 3,
                offset: 8
            })
        );
        let bytes = build(bit::METHOD, &[PROGRAM, ACTION_OUTCOME, &[6], COUNT_1]);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::InvalidTag {
                field: "authtrail.method",
                tag: 6,
                offset: 10
            })
        );
        for tag in [0, 5, 16, 0xff] {
            let bytes = build(
                bit::SOURCE_IP,
                &[PROGRAM, ACTION_OUTCOME, &[tag, 1, 2, 3, 4], COUNT_1],
            );
            assert_eq!(
                decode(&bytes),
                Err(DecodeError::InvalidTag {
                    field: "source.ip",
                    tag,
                    offset: 9
                })
            );
        }
        // The valid tags, for contrast.
        let bytes = build(
            bit::SOURCE_IP | bit::METHOD,
            &[PROGRAM, ACTION_OUTCOME, &[4, 10, 0, 0, 1], &[1], COUNT_1],
        );
        let (ev, _) = decode(&bytes).unwrap();
        assert_eq!(ev.source_ip(), Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(ev.method, Some(Method::Publickey));
    }

    #[test]
    fn decode_rejects_overlong_varints() {
        // Count 1 written as two bytes.
        let bytes = build(0, &[PROGRAM, ACTION_OUTCOME, &[0x81, 0x00]]);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::OverlongVarint { offset: 9 })
        );
        // Presence 0 written as two bytes.
        let bytes = [VERSION, 0x80, 0x00, 4, b's', b's', b'h', b'd', 0, 0, 1];
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::OverlongVarint { offset: 1 })
        );
        // Eleven bytes, and ten bytes carrying more than 64 bits.
        let mut eleven = vec![0xffu8; 10];
        eleven.push(0x01);
        let mut ten_wide = vec![0xffu8; 9];
        ten_wide.push(0x02);
        for v in [eleven, ten_wide] {
            let bytes = build(bit::LOG_OFFSET, &[PROGRAM, ACTION_OUTCOME, COUNT_1, &v]);
            assert_eq!(
                decode(&bytes),
                Err(DecodeError::OverlongVarint { offset: 12 })
            );
        }
        // A text length in long form.
        let bytes = build(0, &[&[0x84, 0x00], b"sshd", ACTION_OUTCOME, COUNT_1]);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::OverlongVarint { offset: 2 })
        );
    }

    #[test]
    fn decode_rejects_integers_out_of_range() {
        let bytes = build(
            bit::PORT,
            &[PROGRAM, ACTION_OUTCOME, &varint(65_536), COUNT_1],
        );
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::IntegerOutOfRange {
                field: "source.port",
                offset: 10
            })
        );
        let bytes = build(
            bit::PID,
            &[
                PROGRAM,
                &varint(u64::from(u32::MAX) + 1),
                ACTION_OUTCOME,
                COUNT_1,
            ],
        );
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::IntegerOutOfRange {
                field: "process.pid",
                offset: 7
            })
        );
        let bytes = build(0, &[PROGRAM, ACTION_OUTCOME, &varint(1 << 32)]);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::IntegerOutOfRange {
                field: "authtrail.count",
                offset: 9
            })
        );
    }

    #[test]
    fn decode_rejects_fields_over_their_bound() {
        let long = vec![b'x'; MAX_FIELD_LEN + 1];
        let len = varint(long.len() as u64);
        let bytes = build(0, &[&len, &long, ACTION_OUTCOME, COUNT_1]);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::FieldTooLong {
                field: "process.name",
                offset: 2
            })
        );
        // The length alone is enough to refuse: no need for the bytes to be there.
        let bytes = build(bit::USER, &[PROGRAM, ACTION_OUTCOME, &varint(u64::MAX)]);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::FieldTooLong {
                field: "user.name",
                offset: 9
            })
        );
        let msg = vec![b'm'; MAX_MESSAGE_LEN + 1];
        let len = varint(msg.len() as u64);
        let bytes = build(
            bit::MESSAGE,
            &[PROGRAM, ACTION_OUTCOME, COUNT_1, &len, &msg],
        );
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::FieldTooLong {
                field: "message",
                offset: 12
            })
        );
        // One byte less is fine.
        let len = varint(msg.len() as u64 - 1);
        let bytes = build(
            bit::MESSAGE,
            &[PROGRAM, ACTION_OUTCOME, COUNT_1, &len, &msg[1..]],
        );
        assert_eq!(
            decode(&bytes).unwrap().1.message.map(|m| m.len()),
            Some(MAX_MESSAGE_LEN)
        );
    }

    #[test]
    fn decode_rejects_zero_count_and_bad_nanos() {
        let bytes = build(0, &[PROGRAM, ACTION_OUTCOME, &[0]]);
        assert_eq!(decode(&bytes), Err(DecodeError::ZeroCount { offset: 9 }));
        for nanos in [NANOS_PER_SEC, u32::MAX] {
            let bytes = build(
                bit::TIMESTAMP,
                &[
                    &[0],
                    &varint(u64::from(nanos)),
                    PROGRAM,
                    ACTION_OUTCOME,
                    COUNT_1,
                ],
            );
            assert_eq!(decode(&bytes), Err(DecodeError::InvalidNanos { offset: 3 }));
        }
        let bytes = build(
            bit::TIMESTAMP,
            &[
                &[1],
                &varint(u64::from(NANOS_PER_SEC) - 1),
                PROGRAM,
                ACTION_OUTCOME,
                COUNT_1,
            ],
        );
        assert_eq!(
            decode(&bytes).unwrap().0.timestamp,
            Some(Timestamp {
                secs: -1,
                nanos: NANOS_PER_SEC - 1
            })
        );
    }

    #[test]
    fn errors_display_without_input_bytes() {
        let encode_errors = [
            EncodeError::BufferTooSmall { needed: 91 },
            EncodeError::FieldTooLong { field: "user.name" },
            EncodeError::ZeroCount,
            EncodeError::InvalidNanos,
        ];
        for e in encode_errors {
            let s = e.to_string();
            assert!(!s.is_empty());
            let _: &dyn core::error::Error = &e;
        }
        let decode_errors = [
            DecodeError::UnknownVersion { version: 2 },
            DecodeError::Truncated { offset: 3 },
            DecodeError::TrailingBytes { offset: 3 },
            DecodeError::InvalidPresence { bits: 1 << 20 },
            DecodeError::InvalidTag {
                field: "event.action",
                tag: 42,
                offset: 7,
            },
            DecodeError::OverlongVarint { offset: 1 },
            DecodeError::IntegerOutOfRange {
                field: "source.port",
                offset: 9,
            },
            DecodeError::FieldTooLong {
                field: "user.name",
                offset: 9,
            },
            DecodeError::ZeroCount { offset: 9 },
            DecodeError::InvalidNanos { offset: 3 },
        ];
        for e in decode_errors {
            let s = e.to_string();
            assert!(!s.is_empty());
            let _: &dyn core::error::Error = &e;
        }
        assert_eq!(
            DecodeError::InvalidPresence { bits: 1 << 20 }.to_string(),
            "invalid presence bitmap 0x100000"
        );
    }

    // -----------------------------------------------------------------------------------------
    // Property tests

    /// An owned event for proptest to generate; [`OwnedEvent::view`] borrows a [`LoginEvent`].
    #[derive(Clone, Debug)]
    struct OwnedEvent {
        timestamp: Option<Timestamp>,
        hostname: Option<Vec<u8>>,
        program: Vec<u8>,
        pid: Option<u32>,
        action: Action,
        outcome: Outcome,
        user: Option<Vec<u8>>,
        target_user: Option<Vec<u8>>,
        uid: Option<u32>,
        source: Option<OwnedSource>,
        port: Option<u16>,
        method: Option<Method>,
        key_type: Option<Vec<u8>>,
        key_fingerprint: Option<Vec<u8>>,
        tty: Option<Vec<u8>>,
        command: Option<Vec<u8>>,
        reason: Option<Vec<u8>>,
        count: u32,
        message: Option<Vec<u8>>,
        log_offset: Option<u64>,
        source_id: Option<u32>,
    }

    #[derive(Clone, Debug)]
    enum OwnedSource {
        Ip(IpAddr),
        Domain(Vec<u8>),
    }

    impl OwnedEvent {
        fn view(&self) -> (LoginEvent<'_>, Extra<'_>) {
            fn t(o: &Option<Vec<u8>>) -> Option<Text<'_>> {
                o.as_deref().map(Text)
            }
            let ev = LoginEvent {
                timestamp: self.timestamp,
                hostname: t(&self.hostname),
                program: Text(&self.program),
                pid: self.pid,
                action: self.action,
                outcome: self.outcome,
                user: t(&self.user),
                target_user: t(&self.target_user),
                user_hex: false,
                target_user_hex: false,
                uid: self.uid,
                source: self.source.as_ref().map(|s| match s {
                    OwnedSource::Ip(ip) => Source::Ip(*ip),
                    OwnedSource::Domain(d) => Source::Domain(Text(d)),
                }),
                port: self.port,
                method: self.method,
                key_type: t(&self.key_type),
                key_fingerprint: t(&self.key_fingerprint),
                tty: t(&self.tty),
                command: t(&self.command),
                reason: t(&self.reason),
                count: self.count,
            };
            let extra = Extra {
                message: t(&self.message),
                log_offset: self.log_offset,
                source_id: self.source_id,
            };
            (ev, extra)
        }
    }

    /// Mostly short byte strings (any bytes, UTF-8 or not), sometimes up to the bound.
    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => prop::collection::vec(any::<u8>(), 0..24),
            1 => prop::collection::vec(any::<u8>(), 0..=max),
            1 => prop::collection::vec(any::<u8>(), max..=max),
        ]
    }

    fn opt_bytes(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
        prop::option::of(bytes(max))
    }

    fn timestamp() -> impl Strategy<Value = Timestamp> {
        (any::<i64>(), 0..NANOS_PER_SEC).prop_map(|(secs, nanos)| Timestamp { secs, nanos })
    }

    fn source() -> impl Strategy<Value = OwnedSource> {
        prop_oneof![
            any::<Ipv4Addr>().prop_map(|ip| OwnedSource::Ip(IpAddr::V4(ip))),
            any::<Ipv6Addr>().prop_map(|ip| OwnedSource::Ip(IpAddr::V6(ip))),
            bytes(MAX_FIELD_LEN).prop_map(OwnedSource::Domain),
        ]
    }

    prop_compose! {
        fn owned_event()(
            head in (
                prop::option::of(timestamp()),
                opt_bytes(MAX_FIELD_LEN),
                bytes(MAX_FIELD_LEN),
                prop::option::of(any::<u32>()),
                prop::sample::select(Action::ALL.to_vec()),
                prop::sample::select(vec![Outcome::Success, Outcome::Failure, Outcome::Unknown]),
                opt_bytes(MAX_FIELD_LEN),
                opt_bytes(MAX_FIELD_LEN),
                prop::option::of(any::<u32>()),
                prop::option::of(source()),
                prop::option::of(any::<u16>()),
                prop::option::of(prop::sample::select(Method::ALL.to_vec())),
            ),
            tail in (
                opt_bytes(MAX_FIELD_LEN),
                opt_bytes(MAX_FIELD_LEN),
                opt_bytes(MAX_FIELD_LEN),
                opt_bytes(MAX_FIELD_LEN),
                opt_bytes(MAX_FIELD_LEN),
                prop_oneof![3 => Just(1u32), 1 => 1..=u32::MAX],
                prop::option::of(prop_oneof![
                    4 => prop::collection::vec(any::<u8>(), 0..200),
                    1 => prop::collection::vec(any::<u8>(), 0..=MAX_MESSAGE_LEN),
                ]),
                prop::option::of(any::<u64>()),
                prop::option::of(any::<u32>()),
            ),
        ) -> OwnedEvent {
            let (timestamp, hostname, program, pid, action, outcome, user, target_user, uid,
                 source, port, method) = head;
            let (key_type, key_fingerprint, tty, command, reason, count, message, log_offset,
                 source_id) = tail;
            OwnedEvent {
                timestamp, hostname, program, pid, action, outcome, user, target_user, uid,
                source, port, method, key_type, key_fingerprint, tty, command, reason, count,
                message, log_offset, source_id,
            }
        }
    }

    /// A change to an encoding: overwrite, flip, insert, remove, or truncate at a position.
    #[derive(Clone, Debug)]
    enum Mutation {
        Set(prop::sample::Index, u8),
        Flip(prop::sample::Index, u8),
        Insert(prop::sample::Index, u8),
        Remove(prop::sample::Index),
        Truncate(prop::sample::Index),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let i = any::<prop::sample::Index>;
        prop_oneof![
            (i(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (i(), 0..8u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
            (i(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
            i().prop_map(Mutation::Remove),
            i().prop_map(Mutation::Truncate),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
        if bytes.is_empty() {
            if let Mutation::Insert(_, b) = m {
                bytes.push(*b);
            }
            return;
        }
        match m {
            Mutation::Set(i, b) => {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            Mutation::Flip(i, bit) => {
                let i = i.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
            Mutation::Remove(i) => {
                bytes.remove(i.index(bytes.len()));
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        }
    }

    /// Whatever `decode` accepts, `encode` writes back byte for byte (the format is canonical).
    fn assert_canonical(bytes: &[u8]) {
        if let Ok((ev, extra)) = decode(bytes) {
            assert_eq!(to_vec(&ev, &extra), bytes);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn prop_round_trip(owned in owned_event()) {
            let (ev, extra) = owned.view();
            let len = encoded_len(&ev, &extra).unwrap();
            prop_assert!(len <= MAX_ENCODED_LEN);
            let mut buf = vec![0u8; len];
            prop_assert_eq!(encode(&ev, &extra, &mut buf), Ok(len));
            prop_assert_eq!(decode(&buf), Ok((ev, extra)));
        }

        #[test]
        fn prop_decode_never_panics_on_arbitrary_bytes(
            bytes in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                // A valid version and a plausible presence, so decoding gets further.
                (0..=bit::ALL, prop::collection::vec(any::<u8>(), 0..256)).prop_map(|(p, rest)| {
                    let mut v = build(p, &[]);
                    v.extend(rest);
                    v
                }),
            ]
        ) {
            assert_canonical(&bytes);
        }

        #[test]
        fn prop_decode_never_panics_on_mutated_encodings(
            owned in owned_event(),
            mutations in prop::collection::vec(mutation(), 1..6),
        ) {
            let (ev, extra) = owned.view();
            let mut bytes = to_vec(&ev, &extra);
            for m in &mutations {
                apply(&mut bytes, m);
            }
            assert_canonical(&bytes);
        }
    }
}
