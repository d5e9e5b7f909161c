//! Progress while a backlog is read (a first start with `read-from = "beginning"`, a restart
//! after a long stop): lines, events, MB/s and the time left.
//!
//! On a terminal one status line is redrawn in place on standard error; anywhere else (a pipe,
//! a file, the journal under systemd) a log line is written when the backlog is found, every
//! [`LOG_EVERY`] while it lasts, and when it is read. A backlog is what the file sources have
//! yet to read ([`Sample::of`]), counted once it is over [`MIN_BACKLOG_BYTES`], so a live log's
//! few new lines never show progress.

use std::io::{IsTerminal as _, Write};
use std::time::{Duration, Instant};

use crate::run::StatusReport;

/// Below this many unread bytes there is no backlog worth reporting.
pub(crate) const MIN_BACKLOG_BYTES: u64 = 4 * 1024 * 1024;

/// How often the log line is repeated while a backlog is read (when not on a terminal).
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(30);

/// What the sources have read so far, and what they have left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Records read (lines, journal entries, utmp records).
    pub records: u64,
    /// Events produced.
    pub events: u64,
    /// Bytes read from files.
    pub read_bytes: u64,
    /// Bytes of files not read yet.
    pub left_bytes: u64,
}

impl Sample {
    /// The totals of a status report (file streams only: the journal gives no sizes).
    pub(crate) fn of(report: &StatusReport) -> Sample {
        let mut s = Sample::default();
        for source in &report.sources {
            s.records += source.counters.records;
            s.events += source.counters.events;
            for stream in &source.streams {
                s.read_bytes += stream.offset.unwrap_or(0);
                s.left_bytes += stream.lag_bytes.unwrap_or(0);
            }
        }
        s
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A line redrawn in place (standard error is a terminal).
    Terminal,
    /// Log lines (anything else).
    Log,
    /// Nothing (the log level is above `info`: `-q`).
    Off,
}

impl Mode {
    /// [`Mode::Terminal`] when standard error is a terminal (and not the journal).
    pub(crate) fn detect() -> Mode {
        if !tracing::enabled!(tracing::Level::INFO) {
            return Mode::Off;
        }
        match logger::Output::detect() {
            logger::Output::Terminal { .. } if std::io::stderr().is_terminal() => Mode::Terminal,
            _ => Mode::Log,
        }
    }
}

/// The backlog being read.
#[derive(Debug, Clone, Copy)]
struct Backlog {
    started: Instant,
    first: Sample,
    last_shown: Instant,
    /// The sample before this one.
    prev: Sample,
}

/// Watches the samples the run loop takes and shows progress while there is a backlog.
#[derive(Debug)]
pub(crate) struct Progress {
    mode: Mode,
    backlog: Option<Backlog>,
    /// When the agent started, until the first sample: a backlog found then is counted from
    /// the start (the lines read before the first sample are part of it).
    start: Option<Instant>,
}

impl Progress {
    /// Shows progress in `mode`, for sources that start now.
    pub(crate) fn new(mode: Mode) -> Progress {
        Progress::starting_at(mode, Instant::now())
    }

    /// [`Progress::new`] for sources that started at `start`.
    pub(crate) fn starting_at(mode: Mode, start: Instant) -> Progress {
        Progress {
            mode,
            backlog: None,
            start: Some(start),
        }
    }

