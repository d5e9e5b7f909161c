//! The reader: one followed file, read through its open descriptor.
//!
//! The descriptor is what keeps a rotated or deleted file readable to its end. Each call to
//! [`Tailed::read_chunk`] seeks to the next unread byte and reads complete lines into one chunk
//! of bounded size; a last line without its newline is held back (not emitted, the position stays
//! at its start) until the newline arrives or the partial-line timeout passes. A file framed as
//! fixed-size records ([`Framing::Records`]) is read in whole records; a partial last record (a
//! writer caught mid-`write`) waits for its rest and is never emitted on its own.

use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Framing;
use super::fingerprint::{self, Head};
use crate::lines::LineReader;
use crate::source::{Chunk, Fingerprint, Payload, Position, Record, StreamKey};

/// Read buffer per read call.
const READ_BUFFER: usize = 64 * 1024;

/// Bounds on one chunk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) bytes: usize,
    pub(crate) lines: usize,
    pub(crate) max_line: usize,
    pub(crate) partial_timeout: Duration,
}

/// Counters of one followed file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FileCounters {
    /// Lines emitted.
    pub lines_read: u64,
    /// Lines cut at `max-line-bytes`.
    pub lines_truncated: u64,
    /// Last lines without a newline emitted after the partial-line timeout (or at close).
    pub partial_lines_flushed: u64,
    /// Times the file shrank or was rewritten under the same inode (copytruncate); reading
    /// restarted at 0.
    pub truncations: u64,
    /// Bytes not yet read when the file was truncated, with no copy of them the globs match:
    /// lost (their lines cannot be counted any more). At least this many: bytes written after
    /// the last look at the file are not known.
    pub lost_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Partial {
    start: u64,
    since: Instant,
}

/// What [`Tailed::refresh`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    /// The first line grew: the stream has a new key, same position.
    Rekeyed {
        old: Fingerprint,
    },
    /// Shrunk below the position or rewritten (head changed): read again from 0.
    Truncated {
        old: Fingerprint,
        old_offset: u64,
        /// Bytes past the position at the last look before the truncation: never read here.
        unread: u64,
    },
}

#[derive(Debug)]
pub(crate) struct Tailed {
    file: File,
    framing: Framing,
    pub(crate) path: Arc<PathBuf>,
    pub(crate) fp: Fingerprint,
    head: Head,
    /// The next byte not yet emitted (a held partial line starts here).
    pub(crate) offset: u64,
    /// File size at the last refresh.
    pub(crate) size: u64,
    mtime_ns: i128,
    /// End of the bytes looked at by the last read (past a held partial line).
    scanned_to: u64,
    partial: Option<Partial>,
    /// Since when no glob matches the file (renamed away or deleted).
    pub(crate) orphan_since: Option<Instant>,
    pub(crate) last_growth: Instant,
    pub(crate) idle_polls: u32,
    pub(crate) counters: FileCounters,
}

impl Tailed {
    pub(crate) fn new(
        file: File,
        framing: Framing,
        path: Arc<PathBuf>,
        fp: Fingerprint,
        head: Head,
        offset: u64,
        now: Instant,
    ) -> io::Result<Self> {
        let md = file.metadata()?;
        Ok(Tailed {
            file,
            framing,
            path,
            fp,
            head,
            offset,
            size: md.len(),
            mtime_ns: mtime_ns(&md),
            scanned_to: offset,
            partial: None,
            orphan_since: None,
            last_growth: now,
            idle_polls: 0,
            counters: FileCounters::default(),
        })
    }

    pub(crate) fn head_stable(&self) -> bool {
        self.head.stable
    }

    pub(crate) fn head_len(&self) -> usize {
        self.head.bytes.len()
    }

    pub(crate) fn deleted(&self) -> bool {
        self.file.metadata().map(|m| m.nlink() == 0).unwrap_or(true)
    }

    /// Looks at the file through its descriptor: growth, shrink (copytruncate), a rewritten
    /// head (truncated and refilled past the old position before we looked), a grown first line.
    pub(crate) fn refresh(&mut self, now: Instant) -> io::Result<Change> {
        let md = self.file.metadata()?;
        let (size, mtime) = (md.len(), mtime_ns(&md));
        let seen = self.size;
        if size == self.size && mtime == self.mtime_ns {
            return Ok(Change::None);
        }
        if size > self.size {
            self.last_growth = now;
            self.idle_polls = 0;
        }
        self.size = size;
        self.mtime_ns = mtime;
        let old = self.fp;
        let head = fingerprint::read_head(&self.file, self.framing)?;
        let prefix_same = head.bytes.get(..self.head.bytes.len()) == Some(&self.head.bytes[..]);
        if size < self.offset || !prefix_same {
            let old_offset = self.offset;
            self.fp.head = head.checksum;
            self.head = head;
            self.offset = 0;
            self.scanned_to = 0;
            self.partial = None;
            self.counters.truncations += 1;
            self.last_growth = now;
            return Ok(Change::Truncated {
                old,
                old_offset,
                unread: seen.saturating_sub(old_offset),
            });
        }
        if head.checksum != self.head.checksum {
            self.fp.head = head.checksum;
            self.head = head;
            return Ok(Change::Rekeyed { old });
        }
        Ok(Change::None)
    }

    /// True when bytes past the position may still be read now (or a held line is due).
    pub(crate) fn has_unread(&self, now: Instant, limits: &Limits) -> bool {
        self.size > self.scanned_to || self.partial_due(now, limits)
    }

    fn partial_due(&self, now: Instant, limits: &Limits) -> bool {
        self.partial
            .is_some_and(|p| now.saturating_duration_since(p.since) >= limits.partial_timeout)
    }

