//! `[sink] type = "collector"`: batches of ECS NDJSON, compressed, spooled, shipped over HTTPS.
//!
//! ```text
//! pipeline thread                                   shipper thread
//! send() -> OpenBatch --(limits)--> closed batches
//! commit() -> compress -> Spool::push (fsync) -> Ok    Spool::oldest -> Client::send (HTTPS POST)
//!             (checkpoints advance after this)          2xx: delete (refused events to dead-letter)
//!                                                        409: new stream  413: split
//!                                                        400: dead-letter
//!                                                        401/403, 429/503, errors: back off
//!                                                        idle for `heartbeat`: spool a heartbeat
//! ```
//!
//! Pieces: [`batch`] (the open batch, compression, the agent's own documents), [`spool`] (the
//! on-disk queue and its file format), [`client`] (HTTPS, token, answers), [`tls`] (trust,
//! pins, client certificates, error messages), [`retry`] (backoff and `Retry-After`), [`otlp`]
//! (the second encoder: `[sink] type = "otlp"` is this sink opened with [`Wire::Otlp`], which
//! changes only what [`client`] POSTs and how it reads the answer).
//!
//! **Architecture Invariant:** `commit` returns `Ok` only when every event sent before it is in
//! a durable spool file (or, with no buffer, acknowledged by the collector), so source
//! checkpoints never pass an event that a crash could lose. With the memory buffer
//! (`[sink.buffer] type = "memory"`) `commit` only puts the batches into agent-core's ring, and
//! [`Sink::acknowledged`] tells the pipeline how far the collector has taken them: source
//! checkpoints move only that far. Batches then go one at a time, in order, so that what is
//! acknowledged is always a prefix of what was committed. Delivery is at least once; the
//! collector de-duplicates on (agent id, stream, batch sequence), a sequence number is never
//! reused for different content in a stream, and a 409 (other content under the key) keeps the
//! batch and sends it again under a new stream (see [`spool`]). Nothing the collector did not
//! store is deleted: events it refused one by one go to `dead-letter/`.
//!
//! **Checkpoint handshake** (see [`crate::sink`]): after a commit the pipeline persists its
//! checkpoints with [`Sink::mark`] (the last spooled sequence number), then calls
//! [`Sink::release`]; the shipper sends no pipeline batch above the released mark. At start
//! [`Sink::recover`] deletes the pipeline batches above the persisted mark, whose events the
//! sources read again. So a crash between the spool write and the checkpoint write ships those
//! events once, not twice. Heartbeats and the halves of a split batch (whose original was
//! released) are exempt. Until the pipeline calls `release` or `recover`, nothing is held back.
//!
//! **Architecture Invariant:** no plaintext. `url` must be `https://` (checked at validation and
//! again here), the ureq agent is `https_only`, and the TLS connector is ours ([`tls`]).
//!
//! With a full spool, `drop-oldest` deletes the oldest batches, logs the count and puts a
//! `spool_dropped` alert into the next batch the pipeline commits; `block` makes `commit` fail,
//! so the pipeline stops reading until the collector catches up.

pub mod batch;
pub mod client;
pub mod config;
pub(crate) mod in_flight;
pub mod otlp;
pub mod retry;
pub mod spool;
pub mod tls;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use self::batch::{AgentIdentity, BatchInfo, BodyEncoder, Codec, Encoding, OpenBatch};
use self::client::{Client, Outcome};
use self::config::{BufferKind, CollectorConfig, SpoolPolicy};
use self::in_flight::InFlight;
use self::retry::Backoff;
use self::spool::{EntrySync, Origin, PushError, Pushed, Spool};
use crate::host::HostFacts;
use crate::sink::{Sink, SinkError, SinkMark};

/// The spool's folder inside the state directory.
pub(crate) const SPOOL_DIR: &str = "spool";

/// With the spool disabled, how long `commit` waits for the collector's acknowledgement before
/// it reports failure (the pipeline then pauses reading and calls it again).
pub(crate) const COMMIT_WAIT: Duration = Duration::from_secs(2);

/// `SinkMark::object` of the collector sink's marks (`ATSPOOL1`), so a mark left by another sink
/// type (the config changed) is not taken for a batch sequence number.
pub(crate) const MARK_OBJECT: u64 = u64::from_be_bytes(*b"ATSPOOL1");

/// `SinkMark::object` of the memory buffer's marks (`ATMEMRY1`): its numbers are in a stream
/// of the process that made them, never the disk spool's.
pub const MEMORY_MARK_OBJECT: u64 = u64::from_be_bytes(*b"ATMEMRY1");

/// How long a clean stop waits for the memory buffer's batches to be acknowledged; what is
/// left is read again from the logs at the next start.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

/// Longest part of an alert's JSON written to the agent's log during an outage.
pub const ALERT_LOG_MAX: usize = 4096;

/// Messages kept in [`ShipStatus::log`].
pub(crate) const LOG_KEEP: usize = 64;

/// Most batches in flight at once, each on a connection of its own (one sender thread each).
/// The collector de-duplicates on (agent, sequence), so the order of arrival does not matter to
/// it; while one batch waits for the collector's commit the next ones are already on the way,
/// and the collector stores the batches that arrive together in one transaction.
/// Four rather than two: the collector decodes the next batches while it commits a group, so
/// a backlog drains sooner, for about a batch's memory more in the agent per sender.
pub(crate) const MAX_IN_FLIGHT: usize = 4;

/// Batches waiting before more than one is sent at a time. Below this (the steady state of a
/// live log) batches go one by one, in sequence order; only a backlog (a restart, an outage, a
/// burst) is drained in parallel. Never in parallel while the collector is failing.
pub(crate) const PARALLEL_BACKLOG: usize = 8;

/// The collector's base URL: `https://host[:port][/path]`. Checked once, when the config is
/// read (`#[serde(try_from)]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CollectorUrl {
    text: String,
    host: String,
}

impl TryFrom<String> for CollectorUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        CollectorUrl::parse(&text)
    }
}

impl From<CollectorUrl> for String {
    fn from(url: CollectorUrl) -> String {
        url.text
    }
}

impl CollectorUrl {
    /// What to say when no `url` is set.
    pub const REQUIRED: &str =
        "is required: the collector's address, e.g. url = \"https://collector.example:8443\"";

    /// Checks a configured `url`: `https://` with a host, no query or fragment. The error says
    /// what to write instead.
    pub fn parse(text: &str) -> Result<CollectorUrl, String> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        if text.is_empty() {
            return Err(Self::REQUIRED.to_owned());
        }
        if lower.starts_with("http://") {
            return Err(format!(
                "{text:?} is plaintext HTTP; the agent ships only over TLS (no plaintext \
                 fallback, ever): use https://"
            ));
        }
        if !lower.starts_with("https://") {
            return Err(format!(
                "{text:?} must start with https://, e.g. \"https://collector.example:8443\""
            ));
        }
        let uri: ureq::http::Uri = text
            .parse()
            .map_err(|e| format!("{text:?} is not a valid URL: {e}"))?;
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{text:?} names no host"))?;
        if uri.query().is_some() || text.contains('#') {
            return Err(format!("{text:?}: leave out the query and fragment"));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(format!(
                "{text:?}: no credentials in the URL; use [sink] auth.token-file"
            ));
        }
        Ok(CollectorUrl {
            text: text.trim_end_matches('/').to_owned(),
            host: host.to_owned(),
        })
    }

    /// Where batches are POSTed: `{url}/v1/batches`.
    pub fn endpoint(&self) -> String {
        format!("{}{}", self.text, agent_core::wire::BATCHES_PATH)
    }

    /// The host (for SNI, verification and `NO_PROXY`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The URL as configured (without a trailing `/`).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A configured `proxy`: `http://host:port`, an HTTP CONNECT proxy. Checked once, when the
