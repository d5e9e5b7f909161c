//! The HTTPS server: accept, TLS handshake, HTTP/1.1, `POST /v1/batches` and `GET /healthz`.
//!
//! A request goes: credentials present (401) -> protocol headers (400) -> credentials match
//! the claimed agent (401/403) -> declared length (413) -> an ingest slot (503) -> body within
//! `request-timeout` and `max-body-bytes` (408/413) -> decompress and decode on a blocking
//! thread (400 only for a body that cannot be read at all, 413; events that break the wire
//! contract are refused one by one and listed in the answer) -> the writer thread's queue
//! (503) -> commit -> 200 (also for an identical re-send), or 409 when (agent, stream, seq) is
//! stored with other content.
//!
//! **Architecture Invariant:** a 200 for a batch is sent only after its SQLite transaction has
//! committed (with `[store] type = "nats"`: after JetStream acknowledged its publish,
//! [`crate::nats`]); every other answer means nothing of the batch was stored.
//!
//! **Architecture Invariant:** there is no plaintext listener; every byte goes through rustls.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

use crate::auth::{self, AuthError, Credentials, Tokens, TokensError};
use crate::budget::{Budget, Grant};
use crate::config::{Config, Require};
use crate::ingest::{self, DecodeError, Encoding};
use crate::store::{Outcome, Store, StoreError, Writer};
use crate::tls::{self, TlsError};

pub(crate) use agent_core::wire::{
    AGENT_ID_HEADER, BATCH_SEQ_HEADER, BATCHES_PATH, SCHEMA_HEADER, SCHEMA_VERSION, STREAM_HEADER,
};

/// The health endpoint, no authentication: `200 ok`, or 503 with the reason when the store
/// cannot write (read-only or full file system, unwritable file, failed last commit).
pub(crate) const HEALTH_PATH: &str = "/healthz";
pub(crate) use agent_core::wire::RETRY_AFTER_MS_HEADER;
/// How long shutdown waits for open requests to finish.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Largest request head (line and headers) buffered, bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A connection's HTTP read buffer at the most: a maximal head and one TLS record (16 KiB)
/// read with it.
const CONNECTION_READ_BUF_BYTES: usize = MAX_HEAD_BYTES + 16 * 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Certificates or keys.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The tokens file.
    #[error(transparent)]
    Tokens(#[from] TokensError),
    /// The web console's token or read connection.
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    /// The store.
    #[error("{}: {cause}", .path.display())]
    Store {
        /// The database file.
        path: std::path::PathBuf,
        /// What went wrong.
        #[source]
        cause: StoreError,
    },
    /// The NATS servers or the stream (`[store] type = "nats"`).
    #[error(transparent)]
    Nats(#[from] crate::nats::NatsError),
    /// The data directory, the writer thread, or the listening socket.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// What the system said.
        #[source]
        cause: std::io::Error,
    },
}

struct State {
    require: Require,
    tokens: Tokens,
    limits: crate::config::Limits,
    /// The SQLite store's writer (`[store] type = "sqlite"`), or
    writer: Option<Writer>,
    /// the JetStream publisher (`[store] type = "nats"`).
    nats: Option<crate::nats::Publisher>,
    /// Batches being decoded at once.
    slots: Semaphore,
    /// Bytes of bodies in flight, decoded batches queued for the writer included.
    budget: Arc<Budget>,
    /// Batches in progress per agent.
    turns: Mutex<HashMap<Uuid, usize>>,
    /// The data directory and the store's file, for `/healthz`.
    data_dir: std::path::PathBuf,
    db: std::path::PathBuf,
    /// Why the writer's last commit failed, until one succeeds.
    store_error: Mutex<Option<String>>,
    /// `[tls] revoked-file`.
    revoked: Option<auth::Revoked>,
    console: Option<Arc<crate::console::Console>>,
}

