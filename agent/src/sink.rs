//! Sinks: where rendered events go, and the durability hook that checkpoints wait for.
//!
//! The pipeline hands each event to [`Sink::send`] as one line of ECS JSON, then calls
//! [`Sink::commit`]; only when `commit` returns `Ok` are the events durable downstream (written
//! and fsync'd, spooled, or acknowledged by a collector), and only then do source checkpoints
//! advance past them. A crash between `send` and `commit` therefore re-reads those lines on
//! restart: at-least-once, never a gap.
//!
//! Exactly-once needs one more step, because the sink's data and the checkpoint file are two
//! files written one after the other. After each commit the pipeline asks the sink for its
//! [`SinkMark`] (the file sink: its file's inode and length; the collector sink: the last spooled
//! batch) and persists it *with* the positions. On start the pipeline hands the persisted mark to
//! [`Sink::recover`], which discards whatever the sink holds beyond it: output written after the
//! last persisted checkpoint, whose lines will be read and written again. A sink that ships data
//! onwards (the collector sink) must not ship anything beyond the mark it was last given by
//! [`Sink::release`], or the discarded copy could already be downstream.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A sink failure: the events since the last commit are not durable.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing or syncing failed.
    #[error("writing events to {target}: {source}")]
    Io {
        /// The file or stream written.
        target: String,
        /// The I/O error.
        source: io::Error,
    },
}

/// A sink's durable position, stored with the checkpoints (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SinkMark {
    /// Which object the offset is in (the file sink: the output file's inode).
    pub object: u64,
    /// How far it is durable (the file sink: the file's length; the collector sink: the last
    /// spooled batch's sequence number).
    pub offset: u64,
}

/// What a shipping sink reports in `authtrail status`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SinkReport {
    /// Batches waiting to be sent.
    pub backlog_batches: u64,
    /// Their bytes.
    pub backlog_bytes: u64,
    /// Batches accepted downstream since start.
    pub sent_batches: u64,
    /// Their events.
    pub sent_events: u64,
    /// Their bodies' bytes as sent (compressed).
    pub sent_body_bytes: u64,
    /// Events dropped from a full spool since start.
    pub dropped_events: u64,
    /// Events the collector refused one by one since start (the wire contract), kept in
    /// `dead-letter/`.
    #[serde(default)]
    pub rejected_events: u64,
    /// Failed attempts since start.
    pub failures: u64,
    /// The last failure, cleared by a success.
    pub last_error: Option<String>,
    /// When the next attempt is due (RFC 3339, whole seconds), while attempts fail and wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
}

/// Where events go.
pub trait Sink: Send {
    /// Takes one event rendered as one line of ECS JSON (without the newline). `alert` is true
    /// for detection alerts, which a batching sink ships at the next commit (see
    /// [`Sink::wants_commit`]) instead of waiting for its batch to fill or age.
    fn send(&mut self, event: &[u8], alert: bool) -> Result<(), SinkError>;

    /// [`Sink::send`] of an event the renderer wrote with [`agent_core::batch::Holes`] (only
    /// when the sink [`Sink::wants_holes`]): a sink that builds compact bodies takes the
    /// event's values from them instead of reading its JSON again.
    fn send_with_holes(
        &mut self,
        event: &[u8],
        holes: &agent_core::batch::Holes,
        alert: bool,
    ) -> Result<(), SinkError> {
        let _ = holes;
        self.send(event, alert)
    }

    /// True when the sink builds compact bodies and takes events with their holes
    /// ([`Sink::send_with_holes`]).
    fn wants_holes(&self) -> bool {
        false
    }

    /// Makes every event sent so far durable. Checkpoints advance only after this returns `Ok`.
    /// On `Err` the sink keeps what it was sent, the pipeline stops reading (the logs are the
    /// buffer) and retries the commit later.
    fn commit(&mut self) -> Result<(), SinkError>;

    /// True when the sink wants a commit now (an alert must go out, or a closed batch is
    /// waiting). `more_input` says whether more input is already queued for the pipeline: a
    /// batching sink then lets closed batches, and an alert, gather so that several are made
    /// durable together (one checkpoint write, one directory sync), up to the pipeline's byte
    /// bound ([`crate::pipeline::COMMIT_BYTES`]), which keeps an alert's wait to tens of
    /// milliseconds.
    fn wants_commit(&self, more_input: bool) -> bool {
        let _ = more_input;
        false
    }

