//! The spool: closed batches on disk, in sequence order, until the collector takes them.
//!
//! Layout of `state-dir/spool/`:
//! - `<seq, 20 digits>.batch`: one batch (format below);
//! - `next-seq`: the stream and the next batch sequence number in it,
//!   `authtrail next-seq v2\n<stream UUID>\n<n>\n`;
//! - `dead-letter/<seq>.batch` and `<seq>.reason`: batches the collector could not read (400),
//!   and the events of a batch it refused one by one (the wire contract), with why; at most
//!   [`DEAD_LETTER_MAX`] are kept (the oldest go first);
//! - `.<seq>.tmp`: a write in progress; removed at start.
//!
//! Batch file, version 2, integers little-endian, [`HEADER_LEN`] bytes of header then the body:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 4  | magic `ATSB` |
//! | 4  | 2  | version (1) |
//! | 6  | 1  | encoding: 0 none, 1 zstd, 2 gzip |
//! | 7  | 1  | flags: bit 0 = the agent's own document (heartbeat), not events from a log; bit 1 = a compact body (`application/vnd.authtrail.batch`), not NDJSON |
//! | 8  | 8  | sequence number |
//! | 16 | 8  | sequence of the batch this is half of after a 413 (0: none) |
//! | 24 | 4  | events (NDJSON lines) |
//! | 28 | 4  | uncompressed body bytes |
//! | 32 | 8  | created, Unix seconds |
//! | 40 | 8  | body length |
//! | 48 | 16 | stream (UUID) the sequence number belongs to |
//! | 64 | 32 | SHA-256 of bytes 0..64 followed by the body |
//!
//! A version 1 file (80 bytes of header: no stream, the digest at 48) is read as belonging to
//! the spool's current stream.
//!
//! A file whose length is not exactly header plus body, or whose magic, version, sequence (it
//! must match the file name) or digest is wrong, is discarded with a warning.
//!
//! **Durability.** A batch is written to `.<seq>.tmp`, fsync'd, renamed to its name, and the
//! directory fsync'd, all before [`Spool::push`] returns, which is before the sink's commit
//! returns and so before any source checkpoint moves past its events. A crash at any point
//! leaves either no batch file (the events are read again from the logs) or a complete one (it
//! is sent after the restart, with its sequence number). A damaged file can therefore only come
//! from the disk itself; its events were already checkpointed and are lost, which the warning
//! says.
//!
//! **Streams and sequence numbers.** A batch is known to the collector by (agent id, stream,
//! sequence). The stream is a random UUID made together with the counter and kept with it in
//! `next-seq`; each batch file records the stream its number belongs to. A missing or
//! unreadable `next-seq` (a state directory lost, reset or restored from an image) starts a new
//! stream, so a number is never reused for different content in one stream, and nothing is
//! ever skipped as a "duplicate" by mistake. Within a stream the next number is the largest of
//! `next-seq`, the highest spooled and the highest dead-lettered sequence, plus one. So a number
//! is safe as long as its batch file is in the spool (or in `dead-letter/`); only when a batch
//! file at or above the number `next-seq` holds is about to be deleted (sent, dropped,
//! discarded, split) is `next-seq` first made durable (temp, fsync, rename, directory fsync)
//! with every number handed out so far and [`SEQ_RESERVE`] more: the numbers below what it
//! holds are covered without their files, so a live log, whose batches are sent and deleted
//! one by one, rewrites it once every [`SEQ_RESERVE`] batches, not once per batch. A restart
//! starts above the reserve (the unused numbers are skipped). A number can be skipped (a crash
//! before its batch file is renamed into place: it was never sent); the collector needs them
//! unique, not contiguous. With the spool disabled (batches in memory only) `next-seq` is
//! written before a number above what it holds is used (with the same reserve), as nothing on
//! disk would cover it.
//!
//! **In memory** ([`Spool::in_memory`], `[sink.buffer] type = "memory"`): the batches, headers
//! and all, are records of agent-core's [`ByteRing`], allocated once at start; nothing is
//! written to disk per batch and `next-seq` is neither read nor written. Numbers are in a
//! stream made at start, above the numbers of the batches noted in flight by the process before
//! ([`super::in_flight`]: those are taken back with [`Spool::adopt`] under their own stream and
//! numbers and sent again first) and above the checkpoints' mark; everything else is read again
//! from the logs and batched afresh in the new stream, where it can be neither refused as a
//! conflict nor skipped as a duplicate of something numbered before. A full ring refuses the batch ([`PushError::Full`]: reading
//! pauses), except that [`MEMORY_RESERVE_DIV`] of it is kept for batches of alerts
//! ([`Origin::Alert`]), so that ordinary events never crowd out an alert.
//!
//! **Conflicts (409).** Should the collector still hold other content under a batch's key (a
//! `next-seq` restored from an old copy), it answers 409 and stores nothing: [`Spool::restream`]
//! starts a new stream and gives the batch a number in it (written like a split half, see
//! below, so a crash in between leaves the original), and it is sent again. Never deleted.
//!
//! Deleting a sent batch is not followed by a directory fsync: if a crash undoes the deletion,
//! the batch is sent again and the collector answers "duplicate".
//!
//! **Splitting (413).** The halves get fresh sequence numbers and carry the original's number
//! in `split of`; both are made durable before the original is deleted. If the agent dies in
//! between, the start-up scan finds halves whose original still exists and deletes the halves
//! (none of them was sent: the shipper sends nothing else until the split is done), so the
//! original is sent, refused and split again: no event reaches the collector under two
//! sequence numbers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use uuid::Uuid;

use agent_core::ring::{ByteRing, framed_len};

use super::batch::{BatchInfo, Body, ClosedBatch, Codec, Encoding};
use super::config::SpoolPolicy;
use crate::durable::{DurableFile, sync_dir};

/// Spool file magic.
pub(crate) const MAGIC: [u8; 4] = *b"ATSB";
/// Spool file format version.
pub(crate) const VERSION: u16 = 2;
/// Header bytes before the body.
pub(crate) const HEADER_LEN: usize = 96;
/// Header bytes of a version 1 file (no stream).
pub(crate) const HEADER_LEN_V1: usize = 80;
/// Header flag: the batch holds the agent's own document (a heartbeat), not events read from a
/// log; [`Spool::discard_after`] keeps it and [`Spool::next_to_send`] does not hold it back.
pub const FLAG_AGENT_DOC: u8 = 1;
/// Flag: the body is a compact batch body ([`Body::Compact`]), not NDJSON.
pub const FLAG_COMPACT: u8 = 2;
/// The sequence file's name.
pub(crate) const SEQ_FILE: &str = "next-seq";
/// The dead-letter folder's name.
pub(crate) const DEAD_LETTER_DIR: &str = "dead-letter";
/// Most batches kept in `dead-letter/`; the oldest are deleted beyond this.
pub(crate) const DEAD_LETTER_MAX: usize = 100;

