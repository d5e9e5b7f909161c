//! From a request body to a [`Batch`]: bounded decompression, then NDJSON decoding.
//!
//! No I/O and no clock: the server hands in bytes and gets a batch or a [`DecodeError`] that
//! maps to one HTTP status. A [`DecodeError`] is for a body that cannot be read at all; an
//! event that breaks the wire contract ([`agent_core::wire`]) is rejected on its own
//! ([`Batch::rejected`], by line number) and the rest of the batch is stored. Neither carries a
//! copy of the body (an event can hold a password typed as a user name); they name the line
//! and what is wrong with it.

use std::io::{self, Read};
use std::ops::Range;

use std::borrow::Cow;

use uuid::Uuid;

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// Largest zstd window accepted, as a power of two: 2^24 = 16 MiB. A frame asking for more is
/// refused (400) instead of making the decoder allocate it. Agents compress batches of about
/// 1 MiB, whose frames need far less.
pub(crate) const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// The `Content-Encoding` and `Content-Type` of a batch: the wire contract's.
pub use agent_core::wire::{Body, Encoding};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The decompressed body passed the bound (413).
    #[error("the decompressed body is larger than {limit} bytes")]
    TooLarge {
        /// `max-decompressed-bytes`.
        limit: u64,
    },
    /// The compressed stream is corrupt or truncated (400).
    #[error("cannot decompress the body ({encoding}): {reason}")]
    Corrupt {
        /// `zstd` or `gzip`.
        encoding: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The collector's memory budget for bodies in flight could not grant what this body
    /// needs now (503, retry later).
    #[error("the collector's memory budget for bodies in flight is full")]
    Busy {
        /// The bytes asked for.
        wanted: u64,
    },
    /// A compact body that cannot be read (400): not canonical, truncated, or a value that
    /// refers to nothing.
    #[error("cannot read the compact batch body: {0}")]
    Compact(agent_core::batch::DecodeError),
    /// A line so long that decoding it would pass the collector's memory budget (413).
    #[error("a line of {bytes} bytes is longer than this collector's memory budget decodes")]
    LineTooLong {
        /// The line's length.
        bytes: u64,
    },
}

/// Memory a decoder asks for before a buffer grows, and gives back when it frees one (the
/// server's byte budget, [`crate::budget::Grant`]). A refusal stops decoding with
/// [`DecodeError::Busy`].
pub trait Reserve {
    /// Asks for `bytes` more; false refuses.
    fn grow(&mut self, bytes: u64) -> bool;
    /// Gives back `bytes`.
    fn release(&mut self, bytes: u64);
    /// Whether `bytes` more could be granted once every other holder has given theirs back.
    fn could_ever_grow(&self, bytes: u64) -> bool;
}

/// No bound beyond `max`: for tests and tools.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Unbounded;

impl Reserve for Unbounded {
    fn grow(&mut self, _: u64) -> bool {
        true
    }
    fn release(&mut self, _: u64) {}
    fn could_ever_grow(&self, _: u64) -> bool {
        true
    }
}

fn reserve(memory: &mut dyn Reserve, bytes: u64) -> Result<(), DecodeError> {
    if memory.grow(bytes) {
        Ok(())
    } else {
        Err(DecodeError::Busy { wanted: bytes })
    }
}

/// Decompresses `body` within `max` bytes of output. A body whose zstd frame states its size is
/// decompressed in one call into a buffer of that size; any other is first measured with a
/// streaming decoder that stops once more than `max` bytes have come out (so a bomb costs no
/// memory but the decoder's), then decompressed into a buffer of exactly its size.
///
/// An empty body is an empty batch (a heartbeat) whatever the encoding says: a zero-byte zstd
/// or gzip stream is not valid, but an agent may well label its heartbeats like its batches.
pub(crate) fn decompress(
    encoding: Encoding,
    body: &[u8],
    max: u64,
) -> Result<Vec<u8>, DecodeError> {
    decompress_within(encoding, body, max, &mut Unbounded)
}

/// [`decompress`], asking `memory` for every byte of output buffer (and of the zstd window)
/// before it is allocated. What it was granted for the window is given back at the end; the
/// output's capacity stays granted.
pub(crate) fn decompress_within(
    encoding: Encoding,
    body: &[u8],
    max: u64,
    memory: &mut dyn Reserve,
) -> Result<Vec<u8>, DecodeError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let corrupt = |encoding: &'static str| {
        move |e: io::Error| DecodeError::Corrupt {
            encoding,
            reason: e.to_string(),
        }
    };
    let out = match encoding {
        Encoding::Identity => {
            if body.len() as u64 > max {
                return Err(DecodeError::TooLarge { limit: max });
            }
            reserve(memory, body.len() as u64)?;
            return Ok(body.to_vec());
        }
        Encoding::Zstd => {
            // The frame header usually says how much comes out. When it does (and that is
            // within `max`), decompress in one call straight into a buffer of that size: no
            // window buffer, no copy out of it, no regrowth. Anything else (no size, several
            // frames, a size that lies) falls back to the bounded streaming decoder, which also
            // gives the precise error.
            let size = zstd::zstd_safe::get_frame_content_size(body).ok().flatten();
            if let Some(size) = size.filter(|&n| n <= max)
                && let Ok(size) = usize::try_from(size)
            {
                reserve(memory, size as u64)?;
                let mut out = Vec::with_capacity(size);
                if zstd::bulk::Decompressor::new()
                    .and_then(|mut d| d.decompress_to_buffer(body, &mut out))
                    .is_ok_and(|n| n == size)
                {
                    return Ok(out);
                }
                drop(out);
                memory.release(size as u64);
            }
            // The streaming decoder keeps a window of up to 2^ZSTD_WINDOW_LOG_MAX bytes.
            let window = 1u64 << ZSTD_WINDOW_LOG_MAX;
            reserve(memory, window)?;
            let out = read_bounded(
                || {
                    let mut decoder = zstd::stream::read::Decoder::with_buffer(body)?;
                    decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                    Ok(decoder)
                },
                max,
                memory,
                corrupt("zstd"),
            );
            memory.release(window);
            out?
        }
        Encoding::Gzip => read_bounded(
            || Ok(flate2::read::MultiGzDecoder::new(body)),
            max,
            memory,
            corrupt("gzip"),
        )?,
    };
    if out.len() as u64 > max {
        return Err(DecodeError::TooLarge { limit: max });
    }
    Ok(out)
}

/// zstd level for bodies that arrive gzip'd or plain and are stored compressed: the fastest
/// level, since storing them must keep up with the network.
pub(crate) const STORE_ZSTD_LEVEL: i32 = 1;

/// A request body to a [`Batch`] the store can keep: decompressed within `max` bytes, decoded
/// ([`parse_ndjson`], events checked against `agent`, the authenticated identity), its
/// [`Batch::digest`] taken, and with [`Batch::body`] set: the body itself when it came as zstd (it
/// has just been decompressed whole, so it is known to be intact), else the NDJSON compressed
/// here.
pub fn decode(
    encoding: Encoding,
    body: Vec<u8>,
    max: u64,
    agent: Option<Uuid>,
) -> Result<Batch, DecodeError> {
    decode_within(encoding, body, max, agent, &mut Unbounded)
}

/// [`decode`], asking `memory` before each buffer it allocates: the decompressed body, the
/// decoded rows (granted as much as the decompressed body, their upper bound, then given back
/// down to their size), and the zstd copy of a gzip or plain body. When it returns, what stays
/// granted is the decompressed body's size plus the rows' (the caller shrinks the grant to
/// what the returned batch holds).
pub(crate) fn decode_within(
    encoding: Encoding,
    body: Vec<u8>,
    max: u64,
    agent: Option<Uuid>,
    memory: &mut dyn Reserve,
) -> Result<Batch, DecodeError> {
    decode_body_within(encoding, Body::Ndjson, body, max, agent, memory)
}

/// [`decode`] of a body of either kind.
pub fn decode_as(
    encoding: Encoding,
    kind: Body,
    body: Vec<u8>,
    max: u64,
    agent: Option<Uuid>,
) -> Result<Batch, DecodeError> {
    decode_body_within(encoding, kind, body, max, agent, &mut Unbounded)
}

/// [`decode_within`] of a body of either kind. A compact body ([`Body::Compact`]) is rendered
/// to the NDJSON an agent would have sent (at most `max` bytes, granted first) and checked
/// like one; the batch keeps the compact body ([`Batch::format`]), compressed, and its rows
/// index the rendering.
pub fn decode_body_within(
    encoding: Encoding,
    kind: Body,
    body: Vec<u8>,
    max: u64,
    agent: Option<Uuid>,
    memory: &mut dyn Reserve,
) -> Result<Batch, DecodeError> {
    let raw = decompress_within(encoding, &body, max, memory)?;
    let mut batch = match kind {
        Body::Ndjson => parse_ndjson_granted(&raw, agent, memory)?,
        Body::Compact => {
            let len = agent_core::batch::rendered_len(&raw).map_err(DecodeError::Compact)?;
            if len as u64 > max {
                return Err(DecodeError::TooLarge { limit: max });
            }
            parse_compact_granted(&raw, len, agent, memory)?
        }
    };
    batch.digest = digest(&body);
    batch.format = kind;
    // What is stored: the body as it came (the compact one, or NDJSON).
    if batch.event_count > 0 {
        batch.body = match encoding {
            Encoding::Zstd => body,
            Encoding::Identity | Encoding::Gzip => {
                memory.release(body.capacity() as u64);
                drop(body);
                // A zstd frame is at most the input plus a little.
                let bound = zstd::zstd_safe::compress_bound(raw.len()) as u64;
                reserve(memory, bound)?;
                zstd::bulk::compress(&raw, STORE_ZSTD_LEVEL).map_err(|e| DecodeError::Corrupt {
                    encoding: "zstd",
                    reason: format!("compressing the body for storage: {e}"),
                })?
            }
        };
    }
    Ok(batch)
}

