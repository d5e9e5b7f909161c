//! The watcher: what wakes the file source.
//!
//! With inotify, the parent directories of the globs and of the followed files are watched
//! non-recursively for files appearing, going and being renamed, and each followed file for its
//! writes (so the other files of `/var/log` being written wakes nothing). The source thread
//! itself sleeps in `poll(2)` on the inotify descriptor (no thread of its own) and on a wake-up
//! pipe ([`Waker`]): an event about a path the source cares about wakes it at once, and
//! every event queued meanwhile is read in the same pass. Events about one file that follow each
//! other are merged by the kernel while they wait, so a log appended every millisecond costs one
//! wake-up per read, not one per append (the source spaces its reads, see
//! [`super::READ_GAP`]). Without inotify (it failed to start, or polling was forced), or while a
//! path cannot be watched, the source wakes every `poll-interval`.
//!
//! Whatever the kernel queues is bounded by inotify itself (`max_queued_events`); an overflow
//! (`IN_Q_OVERFLOW`) asks for a re-scan, as does any event but a write to a file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use rustix::event::{PollFd, PollFlags, Timespec};

/// Bytes read from the inotify descriptor at once (an event is 16 bytes plus its name).
const EVENT_BUFFER: usize = 16 * 1024;

/// Wakes a running [`super::FileSource`] now (for example after setting its stop flag).
#[derive(Debug, Clone)]
pub(crate) struct Waker {
    tx: Option<Arc<OwnedFd>>,
}

impl Waker {
    /// Wakes the source. Never blocks; a wake already pending is enough.
    pub(crate) fn wake(&self) {
        if let Some(tx) = &self.tx {
            // A full pipe (EAGAIN) already holds a wake-up.
            let _ = rustix::io::write(&**tx, &[1]);
        }
    }
}

/// What a wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Woken {
    /// Files may have appeared, gone or been renamed: re-scan the globs now.
    pub(crate) rescan: bool,
}

/// What a watch is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A directory: files appearing, going, renamed (not their writes).
    Dir,
    /// A followed file: its writes, and it going away.
    File,
}

pub(crate) struct Watcher {
    inotify: Option<Inotify>,
    /// Watched paths, and the way back from an event's descriptor (one inode watched under two
    /// names, a rotated file, has one descriptor).
    watched: BTreeMap<PathBuf, (WatchDescriptor, Kind)>,
    objects: HashMap<WatchDescriptor, (PathBuf, Kind)>,
    /// A wanted path could not be watched (missing): poll until it can.
    incomplete: bool,
    /// The wake-up pipe (`None` if it could not be made: the stop flag is then seen at the next
    /// poll).
    wake_rx: Option<OwnedFd>,
    wake_tx: Option<Arc<OwnedFd>>,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("inotify", &self.inotify.is_some())
            .field("watched", &self.watched)
            .finish()
    }
}

/// What the source is told about: in a watched directory, files appearing, going and renamed;
/// of a followed file, its writes (so writes to the other files of `/var/log` wake nothing).
fn mask(kind: Kind) -> WatchMask {
    let gone = WatchMask::DELETE_SELF | WatchMask::MOVE_SELF | WatchMask::ATTRIB;
    match kind {
        Kind::Dir => {
            gone | WatchMask::CREATE
                | WatchMask::DELETE
                | WatchMask::MOVED_FROM
                | WatchMask::MOVED_TO
        }
        Kind::File => gone | WatchMask::MODIFY,
    }
}