/// Sequence numbers reserved by each write of `next-seq` (see the module docs).
pub const SEQ_RESERVE: u64 = 64;

/// The share of a memory buffer kept for batches of alerts: 1/8 of `buffer.max-bytes`.
pub const MEMORY_RESERVE_DIV: usize = 8;

const SEQ_HEADER: &str = "authtrail next-seq v2";

/// One batch as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledBatch {
    /// `Authtrail-Stream`: the stream `seq` belongs to (nil in a version 1 file until the
    /// spool fills in its current stream).
    pub stream: Uuid,
    /// `Authtrail-Batch-Seq`.
    pub seq: u64,
    /// How the body is compressed.
    pub encoding: Encoding,
    /// The sequence this is half of, 0 if none.
    pub split_of: u64,
    /// [`FLAG_AGENT_DOC`], [`FLAG_COMPACT`], or 0.
    pub flags: u8,
    /// Events in the body.
    pub events: u32,
    /// Uncompressed body length.
    pub ndjson_len: u32,
    /// Created, Unix seconds.
    pub created: i64,
    /// The body as sent.
    pub body: Vec<u8>,
}

impl SpooledBatch {
    /// What the body is, once decompressed.
    pub fn body_kind(&self) -> Body {
        if self.flags & FLAG_COMPACT != 0 {
            Body::Compact
        } else {
            Body::Ndjson
        }
    }

    /// The batch's events as NDJSON (decompressed, and rendered when compact), at most
    /// `limit` bytes of each.
    pub fn ndjson(&self, limit: usize) -> io::Result<Vec<u8>> {
        let bytes = self.encoding.decode(&self.body, limit)?;
        super::batch::ndjson_of(self.body_kind(), bytes, limit)
    }

    /// The batch file's bytes: header then body.
    pub(crate) fn to_file_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.push(self.encoding.code());
        out.push(self.flags);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.split_of.to_le_bytes());
        out.extend_from_slice(&self.events.to_le_bytes());
        out.extend_from_slice(&self.ndjson_len.to_le_bytes());
        out.extend_from_slice(&self.created.to_le_bytes());
        out.extend_from_slice(&(self.body.len() as u64).to_le_bytes());
        out.extend_from_slice(self.stream.as_bytes());
        let digest = digest(&out, &self.body);
        out.extend_from_slice(&digest);
        out.extend_from_slice(&self.body);
        out
    }

    /// Parses and checks a batch file. The error says what is wrong (never echoes content).
    pub fn from_file_bytes(bytes: &[u8]) -> Result<SpooledBatch, &'static str> {
        let start = bytes.get(..8).ok_or("shorter than the header")?;
        if start[0..4] != MAGIC {
            return Err("bad magic");
        }
        let header_len = match u16::from_le_bytes([start[4], start[5]]) {
            VERSION => HEADER_LEN,
            1 => HEADER_LEN_V1,
            _ => return Err("unknown format version"),
        };
        let header = bytes.get(..header_len).ok_or("shorter than the header")?;
        let digest_at = header_len - 32;
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |o: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&header[o..o + 4]);
            u32::from_le_bytes(b)
        };
        let encoding = Encoding::from_code(header[6]).ok_or("unknown encoding")?;
        let body_len = u64_at(40);
        if body_len != (bytes.len() - header_len) as u64 {
            return Err("length does not match the header (torn write)");
        }
        let body = &bytes[header_len..];
        if digest(&header[..digest_at], body)[..] != header[digest_at..] {
            return Err("checksum mismatch");
        }
        let mut stream = [0u8; 16];
        if header_len == HEADER_LEN {
            stream.copy_from_slice(&header[48..64]);
        }
        Ok(SpooledBatch {
            stream: Uuid::from_bytes(stream),
            seq: u64_at(8),
            encoding,
            split_of: u64_at(16),
            flags: header[7],
            events: u32_at(24),
            ndjson_len: u32_at(28),
            created: u64_at(32) as i64,
            body: body.to_vec(),
        })
    }
}

fn digest(header: &[u8], body: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(header);
    ctx.update(body);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The file name of a batch.
pub(crate) fn file_name(seq: u64) -> String {
    format!("{seq:020}.batch")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".batch")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Why a push was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PushError {
    /// Policy `block` and no room.
    #[error(
        "spool full: {bytes} of {max} bytes in {batches} batch(es) not yet taken by the \
         collector; policy `block` holds new events back (reading pauses, the logs are the \
         buffer)"
    )]
    Full {
        /// Bytes spooled.
        bytes: u64,
        /// The bound.
        max: u64,
        /// Batches spooled.
        batches: usize,
    },
    /// Writing failed.
    #[error("writing the spool in {}: {source}", .dir.display())]
    Io {
        /// The spool directory.
        dir: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// Why a spooled batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum LoadError {
    /// The file could not be read (kept; try again later).
    #[error("{0}")]
    Io(String),
    /// The file was damaged and has been removed.
    #[error("{0}")]
    Discarded(String),
}

/// Who made a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A pipeline commit: events read from logs, under the checkpoint handshake.
    Pipeline,
    /// The agent itself (a heartbeat).
    Agent,
    /// A pipeline commit's batch of detection alerts: as [`Origin::Pipeline`], and in a memory
    /// buffer it may use the share kept for alerts.
    Alert,
}

impl Origin {
    fn flags(self) -> u8 {
        match self {
            Origin::Pipeline | Origin::Alert => 0,
            Origin::Agent => FLAG_AGENT_DOC,
        }
    }
}

/// What a successful push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pushed {
    /// The sequence number given to the batch.
    pub seq: u64,
    /// Batches dropped to make room (policy `drop-oldest`).
    pub dropped_batches: u64,
    /// Their events.
    pub dropped_events: u64,
}

#[derive(Debug)]
struct Entry {
    size: u64,
    events: u32,
    /// Not made by a pipeline commit (a heartbeat, or half of a batch already released), so
    /// neither held back nor discarded by the checkpoint handshake.
    exempt: bool,
    /// With the spool disabled, the batch itself (it is never written).
    memory: Option<Arc<Vec<u8>>>,
    /// The lowest pipeline batch whose events this one carries: its own sequence, or for a
    /// split half or a batch sent again under a new stream, the original's.
    covers: u64,
}

/// The batches of a memory buffer ([`Spool::in_memory`]).
#[derive(Debug)]
struct RingStore {
    ring: ByteRing<Box<[u8]>>,
    /// The sequence number of each record, front first.
    seqs: VecDeque<u64>,
    /// Records no longer wanted (sent, split) behind a front record that still waits: their
    /// room comes back when everything before them is gone too.
    gone: BTreeSet<u64>,
    /// Bytes only a batch of alerts may take.
    reserve: usize,
}