/// Whether the store can take another batch: its file system writable with room for a
/// maximal body, its file open for writing, and its last commit not failed.
fn store_health(state: &State) -> Result<(), String> {
    use rustix::fs::{StatVfsMountFlags, statvfs};
    if let Some(nats) = &state.nats {
        return nats.health();
    }
    let vfs = statvfs(&state.data_dir).map_err(|e| format!("{}: {e}", state.data_dir.display()))?;
    if vfs.f_flag.contains(StatVfsMountFlags::RDONLY) {
        return Err(format!(
            "{}: the file system is read-only",
            state.data_dir.display()
        ));
    }
    let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
    if free < state.limits.max_body_bytes {
        return Err(format!(
            "{}: {free} bytes free, less than one maximal batch ({})",
            state.data_dir.display(),
            state.limits.max_body_bytes
        ));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&state.db)
        .map_err(|e| format!("{}: cannot open for writing: {e}", state.db.display()))?;
    if let Ok(last) = state.store_error.lock()
        && let Some(e) = last.as_ref()
    {
        return Err(format!("the last commit failed: {e}"));
    }
    Ok(())
}

/// One of an agent's `max-batches-per-agent` turns, given back on drop.
struct AgentTurn<'a> {
    turns: &'a Mutex<HashMap<Uuid, usize>>,
    agent: Uuid,
}

impl<'a> AgentTurn<'a> {
    fn take(turns: &'a Mutex<HashMap<Uuid, usize>>, agent: Uuid, max: usize) -> Option<Self> {
        let mut map = turns.lock().ok()?;
        let n = map.entry(agent).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AgentTurn { turns, agent })
    }
}

impl Drop for AgentTurn<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.turns.lock()
            && let Some(n) = map.get_mut(&self.agent)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.agent);
            }
        }
    }
}

/// 429: this agent already has `max-batches-per-agent` batches in progress.
fn too_many(state: &State) -> Reply {
    let mut r = busy(
        &format!(
            "this agent already has {} batches in progress",
            state.limits.max_batches_per_agent
        ),
        crate::budget::MIN_RETRY.max(state.budget.retry_after(0)),
    );
    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    r
}

/// Opens (creating) the SQLite store in `data-dir` and starts its writer thread, with the
/// fleet detections on a thread and a connection of their own: what `serve` with the SQLite
/// store and `consume` both write through.
pub fn open_writer(config: &Config) -> Result<(Writer, std::thread::JoinHandle<()>), ServeError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(&config.data_dir)
        .map_err(|cause| ServeError::Io {
            what: format!("creating data-dir {}", config.data_dir.display()),
            cause,
        })?;
    let db = config.db_path();
    let store_err = |cause| ServeError::Store {
        path: db.clone(),
        cause,
    };
    let store = Store::open(&db).map_err(store_err)?;
    // The fleet detections read and write through a connection of their own, on their
    // own thread.
    let mut alerts_store = Store::open(&db).map_err(store_err)?;
    alerts_store
        .set_cache_kib(crate::store::READ_CACHE_KIB)
        .map_err(store_err)?;
    let alerts = crate::alerts::Alerts::open(&mut alerts_store, &config.fleet, now_us())
        .map_err(store_err)?;
    let alerts = crate::alerts::AlertsThread::spawn(alerts, alerts_store).map_err(|cause| {
        ServeError::Io {
            what: "starting the fleet detections' thread".to_owned(),
            cause,
        }
    })?;
    let (writer, writer_thread) =
        Writer::spawn_with(store, config.limits.writer_queue, Some(alerts)).map_err(|cause| {
            ServeError::Io {
                what: "starting the store writer thread".to_owned(),
                cause,
            }
        })?;
    Ok((writer, writer_thread))
}

/// A bound, not yet running server. [`Server::local_addr`] tells the port when `listen` asked
/// for port 0.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

/// Binds and runs until `shutdown` completes: [`Server::bind`] then [`Server::run`].
pub async fn serve(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    Server::bind(config).await?.run(shutdown).await;
    Ok(())
}

