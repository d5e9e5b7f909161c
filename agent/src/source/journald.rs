//! The journald source: auth entries of the systemd journal, read through `journalctl`.
//!
//! # The command
//!
//! ```text
//! journalctl --output=json --no-pager --all --follow
//!            [--after-cursor=C --no-tail | --lines=0 | --no-tail]
//!            [--directory=D | --file=F ...]
//!            SYSLOG_FACILITY=4 SYSLOG_FACILITY=10 + SYSLOG_IDENTIFIER=sshd + SYSLOG_IDENTIFIER=sudo ...
//! ```
//!
//! journalctl ORs matches on the same field and ANDs different fields; `+` separates alternative
//! groups. So the first group is "facility auth or authpriv", and each further group one program
//! from `identifiers` (programs that log elsewhere, like the shadow tools with facility 1).
//! `--follow` on its own starts at the last 10 entries, *also with `--after-cursor`* (systemd
//! 252): `--no-tail` is what makes it print everything after the cursor. Without a cursor:
//! `read-from = "end"` gives `--lines=0` (only new entries), `"beginning"` gives `--no-tail`.
//! A source that has run before but has no saved cursor (no entry ever matched, or the checkpoint
//! was lost) follows `read-from` too, with a warning: re-reading the whole journal's history on
//! every such restart would be worse than the gap.
//!
//! `--after-cursor` already skips the entry at the cursor; in case a journalctl treats it as
//! inclusive, an entry whose `__CURSOR` equals the start cursor is dropped too (exactly once).
//!
//! # Entries
//!
//! Each JSON line (at most [`json_line_max`] bytes; longer ones are skipped and counted) maps to
//! one [`Record`] whose bytes are `MESSAGE` (cut at `max_line` bytes and flagged), with
//! [`JournalFields`]: `SYSLOG_IDENTIFIER` (else `_COMM`), `_PID` (else `SYSLOG_PID`),
//! `_HOSTNAME`, `__REALTIME_TIMESTAMP`. journalctl writes a field as a string, as an array of
//! byte values when it is not UTF-8 text, as an array of those when the entry has the field more
//! than once (the first is taken), or as `null` when it was too large to show; all are handled.
//! Entries without a `MESSAGE` are skipped, but the chunk's end cursor still moves past them.
//!
//! # Restarts and stopping
//!
//! If journalctl cannot be started or exits, the source logs why (a warning) with the last lines journalctl
//! wrote to its standard error, and starts it again from the last cursor read, after 1 s, then
//! 2, 4, ... up to 60 s; the delay resets once a run has delivered an entry. On stop the source
//! kills the journalctl it started (through its [`Child`] handle, never by name) and reaps it.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{Chunk, JournalFields, Payload, Position, Record, StreamKey};
use super::{send, sleep_unless_stopped};

mod config;

pub use self::config::JournaldSourceConfig;
use super::ReadFrom;

/// Most entries in one [`Chunk`].
pub(crate) const MAX_CHUNK_RECORDS: usize = 512;

/// Most message bytes in one [`Chunk`] (a chunk is handed on once it holds this much).
pub(crate) const MAX_CHUNK_BYTES: usize = 1 << 20;

/// Default cap on `MESSAGE`, the agent's default `max-line-bytes`.
pub(crate) const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Entries parsed but not yet taken by the source thread (bounds memory between the pipe reader
/// and the chunk builder).
const ENTRY_QUEUE: usize = 64;

/// Delay before the first restart of journalctl, doubled after each failure.
pub(crate) const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest delay between restarts of journalctl.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Bytes of journalctl's standard error kept to explain an exit.
const STDERR_TAIL: usize = 2048;

/// Longest JSON line read from journalctl for a given `MESSAGE` cap: JSON escaping and byte
/// arrays can make a field several times longer than its bytes, and the other fields add some.
pub(crate) fn json_line_max(max_line: usize) -> usize {
    max_line.saturating_mul(8).max(1 << 20)
}

/// Counters shared between the source's thread and `authtrail status`.
#[derive(Debug, Default)]
pub struct JournaldStatus {
    entries_read: AtomicU64,
    rejected: AtomicU64,
    truncated: AtomicU64,
    restarts: AtomicU64,
    running: AtomicBool,
    cursor: Mutex<Option<String>>,
}

impl JournaldStatus {
    /// Entries handed to the pipeline.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn entries_read(&self) -> u64 {
        self.entries_read.load(Ordering::Relaxed)
    }
    /// Times journalctl was started again after it exited or failed to start.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    /// Whether a journalctl is running now.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }
    /// The cursor of the last entry read.
    pub fn cursor(&self) -> Option<String> {
        self.cursor.lock().ok().and_then(|c| c.clone())
    }
}

