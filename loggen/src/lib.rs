//! Deterministic generator of realistic `auth.log` traffic.
//!
//! loggen writes the lines that rsyslog puts in `/var/log/auth.log` (Debian, Ubuntu) or
//! `/var/log/secure` (RHEL) on a busy internet-facing server: mostly sshd scanner noise
//! (invalid users, root password guessing, pre-auth disconnects), real logins by a handful of
//! users with their sessions, sudo and su, cron and systemd-logind, plus a brute-force burst that
//! ends in a successful root login. It exists to feed authtrail's tests, benchmarks and demo.
//!
//! The same [`Options`] always give the same bytes, on every platform: the PRNG is a
//! self-written SplitMix64 and no floating point is used.
//!
//! ```
//! let opts = loggen::Options { lines: 5, seed: 7, ..Default::default() };
//! let mut out = Vec::new();
//! let stats = loggen::generate(&mut out, &opts)?;
//! assert_eq!(stats.lines, 5);
//! assert_eq!(stats.bytes, out.len() as u64);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Timestamps are UTC (`+00:00` in RFC 3339 form). Time advances monotonically (never
//! backwards) from [`Options::start`]; the log is one continuous stream in which every line
//! starts `TIMESTAMP HOST TAG: `, where the tag is `program[pid]` or, for sudo, `sudo`.

#![forbid(unsafe_code)]

mod clock;
mod rng;
mod sim;

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

/// 2026-11-28T00:00:00Z, the default [`Options::start`].
pub const DEFAULT_START: i64 = 1_795_824_000;

/// The environment variable the benchmarks read their log size from.
pub const BENCH_LINES_VAR: &str = "AUTHTRAIL_BENCH_LINES";

/// Lines of generated log a benchmark should use: [`BENCH_LINES_VAR`] when it holds a number
/// (`cargo xtask bench --lines` sets it), else `default`.
pub fn bench_lines(default: u64) -> u64 {
    std::env::var(BENCH_LINES_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One brute-force burst is placed in every block of this many lines (see [`Stats::bursts`]).
pub(crate) const BURST_EVERY: u64 = 100_000;

/// A block (the last one may be short) with fewer lines than this gets no burst: a burst
/// and the traffic around it need about 1 500 lines to finish.
pub(crate) const MIN_BURST_BLOCK: u64 = 3_000;

/// Output is handed to the writer in chunks of about this size, so an unbuffered `File` is
/// as fast as a `BufWriter`.
const CHUNK: usize = 64 * 1024;

/// The timestamp layout, as rsyslog writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `Nov 28 06:49:30 web1 sshd[1234]: ...` (the traditional file format, day space-padded:
    /// `Nov  8`).
    #[default]
    Rfc3164,
    /// `2026-11-28T06:55:33.434531+00:00 web1 sshd[1234]: ...` (rsyslog's high-precision
    /// format, the default on newer Debian).
    Rfc3339,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rfc3164 => "rfc3164",
            Self::Rfc3339 => "rfc3339",
        })
    }
}

/// The error from parsing a [`Format`]: the name was neither `rfc3164` nor `rfc3339`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseFormatError;

impl fmt::Display for ParseFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown log format (expected `rfc3164` or `rfc3339`)")
    }
}

impl std::error::Error for ParseFormatError {}

impl FromStr for Format {
    type Err = ParseFormatError;

    /// Accepts `rfc3164` and `rfc3339`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("rfc3164") {
            Ok(Self::Rfc3164)
        } else if s.eq_ignore_ascii_case("rfc3339") {
            Ok(Self::Rfc3339)
        } else {
            Err(ParseFormatError)
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Exactly this many lines are written. Defaults to 100 000.
    pub lines: u64,
    /// Seeds the PRNG; the same options give the same bytes. Defaults to 0.
    pub seed: u64,
    /// Timestamp layout. Defaults to [`Format::Rfc3164`].
    pub format: Format,
    /// Time of the first possible line, in seconds since the Unix epoch (UTC). Defaults to
    /// [`DEFAULT_START`], 2026-11-28T00:00:00Z.
    pub start: i64,
    /// Host names written after the timestamp; traffic is spread over them and each has its
    /// own pids, sshd and logind. Must be non-empty, without whitespace. Defaults to `["web1"]`.
    pub hosts: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            lines: 100_000,
            seed: 0,
            format: Format::Rfc3164,
            start: DEFAULT_START,
            hosts: vec!["web1".to_owned()],
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Lines written (always [`Options::lines`]).
    pub lines: u64,
    /// Bytes written, newlines included.
    pub bytes: u64,
    /// Brute-force bursts completed: hundreds of failed attempts from one address followed by
    /// `Accepted password for root from` that address, counted when the `Accepted` line is
    /// written. One burst starts in each [`BURST_EVERY`]-line block at a fifth of the block,
    /// if the block has at least [`MIN_BURST_BLOCK`] lines.
    pub bursts: u64,
}

/// Writes `opts.lines` auth-log lines to `out`.
///
/// Output goes to `out` in 64 KiB chunks and `out` is flushed at the end.
///
/// # Errors
/// An error from `out`, or [`io::ErrorKind::InvalidInput`] if a host name is empty or holds
/// whitespace (the line would no longer parse).
pub fn generate<W: Write + ?Sized>(out: &mut W, opts: &Options) -> io::Result<Stats> {
    let default_hosts;
    let hosts = if opts.hosts.is_empty() {
        default_hosts = Options::default().hosts;
        &default_hosts
    } else {
        &opts.hosts
    };
    if let Some(bad) = hosts
        .iter()
        .find(|h| h.is_empty() || h.chars().any(char::is_whitespace))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid host name {bad:?}: must be non-empty and without whitespace"),
        ));
    }

    let mut sim = sim::Simulation::new(opts.seed, opts.start, opts.format, hosts);
    let mut stats = Stats::default();
    let mut buf = Vec::with_capacity(CHUNK + 1024);
    let mut next_burst = burst_line(0, opts.lines);
    let mut block = 0;

    while stats.lines < opts.lines {
        let next = sim.now() + sim.gap();
        sim.schedule_cron(next);
        while stats.lines < opts.lines {
            let Some(line) = sim.pop_until(next) else {
                break;
            };
            let len = buf.len();
            sim.render(&mut buf, &line);
            stats.lines += 1;
            stats.bytes += (buf.len() - len) as u64;
            stats.bursts += u64::from(line.closes_burst());
            if buf.len() >= CHUNK {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        if stats.lines >= opts.lines {
            break;
        }
        sim.advance_to(next);
        if stats.lines >= next_burst {
            sim.brute_force_burst();
            block += 1;
            next_burst = burst_line(block, opts.lines);
        } else {
            sim.scenario();
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(stats)
}

/// The line index at which block `block`'s burst starts, or `u64::MAX` for none.
fn burst_line(block: u64, lines: u64) -> u64 {
    let base = block.saturating_mul(BURST_EVERY);
    if base >= lines {
        return u64::MAX;
    }
    let len = (lines - base).min(BURST_EVERY);
    if len < MIN_BURST_BLOCK {
        u64::MAX
    } else {
        base + len / 5
    }
}

#[cfg(test)]
mod tests;
