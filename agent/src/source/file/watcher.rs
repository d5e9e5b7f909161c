//! The watcher: what wakes the file source.
//!
//! With inotify (through `notify`), the parent directories of the globs and of the followed files
//! are watched non-recursively; an event about a path the source cares about wakes it at once.
//! Without it (notify failed to start, or polling was forced), the source wakes every
//! `poll-interval`. Either way the source blocks in [`Watcher::wait`], so it uses no CPU while
//! nothing changes, and it still wakes every `poll-interval` to re-scan globs (a filesystem that
//! sends no events is still followed).
//!
//! Events go through a bounded channel ([`EVENT_QUEUE`]); when it is full, further events are
//! dropped and a re-scan is requested instead, so a storm of writes cannot grow memory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher as _};

/// Capacity of the event queue between notify's thread and the source.
pub(crate) const EVENT_QUEUE: usize = 256;

#[derive(Debug)]
pub(crate) enum Wake {
    Fs(notify::Result<notify::Event>),
    Nudge,
}

/// Wakes a running [`super::FileSource`] now (for example after setting its stop flag).
#[derive(Debug, Clone)]
pub struct Waker {
    tx: SyncSender<Wake>,
}

impl Waker {
    /// Wakes the source. Never blocks; a wake already pending is enough.
    pub fn wake(&self) {
        let _ = self.tx.try_send(Wake::Nudge);
    }
}

/// What a wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Woken {
    /// Files may have appeared, gone or been renamed: re-scan the globs now.
    pub(crate) rescan: bool,
}

pub(crate) struct Watcher {
    inner: Option<notify::RecommendedWatcher>,
    rx: Receiver<Wake>,
    tx: SyncSender<Wake>,
    overflow: Arc<AtomicBool>,
    watched: BTreeSet<PathBuf>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("notify", &self.inner.is_some())
            .field("watched", &self.watched)
            .finish()
    }
}

impl Watcher {
    /// A watcher using inotify unless `force_poll`; the error says why inotify is not used.
    pub(crate) fn new(force_poll: bool) -> (Self, Option<String>) {
        let (tx, rx) = sync_channel(EVENT_QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        let mut w = Watcher {
            inner: None,
            rx,
            tx,
            overflow,
            watched: BTreeSet::new(),
        };
        if force_poll {
            return (w, None);
        }
        let tx = w.tx.clone();
        let overflow = Arc::clone(&w.overflow);
        let handler = move |ev: notify::Result<notify::Event>| {
            if let Err(TrySendError::Full(_)) = tx.try_send(Wake::Fs(ev)) {
                overflow.store(true, Ordering::Relaxed);
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(inner) => {
                w.inner = Some(inner);
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
        self.inner.is_some()
    }

    pub(crate) fn waker(&self) -> Waker {
        Waker {
            tx: self.tx.clone(),
        }
    }

    /// Watches exactly `dirs` (non-recursively). A directory that cannot be watched (missing) is
    /// retried at the next call; polling covers it meanwhile.
    pub(crate) fn set_dirs(&mut self, dirs: BTreeSet<PathBuf>) {
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        for old in self.watched.difference(&dirs) {
            let _ = inner.unwatch(old);
        }
        let mut now = BTreeSet::new();
        for d in dirs {
            if self.watched.contains(&d) || inner.watch(&d, RecursiveMode::NonRecursive).is_ok() {
                now.insert(d);
            }
        }
        self.watched = now;
    }

    /// Blocks until `deadline`, a nudge, or an event that `relevant` accepts.
    pub(crate) fn wait(&self, deadline: Instant, relevant: &dyn Fn(&Path) -> bool) -> Woken {
        let mut woken = Woken { rescan: false };
        loop {
            if self.overflow.swap(false, Ordering::Relaxed) {
                woken.rescan = true;
                self.drain(&mut woken, relevant);
                return woken;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return woken;
            }
            match self.rx.recv_timeout(left) {
                Ok(w) => {
                    if self.accept(w, &mut woken, relevant) {
                        self.drain(&mut woken, relevant);
                        return woken;
                    }
                }
                Err(RecvTimeoutError::Timeout) => return woken,
                // Cannot happen (we hold a sender), but never spin if it does.
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(left.min(Duration::from_secs(1)));
                    return woken;
                }
            }
        }
    }

    fn drain(&self, woken: &mut Woken, relevant: &dyn Fn(&Path) -> bool) {
        for _ in 0..EVENT_QUEUE {
            match self.rx.try_recv() {
                Ok(w) => {
                    self.accept(w, woken, relevant);
                }
                Err(_) => break,
            }
        }
    }

    fn accept(&self, w: Wake, woken: &mut Woken, relevant: &dyn Fn(&Path) -> bool) -> bool {
        let ev = match w {
            Wake::Nudge => return true,
            Wake::Fs(Err(_)) => {
                woken.rescan = true;
                return true;
            }
            Wake::Fs(Ok(ev)) => ev,
        };
        let interesting = ev.need_rescan()
            || ev
                .paths
                .iter()
                .any(|p| relevant(p) || self.watched.contains(p));
        if !interesting || matches!(ev.kind, EventKind::Access(_)) {
            return false;
        }
        if !matches!(
            ev.kind,
            EventKind::Modify(notify::event::ModifyKind::Data(_))
        ) {
            woken.rescan = true;
        }
        true
    }
}
