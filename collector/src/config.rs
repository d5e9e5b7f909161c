//! The collector's configuration: one local TOML file, `/etc/authtrail/collector.toml` by
//! default.
//!
//! Every field has a default except the TLS certificate and key (there is no plaintext listener,
//! so a server certificate is always needed) and at least one way to authenticate agents. An
//! empty file therefore parses (a test proves it) but does not validate. Unknown keys are errors.
//! Names are kebab-case. The annotated example is `targets/collector.toml`.

use std::fs;
use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/authtrail/collector.toml";

/// Largest config (or tokens) file read, bytes.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The store's file name inside `data-dir`.
pub(crate) const DB_FILE: &str = "authtrail.db";

/// The whole collector configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Address and port to listen on (HTTPS only). Port 0 picks a free port, printed at start.
    /// Defaults to `127.0.0.1:8443` (loopback: set `0.0.0.0:8443` or `[::]:8443` to receive
    /// from other hosts).
    pub listen: SocketAddr,
    /// Where the store (`authtrail.db`, SQLite) lives. Created if missing.
    /// Defaults to `/var/lib/authtrail-collector`.
    pub data_dir: PathBuf,
    /// An agent whose last contact is older than this shows as `stale` in `stats`. Agents send
    /// a heartbeat batch at least every 60 s by default. Defaults to 3 min.
    #[serde(with = "humantime_serde")]
    pub heartbeat_stale_after: Duration,
    /// The server certificate and, optionally, the CA that signs agent certificates.
    pub tls: TlsConfig,
    /// Bearer tokens and which credentials are required.
    pub auth: AuthConfig,
    /// Bounds on connections, requests and bodies.
    pub limits: Limits,
    /// The web console (off unless `admin-token-file` is set).
    pub console: crate::console::ConsoleConfig,
    /// The fleet detections (rules across hosts). See [`crate::fleet::FleetConfig`].
    pub fleet: crate::fleet::FleetConfig,
    /// Where accepted batches go: `type = "sqlite"` (the store in `data-dir`) or `type =
    /// "nats"` (a JetStream stream, read by `authtrail-collector consume`). See
    /// [`crate::nats::StoreConfig`]. Defaults to `sqlite`.
    pub store: crate::nats::StoreConfig,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsConfig {
    /// PEM server certificate chain (leaf first). Required: defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the server certificate (PKCS#8, PKCS#1 or SEC1). Must not be readable
    /// by others. Required: defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// PEM CA certificate(s) that sign agent (client) certificates. Setting it enables mTLS:
    /// with `require = "mtls"` or `"both"` every connection must present a certificate it signed
    /// (checked in the TLS handshake); with `"either"` or `"token"` a certificate is optional
    /// but checked when presented. Defaults to none (no client certificates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// Revoked agent certificates, as `authtrail-collector certs revoke` writes them
    /// (`SERIAL AGENT-ID` lines, serial in hex). Re-read whenever it changes, so a revocation
    /// applies to the agent's next request without a restart; a missing file revokes nothing,
    /// an unreadable one refuses every certificate (503) until it is fixed. Defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_file: Option<PathBuf>,
    /// PEM X.509 certificate revocation list(s) signed by the client CA, as
    /// `authtrail-collector certs revoke` writes them (`crl.pem` beside the CA). A revoked
    /// client certificate is refused in the TLS handshake. Re-read when the file changes
    /// (checked at each handshake), so a revocation applies to the agent's next connection
    /// without a restart; a missing file revokes nothing, one that cannot be read or parsed
    /// refuses every client certificate until it is fixed (and `serve` does not start with
    /// one). Needs `client-ca-file`. Defaults to none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crl_file: Option<PathBuf>,
}

/// Which credentials a batch must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Require {
    /// A client certificate whose subject CN is the agent id.
    Mtls,
    /// A bearer token that maps to the agent id.
    Token,
    /// At least one of the two; every credential presented must be valid and match.
    #[default]
    Either,
    /// Both.
    Both,
}

