//! The file source: follows syslog text files matched by globs, through rotation, truncation,
//! deletion and restarts.
//!
//! Built like vector's `file-source`, in separate pieces: the `watcher` (what wakes the
//! source), the `fingerprint`er (what file is this), the `reader` (one followed file, read to
//! bounded chunks) and, here, the source that ties them together. Checkpoints are not written
//! here: the source is started from a snapshot of positions and reports each chunk's end
//! position; the runtime records it once the chunk is durable (see [`super::checkpoint`]).
//!
//! # One poll
//! [`FileSource::poll_at`] (what [`FileSource::run`] calls in its loop) does, in order:
//! 1. **Refresh** every open file through its descriptor: growth; a shrink below the position or
//!    a changed first line (copytruncate, or truncated and refilled before we looked) restarts
//!    the file at 0 under its new key; a first line that grew re-keys the stream.
//! 2. **Scan** the globs (every `poll-interval`, or at once on a create/rename/delete event):
//!    a followed file found under another name is the same stream (rotation by rename); one no
//!    glob matches any more (renamed away, deleted) is an *orphan*, still read through its
//!    descriptor until it has been idle for [`ORPHAN_IDLE_POLLS`] polls and as many poll
//!    intervals (rsyslog writes to the old file until it is HUP'd), then closed. A new file is
//!    opened and its start position chosen (below).
//! 3. **Read** at most [`MAX_CHUNKS_PER_POLL`] chunks, one per file per pass, oldest file first.
//!
//! # Where a file starts
//! - A known fingerprint (in the start snapshot, or seen by this source) resumes at its position
//!   (at 0 if the file is now shorter: truncated while the agent was down).
//!
//! # Lost while the agent was stopped
//! The checkpoints keep each file's size as last seen ([`FileStatus::record_sizes`]). After the
//! first scan, a start stream this source read (its last path matches the globs) with bytes
//! seen but not read (size beyond its position) whose inode was opened from 0 (truncated,
//! rewritten or replaced) or that no file the globs match has any more (deleted, moved out of
//! the globs), and that no file was resumed from (a rename to a matched name, a copytruncate
//! copy), has lost those bytes: a warning with the count and `lost-bytes` in the status. The
//! stream is then handed to the run loop, which records that nothing is known unread of it, so
//! no restart counts it again. A stream with no size (an older agent's entry) is not counted:
//! the amount is unknown. What was written after the last look is not known either, so the
//! count is a lower bound.
//! - Same device and inode, and the known head is the checksum of a prefix of the file's first
//!   line: the same file, whose first line has grown since (re-keyed) — resumes too.
//! - The head (a whole first line of at least [`MIN_COPY_HEAD`] bytes) equals a known stream's
//!   on another inode: a copy, as copytruncate's `auth.log.1` — resumes at that stream's
//!   position. While the original is still followed under that head, the copy is left alone
//!   (reading both would duplicate); once the original is truncated the copy is picked up.
//! - Otherwise a new file: at the source's first start (no checkpoints at all, or a source new to
//!   the state directory: [`first_start_of`](crate::source::checkpoint::Checkpoints::first_start_of)), files found by the
//!   first scan start per `read-from` (`end` = after the last complete line); every other new
//!   file starts at 0 — including a new file with a reused inode, since its head differs.
//!
//! # Bounds
//! At most `max-files` open files (extra matches are skipped and counted), chunks of at most
//! [`CHUNK_MAX_BYTES`] plus one line or [`CHUNK_MAX_LINES`] lines, at most
//! [`MAX_CHUNKS_PER_POLL`] chunks per poll, lines cut at `max-line-bytes` (the rest of a long line
//! is skipped, never buffered), a glob scan stops at [`SCAN_MAX_MATCHES`] matches, the memory of
//! closed files' positions at [`KNOWN_MAX`] entries.
//!
//! # What is live
//! Each poll publishes, with the status, the streams the source has live: the files it follows
//! (by key) and the files its globs matched at the last scan that it does not follow (by device
//! and inode: `max-files` reached, a copy left alone, a file it cannot open; also a file closed
//! on an error, until the next scan). The runtime never expires their checkpoints
//! ([`FileStatus::add_live`], [`super::checkpoint::Checkpoints::expire`]).
//!
//! # Partial lines
//! A last line without a newline is held (its start is the position) until its newline arrives or
//! `partial-line-timeout` passes; it is then emitted with `truncated` set and counted. Bytes of
//! that line written later are read as a new line (also the first part of it is not re-read).
//! A partial line is also emitted when an orphan is closed. On a stop, a held line is simply not
//! emitted: the position stays at its start, so the next start reads it.
//!
//! Bytes are passed through as they are: invalid UTF-8 and NUL bytes included.
//!
//! # Framing
//! The same tailer reads fixed-size binary records ([`Framing::Records`]: wtmp and btmp's
//! 384-byte `struct utmp`, see [`super::utmp`]). Then a file is known by its first whole record
//! (head 0 while it holds none), a position is always a whole number of records (a stored one
//! that is not is rounded down), `read-from = end` starts after the last whole record, a partial
//! last record waits for its rest however long it takes, and an orphan is closed as soon as it is
//! read to its end: utmp writers open, write one record and close, so nothing writes to a file
//! after it was rotated away.

