//! The wtmp/btmp source: `struct utmp` records ([`agent_core::utmp`]) read from the end of
//! growing binary files.
//!
//! # How it reads
//!
//! Every `poll-interval` (default 1 s) the source expands its `paths` (globs allowed), opens
//! files it does not follow yet, and reads every *whole* 384-byte record past its offset; a
//! partial trailing record (a writer caught mid-`write`) waits for the next poll. Records go out
//! as [`Chunk`]s with [`Payload::Utmp`], the records back to back in `data`, one [`Record`] per
//! record with its byte offset, and `end` the offset just past the last one. At most
//! [`MAX_CHUNK_RECORDS`] records go in one chunk, and a chunk is handed over before the next one
//! is read, so a large backlog costs one chunk of memory. Polling rather than inotify: wtmp and
//! btmp change a few times a minute at most, and one `fstat` plus one 384-byte `pread` per file
//! per second is cheaper than the watcher's bookkeeping.
//!
//! # Identity, checkpoints, rotation
//!
//! A file is a [`StreamKey::File`] with a [`Fingerprint`]: device, inode, and an FNV-1a checksum
//! of its first record (0 while the file holds no whole record). This module computes it itself
//! ([`fingerprint`]); its checksum covers the first [`RECORD_LEN`] bytes rather than the file
//! source's first line, since a utmp file has no lines. The checkpoint is the byte offset, always
//! a multiple of [`RECORD_LEN`] (a stored offset that is not is rounded down, so a record is
//! never read from its middle).
//!
//! logrotate rotates wtmp monthly and btmp with `create`: rename to `wtmp.1`, create a new
//! `wtmp`. The open handle of the old file is read to its end, then dropped once no configured
//! path names it; the new file at the path is new (different inode) and is read from its start.
//! A rotated file found again under a glob (`/var/log/wtmp*`) matches its saved fingerprint and
//! resumes at its offset, so it is not read twice. A truncation (`> /var/log/btmp`, copytruncate)
//! is a file shorter than its offset, or whose first record no longer matches the fingerprint:
//! reading restarts at 0 under the new fingerprint.
//!
//! Where to start in a file without a checkpoint: files present at the first start of the agent
//! follow `read-from` (`end`: only records written from now on); files found later are read from
//! their beginning.
//!
//! # Provider tagging and auth-log duplicates
//!
//! A login with a terminal shows up twice on most hosts: sshd's `Accepted ...` / pam_unix
//! `session opened` in the auth log (or journal), and a `USER_PROCESS` record in wtmp; a failed
//! password is both a `Failed password` line and a btmp record. The utmp events are **kept** and
//! tagged: the runtime sets `event.provider = "utmp"` on every event from this source (`"file"`
//! and `"journald"` on the others). They are not suppressed in the agent because either source
//! can be missing on a given host (a syslog daemon that is not running, a btmp that rotates
//! separately, an auth log that an intruder edited while wtmp escaped), and because matching
//! them would need state across sources that agent-core deliberately lacks. A consumer that
//! wants one event per login either filters `event.provider: utmp` out, or de-duplicates by
//! preferring the auth-log event with the same `user.name`, `authtrail.tty` (or `source.ip`)
//! and a `@timestamp` within a second or two (btmp records from sshd carry whole seconds only).
//! The utmp event's `process.name` is a best guess (see [`agent_core::utmp`]); its
//! `process.pid` is the record's own.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use agent_core::utmp::{RECORD_LEN, UtmpFile};

use super::{Chunk, Fingerprint, Payload, Position, Record, StreamKey};
use crate::config::{ReadFrom, UtmpSourceConfig};

/// Most records in one [`Chunk`] (96 KiB of data).
pub const MAX_CHUNK_RECORDS: usize = 256;

/// Most files followed at once by one utmp source; further matches are skipped with a warning.
pub const MAX_FILES: usize = 64;

/// Longest sleep between checks of the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// The identity of an open utmp file: device, inode and the FNV-1a checksum of its first
/// [`RECORD_LEN`] bytes (0 while it is shorter than one record).
pub fn fingerprint(file: &File) -> io::Result<Fingerprint> {
    let meta = file.metadata()?;
    Ok(Fingerprint {
        dev: meta.dev(),
        ino: meta.ino(),
        head: head_checksum(file)?,
    })
}