impl RingStore {
    /// True when a batch file of `size` bytes fits (`priority`: into the reserve too).
    fn fits(&self, size: usize, priority: bool) -> bool {
        let reserve = if priority { 0 } else { self.reserve };
        framed_len(size) + reserve <= self.ring.free()
    }

    fn get(&self, seq: u64) -> Option<Vec<u8>> {
        let at = self.seqs.binary_search(&seq).ok()?;
        if self.gone.contains(&seq) {
            return None;
        }
        self.ring.iter().nth(at).map(|(a, b)| [a, b].concat())
    }

    fn release(&mut self, seq: u64) {
        self.gone.insert(seq);
        while let Some(front) = self.seqs.front()
            && self.gone.remove(front)
        {
            self.seqs.pop_front();
            self.ring.pop();
        }
    }
}

/// When [`Spool::push`] syncs the spool directory, which makes the batch file's name durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntrySync {
    /// Before it returns: the batch is durable then.
    Now,
    /// Not yet, for one of several batches spooled together: the file is synced, its directory
    /// entry is not, and [`Spool::sync_entries`] must return `Ok` before anything relies on
    /// the batch (before checkpoints advance past its events).
    Deferred,
}

/// The spool (see the module docs).
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    durable: bool,
    index: BTreeMap<u64, Entry>,
    bytes: u64,
    max_bytes: u64,
    policy: SpoolPolicy,
    /// The stream new batches are numbered in (`next-seq`).
    stream: Uuid,
    next_seq: u64,
    /// What `next-seq` durably holds: numbers below it are covered even with no file left.
    persisted_seq: u64,
    /// Batch files renamed into place by [`Spool::push`] with [`EntrySync::Deferred`] whose
    /// directory entries are not synced yet.
    entries_unsynced: bool,
    /// A memory buffer's ring; `None` on disk and with the spool disabled.
    ring: Option<RingStore>,
}