/// [`parse_ndjson_within`] of a decompressed NDJSON body, granted first what decoding holds:
/// the rows (room for one event a line, but never more than the body's size; their strings
/// and encoding, and any growth, granted as they grow) and a few copies of the longest line
/// (serde's scratch buffer and its growth, the owned value), as four times the longest line,
/// given back before it returns. A body that could never be granted that much is refused as
/// too large (413: the agent splits it), not left to retry for ever.
fn parse_ndjson_granted(
    raw: &[u8],
    agent: Option<Uuid>,
    memory: &mut dyn Reserve,
) -> Result<Batch, DecodeError> {
    let (longest, lines) = line_stats(raw);
    let lines = lines.min(raw.len() / crate::rows::Builder::room_bytes(1) as usize);
    let scratch = (longest as u64).saturating_mul(PARSE_COPIES_PER_LINE);
    let bound = crate::rows::Builder::room_bytes(lines).saturating_add(scratch);
    if !memory.grow(bound) {
        return Err(if memory.could_ever_grow(bound) {
            DecodeError::Busy { wanted: bound }
        } else {
            DecodeError::LineTooLong {
                bytes: longest as u64,
            }
        });
    }
    let batch = parse_ndjson_within(raw, agent, crate::rows::Builder::with_room(lines), memory)?;
    memory.release(scratch);
    Ok(batch)
}

/// How many times its own length decoding one line may hold at once, at most.
pub(crate) const PARSE_COPIES_PER_LINE: u64 = 4;

/// The shortest line counted as a possible event by [`line_stats`]: every event the wire
/// contract accepts is longer (it has `@timestamp`, `event.kind` and `event.action`). Room
/// made from this count is an estimate, not a bound: an event beyond it grows the rows, granted.
const MIN_EVENT_LINE_BYTES: usize = 64;

/// The length of the longest line of `body`, and how many of its lines could be events (are
/// at least [`MIN_EVENT_LINE_BYTES`] long).
fn line_stats(body: &[u8]) -> (usize, usize) {
    let (mut longest, mut start, mut lines) = (0, 0, 0);
    for end in memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())) {
        longest = longest.max(end - start);
        lines += usize::from(end - start >= MIN_EVENT_LINE_BYTES);
        start = end + 1;
    }
    (longest, lines)
}

/// SHA-256 of a batch's body as it arrived (compressed): what the store compares when a batch
/// key comes again (same digest: a re-send; another: a conflict). An agent re-sends a batch
/// byte for byte (its spool keeps the body as sent), and the compressed body is a third of the
/// NDJSON to hash.
pub fn digest(body: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, body).as_ref());
    out
}

/// Grows `buf` by `step` bytes of capacity, granted by `memory` first. Growing a buffer moves
/// it: the allocator copies it into a new block before it frees the old one, so for that moment
/// both are resident and both are granted; the old block's share is given back once it is free.
pub(crate) fn grow_granted(
    buf: &mut Vec<u8>,
    step: usize,
    memory: &mut dyn Reserve,
) -> Result<(), DecodeError> {
    let old = buf.capacity() as u64;
    reserve(memory, old.saturating_add(step as u64))?;
    buf.reserve_exact(buf.capacity() - buf.len() + step);
    memory.release(old);
    Ok(())
}

/// Decompresses a stream whose size is not known in two passes: the first counts its output
/// through a small scratch buffer, stopping once it passes `max` (so a bomb is refused as
/// [`DecodeError::TooLarge`] having cost no memory but the scratch); the second decompresses
/// it again into a buffer of exactly that size, granted by `memory` first. A buffer grown as
/// output arrives would double, and each doubling holds the old block and the new one at once.
fn read_bounded<R: Read>(
    mut reader: impl FnMut() -> io::Result<R>,
    max: u64,
    memory: &mut dyn Reserve,
    err: impl Fn(io::Error) -> DecodeError,
) -> Result<Vec<u8>, DecodeError> {
    let size =
        io::copy(&mut reader().map_err(&err)?.take(max + 1), &mut io::sink()).map_err(&err)?;
    if size > max {
        return Err(DecodeError::TooLarge { limit: max });
    }
    let size_usize = usize::try_from(size).map_err(|_| DecodeError::TooLarge { limit: max })?;
    reserve(memory, size)?;
    let mut out = Vec::with_capacity(size_usize);
    reader()
        .map_err(&err)?
        .take(size)
        .read_to_end(&mut out)
        .map_err(&err)?;
    if out.len() != size_usize {
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the stream decompressed differently the second time",
        )));
    }
    Ok(out)
}

/// One login event, with the columns the store indexes pulled out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// `@timestamp`, microseconds since the Unix epoch.
    pub timestamp_us: i64,
    /// `host.hostname`.
    pub host: Option<String>,
    /// `event.kind` (`event`, `alert`).
    pub kind: Option<String>,
    /// `event.action`.
    pub action: Option<String>,
    /// `event.outcome`.
    pub outcome: Option<String>,
    /// `user.name`.
    pub user: Option<String>,
    /// `user.target.name`.
    pub target_user: Option<String>,
    /// `source.ip`.
    pub source_ip: Option<String>,
    /// `source.port`.
    pub source_port: Option<u16>,
    /// `process.name`.
    pub process: Option<String>,
    /// `authtrail.method`.
    pub method: Option<String>,
    /// Where the line (valid JSON, surrounding white space trimmed) is in the batch's
    /// decompressed NDJSON: the store keeps the batch's compressed body once, not a copy of
    /// every line.
    pub line: Range<usize>,
}

/// A host-state document (`event.kind = "state"`): the agent's heartbeat with host facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// `host.hostname`.
    pub hostname: Option<String>,
    /// The whole line, as sent.
    pub doc: String,
}

/// A decoded batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Login events and alerts in the body.
    pub event_count: usize,
    /// Their rows, in body order, as the store keeps them ([`crate::rows`]), encoded while
    /// the body is parsed (on the decoding thread, not the store's writer). Empty when there
    /// are no events.
    pub rows: Vec<u8>,
    /// The last host-state document, if the batch carried any.
    pub state: Option<HostState>,
    /// The body compressed with zstd, as the store keeps it: NDJSON, or the compact body
    /// ([`Batch::format`]; [`Event::line`] indexes its rendering). Empty when the batch has no
    /// events. Set by [`decode`]; [`parse_ndjson`] leaves it empty.
    pub body: Vec<u8>,
    /// What [`Batch::body`] holds once decompressed.
    pub format: Body,
    /// `host.hostname` of the last event that has one.
    pub last_host: Option<String>,
    /// `Authtrail-Stream`: with the agent and the sequence number, the batch's key. Set by the
    /// server.
    pub stream: String,
    /// SHA-256 of the body as it arrived ([`digest`]). Set by [`decode`]; [`parse_ndjson`]
    /// leaves it zero.
    pub digest: [u8; 32],
    /// The events the contract refused, by line, at most
    /// [`agent_core::wire::MAX_REJECTIONS_LISTED`]; [`Batch::rejected_count`] counts them all.
    pub rejected: Vec<Rejection>,
    /// Every refused line (listed or not).
    pub rejected_count: usize,
    /// Of those, the events whose `agent.id` named another agent than the authenticated one.
    pub forged: usize,
    /// How many distinct values each column of [`Batch::rows`] has (`crate::rows`' column
    /// order): what the store's writer sizes its work by ([`crate::store::writer_bytes`]).
    pub column_values: [u32; crate::rows::COLUMNS],
}

/// One line of a batch that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based line number in the decompressed NDJSON (or the compact body's rendering): the
    /// event's place in the batch.
    pub line: usize,
    /// What is wrong; never the line's text.
    pub reason: String,
}

impl Batch {
    fn reject(&mut self, line: usize, reason: String) {
        self.rejected_count += 1;
        if self.rejected.len() < agent_core::wire::MAX_REJECTIONS_LISTED {
            self.rejected.push(Rejection { line, reason });
        }
    }
}

impl Batch {
    /// The host name to record for the agent: the state document's, else the last event's.
    pub(crate) fn hostname(&self) -> Option<&str> {
        self.state
            .as_ref()
            .and_then(|s| s.hostname.as_deref())
            .or(self.last_host.as_deref())
    }

    /// The events, decoded from [`Batch::rows`].
    #[cfg(test)]
    pub(crate) fn events(&self) -> Result<Vec<Event>, crate::rows::RowsError> {
        if self.rows.is_empty() {
            return Ok(Vec::new());
        }
        let rows = crate::rows::Rows::decode(&self.rows)?;
        Ok(rows.rows.iter().map(|r| rows.event(r)).collect())
    }
}

/// Decodes an NDJSON body: one JSON object per line, `\n` or `\r\n` line ends; blank lines are
/// skipped. An empty body is a heartbeat-only batch.
///
/// Each line is checked on its own: a line that is not JSON, not an object, has a field of the
/// wrong type, or breaks the wire contract ([`agent_core::wire::EventFields::check`]) is
/// recorded in [`Batch::rejected`] and the other lines are kept. With `agent` (the
/// authenticated identity), an event or state document whose `agent.id` names another agent
/// is rejected too, and counted in [`Batch::forged`]: an agent writes only as itself.
///
/// Each line is parsed once, straight into the few fields the store indexes (`Fields`); every
/// other member is validated as JSON and skipped, never built into a `serde_json::Value` (that
/// tree, and copying strings out of it, was most of the decoding cost). The semantics are those
/// of a lookup in the whole document: a path through a non-object is absent, a repeated key
/// counts once (the last), a wrong type is named but its value is never quoted.
#[cfg(test)]
pub(crate) fn parse_ndjson(body: &[u8], agent: Option<Uuid>) -> Batch {
    parse_ndjson_within(body, agent, crate::rows::Builder::default(), &mut Unbounded)
        .unwrap_or_default()
}