fn head_checksum(file: &File) -> io::Result<u64> {
    let mut buf = [0u8; RECORD_LEN];
    let mut got = 0;
    while got < RECORD_LEN {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => return Ok(0),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(fnv1a(&buf))
}

/// FNV-1a, 64 bits: stable across versions and platforms (it is stored in checkpoints).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Status of one followed file, for `authtrail status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtmpFileStatus {
    /// The path it was last seen at.
    pub path: PathBuf,
    /// Its identity.
    pub fingerprint: Fingerprint,
    /// wtmp or btmp.
    pub kind: UtmpFile,
    /// Offset of the next unread record.
    pub offset: u64,
    /// File size at the last poll (`size - offset` is the lag in bytes).
    pub size: u64,
}

/// Counters shared between the source's thread and `authtrail status`.
#[derive(Debug, Default)]
pub struct UtmpStatus {
    records_read: AtomicU64,
    files: Mutex<Vec<UtmpFileStatus>>,
}

impl UtmpStatus {
    /// Records handed to the pipeline since the source started.
    pub fn records_read(&self) -> u64 {
        self.records_read.load(Ordering::Relaxed)
    }

    /// The files followed at the last poll.
    pub fn files(&self) -> Vec<UtmpFileStatus> {
        self.files.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

/// One followed file.
#[derive(Debug)]
struct Followed {
    file: File,
    path: Arc<PathBuf>,
    fingerprint: Fingerprint,
    kind: UtmpFile,
    offset: u64,
    size: u64,
}

/// A `[[source]] type = "utmp"`: follows wtmp/btmp files and hands their records on as chunks.
#[derive(Debug)]
pub struct UtmpSource {
    name: Arc<str>,
    patterns: Vec<String>,
    read_from: ReadFrom,
    poll_interval: Duration,
    first_start: bool,
    scanned_once: bool,
    start: HashMap<StreamKey, Position>,
    followed: Vec<Followed>,
    warned: HashSet<String>,
    status: Arc<UtmpStatus>,
}

impl UtmpSource {
    /// A source for `config`, called `name`, resuming from the checkpoints in `start` (positions
    /// of streams this source does not own are ignored). `first_start` is true when the agent has
    /// never run before (no state), which is when `read-from` applies.
    pub fn new(
        config: &UtmpSourceConfig,
        name: Arc<str>,
        start: HashMap<StreamKey, Position>,
        first_start: bool,
    ) -> Self {
        let start = start
            .into_iter()
            .filter(|(k, p)| matches!((k, p), (StreamKey::File { .. }, Position::Offset(_))))
            .collect();
        UtmpSource {
            name,
            patterns: config.paths.clone(),
            read_from: config.read_from,
            poll_interval: config.poll_interval,
            first_start,
            scanned_once: false,
            start,
            followed: Vec::new(),
            warned: HashSet::new(),
            status: Arc::new(UtmpStatus::default()),
        }
    }

    /// The counters `authtrail status` shows; shared with the running source.
    pub fn status(&self) -> Arc<UtmpStatus> {
        Arc::clone(&self.status)
    }

    /// Follows the files until `stop` is set or the receiver hangs up. Blocks while `tx` is full
    /// (that is the back-pressure that bounds memory), checking `stop` meanwhile.
    pub fn run(mut self, tx: SyncSender<Chunk>, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            let keep_going = self.poll_with(|chunk| send(&tx, chunk, &stop));
            if !keep_going {
                return;
            }
            sleep_unless_stopped(self.poll_interval, &stop);
        }
    }

    /// One poll: scan the paths and read every whole new record, returning the chunks. For tests
    /// and one-shot reads; `run` does the same without collecting.
    pub fn poll_once(&mut self) -> Vec<Chunk> {
        let mut out = Vec::new();
        self.poll_with(|c| {
            out.push(c);
            true
        });
        out
    }

    /// Scans, reads, and hands each chunk to `emit`; stops early (returning false) when `emit`
    /// returns false.
    fn poll_with(&mut self, mut emit: impl FnMut(Chunk) -> bool) -> bool {
        let paths = self.expand();
        self.open_new(&paths);
        for i in 0..self.followed.len() {
            if !self.read_file(i, &mut emit) {
                return false;
            }
        }
        // Forget files that no configured path names any more once they are read to the end
        // (rotated away or deleted); the new file at the path was opened above.
        let named: HashSet<(u64, u64)> = paths.iter().filter_map(|(_, id)| *id).collect();
        self.followed.retain(|f| {
            named.contains(&(f.fingerprint.dev, f.fingerprint.ino)) || f.offset < round_down(f.size)
        });
        self.publish_status();
        self.scanned_once = true;
        true
    }

    /// The configured paths, globs expanded, each with its (dev, ino) if it exists.
    fn expand(&mut self) -> Vec<(PathBuf, Option<(u64, u64)>)> {
        let mut out = Vec::new();
        for pattern in self.patterns.clone() {
            let candidates: Vec<PathBuf> = if pattern.contains(['*', '?', '[']) {
                match glob::glob(&pattern) {
                    Ok(paths) => paths.filter_map(Result::ok).collect(),
                    Err(e) => {
                        self.warn_once(&pattern, format_args!("bad glob {pattern:?}: {e}"));
                        Vec::new()
                    }
                }
            } else {
                vec![PathBuf::from(&pattern)]
            };
            for path in candidates {
                let id = std::fs::metadata(&path)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| (m.dev(), m.ino()));
                out.push((path, id));
            }
        }
        out
    }

