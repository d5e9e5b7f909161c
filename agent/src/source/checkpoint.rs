//! [`Checkpoints`]: how far each stream has been read, kept in `checkpoints.json` in the state
//! directory.
//!
//! The file is `{"version":1,"streams":[{"key":…,"position":…,"path":…,"updated":…,"size":…}]}`.
//! `size` (optional, absent in files of older agents: unknown) is a file's size as its source
//! last saw it, so that bytes seen but not read are known when the file turns out truncated or
//! gone at the next start ([`Checkpoints::last_seen`]). It is
//! written to a temporary file, fsync'd, renamed over the old one and the directory fsync'd, so
//! a crash leaves either the old or the new file, never a torn one (a leftover temporary file is
//! ignored and overwritten by the next write).
//!
//! A file that cannot be used (unreadable, not JSON, an unknown version) is never fatal: [`load`]
//! moves it aside as `checkpoints.json.corrupt-<unix seconds>`, starts empty and hands back a
//! [`LoadWarning`] for the caller to log. Starting empty after such a loss is reported by
//! [`Checkpoints::first_start`] as *not* a first start, so the file source reads the files it
//! finds from their beginning: duplicates rather than a gap.
//!
//! **Bounded.** Every stream ever read gets an entry (each rotated file is a new stream), so the
//! runtime calls [`Checkpoints::expire`] about once a minute with the streams its sources have
//! [`Live`] (followed or matched by their globs; journals): live entries are marked as seen,
//! entries neither live nor seen for [`EXPIRE_AFTER`] are forgotten, and beyond [`MAX_STREAMS`]
//! entries the least recently seen of those not live go first. A live stream is never dropped,
//! whatever its age: its file would be read again. The next persist writes the change; the
//! format is unchanged (`updated` was always there).
//!
//! **Invariant:** the store is a plain value. The runtime owns it on the pipeline thread, records
//! a chunk's end position only once the chunk's events are durable downstream, and hands sources
//! a snapshot ([`Checkpoints::positions`]) of their starting positions. Sources never write it,
//! so no lock is needed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::durable::DurableFile;
use crate::sink::SinkMark;

use super::{Position, StreamKey};

/// Name of the checkpoint file inside the state directory.
pub(crate) const FILE_NAME: &str = "checkpoints.json";
/// Name of the temporary file a new version is written to before the rename.
pub(crate) const TEMP_FILE_NAME: &str = "checkpoints.json.tmp";
/// The format version this agent reads and writes.
pub(crate) const VERSION: u32 = 1;
/// Streams neither live nor set for this long are dropped by [`Checkpoints::expire`] (7 days):
/// long past any rotated file's last read, and long enough to ride out a file that is out of
/// its source's globs for a while (an unmounted directory, a source left out of the config).
pub(crate) const EXPIRE_AFTER: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// [`Checkpoints::expire`] moves a live stream's `updated` time at most this often (1 hour, or
/// half the retention when that is shorter), so touching does not make every commit rewrite it.
const TOUCH_GRANULARITY: u64 = 60 * 60;
/// The most streams kept: beyond it [`Checkpoints::expire`] drops the streams that are not live,
/// least recently updated first, however recent (1,024 entries, about 170 KiB of JSON, written
/// at every commit). Live streams are never dropped; they are bounded by their sources
/// (`max-files` per file source, one per journald source).
pub(crate) const MAX_STREAMS: usize = 1024;

/// The stored state of one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Where reading resumes.
    pub position: Position,
    /// The path the stream was last read through (informational; streams are found by key).
    pub path: Option<String>,
    /// Unix seconds of the last [`Checkpoints::set`], or of the last [`Checkpoints::expire`] that
    /// marked the stream live (which moves it at most hourly).
    pub updated: u64,
    /// A file's size as its source last saw it ([`Checkpoints::set_size`]); `None` when not
    /// known (an older agent's entry, a journal, or a loss already counted).
    pub size: Option<u64>,
}

/// What the checkpoints say of a file stream at start: its size as last seen and the path it
/// was read through ([`Checkpoints::last_seen`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LastSeen {
    /// The file's size as its source last saw it.
    pub size: u64,
    /// The path it was read through.
    pub path: PathBuf,
}

