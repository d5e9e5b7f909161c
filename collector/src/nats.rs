//! `[store] type = "nats"`: the collector as a stateless receiver in front of a NATS JetStream
//! stream, and the message format that `consume` ([`crate::consume`]) reads back.
//!
//! A batch is accepted exactly as with the SQLite store (authentication, identity stamping,
//! per-event checks against the wire contract); then, instead of going to the writer thread,
//! the body *as the agent sent it* is published to the stream under the subject
//! `<subject-prefix>.<partition>.<agent-id>`, with the batch's key and digest in headers
//! ([`Headers`]), and the agent gets its 200 only once JetStream has acknowledged the publish
//! (the stream's replicas hold it). The consumer decodes the same bytes with the same code, so
//! it stores exactly what a collector with the SQLite store would have stored.
//!
//! **De-duplication** happens twice. JetStream drops a message whose `Nats-Msg-Id`
//! (`<agent>.<stream>.<seq>`) it saw within the stream's `duplicate-window`; the collector then
//! compares the digest of the message already in the stream with this one and answers 200
//! (the same content) or 409 (other content, as the SQLite store does). A re-send older than the
//! window (or whose first copy was consumed already) is published again, and the consumer's
//! store applies its own key check: the same digest is a duplicate, never stored twice.
//!
//! **Architecture Invariant:** with the NATS store, a 200 for a batch is sent only after
//! JetStream acknowledged its publish; the collector keeps no state of its own, so any
//! collector can take any agent's next batch.
//!
//! The tokio runtime is the server's: the client (`async-nats`) runs on it; nothing else of the
//! collector knows about NATS.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{HeaderMap, HeaderValue};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ingest::Encoding;

/// `[store]`: where accepted batches go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields, rename_all = "kebab-case")]
pub enum StoreConfig {
    /// The embedded SQLite store in `data-dir` (the default): one collector, the store and
    /// the fleet detections in one process.
    Sqlite {},
    /// A NATS JetStream stream: the collector only publishes; `authtrail-collector consume`
    /// stores and detects.
    Nats(Box<NatsConfig>),
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Sqlite {}
    }
}

impl StoreConfig {
    /// The NATS settings, when this is the NATS store.
    pub fn nats(&self) -> Option<&NatsConfig> {
        match self {
            StoreConfig::Nats(n) => Some(n),
            StoreConfig::Sqlite {} => None,
        }
    }
}

/// `[store] type = "nats"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NatsConfig {
    /// The NATS servers (`nats://host:port`, `tls://host:port`); the client connects to one and
    /// moves to another when it fails. Defaults to `["nats://127.0.0.1:4222"]`.
    pub servers: Vec<String>,
    /// The JetStream stream. Created at start (with the settings below) if it does not exist;
    /// an existing stream is used as it is. Defaults to `AUTHTRAIL`.
    pub stream: String,
    /// Subjects are `<subject-prefix>.<partition>.<agent-id>`; the stream takes
    /// `<subject-prefix>.>`. Defaults to `authtrail.batches`.
    pub subject_prefix: String,
    /// Partitions of the subject space (the agent id's hash picks one), so that several
    /// consumers can split the work, each with its own `consume-partition`. Defaults to 1.
    pub partitions: u32,
    /// Replicas of the stream when the collector creates it (3 for a 3-node cluster).
    /// Defaults to 1.
    pub replicas: usize,
    /// JetStream's de-duplication window for `Nats-Msg-Id`, when the collector creates the
    /// stream. Defaults to 2 min (the agent retries within it).
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// Bytes of batches the stream holds, consumed or not, when the collector creates it. When
    /// full, publishing fails and agents get 503 and keep their batches (nothing accepted is
    /// dropped). Defaults to 8 GiB.
    pub max_bytes: u64,
    /// How long a publish waits for JetStream's acknowledgement before the agent gets 503.
    /// Defaults to 10 s.
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
    /// How long the first connection and the stream's creation are retried at start.
    /// Defaults to 30 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A NATS credentials file (`.creds`: JWT and NKey seed). Must not be readable by others.
    /// Defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// PEM CA that signs the NATS servers' certificates; setting it requires TLS. Defaults to
    /// none (the system's roots when a server asks for TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for NATS servers that verify clients (with `tls-key-file`).
    /// Defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// The client certificate's PEM key. Defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// `consume`: the durable consumer's name (the stream remembers its position under it).
    /// Defaults to `authtrail-store`.
    pub durable: String,
    /// `consume`: how long a message fetched but not acknowledged (a consumer that died
    /// before its commit) waits before JetStream delivers it again, when the durable consumer
    /// is created. Defaults to 30 s.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// `consume`: only this partition (`<subject-prefix>.<N>.>`); several consumers, each with
    /// its own partition, durable name and `data-dir`, split the work. Defaults to none (all
    /// partitions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume_partition: Option<u32>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            servers: vec!["nats://127.0.0.1:4222".to_owned()],
            stream: "AUTHTRAIL".to_owned(),
            subject_prefix: "authtrail.batches".to_owned(),
            partitions: 1,
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_bytes: 8 << 30,
            publish_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(30),
            credentials_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            durable: "authtrail-store".to_owned(),
            ack_wait: Duration::from_secs(30),
            consume_partition: None,
        }
    }
}

