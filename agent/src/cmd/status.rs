//! `authtrail status`: what a running agent has read, from the status file it rewrites every
//! second in its state dir.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use crate::config::Config;

/// Prints the status of the agent configured by `config` (a table, or the raw JSON).
pub fn run(config: &Path, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let config = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = crate::run::read_status(&config.state_dir)?;
    if json {
        let text = serde_json::to_string_pretty(&report).context("rendering status")?;
        writeln!(out, "{text}")?;
        return Ok(());
    }
    writeln!(
        out,
        "agent {} (pid {}), status as of {}\nsink: {}; events committed: {}; failed commits: {}",
        report.agent_id,
        report.pid,
        report.updated,
        report.sink,
        report.events_committed,
        report.commit_failures
    )?;
    if let Some(ship) = &report.shipping {
        writeln!(
            out,
            "shipping: {} batch(es) / {} events sent ({} bytes compressed), {} batch(es) ({} bytes) waiting, {} dropped, {} failed attempt(s){}",
            ship.sent_batches,
            ship.sent_events,
            ship.sent_body_bytes,
            ship.backlog_batches,
            ship.backlog_bytes,
            ship.dropped_events,
            ship.failures,
            ship.last_error
                .as_deref()
                .map(|e| format!("; last error: {e}"))
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
    Ok(())
}