impl Watcher {
    /// A watcher using inotify unless `force_poll`; the error says why inotify is not used.
    pub(crate) fn new(force_poll: bool) -> (Self, Option<String>) {
        use rustix::pipe::{PipeFlags, pipe_with};
        let (wake_rx, wake_tx) = match pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK) {
            Ok((rx, tx)) => (Some(rx), Some(Arc::new(tx))),
            Err(_) => (None, None),
        };
        let mut w = Watcher {
            inotify: None,
            watched: BTreeMap::new(),
            objects: HashMap::new(),
            incomplete: false,
            wake_rx,
            wake_tx,
            buffer: vec![0; EVENT_BUFFER],
        };
        if force_poll {
            return (w, None);
        }
        match Inotify::init() {
            Ok(inotify) => {
                w.inotify = Some(inotify);
                (w, None)
            }
            Err(e) => (
                w,
                Some(format!(
                    "file events unavailable ({e}); polling every poll-interval"
                )),
            ),
        }
    }

    pub(crate) fn uses_events(&self) -> bool {
        self.inotify.is_some()
    }

    /// True when every change is reported by an event: no need to wake on a timer.
    pub(crate) fn sees_everything(&self) -> bool {
        self.inotify.is_some() && !self.incomplete
    }

    pub(crate) fn waker(&self) -> Waker {
        Waker {
            tx: self.wake_tx.clone(),
        }
    }

    /// Watches exactly `dirs` (non-recursively, for files appearing and going) and `files`
    /// (for their writes). A path that cannot be watched (missing) is retried at the next call;
    /// polling covers it meanwhile.
    pub(crate) fn set_watched(&mut self, dirs: BTreeSet<PathBuf>, files: BTreeSet<PathBuf>) {
        let Some(inotify) = self.inotify.as_mut() else {
            return;
        };
        let wanted: BTreeMap<PathBuf, Kind> = dirs
            .into_iter()
            .map(|d| (d, Kind::Dir))
            .chain(files.into_iter().map(|f| (f, Kind::File)))
            .collect();
        self.incomplete = false;
        // New watches first: a rotated file's new name gets the descriptor its old name has.
        for (path, kind) in &wanted {
            if self.watched.get(path).is_some_and(|(_, k)| k == kind) {
                continue;
            }
            match inotify.watches().add(path, mask(*kind)) {
                Ok(wd) => {
                    self.objects.insert(wd.clone(), (path.clone(), *kind));
                    self.watched.insert(path.clone(), (wd, *kind));
                }
                Err(_) => self.incomplete = true,
            }
        }
        let gone: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|p| !wanted.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            let Some((wd, _)) = self.watched.remove(&path) else {
                continue;
            };
            if !self.watched.values().any(|(w, _)| *w == wd) {
                self.objects.remove(&wd);
                let _ = inotify.watches().remove(wd);
            }
        }
    }

    /// Blocks until `deadline` (for ever with `None`), a wake-up, or an event that `relevant`
    /// accepts; reads every event queued by then.
    pub(crate) fn wait(
        &mut self,
        deadline: Option<Instant>,
        relevant: &dyn Fn(&Path) -> bool,
    ) -> Woken {
        let mut woken = Woken { rescan: false };
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return woken;
            }
            let timeout = left.map(|l| Timespec::try_from(l).unwrap_or(Timespec::default()));
            let (nudged, inotify_ready) = {
                let mut fds = Vec::with_capacity(2);
                if let Some(rx) = &self.wake_rx {
                    fds.push(PollFd::new(rx, PollFlags::IN));
                }
                let wake_count = fds.len();
                if let Some(i) = &self.inotify {
                    fds.push(PollFd::new(i, PollFlags::IN));
                }
                match rustix::event::poll(&mut fds, timeout.as_ref()) {
                    Ok(_) => {
                        let (wake, events) = fds.split_at(wake_count);
                        let ready = |f: &[PollFd<'_>]| f.iter().any(|f| !f.revents().is_empty());
                        (ready(wake), ready(events))
                    }
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => {
                        // Never spin on a broken descriptor.
                        let nap = left.unwrap_or(Duration::from_secs(1));
                        std::thread::sleep(nap.min(Duration::from_secs(1)));
                        return woken;
                    }
                }
            };
            if nudged && let Some(rx) = &self.wake_rx {
                let mut sink = [0u8; 64];
                while matches!(rustix::io::read(rx, &mut sink), Ok(n) if n > 0) {}
            }
            let interesting = inotify_ready && self.read_events(&mut woken, relevant);
            if nudged || interesting {
                return woken;
            }
        }
    }

    /// Reads every queued event; true if one concerns the source.
    fn read_events(&mut self, woken: &mut Woken, relevant: &dyn Fn(&Path) -> bool) -> bool {
        let Some(inotify) = self.inotify.as_mut() else {
            return false;
        };
        let mut interesting = false;
        loop {
            let events = match inotify.read_events(&mut self.buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return interesting,
                Err(_) => {
                    woken.rescan = true;
                    return true;
                }
            };
            for ev in events {
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    woken.rescan = true;
                    interesting = true;
                    continue;
                }
                let Some((path, kind)) = self.objects.get(&ev.wd) else {
                    continue;
                };
                let relevant_event = match (kind, ev.name) {
                    // A file in a watched directory: a directory appearing or moving may hold
                    // files a glob matches.
                    (Kind::Dir, Some(name)) => {
                        ev.mask.contains(EventMask::ISDIR) || relevant(&path.join(name))
                    }
                    // The directory or the followed file itself.
                    (_, None) => true,
                    (Kind::File, Some(_)) => false,
                };
                if !relevant_event {
                    continue;
                }
                interesting = true;
                // Anything but a write may change which files there are.
                if !(*kind == Kind::File && ev.mask.contains(EventMask::MODIFY)) {
                    woken.rescan = true;
                }
            }
        }
    }
}