mod fingerprint;
mod reader;
mod watcher;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub(crate) use self::reader::FileCounters;
use self::reader::{Change, Limits, Tailed};
pub(crate) use self::watcher::Waker;
use self::watcher::Watcher;
use super::checkpoint::{Checkpoints, LastSeen, Live};
use super::{Chunk, Fingerprint, Payload, Position, ReadFrom, StreamKey, send};

mod config;

pub use self::config::{AuditSourceConfig, FileSourceConfig};

/// A chunk holds at most this many bytes of lines (plus at most one more line).
pub(crate) const CHUNK_MAX_BYTES: usize = 256 * 1024;
/// A chunk holds at most this many lines.
pub(crate) const CHUNK_MAX_LINES: usize = 2048;
/// One poll reads at most this many chunks (all files together).
pub(crate) const MAX_CHUNKS_PER_POLL: usize = 4;
/// After a pass that read something, the source waits this long before it reads again, so that
/// the appends of a live log are read together (one wake-up and one chunk for many appends)
/// rather than one by one. It adds at most this much to an event's latency.
pub(crate) const READ_GAP: Duration = Duration::from_millis(75);
/// An orphan (renamed away or deleted) is closed after this many idle polls, and at least as
/// many poll intervals, at its end.
pub(crate) const ORPHAN_IDLE_POLLS: u32 = 3;
/// A glob scan looks at most at this many matches.
pub(crate) const SCAN_MAX_MATCHES: usize = 65_536;
/// Positions of closed files remembered by a running source (beyond the start snapshot's).
pub(crate) const KNOWN_MAX: usize = 16_384;
/// A first line shorter than this is too common (an empty line, a banner) to say that a file is a
/// copy of another.
pub(crate) const MIN_COPY_HEAD: usize = 16;
/// Notes kept in [`SourceStatus::notes`].
pub(crate) const NOTES_MAX: usize = 32;
/// Compressed rotations (`secure-20240101.gz`) matched by a glob are not followed.
const COMPRESSED: [&str; 5] = ["gz", "bz2", "xz", "zst", "lz4"];

/// How a file's bytes are cut into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Framing {
    /// Text lines ending in a newline, cut at `max-line-bytes`: [`Payload::SyslogLines`].
    #[default]
    Lines,
    /// Fixed-size binary records of `len` bytes, handed on as `payload` (see the module
    /// documentation).
    Records {
        /// Bytes per record.
        len: usize,
        /// What the records are.
        payload: Payload,
    },
}

impl Framing {
    /// How many of a file's first bytes its head checksum is taken from, at most.
    fn head_len(self) -> usize {
        match self {
            Framing::Lines => fingerprint::HEAD_BYTES,
            Framing::Records { len, .. } => len,
        }
    }

    /// `offset` moved back to the start of the record it falls in.
    fn whole(self, offset: u64) -> u64 {
        match self {
            Framing::Lines => offset,
            Framing::Records { len, .. } => offset - offset % len as u64,
        }
    }
}

/// How the source learns about changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum WatchMode {
    /// inotify events wake the source; it still re-scans every poll interval.
    #[default]
    Events,
    /// The source wakes every poll interval.
    Poll,
}

/// What `authtrail status` shows about one followed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStreamStatus {
    /// The path it was last seen under.
    pub path: Arc<PathBuf>,
    /// Its identity (the checkpoint key).
    pub fingerprint: Fingerprint,
    /// Next byte to read (everything before it has been emitted).
    pub offset: u64,
    /// Its size at the last look; lag = `size - offset`.
    pub size: u64,
    /// No glob matches it any more (rotated away or deleted); closed once idle.
    pub orphaned: bool,
    /// Counters since it was opened.
    pub counters: FileCounters,
}

/// The state of one file source, shared with whoever asks ([`FileSource::status`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceStatus {
    /// The followed files, oldest first.
    pub files: Vec<FileStreamStatus>,
    /// Matches not followed at the last scan because `max-files` were open.
    pub files_skipped: usize,
    /// Totals over all files, closed ones included.
    pub totals: FileCounters,
    /// Events or polling.
    pub mode: WatchMode,
    /// The latest warnings and notable events (rotation, truncation, skipped files), oldest
    /// first, at most [`NOTES_MAX`]; `notes_total` counts all ever made.
    pub notes: VecDeque<String>,
    /// All notes ever made (to tell new ones from those already logged).
    pub notes_total: u64,
    /// Polls done (wake-ups); with nothing changing, about one per `poll-interval`.
    pub polls: u64,
    /// Files the globs matched at the last scan that are not followed (`max-files` reached, a
    /// copy waiting for its original, a file that cannot be opened), by device and inode.
    pub unfollowed: Vec<(u64, u64)>,
    /// The first scan is done: `files` and `unfollowed` say what the source has live.
    pub scanned: bool,
    /// Streams of the start checkpoints whose unread bytes were counted lost (truncated or gone
    /// while the agent was stopped), until [`FileStatus::record_sizes`] takes them; at most
    /// [`KNOWN_MAX`].
    pub settled: Vec<Fingerprint>,
}

/// A [`FileSource`]'s status, shared (`Arc`) with whoever asks while the source runs on its
/// thread. Updated once per poll.
#[derive(Debug, Default)]
pub(crate) struct FileStatus(Mutex<SourceStatus>);

