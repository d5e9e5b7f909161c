//! Text for `query` and `stats`: aligned tables for people, NDJSON for programs.

use std::fmt::Write as _;
use std::time::Duration;

use crate::alerts::{AlertRow, Origin};
use crate::store::{EventRow, Stats};

/// Formats microseconds since the epoch as RFC 3339 UTC (`2026-11-28T08:06:35Z`).
pub fn time(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).map_or_else(|_| us.to_string(), |t| t.to_string())
}

/// An aligned table: a header row, then one row per item; empty cells show as `-`.
/// Every cell is [`escape`]d: whatever a log line or an agent sent cannot drive the terminal.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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
pub(crate) fn escape(s: &str) -> String {
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

/// An alert's reason in `query`'s table is cut to this many characters (with `…`), so a row
/// stays readable on a terminal; `--json` has it whole.
pub(crate) const REASON_CHARS: usize = 100;

/// The `event.reason` of an alert's document, [`escape`]d like every cell and cut to
/// [`REASON_CHARS`]; `-` for events and rows without their document.
fn reason(doc: Option<&str>) -> String {
    let reason = doc
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|v| v.pointer("/event/reason")?.as_str().map(escape));
    let text = cell(&reason);
    if text.chars().count() <= REASON_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(REASON_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// `query` as a table: time, host, action, outcome, user, target, source, process, method, and an
/// alert's reason (from its document, when the rows carry one).
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
                reason(r.doc.as_deref()),
            ]
        })
        .collect();
    table(
        &[
            "TIME", "HOST", "ACTION", "OUTCOME", "USER", "TARGET", "SOURCE", "PROCESS", "METHOD",
            "REASON",
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

/// Strings of a JSON value: a string, or an array's strings.
fn strings(v: &serde_json::Value) -> Vec<&str> {
    match v {
        serde_json::Value::String(s) => vec![s.as_str()],
        serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
        _ => Vec::new(),
    }
}

/// A cell from a document: the first of `paths` that holds something; at most three values,
/// then `+N`.
fn doc_cell(doc: &serde_json::Value, paths: &[&[&str]]) -> String {
    for path in paths {
        let v = path.iter().fold(doc, |v, k| &v[*k]);
        let list = strings(v);
        if !list.is_empty() {
            let mut s = list.iter().take(3).copied().collect::<Vec<_>>().join(",");
            if list.len() > 3 {
                let _ = write!(s, ",+{}", list.len() - 3);
            }
            return s;
        }
    }
    "-".to_owned()
}

/// Sequence numbers an edge alert's evidence line names before `and N more`.
const MAX_CITED: usize = 10;

/// `alerts` as a table, newest first: time, severity, origin, rule, hosts, users, sources,
/// count and the reason; under a fleet alert, one line per event it cites.
pub fn alerts_table(rows: &[AlertRow]) -> String {
    let mut out: Vec<Vec<String>> = Vec::new();
    for r in rows {
        let d = &r.doc;
        out.push(vec![
            time(r.time_us),
            r.severity.to_string(),
            match r.origin {
                Origin::Edge => "edge",
                Origin::Fleet => "fleet",
            }
            .to_owned(),
            r.rule().unwrap_or("-").to_owned(),
            doc_cell(d, &[&["host", "hostname"], &["related", "hosts"]]),
            doc_cell(d, &[&["user", "name"], &["related", "user"]]),
            doc_cell(d, &[&["source", "ip"], &["related", "ip"]]),
            d["authtrail"]["count"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            r.message().unwrap_or("-").to_owned(),
        ]);
        let evidence = d["authtrail"]["evidence"].as_array();
        // An agent's alert cites its events by `event.sequence`: one line naming them.
        let sequences: Vec<String> = evidence
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_u64().map(|n| n.to_string()))
            .collect();
        if !sequences.is_empty() {
            let mut cited = sequences
                .iter()
                .take(MAX_CITED)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if sequences.len() > MAX_CITED {
                let _ = write!(cited, " and {} more", sequences.len() - MAX_CITED);
            }
            out.push(vec![
                String::new(),
                String::new(),
                String::new(),
                "- cites".to_owned(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                format!("events of sequence {cited} (query --json shows them)"),
            ]);
        }
        for e in evidence.into_iter().flatten().filter(|e| e.is_object()) {
            out.push(vec![
                format!("  {}", e["@timestamp"].as_str().unwrap_or("-")),
                String::new(),
                String::new(),
                format!("- {}", doc_cell(e, &[&["event", "action"]])),
                doc_cell(e, &[&["host", "hostname"], &["agent", "id"]]),
                doc_cell(e, &[&["user", "name"]]),
                doc_cell(e, &[&["source", "ip"]]),
                String::new(),
                String::new(),
            ]);
        }
    }
    table(
        &[
            "TIME", "SEV", "ORIGIN", "RULE", "HOSTS", "USERS", "SOURCES", "COUNT", "REASON",
        ],
        &out,
    )
}

/// `alerts --json`: each alert's stored document, one per line, newest first.
pub fn alerts_ndjson(rows: &[AlertRow]) -> String {
    rows.iter().map(|r| format!("{}\n", r.doc)).collect()
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
    fn alerts_table_shows_reasons_and_evidence_escaped() {
        let row = |origin, doc: &str| AlertRow {
            time_us: 0,
            origin,
            severity: 73,
            doc: serde_json::from_str(doc).unwrap(),
        };
        let t = alerts_table(&[
            row(
                Origin::Edge,
                r#"{"rule":{"id":"success_after_failures"},"message":"ok \u202e after 5 failures","host":{"hostname":"web1"},"authtrail":{"count":5,"evidence":[3,4,5]}}"#,
            ),
            row(
                Origin::Fleet,
                r#"{"event":{"action":"fleet_x"},"message":"m","related":{"hosts":["a","b","c","d"]},"authtrail":{"evidence":[{"@timestamp":"T","event":{"action":"auth_success"},"host":{"hostname":"a\u001b"}}]}}"#,
            ),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(
            lines[1].contains("success_after_failures") && lines[1].contains("edge"),
            "{t}"
        );
        assert!(lines[1].contains("ok \\u{202e} after 5 failures"), "{t}");
        assert!(lines[2].contains("events of sequence 3, 4, 5"), "{t}");
        assert!(
            lines[3].contains("fleet_x") && lines[3].contains("a,b,c,+1"),
            "{t}"
        );
        assert!(
            lines[4].contains("- auth_success") && lines[4].contains("a\\u{1b}"),
            "{t}"
        );
        assert!(!t.contains('\u{202e}') && !t.contains('\x1b'));
    }

    #[test]
    fn an_alerts_reason_is_a_column_escaped_and_cut() {
        let doc = r#"{"event":{"kind":"alert","reason":"root logged in from 203.0.113.9 after 5 failed attempts\u001b[2J"}}"#;
        assert_eq!(
            reason(Some(doc)),
            "root logged in from 203.0.113.9 after 5 failed attempts\\u{1b}[2J"
        );
        let long = format!(r#"{{"event":{{"reason":"{}"}}}}"#, "x".repeat(500));
        let cut = reason(Some(&long));
        assert_eq!(cut.chars().count(), REASON_CHARS);
        assert!(cut.ends_with('…'));
        // Events have no reason; neither has a row without its document.
        assert_eq!(reason(Some(r#"{"event":{"kind":"event"}}"#)), "-");
        assert_eq!(reason(None), "-");
    }

    #[test]
    fn time_is_rfc3339_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
    }
}
