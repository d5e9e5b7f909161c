//! Batches: the open batch the sink appends events to, body compression, and the agent's own
//! documents (heartbeat, spool-dropped alert).

use std::io::{self, Read as _, Write as _};

use serde_json::json;

use super::config::Compression;
use crate::host::HostFacts;

/// zstd level. On 1 MiB batches of the agent's own NDJSON level 1 is both smaller and faster
/// than the default 3; the higher levels shrink the body by a few points more at a small
/// fraction of the speed.
pub(crate) const ZSTD_LEVEL: i32 = 1;

/// zstd's match-finder hash table at [`ZSTD_LEVEL`], as a power of two: 2^12 entries (16 KiB,
/// which stay in the L1 cache) instead of the level's own 2^13: on 1 MiB batches of the agent's
/// NDJSON (`zstd -b1 -B1MiB`) it compresses faster and no larger. Other levels keep zstd's own
/// tables.
pub(crate) const ZSTD_HASH_LOG: u32 = 12;

/// A zstd context at `level`, with [`ZSTD_HASH_LOG`] at the default level.
fn zstd_compressor(level: Option<i32>) -> io::Result<zstd::bulk::Compressor<'static>> {
    let level = level.unwrap_or(ZSTD_LEVEL);
    let mut c = zstd::bulk::Compressor::new(level)?;
    if level == ZSTD_LEVEL {
        c.set_parameter(zstd::stream::raw::CParameter::HashLog(ZSTD_HASH_LOG))?;
    }
    Ok(c)
}

/// gzip level.
pub(crate) const GZIP_LEVEL: u32 = 6;

pub use agent_core::wire::{Body, Encoding};

/// What the agent does with a body's [`Encoding`] (the wire contract's `Content-Encoding`):
/// its code in the spool header, compressing and decompressing.
pub trait Codec: Sized {
    /// The encoding a configured compression produces.
    fn of(c: Compression) -> Self;
    /// Its code in the spool header.
    fn code(self) -> u8;
    /// From a spool header code.
    fn from_code(code: u8) -> Option<Self>;
    /// Compresses a body at the default level.
    fn encode(self, body: &[u8]) -> io::Result<Vec<u8>> {
        self.encode_at(body, None)
    }
    /// Compresses a body at `level` (`None`: [`ZSTD_LEVEL`] or [`GZIP_LEVEL`]).
    fn encode_at(self, body: &[u8], level: Option<i32>) -> io::Result<Vec<u8>>;
    /// Decompresses a body, refusing more than `limit` bytes of output.
    fn decode(self, body: &[u8], limit: usize) -> io::Result<Vec<u8>>;
}

impl Codec for Encoding {
    fn of(c: Compression) -> Encoding {
        match c {
            Compression::Zstd => Encoding::Zstd,
            Compression::Gzip => Encoding::Gzip,
            Compression::None => Encoding::Identity,
        }
    }

    fn code(self) -> u8 {
        match self {
            Encoding::Identity => 0,
            Encoding::Zstd => 1,
            Encoding::Gzip => 2,
        }
    }

    fn from_code(code: u8) -> Option<Encoding> {
        match code {
            0 => Some(Encoding::Identity),
            1 => Some(Encoding::Zstd),
            2 => Some(Encoding::Gzip),
            _ => None,
        }
    }

    fn encode_at(self, body: &[u8], level: Option<i32>) -> io::Result<Vec<u8>> {
        match self {
            Encoding::Identity => Ok(body.to_vec()),
            Encoding::Zstd => zstd_compressor(level)?.compress(body),
            Encoding::Gzip => {
                let level = level.map_or(GZIP_LEVEL, |l| l.clamp(0, 9) as u32);
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::new(level),
                );
                enc.write_all(body)?;
                enc.finish()
            }
        }
    }

    fn decode(self, body: &[u8], limit: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let cap = limit as u64 + 1;
        match self {
            Encoding::Identity => out.extend_from_slice(body),
            Encoding::Zstd => {
                zstd::stream::read::Decoder::new(body)?
                    .take(cap)
                    .read_to_end(&mut out)?;
            }
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(body)
                    .take(cap)
                    .read_to_end(&mut out)?;
            }
        }
        if out.len() > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("body decodes to more than {limit} bytes"),
            ));
        }
        Ok(out)
    }
}

