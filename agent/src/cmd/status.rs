//! `authtrail status`: what a running agent has read, from the status file it rewrites in its
//! state dir (within a second of a change, and at least every `refresh-secs`).
//!
//! The file outlives the agent, so before showing it the command checks that the agent is still
//! there: its pid must be a live `authtrail` process, and the file no older than its refresh
//! interval (plus a second). Otherwise the numbers are a stale snapshot (an agent killed, or one
//! that can no longer write, as on a full disk): they are shown marked as such, with their age,
//! and the command exits 1.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use crate::config::Config;
use crate::run::{STATUS_INTERVAL, StatusReport};

/// Whether the agent that wrote a status file is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Its pid is alive and the file is fresh.
    Running,
    /// Its pid is gone (or is another program now): the agent stopped.
    Gone {
        /// Seconds since the file was written.
        age_secs: u64,
    },
    /// Its pid is alive but the file is older than its refresh interval: the agent is stuck or
    /// cannot write (a full disk).
    Stale {
        /// Seconds since the file was written.
        age_secs: u64,
    },
}

/// Judges a status report written by pid `report.pid`, `now` being the current time and
/// `alive` telling whether a pid is a running agent.
pub(crate) fn liveness(
    report: &StatusReport,
    now: jiff::Timestamp,
    alive: impl Fn(u32) -> bool,
) -> Liveness {
    let age_secs = age_of(report, now);
    // Files of agents from before `refresh-secs` existed: the interval they used.
    let refresh = match report.refresh_secs {
        0 => crate::run::STATUS_REWRITE_MAX.as_secs(),
        n => n,
    };
    if !alive(report.pid) {
        Liveness::Gone { age_secs }
    } else if age_secs > refresh + STATUS_INTERVAL.as_secs() {
        Liveness::Stale { age_secs }
    } else {
        Liveness::Running
    }
}

/// Seconds from the report's `updated` to `now` (`u64::MAX` when `updated` is unreadable).
fn age_of(report: &StatusReport, now: jiff::Timestamp) -> u64 {
    report
        .updated
        .parse::<jiff::Timestamp>()
        .map_or(u64::MAX, |t| {
            u64::try_from(now.as_second().saturating_sub(t.as_second())).unwrap_or(0)
        })
}