impl Spool {
    /// Opens (creating) the spool in `dir`. With `durable` false, batches stay in memory (the
    /// spool is disabled) and only `next-seq` is kept on disk. Returns the warnings of the
    /// start-up scan (discarded files).
    pub(crate) fn open(
        dir: &Path,
        durable: bool,
        max_bytes: u64,
        policy: SpoolPolicy,
    ) -> io::Result<(Spool, Vec<String>)> {
        let annotate =
            |e: io::Error, p: &Path| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
        let dead = dir.join(DEAD_LETTER_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dead)
            .map_err(|e| annotate(e, &dead))?;
        let mut warnings = Vec::new();
        let mut index = BTreeMap::new();
        let mut children: Vec<(u64, u64)> = Vec::new();
        let mut highest = 0u64;
        for entry in fs::read_dir(dir).map_err(|e| annotate(e, dir))? {
            let entry = entry.map_err(|e| annotate(e, dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
                warnings.push(format!(
                    "removed {}, a spool write cut short by a crash; its events were never \
                     checkpointed and are read again from the source",
                    path.display()
                ));
                continue;
            }
            let Some(seq) = parse_name(name) else {
                continue;
            };
            // An unreadable file stops the start (permissions and I/O errors are for the
            // operator to fix); only a file that reads but does not check out is discarded.
            let bytes = fs::read(&path).map_err(|e| annotate(e, &path))?;
            let checked = SpooledBatch::from_file_bytes(&bytes).and_then(|b| {
                if b.seq == seq {
                    Ok((b, bytes.len() as u64))
                } else {
                    Err("sequence does not match the file name")
                }
            });
            match checked {
                Ok((b, size)) => {
                    highest = highest.max(seq);
                    if b.split_of != 0 {
                        children.push((seq, b.split_of));
                    }
                    index.insert(
                        seq,
                        Entry {
                            size,
                            events: b.events,
                            exempt: b.flags & FLAG_AGENT_DOC != 0 || b.split_of != 0,
                            memory: None,
                            covers: if b.flags & FLAG_AGENT_DOC != 0 {
                                0
                            } else if b.split_of != 0 {
                                b.split_of
                            } else {
                                seq
                            },
                        },
                    );
                }
                Err(why) => {
                    highest = highest.max(seq);
                    let _ = fs::remove_file(&path);
                    warnings.push(format!(
                        "discarded spool file {} ({why}). A batch file is renamed into place \
                         only once complete and fsync'd, before checkpoints advance, so an \
                         interrupted write's events are read again from the source; a file \
                         damaged later by the disk loses its events",
                        path.display()
                    ));
                }
            }
        }
        // Halves of an interrupted split: the original is still here, so drop the halves.
        for (child, parent) in children {
            if index.contains_key(&parent) {
                let _ = fs::remove_file(dir.join(file_name(child)));
                index.remove(&child);
                warnings.push(format!(
                    "removed batch {child}, half of batch {parent} whose split was interrupted; \
                     batch {parent} is sent (and split) again"
                ));
            }
        }
        if let Ok(rd) = fs::read_dir(&dead) {
            for e in rd.flatten() {
                if let Some(seq) = e.file_name().to_str().and_then(parse_name) {
                    highest = highest.max(seq);
                }
            }
        }
        let seq_path = dir.join(SEQ_FILE);
        // The stream and counter; a new stream when they are missing or unreadable, so a number
        // is never handed out twice in one stream whatever happened to this directory.
        let stored = match fs::read_to_string(&seq_path) {
            Ok(text) => {
                let parsed = parse_seq_file(&text);
                if parsed.is_none() {
                    warnings.push(format!(
                        "{} is unreadable; batches from now on go in a new stream (the \
                         collector tells streams apart, so nothing already sent is mistaken for \
                         a new batch or the other way round)",
                        seq_path.display()
                    ));
                }
                parsed
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(annotate(e, &seq_path)),
        };
        let (stream, stored, new_stream) = match stored {
            Some((stream, n)) => (stream, n, false),
            None => (Uuid::new_v4(), 1, true),
        };
        let bytes = index.values().map(|e| e.size).sum();
        let mut spool = Spool {
            dir: dir.to_owned(),
            durable,
            index,
            bytes,
            max_bytes,
            policy,
            stream,
            next_seq: stored.max(highest + 1).max(1),
            persisted_seq: stored,
            entries_unsynced: false,
            ring: None,
        };
        if new_stream {
            // Durable before any batch is numbered in it.
            write_seq_file(dir, spool.stream, spool.next_seq, true)
                .map_err(|e| annotate(e, &seq_path))?;
            spool.persisted_seq = spool.next_seq;
        }
        Ok((spool, warnings))
    }

    /// A memory buffer of `max_bytes` (allocated here, once) in a stream of its own (see the
    /// module docs). Nothing is read from or written to `dir` but `dead-letter/`. Returns, as
    /// warnings, batch files left in `dir` by the disk buffer: they stay there, unsent.
    pub(crate) fn in_memory(dir: &Path, max_bytes: usize) -> io::Result<(Spool, Vec<String>)> {
        let dead = dir.join(DEAD_LETTER_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dead)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dead.display())))?;
        let left = fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_str().and_then(parse_name).is_some())
                    .count()
            })
            .unwrap_or(0);
        let mut warnings = Vec::new();
        if left > 0 {
            warnings.push(format!(
                "{left} batch file(s) left in {} by the disk buffer are not sent by the memory \
                 buffer; set [sink.buffer] type = \"disk\" until they are gone to send them",
                dir.display()
            ));
        }
        let spool = Spool {
            dir: dir.to_owned(),
            durable: false,
            index: BTreeMap::new(),
            bytes: 0,
            max_bytes: max_bytes as u64,
            policy: SpoolPolicy::Block,
            stream: Uuid::new_v4(),
            next_seq: 1,
            persisted_seq: u64::MAX,
            entries_unsynced: false,
            ring: Some(RingStore {
                ring: ByteRing::with_capacity(max_bytes),
                seqs: VecDeque::new(),
                gone: BTreeSet::new(),
                reserve: max_bytes / MEMORY_RESERVE_DIV,
            }),
        };
        Ok((spool, warnings))
    }

    /// With a memory buffer: the highest sequence number up to which every pipeline batch has
    /// left it (acknowledged, or put aside in `dead-letter/`). `None` for the other spools.
    pub(crate) fn acknowledged(&self) -> Option<u64> {
        self.ring.as_ref()?;
        let waiting = self
            .index
            .values()
            .filter(|e| e.covers != 0)
            .map(|e| e.covers)
            .min();
        Some(waiting.unwrap_or(self.next_seq).saturating_sub(1))
    }

    /// The lowest pipeline batch whose events batch `seq` carries (its own number, or a split
    /// half's or re-streamed copy's original); 0 for a heartbeat; `None` when it is gone.
    pub(crate) fn covers(&self, seq: u64) -> Option<u64> {
        self.index.get(&seq).map(|e| e.covers)
    }

    /// With a memory buffer: the batch files (header and body, as sent) of every waiting batch
    /// that carries events from pipeline batches up to `end`, in sequence order (heartbeats
    /// left out). What the in-flight note holds ([`super::in_flight`]).
    pub(crate) fn memory_batches_up_to(&self, end: u64) -> Vec<(u64, Vec<u8>)> {
        let Some(r) = &self.ring else {
            return Vec::new();
        };
        self.index
            .iter()
            .filter(|(_, e)| e.covers != 0 && e.covers <= end)
            .filter_map(|(seq, _)| Some((*seq, r.get(*seq)?)))
            .collect()
    }

    /// With a memory buffer, at start: takes the batches an earlier process noted in flight
    /// ([`super::in_flight`]), under their own streams and numbers, ahead of everything, and
    /// numbers new batches after `at_least` and after them. False (nothing taken) when they do
    /// not all fit, or on another spool.
    pub(crate) fn adopt(&mut self, batches: &[SpooledBatch], at_least: u64) -> bool {
        let Some(r) = &mut self.ring else {
            return false;
        };
        let files: Vec<Vec<u8>> = batches.iter().map(SpooledBatch::to_file_bytes).collect();
        let need: usize = files.iter().map(|f| framed_len(f.len())).sum();
        let ascending = batches.windows(2).all(|w| w[0].seq < w[1].seq);
        if !self.index.is_empty() || need > r.ring.free() || !ascending {
            return false;
        }
        for (b, file) in batches.iter().zip(files) {
            if r.ring.push(&file).is_err() {
                return false;
            }
            r.seqs.push_back(b.seq);
            let half = b.split_of != 0;
            self.index.insert(
                b.seq,
                Entry {
                    size: file.len() as u64,
                    events: b.events,
                    exempt: b.flags & FLAG_AGENT_DOC != 0 || half,
                    memory: None,
                    covers: if half { b.split_of } else { b.seq },
                },
            );
            self.bytes += file.len() as u64;
        }
        let last = batches.last().map_or(0, |b| b.seq);
        self.next_seq = self.next_seq.max(at_least.max(last) + 1);
        true
    }

    /// The spool directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Batches waiting.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no batch waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes waiting (headers included).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The sequence the next batch will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The stream new batches are numbered in.
    pub(crate) fn stream(&self) -> Uuid {
        self.stream
    }

    /// The oldest waiting batch.
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.index.keys().next().copied()
    }

    /// The oldest batch that may be sent: with `released` set, pipeline batches above it wait
    /// (their checkpoints are not persisted yet); heartbeats and split halves never wait.
    #[cfg(test)]
    pub(crate) fn next_to_send(&self, released: Option<u64>) -> Option<u64> {
        self.next_to_send_except(released, &BTreeSet::new())
    }

    /// [`Spool::next_to_send`], leaving out the batches in `busy` (being sent).
    pub(crate) fn next_to_send_except(
        &self,
        released: Option<u64>,
        busy: &BTreeSet<u64>,
    ) -> Option<u64> {
        self.index
            .iter()
            .find(|(seq, e)| {
                (e.exempt || released.is_none_or(|r| **seq <= r)) && !busy.contains(seq)
            })
            .map(|(seq, _)| *seq)
    }

    /// Deletes the pipeline batches above `mark` (spooled after the last persisted checkpoint:
    /// their events are read again). Returns their sequence numbers.
    pub(crate) fn discard_after(&mut self, mark: u64) -> Vec<u64> {
        let doomed: Vec<u64> = self
            .index
            .range(mark.saturating_add(1)..)
            .filter(|(_, e)| !e.exempt)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &doomed {
            self.forget(*seq);
        }
        if !doomed.is_empty() && self.durable {
            let _ = sync_dir(&self.dir);
        }
        doomed
    }

    /// Syncs the spool directory if batch files were renamed into it with
    /// [`EntrySync::Deferred`] since the last sync; a no-op otherwise.
    pub(crate) fn sync_entries(&mut self) -> io::Result<()> {
        if self.entries_unsynced {
            sync_dir(&self.dir)?;
            self.entries_unsynced = false;
        }
        Ok(())
    }

    /// Spools a batch: gives it the next sequence number and makes it durable (its directory
    /// entry only at [`Spool::sync_entries`] with [`EntrySync::Deferred`]). When the spool is
    /// full, `drop-oldest` deletes the oldest batches first (reported in [`Pushed`]) and `block`
    /// refuses. A batch larger than the whole bound is taken when the spool is empty.
    pub(crate) fn push(
        &mut self,
        encoding: Encoding,
        batch: BatchInfo,
        body: &[u8],
        origin: Origin,
        entry: EntrySync,
    ) -> Result<Pushed, PushError> {
        let size = (HEADER_LEN + body.len()) as u64;
        let mut pushed = Pushed::default();
        if let Some(r) = &self.ring
            && !r.fits(HEADER_LEN + body.len(), origin == Origin::Alert)
        {
            return Err(PushError::Full {
                bytes: self.bytes,
                max: self.max_bytes,
                batches: self.index.len(),
            });
        }
        while self.ring.is_none() && self.bytes + size > self.max_bytes && !self.index.is_empty() {
            match self.policy {
                SpoolPolicy::Block => {
                    return Err(PushError::Full {
                        bytes: self.bytes,
                        max: self.max_bytes,
                        batches: self.index.len(),
                    });
                }
                SpoolPolicy::DropOldest => {
                    if let Some(seq) = self.oldest()
                        && let Some(e) = self.forget(seq)
                    {
                        pushed.dropped_batches += 1;
                        pushed.dropped_events += u64::from(e.events);
                    }
                }
            }
        }
        pushed.seq = self
            .write(
                encoding,
                batch,
                body.to_vec(),
                0,
                origin.flags() | compact_flag(batch.body),
                entry,
            )
            .map_err(|source| PushError::Io {
                dir: self.dir.clone(),
                source,
            })?;
        Ok(pushed)
    }

    fn write(
        &mut self,
        encoding: Encoding,
        batch: BatchInfo,
        body: Vec<u8>,
        split_of: u64,
        flags: u8,
        entry: EntrySync,
    ) -> io::Result<u64> {
        let seq = self.next_seq;
        if !self.durable && self.ring.is_none() && seq >= self.persisted_seq {
            write_seq_file(&self.dir, self.stream, seq + SEQ_RESERVE, true)?;
            self.persisted_seq = seq + SEQ_RESERVE;
        }
        self.next_seq = seq + 1;
        // Heartbeats carry no events; a half or a re-streamed copy carries its original's.
        let covers = if flags & FLAG_AGENT_DOC != 0 {
            0
        } else if split_of != 0 {
            self.index.get(&split_of).map_or(split_of, |e| e.covers)
        } else {
            seq
        };
        let spooled = SpooledBatch {
            stream: self.stream,
            seq,
            encoding,
            split_of,
            flags,
            events: batch.events,
            ndjson_len: u32::try_from(batch.ndjson_len).unwrap_or(u32::MAX),
            created: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            body,
        };
        let bytes = spooled.to_file_bytes();
        let size = bytes.len() as u64;
        let memory = if let Some(r) = &mut self.ring {
            if r.ring.push(&bytes).is_err() {
                self.next_seq = seq;
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!(
                        "the memory buffer has no room for a batch of {size} bytes ({} free)",
                        r.ring.free()
                    ),
                ));
            }
            r.seqs.push_back(seq);
            None
        } else if self.durable {
            let tmp = format!(".{seq:020}.tmp");
            SPOOL_FILE
                .temp_name(&tmp)
                .write(&self.dir.join(file_name(seq)), &bytes)?;
            self.entries_unsynced = true;
            if entry == EntrySync::Now {
                self.sync_entries()?;
            }
            None
        } else {
            Some(Arc::new(bytes))
        };
        self.index.insert(
            seq,
            Entry {
                size,
                events: batch.events,
                exempt: flags & FLAG_AGENT_DOC != 0 || split_of != 0,
                memory,
                covers,
            },
        );
        self.bytes += size;
        Ok(seq)
    }

    /// Reads a waiting batch. `Ok(None)` when it is gone (sent, dropped).
    pub(crate) fn load(&mut self, seq: u64) -> Result<Option<SpooledBatch>, LoadError> {
        let Some(entry) = self.index.get(&seq) else {
            return Ok(None);
        };
        let path = self.dir.join(file_name(seq));
        let in_ring = self.ring.as_ref().map(|r| r.get(seq));
        let bytes = match (&entry.memory, in_ring) {
            (_, Some(Some(b))) => b,
            (_, Some(None)) => {
                self.forget(seq);
                return Ok(None);
            }
            (Some(m), None) => m.as_ref().clone(),
            (None, None) => match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.forget(seq);
                    return Ok(None);
                }
                Err(e) => {
                    return Err(LoadError::Io(format!(
                        "reading spool file {}: {e}",
                        path.display()
                    )));
                }
            },
        };
        let checked = SpooledBatch::from_file_bytes(&bytes).and_then(|b| {
            if b.seq == seq {
                Ok(b)
            } else {
                Err("sequence does not match the file name")
            }
        });
        match checked {
            Ok(mut b) => {
                if b.stream.is_nil() {
                    b.stream = self.stream;
                }
                Ok(Some(b))
            }
            Err(why) => {
                self.forget(seq);
                Err(LoadError::Discarded(format!(
                    "discarded spool file {} ({why}): damaged after it was written; its events \
                     are lost",
                    path.display()
                )))
            }
        }
    }

    /// Deletes a batch (the collector took it). False if it was not there.
    pub(crate) fn remove(&mut self, seq: u64) -> bool {
        self.forget(seq).is_some()
    }

    fn forget(&mut self, seq: u64) -> Option<Entry> {
        let e = self.index.remove(&seq)?;
        self.bytes -= e.size;
        if let Some(r) = &mut self.ring {
            r.release(seq);
        } else if e.memory.is_none() {
            // The file is what keeps its number (and those below) from being reused; make
            // `next-seq` cover them first (see the module docs). If that fails, keep the file:
            // it is sent again later (a duplicate) rather than its number given out twice.
            if seq >= self.persisted_seq {
                let reserved = self.next_seq + SEQ_RESERVE;
                match write_seq_file(&self.dir, self.stream, reserved, true) {
                    Ok(()) => self.persisted_seq = reserved,
                    Err(_) => return Some(e),
                }
            }
            let _ = fs::remove_file(self.dir.join(file_name(seq)));
        }
        Some(e)
    }

    /// Moves a batch to `dead-letter/` with a `.reason` file beside it.
    pub(crate) fn dead_letter(&mut self, seq: u64, reason: &str) -> io::Result<PathBuf> {
        let dead = self.dir.join(DEAD_LETTER_DIR);
        let target = dead.join(file_name(seq));
        let in_ring = self.ring.as_ref().and_then(|r| r.get(seq));
        let Some(entry) = self.index.remove(&seq) else {
            return Ok(target);
        };
        self.bytes -= entry.size;
        if let Some(r) = &mut self.ring {
            r.release(seq);
        }
        match (&entry.memory, in_ring) {
            (_, Some(b)) => SPOOL_FILE.write(&target, &b)?,
            (Some(m), None) => SPOOL_FILE.write(&target, m)?,
            (None, None) => fs::rename(self.dir.join(file_name(seq)), &target)?,
        }
        let _ = fs::write(dead.join(format!("{seq:020}.reason")), reason);
        sync_dir(&dead)?;
        sync_dir(&self.dir)?;
        bound_dead_letters(&dead)?;
        Ok(target)
    }

    /// After a 409 (the collector holds other content under this batch's key): starts a new
    /// stream (made durable in `next-seq` first) and gives the batch a number in it, the copy
    /// durable before the original is deleted (a crash in between keeps the original, as for a
    /// split). Returns the new sequence number, or `None` when the batch is gone.
    pub(crate) fn restream(&mut self, batch: &SpooledBatch) -> io::Result<Option<u64>> {
        if !self.index.contains_key(&batch.seq) {
            return Ok(None);
        }
        self.stream = Uuid::new_v4();
        if self.ring.is_none() {
            write_seq_file(&self.dir, self.stream, self.next_seq, true)?;
            self.persisted_seq = self.next_seq;
        }
        let info = BatchInfo {
            events: batch.events,
            ndjson_len: batch.ndjson_len as usize,
            body: batch.body_kind(),
        };
        let seq = self.write(
            batch.encoding,
            info,
            batch.body.clone(),
            batch.seq,
            batch.flags,
            EntrySync::Now,
        )?;
        self.remove(batch.seq);
        Ok(Some(seq))
    }

    /// Keeps the events of batch `seq` that the collector refused (the rest was stored) in
    /// `dead-letter/`: `ndjson` holds them, `reason` says which lines and why. Bounded like
    /// [`Spool::dead_letter`]. The batch itself stays in the spool (the caller removes it).
    pub(crate) fn keep_rejected(
        &mut self,
        seq: u64,
        ndjson: &[u8],
        reason: &str,
    ) -> io::Result<PathBuf> {
        let dead = self.dir.join(DEAD_LETTER_DIR);
        let target = dead.join(file_name(seq));
        let kept = SpooledBatch {
            stream: self.stream,
            seq,
            encoding: Encoding::Identity,
            split_of: 0,
            flags: 0,
            events: ndjson
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count() as u32,
            ndjson_len: u32::try_from(ndjson.len()).unwrap_or(u32::MAX),
            created: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            body: ndjson.to_vec(),
        };
        SPOOL_FILE.write(&target, &kept.to_file_bytes())?;
        let _ = fs::write(dead.join(format!("{seq:020}.reason")), reason);
        sync_dir(&dead)?;
        bound_dead_letters(&dead)?;
        Ok(target)
    }

    /// Replaces a batch by two halves with fresh sequence numbers: the halves are durable
    /// before the original is deleted (see the module docs). Returns their sequences, or
    /// `None` when the original is gone. The halves are compressed at `level` (`None`: the
    /// default).
    pub(crate) fn split(
        &mut self,
        seq: u64,
        encoding: Encoding,
        level: Option<i32>,
        halves: [ClosedBatch; 2],
    ) -> io::Result<Option<(u64, u64)>> {
        if !self.index.contains_key(&seq) {
            return Ok(None);
        }
        let [a, b] = halves;
        let body_a = encoding.encode_at(&a.ndjson, level)?;
        let body_b = encoding.encode_at(&b.ndjson, level)?;
        // One directory sync, after the second half, makes both durable.
        let sa = self.write(encoding, a.info(), body_a, seq, 0, EntrySync::Deferred)?;
        let sb = self.write(encoding, b.info(), body_b, seq, 0, EntrySync::Now)?;
        self.remove(seq);
        Ok(Some((sa, sb)))
    }
}

