//! The pipeline: chunks from the sources in, ECS events out to the sink, checkpoints advanced
//! only after the sink commits.
//!
//! ```text
//! source threads --Chunk--> [bounded channel] --> Renderer (parse, detect, ECS JSON) --> Sink
//!                                                        |                              |
//!                                                        +--- pending positions --commit-+--> Checkpoints
//! ```
//!
//! **Architecture Invariant:** a stream's checkpoint never moves past a record whose events the
//! sink has not made durable. The pipeline keeps the end positions of the chunks it has rendered
//! but not committed; it moves them into the checkpoint store only after `Sink::commit` returns
//! `Ok`. A failed commit keeps them pending and the commit is retried.
//!
//! With a sink whose commits are durable only once delivered ([`Sink::acknowledged`]: the
//! collector sink's memory buffer), the committed positions wait, each with the sink's mark,
//! until the sink reports that mark acknowledged; only then are they recorded, and persisted at
//! most every [`Sink::checkpoint_interval`] (and at a clean stop, [`Pipeline::finish`]).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use agent_core::ecs::{self, Envelope};
use agent_core::syslog::Context;
use agent_core::{LoginEvent, Parsed, Text, Timestamp, parse_line, parse_message};

use crate::sink::{Sink, SinkError, SinkMark};
use crate::source::checkpoint::Checkpoints;
use crate::source::{Chunk, JournalFields, Payload, Position, StreamKey};
use crate::timezone::Zone;

/// Fixed facts stamped on every event.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stamp {
    /// `host.hostname` for lines without a host field.
    pub hostname: Option<String>,
    /// `host.id`.
    pub host_id: Option<String>,
    /// `agent.id`.
    pub agent_id: Option<String>,
    /// `agent.version`.
    pub agent_version: Option<String>,
}

/// Counters per configured source, for `authtrail status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SourceCounters {
    /// Records read (lines, journal entries, utmp records).
    pub records: u64,
    /// Events produced.
    pub events: u64,
    /// Records from watched programs that no parser recognised, or with no syslog header.
    pub rejected: u64,
    /// Lines cut at the line-length bound.
    pub truncated: u64,
}

/// Turns chunks into rendered events. Keeps no state but the previous line of each stream (for
/// `last message repeated`) and the event sequence.
#[derive(Debug)]
pub(crate) struct Renderer {
    stamp: Stamp,
    zone: Zone,
    include_message: bool,
    previous: HashMap<StreamKey, Vec<u8>>,
    sequence: u64,
    json: String,
    /// The values of the event in `json`, recorded as it is written, when the sink wants them
    /// ([`Sink::wants_holes`]).
    holes: Option<agent_core::batch::Holes>,
    detector: Option<Box<agent_core::detect::DefaultDetector>>,
    /// The detector's answer for the current event, kept from one event to the next.
    alerts_buf: agent_core::detect::Alerts,
    /// Per source.
    pub counters: HashMap<Arc<str>, SourceCounters>,
    /// Alerts raised by the detector.
    pub alerts: u64,
    /// The working-hours rule's zone: its offset at each event's time goes to the detector.
    working_zone: Option<Zone>,
    /// (quarter hour of event time, the zone's offset then): zones change offset on a quarter
    /// hour, so one look-up per quarter hour of events is enough.
    working_offset: Option<(i64, i32)>,
}

/// One rendered event, borrowed from the renderer for the duration of the callback.
#[derive(Debug)]
pub(crate) struct Rendered<'a> {
    /// The event.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the renderer's unit tests")
    )]
    pub event: &'a LoginEvent<'a>,
    /// Its ECS JSON, one line, no newline.
    pub json: &'a [u8],
    /// Where its values sit in `json`, when the renderer records them.
    pub holes: Option<&'a agent_core::batch::Holes>,
    /// True for a detection alert (raised by the event before it), which the sink ships at the
    /// next commit.
    pub alert: bool,
}

impl Renderer {
    /// A renderer stamping `stamp` on every event; zone-less timestamps are read in `zone`.
    pub(crate) fn new(
        stamp: Stamp,
        zone: Zone,
        include_message: bool,
        first_sequence: u64,
    ) -> Self {
        Renderer {
            stamp,
            zone,
            include_message,
            previous: HashMap::new(),
            sequence: first_sequence,
            json: String::with_capacity(2048),
            holes: None,
            detector: None,
            alerts_buf: agent_core::detect::Alerts::new(),
            counters: HashMap::new(),
            alerts: 0,
            working_zone: None,
            working_offset: None,
        }
    }

    /// Records each event's holes ([`agent_core::batch::Holes`]) as it writes it, for a sink
    /// that builds compact bodies.
    pub(crate) fn record_holes(&mut self) {
        self.holes.get_or_insert_with(agent_core::batch::Holes::new);
    }

    /// The zone working hours are in (`None`: the offset the detector was configured with
    /// stays): each event's own offset is passed to the detector, so summer time needs no
    /// reload.
    pub(crate) fn set_working_zone(&mut self, zone: Option<Zone>) {
        self.working_zone = zone;
        self.working_offset = None;
    }

    /// Runs the edge detections on every event from now on.
    pub(crate) fn with_detector(mut self, config: agent_core::detect::DetectConfig) -> Self {
        self.detector = Some(Box::new(agent_core::detect::Detector::new(config)));
        self
    }

    /// The next `event.sequence` to be given out.
    pub(crate) fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The detector's memory ([`agent_core::detect::Detector::save_state`]); `None` when
    /// detections are off.
    pub(crate) fn detector_memory(&self) -> Option<Vec<u8>> {
        self.detector.as_deref().map(|d| d.state_bytes())
    }

    /// Applies a new detection configuration (`None`: detections off). What the detector has
    /// counted and learnt is kept: the new one starts with the old one's memory.
    pub(crate) fn reconfigure_detector(
        &mut self,
        config: Option<agent_core::detect::DetectConfig>,
    ) {
        let memory = self.detector_memory();
        self.detector = config.map(|c| Box::new(agent_core::detect::Detector::new(c)));
        if let (Some(d), Some(memory)) = (self.detector.as_deref_mut(), memory) {
            // Same tables and format, so it cannot be refused; if it were, the detector would
            // start empty, as it did before memories were kept.
            let _ = d.restore_state(&memory);
        }
    }

    /// Gives the detector the memory [`Renderer::detector_memory`] returned (in an earlier
    /// process); `Ok(false)` when detections are off. On error the detector starts empty.
    pub(crate) fn restore_detector_memory(
        &mut self,
        memory: &[u8],
    ) -> Result<bool, agent_core::detect::StateError> {
        match self.detector.as_deref_mut() {
            Some(d) => d.restore_state(memory).map(|()| true),
            None => Ok(false),
        }
    }

