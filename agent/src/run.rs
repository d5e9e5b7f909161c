//! `authtrail run`: the service. Sources on their own threads, the [`Pipeline`] on this one,
//! signals on a thread that wakes it; nothing here wakes on a timer while nothing happens.
//!
//! Signals: SIGTERM and SIGINT stop the agent gracefully (sources stop, what was read is rendered
//! and committed, checkpoints are persisted, exit 0); SIGHUP reloads the configuration: sources
//! that were added start, sources that were removed stop, changed sources restart from their
//! checkpoints; no position is lost; a changed `[detect]` applies at once, keeping what the
//! detector has counted and learnt. Other settings apply at the next start, and a reload that
//! changes them says so. A status file (`status.json` in the state dir) is rewritten for
//! `authtrail status` when something changed, at most every second (and within 100 ms of a
//! sink's backlog being gone), and once a minute otherwise.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::config::{Config, SinkConfig, SourceConfig};
use crate::pipeline::{
    COMMIT_RETRY, Commit, Inbox, Input, Pipeline, Renderer, ResumePoint, SourceCounters, Stamp,
    wake_chunk, wall_clock,
};
use crate::progress::{self, Progress, Sample};
use crate::sink::{FileSink, Sink, StdoutSink};
use crate::source::checkpoint::{self, Checkpoints, LastSeen, Live};
use crate::source::file::{FileSource, FileStatus, Waker};
use crate::source::journald::{JournaldSource, JournaldStatus};
use crate::source::utmp::{UtmpSource, UtmpStatus};
use crate::source::{Chunk, Fingerprint, Position, StreamKey};

/// Chunks in flight between the sources and the pipeline. With chunks of at most 256 KiB this
/// bounds the memory the backlog can take at 2 MiB, whatever the size of the backlog. (16 gave
/// 19.5 MiB peak RSS on a 1M-line backlog, 8 gives 14.2 MiB at about the same CPU time.)
pub(crate) const CHANNEL_CHUNKS: usize = 8;

/// How often the status file is rewritten at most while something happens.
pub(crate) const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// How often the run loop looks whether the sink's backlog is gone, while it has one (so
/// `authtrail status` shows within this long that it is gone).
pub(crate) const BUSY_WAKE: Duration = Duration::from_millis(100);

/// How often the status file is rewritten while nothing happens (its `updated` time), the run
/// loop's only timer when idle.
pub(crate) const STATUS_REFRESH: Duration = STATUS_REWRITE_MAX;

/// A running agent rewrites its status file at least this often, changed or not: a file older
/// than this (and [`STATUS_INTERVAL`]) belongs to an agent that stopped or cannot write.
pub(crate) const STATUS_REWRITE_MAX: Duration = Duration::from_secs(60);

/// How often the run loop marks the live streams' checkpoints as seen and forgets the others
/// ([`expire_checkpoints`]), on wake-ups it has anyway (at least one per [`STATUS_REFRESH`]).
pub(crate) const EXPIRE_INTERVAL: Duration = Duration::from_secs(60);

/// The status file's name in the state dir.
pub(crate) const STATUS_FILE: &str = "status.json";

/// Options of `authtrail run`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file.
    pub config: PathBuf,
}

/// What `authtrail status` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct StatusReport {
    /// The agent's pid.
    pub pid: u32,
    /// `agent.id`.
    pub agent_id: String,
    /// When this file was written (RFC 3339).
    pub updated: String,
    /// The longest time between two rewrites of this file while the agent runs, in seconds
    /// ([`STATUS_REWRITE_MAX`]).
    #[serde(default)]
    pub refresh_secs: u64,
    /// The sink.
    pub sink: String,
    /// Events committed to the sink since start.
    pub events_committed: u64,
    /// Commits that failed since start (retried).
    pub commit_failures: u64,
    /// Why commits fail, while they do: reading is paused and checkpoints held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_error: Option<String>,
    /// Alerts raised by the detections since start.
    #[serde(default)]
    pub alerts: u64,
    /// The shipping sink's counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<crate::sink::SinkReport>,
    /// Each source.
    pub sources: Vec<SourceReport>,
}