impl FileStatus {
    /// A copy of the whole status.
    #[cfg(test)]
    pub(crate) fn get(&self) -> SourceStatus {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Bytes lost before they were read ([`FileCounters::lost_bytes`]): to truncations while
    /// the source runs, and to files truncated or gone while the agent was stopped.
    pub(crate) fn lost_bytes(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .totals
            .lost_bytes
    }

    /// The followed files (lag = `size - offset`).
    pub(crate) fn files(&self) -> Vec<FileStreamStatus> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .files
            .clone()
    }

    /// Adds the streams the source has live (its followed files by key, the files its globs
    /// match but it does not follow by inode) to `live`, read together at one poll. False
    /// before the first scan, when the source does not know yet.
    pub(crate) fn add_live(&self, live: &mut Live) -> bool {
        let status = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for f in &status.files {
            live.add(StreamKey::File {
                fingerprint: f.fingerprint,
            });
        }
        for &(dev, ino) in &status.unfollowed {
            live.add_inode(dev, ino);
        }
        status.scanned
    }

    /// Records in `checkpoints` what the run loop must keep of the followed files: each one's
    /// size as last seen (so that the bytes seen but not read are known if the file is
    /// truncated or gone at the next start), and "nothing known" for the streams whose loss was
    /// counted (taken from the status), so that no restart counts it again.
    pub(crate) fn record_sizes(&self, checkpoints: &mut Checkpoints) {
        let mut status = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for fingerprint in status.settled.drain(..) {
            checkpoints.set_size(&StreamKey::File { fingerprint }, None);
        }
        for f in &status.files {
            let key = StreamKey::File {
                fingerprint: f.fingerprint,
            };
            checkpoints.set_size(&key, Some(f.size));
        }
    }

