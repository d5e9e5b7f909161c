//! The watcher: what wakes the file source.
//!
//! With inotify, the parent directories of the globs and of the followed files are watched
//! non-recursively, and the source thread itself sleeps in `poll(2)` on the inotify descriptor
//! (no thread of its own): an event about a path the source cares about wakes it at once, and
//! every event queued meanwhile is read in the same pass. Events about one file that follow each
//! other are merged by the kernel while they wait, so a log appended every millisecond costs one
//! wake-up per read, not one per append (the source spaces its reads, see
//! [`super::READ_GAP`]). Without inotify (it failed to start, or polling was forced), or while a
//! directory cannot be watched, the source wakes every `poll-interval`.
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
pub struct Waker {
    tx: Option<Arc<OwnedFd>>,
}

impl Waker {
    /// Wakes the source. Never blocks; a wake already pending is enough.
    pub fn wake(&self) {
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

pub(crate) struct Watcher {
    inotify: Option<Inotify>,
    /// Watched directories, and the way back from an event's descriptor.
    watched: BTreeMap<PathBuf, WatchDescriptor>,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    /// A wanted directory could not be watched (missing): poll until it can.
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
            .field("watched", &self.watched.keys())
            .finish()
    }
}

/// What the source is told about in a watched directory.
fn mask() -> WatchMask {
    WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
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
            dirs: HashMap::new(),
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

    /// Watches exactly `dirs` (non-recursively). A directory that cannot be watched (missing) is
    /// retried at the next call; polling covers it meanwhile.
    pub(crate) fn set_dirs(&mut self, dirs: BTreeSet<PathBuf>) {
        let Some(inotify) = self.inotify.as_mut() else {
            return;
        };
        let gone: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|d| !dirs.contains(*d))
            .cloned()
            .collect();
        for d in gone {
            if let Some(wd) = self.watched.remove(&d) {
                self.dirs.remove(&wd);
                let _ = inotify.watches().remove(wd);
            }
        }
        self.incomplete = false;
        for d in dirs {
            if self.watched.contains_key(&d) {
                continue;
            }
            match inotify.watches().add(&d, mask()) {
                Ok(wd) => {
                    self.dirs.insert(wd.clone(), d.clone());
                    self.watched.insert(d, wd);
                }
                Err(_) => self.incomplete = true,
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
                let Some(dir) = self.dirs.get(&ev.wd) else {
                    continue;
                };
                // A directory appearing or moving may hold files a glob matches.
                let about_dir = ev.name.is_none() || ev.mask.contains(EventMask::ISDIR);
                let relevant_path = about_dir || ev.name.is_some_and(|n| relevant(&dir.join(n)));
                if !relevant_path {
                    continue;
                }
                interesting = true;
                if about_dir || !ev.mask.contains(EventMask::MODIFY) {
                    woken.rescan = true;
                }
            }
        }
    }
}