    /// Opens files at `paths` not followed yet, and notes the current path of those that are.
    fn open_new(&mut self, paths: &[(PathBuf, Option<(u64, u64)>)]) {
        for (path, id) in paths {
            let Some((dev, ino)) = *id else { continue };
            if let Some(f) = self
                .followed
                .iter_mut()
                .find(|f| (f.fingerprint.dev, f.fingerprint.ino) == (dev, ino))
            {
                if f.path.as_path() != path {
                    f.path = Arc::new(path.clone());
                }
                continue;
            }
            if self.followed.len() >= MAX_FILES {
                let key = path.display().to_string();
                self.warn_once(
                    &key,
                    format_args!(
                        "{}: not followed, more than {MAX_FILES} files",
                        path.display()
                    ),
                );
                continue;
            }
            match self.open(path) {
                Ok(f) => {
                    self.warned.remove(&path.display().to_string());
                    self.followed.push(f);
                }
                Err(e) => {
                    let key = path.display().to_string();
                    self.warn_once(&key, format_args!("{}: {e}", path.display()));
                }
            }
        }
    }

    fn open(&mut self, path: &Path) -> io::Result<Followed> {
        let file = File::open(path)?;
        let fp = fingerprint(&file)?;
        let size = file.metadata()?.len();
        let whole = round_down(size);
        let saved = self
            .start
            .remove(&StreamKey::File { fingerprint: fp })
            .and_then(|p| match p {
                Position::Offset(o) => Some(o),
                Position::Cursor(_) => None,
            });
        let offset = match saved {
            // Shorter than the checkpoint with the same first record: truncated and refilled
            // past the first record; read it all again rather than miss records.
            Some(o) if o > size => 0,
            Some(o) => round_down(o),
            None if !self.scanned_once && self.first_start && self.read_from == ReadFrom::End => {
                whole
            }
            None => 0,
        };
        let name = path
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or_default();
        Ok(Followed {
            file,
            path: Arc::new(path.to_path_buf()),
            fingerprint: fp,
            kind: UtmpFile::from_file_name(name),
            offset,
            size,
        })
    }