/// The stream and the next number, from `next-seq`; `None` when it cannot be read (or is a
/// version 1 file, which names no stream): then a new stream starts.
fn parse_seq_file(text: &str) -> Option<(Uuid, u64)> {
    let mut lines = text.lines();
    (lines.next()? == SEQ_HEADER).then_some(())?;
    let stream = Uuid::try_parse(lines.next()?.trim()).ok()?;
    let n: u64 = lines.next()?.trim().parse().ok()?;
    lines.next().is_none().then_some((stream, n))
}

/// How the spool writes its files (`crate::durable`): mode 0o640, the directory synced by the
/// caller, once for several files (see the module docs).
const SPOOL_FILE: DurableFile<'static> = DurableFile::new().mode(0o640).defer_dir_sync();

/// Writes `next-seq` durably; the directory fsync follows with the batch file (or here, when
/// `sync` is set).
fn write_seq_file(dir: &Path, stream: Uuid, next: u64, sync: bool) -> io::Result<()> {
    SPOOL_FILE.write(
        &dir.join(SEQ_FILE),
        format!("{SEQ_HEADER}\n{}\n{next}\n", stream.hyphenated()).as_bytes(),
    )?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Bounds `dead-letter/` to [`DEAD_LETTER_MAX`] batches: oldest first.
fn bound_dead_letters(dead: &Path) -> io::Result<()> {
    let mut kept: Vec<u64> = fs::read_dir(dead)?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(parse_name))
        .collect();
    kept.sort_unstable();
    let excess = kept.len().saturating_sub(DEAD_LETTER_MAX);
    for old in &kept[..excess] {
        let _ = fs::remove_file(dead.join(file_name(*old)));
        let _ = fs::remove_file(dead.join(format!("{old:020}.reason")));
    }
    Ok(())
}