/// Whether `token` may stand as one token of a subject (or a stream or consumer name): ASCII
/// letters, digits, `-` and `_`, 1 to [`MAX_TOKEN_BYTES`] bytes. No `.`, no wildcards, no
/// white space.
pub fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_BYTES
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Longest subject token, stream or durable name accepted in the config, bytes.
pub const MAX_TOKEN_BYTES: usize = 64;

/// Most partitions: each is a subject a consumer can filter on.
pub const MAX_PARTITIONS: u32 = 1024;

/// `token` with every byte [`is_token`] refuses replaced by `_` (an empty one becomes `_`).
pub fn subject_token(token: &str) -> String {
    let mut out: String = token
        .chars()
        .take(MAX_TOKEN_BYTES)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

impl NatsConfig {
    /// What is wrong with these settings, as (key, problem) pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.servers.is_empty() {
            out.push((
                "[store] servers",
                "is empty: name at least one NATS server".to_owned(),
            ));
        }
        for s in &self.servers {
            if s.parse::<async_nats::ServerAddr>().is_err() {
                out.push((
                    "[store] servers",
                    format!("{s:?} is not a NATS address (nats://host:port)"),
                ));
            }
        }
        if !is_token(&self.stream) {
            out.push((
                "[store] stream",
                format!(
                    "{:?}: 1 to {MAX_TOKEN_BYTES} ASCII letters, digits, '-' or '_'",
                    self.stream
                ),
            ));
        }
        if !self.subject_prefix.split('.').all(is_token) {
            out.push((
                "[store] subject-prefix",
                format!(
                    "{:?}: dot-separated tokens of ASCII letters, digits, '-' or '_' (no \
                     wildcards)",
                    self.subject_prefix
                ),
            ));
        }
        if !is_token(&self.durable) {
            out.push((
                "[store] durable",
                format!("{:?}: ASCII letters, digits, '-' or '_'", self.durable),
            ));
        }
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            out.push((
                "[store] partitions",
                format!("{}: from 1 to {MAX_PARTITIONS}", self.partitions),
            ));
        }
        if let Some(p) = self.consume_partition
            && p >= self.partitions
        {
            out.push((
                "[store] consume-partition",
                format!("{p}: below partitions ({})", self.partitions),
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            out.push((
                "[store] replicas",
                format!("{}: from 1 to 5", self.replicas),
            ));
        }
        for (key, zero) in [
            ("[store] duplicate-window", self.duplicate_window.is_zero()),
            ("[store] publish-timeout", self.publish_timeout.is_zero()),
            ("[store] connect-timeout", self.connect_timeout.is_zero()),
            ("[store] ack-wait", self.ack_wait.is_zero()),
            ("[store] max-bytes", self.max_bytes == 0),
        ] {
            if zero {
                out.push((key, "0: must be greater than zero".to_owned()));
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            out.push((
                "[store] tls-cert-file",
                "and tls-key-file go together".to_owned(),
            ));
        }
        out
    }

    /// Checks that the files named load: the credentials file (not readable by others) and
    /// the TLS files. What `validate` adds to [`NatsConfig::problems`].
    pub fn check_files(&self) -> Result<(), NatsError> {
        if let Some(creds) = &self.credentials_file {
            crate::config::read_checked(creds, true)
                .map_err(|e| NatsError::Config(format!("credentials-file: {e}")))?;
        }
        for (key, file) in [
            ("tls-ca-file", &self.tls_ca_file),
            ("tls-cert-file", &self.tls_cert_file),
            ("tls-key-file", &self.tls_key_file),
        ] {
            if let Some(path) = file {
                std::fs::File::open(path)
                    .map_err(|e| NatsError::Config(format!("{key}: {}: {e}", path.display())))?;
            }
        }
        Ok(())
    }

    /// The subject of `agent`'s batches.
    pub fn subject(&self, agent: Uuid) -> String {
        let partition =
            agent_core::hash::fnv1a_64(agent_core::hash::FNV1A_64_START, agent.as_bytes())
                % u64::from(self.partitions);
        format!(
            "{}.{partition}.{}",
            self.subject_prefix,
            subject_token(&agent.to_string())
        )
    }

    /// What a consumer with these settings reads: one partition, or all.
    pub fn filter_subject(&self) -> String {
        match self.consume_partition {
            Some(p) => format!("{}.{p}.>", self.subject_prefix),
            None => format!("{}.>", self.subject_prefix),
        }
    }

    /// Connects to the servers, retrying until `connect-timeout`; afterwards the client
    /// reconnects by itself, for ever.
    pub async fn connect(&self) -> Result<async_nats::Client, NatsError> {
        let mut options = async_nats::ConnectOptions::new()
            .name("authtrail-collector")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(self.publish_timeout));
        if let Some(creds) = &self.credentials_file {
            crate::config::read_checked(creds, true)
                .map_err(|e| NatsError::Config(e.to_string()))?;
            options = options
                .credentials_file(creds)
                .await
                .map_err(|e| NatsError::Config(format!("{}: {e}", creds.display())))?;
        }
        if let Some(ca) = &self.tls_ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let servers: Vec<async_nats::ServerAddr> = self
            .servers
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| NatsError::Config(format!("{s:?} is not a NATS address")))
            })
            .collect::<Result<_, _>>()?;
        let connect = options.connect(servers);
        let client = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| NatsError::Unreachable {
                servers: self.servers.join(", "),
                waited: self.connect_timeout,
            })?
            .map_err(|e| NatsError::Nats(format!("connecting: {e}")))?;
        Ok(client)
    }

    /// The JetStream context, with the stream created if it does not exist (retried until
    /// `connect-timeout`: a cluster that has just started elects its leader first).
    pub async fn stream(
        &self,
        client: async_nats::Client,
    ) -> Result<(jetstream::Context, stream::Stream), NatsError> {
        let mut js = jetstream::new(client);
        js.set_timeout(self.publish_timeout);
        let config = stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.subject_prefix)],
            // Consumed batches leave the stream; `max-bytes` bounds the backlog, and a full
            // stream refuses new batches (the agents keep them) instead of dropping old ones.
            retention: stream::RetentionPolicy::WorkQueue,
            discard: stream::DiscardPolicy::New,
            max_bytes: i64::try_from(self.max_bytes).unwrap_or(i64::MAX),
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            ..stream::Config::default()
        };
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        loop {
            match js.get_or_create_stream(config.clone()).await {
                Ok(s) => return Ok((js, s)),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!("stream {}: {e}; retrying", self.stream);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    return Err(NatsError::Nats(format!(
                        "creating or finding the stream {}: {e}",
                        self.stream
                    )));
                }
            }
        }
    }
}