/// The one stream of the journald source called `name`, live while it is configured.
pub(crate) fn stream_key(name: &str) -> StreamKey {
    StreamKey::Journal {
        source: name.to_owned(),
    }
}

/// A `[[source]] type = "journald"`.
#[derive(Debug)]
pub struct JournaldSource {
    name: Arc<str>,
    config: JournaldSourceConfig,
    /// The cursor of the last entry read (or the saved one before anything is read).
    cursor: Option<String>,
    /// The saved cursor we started from, dropped if journalctl shows its entry again.
    skip_once: Option<String>,
    first_start: bool,
    max_line: usize,
    status: Arc<JournaldStatus>,
}

/// One entry, as parsed by the pipe reader.
#[derive(Debug)]
struct Entry {
    cursor: String,
    message: Option<Vec<u8>>,
    truncated: bool,
    fields: JournalFields,
}

/// What the pipe reader hands over.
#[derive(Debug)]
enum FromPipe {
    Entry(Entry),
    Rejected(&'static str),
}

/// The fields read from one JSON line; journalctl writes many more, ignored here.
#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "__CURSOR")]
    cursor: Option<Value>,
    #[serde(rename = "MESSAGE")]
    message: Option<Value>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    identifier: Option<Value>,
    #[serde(rename = "_COMM")]
    comm: Option<Value>,
    #[serde(rename = "_PID")]
    pid: Option<Value>,
    #[serde(rename = "SYSLOG_PID")]
    syslog_pid: Option<Value>,
    #[serde(rename = "_HOSTNAME")]
    hostname: Option<Value>,
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime: Option<Value>,
}

impl JournaldSource {
    /// A source for `config`, called `name`, resuming from its cursor in `start`
    /// (`StreamKey::Journal { source: name }`); other entries of `start` are ignored.
    /// `first_start` is true when the agent has never run before.
    pub fn new(
        config: &JournaldSourceConfig,
        name: Arc<str>,
        start: HashMap<StreamKey, Position>,
        first_start: bool,
    ) -> Self {
        let key = stream_key(&name);
        let cursor = match start.get(&key) {
            Some(Position::Cursor(c)) if !c.is_empty() => Some(c.clone()),
            _ => None,
        };
        JournaldSource {
            name,
            config: config.clone(),
            skip_once: cursor.clone(),
            cursor,
            first_start,
            max_line: DEFAULT_MAX_LINE,
            status: Arc::new(JournaldStatus::default()),
        }
    }

