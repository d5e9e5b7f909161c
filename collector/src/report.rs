//! Text for `query` and `stats`: aligned tables for people, NDJSON for programs.

use std::fmt::Write as _;
use std::time::Duration;

use crate::store::{EventRow, Stats};

/// Formats microseconds since the epoch as RFC 3339 UTC (`2026-11-28T08:06:35Z`).
pub fn time(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).map_or_else(|_| us.to_string(), |t| t.to_string())
}

/// An aligned table: a header row, then one row per item; empty cells show as `-`.
/// Every cell is [`escape`]d: whatever a log line or an agent sent cannot drive the terminal.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| escape(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, cell) in cells.enumerate() {
            let _ = write!(s, "{cell:<w$}  ", w = widths[i]);
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Whether `c` is a control character, or an invisible one that changes how text around it
/// shows (bidirectional overrides and isolates such as U+202E, zero-width characters, the byte
/// order mark): a hostile user name could otherwise read as another.
fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

/// `s` with every [`is_deceptive`] character written as `\u{XXXX}`, so that it shows, and
/// shows as what it is.
pub fn escape(s: &str) -> String {
    if !s.chars().any(is_deceptive) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_deceptive(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

fn cell(v: &Option<String>) -> String {
    match v.as_deref() {
        None | Some("") => "-".to_owned(),
        // Escaped by `table`.
        Some(s) => s.to_owned(),
    }
}

/// `query` as a table: time, host, action, outcome, user, target, source, process, method.
pub fn events_table(rows: &[EventRow]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let source = match (&r.source_ip, r.source_port) {
                (Some(ip), Some(port)) if ip.contains(':') => format!("[{ip}]:{port}"),
                (Some(ip), Some(port)) => format!("{ip}:{port}"),
                (ip, _) => cell(ip),
            };
            vec![
                time(r.timestamp_us),
                cell(&r.host),
                cell(&r.action),
                cell(&r.outcome),
                cell(&r.user),
                cell(&r.target_user),
                source,
                cell(&r.process),
                cell(&r.method),
            ]
        })
        .collect();
    table(
        &[
            "TIME", "HOST", "ACTION", "OUTCOME", "USER", "TARGET", "SOURCE", "PROCESS", "METHOD",
        ],
        &rows,
    )
}

/// `query --json`: the stored documents, one per line.
pub fn events_ndjson(rows: &[EventRow]) -> String {
    rows.iter()
        .filter_map(|r| r.doc.as_deref())
        .map(|doc| format!("{doc}\n"))
        .collect()
}

/// `stats` as text: counts per authenticated agent, host and action, agents (with `stale`), and sources that failed
/// against several hosts.
pub fn stats_text(stats: &Stats, now_us: i64, stale_after: Duration, window: Duration) -> String {
    // Grouped by the authenticated agent: the host name is what that agent reports.
    let mut out = String::from("Events per agent, host and action\n");
    let rows: Vec<Vec<String>> = stats
        .counts
        .iter()
        .map(|(agent, h, a, n)| vec![cell(&Some(agent.clone())), cell(h), cell(a), n.to_string()])
        .collect();
    out.push_str(&table(&["AGENT", "HOST", "ACTION", "EVENTS"], &rows));
    out.push_str("\nAgents\n");
    let stale_us = stale_after.as_micros().min(i64::MAX as u128) as i64;
    let rows: Vec<Vec<String>> = stats
        .agents
        .iter()
        .map(|a| {
            let status = if now_us.saturating_sub(a.last_seen_us) > stale_us {
                "stale"
            } else {
                "ok"
            };
            vec![
                a.agent_id.clone(),
                cell(&a.hostname),
                time(a.last_seen_us),
                a.last_seq.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                a.rejected.to_string(),
                a.forged.to_string(),
                status.to_owned(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "AGENT",
            "HOSTNAME",
            "LAST SEEN",
            "LAST SEQ",
            "REJECTED",
            "FORGED",
            "STATUS",
        ],
        &rows,
    ));
    let _ = writeln!(
        out,
        "\nSources failing against several hosts (last {})",
        humantime::format_duration(window)
    );
    if stats.spread_sources.is_empty() {
        out.push_str("none\n");
    } else {
        let rows: Vec<Vec<String>> = stats
            .spread_sources
            .iter()
            .map(|s| {
                vec![
                    s.source_ip.clone(),
                    s.hosts.to_string(),
                    s.failures.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(&["SOURCE", "HOSTS", "FAILURES"], &rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_trims() {
        let t = table(
            &["A", "BB"],
            &[vec!["xxx".into(), "y".into()], vec!["z".into(), "".into()]],
        );
        assert_eq!(t, "A    BB\nxxx  y\nz\n");
    }

    #[test]
    fn control_and_bidi_characters_are_escaped_in_every_table() {
        assert_eq!(cell(&None), "-");
        // U+202E turns the rest of a terminal line around: `root` would read `toor`.
        let t = table(
            &["A", "B"],
            &[vec![
                "a\x1b[2Jb".into(),
                "x\u{202e}toor\u{2066}\u{200b}\u{feff}\n".into(),
            ]],
        );
        assert_eq!(
            t,
            "A            B\na\\u{1b}[2Jb  x\\u{202e}toor\\u{2066}\\u{200b}\\u{feff}\\u{a}\n"
        );
        let stats = Stats {
            counts: vec![(
                "a1".into(),
                Some("h\u{202e}x".into()),
                Some("sudo".into()),
                1,
            )],
            agents: Vec::new(),
            spread_sources: Vec::new(),
        };
        let text = stats_text(&stats, 0, Duration::from_secs(1), Duration::from_secs(1));
        assert!(text.contains("h\\u{202e}x"), "{text}");
        assert!(!text.contains('\u{202e}'), "{text}");
    }

    #[test]
    fn time_is_rfc3339_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
    }
}