/// A NATS failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// A setting that cannot be used (a credentials file that does not load).
    #[error("[store]: {0}")]
    Config(String),
    /// No server answered in time.
    #[error("no NATS server of {servers} answered within {}", humantime::format_duration(*.waited))]
    Unreachable {
        /// The configured servers.
        servers: String,
        /// `connect-timeout`.
        waited: Duration,
    },
    /// The client or JetStream said no.
    #[error("NATS: {0}")]
    Nats(String),
    /// The body is larger than the NATS servers' `max_payload`.
    #[error("the body ({bytes} bytes) is larger than the NATS servers take ({max} bytes)")]
    TooLarge {
        /// The body with its headers.
        bytes: usize,
        /// The servers' `max_payload`.
        max: usize,
    },
}

/// Header names of a batch message (beside JetStream's `Nats-Msg-Id`).
pub mod header {
    pub use agent_core::wire::{AGENT_ID_HEADER, BATCH_SEQ_HEADER, STREAM_HEADER};
    /// `Content-Encoding` of the body, as the agent sent it.
    pub const ENCODING: &str = "Content-Encoding";
    /// `Content-Type` of the body, as the agent sent it (absent when it sent none).
    pub const CONTENT_TYPE: &str = "Content-Type";
    /// When the collector received the batch, microseconds since the epoch (the agent's last
    /// contact).
    pub const RECEIVED_AT: &str = "Authtrail-Received-At-Us";
    /// SHA-256 of the body, lower-case hex ([`crate::ingest::digest`]).
    pub const DIGEST: &str = "Authtrail-Digest";
}