/// The NDJSON a body of kind `body` (already decompressed) holds: itself, or the compact
/// body's rendering, at most `limit` bytes.
pub fn ndjson_of(body: Body, bytes: Vec<u8>, limit: usize) -> io::Result<Vec<u8>> {
    match body {
        Body::Ndjson => Ok(bytes),
        Body::Compact => {
            let mut out = Vec::new();
            agent_core::batch::decode(&bytes, limit, &mut out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            Ok(out)
        }
    }
}

/// Compresses batch bodies with one zstd context kept from batch to batch (creating a context
/// per batch showed up in profiles), producing exactly what [`Encoding::encode`] does.
pub struct BodyEncoder {
    encoding: Encoding,
    level: Option<i32>,
    /// Created at the first zstd body, then reused.
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl std::fmt::Debug for BodyEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyEncoder")
            .field("encoding", &self.encoding)
            .field("zstd_context", &self.zstd.is_some())
            .finish()
    }
}

impl BodyEncoder {
    /// An encoder for `encoding` at `level` (`None`: the default); no zstd context is made
    /// until the first body.
    pub fn new(encoding: Encoding, level: Option<i32>) -> Self {
        BodyEncoder {
            encoding,
            level,
            zstd: None,
        }
    }

    /// The encoding it produces.
    pub(crate) fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Compresses an NDJSON body (see [`Encoding::encode`]).
    pub fn encode(&mut self, ndjson: &[u8]) -> io::Result<Vec<u8>> {
        if self.encoding != Encoding::Zstd {
            return self.encoding.encode_at(ndjson, self.level);
        }
        let zstd = match &mut self.zstd {
            Some(c) => c,
            None => self.zstd.insert(zstd_compressor(self.level)?),
        };
        zstd.compress(ndjson)
    }
}

/// The batch being filled: NDJSON lines, each ending in `\n`, or a compact body being built
/// ([`OpenBatch::compact`]).
#[derive(Debug, Default)]
pub(crate) struct OpenBatch {
    ndjson: Vec<u8>,
    events: u32,
    /// The compact body, when the sink sends them.
    compact: Option<agent_core::batch::BatchEncoder>,
    /// This batch went on as NDJSON: a document the compact body could not hold.
    fallback: bool,
}

/// A batch closed to new events, not yet spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedBatch {
    /// The body, uncompressed: NDJSON, one event per line, or a compact body (see `body`).
    pub ndjson: Vec<u8>,
    /// Number of events.
    pub events: u32,
    /// What `ndjson` holds.
    pub body: Body,
}

/// What the spool keeps of a batch beside its compressed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchInfo {
    /// Number of events.
    pub events: u32,
    /// Length of the uncompressed body.
    pub ndjson_len: usize,
    /// NDJSON or compact.
    pub body: Body,
}

impl ClosedBatch {
    /// Its [`BatchInfo`].
    pub(crate) fn info(&self) -> BatchInfo {
        BatchInfo {
            events: self.events,
            ndjson_len: self.ndjson.len(),
            body: self.body,
        }
    }
}

impl OpenBatch {
    /// An open batch that builds compact bodies ([`agent_core::batch`]).
    pub(crate) fn compact() -> Self {
        OpenBatch {
            compact: Some(agent_core::batch::BatchEncoder::new()),
            ..OpenBatch::default()
        }
    }

    /// True when it builds compact bodies (even if this batch went on as NDJSON).
    pub(crate) fn builds_compact(&self) -> bool {
        self.compact.is_some()
    }

    fn building_compact(&self) -> Option<&agent_core::batch::BatchEncoder> {
        self.compact.as_ref().filter(|_| !self.fallback)
    }

    /// Appends one event (no newline in it) and its newline.
    pub(crate) fn push(&mut self, event: &[u8]) {
        self.push_with(event, None);
    }

    /// [`OpenBatch::push`] of an event the renderer wrote with its `holes`.
    pub(crate) fn push_with(&mut self, event: &[u8], holes: Option<&agent_core::batch::Holes>) {
        if let Some(enc) = self.compact.as_mut().filter(|_| !self.fallback) {
            let pushed = match holes {
                Some(holes) => enc.push_with(event, holes),
                None => enc.push(event),
            };
            if pushed.is_ok() {
                self.events += 1;
                return;
            }
            // Not a document the compact body holds (never one the agent renders): this
            // batch goes on as NDJSON, its events so far rendered back.
            let mut body = Vec::new();
            enc.finish(&mut body);
            self.ndjson.clear();
            if agent_core::batch::decode(&body, usize::MAX, &mut self.ndjson).is_err() {
                self.ndjson.clear();
            }
            self.fallback = true;
        }
        self.ndjson.extend_from_slice(event);
        self.ndjson.push(b'\n');
        self.events += 1;
    }