impl Require {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Require::Mtls => "mtls",
            Require::Token => "token",
            Require::Either => "either",
            Require::Both => "both",
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuthConfig {
    /// A file of `AGENT-ID TOKEN` lines (`#` starts a comment); see [`crate::auth::Tokens`].
    /// Must not be readable or writable by others. Defaults to none (no tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<PathBuf>,
    /// `mtls`, `token`, `either` or `both`. Defaults to `either`.
    pub require: Require,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Largest request body as sent (compressed), bytes; more gets 413. Defaults to 16 MiB.
    pub max_body_bytes: u64,
    /// Largest body once decompressed, bytes; a decoder stops there and the batch gets 413.
    /// Defaults to 64 MiB.
    pub max_decompressed_bytes: u64,
    /// Time allowed to receive a whole request body. Defaults to 30 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Time allowed for the TLS handshake and then for each request's headers (also how long
    /// an idle kept-alive connection may wait for its next request). Defaults to 10 s.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's accept queue. Each holds
    /// up to about 150 KiB (TLS buffers and an HTTP read buffer of a maximal head) outside the
    /// byte budget, so this many fit beside `max-inflight-bytes` under half of the unit's
    /// `MemoryMax=512M`; raise `MemoryMax` with it. Defaults to 256.
    pub max_connections: usize,
    /// Batches being decompressed and decoded at once (CPU); more wait for a turn, their
    /// bodies already received and counted in `max-inflight-bytes`. Defaults to 4.
    pub max_concurrent_batches: usize,
    /// Decoded batches waiting for the store's writer, at most; when full, 503 with
    /// `Retry-After`. Their bytes count in `max-inflight-bytes`, which is the bound that
    /// usually applies. Defaults to 64.
    pub writer_queue: usize,
    /// The memory budget for request bodies in flight, bytes: compressed bodies as they
    /// arrive, their decompressed form and decoded rows, and decoded batches queued for the
    /// store, across all requests. A request that would pass it gets 503 with `Retry-After`
    /// sized from how fast the budget drains. Must be at least max-body-bytes plus twice
    /// max-decompressed-bytes (what one maximal batch needs at its peak). The collector's
    /// resident memory stays under this plus about 100 MiB, under half the shipped unit's
    /// `MemoryMax=512M`. Defaults to 144 MiB (16 MiB + 2 x 64 MiB).
    pub max_inflight_bytes: u64,
    /// Batches of one agent received, decoded or stored at once; more get 429 with
    /// `Retry-After`, so one agent cannot hold the collector for others. Defaults to 4 (the
    /// agent sends at most 4 at a time).
    pub max_batches_per_agent: usize,
    /// Slowest body accepted, bytes per second averaged since the headers, after the first
    /// second: a slower upload is cut with 408 and its memory freed. Defaults to 32768
    /// (a 1 MiB batch in 32 s).
    pub min_upload_rate: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir: PathBuf::from("/var/lib/authtrail-collector"),
            heartbeat_stale_after: Duration::from_secs(180),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            limits: Limits::default(),
            console: crate::console::ConsoleConfig::default(),
            fleet: crate::fleet::FleetConfig::default(),
            store: crate::nats::StoreConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_concurrent_batches: 4,
            writer_queue: 64,
            max_inflight_bytes: 144 * 1024 * 1024,
            max_batches_per_agent: 4,
            min_upload_rate: 32 * 1024,
        }
    }
}