/// True when `pid` is a live (not zombie) process whose name starts with `authtrail`: a pid
/// reused by another program does not count.
pub(crate) fn pid_is_agent(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ...`; comm may hold spaces and parentheses, so split at the last `)`.
    let Some((head, tail)) = stat.rsplit_once(')') else {
        return false;
    };
    let comm = head.split_once('(').map_or("", |(_, c)| c);
    let state = tail.trim_start().chars().next();
    comm.starts_with("authtrail") && !matches!(state, Some('Z' | 'X' | 'x'))
}

/// "11 s", "5 min", "3 h", "2 days".
pub(crate) fn age_words(secs: u64) -> String {
    match secs {
        u64::MAX => "an unknown time".to_owned(),
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

/// Prints the status of the agent configured by `config` (a table, or the JSON with `running`
/// and `age-secs` added). Returns whether the agent is running.
pub fn run(config: &Path, json: bool, out: &mut dyn Write) -> anyhow::Result<bool> {
    let config = Config::load(config)?;
    let report = crate::run::read_status(&config.state_dir)?;
    let live = liveness(&report, jiff::Timestamp::now(), pid_is_agent);
    let age_secs = match live {
        Liveness::Running => None,
        Liveness::Gone { age_secs } | Liveness::Stale { age_secs } => Some(age_secs),
    };
    if json {
        let mut value = serde_json::to_value(&report).context("rendering status")?;
        if let Some(map) = value.as_object_mut() {
            map.insert("running".into(), (live == Liveness::Running).into());
            map.insert("stale".into(), (live != Liveness::Running).into());
        }
        let text = serde_json::to_string_pretty(&value).context("rendering status")?;
        writeln!(out, "{text}")?;
        return Ok(live == Liveness::Running);
    }
    match live {
        Liveness::Running => {}
        Liveness::Gone { age_secs } => writeln!(
            out,
            "NOT RUNNING: pid {} is gone; what follows is the last status it wrote, {} ago (stale). \
             Start it with `systemctl start authtrail` or `authtrail run`.\n",
            report.pid,
            age_words(age_secs)
        )?,
        Liveness::Stale { age_secs } => writeln!(
            out,
            "STALE: pid {} runs but has not rewritten its status for {} (it should every {} s): \
             it is stuck or cannot write to {} (a full disk?). What follows is {} old.\n",
            report.pid,
            age_words(age_secs),
            report.refresh_secs.max(1),
            config.state_dir.display(),
            age_words(age_secs)
        )?,
    }
    // The age is always shown: a running agent's figures are as old as its last rewrite (up to
    // `refresh-secs` when nothing changed, longer when it cannot write).
    let as_of = match age_secs {
        Some(a) => format!("{} ({} ago, stale)", report.updated, age_words(a)),
        None => format!(
            "{} ({} ago)",
            report.updated,
            age_words(age_of(&report, jiff::Timestamp::now()))
        ),
    };
    writeln!(
        out,
        "agent {} (pid {}), status as of {}\nsink: {}; events committed: {}; failed commits: {}",
        report.agent_id,
        report.pid,
        as_of,
        report.sink,
        report.events_committed,
        report.commit_failures
    )?;
    if let Some(why) = &report.commit_error {
        writeln!(
            out,
            "COMMITS FAILING: {why}. Reading is paused and checkpoints are held back until a \
             retry succeeds: the offsets below are what was read, not what is saved."
        )?;
    }
    if let Some(ship) = &report.shipping {
        writeln!(
            out,
            "shipping: {} batch(es) / {} events sent ({} bytes compressed), {} batch(es) ({} bytes) waiting, {} dropped, {} refused by the collector (in dead-letter/), {} failed attempt(s){}",
            ship.sent_batches,
            ship.sent_events,
            ship.sent_body_bytes,
            ship.backlog_batches,
            ship.backlog_bytes,
            ship.dropped_events,
            ship.rejected_events,
            ship.failures,
            ship.last_error
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
                + &ship
                    .next_attempt
                    .as_deref()
                    .map(|t| format!("; next attempt at {t}"))
                    .unwrap_or_default()
        )?;
    }
    writeln!(out, "alerts raised: {}", report.alerts)?;
    for s in &report.sources {
        writeln!(
            out,
            "\nsource {} ({}): {} records read, {} events, {} rejected, {} truncated",
            s.name,
            s.kind,
            s.counters.records,
            s.counters.events,
            s.counters.rejected,
            s.counters.truncated
        )?;
        if s.lost_bytes > 0 {
            writeln!(
                out,
                "  LOST: {} byte(s) of its files were truncated away before they were read \
                 (copytruncate with no copy the globs match)",
                s.lost_bytes
            )?;
        }
        for st in &s.streams {
            match (&st.path, &st.cursor) {
                (Some(path), _) => writeln!(
                    out,
                    "  {path}: offset {} of {} bytes, lag {} bytes",
                    st.offset.unwrap_or(0),
                    st.size.unwrap_or(0),
                    st.lag_bytes.unwrap_or(0)
                )?,
                (None, Some(cursor)) => writeln!(out, "  journal cursor {cursor}")?,
                (None, None) => writeln!(out, "  (nothing read yet)")?,
            }
        }
    }
    Ok(live == Liveness::Running)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(pid: u32, updated: &str) -> StatusReport {
        StatusReport {
            pid,
            agent_id: "a".into(),
            updated: updated.into(),
            refresh_secs: 60,
            sink: "stdout".into(),
            events_committed: 0,
            commit_failures: 0,
            commit_error: None,
            alerts: 0,
            shipping: None,
            sources: Vec::new(),
        }
    }

    #[test]
    fn a_gone_pid_or_an_old_file_is_not_running() {
        let now: jiff::Timestamp = "2026-12-05T10:00:00Z".parse().unwrap();
        let fresh = report(7, "2026-12-05T09:59:30Z");
        assert_eq!(liveness(&fresh, now, |_| true), Liveness::Running);
        assert_eq!(
            liveness(&fresh, now, |_| false),
            Liveness::Gone { age_secs: 30 }
        );
        let old = report(7, "2026-12-05T09:58:00Z");
        assert_eq!(
            liveness(&old, now, |_| true),
            Liveness::Stale { age_secs: 120 }
        );
        assert_eq!(age_words(11), "11 s");
        assert_eq!(age_words(600), "10 min");
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        // The test binary is not named authtrail: its own pid does not count as an agent.
        assert!(!pid_is_agent(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_is_agent(pid));
    }
}