/// One source in the status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SourceReport {
    /// Its name.
    pub name: String,
    /// `file`, `journald` or `utmp`.
    pub kind: String,
    /// What the pipeline counted.
    pub counters: SourceCounters,
    /// The streams it follows.
    pub streams: Vec<StreamReport>,
    /// Bytes of its files lost before they were read (truncated with no copy the globs
    /// match, or truncated or gone while the agent was stopped); their lines cannot be
    /// counted any more.
    #[serde(default)]
    pub lost_bytes: u64,
}

/// One followed stream (a file or a journal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct StreamReport {
    /// The path, for files.
    pub path: Option<String>,
    /// Bytes read (files).
    pub offset: Option<u64>,
    /// File size at the last look.
    pub size: Option<u64>,
    /// `size - offset`.
    pub lag_bytes: Option<u64>,
    /// The journal cursor read up to.
    pub cursor: Option<String>,
}

enum StatusHandle {
    File(Arc<FileStatus>),
    Journald(Arc<JournaldStatus>),
    Utmp(Arc<UtmpStatus>),
}

struct Running {
    config: SourceConfig,
    stop: Arc<AtomicBool>,
    /// Wakes a file or utmp source sleeping on its events (journald looks at `stop` on its own).
    waker: Option<Waker>,
    thread: JoinHandle<()>,
    status: StatusHandle,
}

impl Running {
    /// Asks the source to stop (it finishes on its thread).
    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = &self.waker {
            w.wake();
        }
    }
}

/// Starts a source thread.
fn start_source(
    name: &str,
    config: &SourceConfig,
    start: HashMap<StreamKey, Position>,
    last_seen: HashMap<Fingerprint, LastSeen>,
    first_start: bool,
    max_line: usize,
    tx: SyncSender<Chunk>,
) -> anyhow::Result<Running> {
    let stop = Arc::new(AtomicBool::new(false));
    let name: Arc<str> = Arc::from(name);
    let thread_name = format!("source-{name}");
    let stop2 = stop.clone();
    let mut waker = None;
    let (status, spawn): (StatusHandle, Box<dyn FnOnce() + Send>) = match config {
        SourceConfig::File(c) => {
            let src =
                FileSource::new(c, name, start, max_line, first_start).with_last_seen(last_seen);
            waker = Some(src.waker());
            (
                StatusHandle::File(src.status()),
                Box::new(move || src.run(tx, stop2)),
            )
        }
        SourceConfig::Journald(c) => {
            let src = JournaldSource::new(c, name, start, first_start).with_max_line(max_line);
            (
                StatusHandle::Journald(src.status()),
                Box::new(move || src.run(tx, stop2)),
            )
        }
        SourceConfig::Audit(c) => {
            let src = FileSource::new(&c.as_file(), name, start, max_line, first_start)
                .with_last_seen(last_seen);
            waker = Some(src.waker());
            (
                StatusHandle::File(src.status()),
                Box::new(move || src.run(tx, stop2)),
            )
        }
        SourceConfig::Utmp(c) => {
            let src = UtmpSource::new(c, name, start, first_start).with_last_seen(last_seen);
            waker = Some(src.waker());
            (
                StatusHandle::Utmp(src.status()),
                Box::new(move || src.run(tx, stop2)),
            )
        }
    };
    let thread = std::thread::Builder::new()
        .name(thread_name)
        .spawn(spawn)
        .context("starting a source thread")?;
    Ok(Running {
        config: config.clone(),
        stop,
        waker,
        thread,
        status,
    })
}

/// The configured sink. The collector sink also needs the state dir (its spool and batch
/// sequence), the agent id (`Authtrail-Agent-Id`), the host facts (its heartbeats) and the mark
/// persisted with the checkpoints (it recovers its spool before its shipper starts).
fn open_sink(
    config: &Config,
    agent_id: uuid::Uuid,
    facts: &crate::host::HostFacts,
    mark: Option<crate::sink::SinkMark>,
) -> anyhow::Result<Box<dyn Sink>> {
    Ok(match &config.sink {
        SinkConfig::Stdout => Box::new(StdoutSink::new()),
        SinkConfig::File { path } => {
            let mut sink = FileSink::open(path)?;
            sink.recover(mark)
                .context("cutting the sink back to the last checkpoint")?;
            Box::new(sink)
        }
        SinkConfig::Collector(c) | SinkConfig::Otlp(c) => {
            let mut facts = facts.clone();
            if config.hostname.is_some() {
                facts.hostname.clone_from(&config.hostname);
            }
            let otlp = matches!(config.sink, SinkConfig::Otlp(_));
            let wire = if otlp {
                crate::ship::Wire::Otlp(c.protocol.unwrap_or_default())
            } else {
                crate::ship::Wire::Collector
            };
            let sink = crate::ship::CollectorSink::open_recovered_as(
                c,
                wire,
                &config.state_dir,
                &agent_id.to_string(),
                facts,
                mark,
            )
            .with_context(|| {
                format!(
                    "starting the {} sink for {}",
                    if otlp { "otlp" } else { "collector" },
                    c.url.as_ref().map_or("(no url)", |u| u.as_str())
                )
            })?;
            Box::new(sink)
        }
    })
}

