//! Sources: where log records come from, and how far each one has been read.
//!
//! Every source runs on its own thread and hands [`Chunk`]s to the pipeline over a bounded
//! channel (so a 10 GB backlog is read only as fast as it is shipped, and memory stays bounded).
//! A chunk carries owned records plus the [`Position`] just past its last record. The pipeline
//! parses the records, hands the events to the sink, and only once the sink says they are durable
//! does it record the chunk's end position in the [`checkpoint::Checkpoints`] store. On restart a
//! source resumes from the stored position: at-least-once, never a gap.
//!
//! A stream is known by a [`StreamKey`], not by its path: a rotated `auth.log` that reappears as
//! `auth.log.1` keeps its key (device, inode and a checksum of its first bytes) and its position.

pub mod checkpoint;
pub mod file;
pub mod journald;
pub mod utmp;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where to start in a file that exists when its source first starts (the agent's first start,
/// or the first start of a source added to the config later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReadFrom {
    /// Only lines written from now on.
    #[default]
    End,
    /// The whole file.
    Beginning,
}

/// A semantic problem in one `[[source]]`'s settings, found by its config type's `problems`
/// (what serde's types cannot express: an empty `paths`, a relative path, a zero interval).
/// Each comes with the key it is about; `config.rs` places it in the file and words it with the
/// source's label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceProblem {
    /// `paths` lists nothing.
    NoPaths,
    /// A path that must be absolute is not; `what` names the setting in the message.
    RelativePath {
        /// The setting as the message names it (`paths`, `journalctl`, `directory/files`).
        what: &'static str,
        /// The path as configured.
        path: String,
    },
    /// A `paths` entry is not a valid glob.
    BadGlob {
        /// The pattern as configured.
        pattern: String,
        /// What the glob parser refused.
        reason: String,
    },
    /// The key's value is 0 and must be at least 1.
    Zero,
    /// The key names a program that cannot be run.
    Program {
        /// The program as configured.
        path: PathBuf,
        /// Why it cannot be run.
        reason: String,
    },
    /// Two settings that exclude each other are both set.
    Conflict {
        /// The first setting.
        a: &'static str,
        /// The second.
        b: &'static str,
    },
}

/// The problems of a `paths` list: empty, relative entries, entries glob cannot read.
pub(crate) fn path_problems(paths: &[String]) -> Vec<(&'static str, SourceProblem)> {
    let mut out = Vec::new();
    if paths.is_empty() {
        out.push(("paths", SourceProblem::NoPaths));
    }
    for p in paths {
        if !std::path::Path::new(p).is_absolute() {
            out.push((
                "paths",
                SourceProblem::RelativePath {
                    what: "paths",
                    path: p.clone(),
                },
            ));
        }
        if let Err(e) = glob::Pattern::new(p) {
            out.push((
                "paths",
                SourceProblem::BadGlob {
                    pattern: p.clone(),
                    reason: e.msg.to_owned(),
                },
            ));
        }
    }
    out
}

/// `key` with [`SourceProblem::Zero`] when `d` is zero.
pub(crate) fn zero_interval(
    key: &'static str,
    d: Duration,
) -> Option<(&'static str, SourceProblem)> {
    d.is_zero().then_some((key, SourceProblem::Zero))
}

/// Identity of a file independent of its name: device, inode, and a checksum of its first bytes
/// (so a new file that reuses a deleted file's inode is not mistaken for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// A checksum of the file's first bytes (up to the first newline, at most 256 bytes), or 0
    /// while the file is empty.
    pub head: u64,
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}:{:x}:{:016x}", self.dev, self.ino, self.head)
    }
}

/// One checkpointable stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum StreamKey {
    /// A log file (text lines) or a utmp file (binary records), by fingerprint.
    File {
        /// The file's identity.
        fingerprint: Fingerprint,
    },
    /// A journal read through `journalctl`, by the configured source's name.
    Journal {
        /// The configured source's name.
        source: String,
    },
}

/// How far a stream has been read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Position {
    /// Byte offset of the next unread byte.
    Offset(u64),
    /// journald cursor of the last entry read.
    Cursor(String),
}

/// What kind of bytes a chunk holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Syslog text lines (a log file).
    SyslogLines,
    /// Bare messages with their header fields supplied (journald).
    Journal,
    /// `struct utmp` records (wtmp, btmp).
    Utmp,
}

/// One record inside a [`Chunk`]: its bytes are `chunk.data[start..end]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Byte range in [`Chunk::data`].
    pub start: u32,
    /// End of the byte range in [`Chunk::data`].
    pub end: u32,
    /// Offset of the record in its stream (`log.offset`), when the stream has offsets.
    pub offset: Option<u64>,
    /// The line was longer than the bound and was cut.
    pub truncated: bool,
    /// Header fields for [`Payload::Journal`] records.
    pub journal: Option<JournalFields>,
}

/// The fields journald stores beside `MESSAGE`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JournalFields {
    /// `SYSLOG_IDENTIFIER`, else `_COMM`.
    pub program: String,
    /// `_PID` (or `SYSLOG_PID`).
    pub pid: Option<u32>,
    /// `_HOSTNAME`.
    pub hostname: Option<String>,
    /// `__REALTIME_TIMESTAMP`, microseconds since the epoch.
    pub realtime_us: Option<i64>,
}

/// A run of records from one stream, with the position just past the last one.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// The configured source's name (`[[source]] name`).
    pub source: Arc<str>,
    /// The stream the records came from.
    pub stream: StreamKey,
    /// The path the stream was read through, for `log.file.path`.
    pub path: Option<Arc<PathBuf>>,
    /// What the records are.
    pub payload: Payload,
    /// All records' bytes, back to back.
    pub data: Vec<u8>,
    /// The records.
    pub records: Vec<Record>,
    /// Where reading resumes after this chunk.
    pub end: Position,
}

impl Chunk {
    /// The bytes of one record.
    pub fn bytes(&self, r: &Record) -> &[u8] {
        self.data
            .get(r.start as usize..r.end as usize)
            .unwrap_or_default()
    }
}

/// Longest sleep between checks of the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Sends a chunk, waiting while the channel is full (checking `stop` every 10 ms): that
/// back-pressure is what bounds memory. False when stopped or the receiver is gone.
pub(crate) fn send(tx: &SyncSender<Chunk>, chunk: Chunk, stop: &AtomicBool) -> bool {
    let mut chunk = chunk;
    loop {
        match tx.try_send(chunk) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(c)) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                chunk = c;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Sleeps `d`, waking early when `stop` is set.
pub(crate) fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let mut left = d;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let step = left.min(STOP_CHECK);
        std::thread::sleep(step);
        left -= step;
    }
}
