//! Model-based test of the file source and the checkpoint store together.
//!
//! Random sequences of writes, rotations (rename + create, copytruncate), deletions, polls,
//! checkpoint writes, clean restarts and crashes run against a real directory. A consumer plays
//! the pipeline: it records every delivered line, sets the checkpoint after each chunk and
//! persists at random points. The property: every written line is delivered (no loss), bytes
//! and truncation flag as written, in order within each file generation, and a line is delivered
//! more than once only after a crash whose last persisted checkpoint was before it (never after
//! a clean restart).
//!
//! What the model does not ask for, because no reader can: lines that only lived in a file that
//! was deleted before the agent looked. Before a crash or a restart the model lets the source
//! catch up when an unread line lives only in a deleted file (the agent held it open; a crash
//! there loses it). logrotate's copytruncate copies then truncates with no write in between.

// A panic in a test is a failure, which is what we want; clippy's `allow-unwrap-in-tests` does
// not reach the model's helpers outside `#[test]` functions.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent::config::{AuditSourceConfig, FileSourceConfig, ReadFrom};
use agent::source::checkpoint::{self, Checkpoints};
use agent::source::file::FileSource;
use agent::source::{Chunk, Position, StreamKey};
use proptest::prelude::*;

const MAX_LINE: usize = 64;

#[derive(Debug, Clone)]
enum Action {
    /// Append lines to auth.log (creating it if missing). Each: filler length, long?
    Write(Vec<(usize, bool)>),
    /// Append to auth.log.1 while it is the renamed old file (rsyslog before its HUP).
    WriteRotated(usize),
    /// logrotate `create`: rm auth.log.1; mv auth.log auth.log.1; create auth.log.
    RotateRename,
    /// logrotate `copytruncate`: rm auth.log.1; cp auth.log auth.log.1; truncate auth.log.
    CopyTruncate,
    /// rm auth.log.
    Delete,
    Poll,
    Persist,
    Restart,
    Crash,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => prop::collection::vec((0usize..40, prop::bool::weighted(0.1)), 1..6).prop_map(Action::Write),
        1 => (1usize..3).prop_map(Action::WriteRotated),
        2 => Just(Action::RotateRename),
        2 => Just(Action::CopyTruncate),
        1 => Just(Action::Delete),
        3 => Just(Action::Poll),
        2 => Just(Action::Persist),
        1 => Just(Action::Restart),
        1 => Just(Action::Crash),
    ]
}

/// A line's identity: (generation, sequence number).
type Id = (u32, u32);

struct Model {
    _tmp: tempfile::TempDir,
    log: PathBuf,
    old: PathBuf,
    state: PathBuf,
    cfg: FileSourceConfig,
    /// Generation of auth.log's content, if it exists.
    log_gen: Option<u32>,
    /// Generation in auth.log.1, and whether it is the renamed file (still written to).
    old_gen: Option<(u32, bool)>,
    next_gen: u32,
    next_seq: u32,
    /// Expected bytes and truncation flag of every line written.
    written: BTreeMap<Id, (Vec<u8>, bool)>,
    /// Deliveries per line.
    count: HashMap<Id, u32>,
    /// Deliveries allowed per line beyond the first (one per crash that could repeat it).
    allowance: HashMap<Id, u32>,
    /// This run's deliveries: (stream, offset, line).
    run: Vec<(StreamKey, u64, Id)>,
    /// Last sequence number delivered per generation in this run.
    run_last: HashMap<u32, u32>,
    source: Option<FileSource>,
    checkpoints: Checkpoints,
    /// Files changed since the source last polled.
    unpolled: bool,
}

impl Model {
    fn new() -> Self {
        Self::with("auth.log", |glob| FileSourceConfig {
            name: None,
            paths: vec![glob],
            read_from: ReadFrom::End,
            poll_interval: Duration::ZERO,
            partial_line_timeout: Duration::from_secs(3600),
            max_files: 64,
        })
    }

    /// The `type = "audit"` source: the file source as its config makes it, on `audit.log`
    /// rotated by rename (auditd) or copytruncate.
    fn new_audit() -> Self {
        Self::with("audit.log", |glob| {
            let mut cfg = AuditSourceConfig {
                name: None,
                paths: vec![glob],
                read_from: ReadFrom::End,
                poll_interval: Duration::ZERO,
            }
            .as_file();
            // The model's lines are whole: no partial-line flush should interfere.
            cfg.partial_line_timeout = Duration::from_secs(3600);
            cfg
        })
    }