/// A batch as a stream message carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    /// The authenticated agent.
    pub agent: Uuid,
    /// `Authtrail-Stream`.
    pub stream: String,
    /// `Authtrail-Batch-Seq`.
    pub seq: i64,
    /// The body's `Content-Encoding`.
    pub encoding: Encoding,
    /// The body's `Content-Type`, if the agent sent one.
    pub content_type: Option<String>,
    /// When the collector received it (µs since the epoch).
    pub received_at_us: i64,
    /// SHA-256 of the body.
    pub digest: [u8; 32],
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Headers {
    /// JetStream's de-duplication key: the batch's key.
    pub fn msg_id(&self) -> String {
        format!("{}.{}.{}", self.agent, self.stream, self.seq)
    }

    /// The message headers, `Nats-Msg-Id` included.
    pub fn to_map(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(async_nats::header::NATS_MESSAGE_ID, self.msg_id().as_str());
        h.insert(header::AGENT_ID_HEADER, self.agent.to_string().as_str());
        h.insert(header::STREAM_HEADER, self.stream.as_str());
        h.insert(header::BATCH_SEQ_HEADER, self.seq.to_string().as_str());
        h.insert(
            header::ENCODING,
            self.encoding.header().unwrap_or("identity"),
        );
        if let Some(t) = &self.content_type {
            h.insert(header::CONTENT_TYPE, t.as_str());
        }
        h.insert(
            header::RECEIVED_AT,
            self.received_at_us.to_string().as_str(),
        );
        h.insert(header::DIGEST, hex(&self.digest).as_str());
        h
    }

    /// Reads the headers of a batch message; the error names the header that is missing or
    /// wrong.
    pub fn from_map(h: &HeaderMap) -> Result<Headers, String> {
        let get = |name: &str| {
            h.get(name)
                .map(HeaderValue::as_str)
                .ok_or_else(|| format!("{name} is missing"))
        };
        let bad = |name: &str| format!("{name} is not valid");
        let agent = Uuid::parse_str(get(header::AGENT_ID_HEADER)?)
            .map_err(|_| bad(header::AGENT_ID_HEADER))?;
        let stream = get(header::STREAM_HEADER)?.to_owned();
        let seq = get(header::BATCH_SEQ_HEADER)?
            .parse()
            .map_err(|_| bad(header::BATCH_SEQ_HEADER))?;
        let encoding = Encoding::from_header(Some(get(header::ENCODING)?))
            .ok_or_else(|| bad(header::ENCODING))?;
        let received_at_us = get(header::RECEIVED_AT)?
            .parse()
            .map_err(|_| bad(header::RECEIVED_AT))?;
        let digest = unhex(get(header::DIGEST)?).ok_or_else(|| bad(header::DIGEST))?;
        Ok(Headers {
            agent,
            stream,
            seq,
            encoding,
            content_type: h.get(header::CONTENT_TYPE).map(|v| v.as_str().to_owned()),
            received_at_us,
            digest,
        })
    }
}

/// What JetStream made of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// A new message, held by the stream's replicas.
    New,
    /// The key was published within the duplicate window with the same digest.
    Duplicate,
    /// The key was published within the duplicate window with another digest (this one is not
    /// in the stream).
    Conflict {
        /// The digest in the stream.
        stored: [u8; 32],
    },
}

/// The collector's side: publishes accepted batches.
#[derive(Debug)]
pub struct Publisher {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    config: NatsConfig,
}

impl Publisher {
    /// Connects and makes sure the stream exists.
    pub async fn connect(config: &NatsConfig) -> Result<Publisher, NatsError> {
        let client = config.connect().await?;
        let (js, stream) = config.stream(client.clone()).await?;
        Ok(Publisher {
            client,
            js,
            stream,
            config: config.clone(),
        })
    }