fn warn(msg: impl std::fmt::Display) {
    tracing::warn!("{msg}");
}

fn info(msg: impl std::fmt::Display) {
    tracing::info!("{msg}");
}

fn load(path: &Path) -> anyhow::Result<(Config, Option<String>)> {
    Config::load_effective(path, Path::new("/")).map_err(|errors| {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::Error::new(agent_core::exit::UsageError(text.join("\n")))
    })
}

/// Runs the agent until SIGTERM/SIGINT. Returns after a clean stop.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    let (config, why) = load(&opts.config)?;
    if let Some(why) = why {
        info(format_args!("no [[source]] configured: {why}"));
    }
    let zone = config.zone();
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state dir {}", config.state_dir.display()))?;
    let agent_id = crate::host::agent_id(&config.state_dir)
        .with_context(|| format!("reading the agent id in {}", config.state_dir.display()))?;
    let facts = crate::host::HostFacts::collect();
    let (mut checkpoints, warning) = Checkpoints::load(&config.state_dir);
    if let Some(w) = warning {
        warn(w);
    }
    // Which sources start for the first time (their `read-from` applies), recorded before the
    // checkpoint file is first written below, so that a crash cannot make them fresh again.
    let sources = config.named_sources();
    let names: Vec<&str> = sources.iter().map(|(name, _)| name.as_str()).collect();
    let fresh: Vec<bool> = checkpoints
        .start_sources(&names)
        .into_iter()
        .map(|(_, fresh)| fresh)
        .collect();

    let terminate = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));

    let mut sink = open_sink(&config, agent_id, &facts, checkpoints.sink_mark())?;
    // The memory buffer after a crash: where reading resumes once the batches it had in flight
    // are sent again (ahead of the persisted positions; recorded when acknowledged).
    let resume = sink
        .take_resume()
        .and_then(|(mark, bytes)| match ResumePoint::decode(&bytes) {
            Ok(point) => Some((mark, point)),
            Err(e) => {
                warn(format_args!(
                    "{e}; reading resumes at the persisted checkpoints (what the collector took \
                     since then is stored again)"
                ));
                None
            }
        });
    // Write the checkpoint file at once, so a crash before the first commit is not taken for a
    // first start (which would apply `read-from = end` again). It carries the sink's mark from the
    // start: what the sink holds beyond it after a crash is discarded and read again.
    if checkpoints.sink_mark().is_none() {
        checkpoints.set_sink_mark(sink.mark());
    }
    checkpoints
        .persist()
        .context("writing the checkpoint file")?;
    let stamp = Stamp {
        hostname: config.hostname.clone().or(facts.hostname.clone()),
        host_id: facts.host_id.clone(),
        agent_id: Some(agent_id.to_string()),
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
    };
    let first_sequence = resume
        .as_ref()
        .map_or(0, |(_, p)| p.sequence)
        .max(checkpoints.sequence());
    let mut renderer = Renderer::new(stamp, zone, config.include_message, first_sequence);
    if config.detect.enabled {
        renderer = renderer.with_detector(config.detect.to_detect_config(detect_seed(agent_id)));
        renderer.set_working_zone(config.detect.working_zone());
        restore_memory(&config.state_dir, checkpoints.sequence(), &mut renderer);
    }
    let (tx, rx) = mpsc::sync_channel::<Chunk>(CHANNEL_CHUNKS);
    let mut rx = Inbox::new(rx);
    watch_signals(&terminate, &reload, tx.clone())?;
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let max_line = config.max_line_bytes.as_usize();
    for ((name, source), fresh) in sources.into_iter().zip(fresh) {
        let positions = match &resume {
            Some((_, point)) => point.over(checkpoints.snapshot()),
            None => checkpoints.snapshot(),
        };
        let r = start_source(
            &name,
            &source,
            positions,
            checkpoints.last_seen(),
            fresh,
            max_line,
            tx.clone(),
        )?;
        running.insert(name, r);
    }
    info(format_args!(
        "agent {agent_id} running: {} source(s), sink {}",
        running.len(),
        sink.describe()
    ));
    // Type=notify: tell systemd we are up, then ping its watchdog from the run loop.
    let mut watchdog = crate::sd_notify::Watchdog::from_env();
    if let Err(e) = watchdog.ready(&format!(
        "{} source(s), sink {}",
        running.len(),
        sink.describe()
    )) {
        warn(format_args!("sd_notify: {e}"));
    }
    let mut config = config;
    let mut pipeline = Pipeline::new(renderer, sink, checkpoints, config.commit_interval);
    if let Some((mark, point)) = resume {
        pipeline.await_resume(mark, point);
    }
    let mut memory_saved = Instant::now();
    let mut status = StatusFile::default();
    let mut expired_at: Option<Instant> = None;
    loop {
        watchdog.tick();
        if terminate.load(Ordering::Relaxed) {
            break;
        }
        if reload.swap(false, Ordering::Relaxed) {
            match load(&opts.config) {
                Ok((new_config, _)) => {
                    let later = config.restart_only_changes(&new_config);
                    if !later.is_empty() {
                        warn(format_args!(
                            "{} changed; a reload applies [[source]] and [detect] only, so {} at \
                             the next restart",
                            later.join(", "),
                            if later.len() == 1 {
                                "it takes effect"
                            } else {
                                "they take effect"
                            }
                        ));
                    }
                    // Only the sources and detections are applied; everything else stays as
                    // started, so a later reload compares against what is actually running.
                    config.sources = new_config.sources;
                    // Settle what is in flight so restarted sources resume where we are, and
                    // so that what was read before the reload went through the old detections.
                    pipeline.commit();
                    record_file_sizes(&running, pipeline.checkpoints_mut());
                    let _ = pipeline.checkpoints_mut().persist();
                    if config.detect != new_config.detect {
                        let was_on = config.detect.enabled;
                        config.detect = new_config.detect;
                        let sequence = pipeline.checkpoints().sequence();
                        reconfigure_detections(
                            &config,
                            was_on,
                            agent_id,
                            sequence,
                            pipeline.renderer_mut(),
                        );
                    }
                    reconcile(&mut running, &config, &tx, &mut rx, &mut pipeline)?;
                    info("configuration reloaded");
                    watchdog.status("configuration reloaded");
                }
                Err(e) => warn(format_args!(
                    "configuration not reloaded, keeping the running one: {e:#}"
                )),
            }
        }
        if expired_at.is_none_or(|t| t.elapsed() >= EXPIRE_INTERVAL)
            && expire_checkpoints(&running, pipeline.checkpoints_mut())
        {
            expired_at = Some(Instant::now());
        }
        record_file_sizes(&running, pipeline.checkpoints_mut());
        let more_input = rx.has_more();
        let committed = pipeline.commit_if_due(Instant::now(), more_input);
        if committed != Commit::Nothing {
            status.dirty = true;
        }
        if committed == (Commit::Done { persisted: true })
            && memory_saved.elapsed() >= crate::memory::SAVE_INTERVAL
        {
            save_memory(pipeline.checkpoints(), pipeline.renderer());
            memory_saved = Instant::now();
        }
        let status_due = status.refresh(&config.state_dir, &agent_id, &running, &pipeline);
        // Sleep until input comes, a commit or the status file is due, or a signal (the signal
        // thread wakes us): nothing here wakes on a timer while nothing happens.
        let mut until = status_due;
        if let Some(due) = pipeline.next_commit(more_input) {
            until = until.min(due);
        }
        if let Some(every) = watchdog.ping_every() {
            until = until.min(Instant::now() + every / 2);
        }
        let now = Instant::now();
        let wait = until.saturating_duration_since(now);
        if let Some(quiet) = pipeline.quiet_until(now)
            && !more_input
        {
            // No commit can come before `quiet`: let a live log's chunks queue and take them
            // together then (one wake-up per commit, not one per chunk). Their events count
            // from now, so no batch age is exceeded by the wait.
            std::thread::sleep(quiet.min(until).saturating_duration_since(now));
            while let Some(chunk) = rx.try_recv() {
                pipeline.take(&chunk, wall_clock(), now)?;
                status.dirty = true;
            }
            continue;
        }
        if pipeline.blocked() {
            // The sink refused the last commit: read nothing more (the logs are the buffer)
            // until it takes what it holds.
            std::thread::sleep(wait.min(COMMIT_RETRY));
            continue;
        }
        match rx.recv_timeout(Some(wait)) {
            Ok(Input::Chunk(chunk)) => {
                pipeline.take(&chunk, wall_clock(), Instant::now())?;
                status.dirty = true;
            }
            Ok(Input::Wake) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }

    // Graceful stop: stop the sources, drain what they sent, commit, persist.
    info("stopping");
    watchdog.stopping();
    for r in running.values() {
        r.stop();
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match rx.recv_timeout(Some(Duration::from_millis(50))) {
            Ok(Input::Chunk(chunk)) => pipeline.take(&chunk, wall_clock(), Instant::now())?,
            Ok(Input::Wake) => {}
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                if running.values().all(|r| r.thread.is_finished()) || Instant::now() > deadline {
                    break;
                }
            }
        }
    }
    // Anything still queued is taken, then committed; a sink that is durable only on
    // acknowledgement (the memory buffer) gets a few seconds to deliver it.
    pipeline.drain(&mut rx)?;
    record_file_sizes(&running, pipeline.checkpoints_mut());
    pipeline.finish(crate::ship::STOP_WAIT);
    pipeline
        .checkpoints_mut()
        .persist()
        .context("persisting checkpoints at stop")?;
    save_memory(pipeline.checkpoints(), pipeline.renderer());
    let report = status_report(&agent_id.to_string(), &running, &pipeline);
    let _ = write_status(&config.state_dir, &report);
    for (_, r) in running {
        let _ = r.thread.join();
    }
    info(format_args!(
        "stopped cleanly: {} event(s) committed",
        pipeline.events_committed()
    ));
    Ok(())
}