    /// Reads followed file `i` to its last whole record.
    fn read_file(&mut self, i: usize, emit: &mut impl FnMut(Chunk) -> bool) -> bool {
        let name = Arc::clone(&self.name);
        let status = Arc::clone(&self.status);
        let f = &mut self.followed[i];
        if let Err(e) = refresh(f) {
            let (key, msg) = (
                f.path.display().to_string(),
                format!("{}: {e}", f.path.display()),
            );
            self.warn_once(&key, format_args!("{msg}"));
            return true;
        }
        loop {
            let f = &mut self.followed[i];
            let whole = round_down(f.size);
            if f.offset >= whole {
                return true;
            }
            let n = (((whole - f.offset) as usize) / RECORD_LEN).min(MAX_CHUNK_RECORDS);
            let mut data = vec![0u8; n * RECORD_LEN];
            let got = match read_full_at(&f.file, &mut data, f.offset) {
                Ok(g) => round_down(g as u64) as usize,
                Err(e) => {
                    let (key, msg) = (
                        f.path.display().to_string(),
                        format!("{}: {e}", f.path.display()),
                    );
                    self.warn_once(&key, format_args!("{msg}"));
                    return true;
                }
            };
            if got == 0 {
                return true;
            }
            data.truncate(got);
            let records = (0..got / RECORD_LEN)
                .map(|k| Record {
                    start: (k * RECORD_LEN) as u32,
                    end: ((k + 1) * RECORD_LEN) as u32,
                    offset: Some(f.offset + (k * RECORD_LEN) as u64),
                    truncated: false,
                    journal: None,
                })
                .collect::<Vec<_>>();
            let count = records.len() as u64;
            f.offset += got as u64;
            let chunk = Chunk {
                source: Arc::clone(&name),
                stream: StreamKey::File {
                    fingerprint: f.fingerprint,
                },
                path: Some(Arc::clone(&f.path)),
                payload: Payload::Utmp,
                data,
                records,
                end: Position::Offset(f.offset),
            };
            status.records_read.fetch_add(count, Ordering::Relaxed);
            if !emit(chunk) {
                return false;
            }
        }
    }

    fn publish_status(&self) {
        if let Ok(mut files) = self.status.files.lock() {
            *files = self
                .followed
                .iter()
                .map(|f| UtmpFileStatus {
                    path: f.path.to_path_buf(),
                    fingerprint: f.fingerprint,
                    kind: f.kind,
                    offset: f.offset,
                    size: f.size,
                })
                .collect();
        }
    }

    /// Warns once per key until the key's problem goes away (so an unreadable btmp does not
    /// fill the log once a second).
    fn warn_once(&mut self, key: &str, msg: std::fmt::Arguments<'_>) {
        if self.warned.insert(key.to_owned()) {
            eprintln!("authtrail: warning: utmp source {}: {msg}", self.name);
        }
    }
}

/// Updates size and fingerprint of a followed file; detects truncation.
fn refresh(f: &mut Followed) -> io::Result<()> {
    f.size = f.file.metadata()?.len();
    let head = head_checksum(&f.file)?;
    if f.fingerprint.head == 0 {
        // The first record arrived: the file now has its lasting identity.
        f.fingerprint.head = head;
        if f.size < f.offset {
            f.offset = 0;
        }
    } else if head != f.fingerprint.head || f.size < f.offset {
        // Truncated (and maybe refilled): a different file under the same inode.
        f.fingerprint.head = head;
        f.offset = 0;
    }
    Ok(())
}

fn round_down(n: u64) -> u64 {
    n - n % RECORD_LEN as u64
}

