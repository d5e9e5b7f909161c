//! When to try again: exponential backoff with full jitter, and `Retry-After`.
//!
//! Full jitter (the wait is uniform in zero to the current ceiling, and the ceiling doubles
//! after each failure up to `retry.max`) spreads a fleet of agents that lost the collector at
//! the same moment, so they do not all come back at once when it returns.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::{Duration, SystemTime};

/// Shortest wait between two attempts, whatever the jitter draws: no busy loop.
pub(crate) const MIN_WAIT: Duration = Duration::from_millis(10);

/// Backoff state: the current ceiling and a small PRNG for the jitter.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    ceiling: Duration,
    rng: u64,
}

impl Backoff {
    /// Starts at `initial`, doubles up to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        // Seeded from std's per-process random hasher keys: no extra dependency for jitter.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        Backoff {
            initial,
            max: max.max(initial),
            ceiling: initial,
            rng: h.finish() | 1,
        }
    }

    /// The wait before the next attempt (uniform in `MIN_WAIT..=ceiling`); doubles the ceiling.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let r = self.draw();
        let ceiling_ns = u64::try_from(self.ceiling.as_nanos()).unwrap_or(u64::MAX);
        let wait = Duration::from_nanos(if ceiling_ns == 0 { 0 } else { r % ceiling_ns });
        self.ceiling = self.ceiling.saturating_mul(2).min(self.max);
        wait.max(MIN_WAIT)
    }

    /// `wait` plus a uniform draw of up to half of it: a wait the collector asked for
    /// (`Retry-After`), spread so that the agents it gave the same answer do not all come
    /// back at the same moment.
    pub(crate) fn spread(&mut self, wait: Duration) -> Duration {
        let r = self.draw();
        let half_ns = u64::try_from(wait.as_nanos() / 2).unwrap_or(u64::MAX);
        wait + Duration::from_nanos(if half_ns == 0 { 0 } else { r % (half_ns + 1) })
    }

    fn draw(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// After a success: the next failure waits at most `initial` again.
    pub(crate) fn reset(&mut self) {
        self.ceiling = self.initial;
    }

    /// The ceiling `next_wait` draws under now.
    #[cfg(test)]
    pub(crate) fn ceiling(&self) -> Duration {
        self.ceiling
    }

    /// The configured largest wait.
    pub(crate) fn max(&self) -> Duration {
        self.max
    }
}

/// Parses the collector's `Authtrail-Retry-After-Ms` value ([`agent_core::wire::RETRY_AFTER_MS_HEADER`]):
/// whole milliseconds. `None` for anything else (the caller then reads `Retry-After`).
pub(crate) fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_millis)
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date in
/// the past means now. `None` for anything else (the caller falls back to its backoff).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) is RFC 2822 syntax.
    let ts = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(ts.as_second()).ok()?);
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_under_a_doubling_capped_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let c = b.ceiling();
            let w = b.next_wait();
            assert!(w <= c.max(MIN_WAIT), "{w:?} > {c:?}");
            ceilings.push(c.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
        // Jitter: not every draw is the same.
        let draws: std::collections::HashSet<_> = (0..20).map(|_| b.next_wait()).collect();
        assert!(draws.len() > 5);
    }

    #[test]
    fn a_retry_after_is_honoured_and_spread_over_half_of_it_again() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(60));
        let asked = Duration::from_secs(2);
        let waits: Vec<Duration> = (0..50).map(|_| b.spread(asked)).collect();
        assert!(waits.iter().all(|w| *w >= asked && *w <= asked * 3 / 2));
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(distinct.len() > 40, "{waits:?}");
        // Two agents told the same thing come back at different times.
        let mut other = Backoff::new(Duration::from_millis(100), Duration::from_secs(60));
        assert_ne!(b.spread(asked), other.spread(asked));
        assert_eq!(b.spread(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06T08:49:37Z
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after_ms(" 150 "),
            Some(Duration::from_millis(150))
        );
        assert_eq!(parse_retry_after_ms("1.5"), None);
        assert_eq!(parse_retry_after_ms("-1"), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