impl Server {
    /// Loads certificates and tokens, opens (creating) the store in `data-dir`, starts the
    /// writer thread and binds the listening socket. `config` should have passed
    /// [`Config::validate`].
    pub async fn bind(config: &Config) -> Result<Server, ServeError> {
        let tls = tls::server_config(config)?;
        let tokens = match &config.auth.tokens_file {
            Some(path) => Tokens::load(path)?,
            None => Tokens::default(),
        };
        let db = config.db_path();
        // With the NATS store the collector keeps nothing: no store, no writer, no console.
        let (writer, writer_thread, nats) = match config.store.nats() {
            None => {
                let (w, t) = open_writer(config)?;
                (Some(w), Some(t), None)
            }
            Some(n) => (None, None, Some(crate::nats::Publisher::connect(n).await?)),
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|cause| ServeError::Io {
                what: format!("listening on {}", config.listen),
                cause,
            })?;
        let addr = listener.local_addr().map_err(|cause| ServeError::Io {
            what: "reading the bound address".to_owned(),
            cause,
        })?;
        let console = match nats {
            None => {
                crate::console::Console::open(&config.console, &db, config.heartbeat_stale_after)?
                    .map(Arc::new)
            }
            Some(_) => None,
        };
        if let Some(c) = &console {
            c.set_addr(addr);
        }
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            state: Arc::new(State {
                require: config.auth.require,
                tokens,
                limits: config.limits.clone(),
                writer,
                nats,
                slots: Semaphore::new(config.limits.max_concurrent_batches),
                budget: Budget::new(config.limits.max_inflight_bytes),
                turns: Mutex::new(HashMap::new()),
                data_dir: config.data_dir.clone(),
                db,
                store_error: Mutex::new(None),
                revoked: config.tls.revoked_file.clone().map(auth::Revoked::new),
                console,
            }),
            writer_thread,
            addr,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The web console, when `[console]` turned it on.
    pub fn console(&self) -> Option<Arc<crate::console::Console>> {
        self.state.console.clone()
    }

    /// Serves until `shutdown` completes; then stops accepting, lets open requests finish (up
    /// to [`SHUTDOWN_GRACE`]), and waits for the writer to commit what it has queued.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let Server {
            listener,
            acceptor,
            state,
            writer_thread,
            ..
        } = self;
        let max = state.limits.max_connections;
        let connections = Arc::new(Semaphore::new(max));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                p = connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let state = state.clone();
            let stop = stop_rx.clone();
            tokio::spawn(async move {
                connection(acceptor, state, tcp, peer, stop).await;
                drop(permit);
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        // Every connection holds a permit: having them all back means all have finished.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, connections.acquire_many(max as u32)).await;
        drop(state);
        // The writer ends once the last `Writer` is gone (requests still running after the
        // grace period hold one; they end with the runtime).
        if let Some(t) = writer_thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Per-connection facts the handler needs.
struct Peer {
    addr: SocketAddr,
    /// `Some(cert's agent id)` when a verified client certificate was presented.
    cert: Option<Option<Uuid>>,
    /// That certificate's serial (hex), for the revocation list.
    serial: Option<String>,
    /// The person a console admin certificate names (`auth::cert_admin`).
    admin: Option<String>,
}

async fn connection(
    acceptor: TlsAcceptor,
    state: Arc<State>,
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let header_timeout = state.limits.header_timeout;
    // The handshake gets the header timeout too: a client that connects and sends nothing is
    // dropped after it.
    let tls = match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!("{addr}: TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::info!("{addr}: TLS handshake timed out");
            return;
        }
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| auth::cert_agent_id(c));
    let serial = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| auth::cert_serial(c));
    let admin = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| auth::cert_admin(c));
    let peer = Arc::new(Peer {
        addr,
        cert,
        serial,
        admin,
    });
    let service = service_fn(move |req| {
        let state = state.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(handle(&state, &peer, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // Room for a head of MAX_HEAD_BYTES plus the first body bytes read with it: the exact
        // bound is checked in `handle`. Every connection may hold this much (the bounds
        // table's per-connection cost), so no more than a TLS record's worth above the head.
        .max_buf_size(CONNECTION_READ_BUF_BYTES)
        .serve_connection(TokioIo::new(tls), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

type Reply = Response<Full<Bytes>>;

fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body + "\n")));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(agent_core::wire::CONTENT_TYPE_JSON),
    );
    r
}

/// 503 with `Retry-After` (whole seconds, rounded up) and [`RETRY_AFTER_MS_HEADER`].
fn busy(reason: &str, wait: Duration) -> Reply {
    let ms = wait.as_millis().max(1) as u64;
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{reason}; retry in {ms} ms"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(ms.div_ceil(1000)));
    r.headers_mut()
        .insert(RETRY_AFTER_MS_HEADER, HeaderValue::from(ms));
    r
}

/// 503 because the budget cannot grant `bytes` now.
fn budget_busy(budget: &Budget, bytes: u64) -> Reply {
    busy(
        "the collector's memory for bodies in flight is in use",
        budget.retry_after(bytes),
    )
}

/// An answer given before the body was read: the connection is closed after it, so the
/// unread body cannot be taken for the next request.
fn closing(mut r: Reply) -> Reply {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The size of `req`'s head as sent (request line, header lines, blank line), assuming the
/// usual `name: value` spelling.
fn head_len(req: &Request<Incoming>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + headers + 2
}

async fn handle(state: &State, peer: &Peer, req: Request<Incoming>) -> Reply {
    // hyper stops reading a head somewhat past its buffer size; the bound is exactly this.
    if head_len(&req) > MAX_HEAD_BYTES {
        return closing(text(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request head is larger than {MAX_HEAD_BYTES} bytes"),
        ));
    }
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET | &Method::HEAD, HEALTH_PATH) => match store_health(state) {
            Ok(()) => text(StatusCode::OK, "ok"),
            Err(why) if state.nats.is_some() => text(StatusCode::SERVICE_UNAVAILABLE, why),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the store cannot write: {why}"),
            ),
        },
        (&Method::POST, BATCHES_PATH) => {
            let reply = batch(state, peer, req).await;
            if reply.status().is_client_error() || reply.status().is_server_error() {
                tracing::warn!(
                    "{}: {} {}",
                    peer.addr,
                    reply.status().as_u16(),
                    String::from_utf8_lossy(
                        reply
                            .body()
                            .clone()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default()
                            .as_ref()
                    )
                    .trim_end()
                );
            }
            reply
        }
        (_, HEALTH_PATH | BATCHES_PATH) => {
            closing(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"))
        }
        (_, p) if state.console.is_some() && crate::console::owns(p) => match &state.console {
            Some(c) => c.handle(peer.addr, console_admin(state, peer), req).await,
            None => closing(text(StatusCode::NOT_FOUND, "not found")),
        },
        _ => closing(text(StatusCode::NOT_FOUND, "not found")),
    }
}