/// Why a config was refused. Each message names the file or key and says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {cause}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        cause: io::Error,
    },
    /// The file is bigger than [`MAX_CONFIG_BYTES`].
    #[error("refusing {}: it is over {MAX_CONFIG_BYTES} bytes", .path.display())]
    TooBig {
        /// The file.
        path: PathBuf,
    },
    /// Group or others may write the file (or, for secrets, others may read it).
    #[error(
        "refusing {}: mode {mode:04o} lets {what}; fix with `chmod {fix} {}`",
        .path.display(), .path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Who may do what.
        what: &'static str,
        /// The suggested mode.
        fix: &'static str,
    },
    /// Not TOML, or a value of the wrong type, or an unknown key.
    #[error("{}:{line}:{column}: {message}", .path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, naming the table and key, in words.
        message: String,
    },
    /// A required key is missing.
    #[error("{key} is required: {hint}")]
    Missing {
        /// The key (`[tls] cert-file`).
        key: &'static str,
        /// What to put there.
        hint: &'static str,
    },
    /// A `require` mode whose credential is not configured.
    #[error(
        "[auth] require = \"{}\" needs {needs}; set it, or choose another `require`",
        .require.as_str()
    )]
    RequireUnmet {
        /// The configured mode.
        require: Require,
        /// What is missing.
        needs: &'static str,
    },
    /// A bound of zero.
    #[error("{key} = 0: must be greater than zero")]
    Zero {
        /// The key.
        key: &'static str,
    },
    /// A `[fleet]` value out of range.
    #[error("{key} = {problem}")]
    Fleet {
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A `[store]` value out of range, or a setting that needs the other store.
    #[error("{key} {problem}")]
    Store {
        /// The key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// max-decompressed-bytes below max-body-bytes.
    #[error("[limits] max-decompressed-bytes must be at least max-body-bytes")]
    DecompressedBelowBody,
    /// max-inflight-bytes too small for one maximal batch.
    #[error(
        "[limits] max-inflight-bytes must be at least max-body-bytes + 2 x \
         max-decompressed-bytes ({needs} bytes), what one maximal batch needs"
    )]
    InflightBelowBatch {
        /// The smallest budget that admits a maximal batch.
        needs: u64,
    },
}

/// How the config's one `type`-tagged table (`[store]`) reads, for error locations.
#[derive(Debug)]
struct StoreTags;

impl config_errors::Tagged for StoreTags {
    fn neutral(&self, key: &[config_errors::Key]) -> Option<&'static str> {
        match key {
            [config_errors::Key::Name(s)] if s == "store" => Some("sqlite"),
            _ => None,
        }
    }

    fn variant_error(
        &self,
        key: &[config_errors::Key],
        tag: &str,
        table: config_errors::Spanned<config_errors::DeTable<'_>>,
    ) -> Option<(config_errors::KeyPath, String)> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Sqlite {}
        match (key, tag) {
            ([_], "nats") => config_errors::alone::<crate::nats::NatsConfig>(table),
            ([_], "sqlite") => config_errors::alone::<Sqlite>(table),
            _ => None,
        }
    }
}

/// A located error of the file at `path`, said as the agent says them.
fn syntax(e: config_errors::Error, path: &Path) -> ConfigError {
    let context = match (&e.at.section, &e.key) {
        (Some(s), Some(k)) => format!("{s} {k}: "),
        (Some(s), None) => format!("in {s}: "),
        (None, Some(k)) => format!("key `{k}`: "),
        (None, None) => String::new(),
    };
    let message = match e.kind {
        config_errors::Kind::Syntax(m) => format!("{context}{m}"),
        config_errors::Kind::Unknown {
            is_value,
            found,
            suggestion,
            expected,
        } => {
            let what = if is_value { "value" } else { "field" };
            let hint = match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("expected one of `{}`", expected.join("`, `")),
            };
            format!("{context}unknown {what} `{found}`: {hint}")
        }
    };
    ConfigError::Syntax {
        path: path.to_owned(),
        line: e.at.line,
        column: e.at.column,
        message,
    }
}

