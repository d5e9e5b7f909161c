//! The HTTPS client: one ureq agent (so connections are reused across batches) with our TLS
//! connector, rebuilt when the CA, client certificate or key files change; the bearer token,
//! re-read when its file changes; and the answer to each POST sorted into an [`Outcome`].

use std::io::Read as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector as _, TcpConnector};

use agent_core::wire;

use super::batch::{BodyEncoder, Codec as _, Encoding};
use super::config::{BATCH_MAX_BYTES_LIMIT, CollectorConfig};
use super::otlp::{DEFAULT_PATH, LogMapper};
use super::retry::{parse_retry_after, parse_retry_after_ms};
use super::spool::SpooledBatch;
use super::tls::{FileStamp, TlsConnector, TlsError, TlsSettings};
use super::{CollectorUrl, ProxyUrl, proxy_for};

/// Most bytes of a response body kept for a log line.
pub(crate) const SNIPPET_BYTES: usize = 512;

/// Longest token file read (a token is a few hundred bytes).
pub(crate) const MAX_TOKEN_BYTES: u64 = 16 * 1024;

/// Most bytes of a 2xx answer read (it lists the events the collector refused, at most
/// [`agent_core::wire::MAX_REJECTIONS_LISTED`] of them with a short reason each).
pub(crate) const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// Events of a batch the collector refused (the wire contract); the rest was stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rejections {
    /// How many were refused.
    pub count: u64,
    /// (1-based line in the batch's NDJSON, why), for those the collector listed.
    pub lines: Vec<(usize, String)>,
    /// What the receiver said about them as a whole (OTLP's partial success `error_message`).
    pub message: Option<String>,
}

/// The collector's JSON answer to a stored batch (members it does not send are defaults;
/// members it adds later are ignored).
#[derive(Debug, Default, serde::Deserialize)]
struct Answer {
    #[serde(default)]
    rejected: u64,
    #[serde(default)]
    rejections: Vec<AnswerLine>,
}

#[derive(Debug, serde::Deserialize)]
struct AnswerLine {
    line: usize,
    #[serde(default)]
    reason: String,
}

/// What the collector made of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 2xx: stored (or already stored), but for the events listed.
    Accepted(Rejections),
    /// 409: the collector holds other content under this batch's (agent, stream, seq); keep
    /// it and send it again under a new stream. The collector's text (with both digests).
    Conflict(String),
    /// 413: split it.
    TooLarge,
    /// 400: will never be accepted; dead-letter it. The response body, cut short.
    Malformed(String),
    /// 401/403: credentials refused; keep it and back off.
    Refused(u16, String),
    /// 429/503: come back later (after `Retry-After` when given).
    Throttled(u16, Option<Duration>),
    /// Anything else: connection, TLS, timeout, other statuses. The text says what.
    Failed(String),
    /// Will never be accepted, for the reason given (OTLP/HTTP: a status the specification
    /// says not to retry; a spooled batch that cannot be turned into a request); dead-letter it.
    Permanent(String),
}

/// The HTTPS client.
#[derive(Debug)]
pub(crate) struct Client {
    url: CollectorUrl,
    endpoint: String,
    agent_id: String,
    tls: TlsSettings,
    tls_stamps: [Option<FileStamp>; 3],
    http: ureq::Agent,
    proxy: Option<String>,
    timeout: Duration,
    token_file: Option<PathBuf>,
    token: Option<(Option<FileStamp>, String)>,
    /// Sent as `Authtrail-Spool-Backlog` with the next batches ([`Client::set_backlog`]).
    backlog: Option<wire::SpoolBacklog>,
    /// `[sink] type = "otlp"`: the encoder of OTLP requests and the compressor of their bodies
    /// (one zstd context for every request, at the configured level); `None` for the collector.
    otlp: Option<(LogMapper, BodyEncoder)>,
}

impl Client {
    /// Builds the client; reads the TLS files now, so a bad CA or key stops the agent at start
    /// with a message naming the file.
    pub(crate) fn new(
        config: &CollectorConfig,
        agent_id: &str,
        otlp: Option<LogMapper>,
    ) -> Result<Client, TlsError> {
        let url = config
            .url
            .clone()
            .ok_or_else(|| TlsError::Rustls(format!("url {}", CollectorUrl::REQUIRED)))?;
        let tls = TlsSettings::new(&config.tls)?;
        let proxy = proxy_for(
            config.proxy.as_ref().map(ProxyUrl::as_str),
            url.host(),
            |k| std::env::var(k).ok(),
        );
        let tls_stamps = tls.stamps();
        let http = build_agent(&tls, &url, proxy.as_deref(), config.timeout)?;
        let endpoint = match &otlp {
            None => url.endpoint(),
            Some(_) => format!(
                "{}{}",
                url.as_str(),
                config.path.as_deref().unwrap_or(DEFAULT_PATH)
            ),
        };
        let otlp = otlp.map(|m| {
            let body = BodyEncoder::new(Encoding::of(config.compression), config.compression_level);
            (m, body)
        });
        Ok(Client {
            endpoint,
            otlp,
            url,
            agent_id: agent_id.to_owned(),
            tls,
            tls_stamps,
            http,
            proxy,
            timeout: config.timeout,
            token_file: config.auth.token_file.clone(),
            token: None,
            backlog: None,
        })
    }

