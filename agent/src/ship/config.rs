//! `[sink] type = "collector"`: the collector sink's settings, parsed into typed values
//! ([`CollectorUrl`], [`ProxyUrl`], [`ByteSize`]) when the config is read. This module knows
//! its own keys and nothing of the rest of the config file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::batch::{GZIP_LEVEL, ZSTD_LEVEL};
use super::otlp::OtlpProtocol;
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
    /// What a batch body is: `compact` (`application/vnd.authtrail.batch`, each line once
    /// and its fields as references into it: what the authtrail collector reads, at less than
    /// half the bytes) or `ecs-ndjson` (one ECS JSON document a line, for any receiver of
    /// compressed NDJSON). Defaults to `compact`.
    pub body: BodyFormat,
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
    /// A batch closes when its uncompressed body reaches this many bytes (at most 64 MiB, the
    /// collector's decompressed bound; a compact body also closes before it renders to more
    /// NDJSON than that). Defaults to 1048576 (1 MiB).
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
    /// `[sink.buffer]`: where closed batches wait for the collector.
    pub buffer: BufferConfig,
    /// `[sink.spool]`: the disk buffer's settings.
    pub spool: SpoolConfig,
    /// `[sink.tls]`.
    pub tls: CollectorTlsConfig,
    /// `[sink.auth]`.
    pub auth: CollectorAuthConfig,
    /// `[sink.retry]`.
    pub retry: RetryConfig,
    /// `type = "otlp"` only: `"http/protobuf"` or `"http/json"`, OpenTelemetry's names for
    /// OTLP/HTTP's two encodings. Defaults to `"http/protobuf"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<OtlpProtocol>,
    /// `type = "otlp"` only: the path appended to `url` (`/v1/logs` is OTLP/HTTP's own; a
    /// receiver behind a gateway may want another). Defaults to `"/v1/logs"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `[sink] body`: what a batch body is (`Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BodyFormat {
    /// The compact batch body (`agent_core::batch`).
    #[default]
    Compact,
    /// ECS NDJSON.
    EcsNdjson,
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

/// Where closed batches wait until the collector acknowledges them (`[sink.buffer] type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BufferKind {
    /// The spool (`[sink.spool]`): each commit writes and fsyncs its batches in
    /// `state-dir/spool/`, and checkpoints advance then. Survives crashes and outages of any
    /// length up to `spool.max-bytes`; costs a few fsyncs per commit.
    #[default]
    Disk,
    /// agent-core's ring in memory (`buffer.max-bytes`): nothing is written per batch;
    /// checkpoints advance only when the collector has acknowledged the events (the logs are
    /// the durable copy), persisted at most every `buffer.checkpoint-interval`. Reading and
    /// detection go on through an outage while the ring has room, then pause.
    Memory,
    /// No buffer: a commit waits for the collector's 2xx, so an unreachable collector stops
    /// reading (and the local detections) at once. `spool.enabled = false` is the older
    /// spelling of this.
    None,
}

/// `[sink.buffer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BufferConfig {
    /// `disk`, `memory` or `none` (see [`BufferKind`]). Defaults to `disk` (`none` when the
    /// older `spool.enabled = false` is set).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<BufferKind>,
    /// The memory buffer's size: compressed batches with their headers. At least twice
    /// `batch-max-bytes` and at least 1 MiB. Applies to `type = "memory"` only (the disk
    /// buffer's bound is `spool.max-bytes`). Defaults to 4194304 (4 MiB).
    pub max_bytes: ByteSize,
    /// With the memory buffer, checkpoints (which then move on the collector's acknowledgement)
    /// are written at most this often, and at a clean stop: between 1 s and 60 s. A crash
    /// re-reads what was acknowledged since the last one. Defaults to 5 s.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
}

/// Bounds of `buffer.checkpoint-interval`.
pub const CHECKPOINT_INTERVAL_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(60);

/// Largest `buffer.max-bytes` (1 GiB): the ring is allocated whole at start.
pub const MEMORY_BUFFER_MAX: usize = 1 << 30;

/// Smallest `buffer.max-bytes`.
pub const MEMORY_BUFFER_MIN: u64 = 1024 * 1024;

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            kind: None,
            max_bytes: ByteSize(4 * 1024 * 1024),
            checkpoint_interval: Duration::from_secs(5),
        }
    }
}