/// Refuses a file that group or others may write (`secret`: or that others may read).
pub(crate) fn check_permissions(
    path: &Path,
    meta: &fs::Metadata,
    secret: bool,
) -> Result<(), ConfigError> {
    let mode = meta.mode() & 0o7777;
    let (what, fix) = if mode & 0o022 != 0 {
        (
            "group or others write it",
            if secret { "600" } else { "640" },
        )
    } else if secret && mode & 0o004 != 0 {
        ("others read it", "600")
    } else {
        return Ok(());
    };
    Err(ConfigError::Permissions {
        path: path.to_owned(),
        mode,
        what,
        fix,
    })
}

/// Reads a small text file after [`check_permissions`] on the opened file.
pub(crate) fn read_checked(path: &Path, secret: bool) -> Result<String, ConfigError> {
    let read_err = |cause| ConfigError::Read {
        path: path.to_owned(),
        cause,
    };
    // Check the file we opened, not the path again (no window to swap it in between).
    let file = fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    check_permissions(path, &meta, secret)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooBig {
            path: path.to_owned(),
        });
    }
    Ok(text)
}

impl Config {
    /// Reads and parses the config file at `path`, refusing one that group or others may
    /// write. An empty file gives [`Config::default`]. Does not run [`Config::validate`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_checked(path, false)?;
        Config::from_toml(&text, path)
    }

    /// Reads the file at `path` and reports every problem found in one pass: each TOML or
    /// type error with its line, then [`Config::validate`]'s.
    pub fn load_valid(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = read_checked(path, false).map_err(|e| vec![e])?;
        let parsed = config_errors::parse::<Config>(&text, &StoreTags);
        let mut errors: Vec<ConfigError> =
            parsed.errors.into_iter().map(|e| syntax(e, path)).collect();
        // In the order of the file.
        errors.sort_by_key(|e| match e {
            ConfigError::Syntax { line, column, .. } => (*line, *column),
            _ => (usize::MAX, 0),
        });
        match parsed.value {
            Some(config) if errors.is_empty() => {
                config.validate()?;
                Ok(config)
            }
            Some(config) => {
                // Semantic problems of what did read (keys in error were left at defaults,
                // which would only repeat them, e.g. a missing cert-file).
                if let Err(more) = config.validate() {
                    errors.extend(
                        more.into_iter()
                            .filter(|e| !matches!(e, ConfigError::Missing { .. })),
                    );
                }
                Err(errors)
            }
            None => Err(errors),
        }
    }

    /// Parses config text; `path` only names the file in errors. Stops at the first error.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let parsed = config_errors::parse::<Config>(text, &StoreTags);
        match (parsed.value, parsed.errors.into_iter().next()) {
            (_, Some(e)) => Err(syntax(e, path)),
            (Some(config), None) => Ok(config),
            (None, None) => unreachable!("a parse without a value has an error"),
        }
    }

    /// The config as TOML, every field written out.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// The SQLite store's path.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(DB_FILE)
    }

    /// Semantic checks; returns every problem, not just the first.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.tls.cert_file.is_none() {
            errors.push(ConfigError::Missing {
                key: "[tls] cert-file",
                hint: "the collector only speaks HTTPS; `authtrail-collector certs init` makes one",
            });
        }
        if self.tls.key_file.is_none() {
            errors.push(ConfigError::Missing {
                key: "[tls] key-file",
                hint: "the server certificate's private key",
            });
        }
        let mtls = self.tls.client_ca_file.is_some();
        if self.tls.crl_file.is_some() && !mtls {
            errors.push(ConfigError::Missing {
                key: "[tls] client-ca-file",
                hint: "[tls] crl-file revokes client certificates, which need the CA that signs them",
            });
        }
        let token = self.auth.tokens_file.is_some();
        let unmet = match self.auth.require {
            Require::Mtls if !mtls => Some("[tls] client-ca-file"),
            Require::Token if !token => Some("[auth] tokens-file"),
            Require::Either if !mtls && !token => {
                Some("[tls] client-ca-file or [auth] tokens-file (agents must authenticate)")
            }
            Require::Both if !(mtls && token) => {
                Some("both [tls] client-ca-file and [auth] tokens-file")
            }
            _ => None,
        };
        if let Some(needs) = unmet {
            errors.push(ConfigError::RequireUnmet {
                require: self.auth.require,
                needs,
            });
        }
        let l = &self.limits;
        for (key, zero) in [
            ("[limits] max-body-bytes", l.max_body_bytes == 0),
            (
                "[limits] max-decompressed-bytes",
                l.max_decompressed_bytes == 0,
            ),
            ("[limits] request-timeout", l.request_timeout.is_zero()),
            ("[limits] header-timeout", l.header_timeout.is_zero()),
            ("[limits] max-connections", l.max_connections == 0),
            (
                "[limits] max-concurrent-batches",
                l.max_concurrent_batches == 0,
            ),
            ("[limits] writer-queue", l.writer_queue == 0),
            (
                "[limits] max-batches-per-agent",
                l.max_batches_per_agent == 0,
            ),
            ("[limits] min-upload-rate", l.min_upload_rate == 0),
            (
                "heartbeat-stale-after",
                self.heartbeat_stale_after.is_zero(),
            ),
        ] {
            if zero {
                errors.push(ConfigError::Zero { key });
            }
        }
        if l.max_decompressed_bytes < l.max_body_bytes {
            errors.push(ConfigError::DecompressedBelowBody);
        }
        let peak = l
            .max_body_bytes
            .saturating_add(l.max_decompressed_bytes.saturating_mul(2));
        if l.max_inflight_bytes < peak {
            errors.push(ConfigError::InflightBelowBatch { needs: peak });
        }
        for (key, problem) in self.fleet.problems() {
            errors.push(ConfigError::Fleet { key, problem });
        }
        if let Some(nats) = self.store.nats() {
            for (key, problem) in nats.problems() {
                errors.push(ConfigError::Store { key, problem });
            }
            if self.console.admin_token_file.is_some() {
                errors.push(ConfigError::Store {
                    key: "[console] admin-token-file",
                    problem: "needs the SQLite store: with [store] type = \"nats\" the \
                              collector keeps no events (run the console beside `consume`, \
                              on its data-dir, with [store] type = \"sqlite\")"
                        .to_owned(),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn empty_file_means_defaults() {
        let c = Config::from_toml("", Path::new("c.toml")).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.limits.max_body_bytes, 16 << 20);
        assert_eq!(c.limits.max_decompressed_bytes, 64 << 20);
        assert_eq!(c.heartbeat_stale_after, Duration::from_secs(180));
        assert_eq!(c.auth.require, Require::Either);
        assert!(c.fleet.enabled);
        assert_eq!((c.fleet.lateral_hosts, c.fleet.failure_hosts), (3, 3));
        assert_eq!(c.fleet.lateral_window, Duration::from_secs(600));
        assert_eq!(c.fleet.failure_window, Duration::from_secs(3600));
        assert_eq!(
            c.fleet.first_login_learning,
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(c.fleet.silent_after, Duration::from_secs(600));
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let mut c = Config::default();
        c.tls.cert_file = Some("/c.pem".into());
        let text = c.to_toml().unwrap();
        assert_eq!(Config::from_toml(&text, Path::new("x")).unwrap(), c);
    }

    #[test]
    fn typo_is_an_error_naming_the_key() {
        let e = Config::from_toml("[limits]\nmax-body-byte = 3\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("max-body-byte"), "{e}");
        assert!(e.contains("c.toml"), "{e}");
    }

    #[test]
    fn example_config_parses_and_is_complete() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/collector.toml");
        let text = fs::read_to_string(&path).unwrap();
        let c = Config::from_toml(&text, &path).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8443");
        // The example shows the defaults of [fleet].
        assert_eq!(c.fleet, crate::fleet::FleetConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn validate_requires_certificate_and_some_authentication() {
        let errors = Config::default().validate().unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(text.iter().any(|e| e.contains("cert-file")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("key-file")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("require")), "{text:?}");

        let mut c = Config::default();
        c.tls.cert_file = Some("/c".into());
        c.tls.key_file = Some("/k".into());
        c.auth.tokens_file = Some("/t".into());
        c.validate().unwrap();
        // A CRL revokes client certificates: it needs their CA.
        c.tls.crl_file = Some("/crl.pem".into());
        let e = c.validate().unwrap_err();
        assert!(e[0].to_string().contains("client-ca-file"), "{e:?}");
        c.tls.crl_file = None;
        c.auth.require = Require::Mtls;
        assert!(c.validate().is_err());
        c.auth.require = Require::Both;
        assert!(c.validate().is_err());
        c.tls.client_ca_file = Some("/ca".into());
        c.validate().unwrap();
        c.limits.max_connections = 0;
        assert!(c.validate().is_err());
        c.limits.max_connections = 1;
        c.fleet.lateral_hosts = 1;
        let e = c.validate().unwrap_err();
        assert!(
            e[0].to_string().contains("[fleet] lateral-hosts = 1"),
            "{e:?}"
        );
    }

    #[test]
    fn group_writable_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.toml");
        fs::write(&path, "").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o664)).unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 640"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        Config::load(&path).unwrap();
        // A secret may not even be readable by others.
        let e = read_checked(&path, true).unwrap_err().to_string();
        assert!(e.contains("others read it"), "{e}");
    }

    #[test]
    fn store_section_reads_both_types_and_locates_errors() {
        let c = Config::from_toml("", Path::new("c.toml")).unwrap();
        assert_eq!(c.store, crate::nats::StoreConfig::Sqlite {});
        let c = Config::from_toml("[store]\ntype = \"sqlite\"\n", Path::new("c.toml")).unwrap();
        assert!(c.store.nats().is_none());
        let c = Config::from_toml(
            "[store]\ntype = \"nats\"\nservers = [\"nats://127.0.0.1:4222\", \"nats://10.0.0.2:4222\"]\nreplicas = 3\nduplicate-window = \"5m\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let n = c.store.nats().unwrap();
        assert_eq!(n.servers.len(), 2);
        assert_eq!(n.replicas, 3);
        assert_eq!(n.duplicate_window, Duration::from_secs(300));
        assert_eq!(n.stream, "AUTHTRAIL");
        // Round trip, every default written out.
        assert_eq!(
            Config::from_toml(&c.to_toml().unwrap(), Path::new("x")).unwrap(),
            c
        );
        // A typo inside the tagged table is named, with its line.
        let e = Config::from_toml(
            "[store]\ntype = \"nats\"\nstream = \"S\"\nreplica = 3\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("c.toml:4") && e.contains("replica"), "{e}");
        assert!(e.contains("replicas"), "suggests the right key: {e}");
        let e = Config::from_toml("[store]\ntype = \"kafka\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka") && e.contains("nats"), "{e}");
        let e = Config::from_toml(
            "[store]\ntype = \"sqlite\"\nservers = []\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("servers"), "{e}");
    }

    #[test]
    fn validate_checks_the_nats_store() {
        let mut c = Config::default();
        c.tls.cert_file = Some("/c".into());
        c.tls.key_file = Some("/k".into());
        c.auth.tokens_file = Some("/t".into());
        c.store = crate::nats::StoreConfig::Nats(Box::new(crate::nats::NatsConfig {
            subject_prefix: "authtrail.*".to_owned(),
            partitions: 0,
            ..crate::nats::NatsConfig::default()
        }));
        c.console.admin_token_file = Some("/a".into());
        let text: Vec<String> = c
            .validate()
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].starts_with("[store] subject-prefix"), "{text:?}");
        assert!(text[1].starts_with("[store] partitions"), "{text:?}");
        assert!(text[2].contains("SQLite store"), "{text:?}");
    }
}