/// [`parse_ndjson`] into `rows`, asking `memory` before the rows grow
/// ([`crate::rows::Builder::push_within`]). When it returns, what `rows` was granted has been
/// given back but for the encoded rows' size ([`Batch::rows`]).
fn parse_ndjson_within(
    body: &[u8],
    agent: Option<Uuid>,
    rows: crate::rows::Builder,
    memory: &mut dyn Reserve,
) -> Result<Batch, DecodeError> {
    let mut lines = Lines {
        batch: Batch::default(),
        rows,
        agent,
    };
    // One set of fields for every line; each line's strings borrow from `body` where they
    // have no escapes.
    let mut fields = Fields::default();
    let (mut next, mut line) = (0, 0);
    while next < body.len() {
        let start = next;
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i);
        next = end + 1;
        line += 1;
        lines.parse(line, start, &body[start..end], &mut fields, memory)?;
    }
    lines.finish(memory)
}

/// A batch being read line by line into rows: what [`parse_ndjson_within`] and
/// [`parse_compact_within`] share, so both bodies' lines meet the same checks, with the same
/// messages, into the same rows.
struct Lines {
    batch: Batch,
    rows: crate::rows::Builder,
    /// The authenticated identity.
    agent: Option<Uuid>,
}

impl Lines {
    /// Reads line number `line` (`raw`, without its `\n`, at `start` in the body) with serde.
    fn parse<'de>(
        &mut self,
        line: usize,
        start: usize,
        raw: &'de [u8],
        fields: &mut Fields<'de>,
        memory: &mut dyn Reserve,
    ) -> Result<(), DecodeError> {
        // Records the line as rejected and goes on with the next one.
        macro_rules! ok_or_reject {
            ($result:expr) => {
                match $result {
                    Ok(v) => v,
                    Err(reason) => {
                        self.batch.reject(line, reason);
                        return Ok(());
                    }
                }
            };
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return Ok(());
        }
        let lead = raw.len() - raw.trim_ascii_start().len();
        let span = start + lead..start + lead + trimmed.len();
        let text = ok_or_reject!(
            std::str::from_utf8(raw)
                .map_err(|e| format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()))
        );
        // Our own visitors accept every JSON type, so serde's type errors (which would quote
        // the offending value) cannot arise; what is left are syntax errors, which do not.
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed = ok_or_reject!(
            LineSeed { fields }
                .deserialize(&mut de)
                .and_then(|found| de.end().map(|()| found))
                .map_err(|e| e.to_string())
        );
        if let Some(found) = parsed {
            self.batch
                .reject(line, format!("expected a JSON object, found {found}"));
            return Ok(());
        }
        // Cut at ASCII white space, so on character boundaries.
        self.accept(
            line,
            &text[lead..lead + trimmed.len()],
            span,
            fields,
            memory,
        )
    }

    /// Checks line number `line` whose fields are read (`doc`: the line, trimmed, at `span`
    /// in the body) and adds its row, or its state document, or its rejection.
    fn accept(
        &mut self,
        line: usize,
        doc: &str,
        span: Range<usize>,
        f: &mut Fields<'_>,
        memory: &mut dyn Reserve,
    ) -> Result<(), DecodeError> {
        use agent_core::wire::{self, EventFields};

        // Records the line as rejected and goes on with the next one.
        macro_rules! reject {
            ($reason:expr) => {{
                self.batch.reject(line, $reason);
                return Ok(());
            }};
        }
        macro_rules! ok_or_reject {
            ($result:expr) => {
                match $result {
                    Ok(v) => v,
                    Err(reason) => reject!(reason),
                }
            };
        }
        let claimed = ok_or_reject!(f.agent_id.take_string(wire::AGENT_ID.0));
        if let (Some(agent), Some(claimed)) = (self.agent, claimed.as_deref())
            && Uuid::try_parse(claimed).ok() != Some(agent)
        {
            self.batch.forged += 1;
            reject!(format!(
                "`agent.id` names another agent than the authenticated one ({agent})"
            ));
        }
        if ok_or_reject!(f.event_kind.string(wire::EVENT_KIND.0)) == Some(wire::KIND_STATE) {
            self.batch.state = Some(HostState {
                hostname: ok_or_reject!(f.host_name.take_string(wire::HOST_NAME.0))
                    .map(Cow::into_owned),
                doc: doc.to_owned(),
            });
            return Ok(());
        }
        let timestamp_us = match ok_or_reject!(f.timestamp.take_string(wire::TIMESTAMP.0)) {
            None => None,
            Some(t) => Some(ok_or_reject!(
                t.parse::<jiff::Timestamp>()
                    .map(|t| t.as_microsecond())
                    .map_err(|_| "`@timestamp` is not an RFC 3339 time".to_owned())
            )),
        };
        let source_port = match f.source_port {
            Probe::Absent | Probe::Null => None,
            Probe::Unsigned(n) => {
                Some(ok_or_reject!(u16::try_from(n).map_err(|_| {
                    "`source.port` is not a port number".to_owned()
                })))
            }
            Probe::OtherNumber => reject!("`source.port` is not a port number".to_owned()),
            _ => reject!("`source.port` must be a number".to_owned()),
        };
        let source_ip = ok_or_reject!(f.source_ip.take_string(wire::SOURCE_IP.0));
        if let Some(ip) = &source_ip
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            reject!("`source.ip` is not an IP address".to_owned());
        }
        let host = ok_or_reject!(f.host_name.take_string(wire::HOST_NAME.0));
        let kind = ok_or_reject!(f.event_kind.take_string(wire::EVENT_KIND.0));
        let action = ok_or_reject!(f.event_action.take_string(wire::EVENT_ACTION.0));
        let outcome = ok_or_reject!(f.event_outcome.take_string(wire::EVENT_OUTCOME.0));
        let user = ok_or_reject!(f.user_name.take_string(wire::USER_NAME.0));
        let target_user = ok_or_reject!(f.target_name.take_string(wire::TARGET_NAME.0));
        let process = ok_or_reject!(f.process_name.take_string(wire::PROCESS_NAME.0));
        let method = ok_or_reject!(f.method.take_string(wire::METHOD.0));
        ok_or_reject!(
            EventFields {
                timestamp_us,
                kind: kind.as_deref(),
                action: action.as_deref(),
                outcome: outcome.as_deref(),
                host: host.as_deref(),
                user: user.as_deref(),
                target_user: target_user.as_deref(),
                process: process.as_deref(),
                method: method.as_deref(),
            }
            .check()
            .map_err(|v| v.to_string())
        );
        self.rows
            .push_within(
                &crate::rows::EventRef {
                    // Checked just above: present.
                    timestamp_us: timestamp_us.unwrap_or_default(),
                    host: host.as_deref(),
                    kind: kind.as_deref(),
                    action: action.as_deref(),
                    outcome: outcome.as_deref(),
                    user: user.as_deref(),
                    target_user: target_user.as_deref(),
                    source_ip: source_ip.as_deref(),
                    source_port,
                    process: process.as_deref(),
                    method: method.as_deref(),
                    line: span,
                },
                memory,
            )
            .map_err(|wanted| DecodeError::Busy { wanted })
    }

    /// The batch, its rows encoded.
    fn finish(self, memory: &mut dyn Reserve) -> Result<Batch, DecodeError> {
        let Lines {
            mut batch, rows, ..
        } = self;
        batch.event_count = rows.len();
        batch.last_host = rows.last_host().map(str::to_owned);
        batch.column_values = rows.values();
        batch.rows = rows
            .finish_within(memory)
            .map_err(|wanted| DecodeError::Busy { wanted })?;
        Ok(batch)
    }
}

/// The buffer a compact body's documents are rendered in, one at a time: larger than any
/// document an agent writes, so that the rendering as a whole is never held (nor allocated and
/// faulted in for each batch). A body with a longer document is rendered whole instead.
const DOCUMENT_BUFFER_BYTES: usize = 1 << 20;

/// [`parse_compact_within`] of a compact body that renders to `len` bytes, granted first its
/// rendering buffer: one document at a time ([`DOCUMENT_BUFFER_BYTES`]), else (a longer
/// document) the whole rendering, after what the first pass was granted is given back.
fn parse_compact_granted(
    compact: &[u8],
    len: usize,
    agent: Option<Uuid>,
    memory: &mut dyn Reserve,
) -> Result<Batch, DecodeError> {
    let size = len.min(DOCUMENT_BUFFER_BYTES);
    reserve(memory, size as u64)?;
    let mut line = Vec::with_capacity(size);
    let mut counted = Counted { memory, net: 0 };
    let each = parse_compact_within(
        compact,
        len,
        agent_core::batch::decode_each,
        &mut line,
        agent,
        &mut counted,
    );
    let net = counted.net;
    drop(line);
    memory.release(size as u64);
    match each {
        Err(DecodeError::Compact(agent_core::batch::DecodeError::DocumentTooLong)) => {
            memory.release(net);
            reserve(memory, len as u64)?;
            let mut ndjson = Vec::with_capacity(len);
            let batch = parse_compact_within(
                compact,
                len,
                agent_core::batch::decode_with,
                &mut ndjson,
                agent,
                memory,
            )?;
            drop(ndjson);
            memory.release(len as u64);
            Ok(batch)
        }
        other => other,
    }
}