    /// Bytes of body in the batch (NDJSON, or the compact body).
    pub(crate) fn bytes(&self) -> usize {
        self.building_compact()
            .map_or(self.ndjson.len(), |e| e.len())
    }

    /// Bytes of NDJSON the batch renders to.
    fn ndjson_bytes(&self) -> usize {
        self.building_compact()
            .map_or(self.ndjson.len(), |e| e.ndjson_len())
    }

    /// True when no event is in it.
    pub(crate) fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// True when adding an event of `len` bytes would pass a limit (an empty batch always takes
    /// the event, so one event larger than `max_bytes` makes a batch of its own).
    /// A compact batch counts the event's JSON length (it encodes to less), and also closes
    /// before its rendering would pass [`super::config::BATCH_MAX_BYTES_LIMIT`].
    pub(crate) fn would_overflow(&self, len: usize, max_events: usize, max_bytes: usize) -> bool {
        !self.is_empty()
            && (self.events as usize >= max_events
                || self.bytes() + len + 1 > max_bytes
                || self.ndjson_bytes() + len + 1 > super::config::BATCH_MAX_BYTES_LIMIT)
    }

    /// True when the batch reached a limit.
    pub(crate) fn is_full(&self, max_events: usize, max_bytes: usize) -> bool {
        self.events as usize >= max_events
            || self.bytes() >= max_bytes
            || self.ndjson_bytes() >= super::config::BATCH_MAX_BYTES_LIMIT
    }

    /// Hands back a buffer of an earlier batch (emptied here) to fill next, so that a new
    /// batch does not grow a fresh buffer by doubling (a compact batch writes its body into
    /// it when it closes). Only while this batch is empty.
    pub(crate) fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.ndjson.is_empty() && buffer.capacity() > self.ndjson.capacity() {
            buffer.clear();
            self.ndjson = buffer;
        }
    }

    /// Closes the batch, leaving this one empty.
    pub(crate) fn close(&mut self) -> ClosedBatch {
        let events = std::mem::take(&mut self.events);
        let fallback = std::mem::take(&mut self.fallback);
        match self.compact.as_mut() {
            Some(enc) if !fallback => {
                let mut body = std::mem::take(&mut self.ndjson);
                body.clear();
                body.reserve(enc.len() + 64);
                enc.finish(&mut body);
                ClosedBatch {
                    ndjson: body,
                    events,
                    body: Body::Compact,
                }
            }
            _ => ClosedBatch {
                ndjson: std::mem::take(&mut self.ndjson),
                events,
                body: Body::Ndjson,
            },
        }
    }
}

/// Splits NDJSON into two halves by line count, for a batch the collector found too large.
/// `None` when there are fewer than two lines.
pub(crate) fn split_lines(ndjson: &[u8]) -> Option<(ClosedBatch, ClosedBatch)> {
    let lines: Vec<&[u8]> = ndjson
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .collect();
    if lines.len() < 2 {
        return None;
    }
    let (a, b) = lines.split_at(lines.len() / 2);
    let make = |part: &[&[u8]]| ClosedBatch {
        ndjson: part
            .iter()
            .flat_map(|l| {
                let mut l = l.to_vec();
                if l.last() != Some(&b'\n') {
                    l.push(b'\n');
                }
                l
            })
            .collect(),
        events: part.len() as u32,
        body: Body::Ndjson,
    };
    Some((make(a), make(b)))
}

/// Identity stamped on the agent's own documents.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    /// `agent.id`.
    pub agent_id: String,
    /// `agent.version`.
    pub version: String,
    /// The host.
    pub facts: HostFacts,
}

fn now_rfc3339() -> String {
    crate::pipeline::wall_clock().rfc3339().to_string()
}