    /// True while the sink holds events that are committed but not yet delivered (a batching
    /// sink's backlog); the run loop then refreshes the status file more often, so that
    /// `authtrail status` shows promptly when the backlog is gone.
    fn has_backlog(&self) -> bool {
        false
    }

    /// Failed delivery attempts since start (a batching sink's); while there is a backlog the
    /// run loop rewrites the status file when this changes, so that `authtrail status` shows a
    /// collector that is down within a second, not at the next periodic rewrite.
    fn failed_attempts(&self) -> u64 {
        0
    }

    /// Longest an event may wait for a commit (the batch age). Defaults to 500 ms.
    fn max_age(&self) -> std::time::Duration {
        std::time::Duration::from_millis(500)
    }

    /// A short description for logs and `authtrail status`.
    fn describe(&self) -> String;

    /// Shipping counters, for sinks that send batches on.
    fn report(&self) -> Option<SinkReport> {
        None
    }

    /// The durable position after the last successful [`Sink::commit`].
    fn mark(&self) -> SinkMark {
        SinkMark::default()
    }

    /// The checkpoints covering everything up to `mark` are persisted: what the sink holds up to
    /// there may now go downstream.
    fn release(&mut self, _mark: SinkMark) {}

    /// With a buffer that keeps nothing across a crash (the collector sink's memory buffer), a
    /// commit only queues the events, and they are durable once the collector has acknowledged
    /// them: the logs are the durable copy until then. This is the mark up to which that has
    /// happened, comparable with [`Sink::mark`] after a commit; the pipeline moves positions
    /// only that far. `None` (the default): `commit` makes the events durable.
    fn acknowledged(&self) -> Option<SinkMark> {
        None
    }

    /// With [`Sink::acknowledged`]: where reading resumes after everything sent so far (the
    /// pipeline's encoding of every stream's position and the next event sequence; opaque to
    /// the sink), handed over before each commit. The sink keeps it with the commit's batches,
    /// so that after a crash it can tell where to read on from ([`Sink::take_resume`]).
    fn resume_point(&mut self, _point: Vec<u8>) {}

    /// With [`Sink::acknowledged`], once, at start: a resume point ([`Sink::resume_point`]) kept
    /// from before a crash, and the mark up to which the sink must be acknowledged before it is
    /// durable (the sink sends the batches that lead up to it again first). The pipeline reads
    /// on from there instead of from the persisted positions. `None` (the default): read on
    /// from the persisted positions.
    fn take_resume(&mut self) -> Option<(SinkMark, Vec<u8>)> {
        None
    }

    /// With [`Sink::acknowledged`]: the least time between two persists of positions moved by
    /// acknowledgements (no write per batch). Defaults to 5 s.
    fn checkpoint_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(5)
    }

    /// At a clean stop, after the last commit: waits up to `wait` for what was committed to be
    /// delivered, then sends nothing more, so that [`Sink::acknowledged`] no longer moves and
    /// the positions persisted last cover every event delivered. The default does nothing.
    fn stop_sending(&mut self, wait: std::time::Duration) {
        let _ = wait;
    }

    /// Called once before anything is sent, with the mark persisted at the last commit (`None`
    /// on a first start): discard whatever the sink holds beyond it (it will be re-read).
    fn recover(&mut self, _mark: Option<SinkMark>) -> Result<(), SinkError> {
        Ok(())
    }
}

/// ECS NDJSON on standard output; `commit` flushes (a pipe reader is "downstream").
#[derive(Debug)]
pub(crate) struct StdoutSink {
    out: BufWriter<io::Stdout>,
}

impl StdoutSink {
    /// A sink on this process's standard output.
    pub(crate) fn new() -> Self {
        StdoutSink {
            out: BufWriter::with_capacity(256 * 1024, io::stdout()),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for StdoutSink {
    fn send(&mut self, event: &[u8], _alert: bool) -> Result<(), SinkError> {
        self.out
            .write_all(event)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| SinkError::Io {
                target: "standard output".into(),
                source,
            })
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Io {
            target: "standard output".into(),
            source,
        })
    }

    fn describe(&self) -> String {
        "stdout".into()
    }
}

/// ECS NDJSON appended to a file; `commit` flushes and fsyncs. The file is opened with
/// `O_APPEND`, so log rotation of it by `copytruncate` or rename is safe: a renamed file is
/// reopened at the next commit when its path no longer names the open file.
#[derive(Debug)]
pub(crate) struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
    ino: u64,
    /// Length of the file after the last commit.
    committed_len: u64,
}