/// The streams the running sources have live, which [`Checkpoints::expire`] never drops: the
/// files they follow (open, rotated away or deleted but still read), the files their globs
/// match but they do not follow (`max-files` reached, a copy waiting for its original, a file
/// that cannot be opened: known by device and inode only, so every stream of that inode counts),
/// and their journals.
#[derive(Debug, Default)]
pub(crate) struct Live {
    keys: HashSet<StreamKey>,
    inodes: HashSet<(u64, u64)>,
}

impl Live {
    /// `key` is live.
    pub(crate) fn add(&mut self, key: StreamKey) {
        self.keys.insert(key);
    }

    /// Every file stream of this device and inode is live.
    pub(crate) fn add_inode(&mut self, dev: u64, ino: u64) {
        self.inodes.insert((dev, ino));
    }

    fn contains(&self, key: &StreamKey) -> bool {
        self.keys.contains(key)
            || matches!(key, StreamKey::File { fingerprint: f }
                if self.inodes.contains(&(f.dev, f.ino)))
    }
}

/// What one [`Checkpoints::expire`] dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired {
    /// Streams not live and not seen for the retention period.
    pub stale: usize,
    /// Streams not live dropped, oldest first, to stay within the bound on streams.
    pub over_bound: usize,
}

/// The checkpoint store of one state directory.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    dir: PathBuf,
    streams: BTreeMap<StreamKey, Entry>,
    sequence: u64,
    sink_mark: Option<SinkMark>,
    /// Names of the configured sources that have ever started with this state directory;
    /// `None` when that is not known (a file written before it was recorded, or a corrupt
    /// one), in which case every source counts as started before.
    started: Option<BTreeSet<String>>,
    dirty: bool,
    first_start: bool,
}

/// Why the checkpoint file was not used. Not an error: the agent carries on without it.
#[derive(Debug)]
pub struct LoadWarning {
    /// The checkpoint file.
    pub path: PathBuf,
    /// What was wrong with it.
    pub reason: String,
    /// Where it was moved to, if moving it aside worked.
    pub moved_to: Option<PathBuf>,
}

impl fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checkpoint file {} is unusable: {}; ",
            self.path.display(),
            self.reason
        )?;
        match &self.moved_to {
            Some(p) => write!(f, "moved aside to {}; ", p.display())?,
            None => f.write_str("could not move it aside; ")?,
        }
        f.write_str("starting without checkpoints (files found are read from their beginning)")
    }
}