    /// The proxy in use, if any.
    pub(crate) fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// Rebuilds the TLS setup when its files changed (a renewed client certificate is used
    /// from the next connection on, without a restart). On a half-replaced pair (new
    /// certificate, old key) the old setup stays until both match.
    fn refresh_tls(&mut self) -> Result<(), String> {
        let stamps = self.tls.stamps();
        if stamps == self.tls_stamps {
            return Ok(());
        }
        let agent = build_agent(&self.tls, &self.url, self.proxy.as_deref(), self.timeout)
            .map_err(|e| format!("TLS files changed but cannot be used: {e}"))?;
        self.http = agent;
        self.tls_stamps = stamps;
        Ok(())
    }

    fn bearer(&mut self) -> Result<Option<String>, String> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let stamp = FileStamp::of(path);
        if let Some((s, t)) = &self.token
            && *s == stamp
        {
            return Ok(Some(t.clone()));
        }
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_TOKEN_BYTES).read_to_string(&mut text))
            .map_err(|e| format!("cannot read [sink] auth.token-file {}: {e}", path.display()))?;
        let token = text.trim().to_owned();
        if token.is_empty() || token.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(format!(
                "[sink] auth.token-file {} is empty or holds characters a token cannot have",
                path.display()
            ));
        }
        self.token = Some((stamp, token.clone()));
        Ok(Some(token))
    }

    /// The spool backlog to report with the batches sent from now on.
    pub(crate) fn set_backlog(&mut self, backlog: wire::SpoolBacklog) {
        self.backlog = Some(backlog);
    }

    /// POSTs one batch and sorts the answer.
    pub(crate) fn send(&mut self, batch: &SpooledBatch) -> Outcome {
        if let Err(e) = self.refresh_tls() {
            return Outcome::Failed(e);
        }
        let token = match self.bearer() {
            Ok(t) => t,
            Err(e) => return Outcome::Failed(e),
        };
        let otlp_body;
        let mut req = self.http.post(&self.endpoint);
        let body = match &mut self.otlp {
            None => {
                req = req
                    .header(wire::AGENT_ID_HEADER, &self.agent_id)
                    .header(wire::STREAM_HEADER, batch.stream.hyphenated().to_string())
                    .header(wire::BATCH_SEQ_HEADER, batch.seq.to_string())
                    .header(wire::SCHEMA_HEADER, wire::SCHEMA_VERSION)
                    .header("Content-Type", batch.body_kind().content_type());
                if let Some(b) = self.backlog {
                    req = req.header(wire::SPOOL_BACKLOG_HEADER, b.to_string());
                }
                &batch.body[..]
            }
            Some((mapper, compressor)) => {
                otlp_body = match otlp_request(mapper, compressor, batch) {
                    Ok(b) => b,
                    Err(e) => return Outcome::Permanent(e),
                };
                req = req.header("Content-Type", mapper.protocol().content_type());
                &otlp_body[..]
            }
        };
        if let Some(enc) = batch.encoding.header() {
            req = req.header("Content-Encoding", enc);
        }
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(describe_error(&e, &self.url)),
        };
        let status = resp.status().as_u16();
        // The collector's milliseconds when it sends them, else the standard whole seconds.
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
        let retry_after = header(wire::RETRY_AFTER_MS_HEADER)
            .and_then(parse_retry_after_ms)
            .or_else(|| {
                header("retry-after").and_then(|v| parse_retry_after(v, SystemTime::now()))
            });
        let limit = if (200..300).contains(&status) {
            MAX_ANSWER_BYTES
        } else {
            SNIPPET_BYTES as u64
        };
        let mut answer = Vec::new();
        let _ = resp
            .body_mut()
            .as_reader()
            .take(limit)
            .read_to_end(&mut answer);
        let snippet = String::from_utf8_lossy(&answer).trim().to_owned();
        if let Some((mapper, _)) = &self.otlp {
            return otlp_outcome(mapper, status, &answer, snippet, retry_after);
        }
        match status {
            200..=299 => Outcome::Accepted(rejections(&answer)),
            409 => Outcome::Conflict(snippet),
            413 => Outcome::TooLarge,
            400 => Outcome::Malformed(snippet),
            401 | 403 => Outcome::Refused(status, snippet),
            429 | 503 => Outcome::Throttled(status, retry_after),
            _ => Outcome::Failed(format!("HTTP {status} from {}: {snippet}", self.endpoint)),
        }
    }
}