/// Reads as much of `buf` as the file holds at `offset`.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Sends a chunk, waiting while the channel is full; false when stopped or hung up.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const WTMP: &[u8] = include_bytes!("../../../agent-core/testdata/debian12-utmp/wtmp");
    const BTMP: &[u8] = include_bytes!("../../../agent-core/testdata/debian12-utmp/btmp");

    fn config(paths: &[&Path], read_from: ReadFrom) -> UtmpSourceConfig {
        UtmpSourceConfig {
            name: None,
            paths: paths.iter().map(|p| p.display().to_string()).collect(),
            read_from,
            poll_interval: Duration::from_millis(20),
        }
    }

    fn append(path: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    fn records_of(chunks: &[Chunk]) -> Vec<Vec<u8>> {
        chunks
            .iter()
            .flat_map(|c| c.records.iter().map(|r| c.bytes(r).to_vec()))
            .collect()
    }

    fn split(data: &[u8]) -> Vec<Vec<u8>> {
        data.chunks(RECORD_LEN).map(<[u8]>::to_vec).collect()
    }

    fn checkpoints(chunks: &[Chunk]) -> HashMap<StreamKey, Position> {
        chunks
            .iter()
            .map(|c| (c.stream.clone(), c.end.clone()))
            .collect()
    }

    #[test]
    fn reads_whole_records_and_holds_a_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let wtmp = dir.path().join("wtmp");
        append(&wtmp, &WTMP[..3 * RECORD_LEN + 100]);
        let mut src = UtmpSource::new(
            &config(&[&wtmp], ReadFrom::End),
            "utmp".into(),
            HashMap::new(),
            false,
        );
        let chunks = src.poll_once();
        assert_eq!(records_of(&chunks), split(&WTMP[..3 * RECORD_LEN]));
        let c = &chunks[0];
        assert_eq!(c.payload, Payload::Utmp);
        assert_eq!(c.end, Position::Offset(3 * RECORD_LEN as u64));
        assert_eq!(
            c.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![Some(0), Some(384), Some(768)]
        );
        assert!(src.poll_once().is_empty(), "partial record must wait");
        append(&wtmp, &WTMP[3 * RECORD_LEN + 100..5 * RECORD_LEN]);
        let chunks = src.poll_once();
        assert_eq!(
            records_of(&chunks),
            split(&WTMP[3 * RECORD_LEN..5 * RECORD_LEN])
        );
        assert_eq!(src.status().records_read(), 5);
        let st = src.status().files();
        assert_eq!((st[0].offset, st[0].size), (1920, 1920));
        assert_eq!(st[0].kind, UtmpFile::Wtmp);
    }

    #[test]
    fn read_from_end_on_first_start_and_resume_from_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let btmp = dir.path().join("btmp");
        append(&btmp, &BTMP[..10 * RECORD_LEN]);
        let cfg = config(&[&btmp], ReadFrom::End);
        let mut src = UtmpSource::new(&cfg, "utmp".into(), HashMap::new(), true);
        assert!(src.poll_once().is_empty());
        append(&btmp, &BTMP[10 * RECORD_LEN..12 * RECORD_LEN]);
        let chunks = src.poll_once();
        assert_eq!(
            records_of(&chunks),
            split(&BTMP[10 * RECORD_LEN..12 * RECORD_LEN])
        );
        assert!(chunks.iter().all(|c| c.path.as_deref() == Some(&btmp)));
        let saved = checkpoints(&chunks);
        drop(src);

        // Restart: more records arrived while stopped.
        append(&btmp, &BTMP[12 * RECORD_LEN..]);
        let mut src = UtmpSource::new(&cfg, "utmp".into(), saved, false);
        let chunks = src.poll_once();
        assert_eq!(records_of(&chunks), split(&BTMP[12 * RECORD_LEN..]));
        // 35 records: more than one chunk's worth is split only past MAX_CHUNK_RECORDS.
        assert_eq!(chunks.len(), 1);
    }

    #[test]
    fn read_from_beginning_and_backlog_in_bounded_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let wtmp = dir.path().join("wtmp");
        let mut big = Vec::new();
        while big.len() < (MAX_CHUNK_RECORDS * 2 + 7) * RECORD_LEN {
            big.extend_from_slice(WTMP);
        }
        big.truncate((MAX_CHUNK_RECORDS * 2 + 7) * RECORD_LEN);
        append(&wtmp, &big);
        let mut src = UtmpSource::new(
            &config(&[&wtmp], ReadFrom::Beginning),
            "u".into(),
            HashMap::new(),
            true,
        );
        let chunks = src.poll_once();
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.records.len() <= MAX_CHUNK_RECORDS));
        assert_eq!(records_of(&chunks), split(&big));
    }

    #[test]
    fn rotation_by_rename_and_create() {
        let dir = tempfile::tempdir().unwrap();
        let wtmp = dir.path().join("wtmp");
        append(&wtmp, &WTMP[..4 * RECORD_LEN]);
        let cfg = config(&[&wtmp], ReadFrom::Beginning);
        let mut src = UtmpSource::new(&cfg, "u".into(), HashMap::new(), true);
        let mut all = records_of(&src.poll_once());
        // A late write to the old file, then logrotate: rename, create, new records.
        append(&wtmp, &WTMP[4 * RECORD_LEN..6 * RECORD_LEN]);
        std::fs::rename(&wtmp, dir.path().join("wtmp.1")).unwrap();
        append(&wtmp, &WTMP[6 * RECORD_LEN..9 * RECORD_LEN]);
        let chunks = src.poll_once();
        all.extend(records_of(&chunks));
        assert_eq!(all, split(&WTMP[..9 * RECORD_LEN]));
        // Two streams, different fingerprints.
        let keys: HashSet<_> = chunks.iter().map(|c| c.stream.clone()).collect();
        assert_eq!(keys.len(), 2);
        // The old file is forgotten once drained.
        src.poll_once();
        assert_eq!(src.status().files().len(), 1);
    }

    #[test]
    fn rotated_file_found_by_glob_is_not_read_twice() {
        let dir = tempfile::tempdir().unwrap();
        let wtmp = dir.path().join("wtmp");
        append(&wtmp, &WTMP[..5 * RECORD_LEN]);
        let glob = dir.path().join("wtmp*");
        let cfg = config(&[&glob], ReadFrom::Beginning);
        let mut src = UtmpSource::new(&cfg, "u".into(), HashMap::new(), true);
        let chunks = src.poll_once();
        let saved = checkpoints(&chunks);
        drop(src);
        // Rotated while the agent was stopped.
        std::fs::rename(&wtmp, dir.path().join("wtmp.1")).unwrap();
        append(&wtmp, &WTMP[5 * RECORD_LEN..7 * RECORD_LEN]);
        let mut src = UtmpSource::new(&cfg, "u".into(), saved, false);
        let chunks = src.poll_once();
        assert_eq!(
            records_of(&chunks),
            split(&WTMP[5 * RECORD_LEN..7 * RECORD_LEN])
        );
    }

    #[test]
    fn truncation_restarts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let btmp = dir.path().join("btmp");
        append(&btmp, &BTMP[..6 * RECORD_LEN]);
        let cfg = config(&[&btmp], ReadFrom::Beginning);
        let mut src = UtmpSource::new(&cfg, "u".into(), HashMap::new(), true);
        assert_eq!(records_of(&src.poll_once()).len(), 6);
        // `> btmp` then two new failures, before the next poll.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&btmp)
            .unwrap();
        append(&btmp, &BTMP[20 * RECORD_LEN..22 * RECORD_LEN]);
        let chunks = src.poll_once();
        assert_eq!(
            records_of(&chunks),
            split(&BTMP[20 * RECORD_LEN..22 * RECORD_LEN])
        );
        // Truncated and refilled past the old offset: the changed first record gives it away.
        std::fs::write(&btmp, &BTMP[30 * RECORD_LEN..40 * RECORD_LEN]).unwrap();
        let chunks = src.poll_once();
        assert_eq!(
            records_of(&chunks),
            split(&BTMP[30 * RECORD_LEN..40 * RECORD_LEN])
        );
    }

    #[test]
    fn empty_file_then_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let wtmp = dir.path().join("wtmp");
        std::fs::write(&wtmp, b"").unwrap();
        let cfg = config(&[&wtmp], ReadFrom::End);
        let mut src = UtmpSource::new(&cfg, "u".into(), HashMap::new(), true);
        assert!(src.poll_once().is_empty());
        append(&wtmp, &WTMP[..RECORD_LEN]);
        let chunks = src.poll_once();
        assert_eq!(records_of(&chunks), split(&WTMP[..RECORD_LEN]));
        let StreamKey::File { fingerprint } = &chunks[0].stream else {
            panic!()
        };
        assert_ne!(fingerprint.head, 0);
    }

    #[test]
    fn missing_file_appears_later() {
        let dir = tempfile::tempdir().unwrap();
        let btmp = dir.path().join("btmp");
        let cfg = config(&[&btmp], ReadFrom::End);
        let mut src = UtmpSource::new(&cfg, "u".into(), HashMap::new(), true);
        assert!(src.poll_once().is_empty());
        append(&btmp, &BTMP[..2 * RECORD_LEN]);
        // Found after the first scan: read from its beginning.
        assert_eq!(records_of(&src.poll_once()), split(&BTMP[..2 * RECORD_LEN]));
    }

    #[test]
    fn run_sends_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let wtmp = dir.path().join("wtmp");
        append(&wtmp, WTMP);
        let cfg = config(&[&wtmp], ReadFrom::Beginning);
        let src = UtmpSource::new(&cfg, "u".into(), HashMap::new(), true);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = Arc::clone(&stop);
        let h = std::thread::spawn(move || src.run(tx, s2));
        let c = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(c.records.len(), 20);
        append(&wtmp, &BTMP[..RECORD_LEN]);
        let c = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(c.records.len(), 1);
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }
}