impl std::error::Error for LoadWarning {}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    version: u32,
    /// The runtime's next event/batch sequence number, committed with the positions.
    #[serde(default)]
    sequence: u64,
    /// Where the sink stood when these positions were committed (see [`SinkMark`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sink_mark: Option<SinkMark>,
    /// See [`Checkpoints::first_start_of`]; absent in files of older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_sources: Option<BTreeSet<String>>,
    streams: Vec<StreamRepr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamRepr {
    key: StreamKey,
    position: Position,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    updated: u64,
    /// Absent in files of older agents: unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// Loads the checkpoints of `dir`. Never fails: an unusable file gives a warning (see the module
/// documentation) and an empty store. A missing file (or directory) gives an empty store with
/// [`Checkpoints::first_start`] true; call [`Checkpoints::persist`] once right after starting the
/// sources, so the file exists and the next start is not taken for a first one.
pub fn load(dir: &Path) -> (Checkpoints, Option<LoadWarning>) {
    let mut store = Checkpoints::new(dir);
    let path = dir.join(FILE_NAME);
    let reason = match fs::read(&path) {
        Ok(bytes) => match decode(&bytes) {
            Ok((streams, sequence, sink_mark, started)) => {
                store.streams = streams;
                store.sequence = sequence;
                store.sink_mark = sink_mark;
                store.started = started;
                store.first_start = false;
                return (store, None);
            }
            Err(reason) => reason,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Dirty: the first `persist` writes an empty file, so a crash before any checkpoint
            // is taken is not mistaken for a first start on the next start.
            store.dirty = true;
            return (store, None);
        }
        Err(e) => format!("cannot read it: {e}"),
    };
    store.first_start = false;
    store.started = None;
    store.dirty = true;
    let aside = dir.join(format!("{FILE_NAME}.corrupt-{}", unix_now()));
    let moved_to = fs::rename(&path, &aside).ok().map(|()| aside);
    (
        store,
        Some(LoadWarning {
            path,
            reason,
            moved_to,
        }),
    )
}

type Decoded = (
    BTreeMap<StreamKey, Entry>,
    u64,
    Option<SinkMark>,
    Option<BTreeSet<String>>,
);

fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    let v: VersionOnly =
        serde_json::from_slice(bytes).map_err(|e| format!("not a checkpoint file ({e})"))?;
    if v.version != VERSION {
        return Err(format!(
            "unknown version {} (this agent reads version {VERSION})",
            v.version
        ));
    }
    let repr: FileRepr = serde_json::from_slice(bytes).map_err(|e| format!("malformed ({e})"))?;
    let streams = repr
        .streams
        .into_iter()
        .map(|s| {
            let entry = Entry {
                position: s.position,
                path: s.path,
                updated: s.updated,
                size: s.size,
            };
            (s.key, entry)
        })
        .collect();
    Ok((streams, repr.sequence, repr.sink_mark, repr.started_sources))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Checkpoints {
    /// An empty store for `dir` (nothing is read or written).
    pub(crate) fn new(dir: &Path) -> Self {
        Checkpoints {
            dir: dir.to_owned(),
            streams: BTreeMap::new(),
            sequence: 0,
            sink_mark: None,
            started: Some(BTreeSet::new()),
            dirty: false,
            first_start: true,
        }
    }

    /// Whether the source `name` starts for the first time with this state directory: on the
    /// agent's first start, and for a source added to the config later (by a reload or a
    /// restart). Only then does its `read-from` apply to the files it finds; a source that has
    /// run before reads a file it has no position for from the beginning (a file that appeared
    /// while the agent was down). After a corrupt checkpoint file, or with one written before
    /// sources were recorded, every source counts as having run.
    pub(crate) fn first_start_of(&self, name: &str) -> bool {
        self.first_start || self.started.as_ref().is_some_and(|s| !s.contains(name))
    }

    /// For sources about to start: whether each starts for the first time
    /// ([`Checkpoints::first_start_of`], asked for all of them before any is recorded), then
    /// records them all ([`Checkpoints::record_started`]). Persist before starting them, so a
    /// crash cannot make them fresh again.
    pub(crate) fn start_sources<'a>(&mut self, names: &[&'a str]) -> Vec<(&'a str, bool)> {
        let fresh: Vec<(&str, bool)> = names
            .iter()
            .map(|&name| (name, self.first_start_of(name)))
            .collect();
        self.record_started(names.iter().copied());
        fresh
    }

    /// Records that these sources have started (written by the next [`Checkpoints::persist`]).
    /// Ask [`Checkpoints::first_start_of`] for all of them before recording any.
    pub(crate) fn record_started<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        let started = self.started.get_or_insert_with(BTreeSet::new);
        for name in names {
            if started.insert(name.to_owned()) {
                self.dirty = true;
            }
        }
    }

    /// [`load`] as an associated function.
    pub(crate) fn load(dir: &Path) -> (Checkpoints, Option<LoadWarning>) {
        load(dir)
    }

    /// Same as [`Checkpoints::positions`].
    pub(crate) fn snapshot(&self) -> HashMap<StreamKey, Position> {
        self.positions()
    }

    /// Where the sink stood when the stored positions were committed (`None` in a new store).
    pub(crate) fn sink_mark(&self) -> Option<SinkMark> {
        self.sink_mark
    }

    /// Records the sink's mark; written by the next [`Checkpoints::persist`], atomically with
    /// the positions.
    pub(crate) fn set_sink_mark(&mut self, mark: SinkMark) {
        if self.sink_mark != Some(mark) {
            self.sink_mark = Some(mark);
            self.dirty = true;
        }
    }

    /// The runtime's sequence number stored beside the positions (0 in a new store).
    pub(crate) fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Sets the sequence number; it is written by the next [`Checkpoints::persist`], atomically
    /// with the positions.
    pub(crate) fn set_sequence(&mut self, sequence: u64) {
        if self.sequence != sequence {
            self.sequence = sequence;
            self.dirty = true;
        }
    }

    /// True when no checkpoint file existed at load: the agent's very first start, when files
    /// already present are read according to `read-from`. False after a corrupt file.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn first_start(&self) -> bool {
        self.first_start
    }

    /// The state directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The position of one stream.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn get(&self, key: &StreamKey) -> Option<&Position> {
        self.streams.get(key).map(|e| &e.position)
    }

    /// The whole entry of one stream.
    #[cfg(test)]
    pub(crate) fn entry(&self, key: &StreamKey) -> Option<&Entry> {
        self.streams.get(key)
    }

    /// Records where `key` resumes. Call only once the records before `position` are durable.
    /// The size last seen ([`Checkpoints::set_size`]) is kept.
    pub fn set(&mut self, key: StreamKey, position: Position, path: Option<&Path>) {
        let size = self.streams.get(&key).and_then(|e| e.size);
        let entry = Entry {
            position,
            path: path.map(|p| p.to_string_lossy().into_owned()),
            updated: unix_now(),
            size,
        };
        self.streams.insert(key, entry);
        self.dirty = true;
    }

    /// Records a file stream's size as its source last saw it (`None`: nothing known, as after
    /// its loss was counted), written by the next [`Checkpoints::persist`] with the positions.
    /// A stream without a position yet is left alone: its first commit creates it, and a later
    /// call gives it its size.
    pub(crate) fn set_size(&mut self, key: &StreamKey, size: Option<u64>) {
        if let Some(e) = self.streams.get_mut(key)
            && e.size != size
        {
            e.size = size;
            self.dirty = true;
        }
    }

    /// The file streams whose size as last seen and path are known, by fingerprint, each with
    /// its size and path: what a file source needs at start to tell how many bytes it had seen
    /// but not read of a file truncated or gone meanwhile.
    pub(crate) fn last_seen(&self) -> HashMap<super::Fingerprint, LastSeen> {
        self.streams
            .iter()
            .filter_map(|(k, e)| match (k, e.size, &e.path) {
                (StreamKey::File { fingerprint }, Some(size), Some(path)) => Some((
                    *fingerprint,
                    LastSeen {
                        size,
                        path: PathBuf::from(path),
                    },
                )),
                _ => None,
            })
            .collect()
    }

    /// Keeps the store bounded: marks the `live` streams as seen now (their `updated` moves at
    /// most every [`TOUCH_GRANULARITY`]), forgets the streams that are not live and were not set
    /// or seen for `retention`, then, while more than `max_streams` remain, the least recently
    /// updated ones that are not live. A live stream is never dropped: its file would be read
    /// again from the start. Only changes the store; the next [`Checkpoints::persist`] writes it.
    pub(crate) fn expire(
        &mut self,
        live: &Live,
        retention: Duration,
        max_streams: usize,
    ) -> Expired {
        self.expire_at(unix_now(), live, retention, max_streams)
    }

    /// [`Checkpoints::expire`] with the current time given (unix seconds).
    pub(crate) fn expire_at(
        &mut self,
        now: u64,
        live: &Live,
        retention: Duration,
        max_streams: usize,
    ) -> Expired {
        let cutoff = now.saturating_sub(retention.as_secs());
        let granularity = TOUCH_GRANULARITY.min(retention.as_secs() / 2);
        let mut expired = Expired::default();
        let mut touched = false;
        self.streams.retain(|key, e| {
            if live.contains(key) {
                if now.saturating_sub(e.updated) >= granularity && e.updated != now {
                    e.updated = now;
                    touched = true;
                }
                true
            } else if e.updated < cutoff {
                expired.stale += 1;
                false
            } else {
                true
            }
        });
        if self.streams.len() > max_streams {
            let mut gone: Vec<(u64, StreamKey)> = self
                .streams
                .iter()
                .filter(|(k, _)| !live.contains(k))
                .map(|(k, e)| (e.updated, k.clone()))
                .collect();
            gone.sort_unstable();
            let excess = self.streams.len() - max_streams;
            for (_, key) in gone.into_iter().take(excess) {
                self.streams.remove(&key);
                expired.over_bound += 1;
            }
        }
        self.dirty |= touched || expired.stale > 0 || expired.over_bound > 0;
        expired
    }

    /// Number of streams.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.streams.len()
    }

    /// No stream stored.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Changed since the last successful [`Checkpoints::persist`] (or load).
    #[cfg(test)]
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// A snapshot of every stream's position: what a source is started from.
    pub fn positions(&self) -> HashMap<StreamKey, Position> {
        self.streams
            .iter()
            .map(|(k, e)| (k.clone(), e.position.clone()))
            .collect()
    }

    /// Every stream's position with the path it was read through (the memory buffer's resume
    /// point, `pipeline::ResumePoint`).
    pub(crate) fn positions_with_paths(&self) -> Vec<(StreamKey, Position, Option<PathBuf>)> {
        self.streams
            .iter()
            .map(|(k, e)| {
                (
                    k.clone(),
                    e.position.clone(),
                    e.path.as_ref().map(PathBuf::from),
                )
            })
            .collect()
    }

    /// Writes the store if it changed: temporary file, fsync, rename, fsync of the directory
    /// (created if missing). On error the previous file is left as it was and the store stays
    /// dirty, so the next call tries again.
    pub fn persist(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let repr = FileRepr {
            version: VERSION,
            sequence: self.sequence,
            sink_mark: self.sink_mark,
            started_sources: self.started.clone(),
            streams: self
                .streams
                .iter()
                .map(|(k, e)| StreamRepr {
                    key: k.clone(),
                    position: e.position.clone(),
                    path: e.path.clone(),
                    updated: e.updated,
                    size: e.size,
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec(&repr).map_err(io::Error::other)?;
        bytes.push(b'\n');
        fs::create_dir_all(&self.dir)?;
        DurableFile::new()
            .temp_name(TEMP_FILE_NAME)
            .write(&self.dir.join(FILE_NAME), &bytes)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Fingerprint;

    fn key(ino: u64) -> StreamKey {
        StreamKey::File {
            fingerprint: Fingerprint {
                dev: 8,
                ino,
                head: 0xfeed,
            },
        }
    }

    #[test]
    fn missing_file_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cp, warn) = load(&dir.path().join("not-yet"));
        assert!(warn.is_none());
        assert!(cp.first_start());
        assert!(cp.is_empty());
        cp.persist().unwrap();
        let (cp, warn) = load(&dir.path().join("not-yet"));
        assert!(warn.is_none());
        assert!(
            !cp.first_start(),
            "the empty file written at start marks later starts"
        );
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::new(dir.path());
        cp.set(
            key(1),
            Position::Offset(42),
            Some(Path::new("/var/log/auth.log")),
        );
        cp.set(
            StreamKey::Journal {
                source: "journald".into(),
            },
            Position::Cursor("s=abc;i=1".into()),
            None,
        );
        assert!(cp.is_dirty());
        cp.persist().unwrap();
        assert!(!cp.is_dirty());

        let text = fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            text.starts_with(
                r#"{"version":1,"sequence":0,"started_sources":[],"streams":[{"key":{"kind":"file""#
            ),
            "{text}"
        );

        let (back, warn) = load(dir.path());
        assert!(warn.is_none());
        assert!(!back.first_start());
        assert_eq!(back.len(), 2);
        assert_eq!(back.get(&key(1)), Some(&Position::Offset(42)));
        assert_eq!(
            back.entry(&key(1)).unwrap().path.as_deref(),
            Some("/var/log/auth.log")
        );
        assert_eq!(back.positions(), cp.positions());
    }

    #[test]
    fn a_files_size_as_last_seen_is_kept_with_its_position_and_optional_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = Path::new("/var/log/auth.log");
        let mut cp = Checkpoints::new(dir.path());
        cp.set_size(&key(1), Some(99));
        assert!(cp.is_empty(), "no entry is made by a size alone");
        cp.set(key(1), Position::Offset(10), Some(log));
        cp.set_size(&key(1), Some(99));
        cp.set(key(1), Position::Offset(20), Some(log));
        cp.set(key(2), Position::Offset(5), None);
        cp.set_size(&key(2), Some(50));
        cp.persist().unwrap();
        let (back, warn) = load(dir.path());
        assert!(warn.is_none());
        assert_eq!(back.entry(&key(1)).unwrap().size, Some(99), "kept by set");
        let seen = back.last_seen();
        assert_eq!(seen.len(), 1, "a stream without a path is not attributable");
        let fp = Fingerprint {
            dev: 8,
            ino: 1,
            head: 0xfeed,
        };
        assert_eq!(
            seen.get(&fp),
            Some(&LastSeen {
                size: 99,
                path: log.to_owned()
            })
        );
        // Cleared once its loss is counted: unknown again, and written.
        let mut back = back;
        back.set_size(&key(1), None);
        assert!(back.is_dirty());
        back.persist().unwrap();
        assert!(load(dir.path()).0.last_seen().is_empty());

        // An older agent's entry has no size: it loads, and its size is unknown.
        fs::write(
            dir.path().join(FILE_NAME),
            br#"{"version":1,"streams":[{"key":{"kind":"file","fingerprint":{"dev":8,"ino":1,"head":65261}},"position":{"offset":10},"path":"/var/log/auth.log","updated":1600000000}]}"#,
        )
        .unwrap();
        let (old, warn) = load(dir.path());
        assert!(warn.is_none(), "{warn:?}");
        assert_eq!(old.entry(&key(1)).unwrap().size, None);
        assert!(old.last_seen().is_empty());
    }

    #[test]
    fn the_sequence_is_kept_with_the_positions_and_optional_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::new(dir.path());
        cp.set_sequence(41);
        cp.persist().unwrap();
        assert_eq!(Checkpoints::load(dir.path()).0.sequence(), 41);
        fs::write(dir.path().join(FILE_NAME), br#"{"version":1,"streams":[]}"#).unwrap();
        let (cp, warn) = load(dir.path());
        assert!(warn.is_none());
        assert_eq!(cp.sequence(), 0);
    }

    #[test]
    fn persist_writes_only_when_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::new(dir.path());
        cp.persist().unwrap();
        assert!(!dir.path().join(FILE_NAME).exists(), "nothing to write");
        cp.set(key(1), Position::Offset(1), None);
        cp.persist().unwrap();
        fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        cp.persist().unwrap();
        assert!(
            !dir.path().join(FILE_NAME).exists(),
            "clean store is not rewritten"
        );
    }

    #[test]
    fn a_source_is_fresh_until_it_has_started_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cp, _) = load(dir.path());
        assert!(cp.first_start_of("a") && cp.first_start_of("b"));
        cp.record_started(["a"]);
        cp.persist().unwrap();
        let (mut cp, warning) = load(dir.path());
        assert!(warning.is_none());
        assert!(!cp.first_start_of("a"), "a ran before");
        assert!(
            cp.first_start_of("b"),
            "b was added later: its read-from applies"
        );
        cp.record_started(["b"]);
        cp.persist().unwrap();
        let (cp, _) = load(dir.path());
        assert!(!cp.first_start_of("a") && !cp.first_start_of("b"));

        // A file from before sources were recorded: every source counts as having run, so
        // nothing is skipped; recording starts from the names given.
        let old = r#"{"version":1,"sequence":3,"streams":[]}"#;
        fs::write(dir.path().join(FILE_NAME), old).unwrap();
        let (mut cp, _) = load(dir.path());
        assert!(!cp.first_start_of("a") && !cp.first_start_of("anything"));
        cp.record_started(["a"]);
        assert!(cp.first_start_of("new"));

        // After a corrupt file, too (duplicates rather than a gap).
        fs::write(dir.path().join(FILE_NAME), "{not json").unwrap();
        let (cp, warning) = load(dir.path());
        assert!(warning.is_some());
        assert!(!cp.first_start_of("a") && !cp.first_start_of("anything"));
    }

    #[test]
    fn corrupt_file_is_moved_aside_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            b"{\"version\":1,\"streams\":[{\"ke",
        )
        .unwrap();
        let (cp, warn) = load(dir.path());
        let warn = warn.expect("a warning");
        assert!(cp.is_empty());
        assert!(!cp.first_start(), "a lost checkpoint is not a first start");
        let moved = warn.moved_to.clone().expect("moved aside");
        assert!(moved.exists());
        assert!(
            moved
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("checkpoints.json.corrupt-")
        );
        assert!(!dir.path().join(FILE_NAME).exists());
        let msg = warn.to_string();
        assert!(
            msg.contains("unusable") && msg.contains("moved aside"),
            "{msg}"
        );

        // The next load is a clean (non-first) start without warnings only once a new file is
        // written; until then it looks like a first start again, which is the caller's business.
        let mut cp = cp;
        cp.set(key(2), Position::Offset(7), None);
        cp.persist().unwrap();
        let (back, warn) = load(dir.path());
        assert!(warn.is_none());
        assert_eq!(back.get(&key(2)), Some(&Position::Offset(7)));
    }

    #[test]
    fn garbage_and_wrong_shapes_are_warnings() {
        for bad in [
            &b""[..],
            b"\xff\xfe\x00",
            b"[]",
            b"{\"version\":1}",
            b"{\"version\":1,\"streams\":[{\"key\":{\"kind\":\"nope\"},\"position\":{\"offset\":1},\"updated\":0}]}",
        ] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(FILE_NAME), bad).unwrap();
            let (cp, warn) = load(dir.path());
            assert!(warn.is_some(), "{bad:?}");
            assert!(cp.is_empty());
        }
    }

    #[test]
    fn unknown_version_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            br#"{"version":2,"streams":[],"new-field":true}"#,
        )
        .unwrap();
        let (cp, warn) = load(dir.path());
        let warn = warn.unwrap();
        assert!(warn.reason.contains("unknown version 2"), "{}", warn.reason);
        assert!(cp.is_empty());
        assert!(warn.moved_to.unwrap().exists());
    }

    #[test]
    fn a_leftover_temp_file_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::new(dir.path());
        cp.set(key(1), Position::Offset(10), None);
        cp.persist().unwrap();
        // A crash between writing the temporary file and the rename leaves this behind.
        fs::write(dir.path().join(TEMP_FILE_NAME), b"{\"version\":1,\"stre").unwrap();
        let (mut back, warn) = load(dir.path());
        assert!(warn.is_none());
        assert_eq!(back.get(&key(1)), Some(&Position::Offset(10)));
        back.set(key(1), Position::Offset(20), None);
        back.persist().unwrap();
        assert!(!dir.path().join(TEMP_FILE_NAME).exists());
        assert_eq!(load(dir.path()).0.get(&key(1)), Some(&Position::Offset(20)));
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::new(dir.path());
        cp.set(key(1), Position::Offset(10), None);
        cp.persist().unwrap();
        let before = fs::read(dir.path().join(FILE_NAME)).unwrap();
        // A directory where the temporary file goes makes the write fail, even for root.
        fs::create_dir(dir.path().join(TEMP_FILE_NAME)).unwrap();
        cp.set(key(1), Position::Offset(99), None);
        assert!(cp.persist().is_err());
        assert!(cp.is_dirty(), "still dirty: the next persist retries");
        assert_eq!(fs::read(dir.path().join(FILE_NAME)).unwrap(), before);
        assert_eq!(load(dir.path()).0.get(&key(1)), Some(&Position::Offset(10)));
        fs::remove_dir(dir.path().join(TEMP_FILE_NAME)).unwrap();
        cp.persist().unwrap();
        assert_eq!(load(dir.path()).0.get(&key(1)), Some(&Position::Offset(99)));
    }

    const DAY: u64 = 24 * 3600;

    fn live(keys: &[StreamKey]) -> Live {
        let mut live = Live::default();
        for k in keys {
            live.add(k.clone());
        }
        live
    }

    #[test]
    fn expire_drops_stale_streams_that_are_not_live_and_touches_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::new(dir.path());
        for i in 1..=4 {
            cp.set(key(i), Position::Offset(i), None);
        }
        let now = unix_now();
        // 1: gone for 8 days; 2: idle 8 days but live; 3: gone for a day; 4: live, set now.
        cp.streams.get_mut(&key(1)).unwrap().updated = now - 8 * DAY;
        cp.streams.get_mut(&key(2)).unwrap().updated = now - 8 * DAY;
        cp.streams.get_mut(&key(3)).unwrap().updated = now - DAY;
        cp.persist().unwrap();
        let expired = cp.expire_at(now, &live(&[key(2), key(4)]), EXPIRE_AFTER, MAX_STREAMS);
        assert_eq!(
            expired,
            Expired {
                stale: 1,
                over_bound: 0
            }
        );
        assert!(cp.is_dirty());
        assert_eq!(cp.get(&key(1)), None);
        assert_eq!(cp.get(&key(2)), Some(&Position::Offset(2)));
        assert_eq!(cp.entry(&key(2)).unwrap().updated, now, "touched");
        assert_eq!(cp.get(&key(3)), Some(&Position::Offset(3)));
        assert_eq!(cp.len(), 3);

        // Nothing more to drop, and a live stream touched within the hour is not touched again:
        // the store stays clean, so expiry alone never rewrites the file.
        cp.persist().unwrap();
        let expired = cp.expire_at(
            now + 60,
            &live(&[key(2), key(4)]),
            EXPIRE_AFTER,
            MAX_STREAMS,
        );
        assert_eq!(expired, Expired::default());
        assert!(!cp.is_dirty());

        // Live streams are kept however old, even with no retention at all.
        let expired = cp.expire_at(now + 30 * DAY, &live(&[key(2)]), Duration::ZERO, 0);
        assert_eq!(expired.stale + expired.over_bound, 2);
        assert_eq!(cp.len(), 1);
        assert_eq!(cp.get(&key(2)), Some(&Position::Offset(2)));
    }

    #[test]
    fn an_inode_matched_but_not_followed_keeps_every_stream_of_that_inode() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::new(dir.path());
        let other_head = StreamKey::File {
            fingerprint: Fingerprint {
                dev: 8,
                ino: 1,
                head: 0xbeef,
            },
        };
        cp.set(key(1), Position::Offset(1), None);
        cp.set(other_head.clone(), Position::Offset(5), None);
        cp.set(key(2), Position::Offset(2), None);
        let mut live = Live::default();
        live.add_inode(8, 1);
        let expired = cp.expire_at(unix_now() + 30 * DAY, &live, EXPIRE_AFTER, 0);
        assert_eq!(
            expired,
            Expired {
                stale: 1,
                over_bound: 0
            }
        );
        assert_eq!(cp.get(&key(1)), Some(&Position::Offset(1)));
        assert_eq!(cp.get(&other_head), Some(&Position::Offset(5)));
        assert_eq!(cp.get(&key(2)), None);
    }

    #[test]
    fn the_bound_on_streams_drops_the_oldest_that_are_not_live_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::new(dir.path());
        let now = unix_now();
        let n = MAX_STREAMS as u64 + 10;
        for i in 0..n {
            cp.set(key(i), Position::Offset(i), None);
            // Stream 0 is the oldest; all are within the retention period.
            cp.streams.get_mut(&key(i)).unwrap().updated = now - DAY + i;
        }
        let expired = cp.expire_at(now, &live(&[key(0), key(3)]), EXPIRE_AFTER, MAX_STREAMS);
        assert_eq!(
            expired,
            Expired {
                stale: 0,
                over_bound: 10
            }
        );
        assert_eq!(cp.len(), MAX_STREAMS);
        assert!(
            cp.get(&key(0)).is_some() && cp.get(&key(3)).is_some(),
            "live"
        );
        for i in [1, 2, 4, 5, 6, 7, 8, 9, 10, 11] {
            assert_eq!(
                cp.get(&key(i)),
                None,
                "stream {i} is among the 10 oldest not live"
            );
        }
        assert!(cp.get(&key(12)).is_some());

        // Live streams beyond the bound are all kept.
        let all: Vec<StreamKey> = (0..n).map(key).collect();
        for i in 0..n {
            cp.set(key(i), Position::Offset(i), None);
        }
        assert_eq!(
            cp.expire_at(now, &live(&all), EXPIRE_AFTER, MAX_STREAMS),
            Expired::default()
        );
        assert_eq!(cp.len(), n as usize);
    }

    #[test]
    fn a_file_of_an_older_agent_loads_and_its_gone_streams_expire() {
        // Written by an agent that never expired anything: streams of long ago, one of them
        // still live.
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            br#"{"version":1,"sequence":9,"streams":[
                {"key":{"kind":"file","fingerprint":{"dev":8,"ino":1,"head":65261}},"position":{"offset":10},"path":"/var/log/auth.log","updated":1600000000},
                {"key":{"kind":"file","fingerprint":{"dev":8,"ino":2,"head":65261}},"position":{"offset":20},"updated":1600000000},
                {"key":{"kind":"journal","source":"journald"},"position":{"cursor":"s=a;i=1"},"updated":1600000000}]}"#,
        )
        .unwrap();
        let (mut cp, warning) = load(dir.path());
        assert!(warning.is_none(), "{warning:?}");
        assert_eq!(cp.len(), 3);
        let journal = StreamKey::Journal {
            source: "journald".into(),
        };
        let expired = cp.expire(&live(&[key(1), journal.clone()]), EXPIRE_AFTER, MAX_STREAMS);
        assert_eq!(
            expired,
            Expired {
                stale: 1,
                over_bound: 0
            }
        );
        cp.persist().unwrap();
        let (back, _) = load(dir.path());
        assert_eq!(back.get(&key(1)), Some(&Position::Offset(10)));
        assert_eq!(
            back.get(&journal),
            Some(&Position::Cursor("s=a;i=1".into()))
        );
        assert_eq!(back.get(&key(2)), None);
        assert_eq!(back.sequence(), 9);
    }
}