/// config is read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProxyUrl(String);

impl TryFrom<String> for ProxyUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        ProxyUrl::parse(&text)
    }
}

impl From<ProxyUrl> for String {
    fn from(url: ProxyUrl) -> String {
        url.0
    }
}

impl ProxyUrl {
    /// The proxy's URL as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks a configured `proxy`.
    pub fn parse(text: &str) -> Result<ProxyUrl, String> {
        if !text.to_ascii_lowercase().starts_with("http://") {
            return Err(format!(
                "{text:?} must be an HTTP CONNECT proxy, http://host:port (the TLS session to \
                 the collector runs end to end inside the tunnel)"
            ));
        }
        ureq::Proxy::new(text).map_err(|e| format!("{text:?} is not a usable proxy URL: {e}"))?;
        Ok(ProxyUrl(text.to_owned()))
    }
}

/// The proxy to use for `host`: the configured one, else `HTTPS_PROXY`/`https_proxy` unless
/// `host` matches `NO_PROXY`/`no_proxy`. `env` reads a variable (the process environment in
/// production).
pub(crate) fn proxy_for(
    configured: Option<&str>,
    host: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    if let Some(p) = configured {
        return Some(p.to_owned());
    }
    let var = |a: &str, b: &str| env(a).or_else(|| env(b)).filter(|v| !v.trim().is_empty());
    let proxy = var("HTTPS_PROXY", "https_proxy")?;
    let no_proxy = var("NO_PROXY", "no_proxy").unwrap_or_default();
    if no_proxy_matches(&no_proxy, host) {
        return None;
    }
    let proxy = proxy.trim();
    Some(if proxy.contains("://") {
        proxy.to_owned()
    } else {
        format!("http://{proxy}")
    })
}

/// `NO_PROXY` matching as curl does it: `*` matches everything; an entry matches the host
/// itself and its subdomains (`example.com`, `.example.com` and `*.example.com` all match
/// `a.example.com`); an entry's port, if any, is ignored; case-insensitive.
pub(crate) fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.trim_start_matches("*.").trim_start_matches('.');
        let entry = match entry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => entry,
        };
        let entry = entry
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        !entry.is_empty()
            && (host == entry
                || host
                    .strip_suffix(entry.as_str())
                    .is_some_and(|rest| rest.ends_with('.')))
    })
}

/// Why the collector sink could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShipError {
    /// The URL (normally caught by validation).
    #[error("[sink] url: {0}")]
    Url(String),
    /// The spool directory could not be opened or scanned.
    #[error("spool: {0}")]
    Spool(io::Error),
    /// The TLS files.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The shipper thread could not start.
    #[error("starting the shipper thread: {0}")]
    Thread(io::Error),
}

/// Counters and recent messages, for status and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShipStatus {
    /// Batches waiting in the spool.
    pub spooled_batches: usize,
    /// Their bytes.
    pub spooled_bytes: u64,
    /// The sequence the next batch gets.
    pub next_seq: u64,
    /// Batches the collector accepted since start.
    pub sent_batches: u64,
    /// Their events.
    pub sent_events: u64,
    /// Their bodies' bytes as sent (compressed).
    pub sent_body_bytes: u64,
    /// Heartbeats spooled since start.
    pub heartbeats: u64,
    /// Batches dropped from a full spool since start.
    pub dropped_batches: u64,
    /// Their events.
    pub dropped_events: u64,
    /// Batches split after a 413.
    pub splits: u64,
    /// Batches moved to `dead-letter/` after a 400.
    pub dead_letters: u64,
    /// Events the collector refused one by one (the wire contract; the rest of their batches
    /// was stored), kept in `dead-letter/`.
    pub rejected_events: u64,
    /// Batches sent again under a new stream after a 409.
    pub conflicts: u64,
    /// Failed attempts (any reason) since start.
    pub failures: u64,
    /// The last failure, cleared by a success.
    pub last_error: Option<String>,
    /// The last [`LOG_KEEP`] warnings and notices, oldest first (also written to stderr).
    pub log: VecDeque<String>,
}

#[derive(Debug)]
struct State {
    spool: Spool,
    stop: bool,
    status: ShipStatus,
    /// Drops not yet reported by an alert event.
    unreported: (u64, u64),
    /// The highest pipeline batch whose checkpoints are persisted ([`Sink::release`]); batches
    /// above it are not shipped. `None` until the pipeline takes part in the handshake (then
    /// everything committed ships at once: at least once).
    released: Option<u64>,
    /// Batches being sent.
    in_flight: BTreeSet<u64>,
    /// No attempt before this (backoff after a failure).
    not_before: Instant,
    /// The last batch the collector accepted (or heartbeat spooled).
    last_sent: Instant,
    /// Since when the spool has not been empty, as a sender first found it so: the lag each
    /// batch reports (`Authtrail-Spool-Backlog`).
    backlog_since: Option<Instant>,
    /// Shared by the senders: a failure slows them all down.
    backoff: Backoff,
    /// With the memory buffer: the resume point of each commit's last batch, until the
    /// collector acknowledged it ([`in_flight`]).
    resume: BTreeMap<u64, Arc<[u8]>>,
    /// With the memory buffer: the in-flight note's files (`None` when they cannot be opened).
    note: Option<InFlight>,
    /// The batches the in-flight note holds now.
    noted: BTreeSet<u64>,
    /// The last write of the note failed (reported once).
    note_failed: bool,
}

impl State {
    fn note(&mut self, msg: String) {
        tracing::warn!("{msg}");
        self.keep(msg);
    }

    /// [`State::note`] of good news (the collector is back): logged as information.
    fn note_recovery(&mut self, msg: String) {
        tracing::info!("{msg}");
        self.keep(msg);
    }

    fn keep(&mut self, msg: String) {
        if self.status.log.len() == LOG_KEEP {
            self.status.log.pop_front();
        }
        self.status.log.push_back(msg);
    }