/// Keeps the checkpoint file bounded (see [`Checkpoints::expire`]): the streams the running
/// sources have live are marked as seen, the others are forgotten once unseen for
/// [`checkpoint::EXPIRE_AFTER`], and beyond [`checkpoint::MAX_STREAMS`] entries the oldest of
/// them go first, with a warning. Written by the next commit's persist. Does nothing (false)
/// until every running source has said what it has live (a file source after its first scan),
/// so a stream is never taken for gone before its source has looked.
fn expire_checkpoints(running: &BTreeMap<String, Running>, checkpoints: &mut Checkpoints) -> bool {
    let mut live = Live::default();
    for (name, r) in running {
        let known = match &r.status {
            StatusHandle::File(s) => s.add_live(&mut live),
            StatusHandle::Utmp(s) => s.add_live(&mut live),
            StatusHandle::Journald(_) => {
                live.add(crate::source::journald::stream_key(name));
                true
            }
        };
        if !known {
            return false;
        }
    }
    let expired = checkpoints.expire(&live, checkpoint::EXPIRE_AFTER, checkpoint::MAX_STREAMS);
    if expired.stale > 0 {
        info(format_args!(
            "forgot the checkpoints of {} stream(s) no source has read for {} days (rotated \
             away or deleted files, removed sources)",
            expired.stale,
            checkpoint::EXPIRE_AFTER.as_secs() / 86_400
        ));
    }
    if expired.over_bound > 0 {
        warn(format_args!(
            "forgot the checkpoints of {} stream(s) no source has read now, oldest first, to \
             keep at most {} in the checkpoint file; such a file is read from its start if a \
             source finds it again",
            expired.over_bound,
            checkpoint::MAX_STREAMS
        ));
    }
    true
}

