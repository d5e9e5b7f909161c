//! The journald source against real journal files, built by `systemd-journal-remote` from the
//! export-format capture in `agent-core/testdata/journald/`, read by the real `journalctl`.
//!
//! Without `systemd-journal-remote` (Debian package `systemd-journal-remote`) or `journalctl`
//! these tests print why and return early: they do not pretend to pass.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot read its input should fail loudly"
)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agent::config::{JournaldSourceConfig, ReadFrom};
use agent::source::journald::JournaldSource;
use agent::source::{Chunk, Payload, Position, StreamKey};
use serde_json::Value;

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
const TESTDATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../agent-core/testdata/journald"
);

/// Split point: entries `..SPLIT` go in the first journal write, the rest in the second.
const SPLIT: usize = 20;

fn tools_missing() -> Option<String> {
    if !Path::new(JOURNAL_REMOTE).exists() {
        return Some(format!(
            "{JOURNAL_REMOTE} not found (apt-get install systemd-journal-remote)"
        ));
    }
    match Command::new("journalctl").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("journalctl not found".into()),
    }
}

macro_rules! require_tools {
    () => {
        if let Some(why) = tools_missing() {
            eprintln!("SKIPPED {}: {why}", module_path!());
            return;
        }
    };
}

/// The export file's entries (separated by blank lines).
fn export_entries() -> Vec<String> {
    let text = std::fs::read_to_string(format!("{TESTDATA}/journal.export")).unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| format!("{}\n\n", e.trim_end_matches('\n')))
        .collect()
}

/// The same entries as journalctl's JSON (captured alongside the export).
fn json_entries() -> Vec<Value> {
    std::fs::read_to_string(format!("{TESTDATA}/journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Appends export-format entries to a journal file (creating it).
fn write_journal(dir: &Path, journal: &Path, entries: &[String]) {
    let export = dir.join(format!("part-{}.export", entries.len()));
    std::fs::write(&export, entries.concat()).unwrap();
    let out = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", journal.display()))
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn config(journal: &Path, read_from: ReadFrom) -> JournaldSourceConfig {
    JournaldSourceConfig {
        files: vec![journal.to_path_buf()],
        read_from,
        ..JournaldSourceConfig::default()
    }
}

/// (realtime, program, pid, hostname, message) of every record.
type Row = (Option<i64>, String, Option<u32>, Option<String>, Vec<u8>);

fn rows(chunks: &[Chunk]) -> Vec<Row> {
    let mut out = Vec::new();
    for c in chunks {
        assert_eq!(c.payload, Payload::Journal);
        assert_eq!(
            c.stream,
            StreamKey::Journal {
                source: "jd".into()
            }
        );
        assert!(matches!(c.end, Position::Cursor(_)));
        for r in &c.records {
            let j = r.journal.as_ref().unwrap();
            out.push((
                j.realtime_us,
                j.program.clone(),
                j.pid,
                j.hostname.clone(),
                c.bytes(r).to_vec(),
            ));
        }
    }
    out
}

fn expected(json: &[Value]) -> Vec<Row> {
    json.iter()
        .map(|v| {
            let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            (
                s("__REALTIME_TIMESTAMP").map(|t| t.parse().unwrap()),
                s("SYSLOG_IDENTIFIER").or_else(|| s("_COMM")).unwrap(),
                s("_PID").map(|p| p.parse().unwrap()),
                s("_HOSTNAME"),
                s("MESSAGE").unwrap().into_bytes(),
            )
        })
        .collect()
}

fn last_cursor(chunks: &[Chunk]) -> String {
    match &chunks.last().unwrap().end {
        Position::Cursor(c) => c.clone(),
        p => panic!("{p:?}"),
    }
}

#[test]
fn real_journal_entries_arrive_and_restart_from_cursor_repeats_nothing() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("x.journal");
    let entries = export_entries();
    let json = json_entries();
    assert_eq!(entries.len(), 35);
    assert_eq!(json.len(), entries.len());
    write_journal(dir.path(), &journal, &entries[..SPLIT]);

    let cfg = config(&journal, ReadFrom::Beginning);
    let mut src = JournaldSource::new(&cfg, "jd".into(), HashMap::new(), true);
    let first = src.read_available().unwrap();
    let got = rows(&first);
    assert_eq!(got, expected(&json[..SPLIT]));
    // Every sshd/sudo/su entry of the capture, with its fields.
    let programs: HashSet<&str> = got.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(programs, HashSet::from(["sshd"]));
    assert!(got.iter().all(|r| r.3.as_deref() == Some("testhost")));
    assert_eq!(src.status().entries_read(), SPLIT as u64);
    let cursor = last_cursor(&first);
    assert_eq!(src.status().cursor().as_deref(), Some(cursor.as_str()));

    // The journal grows while the agent is stopped; restart from the saved cursor.
    write_journal(dir.path(), &journal, &entries[SPLIT..]);
    let start = HashMap::from([(
        StreamKey::Journal {
            source: "jd".into(),
        },
        Position::Cursor(cursor.clone()),
    )]);
    let mut src = JournaldSource::new(&cfg, "jd".into(), start, false);
    let second = src.read_available().unwrap();
    let got2 = rows(&second);
    assert_eq!(
        got2,
        expected(&json[SPLIT..]),
        "nothing repeated, nothing lost"
    );
    let programs: HashSet<&str> = got2.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(programs, HashSet::from(["sshd", "sudo", "su"]));
    // sudo and su entries have no SYSLOG_PID: the pid is journald's _PID.
    assert!(got2.iter().filter(|r| r.1 != "sshd").all(|r| r.2.is_some()));

    // Nothing new: nothing read, and the cursor stays.
    let again = src.read_available().unwrap();
    assert!(again.is_empty());
    assert_eq!(src.status().cursor(), Some(last_cursor(&second)));

    // The messages parse as the bare-message parser expects.
    let events = got
        .iter()
        .chain(&got2)
        .filter(|r| {
            agent_core::parse_message(agent_core::Text(r.1.as_bytes()), r.2, &r.4)
                .event()
                .is_some()
        })
        .count();
    assert!(events >= 10, "{events}");
}

#[test]
fn read_from_end_on_first_start_reads_nothing_old() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("x.journal");
    write_journal(dir.path(), &journal, &export_entries()[..SPLIT]);
    let mut src = JournaldSource::new(
        &config(&journal, ReadFrom::End),
        "jd".into(),
        HashMap::new(),
        true,
    );
    assert!(src.read_available().unwrap().is_empty());
}

fn recv_rows(rx: &std::sync::mpsc::Receiver<Chunk>, n: usize) -> Vec<Chunk> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut chunks = Vec::new();
    let mut count = 0;
    while count < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let c = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("got {count} of {n} entries: {e}"));
        count += c.records.len();
        chunks.push(c);
    }
    assert_eq!(count, n);
    chunks
}