/// The OTLP request body for a spooled batch: its NDJSON as log records, encoded and compressed
/// like the batch (with `compressor` when it is the configured compression, else at the
/// default level). `observed_time_unix_nano` is the batch's spool time.
fn otlp_request(
    mapper: &LogMapper,
    compressor: &mut BodyEncoder,
    batch: &SpooledBatch,
) -> Result<Vec<u8>, String> {
    let ndjson = batch
        .ndjson(BATCH_MAX_BYTES_LIMIT)
        .map_err(|e| format!("the spooled batch cannot be read back: {e}"))?;
    let observed = u64::try_from(batch.created)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000);
    let request = mapper.encode(&ndjson, observed);
    if batch.encoding == compressor.encoding() {
        compressor.encode(&request)
    } else {
        batch.encoding.encode(&request)
    }
    .map_err(|e| format!("compressing the OTLP request: {e}"))
}

/// An OTLP/HTTP receiver's answer, sorted by the specification's rules: 2xx with its partial
/// success; 429, 502, 503 and 504 retryable (after `Retry-After` when given); 400 and every
/// other status not retryable (dead-letter), but for 413 (split, as for the collector) and
/// 401/403 (kept until the credentials are fixed, as for the collector: a rotated token must
/// not cost events).
fn otlp_outcome(
    mapper: &LogMapper,
    status: u16,
    answer: &[u8],
    snippet: String,
    retry_after: Option<Duration>,
) -> Outcome {
    match status {
        200..=299 => {
            let (count, message) = mapper.partial_success(answer);
            Outcome::Accepted(Rejections {
                count,
                lines: Vec::new(),
                message: Some(message).filter(|m| !m.is_empty()),
            })
        }
        413 => Outcome::TooLarge,
        400 => Outcome::Malformed(snippet),
        401 | 403 => Outcome::Refused(status, snippet),
        429 | 502 | 503 | 504 => Outcome::Throttled(status, retry_after),
        _ => Outcome::Permanent(format!(
            "HTTP {status}, which OTLP/HTTP says not to retry: {snippet}"
        )),
    }
}

/// The refused events of a 2xx answer. An answer that is not the collector's JSON (another
/// receiver of NDJSON) refused nothing.
fn rejections(answer: &[u8]) -> Rejections {
    let a: Answer = serde_json::from_slice(answer).unwrap_or_default();
    Rejections {
        count: a.rejected.max(a.rejections.len() as u64),
        lines: a
            .rejections
            .into_iter()
            .map(|l| (l.line, l.reason))
            .collect(),
        message: None,
    }
}

fn build_agent(
    tls: &TlsSettings,
    url: &CollectorUrl,
    proxy: Option<&str>,
    timeout: Duration,
) -> Result<ureq::Agent, TlsError> {
    let tls_connector = TlsConnector::new(tls, tls.server_name(url.host())?)?;
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(tls_connector);
    let proxy = match proxy {
        Some(p) => {
            Some(ureq::Proxy::new(p).map_err(|e| TlsError::Rustls(format!("proxy {p:?}: {e}")))?)
        }
        None => None,
    };
    let config = ureq::Agent::config_builder()
        .https_only(true)
        .http_status_as_error(false)
        .proxy(proxy)
        // Every step after the name lookup gets the timeout, the lookup none of its own
        // (getaddrinfo's): ureq looks the host up before every request, pooled connection or
        // not, and with a timeout it does so on a new thread, one per batch.
        .timeout_connect(Some(timeout))
        .timeout_send_request(Some(timeout))
        .timeout_send_body(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_recv_body(Some(timeout))
        .user_agent(concat!("authtrail/", env!("CARGO_PKG_VERSION")))
        .max_idle_connections(2)
        .max_idle_connections_per_host(2)
        .build();
    Ok(ureq::Agent::with_parts(
        config,
        connector,
        DefaultResolver::default(),
    ))
}

fn describe_error(e: &ureq::Error, url: &CollectorUrl) -> String {
    match e {
        ureq::Error::Io(io) => format!("{}: {io}", url.as_str()),
        ureq::Error::Timeout(t) => format!("{}: timed out ({t})", url.as_str()),
        other => format!("{}: {other}", url.as_str()),
    }
}