    fn with(&self, f: impl FnOnce(&mut SourceStatus)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// What the source knows of a stream it is not (or no longer) following.
#[derive(Debug, Clone, Copy)]
struct Known {
    offset: u64,
    /// For eviction: larger is more recent.
    seq: u64,
}

enum Start {
    /// The stream's position is known: the offset, and the known stream it is taken from.
    Known(u64, Fingerprint),
    /// Never seen.
    New,
    /// A copy of a file still followed under the same head: leave it alone for now.
    Twin,
}

/// How a file opened by a scan started.
enum Opened {
    /// At the position of this known stream.
    Resumed(Fingerprint),
    /// At 0 or per `read-from`: a new file, or one shorter than its checkpoint.
    Restarted,
}

/// A stream of the start checkpoints with bytes seen but not read, to be found by the first
/// scan (see [`FileSource::count_lost_while_stopped`]).
#[derive(Debug)]
struct SeenUnread {
    key: Fingerprint,
    bytes: u64,
    path: PathBuf,
}

/// Follows the files matched by one `[[source]] type = "file"`.
#[derive(Debug)]
pub struct FileSource {
    name: Arc<str>,
    globs: Vec<String>,
    patterns: Vec<glob::Pattern>,
    read_from: ReadFrom,
    poll_interval: Duration,
    max_files: usize,
    limits: Limits,
    framing: Framing,
    first_start: bool,
    first_scan_done: bool,
    known: HashMap<Fingerprint, Known>,
    start_keys: usize,
    seq: u64,
    files: Vec<Tailed>,
    watcher: Watcher,
    next_scan: Option<Instant>,
    rescan: bool,
    backlog: bool,
    unopenable: HashSet<PathBuf>,
    last_skipped: usize,
    /// See [`SourceStatus::unfollowed`]; `unfollowed_changed` until it is published.
    unfollowed: Vec<(u64, u64)>,
    unfollowed_changed: bool,
    closed_totals: FileCounters,
    /// Bytes truncations left unread, lost unless the next scan finds a copy of them; at most
    /// `max-files` (beyond, the oldest is counted lost at once).
    unread: Vec<Unread>,
    /// The start checkpoints' sizes as last seen, for the first scan to tell what was lost
    /// while the agent was stopped; emptied by it.
    last_seen: HashMap<Fingerprint, LastSeen>,
    status: Arc<FileStatus>,
    quiet: bool,
}

impl FileSource {
    /// A source for `config`, named `name` (for chunks and notes), started from `start` (a
    /// snapshot of the checkpoints; only `StreamKey::File` offsets are used), cutting lines at
    /// `max_line` bytes. `first_start` says no checkpoints existed at all
    /// ([`super::checkpoint::Checkpoints::first_start`]): only then do the files found by the
    /// first scan start per `read-from`. Uses inotify when it can; see
    /// [`FileSource::force_poll`].
    pub fn new(
        config: &FileSourceConfig,
        name: Arc<str>,
        start: HashMap<StreamKey, Position>,
        max_line: usize,
        first_start: bool,
    ) -> Self {
        let mut seq = 0;
        let known: HashMap<Fingerprint, Known> = start
            .into_iter()
            .filter_map(|(k, p)| match (k, p) {
                (StreamKey::File { fingerprint }, Position::Offset(offset)) => {
                    seq += 1;
                    Some((fingerprint, Known { offset, seq }))
                }
                _ => None,
            })
            .collect();
        let mut notes = Vec::new();
        let patterns = config
            .paths
            .iter()
            .filter_map(|g| match glob::Pattern::new(g) {
                Ok(p) => Some(p),
                Err(e) => {
                    notes.push(format!("path {g:?} is not a valid glob: {e}"));
                    None
                }
            })
            .collect();
        let (watcher, why_not) = Watcher::new(false);
        let mut source = FileSource {
            name,
            globs: config.paths.clone(),
            patterns,
            read_from: config.read_from,
            poll_interval: config.poll_interval,
            max_files: config.max_files.max(1),
            limits: Limits {
                bytes: CHUNK_MAX_BYTES,
                lines: CHUNK_MAX_LINES,
                max_line: max_line.max(1),
                partial_timeout: config.partial_line_timeout,
            },
            framing: Framing::Lines,
            first_start,
            first_scan_done: false,
            start_keys: known.len(),
            known,
            seq,
            files: Vec::new(),
            watcher,
            next_scan: None,
            rescan: true,
            backlog: false,
            unopenable: HashSet::new(),
            last_skipped: 0,
            unfollowed: Vec::new(),
            unfollowed_changed: false,
            closed_totals: FileCounters::default(),
            unread: Vec::new(),
            last_seen: HashMap::new(),
            status: Arc::default(),
            quiet: false,
        };
        source.set_mode();
        notes.extend(why_not);
        for n in notes {
            source.note(n);
        }
        source
    }

    /// The start checkpoints' sizes as last seen ([`Checkpoints::last_seen`]): the first scan
    /// counts the bytes seen but not read of a file truncated or gone while the agent was
    /// stopped as lost. Defaults to none (nothing is counted).
    pub(crate) fn with_last_seen(mut self, last_seen: HashMap<Fingerprint, LastSeen>) -> Self {
        self.last_seen = last_seen;
        self
    }

    /// Wakes only every `poll-interval`, without inotify (network filesystems; tests).
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn force_poll(mut self) -> Self {
        self.watcher = Watcher::new(true).0;
        self.set_mode();
        self
    }

    /// Reads the files as `framing`. Defaults to [`Framing::Lines`].
    pub(crate) fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Scans the globs at the next poll, due or not.
    pub(crate) fn rescan_next_poll(&mut self) {
        self.rescan = true;
    }

    /// Do not print notes on standard error (they are still kept in the status). Defaults to
    /// printing them.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Sets the chunk bounds (bytes, lines). Defaults to [`CHUNK_MAX_BYTES`] and
    /// [`CHUNK_MAX_LINES`]; tests use small ones to make reading lag behind writing.
    pub fn set_chunk_limits(&mut self, bytes: usize, lines: usize) {
        self.limits.bytes = bytes.max(1);
        self.limits.lines = lines.max(1);
    }

    /// The shared status (take it before [`FileSource::run`] moves the source to its thread).
    pub(crate) fn status(&self) -> Arc<FileStatus> {
        Arc::clone(&self.status)
    }

    /// A handle that wakes the running source at once (set the stop flag, then wake).
    pub(crate) fn waker(&self) -> Waker {
        self.watcher.waker()
    }

    /// True when the last poll stopped because of its bounds, not because every file was read
    /// to its end: poll again without waiting.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn has_backlog(&self) -> bool {
        self.backlog
    }

    /// Runs until `stop` is set (checked at every wake: at most one `poll-interval` late, at
    /// once after [`Waker::wake`]) or the receiver is gone. Waits while `tx` is full (checking
    /// `stop` every 10 ms): that backpressure is what bounds memory. Chunks read but not sent
    /// when stopped are dropped; their lines are read again from the checkpoints.
    pub(crate) fn run(mut self, tx: SyncSender<Chunk>, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let chunks = self.poll_at(now);
            let read = !chunks.is_empty();
            for chunk in chunks {
                if !send(&tx, chunk, &stop) {
                    return;
                }
            }
            if self.backlog || stop.load(Ordering::Relaxed) {
                continue;
            }
            if read {
                // Let a live log's appends gather (the kernel merges their events meanwhile):
                // the next pass reads them all at once.
                std::thread::sleep(READ_GAP);
            }
            // A timer only where events do not tell everything: polling, a directory that
            // cannot be watched, an orphan waiting to be closed, a held partial line.
            let mut deadline = (!self.watcher.sees_everything()
                || self.files.iter().any(|t| t.orphan_since.is_some()))
            .then(|| Instant::now() + self.poll_interval);
            for t in &self.files {
                if let Some(d) = t.partial_deadline(&self.limits) {
                    deadline = Some(deadline.map_or(d, |x| x.min(d)));
                }
            }
            let woken = {
                let (watcher, patterns, files) = (&mut self.watcher, &self.patterns, &self.files);
                watcher.wait(deadline, &|p: &Path| {
                    patterns.iter().any(|g| g.matches_path(p))
                        || files.iter().any(|t| t.path.as_path() == p)
                })
            };
            self.rescan |= woken.rescan;
        }
    }

    /// One poll with the current time: [`FileSource::poll_at`].
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn poll_once(&mut self) -> Vec<Chunk> {
        self.poll_at(Instant::now())
    }

    /// One poll (refresh, scan if due, read; see the module documentation), `now` being the
    /// time for the partial-line timeout, the orphan idle time and the scan schedule. Returns at
    /// most [`MAX_CHUNKS_PER_POLL`] chunks; [`FileSource::has_backlog`] tells whether more are
    /// ready.
    pub(crate) fn poll_at(&mut self, now: Instant) -> Vec<Chunk> {
        self.refresh_all(now);
        if self.rescan || self.next_scan.is_none_or(|t| now >= t) {
            self.scan(now);
        }
        let mut chunks = self.read_all(now);
        chunks.extend(self.close_idle_orphans(now));
        self.publish_status();
        chunks
    }