/// Records in the checkpoints the file sources' sizes as last seen and the streams whose loss
/// they counted ([`FileStatus::record_sizes`]); written with the positions by the next persist.
fn record_file_sizes(running: &BTreeMap<String, Running>, checkpoints: &mut Checkpoints) {
    for r in running.values() {
        match &r.status {
            StatusHandle::File(s) => s.record_sizes(checkpoints),
            StatusHandle::Utmp(s) => s.record_sizes(checkpoints),
            StatusHandle::Journald(_) => {}
        }
    }
}

/// Turns SIGTERM and SIGINT into `terminate`, SIGHUP into `reload`, on a thread of its own that
/// sleeps until a signal comes and then wakes the pipeline through its input channel.
fn watch_signals(
    terminate: &Arc<AtomicBool>,
    reload: &Arc<AtomicBool>,
    wake: SyncSender<Chunk>,
) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("installing signal handlers")?;
    let (terminate, reload) = (terminate.clone(), reload.clone());
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                let flag = if signal == SIGHUP {
                    &reload
                } else {
                    &terminate
                };
                flag.store(true, Ordering::Relaxed);
                // A full channel wakes the pipeline anyway.
                let _ = wake.try_send(wake_chunk());
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// The status file: rewritten when something changed, at most every [`STATUS_INTERVAL`], and
/// every [`STATUS_REFRESH`] otherwise. While the sink has a backlog it is looked at every
/// [`BUSY_WAKE`] (not rewritten), and rewritten at once when the backlog is gone, so that
/// `authtrail status` shows that promptly; a failed delivery attempt seen there counts as a
/// change, so that a collector that is down shows within [`STATUS_INTERVAL`].
struct StatusFile {
    /// Something happened since the last write (input, a commit, a failed delivery).
    dirty: bool,
    /// The sink had a backlog at the last look.
    backlog: bool,
    /// The sink's failed delivery attempts at the last look.
    failed_attempts: u64,
    last_backlog_look: Option<Instant>,
    last_look: Option<Instant>,
    last_written: Option<(StatusReport, Instant)>,
    /// A backlog's progress, shown from the same samples.
    progress: Progress,
}