impl FileSink {
    /// Opens (creating if needed, mode 0640) `path` for appending.
    pub(crate) fn open(path: &Path) -> Result<Self, SinkError> {
        let (file, ino) = open_append(path).map_err(|source| SinkError::Io {
            target: path.display().to_string(),
            source,
        })?;
        let committed_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(FileSink {
            path: path.to_owned(),
            out: BufWriter::with_capacity(256 * 1024, file),
            ino,
            committed_len,
        })
    }

    fn io_err(&self, source: io::Error) -> SinkError {
        SinkError::Io {
            target: self.path.display().to_string(),
            source,
        }
    }
}

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    let ino = file.metadata()?.ino();
    Ok((file, ino))
}

impl Sink for FileSink {
    fn send(&mut self, event: &[u8], _alert: bool) -> Result<(), SinkError> {
        self.out
            .write_all(event)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| self.io_err(e))
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        use std::os::unix::fs::MetadataExt;
        self.out.flush().map_err(|e| self.io_err(e))?;
        self.out.get_ref().sync_data().map_err(|e| self.io_err(e))?;
        self.committed_len = self
            .out
            .get_ref()
            .metadata()
            .map_err(|e| self.io_err(e))?
            .len();
        // Rotated away (renamed or deleted)? Start a new file for what comes next.
        let moved = std::fs::metadata(&self.path).map_or(true, |m| m.ino() != self.ino);
        if moved {
            let (file, ino) = open_append(&self.path).map_err(|e| self.io_err(e))?;
            self.committed_len = file.metadata().map_err(|e| self.io_err(e))?.len();
            self.out = BufWriter::with_capacity(256 * 1024, file);
            self.ino = ino;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn mark(&self) -> SinkMark {
        SinkMark {
            object: self.ino,
            offset: self.committed_len,
        }
    }

    /// Output written after the last persisted checkpoint (a crash between the data's fsync and
    /// the checkpoint's) is cut off: its lines are read and written again.
    fn recover(&mut self, mark: Option<SinkMark>) -> Result<(), SinkError> {
        let Some(mark) = mark else { return Ok(()) };
        let file = self.out.get_ref();
        let len = file.metadata().map_err(|e| self.io_err(e))?.len();
        if mark.object == self.ino && len > mark.offset {
            tracing::warn!(
                "{}: dropping the last {} bytes, written after the last checkpoint; their lines will be read again",
                self.path.display(),
                len - mark.offset
            );
            file.set_len(mark.offset).map_err(|e| self.io_err(e))?;
            file.sync_all().map_err(|e| self.io_err(e))?;
            self.committed_len = mark.offset;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sink_appends_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let mut sink = FileSink::open(&path).unwrap();
        sink.send(b"{\"a\":1}", false).unwrap();
        sink.commit().unwrap();
        std::fs::rename(&path, dir.path().join("events.ndjson.1")).unwrap();
        sink.send(b"{\"a\":2}", false).unwrap();
        sink.commit().unwrap(); // lands in the renamed file, then reopens
        sink.send(b"{\"a\":3}", false).unwrap();
        sink.commit().unwrap();
        let old = std::fs::read_to_string(dir.path().join("events.ndjson.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old, "{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(new, "{\"a\":3}\n");
    }

    #[test]
    fn recover_cuts_output_written_after_the_persisted_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let mut sink = FileSink::open(&path).unwrap();
        sink.send(b"{\"a\":1}", false).unwrap();
        sink.commit().unwrap();
        let mark = sink.mark();
        sink.send(b"{\"a\":2}", false).unwrap();
        sink.commit().unwrap(); // durable, but its checkpoint was never persisted
        drop(sink);
        let mut sink = FileSink::open(&path).unwrap();
        sink.recover(Some(mark)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        // A mark for another file (rotated away) leaves this one alone.
        sink.recover(Some(SinkMark {
            object: mark.object + 1,
            offset: 0,
        }))
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
    }
}