    /// Parses every record of `chunk` and calls `emit` for each event, in order.
    pub(crate) fn render<E>(
        &mut self,
        chunk: &Chunk,
        now: Timestamp,
        emit: impl FnMut(Rendered<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        // The stream's previous line is looked up and stored once per chunk, not per line.
        let mut last = None;
        let rendered = self.render_records(chunk, now, &mut last, emit);
        if let Some(line) = last {
            let prev = self.previous.entry(chunk.stream.clone()).or_default();
            prev.clear();
            prev.extend_from_slice(line);
        }
        rendered
    }

    /// [`Renderer::render`] but for the previous line: `last` is set to each line of the chunk
    /// that gave an event (not a repeat), for `last message repeated` and for the caller to keep.
    fn render_records<'c, E>(
        &mut self,
        chunk: &'c Chunk,
        now: Timestamp,
        last: &mut Option<&'c [u8]>,
        mut emit: impl FnMut(Rendered<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let ctx = Context {
            reference: now,
            utc_offset: self.zone.offset_at(now),
        };
        let provider = match chunk.payload {
            Payload::SyslogLines => "file",
            Payload::Journal => "journald",
            Payload::Utmp => "utmp",
        };
        let path_bytes: Option<Vec<u8>> = chunk
            .path
            .as_deref()
            .map(|p: &PathBuf| p.as_os_str().as_encoded_bytes().to_vec());
        let utmp_kind = chunk
            .path
            .as_deref()
            .and_then(|p| p.file_name())
            .map(|n| agent_core::utmp::UtmpFile::from_file_name(n.as_encoded_bytes()));
        let counters = self.counters.entry(chunk.source.clone()).or_default();
        for record in &chunk.records {
            let bytes = chunk.bytes(record);
            counters.records += 1;
            if record.truncated {
                counters.truncated += 1;
            }
            let mut repeat: Option<(u32, Timestamp)> = None;
            let parsed = match chunk.payload {
                Payload::SyslogLines => parse_line(bytes, &ctx),
                Payload::Journal => {
                    let fields = record.journal.as_ref();
                    journal_event(bytes, fields)
                }
                Payload::Utmp => match agent_core::utmp::parse_record(bytes) {
                    Ok(rec) => match utmp_kind.and_then(|k| agent_core::utmp::to_event(&rec, k)) {
                        Some(ev) => Parsed::Event(ev),
                        None => Parsed::Noise {
                            program: Text(b"utmp"),
                        },
                    },
                    Err(_) => Parsed::Malformed(agent_core::syslog::HeaderError::Empty),
                },
            };
            let previous_line;
            let parsed = match parsed {
                Parsed::RepeatLast { count, header } => {
                    repeat = Some((count, header.timestamp));
                    // Earlier in this chunk, else kept from an earlier chunk (copied: the
                    // renderer is borrowed again below).
                    match *last {
                        Some(prev) => parse_line(prev, &ctx),
                        None => {
                            previous_line = self.previous.get(&chunk.stream).cloned();
                            match &previous_line {
                                Some(prev) => parse_line(prev, &ctx),
                                None => Parsed::Noise { program: Text(b"") },
                            }
                        }
                    }
                }
                other => other,
            };
            let mut event = match parsed {
                Parsed::Event(ev) => ev,
                Parsed::Unrecognised { .. } | Parsed::Malformed(_) => {
                    if !bytes.trim_ascii().is_empty() {
                        counters.rejected += 1;
                    }
                    continue;
                }
                Parsed::Noise { .. } | Parsed::Foreign { .. } | Parsed::RepeatLast { .. } => {
                    continue;
                }
            };
            if let Some((count, ts)) = repeat {
                event.count = event.count.saturating_mul(count);
                event.timestamp = Some(ts);
            } else if chunk.payload == Payload::SyslogLines {
                *last = Some(bytes);
            }
            counters.events += 1;
            // Never emit what the wire contract refuses (a time out of range is the time of
            // receipt, the line's own kept beside it).
            let conformed = agent_core::wire::conform(&mut event, now);
            let envelope = Envelope {
                hostname: self.stamp.hostname.as_deref().map(Text::from),
                host_id: self.stamp.host_id.as_deref(),
                agent_id: self.stamp.agent_id.as_deref(),
                agent_version: self.stamp.agent_version.as_deref(),
                provider: Some(provider),
                sequence: Some(self.sequence),
                log_path: path_bytes.as_deref().map(Text),
                log_offset: record.offset,
                message: (self.include_message && chunk.payload != Payload::Utmp)
                    .then_some(Text(bytes)),
                original_timestamp: conformed.original_timestamp,
            };
            self.sequence += 1;
            self.json.clear();
            // Writing into a String cannot fail.
            let _ = match &mut self.holes {
                Some(holes) => holes.write_event(&mut self.json, &event, &envelope),
                None => ecs::write_event(&mut self.json, &event, &envelope),
            };
            emit(Rendered {
                event: &event,
                json: self.json.as_bytes(),
                holes: self.holes.as_ref(),
                alert: false,
            })?;
            if let Some(detector) = self.detector.as_deref_mut() {
                // The alerts cite events by their `event.sequence` (this one's is in the envelope).
                let seq = envelope.sequence.unwrap_or_default();
                if let (Some(zone), Some(ts)) = (self.working_zone, event.timestamp) {
                    let quarter = ts.secs.div_euclid(900);
                    let offset = match self.working_offset {
                        Some((q, offset)) if q == quarter => offset,
                        _ => {
                            let offset = zone.offset_at(ts);
                            self.working_offset = Some((quarter, offset));
                            offset
                        }
                    };
                    detector.set_utc_offset(offset);
                }
                detector.observe_into(&event, seq, &mut self.alerts_buf);
                for alert in &self.alerts_buf {
                    let envelope = Envelope {
                        // The alert is about the host whose log line raised it.
                        hostname: event.hostname.or(envelope.hostname),
                        sequence: Some(self.sequence),
                        log_path: None,
                        log_offset: None,
                        message: None,
                        original_timestamp: None,
                        ..envelope
                    };
                    self.sequence += 1;
                    self.alerts += 1;
                    self.json.clear();
                    let _ = ecs::write_alert(&mut self.json, alert, &envelope);
                    emit(Rendered {
                        event: &event,
                        json: self.json.as_bytes(),
                        holes: None,
                        alert: true,
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// A journald entry: the bare message plus the fields journald keeps beside it.
fn journal_event<'a>(message: &'a [u8], fields: Option<&'a JournalFields>) -> Parsed<'a> {
    let Some(f) = fields else {
        return Parsed::Malformed(agent_core::syslog::HeaderError::NoTag);
    };
    let mut parsed = parse_message(Text::from(f.program.as_str()), f.pid, message);
    if let Parsed::Event(ev) = &mut parsed {
        ev.timestamp = f.realtime_us.map(Timestamp::from_micros);
        ev.hostname = f.hostname.as_deref().map(Text::from);
    }
    parsed
}

/// Chunk end positions rendered but not yet committed, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    positions: Vec<(StreamKey, Position, Option<Arc<PathBuf>>)>,
}

impl Pending {
    /// Remembers where `chunk` ends.
    pub(crate) fn push(&mut self, chunk: &Chunk) {
        self.positions
            .push((chunk.stream.clone(), chunk.end.clone(), chunk.path.clone()));
    }

    /// True when nothing waits for a commit.
    pub(crate) fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Hands out the positions after a successful commit, latest per stream.
    pub(crate) fn take(&mut self) -> Vec<(StreamKey, Position, Option<Arc<PathBuf>>)> {
        let mut latest: Vec<(StreamKey, Position, Option<Arc<PathBuf>>)> = Vec::new();
        for (key, pos, path) in self.positions.drain(..) {
            match latest.iter_mut().find(|(k, _, _)| *k == key) {
                Some(slot) => {
                    slot.1 = pos;
                    slot.2 = path;
                }
                None => latest.push((key, pos, path)),
            }
        }
        latest
    }
}

/// Positions committed to a sink that makes them durable only on acknowledgement, waiting for
/// it: those of one or more commits whose batches end at `mark`.
#[derive(Debug)]
struct Awaiting {
    mark: SinkMark,
    positions: Vec<(StreamKey, Position, Option<Arc<PathBuf>>)>,
    /// The next `event.sequence` after those commits.
    sequence: u64,
}

/// Where the pipeline records how far each stream is durable: the checkpoint file
/// ([`Checkpoints`]) in the agent, a fake in the tests of the ordering rules.
pub(crate) trait Positions {
    /// Records `key`'s position (not yet persisted).
    fn set(&mut self, key: StreamKey, position: Position, path: Option<&Path>);
    /// Records the next `event.sequence` to give out.
    fn set_sequence(&mut self, sequence: u64);
    /// Records the sink's mark, persisted with the positions.
    fn set_sink_mark(&mut self, mark: SinkMark);
    /// The mark recorded last.
    fn sink_mark(&self) -> Option<SinkMark>;
    /// Makes what was recorded durable.
    fn persist(&mut self) -> io::Result<()>;
    /// Every stream's recorded position and path (for [`ResumePoint`]); the fakes of the
    /// ordering tests record none.
    fn recorded(&self) -> Vec<(StreamKey, Position, Option<PathBuf>)> {
        Vec::new()
    }
}

/// With a sink whose commits are durable only once acknowledged: where reading resumes after a
/// commit (every stream's position and the next event sequence), handed to the sink with the
/// commit ([`Sink::resume_point`]); after a crash the sink hands back the one of the batches
/// it had in flight ([`Sink::take_resume`]) and the pipeline reads on from there
/// ([`Pipeline::await_resume`]). JSON, versioned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct ResumePoint {
    /// [`RESUME_VERSION`].
    pub version: u32,
    /// The next `event.sequence`.
    pub sequence: u64,
    /// Every stream's position, with the path it was read through.
    pub streams: Vec<(StreamKey, Position, Option<PathBuf>)>,
}

/// The version of [`ResumePoint`]'s encoding.
pub(crate) const RESUME_VERSION: u32 = 1;

impl ResumePoint {
    /// Reads a resume point the sink kept.
    pub(crate) fn decode(bytes: &[u8]) -> Result<ResumePoint, String> {
        let point: ResumePoint =
            serde_json::from_slice(bytes).map_err(|e| format!("unreadable resume point: {e}"))?;
        if point.version != RESUME_VERSION {
            return Err(format!("resume point version {} unknown", point.version));
        }
        Ok(point)
    }

    /// `recorded` with these positions laid over it.
    pub(crate) fn over(
        &self,
        mut recorded: HashMap<StreamKey, Position>,
    ) -> HashMap<StreamKey, Position> {
        for (key, position, _) in &self.streams {
            recorded.insert(key.clone(), position.clone());
        }
        recorded
    }
}

impl Positions for Checkpoints {
    fn set(&mut self, key: StreamKey, position: Position, path: Option<&Path>) {
        Checkpoints::set(self, key, position, path);
    }
    fn set_sequence(&mut self, sequence: u64) {
        Checkpoints::set_sequence(self, sequence);
    }
    fn set_sink_mark(&mut self, mark: SinkMark) {
        Checkpoints::set_sink_mark(self, mark);
    }
    fn sink_mark(&self) -> Option<SinkMark> {
        Checkpoints::sink_mark(self)
    }
    fn persist(&mut self) -> io::Result<()> {
        Checkpoints::persist(self)
    }
    fn recorded(&self) -> Vec<(StreamKey, Position, Option<PathBuf>)> {
        self.positions_with_paths()
    }
}

/// Bytes of rendered events after which the pipeline commits, whatever else is due. It sets how
/// many commits a backlog takes (each syncs the spool directory, the checkpoint file and the
/// state directory); what the collector sink holds meanwhile is the compressed batches, about
/// 7% of it.
pub(crate) const COMMIT_BYTES: usize = 8 << 20;

/// How long the pipeline waits before retrying a failed commit (reading is paused meanwhile).
pub(crate) const COMMIT_RETRY: Duration = Duration::from_millis(500);

/// A chunk larger than this says the source reads faster than a live log is written (a
/// backlog, a burst): the pipeline then takes input as it comes instead of letting it queue
/// ([`Pipeline::quiet_until`]), or the source would wait on a full channel.
pub(crate) const QUIET_MAX_CHUNK: usize = 64 * 1024;

/// What a call to [`Pipeline::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// Nothing was waiting.
    Nothing,
    /// The sink committed; `persisted`: the checkpoints covering it are durable and the sink
    /// was released up to them (false: persisting failed, retried by the next commit).
    Done {
        /// The checkpoint file was written.
        persisted: bool,
    },
    /// The sink refused; reading pauses and the commit is retried after [`COMMIT_RETRY`].
    Failed,
}

/// The commit protocol: input in, events rendered and handed to the sink, then, in this order
/// and never otherwise, **sink commit** (the events are durable), **positions** (the chunks'
/// end positions, the event sequence and the sink's mark recorded and persisted together) and
/// **release** (the sink may send on what the persisted mark covers).
///
/// **Architecture Invariant:** a checkpoint never moves past an event the sink has not
/// committed, and a batch never leaves the agent before the checkpoint covering it is
/// persisted. A failed commit keeps everything pending (the sink keeps what it was sent) and
/// is retried; nothing is rendered twice or dropped.
///
/// When to commit (group commit): an event waits at most the sink's batch age; a detection
/// alert, or a batch the sink closed, brings the commit forward, to at once, or to
/// `commit_interval` after the last commit if that was sooner: a live log commits at most that
/// often whatever its appends, and alerts that come close together share one commit. While more
/// input is queued (a backlog) commits gather up to [`COMMIT_BYTES`] or the batch age.
pub(crate) struct Pipeline<C> {
    renderer: Renderer,
    sink: Box<dyn Sink>,
    checkpoints: C,
    commit_interval: Duration,
    pending: Pending,
    uncommitted_bytes: usize,
    events_uncommitted: u64,
    first_uncommitted: Option<Instant>,
    alert_waiting: bool,
    /// Bytes of the last chunk taken (see [`QUIET_MAX_CHUNK`]).
    last_chunk_bytes: usize,
    last_commit: Option<Instant>,
    /// The last persist failed: retry it (and the release) at the next commit.
    unpersisted: bool,
    /// The last commit failed at this time; reading is paused until a retry succeeds.
    failed_at: Option<Instant>,
    /// Why the last commit failed, while no retry has succeeded (for `authtrail status`).
    commit_error: Option<String>,
    events_committed: u64,
    commit_failures: u64,
    /// Committed positions waiting for the sink's acknowledgement, oldest first (see the
    /// module docs); at most one entry per batch the sink holds, plus one.
    awaiting: VecDeque<Awaiting>,
    /// Positions recorded on acknowledgement and not yet persisted.
    acked_unpersisted: bool,
    /// The last persist of acknowledged positions.
    acked_persisted: Option<Instant>,
    /// The last look at the sink's acknowledgements.
    acked_checked: Option<Instant>,
    /// When the pipeline was made: what [`Pipeline::next_commit`] answers for "due at once"
    /// (a time already past for any caller, never a fresh `Instant::now()`, which would
    /// always lie just after the caller's `now` and never come due).
    started: Instant,
}

impl<C> std::fmt::Debug for Pipeline<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("sink", &self.sink.describe())
            .field("pending", &self.pending)
            .field("uncommitted_bytes", &self.uncommitted_bytes)
            .field("blocked", &self.failed_at.is_some())
            .finish_non_exhaustive()
    }
}

impl<C: Positions> Pipeline<C> {
    /// A pipeline rendering with `renderer` into `sink`, recording positions in `checkpoints`.
    pub(crate) fn new(
        renderer: Renderer,
        sink: Box<dyn Sink>,
        checkpoints: C,
        commit_interval: Duration,
    ) -> Self {
        let mut renderer = renderer;
        if sink.wants_holes() {
            renderer.record_holes();
        }
        Pipeline {
            renderer,
            sink,
            checkpoints,
            commit_interval,
            pending: Pending::default(),
            uncommitted_bytes: 0,
            events_uncommitted: 0,
            first_uncommitted: None,
            alert_waiting: false,
            last_chunk_bytes: 0,
            last_commit: None,
            unpersisted: false,
            failed_at: None,
            commit_error: None,
            events_committed: 0,
            commit_failures: 0,
            awaiting: VecDeque::new(),
            acked_unpersisted: false,
            acked_persisted: None,
            acked_checked: None,
            started: Instant::now(),
        }
    }

    /// True while positions wait for the sink's acknowledgement or for their persist.
    fn awaiting_acknowledgement(&self) -> bool {
        !self.awaiting.is_empty() || self.acked_unpersisted
    }

    /// Records the positions whose batches the sink reports acknowledged, and persists them when
    /// `force`d or when the last such persist is a checkpoint interval old. `None` when the
    /// sink's commits are durable by themselves, else whether the checkpoint file was written.
    fn checkpoint_acknowledged(&mut self, now: Instant, force: bool) -> Option<bool> {
        let acked = self.sink.acknowledged()?;
        while let Some(front) = self.awaiting.front()
            && front.mark.object == acked.object
            && front.mark.offset <= acked.offset
        {
            let Some(done) = self.awaiting.pop_front() else {
                break;
            };
            for (key, position, path) in done.positions {
                self.checkpoints
                    .set(key, position, path.as_deref().map(PathBuf::as_path));
            }
            self.checkpoints.set_sequence(done.sequence);
            self.checkpoints.set_sink_mark(done.mark);
            self.acked_unpersisted = true;
        }
        self.acked_checked = Some(now);
        let due = self
            .acked_persisted
            .is_none_or(|t| now >= t + self.sink.checkpoint_interval());
        if !(self.acked_unpersisted && (force || due)) {
            return Some(false);
        }
        let persisted = self.persist_and_release();
        if persisted {
            self.acked_unpersisted = false;
            self.acked_persisted = Some(now);
        }
        Some(persisted)
    }

    /// Where reading stands after the last commit: `recorded` (the checkpoints' positions) with
    /// the positions still waiting for the sink's acknowledgement laid over them. A source
    /// restarted by a reload resumes here, so what is already in the sink is not read twice.
    pub(crate) fn committed_positions(
        &self,
        mut recorded: HashMap<StreamKey, Position>,
    ) -> HashMap<StreamKey, Position> {
        for waiting in &self.awaiting {
            for (key, position, _) in &waiting.positions {
                recorded.insert(key.clone(), position.clone());
            }
        }
        recorded
    }

    /// After a crash, with the resume point the sink kept ([`Sink::take_resume`]): the sink sends
    /// the batches before it again, and reading resumes there (start the sources from
    /// [`Pipeline::committed_positions`]); its positions are recorded and persisted once the
    /// sink acknowledged `mark`, like a commit's.
    pub(crate) fn await_resume(&mut self, mark: SinkMark, point: ResumePoint) {
        self.awaiting.push_back(Awaiting {
            mark,
            positions: point
                .streams
                .into_iter()
                .map(|(key, position, path)| (key, position, path.map(Arc::new)))
                .collect(),
            sequence: point.sequence,
        });
    }

    /// Where reading resumes after everything the sink holds, as a [`ResumePoint`]'s bytes.
    fn resume_point(&self) -> Vec<u8> {
        let mut streams: Vec<(StreamKey, Position, Option<PathBuf>)> = self.checkpoints.recorded();
        let later = self
            .awaiting
            .iter()
            .flat_map(|a| a.positions.iter())
            .chain(self.pending.positions.iter());
        let mut at: HashMap<StreamKey, usize> = streams
            .iter()
            .enumerate()
            .map(|(i, (k, _, _))| (k.clone(), i))
            .collect();
        for (key, position, path) in later {
            let entry = (key.clone(), position.clone(), path.as_deref().cloned());
            match at.get(key) {
                Some(&i) => streams[i] = entry,
                None => {
                    at.insert(key.clone(), streams.len());
                    streams.push(entry);
                }
            }
        }
        let point = ResumePoint {
            version: RESUME_VERSION,
            sequence: self.renderer.sequence(),
            streams,
        };
        // Plain data: serialising it cannot fail.
        serde_json::to_vec(&point).unwrap_or_default()
    }

    /// At a clean stop, after the last commit: lets the sink deliver what it holds (up to
    /// `wait`) and stop sending, then records and persists what it acknowledged. Does nothing
    /// for a sink whose commits are durable by themselves.
    pub(crate) fn finish(&mut self, wait: Duration) -> Commit {
        if self.sink.acknowledged().is_none() {
            return Commit::Nothing;
        }
        self.sink.stop_sending(wait);
        match self.checkpoint_acknowledged(Instant::now(), true) {
            Some(persisted) => Commit::Done { persisted },
            None => Commit::Nothing,
        }
    }

    /// Takes one chunk: parses, detects and renders its records and hands the events to the
    /// sink (not yet durable). `now` is the wall clock (for year-less timestamps), `at` the
    /// monotonic one.
    pub(crate) fn take(
        &mut self,
        chunk: &Chunk,
        now: Timestamp,
        at: Instant,
    ) -> Result<(), SinkError> {
        let mut bytes = 0usize;
        let mut events = 0u64;
        let mut alert = false;
        let sink = &mut *self.sink;
        let rendered = self.renderer.render(chunk, now, |r| {
            bytes += r.json.len() + 1;
            events += 1;
            alert |= r.alert;
            match r.holes {
                Some(holes) => sink.send_with_holes(r.json, holes, r.alert),
                None => sink.send(r.json, r.alert),
            }
        });
        self.uncommitted_bytes += bytes;
        self.events_uncommitted += events;
        self.alert_waiting |= alert;
        self.last_chunk_bytes = chunk.data.len();
        self.first_uncommitted.get_or_insert(at);
        // On error the chunk's position is not held: its lines are read again, never skipped.
        rendered?;
        self.pending.push(chunk);
        Ok(())
    }

    /// When the next commit is due (`more_input`: chunks are already queued), `None` when
    /// nothing waits for one.
    pub(crate) fn next_commit(&self, more_input: bool) -> Option<Instant> {
        if let Some(failed) = self.failed_at {
            return Some(failed + COMMIT_RETRY);
        }
        if self.unpersisted && self.pending.is_empty() {
            return Some(self.last_commit.map_or(self.started, |t| t + COMMIT_RETRY));
        }
        let Some(first) = self.first_uncommitted else {
            // Positions waiting for acknowledgements: look again once an interval, at once if
            // never looked yet (a restart that only sends again what was in flight before a
            // crash commits nothing, so only this look persists its positions).
            return self.awaiting_acknowledgement().then(|| {
                self.acked_checked
                    .map_or(self.started, |t| t + self.sink.checkpoint_interval())
            });
        };
        if self.uncommitted_bytes >= COMMIT_BYTES {
            return Some(first);
        }
        let aged = first + self.sink.max_age();
        if more_input {
            // A backlog: let batches gather (the bound is COMMIT_BYTES, or the batch age).
            return Some(aged);
        }
        if self.alert_waiting || self.sink.wants_commit(false) {
            // An alert, or a closed batch, goes at the next commit: at once, unless the last
            // commit was less than an interval ago.
            let soonest = self.last_commit.map_or(first, |t| t + self.commit_interval);
            return Some(aged.min(soonest.max(first)));
        }
        Some(aged)
    }

    /// Until when input can wait in the channel: no commit can come before then (the last one
    /// was less than `commit_interval` ago and nothing forces one), so the caller may sleep and
    /// take what came at once, waking once per commit instead of once per chunk. `None` when
    /// input should be taken as it comes.
    pub(crate) fn quiet_until(&self, now: Instant) -> Option<Instant> {
        if self.failed_at.is_some()
            || self.unpersisted
            || self.uncommitted_bytes >= COMMIT_BYTES
            || self.last_chunk_bytes > QUIET_MAX_CHUNK
        {
            return None;
        }
        let quiet = self.last_commit? + self.commit_interval;
        (now < quiet).then_some(quiet)
    }

    /// Commits when [`Pipeline::next_commit`] says it is due at `now`.
    pub(crate) fn commit_if_due(&mut self, now: Instant, more_input: bool) -> Commit {
        match self.next_commit(more_input) {
            Some(due) if due <= now => self.commit(),
            _ => Commit::Nothing,
        }
    }

    /// Commits the sink; on success records the pending positions, the event sequence and the
    /// sink's mark, persists them, and only then releases the sink up to that mark.
    pub(crate) fn commit(&mut self) -> Commit {
        if self.pending.is_empty() {
            if self.awaiting_acknowledgement() && !self.unpersisted {
                return match self.checkpoint_acknowledged(Instant::now(), false) {
                    Some(true) => Commit::Done { persisted: true },
                    _ => Commit::Nothing,
                };
            }
            if self.unpersisted {
                self.last_commit = Some(Instant::now());
                return Commit::Done {
                    persisted: self.persist_and_release(),
                };
            }
            return Commit::Nothing;
        }
        if self.sink.acknowledged().is_some() {
            let point = self.resume_point();
            self.sink.resume_point(point);
        }
        if let Err(e) = self.sink.commit() {
            self.commit_failures += 1;
            if self.failed_at.is_none() {
                warn(format_args!(
                    "{e}; reading paused and checkpoints held back until a retry succeeds"
                ));
            }
            self.failed_at = Some(Instant::now());
            self.commit_error = Some(e.to_string());
            return Commit::Failed;
        }
        let persisted = if self.sink.acknowledged().is_some() {
            // Durable only once acknowledged: the positions wait for that, with the mark.
            let (mark, sequence) = (self.sink.mark(), self.renderer.sequence());
            let positions = self.pending.take();
            match self.awaiting.back_mut() {
                Some(last) if last.mark == mark => {
                    for (key, position, path) in positions {
                        match last.positions.iter_mut().find(|(k, _, _)| *k == key) {
                            Some(slot) => {
                                slot.1 = position;
                                slot.2 = path;
                            }
                            None => last.positions.push((key, position, path)),
                        }
                    }
                    last.sequence = sequence;
                }
                _ => self.awaiting.push_back(Awaiting {
                    mark,
                    positions,
                    sequence,
                }),
            }
            self.checkpoint_acknowledged(Instant::now(), false) == Some(true)
        } else {
            for (key, position, path) in self.pending.take() {
                self.checkpoints
                    .set(key, position, path.as_deref().map(PathBuf::as_path));
            }
            self.checkpoints.set_sequence(self.renderer.sequence());
            self.checkpoints.set_sink_mark(self.sink.mark());
            self.persist_and_release()
        };
        self.events_committed += self.events_uncommitted;
        self.events_uncommitted = 0;
        self.uncommitted_bytes = 0;
        self.first_uncommitted = None;
        self.alert_waiting = false;
        self.last_commit = Some(Instant::now());
        if self.failed_at.take().is_some() {
            self.commit_error = None;
            info("sink accepts events again; reading resumes");
        }
        Commit::Done { persisted }
    }

    /// Persists the recorded positions with the sink's mark; then the sink may send on what the
    /// mark covers. A crash before the persist is undone by `Sink::recover` at the next start.
    fn persist_and_release(&mut self) -> bool {
        match self.checkpoints.persist() {
            Ok(()) => {
                self.unpersisted = false;
                if let Some(mark) = self.checkpoints.sink_mark() {
                    self.sink.release(mark);
                }
                true
            }
            Err(e) => {
                if !self.unpersisted {
                    warn(format_args!("persisting checkpoints: {e}; retrying"));
                }
                self.unpersisted = true;
                false
            }
        }
    }

    /// Takes everything already queued in `input`, then commits (before a reload, and at stop).
    pub(crate) fn drain(&mut self, input: &mut Inbox) -> Result<Commit, SinkError> {
        while let Some(chunk) = input.try_recv() {
            self.take(&chunk, wall_clock(), Instant::now())?;
        }
        Ok(self.commit())
    }

    /// True while a failed commit waits for its retry (read nothing meanwhile).
    pub(crate) fn blocked(&self) -> bool {
        self.failed_at.is_some()
    }

    /// Events committed since start.
    pub(crate) fn events_committed(&self) -> u64 {
        self.events_committed
    }

    /// Commits that failed since start.
    pub(crate) fn commit_failures(&self) -> u64 {
        self.commit_failures
    }

    /// Why commits fail, while they do (the last failure's error; `None` once one succeeds).
    pub(crate) fn commit_error(&self) -> Option<&str> {
        self.commit_error.as_deref()
    }

    /// The renderer (its counters, detector and sequence).
    pub(crate) fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// The renderer, to reconfigure its detector.
    pub(crate) fn renderer_mut(&mut self) -> &mut Renderer {
        &mut self.renderer
    }

    /// The sink.
    pub(crate) fn sink(&self) -> &dyn Sink {
        &*self.sink
    }

    /// The positions.
    pub(crate) fn checkpoints(&self) -> &C {
        &self.checkpoints
    }

    /// The positions, to record sources that start (never a position: those move only in
    /// [`Pipeline::commit`]).
    pub(crate) fn checkpoints_mut(&mut self) -> &mut C {
        &mut self.checkpoints
    }
}

/// What comes out of the pipeline's input channel.
#[derive(Debug)]
pub(crate) enum Input {
    /// Records from a source.
    Chunk(Chunk),
    /// A wake-up without input ([`wake_chunk`]: a signal came).
    Wake,
}

/// The source name of the chunk [`wake_chunk`] makes; no configured source has an empty name.
const WAKE_SOURCE: &str = "";

/// A chunk that carries nothing and only wakes the pipeline (sent by the signal thread, which
/// shares the sources' channel).
pub(crate) fn wake_chunk() -> Chunk {
    Chunk {
        source: Arc::from(WAKE_SOURCE),
        stream: StreamKey::Journal {
            source: String::new(),
        },
        path: None,
        payload: Payload::SyslogLines,
        data: Vec::new(),
        records: Vec::new(),
        end: Position::Offset(0),
    }
}

fn input(chunk: Chunk) -> Input {
    if chunk.records.is_empty() && &*chunk.source == WAKE_SOURCE {
        Input::Wake
    } else {
        Input::Chunk(chunk)
    }
}

/// The pipeline's end of the input channel, able to tell whether more input is queued (std's
/// receiver cannot peek, so one chunk may be held back here).
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: Receiver<Chunk>,
    next: Option<Chunk>,
}

impl Inbox {
    /// The receiving end of the sources' channel.
    pub(crate) fn new(rx: Receiver<Chunk>) -> Self {
        Inbox { rx, next: None }
    }

    /// Waits up to `wait` (for ever with `None`) for input.
    pub(crate) fn recv_timeout(
        &mut self,
        wait: Option<Duration>,
    ) -> Result<Input, RecvTimeoutError> {
        if let Some(chunk) = self.next.take() {
            return Ok(input(chunk));
        }
        match wait {
            Some(wait) => self.rx.recv_timeout(wait).map(input),
            None => self
                .rx
                .recv()
                .map(input)
                .map_err(|_| RecvTimeoutError::Disconnected),
        }
    }

    /// A queued chunk, if any (wake-ups are skipped).
    pub(crate) fn try_recv(&mut self) -> Option<Chunk> {
        loop {
            let chunk = self.next.take().or_else(|| self.rx.try_recv().ok())?;
            if let Input::Chunk(c) = input(chunk) {
                return Some(c);
            }
        }
    }

    /// True if a chunk is queued (it stays queued).
    pub(crate) fn has_more(&mut self) -> bool {
        if self.next.is_none() {
            self.next = self.rx.try_recv().ok();
        }
        self.next.is_some()
    }
}

/// The wall clock as agent-core wants it.
pub(crate) fn wall_clock() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos(),
    }
}