impl Default for StatusFile {
    fn default() -> Self {
        StatusFile {
            dirty: true,
            backlog: false,
            failed_attempts: 0,
            last_backlog_look: None,
            last_look: None,
            last_written: None,
            progress: Progress::new(progress::Mode::detect()),
        }
    }
}

impl StatusFile {
    /// Rewrites the file if it is due and changed; returns when to look again.
    fn refresh(
        &mut self,
        state_dir: &Path,
        agent_id: &uuid::Uuid,
        running: &BTreeMap<String, Running>,
        pipeline: &Pipeline<Checkpoints>,
    ) -> Instant {
        let now = Instant::now();
        let mut backlog_gone = false;
        // While there is a backlog, look at it every BUSY_WAKE, not at every chunk: the sink's
        // lock is the senders' too.
        if self.backlog && self.last_backlog_look.is_none_or(|t| now >= t + BUSY_WAKE) {
            self.last_backlog_look = Some(now);
            self.backlog = pipeline.sink().has_backlog();
            backlog_gone = !self.backlog;
            let failed = pipeline.sink().failed_attempts();
            if failed != self.failed_attempts {
                self.failed_attempts = failed;
                self.dirty = true;
            }
        }
        let every = if self.dirty {
            STATUS_INTERVAL
        } else {
            STATUS_REFRESH
        };
        let due = self.last_look.map_or(now, |t| t + every);
        if now < due && !backlog_gone {
            return if self.backlog {
                due.min(self.last_backlog_look.map_or(now, |t| t + BUSY_WAKE))
            } else {
                due
            };
        }
        self.last_look = Some(now);
        self.dirty = false;
        let mut report = status_report(&agent_id.to_string(), running, pipeline);
        self.progress
            .update(Sample::of(&report), now, &mut std::io::stderr().lock());
        self.backlog = report
            .shipping
            .as_ref()
            .is_some_and(|s| s.backlog_batches > 0);
        self.failed_attempts = report.shipping.as_ref().map_or(0, |s| s.failures);
        // Rewrite only on change (or once every STATUS_REFRESH), so an idle agent leaves the
        // disk alone.
        let updated = std::mem::take(&mut report.updated);
        let stale = self
            .last_written
            .as_ref()
            .is_none_or(|(r, at)| *r != report || at.elapsed() >= STATUS_REFRESH);
        if stale {
            let mut written = report.clone();
            written.updated = updated;
            match write_status(state_dir, &written) {
                Ok(()) => self.last_written = Some((report, now)),
                Err(e) => warn(format_args!("writing the status file: {e}")),
            }
        }
        now + if self.backlog {
            BUSY_WAKE
        } else {
            STATUS_REFRESH
        }
    }
}