    /// When the held partial line (if any) becomes due.
    pub(crate) fn partial_deadline(&self, limits: &Limits) -> Option<Instant> {
        self.partial.map(|p| p.since + limits.partial_timeout)
    }

    /// At its end with nothing held back.
    pub(crate) fn caught_up(&self) -> bool {
        self.offset >= self.size && self.partial.is_none()
    }

    /// Reads one chunk. `flush` emits a held partial line at once (the file is being closed).
    /// Returns the chunk (if any line was read) and whether the chunk was cut by its bounds.
    pub(crate) fn read_chunk(
        &mut self,
        source: &Arc<str>,
        limits: &Limits,
        now: Instant,
        flush: bool,
    ) -> io::Result<(Option<Chunk>, bool)> {
        if let Framing::Records { len, payload } = self.framing {
            return self.read_records(source, limits, len, payload);
        }
        let flushing = flush && self.partial.is_some();
        if !flushing && !self.has_unread(now, limits) {
            return Ok((None, false));
        }
        let mut f = &self.file;
        f.seek(SeekFrom::Start(self.offset))?;
        let buf = BufReader::with_capacity(READ_BUFFER, f);
        let mut lines = LineReader::new(buf, limits.max_line, self.offset);
        let mut data = Vec::new();
        let mut records = Vec::new();
        let mut full = false;
        loop {
            if data.len() >= limits.bytes || records.len() >= limits.lines {
                full = true;
                break;
            }
            let Some(line) = lines.next_line()? else {
                self.scanned_to = self.offset;
                self.partial = None;
                break;
            };
            if !line.complete {
                self.scanned_to = line.end;
                let held_since = match self.partial {
                    Some(p) if p.start == line.offset => p.since,
                    _ => now,
                };
                let due =
                    flush || now.saturating_duration_since(held_since) >= limits.partial_timeout;
                if !due {
                    self.partial = Some(Partial {
                        start: line.offset,
                        since: held_since,
                    });
                    break;
                }
                self.partial = None;
                self.counters.partial_lines_flushed += 1;
            }
            let start = data.len();
            data.extend_from_slice(line.bytes);
            // A partial line flushed is flagged like a cut one: its continuation, if it ever
            // comes, is read as a line of its own.
            let truncated = line.truncated || !line.complete;
            if line.truncated {
                self.counters.lines_truncated += 1;
            }
            self.counters.lines_read += 1;
            records.push(Record {
                start: start as u32,
                end: data.len() as u32,
                offset: Some(line.offset),
                truncated,
                journal: None,
            });
            self.offset = line.end;
            if !line.complete {
                self.scanned_to = line.end;
                break;
            }
        }
        if records.is_empty() {
            return Ok((None, full));
        }
        let chunk = Chunk {
            source: Arc::clone(source),
            stream: StreamKey::File {
                fingerprint: self.fp,
            },
            path: Some(Arc::clone(&self.path)),
            payload: Payload::SyslogLines,
            data,
            records,
            end: Position::Offset(self.offset),
        };
        Ok((Some(chunk), full))
    }

    /// Reads whole records of `len` bytes from the position, at most `limits.lines` of them and
    /// `limits.bytes` (but at least one); a partial last record is left for a later read.
    fn read_records(
        &mut self,
        source: &Arc<str>,
        limits: &Limits,
        len: usize,
        payload: Payload,
    ) -> io::Result<(Option<Chunk>, bool)> {
        if self.size <= self.scanned_to {
            return Ok((None, false));
        }
        let available = self.size.saturating_sub(self.offset) / len as u64;
        let most = limits.lines.min(limits.bytes / len).max(1);
        let n = usize::try_from(available).unwrap_or(usize::MAX).min(most);
        let mut data = vec![0u8; n * len];
        let got = fingerprint::read_full_at(&self.file, &mut data, self.offset)?;
        data.truncate(got - got % len);
        let full = available > most as u64 && data.len() == n * len;
        // Past a partial last record (or a file that shrank under us) nothing more is read until
        // the file changes.
        self.scanned_to = if full {
            self.offset + data.len() as u64
        } else {
            self.size
        };
        if data.is_empty() {
            return Ok((None, false));
        }
        let records: Vec<Record> = (0..data.len() / len)
            .map(|k| Record {
                start: (k * len) as u32,
                end: ((k + 1) * len) as u32,
                offset: Some(self.offset + (k * len) as u64),
                truncated: false,
                journal: None,
            })
            .collect();
        self.counters.lines_read += records.len() as u64;
        self.offset += data.len() as u64;
        let chunk = Chunk {
            source: Arc::clone(source),
            stream: StreamKey::File {
                fingerprint: self.fp,
            },
            path: Some(Arc::clone(&self.path)),
            payload,
            data,
            records,
            end: Position::Offset(self.offset),
        };
        Ok((Some(chunk), full))
    }

    /// Where a file present at first start begins with `read-from = end`: after the last
    /// newline, so a line being written right now is read whole. Looks back at most `max_line`.
    pub(crate) fn start_of_last_line(file: &File, size: u64, max_line: usize) -> io::Result<u64> {
        let back = (max_line as u64).min(size);
        let mut buf = vec![0u8; back as usize];
        let from = size - back;
        let n = fingerprint::read_full_at(file, &mut buf, from)?;
        Ok(match memchr::memrchr(b'\n', &buf[..n]) {
            Some(i) => from + i as u64 + 1,
            None if from == 0 => 0,
            None => size,
        })
    }
}

fn mtime_ns(md: &std::fs::Metadata) -> i128 {
    i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec())
}