    fn count_drops(&mut self, p: &Pushed) {
        if p.dropped_batches == 0 {
            return;
        }
        self.status.dropped_batches += p.dropped_batches;
        self.status.dropped_events += p.dropped_events;
        self.unreported.0 += p.dropped_batches;
        self.unreported.1 += p.dropped_events;
        self.note(format!(
            "spool full ({} bytes max): dropped the {} oldest batch(es), {} event(s), that the \
             collector had not taken (policy drop-oldest); an alert event follows",
            self.spool.bytes(),
            p.dropped_batches,
            p.dropped_events
        ));
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the first sender and whoever waits for the spool to empty.
    wake: Condvar,
    /// Wakes the other senders, which only drain a deep backlog (they sleep otherwise).
    wake_extra: Condvar,
}

impl Shared {
    /// Something changed (a batch spooled, released, sent, or a stop): wake the first sender
    /// and the waiters, and the other senders only when there is work for them.
    fn notify(&self, state: &State) {
        self.wake.notify_all();
        if state.stop || state.spool.len() >= PARALLEL_BACKLOG {
            self.wake_extra.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the state usable (every update is a
        // few assignments); keep shipping rather than cascade the panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the shipping core speaks: one spool, batch, retry and TLS machinery, two encoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `[sink] type = "collector"`: the authtrail wire contract ([`agent_core::wire`]).
    Collector,
    /// `[sink] type = "otlp"`: OTLP/HTTP logs ([`otlp`]).
    Otlp(otlp::OtlpProtocol),
}

/// The collector sink (see the module docs), also the OTLP sink ([`Wire::Otlp`]).
#[derive(Debug)]
pub struct CollectorSink {
    config: CollectorConfig,
    wire: Wire,
    url: CollectorUrl,
    /// Compresses the pipeline's batches, one zstd context for all of them.
    encoder: BodyEncoder,
    buffer: BufferKind,
    open: OpenBatch,
    /// With the memory buffer, the alerts, in a batch of their own that may use the ring's
    /// share kept for alerts.
    open_alerts: OpenBatch,
    /// Closed batches, compressed, waiting for the next commit to spool them (their NDJSON
    /// buffers go back to the open batch at once), with [`Origin::Alert`] for alert batches.
    closed: VecDeque<(BatchInfo, Vec<u8>, Origin)>,
    alert: bool,
    /// With the memory buffer: the pipeline's resume point for the next commit
    /// ([`Sink::resume_point`]).
    resume_next: Option<Arc<[u8]>>,
    /// The last batch a resume point was kept with.
    attached: u64,
    /// A resume point kept from before a crash, for the pipeline ([`Sink::take_resume`]).
    resumed: Option<(SinkMark, Vec<u8>)>,
    identity: AgentIdentity,
    shared: Arc<Shared>,
    shippers: Vec<JoinHandle<()>>,
}

impl CollectorSink {
    /// Opens the spool in `state_dir/spool`, reads the TLS files, and starts the shipper thread,
    /// which first re-sends every batch left from before (with its original sequence number).
    /// `facts` describe the host in heartbeats.
    ///
    /// Everything spooled ships as soon as it is committed (at least once) until the pipeline
    /// calls [`Sink::recover`] or [`Sink::release`]; a pipeline that persists marks should open
    /// with [`CollectorSink::open_recovered`] instead, so that nothing above the persisted mark
    /// is sent before recovery.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn open(
        config: &CollectorConfig,
        state_dir: &Path,
        agent_id: &str,
        facts: HostFacts,
    ) -> Result<CollectorSink, ShipError> {
        Self::open_inner(config, Wire::Collector, state_dir, agent_id, facts, None)
    }

    /// [`CollectorSink::open`], then [`Sink::recover`] with the mark persisted with the
    /// checkpoints, before the shipper starts (so no batch above the mark can go out first).
    pub fn open_recovered(
        config: &CollectorConfig,
        state_dir: &Path,
        agent_id: &str,
        facts: HostFacts,
        mark: Option<SinkMark>,
    ) -> Result<CollectorSink, ShipError> {
        Self::open_inner(
            config,
            Wire::Collector,
            state_dir,
            agent_id,
            facts,
            Some(mark),
        )
    }

    /// [`CollectorSink::open_recovered`] speaking `wire` (`[sink] type = "otlp"` or
    /// `"collector"`).
    pub fn open_recovered_as(
        config: &CollectorConfig,
        wire: Wire,
        state_dir: &Path,
        agent_id: &str,
        facts: HostFacts,
        mark: Option<SinkMark>,
    ) -> Result<CollectorSink, ShipError> {
        Self::open_inner(config, wire, state_dir, agent_id, facts, Some(mark))
    }

    fn open_inner(
        config: &CollectorConfig,
        wire: Wire,
        state_dir: &Path,
        agent_id: &str,
        facts: HostFacts,
        recover: Option<Option<SinkMark>>,
    ) -> Result<CollectorSink, ShipError> {
        let url = config
            .url
            .clone()
            .ok_or_else(|| ShipError::Url(CollectorUrl::REQUIRED.to_owned()))?;
        // The memory buffer sends one batch at a time (see the module docs): one sender.
        let senders = if config.buffer_kind() == BufferKind::Memory {
            1
        } else {
            MAX_IN_FLIGHT
        };
        let identity = AgentIdentity {
            agent_id: agent_id.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            facts,
        };
        let otlp = match wire {
            Wire::Collector => None,
            Wire::Otlp(protocol) => Some(otlp::LogMapper::new(protocol, &identity)),
        };
        let clients = (0..senders)
            .map(|_| Client::new(config, agent_id, otlp.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let buffer = config.buffer_kind();
        let dir = state_dir.join(SPOOL_DIR);
        let (spool, warnings) = match buffer {
            BufferKind::Disk => {
                Spool::open(&dir, true, config.spool.max_bytes.0, config.spool.policy)
            }
            // In memory, bounded by the pipeline: it reads nothing while a commit waits.
            BufferKind::None => Spool::open(&dir, false, u64::MAX, SpoolPolicy::Block),
            BufferKind::Memory => Spool::in_memory(&dir, config.buffer.max_bytes.as_usize()),
        }
        .map_err(ShipError::Spool)?;
        let mut state = State {
            spool,
            stop: false,
            status: ShipStatus::default(),
            unreported: (0, 0),
            released: None,
            in_flight: BTreeSet::new(),
            not_before: Instant::now(),
            last_sent: Instant::now(),
            backlog_since: None,
            backoff: Backoff::new(config.retry.initial, config.retry.max),
            resume: BTreeMap::new(),
            note: None,
            noted: BTreeSet::new(),
            note_failed: false,
        };
        for w in warnings {
            state.note(w);
        }
        if !state.spool.is_empty() {
            let msg = format!(
                "{} batch(es) left in the spool from before are sent first, with their \
                 sequence numbers",
                state.spool.len()
            );
            state.note(msg);
        }
        if let Some(p) = clients.first().and_then(Client::proxy) {
            let msg = format!("reaching the collector through the CONNECT proxy {p}");
            state.note(msg);
        }
        if buffer == BufferKind::Disk
            && let Some(mark) = recover
        {
            recover_spool(&mut state, mark);
        }
        let resumed = if buffer == BufferKind::Memory {
            recover_in_flight(&mut state, &dir, recover.flatten())
        } else {
            None
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Condvar::new(),
            wake_extra: Condvar::new(),
        });
        let mut shippers = Vec::with_capacity(clients.len());
        for (index, client) in clients.into_iter().enumerate() {
            let shipper = Shipper {
                shared: shared.clone(),
                client,
                identity: identity.clone(),
                heartbeat: config.heartbeat,
                encoding: Encoding::of(config.compression),
                level: config.compression_level,
                index,
                in_order: buffer == BufferKind::Memory,
            };
            let spawned = std::thread::Builder::new()
                .name(format!("shipper-{index}"))
                .spawn(move || shipper.run());
            match spawned {
                Ok(t) => shippers.push(t),
                Err(e) => {
                    let mut state = shared.lock();
                    state.stop = true;
                    shared.notify(&state);
                    drop(state);
                    for t in shippers {
                        let _ = t.join();
                    }
                    return Err(ShipError::Thread(e));
                }
            }
        }
        // An OTLP request is made from the batch's NDJSON: a compact body would be rendered
        // back before every send.
        let new_open = || match (config.body, wire) {
            (config::BodyFormat::Compact, Wire::Collector) => OpenBatch::compact(),
            _ => OpenBatch::default(),
        };
        Ok(CollectorSink {
            config: config.clone(),
            wire,
            url,
            encoder: BodyEncoder::new(Encoding::of(config.compression), config.compression_level),
            buffer,
            open: new_open(),
            open_alerts: new_open(),
            closed: VecDeque::new(),
            alert: false,
            resume_next: None,
            attached: 0,
            resumed,
            identity,
            shared,
            shippers,
        })
    }

    /// A snapshot of the counters and recent messages.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn status(&self) -> ShipStatus {
        let state = self.shared.lock();
        let mut s = state.status.clone();
        s.spooled_batches = state.spool.len();
        s.spooled_bytes = state.spool.bytes();
        s.next_seq = state.spool.next_seq();
        s
    }

    /// Waits until the spool is empty (everything acknowledged) or `timeout` passes; true if
    /// empty.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while !state.spool.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .shared
                .wake
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn close_open(&mut self) -> Result<(), SinkError> {
        self.close(false)?;
        self.close(true)
    }

    /// Closes the open batch (`alerts`: the open batch of alerts) and compresses it.
    fn close(&mut self, alerts: bool) -> Result<(), SinkError> {
        let open = if alerts {
            &mut self.open_alerts
        } else {
            &mut self.open
        };
        if open.is_empty() {
            return Ok(());
        }
        let batch = open.close();
        let body = self
            .encoder
            .encode(&batch.ndjson)
            .map_err(|source| SinkError::Io {
                target: "batch compression".to_owned(),
                source,
            })?;
        let origin = if alerts {
            Origin::Alert
        } else {
            Origin::Pipeline
        };
        self.closed.push_back((batch.info(), body, origin));
        open.recycle(batch.ndjson);
        Ok(())
    }

    /// [`Sink::send`], with the event's holes when the renderer recorded them.
    fn send_with(
        &mut self,
        event: &[u8],
        holes: Option<&agent_core::batch::Holes>,
        alert: bool,
    ) -> Result<(), SinkError> {
        let (events, bytes) = (
            self.config.batch_max_events,
            self.config.batch_max_bytes.as_usize(),
        );
        if alert {
            self.log_alert_in_outage(event);
        }
        let apart = alert && self.buffer == BufferKind::Memory;
        let open = if apart {
            &mut self.open_alerts
        } else {
            &mut self.open
        };
        if open.would_overflow(event.len(), events, bytes) {
            self.close(apart)?;
        }
        let open = if apart {
            &mut self.open_alerts
        } else {
            &mut self.open
        };
        open.push_with(event, holes);
        if open.is_full(events, bytes) {
            self.close(apart)?;
        }
        self.alert |= alert;
        Ok(())
    }

    /// An alert raised while the collector is not taking batches is written to the agent's own
    /// log at once (it waits in the buffer; whoever reads the host's journal sees it now).
    fn log_alert_in_outage(&self, event: &[u8]) {
        let mut state = self.shared.lock();
        if let Some(why) = state.status.last_error.clone() {
            let text = String::from_utf8_lossy(&event[..event.len().min(ALERT_LOG_MAX)]);
            state.note(format!(
                "alert raised while the collector is unreachable ({why}); it waits in the \
                 buffer: {text}"
            ));
        }
    }
}

impl Sink for CollectorSink {
    fn send(&mut self, event: &[u8], alert: bool) -> Result<(), SinkError> {
        self.send_with(event, None, alert)
    }

    fn send_with_holes(
        &mut self,
        event: &[u8],
        holes: &agent_core::batch::Holes,
        alert: bool,
    ) -> Result<(), SinkError> {
        self.send_with(event, Some(holes), alert)
    }

    fn wants_holes(&self) -> bool {
        self.open.builds_compact()
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        self.close_open()?;
        let mut state = self.shared.lock();
        // Every batch file is synced as it is written; their directory entries are synced once
        // for the group, before this returns (also on error, for those already written).
        // Batches of alerts go ahead of ordinary ones that find a memory buffer full.
        let mut full = None;
        let mut kept = VecDeque::new();
        while let Some((batch, body, origin)) = self.closed.pop_front() {
            if full.is_some() && origin != Origin::Alert {
                kept.push_back((batch, body, origin));
                continue;
            }
            match state.spool.push(
                self.encoder.encoding(),
                batch,
                &body,
                origin,
                EntrySync::Deferred,
            ) {
                Ok(pushed) => state.count_drops(&pushed),
                Err(e @ PushError::Full { .. }) => {
                    full.get_or_insert(e);
                    kept.push_back((batch, body, origin));
                }
                Err(PushError::Io { source, .. }) => {
                    let _ = state.spool.sync_entries();
                    kept.push_back((batch, body, origin));
                    kept.append(&mut self.closed);
                    self.closed = kept;
                    return Err(SinkError::Io {
                        target: format!("the spool in {}", state.spool.dir().display()),
                        source,
                    });
                }
            }
        }
        self.closed = kept;
        if let Some(e) = full {
            let _ = state.spool.sync_entries();
            // Pushed meanwhile (alerts): sent at once, as nothing holds them back.
            self.shared.notify(&state);
            let why = state
                .status
                .last_error
                .clone()
                .map_or_else(String::new, |last| format!(" (collector: {last})"));
            let (target, what) = if self.buffer == BufferKind::Memory {
                (
                    "the memory buffer".to_owned(),
                    format!(
                        "full: {} bytes in {} batch(es) not yet acknowledged by the collector; \
                         reading pauses (the logs wait) until it takes them",
                        state.spool.bytes(),
                        state.spool.len()
                    ),
                )
            } else {
                (
                    format!("the spool in {}", state.spool.dir().display()),
                    e.to_string(),
                )
            };
            return Err(SinkError::Io {
                target,
                source: io::Error::new(io::ErrorKind::StorageFull, format!("{what}{why}")),
            });
        }
        state.spool.sync_entries().map_err(|source| SinkError::Io {
            target: format!("the spool in {}", state.spool.dir().display()),
            source,
        })?;
        // The commit's last batch carries where reading resumes after it (the in-flight note).
        if let Some(resume) = self.resume_next.take() {
            let end = state.spool.next_seq().saturating_sub(1);
            if end > self.attached && state.spool.covers(end).is_some_and(|c| c != 0) {
                state.resume.insert(end, resume);
                self.attached = end;
            }
        }
        self.alert = false;
        if state.unreported != (0, 0) {
            let (b, e) = std::mem::take(&mut state.unreported);
            self.open
                .push(batch::spool_dropped(&self.identity, b, e).as_bytes());
            self.alert = true;
        }
        // What was spooled ships once released ([`Sink::release`] wakes the senders then), or
        // at once without the checkpoint handshake.
        if self.buffer != BufferKind::Disk || state.released.is_none() {
            self.shared.notify(&state);
        }
        if self.buffer != BufferKind::None {
            return Ok(());
        }
        // Spool disabled: durable means acknowledged.
        let deadline = Instant::now() + COMMIT_WAIT;
        while !state.spool.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                let last = state.status.last_error.clone().unwrap_or_default();
                return Err(SinkError::Io {
                    target: format!("collector {}", self.url.as_str()),
                    source: io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "{} batch(es) not yet acknowledged (spool disabled: events count as \
                             delivered only on the collector's 2xx) {last}",
                            state.spool.len()
                        ),
                    ),
                });
            }
            state = self
                .shared
                .wake
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Ok(())
    }