    fn with(file: &str, cfg: impl Fn(String) -> FileSourceConfig) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join("log");
        fs::create_dir(&logs).unwrap();
        let cfg = cfg(logs.join(format!("{file}*")).to_string_lossy().into_owned());
        let state = tmp.path().join("state");
        let (checkpoints, warn) = checkpoint::load(&state);
        assert!(warn.is_none());
        let mut m = Model {
            log: logs.join(file),
            old: logs.join(format!("{file}.1")),
            _tmp: tmp,
            state,
            cfg,
            log_gen: None,
            old_gen: None,
            next_gen: 0,
            next_seq: 0,
            written: BTreeMap::new(),
            count: HashMap::new(),
            allowance: HashMap::new(),
            run: Vec::new(),
            run_last: HashMap::new(),
            source: None,
            checkpoints,
            unpolled: false,
        };
        m.start();
        // The agent's first scan sees an empty directory: `read-from = end` skips nothing.
        m.poll();
        // The runtime writes the (empty) store at once, so a crash is never a "first start".
        m.checkpoints.persist().unwrap();
        m
    }

    fn start(&mut self) {
        let mut src = FileSource::new(
            &self.cfg,
            Arc::from("auth"),
            self.checkpoints.positions(),
            MAX_LINE,
            self.checkpoints.first_start(),
        )
        .force_poll()
        .quiet();
        // Small chunks, so reading lags behind writing and rotations catch unread lines.
        src.set_chunk_limits(1, 1);
        self.source = Some(src);
        self.run.clear();
        self.run_last.clear();
    }

    fn new_gen(&mut self) -> u32 {
        self.next_gen += 1;
        self.next_gen
    }

    fn lines(&mut self, gen_: u32, specs: &[(usize, bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(filler, long) in specs {
            self.next_seq += 1;
            let mut line = format!("g{gen_} s{} host sshd[42]: ", self.next_seq).into_bytes();
            let len = if long {
                MAX_LINE + 10 + filler * 5
            } else {
                filler
            };
            // Bytes as they come: invalid UTF-8 and NUL included, never a newline.
            line.extend((0..len).map(|i| [b'a', 0xff, 0, b' ', b'z', 0xc3][(i + filler) % 6]));
            let truncated = line.len() > MAX_LINE;
            let expect = line[..line.len().min(MAX_LINE)].to_vec();
            self.written
                .insert((gen_, self.next_seq), (expect, truncated));
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
        out
    }

    fn consume(&mut self, chunks: Vec<Chunk>) {
        for c in chunks {
            if std::env::var_os("MODEL_DEBUG").is_some() {
                eprintln!(
                    "chunk {:?} {:?} end {:?} lines {:?}",
                    c.stream,
                    c.path,
                    c.end,
                    c.records
                        .iter()
                        .map(|r| (r.offset, parse_id(c.bytes(r))))
                        .collect::<Vec<_>>()
                );
            }
            for r in &c.records {
                let bytes = c.bytes(r);
                let id = parse_id(bytes);
                let (expect, truncated) = self.written.get(&id).unwrap_or_else(|| {
                    panic!(
                        "delivered a line never written: {:?}",
                        String::from_utf8_lossy(bytes)
                    )
                });
                assert_eq!(bytes, &expect[..], "line {id:?} bytes");
                assert_eq!(r.truncated, *truncated, "line {id:?} flag");
                let last = self.run_last.entry(id.0).or_insert(0);
                assert!(
                    *last < id.1,
                    "line {id:?} out of order or repeated within a run (after s{last})"
                );
                *last = id.1;
                *self.count.entry(id).or_insert(0) += 1;
                self.run.push((c.stream.clone(), r.offset.unwrap(), id));
            }
            // The pipeline: the chunk is durable downstream, its end becomes the checkpoint.
            self.checkpoints.set(
                c.stream.clone(),
                c.end.clone(),
                c.path.as_deref().map(PathBuf::as_path),
            );
        }
    }

    fn poll(&mut self) {
        self.unpolled = false;
        let chunks = self.source.as_mut().unwrap().poll_once();
        self.consume(chunks);
    }

    fn drain(&mut self) {
        for _ in 0..10_000 {
            let src = self.source.as_mut().unwrap();
            let chunks = src.poll_once();
            let done = chunks.is_empty() && !src.has_backlog();
            self.consume(chunks);
            if done {
                return;
            }
        }
        panic!("the source never catches up");
    }

    /// Some undelivered line lives only in a deleted file (the source holds it open).
    fn unread_in_deleted_file(&self) -> bool {
        let reachable =
            |g: u32| self.log_gen == Some(g) || self.old_gen.is_some_and(|(o, _)| o == g);
        self.written
            .keys()
            .any(|id| !self.count.contains_key(id) && !reachable(id.0))
    }

    fn append(path: &Path, bytes: &[u8]) {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    fn apply(&mut self, a: &Action) {
        self.apply_then(a, true);
    }

    /// Applies `a`; polls once afterwards only if `poll_after` (writes may come in bursts).
    fn apply_then(&mut self, a: &Action, poll_after: bool) {
        let unlinks = matches!(
            a,
            Action::RotateRename | Action::CopyTruncate | Action::Delete
        );
        if unlinks && self.unpolled {
            // The agent has looked at least once since the last write before logrotate or an
            // admin unlinks a file (what it never opened, nobody can read).
            self.poll();
        }
        if std::env::var_os("MODEL_DEBUG").is_some() {
            eprintln!("action {a:?}");
        }
        match a {
            Action::Write(specs) => {
                let g = match self.log_gen {
                    Some(g) => g,
                    None => {
                        let g = self.new_gen();
                        self.log_gen = Some(g);
                        g
                    }
                };
                let bytes = self.lines(g, specs);
                Self::append(&self.log, &bytes);
            }
            Action::WriteRotated(n) => {
                if let Some((g, true)) = self.old_gen {
                    let bytes = self.lines(g, &vec![(3, false); *n]);
                    Self::append(&self.old, &bytes);
                }
            }
            Action::RotateRename => {
                if self.log_gen.is_some() {
                    let _ = fs::remove_file(&self.old);
                    fs::rename(&self.log, &self.old).unwrap();
                    self.old_gen = self.log_gen.map(|g| (g, true));
                    Self::append(&self.log, b"");
                    self.log_gen = Some(self.new_gen());
                }
            }
            Action::CopyTruncate => {
                if self.log_gen.is_some() {
                    let _ = fs::remove_file(&self.old);
                    fs::copy(&self.log, &self.old).unwrap();
                    OpenOptions::new()
                        .write(true)
                        .open(&self.log)
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                    self.old_gen = self.log_gen.map(|g| (g, false));
                    self.log_gen = Some(self.new_gen());
                }
            }
            Action::Delete => {
                if self.log_gen.take().is_some() {
                    fs::remove_file(&self.log).unwrap();
                }
            }
            Action::Poll => {}
            Action::Persist => self.checkpoints.persist().unwrap(),
            Action::Restart => {
                if self.unread_in_deleted_file() {
                    self.drain();
                }
                self.source = None;
                self.checkpoints.persist().unwrap();
                let (cps, warn) = checkpoint::load(&self.state);
                assert!(warn.is_none());
                self.checkpoints = cps;
                self.start();
            }
            Action::Crash => {
                if self.unread_in_deleted_file() {
                    self.drain();
                }
                self.source = None;
                let (cps, warn) = checkpoint::load(&self.state);
                assert!(warn.is_none());
                // Lines delivered past the persisted position of their stream may come again.
                for (key, offset, id) in &self.run {
                    let repeatable = match cps.get(key) {
                        Some(Position::Offset(p)) => *p <= *offset,
                        _ => true,
                    };
                    if repeatable {
                        *self.allowance.entry(*id).or_insert(0) += 1;
                    }
                }
                self.checkpoints = cps;
                self.start();
            }
        }
        // The agent runs alongside: one poll (at most a few one-line chunks) after most steps.
        let restarted = matches!(a, Action::Restart | Action::Crash);
        if poll_after || restarted {
            self.poll();
        } else {
            self.unpolled = true;
        }
    }

    fn check(&mut self) {
        self.drain();
        for id in self.written.keys() {
            let n = self.count.get(id).copied().unwrap_or(0);
            assert!(n >= 1, "line {id:?} lost");
            let allowed = 1 + self.allowance.get(id).copied().unwrap_or(0);
            assert!(
                n <= allowed,
                "line {id:?} delivered {n} times, allowed {allowed}"
            );
        }
    }
}

fn parse_id(bytes: &[u8]) -> Id {
    let text = String::from_utf8_lossy(bytes);
    let mut it = text.split(' ');
    let g = it
        .next()
        .and_then(|s| s.strip_prefix('g'))
        .and_then(|s| s.parse().ok());
    let s = it
        .next()
        .and_then(|s| s.strip_prefix('s'))
        .and_then(|s| s.parse().ok());
    match (g, s) {
        (Some(g), Some(s)) => (g, s),
        _ => panic!("not a model line: {text:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn lines_delivered_equal_lines_written(
        actions in prop::collection::vec((action(), prop::bool::weighted(0.7)), 1..60),
    ) {
        let mut m = Model::new();
        for (a, poll_after) in &actions {
            m.apply_then(a, *poll_after);
        }
        m.check();
    }

    #[test]
    fn audit_source_lines_delivered_equal_lines_written(
        actions in prop::collection::vec((action(), prop::bool::weighted(0.7)), 1..60),
    ) {
        let mut m = Model::new_audit();
        for (a, poll_after) in &actions {
            m.apply_then(a, *poll_after);
        }
        m.check();
    }
}

/// With no crash at all, every line is delivered exactly once, restarts included.
#[test]
fn exactly_once_without_crashes() {
    let mut m = Model::new();
    let w = |n| Action::Write(vec![(5, false); n]);
    for a in [
        w(3),
        Action::RotateRename,
        w(4),
        Action::WriteRotated(2),
        Action::Restart,
        w(2),
        Action::CopyTruncate,
        w(3),
        Action::Restart,
        Action::Delete,
        w(1),
        Action::RotateRename,
        Action::RotateRename,
        Action::Restart,
        w(2),
    ] {
        m.apply(&a);
    }
    m.check();
    assert!(m.count.values().all(|&n| n == 1), "{:?}", m.count);
    assert_eq!(m.count.len(), m.written.len());
}
