//! `[sink] type = "collector"`: the collector sink's settings, parsed into typed values
//! ([`CollectorUrl`], [`ProxyUrl`], [`ByteSize`]) when the config is read. This module knows
//! its own keys and nothing of the rest of the config file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::batch::{GZIP_LEVEL, ZSTD_LEVEL};
use super::{CollectorUrl, ProxyUrl};
use crate::bytesize::ByteSize;

/// `[sink] type = "collector"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CollectorConfig {
    /// The collector's base URL; batches go to `{url}/v1/batches`. `https://` only: there is no
    /// plaintext fallback, ever. Required: defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<CollectorUrl>,
    /// Body compression: `zstd`, `gzip` or `none`. Defaults to `zstd`.
    pub compression: Compression,
    /// Compression level: 1 to 19 for zstd, 1 to 9 for gzip. Higher is smaller and slower:
    /// measured on the agent's NDJSON, zstd 1 (the default) compresses at about 880 MB/s to 36%
    /// of the raw log, 9 at about 115 MB/s to 28%, 19 at about 1.5 MB/s to 24% (for a slow or
    /// metered link and a quiet host only). Defaults to 1 for zstd, 6 for gzip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<i32>,
    /// A batch closes when it holds this many events. Defaults to 5000.
    pub batch_max_events: usize,
    /// A batch closes when its uncompressed NDJSON reaches this many bytes (at most 64 MiB, the
    /// collector's decompressed bound). Defaults to 1048576 (1 MiB).
    pub batch_max_bytes: ByteSize,
    /// A batch closes when its oldest event is this old. Defaults to 1 s.
    #[serde(with = "humantime_serde")]
    pub batch_max_age: Duration,
    /// When nothing was shipped for this long, a heartbeat batch (one `event.kind = "state"`
    /// document with the host facts) is sent so the collector can tell a quiet host from a dead
    /// agent. Defaults to 60 s.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Longest one request (connect, TLS, send, answer) may take before it counts as failed
    /// and is retried. Defaults to 30 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// An HTTP CONNECT proxy, `http://host:port` (the TLS session to the collector runs through
    /// the tunnel, end to end). Defaults to none: then `HTTPS_PROXY`/`https_proxy` is used,
    /// unless the collector's host matches `NO_PROXY`/`no_proxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyUrl>,
    /// `[sink.spool]`.
    pub spool: SpoolConfig,
    /// `[sink.tls]`.
    pub tls: CollectorTlsConfig,
    /// `[sink.auth]`.
    pub auth: CollectorAuthConfig,
    /// `[sink.retry]`.
    pub retry: RetryConfig,
}

/// Body compression of a batch (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// zstd, level 3.
    #[default]
    Zstd,
    /// gzip (deflate), level 6.
    Gzip,
    /// Plain NDJSON.
    None,
}

/// What a full spool does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SpoolPolicy {
    /// Delete the oldest spooled batches to make room; the count is logged and an alert event
    /// (`event.action = "spool_dropped"`) goes out in the next batch.
    #[default]
    DropOldest,
    /// Refuse the commit: reading pauses and the logs are the buffer until the collector
    /// catches up. Nothing is dropped, but a log rotated away meanwhile is missed.
    Block,
}

/// `[sink.spool]`: closed batches on disk (`state-dir/spool/`) until the collector takes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SpoolConfig {
    /// Spool batches to disk. With `false`, a commit waits for the collector's 2xx: the log
    /// itself is the buffer and checkpoints advance only on acknowledgement. Defaults to true.
    pub enabled: bool,
    /// Most bytes of spooled batches (compressed, with headers); at least twice
    /// `batch-max-bytes`. Defaults to 268435456 (256 MiB).
    pub max_bytes: ByteSize,
    /// `drop-oldest` or `block` when the spool is full. Defaults to `drop-oldest`, as the
    /// design notes say: a long outage must not stop the agent from seeing new logins.
    pub policy: SpoolPolicy,
}

/// `[sink.tls]`: how the collector is trusted and how the agent proves who it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CollectorTlsConfig {
    /// PEM file of the CA certificate(s) that sign the collector's certificate. Defaults to
    /// none: the system trust store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Name sent as SNI and checked against the collector's certificate, when it differs from
    /// the URL's host (e.g. connecting by IP address). Defaults to the URL's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Base64 SHA-256 digests of the collector's public key (SubjectPublicKeyInfo); when set,
    /// the leaf certificate's key must match one of them in addition to normal verification.
    /// List two to rotate keys. Defaults to none.
    pub pin_sha256: Vec<String>,
    /// PEM client certificate (chain) for mTLS; with `key-file`. Re-read when the file changes.
    /// Defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert-file` (PKCS#8, PKCS#1 or SEC1). Defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// `[sink.auth]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CollectorAuthConfig {
    /// File holding a bearer token (surrounding white space ignored), sent as
    /// `Authorization: Bearer`; re-read when it changes. Defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// `[sink.retry]`: exponential backoff with full jitter between failed sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetryConfig {
    /// Backoff ceiling after the first failure (the wait is random in 0 to this). Defaults to
    /// 1 s.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Largest backoff ceiling; doubling stops here. Defaults to 5 min.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