/// A [`Reserve`] that counts what it has been granted net, to give it back.
struct Counted<'a> {
    memory: &'a mut dyn Reserve,
    net: u64,
}

impl Reserve for Counted<'_> {
    fn grow(&mut self, bytes: u64) -> bool {
        let granted = self.memory.grow(bytes);
        if granted {
            self.net += bytes;
        }
        granted
    }
    fn release(&mut self, bytes: u64) {
        self.memory.release(bytes);
        self.net = self.net.saturating_sub(bytes);
    }
    fn could_ever_grow(&self, bytes: u64) -> bool {
        self.memory.could_ever_grow(bytes)
    }
}

/// How a compact body is rendered for [`parse_compact_within`]: [`agent_core::batch::decode_with`]
/// (the whole rendering in the buffer) or [`agent_core::batch::decode_each`] (one document).
type Render = fn(
    &[u8],
    usize,
    &mut Vec<u8>,
    &mut dyn FnMut(agent_core::batch::Document<'_>),
) -> Result<usize, agent_core::batch::DecodeError>;

/// Renders a compact body with `render` into `ndjson` (granted by the caller) and reads its
/// documents into a [`Batch`] as [`parse_ndjson_within`] reads the rendering, with the same rows,
/// rejections (line and reason), forged count, state document and last host, but without
/// parsing each line again: each shape is read once ([`Template`]), and a document's fields
/// are its values at the holes the template names. A document the template cannot vouch for
/// (its shape is not a JSON object serde reads, or a value holds an escape, a number that
/// is not a plain unsigned integer, or invalid UTF-8) is read with serde, as an NDJSON line.
/// Granted: the rows, room for one event per document (at most the rendering's size), what
/// the decoder holds ([`agent_core::batch::decode_bytes`]), the templates, and serde's
/// scratch (four times the line) around each line read with serde.
fn parse_compact_within(
    compact: &[u8],
    len: usize,
    render: Render,
    ndjson: &mut Vec<u8>,
    agent: Option<Uuid>,
    memory: &mut dyn Reserve,
) -> Result<Batch, DecodeError> {
    let events = agent_core::batch::event_count(compact).map_err(DecodeError::Compact)?;
    let room = events.min(len / crate::rows::Builder::room_bytes(1) as usize);
    reserve(memory, crate::rows::Builder::room_bytes(room))?;
    // What the decoder holds of its own while it renders.
    let decoding = agent_core::batch::decode_bytes(compact).map_err(DecodeError::Compact)? as u64;
    reserve(memory, decoding)?;
    let mut lines = Lines {
        batch: Batch::default(),
        rows: crate::rows::Builder::with_room(room),
        agent,
    };
    let mut templates: Vec<Option<Template>> = Vec::new();
    let mut templates_granted = 0;
    let (mut line, mut start) = (0, 0);
    // The first error of reading the documents: they are not read further, but the body is,
    // so a body that is not canonical is refused as such whatever its documents.
    let mut failed: Option<DecodeError> = None;
    let mut visit = |doc: agent_core::batch::Document<'_>| {
        line += 1;
        let at = start;
        start += doc.line.len() + 1;
        if failed.is_some() {
            return;
        }
        if doc.shape_id == templates.len() {
            // The template and its share of the list's growth, granted before they are made.
            let cost = Template::bytes(doc.holes.len());
            if let Err(e) = reserve(memory, cost) {
                failed = Some(e);
                return;
            }
            templates_granted += cost;
            templates.push(Template::of(doc.shape));
        }
        let template = templates.get(doc.shape_id).and_then(Option::as_ref);
        let read = match template.and_then(|t| t.fields(doc.line, doc.holes)) {
            Some((text, mut fields)) => {
                let trimmed = text.trim_ascii();
                let lead = text.len() - text.trim_ascii_start().len();
                let span = at + lead..at + lead + trimmed.len();
                lines.accept(line, trimmed, span, &mut fields, memory)
            }
            None => {
                let scratch = (doc.line.len() as u64).saturating_mul(PARSE_COPIES_PER_LINE);
                if !memory.grow(scratch) {
                    failed = Some(if memory.could_ever_grow(scratch) {
                        DecodeError::Busy { wanted: scratch }
                    } else {
                        DecodeError::LineTooLong {
                            bytes: doc.line.len() as u64,
                        }
                    });
                    return;
                }
                let read = lines.parse(line, at, doc.line, &mut Fields::default(), memory);
                memory.release(scratch);
                read
            }
        };
        if let Err(e) = read {
            failed = Some(e);
        }
    };
    render(compact, len, ndjson, &mut visit).map_err(DecodeError::Compact)?;
    memory.release(decoding);
    if let Some(e) = failed {
        return Err(e);
    }
    drop(templates);
    memory.release(templates_granted);
    lines.finish(memory)
}

/// What a shape's documents hold at each path the store reads, found once per shape by
/// reading with serde the shape with its holes numbered (the string holes' contents and the
/// numbers are each hole's index): a member that is a string or a number is a hole (the
/// compact body cuts every string and number out), anything else is the same in every
/// document of the shape. The structure serde reads does not depend on the values when each
/// string value is plain (no escape) and each number a plain unsigned integer: so for such a
/// document, its fields are the template's with the holes' values.
#[derive(Debug)]
struct Template {
    /// Per field of [`Fields`] (in [`Template::FIELDS`]' order), where its value is.
    fields: [At; 12],
    /// The holes that are numbers: each must be a plain unsigned integer.
    numbers: Vec<usize>,
    /// The string holes no field reads: an escape in them must be one serde reads the same
    /// whether it keeps the string or skips it (not `\u`).
    unread: Vec<usize>,
}

/// Where a field's value is in a shape's documents.
#[derive(Debug, Clone, Copy)]
enum At {
    Absent,
    Null,
    /// Not a string or a number, in every document: [`Probe::Other`].
    Other(&'static str),
    /// The contents of string hole `n`.
    Str(usize),
    /// Number hole `n`.
    Num(usize),
}

impl Template {
    /// The fields of [`Fields`], in the order of [`Template::fields`].
    const FIELDS: [FieldOf; 12] = [
        |f| &mut f.timestamp,
        |f| &mut f.event_kind,
        |f| &mut f.event_action,
        |f| &mut f.event_outcome,
        |f| &mut f.host_name,
        |f| &mut f.user_name,
        |f| &mut f.target_name,
        |f| &mut f.source_ip,
        |f| &mut f.source_port,
        |f| &mut f.process_name,
        |f| &mut f.method,
        |f| &mut f.agent_id,
    ];

    /// What a template of a shape with `holes` holes holds at the most (its lists of holes,
    /// grown by doubling), with its share of the list of templates (whose growth holds old
    /// and new block at once).
    fn bytes(holes: usize) -> u64 {
        (3 * std::mem::size_of::<Option<Template>>() + 2 * holes * std::mem::size_of::<usize>())
            as u64
    }