    /// Takes the sample of `now`: starts, updates or ends the backlog's progress. Terminal
    /// output goes to `out`; log lines to the logger.
    pub(crate) fn update(&mut self, sample: Sample, now: Instant, out: &mut dyn Write) {
        if self.mode == Mode::Off {
            return;
        }
        // Until the sources have looked at their files, a sample says nothing.
        let start = if sample == Sample::default() {
            self.start
        } else {
            self.start.take()
        };
        // A backlog is read once nothing is left and what was read has gone through the
        // pipeline (the records stopped moving, or a second sample finds nothing left).
        let pending = match &self.backlog {
            None => sample.left_bytes >= MIN_BACKLOG_BYTES,
            Some(b) => {
                sample.left_bytes > 0 || (sample.records != b.prev.records && b.prev.left_bytes > 0)
            }
        };
        if let Some(b) = &mut self.backlog {
            b.prev = sample;
        }
        match (self.backlog, pending) {
            (None, false) => {}
            (None, true) => {
                self.backlog = Some(match start {
                    Some(started) => Backlog {
                        started,
                        first: Sample::default(),
                        last_shown: now,
                        prev: sample,
                    },
                    None => Backlog {
                        started: now,
                        first: sample,
                        last_shown: now,
                        prev: sample,
                    },
                });
                match self.mode {
                    Mode::Log => {
                        tracing::info!("reading a backlog of {}", megabytes(sample.left_bytes))
                    }
                    Mode::Terminal => {
                        let text = format!("reading a backlog of {}", megabytes(sample.left_bytes));
                        let _ = write!(out, "\r\x1b[K{text}");
                        let _ = out.flush();
                    }
                    Mode::Off => {}
                }
            }
            (Some(b), true) => {
                let line = progress_line(&b, sample, now);
                match self.mode {
                    Mode::Terminal => {
                        let _ = write!(out, "\r\x1b[K{line}");
                        let _ = out.flush();
                    }
                    Mode::Log if now.duration_since(b.last_shown) >= LOG_EVERY => {
                        tracing::info!("{line}");
                        self.backlog = Some(Backlog {
                            last_shown: now,
                            ..b
                        });
                    }
                    Mode::Log | Mode::Off => {}
                }
            }
            (Some(b), false) => {
                self.backlog = None;
                let line = done_line(&b, sample, now);
                match self.mode {
                    Mode::Terminal => {
                        let _ = writeln!(out, "\r\x1b[K{line}");
                        let _ = out.flush();
                    }
                    Mode::Log => tracing::info!("{line}"),
                    Mode::Off => {}
                }
            }
        }
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Bytes per second since the backlog was found.
fn rate(b: &Backlog, sample: Sample, now: Instant) -> f64 {
    let secs = now.duration_since(b.started).as_secs_f64();
    let read = sample.read_bytes.saturating_sub(b.first.read_bytes) as f64;
    if secs > 0.0 { read / secs } else { 0.0 }
}

fn progress_line(b: &Backlog, sample: Sample, now: Instant) -> String {
    let rate = rate(b, sample, now);
    let eta = if rate > 0.0 {
        clock(Duration::from_secs_f64(sample.left_bytes as f64 / rate))
    } else {
        "unknown".to_owned()
    };
    format!(
        "backlog: {} lines, {} events, {:.1} MB/s, {} left, ETA {eta}",
        sample.records.saturating_sub(b.first.records),
        sample.events.saturating_sub(b.first.events),
        rate / 1e6,
        megabytes(sample.left_bytes),
    )
}

fn done_line(b: &Backlog, sample: Sample, now: Instant) -> String {
    format!(
        "backlog read: {} lines, {} events, {} in {:.1} s ({:.1} MB/s)",
        sample.records.saturating_sub(b.first.records),
        sample.events.saturating_sub(b.first.events),
        megabytes(sample.read_bytes.saturating_sub(b.first.read_bytes)),
        now.duration_since(b.started).as_secs_f64(),
        rate(b, sample, now) / 1e6,
    )
}

/// `m:ss`, or `h:mm:ss` from an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(records: u64, read: u64, left: u64) -> Sample {
        Sample {
            records,
            events: records / 2,
            read_bytes: read,
            left_bytes: left,
        }
    }

    #[test]
    fn terminal_line_shows_rate_and_eta_then_a_summary() {
        let t = Instant::now();
        let mut p = Progress::starting_at(Mode::Terminal, t);
        let mut out = Vec::new();
        // A live log: nothing.
        p.update(sample(10, 1000, 100), t, &mut out);
        assert!(out.is_empty());
        p.update(sample(10, 0, 40_000_000), t, &mut out);
        p.update(
            sample(100_000, 10_000_000, 30_000_000),
            t + Duration::from_secs(2),
            &mut out,
        );
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("reading a backlog of 40.0 MB"), "{text}");
        assert!(
            text.contains(
                "\r\x1b[Kbacklog: 99990 lines, 49995 events, 5.0 MB/s, 30.0 MB left, ETA 0:06"
            ),
            "{text}"
        );
        // Nothing left, then the pipeline drained (the count stops moving): done.
        let end = t + Duration::from_secs(8);
        p.update(sample(400_000, 40_000_000, 0), end, &mut out);
        assert!(!String::from_utf8_lossy(&out).contains("backlog read"));
        p.update(sample(400_000, 40_000_000, 0), end, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(
                "backlog read: 399990 lines, 199995 events, 40.0 MB in 8.0 s (5.0 MB/s)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_backlog_found_at_start_counts_from_the_start() {
        let t = Instant::now();
        let mut p = Progress::starting_at(Mode::Terminal, t);
        let mut out = Vec::new();
        p.update(
            sample(1000, 5_000_000, 20_000_000),
            t + Duration::from_secs(1),
            &mut out,
        );
        for _ in 0..2 {
            p.update(
                sample(5000, 25_000_000, 0),
                t + Duration::from_secs(5),
                &mut out,
            );
        }
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("backlog read: 5000 lines, 2500 events, 25.0 MB in 5.0 s (5.0 MB/s)\n"),
            "{text}"
        );
    }

    #[test]
    fn clock_reads_as_time() {
        assert_eq!(clock(Duration::from_secs(6)), "0:06");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }
}