    /// The last spooled batch's sequence number (everything the pipeline committed is at or
    /// below it).
    fn mark(&self) -> SinkMark {
        let state = self.shared.lock();
        SinkMark {
            object: if self.buffer == BufferKind::Memory {
                MEMORY_MARK_OBJECT
            } else {
                MARK_OBJECT
            },
            offset: state.spool.next_seq().saturating_sub(1),
        }
    }

    /// With the memory buffer: every pipeline batch up to the mark has been acknowledged.
    fn acknowledged(&self) -> Option<SinkMark> {
        if self.buffer != BufferKind::Memory {
            return None;
        }
        let state = self.shared.lock();
        state.spool.acknowledged().map(|offset| SinkMark {
            object: MEMORY_MARK_OBJECT,
            offset,
        })
    }

    fn checkpoint_interval(&self) -> Duration {
        self.config.buffer.checkpoint_interval
    }

    fn resume_point(&mut self, point: Vec<u8>) {
        if self.buffer == BufferKind::Memory {
            self.resume_next = Some(Arc::from(point));
        }
    }

    fn take_resume(&mut self) -> Option<(SinkMark, Vec<u8>)> {
        self.resumed.take()
    }

    /// With the memory buffer: waits up to `wait` for the ring to empty, then stops the
    /// senders (a batch in flight is finished first, so its acknowledgement is counted).
    fn stop_sending(&mut self, wait: Duration) {
        if self.buffer != BufferKind::Memory {
            return;
        }
        self.wait_idle(wait);
        self.stop_shippers();
        // Everything acknowledged: nothing to send again or resume from at the next start.
        let mut state = self.shared.lock();
        let end = state.spool.next_seq().saturating_sub(1);
        if state.spool.is_empty()
            && let Some(note) = state.note.as_mut()
        {
            let _ = note.write(end, None, &[]);
        }
    }