    /// `Ok` when the client is connected, else why not (for `/healthz`).
    pub fn health(&self) -> Result<(), String> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            other => Err(format!("the NATS connection is {other}")),
        }
    }

    /// Publishes a batch's body and waits for JetStream's acknowledgement.
    pub async fn publish(&self, headers: &Headers, body: Bytes) -> Result<Published, NatsError> {
        let map = headers.to_map();
        let max = self.client.server_info().max_payload;
        // The headers are a few hundred bytes; this leaves them room.
        let head = 1024;
        if max > 0 && body.len() + head > max {
            return Err(NatsError::TooLarge {
                bytes: body.len() + head,
                max,
            });
        }
        let nats = |what: &str, e: &dyn std::fmt::Display| NatsError::Nats(format!("{what}: {e}"));
        let ack = self
            .js
            .publish_with_headers(self.config.subject(headers.agent), map, body.clone())
            .await
            .map_err(|e| nats("publishing", &e))?
            .await
            .map_err(|e| nats("waiting for JetStream's acknowledgement", &e))?;
        if !ack.duplicate {
            return Ok(Published::New);
        }
        // The key was seen within the window: compare with the message it names.
        match self.stream.get_raw_message(ack.sequence).await {
            Ok(first) => {
                let stored = first
                    .headers
                    .get(header::DIGEST)
                    .and_then(|v| unhex(v.as_str()));
                match stored {
                    Some(d) if d == headers.digest => Ok(Published::Duplicate),
                    Some(stored) => Ok(Published::Conflict { stored }),
                    None => Err(NatsError::Nats(format!(
                        "stream message {} has no {} header",
                        ack.sequence,
                        header::DIGEST
                    ))),
                }
            }
            Err(e) if matches!(e.kind(), stream::RawMessageErrorKind::NoMessageFound) => {
                // Consumed (and stored) already: publish it once more under a key of its own
                // content; the consumer's store decides (a duplicate of what it holds is not
                // stored again; other content is kept, see `consume`).
                let mut map = headers.to_map();
                map.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    format!("{}.{}", headers.msg_id(), hex(&headers.digest)).as_str(),
                );
                self.js
                    .publish_with_headers(self.config.subject(headers.agent), map, body)
                    .await
                    .map_err(|e| nats("publishing", &e))?
                    .await
                    .map_err(|e| nats("waiting for JetStream's acknowledgement", &e))?;
                Ok(Published::New)
            }
            Err(e) => Err(nats("reading the first copy of a duplicate", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_name_what_is_wrong() {
        let h = Headers {
            agent: Uuid::new_v4(),
            stream: "s-1".to_owned(),
            seq: 42,
            encoding: Encoding::Zstd,
            content_type: Some("application/x-ndjson".to_owned()),
            received_at_us: 1_700_000_000_000_000,
            digest: [7; 32],
        };
        let map = h.to_map();
        assert_eq!(Headers::from_map(&map).unwrap(), h);
        assert_eq!(
            map.get(async_nats::header::NATS_MESSAGE_ID)
                .unwrap()
                .as_str(),
            format!("{}.s-1.42", h.agent)
        );
        let mut broken = h.to_map();
        broken.insert(header::DIGEST, "zz");
        assert_eq!(
            Headers::from_map(&broken).unwrap_err(),
            "Authtrail-Digest is not valid"
        );
    }

    #[test]
    fn subjects_are_sanitised_partitioned_and_filterable() {
        assert_eq!(subject_token("a.b *>c"), "a_b___c");
        assert_eq!(subject_token(""), "_");
        assert_eq!(subject_token(&"x".repeat(100)).len(), MAX_TOKEN_BYTES);
        let mut c = NatsConfig::default();
        let agent = Uuid::new_v4();
        assert_eq!(c.subject(agent), format!("authtrail.batches.0.{agent}"));
        assert_eq!(c.filter_subject(), "authtrail.batches.>");
        c.partitions = 4;
        let seen: std::collections::BTreeSet<String> = (0..64)
            .map(|_| {
                let s = c.subject(Uuid::new_v4());
                s.split('.').nth(2).unwrap().to_owned()
            })
            .collect();
        assert_eq!(seen.len(), 4, "{seen:?}");
        c.consume_partition = Some(3);
        assert_eq!(c.filter_subject(), "authtrail.batches.3.>");
    }

    #[test]
    fn settings_are_checked() {
        assert!(NatsConfig::default().problems().is_empty());
        let c = NatsConfig {
            servers: vec![],
            stream: "a.b".to_owned(),
            subject_prefix: "authtrail.>".to_owned(),
            partitions: 2,
            consume_partition: Some(2),
            replicas: 0,
            publish_timeout: Duration::ZERO,
            tls_cert_file: Some("/c".into()),
            ..NatsConfig::default()
        };
        let keys: Vec<&str> = c.problems().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "[store] servers",
                "[store] stream",
                "[store] subject-prefix",
                "[store] consume-partition",
                "[store] replicas",
                "[store] publish-timeout",
                "[store] tls-cert-file",
            ]
        );
    }
}