/// The detector's hash seed: per process, so that an attacker cannot aim at one slot of the
/// tables (a restored memory brings back the seed its tables were laid out by).
fn detect_seed(agent_id: uuid::Uuid) -> u32 {
    (agent_id.as_u128() as u32) ^ std::process::id().rotate_left(16)
}

/// Applies a reloaded `[detect]` (`was_on`: detections were on before). Turned on, the
/// detector starts from the saved memory, as at start.
fn reconfigure_detections(
    config: &Config,
    was_on: bool,
    agent_id: uuid::Uuid,
    sequence: u64,
    renderer: &mut Renderer,
) {
    if !config.detect.enabled {
        renderer.reconfigure_detector(None);
        info("detections turned off");
        return;
    }
    renderer.reconfigure_detector(Some(config.detect.to_detect_config(detect_seed(agent_id))));
    renderer.set_working_zone(config.detect.working_zone());
    if was_on {
        info("detections reconfigured, with what they had counted and learnt");
    } else {
        restore_memory(&config.state_dir, sequence, renderer);
        info("detections turned on");
    }
}

/// Restores the detector's memory saved by an earlier run (see [`crate::memory`]) when it goes
/// with the checkpoints (`sequence`, their `event.sequence`) or comes before them.
fn restore_memory(state_dir: &Path, sequence: u64, renderer: &mut Renderer) {
    let saved = match crate::memory::load(state_dir) {
        Ok(Some(saved)) => saved,
        Ok(None) => return,
        Err(e) => {
            warn(format_args!("{e}; detections start with an empty memory"));
            return;
        }
    };
    if saved.sequence > sequence {
        warn(format_args!(
            "the detector memory is ahead of the checkpoints (event {} against {sequence}); \
             detections start with an empty memory",
            saved.sequence
        ));
        return;
    }
    match renderer.restore_detector_memory(&saved.memory) {
        Ok(true) if saved.sequence == sequence => info("detector memory restored"),
        Ok(true) => info(format_args!(
            "detector memory restored, saved {} event(s) before the checkpoints (an unclean \
             stop, or detections were off): those events are not in it",
            sequence - saved.sequence
        )),
        Ok(false) => {}
        Err(e) => warn(format_args!("{e}; detections start with an empty memory")),
    }
}

/// Saves the detector's memory with the checkpoints' sequence (call after they are persisted).
/// Not while the detector has seen events the checkpoints do not cover (a commit failed): they
/// are read again at the next start and must not be counted twice.
fn save_memory(checkpoints: &Checkpoints, renderer: &Renderer) {
    if renderer.sequence() != checkpoints.sequence() {
        return;
    }
    if let Some(memory) = renderer.detector_memory()
        && let Err(e) = crate::memory::save(checkpoints.dir(), checkpoints.sequence(), &memory)
    {
        warn(format_args!("saving the detector memory: {e}"));
    }
}

/// Applies a reloaded configuration's sources: start new ones, stop removed ones, restart
/// changed ones from their checkpoints.
fn reconcile(
    running: &mut BTreeMap<String, Running>,
    config: &Config,
    tx: &SyncSender<Chunk>,
    rx: &mut Inbox,
    pipeline: &mut Pipeline<Checkpoints>,
) -> anyhow::Result<()> {
    let wanted: BTreeMap<String, SourceConfig> = config.named_sources().into_iter().collect();
    let to_stop: Vec<String> = running
        .iter()
        .filter(|(name, r)| wanted.get(*name) != Some(&r.config))
        .map(|(name, _)| name.clone())
        .collect();
    for name in &to_stop {
        if let Some(r) = running.get(name) {
            r.stop();
        }
    }
    // Keep draining while the stopping sources finish, so none blocks on a full channel.
    let deadline = Instant::now() + Duration::from_secs(10);
    while to_stop
        .iter()
        .any(|n| running.get(n).is_some_and(|r| !r.thread.is_finished()))
        && Instant::now() < deadline
    {
        if let Ok(Input::Chunk(chunk)) = rx.recv_timeout(Some(Duration::from_millis(20))) {
            pipeline.take(&chunk, wall_clock(), Instant::now())?;
        }
    }
    pipeline.drain(rx)?;
    record_file_sizes(running, pipeline.checkpoints_mut());
    // Sources new to this state directory honour their `read-from`, as on a first start; they
    // are recorded (and persisted) before they start, so a crash cannot make them fresh again.
    let starting: Vec<&str> = wanted
        .keys()
        .filter(|name| !running.contains_key(*name) || to_stop.contains(*name))
        .map(String::as_str)
        .collect();
    let checkpoints = pipeline.checkpoints_mut();
    let fresh: BTreeMap<String, bool> = checkpoints
        .start_sources(&starting)
        .into_iter()
        .map(|(name, fresh)| (name.to_owned(), fresh))
        .collect();
    checkpoints.persist().context("persisting checkpoints")?;
    for name in &to_stop {
        if let Some(r) = running.remove(name) {
            let _ = r.thread.join();
            info(format_args!("source {name} stopped"));
        }
    }
    for (name, source) in wanted {
        if let std::collections::btree_map::Entry::Vacant(slot) = running.entry(name) {
            let r = start_source(
                slot.key(),
                &source,
                pipeline.committed_positions(pipeline.checkpoints().snapshot()),
                pipeline.checkpoints().last_seen(),
                fresh.get(slot.key()).copied().unwrap_or(false),
                config.max_line_bytes.as_usize(),
                tx.clone(),
            )?;
            info(format_args!("source {} started", slot.key()));
            slot.insert(r);
        }
    }
    Ok(())
}