/// `[sink.spool]`: closed batches on disk (`state-dir/spool/`) until the collector takes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SpoolConfig {
    /// Spool batches to disk. `false` is the older spelling of `[sink.buffer] type = "none"`
    /// (a commit waits for the collector's 2xx) and may not be combined with another
    /// `buffer.type`. Defaults to true.
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
    /// Largest backoff ceiling; doubling stops here. Defaults to 1 min: a collector that comes
    /// back gets the backlog within a minute (the jitter spreads a fleet over it; an overloaded
    /// collector answers 429 with Retry-After).
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl BufferKind {
    /// The name written in the config file.
    pub fn name(self) -> &'static str {
        match self {
            BufferKind::Disk => "disk",
            BufferKind::Memory => "memory",
            BufferKind::None => "none",
        }
    }
}

/// Largest `batch-max-bytes`: the collector refuses bodies over 64 MiB decompressed.
pub const BATCH_MAX_BYTES_LIMIT: usize = 64 * 1024 * 1024;

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            url: None,
            body: BodyFormat::Compact,
            compression: Compression::Zstd,
            compression_level: None,
            batch_max_events: 5000,
            batch_max_bytes: ByteSize(1024 * 1024),
            batch_max_age: Duration::from_secs(1),
            heartbeat: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            proxy: None,
            buffer: BufferConfig::default(),
            spool: SpoolConfig::default(),
            tls: CollectorTlsConfig::default(),
            auth: CollectorAuthConfig::default(),
            retry: RetryConfig::default(),
            protocol: None,
            path: None,
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
            max: Duration::from_secs(60),
        }
    }
}

impl CollectorConfig {
    /// The buffer in use: `[sink.buffer] type`, else `none` for the older `spool.enabled =
    /// false`, else `disk`. (A contradiction of the two is refused by [`Self::problems`].)
    pub fn buffer_kind(&self) -> BufferKind {
        match (self.buffer.kind, self.spool.enabled) {
            (Some(kind), _) => kind,
            (None, true) => BufferKind::Disk,
            (None, false) => BufferKind::None,
        }
    }