fn warn(msg: impl std::fmt::Display) {
    eprintln!("authtrail: warning: {msg}");
}

fn info(msg: impl std::fmt::Display) {
    eprintln!("authtrail: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Fingerprint, Record};

    fn chunk(stream: u64, lines: &[&str]) -> Chunk {
        let mut data = Vec::new();
        let mut records = Vec::new();
        for line in lines {
            let start = data.len() as u32;
            data.extend_from_slice(line.as_bytes());
            records.push(Record {
                start,
                end: data.len() as u32,
                offset: Some(u64::from(start)),
                truncated: false,
                journal: None,
            });
        }
        Chunk {
            source: Arc::from("test"),
            stream: StreamKey::File {
                fingerprint: Fingerprint {
                    dev: 1,
                    ino: stream,
                    head: 7,
                },
            },
            path: None,
            payload: Payload::SyslogLines,
            end: Position::Offset(data.len() as u64),
            data,
            records,
        }
    }

    /// (user, count, seconds of the timestamp) of every event rendered from `chunk`.
    fn render(r: &mut Renderer, chunk: &Chunk) -> Vec<(String, u32, i64)> {
        let mut out = Vec::new();
        let now = Timestamp::from_secs(1_795_867_200);
        r.render(chunk, now, |e| {
            let user = e.event.user.map(|u| u.to_string()).unwrap_or_default();
            let secs = e.event.timestamp.map_or(0, |t| t.secs);
            out.push((user, e.event.count, secs));
            Ok::<(), ()>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_poison_timestamp_becomes_the_receipt_time_and_keeps_the_original() {
        // `9999-12-31T23:59:59` parses, but the wire contract refuses it: the event goes out
        // at the time it was read, with the line's own time beside it.
        let mut r = Renderer::new(Stamp::default(), Zone::Fixed(0), false, 0);
        let lines = [
            "9999-12-31T23:59:59 web1 sshd[42]: Failed password for root from 203.0.113.9 \
             port 50522 ssh2",
            "2026-11-28T06:49:10 web1 sshd[42]: Failed password for bob from 203.0.113.9 \
             port 50522 ssh2",
        ];
        let now = Timestamp::from_secs(1_795_867_200);
        let mut docs = Vec::new();
        r.render(&chunk(1, &lines), now, |e| {
            docs.push(serde_json::from_slice::<serde_json::Value>(e.json).unwrap());
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["@timestamp"], "2026-11-28T12:00:00Z");
        assert_eq!(
            docs[0]["authtrail"]["original_timestamp"],
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(docs[1]["@timestamp"], "2026-11-28T06:49:10Z");
        assert!(docs[1]["authtrail"].get("original_timestamp").is_none());
    }

    #[test]
    fn last_message_repeated_repeats_the_line_before_it_in_and_across_chunks() {
        let failed = |user: &str, second: u32| {
            format!(
                "Nov 28 06:49:{second:02} web1 sshd[42]: Failed password for {user} from \
                 203.0.113.9 port 50522 ssh2"
            )
        };
        let repeated = |n: u32, second: u32| {
            format!("Nov 28 06:49:{second:02} web1 last message repeated {n} times")
        };
        let mut r = Renderer::new(Stamp::default(), Zone::Fixed(0), false, 0);
        let first = [
            failed("root", 10),
            repeated(2, 11),
            "Nov 28 06:49:12 web1 CRON[7]: noise".to_owned(),
            failed("alice", 13),
        ];
        let first: Vec<&str> = first.iter().map(String::as_str).collect();
        let t = |s: i64| 1_795_848_540 + s;
        assert_eq!(
            render(&mut r, &chunk(1, &first)),
            [
                ("root".to_owned(), 1, t(10)),
                ("root".to_owned(), 2, t(11)),
                ("alice".to_owned(), 1, t(13)),
            ]
        );
        // The next chunk of the stream repeats the last line of the one before.
        assert_eq!(
            render(&mut r, &chunk(1, &[&repeated(3, 14), &repeated(4, 15)])),
            [
                ("alice".to_owned(), 3, t(14)),
                ("alice".to_owned(), 4, t(15)),
            ]
        );
        // Another stream has no line before its first.
        assert_eq!(render(&mut r, &chunk(2, &[&repeated(5, 16)])), []);
        assert_eq!(r.sequence(), 5);
    }

    /// What the fakes saw, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Op {
        /// The sink made its first `n` events durable.
        Commit(usize),
        /// A commit was refused.
        CommitFailed,
        /// Positions persisted: (end offset of stream 1, sink mark).
        Persist(u64, u64),
        /// A persist failed.
        PersistFailed,
        /// The sink may send its first `n` events.
        Release(u64),
    }

    #[derive(Debug, Default)]
    struct World {
        ops: Vec<Op>,
        sent: Vec<Vec<u8>>,
        durable: usize,
        fail_commits: bool,
        fail_persists: bool,
        /// What the fake checkpoints hold: recorded, and persisted.
        recorded: (u64, Option<SinkMark>),
        persisted: (u64, Option<SinkMark>),
        /// Durable only on acknowledgement (the memory buffer): `Some(events acknowledged)`.
        acked: Option<usize>,
        /// The sink's `stop_sending` was called.
        stopped: bool,
        /// The resume points handed to the sink before its commits.
        resumes: Vec<Vec<u8>>,
        /// The sink's checkpoint interval (`None`: an hour).
        interval: Option<Duration>,
    }

    type Shared = std::sync::Arc<std::sync::Mutex<World>>;

    /// A sink whose mark is the number of events it made durable.
    struct FakeSink(Shared);

    impl Sink for FakeSink {
        fn send(&mut self, event: &[u8], _alert: bool) -> Result<(), SinkError> {
            self.0.lock().unwrap().sent.push(event.to_vec());
            Ok(())
        }
        fn commit(&mut self) -> Result<(), SinkError> {
            let mut w = self.0.lock().unwrap();
            if w.fail_commits {
                w.ops.push(Op::CommitFailed);
                return Err(SinkError::Io {
                    target: "fake".into(),
                    source: io::Error::other("refused by the test"),
                });
            }
            w.durable = w.sent.len();
            let n = w.durable;
            w.ops.push(Op::Commit(n));
            Ok(())
        }
        fn mark(&self) -> SinkMark {
            SinkMark {
                object: 1,
                offset: self.0.lock().unwrap().durable as u64,
            }
        }
        fn release(&mut self, mark: SinkMark) {
            self.0.lock().unwrap().ops.push(Op::Release(mark.offset));
        }
        fn acknowledged(&self) -> Option<SinkMark> {
            let acked = self.0.lock().unwrap().acked?;
            Some(SinkMark {
                object: 1,
                offset: acked as u64,
            })
        }
        fn checkpoint_interval(&self) -> Duration {
            self.0
                .lock()
                .unwrap()
                .interval
                .unwrap_or(Duration::from_secs(3600))
        }
        fn resume_point(&mut self, point: Vec<u8>) {
            self.0.lock().unwrap().resumes.push(point);
        }
        fn stop_sending(&mut self, _wait: Duration) {
            let mut w = self.0.lock().unwrap();
            w.stopped = true;
            // What was in flight is acknowledged before the senders stop.
            w.acked = Some(w.durable);
        }
        fn describe(&self) -> String {
            "fake".into()
        }
    }

    struct FakeCheckpoints(Shared);

    impl Positions for FakeCheckpoints {
        fn set(&mut self, _key: StreamKey, position: Position, _path: Option<&Path>) {
            if let Position::Offset(o) = position {
                self.0.lock().unwrap().recorded.0 = o;
            }
        }
        fn set_sequence(&mut self, _sequence: u64) {}
        fn set_sink_mark(&mut self, mark: SinkMark) {
            self.0.lock().unwrap().recorded.1 = Some(mark);
        }
        fn sink_mark(&self) -> Option<SinkMark> {
            self.0.lock().unwrap().recorded.1
        }
        fn persist(&mut self) -> io::Result<()> {
            let mut w = self.0.lock().unwrap();
            if w.fail_persists {
                w.ops.push(Op::PersistFailed);
                return Err(io::Error::other("refused by the test"));
            }
            w.persisted = w.recorded;
            let (o, m) = w.persisted;
            w.ops.push(Op::Persist(o, m.map_or(0, |m| m.offset)));
            Ok(())
        }
    }

    fn failed_password(i: usize) -> String {
        format!(
            "Nov 28 06:49:10 web1 sshd[42]: Failed password for user{i} from 203.0.113.{} port \
             50522 ssh2",
            i % 250
        )
    }

    /// Chunk `n` of stream 1: lines `10 * n .. 10 * n + 10`, ending at offset `10 * (n + 1)`.
    fn live_chunk(n: usize) -> Chunk {
        let lines: Vec<String> = (10 * n..10 * n + 10).map(failed_password).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let mut c = chunk(1, &lines);
        c.end = Position::Offset(10 * (n as u64 + 1));
        c
    }

    fn pipeline(world: &Shared) -> Pipeline<FakeCheckpoints> {
        pipeline_with(
            world,
            Renderer::new(Stamp::default(), Zone::Fixed(0), false, 0),
        )
    }

    fn pipeline_with(world: &Shared, renderer: Renderer) -> Pipeline<FakeCheckpoints> {
        Pipeline::new(
            renderer,
            Box::new(FakeSink(world.clone())),
            FakeCheckpoints(world.clone()),
            Duration::from_millis(250),
        )
    }

    /// The rules, checked over the whole history: a persisted position covers only events
    /// committed before it (10 events per 10 offsets), and a release never goes past the mark
    /// persisted before it.
    fn check_ordering(ops: &[Op]) {
        let mut durable = 0usize;
        let mut persisted_mark = 0u64;
        for op in ops {
            match *op {
                Op::Commit(n) => durable = n,
                Op::Persist(offset, mark) => {
                    assert!(
                        offset as usize <= durable,
                        "checkpoint at {offset} past the {durable} committed events: {ops:?}"
                    );
                    assert!(mark as usize <= durable, "{ops:?}");
                    persisted_mark = mark;
                }
                Op::Release(mark) => assert!(
                    mark <= persisted_mark,
                    "released {mark} with {persisted_mark} persisted: {ops:?}"
                ),
                Op::CommitFailed | Op::PersistFailed => {}
            }
        }
    }

    #[test]
    fn with_a_memory_buffer_positions_move_only_as_far_as_the_collector_acknowledged() {
        let world = Shared::default();
        world.lock().unwrap().acked = Some(0);
        let mut p = pipeline(&world);
        let t = Timestamp::from_secs(1_795_867_200);
        let persisted = |w: &Shared| w.lock().unwrap().persisted.0;
        p.take(&live_chunk(0), t, Instant::now()).unwrap();
        // Committed (queued in the ring), not acknowledged: no position moves.
        assert_eq!(p.commit(), Commit::Done { persisted: false });
        p.take(&live_chunk(1), t, Instant::now()).unwrap();
        assert_eq!(p.commit(), Commit::Done { persisted: false });
        assert_eq!(persisted(&world), 0);
        // A reloaded source resumes after what the sink already holds, not at the checkpoint.
        let resume = p.committed_positions(HashMap::new());
        assert_eq!(resume.values().collect::<Vec<_>>(), [&Position::Offset(20)]);
        assert_eq!(world.lock().unwrap().recorded.0, 0);
        // Reading goes on meanwhile (nothing blocks), and a commit is still due for the wait.
        assert!(!p.blocked());
        assert!(p.next_commit(false).is_some());
        // The collector takes the first batch: its positions are persisted (the first time at
        // once), not the second's.
        world.lock().unwrap().acked = Some(10);
        assert_eq!(p.commit(), Commit::Done { persisted: true });
        assert_eq!(persisted(&world), 10);
        // The second is acknowledged too, but a persist is not due for an interval: recorded,
        // not written (no write per batch).
        world.lock().unwrap().acked = Some(20);
        assert_eq!(p.commit(), Commit::Nothing);
        assert_eq!(world.lock().unwrap().recorded.0, 20);
        assert_eq!(persisted(&world), 10);
        let due = p.next_commit(false).unwrap();
        assert!(due > Instant::now() + Duration::from_secs(3000), "{due:?}");
        // A clean stop lets the sink deliver, stops it, and persists what it acknowledged.
        p.take(&live_chunk(2), t, Instant::now()).unwrap();
        assert_eq!(p.commit(), Commit::Done { persisted: false });
        assert_eq!(p.finish(Duration::ZERO), Commit::Done { persisted: true });
        let w = world.lock().unwrap();
        assert!(w.stopped);
        assert_eq!(w.persisted.0, 30);
        check_ordering(&w.ops);
        drop(w);
        assert_eq!(p.next_commit(false), None, "nothing waits: no wake-up");
        assert!(p.committed_positions(HashMap::new()).is_empty());
    }

    /// A pipeline whose sink is durable only on acknowledgement (none yet), with chunks
    /// `0..chunks` of stream 1 taken and committed one by one.
    fn memory_pipeline(world: &Shared, chunks: usize) -> Pipeline<FakeCheckpoints> {
        world.lock().unwrap().acked = Some(0);
        let mut p = pipeline(world);
        let t = Timestamp::from_secs(1_795_867_200);
        for n in 0..chunks {
            p.take(&live_chunk(n), t, Instant::now()).unwrap();
            p.commit();
        }
        p
    }

    #[test]
    fn with_a_memory_buffer_each_commit_says_where_reading_resumes_and_a_restart_resumes_there() {
        let world = Shared::default();
        let p = memory_pipeline(&world, 2);
        // Before each commit the sink is told where reading resumes after it: every stream's
        // position (the waiting ones laid over the recorded) and the next event sequence.
        let points: Vec<ResumePoint> = world
            .lock()
            .unwrap()
            .resumes
            .iter()
            .map(|b| ResumePoint::decode(b).unwrap())
            .collect();
        let ends: Vec<(Position, u64)> = points
            .iter()
            .map(|p| (p.streams[0].1.clone(), p.sequence))
            .collect();
        assert_eq!(
            ends,
            [(Position::Offset(10), 10), (Position::Offset(20), 20)]
        );
        drop(p);

        // A crash; the sink kept the second point with the batches it had in flight (sent again
        // first, up to mark 20). Reading resumes there, but nothing is persisted before the sink
        // acknowledged the mark.
        let world = Shared::default();
        let mut p = memory_pipeline(&world, 0);
        let point = points[1].clone();
        let resume_at = point.over(HashMap::new());
        p.await_resume(
            SinkMark {
                object: 1,
                offset: 20,
            },
            point,
        );
        assert_eq!(p.committed_positions(HashMap::new()), resume_at);
        assert_eq!(p.commit(), Commit::Nothing);
        assert_eq!(world.lock().unwrap().persisted.0, 0);
        world.lock().unwrap().acked = Some(20);
        assert_eq!(p.commit(), Commit::Done { persisted: true });
        assert_eq!(world.lock().unwrap().persisted.0, 20);
    }

    /// Drives `p` as the run loop does while no input comes, for `time`: commits when
    /// [`Pipeline::next_commit`] says one is due, else sleeps until then. How often it woke.
    fn idle(p: &mut Pipeline<FakeCheckpoints>, time: Duration) -> usize {
        let end = Instant::now() + time;
        let mut wakes = 0;
        while Instant::now() < end {
            wakes += 1;
            p.commit_if_due(Instant::now(), false);
            let until = p.next_commit(false).map_or(end, |due| due.min(end));
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
        wakes
    }

    #[test]
    fn with_a_memory_buffer_a_restart_with_nothing_to_read_persists_once_its_resent_batches_are_acknowledged()
     {
        // A restart after a crash: the sink sends again the batches noted in flight (up to
        // mark 20), reading resumes after them, and the log holds nothing more. No commit
        // ever happens in this process; the positions must still be persisted once the mark
        // is acknowledged, without the run loop spinning meanwhile.
        let world = Shared::default();
        let mut p = memory_pipeline(&world, 0);
        world.lock().unwrap().interval = Some(Duration::from_millis(100));
        let key = chunk(1, &[]).stream;
        p.await_resume(
            SinkMark {
                object: 1,
                offset: 20,
            },
            ResumePoint {
                version: RESUME_VERSION,
                sequence: 20,
                streams: vec![(key, Position::Offset(20), None)],
            },
        );
        let wakes = idle(&mut p, Duration::from_millis(300));
        assert_eq!(
            world.lock().unwrap().persisted,
            (0, None),
            "not acknowledged yet"
        );
        assert!(
            wakes <= 10,
            "{wakes} wake-ups in 300 ms: the run loop spins"
        );

        // Acknowledged, but the checkpoint file cannot be written: retried, not spun on.
        world.lock().unwrap().acked = Some(20);
        world.lock().unwrap().fail_persists = true;
        let wakes = idle(&mut p, Duration::from_millis(300));
        assert_eq!(world.lock().unwrap().persisted, (0, None));
        assert!(world.lock().unwrap().ops.contains(&Op::PersistFailed));
        assert!(
            wakes <= 10,
            "{wakes} wake-ups in 300 ms: the run loop spins"
        );

        world.lock().unwrap().fail_persists = false;
        let wakes = idle(&mut p, Duration::from_millis(1000));
        let mark = SinkMark {
            object: 1,
            offset: 20,
        };
        assert_eq!(world.lock().unwrap().persisted, (20, Some(mark)));
        assert!(wakes <= 30, "{wakes} wake-ups in 1 s: the run loop spins");
        // Nothing waits any more: the run loop sleeps until input comes.
        assert_eq!(p.next_commit(false), None);
    }

    #[test]
    fn with_a_memory_buffer_a_noise_only_commit_waits_for_the_batch_before_it() {
        let world = Shared::default();
        let mut p = memory_pipeline(&world, 1);
        let t = Timestamp::from_secs(1_795_867_200);
        // A chunk of noise: no event, the sink's mark does not move.
        let mut noise = chunk(1, &["Nov 28 06:49:12 web1 CRON[7]: noise"]);
        noise.end = Position::Offset(15);
        p.take(&noise, t, Instant::now()).unwrap();
        p.commit();
        assert_eq!(world.lock().unwrap().recorded.0, 0);
        world.lock().unwrap().acked = Some(10);
        assert_eq!(p.commit(), Commit::Done { persisted: true });
        assert_eq!(world.lock().unwrap().persisted.0, 15);
    }

    #[test]
    fn commit_then_positions_then_release_in_that_order() {
        let world = Shared::default();
        let mut p = pipeline(&world);
        let t = Timestamp::from_secs(1_795_867_200);
        p.take(&live_chunk(0), t, Instant::now()).unwrap();
        // Nothing is recorded, persisted or released before the commit.
        assert_eq!(world.lock().unwrap().ops, []);
        assert_eq!(world.lock().unwrap().persisted, (0, None));
        assert_eq!(p.commit(), Commit::Done { persisted: true });
        let mark = SinkMark {
            object: 1,
            offset: 10,
        };
        let w = world.lock().unwrap();
        assert_eq!(
            w.ops,
            [Op::Commit(10), Op::Persist(10, 10), Op::Release(10)]
        );
        assert_eq!(w.persisted, (10, Some(mark)));
        drop(w);
        assert_eq!(p.events_committed(), 10);
        assert_eq!(p.commit(), Commit::Nothing);
    }

    #[test]
    fn a_failed_commit_holds_positions_back_and_its_retry_loses_and_repeats_nothing() {
        let world = Shared::default();
        let mut p = pipeline(&world);
        let t = Timestamp::from_secs(1_795_867_200);
        p.take(&live_chunk(0), t, Instant::now()).unwrap();
        p.commit();
        world.lock().unwrap().fail_commits = true;
        p.take(&live_chunk(1), t, Instant::now()).unwrap();
        assert_eq!(p.commit(), Commit::Failed);
        assert!(p.blocked());
        // The checkpoint stays where the last good commit left it; nothing more is released.
        assert_eq!(world.lock().unwrap().persisted.0, 10);
        let retry = p.next_commit(false).unwrap();
        assert!(retry >= Instant::now() + COMMIT_RETRY - Duration::from_millis(100));
        assert_eq!(p.commit(), Commit::Failed);
        assert_eq!(world.lock().unwrap().persisted.0, 10);
        assert!(
            p.commit_error().is_some(),
            "the failure's reason is kept for the status"
        );
        world.lock().unwrap().fail_commits = false;
        assert_eq!(p.commit(), Commit::Done { persisted: true });
        assert!(!p.blocked());
        assert_eq!(
            p.commit_error(),
            None,
            "cleared by the commit that succeeded"
        );
        p.take(&live_chunk(2), t, Instant::now()).unwrap();
        p.commit();
        let w = world.lock().unwrap();
        check_ordering(&w.ops);
        assert_eq!(w.persisted.0, 30);
        assert_eq!(w.ops.last(), Some(&Op::Release(30)));
        // Every event reached the sink once, in order.
        let users: Vec<String> = w
            .sent
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_slice(e).unwrap();
                v["user"]["name"].as_str().unwrap().to_owned()
            })
            .collect();
        let expected: Vec<String> = (0..30).map(|i| format!("user{i}")).collect();
        assert_eq!(users, expected);
        drop(w);
        assert_eq!(p.events_committed(), 30);
        assert_eq!(p.commit_failures(), 2);
    }

    #[test]
    fn no_release_before_its_checkpoint_is_persisted() {
        let world = Shared::default();
        let mut p = pipeline(&world);
        let t = Timestamp::from_secs(1_795_867_200);
        world.lock().unwrap().fail_persists = true;
        p.take(&live_chunk(0), t, Instant::now()).unwrap();
        assert_eq!(p.commit(), Commit::Done { persisted: false });
        assert_eq!(
            world.lock().unwrap().ops,
            [Op::Commit(10), Op::PersistFailed]
        );
        // The persist is retried without new input; only then is the sink released.
        assert!(p.next_commit(false).is_some());
        assert_eq!(p.commit(), Commit::Done { persisted: false });
        world.lock().unwrap().fail_persists = false;
        assert_eq!(p.commit(), Commit::Done { persisted: true });
        let w = world.lock().unwrap();
        assert_eq!(
            w.ops,
            [
                Op::Commit(10),
                Op::PersistFailed,
                Op::PersistFailed,
                Op::Persist(10, 10),
                Op::Release(10)
            ]
        );
        check_ordering(&w.ops);
    }

    #[test]
    fn many_chunks_with_failures_at_random_keep_the_rules() {
        let world = Shared::default();
        let mut p = pipeline(&world);
        let t = Timestamp::from_secs(1_795_867_200);
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut n = 0;
        for _ in 0..200 {
            // Reading pauses while a commit is refused.
            if !p.blocked() {
                p.take(&live_chunk(n), t, Instant::now()).unwrap();
                n += 1;
            }
            {
                let mut w = world.lock().unwrap();
                w.fail_commits = next() % 4 == 0;
                w.fail_persists = next() % 5 == 0;
            }
            if next() % 2 == 0 {
                p.commit();
            }
        }
        {
            let mut w = world.lock().unwrap();
            w.fail_commits = false;
            w.fail_persists = false;
        }
        p.commit();
        p.commit();
        let w = world.lock().unwrap();
        check_ordering(&w.ops);
        assert_eq!(w.persisted.0 as usize, w.sent.len());
        assert_eq!(w.sent.len(), 10 * n);
        assert_eq!(w.durable, w.sent.len());
    }

    /// The working-hours rule reads each login's time in the offset in force at that time (a
    /// change to summer time needs no reload): 06:00 UTC on a Monday is 08:00 at +02:00, in
    /// working hours (07:00-20:00), and outside them at UTC.
    #[test]
    fn working_hours_follow_the_zone_offset_at_each_event() {
        let line = "2026-11-02T06:00:00Z web1 sshd[42]: Accepted publickey for alice from \
                    10.0.0.2 port 50522 ssh2";
        let mut config = agent_core::detect::DetectConfig::default();
        config.off_hours.enabled = true;
        let alerts = |zone: Option<Zone>| {
            let world = Shared::default();
            let mut renderer =
                Renderer::new(Stamp::default(), Zone::Fixed(0), false, 0).with_detector(config);
            renderer.set_working_zone(zone);
            let mut p = pipeline_with(&world, renderer);
            p.take(
                &chunk(1, &[line]),
                Timestamp::from_secs(1_795_867_200),
                Instant::now(),
            )
            .unwrap();
            p.renderer().alerts
        };
        assert_eq!(alerts(None), 1);
        assert_eq!(alerts(Some(Zone::Fixed(7200))), 0);
        assert_eq!(alerts(Some(Zone::Fixed(0))), 1);
    }

    #[test]
    fn a_live_log_commits_at_the_batch_age_and_an_alert_at_once_but_not_twice_per_interval() {
        let world = Shared::default();
        let renderer = Renderer::new(Stamp::default(), Zone::Fixed(0), false, 0)
            .with_detector(agent_core::detect::DetectConfig::default());
        let mut p = pipeline_with(&world, renderer);
        let t = Timestamp::from_secs(1_795_867_200);
        let t0 = Instant::now();
        p.take(&live_chunk(0), t, t0).unwrap();
        // More appends share the commit, due at the batch age (the fake sink's: 500 ms).
        p.take(&live_chunk(1), t, t0 + Duration::from_millis(100))
            .unwrap();
        assert_eq!(p.next_commit(false), Some(t0 + Duration::from_millis(500)));
        assert_eq!(
            p.commit_if_due(t0 + Duration::from_millis(400), false),
            Commit::Nothing
        );
        assert!(matches!(
            p.commit_if_due(t0 + Duration::from_millis(500), false),
            Commit::Done { .. }
        ));
        assert_eq!(world.lock().unwrap().ops.len(), 3);
        // Ten failures from one address raise a brute-force alert.
        let brute = |n: u64| {
            let lines: Vec<String> = (0..10)
                .map(|i| {
                    format!(
                        "Nov 28 06:49:{i:02} web1 sshd[42]: Failed password for root from \
                         198.51.100.{n} port 50522 ssh2"
                    )
                })
                .collect();
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let mut c = chunk(1, &lines);
            c.end = Position::Offset(1000 + n);
            c
        };
        let at = Instant::now();
        p.take(&brute(1), t, at).unwrap();
        assert_eq!(p.renderer().alerts, 1);
        // The last commit was a while ago: the alert is due an interval after it at most.
        let due = p.next_commit(false).unwrap();
        assert!(
            due <= at.max(t0 + Duration::from_millis(750)),
            "{due:?} {at:?}"
        );
        assert!(matches!(p.commit(), Commit::Done { .. }));
        // A second alert right after waits for the interval: one commit for both, not two.
        let at = Instant::now();
        p.take(&brute(2), t, at).unwrap();
        assert_eq!(p.renderer().alerts, 2);
        let due = p.next_commit(false).unwrap();
        assert!(due >= at + Duration::from_millis(200), "{due:?} {at:?}");
        assert!(due <= at + Duration::from_millis(250), "{due:?} {at:?}");
        // With input queued, alerts wait for the queue.
        assert_eq!(p.next_commit(true), Some(at + Duration::from_millis(500)));
        // Until the interval is over input may wait: no commit can come sooner.
        let quiet = p.quiet_until(Instant::now()).unwrap();
        assert!(quiet <= due && quiet + Duration::from_millis(5) >= due);
        assert_eq!(p.quiet_until(quiet), None);
        // A big chunk (a backlog): input is taken as it comes.
        let mut big = brute(3);
        big.data.resize(QUIET_MAX_CHUNK + 1, b'\n');
        p.take(&big, t, Instant::now()).unwrap();
        p.commit();
        assert_eq!(p.quiet_until(Instant::now()), None);
    }
}
