//! The compact batch body (`Content-Type: application/vnd.authtrail.batch`): a batch of ECS
//! JSON documents that carries each event's original line once, the other values as references
//! into that line, small integers or per-batch tables, and the documents' key structure once
//! per batch. [`decode`] gives back, byte for byte, the NDJSON that [`encode`] was given, so
//! whatever reads NDJSON (the collector's checks, `query --json`) reads the compact body's
//! rendering unchanged.
//!
//! # Format, version 1
//!
//! Integers are unsigned LEB128 varints in their shortest form; `zigzag` maps a signed
//! difference to an unsigned one. A *block* is a varint length followed by that many bytes.
//!
//! ```text
//! body     = MAGIC (3 bytes) VERSION (1 byte) events:varint ndjson-length:varint
//!            strings:varint  string-block*     the per-batch table of values the lines lack
//!            shapes:varint   shape-block*      documents with their values taken out
//!            control-block                     per event: shape id, then each hole's value
//!            messages-block                    every event's `message`, one after the other
//! ```
//!
//! `ndjson-length` is the length of the NDJSON the body renders to, so that a reader can
//! grant (or refuse) that memory before rendering ([`rendered_len`]).
//!
//! A **shape** is a document with its values cut out: keys, punctuation, white space, `true`,
//! `false` and `null` stay; each string value becomes the byte `STR` (0x01), each number `NUM`
//! (0x02) followed by a *slot* byte (0 to [`NUM_SLOTS`]` - 1`, from the key's FNV-1a hash),
//! and the top-level `"message"` string value `MSG` (0x03). These bytes never occur in JSON
//! text outside a string, and a string's raw bytes are never in a shape but in a hole.
//!
//! Values, in the control block, for each hole of the event's shape in order (`h` is the first
//! varint; string contents are kept as JSON-escaped, exactly as in the document):
//!
//! | hole | `h & 7` / `h & 3` | meaning | what follows |
//! |---|---|---|---|
//! | `STR` | 0 | the empty string (`h >> 3` = 0) | |
//! | `STR` | 1 | string table entry `h >> 3` | |
//! | `STR` | 2 | `h >> 3` bytes of the message at `offset` | offset |
//! | `STR` | 3 | as 2, then the string table entry `tail` | offset, tail |
//! | `STR` | 4 | a time (`"YYYY-MM-DDTHH:MM:SS[.fff[fff[fff]]]Z"`), nanoseconds since the epoch as a difference from the batch's previous time (0 before the first) (`h >> 3` = 0) | zigzag difference |
//! | `NUM` | 0 | an integer, `zigzag(value - previous value of the slot)` = `h >> 2` (slots start at 0) | |
//! | `NUM` | 1 | the integer written at `h >> 2` bytes of the message at `offset` | offset |
//! | `NUM` | 2 | any other number: string table entry `h >> 2` | |
//! | `MSG` | | the next `h` bytes of the messages block | |
//!
//! The encoder chooses, in this order: a string found whole in the message, the longest prefix
//! of at least [`MIN_PREFIX`] bytes found there with a table tail, a time, the table; an integer
//! whose difference fits one byte, the message's digits, the difference; anything else, the
//! table. So a document's values that its own line holds (user, address, port, pid, program,
//! host, and the time when the line writes it as RFC 3339 UTC) cost a reference; identity
//! strings (host id, agent id, path, version) cost a table index; `event.sequence` and
//! `log.offset` cost their difference from the previous event.
//!
//! **Canonical:** one batch has one encoding: the body must be exactly what [`encode`] writes
//! for the documents it renders. [`decode`] checks this while rendering, choice by choice,
//! instead of encoding the rendering again: each shape is what the encoder cuts out of its
//! documents and is new where it is first used; each value's spelling is the one the
//! encoder's order of rules picks (no table entry, token or earlier bytes of the line where
//! the encoder would take one; the smallest position; the coarsest time unit); table entries
//! are distinct, numbered in first use, and all used; varints are shortest. So a body another
//! encoder made is an error, never a second spelling of the same batch. The tests hold this
//! check against the definition (render, encode again, compare) on altered bodies.
//!
//! **Bounded:** every count and length is checked against a named limit before it is used
//! ([`MAX_EVENTS`], [`MAX_STRINGS`], [`MAX_STRING_BYTES`], [`MAX_SHAPES`], [`MAX_SHAPE_BYTES`],
//! [`MAX_HOLES`], [`MAX_DEPTH`]), nothing is allocated from a count before the bytes it counts
//! have been read, and the rendered NDJSON stops at the caller's `max_output`.
//!
//! Errors are small `Copy` values naming what was wrong and where, never a copy of the input.

use alloc::vec::Vec;

use core::fmt;
use hashbrown::HashMap;

use crate::time::Timestamp;

/// First bytes of a compact body.
pub const MAGIC: [u8; 3] = *b"ATB";
/// The format version, the byte after [`MAGIC`]. [`decode`] refuses any other.
pub const VERSION: u8 = 1;
/// Most events in one body.
pub const MAX_EVENTS: usize = 1 << 20;
/// Most entries of the string table.
pub const MAX_STRINGS: usize = 1 << 20;
/// Longest string table entry, and longest string value of a document, in bytes (JSON-escaped).
pub const MAX_STRING_BYTES: usize = 1 << 20;
/// Most shapes in one body.
pub const MAX_SHAPES: usize = 1 << 16;
/// Longest shape, in bytes.
pub const MAX_SHAPE_BYTES: usize = 1 << 16;
/// Most holes (values) in one shape.
pub const MAX_HOLES: usize = 1024;
/// Deepest nesting of objects and arrays in a document.
pub const MAX_DEPTH: usize = 64;
/// Number slots, each predicting a number from the previous one of the same key.
pub const NUM_SLOTS: u8 = 16;
/// Shortest prefix of a string taken from the message with the rest from the table.
pub const MIN_PREFIX: usize = 8;

const STR: u8 = 0x01;
const NUM: u8 = 0x02;
const MSG: u8 = 0x03;

const STR_EMPTY: u64 = 0;
const STR_TABLE: u64 = 1;
const STR_REF: u64 = 2;
const STR_REF_TAIL: u64 = 3;
const STR_TIME: u64 = 4;
const STR_TOKEN: u64 = 5;
const NUM_DELTA: u64 = 0;
const NUM_REF: u64 = 1;
const NUM_TABLE: u64 = 2;
const NUM_NEXT: u64 = 3;
const NUM_TOKEN: u64 = 4;
/// Time units of [`STR_TIME`], coarsest first: the difference is a whole number of one.
const TIME_UNITS: [i64; 4] = [1_000_000_000, 1_000_000, 1_000, 1];

/// Why [`encode`] could not write a batch (the caller sends it as NDJSON instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// Line `line` (0-based) is not a JSON document the format can hold (invalid JSON, a raw
    /// control byte, nesting deeper than [`MAX_DEPTH`]).
    NotJson {
        /// The line's index in the batch.
        line: usize,
    },
    /// A bound was passed: `what` names it.
    TooLarge {
        /// The limit's name.
        what: &'static str,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NotJson { line } => {
                write!(
                    f,
                    "line {line} is not a JSON document the compact body can hold"
                )
            }
            EncodeError::TooLarge { what } => write!(f, "the batch passes {what}"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// Why [`decode`] refused a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body does not start with [`MAGIC`].
    NotCompact,
    /// Another format version.
    Version(u8),
    /// The body ends inside a value; `at` is the offset where more was needed.
    Truncated {
        /// Byte offset in the body (or in its control block).
        at: usize,
    },
    /// A varint longer than ten bytes or not in its shortest form.
    BadVarint {
        /// Byte offset.
        at: usize,
    },
    /// A count or length passes its bound: `what` names it.
    TooLarge {
        /// The limit's name.
        what: &'static str,
    },
    /// A value refers to something that does not exist (a table entry, a shape, bytes beyond
    /// the message) or has an unknown tag: `what` names it.
    Invalid {
        /// What was wrong.
        what: &'static str,
    },
    /// Bytes are left after the last block, or in the control or messages block.
    TrailingBytes,
    /// The rendering would be longer than the caller's `max_output`.
    OutputTooLarge,
    /// The body is not the one encoding of its documents.
    NotCanonical,
    /// A document is longer than the buffer [`decode_each`] was given to render it in.
    DocumentTooLong,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotCompact => f.write_str("not a compact batch body (bad magic)"),
            DecodeError::Version(v) => write!(f, "compact batch version {v} is not known"),
            DecodeError::Truncated { at } => write!(f, "body ends early (at byte {at})"),
            DecodeError::BadVarint { at } => write!(f, "bad varint at byte {at}"),
            DecodeError::TooLarge { what } => write!(f, "body passes {what}"),
            DecodeError::Invalid { what } => write!(f, "invalid {what}"),
            DecodeError::TrailingBytes => f.write_str("bytes after the end of the body"),
            DecodeError::OutputTooLarge => f.write_str("body renders to more than allowed"),
            DecodeError::NotCanonical => f.write_str("body is not in canonical form"),
            DecodeError::DocumentTooLong => {
                f.write_str("a document is longer than the buffer given to render it")
            }
        }
    }
}