    /// Caps `MESSAGE` at `max_line` bytes (the agent's `max-line-bytes`). Defaults to
    /// [`DEFAULT_MAX_LINE`].
    pub(crate) fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line.max(1);
        self
    }

    /// The counters `authtrail status` shows; shared with the running source.
    pub fn status(&self) -> Arc<JournaldStatus> {
        Arc::clone(&self.status)
    }

    /// The `journalctl` arguments for one run, `follow` or read to the end and exit.
    pub(crate) fn args(&self, follow: bool) -> Vec<String> {
        let mut a: Vec<String> = ["--output=json", "--no-pager", "--all"]
            .map(String::from)
            .to_vec();
        if follow {
            a.push("--follow".into());
        }
        match &self.cursor {
            Some(c) => {
                a.push(format!("--after-cursor={c}"));
                a.push("--no-tail".into());
            }
            None => match self.config.read_from {
                ReadFrom::End => a.push("--lines=0".into()),
                ReadFrom::Beginning => a.push("--no-tail".into()),
            },
        }
        if let Some(d) = &self.config.directory {
            a.push(format!("--directory={}", d.display()));
        }
        for f in &self.config.files {
            a.push(format!("--file={}", f.display()));
        }
        a.push("SYSLOG_FACILITY=4".into());
        a.push("SYSLOG_FACILITY=10".into());
        for id in &self.config.identifiers {
            a.push("+".into());
            a.push(format!("SYSLOG_IDENTIFIER={id}"));
        }
        a
    }

    /// Reads every matching entry after the current position and returns them as chunks,
    /// running `journalctl` without `--follow`. For tests and one-shot reads.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn read_available(&mut self) -> io::Result<Vec<Chunk>> {
        self.warn_if_no_cursor();
        self.skip_once = self.cursor.clone();
        let mut run = self.spawn(false)?;
        let mut out = Vec::new();
        let mut batch = Batch::default();
        while let Ok(msg) = run.entries.recv() {
            self.take(&mut batch, msg);
            if batch.full() {
                out.extend(self.flush(&mut batch));
            }
        }
        out.extend(self.flush(&mut batch));
        let status = run.finish(false);
        match status {
            Ok(s) if s.success() => Ok(out),
            Ok(s) => Err(io::Error::other(format!(
                "journalctl {s}{}",
                run.stderr_note()
            ))),
            Err(e) => Err(e),
        }
    }

    /// Follows the journal until `stop` is set or the receiver hangs up.
    pub fn run(mut self, tx: SyncSender<Chunk>, stop: Arc<AtomicBool>) {
        self.warn_if_no_cursor();
        let mut backoff = BACKOFF_START;
        let mut first = true;
        while !stop.load(Ordering::Relaxed) {
            if !first {
                self.status.restarts.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            self.skip_once = self.cursor.clone();
            let mut run = match self.spawn(true) {
                Ok(r) => r,
                Err(e) => {
                    self.warn(format_args!(
                        "cannot start {}: {e}; retrying in {}s",
                        self.config.journalctl.display(),
                        backoff.as_secs()
                    ));
                    sleep_unless_stopped(backoff, &stop);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            self.status.running.store(true, Ordering::Relaxed);
            let (delivered, hung_up) = self.pump(&run.entries, &tx, &stop);
            if delivered {
                backoff = BACKOFF_START;
            }
            let exited_by_itself = !stop.load(Ordering::Relaxed) && !hung_up;
            let result = run.finish(!exited_by_itself);
            self.status.running.store(false, Ordering::Relaxed);
            if hung_up {
                return;
            }
            if exited_by_itself {
                let why = match result {
                    Ok(s) => format!("exited ({s})"),
                    Err(e) => format!("could not be waited for: {e}"),
                };
                self.warn(format_args!(
                    "journalctl {why}{}; restarting in {}s",
                    run.stderr_note(),
                    backoff.as_secs()
                ));
                sleep_unless_stopped(backoff, &stop);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }

    /// Moves entries from the pipe reader to `tx` until the pipe ends, `stop` is set or the
    /// receiver hangs up. Returns (delivered at least one entry, receiver hung up).
    fn pump(
        &mut self,
        entries: &Receiver<FromPipe>,
        tx: &SyncSender<Chunk>,
        stop: &AtomicBool,
    ) -> (bool, bool) {
        let mut batch = Batch::default();
        let mut delivered = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                // Entries already taken are handed on: their cursor is ours now.
                if let Some(c) = self.flush(&mut batch) {
                    send(tx, c, stop);
                }
                return (delivered, false);
            }
            let wait = if batch.is_empty() {
                Duration::from_millis(200)
            } else {
                Duration::ZERO
            };
            match entries.recv_timeout(wait) {
                Ok(msg) => {
                    self.take(&mut batch, msg);
                    if !batch.full() {
                        continue;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if let Some(c) = self.flush(&mut batch) {
                        delivered = true;
                        if !send(tx, c, stop) {
                            return (true, !stop.load(Ordering::Relaxed));
                        }
                    }
                    return (delivered, false);
                }
            }
            // Nothing more right now (or the batch is full): hand it on.
            if let Some(c) = self.flush(&mut batch) {
                delivered = true;
                if !send(tx, c, stop) {
                    return (true, !stop.load(Ordering::Relaxed));
                }
            }
        }
    }

    /// Adds one entry to the batch, dropping the start cursor's entry if it shows up again.
    fn take(&mut self, batch: &mut Batch, msg: FromPipe) {
        match msg {
            FromPipe::Rejected(why) => {
                self.status.rejected.fetch_add(1, Ordering::Relaxed);
                self.warn(format_args!("skipped a journal entry: {why}"));
            }
            FromPipe::Entry(e) => {
                if let Some(skip) = self.skip_once.take()
                    && skip == e.cursor
                {
                    return;
                }
                if let Some(msg) = e.message {
                    let start = batch.data.len() as u32;
                    batch.data.extend_from_slice(&msg);
                    if e.truncated {
                        self.status.truncated.fetch_add(1, Ordering::Relaxed);
                    }
                    batch.records.push(Record {
                        start,
                        end: batch.data.len() as u32,
                        offset: None,
                        truncated: e.truncated,
                        journal: Some(e.fields),
                    });
                }
                batch.cursor = Some(e.cursor);
            }
        }
    }

    /// The batch as a chunk (if it holds a record), advancing the source's cursor.
    fn flush(&mut self, batch: &mut Batch) -> Option<Chunk> {
        let b = std::mem::take(batch);
        let cursor = b.cursor?;
        self.cursor = Some(cursor.clone());
        if let Ok(mut c) = self.status.cursor.lock() {
            *c = Some(cursor.clone());
        }
        if b.records.is_empty() {
            // Only entries without a MESSAGE: the cursor moves on in memory; it is saved with
            // the next chunk.
            return None;
        }
        self.status
            .entries_read
            .fetch_add(b.records.len() as u64, Ordering::Relaxed);
        Some(Chunk {
            source: Arc::clone(&self.name),
            stream: stream_key(&self.name),
            path: None,
            payload: Payload::Journal,
            data: b.data,
            records: b.records,
            end: Position::Cursor(cursor),
        })
    }

    fn spawn(&self, follow: bool) -> io::Result<Run> {
        let mut child = Command::new(&self.config.journalctl)
            .args(self.args(follow))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("journalctl's pipes were not created"));
        };
        let (tx, entries) = mpsc::sync_channel(ENTRY_QUEUE);
        let max_line = self.max_line;
        let reader = std::thread::Builder::new()
            .name(format!("{}-journalctl", self.name))
            .spawn(move || read_pipe(stdout, tx, max_line));
        let reader = match reader {
            Ok(h) => h,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr_tail);
        let err_reader = std::thread::Builder::new()
            .name(format!("{}-journalctl-err", self.name))
            .spawn(move || keep_tail(stderr, &tail))
            .ok();
        Ok(Run {
            child,
            entries,
            reader: Some(reader),
            err_reader,
            stderr_tail,
        })
    }

    fn warn_if_no_cursor(&self) {
        if self.cursor.is_none() && !self.first_start {
            let from = match self.config.read_from {
                ReadFrom::End => "new entries only",
                ReadFrom::Beginning => "the beginning",
            };
            self.warn(format_args!("no saved cursor; reading {from} (read-from)"));
        }
    }

    fn warn(&self, msg: std::fmt::Arguments<'_>) {
        tracing::warn!("journald source {}: {msg}", self.name);
    }
}

/// Entries collected for the next chunk.
#[derive(Debug, Default)]
struct Batch {
    data: Vec<u8>,
    records: Vec<Record>,
    cursor: Option<String>,
}

impl Batch {
    fn full(&self) -> bool {
        self.records.len() >= MAX_CHUNK_RECORDS || self.data.len() >= MAX_CHUNK_BYTES
    }
    fn is_empty(&self) -> bool {
        self.cursor.is_none()
    }
}

/// One running journalctl: the child, its parsed output, and its standard error's tail.
#[derive(Debug)]
struct Run {
    child: Child,
    entries: Receiver<FromPipe>,
    reader: Option<JoinHandle<()>>,
    err_reader: Option<JoinHandle<()>>,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
}

impl Run {
    /// Reaps journalctl (killing it first when `kill`: we are stopping; our own child, by its
    /// handle) and joins the pipe readers.
    fn finish(&mut self, kill: bool) -> io::Result<std::process::ExitStatus> {
        if kill && self.child.try_wait()?.is_none() {
            let _ = self.child.kill();
        }
        let status = self.child.wait()?;
        // The reader may be blocked handing an entry over: drain so it can see the pipe's end.
        while self.entries.try_recv().is_ok() {}
        if let Some(h) = self.reader.take() {
            while !h.is_finished() {
                while self.entries.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = h.join();
        }
        if let Some(h) = self.err_reader.take() {
            let _ = h.join();
        }
        Ok(status)
    }

    /// `: <last stderr lines>` or nothing.
    fn stderr_note(&self) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.iter().copied().collect::<Vec<u8>>())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&tail);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!(": {}", text.replace('\n', " | "))
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.finish(true);
        }
    }
}