    /// Batches up to `mark` may ship. With the spool disabled commits are acknowledged before
    /// they return, so there is nothing to hold back.
    fn release(&mut self, mark: SinkMark) {
        if self.buffer != BufferKind::Disk || mark.object != MARK_OBJECT {
            return;
        }
        let mut state = self.shared.lock();
        state.released = Some(state.released.map_or(mark.offset, |r| r.max(mark.offset)));
        self.shared.notify(&state);
    }

    /// Deletes the spooled pipeline batches above `mark`: they were spooled after the last
    /// persisted checkpoint, so their events are read and spooled again. Without a mark (a first
    /// start, or checkpoints lost) nothing is deleted: the logs may not be read again.
    fn recover(&mut self, mark: Option<SinkMark>) -> Result<(), SinkError> {
        if self.buffer == BufferKind::Disk {
            let mut state = self.shared.lock();
            recover_spool(&mut state, mark);
            self.shared.notify(&state);
        }
        Ok(())
    }

    fn wants_commit(&self, more_input: bool) -> bool {
        (self.alert || !self.closed.is_empty()) && !more_input
    }

    fn has_backlog(&self) -> bool {
        !self.shared.lock().spool.is_empty()
    }

    fn failed_attempts(&self) -> u64 {
        self.shared.lock().status.failures
    }

    fn max_age(&self) -> Duration {
        self.config.batch_max_age
    }

    /// `collector https://...`, then the backlog and the last error when there are any (this
    /// is what `authtrail status` shows for the sink).
    fn report(&self) -> Option<crate::sink::SinkReport> {
        let state = self.shared.lock();
        Some(crate::sink::SinkReport {
            backlog_batches: state.spool.len() as u64,
            backlog_bytes: state.spool.bytes(),
            sent_batches: state.status.sent_batches,
            sent_events: state.status.sent_events,
            sent_body_bytes: state.status.sent_body_bytes,
            dropped_events: state.status.dropped_events,
            rejected_events: state.status.rejected_events,
            failures: state.status.failures,
            last_error: state.status.last_error.clone(),
            next_attempt: state
                .status
                .last_error
                .as_ref()
                .and_then(|_| state.not_before.checked_duration_since(Instant::now()))
                .map(|wait| {
                    let mut at = crate::pipeline::wall_clock();
                    // Rounded up: the attempt is not due before the time shown.
                    at.secs += i64::try_from(wait.as_secs()).unwrap_or(i64::MAX / 2) + 1;
                    at.nanos = 0;
                    at.rfc3339().to_string()
                }),
        })
    }

    fn describe(&self) -> String {
        let state = self.shared.lock();
        let mut text = match self.wire {
            Wire::Collector => format!("collector {}", self.url.as_str()),
            Wire::Otlp(_) => format!(
                "otlp {}{}",
                self.url.as_str(),
                self.config.path.as_deref().unwrap_or(otlp::DEFAULT_PATH)
            ),
        };
        if !state.spool.is_empty() {
            text.push_str(&format!(
                " ({} batch(es), {} bytes waiting)",
                state.spool.len(),
                state.spool.bytes()
            ));
        }
        if let Some(e) = &state.status.last_error {
            text.push_str(&format!("; last error: {e}"));
        }
        text
    }
}