impl core::error::Error for DecodeError {}

// ---- varints ----

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

const fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

const fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A cursor over a byte slice that rejects non-shortest varints.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(DecodeError::Truncated { at: self.pos })?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(DecodeError::BadVarint { at: start });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(DecodeError::BadVarint { at: start });
                }
                return Ok(v);
            }
        }
        Err(DecodeError::BadVarint { at: start })
    }

    fn bounded(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let v = self.varint()?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v <= max)
            .ok_or(DecodeError::TooLarge { what })
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated { at: self.pos })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn block(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.bounded(max, what)?;
        self.bytes(n)
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

// ---- the encoder ----

/// One token of a document, as offsets into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    /// Bytes kept in the shape as they are.
    Lit(usize, usize),
    /// A string value's contents (between the quotes).
    Str(usize, usize),
    /// A number value, with its slot.
    Num(usize, usize, u8),
    /// The top-level `message` value's contents.
    Msg(usize, usize),
}

/// Bytes that end a run of plain bytes inside a JSON string: the closing quote, a backslash
/// and the raw control bytes (an error).
const STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b < 0x20 || b == b'"' as usize || b == b'\\' as usize;
        b += 1;
    }
    table
};

/// The first index at or after `i` of a byte of `s` that [`STRING_STOP`] stops at, or
/// `s.len()`. Eight bytes at a time while none of them is one (a word holds one when it
/// holds a byte below 0x20, a quote or a backslash), then byte by byte.
fn plain_end(s: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Nonzero when a byte of `w` is below `n` (n <= 0x80): exact as to whether there is one.
    const fn below(w: u64, n: u8) -> u64 {
        w.wrapping_sub(ONES * n as u64) & !w & HIGHS
    }
    while let Some(chunk) = s.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        if below(w, 0x20)
            | below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            != 0
        {
            break;
        }
        i += 8;
    }
    while s.get(i).is_some_and(|&c| !STRING_STOP[usize::from(c)]) {
        i += 1;
    }
    i
}

/// Splits one document into tokens. `None` when it is not JSON the format holds.
fn tokenize(doc: &[u8], toks: &mut Vec<Tok>) -> Option<()> {
    toks.clear();
    // Containers open: true for an object.
    let mut stack: heapless::Vec<bool, MAX_DEPTH> = heapless::Vec::new();
    let mut expect_key = false;
    let mut last_key: (usize, usize) = (0, 0);
    let mut have_message = false;
    let mut lit_start = 0usize;
    let mut i = 0usize;
    let flush = |toks: &mut Vec<Tok>, from: usize, to: usize| {
        if to > from {
            toks.push(Tok::Lit(from, to));
        }
    };
    while i < doc.len() {
        let b = doc[i];
        match b {
            b' ' | b'\t' | b'\r' => i += 1,
            b'{' | b'[' => {
                stack.push(b == b'{').ok()?;
                expect_key = b == b'{';
                i += 1;
            }
            b'}' | b']' => {
                let obj = stack.pop()?;
                if obj != (b == b'}') {
                    return None;
                }
                expect_key = false;
                i += 1;
            }
            b',' => {
                expect_key = stack.last().copied() == Some(true);
                i += 1;
            }
            b':' => i += 1,
            b'"' => {
                let start = i + 1;
                let mut j = start;
                loop {
                    j = plain_end(doc, j);
                    match *doc.get(j)? {
                        b'"' => break,
                        b'\\' => j += 2,
                        _ => return None,
                    }
                }
                if j >= doc.len() {
                    return None;
                }
                if expect_key {
                    last_key = (start, j);
                    expect_key = false;
                } else {
                    if j - start > MAX_STRING_BYTES {
                        return None;
                    }
                    flush(toks, lit_start, start);
                    let is_message = !have_message
                        && stack.len() == 1
                        && stack.first() == Some(&true)
                        && &doc[last_key.0..last_key.1] == b"message";
                    if is_message {
                        have_message = true;
                        toks.push(Tok::Msg(start, j));
                    } else {
                        toks.push(Tok::Str(start, j));
                    }
                    lit_start = j;
                }
                i = j + 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                let mut j = i;
                while j < doc.len()
                    && matches!(doc[j], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    j += 1;
                }
                flush(toks, lit_start, start);
                toks.push(Tok::Num(start, j, slot_of(&doc[last_key.0..last_key.1])));
                lit_start = j;
                i = j;
            }
            b't' | b'f' | b'n' => {
                let word: &[u8] = match b {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if !doc[i..].starts_with(word) {
                    return None;
                }
                i += word.len();
            }
            _ => return None,
        }
    }
    if !stack.is_empty() || doc.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
        return None;
    }
    flush(toks, lit_start, doc.len());
    Some(())
}

/// The slot of a value under `key`: FNV-1a of the key, modulo [`NUM_SLOTS`].
fn slot_of(key: &[u8]) -> u8 {
    (crate::hash::fnv1a_32(crate::hash::FNV1A_32_START, key) % u32::from(NUM_SLOTS)) as u8
}

/// Reads `"YYYY-MM-DDTHH:MM:SS[.f]Z"` (the contents, no quotes) as nanoseconds since the
/// epoch, only when the ECS writer renders that time as exactly these bytes.
fn parse_time(s: &[u8]) -> Option<i64> {
    if s.len() < 20 || s.len() > 30 || s.last() != Some(&b'Z') {
        return None;
    }
    let num = |a: usize, b: usize| -> Option<u32> {
        let mut v = 0u32;
        for &c in s.get(a..b)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| s[i] != c) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let nanos = if s.len() == 20 {
        0
    } else {
        let digits = s.len() - 21;
        if s[19] != b'.' || digits == 0 || digits > 9 {
            return None;
        }
        num(20, s.len() - 1)? * 10u32.pow((9 - digits) as u32)
    };
    let days = crate::time::days_from_civil(y as i32, mo as u8, d as u8);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec);
    let ns = secs
        .checked_mul(1_000_000_000)?
        .checked_add(i64::from(nanos))?;
    let mut buf = TimeBuf::default();
    render_time(&mut buf, ns).ok()?;
    (buf.as_bytes() == s).then_some(ns)
}

/// Room for one rendered time.
#[derive(Default)]
struct TimeBuf {
    buf: [u8; 32],
    len: usize,
}

impl TimeBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for TimeBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Writes the contents (no quotes) of the ECS writer's rendering of `ns`.
fn render_time(buf: &mut TimeBuf, ns: i64) -> fmt::Result {
    let ts = Timestamp {
        secs: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as u32,
    };
    let mut quoted = TimeBuf::default();
    crate::ecs::write_timestamp(&mut quoted, ts)?;
    let q = quoted.as_bytes();
    if q.len() < 2 {
        return Err(fmt::Error);
    }
    buf.len = 0;
    fmt::Write::write_str(
        buf,
        core::str::from_utf8(&q[1..q.len() - 1]).map_err(|_| fmt::Error)?,
    )
}

/// Reads a JSON integer as [`NUM_DELTA`] and [`NUM_REF`] hold it: digits, no leading zero.
fn parse_int(s: &[u8]) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// The state both sides keep while walking a batch's events.
struct Predict {
    nums: [u64; NUM_SLOTS as usize],
    time: i64,
    /// The previous event's message length (0 without one).
    message_len: u64,
}