fn host_json(facts: &HostFacts) -> serde_json::Value {
    let mut host = serde_json::Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            host.insert(k.to_owned(), json!(v));
        }
    };
    put("hostname", facts.hostname.as_deref());
    put("id", facts.host_id.as_deref());
    let mut os = serde_json::Map::new();
    for (k, v) in [
        ("name", &facts.os_name),
        ("version", &facts.os_version),
        ("kernel", &facts.kernel),
    ] {
        if let Some(v) = v {
            os.insert(k.to_owned(), json!(v));
        }
    }
    if !os.is_empty() {
        host.insert("os".to_owned(), serde_json::Value::Object(os));
    }
    if !facts.arch.is_empty() {
        host.insert("architecture".to_owned(), json!(facts.arch));
    }
    if let Some(boot) = facts.boot_time {
        host.insert(
            "boot".to_owned(),
            json!({ "time": boot.rfc3339().to_string() }),
        );
    }
    serde_json::Value::Object(host)
}

/// The heartbeat document: `event.kind = "state"`, `event.dataset = "authtrail.heartbeat"`,
/// with the agent and host facts. One line, no newline.
pub(crate) fn heartbeat(id: &AgentIdentity) -> String {
    json!({
        "@timestamp": now_rfc3339(),
        "event": { "kind": "state", "dataset": "authtrail.heartbeat" },
        "agent": { "id": id.agent_id, "version": id.version },
        "host": host_json(&id.facts),
    })
    .to_string()
}