/// The person a request's admin certificate names, unless the certificate is revoked (or the
/// revocation list cannot be read: the console then falls back to its token login).
fn console_admin<'a>(state: &State, peer: &'a Peer) -> Option<&'a str> {
    let name = peer.admin.as_deref()?;
    match (&state.revoked, &peer.serial) {
        (None, _) => Some(name),
        (Some(list), Some(serial)) => match list.is_revoked(serial) {
            Ok(false) => Some(name),
            Ok(true) => None,
            Err(e) => {
                tracing::warn!("{}: console admin certificate not honoured: {e}", peer.addr);
                None
            }
        },
        (Some(_), None) => None,
    }
}

// A `Reply` as the error: it is the answer, built once per request and sent at once; boxing
// it would buy nothing.
#[allow(clippy::result_large_err)]
fn header<'a>(
    parts: &'a hyper::http::request::Parts,
    name: &str,
) -> Result<Option<&'a str>, Reply> {
    match parts.headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| {
            closing(text(
                StatusCode::BAD_REQUEST,
                format!("{name}: not visible ASCII"),
            ))
        }),
    }
}

/// Lower-case hex of a digest.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The members of a batch answer that list refused events (empty when none were):
/// `,"rejected":N,"rejections":[{"line":L,"reason":"..."},...]`.
fn rejections_json(batch: &ingest::Batch) -> String {
    if batch.rejected_count == 0 {
        return String::new();
    }
    let list: Vec<serde_json::Value> = batch
        .rejected
        .iter()
        .map(|r| serde_json::json!({"line": r.line, "reason": r.reason}))
        .collect();
    format!(
        ",\"rejected\":{},\"rejections\":{}",
        batch.rejected_count,
        serde_json::Value::Array(list)
    )
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// How much of a refused request's body is read and thrown away, as a multiple of
/// `max-body-bytes`, before the answer is sent. Without this the client may still be writing
/// when the connection closes, get a reset, and never see the 413 (or 401, 400...) that tells
/// it what to do. Bounded by this and by `request-timeout`.
pub(crate) const DRAIN_FACTOR: u64 = 4;

async fn batch(state: &State, peer: &Peer, req: Request<Incoming>) -> Reply {
    let (parts, mut body) = req.into_parts();
    let mut consumed = false;
    let mut authenticated = false;
    let reply = match batch_inner(
        state,
        peer,
        &parts,
        &mut body,
        &mut consumed,
        &mut authenticated,
    )
    .await
    {
        Ok(r) | Err(r) => r,
    };
    // Only an authenticated agent's refused body is drained (so that it sees the 413 that
    // tells it to split); an unauthenticated client gets its 401/403 (or 400) at once and the
    // connection is closed, never held while a body it claims arrives.
    if !consumed && authenticated && !body.is_end_stream() {
        let limit = state.limits.max_body_bytes.saturating_mul(DRAIN_FACTOR);
        let pace = Pace::new(state.limits.min_upload_rate);
        let _ =
            tokio::time::timeout(state.limits.request_timeout, drain(&mut body, limit, pace)).await;
    }
    reply
}

/// Reads and discards up to `limit` bytes of `body`, as long as it keeps `pace`.
async fn drain(body: &mut Incoming, limit: u64, mut pace: Pace) {
    while let Ok(Some(Ok(frame))) = pace.next(body).await {
        if let Some(data) = frame.data_ref() {
            pace.received += data.len() as u64;
            if pace.received > limit {
                return;
            }
        }
    }
}

/// How long a body may take before [`Pace`] starts counting.
pub(crate) const UPLOAD_GRACE: Duration = Duration::from_secs(1);

/// The minimum upload rate: after [`UPLOAD_GRACE`], a body must have arrived at `rate` bytes per
/// second on average since its headers, or it is cut. A client that stalls (or trickles)
/// therefore holds its memory grant and its agent's turn for about a second plus what it sent
/// divided by the rate, not the whole request timeout.
struct Pace {
    start: tokio::time::Instant,
    rate: u64,
    received: u64,
}

/// The body fell below the minimum upload rate.
struct TooSlow;

impl Pace {
    fn new(rate: u64) -> Pace {
        Pace {
            start: tokio::time::Instant::now(),
            rate: rate.max(1),
            received: 0,
        }
    }

    /// The next frame, unless it comes after the time by which `received + 1` bytes were due.
    async fn next(
        &self,
        body: &mut Incoming,
    ) -> Result<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>, TooSlow> {
        let due = Duration::from_secs_f64(self.received as f64 / self.rate as f64);
        tokio::time::timeout_at(self.start + UPLOAD_GRACE + due, body.frame())
            .await
            .map_err(|_| TooSlow)
    }
}

/// Why a body could not be read whole.
enum BodyError {
    TooLarge,
    /// The byte budget could not grant more.
    Busy,
    /// Slower than `min-upload-rate`.
    TooSlow,
    Io(hyper::Error),
}

/// Reads `body` into memory, failing once it passes `max` bytes (the rest stays unread). The
/// buffer starts at what `grant` holds (the declared length) and grows, doubling, only by
/// what `grant` can be grown by ([`ingest::grow_granted`]: the copy a growth makes included).
async fn read_body(
    body: &mut Incoming,
    max: u64,
    grant: &mut Grant,
    mut pace: Pace,
) -> Result<Vec<u8>, BodyError> {
    let mut buf = Vec::with_capacity(grant.bytes() as usize);
    while let Some(frame) = pace
        .next(body)
        .await
        .map_err(|TooSlow| BodyError::TooSlow)?
    {
        let frame = frame.map_err(BodyError::Io)?;
        pace.received += frame.data_ref().map_or(0, |d| d.len() as u64);
        if let Some(data) = frame.data_ref() {
            let len = buf.len() + data.len();
            if len as u64 > max {
                return Err(BodyError::TooLarge);
            }
            if len > buf.capacity() {
                let want = (buf.capacity() * 2)
                    .max(len)
                    .max(64 * 1024)
                    .min(max as usize);
                let step = want - buf.capacity();
                ingest::grow_granted(&mut buf, step, grant).map_err(|_| BodyError::Busy)?;
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf)
}

fn auth_reply(e: AuthError) -> Reply {
    if e.is_forbidden() {
        closing(text(StatusCode::FORBIDDEN, e.to_string()))
    } else {
        let mut r = closing(text(StatusCode::UNAUTHORIZED, e.to_string()));
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"authtrail\""),
        );
        r
    }
}

// A `Reply` as the error: it is the answer, built once per request and sent at once; boxing
// it would buy nothing.
#[allow(clippy::result_large_err)]
async fn batch_inner(
    state: &State,
    peer: &Peer,
    parts: &hyper::http::request::Parts,
    body: &mut Incoming,
    consumed: &mut bool,
    authenticated: &mut bool,
) -> Result<Reply, Reply> {
    let bad = |msg: String| closing(text(StatusCode::BAD_REQUEST, msg));
    let creds = Credentials {
        cert: peer.cert,
        authorization: header(parts, "authorization")?,
    };
    auth::check_present(&creds).map_err(auth_reply)?;

    let agent = header(parts, AGENT_ID_HEADER)?
        .ok_or_else(|| bad(format!("{AGENT_ID_HEADER} is missing")))?;
    let agent =
        Uuid::parse_str(agent).map_err(|_| bad(format!("{AGENT_ID_HEADER} is not a UUID")))?;
    let seq = header(parts, BATCH_SEQ_HEADER)?
        .ok_or_else(|| bad(format!("{BATCH_SEQ_HEADER} is missing")))?;
    let seq = agent_core::wire::parse_seq(seq)
        .and_then(|s| i64::try_from(s).ok())
        .ok_or_else(|| {
            bad(format!(
                "{BATCH_SEQ_HEADER} is not an integer from 0 to 2^63-1"
            ))
        })?;
    let stream =
        header(parts, STREAM_HEADER)?.ok_or_else(|| bad(format!("{STREAM_HEADER} is missing")))?;
    if !agent_core::wire::is_stream(stream) {
        return Err(bad(format!(
            "{STREAM_HEADER} must be 1 to {} ASCII letters, digits or '-'",
            agent_core::wire::MAX_STREAM_BYTES
        )));
    }
    let stream = stream.to_owned();
    match header(parts, SCHEMA_HEADER)? {
        Some(SCHEMA_VERSION) => {}
        Some(_) => {
            return Err(bad(format!(
                "{SCHEMA_HEADER}: only schema {SCHEMA_VERSION} is accepted"
            )));
        }
        None => {
            return Err(bad(format!(
                "{SCHEMA_HEADER} is missing (expected {SCHEMA_VERSION})"
            )));
        }
    }
    // A sender that names no type, or another, is read as NDJSON (third-party senders).
    let kind = agent_core::wire::Body::from_content_type(header(parts, "content-type")?)
        .unwrap_or_default();
    let encoding = Encoding::from_header(header(parts, "content-encoding")?).ok_or_else(|| {
        bad("content-encoding: only zstd, gzip or identity are accepted".to_owned())
    })?;
    auth::authorize(state.require, &state.tokens, &creds, agent).map_err(auth_reply)?;
    if let (Some(list), Some(serial)) = (&state.revoked, &peer.serial) {
        match list.is_revoked(serial) {
            Ok(false) => {}
            Ok(true) => {
                return Err(closing(text(
                    StatusCode::FORBIDDEN,
                    format!("the client certificate (serial {serial}) is revoked"),
                )));
            }
            Err(e) => {
                return Err(closing(busy(
                    &format!("the revocation list cannot be read: {e}"),
                    crate::budget::MAX_RETRY,
                )));
            }
        }
    }
    *authenticated = true;
    // The agent's spool backlog, a gauge for the console: one it cannot read is ignored.
    if let (Some(console), Some(b)) = (
        &state.console,
        header(parts, agent_core::wire::SPOOL_BACKLOG_HEADER)?,
    ) {
        match agent_core::wire::SpoolBacklog::parse(b) {
            Some(b) => console.record_backlog(agent, b, crate::console::api::now_us()),
            None => tracing::info!(
                "{}: {} not understood: {b:?}",
                peer.addr,
                agent_core::wire::SPOOL_BACKLOG_HEADER
            ),
        }
    }

    let limits = &state.limits;
    let too_large = || {
        closing(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than {} bytes; split the batch",
                limits.max_body_bytes
            ),
        ))
    };
    let declared = match header(parts, "content-length")? {
        Some(len) => {
            let len: u64 = len
                .parse()
                .map_err(|_| bad("content-length is not a number".to_owned()))?;
            if len > limits.max_body_bytes {
                return Err(too_large());
            }
            Some(len)
        }
        None => None,
    };
    // One agent's batches in progress at once are capped, before any memory is granted.
    let _turn = AgentTurn::take(&state.turns, agent, limits.max_batches_per_agent)
        .ok_or_else(|| too_many(state))?;

    // The declared length is granted before a byte of the body is read.
    let mut grant = state.budget.grant();
    if let Some(len) = declared {
        grant
            .try_grow(len)
            .map_err(|_| budget_busy(&state.budget, len))?;
    }

    let body = match tokio::time::timeout(
        limits.request_timeout,
        read_body(
            body,
            limits.max_body_bytes,
            &mut grant,
            Pace::new(limits.min_upload_rate),
        ),
    )
    .await
    {
        Err(_) => {
            // No second wait for a drain: this client is too slow already.
            *consumed = true;
            return Err(closing(text(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {}",
                    humantime::format_duration(limits.request_timeout)
                ),
            )));
        }
        Ok(Err(BodyError::TooLarge)) => return Err(too_large()),
        Ok(Err(BodyError::TooSlow)) => {
            *consumed = true;
            return Err(closing(text(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body arrived slower than {} bytes/s; cut",
                    limits.min_upload_rate
                ),
            )));
        }
        Ok(Err(BodyError::Busy)) => {
            return Err(closing(budget_busy(&state.budget, limits.max_body_bytes)));
        }
        Ok(Err(BodyError::Io(e))) => {
            *consumed = true;
            return Err(bad(format!("reading the body: {e}")));
        }
        Ok(Ok(b)) => b,
    };
    *consumed = true;

    // Decoding takes a slot (CPU); the body's memory is already granted.
    let _slot = state.slots.acquire().await.map_err(|_| {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the collector is stopping".to_owned(),
        )
    })?;
    // With the NATS store the body goes to the stream as the agent sent it (the consumer
    // decodes the same bytes): a copy is kept, granted like the rest.
    let sent = match &state.nats {
        Some(_) => {
            grant
                .try_grow(body.len() as u64)
                .map_err(|_| budget_busy(&state.budget, body.len() as u64))?;
            Some(Bytes::copy_from_slice(&body))
        }
        None => None,
    };
    let max = limits.max_decompressed_bytes;
    let (decoded, mut grant) = tokio::task::spawn_blocking(move || {
        let decoded =
            ingest::decode_body_within(encoding, kind, body, max, Some(agent), &mut grant);
        (decoded, grant)
    })
    .await
    .map_err(|e| {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("decoder failed: {e}"),
        )
    })?;
    drop(_slot);
    let mut batch = decoded.map_err(|e| match e {
        DecodeError::TooLarge { .. } | DecodeError::LineTooLong { .. } => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{e}; split the batch"),
        ),
        DecodeError::Busy { wanted } => budget_busy(&state.budget, wanted),
        _ => text(StatusCode::BAD_REQUEST, e.to_string()),
    })?;
    // What stays in memory until the writer has committed it: the stored body and the rows,
    // and what the writer holds while it stores them (granted with the batch, since the
    // writer cannot wait for the budget).
    let held = batch_bytes(&batch)
        + match state.nats {
            Some(_) => 0,
            None => crate::store::writer_bytes(&batch),
        };
    if held > grant.bytes() {
        grant
            .try_grow(held - grant.bytes())
            .map_err(|_| budget_busy(&state.budget, held))?;
    }
    grant.shrink_to(held);
    batch.stream = stream;
    let digest = batch.digest;
    let rejected = rejections_json(&batch);
    if batch.rejected_count > 0 {
        eprintln!(
            "authtrail-collector: {}: agent {agent} stream {} batch {seq}: {} event(s) refused \
             by the wire contract ({} claiming another agent); the rest is stored",
            peer.addr, batch.stream, batch.rejected_count, batch.forged
        );
    }
    let key = format!("agent {agent} stream {} batch {seq}", batch.stream);

    let outcome = if let (Some(nats), Some(sent)) = (&state.nats, sent) {
        let headers = crate::nats::Headers {
            agent,
            stream: batch.stream.clone(),
            seq,
            encoding,
            content_type: header(parts, "content-type")?.map(str::to_owned),
            received_at_us: now_us(),
            digest,
        };
        let events = batch.event_count;
        drop(batch);
        grant.shrink_to(sent.len() as u64);
        Ok(publish(state, nats, &headers, sent, events).await?)
    } else {
        let writer = state
            .writer
            .as_ref()
            .ok_or_else(|| busy("the collector has no store", crate::budget::MAX_RETRY))?;
        let reply = writer.submit(agent, seq, batch, now_us()).map_err(|_| {
            busy(
                "the store's queue is full",
                state.budget.retry_after(grant.bytes()),
            )
        })?;
        // The grant is held until the writer answers, even if this request is abandoned (the
        // client hangs up): the batch stays queued in memory until then.
        tokio::spawn(async move {
            let outcome = reply.await;
            drop(grant);
            outcome
        })
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| busy("the store's writer stopped", crate::budget::MAX_RETRY))?
    };
    if let Ok(mut last) = state.store_error.lock() {
        *last = match &outcome {
            Err(e) if !e.is_busy() => Some(e.to_string()),
            _ => None,
        };
    }
    match outcome {
        Ok(Outcome::Stored { events }) => Ok(json(format!(
            "{{\"status\":\"stored\",\"events\":{events}{rejected}}}"
        ))),
        Ok(Outcome::Duplicate) => Ok(json(format!("{{\"status\":\"duplicate\"{rejected}}}"))),
        Ok(Outcome::Conflict { stored }) => {
            let (stored, sent) = (hex(&stored), hex(&digest));
            // The handler logs every 4xx with its text, so both digests are in the log.
            Ok(text(
                StatusCode::CONFLICT,
                format!(
                    "{key} is already stored with other content (stored digest {stored}, \
                     this one {sent}); nothing of it was stored: send it again under a new \
                     stream"
                ),
            ))
        }
        Err(e) if e.is_busy() => Err(busy(
            &e.to_string(),
            state.budget.retry_after(state.limits.max_body_bytes),
        )),
        Err(e) => Err(text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// Bytes a decoded batch holds until it is stored.
fn batch_bytes(batch: &crate::ingest::Batch) -> u64 {
    (batch.body.capacity()
        + batch.rows.capacity()
        + batch.state.as_ref().map_or(0, |s| s.doc.capacity())) as u64
}

/// Publishes a batch to the NATS store and waits for JetStream's acknowledgement: the outcome
/// the SQLite store would give (a new message is `Stored`), or the answer for a failure (413
/// for a body over the servers' `max_payload`, else 503).
// A `Reply` as the error, as in `batch_inner`.
#[allow(clippy::result_large_err)]
async fn publish(
    state: &State,
    nats: &crate::nats::Publisher,
    headers: &crate::nats::Headers,
    body: Bytes,
    events: usize,
) -> Result<Outcome, Reply> {
    use crate::nats::{NatsError, Published};
    match nats.publish(headers, body).await {
        Ok(Published::New) => Ok(Outcome::Stored { events }),
        Ok(Published::Duplicate) => Ok(Outcome::Duplicate),
        Ok(Published::Conflict { stored }) => Ok(Outcome::Conflict { stored }),
        Err(e @ NatsError::TooLarge { .. }) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{e}; split the batch"),
        )),
        Err(e) => Err(busy(
            &e.to_string(),
            state.budget.retry_after(state.limits.max_body_bytes),
        )),
    }
}