fn status_report(
    agent_id: &str,
    running: &BTreeMap<String, Running>,
    pipeline: &Pipeline<Checkpoints>,
) -> StatusReport {
    let (sink, renderer) = (pipeline.sink(), pipeline.renderer());
    let sources = running
        .iter()
        .map(|(name, r)| {
            let counters = renderer
                .counters
                .get(name.as_str())
                .cloned()
                .unwrap_or_default();
            let lost_bytes = match &r.status {
                StatusHandle::File(s) => s.lost_bytes(),
                StatusHandle::Utmp(s) => s.lost_bytes(),
                StatusHandle::Journald(_) => 0,
            };
            let (kind, streams) = match &r.status {
                StatusHandle::File(s) => (
                    "file",
                    s.files()
                        .into_iter()
                        .map(|f| StreamReport {
                            path: Some(f.path.display().to_string()),
                            offset: Some(f.offset),
                            size: Some(f.size),
                            lag_bytes: Some(f.size.saturating_sub(f.offset)),
                            cursor: None,
                        })
                        .collect(),
                ),
                StatusHandle::Utmp(s) => (
                    "utmp",
                    s.files()
                        .into_iter()
                        .map(|f| StreamReport {
                            path: Some(f.path.display().to_string()),
                            offset: Some(f.offset),
                            size: Some(f.size),
                            lag_bytes: Some(f.size.saturating_sub(f.offset)),
                            cursor: None,
                        })
                        .collect(),
                ),
                StatusHandle::Journald(s) => (
                    "journald",
                    vec![StreamReport {
                        path: None,
                        offset: None,
                        size: None,
                        lag_bytes: None,
                        cursor: s.cursor(),
                    }],
                ),
            };
            SourceReport {
                name: name.clone(),
                kind: kind.to_owned(),
                counters,
                streams,
                lost_bytes,
            }
        })
        .collect();
    StatusReport {
        pid: std::process::id(),
        agent_id: agent_id.to_owned(),
        updated: wall_clock().rfc3339().to_string(),
        refresh_secs: STATUS_REWRITE_MAX.as_secs(),
        sink: sink.describe(),
        events_committed: pipeline.events_committed(),
        commit_failures: pipeline.commit_failures(),
        commit_error: pipeline.commit_error().map(str::to_owned),
        alerts: renderer.alerts,
        shipping: sink.report(),
        sources,
    }
}

fn write_status(state_dir: &Path, report: &StatusReport) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    // Renamed into place (a reader never sees half a file) but not fsync'd: the file is a report
    // rewritten every few seconds, not state. After a power loss it would describe a process
    // that is gone, which `authtrail status` tells from the pid and the file's age anyway, and
    // an fsync per refresh would cost a disk flush every interval on an idle host.
    crate::durable::DurableFile::new()
        .without_fsync()
        .write(&state_dir.join(STATUS_FILE), &json)
}

/// Reads the status file of a running (or stopped) agent.
pub(crate) fn read_status(state_dir: &Path) -> anyhow::Result<StatusReport> {
    let path = state_dir.join(STATUS_FILE);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (is `authtrail run` running with this config?)",
            path.display()
        )
    })?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}