    fn set_mode(&mut self) {
        let mode = if self.watcher.uses_events() {
            WatchMode::Events
        } else {
            WatchMode::Poll
        };
        self.status.with(|s| s.mode = mode);
    }

    fn note(&mut self, text: String) {
        if !self.quiet {
            tracing::info!("source {}: {text}", self.name);
        }
        self.keep_note(text);
    }

    /// A note of lost data: logged as a warning.
    fn warn(&mut self, text: String) {
        if !self.quiet {
            tracing::warn!("source {}: {text}", self.name);
        }
        self.keep_note(text);
    }

    fn keep_note(&mut self, text: String) {
        self.status.with(|s| {
            if s.notes.len() >= NOTES_MAX {
                s.notes.pop_front();
            }
            s.notes.push_back(text);
            s.notes_total += 1;
        });
    }

    fn remember(&mut self, fp: Fingerprint, offset: u64) {
        self.seq += 1;
        self.known.insert(
            fp,
            Known {
                offset,
                seq: self.seq,
            },
        );
        if self.known.len() > KNOWN_MAX + self.start_keys {
            // Forget the oldest half of what is not followed now.
            let open: HashSet<Fingerprint> = self.files.iter().map(|t| t.fp).collect();
            let mut by_age: Vec<(u64, Fingerprint)> = self
                .known
                .iter()
                .filter(|(k, _)| !open.contains(k))
                .map(|(k, v)| (v.seq, *k))
                .collect();
            by_age.sort_unstable();
            for (_, k) in by_age.iter().take(by_age.len() / 2) {
                self.known.remove(k);
            }
        }
    }

    fn refresh_all(&mut self, now: Instant) {
        let mut notes = Vec::new();
        let mut unread_lost = Vec::new();
        let mut remembered = Vec::new();
        let mut closed = Vec::new();
        self.files.retain_mut(|t| match t.refresh(now) {
            Ok(Change::None) => true,
            Ok(Change::Rekeyed { .. }) => {
                remembered.push((t.fp, t.offset));
                true
            }
            Ok(Change::Truncated {
                old,
                old_offset,
                unread,
            }) => {
                if unread > 0 {
                    unread_lost.push(Unread {
                        old,
                        bytes: unread,
                        path: Arc::clone(&t.path),
                    });
                }
                notes.push(format!(
                    "{} shrank or was rewritten (copytruncate?) at offset {old_offset}; reading it again from 0",
                    t.path.display()
                ));
                // The old key keeps its position: a copy of the old content (auth.log.1) resumes
                // from it.
                remembered.push((old, old_offset));
                true
            }
            Err(e) => {
                notes.push(format!("{}: {e}; closing it", t.path.display()));
                remembered.push((t.fp, t.offset));
                // Still live until the next scan says whether the globs match it.
                closed.push((t.fp.dev, t.fp.ino));
                false
            }
        });
        if !closed.is_empty() {
            self.unfollowed.extend(closed);
            self.unfollowed_changed = true;
        }
        for (fp, o) in remembered {
            self.remember(fp, o);
        }
        for u in unread_lost {
            if self.unread.len() >= self.max_files {
                let oldest = self.unread.remove(0);
                self.count_lost(oldest);
            }
            self.unread.push(u);
        }
        for n in notes {
            self.note(n);
        }
    }

    fn watch_dirs(&self) -> BTreeSet<PathBuf> {
        let mut dirs: BTreeSet<PathBuf> = self.globs.iter().map(|g| literal_dir(g)).collect();
        for t in &self.files {
            if let Some(p) = t.path.parent() {
                dirs.insert(p.to_owned());
            }
        }
        dirs
    }

    fn scan(&mut self, now: Instant) {
        self.rescan = false;
        self.next_scan = Some(now + self.poll_interval);
        let first_scan = !self.first_scan_done;
        self.first_scan_done = true;

        // Every matching regular file, first path per inode (sorted, so `auth.log` before
        // `auth.log.1`).
        let mut found: BTreeMap<PathBuf, (u64, u64)> = BTreeMap::new();
        let mut matches = 0usize;
        let mut unmatched_globs = Vec::new();
        'globs: for g in &self.globs {
            let Ok(paths) = glob::glob(g) else { continue };
            let before = matches;
            for path in paths.flatten() {
                matches += 1;
                if matches > SCAN_MAX_MATCHES {
                    break 'globs;
                }
                if path
                    .extension()
                    .is_some_and(|e| COMPRESSED.iter().any(|c| e == *c))
                {
                    continue;
                }
                if let Ok(md) = std::fs::metadata(&path)
                    && md.is_file()
                {
                    found.insert(path, (md.dev(), md.ino()));
                }
            }
            if matches == before {
                unmatched_globs.push(g.clone());
            }
        }
        // A mistyped path would otherwise be followed in silence, reading nothing. Said once,
        // at the start, and only when the source matches nothing at all: an `auth.log.1` that
        // a young host has not rotated yet is no news.
        if first_scan && matches == 0 && !unmatched_globs.is_empty() {
            let text = format!(
                "no file matches {} yet; read from its beginning once it appears (check the \
                 path: `authtrail sources` lists what each pattern matches)",
                unmatched_globs.join(", ")
            );
            if !self.quiet {
                tracing::warn!("source {}: {text}", self.name);
            }
            self.keep_note(text);
        }
        let mut by_inode: HashMap<(u64, u64), PathBuf> = HashMap::new();
        for (path, id) in found {
            by_inode.entry(id).or_insert(path);
        }