/// Largest `batch-max-bytes`: the collector refuses bodies over 64 MiB decompressed.
pub(crate) const BATCH_MAX_BYTES_LIMIT: usize = 64 * 1024 * 1024;

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            url: None,
            compression: Compression::Zstd,
            compression_level: None,
            batch_max_events: 5000,
            batch_max_bytes: ByteSize(1024 * 1024),
            batch_max_age: Duration::from_secs(1),
            heartbeat: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            proxy: None,
            spool: SpoolConfig::default(),
            tls: CollectorTlsConfig::default(),
            auth: CollectorAuthConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            enabled: true,
            max_bytes: ByteSize(256 * 1024 * 1024),
            policy: SpoolPolicy::DropOldest,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl CollectorConfig {
    /// The settings that cannot work, as (key, what is wrong and what to write instead), every
    /// one of them. `files` also opens the TLS and token files and parses the PEM ones, as
    /// the sink does when it starts.
    pub(crate) fn problems(&self, files: bool) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        let c = self;
        let default = CollectorConfig::default();
        let mut bad = |key: &'static str, reason: String| errors.push((key, reason));
        if c.url.is_none() {
            bad("url", CollectorUrl::REQUIRED.to_owned());
        }
        if let Some(level) = c.compression_level {
            // (valid levels, the default level)
            let range = match c.compression {
                Compression::Zstd => Some((1..=19, ZSTD_LEVEL)),
                Compression::Gzip => Some((1..=9, GZIP_LEVEL as i32)),
                Compression::None => None,
            };
            match range {
                None => bad(
                    "compression-level",
                    "applies to compression = \"zstd\" or \"gzip\" only; remove it".into(),
                ),
                Some((r, default)) if !r.contains(&level) => bad(
                    "compression-level",
                    format!(
                        "must be between {} and {} for this compression; the default is \
                         {default}",
                        r.start(),
                        r.end(),
                    ),
                ),
                Some(_) => {}
            }
        }
        if c.batch_max_events == 0 {
            bad(
                "batch-max-events",
                format!(
                    "must be greater than zero; the default is {}",
                    default.batch_max_events
                ),
            );
        }
        if c.batch_max_bytes.0 == 0 || c.batch_max_bytes.as_usize() > BATCH_MAX_BYTES_LIMIT {
            bad(
                "batch-max-bytes",
                format!(
                    "must be between 1 and {BATCH_MAX_BYTES_LIMIT} (64 MiB, what the collector \
                     accepts decompressed); the default is {}",
                    default.batch_max_bytes
                ),
            );
        }
        for (key, d) in [
            ("batch-max-age", c.batch_max_age),
            ("heartbeat", c.heartbeat),
            ("timeout", c.timeout),
            ("retry.initial", c.retry.initial),
            ("retry.max", c.retry.max),
        ] {
            if d.is_zero() {
                bad(key, "must be greater than zero".into());
            }
        }
        if c.retry.max < c.retry.initial {
            bad("retry.max", "must not be smaller than retry.initial".into());
        }
        if c.spool.max_bytes.0 < 2 * c.batch_max_bytes.0 {
            bad(
                "spool.max-bytes",
                format!(
                    "{} is less than twice batch-max-bytes ({}): the spool must hold at least \
                     two batches; the default is {} (256 MiB)",
                    c.spool.max_bytes, c.batch_max_bytes, default.spool.max_bytes
                ),
            );
        }
        let t = &c.tls;
        for (key, path) in [
            ("tls.ca-file", &t.ca_file),
            ("tls.cert-file", &t.cert_file),
            ("tls.key-file", &t.key_file),
            ("auth.token-file", &c.auth.token_file),
        ] {
            if let Some(p) = path
                && !p.is_absolute()
            {
                bad(key, format!("{} must be an absolute path", p.display()));
            }
        }
        if t.cert_file.is_some() != t.key_file.is_some() {
            bad(
                "tls.cert-file",
                "set both `cert-file` and `key-file` for a client certificate, or neither".into(),
            );
        }
        if let Some(name) = &t.server_name
            && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            bad(
                "tls.server-name",
                format!("{name:?} is not a DNS name or IP address"),
            );
        }
        for pin in &t.pin_sha256 {
            if let Err(reason) = super::tls::decode_pin(pin) {
                bad("tls.pin-sha256", reason);
            }
        }
        if files {
            for (key, reason) in super::tls::file_problems(t) {
                bad(key, reason);
            }
            if let Some(p) = &c.auth.token_file
                && p.is_absolute()
                && let Err(e) = std::fs::read(p)
            {
                bad(
                    "auth.token-file",
                    format!("{}: cannot read it ({e})", p.display()),
                );
            }
        }
        errors
    }
}