/// The alert that says the spool dropped batches: `event.kind = "alert"`,
/// `event.action = "spool_dropped"`, `authtrail.count` = events dropped.
pub(crate) fn spool_dropped(id: &AgentIdentity, batches: u64, events: u64) -> String {
    let mut host = serde_json::Map::new();
    if let Some(h) = &id.facts.hostname {
        host.insert("hostname".to_owned(), json!(h));
    }
    if let Some(h) = &id.facts.host_id {
        host.insert("id".to_owned(), json!(h));
    }
    json!({
        "@timestamp": now_rfc3339(),
        "event": {
            "kind": "alert",
            "action": "spool_dropped",
            "category": "process",
            "outcome": "failure",
            "dataset": "authtrail.agent",
        },
        "agent": { "id": id.agent_id, "version": id.version },
        "host": serde_json::Value::Object(host),
        "authtrail": { "count": events, "dropped_batches": batches },
        "message": format!(
            "spool full: dropped the {batches} oldest batch(es), {events} event(s), that the \
             collector had not taken"
        ),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_recycled_buffer_is_reused_empty_and_only_by_an_empty_batch() {
        let mut open = OpenBatch::default();
        open.push(b"{\"a\":1}");
        let closed = open.close();
        assert_eq!(
            closed.info(),
            BatchInfo {
                events: 1,
                ndjson_len: 8,
                body: Body::Ndjson,
            }
        );
        let mut big = closed.ndjson;
        big.reserve(1 << 16);
        let cap = big.capacity();
        open.recycle(big);
        open.push(b"{}");
        let next = open.close();
        assert_eq!(next.ndjson, b"{}\n");
        assert_eq!(next.ndjson.capacity(), cap, "the recycled buffer was used");
        // A batch already being filled keeps its own buffer and contents.
        open.push(b"{}");
        open.recycle(Vec::with_capacity(1 << 20));
        assert_eq!(open.close().ndjson, b"{}\n");
    }

    use super::*;

    #[test]
    fn every_encoding_round_trips() {
        let ndjson = b"{\"a\":1}\n{\"b\":2}\n".repeat(100);
        for e in [Encoding::Identity, Encoding::Zstd, Encoding::Gzip] {
            let body = e.encode(&ndjson).unwrap();
            assert_eq!(e.decode(&body, ndjson.len()).unwrap(), ndjson, "{e:?}");
            assert!(e.decode(&body, ndjson.len() - 1).is_err(), "{e:?} bound");
            assert_eq!(Encoding::from_code(e.code()), Some(e));
        }
        assert!(Encoding::Zstd.encode(&ndjson).unwrap().len() < ndjson.len() / 10);
    }

    #[test]
    fn reused_context_compresses_like_a_fresh_one() {
        let a = b"{\"a\":1}\n{\"b\":2}\n".repeat(100);
        let b: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
            .collect();
        for e in [Encoding::Identity, Encoding::Zstd, Encoding::Gzip] {
            let mut enc = BodyEncoder::new(e, None);
            assert_eq!(enc.encoding(), e);
            for body in [&a, &b, &a] {
                assert_eq!(enc.encode(body).unwrap(), e.encode(body).unwrap(), "{e:?}");
            }
        }
    }

    #[test]
    fn a_higher_level_is_smaller_and_decodes_the_same() {
        let ndjson: Vec<u8> = (0..2000)
            .flat_map(|i| {
                format!(
                    "{{\"n\":{i},\"user\":\"u{}\",\"ip\":\"10.0.{}.{}\"}}\n",
                    i % 37,
                    i % 7,
                    i % 251
                )
                .into_bytes()
            })
            .collect();
        for e in [Encoding::Zstd, Encoding::Gzip] {
            let low = BodyEncoder::new(e, Some(1)).encode(&ndjson).unwrap();
            let high = BodyEncoder::new(e, Some(9)).encode(&ndjson).unwrap();
            assert!(
                high.len() < low.len(),
                "{e:?}: {} vs {}",
                high.len(),
                low.len()
            );
            for body in [&low, &high] {
                assert_eq!(e.decode(body, ndjson.len()).unwrap(), ndjson);
            }
        }
    }

    #[test]
    fn a_compact_batch_renders_the_ndjson_it_was_given() {
        let docs: [&[u8]; 3] = [
            br#"{"@timestamp":"2026-11-28T00:00:02.451625Z","user":{"name":"root"},"message":"2026-11-28T00:00:02.451625+00:00 web1 sshd[1]: Failed password for root"}"#,
            br#"{"a":[1,2.5,null]}"#,
            br#"{"message":"x","n":7}"#,
        ];
        let mut open = OpenBatch::compact();
        let mut want = Vec::new();
        for d in docs {
            open.push(d);
            want.extend_from_slice(d);
            want.push(b'\n');
        }
        let closed = open.close();
        assert_eq!((closed.body, closed.events), (Body::Compact, 3));
        let ndjson = ndjson_of(closed.body, closed.ndjson, usize::MAX).unwrap();
        assert_eq!(ndjson, want);
        assert!(open.is_empty());
        // What the compact body cannot hold sends the batch as NDJSON, nothing lost.
        open.push(docs[0]);
        open.push(b"not json");
        open.push(docs[1]);
        let closed = open.close();
        assert_eq!((closed.body, closed.events), (Body::Ndjson, 3));
        let mut want = docs[0].to_vec();
        want.extend_from_slice(b"\nnot json\n");
        want.extend_from_slice(docs[1]);
        want.push(b'\n');
        assert_eq!(closed.ndjson, want);
        // And the next batch is compact again.
        open.push(docs[2]);
        assert_eq!(open.close().body, Body::Compact);
    }

    #[test]
    fn batch_limits() {
        let mut b = OpenBatch::default();
        assert!(!b.would_overflow(10_000, 2, 100), "empty takes anything");
        b.push(b"0123456789");
        assert!(!b.would_overflow(10, 2, 100));
        assert!(b.would_overflow(89, 2, 100));
        b.push(b"x");
        assert!(b.is_full(2, 100));
        assert!(b.would_overflow(1, 2, 100));
        let c = b.close();
        assert_eq!(c.ndjson, b"0123456789\nx\n");
        assert_eq!(c.events, 2);
        assert!(b.is_empty());
    }

    #[test]
    fn split_halves_keep_every_line() {
        let (a, b) = split_lines(b"1\n2\n3\n4\n5").unwrap();
        assert_eq!((a.ndjson.as_slice(), a.events), (&b"1\n2\n"[..], 2));
        assert_eq!((b.ndjson.as_slice(), b.events), (&b"3\n4\n5\n"[..], 3));
        assert!(split_lines(b"1\n").is_none());
    }

    #[test]
    fn agent_documents_are_json_without_empty_fields() {
        let id = AgentIdentity {
            agent_id: "a".into(),
            version: "0.1.0".into(),
            facts: HostFacts {
                hostname: Some("h".into()),
                os_name: None,
                os_version: None,
                kernel: Some("6.1".into()),
                arch: "x86_64".into(),
                boot_time: Some(agent_core::Timestamp::from_secs(0)),
                host_id: None,
            },
        };
        let v: serde_json::Value = serde_json::from_str(&heartbeat(&id)).unwrap();
        assert_eq!(v["event"]["dataset"], "authtrail.heartbeat");
        assert_eq!(v["host"]["os"], json!({ "kernel": "6.1" }));
        assert_eq!(v["host"]["boot"]["time"], "1970-01-01T00:00:00Z");
        assert!(v["host"].get("id").is_none());
        let v: serde_json::Value = serde_json::from_str(&spool_dropped(&id, 2, 10)).unwrap();
        assert_eq!(v["event"]["action"], "spool_dropped");
        assert_eq!(v["authtrail"]["count"], 10);
    }
}