impl CollectorSink {
    /// Stops the sender threads (a batch in flight is finished first) and waits for them.
    fn stop_shippers(&mut self) {
        let mut state = self.shared.lock();
        state.stop = true;
        self.shared.notify(&state);
        drop(state);
        for t in self.shippers.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for CollectorSink {
    fn drop(&mut self) {
        self.stop_shippers();
    }
}

/// [`Sink::recover`] on the spool: deletes the pipeline batches above `mark` and releases the
/// rest.
fn recover_spool(state: &mut State, mark: Option<SinkMark>) {
    let released = match mark.filter(|m| m.object == MARK_OBJECT) {
        Some(m) => {
            let doomed = state.spool.discard_after(m.offset);
            if let (Some(first), Some(last)) = (doomed.first(), doomed.last()) {
                let msg = format!(
                    "discarded {} spooled batch(es) ({first} to {last}) written after the last \
                     persisted checkpoint; their events are read again from the logs",
                    doomed.len()
                );
                state.note(msg);
            }
            m.offset
        }
        None => state.spool.next_seq().saturating_sub(1),
    };
    state.released = Some(released);
}

/// With the memory buffer, at start: reads the in-flight note ([`in_flight`]); unless it is older
/// than the persisted checkpoints (`mark`), takes its batches into the ring under their own
/// keys and returns its resume point with the mark it waits for. New batches are numbered
/// above the note and the mark, so marks compare across restarts.
fn recover_in_flight(
    state: &mut State,
    dir: &Path,
    mark: Option<SinkMark>,
) -> Option<(SinkMark, Vec<u8>)> {
    let persisted = mark
        .filter(|m| m.object == MEMORY_MARK_OBJECT)
        .map_or(0, |m| m.offset);
    let (file, note, damaged) = match InFlight::open(dir) {
        Ok(opened) => opened,
        Err(e) => {
            state.note(format!(
                "the memory buffer's in-flight note: {e}; after a crash, what the collector \
                 took since the last checkpoint is read and stored again"
            ));
            state.spool.adopt(&[], persisted);
            return None;
        }
    };
    state.note = Some(file);
    for d in damaged {
        // The kill cut a write short; the other file holds the note before it.
        tracing::info!("in-flight note not whole, the one before it is used: {d}");
    }
    let Some(note) = note.filter(|n| n.mark >= persisted) else {
        state.spool.adopt(&[], persisted);
        return None;
    };
    let Some(resume) = note.resume else {
        // A clean stop with everything acknowledged: nothing to send again.
        state.spool.adopt(&[], persisted.max(note.mark));
        return None;
    };
    let (count, events) = (
        note.batches.len(),
        note.batches
            .iter()
            .map(|b| u64::from(b.events))
            .sum::<u64>(),
    );
    if !state.spool.adopt(&note.batches, persisted.max(note.mark)) {
        state.note(format!(
            "the {count} batch(es) in flight before the last stop do not fit the memory buffer; \
             reading resumes at the persisted checkpoints, and what the collector took since \
             then is stored again"
        ));
        state.spool.adopt(&[], persisted.max(note.mark));
        return None;
    }
    if count > 0 {
        state.note(format!(
            "sending the {count} batch(es) ({events} event(s)) in flight before the last stop \
             again, under their own keys; reading resumes after them"
        ));
        state.resume.insert(note.mark, Arc::from(resume.clone()));
    }
    Some((
        SinkMark {
            object: MEMORY_MARK_OBJECT,
            offset: note.mark,
        },
        resume,
    ))
}

/// With the memory buffer, before batch `seq` is sent: unless the in-flight note already holds
/// it, notes its group (the batches up to the next resume point) and that resume point
/// ([`in_flight`]). A batch of alerts sent ahead of its commit's other batches (a full ring)
/// has no resume point yet and is sent without a note: after a crash its alerts may be stored
/// twice. A note that cannot be written is reported once; the events are then at least once.
fn note_in_flight(state: &mut State, seq: u64) {
    if state.noted.contains(&seq) {
        return;
    }
    let Some(covers) = state.spool.covers(seq).filter(|c| *c != 0) else {
        return;
    };
    let Some((&end, resume)) = state.resume.range(covers..).next() else {
        return;
    };
    let resume = resume.clone();
    let batches = state.spool.memory_batches_up_to(end);
    let Some(note) = state.note.as_mut() else {
        return;
    };
    let files: Vec<&[u8]> = batches.iter().map(|(_, b)| b.as_slice()).collect();
    match note.write(end, Some(&resume), &files) {
        Ok(()) => {
            state.noted = batches.iter().map(|(s, _)| *s).collect();
            state.note_failed = false;
        }
        Err(e) => {
            state.noted.clear();
            if !std::mem::replace(&mut state.note_failed, true) {
                state.note(format!(
                    "writing the memory buffer's in-flight note: {e}; after a crash, what the \
                     collector took since the last checkpoint is stored again"
                ));
            }
        }
    }
}

/// One sender thread's state ([`MAX_IN_FLIGHT`] of them share the spool).
struct Shipper {
    shared: Arc<Shared>,
    client: Client,
    identity: AgentIdentity,
    heartbeat: Duration,
    encoding: Encoding,
    /// `compression-level` (for `encoding`).
    level: Option<i32>,
    /// 0 is the sender that always runs; the others only drain a backlog.
    index: usize,
    /// The memory buffer: one batch at a time, in order (see the module docs); the other
    /// senders never send.
    in_order: bool,
}

impl Shipper {
    /// Whether this sender may take a batch now: the first always; the others only while the
    /// backlog is deep and the collector healthy.
    fn may_send(&self, state: &State) -> bool {
        self.index == 0
            || (!self.in_order
                && state.spool.len() >= PARALLEL_BACKLOG
                && state.status.last_error.is_none())
    }

    fn run(mut self) {
        let shared = self.shared.clone();
        let mut state = shared.lock();
        loop {
            if state.stop {
                return;
            }
            let now = Instant::now();
            let next = if self.may_send(&state) {
                state
                    .spool
                    .next_to_send_except(state.released, &state.in_flight)
            } else {
                None
            };
            let wait_until = match next {
                _ if now < state.not_before => Some(state.not_before),
                Some(seq) => {
                    let batch = match state.spool.load(seq) {
                        Ok(Some(b)) => b,
                        Ok(None) => continue,
                        Err(spool::LoadError::Io(why)) => {
                            let wait = state.backoff.next_wait();
                            state.not_before = Instant::now() + wait;
                            state.status.last_error = Some(why.clone());
                            state.note(format!("{why}; retrying in {:?}", round_ms(wait)));
                            continue;
                        }
                        Err(e) => {
                            state.note(e.to_string());
                            continue;
                        }
                    };
                    if self.in_order {
                        note_in_flight(&mut state, seq);
                    }
                    state.in_flight.insert(seq);
                    let since = *state.backlog_since.get_or_insert(now);
                    self.client.set_backlog(agent_core::wire::SpoolBacklog {
                        batches: state.spool.len() as u64,
                        bytes: state.spool.bytes(),
                        lag_ms: u64::try_from(now.duration_since(since).as_millis())
                            .unwrap_or(u64::MAX),
                    });
                    drop(state);
                    let outcome = self.client.send(&batch);
                    state = shared.lock();
                    state.in_flight.remove(&seq);
                    if matches!(outcome, Outcome::Accepted(_)) {
                        state.last_sent = Instant::now();
                    }
                    if let Some(wait) = self.settle(&mut state, &batch, outcome) {
                        state.not_before = Instant::now() + wait;
                    }
                    // Resume points whose batches are all acknowledged are no longer needed.
                    if let Some(acked) = state.spool.acknowledged() {
                        state.resume = state.resume.split_off(&acked.saturating_add(1));
                    }
                    if state.spool.is_empty() {
                        state.backlog_since = None;
                    }
                    shared.notify(&state);
                    None
                }
                // Batches held back until their checkpoints are persisted, being sent by
                // another sender, or left to the first sender: not idle.
                None if !state.spool.is_empty() || self.index != 0 => Some(now + self.heartbeat),
                None if now.duration_since(state.last_sent) >= self.heartbeat => {
                    self.spool_heartbeat(&mut state);
                    state.last_sent = now;
                    None
                }
                None => Some(state.last_sent + self.heartbeat),
            };
            if let Some(until) = wait_until {
                let now = Instant::now();
                // The other senders sleep on a condition of their own, woken only for a deep
                // backlog or a stop: a live log's batches do not wake them.
                let wake = if self.index == 0 {
                    &shared.wake
                } else {
                    &shared.wake_extra
                };
                if until > now {
                    state = wake
                        .wait_timeout(state, until - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    fn spool_heartbeat(&self, state: &mut State) {
        let mut b = OpenBatch::default();
        b.push(batch::heartbeat(&self.identity).as_bytes());
        let b = b.close();
        let pushed = self
            .encoding
            .encode_at(&b.ndjson, self.level)
            .map_err(|e| e.to_string())
            .and_then(|body| {
                state
                    .spool
                    .push(
                        self.encoding,
                        b.info(),
                        &body,
                        Origin::Agent,
                        EntrySync::Now,
                    )
                    .map_err(|e| e.to_string())
            });
        match pushed {
            Ok(p) => {
                state.status.heartbeats += 1;
                state.count_drops(&p);
            }
            Err(e) => state.note(format!("heartbeat not spooled: {e}")),
        }
    }

    /// Applies an outcome to the spool; returns how long to wait before the next attempt.
    fn settle(
        &mut self,
        state: &mut State,
        batch: &spool::SpooledBatch,
        outcome: Outcome,
    ) -> Option<Duration> {
        let seq = batch.seq;
        let failed = |state: &mut State, msg: String, wait: Duration| {
            state.status.failures += 1;
            state.status.last_error = Some(msg.clone());
            state.note(format!(
                "{msg}; batch {seq} stays spooled, retrying in {:?}",
                round_ms(wait)
            ));
            Some(wait)
        };
        match outcome {
            Outcome::Accepted(rejections) => {
                if rejections.count == 0
                    && let Some(m) = &rejections.message
                {
                    // OTLP: a partial success that rejected nothing is a warning.
                    state.note(format!("the receiver took batch {seq} with a warning: {m}"));
                }
                if rejections.count > 0 {
                    // The rest is stored; put the refused events aside before the batch goes.
                    let kept = keep_rejected(state, batch, &rejections);
                    state.status.rejected_events += rejections.count;
                    state.note(kept);
                }
                if state.spool.remove(seq) {
                    state.status.sent_batches += 1;
                    state.status.sent_events += u64::from(batch.events);
                    state.status.sent_body_bytes += batch.body.len() as u64;
                }
                if state.status.last_error.take().is_some() {
                    let msg = format!(
                        "the collector takes batches again; {} waiting",
                        state.spool.len()
                    );
                    state.note_recovery(msg);
                }
                state.backoff.reset();
                None
            }
            Outcome::TooLarge => {
                let halves = batch
                    .ndjson(config::BATCH_MAX_BYTES_LIMIT)
                    .ok()
                    .and_then(|ndjson| batch::split_lines(&ndjson));
                match halves {
                    Some((a, b)) => match state.spool.split(
                        seq,
                        batch.encoding,
                        // The configured level only means something for the configured coding.
                        self.level.filter(|_| batch.encoding == self.encoding),
                        [a, b],
                    ) {
                        Ok(Some((sa, sb))) => {
                            state.status.splits += 1;
                            state.note(format!(
                                "the collector found batch {seq} ({} events, {} bytes) too \
                                 large (413); split it into batches {sa} and {sb}",
                                batch.events,
                                batch.body.len()
                            ));
                            None
                        }
                        Ok(None) => None,
                        Err(e) => {
                            let wait = state.backoff.next_wait();
                            failed(state, format!("splitting batch {seq}: {e}"), wait)
                        }
                    },
                    None => {
                        self.dead_letter(state, seq, "413: too large, and a single event");
                        None
                    }
                }
            }
            Outcome::Conflict(text) => match state.spool.restream(batch) {
                Ok(Some(new_seq)) => {
                    state.status.conflicts += 1;
                    let stream = state.spool.stream();
                    state.note(format!(
                        "the collector already holds other content under stream {} batch \
                         {seq} (409: {text}); kept the batch and send it again as batch \
                         {new_seq} of a new stream {stream}",
                        batch.stream
                    ));
                    None
                }
                Ok(None) => None,
                Err(e) => {
                    let wait = state.backoff.next_wait();
                    failed(
                        state,
                        format!("409 for batch {seq} ({text}); starting a new stream failed: {e}"),
                        wait,
                    )
                }
            },
            Outcome::Malformed(snippet) => {
                self.dead_letter(state, seq, &format!("400 malformed: {snippet}"));
                None
            }
            Outcome::Permanent(why) => {
                self.dead_letter(state, seq, &why);
                None
            }
            Outcome::Refused(code, snippet) => {
                let wait = state.backoff.next_wait();
                let fix = if code == 403 {
                    // Authenticated, but as another agent: the credentials are fine, the id
                    // this agent claims is not theirs.
                    "the credentials were issued for another agent id: put that id in the state \
                     dir's `agent-id` file (before the agent's first start), or issue them for \
                     the id that file holds (`authtrail-collector certs issue-agent <ID>`)"
                } else {
                    "check [sink] auth.token-file and tls.cert-file"
                };
                failed(
                    state,
                    format!("the collector refused this agent (HTTP {code}: {snippet}); {fix}"),
                    wait,
                )
            }
            Outcome::Throttled(code, retry_after) => {
                let wait = match retry_after {
                    // Never sooner than asked, and spread so that a fleet told the same
                    // `Retry-After` does not come back in step.
                    Some(d) => state
                        .backoff
                        .spread(d.min(state.backoff.max()).max(retry::MIN_WAIT)),
                    None => state.backoff.next_wait(),
                };
                failed(
                    state,
                    format!(
                        "the collector is busy (HTTP {code}{})",
                        if retry_after.is_some() {
                            ", Retry-After honoured"
                        } else {
                            ""
                        }
                    ),
                    wait,
                )
            }
            Outcome::Failed(msg) => {
                let wait = state.backoff.next_wait();
                failed(state, format!("sending batch {seq}: {msg}"), wait)
            }
        }
    }

    fn dead_letter(&self, state: &mut State, seq: u64, reason: &str) {
        match state.spool.dead_letter(seq, reason) {
            Ok(path) => {
                state.status.dead_letters += 1;
                state.note(format!(
                    "the collector will not take batch {seq} ({reason}); moved it to {} \
                     and go on with the next",
                    path.display()
                ));
            }
            Err(e) => {
                // Keep it out of the queue anyway: retrying a malformed batch forever would
                // stop everything behind it.
                state.spool.remove(seq);
                state.note(format!(
                    "the collector will not take batch {seq} ({reason}) and it could not be \
                     kept in dead-letter/ ({e}); deleted"
                ));
            }
        }
    }
}

/// Writes the events of `batch` that the collector refused into `dead-letter/` (all of the
/// batch when the answer did not list every one); returns the line to log.
fn keep_rejected(
    state: &mut State,
    batch: &spool::SpooledBatch,
    rejections: &client::Rejections,
) -> String {
    let seq = batch.seq;
    let mut listed: Vec<String> = rejections
        .lines
        .iter()
        .map(|(line, why)| format!("line {line}: {why}"))
        .collect();
    listed.extend((rejections.message.iter()).map(|m| format!("the receiver's message: {m}")));
    let ndjson = match batch.ndjson(crate::config::BATCH_MAX_BYTES_LIMIT) {
        Ok(n) => n,
        Err(e) => {
            return format!(
                "the collector refused {} event(s) of batch {seq} ({}) and the batch cannot be \
                 read back to keep them: {e}",
                rejections.count,
                listed.join("; ")
            );
        }
    };
    let whole = (rejections.lines.len() as u64) < rejections.count;
    let kept: Vec<u8> = if whole {
        ndjson.clone()
    } else {
        let wanted: BTreeSet<usize> = rejections.lines.iter().map(|(l, _)| *l).collect();
        ndjson
            .split_inclusive(|&b| b == b'\n')
            .enumerate()
            .filter(|(i, _)| wanted.contains(&(i + 1)))
            .flat_map(|(_, l)| {
                let mut l = l.to_vec();
                if l.last() != Some(&b'\n') {
                    l.push(b'\n');
                }
                l
            })
            .collect()
    };
    let mut reason = format!(
        "the collector refused {} event(s) of batch {seq} (stream {}); the rest was stored{}\n",
        rejections.count,
        batch.stream,
        if whole {
            "; not every refused line was listed, so the whole batch is kept"
        } else {
            ""
        }
    );
    for l in &listed {
        reason.push_str(l);
        reason.push('\n');
    }
    match state.spool.keep_rejected(seq, &kept, &reason) {
        Ok(path) => format!(
            "the collector refused {} event(s) of batch {seq} and stored the rest; kept them \
             in {} ({})",
            rejections.count,
            path.display(),
            listed.join("; ")
        ),
        Err(e) => format!(
            "the collector refused {} event(s) of batch {seq} and stored the rest; they could \
             not be kept in dead-letter/ ({e}): {}",
            rejections.count,
            listed.join("; ")
        ),
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_only() {
        let u = CollectorUrl::parse("https://collector.example:8443/").unwrap();
        assert_eq!(u.endpoint(), "https://collector.example:8443/v1/batches");
        assert_eq!(u.host(), "collector.example");
        let e = CollectorUrl::parse("http://collector.example").unwrap_err();
        assert!(e.contains("no plaintext fallback"), "{e}");
        assert!(
            CollectorUrl::parse("HTTP://x")
                .unwrap_err()
                .contains("plaintext")
        );
        assert!(CollectorUrl::parse("ftp://x").is_err());
        assert!(CollectorUrl::parse("").unwrap_err().contains("required"));
        assert!(CollectorUrl::parse("https://u:p@x").is_err());
        assert!(CollectorUrl::parse("https://x/?a=1").is_err());
    }

    #[test]
    fn proxy_from_config_or_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            proxy_for(Some("http://p:1"), "c.example", env(&[])).as_deref(),
            Some("http://p:1")
        );
        assert_eq!(proxy_for(None, "c.example", env(&[])), None);
        assert_eq!(
            proxy_for(None, "c.example", env(&[("https_proxy", "p:3128")])).as_deref(),
            Some("http://p:3128")
        );
        let vars = &[
            ("HTTPS_PROXY", "http://p:3128"),
            ("NO_PROXY", "localhost, .internal"),
        ];
        assert_eq!(proxy_for(None, "c.internal", env(vars)), None);
        assert_eq!(
            proxy_for(None, "c.example", env(vars)).as_deref(),
            Some("http://p:3128")
        );
    }

    #[test]
    fn no_proxy_matches_like_curl() {
        assert!(no_proxy_matches("*", "anything"));
        assert!(no_proxy_matches("example.com", "example.com"));
        assert!(no_proxy_matches("example.com", "a.Example.com"));
        assert!(no_proxy_matches(".example.com", "a.example.com"));
        assert!(no_proxy_matches("*.example.com", "a.example.com"));
        assert!(no_proxy_matches("a, example.com:8443", "example.com"));
        assert!(!no_proxy_matches("example.com", "badexample.com"));
        assert!(!no_proxy_matches("", "example.com"));
        assert!(no_proxy_matches("::1", "[::1]"));
        assert!(no_proxy_matches("127.0.0.1", "127.0.0.1"));
    }
}

#[cfg(test)]
mod in_flight_tests {
    use super::*;

    /// With the memory buffer, a note left by a killed process is taken back at start: its
    /// batch waits in the ring under its own number (acknowledgements stay below it), new numbers
    /// start above it, and its resume point goes to the pipeline; a note older than the persisted
    /// checkpoints (their mark is past it: a power cut kept an old copy) is ignored.
    #[test]
    fn a_note_left_in_flight_is_sent_again_under_its_keys_unless_the_checkpoints_are_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join(SPOOL_DIR);
        std::fs::create_dir_all(&spool_dir).unwrap();
        let batch = spool::SpooledBatch {
            stream: uuid::Uuid::new_v4(),
            seq: 7,
            encoding: Encoding::Identity,
            split_of: 0,
            flags: 0,
            events: 1,
            ndjson_len: 8,
            created: 0,
            body: b"{\"a\":1}\n".to_vec(),
        };
        let (mut note, _, _) = InFlight::open(&spool_dir).unwrap();
        note.write(7, Some(b"resume"), &[&batch.to_file_bytes()])
            .unwrap();
        drop(note);
        let mut config = CollectorConfig {
            // Nothing listens: the batch stays in the ring.
            url: Some(CollectorUrl::parse("https://127.0.0.1:9").unwrap()),
            ..CollectorConfig::default()
        };
        config.buffer.kind = Some(BufferKind::Memory);
        config.heartbeat = Duration::from_secs(3600);
        let facts = HostFacts {
            hostname: None,
            os_name: None,
            os_version: None,
            kernel: None,
            arch: "x86_64".into(),
            boot_time: None,
            host_id: None,
        };
        let memory = |offset| SinkMark {
            object: MEMORY_MARK_OBJECT,
            offset,
        };
        let open = |persisted: u64| {
            CollectorSink::open_recovered(
                &config,
                dir.path(),
                "agent",
                facts.clone(),
                Some(memory(persisted)),
            )
            .unwrap()
        };

        let mut sink = open(5);
        assert_eq!(sink.take_resume(), Some((memory(7), b"resume".to_vec())));
        let st = sink.status();
        assert_eq!((st.spooled_batches, st.next_seq), (1, 8));
        assert_eq!(sink.acknowledged(), Some(memory(6)));
        drop(sink);

        let mut sink = open(9);
        assert_eq!(sink.take_resume(), None);
        let st = sink.status();
        assert_eq!((st.spooled_batches, st.next_seq), (0, 10));
    }
}