    /// [`CollectorConfig::problems`] for `type = "otlp"` (`otlp`) or `type = "collector"`: the
    /// OTLP-only keys are refused for the collector, and `path` must be a plain absolute path.
    pub fn problems_as(&self, otlp: bool, files: bool) -> Vec<(&'static str, String)> {
        let mut errors = self.problems(files);
        if !otlp {
            for (key, set) in [
                ("protocol", self.protocol.is_some()),
                ("path", self.path.is_some()),
            ] {
                if set {
                    errors.push((
                        key,
                        "applies to type = \"otlp\" only; remove it (the collector's path is \
                         /v1/batches)"
                            .into(),
                    ));
                }
            }
        } else if let Some(p) = &self.path
            && (!p.starts_with('/') || p.contains(['?', '#']) || p.contains(char::is_whitespace))
        {
            errors.push((
                "path",
                format!(
                    "{p:?} must be a path starting with / with no query, fragment or spaces; \
                     the default is \"{}\"",
                    super::otlp::DEFAULT_PATH
                ),
            ));
        }
        errors
    }

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
        let kind = c.buffer_kind();
        if !c.spool.enabled && c.buffer.kind.is_some_and(|k| k != BufferKind::None) {
            bad(
                "spool.enabled",
                format!(
                    "`spool.enabled = false` (no buffer) contradicts `buffer.type = \"{}\"`: \
                     remove `spool.enabled` (its new spelling is `buffer.type = \"none\"`)",
                    kind.name()
                ),
            );
        }
        let spool_default = SpoolConfig {
            enabled: c.spool.enabled,
            ..default.spool.clone()
        };
        if kind != BufferKind::Disk && c.spool != spool_default {
            bad(
                "spool.max-bytes",
                format!(
                    "`[sink.spool]` sets the disk buffer, and `buffer.type` is \"{}\": remove \
                     spool.max-bytes and spool.policy{}",
                    kind.name(),
                    if kind == BufferKind::Memory {
                        " (the memory buffer's bound is buffer.max-bytes; when it is full, \
                         reading pauses)"
                    } else {
                        ""
                    }
                ),
            );
        }
        if kind != BufferKind::Memory
            && (c.buffer.max_bytes != default.buffer.max_bytes
                || c.buffer.checkpoint_interval != default.buffer.checkpoint_interval)
        {
            bad(
                "buffer.max-bytes",
                format!(
                    "buffer.max-bytes and buffer.checkpoint-interval apply to buffer.type = \
                     \"memory\" only, and the buffer is \"{}\"{}",
                    kind.name(),
                    if kind == BufferKind::Disk {
                        " (the disk buffer's bound is spool.max-bytes)"
                    } else {
                        ""
                    }
                ),
            );
        }
        if kind == BufferKind::Memory {
            let min = MEMORY_BUFFER_MIN.max(2 * c.batch_max_bytes.0);
            if c.buffer.max_bytes.0 < min {
                bad(
                    "buffer.max-bytes",
                    format!(
                        "{} is too small: at least {min} bytes (1 MiB, and twice \
                         batch-max-bytes); the default is {}",
                        c.buffer.max_bytes, default.buffer.max_bytes
                    ),
                );
            }
            if c.buffer.max_bytes.as_usize() > MEMORY_BUFFER_MAX {
                bad(
                    "buffer.max-bytes",
                    format!(
                        "{} is more than {} bytes (1 GiB); the memory buffer is allocated \
                         whole at start",
                        c.buffer.max_bytes, MEMORY_BUFFER_MAX
                    ),
                );
            }
            if !CHECKPOINT_INTERVAL_RANGE.contains(&c.buffer.checkpoint_interval) {
                bad(
                    "buffer.checkpoint-interval",
                    "must be between 1s and 60s; the default is 5s".into(),
                );
            }
        }
        if kind == BufferKind::Disk && c.spool.max_bytes.0 < 2 * c.batch_max_bytes.0 {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> CollectorConfig {
        toml::from_str(&format!("url = \"https://c.example\"\n{text}")).unwrap()
    }

    fn problems(text: &str) -> Vec<(&'static str, String)> {
        parse(text).problems(false)
    }

    #[test]
    fn the_buffer_is_disk_unless_set_and_the_old_spool_switch_still_means_none() {
        assert_eq!(parse("").buffer_kind(), BufferKind::Disk);
        let memory = parse(
            "[buffer]\ntype = \"memory\"\nmax-bytes = \"8MiB\"\ncheckpoint-interval = \"2s\"",
        );
        assert_eq!(memory.buffer_kind(), BufferKind::Memory);
        assert_eq!(memory.buffer.max_bytes, ByteSize(8 << 20));
        assert_eq!(memory.buffer.checkpoint_interval, Duration::from_secs(2));
        assert!(memory.problems(false).is_empty());
        let old = parse("[spool]\nenabled = false");
        assert_eq!(old.buffer_kind(), BufferKind::None);
        assert!(old.problems(false).is_empty());
        assert_eq!(
            parse("[buffer]\ntype = \"none\"").buffer_kind(),
            BufferKind::None
        );
        // An empty table means the defaults.
        assert_eq!(parse("[buffer]").buffer, BufferConfig::default());
        assert_eq!(BufferConfig::default().max_bytes, ByteSize(4 << 20));
    }

    #[test]
    fn contradicting_or_misplaced_buffer_settings_are_refused_with_the_fix() {
        let p = problems("[buffer]\ntype = \"memory\"\n[spool]\nenabled = false");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].1.contains("remove `spool.enabled`"), "{p:?}");
        let p = problems("[buffer]\ntype = \"memory\"\n[spool]\nmax-bytes = \"1GiB\"");
        assert!(
            p.iter()
                .any(|(k, why)| *k == "spool.max-bytes" && why.contains("buffer.max-bytes")),
            "{p:?}"
        );
        let p = problems("[buffer]\nmax-bytes = \"8MiB\"");
        assert!(
            p.iter()
                .any(|(k, why)| *k == "buffer.max-bytes" && why.contains("spool.max-bytes")),
            "{p:?}"
        );
        let p = problems(
            "[buffer]\ntype = \"memory\"\nmax-bytes = 65536\ncheckpoint-interval = \"0s\"",
        );
        assert!(p.iter().any(|(k, _)| *k == "buffer.max-bytes"), "{p:?}");
        assert!(
            p.iter().any(|(k, _)| *k == "buffer.checkpoint-interval"),
            "{p:?}"
        );
        let p = problems("[buffer]\ntype = \"memory\"\ncheckpoint-interval = \"2m\"");
        assert!(
            p.iter().any(|(k, _)| *k == "buffer.checkpoint-interval"),
            "{p:?}"
        );
        // Twice the batch bound, whatever the 1 MiB floor says.
        let p = problems(
            "batch-max-bytes = \"4MiB\"\n[buffer]\ntype = \"memory\"\nmax-bytes = \"6MiB\"",
        );
        assert!(p.iter().any(|(k, _)| *k == "buffer.max-bytes"), "{p:?}");
        // A typo is an error, not a silent default.
        let typo: Result<CollectorConfig, _> =
            toml::from_str("[buffer]\ntype = \"memory\"\nmax-byte = 1");
        assert!(typo.is_err());
        let kind: Result<CollectorConfig, _> = toml::from_str("[buffer]\ntype = \"ram\"");
        assert!(kind.is_err());
    }
}