impl Predict {
    const fn new() -> Self {
        Predict {
            nums: [0; NUM_SLOTS as usize],
            time: 0,
            message_len: 0,
        }
    }
}

/// Builds the body of one batch.
struct Encoder {
    strings: Vec<u8>,
    /// Each table entry's id and where its bytes start in `strings`.
    string_ids: HashMap<Vec<u8>, (u64, usize)>,
    /// Per string value of an event, by its place among the event's string values: the
    /// table entry the same place held last (id, start in `strings`, length). Most such
    /// values repeat from event to event (the event's kind, the host and agent ids, the
    /// path): a comparison with that entry spares hashing the value to look it up.
    recent: Vec<(u64, usize, usize)>,
    /// The shape the previous event used (start in `shapes`, length, id): the next event's
    /// is usually the same.
    last_shape: Option<(usize, usize, u64)>,
    shapes: Vec<u8>,
    /// Each shape's id and where its bytes start in `shapes`.
    shape_ids: HashMap<Vec<u8>, (u64, usize)>,
    control: Vec<u8>,
    scratch: Vec<u8>,
    spans: Vec<(u32, u32)>,
    messages: Vec<u8>,
    predict: Predict,
    toks: Vec<Tok>,
    shape: Vec<u8>,
    events: usize,
    ndjson_len: usize,
}

impl Encoder {
    fn new() -> Self {
        Encoder {
            strings: Vec::new(),
            string_ids: HashMap::new(),
            recent: Vec::new(),
            last_shape: None,
            shapes: Vec::new(),
            shape_ids: HashMap::new(),
            control: Vec::new(),
            scratch: Vec::new(),
            spans: Vec::new(),
            messages: Vec::new(),
            predict: Predict::new(),
            toks: Vec::new(),
            shape: Vec::new(),
            events: 0,
            ndjson_len: 0,
        }
    }

    fn string_id(&mut self, s: &[u8]) -> u64 {
        if let Some(&(id, _)) = self.string_ids.get(s) {
            return id;
        }
        let id = self.string_ids.len() as u64;
        put_varint(&mut self.strings, s.len() as u64);
        let start = self.strings.len();
        self.strings.extend_from_slice(s);
        self.string_ids.insert(s.to_vec(), (id, start));
        id
    }

    /// The table entry `s` already is, if any; `place` is the value's place among the
    /// event's string values ([`Encoder::recent`]).
    fn table_entry(&mut self, s: &[u8], place: usize) -> Option<u64> {
        if let Some(&(id, start, len)) = self.recent.get(place)
            && self.strings.get(start..start + len) == Some(s)
        {
            return Some(id);
        }
        let &(id, start) = self.string_ids.get(s)?;
        if self.recent.len() <= place {
            self.recent.resize(place + 1, (0, 0, 0));
        }
        self.recent[place] = (id, start, s.len());
        Some(id)
    }

    fn event(&mut self, doc: &[u8], line: usize) -> Result<(), EncodeError> {
        if self.events >= MAX_EVENTS {
            return Err(EncodeError::TooLarge { what: "MAX_EVENTS" });
        }
        let mut toks = core::mem::take(&mut self.toks);
        let res = tokenize(doc, &mut toks)
            .ok_or(EncodeError::NotJson { line })
            .and_then(|()| self.event_with(doc, &toks));
        self.toks = toks;
        res
    }

    /// Adds the document `doc` cut into `toks` (by [`tokenize`], or as the ECS writer wrote
    /// it: [`Holes`]).
    fn event_with(&mut self, doc: &[u8], toks: &[Tok]) -> Result<(), EncodeError> {
        if self.events >= MAX_EVENTS {
            return Err(EncodeError::TooLarge { what: "MAX_EVENTS" });
        }
        // Every bound is checked before anything changes, so a refused document leaves the
        // batch as it was.
        let holes = toks.iter().filter(|t| !matches!(t, Tok::Lit(..))).count();
        let shape_len: usize = toks
            .iter()
            .map(|t| match *t {
                Tok::Lit(a, b) => b - a,
                Tok::Num(..) => 2,
                _ => 1,
            })
            .sum();
        if holes > MAX_HOLES {
            return Err(EncodeError::TooLarge { what: "MAX_HOLES" });
        }
        if shape_len > MAX_SHAPE_BYTES {
            return Err(EncodeError::TooLarge {
                what: "MAX_SHAPE_BYTES",
            });
        }
        if self.string_ids.len() + holes > MAX_STRINGS {
            return Err(EncodeError::TooLarge {
                what: "MAX_STRINGS",
            });
        }
        if self.shape_ids.len() >= MAX_SHAPES {
            return Err(EncodeError::TooLarge { what: "MAX_SHAPES" });
        }
        let message: &[u8] = toks
            .iter()
            .find_map(|t| match *t {
                Tok::Msg(a, b) => Some(&doc[a..b]),
                _ => None,
            })
            .unwrap_or(b"");
        let finder = |s: &[u8]| -> Option<usize> {
            if s.is_empty() || message.is_empty() {
                None
            } else {
                find(message, s)
            }
        };
        let mut spans = core::mem::take(&mut self.spans);
        token_spans(message, &mut spans);
        let mut last_token = 0usize;
        let token_of = |s: &[u8]| -> Option<usize> {
            if s.is_empty() || !s.iter().all(|&b| TOKEN_BYTES[usize::from(b)]) {
                return None;
            }
            spans
                .iter()
                .position(|&(a, b)| &message[a as usize..b as usize] == s)
        };
        self.shape.clear();
        // The shape id goes first but is known once the shape is built: the values are
        // written to a scratch buffer and appended after it.
        let mut scratch = core::mem::take(&mut self.scratch);
        scratch.clear();
        // Where the event's previous reference to bytes of the line ended.
        let last_end = core::cell::Cell::new(0usize);
        let put_position = |scratch: &mut Vec<u8>, off: usize, len: usize| {
            let mut end = last_end.get();
            put_varint(scratch, position(message.len(), off, len, &mut end));
            last_end.set(end);
        };
        // `s` as a token of the line (tag `token`) or bytes of it (tag `bytes`, then its
        // position); false when the line does not hold it.
        let mut from_line = |scratch: &mut Vec<u8>, s: &[u8], token: u64, bytes: u64| {
            if let Some(i) = token_of(s) {
                let code = token_position(spans.len(), i, &mut last_token);
                put_varint(scratch, (code << 3) | token);
            } else if let Some(off) = finder(s) {
                put_varint(scratch, ((s.len() as u64) << 3) | bytes);
                put_position(scratch, off, s.len());
            } else {
                return false;
            }
            true
        };
        // The place of the next string value among the event's string values.
        let mut place = 0;
        for &t in toks.iter() {
            match t {
                Tok::Lit(a, b) => self.shape.extend_from_slice(&doc[a..b]),
                Tok::Msg(a, b) => {
                    self.shape.push(MSG);
                    // JSON text holds no raw newline: the block reads like the log itself.
                    self.messages.extend_from_slice(&doc[a..b]);
                    self.messages.push(b'\n');
                }
                Tok::Str(a, b) => {
                    self.shape.push(STR);
                    let s = &doc[a..b];
                    place += 1;
                    if s.is_empty() {
                        put_varint(&mut scratch, STR_EMPTY);
                    } else if let Some(id) = self.table_entry(s, place - 1) {
                        put_varint(&mut scratch, (id << 3) | STR_TABLE);
                    } else if from_line(&mut scratch, s, STR_TOKEN, STR_REF) {
                    } else if let Some((len, off)) = longest_prefix(s, &finder) {
                        let tail = self.string_id(&s[len..]);
                        put_varint(&mut scratch, ((len as u64) << 3) | STR_REF_TAIL);
                        put_position(&mut scratch, off, len);
                        put_varint(&mut scratch, tail);
                    } else if let Some(ns) = parse_time(s) {
                        let delta = ns.wrapping_sub(self.predict.time);
                        let unit = TIME_UNITS
                            .iter()
                            .position(|&u| delta % u == 0)
                            .unwrap_or(TIME_UNITS.len() - 1);
                        put_varint(&mut scratch, ((unit as u64) << 3) | STR_TIME);
                        put_varint(&mut scratch, zigzag(delta / TIME_UNITS[unit]));
                        self.predict.time = ns;
                    } else {
                        let id = self.string_id(s);
                        put_varint(&mut scratch, (id << 3) | STR_TABLE);
                    }
                }
                Tok::Num(a, b, slot) => {
                    self.shape.push(NUM);
                    self.shape.push(slot);
                    let s = &doc[a..b];
                    let prev = &mut self.predict.nums[usize::from(slot)];
                    match parse_int(s) {
                        Some(v) => {
                            let before = *prev;
                            let delta = zigzag(v.wrapping_sub(before) as i64);
                            *prev = v;
                            if delta <= 2 {
                                put_varint(&mut scratch, (delta << 3) | NUM_DELTA);
                            } else if v == before.wrapping_add(self.predict.message_len + 1) {
                                put_varint(&mut scratch, NUM_NEXT);
                            } else if from_line(&mut scratch, s, NUM_TOKEN, NUM_REF) {
                            } else if delta < (1 << 61) {
                                put_varint(&mut scratch, (delta << 3) | NUM_DELTA);
                            } else {
                                let id = self.string_id(s);
                                put_varint(&mut scratch, (id << 3) | NUM_TABLE);
                            }
                        }
                        None => {
                            let id = self.string_id(s);
                            put_varint(&mut scratch, (id << 3) | NUM_TABLE);
                        }
                    }
                }
            }
        }
        let same = self
            .last_shape
            .filter(|&(start, len, _)| self.shapes.get(start..start + len) == Some(&self.shape));
        let shape_id = match same {
            Some((_, _, id)) => id,
            None => {
                let (id, start) = match self.shape_ids.get(&self.shape) {
                    Some(&known) => known,
                    None => {
                        let id = self.shape_ids.len() as u64;
                        put_varint(&mut self.shapes, self.shape.len() as u64);
                        let start = self.shapes.len();
                        self.shapes.extend_from_slice(&self.shape);
                        self.shape_ids.insert(self.shape.clone(), (id, start));
                        (id, start)
                    }
                };
                self.last_shape = Some((start, self.shape.len(), id));
                id
            }
        };
        self.predict.message_len = message.len() as u64;
        put_varint(&mut self.control, shape_id);
        self.control.extend_from_slice(&scratch);
        self.scratch = scratch;
        self.spans = spans;
        self.events += 1;
        self.ndjson_len += doc.len() + 1;
        Ok(())
    }