#[test]
fn follow_picks_up_appended_entries_and_stops_its_journalctl() {
    require_tools!();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("x.journal");
    let entries = export_entries();
    let json = json_entries();
    write_journal(dir.path(), &journal, &entries[..SPLIT]);

    let cfg = config(&journal, ReadFrom::Beginning);
    let src = JournaldSource::new(&cfg, "jd".into(), HashMap::new(), true);
    let status = src.status();
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let h = std::thread::spawn(move || src.run(tx, s2));
    let first = recv_rows(&rx, SPLIT);
    assert_eq!(rows(&first), expected(&json[..SPLIT]));

    write_journal(dir.path(), &journal, &entries[SPLIT..]);
    let second = recv_rows(&rx, entries.len() - SPLIT);
    assert_eq!(rows(&second), expected(&json[SPLIT..]));
    assert!(status.running());

    let t = Instant::now();
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(!status.running());
    assert_eq!(status.restarts(), 0);
    assert!(rx.try_recv().is_err(), "nothing after the last entry");
}

fn journalctl_stand_in(dir: &Path, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("fake-journalctl");
    std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn journalctl_that_exits_is_restarted_from_the_last_cursor() {
    // A stand-in that prints one real entry after the cursor it is given, then exits: the
    // source must restart it (after 1 s) with --after-cursor of that entry.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("args.log");
    let script = format!(
        r#"echo "$@" >> {log}
n=$(wc -l < {log})
printf '{{"__CURSOR":"c%s","MESSAGE":"Accepted password for atalice from 127.0.0.%s port 5 ssh2","SYSLOG_IDENTIFIER":"sshd","_PID":"%s"}}\n' $n $n $n
echo "stand-in exiting" >&2
exit 3"#,
        log = log.display()
    );
    let cfg = JournaldSourceConfig {
        journalctl: journalctl_stand_in(dir.path(), &script),
        ..JournaldSourceConfig::default()
    };
    let src = JournaldSource::new(&cfg, "jd".into(), HashMap::new(), true);
    let status = src.status();
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let h = std::thread::spawn(move || src.run(tx, s2));
    let a = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let b = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    assert_eq!(a.end, Position::Cursor("c1".into()));
    assert_eq!(b.end, Position::Cursor("c2".into()));
    assert!(status.restarts() >= 1);
    let args = std::fs::read_to_string(&log).unwrap();
    let runs: Vec<&str> = args.lines().collect();
    assert!(runs[0].contains("--lines=0"), "{}", runs[0]);
    assert!(
        runs[1].contains("--after-cursor=c1 --no-tail"),
        "{}",
        runs[1]
    );
}

#[test]
fn journalctl_missing_is_retried_with_backoff_and_stop_is_prompt() {
    let cfg = JournaldSourceConfig {
        journalctl: "/nonexistent/journalctl".into(),
        ..JournaldSourceConfig::default()
    };
    let src = JournaldSource::new(&cfg, "jd".into(), HashMap::new(), true);
    let status = src.status();
    let (tx, _rx) = std::sync::mpsc::sync_channel(1);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let h = std::thread::spawn(move || src.run(tx, s2));
    // Attempts at 0 s, 1 s, 3 s (1 + 2): two restarts within 3.5 s, not more.
    std::thread::sleep(Duration::from_millis(3500));
    let t = Instant::now();
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(status.restarts(), 2);
    assert!(!status.running());
}