/// The flag of a body kind.
fn compact_flag(body: Body) -> u8 {
    match body {
        Body::Compact => FLAG_COMPACT,
        Body::Ndjson => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(text: &str) -> ClosedBatch {
        ClosedBatch {
            body: Body::Ndjson,
            ndjson: text.as_bytes().to_vec(),
            events: text.lines().count() as u32,
        }
    }

    fn push(s: &mut Spool, text: &str) -> Result<Pushed, PushError> {
        let b = batch(text);
        s.push(
            Encoding::Identity,
            b.info(),
            &b.ndjson,
            Origin::Pipeline,
            EntrySync::Now,
        )
    }

    fn push_as(s: &mut Spool, text: &str, origin: Origin) -> Result<Pushed, PushError> {
        let b = batch(text);
        s.push(
            Encoding::Identity,
            b.info(),
            &b.ndjson,
            origin,
            EntrySync::Now,
        )
    }

    /// Issue 20: on a live log every sent batch's deletion rewrote `next-seq` (temp, fsync,
    /// rename, directory fsync): two of the five or six fsyncs per batch.
    #[test]
    fn next_seq_is_rewritten_once_per_reserved_range_not_once_per_batch() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        let ino = || fs::metadata(dir.path().join(SEQ_FILE)).unwrap().ino();
        let mut writes = 0;
        let mut last = ino();
        let mut handed = Vec::new();
        for i in 0..200 {
            let seq = push(&mut s, &format!("{{\"i\":{i}}}\n")).unwrap().seq;
            handed.push(seq);
            assert!(s.remove(seq));
            if ino() != last {
                writes += 1;
                last = ino();
            }
        }
        assert!(writes <= 4, "{writes} rewrites of next-seq for 200 batches");
        // Whatever happens next, no number handed out is handed out again: a restart (or a
        // crash: nothing above was synced but next-seq) starts above all of them.
        drop(s);
        let (s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert!(s.next_seq() > *handed.iter().max().unwrap());
    }

    #[test]
    fn a_memory_buffer_writes_nothing_refuses_when_full_and_keeps_room_for_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let line = format!("{}\n", "x".repeat(1000));
        let size = HEADER_LEN + line.len();
        // Room for eight batches; one eighth (one batch) kept for alerts.
        let (mut s, w) = Spool::in_memory(dir.path(), 8 * (size + 2)).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let mut pushed = 0;
        while push(&mut s, &line).is_ok() {
            pushed += 1;
        }
        assert_eq!(pushed, 7, "ordinary batches stop short of the reserve");
        assert!(matches!(push(&mut s, &line), Err(PushError::Full { .. })));
        // An alert still gets in; then the ring is full for it too. Nothing was dropped.
        let alert = push_as(&mut s, &line, Origin::Alert).unwrap();
        assert_eq!((alert.seq, alert.dropped_batches), (8, 0));
        assert!(push_as(&mut s, &line, Origin::Alert).is_err());
        assert_eq!(s.len(), 8);
        // Nothing on disk but the dead-letter folder: no batch file, no `next-seq`.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [DEAD_LETTER_DIR]);
        // Batches read back whole, in any order; room comes back as the front ones go.
        assert_eq!(s.load(3).unwrap().unwrap().body, line.as_bytes());
        assert_eq!(s.acknowledged(), Some(0));
        assert!(s.remove(2));
        assert_eq!(s.acknowledged(), Some(0), "batch 1 still waits");
        assert!(push(&mut s, &line).is_err(), "2's room waits behind 1");
        assert!(s.remove(1));
        assert_eq!(s.acknowledged(), Some(2));
        assert_eq!(push(&mut s, &line).unwrap().seq, 9);
        assert_eq!(s.load(8).unwrap().unwrap().body, line.as_bytes());
        assert_eq!(s.load(2).unwrap(), None);
    }

    #[test]
    fn a_memory_buffer_counts_a_split_batch_acknowledged_only_with_both_halves() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::in_memory(dir.path(), 1 << 20).unwrap();
        push(&mut s, "{\"a\":1}\n{\"a\":2}\n").unwrap();
        push(&mut s, "{\"a\":3}\n").unwrap();
        let (a, b) = s
            .split(
                1,
                Encoding::Identity,
                None,
                [batch("{\"a\":1}\n"), batch("{\"a\":2}\n")],
            )
            .unwrap()
            .unwrap();
        assert_eq!((a, b), (3, 4));
        assert!(s.remove(2));
        assert!(s.remove(a));
        assert_eq!(s.acknowledged(), Some(0), "half {b} of batch 1 still waits");
        assert!(s.remove(b));
        assert_eq!(s.acknowledged(), Some(4));
        // A new process would start a new stream: this one is known only here.
        let (other, _) = Spool::in_memory(dir.path(), 1 << 20).unwrap();
        assert_ne!(other.stream(), s.stream());
        assert_eq!(other.next_seq(), 1);
    }

    #[test]
    fn file_format_round_trips_and_rejects_damage() {
        let b = SpooledBatch {
            stream: Uuid::new_v4(),
            seq: 7,
            encoding: Encoding::Zstd,
            split_of: 3,
            flags: FLAG_AGENT_DOC,
            events: 2,
            ndjson_len: 10,
            created: 1_700_000_000,
            body: b"0123456789".to_vec(),
        };
        let bytes = b.to_file_bytes();
        assert_eq!(bytes.len(), HEADER_LEN + 10);
        assert_eq!(SpooledBatch::from_file_bytes(&bytes).unwrap(), b);
        assert!(SpooledBatch::from_file_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(SpooledBatch::from_file_bytes(&bytes[..40]).is_err());
        for i in [0, 6, 8, 30, 50, 70, HEADER_LEN + 3] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(SpooledBatch::from_file_bytes(&bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn drop_oldest_and_block_hold_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let size = (HEADER_LEN + 4) as u64; // "a:1\n"
        let (mut s, _) = Spool::open(dir.path(), true, 3 * size, SpoolPolicy::DropOldest).unwrap();
        for _ in 0..3 {
            assert_eq!(push(&mut s, "a:1\n").unwrap().dropped_batches, 0);
        }
        let p = push(&mut s, "b:2\n").unwrap();
        assert_eq!((p.seq, p.dropped_batches, p.dropped_events), (4, 1, 1));
        assert_eq!(s.oldest(), Some(2));
        assert!(s.bytes() <= 3 * size);
        drop(s);
        let (mut s, _) = Spool::open(dir.path(), true, 3 * size, SpoolPolicy::Block).unwrap();
        assert_eq!(s.len(), 3);
        assert!(matches!(push(&mut s, "c\n"), Err(PushError::Full { .. })));
        assert!(s.remove(2));
        // Above every number handed out before (the unused part of the reserve is skipped).
        assert!(push(&mut s, "c\n").unwrap().seq > 4);
    }

    #[test]
    fn sequence_survives_reopen_even_when_everything_was_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert_eq!(push(&mut s, "x\n").unwrap().seq, 1);
        assert_eq!(push(&mut s, "y\n").unwrap().seq, 2);
        s.remove(1);
        s.remove(2);
        drop(s);
        let (mut s, w) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert!(w.is_empty());
        assert!(push(&mut s, "z\n").unwrap().seq > 2);
        let stream = s.stream();
        drop(s);
        let (s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert_eq!(s.stream(), stream, "the stream is kept with the counter");
    }

    #[test]
    fn a_lost_or_corrupt_counter_starts_a_new_stream() {
        // Reusing (stream, seq) for other content would make the collector take the new batch
        // for a re-send: a state dir that was reset, lost or restored starts a new stream.
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        let first = s.stream();
        let one = push(&mut s, "x\n").unwrap().seq;
        drop(s);
        fs::remove_file(dir.path().join(SEQ_FILE)).unwrap();
        let (mut s, w) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_ne!(s.stream(), first);
        // The spooled batch keeps its own stream and number; new ones go above it.
        let b = s.load(one).unwrap().unwrap();
        assert_eq!((b.stream, b.seq), (first, one));
        assert_eq!(push(&mut s, "y\n").unwrap().seq, one + 1);
        let second = s.stream();
        drop(s);
        // A corrupt counter: a warning and a new stream, never an error that stops the agent
        // or advice that loses data.
        fs::write(dir.path().join(SEQ_FILE), "garbage").unwrap();
        let (s, w) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert_ne!(s.stream(), second);
        assert!(w.iter().any(|w| w.contains("new stream")), "{w:?}");
        assert!(!w.iter().any(|w| w.contains("delete")), "{w:?}");
        drop(s);
        // The whole directory gone: a new stream, numbers from 1 again.
        let (s, _) =
            Spool::open(&dir.path().join("fresh"), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert_eq!(s.next_seq(), 1);
        assert!(![first, second].contains(&s.stream()));
    }

    #[test]
    fn restream_gives_the_batch_a_number_in_a_new_stream_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        let old_stream = s.stream();
        let seq = push(&mut s, "a\nb\n").unwrap().seq;
        let batch = s.load(seq).unwrap().unwrap();
        let new_seq = s.restream(&batch).unwrap().unwrap();
        assert_ne!(s.stream(), old_stream);
        assert_eq!(s.len(), 1);
        let again = s.load(new_seq).unwrap().unwrap();
        assert_eq!(again.stream, s.stream());
        assert_eq!((again.body, again.events), (batch.body.clone(), 2));
        assert_eq!(s.next_to_send(Some(0)), Some(new_seq), "not held back");
        let stream = s.stream();
        drop(s);
        let (s, w) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((s.stream(), s.len()), (stream, 1));
    }

    #[test]
    fn a_version_1_file_is_read_in_the_current_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        let body = b"v1\n".to_vec();
        let mut v1 = Vec::new();
        v1.extend_from_slice(&MAGIC);
        v1.extend_from_slice(&1u16.to_le_bytes());
        v1.push(0);
        v1.push(0);
        v1.extend_from_slice(&9u64.to_le_bytes());
        v1.extend_from_slice(&0u64.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&3u32.to_le_bytes());
        v1.extend_from_slice(&0i64.to_le_bytes());
        v1.extend_from_slice(&(body.len() as u64).to_le_bytes());
        let d = digest(&v1, &body);
        v1.extend_from_slice(&d);
        v1.extend_from_slice(&body);
        fs::write(dir.path().join(file_name(9)), &v1).unwrap();
        let stream = s.stream();
        drop(s);
        let (mut s, w) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let b = s.load(9).unwrap().unwrap();
        assert_eq!((b.stream, b.body), (stream, body));
        assert_eq!(s.next_seq(), 10);
    }

    #[test]
    fn refused_events_are_kept_in_dead_letter() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        let seq = push(&mut s, "a\nb\n").unwrap().seq;
        let path = s.keep_rejected(seq, b"b\n", "line 2: bad").unwrap();
        let kept = SpooledBatch::from_file_bytes(&fs::read(path).unwrap()).unwrap();
        assert_eq!((kept.body, kept.events), (b"b\n".to_vec(), 1));
        assert_eq!(s.len(), 1, "the batch itself is the caller's to remove");
    }

    #[test]
    fn batches_spooled_as_a_group_are_whole_after_the_entries_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        let mut seqs = Vec::new();
        for text in ["1\n", "2\n3\n", "4\n"] {
            let b = batch(text);
            let pushed = s
                .push(
                    Encoding::Identity,
                    b.info(),
                    &b.ndjson,
                    Origin::Pipeline,
                    EntrySync::Deferred,
                )
                .unwrap();
            seqs.push(pushed.seq);
            assert!(s.entries_unsynced);
        }
        s.sync_entries().unwrap();
        assert!(!s.entries_unsynced);
        // Nothing left to sync: no directory sync at all.
        s.sync_entries().unwrap();
        drop(s);
        let (s, w) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.len(), 3);
        assert_eq!(s.oldest(), Some(seqs[0]));
        assert_eq!(s.next_seq(), seqs[2] + 1);
    }

    #[test]
    fn interrupted_split_keeps_the_original_only() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        let seq = push(&mut s, "1\n2\n").unwrap().seq;
        // Simulate the crash: write the halves, do not delete the original.
        let (a, b) = super::super::batch::split_lines(b"1\n2\n").unwrap();
        for half in [a, b] {
            s.write(
                Encoding::Identity,
                half.info(),
                half.ndjson.clone(),
                seq,
                0,
                EntrySync::Now,
            )
            .unwrap();
        }
        drop(s);
        let (s, w) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert_eq!(s.len(), 1, "{w:?}");
        assert_eq!(s.oldest(), Some(seq));
        assert_eq!(s.next_seq(), 4, "the halves' numbers are not reused");
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn damaged_file_is_discarded_when_read_and_a_missing_one_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        let a = push(&mut s, "a\n").unwrap().seq;
        let b = push(&mut s, "b\n").unwrap().seq;
        let path = dir.path().join(file_name(a));
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(s.load(a), Err(LoadError::Discarded(m)) if m.contains("checksum")));
        assert!(!path.exists());
        fs::remove_file(dir.path().join(file_name(b))).unwrap();
        assert_eq!(s.load(b), Ok(None));
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn handshake_holds_back_and_discards_only_pipeline_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        let one = push(&mut s, "1\n").unwrap().seq;
        let two = push(&mut s, "2\n").unwrap().seq;
        let b = batch("hb\n");
        let hb = s
            .push(
                Encoding::Identity,
                b.info(),
                &b.ndjson,
                Origin::Agent,
                EntrySync::Now,
            )
            .unwrap()
            .seq;
        assert_eq!(s.next_to_send(None), Some(one));
        assert_eq!(s.next_to_send(Some(one)), Some(one));
        s.remove(one);
        assert_eq!(
            s.next_to_send(Some(one)),
            Some(hb),
            "heartbeats are not held back"
        );
        drop(s);
        let (mut s, _) = Spool::open(dir.path(), true, 1 << 20, SpoolPolicy::Block).unwrap();
        assert_eq!(s.discard_after(one), [two]);
        assert_eq!(s.oldest(), Some(hb), "the flag survives a restart");
        assert!(s.next_seq() > hb);
    }

    #[test]
    fn dead_letter_is_bounded_and_explained() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), true, 1 << 30, SpoolPolicy::Block).unwrap();
        let seq = push(&mut s, "x\n").unwrap().seq;
        let path = s.dead_letter(seq, "400: line 1 is not JSON").unwrap();
        assert!(path.exists());
        assert!(s.is_empty());
        let reason = dir
            .path()
            .join(DEAD_LETTER_DIR)
            .join(format!("{seq:020}.reason"));
        assert_eq!(
            fs::read_to_string(reason).unwrap(),
            "400: line 1 is not JSON"
        );
        for _ in 0..DEAD_LETTER_MAX + 2 {
            let seq = push(&mut s, "x\n").unwrap().seq;
            s.dead_letter(seq, "r").unwrap();
        }
        let n = fs::read_dir(dir.path().join(DEAD_LETTER_DIR))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "batch")
            .count();
        assert_eq!(n, DEAD_LETTER_MAX);
    }
}
