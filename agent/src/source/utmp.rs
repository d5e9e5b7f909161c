//! The wtmp/btmp source: `struct utmp` records ([`agent_core::utmp`]) read from the end of
//! growing binary files, by the file source's tailer framed as 384-byte records.
//!
//! # How it reads
//!
//! A [`UtmpSource`] is a [`FileSource`] with [`Framing::Records`] of [`RECORD_LEN`] bytes: the
//! same globs, watcher, fingerprints, checkpoints, rotation and truncation handling as a text
//! log (see [`super::file`], whose module documentation says what the framing changes). Only
//! whole records are read; a partial trailing record (a writer caught mid-`write`) waits for the
//! next poll. At most [`MAX_CHUNK_RECORDS`] records go in one chunk, so a large backlog costs one
//! chunk of memory; at most [`MAX_FILES`] files are followed.
//!
//! # Identity, checkpoints, rotation
//!
//! A file is a [`StreamKey::File`] with a [`Fingerprint`]: device, inode, and the FNV-1a
//! checksum of its first record (0 while the file holds no whole record). The checkpoint is the
//! byte offset, always a multiple of [`RECORD_LEN`]. logrotate rotates wtmp monthly and btmp
//! with `create`: the old file is read to its end through its open descriptor and closed; the new
//! file (new inode) is read from its start. A rotated file found again under a glob
//! (`/var/log/wtmp*`) resumes at its offset. A truncation (`> /var/log/btmp`) restarts at 0.
//! Files present at the first start follow `read-from`; files found later are read from their
//! beginning.
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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::SyncSender;

pub(crate) use agent_core::utmp::{RECORD_LEN, UtmpFile};

use super::file::{FileSource, FileSourceConfig, FileStatus, Framing};
use super::{Chunk, Fingerprint, Payload, Position, StreamKey};

mod config;

pub use self::config::UtmpSourceConfig;

/// Most records in one [`Chunk`] (96 KiB of data).
pub(crate) const MAX_CHUNK_RECORDS: usize = 256;

/// Most files followed at once by one utmp source; further matches are skipped with a note.
pub(crate) const MAX_FILES: usize = 64;

/// The framing of wtmp and btmp.
pub(crate) const UTMP_FRAMING: Framing = Framing::Records {
    len: RECORD_LEN,
    payload: Payload::Utmp,
};

/// Status of one followed file, for `authtrail status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UtmpFileStatus {
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
#[derive(Debug)]
pub(crate) struct UtmpStatus(Arc<FileStatus>);

impl UtmpStatus {
    /// Bytes lost to truncations before they were read.
    pub(crate) fn lost_bytes(&self) -> u64 {
        self.0.lost_bytes()
    }

    /// Records handed to the pipeline since the source started.
    #[cfg(test)]
    pub(crate) fn records_read(&self) -> u64 {
        self.0.get().totals.lines_read
    }

    /// Sizes as last seen and counted losses into the checkpoints: [`FileStatus::record_sizes`].
    pub(crate) fn record_sizes(&self, checkpoints: &mut super::checkpoint::Checkpoints) {
        self.0.record_sizes(checkpoints);
    }

    /// What the source has live: [`FileStatus::add_live`].
    pub(crate) fn add_live(&self, live: &mut super::checkpoint::Live) -> bool {
        self.0.add_live(live)
    }

    /// The files followed at the last poll.
    pub(crate) fn files(&self) -> Vec<UtmpFileStatus> {
        self.0
            .files()
            .into_iter()
            .map(|f| UtmpFileStatus {
                kind: UtmpFile::from_file_name(
                    f.path
                        .file_name()
                        .map(|n| n.as_encoded_bytes())
                        .unwrap_or_default(),
                ),
                path: f.path.to_path_buf(),
                fingerprint: f.fingerprint,
                offset: f.offset,
                size: f.size,
            })
            .collect()
    }
}

/// A `[[source]] type = "utmp"`: follows wtmp/btmp files and hands their records on as chunks.
#[derive(Debug)]
pub struct UtmpSource {
    files: FileSource,
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
        let as_files = FileSourceConfig {
            name: config.name.clone(),
            paths: config.paths.clone(),
            read_from: config.read_from,
            poll_interval: config.poll_interval,
            max_files: MAX_FILES,
            ..FileSourceConfig::default()
        };
        let mut files = FileSource::new(&as_files, name, start, RECORD_LEN, first_start)
            .with_framing(UTMP_FRAMING);
        files.set_chunk_limits(MAX_CHUNK_RECORDS * RECORD_LEN, MAX_CHUNK_RECORDS);
        let status = Arc::new(UtmpStatus(files.status()));
        UtmpSource { files, status }
    }

    /// The start checkpoints' sizes as last seen: [`FileSource::with_last_seen`].
    pub(crate) fn with_last_seen(
        mut self,
        last_seen: HashMap<super::Fingerprint, super::checkpoint::LastSeen>,
    ) -> Self {
        self.files = self.files.with_last_seen(last_seen);
        self
    }

    /// The counters `authtrail status` shows; shared with the running source.
    pub(crate) fn status(&self) -> Arc<UtmpStatus> {
        Arc::clone(&self.status)
    }

    /// A handle that wakes the running source at once (set the stop flag, then wake).
    pub(crate) fn waker(&self) -> super::file::Waker {
        self.files.waker()
    }

    /// Follows the files until `stop` is set or the receiver hangs up: [`FileSource::run`].
    pub(crate) fn run(self, tx: SyncSender<Chunk>, stop: Arc<AtomicBool>) {
        self.files.run(tx, stop);
    }

    /// Scans the paths and reads every whole new record, returning the chunks. For tests and
    /// one-shot reads; `run` does the same without collecting.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn poll_once(&mut self) -> Vec<Chunk> {
        self.files.rescan_next_poll();
        let mut out = self.files.poll_once();
        while self.files.has_backlog() {
            out.extend(self.files.poll_once());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::io::Write;
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use crate::config::ReadFrom;

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
        // An idle source sleeps until an event or its waker: a stop sets the flag, then wakes it
        // (as run.rs does).
        let waker = src.waker();
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
        waker.wake();
        h.join().unwrap();
    }
}