    /// Empties the batch, keeping its buffers' capacity for the next one.
    fn clear(&mut self) {
        self.strings.clear();
        self.string_ids.clear();
        self.shapes.clear();
        self.shape_ids.clear();
        self.recent.clear();
        self.last_shape = None;
        self.control.clear();
        self.messages.clear();
        self.predict = Predict::new();
        self.events = 0;
        self.ndjson_len = 0;
    }

    fn finish(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        put_varint(out, self.events as u64);
        put_varint(out, self.ndjson_len as u64);
        put_varint(out, self.string_ids.len() as u64);
        out.extend_from_slice(&self.strings);
        put_varint(out, self.shape_ids.len() as u64);
        out.extend_from_slice(&self.shapes);
        put_varint(out, self.control.len() as u64);
        out.extend_from_slice(&self.control);
        put_varint(out, self.messages.len() as u64);
        out.extend_from_slice(&self.messages);
    }
}

/// Where `len` bytes at `off` sit in a message of `message_len` bytes, the smallest of: the
/// bytes before them (`4 * n`), the bytes after them (`4 * n + 1`), or their distance from
/// the end of the event's previous reference, `last_end` (`4 * zigzag(d) + 2`). Sets
/// `last_end` to their end.
fn position(message_len: usize, off: usize, len: usize, last_end: &mut usize) -> u64 {
    let after = (message_len - off - len) as u64;
    let rel = zigzag(off as i64 - *last_end as i64);
    *last_end = off + len;
    let from_start = (off as u64) << 2;
    let from_end = (after << 2) | 1;
    let from_last = (rel << 2) | 2;
    from_start.min(from_end).min(from_last)
}

/// Bytes of a message's *tokens*: ASCII letters and digits, `.`, `:`, `_`, `-` and every
/// non-ASCII byte. A user name, an address, a port or a pid is usually one whole token.
const fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'_' | b'-') || b >= 0x80
}

/// [`is_token_byte`] of every byte value, looked up on the hot path.
const TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_token_byte(b as u8);
        b += 1;
    }
    table
};

/// The (start, end) of every token of `message`, in order.
fn token_spans(message: &[u8], out: &mut Vec<(u32, u32)>) {
    out.clear();
    let is_token = |i: usize| TOKEN_BYTES[usize::from(message[i])];
    let mut i = 0;
    while i < message.len() {
        while i < message.len() && !is_token(i) {
            i += 1;
        }
        let start = i;
        while i < message.len() && is_token(i) {
            i += 1;
        }
        if i > start {
            out.push((start as u32, i as u32));
        }
    }
}

/// Token `i` of `n`, the smallest of: its index (`4 * i`), its index from the end
/// (`4 * (n - 1 - i) + 1`), or its distance from the token after the event's previous token
/// reference, `next` (`4 * zigzag(i - next) + 2`). Sets `next` to `i + 1`.
fn token_position(n: usize, i: usize, next: &mut usize) -> u64 {
    let rel = zigzag(i as i64 - *next as i64);
    *next = i + 1;
    ((i as u64) << 2)
        .min((((n - 1 - i) as u64) << 2) | 1)
        .min((rel << 2) | 2)
}

/// The inverse of [`token_position`]: the token's index, if there is such a token.
fn token_index(n: usize, code: u64, next: &mut usize) -> Option<usize> {
    let v = code >> 2;
    let i = match code & 3 {
        0 => usize::try_from(v).ok()?,
        1 => n.checked_sub(1)?.checked_sub(usize::try_from(v).ok()?)?,
        2 => usize::try_from((*next as i64).checked_add(unzigzag(v))?).ok()?,
        _ => return None,
    };
    if i >= n {
        return None;
    }
    *next = i + 1;
    Some(i)
}

/// The inverse of [`position`]: the offset, if the bytes fit in the message.
fn offset_of(message_len: usize, pos: u64, len: usize, last_end: &mut usize) -> Option<usize> {
    let v = pos >> 2;
    let off = match pos & 3 {
        0 => usize::try_from(v).ok()?,
        1 => message_len
            .checked_sub(len)?
            .checked_sub(usize::try_from(v).ok()?)?,
        2 => usize::try_from((*last_end as i64).checked_add(unzigzag(v))?).ok()?,
        _ => return None,
    };
    *last_end = off.checked_add(len)?;
    Some(off)
}

/// Where `needle` first occurs in `hay` (as `memchr::memmem::find`, without building a
/// searcher for every call: the haystack is one short message, searched for many needles).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let last = hay.len().checked_sub(needle.len())?;
    memchr::memchr_iter(first, &hay[..=last]).find(|&i| hay[i + 1..i + needle.len()] == *rest)
}

/// The longest prefix of `s` (at least [`MIN_PREFIX`] bytes, shorter than `s`) that `find`
/// finds, and where: (length, offset).
fn longest_prefix(s: &[u8], find: &impl Fn(&[u8]) -> Option<usize>) -> Option<(usize, usize)> {
    if s.len() <= MIN_PREFIX {
        return None;
    }
    let mut best = (MIN_PREFIX, find(&s[..MIN_PREFIX])?);
    // Found prefixes are closed under shortening: search the longest between best and s.
    let (mut lo, mut hi) = (MIN_PREFIX + 1, s.len() - 1);
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        match find(&s[..mid]) {
            Some(off) => {
                best = (mid, off);
                lo = mid + 1;
            }
            None => hi = mid - 1,
        }
    }
    Some(best)
}

/// A compact body being built one document at a time (the agent's open batch).
pub struct BatchEncoder {
    inner: Encoder,
}