        // Followed files: renamed, or orphaned.
        let mut notes = Vec::new();
        for t in &mut self.files {
            match by_inode.remove(&(t.fp.dev, t.fp.ino)) {
                Some(p) => {
                    if p != *t.path {
                        notes.push(format!(
                            "{} is now {} (rotated); following it to its end",
                            t.path.display(),
                            p.display()
                        ));
                        t.path = Arc::new(p);
                    }
                    t.orphan_since = None;
                }
                None => {
                    if t.orphan_since.is_none() {
                        t.orphan_since = Some(now);
                        t.idle_polls = 0;
                        let how = if t.deleted() {
                            "deleted"
                        } else {
                            "renamed away"
                        };
                        notes.push(format!(
                            "{} was {how}; reading it to its end",
                            t.path.display()
                        ));
                    }
                }
            }
        }
        for n in notes {
            self.note(n);
        }

        // New files.
        let mut new: Vec<(PathBuf, (u64, u64))> =
            by_inode.into_iter().map(|(id, p)| (p, id)).collect();
        new.sort();
        let seen_unread = if first_scan {
            self.seen_unread()
        } else {
            Vec::new()
        };
        let mut skipped = 0usize;
        let mut matched = Vec::with_capacity(new.len());
        let mut opened = Vec::new();
        for (path, id) in new {
            matched.push(id);
            if self.files.len() >= self.max_files {
                skipped += 1;
                continue;
            }
            if let Some(how) = self.open(path, now, first_scan)
                && !seen_unread.is_empty()
            {
                opened.push((id, how));
            }
        }
        if !seen_unread.is_empty() {
            self.count_lost_while_stopped(seen_unread, &matched, &opened);
        }
        let followed: HashSet<(u64, u64)> =
            self.files.iter().map(|t| (t.fp.dev, t.fp.ino)).collect();
        matched.retain(|id| !followed.contains(id));
        if matched != self.unfollowed {
            self.unfollowed = matched;
            self.unfollowed_changed = true;
        }
        self.unopenable.retain(|p| p.exists());
        if skipped > 0 && skipped != self.last_skipped {
            self.note(format!(
                "{skipped} matching files not followed: max-files ({}) are open",
                self.max_files
            ));
        }
        self.last_skipped = skipped;
        self.status.with(|s| s.files_skipped = skipped);
        // Bytes a truncation left unread that no file found now holds a copy of are lost.
        for u in std::mem::take(&mut self.unread) {
            self.count_lost(u);
        }
        let dirs = self.watch_dirs();
        let files = self.files.iter().map(|t| t.path.to_path_buf()).collect();
        self.watcher.set_watched(dirs, files);
    }

    /// Opens and follows a file found by a scan; how it started, if it is followed.
    fn open(&mut self, path: PathBuf, now: Instant, first_scan: bool) -> Option<Opened> {
        let opened = File::open(&path).and_then(|f| {
            let (fp, head) = fingerprint::fingerprint(&f, self.framing)?;
            Ok((f, fp, head))
        });
        let (file, fp, head) = match opened {
            Ok(x) => x,
            Err(e) => {
                if self.unopenable.len() < self.max_files && self.unopenable.insert(path.clone()) {
                    self.note(format!("cannot open {}: {e}", path.display()));
                }
                return None;
            }
        };
        self.unopenable.remove(&path);
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let start = self.start_of(&fp, &head);
        if matches!(start, Start::Known(..)) {
            // A copy of a truncated file's content (copytruncate's `auth.log.1`): what the
            // truncation left unread is read from it.
            self.unread.retain(|u| u.old.head != fp.head);
        }
        let mut resumed = None;
        let offset = match start {
            Start::Twin => return None,
            Start::Known(o, _) if o > size => {
                self.note(format!(
                    "{} is shorter than its checkpoint ({o} > {size}): truncated meanwhile; reading it from 0",
                    path.display()
                ));
                0
            }
            Start::Known(o, from) => {
                resumed = Some(from);
                self.framing.whole(o)
            }
            Start::New if first_scan && self.first_start => match (self.read_from, self.framing) {
                (ReadFrom::Beginning, _) => 0,
                (ReadFrom::End, Framing::Records { .. }) => self.framing.whole(size),
                (ReadFrom::End, Framing::Lines) => {
                    Tailed::start_of_last_line(&file, size, self.limits.max_line).unwrap_or(size)
                }
            },
            Start::New => {
                // A checkpoint for this device and inode under another first line, past the
                // end: the file shrank and was rewritten while the agent was down.
                if let Some(o) = self
                    .known
                    .iter()
                    .filter(|(k, v)| k.dev == fp.dev && k.ino == fp.ino && v.offset > size)
                    .map(|(_, v)| v.offset)
                    .max()
                {
                    self.note(format!(
                        "{} is shorter than its checkpoint ({o} > {size}) and its first line \
                         changed: truncated or rewritten while the agent was down; reading it \
                         from 0",
                        path.display()
                    ));
                }
                0
            }
        };
        match Tailed::new(file, self.framing, Arc::new(path), fp, head, offset, now) {
            Ok(t) => {
                self.remember(fp, offset);
                self.files.push(t);
                Some(resumed.map_or(Opened::Restarted, Opened::Resumed))
            }
            Err(e) => {
                self.note(format!("cannot follow a file: {e}"));
                None
            }
        }
    }

    /// Where a newly opened file starts, from what is known (see the module documentation).
    fn start_of(&self, fp: &Fingerprint, head: &fingerprint::Head) -> Start {
        match self.known_offset(fp, head) {
            Some((o, from)) => Start::Known(o, from),
            None if head.stable
                && head.bytes.len() >= MIN_COPY_HEAD
                && self.files.iter().any(|t| {
                    t.fp.head == fp.head && t.head_stable() && t.head_len() == head.bytes.len()
                }) =>
            {
                Start::Twin
            }
            None => Start::New,
        }
    }

    /// The offset a file resumes at, with the known stream it is taken from.
    fn known_offset(
        &self,
        fp: &Fingerprint,
        head: &fingerprint::Head,
    ) -> Option<(u64, Fingerprint)> {
        if let Some(k) = self.known.get(fp) {
            return Some((k.offset, *fp));
        }
        // The same inode under a shorter (older) first line.
        let same_inode: Vec<(Fingerprint, u64)> = self
            .known
            .iter()
            .filter(|(k, _)| k.dev == fp.dev && k.ino == fp.ino && k.head != 0)
            .map(|(k, v)| (*k, v.offset))
            .collect();
        if !same_inode.is_empty() {
            let prefixes = fingerprint::prefix_checksums(&head.bytes);
            if let Some((k, o)) = same_inode
                .iter()
                .filter(|(k, _)| prefixes.contains(&k.head))
                .max_by_key(|&&(_, o)| o)
            {
                return Some((*o, *k));
            }
        }
        // A copy of a known stream that is not followed under that head any more.
        if head.stable
            && head.bytes.len() >= MIN_COPY_HEAD
            && !self.files.iter().any(|t| t.fp.head == fp.head)
        {
            return self
                .known
                .iter()
                .filter(|(k, _)| k.head == fp.head)
                .map(|(k, v)| (v.offset, *k))
                .max_by_key(|&(o, _)| o);
        }
        None
    }

    fn read_all(&mut self, now: Instant) -> Vec<Chunk> {
        let mut out = Vec::new();
        let mut notes = Vec::new();
        let mut more = true;
        while more && out.len() < MAX_CHUNKS_PER_POLL {
            more = false;
            for t in &mut self.files {
                if out.len() >= MAX_CHUNKS_PER_POLL {
                    more = true;
                    break;
                }
                match t.read_chunk(&self.name, &self.limits, now, false) {
                    Ok((chunk, full)) => {
                        more |= full;
                        if let Some(c) = chunk {
                            out.push(c);
                        }
                    }
                    Err(e) => notes.push(format!("reading {}: {e}", t.path.display())),
                }
            }
        }
        self.backlog = more;
        let emitted: Vec<(Fingerprint, u64)> = out
            .iter()
            .filter_map(|c| match (&c.stream, &c.end) {
                (StreamKey::File { fingerprint }, Position::Offset(o)) => Some((*fingerprint, *o)),
                _ => None,
            })
            .collect();
        for (fp, o) in emitted {
            self.remember(fp, o);
        }
        for n in notes {
            self.note(n);
        }
        out
    }

    /// Closes orphans at their end that stayed idle long enough; a held partial line is emitted
    /// (flushed) first, in the returned chunk.
    fn close_idle_orphans(&mut self, now: Instant) -> Vec<Chunk> {
        // Records: nobody writes to a rotated utmp file, so it closes once read to its end.
        let (idle_polls, idle_for) = match self.framing {
            Framing::Lines => (ORPHAN_IDLE_POLLS, self.poll_interval * ORPHAN_IDLE_POLLS),
            Framing::Records { .. } => (1, Duration::ZERO),
        };
        let mut closing = Vec::new();
        for (i, t) in self.files.iter_mut().enumerate() {
            if t.orphan_since.is_none() {
                continue;
            }
            if t.offset < self.framing.whole(t.size) || t.has_unread(now, &self.limits) {
                t.idle_polls = 0;
                continue;
            }
            t.idle_polls += 1;
            if t.idle_polls >= idle_polls
                && now.saturating_duration_since(t.last_growth) >= idle_for
            {
                closing.push(i);
            }
        }
        if closing.is_empty() {
            return Vec::new();
        }
        let mut flushed = Vec::new();
        for &i in closing.iter().rev() {
            let mut t = self.files.remove(i);
            if !t.caught_up()
                && let Ok((Some(c), _)) = t.read_chunk(&self.name, &self.limits, now, true)
            {
                flushed.push(c);
            }
            self.remember(t.fp, t.offset);
            add(&mut self.closed_totals, &t.counters);
            self.note(format!("closed {} (orphaned and idle)", t.path.display()));
        }
        flushed
    }

    /// The streams of the start checkpoints this source read (their last path matches its
    /// globs) with bytes seen but not read: size as last seen beyond the start position. Of the
    /// streams of one inode only the latest (the largest position) counts: the others are the
    /// same file under earlier first lines.
    fn seen_unread(&mut self) -> Vec<SeenUnread> {
        let mut latest: HashMap<(u64, u64), (u64, SeenUnread)> = HashMap::new();
        for (key, seen) in std::mem::take(&mut self.last_seen) {
            let Some(k) = self.known.get(&key) else {
                continue;
            };
            if !self.patterns.iter().any(|g| g.matches_path(&seen.path)) {
                continue;
            }
            let offset = k.offset;
            let u = SeenUnread {
                key,
                bytes: seen.size.saturating_sub(offset),
                path: seen.path,
            };
            match latest.entry((key.dev, key.ino)) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    if offset > e.get().0 {
                        e.insert((offset, u));
                    }
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert((offset, u));
                }
            }
        }
        let mut out: Vec<SeenUnread> = latest
            .into_values()
            .map(|(_, u)| u)
            .filter(|u| u.bytes > 0)
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// After the first scan: the bytes seen but not read of a start stream are lost when its
    /// file was truncated or rewritten (its inode was opened again from 0) or is gone (no file
    /// the globs match has its inode, and none was taken as a copy of it) while the agent was
    /// stopped. Counted once: the stream is handed to the run loop
    /// ([`SourceStatus::settled`]), which records that nothing is known unread of it any more.
    /// A stream whose inode the globs match but that is not followed (`max-files`, a file that
    /// cannot be opened) is not judged.
    fn count_lost_while_stopped(
        &mut self,
        seen_unread: Vec<SeenUnread>,
        matched: &[(u64, u64)],
        opened: &[((u64, u64), Opened)],
    ) {
        let resumed: Vec<Fingerprint> = opened
            .iter()
            .filter_map(|(_, how)| match how {
                Opened::Resumed(from) => Some(*from),
                Opened::Restarted => None,
            })
            .collect();
        let mut settled: Vec<Fingerprint> = Vec::new();
        for u in seen_unread {
            // Read on from where it was, or from a copy (copytruncate's `auth.log.1`).
            if resumed
                .iter()
                .any(|r| *r == u.key || (u.key.head != 0 && r.head == u.key.head))
            {
                continue;
            }
            let id = (u.key.dev, u.key.ino);
            let how = match opened.iter().find(|(i, _)| *i == id) {
                Some((_, Opened::Resumed(_))) => continue,
                Some((_, Opened::Restarted)) => "truncated, rewritten or replaced",
                None if matched.contains(&id) => continue,
                None => "deleted or moved out of the globs",
            };
            self.closed_totals.lost_bytes += u.bytes;
            self.warn(format!(
                "{}: {} byte(s) seen but not yet read were lost while the agent was stopped: \
                 the file was {how} before they were read",
                u.path.display(),
                u.bytes
            ));
            if settled.len() < KNOWN_MAX {
                settled.push(u.key);
            }
        }
        if !settled.is_empty() {
            self.status.with(|s| {
                s.settled.extend(settled);
                let excess = s.settled.len().saturating_sub(KNOWN_MAX);
                s.settled.drain(..excess);
            });
        }
    }

    /// Counts bytes a truncation left unread as lost (in the totals, with closed files'
    /// counters) and says so.
    fn count_lost(&mut self, u: Unread) {
        self.closed_totals.lost_bytes += u.bytes;
        self.warn(format!(
            "{}: {} byte(s) not yet read were lost: the file was truncated (copytruncate?) and \
             no file the globs match holds a copy of them",
            u.path.display(),
            u.bytes
        ));
    }

    fn publish_status(&mut self) {
        let mut totals = self.closed_totals;
        let files = self
            .files
            .iter()
            .map(|t| {
                add(&mut totals, &t.counters);
                FileStreamStatus {
                    path: Arc::clone(&t.path),
                    fingerprint: t.fp,
                    offset: t.offset,
                    size: t.size,
                    orphaned: t.orphan_since.is_some(),
                    counters: t.counters,
                }
            })
            .collect();
        let unfollowed = self.unfollowed_changed.then(|| self.unfollowed.clone());
        // Files and unfollowed matches together: a file opened by this poll's scan is in one of
        // them at every look.
        self.unfollowed_changed = false;
        self.status.with(|s| {
            s.files = files;
            s.totals = totals;
            s.polls += 1;
            if let Some(u) = unfollowed {
                s.unfollowed = u;
            }
            s.scanned = self.first_scan_done;
        });
    }
}

/// What a truncation left unread in a followed file ([`Change::Truncated`]).
#[derive(Debug)]
struct Unread {
    /// The file's key before the truncation: a copy of its content has the same head.
    old: Fingerprint,
    bytes: u64,
    path: Arc<PathBuf>,
}

fn add(to: &mut FileCounters, c: &FileCounters) {
    to.lines_read += c.lines_read;
    to.lines_truncated += c.lines_truncated;
    to.partial_lines_flushed += c.partial_lines_flushed;
    to.truncations += c.truncations;
    to.lost_bytes += c.lost_bytes;
}

/// The directory to watch for a glob: the parent of its first component with a wildcard (or of
/// the path itself when it has none).
fn literal_dir(glob: &str) -> PathBuf {
    let path = Path::new(glob);
    let mut dir = PathBuf::new();
    for c in path.components() {
        let wild =
            matches!(c, Component::Normal(s) if s.to_string_lossy().contains(['*', '?', '[']));
        if wild {
            return if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            };
        }
        dir.push(c);
    }
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests;
