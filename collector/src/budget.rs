//! One byte budget for request bodies in flight: compressed as received, decompressed, the
//! decoder's window and rows, and decoded batches waiting for the store's writer. Every request
//! holds a [`Grant`] that grows before a buffer does and shrinks (or is dropped) when memory is
//! given back; a request that cannot grow its grant is answered 503 with a `Retry-After` sized
//! from how fast the budget has been draining ([`Budget::retry_after`]).
//!
//! **Architecture Invariant:** no buffer sized by a client (body, decompressed body, decoder
//! window, decoded rows) grows before its bytes are granted here; the sum of grants never
//! passes [`Budget::capacity`].

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ingest::Reserve;

/// Shortest `Retry-After` suggested.
pub(crate) const MIN_RETRY: Duration = Duration::from_millis(100);
/// Longest `Retry-After` suggested.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(10);
/// Drain rate assumed before any has been measured, bytes per second.
const ASSUMED_DRAIN_RATE: f64 = 64.0 * 1024.0 * 1024.0;

/// The budget itself: a capacity and what is granted of it.
#[derive(Debug)]
pub(crate) struct Budget {
    capacity: u64,
    used: AtomicU64,
    drain: Mutex<Drain>,
}

/// An estimate of how fast granted bytes come back (bytes per second, smoothed).
#[derive(Debug)]
struct Drain {
    since: Instant,
    released: u64,
    /// None until a first sample.
    rate: Option<f64>,
}

/// The budget cannot grant that many bytes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the collector's memory budget for bodies in flight is full")]
pub(crate) struct Exhausted;

impl Budget {
    /// A budget of `capacity` bytes.
    pub(crate) fn new(capacity: u64) -> Arc<Budget> {
        Arc::new(Budget {
            capacity,
            used: AtomicU64::new(0),
            drain: Mutex::new(Drain {
                since: Instant::now(),
                released: 0,
                rate: None,
            }),
        })
    }

    /// Bytes granted now.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// An empty grant, to grow later.
    pub(crate) fn grant(self: &Arc<Self>) -> Grant {
        Grant {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn take(&self, bytes: u64) -> Result<(), Exhausted> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&n| n <= self.capacity)
            })
            .map(|_| ())
            .map_err(|_| Exhausted)
    }

    fn give_back(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        if let Ok(mut d) = self.drain.lock() {
            d.released += bytes;
            let elapsed = d.since.elapsed();
            // A new sample every 100 ms or so, smoothed over about a second.
            if elapsed >= Duration::from_millis(100) {
                let sample = d.released as f64 / elapsed.as_secs_f64();
                d.rate = Some(d.rate.map_or(sample, |r| 0.7 * r + 0.3 * sample));
                d.released = 0;
                d.since = Instant::now();
            }
        }
    }

    /// How long until `bytes` more can probably be granted, from what is granted now and the
    /// rate at which grants have been coming back: between [`MIN_RETRY`] and [`MAX_RETRY`].
    pub(crate) fn retry_after(&self, bytes: u64) -> Duration {
        let excess = (self.used() + bytes).saturating_sub(self.capacity);
        let rate = self
            .drain
            .lock()
            .ok()
            .and_then(|d| d.rate)
            .unwrap_or(ASSUMED_DRAIN_RATE)
            .max(1.0);
        Duration::from_secs_f64(excess as f64 / rate).clamp(MIN_RETRY, MAX_RETRY)
    }
}

/// Bytes granted to one request; given back when dropped.
#[derive(Debug)]
pub(crate) struct Grant {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Grant {
    /// Grows the grant by `more` bytes, or fails leaving it as it was.
    pub(crate) fn try_grow(&mut self, more: u64) -> Result<(), Exhausted> {
        self.budget.take(more)?;
        self.bytes += more;
        Ok(())
    }

    /// Gives back what is above `bytes`.
    pub(crate) fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.budget.give_back(self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Reserve for Grant {
    fn grow(&mut self, bytes: u64) -> bool {
        self.try_grow(bytes).is_ok()
    }

    fn release(&mut self, bytes: u64) {
        self.shrink_to(self.bytes.saturating_sub(bytes));
    }

    fn could_ever_grow(&self, bytes: u64) -> bool {
        self.bytes.saturating_add(bytes) <= self.budget.capacity
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_never_pass_the_capacity_and_come_back_on_drop() {
        let b = Budget::new(100);
        let mut g1 = b.grant();
        g1.try_grow(60).unwrap();
        let mut g2 = b.grant();
        assert_eq!(g2.try_grow(41), Err(Exhausted));
        g2.try_grow(40).unwrap();
        assert_eq!(b.used(), 100);
        assert_eq!(g2.try_grow(1), Err(Exhausted));
        g1.shrink_to(10);
        assert_eq!(b.used(), 50);
        g2.try_grow(50).unwrap();
        drop(g1);
        drop(g2);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn retry_after_follows_the_measured_drain_rate() {
        let b = Budget::new(1000);
        let mut g = b.grant();
        g.try_grow(1000).unwrap();
        // Nothing measured yet: the assumed rate makes any excess short.
        assert_eq!(b.retry_after(10), MIN_RETRY);
        // A slow drain (100 bytes in ~150 ms) stretches it.
        std::thread::sleep(Duration::from_millis(150));
        g.shrink_to(900);
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(110));
            g.shrink_to(g.bytes() - 1);
        }
        let wait = b.retry_after(500);
        assert!(wait > Duration::from_secs(1), "{wait:?}");
        assert!(wait <= MAX_RETRY, "{wait:?}");
    }
}