impl fmt::Debug for BatchEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchEncoder")
            .field("events", &self.inner.events)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for BatchEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchEncoder {
    /// An empty batch.
    pub fn new() -> Self {
        BatchEncoder {
            inner: Encoder::new(),
        }
    }

    /// Adds one document (one line of JSON, no newline). On error the batch is unchanged.
    pub fn push(&mut self, doc: &[u8]) -> Result<(), EncodeError> {
        let line = self.inner.events;
        self.inner.event(doc, line)
    }

    /// Adds one document that [`Holes::write_event`] wrote, with the holes it recorded: the
    /// same as [`BatchEncoder::push`] of `doc`, without reading `doc` again to find its values.
    /// A `doc` the holes were not recorded for is read as `push` reads it.
    pub fn push_with(&mut self, doc: &[u8], holes: &Holes) -> Result<(), EncodeError> {
        let line = self.inner.events;
        if holes.doc_len != Some(doc.len()) {
            return self.inner.event(doc, line);
        }
        debug_assert!(
            {
                let mut toks = Vec::new();
                tokenize(doc, &mut toks).is_some() && toks == holes.toks
            },
            "the ECS writer's holes differ from the tokenizer's"
        );
        // The tokenizer's one bound on a value (the writer has no other way to pass one).
        let too_long = holes.toks.iter().any(|t| match *t {
            Tok::Str(a, b) | Tok::Msg(a, b) => b - a > MAX_STRING_BYTES,
            _ => false,
        });
        if too_long {
            return Err(EncodeError::NotJson { line });
        }
        self.inner.event_with(doc, &holes.toks)
    }

    /// Documents taken.
    pub fn events(&self) -> usize {
        self.inner.events
    }

    /// Length of the body [`BatchEncoder::finish`] would write, give or take the few bytes of
    /// its block lengths.
    pub fn len(&self) -> usize {
        let e = &self.inner;
        8 + e.strings.len() + e.shapes.len() + e.control.len() + e.messages.len()
    }

    /// True when no document was taken.
    pub fn is_empty(&self) -> bool {
        self.inner.events == 0
    }

    /// Length of the NDJSON the body renders to.
    pub fn ndjson_len(&self) -> usize {
        self.inner.ndjson_len
    }

    /// Appends the body to `out` and empties the batch. The batch keeps its buffers, so the
    /// next one does not grow them again from nothing.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.inner.finish(out);
        self.inner.clear();
    }
}

/// The values of one document as the ECS writer wrote it ([`Holes::write_event`]): the cut
/// the tokenizer would make of its text, recorded while it is written, so that the encoder
/// ([`BatchEncoder::push_with`]) does not scan the text again. Kept from event to event (its
/// buffer is reused).
#[derive(Debug, Default)]
pub struct Holes {
    toks: Vec<Tok>,
    /// The length of the document the holes are for (`None` before one is written).
    doc_len: Option<usize>,
}

impl Holes {
    /// No holes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `ev` to `out` exactly as [`crate::ecs::write_event`] does, and records its
    /// holes (forgetting the previous document's).
    pub fn write_event(
        &mut self,
        out: &mut alloc::string::String,
        ev: &crate::LoginEvent<'_>,
        env: &crate::ecs::Envelope<'_>,
    ) -> fmt::Result {
        self.toks.clear();
        self.doc_len = None;
        let mut w = Marking {
            base: out.len(),
            lit_start: 0,
            value_start: 0,
            out,
            holes: self,
        };
        crate::ecs::write_event_to(&mut w, ev, env)?;
        let end = w.out.len() - w.base;
        if end > w.lit_start {
            w.holes.toks.push(Tok::Lit(w.lit_start, end));
        }
        self.doc_len = Some(end);
        Ok(())
    }
}

/// The ECS writer's output while [`Holes`] records: each value becomes the token the
/// tokenizer makes of it, the bytes between values a literal.
struct Marking<'a> {
    out: &'a mut alloc::string::String,
    holes: &'a mut Holes,
    /// Where the document starts in `out`.
    base: usize,
    /// Where the literal since the previous value starts (document offsets).
    lit_start: usize,
    value_start: usize,
}

impl fmt::Write for Marking<'_> {
    #[inline(always)]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.push_str(s);
        Ok(())
    }
    #[inline(always)]
    fn write_char(&mut self, c: char) -> fmt::Result {
        self.out.push(c);
        Ok(())
    }
}

impl crate::ecs::Out for Marking<'_> {
    #[inline(always)]
    fn value_start(&mut self) {
        self.value_start = self.out.len() - self.base;
    }

    #[inline]
    fn value_end(&mut self, v: crate::ecs::Value) {
        use crate::ecs::Value;
        let (start, end) = (self.value_start, self.out.len() - self.base);
        // As the tokenizer cuts: a string's contents (its opening quote ends the literal
        // before it, its closing quote starts the next one), a number's digits.
        let (tok, lit_end, next) = match v {
            Value::Str => (Tok::Str(start + 1, end - 1), start + 1, end - 1),
            Value::Msg => (Tok::Msg(start + 1, end - 1), start + 1, end - 1),
            Value::Num(key) => (Tok::Num(start, end, slot_of(key.as_bytes())), start, end),
        };
        if lit_end > self.lit_start {
            self.holes.toks.push(Tok::Lit(self.lit_start, lit_end));
        }
        self.holes.toks.push(tok);
        self.lit_start = next;
    }
}

/// Encodes an NDJSON batch (one document a line, each line ending in `\n`; empty lines are
/// not allowed) as a compact body, appended to `out`.
pub fn encode(ndjson: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut enc = Encoder::new();
    let body = ndjson.strip_suffix(b"\n").unwrap_or(ndjson);
    if !ndjson.is_empty() {
        for (line, doc) in body.split(|&b| b == b'\n').enumerate() {
            enc.event(doc, line)?;
        }
    }
    if !ndjson.is_empty() && ndjson.last() != Some(&b'\n') {
        return Err(EncodeError::NotJson {
            line: enc.events.saturating_sub(1),
        });
    }
    enc.finish(out);
    Ok(())
}

// ---- the decoder ----

/// One piece of a parsed shape (a document with its values cut out), in document order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes kept in the shape as they are (keys, punctuation, white space, `true`, `false`,
    /// `null`, and the quotes around string values).
    Lit(&'a [u8]),
    /// A string value's contents (between quotes the literals hold), JSON-escaped.
    Str,
    /// A number value, with its slot.
    Num(u8),
    /// The top-level `message` string value's contents, JSON-escaped.
    Msg,
}

/// One decoded document, as [`decode_with`] shows it while rendering: where its values are
/// in its rendering.
#[derive(Clone, Copy, Debug)]
pub struct Document<'a> {
    /// The shape's number in the batch (shapes are numbered in first use, so the first
    /// document of a shape has the number one past every earlier one's).
    pub shape_id: usize,
    /// The shape: literals and holes in document order.
    pub shape: &'a [Piece<'a>],
    /// The document as rendered, without its `\n`.
    pub line: &'a [u8],
    /// For each hole of the shape (each piece but the literals), in order: where its value
    /// is in [`Document::line`], start and end (a string's contents without its quotes).
    pub holes: &'a [(u32, u32)],
}

fn parse_shape(shape: &[u8]) -> Result<Vec<Piece<'_>>, DecodeError> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut holes = 0;
    while i < shape.len() {
        let b = shape[i];
        if matches!(b, STR | NUM | MSG) {
            if i > start {
                pieces.push(Piece::Lit(&shape[start..i]));
            }
            holes += 1;
            if holes > MAX_HOLES {
                return Err(DecodeError::TooLarge { what: "MAX_HOLES" });
            }
            match b {
                STR => pieces.push(Piece::Str),
                MSG => pieces.push(Piece::Msg),
                _ => {
                    i += 1;
                    let slot = *shape.get(i).ok_or(DecodeError::Invalid { what: "shape" })?;
                    if slot >= NUM_SLOTS {
                        return Err(DecodeError::Invalid {
                            what: "number slot",
                        });
                    }
                    pieces.push(Piece::Num(slot));
                }
            }
            start = i + 1;
        }
        i += 1;
    }
    if start < shape.len() {
        pieces.push(Piece::Lit(&shape[start..]));
    }
    Ok(pieces)
}