    /// The template of `shape`, or `None` when its documents must each be read with serde.
    fn of(shape: &[agent_core::batch::Piece<'_>]) -> Option<Template> {
        use agent_core::batch::Piece;
        let mut doc = Vec::new();
        let mut kinds = Vec::new();
        let mut numbers = Vec::new();
        for piece in shape {
            match *piece {
                Piece::Lit(s) => doc.extend_from_slice(s),
                Piece::Str | Piece::Msg => {
                    doc.extend_from_slice(kinds.len().to_string().as_bytes());
                    kinds.push(false);
                }
                Piece::Num(_) => {
                    doc.extend_from_slice(kinds.len().to_string().as_bytes());
                    numbers.push(kinds.len());
                    kinds.push(true);
                }
            }
        }
        // As `Lines::parse` reads a line.
        let raw = doc.strip_suffix(b"\r").unwrap_or(&doc);
        if raw.trim_ascii().is_empty() {
            return None;
        }
        let text = std::str::from_utf8(raw).ok()?;
        let mut fields = Fields::default();
        let mut de = serde_json::Deserializer::from_str(text);
        let found = LineSeed {
            fields: &mut fields,
        }
        .deserialize(&mut de)
        .and_then(|found| de.end().map(|()| found))
        .ok()?;
        if found.is_some() {
            return None;
        }
        let mut at = [At::Absent; 12];
        for (slot, field) in at.iter_mut().zip(Template::FIELDS) {
            *slot = match std::mem::take(field(&mut fields)) {
                Probe::Absent => At::Absent,
                Probe::Null => At::Null,
                Probe::Other(found) => At::Other(found),
                Probe::Str(s) => {
                    let hole: usize = s.parse().ok()?;
                    (kinds.get(hole) == Some(&false)).then_some(At::Str(hole))?
                }
                Probe::Unsigned(n) => {
                    let hole = usize::try_from(n).ok()?;
                    (kinds.get(hole) == Some(&true)).then_some(At::Num(hole))?
                }
                Probe::OtherNumber => return None,
            };
        }
        let unread = (0..kinds.len())
            .filter(|&h| !kinds[h] && !at.iter().any(|a| matches!(a, At::Str(s) if *s == h)))
            .collect();
        Some(Template {
            fields: at,
            numbers,
            unread,
        })
    }

    /// The fields of a document of this shape (`line`, its holes at `holes`), and the line as
    /// text; `None` when it must be read with serde.
    fn fields<'a>(&self, line: &'a [u8], holes: &[(u32, u32)]) -> Option<(&'a str, Fields<'a>)> {
        let text = std::str::from_utf8(line).ok()?;
        let value = |hole: usize| {
            let &(a, b) = holes.get(hole)?;
            text.get(a as usize..b as usize)
        };
        for &hole in &self.numbers {
            plain_unsigned(value(hole)?)?;
        }
        // Escapes: only in strings no field reads, and only those serde reads in one way.
        let escaped = memchr::memchr(b'\\', line).is_some();
        if escaped {
            for &hole in &self.unread {
                if !simple_escapes(value(hole)?.as_bytes()) {
                    return None;
                }
            }
        }
        let mut fields = Fields::default();
        for (at, field) in self.fields.iter().zip(Template::FIELDS) {
            *field(&mut fields) = match *at {
                At::Absent => Probe::Absent,
                At::Null => Probe::Null,
                At::Other(found) => Probe::Other(found),
                At::Str(hole) => {
                    let s = value(hole)?;
                    if escaped && s.contains('\\') {
                        return None;
                    }
                    Probe::Str(Cow::Borrowed(s))
                }
                At::Num(hole) => Probe::Unsigned(plain_unsigned(value(hole)?)?),
            };
        }
        Some((text, fields))
    }
}

/// True when every backslash in the contents of string `s` starts a two-byte escape
/// (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`): JSON that serde reads whether it
/// keeps the string or skips it. (A `\u` escape is refused by the one and not the other when
/// it is half a surrogate pair.)
fn simple_escapes(s: &[u8]) -> bool {
    let mut i = 0;
    while let Some(at) = memchr::memchr(b'\\', &s[i..]) {
        match s.get(i + at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += at + 2,
            _ => return false,
        }
    }
    true
}

/// `s` as serde reads a JSON number into a `u64` (digits, no leading zero, at most
/// `u64::MAX`); `None` for anything else.
fn plain_unsigned(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

/// One JSON value seen at a path the store wants: its type, and the string or the unsigned
/// integer when it is one. Never holds any other value, so errors cannot quote it.
#[derive(Debug, Default)]
enum Probe<'de> {
    /// The path is not in the document.
    #[default]
    Absent,
    Null,
    /// Borrowed from the body when it has no escapes.
    Str(Cow<'de, str>),
    /// A non-negative integer.
    Unsigned(u64),
    /// A negative or fractional number.
    OtherNumber,
    /// Anything else, by its [`kind`] name.
    Other(&'static str),
}

impl<'de> Probe<'de> {
    /// A string field: absent or null is `None`, another type is an error.
    fn take_string(&mut self, path: &str) -> Result<Option<Cow<'de, str>>, String> {
        match std::mem::take(self) {
            Probe::Absent | Probe::Null => Ok(None),
            Probe::Str(s) => Ok(Some(s)),
            Probe::Unsigned(_) | Probe::OtherNumber => {
                Err(format!("`{path}` must be a string, found a number"))
            }
            Probe::Other(found) => Err(format!("`{path}` must be a string, found {found}")),
        }
    }

    /// [`Probe::take_string`] without taking.
    fn string(&self, path: &str) -> Result<Option<&str>, String> {
        match self {
            Probe::Str(s) => Ok(Some(s)),
            Probe::Absent | Probe::Null => Ok(None),
            Probe::Unsigned(_) | Probe::OtherNumber => {
                Err(format!("`{path}` must be a string, found a number"))
            }
            Probe::Other(found) => Err(format!("`{path}` must be a string, found {found}")),
        }
    }
}

/// Skips the rest of a sequence or map, validating it.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de> Deserialize<'de> for Probe<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Probe<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Probe<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Probe<'de>, E> {
                Ok(Probe::Null)
            }
            fn visit_none<E>(self) -> Result<Probe<'de>, E> {
                Ok(Probe::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Probe<'de>, E> {
                Ok(Probe::Other("a boolean"))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Probe<'de>, E> {
                Ok(Probe::Unsigned(n))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Probe<'de>, E> {
                Ok(u64::try_from(n).map_or(Probe::OtherNumber, Probe::Unsigned))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Probe<'de>, E> {
                Ok(Probe::OtherNumber)
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Probe<'de>, E> {
                Ok(Probe::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Probe<'de>, E> {
                Ok(Probe::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Probe<'de>, E> {
                Ok(Probe::Str(Cow::Owned(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Probe<'de>, A::Error> {
                skip_seq(seq)?;
                Ok(Probe::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Probe<'de>, A::Error> {
                skip_map(map)?;
                Ok(Probe::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of an event line the store indexes.
#[derive(Debug, Default)]
struct Fields<'de> {
    timestamp: Probe<'de>,
    event_kind: Probe<'de>,
    event_action: Probe<'de>,
    event_outcome: Probe<'de>,
    host_name: Probe<'de>,
    user_name: Probe<'de>,
    target_name: Probe<'de>,
    source_ip: Probe<'de>,
    source_port: Probe<'de>,
    process_name: Probe<'de>,
    method: Probe<'de>,
    agent_id: Probe<'de>,
}

/// The objects on the way to the fields; each level names the members it descends into.
#[derive(Clone, Copy)]
enum Level {
    Root,
    Event,
    Host,
    User,
    UserTarget,
    Source,
    Process,
    Authtrail,
    Agent,
}

/// Where a member of an object at some [`Level`] leads.
/// A field of [`Fields`].
type FieldOf = for<'f, 'de> fn(&'f mut Fields<'de>) -> &'f mut Probe<'de>;

enum Member {
    Field(FieldOf),
    Object(Level),
    Skip,
}

impl Level {
    fn member(self, key: &str) -> Member {
        use Member::{Field, Object, Skip};
        match (self, key) {
            (Level::Root, "@timestamp") => Field(|f| &mut f.timestamp),
            (Level::Root, "event") => Object(Level::Event),
            (Level::Root, "host") => Object(Level::Host),
            (Level::Root, "user") => Object(Level::User),
            (Level::Root, "source") => Object(Level::Source),
            (Level::Root, "process") => Object(Level::Process),
            (Level::Root, "authtrail") => Object(Level::Authtrail),
            (Level::Root, "agent") => Object(Level::Agent),
            (Level::Event, "kind") => Field(|f| &mut f.event_kind),
            (Level::Event, "action") => Field(|f| &mut f.event_action),
            (Level::Event, "outcome") => Field(|f| &mut f.event_outcome),
            (Level::Host, "hostname") => Field(|f| &mut f.host_name),
            (Level::User, "name") => Field(|f| &mut f.user_name),
            (Level::User, "target") => Object(Level::UserTarget),
            (Level::UserTarget, "name") => Field(|f| &mut f.target_name),
            (Level::Source, "ip") => Field(|f| &mut f.source_ip),
            (Level::Source, "port") => Field(|f| &mut f.source_port),
            (Level::Process, "name") => Field(|f| &mut f.process_name),
            (Level::Authtrail, "method") => Field(|f| &mut f.method),
            (Level::Agent, "id") => Field(|f| &mut f.agent_id),
            _ => Skip,
        }
    }

    /// Resets every field under this level: a repeated key replaces the earlier member whole,
    /// as in a JSON object read into a map.
    fn clear(self, f: &mut Fields<'_>) {
        let probes: &mut [&mut Probe<'_>] = match self {
            Level::Root => {
                *f = Fields::default();
                return;
            }
            Level::Event => &mut [&mut f.event_kind, &mut f.event_action, &mut f.event_outcome],
            Level::Host => &mut [&mut f.host_name],
            Level::User => &mut [&mut f.user_name, &mut f.target_name],
            Level::UserTarget => &mut [&mut f.target_name],
            Level::Source => &mut [&mut f.source_ip, &mut f.source_port],
            Level::Process => &mut [&mut f.process_name],
            Level::Authtrail => &mut [&mut f.method],
            Level::Agent => &mut [&mut f.agent_id],
        };
        for p in probes {
            **p = Probe::Absent;
        }
    }
}

/// A member name, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Fills `fields` from an object at `level` (anything that is not an object leaves the paths
/// under it absent, as a lookup through it would find nothing).
struct Walk<'f, 'de> {
    fields: &'f mut Fields<'de>,
    level: Level,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        skip_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.level.member(&key) {
                Member::Field(probe) => *probe(self.fields) = map.next_value::<Probe<'de>>()?,
                Member::Object(level) => {
                    level.clear(self.fields);
                    map.next_value_seed(Walk {
                        fields: &mut *self.fields,
                        level,
                    })?;
                }
                Member::Skip => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Reads one line into `fields` (cleared first). `Some(type)` when the line is not an object.
struct LineSeed<'f, 'de> {
    fields: &'f mut Fields<'de>,
}

impl<'de> DeserializeSeed<'de> for LineSeed<'_, 'de> {
    type Value = Option<&'static str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<&'static str>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LineSeed<'_, 'de> {
    type Value = Option<&'static str>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Some("null"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some("a boolean"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some("a string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq)?;
        Ok(Some("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Level::Root.clear(self.fields);
        Walk {
            fields: self.fields,
            level: Level::Root,
        }
        .visit_map(map)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const FIXTURE: &str =
        include_str!("../../agent-core/testdata/debian12-traditional/sshd.expected.ndjson");

    /// Today's reading of a compact body, kept as the oracle of the one that reads the
    /// documents' values where they are: render the whole NDJSON, then parse it line by line.
    fn compact_by_rendering(compact: &[u8], agent: Option<Uuid>) -> Result<Batch, DecodeError> {
        let len = agent_core::batch::rendered_len(compact).map_err(DecodeError::Compact)?;
        let mut ndjson = Vec::new();
        agent_core::batch::decode(compact, len, &mut ndjson).map_err(DecodeError::Compact)?;
        parse_ndjson_within(
            &ndjson,
            agent,
            crate::rows::Builder::default(),
            &mut Unbounded,
        )
    }

    /// Reads `ndjson` as a compact body both ways and asserts the same batch: rows, rejections
    /// (line and reason), forged count, state document, last host and counts. False when the
    /// encoder does not take `ndjson` (not JSON the format holds).
    fn same_both_ways(ndjson: &[u8], agent: Option<Uuid>) -> bool {
        let mut compact = Vec::new();
        if agent_core::batch::encode(ndjson, &mut compact).is_err() {
            return false;
        }
        let want = compact_by_rendering(&compact, agent).expect("the oracle reads it");
        let got = decode_body_within(
            Encoding::Identity,
            Body::Compact,
            compact,
            64 << 20,
            agent,
            &mut Unbounded,
        )
        .expect("reads it");
        let show = String::from_utf8_lossy(ndjson);
        assert_eq!(got.rejected, want.rejected, "rejections of\n{show}");
        assert_eq!(got.rejected_count, want.rejected_count, "{show}");
        assert_eq!(got.forged, want.forged, "{show}");
        assert_eq!(got.state, want.state, "{show}");
        assert_eq!(got.last_host, want.last_host, "{show}");
        assert_eq!(got.event_count, want.event_count, "{show}");
        assert_eq!(got.column_values, want.column_values, "{show}");
        assert_eq!(
            got.events().expect("rows"),
            want.events().expect("rows"),
            "{show}"
        );
        assert_eq!(got.rows, want.rows, "{show}");
        true
    }

    const AGENT: &str = "0b7a3c52-6f43-4d2a-9a51-3f1f5c2e8d10";

    /// The agent's documents for real log lines (with `message`, identity, sequence and
    /// offsets, as it ships them), one per parsed line of the fixture logs.
    fn agent_documents() -> Vec<String> {
        use agent_core::ecs::{Envelope, write_event};
        use agent_core::{Parsed, Text, Timestamp, parse_line, syslog::Context};
        let logs = [
            include_str!("../../agent-core/testdata/debian12-traditional/auth.log"),
            include_str!("../../agent-core/testdata/debian12-rfc3339/sshd.log"),
            include_str!("../../agent-core/testdata/debian12-rfc3339/sudo.log"),
            include_str!("../../agent-core/testdata/debian12-traditional/account.log"),
        ];
        let ctx = Context::new(Timestamp::from_secs(1_795_000_000));
        let mut docs = Vec::new();
        for log in logs {
            let mut offset = 0u64;
            for line in log.lines() {
                if let Parsed::Event(event) = parse_line(line.as_bytes(), &ctx) {
                    let envelope = Envelope {
                        hostname: Some(Text(b"web1")),
                        host_id: Some("4c4c4544003957108052b4c04f384833"),
                        agent_id: Some(AGENT),
                        agent_version: Some("0.1.0"),
                        provider: Some("file"),
                        sequence: Some(docs.len() as u64),
                        log_path: Some(Text(b"/var/log/auth.log")),
                        log_offset: Some(offset),
                        message: Some(Text(line.as_bytes())),
                        original_timestamp: None,
                    };
                    let mut json = String::new();
                    write_event(&mut json, &event, &envelope).expect("a String takes anything");
                    docs.push(json);
                }
                offset += line.len() as u64 + 1;
            }
        }
        docs
    }

    /// Documents that break the contract or JSON in every way a sender could, each as the
    /// compact body can carry it.
    fn hostile_documents() -> Vec<Vec<u8>> {
        let ok = r#""@timestamp":"2026-11-28T08:06:35Z","event":{"kind":"event","action":"auth_failure","outcome":"failure"},"host":{"hostname":"h1"}"#;
        let with = |rest: &str| format!("{{{ok},{rest}}}").into_bytes();
        let mut docs: Vec<Vec<u8>> = vec![
            with(r#""user":{"name":"root"},"source":{"ip":"10.0.0.1","port":22}"#),
            with(r#""user":{"name":5}"#),
            with(r#""user":{"name":true}"#),
            with(r#""user":{"name":["a"]}"#),
            with(r#""user":{"name":{"x":1}}"#),
            with(r#""user":{"name":null}"#),
            with(r#""user":"root""#),
            with(r#""user":{"name":"a"},"user":{"target":{"name":"b"}}"#),
            with(r#""user":{"name":"a","name":"b"}"#),
            with(r#""user":{"name":"a","name":7}"#),
            with(r#""user":{"name":"r\u006fot"}"#),
            with(r#""user":{"name":"a\"b\\c"}"#),
            with(r#""user":{"name":"bad\xescape"}"#),
            with(r#""user":{"name":"\ud800"}"#),
            with(r#""us\u0065r":{"name":"x"}"#),
            with(r#""agent":{"id":"0b7a3c52-6f43-4d2a-9a51-3f1f5c2e8d10"}"#),
            with(r#""agent":{"id":"11111111-2222-3333-4444-555555555555"}"#),
            with(r#""agent":{"id":"not a uuid"}"#),
            with(r#""agent":{"id":42}"#),
            with(r#""agent":{"id":"0B7A3C52-6F43-4D2A-9A51-3F1F5C2E8D10"}"#),
            with(r#""source":{"ip":"10.0.0.300"}"#),
            with(r#""source":{"ip":"::1","port":65535}"#),
            with(r#""source":{"ip":"fe80::1%eth0"}"#),
            with(r#""source":{"ip":7}"#),
            with(r#""source":{"port":65536}"#),
            with(r#""source":{"port":-1}"#),
            with(r#""source":{"port":1.5}"#),
            with(r#""source":{"port":1e3}"#),
            with(r#""source":{"port":022}"#),
            with(r#""source":{"port":"22"}"#),
            with(r#""source":{"port":null}"#),
            with(r#""source":{"port":99999999999999999999}"#),
            with(r#""source":{"port":18446744073709551615}"#),
            with(r#""source":{"port":[22]}"#),
            with(r#""source":null"#),
            with(r#""process":{"name":"sshd","pid":-5},"authtrail":{"method":"password"}"#),
            with(r#""authtrail":{"method":"telepathy"}"#),
            with(r#""message":"a line with \"quotes\" in it""#),
            with(r#""message":"plain line","message":"twice""#),
            with(r#""message":"tab\there \/ \n \r \b \f \\ end\\""#),
            with(r#""message":"\u0041 and \u00e9""#),
            with(r#""message":"half a pair \ud800 here""#),
            with(r#""message":"bad \q escape""#),
            with(r#""user":{"name":"x"},"message":"a \"quoted\" line","tags":["\u0041"]"#),
            with(r#""tags":["\ud800"],"reason":"\x""#),
            br#"{"@timestamp":"yesterday","event":{"kind":"event","action":"auth_failure"}}"#.to_vec(),
            br#"{"@timestamp":"1999-12-31T23:59:59Z","event":{"kind":"event","action":"auth_failure"}}"#.to_vec(),
            br#"{"@timestamp":17,"event":{"kind":"event","action":"auth_failure"}}"#.to_vec(),
            br#"{"event":{"kind":"event","action":"auth_failure"}}"#.to_vec(),
            br#"{"@timestamp":"2026-11-28T08:06:35Z","event":{"kind":"event","action":"no_such_action"}}"#.to_vec(),
            br#"{"@timestamp":"2026-11-28T08:06:35Z","event":{"kind":"alert","action":"brute_force","reason":"many"},"host":{"hostname":"h2"}}"#.to_vec(),
            br#"{"@timestamp":"2026-11-28T08:06:35Z","event":{"kind":"state"},"host":{"hostname":"h9","os":{"name":"debian"}},"agent":{"id":"0b7a3c52-6f43-4d2a-9a51-3f1f5c2e8d10"}}"#.to_vec(),
            br#"{"event":{"kind":"state"},"host":{"hostname":5}}"#.to_vec(),
            br#"{"event":{"kind":"state"},"agent":{"id":"11111111-2222-3333-4444-555555555555"}}"#.to_vec(),
            br#"{"event":{"kind":"state"},"event":{"kind":"event","action":"auth_failure"},"@timestamp":"2026-11-28T08:06:35Z"}"#.to_vec(),
            br#"{"event":{"kind":7}}"#.to_vec(),
            br#"  {"@timestamp":"2026-11-28T08:06:35Z", "event" : {"kind":"event","action":"sudo"} }	"#.to_vec(),
            b"{\"@timestamp\":\"2026-11-28T08:06:35Z\",\"event\":{\"kind\":\"event\",\"action\":\"sudo\"}}\r".to_vec(),
            br#"[1,2]"#.to_vec(),
            br#""just a string""#.to_vec(),
            br#"17"#.to_vec(),
            br#"null"#.to_vec(),
            br#"{"a" "b"}"#.to_vec(),
            br#"{"a":1,}"#.to_vec(),
            br#"{"a":1}{"b":2}"#.to_vec(),
            br#"{"a":tru}"#.to_vec(),
        ];
        // Bytes that are not UTF-8, in a value and in the message.
        docs.push(
            with("\"user\":{\"name\":\"\u{1}\"}")
                .iter()
                .map(|&b| if b == 1 { 0xff } else { b })
                .collect(),
        );
        docs.push(
            with("\"message\":\"caf\u{1}\"")
                .iter()
                .map(|&b| if b == 1 { 0xc3 } else { b })
                .collect(),
        );
        docs.push(with(r#""user":{"name":"é ü 中"},"message":"ünïcödé line""#));
        docs
    }

    #[test]
    fn a_compact_body_reads_as_its_rendering_parsed() {
        let agent: Uuid = AGENT.parse().expect("a UUID");
        let other = Uuid::from_u128(7);
        let docs = agent_documents();
        assert!(docs.len() > 500, "{}", docs.len());
        let ndjson: Vec<u8> = docs
            .iter()
            .flat_map(|d| [d.as_bytes(), b"\n"].concat())
            .collect();
        for who in [None, Some(agent), Some(other)] {
            assert!(same_both_ways(&ndjson, who));
        }
        // Each hostile document alone, after an agent's, and all of them in one batch
        // between the agent's (so shapes repeat with other values).
        let hostile = hostile_documents();
        let mut taken = 0;
        let mut all = Vec::new();
        for (i, doc) in hostile.iter().enumerate() {
            let alone = [doc.as_slice(), b"\n"].concat();
            let mut mixed = [docs[i].as_bytes(), b"\n"].concat();
            mixed.extend_from_slice(&alone);
            mixed.extend_from_slice(&alone);
            for who in [None, Some(agent), Some(other)] {
                if same_both_ways(&alone, who) {
                    taken += 1;
                    assert!(same_both_ways(&mixed, who));
                    all.extend_from_slice(&alone);
                    all.extend_from_slice(docs[i].as_bytes());
                    all.push(b'\n');
                }
            }
        }
        // The encoder takes most of them: the test is not empty.
        assert!(taken > 3 * 50, "{taken} of {}", 3 * hostile.len());
        for who in [None, Some(agent), Some(other)] {
            assert!(same_both_ways(&all, who));
        }
    }

    #[test]
    fn a_compact_document_longer_than_the_document_buffer_is_read_from_the_whole_rendering() {
        let agent: Uuid = AGENT.parse().expect("a UUID");
        let docs = agent_documents();
        let pad = "x".repeat(DOCUMENT_BUFFER_BYTES / 2 + 1000);
        let long = docs[1].replacen('{', &format!("{{\"pad\":\"{pad}\",\"pad2\":\"y{pad}\","), 1);
        let ndjson = [docs[0].as_str(), &long, docs[2].as_str()].join("\n") + "\n";
        let mut compact = Vec::new();
        agent_core::batch::encode(ndjson.as_bytes(), &mut compact).expect("encodes");
        // One document at a time does not fit it: the whole rendering is what reads it.
        let mut line = Vec::with_capacity(DOCUMENT_BUFFER_BYTES);
        let each = agent_core::batch::decode_each(&compact, ndjson.len(), &mut line, &mut |_| {});
        assert_eq!(each, Err(agent_core::batch::DecodeError::DocumentTooLong));
        for who in [None, Some(agent)] {
            assert!(same_both_ways(ndjson.as_bytes(), who));
        }
    }

    /// The agent's own documents are read from their values where they are, never parsed
    /// again: each shape has a template and each document's fields come from it.
    #[test]
    fn the_agents_documents_are_read_without_serde() {
        let docs = agent_documents();
        let ndjson: Vec<u8> = docs
            .iter()
            .flat_map(|d| [d.as_bytes(), b"\n"].concat())
            .collect();
        let mut compact = Vec::new();
        agent_core::batch::encode(&ndjson, &mut compact).expect("encodes");
        let (mut templates, mut read, mut seen) = (Vec::new(), 0, 0);
        let mut out = Vec::new();
        agent_core::batch::decode_with(&compact, usize::MAX, &mut out, &mut |doc| {
            seen += 1;
            if doc.shape_id == templates.len() {
                templates.push(Template::of(doc.shape));
            }
            let template = templates[doc.shape_id].as_ref().expect("a template");
            read += usize::from(template.fields(doc.line, doc.holes).is_some());
        })
        .expect("decodes");
        assert_eq!((read, seen), (docs.len(), docs.len()));
        assert!(templates.len() > 5, "{}", templates.len());
    }

    /// The agent's documents and the hostile ones the encoder takes, made once.
    /// Documents, one per line (no `\n`).
    type Documents = Vec<Vec<u8>>;

    static CORPUS: std::sync::LazyLock<(Documents, Documents)> = std::sync::LazyLock::new(|| {
        let docs = agent_documents()
            .into_iter()
            .map(String::into_bytes)
            .collect();
        let hostile = hostile_documents()
            .into_iter()
            .filter(|d| {
                let ndjson = [d.as_slice(), b"\n"].concat();
                agent_core::batch::encode(&ndjson, &mut Vec::new()).is_ok()
            })
            .collect();
        (docs, hostile)
    });

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Batches of the agent's documents and hostile ones, picked and ordered at random
        /// (so shapes come back with other values, after other shapes), read the same both
        /// ways for each identity.
        #[test]
        fn any_compact_batch_reads_as_its_rendering_parsed(
            picks in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), 0u8..4),
                1..80,
            ),
            who in 0u8..3,
        ) {
            let (docs, hostile) = &*CORPUS;
            let mut ndjson = Vec::new();
            for (i, kind) in &picks {
                // One pick in four hostile.
                let doc = if *kind == 0 { &hostile[i.index(hostile.len())] } else { &docs[i.index(docs.len())] };
                ndjson.extend_from_slice(doc);
                ndjson.push(b'\n');
            }
            let agent = match who {
                0 => None,
                1 => Some(AGENT.parse().expect("a UUID")),
                _ => Some(Uuid::from_u128(7)),
            };
            proptest::prop_assert!(same_both_ways(&ndjson, agent));
        }
    }

    fn fixture_events() -> String {
        FIXTURE
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn real_agent_events_decode() {
        let body = fixture_events();
        let n = body.lines().count();
        assert!(n > 10);
        let batch = parse_ndjson(body.as_bytes(), None);
        let events = batch.events().unwrap();
        assert_eq!((batch.event_count, events.len()), (n, n));
        let e = &events[1];
        assert_eq!(e.action.as_deref(), Some("auth_success"));
        assert_eq!(e.user.as_deref(), Some("atalice"));
        assert_eq!(e.source_ip.as_deref(), Some("127.0.0.51"));
        assert_eq!(e.source_port, Some(52687));
        assert_eq!(e.method.as_deref(), Some("publickey"));
        assert_eq!(e.host.as_deref(), Some("testhost"));
        assert_eq!(batch.hostname(), Some("testhost"));
        assert_eq!(
            e.timestamp_us,
            "2026-11-28T08:06:35Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_microsecond()
        );
    }

    #[test]
    fn lookups_follow_json_object_semantics() {
        // A repeated key counts once, the last; a path through a non-object is absent; escaped
        // member names are names like any other; unknown members of any type are skipped.
        let body = br#"{"@timestamp":"2026-01-01T00:00:00Z","user":{"name":"a"},"user":{"target":{"name":"t"}},"host":"h","event":{"kind":"event","action":"x","ac\u0074ion":"sudo"},"source":{"port":22,"port":null},"other":[1,{"a":[]}],"process":{"name":null}}"#;
        let batch = parse_ndjson(body, None);
        let e = &batch.events().unwrap()[0];
        assert_eq!(e.user, None);
        assert_eq!(e.target_user.as_deref(), Some("t"));
        assert_eq!(e.host, None);
        assert_eq!(e.action.as_deref(), Some("sudo"));
        assert_eq!(e.source_port, None);
        assert_eq!(e.process, None);
        for (body, want) in [
            (
                &br#"{"@timestamp":"2026-01-01T00:00:00Z","source":{"port":-1}}"#[..],
                "not a port",
            ),
            (
                br#"{"@timestamp":"2026-01-01T00:00:00Z","source":{"port":2.5}}"#,
                "not a port",
            ),
            (
                br#"{"@timestamp":"2026-01-01T00:00:00Z","source":{"port":"22"}}"#,
                "must be a number",
            ),
            (
                br#"{"@timestamp":7}"#,
                "`@timestamp` must be a string, found a number",
            ),
            (
                br#"{"@timestamp":"2026-01-01T00:00:00Z","event":{"kind":["password"]}}"#,
                "`event.kind` must be a string, found an array",
            ),
            (br#"{"@timestamp":"2026-01-01T00:00:00Z"} x"#, "trailing"),
            (b"null", "found null"),
        ] {
            let batch = parse_ndjson(body, None);
            assert_eq!((batch.event_count, batch.rejected_count), (0, 1));
            let e = &batch.rejected[0].reason;
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("password"), "{e}");
        }
    }

    #[test]
    fn empty_body_is_a_heartbeat() {
        assert_eq!(parse_ndjson(b"", None), Batch::default());
        assert_eq!(parse_ndjson(b"\n\r\n", None), Batch::default());
    }

    #[test]
    fn state_documents_are_kept_apart() {
        let body = b"{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"event\":{\"kind\":\"state\"},\"host\":{\"hostname\":\"h1\",\"os\":{\"name\":\"Debian\"}}}\n";
        let batch = parse_ndjson(body, None);
        assert_eq!(batch.event_count, 0);
        assert!(batch.rows.is_empty());
        assert_eq!(batch.hostname(), Some("h1"));
    }

    #[test]
    fn malformed_line_is_named_and_not_echoed_and_loses_only_itself() {
        let body = format!("{}{{\"secret-password\n", fixture_events());
        let line = body.lines().count();
        let batch = parse_ndjson(body.as_bytes(), None);
        assert_eq!(batch.event_count, line - 1, "the good lines are kept");
        assert_eq!(batch.rejected.len(), 1);
        assert_eq!(batch.rejected[0].line, line);
        assert!(!batch.rejected[0].reason.contains("secret"));
        for (body, want) in [
            (
                &b"\"just-a-string-password\"\n"[..],
                "expected a JSON object, found a string",
            ),
            (b"[1]\n", "found an array"),
            (b"{\"event\":{}}\n", "`@timestamp` is missing"),
            (b"{\"@timestamp\":\"yesterday\"}\n", "not an RFC 3339"),
            (
                b"{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"user\":{\"name\":7}}",
                "`user.name` must be a string",
            ),
            (
                b"{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"source\":{\"port\":70000}}",
                "not a port",
            ),
            (
                b"{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"source\":{\"ip\":\"1.2.3\"}}",
                "not an IP",
            ),
            (
                b"{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"event\":{\"action\":\"x\"}}",
                "`event.kind` is missing",
            ),
            (b"\xff\xfe\n", "invalid UTF-8"),
        ] {
            let batch = parse_ndjson(body, None);
            assert_eq!(batch.rejected_count, 1);
            let r = &batch.rejected[0];
            assert_eq!(r.line, 1);
            assert!(r.reason.contains(want), "{}", r.reason);
            assert!(!r.reason.contains("password"), "{}", r.reason);
        }
    }

    /// One event as the agent writes it, at `ts`.
    fn event_at(ts: &str) -> String {
        format!(
            "{{\"@timestamp\":\"{ts}\",\"event\":{{\"kind\":\"event\",\"action\":\"auth_failure\",\
             \"outcome\":\"failure\"}},\"host\":{{\"hostname\":\"h\"}},\"user\":{{\"name\":\"root\"}}}}\n"
        )
    }

    #[test]
    fn a_poison_timestamp_loses_only_its_own_line() {
        // 999 good events and one dated 9999-12-31T23:59:59: 999 are stored.
        let mut body = String::new();
        for i in 0..1000 {
            if i == 500 {
                body.push_str(&event_at("9999-12-31T23:59:59Z"));
            } else {
                body.push_str(&event_at("2026-01-01T00:00:00Z"));
            }
        }
        let z = zstd::encode_all(body.as_bytes(), 1).unwrap();
        let batch = decode(Encoding::Zstd, z, 1 << 24, None).unwrap();
        assert_eq!(batch.event_count, 999);
        assert_eq!(batch.events().unwrap().len(), 999);
        assert_eq!(batch.rejected_count, 1);
        assert_eq!(batch.rejected[0].line, 501);
        assert_eq!(
            batch.digest,
            digest(&zstd::encode_all(body.as_bytes(), 1).unwrap())
        );
        // Dated inside jiff's range but outside the contract's: refused the same way.
        let batch = parse_ndjson(event_at("2150-01-01T00:00:00Z").as_bytes(), None);
        assert_eq!((batch.event_count, batch.rejected_count), (0, 1));
        assert!(
            batch.rejected[0].reason.contains("outside"),
            "{:?}",
            batch.rejected
        );
    }

    #[test]
    fn rejections_are_listed_up_to_the_bound_and_all_counted() {
        let n = agent_core::wire::MAX_REJECTIONS_LISTED + 5;
        let body = "[]\n".repeat(n);
        let batch = parse_ndjson(body.as_bytes(), None);
        assert_eq!(batch.rejected_count, n);
        assert_eq!(
            batch.rejected.len(),
            agent_core::wire::MAX_REJECTIONS_LISTED
        );
    }

    #[test]
    fn a_forged_agent_id_is_refused_and_counted() {
        let me = Uuid::parse_str("0b7a3c52-6f43-4d2a-9a51-3f1f5c2e8d10").unwrap();
        let other = "5d2c7a8e-1111-4222-8333-944455556666";
        let with_id = |id: &str| {
            event_at("2026-01-01T00:00:00Z").replacen(
                "{",
                &format!("{{\"agent\":{{\"id\":\"{id}\"}},"),
                1,
            )
        };
        let body = format!(
            "{}{}{}{}",
            with_id(&me.to_string()),
            with_id(other),
            event_at("2026-01-01T00:00:00Z"),
            with_id(&me.to_string().to_uppercase()),
        );
        let batch = parse_ndjson(body.as_bytes(), Some(me));
        assert_eq!(
            batch.event_count, 3,
            "its own id, none, its own in capitals"
        );
        assert_eq!((batch.rejected_count, batch.forged), (1, 1));
        assert_eq!(batch.rejected[0].line, 2);
        assert!(batch.rejected[0].reason.contains("another agent"));
        // A heartbeat claiming another agent is refused too.
        let state = format!(
            "{{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"event\":{{\"kind\":\"state\"}},\
             \"agent\":{{\"id\":\"{other}\"}},\"host\":{{\"hostname\":\"victim\"}}}}\n"
        );
        let batch = parse_ndjson(state.as_bytes(), Some(me));
        assert_eq!((batch.forged, batch.state), (1, None));
        // Without an identity to hold them to (tests, tools), ids are not checked.
        assert_eq!(parse_ndjson(body.as_bytes(), None).event_count, 4);
    }

    #[test]
    fn every_contract_field_is_read_back() {
        for field in agent_core::wire::FIELDS {
            let mut level = Level::Root;
            let mut parts = field.0.split('.').peekable();
            while let Some(part) = parts.next() {
                match (level.member(part), parts.peek()) {
                    (Member::Object(next), Some(_)) => level = next,
                    (Member::Field(_), None) => {}
                    _ => panic!("{} is not read", field.0),
                }
            }
        }
    }

    #[test]
    fn decompress_each_encoding_and_bound() {
        let raw = fixture_events().into_bytes();
        let z = zstd::encode_all(&raw[..], 3).unwrap();
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        g.write_all(&raw).unwrap();
        let g = g.finish().unwrap();
        for (enc, body) in [
            (Encoding::Identity, &raw),
            (Encoding::Zstd, &z),
            (Encoding::Gzip, &g),
        ] {
            assert_eq!(decompress(enc, body, raw.len() as u64).unwrap(), raw);
            assert_eq!(
                decompress(enc, body, raw.len() as u64 - 1),
                Err(DecodeError::TooLarge {
                    limit: raw.len() as u64 - 1
                })
            );
        }
        // Truncated streams are corrupt, not short batches.
        for (enc, body) in [(Encoding::Zstd, &z), (Encoding::Gzip, &g)] {
            let cut = &body[..body.len() - 5];
            assert!(
                matches!(
                    decompress(enc, cut, 1 << 20),
                    Err(DecodeError::Corrupt { .. })
                ),
                "{enc:?}"
            );
        }
    }

    #[test]
    fn zstd_with_several_frames_or_no_size_takes_the_streaming_path() {
        let raw = fixture_events().into_bytes();
        let (a, b) = raw.split_at(raw.len() / 3);
        // Two frames, each with its own size: the first frame's size is not the body's.
        let mut two = zstd::bulk::compress(a, 1).unwrap();
        two.extend(zstd::bulk::compress(b, 1).unwrap());
        assert_eq!(decompress(Encoding::Zstd, &two, 1 << 20).unwrap(), raw);
        assert!(matches!(
            decompress(Encoding::Zstd, &two, raw.len() as u64 - 1),
            Err(DecodeError::TooLarge { .. })
        ));
        // A streamed frame carries no size.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.write_all(&raw).unwrap();
        let streamed = enc.finish().unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&streamed).unwrap(),
            None
        );
        assert_eq!(decompress(Encoding::Zstd, &streamed, 1 << 20).unwrap(), raw);
        // A frame whose stated size is over the bound is refused, not allocated.
        let one = zstd::bulk::compress(&raw, 1).unwrap();
        assert!(matches!(
            decompress(Encoding::Zstd, &one, 100),
            Err(DecodeError::TooLarge { limit: 100 })
        ));
    }

    #[test]
    fn empty_body_is_empty_in_any_encoding() {
        for enc in [Encoding::Identity, Encoding::Zstd, Encoding::Gzip] {
            assert_eq!(decompress(enc, b"", 0), Ok(Vec::new()));
        }
    }

    /// A [`Reserve`] that records what it holds and the most it ever held.
    #[derive(Default)]
    struct Recorder {
        held: u64,
        peak: u64,
    }

    impl Reserve for Recorder {
        fn grow(&mut self, bytes: u64) -> bool {
            self.held += bytes;
            self.peak = self.peak.max(self.held);
            true
        }
        fn release(&mut self, bytes: u64) {
            self.held -= bytes;
        }
        fn could_ever_grow(&self, _: u64) -> bool {
            true
        }
    }

    #[test]
    fn a_body_of_unknown_size_is_measured_first_and_allocated_once() {
        // A gzip stream says nothing of its size: it is measured, then decompressed into a
        // buffer of exactly that size (no doubling, which holds old and new block at once).
        let gzip = |mib: usize| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&vec![7u8; mib << 20]).unwrap();
            gz.finish().unwrap()
        };
        let mut memory = Recorder::default();
        let out = decompress_within(Encoding::Gzip, &gzip(12), 64 << 20, &mut memory).unwrap();
        assert_eq!(out.len(), 12 << 20);
        assert_eq!(out.capacity(), out.len());
        assert_eq!((memory.held, memory.peak), (12 << 20, 12 << 20));
        // A bomb is refused as too large having been granted nothing.
        let mut memory = Recorder::default();
        let e = decompress_within(Encoding::Gzip, &gzip(80), 64 << 20, &mut memory);
        assert_eq!(e, Err(DecodeError::TooLarge { limit: 64 << 20 }));
        assert_eq!(memory.peak, 0);
    }

    #[test]
    fn a_growing_buffer_is_granted_the_copy_growth_makes() {
        let mut buf = Vec::with_capacity(1000);
        buf.extend_from_slice(&[1u8; 1000]);
        let mut memory = Recorder {
            held: 1000,
            peak: 1000,
        };
        grow_granted(&mut buf, 1000, &mut memory).unwrap();
        assert_eq!(buf.capacity(), 2000);
        // While the block moved, old and new were both resident, and both granted.
        assert_eq!((memory.held, memory.peak), (2000, 3000));
    }
}