/// Keeps the last [`STDERR_TAIL`] bytes of `r`.
fn keep_tail(mut r: impl Read, tail: &Mutex<VecDeque<u8>>) {
    let mut buf = [0u8; 512];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut t) = tail.lock() {
                    t.extend(&buf[..n]);
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
            }
        }
    }
}

/// Reads journalctl's JSON lines, each capped, and hands over parsed entries until the pipe
/// ends or the receiver goes away.
fn read_pipe(stdout: ChildStdout, tx: SyncSender<FromPipe>, max_line: usize) {
    let mut r = BufReader::with_capacity(64 * 1024, stdout);
    let cap = json_line_max(max_line);
    let mut line = Vec::new();
    loop {
        line.clear();
        let (len, complete) = match read_capped_line(&mut r, &mut line, cap) {
            Ok(x) => x,
            Err(_) => return,
        };
        if len == 0 && !complete {
            return; // end of the pipe
        }
        let msg = if len > cap {
            FromPipe::Rejected("JSON line longer than the bound")
        } else {
            parse_entry(&line, max_line)
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// Reads one line into `line` (without the newline), keeping at most `cap` bytes; returns the
/// line's full length and whether it ended with a newline.
fn read_capped_line(
    r: &mut impl BufRead,
    line: &mut Vec<u8>,
    cap: usize,
) -> io::Result<(usize, bool)> {
    let mut len = 0;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((len, false));
        }
        let (part, used, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = cap.saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        len += part.len();
        r.consume(used);
        if done {
            return Ok((len, true));
        }
    }
}

/// One JSON line to an entry.
fn parse_entry(line: &[u8], max_line: usize) -> FromPipe {
    let raw: RawEntry = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(_) => return FromPipe::Rejected("not a JSON object"),
    };
    let Some(cursor) = raw.cursor.as_ref().and_then(field_text) else {
        return FromPipe::Rejected("no __CURSOR");
    };
    let (message, truncated) = match raw.message.as_ref().and_then(field_bytes) {
        Some(mut m) => {
            let cut = m.len() > max_line;
            m.truncate(max_line);
            (Some(m), cut)
        }
        None => (None, false),
    };
    let program = raw
        .identifier
        .as_ref()
        .and_then(field_text)
        .filter(|s| !s.is_empty())
        .or_else(|| raw.comm.as_ref().and_then(field_text))
        .unwrap_or_default();
    let pid = [&raw.pid, &raw.syslog_pid]
        .into_iter()
        .find_map(|v| v.as_ref().and_then(field_text)?.trim().parse::<u32>().ok());
    let hostname = raw
        .hostname
        .as_ref()
        .and_then(field_text)
        .filter(|h| !h.is_empty());
    let realtime_us = raw
        .realtime
        .as_ref()
        .and_then(field_text)
        .and_then(|t| t.parse::<i64>().ok());
    FromPipe::Entry(Entry {
        cursor,
        message,
        truncated,
        fields: JournalFields {
            program,
            pid,
            hostname,
            realtime_us,
        },
    })
}

/// A field's bytes: a string, an array of byte values (not UTF-8), or the first of several
/// values. `None` for `null` and anything else.
fn field_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Array(items) if items.iter().all(Value::is_number) => items
            .iter()
            .map(|n| n.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect(),
        Value::Array(items) => match items.first()? {
            first @ (Value::String(_) | Value::Array(_)) => field_bytes(first),
            _ => None,
        },
        _ => None,
    }
}