/// Decodes a compact body into NDJSON appended to `out` (each document and its `\n`), and
/// returns the number of events. Refuses, with nothing promised about `out`'s new bytes, a
/// body that is not canonical or whose NDJSON would pass `max_output` bytes.
pub fn decode(body: &[u8], max_output: usize, out: &mut Vec<u8>) -> Result<usize, DecodeError> {
    render(body, max_output, out, Check::Canonical)
}

/// Renders a body that [`decode`] has already accepted (one the caller checked and stored
/// itself) into the same NDJSON, without checking again, choice by choice, that it is
/// canonical: what it renders is then what [`decode`] renders, at a fraction of its cost.
/// Every bound is checked as in [`decode`], and no input makes it panic; a body that is not
/// canonical renders to what its values say instead of being refused.
pub fn render_accepted(
    body: &[u8],
    max_output: usize,
    out: &mut Vec<u8>,
) -> Result<usize, DecodeError> {
    render(body, max_output, out, Check::RenderOnly)
}

/// [`decode`], showing `visit` each document once it is rendered and checked, with where its
/// values are ([`Document`]): so a reader can take the values it needs without parsing the
/// rendering again. A document shown is not yet known to be part of a canonical body: only
/// [`decode`]'s `Ok` says that the whole body is.
pub fn decode_with(
    body: &[u8],
    max_output: usize,
    out: &mut Vec<u8>,
    visit: &mut dyn FnMut(Document<'_>),
) -> Result<usize, DecodeError> {
    render_visit(
        body,
        max_output,
        out,
        Check::Canonical,
        Some(visit),
        Keep::All,
    )
}

/// [`decode_with`], holding one document at a time: each is rendered into `line` over the
/// previous one (`line` is emptied first and its capacity never grows) and shown to `visit`,
/// so a reader that keeps what it needs of each needs no buffer for the whole rendering. A
/// document longer than `line`'s capacity stops decoding with [`DecodeError::DocumentTooLong`]
/// (the caller may decode again with a larger buffer, or with [`decode_with`]). `line` holds
/// nothing of use afterwards.
pub fn decode_each(
    body: &[u8],
    max_output: usize,
    line: &mut Vec<u8>,
    visit: &mut dyn FnMut(Document<'_>),
) -> Result<usize, DecodeError> {
    line.clear();
    render_visit(
        body,
        max_output,
        line,
        Check::Canonical,
        Some(visit),
        Keep::One,
    )
}

/// The length of the NDJSON a compact body says it renders to ([`decode`] checks it), read
/// from its first bytes: what a reader grants before rendering.
pub fn rendered_len(body: &[u8]) -> Result<usize, DecodeError> {
    if body.len() < 4 || body[..3] != MAGIC {
        return Err(DecodeError::NotCompact);
    }
    if body[3] != VERSION {
        return Err(DecodeError::Version(body[3]));
    }
    let mut r = Reader { buf: body, pos: 4 };
    r.bounded(MAX_EVENTS, "MAX_EVENTS")?;
    r.bounded(usize::MAX, "ndjson length")
}

/// The number of events a compact body says it holds ([`decode`] checks it), read from its
/// first bytes.
pub fn event_count(body: &[u8]) -> Result<usize, DecodeError> {
    rendered_len(body)?;
    let mut r = Reader { buf: body, pos: 4 };
    r.bounded(MAX_EVENTS, "MAX_EVENTS")
}

/// What [`decode`] itself holds at once while it renders `body`, besides its output, at the
/// most: the string table and its index by value (the canonical check), the shapes read into
/// pieces and the set of them, the canonical check's tokens of a shape, and one message's
/// tokens. Read from the body's tables, so that a reader can grant it before decoding.
pub fn decode_bytes(body: &[u8]) -> Result<usize, DecodeError> {
    use core::mem::size_of;
    rendered_len(body)?;
    let mut r = Reader { buf: body, pos: 4 };
    r.bounded(MAX_EVENTS, "MAX_EVENTS")?;
    r.bounded(usize::MAX, "ndjson length")?;
    let n_strings = r.bounded(MAX_STRINGS, "MAX_STRINGS")?;
    for _ in 0..n_strings {
        r.block(MAX_STRING_BYTES, "MAX_STRING_BYTES")?;
    }
    let n_shapes = r.bounded(MAX_SHAPES, "MAX_SHAPES")?;
    let (mut shape_bytes, mut largest_shape) = (0usize, 0usize);
    for _ in 0..n_shapes {
        let shape = r.block(MAX_SHAPE_BYTES, "MAX_SHAPE_BYTES")?;
        shape_bytes += shape.len();
        largest_shape = largest_shape.max(shape.len());
    }
    r.block(usize::MAX, "control block")?;
    let messages = r.block(usize::MAX, "messages block")?;
    let (mut longest, mut start) = (0, 0);
    for end in memchr::memchr_iter(b'\n', messages) {
        longest = longest.max(end - start);
        start = end + 1;
    }
    // A hash table of `n` entries made with room for them: hashbrown's buckets, each an
    // entry and a control byte, and a group of control bytes more.
    let table = |n: usize, entry: usize| {
        let buckets = if n < 4 {
            4
        } else {
            (n.saturating_mul(8) / 7).next_power_of_two()
        };
        buckets.saturating_mul(entry + 1).saturating_add(16)
    };
    // A list grown by doubling holds up to twice its elements, and for a moment the old and
    // the new block: three times.
    let grown = |n: usize, element: usize| n.saturating_mul(element).saturating_mul(3);
    let parts = [
        grown(n_strings, size_of::<&[u8]>()),
        table(n_strings, size_of::<(&[u8], u64)>()),
        // The set of shapes grows as they are read: old and new table at once.
        grown(n_shapes, size_of::<(Vec<Piece<'_>>, bool, usize)>()),
        table(n_shapes, size_of::<&[u8]>()).saturating_mul(2),
        // A piece takes at least one byte of its shape.
        grown(shape_bytes + n_shapes, size_of::<Piece<'_>>()),
        grown(largest_shape + 1, 1 + size_of::<Tok>()),
        grown(largest_shape + 1, size_of::<(u32, u32)>()),
        // A token takes at least one byte and is followed by another that is not one.
        grown(longest / 2 + 1, size_of::<(u32, u32)>()),
    ];
    Ok(parts.iter().fold(0, |a, &b| a.saturating_add(b)))
}

/// Whether [`render`] checks, value by value, that each choice the body makes is the one the
/// encoder makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Canonical,
    /// Only what rendering needs ([`render_accepted`]; the tests' oracle: render, encode
    /// again, compare).
    RenderOnly,
}

/// True when `s` is the contents of a JSON string as the tokenizer reads them: it ends at the
/// closing quote that follows `s` (no raw quote, no raw control byte, no escape eating the
/// quote) and is not longer than [`MAX_STRING_BYTES`].
fn string_contents_ok(s: &[u8]) -> bool {
    if s.len() > MAX_STRING_BYTES {
        return false;
    }
    let mut i = 0;
    loop {
        i = plain_end(s, i);
        match s.get(i) {
            None => return true,
            Some(b'\\') if i + 1 < s.len() => i += 2,
            Some(_) => return false,
        }
    }
}

/// True when `s` is a number as the tokenizer reads one.
fn number_ok(s: &[u8]) -> bool {
    matches!(s.first(), Some(b'-' | b'0'..=b'9'))
        && s.iter()
            .all(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
}

/// True when `shape` is what the encoder cuts out of a document with its holes' values in
/// it: tokenizing the shape with placeholder values (`""` for a string or the message, `0`
/// for a number) gives back the same holes, slots and literals. The tokenizer's state after
/// a value does not depend on the value's contents, so this holds for every document of the
/// shape whose values pass [`string_contents_ok`] and [`number_ok`].
fn shape_is_canonical(shape: &[Piece<'_>], doc: &mut Vec<u8>, toks: &mut Vec<Tok>) -> bool {
    doc.clear();
    for piece in shape {
        match *piece {
            Piece::Lit(s) => doc.extend_from_slice(s),
            Piece::Str | Piece::Msg => {}
            Piece::Num(_) => doc.push(b'0'),
        }
    }
    if tokenize(doc, toks).is_none() {
        return false;
    }
    // Literals are merged in both: compare piece by piece.
    let mut pieces = shape.iter();
    for t in toks.iter() {
        let same = match (*t, pieces.next()) {
            (Tok::Lit(a, b), Some(Piece::Lit(s))) => &doc[a..b] == *s,
            (Tok::Str(a, b), Some(Piece::Str)) | (Tok::Msg(a, b), Some(Piece::Msg)) => a == b,
            (Tok::Num(a, b, slot), Some(Piece::Num(s))) => b == a + 1 && slot == *s,
            _ => false,
        };
        if !same {
            return false;
        }
    }
    pieces.next().is_none()
}

/// What the canonical check keeps while rendering: the string table by value, and how much
/// of the tables the events so far brought in (the encoder numbers entries in first-use order).
struct Canon<'a> {
    index: HashMap<&'a [u8], u64>,
    strings_seen: u64,
    shapes_seen: u64,
}

impl Canon<'_> {
    /// True when the encoder's table held `s` before this value.
    fn in_table(&self, s: &[u8]) -> bool {
        self.index.get(s).is_some_and(|&id| id < self.strings_seen)
    }

    /// Table entry `id` used where the encoder calls `string_id`: one it has, or the next.
    fn use_string(&mut self, id: u64) -> bool {
        if id == self.strings_seen {
            self.strings_seen += 1;
        }
        id < self.strings_seen
    }
}

/// The first token of `message` (with `spans`) equal to `s`.
fn first_token(message: &[u8], spans: &[(u32, u32)], s: &[u8]) -> Option<usize> {
    if s.is_empty() || !s.iter().all(|&b| TOKEN_BYTES[usize::from(b)]) {
        return None;
    }
    spans
        .iter()
        .position(|&(a, b)| &message[a as usize..b as usize] == s)
}

/// Where the encoder finds `s` in `message`.
fn find_in(message: &[u8], s: &[u8]) -> Option<usize> {
    if s.is_empty() || message.is_empty() {
        None
    } else {
        find(message, s)
    }
}

fn render(
    body: &[u8],
    max_output: usize,
    out: &mut Vec<u8>,
    check: Check,
) -> Result<usize, DecodeError> {
    render_visit(body, max_output, out, check, None, Keep::All)
}

/// What the renderer keeps of its output.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Every document, one after the other.
    All,
    /// The document being rendered: each is rendered over the previous one, within the
    /// buffer's capacity.
    One,
}

/// [`render`], showing `visit` each document ([`decode_with`]).
fn render_visit(
    body: &[u8],
    max_output: usize,
    out: &mut Vec<u8>,
    check: Check,
    mut visit: Option<&mut dyn FnMut(Document<'_>)>,
    keep: Keep,
) -> Result<usize, DecodeError> {
    let canonical = check == Check::Canonical;
    let not_canonical = DecodeError::NotCanonical;
    let start = out.len();
    if body.len() < 4 || body[..3] != MAGIC {
        return Err(DecodeError::NotCompact);
    }
    if body[3] != VERSION {
        return Err(DecodeError::Version(body[3]));
    }
    let mut r = Reader { buf: body, pos: 4 };
    let events = r.bounded(MAX_EVENTS, "MAX_EVENTS")?;
    let ndjson_len = r.bounded(usize::MAX, "ndjson length")?;
    if ndjson_len > max_output {
        return Err(DecodeError::OutputTooLarge);
    }
    let max_output = ndjson_len;
    let n_strings = r.bounded(MAX_STRINGS, "MAX_STRINGS")?;
    let mut strings: Vec<&[u8]> = Vec::new();
    for _ in 0..n_strings {
        strings.push(r.block(MAX_STRING_BYTES, "MAX_STRING_BYTES")?);
    }
    let n_shapes = r.bounded(MAX_SHAPES, "MAX_SHAPES")?;
    let mut shapes: Vec<(Vec<Piece<'_>>, bool, usize)> = Vec::new();
    let mut shape_set: hashbrown::HashSet<&[u8]> = hashbrown::HashSet::new();
    let (mut doc, mut toks) = (Vec::new(), Vec::new());
    for _ in 0..n_shapes {
        let bytes = r.block(MAX_SHAPE_BYTES, "MAX_SHAPE_BYTES")?;
        let pieces = parse_shape(bytes)?;
        if canonical
            && (!shape_set.insert(bytes) || !shape_is_canonical(&pieces, &mut doc, &mut toks))
        {
            return Err(not_canonical);
        }
        let has_message = pieces.iter().any(|p| matches!(p, Piece::Msg));
        let holes = pieces
            .iter()
            .filter(|p| !matches!(p, Piece::Lit(_)))
            .count();
        shapes.push((pieces, has_message, holes));
    }
    drop((shape_set, doc, toks));
    let control = r.block(usize::MAX, "control block")?;
    let messages = r.block(usize::MAX, "messages block")?;
    if !r.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    let mut canon = Canon {
        index: HashMap::with_capacity(if canonical { strings.len() } else { 0 }),
        strings_seen: 0,
        shapes_seen: 0,
    };
    if canonical {
        for (id, s) in strings.iter().enumerate() {
            // One entry per value: a second would be a second spelling of its uses.
            if canon.index.insert(*s, id as u64).is_some() {
                return Err(not_canonical);
            }
        }
    }
    // What may still be rendered: `out`'s length may reach `limit` (less what earlier documents
    // rendered, when each is rendered over the previous one).
    let end = out.len().saturating_add(max_output);
    let limit = core::cell::Cell::new(end);
    let push = |out: &mut Vec<u8>, s: &[u8]| -> Result<(), DecodeError> {
        if out.len() + s.len() > limit.get() {
            return Err(DecodeError::OutputTooLarge);
        }
        if keep == Keep::One && out.len() + s.len() > out.capacity() {
            return Err(DecodeError::DocumentTooLong);
        }
        out.extend_from_slice(s);
        Ok(())
    };
    let table = |i: u64| -> Result<&[u8], DecodeError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| strings.get(i).copied())
            .ok_or(DecodeError::Invalid {
                what: "string table index",
            })
    };
    let mut m = Reader {
        buf: messages,
        pos: 0,
    };
    let mut c = Reader {
        buf: control,
        pos: 0,
    };
    let mut predict = Predict::new();
    let mut spans = Vec::new();
    // Where each hole's value is in the current document, for `visit`.
    let mut holes_at: Vec<(u32, u32)> = Vec::new();
    let watch = visit.is_some();
    for _ in 0..events {
        let doc_start = out.len();
        holes_at.clear();
        let shape_id = c.varint()?;
        let (shape, has_message, holes) = usize::try_from(shape_id)
            .ok()
            .and_then(|i| shapes.get(i))
            .ok_or(DecodeError::Invalid { what: "shape id" })?;
        if canonical {
            // The encoder's bounds, checked before each event, and shapes in first-use order.
            if canon.shapes_seen >= MAX_SHAPES as u64
                || canon.strings_seen as usize + holes > MAX_STRINGS
                || shape_id > canon.shapes_seen
            {
                return Err(not_canonical);
            }
            if shape_id == canon.shapes_seen {
                canon.shapes_seen += 1;
            }
        }
        // References are to the message, which the values of its document precede: it is
        // the next line of the messages block when the shape has a message hole.
        let message: &[u8] = if *has_message {
            let rest = &messages[m.pos..];
            let n = memchr::memchr(b'\n', rest).ok_or(DecodeError::Truncated { at: m.pos })?;
            if n > MAX_STRING_BYTES {
                return Err(DecodeError::TooLarge {
                    what: "MAX_STRING_BYTES",
                });
            }
            &rest[..n]
        } else {
            b""
        };
        if canonical && !string_contents_ok(message) {
            return Err(not_canonical);
        }
        token_spans(message, &mut spans);
        let mut next_token = 0usize;
        // Token `code` and whether `code` is the encoder's spelling of its index.
        let mut token = |code: u64| -> Result<(&[u8], usize, bool), DecodeError> {
            let bad = DecodeError::Invalid { what: "token" };
            let mut before = next_token;
            let i = token_index(spans.len(), code, &mut next_token).ok_or(bad)?;
            let (a, b) = spans[i];
            let least = token_position(spans.len(), i, &mut before) == code;
            Ok((&message[a as usize..b as usize], i, least))
        };
        let mut last_end = 0usize;
        // Bytes `pos` of the message, where, and whether `pos` is the encoder's spelling.
        let mut slice = |len: u64, pos: u64| -> Result<(&[u8], usize, bool), DecodeError> {
            let bad = DecodeError::Invalid { what: "reference" };
            let len = usize::try_from(len).map_err(|_| bad)?;
            let mut before = last_end;
            let off = offset_of(message.len(), pos, len, &mut last_end).ok_or(bad)?;
            let s = message
                .get(off..off.saturating_add(len))
                .filter(|s| s.len() == len && len > 0)
                .ok_or(bad)?;
            let least = position(message.len(), off, len, &mut before) == pos;
            Ok((s, off, least))
        };
        for piece in shape {
            let at = out.len();
            match *piece {
                Piece::Lit(s) => push(out, s)?,
                Piece::Msg => {
                    push(out, message)?;
                }
                Piece::Str => {
                    let h = c.varint()?;
                    // Whether the encoder's earlier rules (in its order: the table, a token,
                    // bytes of the line, a prefix, a time) would have taken the value instead.
                    let ok = match h & 7 {
                        STR_EMPTY if h == 0 => true,
                        STR_TABLE => {
                            let s = table(h >> 3)?;
                            push(out, s)?;
                            !canonical
                                || (h >> 3 < canon.strings_seen
                                    && !s.is_empty()
                                    && string_contents_ok(s))
                                || (canon.use_string(h >> 3)
                                    && !s.is_empty()
                                    && string_contents_ok(s)
                                    && first_token(message, &spans, s).is_none()
                                    && find_in(message, s).is_none()
                                    && longest_prefix(s, &|p| find_in(message, p)).is_none()
                                    && parse_time(s).is_none())
                        }
                        STR_TOKEN => {
                            let (s, i, least) = token(h >> 3)?;
                            push(out, s)?;
                            !canonical
                                || (least
                                    && !canon.in_table(s)
                                    && first_token(message, &spans, s) == Some(i))
                        }
                        STR_REF => {
                            let (s, off, least) = slice(h >> 3, c.varint()?)?;
                            push(out, s)?;
                            !canonical
                                || (least
                                    && string_contents_ok(s)
                                    && !canon.in_table(s)
                                    && first_token(message, &spans, s).is_none()
                                    && find_in(message, s) == Some(off))
                        }
                        STR_REF_TAIL => {
                            let (p, off, least) = slice(h >> 3, c.varint()?)?;
                            push(out, p)?;
                            let id = c.varint()?;
                            push(out, table(id)?)?;
                            let s = &out[at..];
                            // The longest prefix the line holds: found prefixes are closed
                            // under shortening, so it is `p` when `p` and one byte more is
                            // not found (nor then `s` itself, as bytes or as a token).
                            !canonical
                                || (least
                                    && p.len() >= MIN_PREFIX
                                    && p.len() < s.len()
                                    && find_in(message, p) == Some(off)
                                    && find_in(message, &s[..=p.len()]).is_none()
                                    && string_contents_ok(s)
                                    && !canon.in_table(s)
                                    && canon.use_string(id))
                        }
                        STR_TIME if (h >> 3) < TIME_UNITS.len() as u64 => {
                            let unit = (h >> 3) as usize;
                            let d = unzigzag(c.varint()?).checked_mul(TIME_UNITS[unit]);
                            let d = d.ok_or(DecodeError::Invalid { what: "time" })?;
                            predict.time = predict.time.wrapping_add(d);
                            let mut buf = TimeBuf::default();
                            render_time(&mut buf, predict.time)
                                .map_err(|_| DecodeError::Invalid { what: "time" })?;
                            push(out, buf.as_bytes())?;
                            let s = buf.as_bytes();
                            !canonical
                                || (TIME_UNITS[..unit].iter().all(|&u| d % u != 0)
                                    && parse_time(s) == Some(predict.time)
                                    && !canon.in_table(s)
                                    && first_token(message, &spans, s).is_none()
                                    && find_in(message, s).is_none()
                                    && longest_prefix(s, &|p| find_in(message, p)).is_none())
                        }
                        _ => return Err(DecodeError::Invalid { what: "string tag" }),
                    };
                    if !ok {
                        return Err(not_canonical);
                    }
                }
                Piece::Num(slot) => {
                    let h = c.varint()?;
                    let before = predict.nums[usize::from(slot)];
                    let next = before.wrapping_add(predict.message_len + 1);
                    // The encoder's rules before the line: a difference of one byte, the
                    // next line. `None` for a value that is not an integer.
                    let small = |v: u64| zigzag(v.wrapping_sub(before) as i64) <= 2;
                    let after_line_rules = |v: u64, s: &[u8]| {
                        !small(v) && v != next && first_token(message, &spans, s).is_none()
                    };
                    let ok = match h & 7 {
                        NUM_DELTA => {
                            let v = before.wrapping_add(unzigzag(h >> 3) as u64);
                            predict.nums[usize::from(slot)] = v;
                            let mut buf = itoa::Buffer::new();
                            let s = buf.format(v).as_bytes();
                            push(out, s)?;
                            !canonical
                                || small(v)
                                || (after_line_rules(v, s) && find_in(message, s).is_none())
                        }
                        NUM_REF | NUM_TOKEN => {
                            let (digits, at, least) = if h & 7 == NUM_REF {
                                slice(h >> 3, c.varint()?)?
                            } else {
                                token(h >> 3)?
                            };
                            let v = parse_int(digits).ok_or(DecodeError::Invalid {
                                what: "number reference",
                            })?;
                            predict.nums[usize::from(slot)] = v;
                            push(out, digits)?;
                            !canonical
                                || (least
                                    && !small(v)
                                    && v != next
                                    && if h & 7 == NUM_REF {
                                        first_token(message, &spans, digits).is_none()
                                            && find_in(message, digits) == Some(at)
                                    } else {
                                        first_token(message, &spans, digits) == Some(at)
                                    })
                        }
                        NUM_NEXT if h == NUM_NEXT => {
                            predict.nums[usize::from(slot)] = next;
                            push(out, itoa::Buffer::new().format(next).as_bytes())?;
                            !canonical || !small(next)
                        }
                        NUM_TABLE => {
                            let text = table(h >> 3)?;
                            let v = parse_int(text);
                            if let Some(v) = v {
                                predict.nums[usize::from(slot)] = v;
                            }
                            push(out, text)?;
                            !canonical
                                || (canon.use_string(h >> 3)
                                    && number_ok(text)
                                    && v.is_none_or(|v| {
                                        after_line_rules(v, text)
                                            && find_in(message, text).is_none()
                                            && zigzag(v.wrapping_sub(before) as i64) >= 1 << 61
                                    }))
                        }
                        _ => return Err(DecodeError::Invalid { what: "number tag" }),
                    };
                    if !ok {
                        return Err(not_canonical);
                    }
                }
            }
            if watch && !matches!(piece, Piece::Lit(_)) {
                // A document is at most `ndjson_len` bytes, checked to fit `u32` below.
                holes_at.push(((at - doc_start) as u32, (out.len() - doc_start) as u32));
            }
        }
        if *has_message {
            m.bytes(message.len() + 1)?;
        }
        predict.message_len = message.len() as u64;
        if let Some(visit) = visit.as_mut() {
            if out.len() - doc_start > u32::MAX as usize {
                return Err(DecodeError::TooLarge {
                    what: "document length",
                });
            }
            visit(Document {
                shape_id: shape_id as usize,
                shape,
                line: &out[doc_start..],
                holes: &holes_at,
            });
        }
        push(out, b"\n")?;
        if keep == Keep::One {
            limit.set(limit.get() - (out.len() - doc_start));
            out.truncate(doc_start);
        }
    }
    if !c.is_empty() || !m.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    // What was rendered: `out`'s new bytes, and those given up (`limit` fell by as many).
    let rendered = out.len() - start + (end - limit.get());
    if rendered != ndjson_len {
        return Err(DecodeError::Invalid {
            what: "ndjson length",
        });
    }
    if canonical && (canon.strings_seen != n_strings as u64 || canon.shapes_seen != n_shapes as u64)
    {
        return Err(not_canonical);
    }
    Ok(events)
}

#[cfg(test)]
mod tests;