/// A field as text, invalid UTF-8 replaced.
fn field_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => field_bytes(v).map(|b| String::from_utf8_lossy(&b).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> Entry {
        match parse_entry(json.as_bytes(), 16) {
            FromPipe::Entry(e) => e,
            FromPipe::Rejected(why) => panic!("{why}"),
        }
    }

    #[test]
    fn fields_as_string_bytes_array_and_null() {
        let e = entry(
            r#"{"__CURSOR":"c1","MESSAGE":[104,105,255],"_COMM":"sshd","SYSLOG_PID":"12",
               "_HOSTNAME":null,"__REALTIME_TIMESTAMP":"1795853043591706"}"#,
        );
        assert_eq!(e.cursor, "c1");
        assert_eq!(e.message.as_deref(), Some(&b"hi\xff"[..]));
        assert_eq!(e.fields.program, "sshd");
        assert_eq!(e.fields.pid, Some(12));
        assert_eq!(e.fields.hostname, None);
        assert_eq!(e.fields.realtime_us, Some(1_795_853_043_591_706));

        let e = entry(
            r#"{"__CURSOR":"c2","MESSAGE":["first","second"],"SYSLOG_IDENTIFIER":"su","_PID":"7","SYSLOG_PID":"8"}"#,
        );
        assert_eq!(e.message.as_deref(), Some(&b"first"[..]));
        assert_eq!((e.fields.program.as_str(), e.fields.pid), ("su", Some(7)));

        let e = entry(r#"{"__CURSOR":"c3","MESSAGE":null}"#);
        assert_eq!(e.message, None);
        assert_eq!(e.fields.program, "");
    }

    #[test]
    fn message_is_capped_and_flagged() {
        let e = entry(r#"{"__CURSOR":"c","MESSAGE":"0123456789abcdefXYZ"}"#);
        assert_eq!(e.message.as_deref(), Some(&b"0123456789abcdef"[..]));
        assert!(e.truncated);
    }

    #[test]
    fn bad_lines_are_rejected() {
        assert!(matches!(parse_entry(b"{nope", 10), FromPipe::Rejected(_)));
        assert!(matches!(
            parse_entry(b"{\"MESSAGE\":\"x\"}", 10),
            FromPipe::Rejected(_)
        ));
        assert!(matches!(parse_entry(b"[1,2]", 10), FromPipe::Rejected(_)));
    }

    #[test]
    fn capped_line_reader() {
        let mut r = io::Cursor::new(b"abcdefgh\nxy\nlast".to_vec());
        let mut line = Vec::new();
        assert_eq!(read_capped_line(&mut r, &mut line, 4).unwrap(), (8, true));
        assert_eq!(line, b"abcd");
        line.clear();
        assert_eq!(read_capped_line(&mut r, &mut line, 4).unwrap(), (2, true));
        line.clear();
        assert_eq!(read_capped_line(&mut r, &mut line, 4).unwrap(), (4, false));
        line.clear();
        assert_eq!(read_capped_line(&mut r, &mut line, 4).unwrap(), (0, false));
    }

    #[test]
    fn arguments() {
        let cfg = JournaldSourceConfig {
            identifiers: vec!["sshd".into(), "sudo".into()],
            files: vec!["/x/a.journal".into()],
            ..JournaldSourceConfig::default()
        };
        let src = JournaldSource::new(&cfg, "jd".into(), HashMap::new(), true);
        assert_eq!(
            src.args(true),
            [
                "--output=json",
                "--no-pager",
                "--all",
                "--follow",
                "--lines=0",
                "--file=/x/a.journal",
                "SYSLOG_FACILITY=4",
                "SYSLOG_FACILITY=10",
                "+",
                "SYSLOG_IDENTIFIER=sshd",
                "+",
                "SYSLOG_IDENTIFIER=sudo"
            ]
        );
        let start = HashMap::from([(
            StreamKey::Journal {
                source: "jd".into(),
            },
            Position::Cursor("s=1;i=2".into()),
        )]);
        let src = JournaldSource::new(&cfg, "jd".into(), start, false);
        let a = src.args(false);
        assert!(a.contains(&"--after-cursor=s=1;i=2".to_string()));
        assert!(a.contains(&"--no-tail".to_string()));
        assert!(!a.contains(&"--follow".to_string()));
    }
}
